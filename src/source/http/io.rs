//! A connection's byte stream, plain or TLS: rustls's sans-IO server connection fed from
//! the socket's own io_uring reads, so the HTTP reader above sees plaintext either way.

use bytes::{Buf, BytesMut};
use std::io::{self, BufRead, Write};
use std::sync::Arc;
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

const READ_SIZE: usize = 16 * 1024;

pub struct Io {
    stream: TcpStream,
    tls: Option<Box<rustls::ServerConnection>>,
    /// TLS records received and not yet given to rustls.
    records: BytesMut,
}

impl Io {
    pub fn new(
        stream: TcpStream,
        tls: Option<&Arc<rustls::ServerConfig>>,
    ) -> Result<Io, rustls::Error> {
        let tls = match tls {
            Some(cfg) => Some(Box::new(rustls::ServerConnection::new(cfg.clone())?)),
            None => None,
        };
        Ok(Io {
            stream,
            tls,
            records: BytesMut::new(),
        })
    }

    /// Appends what the peer sent next to `buf`; 0 at the end of the stream.
    pub async fn read(&mut self, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        if self.tls.is_none() {
            if buf.capacity() - buf.len() < READ_SIZE / 4 {
                buf.reserve(READ_SIZE);
            }
            let start = buf.len();
            let (r, slice) = self.stream.read(buf.slice(start..)).await;
            return (r, slice.into_inner());
        }
        let r = self.read_tls(&mut buf).await;
        (r, buf)
    }

    async fn read_tls(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            let tls = self.tls.as_mut().expect("TLS connection");
            // Plaintext rustls already holds comes first.
            let before = buf.len();
            let mut reader = tls.reader();
            let closed = loop {
                match reader.fill_buf() {
                    Ok([]) => break true,
                    Ok(chunk) => {
                        let n = chunk.len();
                        buf.extend_from_slice(chunk);
                        reader.consume(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                    Err(e) => return Err(e),
                }
            };
            if buf.len() > before {
                return Ok(buf.len() - before);
            }
            if closed {
                return Ok(0);
            }
            let mut raw = std::mem::take(&mut self.records);
            raw.reserve(READ_SIZE);
            let start = raw.len();
            let (r, slice) = self.stream.read(raw.slice(start..)).await;
            self.records = slice.into_inner();
            if r? == 0 {
                return Ok(0);
            }
            let tls = self.tls.as_mut().expect("TLS connection");
            while !self.records.is_empty() {
                let n = tls.read_tls(&mut &self.records[..])?;
                self.records.advance(n);
                if let Err(e) = tls.process_new_packets() {
                    let _ = self.flush_tls().await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            // Handshake messages and session tickets.
            self.flush_tls().await?;
        }
    }

    /// Sends `bytes` whole.
    pub async fn write_all(&mut self, bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        if let Some(tls) = &mut self.tls {
            tls.writer().write_all(&bytes)?;
            self.flush_tls().await?;
            return Ok(bytes);
        }
        let (r, b) = self.stream.write_all(bytes).await;
        r.map(|()| b)
    }

    async fn flush_tls(&mut self) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        let mut sealed = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut sealed)?;
        }
        if sealed.is_empty() {
            return Ok(());
        }
        let (r, _) = self.stream.write_all(sealed).await;
        r
    }

    pub fn set_nodelay(&self) {
        let _ = self.stream.set_nodelay(true);
    }
}

/// A read still in flight when its future is dropped (a timeout, a stop) keeps the socket
/// open until it completes: shutting it down completes it, and the peer sees the close.
impl Drop for Io {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

impl Io {
    /// Ends the connection after a final answer without losing it: a close with unread
    /// input makes the kernel send a reset, which can discard the answer before the client
    /// reads it (a 413 while the client still sends its body). So the sending side is shut
    /// first and what the client still sends is read and dropped, for a bounded time.
    pub async fn lingering_close(self, within: std::time::Duration) {
        if self.stream.shutdown(std::net::Shutdown::Write).is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        let mut total = 0usize;
        while total < 1 << 20 {
            buf.clear();
            let read = self.stream.read(buf.slice(..));
            let r = tokio::time::timeout_at(deadline, read).await;
            match r {
                Ok((Ok(n), slice)) if n > 0 => {
                    total += n;
                    buf = slice.into_inner();
                }
                _ => return,
            }
        }
    }
}
