//! The HTTP/1.1 request reader, sans I/O: it takes the connection's receive buffer after
//! each read and cuts whole requests off its front (head parsed with `httparse`, body by
//! `Content-Length` or chunked), leaving a pipelined next request in place. Limits are
//! Jetty's where Flume's server has one (an 8 KiB head) and flume-fast's
//! `max-request-bytes` for bodies; what breaks them is an `HttpError` whose status the
//! connection answers before it closes.

use super::chunked::{ChunkDecoder, ChunkError};
use bytes::{Bytes, BytesMut};

/// Jetty's default `HttpConfiguration.requestHeaderSize`.
pub const MAX_HEAD: usize = 8192;
const MAX_HEADERS: usize = 100;

/// A request's line and the header fields the source uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// 0: HTTP/1.0, 1: HTTP/1.1.
    pub version: u8,
    pub content_type: Option<String>,
    /// The connection stays open after the answer.
    pub keep_alive: bool,
    expect_continue: bool,
}

#[derive(Debug)]
pub struct Request {
    pub head: Head,
    pub body: Bytes,
}

/// A request the reader cannot take: answered with `status` and the connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct HttpError {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad(reason: &'static str) -> HttpError {
    HttpError {
        status: 400,
        reason,
    }
}

const TOO_LARGE: HttpError = HttpError {
    status: 413,
    reason: "Request body over max-request-bytes",
};

#[derive(Debug)]
enum State {
    Head,
    Sized {
        head: Head,
        len: usize,
    },
    Chunked {
        head: Head,
        dec: ChunkDecoder,
        body: BytesMut,
    },
}

#[derive(Debug)]
pub struct Reader {
    max_body: usize,
    state: State,
    /// A `100 Continue` is owed for the request in progress.
    owe_continue: bool,
}

impl Reader {
    pub fn new(max_body: usize) -> Self {
        Reader {
            max_body,
            state: State::Head,
            owe_continue: false,
        }
    }

    /// Bytes of the request in progress held outside the receive buffer (a chunked body).
    pub fn held(&self) -> usize {
        match &self.state {
            State::Chunked { body, .. } => body.len(),
            _ => 0,
        }
    }

    /// Whether a request's head is in and its body is not yet complete.
    pub fn in_body(&self) -> bool {
        !matches!(self.state, State::Head)
    }

    /// True once per request whose client waits for `100 Continue` before its body
    /// (curl does for bodies over 1 KiB), when the body is not in yet.
    pub fn take_continue(&mut self) -> bool {
        std::mem::take(&mut self.owe_continue)
    }

    /// The next whole request cut off the front of `buf`, or `None` until more is read.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, HttpError> {
        if let State::Head = self.state {
            let Some(head) = self.parse_head(buf)? else {
                return Ok(None);
            };
            self.state = head;
        }
        let done = match &mut self.state {
            State::Head => unreachable!("set above"),
            State::Sized { len, .. } => buf.len() >= *len,
            State::Chunked { dec, body, .. } => dec.decode(buf, body).map_err(|e| match e {
                ChunkError::TooLarge => TOO_LARGE,
                ChunkError::LineTooLong => bad("Chunk line too long"),
                ChunkError::BadSize | ChunkError::BadDataEnd => bad("Bad chunked encoding"),
            })?,
        };
        if !done {
            return Ok(None);
        }
        self.owe_continue = false;
        Ok(Some(
            match std::mem::replace(&mut self.state, State::Head) {
                State::Head => unreachable!("checked above"),
                State::Sized { head, len } => Request {
                    head,
                    body: buf.split_to(len).freeze(),
                },
                State::Chunked { head, body, .. } => Request {
                    head,
                    body: body.freeze(),
                },
            },
        ))
    }

    fn parse_head(&mut self, buf: &mut BytesMut) -> Result<Option<State>, HttpError> {
        // Blank lines before a request are skipped (RFC 9112 §2.2; Jetty does too).
        let blank = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let _ = buf.split_to(blank);
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut fields);
        let len = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(HttpError {
                    status: 431,
                    reason: "Request Header Fields Too Large",
                })
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError {
                    status: 431,
                    reason: "Request Header Fields Too Large",
                })
            }
            Err(httparse::Error::Version) => {
                return Err(HttpError {
                    status: 505,
                    reason: "HTTP Version Not Supported",
                })
            }
            Err(_) => return Err(bad("Bad request line or header")),
        };
        if len > MAX_HEAD {
            return Err(HttpError {
                status: 431,
                reason: "Request Header Fields Too Large",
            });
        }
        let version = req.version.unwrap_or(1);
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut close = false;
        let mut keep = false;
        let mut host = false;
        let mut content_type = None;
        let mut expect_continue = false;
        for f in req.headers.iter() {
            let value = f.value;
            if f.name.eq_ignore_ascii_case("content-length") {
                let text = std::str::from_utf8(value).map_err(|_| bad("Bad Content-Length"))?;
                let n: u64 = text
                    .trim()
                    .parse()
                    .ok()
                    .filter(|_| text.trim().bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(bad("Bad Content-Length"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(bad("Multiple Content-Lengths"));
                }
                content_length = Some(n);
            } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
                if !trim(last).eq_ignore_ascii_case(b"chunked") || version == 0 {
                    return Err(bad("Bad Transfer-Encoding"));
                }
                chunked = true;
            } else if f.name.eq_ignore_ascii_case("connection") {
                for token in value.split(|&b| b == b',') {
                    close |= trim(token).eq_ignore_ascii_case(b"close");
                    keep |= trim(token).eq_ignore_ascii_case(b"keep-alive");
                }
            } else if f.name.eq_ignore_ascii_case("host") {
                host = true;
            } else if f.name.eq_ignore_ascii_case("content-type") {
                content_type = Some(String::from_utf8_lossy(value).into_owned());
            } else if f.name.eq_ignore_ascii_case("expect") {
                if !trim(value).eq_ignore_ascii_case(b"100-continue") {
                    return Err(HttpError {
                        status: 417,
                        reason: "Expectation Failed",
                    });
                }
                expect_continue = version == 1;
            }
        }
        // Jetty 9.4 in its default (RFC 7230) compliance refuses an HTTP/1.1 request
        // without Host.
        if version == 1 && !host {
            return Err(bad("No Host"));
        }
        let head = Head {
            method: req.method.unwrap_or_default().to_string(),
            target: req.path.unwrap_or_default().to_string(),
            version,
            content_type,
            keep_alive: if version == 1 { !close } else { keep && !close },
            expect_continue,
        };
        let _ = buf.split_to(len);
        let state = if chunked {
            State::Chunked {
                head,
                dec: ChunkDecoder::new(self.max_body),
                body: BytesMut::new(),
            }
        } else {
            let n = content_length.unwrap_or(0);
            if n > self.max_body as u64 {
                return Err(TOO_LARGE);
            }
            State::Sized {
                head,
                len: n as usize,
            }
        };
        self.owe_continue = match &state {
            State::Sized { head, len } => head.expect_continue && buf.len() < *len,
            State::Chunked { head, .. } => head.expect_continue && buf.is_empty(),
            State::Head => false,
        };
        Ok(Some(state))
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(wire: &[u8], step: usize) -> Result<Vec<Request>, HttpError> {
        let mut r = Reader::new(1000);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(req) = r.next(&mut buf)? {
                out.push(req);
            }
        }
        Ok(out)
    }

    #[test]
    fn pipelined_requests_in_any_split_come_out_whole_and_in_order() {
        let wire = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc\
POST /b?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n\
GET / HTTP/1.0\r\n\r\n";
        for step in 1..=wire.len() {
            let reqs = all(wire, step).unwrap();
            let got: Vec<_> = reqs
                .iter()
                .map(|r| (r.head.target.as_str(), &r.body[..], r.head.keep_alive))
                .collect();
            assert_eq!(
                got,
                [
                    ("/a", &b"abc"[..], true),
                    ("/b?x=1", b"de", true),
                    ("/", b"", false)
                ]
            );
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        let one = |wire: &[u8]| all(wire, wire.len()).unwrap().remove(0).head.keep_alive;
        assert!(!one(
            b"POST / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(one(b"POST / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!one(b"POST / HTTP/1.0\r\n\r\n"));
    }

    #[test]
    fn continue_is_owed_once_while_the_body_is_missing() {
        let mut r = Reader::new(100);
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"[..],
        );
        assert!(r.next(&mut buf).unwrap().is_none());
        assert!(r.take_continue());
        assert!(!r.take_continue());
        buf.extend_from_slice(b"ok");
        assert_eq!(&r.next(&mut buf).unwrap().unwrap().body[..], b"ok");
    }

    #[test]
    fn limits_and_malformed_heads_give_their_status() {
        let status = |wire: &[u8]| all(wire, wire.len()).unwrap_err().status;
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n"),
            413
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n"),
            400
        );
        assert_eq!(status(b"garbage\r\n\r\n"), 400);
        let long = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert_eq!(status(long.as_bytes()), 431);
    }
}
