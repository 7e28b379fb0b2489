//! Avro binary values read straight from one contiguous byte slice: zig-zag varints,
//! length-prefixed bytes, and the walk over a `map<string>` ([`MapPairs`]).
//!
//! It depends on nothing else in the crate. `event` uses it to read headers kept as
//! received (their Avro map bytes); `avro_rpc::binary` uses it under its `Reader`, which
//! reads across a frame's buffers and decodes into events. Keeping it here lets that
//! dependency go one way: `avro_rpc` → `event` → `avro_slice`.

use std::ops::Range;

/// Zig-zag decoding: 0, 1, 2, 3, ... → 0, -1, 1, -2, ...
pub fn zigzag_decode(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The zig-zag varint at the start of `s` and its length in bytes; `None` when `s` ends
/// inside it or it runs past 10 bytes.
pub fn varint(s: &[u8]) -> Option<(i64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in s.iter().take(10).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((zigzag_decode(v), i + 1));
        }
    }
    None
}

/// Walks an Avro `map<string>` (or `map<bytes>`) in `buf` from its first block count at
/// `at`: the byte ranges of each name and value. Stops at the map's closing 0 (then `end`
/// says where the map ends) or at the first thing that is not there or malformed (then
/// `end` is `None`).
pub struct MapPairs<'a> {
    buf: &'a [u8],
    at: usize,
    /// Pairs left in the current block.
    left: u64,
    end: Option<usize>,
}

pub type Pair = (Range<usize>, Range<usize>);

impl<'a> MapPairs<'a> {
    pub fn new(buf: &'a [u8], at: usize) -> Self {
        MapPairs {
            buf,
            at,
            left: 0,
            end: None,
        }
    }

    /// The bytes walked over: names and values are ranges of these.
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// Just past the map's closing 0, once the walk has reached it.
    pub fn end(&self) -> Option<usize> {
        self.end
    }

    fn long(&mut self) -> Option<i64> {
        long_at(self.buf, &mut self.at)
    }

    fn bytes(&mut self) -> Option<Range<usize>> {
        bytes_at(self.buf, &mut self.at)
    }
}

/// The varint at `*at` in `buf`, moving `at` past it.
fn long_at(buf: &[u8], at: &mut usize) -> Option<i64> {
    let (v, n) = varint(buf.get(*at..)?)?;
    *at += n;
    Some(v)
}

/// The range of the length-prefixed bytes at `*at` in `buf`, if all of it is there, moving
/// `at` past them.
pub(crate) fn bytes_at(buf: &[u8], at: &mut usize) -> Option<Range<usize>> {
    let len = usize::try_from(long_at(buf, at)?).ok()?;
    let end = at.checked_add(len).filter(|&e| e <= buf.len())?;
    let r = *at..end;
    *at = end;
    Some(r)
}

impl Iterator for MapPairs<'_> {
    type Item = Pair;

    fn next(&mut self) -> Option<Pair> {
        if self.left == 0 {
            let n = self.long()?;
            if n < 0 {
                // A block given with its size in bytes.
                self.long()?;
            }
            self.left = n.unsigned_abs();
            if self.left == 0 {
                self.end = Some(self.at);
                // Nothing more to read: a further call finds no count and ends too.
                self.at = self.buf.len();
                return None;
            }
        }
        self.left -= 1;
        let k = self.bytes()?;
        let v = self.bytes()?;
        Some((k, v))
    }
}
