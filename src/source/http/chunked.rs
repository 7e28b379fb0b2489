//! A decoder of HTTP/1.1's chunked transfer coding (RFC 9112 §7.1), sans I/O: it takes wire
//! bytes as they arrive, in any split, and appends the chunks' data to the request body.
//! Chunk extensions and trailer fields are skipped (Jetty ignores them too); sizes, lines
//! and the decoded total are bounded so a client cannot make it hold more than allowed.

use bytes::{Buf, BytesMut};

/// The longest chunk-size line (size, extensions, CRLF) or trailer line taken.
const MAX_LINE: usize = 4096;
/// The most trailer bytes taken.
const MAX_TRAILER: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("bad chunk size line")]
    BadSize,
    #[error("chunk data not followed by CRLF")]
    BadDataEnd,
    #[error("chunk line or trailer too long")]
    LineTooLong,
    #[error("body over the size limit")]
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

#[derive(Debug)]
pub struct ChunkDecoder {
    state: State,
    /// Decoded bytes so far, and the most allowed.
    total: u64,
    limit: u64,
    trailer: usize,
}

impl ChunkDecoder {
    pub fn new(limit: usize) -> Self {
        ChunkDecoder {
            state: State::Size,
            total: 0,
            limit: limit as u64,
            trailer: 0,
        }
    }

    /// Consumes what it can of `wire` into `body`; true once the last chunk and the
    /// trailer are in (the bytes after it stay in `wire`: a pipelined request).
    pub fn decode(&mut self, wire: &mut BytesMut, body: &mut BytesMut) -> Result<bool, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(true),
                State::Size => {
                    let Some(line) = take_line(wire)? else {
                        return Ok(false);
                    };
                    let size = parse_size(&line)?;
                    if self.total + size > self.limit {
                        return Err(ChunkError::TooLarge);
                    }
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if wire.is_empty() {
                        return Ok(false);
                    }
                    let n = (left as usize).min(wire.len());
                    body.extend_from_slice(&wire[..n]);
                    wire.advance(n);
                    self.total += n as u64;
                    self.state = if left as usize == n {
                        State::DataEnd
                    } else {
                        State::Data(left - n as u64)
                    };
                }
                State::DataEnd => {
                    if wire.len() < 2 {
                        if wire.first().is_some_and(|&b| b != b'\r') {
                            return Err(ChunkError::BadDataEnd);
                        }
                        return Ok(false);
                    }
                    if &wire[..2] != b"\r\n" {
                        return Err(ChunkError::BadDataEnd);
                    }
                    wire.advance(2);
                    self.state = State::Size;
                }
                State::Trailer => {
                    let Some(line) = take_line(wire)? else {
                        return Ok(false);
                    };
                    self.trailer += line.len() + 2;
                    if self.trailer > MAX_TRAILER {
                        return Err(ChunkError::LineTooLong);
                    }
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

/// The next CRLF-terminated line (without its CRLF), or `None` until it is complete.
fn take_line(wire: &mut BytesMut) -> Result<Option<BytesMut>, ChunkError> {
    match memchr::memchr(b'\n', wire) {
        Some(nl) if nl > MAX_LINE => Err(ChunkError::LineTooLong),
        Some(nl) => {
            if nl == 0 || wire[nl - 1] != b'\r' {
                return Err(ChunkError::BadSize);
            }
            let mut line = wire.split_to(nl + 1);
            line.truncate(nl - 1);
            Ok(Some(line))
        }
        None if wire.len() > MAX_LINE => Err(ChunkError::LineTooLong),
        None => Ok(None),
    }
}

/// A chunk-size line: hex digits, then optional whitespace and `;extensions`.
fn parse_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(ChunkError::BadSize);
    }
    let rest = &line[digits..];
    let rest_ok = rest
        .iter()
        .position(|&b| b == b';')
        .map_or(rest, |p| &rest[..p])
        .iter()
        .all(|&b| b == b' ' || b == b'\t');
    if !rest_ok {
        return Err(ChunkError::BadSize);
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| ChunkError::BadSize)?;
    u64::from_str_radix(text, 16).map_err(|_| ChunkError::BadSize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(wire: &[u8], step: usize) -> Option<Vec<u8>> {
        let mut dec = ChunkDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut body = BytesMut::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            if dec.decode(&mut buf, &mut body).unwrap() {
                return Some(body.to_vec());
            }
        }
        None
    }

    #[test]
    fn decodes_chunks_with_extensions_and_trailers_in_any_split() {
        let wire =
            b"4;name=v\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n";
        for step in 1..wire.len() {
            let body = decode_in_pieces(wire, step).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        }
    }

    #[test]
    fn leaves_the_next_request_in_the_buffer() {
        let mut dec = ChunkDecoder::new(100);
        let mut wire = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\nPOST / HTTP/1.1"[..]);
        let mut body = BytesMut::new();
        assert_eq!(dec.decode(&mut wire, &mut body), Ok(true));
        assert_eq!(&body[..], b"abc");
        assert_eq!(&wire[..], b"POST / HTTP/1.1");
    }

    #[test]
    fn refuses_bad_sizes_missing_crlf_and_bodies_over_the_limit() {
        let bad = |w: &[u8], limit| {
            let mut dec = ChunkDecoder::new(limit);
            dec.decode(&mut BytesMut::from(w), &mut BytesMut::new())
        };
        assert_eq!(bad(b"zz\r\n", 10), Err(ChunkError::BadSize));
        assert_eq!(bad(b"3\nabc", 10), Err(ChunkError::BadSize));
        assert_eq!(bad(b"3\r\nabcX\r\n", 10), Err(ChunkError::BadDataEnd));
        assert_eq!(bad(b"b\r\n", 10), Err(ChunkError::TooLarge));
        assert_eq!(bad(b"5\r\nabcde\r\n6\r\n", 10), Err(ChunkError::TooLarge));
        assert_eq!(bad(b"ffffffffffffffff\r\n", 10), Err(ChunkError::BadSize));
        assert_eq!(bad(&[b'1'; 5000], 10), Err(ChunkError::LineTooLong));
    }
}
