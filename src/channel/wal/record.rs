//! The WAL's record framing: how one put, take, commit, rollback or padding record is laid
//! out in a segment, and the scanner that walks a segment's bytes, checking every crc and
//! finding the next good record after a damaged one.
//!
//! A frame (segment version 2) is `len: u32 LE | crc: u32 LE | lsn: u64 LE | payload[len] |
//! zero padding to 8 bytes`, with `crc = crc32(len ++ lsn ++ payload)`, so a damaged length
//! is caught like damaged data. `lsn` is the log position of the frame's first byte: a
//! segment file is reused for later log positions once its records are consumed (see
//! `segment`), and a frame left there from an earlier use names an LSN below the
//! segment's start, so it can never pass for one of this use. It also makes finding the
//! next good frame after damage cheap: only an offset whose lsn word names that very
//! offset is worth a crc. Version 1 segments (`len | crc`, crc over len and payload,
//! never reused) are still read, so a log written before reuse replays.
//!
//! Frames are 8-byte aligned; resynchronisation after damage tries each aligned offset.
//! The written log ends where the scan meets zeros to the end of the segment (a fresh
//! one) or, in a version 2 segment, bytes that name another log position (an earlier
//! use's; see `Scanner::tail_damage`).

use crate::event::{Event, Headers};
use bytes::Bytes;
use bytestring::ByteString;

/// The frame header the writer writes (version 2): len, crc, lsn.
pub const FRAME_HEADER: usize = 16;
pub const ALIGN: usize = 8;

/// How a segment's frames are laid out, from the version in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `len | crc`: logs written before segment reuse; read only.
    V1,
    /// `len | crc | lsn`, in a segment whose first byte is at LSN `start`.
    V2 { start: u64 },
}

impl Framing {
    pub const fn header_len(self) -> usize {
        match self {
            Framing::V1 => 8,
            Framing::V2 { .. } => FRAME_HEADER,
        }
    }

    /// Bytes a framed payload of `payload` bytes occupies.
    pub const fn frame_len(self, payload: usize) -> usize {
        align(self.header_len() + payload)
    }
}

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

/// Bytes a framed payload of `payload` bytes occupies, as the writer frames it.
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

/// Writes the frame header (length, crc, lsn) for the payload already written at
/// `buf[FRAME_HEADER..FRAME_HEADER + len]`, and zeroes the padding.
fn seal(buf: &mut [u8], len: usize, lsn: u64) -> usize {
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[8..16].copy_from_slice(&lsn.to_le_bytes());
    let crc = crc_v2(len as u32, lsn, &buf[FRAME_HEADER..FRAME_HEADER + len]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
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

/// A version 2 frame's crc: over its length, its LSN and its payload.
fn crc_v2(len: u32, lsn: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&lsn.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Encodes a put record to be written at `lsn` into `buf` (at least
/// `frame_len(put_payload_len(e))` bytes) and returns (frame length, offset of the body
/// within the frame).
pub fn encode_put(buf: &mut [u8], lsn: u64, tx: u64, seq: u64, e: &Event) -> (usize, usize) {
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
    (seal(buf, len, lsn), body_at)
}

/// Encodes any non-put record, to be written at `lsn`, into a fresh buffer (these are
/// small and rare next to puts).
pub fn encode_small(r: &Record, lsn: u64) -> Vec<u8> {
    frame(&small_payload(r), lsn)
}

/// The payload of a non-put record; `frame` frames it once its LSN is known.
pub fn small_payload(r: &Record) -> Vec<u8> {
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
    p
}

/// Frames `payload` to be written at `lsn`.
pub fn frame(payload: &[u8], lsn: u64) -> Vec<u8> {
    let mut out = vec![0u8; frame_len(payload.len())];
    out[FRAME_HEADER..FRAME_HEADER + payload.len()].copy_from_slice(payload);
    seal(&mut out, payload.len(), lsn);
    out
}

/// A padding frame filling exactly `total` bytes from `at` (a multiple of 8, at least
/// `framing.header_len() + 8`) of a segment framed as `framing`.
pub fn encode_pad(framing: Framing, at: usize, total: usize) -> Vec<u8> {
    let mut out = vec![0u8; total];
    let hl = framing.header_len();
    out[hl] = KIND_PAD;
    match framing {
        Framing::V2 { start } => {
            seal(&mut out, total - hl, start + at as u64);
        }
        Framing::V1 => seal_v1(&mut out, total - hl),
    }
    out
}

/// The version 1 frame of the same record as the version 2 `frame` (tests of old logs).
#[cfg(test)]
pub fn to_v1(frame: &[u8]) -> Vec<u8> {
    let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
    let mut v1 = vec![0u8; align(8 + len)];
    v1[8..8 + len].copy_from_slice(&frame[FRAME_HEADER..FRAME_HEADER + len]);
    seal_v1(&mut v1, len);
    v1
}

/// A version 1 frame header for the payload at `buf[8..8 + len]` (quarantine in old
/// segments, and tests).
pub fn seal_v1(buf: &mut [u8], len: usize) {
    let len32 = len as u32;
    buf[..4].copy_from_slice(&len32.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&len32.to_le_bytes());
    h.update(&buf[8..8 + len]);
    buf[4..8].copy_from_slice(&h.finalize().to_le_bytes());
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

/// Merges ranges of seqs `(first, count)`, in any order and not overlapping, into the
/// runs `runs` would make of their seqs sorted: a checkpoint of a million queued events
/// costs a run per put batch, not a sort of a million seqs on the shard's loop.
pub fn merge_runs(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u32)> {
    ranges.sort_unstable_by_key(|r| r.0);
    let mut out: Vec<(u64, u32)> = Vec::new();
    for (mut first, mut count) in ranges {
        while count > 0 {
            let k = match out.last_mut() {
                Some((start, n)) if *start + u64::from(*n) == first && *n < u32::MAX => {
                    let k = count.min(u64::from(u32::MAX - *n));
                    *n += k as u32;
                    k
                }
                _ => {
                    let k = count.min(u64::from(u32::MAX));
                    out.push((first, k as u32));
                    k
                }
            };
            first += k;
            count -= k;
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

/// Walks the frames of `data[start..]`, framed as `framing`. Ends where the written log
/// does (see the module doc); `end()` then gives where the next frame would be written.
pub struct Scanner<'a> {
    data: &'a [u8],
    framing: Framing,
    pos: usize,
    end: Option<usize>,
}

impl<'a> Scanner<'a> {
    pub fn new(data: &'a [u8], start: usize, framing: Framing) -> Self {
        Scanner {
            data,
            framing,
            pos: align(start),
            end: None,
        }
    }

    /// Where valid data ends (after the last good frame, or where damage at the tail
    /// starts): the offset the writer resumes at. Valid once `next` returned `None`.
    pub fn end(&self) -> usize {
        self.end.unwrap_or(self.pos)
    }

    fn word(&self, at: usize, n: usize) -> Option<u64> {
        let b = self.data.get(at..at + n)?;
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(b);
        Some(u64::from_le_bytes(w))
    }

    /// The frame at `p`, if one with a good crc (and, in version 2, naming `p`) is there.
    fn frame_at(&self, p: usize) -> Result<(usize, usize), &'static str> {
        let hl = self.framing.header_len();
        let Some(hdr) = self.data.get(p..p + hl) else {
            return Err("truncated frame header");
        };
        if let Framing::V2 { start } = self.framing {
            // Checked first: it is what rules out almost every offset a resync tries.
            if u64::from_le_bytes(hdr[8..16].try_into().unwrap()) != start + p as u64 {
                return Err("no frame written at this log position");
            }
        }
        let len = u32::from_le_bytes(hdr[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(hdr[4..8].try_into().unwrap());
        if len == 0 {
            return Err("zero length");
        }
        if len > self.data.len() - p - hl {
            return Err("length runs past the end of the segment");
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&hdr[..4]);
        h.update(&hdr[8..]);
        h.update(&self.data[p + hl..p + hl + len]);
        if h.finalize() != crc {
            return Err("crc mismatch");
        }
        Ok((p + hl, len))
    }

    fn zero_from(&self, p: usize) -> bool {
        self.data[p.min(self.data.len())..].iter().all(|&b| b == 0)
    }

    /// For bytes at `p` where no good frame starts and none follows: `None` when the log
    /// simply ends there, else how many bytes of a torn or damaged write are there.
    ///
    /// Zeros to the end are the unwritten rest of a fresh segment. In version 2, a frame
    /// of this use that did not survive (torn at a crash, or damaged since) is reported,
    /// as it may be the commit of transactions before it, and replay treats it as damage:
    /// its lsn word names `p`, or it is a frame whose crc checks once its lsn word is
    /// taken to be `p` (damage to that word). Anything else was never written by this
    /// use of the file (an earlier use's frame or the inside of one, or a header torn
    /// before it was whole) and is where the log ends. Nearness is no test: an earlier
    /// use's header at the same offset differs only in the bits that number segments,
    /// and inside its frames a put's `seq << 8` can fall anywhere.
    fn tail_damage(&self, p: usize) -> Option<usize> {
        if self.zero_from(p) {
            return None;
        }
        let rest = self.data.len() - p;
        match self.framing {
            Framing::V1 => {
                let last_nonzero = self.data.iter().rposition(|&b| b != 0).unwrap_or(p);
                Some(align(last_nonzero + 1).min(self.data.len()).max(p) - p)
            }
            Framing::V2 { start } => {
                let here = start + p as u64;
                if self.word(p + 8, 8)? != here && !self.checks_as(p, here) {
                    return None;
                }
                let claimed = self
                    .word(p, 4)
                    .map_or(0, |l| self.framing.frame_len(l as usize));
                Some(claimed.clamp(FRAME_HEADER, rest))
            }
        }
    }

    /// Whether the version 2 frame at `p` has a good crc when its lsn is taken to be `lsn`.
    fn checks_as(&self, p: usize, lsn: u64) -> bool {
        let (Some(len), Some(crc)) = (self.word(p, 4), self.word(p + 4, 4)) else {
            return false;
        };
        let payload = self
            .data
            .get(p + FRAME_HEADER..p + FRAME_HEADER + len as usize);
        len > 0 && payload.is_some_and(|b| u64::from(crc_v2(len as u32, lsn, b)) == crc)
    }
}

impl Iterator for Scanner<'_> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.end.is_some() {
            return None;
        }
        let p = self.pos;
        let hl = self.framing.header_len();
        if p + hl > self.data.len() || self.data[p..p + 4] == [0; 4] && self.zero_from(p) {
            self.end = Some(p.min(self.data.len()));
            return None;
        }
        match self.frame_at(p) {
            Ok((at, len)) => {
                self.pos = p + self.framing.frame_len(len);
                Some(Item::Frame { offset: p, at, len })
            }
            Err(reason) => {
                let mut q = p + ALIGN;
                while q + hl <= self.data.len() {
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
                self.end = Some(p);
                self.pos = self.data.len();
                let len = self.tail_damage(p)?;
                Some(Item::Damaged {
                    offset: p,
                    len,
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

    /// Frames laid out as the log writes them into a segment starting at LSN `start`.
    struct Build {
        start: u64,
        data: Vec<u8>,
        offsets: Vec<usize>,
    }

    impl Build {
        fn new(start: u64) -> Build {
            Build {
                start,
                data: Vec::new(),
                offsets: Vec::new(),
            }
        }
        fn lsn(&self) -> u64 {
            self.start + self.data.len() as u64
        }
        fn put(mut self, tx: u64, seq: u64, e: &Event) -> Build {
            let at = self.data.len();
            self.data.resize(at + frame_len(put_payload_len(e)), 0);
            let lsn = self.lsn() - (self.data.len() - at) as u64;
            encode_put(&mut self.data[at..], lsn, tx, seq, e);
            self.offsets.push(at);
            self
        }
        fn small(mut self, r: &Record) -> Build {
            self.offsets.push(self.data.len());
            let f = encode_small(r, self.lsn());
            self.data.extend_from_slice(&f);
            self
        }
        fn pad(mut self, total: usize) -> Build {
            self.offsets.push(self.data.len());
            let f = encode_pad(Framing::V2 { start: self.start }, self.data.len(), total);
            self.data.extend_from_slice(&f);
            self
        }
        fn sized(mut self, size: usize) -> Vec<u8> {
            self.data.resize(size, 0);
            self.data
        }
    }

    fn scan(data: &[u8], start: u64) -> (Vec<Item>, usize) {
        let mut s = Scanner::new(data, 0, Framing::V2 { start });
        let items = s.by_ref().collect();
        (items, s.end())
    }

    fn decoded(data: &[u8], framing: Framing) -> Vec<Record> {
        let whole = Bytes::copy_from_slice(data);
        Scanner::new(data, 0, framing)
            .filter_map(|i| match i {
                Item::Frame { at, len, .. } => Some(decode(&whole, at, len).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn every_kind() -> Vec<Record> {
        vec![
            Record::Put {
                tx: 7,
                seq: 100,
                event: ev("hello", &[("host", "h1"), ("k", "")]),
            },
            Record::Take {
                tx: 8,
                runs: vec![(100, 3), (200, 1)],
            },
            Record::Commit { tx: 7 },
            Record::Rollback {
                tx: 9,
                first: 5,
                count: 2,
            },
            Record::Pad,
        ]
    }

    fn build_all(start: u64, recs: &[Record]) -> Build {
        recs.iter().fold(Build::new(start), |b, r| match r {
            Record::Put { tx, seq, event } => b.put(*tx, *seq, event),
            Record::Pad => b.pad(32),
            r => b.small(r),
        })
    }

    #[test]
    fn round_trips_every_kind() {
        let b = build_all(1 << 30, &every_kind());
        let written = b.data.len();
        let data = b.sized(4096);
        assert_eq!(decoded(&data, Framing::V2 { start: 1 << 30 }), every_kind());
        let (items, end) = scan(&data, 1 << 30);
        assert_eq!(items.len(), 5);
        assert_eq!(end, written);
    }

    #[test]
    fn a_frame_is_only_valid_at_the_position_it_was_written_for() {
        let data = build_all(4096, &every_kind()).sized(4096);
        // The same bytes read as a segment starting elsewhere hold no frame at all.
        let (items, end) = scan(&data, 8192);
        assert!(items.is_empty(), "{items:?}");
        assert_eq!(end, 0);
    }

    #[test]
    fn version_1_frames_are_still_read() {
        let mut data = Vec::new();
        for r in every_kind() {
            data.extend_from_slice(&to_v1(&build_all(0, std::slice::from_ref(&r)).data));
        }
        let written = data.len();
        data.resize(4096, 0);
        assert_eq!(decoded(&data, Framing::V1), every_kind());
        let mut s = Scanner::new(&data, 0, Framing::V1);
        assert_eq!(s.by_ref().count(), 5);
        assert_eq!(s.end(), written);
    }

    #[test]
    fn a_flipped_bit_is_reported_and_the_scan_resyncs_on_the_next_frame() {
        let b = (0..5).fold(Build::new(0), |b, i| b.put(1, i, &ev("abcdefgh", &[])));
        let offs = b.offsets.clone();
        let mut data = b.sized(4096);
        data[offs[1] + 20] ^= 0x10;
        let (items, _) = scan(&data, 0);
        assert_eq!(items.len(), 5);
        assert_eq!(
            items[1],
            Item::Damaged {
                offset: offs[1],
                len: offs[2] - offs[1],
                tail: false,
                reason: "crc mismatch"
            }
        );
        assert!(matches!(items[4], Item::Frame { .. }));
    }

    #[test]
    fn a_torn_tail_ends_the_scan_where_it_starts() {
        let b = (0..3).fold(Build::new(0), |b, i| b.put(1, i, &ev("abcdefgh", &[])));
        let offs = b.offsets.clone();
        let third = b.data.len() - offs[2];
        let mut data = b.data[..offs[2] + 20].to_vec();
        data.resize(4096, 0);
        let (items, end) = scan(&data, 0);
        assert_eq!(
            items.last(),
            Some(&Item::Damaged {
                offset: offs[2],
                len: third,
                tail: true,
                reason: "crc mismatch"
            })
        );
        assert_eq!(end, offs[2]);
    }

    /// A reused segment: its first use filled it; the second wrote less. The first use's
    /// frames after the second's end are neither records nor damage.
    fn reused(first_start: u64, second_start: u64, second_events: u64) -> (Vec<u8>, Vec<usize>) {
        let mut first = Build::new(first_start);
        let mut seq = 0;
        while first.data.len() < 8000 {
            first = first.put(1, seq, &ev("an event of the first use", &[]));
            seq += 1;
        }
        let mut data = first.sized(8192);
        let second = (0..second_events).fold(Build::new(second_start), |b, i| {
            b.put(2, 1000 + i, &ev("second", &[("h", "v")]))
        });
        data[..second.data.len()].copy_from_slice(&second.data);
        (data, second.offsets)
    }

    #[test]
    fn an_earlier_use_of_a_reused_segment_ends_the_log_silently() {
        for n in [0, 1, 7, 40] {
            let (data, offs) = reused(0, 1 << 20, n);
            let (items, end) = scan(&data, 1 << 20);
            assert_eq!(items.len(), n as usize, "{items:?}");
            assert!(items.iter().all(|i| matches!(i, Item::Frame { .. })));
            let expect = if n == 0 {
                0
            } else {
                let last = *offs.last().unwrap();
                last + frame_len(put_payload_len(&ev("second", &[("h", "v")])))
            };
            assert_eq!(end, expect);
        }
    }

    #[test]
    fn damage_to_the_last_frame_of_a_reused_segment_is_reported() {
        let (mut data, offs) = reused(0, 1 << 20, 7);
        let last = *offs.last().unwrap();
        // A flipped bit in the last frame's crc, and then in its lsn word: both still name
        // a position of this segment, so neither may pass for the end of the log.
        for at in [last + 4, last + 9] {
            let mut d = data.clone();
            d[at] ^= 0x01;
            let (items, end) = scan(&d, 1 << 20);
            assert_eq!(items.len(), 7, "{items:?}");
            assert!(matches!(items[6], Item::Damaged { offset, tail: true, .. } if offset == last));
            assert_eq!(end, last);
        }
        // After the last frame of this use: an earlier use's bytes whose lsn word names
        // another position of this segment (a put's seq << 8 can), or an earlier use's
        // header at the same offset (its lsn differs only in the segment bits). Both are
        // the end, not damage.
        let end_at = last + frame_len(put_payload_len(&ev("second", &[("h", "v")])));
        for lsn in [
            (1u64 << 20) + end_at as u64 + 0x1350,
            end_at as u64 + (1 << 21),
        ] {
            let mut d = data.clone();
            d[end_at..end_at + 8].fill(0x11);
            d[end_at + 8..end_at + 16].copy_from_slice(&lsn.to_le_bytes());
            let (items, end) = scan(&d, 1 << 20);
            assert_eq!(items.len(), 7, "{items:?}");
            assert_eq!(end, end_at);
        }
        // Damage in the middle resyncs on the next frame of this use, not of the earlier.
        data[offs[2] + 30] ^= 0x40;
        let (items, _) = scan(&data, 1 << 20);
        assert_eq!(items.len(), 7);
        assert!(
            matches!(items[2], Item::Damaged { tail: false, len, .. } if len == offs[3] - offs[2])
        );
    }

    #[test]
    fn runs_group_consecutive_seqs() {
        assert_eq!(runs(&[4, 5, 6, 9, 10, 3]), vec![(4, 3), (9, 2), (3, 1)]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn merged_ranges_are_the_runs_of_their_sorted_seqs() {
        // The queue's put batches, a take in the middle, a put waiting for its sync.
        let ranges = vec![(120, 30), (0, 100), (100, 5), (150, 1), (110, 10), (200, 7)];
        let mut seqs: Vec<u64> = ranges.iter().flat_map(|&(f, n)| f..f + n).collect();
        seqs.sort_unstable();
        assert_eq!(merge_runs(ranges), runs(&seqs));
        assert_eq!(runs(&seqs), vec![(0, 105), (110, 41), (200, 7)]);
        assert!(merge_runs(Vec::new()).is_empty());
        // A run never passes u32::MAX events: as `runs` does, the rest starts a new one.
        let max = u64::from(u32::MAX);
        assert_eq!(
            merge_runs(vec![(max, 2), (0, max)]),
            vec![(0, u32::MAX), (max, 2)]
        );
        assert_eq!(
            merge_runs(vec![(0, max + 3)]),
            vec![(0, u32::MAX), (max, 3)]
        );
    }
}
