//! The thin async layer over tokio-uring sockets: read whole frames (inflating first when
//! the connection is compressed) and write encoded frames (deflating them). Everything
//! about the protocol itself is in the sans-IO modules.

use super::deflate::{Deflater, InflateError, Inflater};
use super::frame::{Frame, FrameDecoder, FrameError};
use bytes::BytesMut;
use std::io;
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

const READ_SIZE: usize = 64 * 1024;
/// Output handed over per inflate step: bounds what one small compressed read can become
/// before the frame decoder has looked at it.
const INFLATE_STEP: usize = 256 * 1024;

/// Compression of one connection (both directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// zlib stream at this level (0-9).
    Deflate(u32),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Inflate(#[from] InflateError),
    #[error("peer closed the connection in the middle of a frame ({0} bytes of it received)")]
    ClosedMidFrame(usize),
}

pub struct FrameReader {
    buf: BytesMut,
    dec: FrameDecoder,
    inflater: Option<Inflater>,
}

impl FrameReader {
    pub fn new(max_frame: usize, compression: Compression) -> Self {
        FrameReader {
            buf: BytesMut::with_capacity(READ_SIZE),
            dec: FrameDecoder::new(max_frame),
            inflater: match compression {
                Compression::None => None,
                Compression::Deflate(_) => Some(Inflater::new()),
            },
        }
    }

    /// The next frame; `Ok(None)` on a clean end of stream (between frames).
    pub async fn next(&mut self, stream: &TcpStream) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = self.dec.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if let Some(inf) = &mut self.inflater {
                if inf.has_pending() && inf.inflate(&mut self.buf, INFLATE_STEP)? > 0 {
                    continue;
                }
            }
            let target = match &mut self.inflater {
                Some(inf) => inf.input(),
                None => &mut self.buf,
            };
            if target.capacity() - target.len() < READ_SIZE / 4 {
                target.reserve(READ_SIZE);
            }
            let owned = std::mem::take(target);
            let start = owned.len();
            let (result, slice) = stream.read(BoundedBuf::slice(owned, start..)).await;
            let owned = slice.into_inner();
            let target = match &mut self.inflater {
                Some(inf) => inf.input(),
                None => &mut self.buf,
            };
            *target = owned;
            if result? == 0 {
                let partial =
                    self.buf.len() + self.inflater.as_ref().map_or(0, Inflater::pending_len);
                return match partial {
                    0 => Ok(None),
                    n => Err(ReadError::ClosedMidFrame(n)),
                };
            }
        }
    }
}

pub struct FrameWriter {
    deflater: Option<Deflater>,
    scratch: Vec<u8>,
}

impl FrameWriter {
    pub fn new(compression: Compression) -> Self {
        FrameWriter {
            deflater: match compression {
                Compression::None => None,
                Compression::Deflate(level) => Some(Deflater::new(level)),
            },
            scratch: Vec::new(),
        }
    }

    /// Writes the encoded frame(s) in `frames` and gives the buffer back, cleared.
    pub async fn send(&mut self, stream: &TcpStream, frames: BytesMut) -> io::Result<BytesMut> {
        let mut frames = self.send_keep(stream, frames).await?;
        frames.clear();
        Ok(frames)
    }

    /// Writes `frames` and gives the buffer back as it was, to be sent again.
    pub async fn send_keep(
        &mut self,
        stream: &TcpStream,
        frames: BytesMut,
    ) -> io::Result<BytesMut> {
        match &mut self.deflater {
            None => {
                let (r, buf) = stream.write_all(frames).await;
                r.map(|()| buf)
            }
            Some(d) => {
                let mut out = std::mem::take(&mut self.scratch);
                out.clear();
                d.deflate(&frames, &mut out);
                let (r, out) = stream.write_all(out).await;
                self.scratch = out;
                r.map(|()| frames)
            }
        }
    }
}

/// Connects with a timeout; the name is resolved off the shard's loop.
pub async fn connect(
    host: &str,
    port: u16,
    timeout: std::time::Duration,
) -> io::Result<(TcpStream, std::net::SocketAddr)> {
    let attempt = async {
        let addrs: Vec<_> = tokio::net::lookup_host((host, port)).await?.collect();
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("'{host}' resolves to no address"),
        );
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok((s, addr));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect to {host}:{port} timed out after {timeout:?}"),
        )),
    }
}
