//! The thin async layer over a tokio-uring socket: one `Conn` per connection reads whole
//! frames and writes encoded frames through the optional deflate and TLS layers.
//! Everything about the protocol itself is in the sans-IO modules; TLS is rustls's
//! sans-IO connection, fed from this connection's own socket reads.
//!
//! The layers are stacked as Flume 1.11's Netty pipeline stacks them (Avro's
//! `NettyServer`/`NettyTransceiver` run Flume's initializer, which adds the zlib codecs
//! with `addFirst` and the `SslHandler` with `addLast`, before the frame codecs): on the
//! wire, the zlib stream is outermost and carries the TLS records, which carry the frames.
//!
//! ```text
//! socket ⇄ [inflate/deflate] ⇄ [TLS] ⇄ frames
//! ```

use super::deflate::{Deflater, InflateError, Inflater};
use super::frame::{Frame, FrameDecoder, FrameError};
use crate::runtime::budget::Hold;
use crate::runtime::direct_io::{self, Recv};
use crate::runtime::spin;
use bytes::{Buf, BytesMut};
use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_uring::buf::{BoundedBuf, IoBuf};
use tokio_uring::net::TcpStream;

const READ_SIZE: usize = 64 * 1024;
/// The least room a read asks for.
const MIN_READ: usize = 16 * 1024;
/// The receive buffer grows to a frame and a quarter for connections that send big
/// batches, so a frame is read into one buffer instead of being copied into a larger one
/// read after read; idle and small-batch connections keep the small buffer. A read wants
/// room for the rest of a frame (see `room_wanted`), and a buffer still shared with the
/// frame before (its events are in a memory channel) is replaced by a new one then: more
/// frames' worth per buffer only held more memory. Four frames' worth: S1 8x1000x1 KiB peaked at 52 MB; two: 41
/// (39 in a later run); one and a quarter: 32, at the same speed.
const MAX_READ_SIZE: usize = 4 << 20;
/// Output handed over per inflate step: bounds what one small compressed read can become
/// before the next layer has looked at it.
const INFLATE_STEP: usize = 256 * 1024;
/// Bytes read in a row by non-blocking reads that found data, before a read goes through
/// io_uring: a peer that always has more to send would otherwise keep this task running
/// without ever giving the shard's other tasks (and the ring's submissions) a turn. One
/// largest read's worth, as one io_uring read may take.
const DIRECT_BUDGET: usize = MAX_READ_SIZE;

/// Compression of one connection (both directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// zlib stream at this level (0-9).
    Deflate(u32),
}

/// TLS for one connection, if any: the side and its configuration.
#[derive(Debug, Clone)]
pub enum Tls {
    None,
    Server(Arc<rustls::ServerConfig>),
    Client {
        config: Arc<rustls::ClientConfig>,
        /// Sent as SNI for DNS names; see `tls::server_name`.
        host: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Inflate(#[from] InflateError),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("peer closed the connection during the TLS handshake")]
    ClosedInHandshake,
    #[error("peer closed the connection in the middle of a frame ({0} bytes of it received)")]
    ClosedMidFrame(usize),
    #[error("{}", idle_reason(*.idle, *.held, *.paused))]
    Idle {
        idle: Duration,
        /// Bytes of an unfinished request held (0: silent between requests).
        held: usize,
        /// It was waiting for the shard's buffer budget, not for its peer.
        paused: bool,
    },
}

fn idle_reason(idle: Duration, held: usize, paused: bool) -> String {
    match (held, paused) {
        (0, _) => format!("silent for {idle:?}"),
        (n, false) => format!(
            "stalled for {idle:?} in the middle of a request ({n} bytes of it received)"
        ),
        (n, true) => format!(
            "held {n} bytes of an unfinished request for {idle:?} while the shard's buffer budget was exhausted"
        ),
    }
}

pub struct Conn {
    stream: TcpStream,
    /// Frame bytes (inflated, decrypted) not decoded yet.
    plain: BytesMut,
    dec: FrameDecoder,
    inflater: Option<Inflater>,
    deflater: Option<Deflater>,
    tls: Option<Box<rustls::Connection>>,
    /// TLS records received (inflated first when compressed) not yet given to rustls.
    records: BytesMut,
    /// The peer sent close_notify.
    tls_closed: bool,
    /// Reused output buffers: TLS records to send, and their deflated form.
    sealed: Vec<u8>,
    deflated: Vec<u8>,
    /// How much room a socket read asks for (see MAX_READ_SIZE).
    read_size: usize,
    /// The last frame's length: a read wants room for one like it.
    frame_hint: usize,
    /// When a read last brought data (see `spin::poll_again`).
    last_data: Instant,
    /// Bytes read in a row without going through the runtime, and the bound on them (see
    /// DIRECT_BUDGET).
    streak: usize,
    budget: usize,
    /// Reads that went through io_uring (what the tests watch).
    ring_reads: u64,
    /// A read that brings nothing for this long fails with `ReadError::Idle`.
    idle: Option<Duration>,
    /// This connection's share of its shard's budget for unfinished requests.
    hold: Option<Hold>,
}

impl Conn {
    /// Wraps a connected socket. With TLS, call `handshake` before anything else.
    pub fn new(
        stream: TcpStream,
        max_frame: usize,
        compression: Compression,
        tls: &Tls,
    ) -> Result<Conn, rustls::Error> {
        let tls = match tls {
            Tls::None => None,
            Tls::Server(cfg) => Some(rustls::Connection::from(rustls::ServerConnection::new(
                cfg.clone(),
            )?)),
            Tls::Client { config, host } => Some(rustls::Connection::from(
                rustls::ClientConnection::new(config.clone(), super::tls::server_name(host))?,
            )),
        };
        let tls = tls.map(|mut t| {
            // Our own buffers bound what is queued (one batch); rustls's default 64 KiB
            // limit would only make a large first batch wait for the handshake.
            t.set_buffer_limit(None);
            Box::new(t)
        });
        let (inflater, deflater) = match compression {
            Compression::None => (None, None),
            Compression::Deflate(level) => (Some(Inflater::new()), Some(Deflater::new(level))),
        };
        Ok(Conn {
            stream,
            plain: BytesMut::with_capacity(READ_SIZE),
            dec: FrameDecoder::new(max_frame),
            inflater,
            deflater,
            tls,
            records: BytesMut::new(),
            tls_closed: false,
            sealed: Vec::new(),
            deflated: Vec::new(),
            read_size: READ_SIZE,
            frame_hint: READ_SIZE / 2,
            last_data: Instant::now(),
            streak: 0,
            budget: DIRECT_BUDGET,
            ring_reads: 0,
            idle: None,
            hold: None,
        })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether the peer closed the connection (or it broke) while nothing was expected from
    /// it: a non-blocking peek, for a client about to reuse a connection that was quiet.
    /// Bytes waiting (a TLS session ticket, say) do not count as a close.
    pub fn peer_closed(&self) -> bool {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let fd = direct_io::sock(&self.stream);
        match socket2::SockRef::from(&fd)
            .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        {
            Ok(n) => n == 0,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        }
    }

    /// Reads fail with `ReadError::Idle` once no data came for `idle` (since the last data,
    /// the last answer, or this call); `None` waits for ever.
    pub fn set_idle_timeout(&mut self, idle: Option<Duration>) {
        self.idle = idle;
        self.last_data = Instant::now();
    }

    /// Counts the bytes of unfinished requests this connection buffers into `hold`'s budget,
    /// and reads only when the budget allows (see `runtime::budget`).
    pub fn set_budget(&mut self, hold: Hold) {
        self.hold = Some(hold);
    }

    /// Bytes of the next request received and not decoded yet, over every layer.
    fn partial(&self) -> usize {
        self.plain.len()
            + self.records.len()
            + self.inflater.as_ref().map_or(0, Inflater::pending_len)
    }

    /// Reports what the connection holds to its budget, if it has one; returns it.
    fn account(&mut self) -> usize {
        let held = self.partial();
        if let Some(h) = &mut self.hold {
            h.set(held);
        }
        held
    }

    /// Reports what the connection holds to the budget, and waits while the budget says
    /// this connection must not grow (within the idle timeout).
    async fn within_budget(&mut self) -> Result<(), ReadError> {
        let held = self.account();
        let Some(hold) = &self.hold else {
            return Ok(());
        };
        if hold.may_grow() {
            return Ok(());
        }
        match self.idle {
            None => hold.room().await,
            Some(idle) => {
                let deadline = tokio::time::Instant::from_std(self.last_data + idle);
                if tokio::time::timeout_at(deadline, hold.room())
                    .await
                    .is_err()
                {
                    return Err(ReadError::Idle {
                        idle,
                        held,
                        paused: true,
                    });
                }
            }
        }
        Ok(())
    }

    /// The peer was answered and its next request is due: reads poll for it as for data
    /// that just came (see `spin::poll_again`).
    pub fn expect_data(&mut self) {
        self.last_data = Instant::now();
    }

    /// Completes the TLS handshake (nothing to do without TLS). A failure sends the
    /// alert rustls prepared, when it can, so the peer learns why.
    pub async fn handshake(&mut self) -> Result<(), ReadError> {
        while self.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
            if self.tls.as_ref().is_some_and(|t| t.wants_write()) {
                self.flush_tls().await?;
                continue;
            }
            match self.pump() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Err(self.fail(e).await),
            }
            if self.read_wire().await? == 0 {
                return Err(ReadError::ClosedInHandshake);
            }
        }
        self.flush_tls().await?;
        Ok(())
    }

    /// The next frame; `Ok(None)` on a clean end of stream (between frames).
    pub async fn next(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = self.dec.decode(&mut self.plain)? {
                let len: usize = frame.buffers.iter().map(|b| b.len() + 4).sum();
                self.read_size = (len + len / 4).clamp(READ_SIZE, MAX_READ_SIZE);
                self.frame_hint = len;
                if self.hold.is_some() {
                    self.account();
                }
                return Ok(Some(frame));
            }
            // Inflating grows the request as a read does: both wait for the budget.
            self.within_budget().await?;
            match self.pump() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Err(self.fail(e).await),
            }
            // Post-handshake messages may need an answer (a TLS 1.3 key update).
            self.flush_tls().await?;
            if self.tls_closed || self.read_wire().await? == 0 {
                let partial = self.plain.len()
                    + self.records.len()
                    + self.inflater.as_ref().map_or(0, Inflater::pending_len);
                return match partial {
                    0 => Ok(None),
                    n => Err(ReadError::ClosedMidFrame(n)),
                };
            }
        }
    }

    /// Writes the encoded frame(s) in `frames` and gives the buffer back, cleared.
    pub async fn send(&mut self, frames: BytesMut) -> io::Result<BytesMut> {
        let mut frames = self.send_keep(frames).await?;
        frames.clear();
        Ok(frames)
    }

    /// Writes `frames` and gives the buffer back as it was, to be sent again.
    pub async fn send_keep(&mut self, frames: BytesMut) -> io::Result<BytesMut> {
        if let Some(tls) = &mut self.tls {
            tls.writer().write_all(&frames)?;
            self.flush_tls().await?;
            return Ok(frames);
        }
        if self.deflater.is_some() {
            self.deflate_and_write(&frames).await?;
            return Ok(frames);
        }
        let (r, buf) = write_all(&self.stream, frames).await;
        r.map(|()| buf)
    }

    /// Sends whatever rustls has queued (handshake messages, records, alerts).
    async fn flush_tls(&mut self) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        let mut sealed = std::mem::take(&mut self.sealed);
        sealed.clear();
        while tls.wants_write() {
            tls.write_tls(&mut sealed)?;
        }
        let r = if sealed.is_empty() {
            Ok(())
        } else if self.deflater.is_some() {
            self.deflate_and_write(&sealed).await
        } else {
            let (r, buf) = write_all(&self.stream, sealed).await;
            sealed = buf;
            r
        };
        self.sealed = sealed;
        r
    }

    async fn deflate_and_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let d = self.deflater.as_mut().expect("called only when compressed");
        let mut out = std::mem::take(&mut self.deflated);
        out.clear();
        d.deflate(bytes, &mut out);
        let (r, out) = write_all(&self.stream, out).await;
        self.deflated = out;
        r
    }

    /// A failed read: sends the TLS alert rustls queued for it (best effort).
    async fn fail(&mut self, e: ReadError) -> ReadError {
        if matches!(e, ReadError::Tls(_)) {
            let _ = self.flush_tls().await;
        }
        e
    }

    /// Moves received bytes one step up the layers without I/O; true if any moved.
    fn pump(&mut self) -> Result<bool, ReadError> {
        let mut moved = false;
        if let Some(inf) = &mut self.inflater {
            if inf.has_pending() {
                let up = match self.tls {
                    Some(_) => &mut self.records,
                    None => &mut self.plain,
                };
                moved |= inf.inflate(up, INFLATE_STEP)? > 0;
            }
        }
        let Some(tls) = &mut self.tls else {
            return Ok(moved);
        };
        if !self.records.is_empty() {
            let n = tls.read_tls(&mut &self.records[..])?;
            self.records.advance(n);
            moved |= n > 0;
            let state = tls.process_new_packets()?;
            self.tls_closed |= state.peer_has_closed();
        }
        let mut reader = tls.reader();
        while let Ok(chunk) = reader.fill_buf() {
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            self.plain.extend_from_slice(chunk);
            reader.consume(n);
            moved = true;
        }
        Ok(moved)
    }

    /// Reads from the socket into the lowest layer's input; 0 at end of stream.
    async fn read_wire(&mut self) -> Result<usize, ReadError> {
        let (read_size, hint) = (self.read_size, self.frame_hint.min(self.read_size));
        let target = self.wire_input();
        let len = target.len();
        let want = room_wanted(len, hint);
        if target.capacity() - len < want && !target.try_reclaim(want) {
            // Not `reserve`: on a buffer no frame shares any more, it reallocates and
            // so copies the whole spent frame ahead of the bytes still wanted (7% of the
            // agent's CPU at 1x1000x1 KiB). Only the unread tail needs moving.
            let mut fresh = BytesMut::with_capacity(fresh_capacity(read_size, len, want));
            fresh.extend_from_slice(target);
            *target = fresh;
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.stream);
        while self.streak < self.budget {
            match direct_io::try_recv(&fd, self.wire_input())? {
                Recv::Read(n) => {
                    self.streak += n;
                    if n > 0 {
                        self.last_data = Instant::now();
                    }
                    spin::activity();
                    return Ok(n);
                }
                Recv::WouldBlock => {
                    self.streak = 0;
                    if !spin::poll_again(self.last_data).await {
                        break;
                    }
                }
            }
        }
        self.streak = 0;
        self.ring_reads += 1;
        let held = self.partial();
        let target = self.wire_input();
        let owned = std::mem::take(target);
        let start = owned.len();
        let read = self.stream.read(BoundedBuf::slice(owned, start..));
        let (result, slice) = match self.idle {
            None => read.await,
            Some(idle) => {
                let deadline = tokio::time::Instant::from_std(self.last_data + idle);
                match tokio::time::timeout_at(deadline, read).await {
                    Ok(r) => r,
                    // The read is cancelled with its buffer: the connection ends here.
                    Err(_) => {
                        return Err(ReadError::Idle {
                            idle,
                            held,
                            paused: false,
                        })
                    }
                }
            }
        };
        spin::activity();
        *self.wire_input() = slice.into_inner();
        if matches!(result, Ok(n) if n > 0) {
            self.last_data = Instant::now();
        }
        Ok(result?)
    }

    fn wire_input(&mut self) -> &mut BytesMut {
        match (&mut self.inflater, &self.tls) {
            (Some(inf), _) => inf.input(),
            (None, Some(_)) => &mut self.records,
            (None, None) => &mut self.plain,
        }
    }
}

/// A read still in flight when its future is dropped (a timeout, a stop) keeps the socket
/// open in tokio-uring until it completes, which for a silent peer is never: shutting the
/// socket down completes it, so the peer sees the close at once.
impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Writes all of `buf`: what the socket takes at once without blocking (`direct_io`), the
/// rest through io_uring.
async fn write_all<B>(stream: &TcpStream, buf: B) -> (io::Result<()>, B)
where
    B: IoBuf + std::ops::Deref<Target = [u8]>,
{
    let sent = match direct_io::try_send(stream, &buf) {
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

/// The free room a read wants when `len` bytes of a frame are buffered and the last frame
/// was `hint` bytes: room for the rest of a frame like the last one. A read that starts
/// half way through a frame needs only the other half; asking for a whole frame there
/// made every connection of S5 8x1000x1 KiB copy its partial frame into a new buffer of
/// two frames (peak RSS 49 MB, against 36 when asking for the rest).
fn room_wanted(len: usize, hint: usize) -> usize {
    hint.saturating_sub(len).max(MIN_READ)
}

/// The capacity of a new receive buffer for `len` buffered bytes and `want` more: the
/// usual read size, or for a frame bigger than it, double what is buffered, so a frame
/// bigger than any before is copied a few times as it grows, not once per read.
fn fresh_capacity(read_size: usize, len: usize, want: usize) -> usize {
    if len + want <= read_size {
        read_size
    } else {
        (len + want).max(2 * len)
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

/// Connects and completes the TLS handshake, both within `timeout`: a ready `Conn`.
pub async fn open(
    host: &str,
    port: u16,
    timeout: std::time::Duration,
    max_frame: usize,
    compression: Compression,
    tls: &Tls,
) -> Result<Conn, OpenError> {
    let attempt = async {
        let (stream, _) = connect(host, port, timeout).await?;
        let mut conn = Conn::new(stream, max_frame, compression, tls)?;
        conn.handshake().await?;
        Ok(conn)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(OpenError::Connect(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connecting to {host}:{port} (and the TLS handshake) took over {timeout:?}"),
        ))),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Connect(#[from] io::Error),
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS handshake failed: {0}")]
    Handshake(#[from] ReadError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    fn frames(n: i32, size: usize) -> Vec<u8> {
        let mut out = BytesMut::new();
        for serial in 0..n {
            let start = super::super::frame::begin_frame(&mut out, serial);
            out.extend_from_slice(&vec![b'x'; size]);
            super::super::frame::finish_frame(&mut out, start);
        }
        out.to_vec()
    }

    /// A listening socket and a tokio-uring stream accepted from it, for a std client.
    async fn accept(client: impl FnOnce(std::net::TcpStream) + Send + 'static) -> Conn {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || client(std::net::TcpStream::connect(addr).unwrap()));
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        Conn::new(
            TcpStream::from_std(s),
            1 << 20,
            Compression::None,
            &Tls::None,
        )
        .unwrap()
    }

    /// What inflating makes of a few compressed bytes counts toward the shard's budget as
    /// bytes read do: over the budget, a connection holding much stops inflating too.
    #[test]
    fn inflated_bytes_count_toward_the_budget_and_stop_at_it() {
        use crate::runtime::budget::{Budget, Hold};
        tokio_uring::start(async {
            // 16 MiB of one frame's body, compressed to a few KiB, and never finished.
            let mut plain = BytesMut::new();
            plain.extend_from_slice(&1i32.to_be_bytes());
            plain.extend_from_slice(&1i32.to_be_bytes());
            plain.extend_from_slice(&(32i32 << 20).to_be_bytes());
            plain.resize(12 + (16 << 20), b'x');
            let mut wire = Vec::new();
            super::super::deflate::Deflater::new(6).deflate(&plain, &mut wire);
            assert!(wire.len() < 1 << 20);
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let (done, wait) = std::sync::mpsc::channel::<()>();
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(&wire).unwrap();
                let _ = wait.recv();
            });
            let (s, _) = l.accept().unwrap();
            s.set_nonblocking(true).unwrap();
            let mut conn = Conn::new(
                TcpStream::from_std(s),
                64 << 20,
                Compression::Deflate(6),
                &Tls::None,
            )
            .unwrap();
            let budget = Budget::new(4 << 20);
            // Another connection holds a little, so this one is not alone.
            let mut other = Hold::new(&budget);
            other.set(1024);
            conn.set_budget(Hold::new(&budget));
            let r = tokio::time::timeout(Duration::from_millis(500), conn.next()).await;
            assert!(r.is_err(), "the unfinished frame cannot be complete");
            let held = conn.hold.as_ref().unwrap().held();
            assert!(held >= 4 << 20, "stopped before the budget: {held}");
            assert!(
                held < (4 << 20) + 2 * INFLATE_STEP,
                "inflated past the budget: {held}"
            );
            assert_eq!(budget.used(), held + 1024);
            drop(done);
        });
    }

    #[test]
    fn reads_go_around_the_ring_while_the_shard_polls_and_through_it_when_idle() {
        crate::runtime::start_uring(async {
            tokio_uring::spawn(spin::run(Duration::from_secs(30)));
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let mut conn = accept(move |mut c| {
                for _ in 0..3 {
                    go_rx.recv().unwrap();
                    c.write_all(&frames(1, 10)).unwrap();
                }
            })
            .await;
            // The first frame starts the spinner.
            go_tx.send(()).unwrap();
            assert_eq!(conn.next().await.unwrap().unwrap().serial, 0);
            let before = conn.ring_reads;
            // A frame sent while the reader waits is read without the ring.
            read_sent_while_waiting(&mut conn, &go_tx).await;
            assert_eq!(
                conn.ring_reads, before,
                "a read while polling used the ring"
            );
            // A connection quiet for longer than the window sleeps in an io_uring read.
            conn.last_data = Instant::now() - Duration::from_secs(31);
            read_sent_while_waiting(&mut conn, &go_tx).await;
            assert_eq!(conn.ring_reads, before + 1);
        });
    }

    /// Starts reading a frame, and only once the reader waits has the peer send it.
    async fn read_sent_while_waiting(conn: &mut Conn, go: &std::sync::mpsc::Sender<()>) {
        let next = conn.next();
        tokio::pin!(next);
        assert!(futures_poll_once(next.as_mut()).await.is_none());
        go.send(()).unwrap();
        assert_eq!(next.await.unwrap().unwrap().serial, 0);
    }

    #[test]
    fn without_a_spinner_a_read_that_finds_nothing_waits_in_the_ring() {
        crate::runtime::start_uring(async {
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let mut conn = accept(move |mut c| {
                go_rx.recv().unwrap();
                c.write_all(&frames(1, 10)).unwrap();
            })
            .await;
            read_sent_while_waiting(&mut conn, &go_tx).await;
            assert_eq!(conn.ring_reads, 1);
        });
    }

    /// Polls `f` once: its output if ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[test]
    fn a_peer_that_always_has_more_does_not_keep_the_shard_to_itself() {
        crate::runtime::start_uring(async {
            let n = 400;
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let mut conn = accept(move |mut c| {
                c.write_all(&frames(n, 1000)).unwrap();
                done_tx.send(()).unwrap();
                // Keep the connection open until the reader is done.
                let _ = std::io::Read::read(&mut c, &mut [0u8; 1]);
            })
            .await;
            // Every frame is sent (in the receive queue, or in the sender's queue, which
            // the reader's own reads pull through as they open the window) before the
            // first read: no read finds nothing, so only the budget lets another task run.
            conn.budget = 64 * 1024;
            done_rx.recv().unwrap();
            let ran = Rc::new(Cell::new(false));
            let flag = ran.clone();
            tokio_uring::spawn(async move { flag.set(true) });
            let mut read_before_it_ran = 0;
            for _ in 0..n {
                conn.next().await.unwrap().unwrap();
                if !ran.get() {
                    read_before_it_ran += 1;
                }
            }
            assert!(ran.get());
            assert!(
                read_before_it_ran < n,
                "the other task ran only after every frame"
            );
        });
    }

    #[test]
    fn a_read_half_way_through_a_frame_wants_room_for_the_rest_only() {
        // S5 8x1000x1 KiB: frames of 1,027,020 bytes, a read after 982,245 had come.
        assert_eq!(room_wanted(982_245, 1_027_020), 44_775);
        assert_eq!(room_wanted(0, 1_027_020), 1_027_020);
        // Past the hint (a bigger frame than the last) a read still asks for some room.
        assert_eq!(room_wanted(2_000_000, 1_027_020), MIN_READ);
        // Within the usual read size, a new buffer is that size, not twice the frame.
        let read_size = 1_283_775;
        assert_eq!(fresh_capacity(read_size, 982_245, 44_775), read_size);
    }

    #[test]
    fn a_frame_bigger_than_any_before_is_copied_a_few_times_as_it_grows() {
        // A 4 MiB frame arriving 16 KiB per read into a fresh connection's buffer.
        let (frame, read_size, hint) = (4 << 20, READ_SIZE, READ_SIZE / 2);
        let (mut len, mut cap, mut copied, mut fresh) = (0usize, READ_SIZE, 0usize, 0);
        while len < frame {
            let want = room_wanted(len, hint);
            if cap - len < want {
                cap = fresh_capacity(read_size, len, want);
                copied += len;
                fresh += 1;
            }
            len += MIN_READ.min(cap - len);
        }
        assert!(fresh <= 8, "{fresh} new buffers");
        assert!(
            copied <= frame,
            "{copied} bytes copied for a {frame}-byte frame"
        );
        assert!(cap <= 2 * frame, "capacity {cap}");
    }
}
