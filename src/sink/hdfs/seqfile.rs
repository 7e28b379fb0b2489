//! Hadoop SequenceFile (version 6) encoding, as `SequenceFile.Writer` lays it out for
//! Flume's HDFS sink: `LongWritable` keys (the event timestamp) and `BytesWritable` or
//! `Text` values; uncompressed, or block-compressed when `hdfs.codeC` is set (Flume
//! always asks for `CompressionType.BLOCK` with a codec).
//!
//! Layout written: header (`SEQ\x06`, key and value class names, compressed and
//! block-compressed flags, codec class, empty metadata, 16-byte sync); uncompressed
//! records `[recordLen:i32][keyLen:i32][key][value]` with a sync marker (`-1:i32` + sync)
//! whenever 100 KiB passed since the last one (Hadoop 3's `SYNC_INTERVAL`) and at every
//! Flume flush (`writer.sync()`); compressed blocks `[sync marker][records:vint]` then
//! four `[len:vint][compressed]` buffers (key lengths, keys, value lengths, values), one
//! block per flush or per 1,000,000 buffered bytes (`io.seqfile.compress.blocksize`).
//!
//! The writer appends to a caller's buffer and tracks the file position itself, so a
//! failed batch can be undone by restoring the position of the last flush.

use super::codec::Codec;

pub const SYNC_INTERVAL: u64 = 100 * 1024;
pub const BLOCK_SIZE: usize = 1_000_000;
const SYNC_ESCAPE: i32 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// `org.apache.hadoop.io.BytesWritable` (`hdfs.writeFormat = Writable`).
    Bytes,
    /// `org.apache.hadoop.io.Text` (`hdfs.writeFormat = Text`).
    Text,
}

impl ValueType {
    fn class(self) -> &'static str {
        match self {
            ValueType::Bytes => "org.apache.hadoop.io.BytesWritable",
            ValueType::Text => "org.apache.hadoop.io.Text",
        }
    }
}

/// Hadoop's `WritableUtils.writeVLong`.
pub fn write_vlong(out: &mut Vec<u8>, mut i: i64) {
    if (-112..=127).contains(&i) {
        out.push(i as u8);
        return;
    }
    let mut len: i32 = -112;
    if i < 0 {
        i ^= -1;
        len = -120;
    }
    let mut tmp = i;
    while tmp != 0 {
        tmp >>= 8;
        len -= 1;
    }
    out.push(len as i8 as u8);
    let n = if len < -120 {
        -(len + 120)
    } else {
        -(len + 112)
    };
    for idx in (0..n).rev() {
        out.push((i >> (idx * 8)) as u8);
    }
}

/// `Text.writeString`: vint length then UTF-8 bytes.
fn write_text(out: &mut Vec<u8>, s: &[u8]) {
    write_vlong(out, s.len() as i64);
    out.extend_from_slice(s);
}

/// Where the file stands after the last flush; restoring it undoes a failed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pos: u64,
    last_sync: u64,
}

pub struct SeqWriter {
    value: ValueType,
    codec: Option<Codec>,
    sync: [u8; 16],
    pos: u64,
    last_sync: u64,
    records: usize,
    key_lens: Vec<u8>,
    keys: Vec<u8>,
    val_lens: Vec<u8>,
    vals: Vec<u8>,
    scratch: Vec<u8>,
}

impl SeqWriter {
    pub fn new(value: ValueType, codec: Option<Codec>, sync: [u8; 16]) -> Self {
        SeqWriter {
            value,
            codec,
            sync,
            pos: 0,
            last_sync: 0,
            records: 0,
            key_lens: Vec::new(),
            keys: Vec::new(),
            val_lens: Vec::new(),
            vals: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(bytes);
        self.pos += bytes.len() as u64;
    }

    pub fn header(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(b"SEQ\x06");
        write_text(out, b"org.apache.hadoop.io.LongWritable");
        write_text(out, self.value.class().as_bytes());
        out.push(u8::from(self.codec.is_some()));
        out.push(u8::from(self.codec.is_some()));
        if let Some(c) = self.codec {
            write_text(out, c.class().as_bytes());
        }
        out.extend_from_slice(&0i32.to_be_bytes()); // no metadata
        out.extend_from_slice(&self.sync);
        self.pos += (out.len() - start) as u64;
    }

    /// The serialized value (`BytesWritable`: i32 length + bytes; `Text`: vint + bytes).
    fn value_prefix(&self, len: usize, into: &mut Vec<u8>) {
        match self.value {
            ValueType::Bytes => into.extend_from_slice(&(len as i32).to_be_bytes()),
            ValueType::Text => write_vlong(into, len as i64),
        }
    }

    fn sync_marker(&mut self, out: &mut Vec<u8>) {
        if self.last_sync != self.pos {
            let sync = self.sync;
            self.emit(out, &SYNC_ESCAPE.to_be_bytes());
            self.emit(out, &sync);
            self.last_sync = self.pos;
        }
    }

    pub fn append(&mut self, key: i64, value: &[u8], out: &mut Vec<u8>) {
        match self.codec {
            None => {
                if self.pos >= self.last_sync + SYNC_INTERVAL {
                    self.sync_marker(out);
                }
                let mut prefix = std::mem::take(&mut self.scratch);
                prefix.clear();
                self.value_prefix(value.len(), &mut prefix);
                let record_len = 8 + prefix.len() + value.len();
                let start = out.len();
                out.extend_from_slice(&(record_len as i32).to_be_bytes());
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&key.to_be_bytes());
                out.extend_from_slice(&prefix);
                out.extend_from_slice(value);
                self.pos += (out.len() - start) as u64;
                self.scratch = prefix;
            }
            Some(_) => {
                write_vlong(&mut self.key_lens, 8);
                self.keys.extend_from_slice(&key.to_be_bytes());
                let before = self.vals.len();
                let mut vals = std::mem::take(&mut self.vals);
                self.value_prefix(value.len(), &mut vals);
                vals.extend_from_slice(value);
                write_vlong(&mut self.val_lens, (vals.len() - before) as i64);
                self.vals = vals;
                self.records += 1;
                if self.keys.len() + self.vals.len() >= BLOCK_SIZE {
                    self.write_block(out);
                }
            }
        }
    }

    fn write_block(&mut self, out: &mut Vec<u8>) {
        let Some(codec) = self.codec else { return };
        if self.records == 0 {
            return;
        }
        self.sync_marker(out);
        let start = out.len();
        write_vlong(out, self.records as i64);
        let mut scratch = std::mem::take(&mut self.scratch);
        for buf in [&self.key_lens, &self.keys, &self.val_lens, &self.vals] {
            scratch.clear();
            codec.compress(buf, &mut scratch);
            write_vlong(out, scratch.len() as i64);
            out.extend_from_slice(&scratch);
        }
        self.scratch = scratch;
        self.pos += (out.len() - start) as u64;
        self.clear_block();
    }

    fn clear_block(&mut self) {
        self.records = 0;
        self.key_lens.clear();
        self.keys.clear();
        self.val_lens.clear();
        self.vals.clear();
    }

    /// Flume's per-batch `writer.sync()`: a sync marker (uncompressed) or the buffered
    /// block (compressed).
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        match self.codec {
            None => self.sync_marker(out),
            Some(_) => self.write_block(out),
        }
    }

    pub fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            last_sync: self.last_sync,
        }
    }

    pub fn reset_to(&mut self, m: Mark) {
        self.pos = m.pos;
        self.last_sync = m.last_sync;
        self.clear_block();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC: [u8; 16] = *b"0123456789abcdef";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn vlong_matches_writable_utils() {
        let cases: &[(i64, &str)] = &[
            (0, "00"),
            (127, "7f"),
            (-112, "90"),
            (128, "8f 80"),
            (255, "8f ff"),
            (256, "8e 01 00"),
            (-113, "87 70"),
            (1_000_000, "8d 0f 42 40"),
            (i64::MAX, "88 7f ff ff ff ff ff ff ff"),
        ];
        for (v, h) in cases {
            let mut out = Vec::new();
            write_vlong(&mut out, *v);
            assert_eq!(out, hex(h), "{v}");
        }
    }

    #[test]
    fn uncompressed_bytes_writable_layout() {
        let mut w = SeqWriter::new(ValueType::Bytes, None, SYNC);
        let mut out = Vec::new();
        w.header(&mut out);
        let mut expect = b"SEQ\x06".to_vec();
        expect.push(33);
        expect.extend_from_slice(b"org.apache.hadoop.io.LongWritable");
        expect.push(34);
        expect.extend_from_slice(b"org.apache.hadoop.io.BytesWritable");
        expect.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // not compressed, not block, 0 metadata
        expect.extend_from_slice(&SYNC);
        assert_eq!(out, expect);
        assert_eq!(w.pos, out.len() as u64);

        w.append(1339502074567, b"hi", &mut out);
        w.flush(&mut out);
        // recordLen 14 = 8 (key) + 4 (BytesWritable length) + 2; keyLen 8.
        expect.extend(hex("0000000e 00000008 00000137e08b9ac7 00000002 6869"));
        expect.extend(hex("ffffffff"));
        expect.extend_from_slice(&SYNC);
        assert_eq!(out, expect);
        // A flush with nothing new adds no second marker.
        w.flush(&mut out);
        assert_eq!(out, expect);
    }

    #[test]
    fn text_values_use_a_vint_length() {
        let mut w = SeqWriter::new(ValueType::Text, None, SYNC);
        let mut out = Vec::new();
        w.header(&mut out);
        assert_eq!(&out[4 + 34..4 + 34 + 26], b"\x19org.apache.hadoop.io.Text");
        let h = out.len();
        w.append(-1, b"abc", &mut out);
        assert_eq!(
            out[h..],
            hex("0000000c 00000008 ffffffffffffffff 03 616263")
        );
    }

    #[test]
    fn sync_marker_every_sync_interval() {
        let mut w = SeqWriter::new(ValueType::Bytes, None, SYNC);
        let mut out = Vec::new();
        w.header(&mut out);
        let body = vec![b'x'; 1000];
        for _ in 0..250 {
            w.append(0, &body, &mut out);
        }
        let markers = out
            .windows(20)
            .filter(|win| win[..4] == [0xff; 4] && win[4..] == SYNC)
            .count();
        // ~254 KB of records: a marker once 100 KiB passed, twice.
        assert_eq!(markers, 2);
    }

    #[test]
    fn block_compressed_layout_and_rollback() {
        let mut w = SeqWriter::new(ValueType::Bytes, Some(Codec::Gzip), SYNC);
        let mut out = Vec::new();
        w.header(&mut out);
        assert_eq!(out[4 + 34 + 35..4 + 34 + 35 + 2], [1, 1]);
        assert_eq!(
            &out[4 + 34 + 35 + 2 + 1..4 + 34 + 35 + 2 + 40],
            b"org.apache.hadoop.io.compress.GzipCodec"
        );
        let h = out.len();
        let mark = w.mark();
        w.append(7, b"dropped", &mut out);
        assert_eq!(out.len(), h, "block mode buffers records");
        w.reset_to(mark);
        w.append(1, b"a", &mut out);
        w.append(2, b"bc", &mut out);
        w.flush(&mut out);
        let mut r = &out[h..];
        assert_eq!(r[..4], [0xff; 4]);
        assert_eq!(r[4..20], SYNC);
        assert_eq!(r[20], 2, "two records");
        r = &r[21..];
        let mut bufs = Vec::new();
        for _ in 0..4 {
            let n = r[0] as usize;
            let mut d = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&r[1..1 + n]), &mut d)
                .unwrap();
            bufs.push(d);
            r = &r[1 + n..];
        }
        assert!(r.is_empty());
        assert_eq!(bufs[0], [8, 8]);
        assert_eq!(bufs[1], hex("0000000000000001 0000000000000002"));
        assert_eq!(bufs[2], [5, 6]);
        assert_eq!(bufs[3], hex("00000001 61 00000002 6263"));
        assert_eq!(w.pos, out.len() as u64);
    }
}
