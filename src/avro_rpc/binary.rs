//! Avro's binary encoding, reduced to what Flume's protocol and the IPC handshake use:
//! zig-zag varints, length-prefixed bytes and strings, fixed, unions and map/array blocks.
//!
//! `Reader` reads across the buffers of one Netty frame. Java's `ByteBufferOutputStream`
//! cuts a message into 8 KiB buffers regardless of value boundaries, so a value can straddle
//! two buffers: such a value is copied into a fresh `Bytes` (at most one per buffer
//! boundary); every other `bytes`/`string` value is a zero-copy slice of its buffer.

use crate::avro_slice::{bytes_at, varint, zigzag_decode, MapPairs};
use crate::event::{Body, Event, Headers};
use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use std::ops::Range;
use std::rc::Rc;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message ends early (needed {needed} more bytes)")]
    Truncated { needed: usize },
    #[error("malformed varint (more than 10 bytes)")]
    BadVarint,
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("length {len} exceeds the {remaining} bytes left in the frame")]
    LengthTooLarge { len: i64, remaining: usize },
    #[error("{what}: index {index} is out of range")]
    BadIndex { what: &'static str, index: i64 },
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// Invalid UTF-8 is replaced (U+FFFD), as Java's decoder does; only then is it copied.
fn to_byte_string(b: Bytes) -> ByteString {
    if std::str::from_utf8(&b).is_ok() {
        // SAFETY: just checked to be UTF-8.
        return unsafe { ByteString::from_bytes_unchecked(b) };
    }
    ByteString::from(String::from_utf8_lossy(&b).into_owned())
}

/// Header names set by Flume's interceptors and sources, and the usual routing keys.
fn well_known_key(name: &[u8]) -> Option<&'static str> {
    const KEYS: &[&str] = &[
        "timestamp",
        "host",
        "topic",
        "key",
        "type",
        "file",
        "basename",
        "offset",
        "Facility",
        "Severity",
        "flume.client.log4j.logger.name",
    ];
    KEYS.iter().copied().find(|k| k.as_bytes() == name)
}

/// A cursor over the buffers of one frame.
pub struct Reader<'a> {
    segs: &'a [Bytes],
    seg: usize,
    pos: usize,
    remaining: usize,
    /// The buffer `read_body` last cut from, by index, shared by the bodies cut from it.
    shared: Option<(usize, Rc<Bytes>)>,
}

impl<'a> Reader<'a> {
    pub fn new(segs: &'a [Bytes]) -> Self {
        let mut r = Reader {
            segs,
            seg: 0,
            pos: 0,
            remaining: segs.iter().map(Bytes::len).sum(),
            shared: None,
        };
        r.skip_empty();
        r
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Asks the CPU to start loading the cache line `dist` bytes ahead, if that is still
    /// in this buffer. A hint only: nothing is read and nothing can fail.
    pub fn prefetch(&self, dist: usize) {
        crate::hint::prefetch(self.current(), dist);
    }

    fn skip_empty(&mut self) {
        while self.seg < self.segs.len() && self.pos == self.segs[self.seg].len() {
            self.seg += 1;
            self.pos = 0;
        }
    }

    fn current(&self) -> &'a [u8] {
        match self.segs.get(self.seg) {
            Some(s) => &s[self.pos..],
            None => &[],
        }
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.remaining -= n;
        self.skip_empty();
    }

    pub fn read_byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .current()
            .first()
            .ok_or(DecodeError::Truncated { needed: 1 })?;
        self.advance(1);
        Ok(b)
    }

    pub fn read_long(&mut self) -> Result<i64, DecodeError> {
        let cur = self.current();
        // Fast path: the whole varint is in this buffer (almost always).
        let mut v: u64 = 0;
        for (i, &b) in cur.iter().take(10).enumerate() {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.advance(i + 1);
                return Ok(zigzag_decode(v));
            }
        }
        if cur.len() >= 10 {
            return Err(DecodeError::BadVarint);
        }
        // The varint straddles a buffer boundary: take it byte by byte.
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.read_byte()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(zigzag_decode(v));
            }
        }
        Err(DecodeError::BadVarint)
    }

    /// A length or count: non-negative, and no larger than what is left to read (so a
    /// hostile length can never make us allocate more than the frame holds).
    pub fn read_len(&mut self) -> Result<usize, DecodeError> {
        let len = self.read_long()?;
        if len < 0 {
            return Err(DecodeError::NegativeLength(len));
        }
        if len as u64 > self.remaining as u64 {
            return Err(DecodeError::LengthTooLarge {
                len,
                remaining: self.remaining,
            });
        }
        Ok(len as usize)
    }

    /// `n` raw bytes: a slice of the frame when they lie in one buffer, else a copy.
    pub fn read_raw(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if n > self.remaining {
            return Err(DecodeError::Truncated {
                needed: n - self.remaining,
            });
        }
        if n == 0 {
            return Ok(Bytes::new());
        }
        let seg = &self.segs[self.seg];
        if seg.len() - self.pos >= n {
            let out = seg.slice(self.pos..self.pos + n);
            self.advance(n);
            return Ok(out);
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let cur = self.current();
            let take = cur.len().min(n - out.len());
            out.extend_from_slice(&cur[..take]);
            self.advance(take);
        }
        Ok(out.freeze())
    }

    pub fn read_bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.read_len()?;
        self.read_raw(n)
    }

    /// An event body (Avro `bytes`): a slice of the frame's buffer that the bodies cut from
    /// it share with one plain count each (see `event::Body`), or a copy when it straddles
    /// two buffers.
    pub fn read_body(&mut self) -> Result<Body, DecodeError> {
        let n = self.read_len()?;
        if n == 0 {
            return Ok(Body::new());
        }
        let seg = &self.segs[self.seg];
        if seg.len() - self.pos < n {
            return self.read_raw(n).map(Body::from);
        }
        let buf = self.shared_seg();
        let body = Body::shared(buf, self.pos..self.pos + n);
        self.advance(n);
        Ok(body)
    }

    /// Decodes up to `n` events that lie whole in the current buffer, with no headers or
    /// with a header map kept as received (see `received_headers`: one block of at most
    /// `RECEIVED_HEADERS` pairs, UTF-8, no name twice), onto `events`, and says how many.
    /// That is the usual shape of a batch. Stops before the first event that is not like
    /// that, or is malformed, and leaves it to the general path (`codec::decode_batch`),
    /// which also reports what is wrong.
    ///
    /// Why: the general path goes through `read_long`, `read_body` and `advance` three
    /// times per event, each checking the buffer list; here a 100-byte event is a byte
    /// compare, a varint and a push (decode at 1 × 1000 × 100 B was 40% of the agent's CPU).
    pub fn read_events_in_place(&mut self, n: usize, events: &mut Vec<Event>) -> usize {
        let segs = self.segs;
        let Some(seg) = segs.get(self.seg) else {
            return 0;
        };
        let bytes: &[u8] = seg;
        let mut at = self.pos;
        let mut done = 0;
        let mut shared: Option<Rc<Bytes>> = None;
        while done < n {
            let Some(&count) = bytes.get(at) else {
                break;
            };
            // The header map, then the body's length.
            let map_end = if count == 0 {
                at + 1
            } else {
                match received_map(bytes, at) {
                    Some(end) => end,
                    None => break,
                }
            };
            let Some((len, width)) = varint(&bytes[map_end..]) else {
                break;
            };
            let start = map_end + width;
            let Some(end) = usize::try_from(len).ok().and_then(|l| start.checked_add(l)) else {
                break;
            };
            if end > bytes.len() {
                break;
            }
            let mut buf = || shared.get_or_insert_with(|| self.shared_seg()).clone();
            if count != 0 {
                let buf = buf();
                let Some(headers) = Headers::received(buf.clone(), at..map_end) else {
                    break;
                };
                let body = move || {
                    if end == start {
                        Body::new()
                    } else {
                        Body::shared(buf, start..end)
                    }
                };
                Event::push_with(events, || headers, body);
            } else if end == start {
                Event::push_bodied(events, Body::new());
            } else {
                // Made in the vector's slot, not first on the stack (see `push_bodied_with`).
                let buf = buf();
                Event::push_bodied_with(events, || Body::shared(buf, start..end));
            }
            // See `codec::decode_batch`: the event four ahead probably begins there.
            crate::hint::prefetch(bytes, end + 4 * (end - at));
            at = end;
            done += 1;
        }
        self.advance(at - self.pos);
        done
    }

    /// The current buffer, shared with the bodies and headers already cut from it.
    fn shared_seg(&mut self) -> Rc<Bytes> {
        match &self.shared {
            Some((i, buf)) if *i == self.seg => buf.clone(),
            _ => {
                let buf = Rc::new(self.segs[self.seg].clone());
                self.shared = Some((self.seg, buf.clone()));
                buf
            }
        }
    }

    /// Where the reader is: the first byte of the value read next.
    pub fn mark(&self) -> Mark {
        Mark {
            seg: self.seg,
            pos: self.pos,
        }
    }

    /// The header map whose first block count, `first`, was read from `mark`, kept as
    /// received (see `event::Headers`): when the whole map lies in one buffer, has at most
    /// `RECEIVED_HEADERS` pairs, is UTF-8 throughout and names no header twice. Otherwise
    /// `None`, with nothing read: the caller decodes the map pair by pair, which also
    /// reports whatever is wrong with it.
    pub fn received_headers(&mut self, mark: Mark, first: usize) -> Option<Headers> {
        if mark.seg != self.seg || first > RECEIVED_HEADERS {
            return None;
        }
        let buf: &[u8] = self.segs.get(self.seg)?;
        let mut names = [(0usize, 0usize); RECEIVED_HEADERS];
        let mut values = [(0usize, 0usize); RECEIVED_HEADERS];
        let mut pairs = MapPairs::new(buf, mark.pos);
        let mut seen = 0;
        for (k, v) in pairs.by_ref() {
            if seen == RECEIVED_HEADERS {
                return None;
            }
            names[seen] = (k.start, k.end);
            values[seen] = (v.start, v.end);
            seen += 1;
        }
        let end = pairs.end()?;
        if !keepable(buf, mark.pos..end, &names[..seen], &values[..seen]) {
            return None;
        }
        let h = Headers::received(self.shared_seg(), mark.pos..end)?;
        self.advance(end - self.pos);
        Some(h)
    }

    /// An Avro string. Invalid UTF-8 is replaced (U+FFFD), as Java's decoder does; only
    /// then is it copied.
    pub fn read_string(&mut self) -> Result<ByteString, DecodeError> {
        Ok(to_byte_string(self.read_bytes()?))
    }

    /// A header name: the names Flume's own components set come back as static strings,
    /// which saves a reference count on the frame (an atomic add and sub) per header.
    pub fn read_key(&mut self) -> Result<ByteString, DecodeError> {
        let n = self.read_len()?;
        if let Some(seg) = self.segs.get(self.seg) {
            if let Some(k) = seg.get(self.pos..self.pos + n).and_then(well_known_key) {
                self.advance(n);
                return Ok(ByteString::from_static(k));
            }
        }
        let b = self.read_raw(n)?;
        Ok(to_byte_string(b))
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        match self.read_byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::BadIndex {
                what: "boolean",
                index: i64::from(b),
            }),
        }
    }

    pub fn read_fixed16(&mut self) -> Result<[u8; 16], DecodeError> {
        let b = self.read_raw(16)?;
        let mut out = [0u8; 16];
        out.copy_from_slice(&b);
        Ok(out)
    }

    /// A union branch or enum symbol index, checked against the number of branches.
    pub fn read_index(&mut self, what: &'static str, count: i64) -> Result<i64, DecodeError> {
        let i = self.read_long()?;
        if !(0..count).contains(&i) {
            return Err(DecodeError::BadIndex { what, index: i });
        }
        Ok(i)
    }

    /// The item count of the next map/array block (0 ends the map/array). A negative count
    /// is followed by the block's byte size, which we do not need.
    pub fn read_block_count(&mut self) -> Result<usize, DecodeError> {
        let n = self.read_long()?;
        let n = if n < 0 {
            self.read_long()?;
            n.checked_neg().ok_or(DecodeError::NegativeLength(n))?
        } else {
            n
        };
        // Every item takes at least one byte, so a count above what is left is a lie.
        if n as u64 > self.remaining as u64 {
            return Err(DecodeError::LengthTooLarge {
                len: n,
                remaining: self.remaining,
            });
        }
        Ok(n as usize)
    }

    /// Reads a `map<bytes>` (call and handshake metadata), which Flume never sets.
    pub fn skip_bytes_map(&mut self) -> Result<(), DecodeError> {
        loop {
            let n = self.read_block_count()?;
            if n == 0 {
                return Ok(());
            }
            for _ in 0..n {
                let k = self.read_len()?;
                self.read_raw(k)?;
                let v = self.read_len()?;
                self.read_raw(v)?;
            }
        }
    }

    pub fn expect_end(&self) -> Result<(), DecodeError> {
        match self.remaining {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

/// Header maps with more pairs than this are decoded into owned headers: a longer map
/// would make the check for repeated names (pair against pair) cost more than it saves.
pub const RECEIVED_HEADERS: usize = 8;

/// A position in a frame's buffers (`Reader::mark`).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    seg: usize,
    pos: usize,
}

/// Where the header map at `at` in `buf` ends (past its closing 0), when it can be kept
/// as received and is in the form encoders write: one block of at most
/// `RECEIVED_HEADERS` pairs with no byte size, UTF-8 throughout, no name twice. `None`
/// for anything else, which `Reader::received_headers` and the general path then judge.
fn received_map(buf: &[u8], at: usize) -> Option<usize> {
    let count = *buf.get(at)?;
    // A count of 1..=RECEIVED_HEADERS is one zig-zag byte: 2, 4, ...
    if count & 1 != 0 || usize::from(count) > 2 * RECEIVED_HEADERS {
        return None;
    }
    let pairs = usize::from(count / 2);
    let mut p = at + 1;
    let mut names = [(0usize, 0usize); RECEIVED_HEADERS];
    let mut values = [(0usize, 0usize); RECEIVED_HEADERS];
    let mut string = || bytes_at(buf, &mut p).map(|r| (r.start, r.end));
    for i in 0..pairs {
        names[i] = string()?;
        values[i] = string()?;
    }
    if *buf.get(p)? != 0 {
        return None;
    }
    let end = p + 1;
    keepable(buf, at..end, &names[..pairs], &values[..pairs]).then_some(end)
}

/// Whether the header map `buf[map]`, with these names and values (ranges of `buf`), can
/// stay as received: no name twice (Java's `HashMap` keeps the last value, which the bytes
/// would not say), and UTF-8 throughout. Headers are nearly always ASCII, lengths included:
/// then one pass over the map says so, instead of a check per string.
fn keepable(
    buf: &[u8],
    map: Range<usize>,
    names: &[(usize, usize)],
    values: &[(usize, usize)],
) -> bool {
    let text = |&(s, e): &(usize, usize)| &buf[s..e];
    let twice = names
        .iter()
        .enumerate()
        .any(|(i, n)| names[..i].iter().any(|m| text(m) == text(n)));
    !twice
        && (buf[map].is_ascii()
            || names
                .iter()
                .chain(values)
                .all(|r| std::str::from_utf8(text(r)).is_ok()))
}

pub fn put_long(out: &mut impl BufMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut buf = [0u8; 10];
    let mut i = 0;
    while z >= 0x80 {
        buf[i] = (z as u8) | 0x80;
        z >>= 7;
        i += 1;
    }
    buf[i] = z as u8;
    out.put_slice(&buf[..=i]);
}

pub fn put_bytes(out: &mut impl BufMut, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.put_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_including_across_buffers() {
        for v in [0i64, -1, 1, 63, -64, 64, 300, -300, i64::MAX, i64::MIN] {
            let mut out = BytesMut::new();
            put_long(&mut out, v);
            let whole = out.freeze();
            assert_eq!(Reader::new(std::slice::from_ref(&whole)).read_long(), Ok(v));
            for cut in 0..=whole.len() {
                let segs = [whole.slice(..cut), whole.slice(cut..)];
                let mut r = Reader::new(&segs);
                assert_eq!(r.read_long(), Ok(v), "cut at {cut}");
                assert_eq!(r.remaining(), 0);
            }
        }
    }

    #[test]
    fn values_in_one_buffer_are_slices_and_straddling_values_are_copies() {
        let mut out = BytesMut::new();
        put_bytes(&mut out, b"hello");
        put_bytes(&mut out, b"world");
        let whole = out.freeze();
        let segs = [whole.slice(..9), whole.slice(9..)];
        let mut r = Reader::new(&segs);
        let a = r.read_bytes().unwrap();
        assert_eq!(&a[..], b"hello");
        assert_eq!(a.as_ptr(), segs[0][1..].as_ptr());
        assert_eq!(&r.read_bytes().unwrap()[..], b"world");
        r.expect_end().unwrap();
    }

    #[test]
    fn bodies_of_one_buffer_share_it_and_a_straddling_body_is_a_copy() {
        let mut out = BytesMut::new();
        for b in [&b"one"[..], b"two", b"three", b"four"] {
            put_bytes(&mut out, b);
        }
        let whole = out.freeze();
        // Buffers cut inside "three", as Java cuts a message into 8 KiB buffers.
        let segs = [whole.slice(..11), whole.slice(11..)];
        let mut r = Reader::new(&segs);
        let bodies: Vec<Body> = (0..4).map(|_| r.read_body().unwrap()).collect();
        r.expect_end().unwrap();
        let texts: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
        assert_eq!(texts, [&b"one"[..], b"two", b"three", b"four"]);
        assert_eq!(bodies[0].as_ptr(), segs[0][1..].as_ptr());
        assert!(bodies[0].shares_buffer_with(&bodies[1]));
        assert!(!bodies[2].shares_buffer_with(&bodies[0]));
        assert!(!bodies[2].shares_buffer_with(&bodies[3]));
        assert_eq!(bodies[3].as_ptr(), segs[1][segs[1].len() - 4..].as_ptr());
        assert!(!bodies[3].shares_buffer_with(&bodies[0]));
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        let mut out = BytesMut::new();
        put_long(&mut out, 1 << 40);
        let segs = [out.freeze()];
        assert!(matches!(
            Reader::new(&segs).read_bytes(),
            Err(DecodeError::LengthTooLarge { .. })
        ));
        let mut out = BytesMut::new();
        put_long(&mut out, -5);
        let segs = [out.freeze()];
        assert_eq!(
            Reader::new(&segs).read_bytes(),
            Err(DecodeError::NegativeLength(-5))
        );
        let segs = [Bytes::from_static(&[0xff; 11])];
        assert_eq!(Reader::new(&segs).read_long(), Err(DecodeError::BadVarint));
    }
}
