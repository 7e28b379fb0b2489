//! One syslog TCP connection, shared by syslogtcp and multiport_syslogtcp: its bytes
//! (through TLS when the source has `ssl`), framed into events by the source's parser,
//! delivered one transaction per read's worth (capped at the source's batch size). While
//! the channels refuse a batch the connection is not read, so TCP pushes back on the
//! sender; what unfinished messages hold counts toward the shard's buffer budget; a
//! connection silent for `idle-timeout` is closed.

use super::peer::Fixed;
use crate::event::Event;
use crate::runtime::budget::Hold;
use crate::source::SourceCtx;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_uring::net::TcpStream;

const READ_SIZE: usize = 64 * 1024;

/// What every connection of a source is served with.
#[derive(Debug, Clone)]
pub struct ConnCfg {
    /// `None`: never.
    pub idle_timeout: Option<Duration>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most events per channel transaction.
    pub batch: usize,
}

/// The socket, and the TLS session over it when there is one.
struct Io {
    tcp: TcpStream,
    tls: Option<Box<rustls::ServerConnection>>,
    /// TLS records read; those from `wire_pos` on are not yet handed to rustls.
    wire: Vec<u8>,
    wire_pos: usize,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Io {
    async fn read_wire(&mut self) -> io::Result<usize> {
        let mut w = std::mem::take(&mut self.wire);
        w.clear();
        w.reserve(READ_SIZE);
        let (r, w) = self.tcp.read(w).await;
        self.wire = w;
        self.wire_pos = 0;
        r
    }

    fn wire_left(&self) -> bool {
        self.wire_pos < self.wire.len()
    }

    /// Sends what rustls has queued (handshake messages, alerts, session tickets).
    async fn flush(&mut self) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        let mut out = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut out)?;
        }
        if !out.is_empty() {
            self.tcp.write_all(out).await.0?;
        }
        Ok(())
    }

    /// Hands rustls the next records read, as many as it takes at once; a bad record is
    /// an error (its alert is sent). One step at a time, so the plaintext is read out in
    /// between: rustls refuses records while 16 KiB of plaintext wait.
    async fn feed_tls(&mut self) -> io::Result<()> {
        let tls = self.tls.as_mut().expect("called with TLS only");
        let mut rd = &self.wire[self.wire_pos..];
        let before = rd.len();
        let read = tls.read_tls(&mut rd);
        self.wire_pos += before - rd.len();
        read?;
        let processed = tls.process_new_packets();
        let flushed = self.flush().await;
        match processed {
            Err(e) => Err(tls_error(e)),
            Ok(_) => flushed,
        }
    }

    async fn handshake(&mut self) -> io::Result<()> {
        loop {
            self.flush().await?;
            if !self.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
                return Ok(());
            }
            if !self.wire_left() && self.read_wire().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection during the TLS handshake",
                ));
            }
            self.feed_tls().await?;
        }
    }

    /// The next bytes of the stream into `buf` (replacing what it held); 0 at its end.
    async fn read(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        buf.clear();
        if self.tls.is_none() {
            buf.reserve(READ_SIZE);
            return self.tcp.read(buf).await;
        }
        loop {
            buf.resize(READ_SIZE, 0);
            let tls = self.tls.as_mut().expect("TLS");
            match tls.reader().read(&mut buf) {
                // Ok(0): the peer's close_notify.
                Ok(n) => {
                    buf.truncate(n);
                    return (Ok(n), buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    buf.clear();
                    return (Err(e), buf);
                }
            }
            buf.clear();
            if !self.wire_left() {
                match self.read_wire().await {
                    // A close without close_notify ends the stream too (senders do that).
                    Ok(0) => return (Ok(0), buf),
                    Ok(_) => {}
                    Err(e) => return (Err(e), buf),
                }
            }
            if let Err(e) = self.feed_tls().await {
                return (Err(e), buf);
            }
        }
    }
}

/// Why a connection ended.
enum Ending {
    Eof,
    Stopped,
    Failed(io::Error),
    /// Silent (holding this many bytes of a message) for the idle timeout; `paused`:
    /// waiting for the shard's buffer budget, not for the sender.
    Idle {
        held: usize,
        paused: bool,
    },
}

/// Resolves at `deadline`, or never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Serves one connection until it ends or the source stops. `parse` frames the bytes of
/// one read into events (appended to its vector) and returns the bytes of unfinished
/// messages it holds; `fixed` headers are added to every event.
#[allow(clippy::too_many_arguments)]
pub async fn serve<P>(
    stream: TcpStream,
    peer: SocketAddr,
    cfg: &ConnCfg,
    ctx: &SourceCtx,
    mut hold: Hold,
    fixed: &Fixed,
    mut parse: P,
) where
    P: FnMut(&[u8], &mut Vec<Event>) -> usize,
{
    let mut io = Io {
        tls: match &cfg.tls {
            None => None,
            Some(c) => match rustls::ServerConnection::new(c.clone()) {
                Ok(t) => Some(Box::new(t)),
                Err(e) => {
                    tracing::warn!(source = %ctx.name, %peer, "closing the connection: TLS set-up failed: {e}");
                    return;
                }
            },
        },
        tcp: stream,
        wire: Vec::new(),
        wire_pos: 0,
    };
    let mut last_data = Instant::now();
    let ending = serve_io(
        &mut io,
        peer,
        cfg,
        ctx,
        &mut hold,
        fixed,
        &mut parse,
        &mut last_data,
    )
    .await;
    if !matches!(ending, Ending::Eof) {
        // A read cancelled in flight keeps the socket open until it completes: shutting
        // the socket down completes it, and the sender sees the close at once.
        let _ = io.tcp.shutdown(std::net::Shutdown::Both);
    }
    let idle = cfg.idle_timeout.unwrap_or_default();
    match ending {
        Ending::Eof | Ending::Stopped => {}
        // A TLS failure or timeout is worth a warning; a reset by the sender is not.
        Ending::Failed(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::TimedOut | io::ErrorKind::UnexpectedEof
            ) =>
        {
            tracing::warn!(source = %ctx.name, %peer, "closing the connection: {e}")
        }
        Ending::Failed(e) => {
            tracing::debug!(source = %ctx.name, %peer, "read failed: {e}")
        }
        Ending::Idle { held: 0, .. } => {
            tracing::info!(source = %ctx.name, %peer, "closing the connection: silent for {idle:?} (idle-timeout)")
        }
        Ending::Idle {
            held,
            paused: false,
        } => {
            tracing::warn!(source = %ctx.name, %peer, "closing the connection: stalled for {idle:?} in the middle of a message ({held} bytes of it received; idle-timeout)")
        }
        Ending::Idle { held, paused: true } => {
            tracing::warn!(source = %ctx.name, %peer, "closing the connection: held {held} bytes of an unfinished message for {idle:?} while the shard's buffer budget was exhausted (idle-timeout)")
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_io<P>(
    io: &mut Io,
    peer: SocketAddr,
    cfg: &ConnCfg,
    ctx: &SourceCtx,
    hold: &mut Hold,
    fixed: &Fixed,
    parse: &mut P,
    last_data: &mut Instant,
) -> Ending
where
    P: FnMut(&[u8], &mut Vec<Event>) -> usize,
{
    if io.tls.is_some() {
        let deadline = cfg.idle_timeout.map(|d| *last_data + d);
        let handshake = tokio::select! {
            _ = ctx.stop.wait() => return Ending::Stopped,
            _ = until(deadline) => return Ending::Failed(io::Error::new(io::ErrorKind::TimedOut, "no TLS handshake within idle-timeout")),
            r = io.handshake() => r,
        };
        if let Err(e) = handshake {
            let hint = if e.kind() == io::ErrorKind::InvalidData {
                " (is the sender using TLS? this source has ssl = true)"
            } else {
                ""
            };
            return Ending::Failed(io::Error::new(
                e.kind(),
                format!("TLS handshake failed: {e}{hint}"),
            ));
        }
        *last_data = Instant::now();
    }
    let mut buf = Vec::with_capacity(READ_SIZE);
    let mut events = Vec::new();
    let mut held = 0;
    loop {
        let deadline = cfg.idle_timeout.map(|d| *last_data + d);
        // Unfinished messages count toward the shard's budget; over it, a connection
        // holding much waits (TCP pushes back on its sender).
        hold.set(held);
        if !hold.may_grow() {
            tokio::select! {
                _ = ctx.stop.wait() => return Ending::Stopped,
                _ = until(deadline) => return Ending::Idle { held, paused: true },
                _ = hold.room() => {}
            }
        }
        let (result, b) = tokio::select! {
            _ = ctx.stop.wait() => return Ending::Stopped,
            _ = until(deadline) => return Ending::Idle { held, paused: false },
            r = io.read(buf) => r,
        };
        buf = b;
        crate::runtime::spin::activity();
        match result {
            Ok(0) => return Ending::Eof,
            Ok(_) => *last_data = Instant::now(),
            Err(e) => return Ending::Failed(e),
        }
        held = parse(&buf, &mut events);
        if events.is_empty() {
            continue;
        }
        fixed.apply(&mut events);
        let mut batch = std::mem::take(&mut events);
        while !batch.is_empty() {
            let rest = batch.split_off(cfg.batch.min(batch.len()));
            let n = batch.len();
            if ctx.deliver_all(batch, &peer).await < n {
                return Ending::Stopped;
            }
            batch = rest;
        }
        // Waiting for the channel is not the sender's silence.
        *last_data = Instant::now();
    }
}
