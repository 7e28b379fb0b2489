//! What goes into one HDFS file (`hdfs.fileType` × `hdfs.writeFormat` × `serializer` ×
//! `hdfs.codeC`): the per-file encoder that turns events into file bytes.
//!
//! - `SequenceFile`: Hadoop SequenceFile, block-compressed when a codec is set.
//! - `DataStream`: the serializer's bytes as they are (`TEXT`, `HEADER_AND_TEXT`, `avro_event`).
//! - `CompressedStream`: the same bytes, each flush compressed as one gzip member / zlib
//!   stream, as Flume's `HDFSCompressedDataStream` finishes its codec stream per flush.
//!
//! An encoder appends to the caller's pending buffer; `rollback` forgets everything since
//! the last `commit`, for a batch that failed before it was written.

use super::codec::Codec;
use super::seqfile::{Mark, SeqWriter, ValueType};
use crate::event::Event;
use crate::sink::serializer::{Serializer, Writer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    SequenceFile,
    DataStream,
    CompressedStream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub file_type: FileType,
    pub value: ValueType,
    pub codec: Option<Codec>,
    /// DataStream/CompressedStream only.
    pub serializer: Serializer,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the event's 'timestamp' header '{0}' is not an integer of milliseconds (the SequenceFile key)"
)]
pub struct BadKey(pub String);

enum Kind {
    Seq(SeqWriter, Mark),
    Stream(Writer),
}

pub struct Encoder {
    kind: Kind,
    /// CompressedStream: bytes waiting to be compressed as one member at flush.
    compress: Option<(Codec, Vec<u8>)>,
}

impl Format {
    /// The file name extension Flume adds when `hdfs.fileSuffix` is empty.
    pub fn extension(&self) -> &'static str {
        match (self.file_type, self.codec) {
            (FileType::DataStream, _) | (_, None) => "",
            (_, Some(c)) => c.extension(),
        }
    }
}

impl Encoder {
    /// A new file's encoder; its header bytes (if any) are appended to `out`.
    pub fn start(f: &Format, sync: [u8; 16], out: &mut Vec<u8>) -> Encoder {
        let mut header = Vec::new();
        let kind = match f.file_type {
            FileType::SequenceFile => {
                let mut w = SeqWriter::new(f.value, f.codec, sync);
                w.header(&mut header);
                let m = w.mark();
                Kind::Seq(w, m)
            }
            _ => Kind::Stream(Writer::start(&f.serializer, sync, &mut header)),
        };
        let compress = match (f.file_type, f.codec) {
            (FileType::CompressedStream, Some(c)) => Some((c, Vec::new())),
            _ => None,
        };
        match compress {
            // The header becomes its own member; readers see one concatenated stream.
            Some((c, _)) if !header.is_empty() => c.compress(&header, out),
            _ => out.extend_from_slice(&header),
        }
        Encoder { kind, compress }
    }

    pub fn append(&mut self, e: &Event, now_ms: i64, out: &mut Vec<u8>) -> Result<(), BadKey> {
        let out = match &mut self.compress {
            Some((_, plain)) => plain,
            None => out,
        };
        match &mut self.kind {
            Kind::Seq(w, _) => {
                // As Flume's Writable/Text serializers: the timestamp header, else now.
                let key = match e.headers.get("timestamp") {
                    Some(t) => t.parse::<i64>().map_err(|_| BadKey(t.to_string()))?,
                    None => now_ms,
                };
                w.append(key, &e.body, out);
            }
            Kind::Stream(w) => w.append(e, out),
        }
        Ok(())
    }

    /// End of a batch (Flume's `sync()`): everything appended becomes file bytes in `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        let target = match &mut self.compress {
            Some((_, plain)) => plain,
            None => &mut *out,
        };
        match &mut self.kind {
            Kind::Seq(w, _) => w.flush(target),
            Kind::Stream(w) => w.flush(target),
        }
        if let Some((c, plain)) = &mut self.compress {
            if !plain.is_empty() {
                c.compress(plain, out);
                plain.clear();
            }
        }
    }

    /// The bytes flushed so far are in the file.
    pub fn commit(&mut self) {
        if let Kind::Seq(w, m) = &mut self.kind {
            *m = w.mark();
        }
    }

    /// Forgets everything since the last commit.
    pub fn rollback(&mut self) {
        match &mut self.kind {
            Kind::Seq(w, m) => w.reset_to(*m),
            Kind::Stream(w) => w.discard(),
        }
        if let Some((_, plain)) = &mut self.compress {
            plain.clear();
        }
    }
}
