//! The HTTP/1.1 client of one shard's http sink, on the shard's own io_uring loop: one
//! keep-alive connection, one POST at a time, the answer's status handed back once its
//! head is read. The body of an answer is read and thrown away (by Content-Length,
//! chunks, or to the close) so the connection can carry the next request.

use super::endpoint::Endpoint;
use super::response::{self, Chunked, Framing, Head, Malformed};
use crate::avro_rpc::conn;
use std::io;
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

/// A body bigger than this is not read to keep the connection: it is closed instead.
const MAX_DISCARD: u64 = 1 << 20;
const READ_SIZE: usize = 16 * 1024;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: io::Error },
    #[error("no answer from {target} within requestTimeout ({timeout:?})")]
    Timeout { target: String, timeout: Duration },
    #[error("connection to {target} failed: {source}")]
    Io { target: String, source: io::Error },
    #[error("{target} closed the connection without answering")]
    Closed { target: String },
    #[error("{target}: {source}")]
    Malformed { target: String, source: Malformed },
}

/// Why one exchange on a connection failed, before the error gets its target.
enum Failure {
    Io(io::Error),
    Closed,
    Malformed(Malformed),
}

impl Failure {
    /// A reused connection that fails like this was most likely closed by the server while
    /// idle: the request is sent again on a new one, as `HttpURLConnection` does for POST.
    fn stale(&self) -> bool {
        match self {
            Failure::Closed => true,
            Failure::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ),
            Failure::Malformed(_) => false,
        }
    }
}

struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet used.
    buf: Vec<u8>,
    /// Whether a request was answered on it before (so it may have gone stale).
    reused: bool,
}

pub struct Client {
    endpoint: Endpoint,
    connect_timeout: Duration,
    request_timeout: Duration,
    head: Vec<u8>,
    conn: Option<Connection>,
    /// The request being sent, kept for its allocation.
    out: Vec<u8>,
    /// Connections opened, for the tests of reuse (log lines) and for messages.
    pub opened: u64,
}

impl Client {
    pub fn new(
        endpoint: Endpoint,
        head: Vec<u8>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        Client {
            endpoint,
            connect_timeout,
            request_timeout,
            head,
            conn: None,
            out: Vec::new(),
            opened: 0,
        }
    }

    fn target(&self) -> String {
        self.endpoint.authority()
    }

    /// Drops the connection (agent stop).
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// POSTs `body` and returns the final status. Connecting takes at most
    /// `connectTimeout`; sending and reading the answer's head at most `requestTimeout`.
    pub async fn post(&mut self, body: &[u8]) -> Result<u16, HttpError> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out.extend_from_slice(&self.head);
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        loop {
            let mut conn = match self.conn.take() {
                Some(c) => c,
                None => self.connect().await?,
            };
            let deadline = Instant::now() + self.request_timeout;
            let (result, back) =
                match tokio::time::timeout_at(deadline, exchange(&mut conn, out)).await {
                    Ok(r) => r,
                    // The cancelled write or read keeps its buffer; the connection ends.
                    Err(_) => {
                        return Err(HttpError::Timeout {
                            target: self.target(),
                            timeout: self.request_timeout,
                        })
                    }
                };
            out = back;
            let head = match result {
                Ok(head) => head,
                Err(f) if conn.reused && f.stale() => {
                    tracing::debug!(
                        "{} closed the kept-alive connection; sending again on a new one",
                        self.target()
                    );
                    continue;
                }
                Err(f) => {
                    self.out = out;
                    return Err(self.failed(f));
                }
            };
            self.out = out;
            conn.buf.drain(..head.len);
            // The status stands whatever becomes of the body, which only decides whether
            // the connection is kept for the next request.
            if head.keep_alive {
                let skipped =
                    tokio::time::timeout_at(deadline, skip_body(&mut conn, head.framing)).await;
                if matches!(skipped, Ok(Ok(()))) {
                    conn.reused = true;
                    self.conn = Some(conn);
                }
            }
            return Ok(head.status);
        }
    }

    async fn connect(&mut self) -> Result<Connection, HttpError> {
        let (stream, _) = conn::connect(
            &self.endpoint.host,
            self.endpoint.port,
            self.connect_timeout,
        )
        .await
        .map_err(|source| HttpError::Connect {
            target: self.target(),
            source,
        })?;
        self.opened += 1;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(READ_SIZE),
            reused: false,
        })
    }

    fn failed(&self, f: Failure) -> HttpError {
        let target = self.target();
        match f {
            Failure::Io(source) => HttpError::Io { target, source },
            Failure::Closed => HttpError::Closed { target },
            Failure::Malformed(source) => HttpError::Malformed { target, source },
        }
    }
}

/// Sends the request and reads the answer's head, skipping `100 Continue` as Java does;
/// the request's buffer comes back in every case.
async fn exchange(conn: &mut Connection, out: Vec<u8>) -> (Result<Head, Failure>, Vec<u8>) {
    let (r, out) = write_all(&conn.stream, out).await;
    if let Err(e) = r {
        return (Err(Failure::Io(e)), out);
    }
    loop {
        match read_head(conn).await {
            Ok(h) if h.status == 100 => {
                conn.buf.drain(..h.len);
            }
            r => return (r, out),
        }
    }
}

/// Writes all of `buf`: what the socket takes at once, the rest through io_uring.
async fn write_all(stream: &TcpStream, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
    let sent = match crate::runtime::direct_io::try_send(stream, &buf) {
        Ok(n) => n,
        Err(e) => return (Err(e), buf),
    };
    let len = buf.len();
    if sent == len {
        return (Ok(()), buf);
    }
    let (r, rest) = stream.write_all(buf.slice(sent..len)).await;
    (r, rest.into_inner())
}

/// Reads more bytes into the connection's buffer; `Ok(0)` at the server's close.
async fn fill(conn: &mut Connection) -> io::Result<usize> {
    let mut buf = std::mem::take(&mut conn.buf);
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    let start = buf.len();
    let (r, slice) = conn.stream.read(buf.slice(start..)).await;
    conn.buf = slice.into_inner();
    r
}

async fn read_head(conn: &mut Connection) -> Result<Head, Failure> {
    loop {
        if !conn.buf.is_empty() {
            if let Some(h) = response::parse_head(&conn.buf).map_err(Failure::Malformed)? {
                return Ok(h);
            }
        }
        match fill(conn).await {
            Ok(0) if conn.buf.is_empty() => return Err(Failure::Closed),
            Ok(0) => {
                return Err(Failure::Malformed(Malformed(
                    "the connection closed inside the response head".into(),
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

/// Reads and drops the body; `Ok` when the connection is ready for the next request.
async fn skip_body(conn: &mut Connection, framing: Framing) -> Result<(), ()> {
    match framing {
        Framing::Empty => Ok(()),
        Framing::Close => Err(()),
        Framing::Length(n) if n > MAX_DISCARD => Err(()),
        Framing::Length(mut left) => loop {
            let n = (conn.buf.len() as u64).min(left) as usize;
            conn.buf.drain(..n);
            left -= n as u64;
            if left == 0 {
                return Ok(());
            }
            if fill(conn).await.map_err(drop)? == 0 {
                return Err(());
            }
        },
        Framing::Chunked => {
            let mut chunks = Chunked::default();
            let mut total = 0u64;
            loop {
                let n = chunks.feed(&conn.buf).map_err(drop)?;
                conn.buf.drain(..n);
                total += n as u64;
                if chunks.is_done() {
                    return Ok(());
                }
                if total > MAX_DISCARD || fill(conn).await.map_err(drop)? == 0 {
                    return Err(());
                }
            }
        }
    }
}
