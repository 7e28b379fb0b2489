//! The WAL's record framing: how one put, take, commit, rollback or padding record is laid
//! out in a segment, and the scanner that walks a segment's bytes, checking every crc and
//! finding the next good record after a damaged one.
//!
//! A frame is `len: u32 LE | crc: u32 LE | payload[len] | zero padding to 8 bytes`, with
//! `crc = crc32(len bytes ++ payload)` so a damaged length is caught like damaged data.
//! Frames are 8-byte aligned; resynchronisation after damage tries each aligned offset.
//! Unwritten space is zero (segments are preallocated), so a zero length word followed by
//! zeros to the end of the segment is the end of the written log.

use crate::event::{Event, Headers};
use bytes::Bytes;
use bytestring::ByteString;

pub const FRAME_HEADER: usize = 8;
pub const ALIGN: usize = 8;

/// Padding written by `channel verify --quarantine` over a damaged region.
pub const KIND_PAD: u8 = 0;
pub const KIND_PUT: u8 = 1;
pub const KIND_TAKE: u8 = 2;
pub const KIND_COMMIT: u8 = 3;
pub const KIND_ROLLBACK: u8 = 4;

/// kind + txid + seq + header count.
const PUT_FIXED: usize = 1 + 8 + 8 + 2;

pub const fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// Bytes a framed payload of `payload` bytes occupies.
pub const fn frame_len(payload: usize) -> usize {
    align(FRAME_HEADER + payload)
}

pub fn put_payload_len(e: &Event) -> usize {
    PUT_FIXED
        + e.headers
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum::<usize>()
        + e.body.len()
}

/// A decoded record. Put bodies and headers are slices of the segment (no copy).
// Records are decoded and consumed one at a time, never stored in bulk, so the size of
// the put variant costs nothing; boxing it would cost an allocation per replayed event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Pad,
    Put {
        tx: u64,
        seq: u64,
        event: Event,
    },
    /// The events (by seq, as runs `start..start+count`) a take transaction removed.
    Take {
        tx: u64,
        runs: Vec<(u64, u32)>,
    },
    Commit {
        tx: u64,
    },
    /// Undoes a transaction, also after its commit (a put whose sync failed): `first` and
    /// `count` name the seqs it had put.
    Rollback {
        tx: u64,
        first: u64,
        count: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record too short for its kind")]
    Short,
    #[error("unknown record kind {0}")]
    Kind(u8),
    #[error("header is not UTF-8")]
    Utf8,
    #[error("trailing bytes after the record")]
    Trailing,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Short)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Short)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn done(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

/// Decodes a payload. `whole` is the `Bytes` the payload lies in (so put bodies and headers
/// can be zero-copy slices of it) and `at` the payload's offset in it.
pub fn decode(whole: &Bytes, at: usize, len: usize) -> Result<Record, DecodeError> {
    let payload = &whole[at..at + len];
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let kind = r.u8()?;
    match kind {
        KIND_PAD => Ok(Record::Pad),
        KIND_PUT => {
            let tx = r.u64()?;
            let seq = r.u64()?;
            let n = r.u16()?;
            let mut headers = Headers::new();
            for _ in 0..n {
                let kl = r.u32()? as usize;
                let vl = r.u32()? as usize;
                let k_at = at + r.pos;
                r.take(kl)?;
                let v_at = at + r.pos;
                r.take(vl)?;
                let k = ByteString::try_from(whole.slice(k_at..k_at + kl))
                    .map_err(|_| DecodeError::Utf8)?;
                let v = ByteString::try_from(whole.slice(v_at..v_at + vl))
                    .map_err(|_| DecodeError::Utf8)?;
                headers.set(k, v);
            }
            let body = whole.slice(at + r.pos..at + len);
            Ok(Record::Put {
                tx,
                seq,
                event: Event::with_headers(headers, body),
            })
        }
        KIND_TAKE => {
            let tx = r.u64()?;
            let n = r.u32()? as usize;
            // Never trust a count to size an allocation: 12 bytes per run must be there.
            if n > (payload.len() - r.pos) / 12 {
                return Err(DecodeError::Short);
            }
            let mut runs = Vec::with_capacity(n);
            for _ in 0..n {
                runs.push((r.u64()?, r.u32()?));
            }
            r.done()?;
            Ok(Record::Take { tx, runs })
        }
        KIND_COMMIT => {
            let tx = r.u64()?;
            r.done()?;
            Ok(Record::Commit { tx })
        }
        KIND_ROLLBACK => {
            let tx = r.u64()?;
            let first = r.u64()?;
            let count = r.u32()?;
            r.done()?;
            Ok(Record::Rollback { tx, first, count })
        }
        k => Err(DecodeError::Kind(k)),
    }
}

/// Writes the frame header (length and crc) for the payload already written at
/// `buf[FRAME_HEADER..FRAME_HEADER + len]`, and zeroes the padding.
fn seal(buf: &mut [u8], len: usize) -> usize {
    let len32 = len as u32;
    buf[..4].copy_from_slice(&len32.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&len32.to_le_bytes());
    h.update(&buf[FRAME_HEADER..FRAME_HEADER + len]);
    buf[4..8].copy_from_slice(&h.finalize().to_le_bytes());
    let total = frame_len(len);
    buf[FRAME_HEADER + len..total].fill(0);
    total
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
}

/// Encodes a put record into `buf` (at least `frame_len(put_payload_len(e))` bytes) and
/// returns (frame length, offset of the body within the frame).
pub fn encode_put(buf: &mut [u8], tx: u64, seq: u64, e: &Event) -> (usize, usize) {
    let len = put_payload_len(e);
    let mut w = Writer {
        buf: &mut buf[FRAME_HEADER..],
        pos: 0,
    };
    w.put(&[KIND_PUT]);
    w.put(&tx.to_le_bytes());
    w.put(&seq.to_le_bytes());
    w.put(&(e.headers.len() as u16).to_le_bytes());
    for (k, v) in e.headers.iter() {
        w.put(&(k.len() as u32).to_le_bytes());
        w.put(&(v.len() as u32).to_le_bytes());
        w.put(k.as_bytes());
        w.put(v.as_bytes());
    }
    let body_at = FRAME_HEADER + w.pos;
    w.put(&e.body);
    debug_assert_eq!(w.pos, len);
    (seal(buf, len), body_at)
}

/// Encodes any non-put record into a fresh buffer (these are small and rare next to puts).
pub fn encode_small(r: &Record) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    match r {
        Record::Pad => p.push(KIND_PAD),
        Record::Put { .. } => panic!("puts are encoded in place with encode_put"),
        Record::Take { tx, runs } => {
            p.push(KIND_TAKE);
            p.extend_from_slice(&tx.to_le_bytes());
            p.extend_from_slice(&(runs.len() as u32).to_le_bytes());
            for (s, c) in runs {
                p.extend_from_slice(&s.to_le_bytes());
                p.extend_from_slice(&c.to_le_bytes());
            }
        }
        Record::Commit { tx } => {
            p.push(KIND_COMMIT);
            p.extend_from_slice(&tx.to_le_bytes());
        }
        Record::Rollback { tx, first, count } => {
            p.push(KIND_ROLLBACK);
            p.extend_from_slice(&tx.to_le_bytes());
            p.extend_from_slice(&first.to_le_bytes());
            p.extend_from_slice(&count.to_le_bytes());
        }
    }
    let mut out = vec![0u8; frame_len(p.len())];
    out[FRAME_HEADER..FRAME_HEADER + p.len()].copy_from_slice(&p);
    seal(&mut out, p.len());
    out
}

/// A padding frame filling exactly `total` bytes (a multiple of 8, at least 16).
pub fn encode_pad(total: usize) -> Vec<u8> {
    let mut out = vec![0u8; total];
    out[FRAME_HEADER] = KIND_PAD;
    seal(&mut out, total - FRAME_HEADER);
    out
}

/// Groups seqs into runs of consecutive numbers (a take usually is one run).
pub fn runs(seqs: &[u64]) -> Vec<(u64, u32)> {
    let mut out: Vec<(u64, u32)> = Vec::new();
    for &s in seqs {
        match out.last_mut() {
            Some((start, n)) if start.checked_add(u64::from(*n)) == Some(s) && *n < u32::MAX => {
                *n += 1
            }
            _ => out.push((s, 1)),
        }
    }
    out
}

/// What the scanner found at an offset of the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A frame whose crc checks: its payload is `data[at..at + len]`.
    Frame {
        offset: usize,
        at: usize,
        len: usize,
    },
    /// `len` bytes from `offset` that are not a valid frame. `tail` is true when nothing
    /// valid follows in this segment (a torn write at the end, or damage up to the end).
    Damaged {
        offset: usize,
        len: usize,
        tail: bool,
        reason: &'static str,
    },
}

/// Walks the frames of `data[start..]`. Ends at the first all-zero stretch that runs to
/// the end of `data`; `end()` then gives where the next frame would be written.
pub struct Scanner<'a> {
    data: &'a [u8],
    pos: usize,
    end: Option<usize>,
}

impl<'a> Scanner<'a> {
    pub fn new(data: &'a [u8], start: usize) -> Self {
        Scanner {
            data,
            pos: align(start),
            end: None,
        }
    }

    /// Where valid data ends (after the last good frame, or where damage at the tail
    /// starts): the offset the writer resumes at. Valid once `next` returned `None`.
    pub fn end(&self) -> usize {
        self.end.unwrap_or(self.pos)
    }

    /// The frame at `p`, if one with a good crc is there.
    fn frame_at(&self, p: usize) -> Result<(usize, usize), &'static str> {
        let Some(hdr) = self.data.get(p..p + FRAME_HEADER) else {
            return Err("truncated frame header");
        };
        let len = u32::from_le_bytes(hdr[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(hdr[4..8].try_into().unwrap());
        if len == 0 {
            return Err("zero length");
        }
        if len > self.data.len() - p - FRAME_HEADER {
            return Err("length runs past the end of the segment");
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&hdr[..4]);
        h.update(&self.data[p + FRAME_HEADER..p + FRAME_HEADER + len]);
        if h.finalize() != crc {
            return Err("crc mismatch");
        }
        Ok((p + FRAME_HEADER, len))
    }

    fn zero_from(&self, p: usize) -> bool {
        self.data[p.min(self.data.len())..].iter().all(|&b| b == 0)
    }
}

impl Iterator for Scanner<'_> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.end.is_some() {
            return None;
        }
        let p = self.pos;
        if p + FRAME_HEADER > self.data.len() || self.data[p..p + 4] == [0; 4] && self.zero_from(p)
        {
            self.end = Some(p.min(self.data.len()));
            return None;
        }
        match self.frame_at(p) {
            Ok((at, len)) => {
                self.pos = p + frame_len(len);
                Some(Item::Frame { offset: p, at, len })
            }
            Err(reason) => {
                let mut q = p + ALIGN;
                while q + FRAME_HEADER <= self.data.len() {
                    if self.frame_at(q).is_ok() {
                        self.pos = q;
                        return Some(Item::Damaged {
                            offset: p,
                            len: q - p,
                            tail: false,
                            reason,
                        });
                    }
                    q += ALIGN;
                }
                let last_nonzero = self.data.iter().rposition(|&b| b != 0).unwrap_or(p);
                self.end = Some(p);
                self.pos = self.data.len();
                Some(Item::Damaged {
                    offset: p,
                    len: align(last_nonzero + 1).min(self.data.len()).max(p) - p,
                    tail: true,
                    reason,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(body: &str, hdrs: &[(&str, &str)]) -> Event {
        Event::with_headers(
            hdrs.iter().copied().collect(),
            Bytes::copy_from_slice(body.as_bytes()),
        )
    }

    fn log(records: &[Vec<u8>], size: usize) -> Vec<u8> {
        let mut out: Vec<u8> = records.concat();
        out.resize(size, 0);
        out
    }

    fn put(tx: u64, seq: u64, e: &Event) -> Vec<u8> {
        let mut b = vec![0u8; frame_len(put_payload_len(e))];
        encode_put(&mut b, tx, seq, e);
        b
    }

    fn decoded(data: &[u8]) -> Vec<Record> {
        let whole = Bytes::copy_from_slice(data);
        Scanner::new(data, 0)
            .filter_map(|i| match i {
                Item::Frame { at, len, .. } => Some(decode(&whole, at, len).unwrap()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn round_trips_every_kind() {
        let e = ev("hello", &[("host", "h1"), ("k", "")]);
        let recs = vec![
            put(7, 100, &e),
            encode_small(&Record::Take {
                tx: 8,
                runs: vec![(100, 3), (200, 1)],
            }),
            encode_small(&Record::Commit { tx: 7 }),
            encode_small(&Record::Rollback {
                tx: 9,
                first: 5,
                count: 2,
            }),
            encode_pad(32),
        ];
        let data = log(&recs, 4096);
        assert_eq!(
            decoded(&data),
            vec![
                Record::Put {
                    tx: 7,
                    seq: 100,
                    event: e
                },
                Record::Take {
                    tx: 8,
                    runs: vec![(100, 3), (200, 1)]
                },
                Record::Commit { tx: 7 },
                Record::Rollback {
                    tx: 9,
                    first: 5,
                    count: 2
                },
                Record::Pad,
            ]
        );
        let mut s = Scanner::new(&data, 0);
        assert_eq!(s.by_ref().count(), 5);
        assert_eq!(s.end(), recs.iter().map(Vec::len).sum::<usize>());
    }

    #[test]
    fn a_flipped_bit_is_reported_and_the_scan_resyncs_on_the_next_frame() {
        let recs: Vec<Vec<u8>> = (0..5).map(|i| put(1, i, &ev("abcdefgh", &[]))).collect();
        let mut data = log(&recs, 4096);
        let second = recs[0].len();
        data[second + 20] ^= 0x10;
        let items: Vec<Item> = Scanner::new(&data, 0).collect();
        assert_eq!(items.len(), 5);
        assert_eq!(
            items[1],
            Item::Damaged {
                offset: second,
                len: recs[1].len(),
                tail: false,
                reason: "crc mismatch"
            }
        );
        assert!(matches!(items[4], Item::Frame { .. }));
    }

    #[test]
    fn a_torn_tail_ends_the_scan_where_it_starts() {
        let recs: Vec<Vec<u8>> = (0..3).map(|i| put(1, i, &ev("abcdefgh", &[]))).collect();
        let full = log(&recs, 4096);
        let cut = recs[0].len() + recs[1].len() + 12;
        let mut data = full[..cut].to_vec();
        data.resize(4096, 0);
        let mut s = Scanner::new(&data, 0);
        let items: Vec<Item> = s.by_ref().collect();
        assert!(matches!(
            items.last(),
            Some(Item::Damaged {
                tail: true,
                len: 16,
                ..
            })
        ));
        assert_eq!(s.end(), recs[0].len() + recs[1].len());
    }

    #[test]
    fn runs_group_consecutive_seqs() {
        assert_eq!(runs(&[4, 5, 6, 9, 10, 3]), vec![(4, 3), (9, 2), (3, 1)]);
        assert!(runs(&[]).is_empty());
    }
}
