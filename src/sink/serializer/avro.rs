//! The `avro_event` serializer: an Avro object container file of Flume's `Event` record
//! (`headers: map<string>`, `body: bytes`), as Flume's `FlumeEventAvroEventSerializer`
//! writes it: a header naming the schema and codec, then one data block per flush (or per
//! `syncIntervalBytes` of records), each closed by the file's sync marker; blocks compressed
//! by `compressionCodec`: null, deflate or snappy.
//!
//! The container and record encodings are small and fixed, so they are written here
//! directly into the caller's buffer: no per-event `Value` tree, no allocation.

use crate::avro_rpc::binary::{put_bytes, put_long};
use crate::event::Event;
use flate2::write::DeflateEncoder;
use std::io::Write;

/// The schema as Flume's `DataFileWriter` writes it into the container header.
pub const SCHEMA: &str = r#"{"type":"record","name":"Event","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}"#;

/// `compressionCodec`: the Avro block codecs flume-fast writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvroCodec {
    Null,
    Deflate,
    /// Raw Snappy, then the CRC-32 of the uncompressed block (big-endian), as Avro's
    /// `SnappyCodec` writes it.
    Snappy,
}

/// Codecs Avro's `CodecFactory.fromString` (so Flume) accepts that flume-fast does not
/// write; named in the refusal.
const UNSUPPORTED: &[&str] = &["bzip2", "xz", "zstandard"];

impl AvroCodec {
    pub fn parse(name: &str) -> Result<AvroCodec, String> {
        match name.to_ascii_lowercase().as_str() {
            "null" => Ok(AvroCodec::Null),
            "deflate" => Ok(AvroCodec::Deflate),
            "snappy" => Ok(AvroCodec::Snappy),
            other => Err(if UNSUPPORTED.contains(&other) {
                format!(
                    "Avro codec '{name}' is accepted by Flume but not written by flume-fast; use null, deflate or snappy"
                )
            } else {
                format!("unknown Avro codec '{name}'; use null, deflate or snappy")
            }),
        }
    }

    /// The `avro.codec` name in the container header.
    pub fn name(self) -> &'static str {
        match self {
            AvroCodec::Null => "null",
            AvroCodec::Deflate => "deflate",
            AvroCodec::Snappy => "snappy",
        }
    }
}

pub struct AvroWriter {
    codec: AvroCodec,
    sync: [u8; 16],
    sync_interval: usize,
    /// Encoded records of the block being filled.
    block: Vec<u8>,
    count: i64,
    /// The compressed block, kept between blocks.
    scratch: Vec<u8>,
    /// Snappy's hash table (2 KiB inline, so boxed), kept between blocks.
    snappy: Option<Box<snap::raw::Encoder>>,
}

impl AvroWriter {
    pub fn new(codec: AvroCodec, sync_interval: usize, sync: [u8; 16]) -> Self {
        AvroWriter {
            codec,
            sync,
            sync_interval,
            block: Vec::new(),
            count: 0,
            scratch: Vec::new(),
            snappy: (codec == AvroCodec::Snappy).then(|| Box::new(snap::raw::Encoder::new())),
        }
    }

    /// The container header: magic, metadata (schema, codec), sync marker.
    pub fn header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Obj\x01");
        put_long(out, 2);
        put_bytes(out, b"avro.schema");
        put_bytes(out, SCHEMA.as_bytes());
        put_bytes(out, b"avro.codec");
        put_bytes(out, self.codec.name().as_bytes());
        put_long(out, 0);
        out.extend_from_slice(&self.sync);
    }

    /// Buffers one record; a block that reached `sync_interval` bytes is written to `out`.
    pub fn append(&mut self, e: &Event, out: &mut Vec<u8>) {
        // The container's schema is Flume's RPC event record.
        crate::avro_rpc::codec::encode_event(&mut self.block, e);
        self.count += 1;
        if self.block.len() >= self.sync_interval {
            self.flush(out);
        }
    }

    /// Writes the buffered records as one block.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if self.count == 0 {
            return;
        }
        put_long(out, self.count);
        match self.codec {
            AvroCodec::Null => put_bytes(out, &self.block),
            AvroCodec::Deflate => {
                self.scratch.clear();
                let mut e = DeflateEncoder::new(&mut self.scratch, flate2::Compression::default());
                e.write_all(&self.block).expect("Vec write");
                e.finish().expect("Vec write");
                put_bytes(out, &self.scratch);
            }
            AvroCodec::Snappy => {
                let enc = self.snappy.as_mut().expect("made for snappy");
                self.scratch.clear();
                self.scratch
                    .resize(snap::raw::max_compress_len(self.block.len()), 0);
                // Only an input over snap's 2^32 - 1 byte limit fails: a block is smaller
                // than syncIntervalBytes (at most 1 GiB) plus one event.
                let n = enc
                    .compress(&self.block, &mut self.scratch)
                    .expect("an Avro block fits Snappy's input limit");
                self.scratch.truncate(n);
                self.scratch
                    .extend_from_slice(&crc32fast::hash(&self.block).to_be_bytes());
                put_bytes(out, &self.scratch);
            }
        }
        out.extend_from_slice(&self.sync);
        self.discard();
    }

    /// Drops buffered records (a failed batch).
    pub fn discard(&mut self) {
        self.block.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Headers;
    use bytes::Bytes;

    #[test]
    fn codecs_as_flume_names_them() {
        assert_eq!(AvroCodec::parse("null"), Ok(AvroCodec::Null));
        assert_eq!(AvroCodec::parse("Deflate"), Ok(AvroCodec::Deflate));
        assert_eq!(AvroCodec::parse("snappy"), Ok(AvroCodec::Snappy));
        let e = AvroCodec::parse("xz").unwrap_err();
        assert!(e.contains("not written by flume-fast"), "{e}");
        let e = AvroCodec::parse("lzma").unwrap_err();
        assert!(e.contains("unknown Avro codec 'lzma'"), "{e}");
    }

    #[test]
    fn container_layout() {
        let sync = [7u8; 16];
        let mut w = AvroWriter::new(AvroCodec::Null, 1 << 20, sync);
        let mut out = Vec::new();
        w.header(&mut out);
        assert_eq!(&out[..5], b"Obj\x01\x04");
        assert!(out.ends_with(&sync));
        let h = out.len();
        let headers: Headers = [("k", "v")].into_iter().collect();
        w.append(
            &Event::with_headers(headers, Bytes::from_static(b"ab")),
            &mut out,
        );
        w.append(&Event::new(Bytes::from_static(b"")), &mut out);
        w.flush(&mut out);
        let mut expect = vec![4u8]; // 2 records
        let block = [2, 2, b'k', 2, b'v', 0, 4, b'a', b'b', 0, 0];
        expect.push((block.len() * 2) as u8);
        expect.extend_from_slice(&block);
        expect.extend_from_slice(&sync);
        assert_eq!(out[h..], expect);

        // The same events decoded from an Avro frame (headers kept as received) are
        // written as the same bytes.
        let mut frame = bytes::BytesMut::new();
        crate::avro_rpc::codec::encode_batch(
            &mut frame,
            &[
                Event::with_headers(
                    [("k", "v")].into_iter().collect(),
                    Bytes::from_static(b"ab"),
                ),
                Event::new(Bytes::from_static(b"")),
            ],
        );
        let segs = [frame.freeze()];
        let received =
            crate::avro_rpc::codec::decode_batch(&mut crate::avro_rpc::binary::Reader::new(&segs))
                .unwrap();
        assert!(received[0].headers.as_avro().is_some());
        let mut w = AvroWriter::new(AvroCodec::Null, 1 << 20, sync);
        let mut again = Vec::new();
        w.header(&mut again);
        for e in &received {
            w.append(e, &mut again);
        }
        w.flush(&mut again);
        assert_eq!(again, out);
    }

    #[test]
    fn a_block_is_written_when_it_reaches_the_sync_interval() {
        let mut w = AvroWriter::new(AvroCodec::Null, 10, [1; 16]);
        let mut out = Vec::new();
        w.append(&Event::new(Bytes::from_static(b"four")), &mut out);
        assert!(out.is_empty(), "6 record bytes stay buffered below 10");
        w.append(&Event::new(Bytes::from_static(b"four")), &mut out);
        assert_eq!(out[0], 4, "a block of 2 records, written at 12 bytes");
        assert!(out.ends_with(&[1; 16]));
        let n = out.len();
        w.flush(&mut out);
        assert_eq!(out.len(), n, "nothing left to flush");
    }
}
