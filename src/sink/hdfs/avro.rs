//! The `avro_event` serializer: an Avro object container file of Flume's `Event` record
//! (`headers: map<string>`, `body: bytes`), as Flume's `FlumeEventAvroEventSerializer`
//! writes it: one data block per flush (or per `serializer.syncIntervalBytes`), codec
//! `null` or `deflate` (`serializer.compressionCodec`).
//!
//! The container and record encodings are small and fixed, so they are written here
//! directly into the caller's buffer: no per-event `Value` tree, no allocation.

use crate::event::Event;
use flate2::write::DeflateEncoder;
use std::io::Write;

pub const SCHEMA: &str = r#"{"type":"record","name":"Event","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvroCodec {
    Null,
    Deflate,
}

impl AvroCodec {
    pub fn parse(name: &str) -> Option<AvroCodec> {
        match name.to_ascii_lowercase().as_str() {
            "null" => Some(AvroCodec::Null),
            "deflate" => Some(AvroCodec::Deflate),
            _ => None,
        }
    }
}

/// Avro's zig-zag varint `long`.
pub fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

pub struct AvroWriter {
    codec: AvroCodec,
    sync: [u8; 16],
    sync_interval: usize,
    block: Vec<u8>,
    count: i64,
    scratch: Vec<u8>,
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
        }
    }

    pub fn header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Obj\x01");
        write_long(out, 2);
        write_bytes(out, b"avro.schema");
        write_bytes(out, SCHEMA.as_bytes());
        write_bytes(out, b"avro.codec");
        write_bytes(
            out,
            match self.codec {
                AvroCodec::Null => b"null",
                AvroCodec::Deflate => b"deflate",
            },
        );
        write_long(out, 0);
        out.extend_from_slice(&self.sync);
    }

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
        write_long(out, self.count);
        match self.codec {
            AvroCodec::Null => write_bytes(out, &self.block),
            AvroCodec::Deflate => {
                self.scratch.clear();
                let mut e = DeflateEncoder::new(&mut self.scratch, flate2::Compression::default());
                e.write_all(&self.block).expect("Vec write");
                e.finish().expect("Vec write");
                write_bytes(out, &self.scratch);
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
    fn zigzag_longs() {
        for (v, b) in [
            (0i64, &[0u8][..]),
            (-1, &[1]),
            (1, &[2]),
            (64, &[0x80, 1]),
            (-65, &[0x81, 1]),
        ] {
            let mut out = Vec::new();
            write_long(&mut out, v);
            assert_eq!(out, b, "{v}");
        }
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
}
