//! Reading an HTTP/1.1 response from bytes the server sent: the head (status line and
//! headers, parsed by `httparse`), then how its body ends (Content-Length, chunked, or the
//! connection's close) and a decoder that skips a chunked body. Pure functions over
//! buffers, so the fuzz target drives exactly what the sink runs.

use thiserror::Error;

/// A head larger than this is not an answer to a POST of one event.
pub const MAX_HEAD: usize = 64 * 1024;
/// Headers a head may carry (httparse needs a fixed array).
const MAX_HEADERS: usize = 100;

/// What the server sent does not parse as an HTTP/1.x response.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed response: {0}")]
pub struct Malformed(pub String);

/// How the body after a head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunks, up to the zero-sized one and its trailers.
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes the head took in the buffer (the body starts there).
    pub len: usize,
    pub framing: Framing,
    /// Whether the connection may carry the next request (HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
}

/// Parses a head from the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Malformed> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(Malformed(format!("head longer than {MAX_HEAD} bytes")))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Malformed(e.to_string())),
    };
    let status = resp.code.expect("a complete head has a code");
    // Flume reads a status below 100 as a malformed answer: rolled back, backed off.
    if status < 100 {
        return Err(Malformed(format!(
            "status {status:03} is not an HTTP status"
        )));
    }
    let version = resp.version.expect("a complete head has a version");
    let mut keep_alive = version == 1;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| Malformed("Content-Length is not a number".into()))?;
            if length.is_some_and(|l| l != v) {
                return Err(Malformed("two different Content-Length headers".into()));
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked counts only as the last coding; anything else is read to the close.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                keep_alive = false;
                length = None;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::Close
    };
    Ok(Some(Head {
        status,
        len,
        framing,
        keep_alive,
    }))
}

/// Skips a chunked body fed in pieces. Each call consumes what it can of `buf` and says
/// how much; the caller keeps the rest and feeds it again with more bytes.
#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data: this many bytes left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    Done,
}

/// A chunk-size or trailer line longer than this is not one.
const MAX_LINE: usize = 8 * 1024;

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes from `buf`; returns the bytes used. Fewer than `buf.len()` with
    /// `!is_done()` means a line is incomplete: call again with more bytes after them.
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize, Malformed> {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            match self.state {
                State::Done => return Ok(at),
                State::Data(left) => {
                    let n = (rest.len() as u64).min(left) as usize;
                    at += n;
                    if n as u64 == left {
                        self.state = State::DataEnd;
                    } else {
                        self.state = State::Data(left - n as u64);
                        return Ok(at);
                    }
                }
                State::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(at);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(Malformed("chunk data not followed by CRLF".into()));
                    }
                    at += 2;
                    self.state = State::Size;
                }
                State::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        at += n;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if rest.len() > MAX_LINE => {
                        return Err(Malformed("chunk-size line too long".into()))
                    }
                    Ok(httparse::Status::Partial) => return Ok(at),
                    Err(_) => return Err(Malformed("invalid chunk size".into())),
                },
                State::Trailers => match memchr::memmem::find(rest, b"\r\n") {
                    Some(0) => {
                        at += 2;
                        self.state = State::Done;
                    }
                    Some(i) if i <= MAX_LINE => at += i + 2,
                    _ if rest.len() > MAX_LINE => {
                        return Err(Malformed("trailer line too long".into()))
                    }
                    _ => return Ok(at),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Head {
        parse_head(s.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn heads_say_how_their_bodies_end() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, Framing::Length(5), true)
        );
        assert_eq!(h.len, 38);
        let h = head("HTTP/1.1 503 x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
        let h = head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n");
        assert!(h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        let h = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nA: b\r\n"), Ok(None));
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 099 Low\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn a_chunked_body_is_skipped_fed_a_byte_at_a_time() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\nNEXT";
        let mut c = Chunked::default();
        let mut held = Vec::new();
        let mut used = 0;
        for &b in body.iter() {
            if c.is_done() {
                break;
            }
            held.push(b);
            let n = c.feed(&held).unwrap();
            used += n;
            held.drain(..n);
        }
        assert!(c.is_done());
        assert_eq!(&body[used..], b"NEXT");
        let mut c = Chunked::default();
        assert_eq!(c.feed(body).unwrap(), body.len() - 4);
        assert!(Chunked::default().feed(b"5\r\nhelloXX").is_err());
        assert!(Chunked::default().feed(b"zz\r\n").is_err());
    }
}
