//! The netcat source (`netcat`, `org.apache.flume.source.NetcatSource`): one event per
//! `\n`-terminated line of a TCP connection. Lines become slices of the receive buffer
//! (`event::Body`); all complete lines of one read go to the channels in one transaction. A line
//! longer than `max-line-length` (newline included) is answered as Flume does,
//! `FAILED: Event exceeds the maximum length (N chars, including newline)`, and the
//! connection is closed. When the channel is full the connection stops being read until the
//! batch fits: TCP pushes back on the client, nothing is buffered without bound or dropped.

use super::{Bound, Plan, Shard, SourceCtx, SourceType, TcpListening};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::{Body, Event};
use crate::runtime::budget::{Budget, Hold};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

const KEYS: &[KeySpec] = &[
    KeySpec::required("bind", KeyKind::Str, "Host name or IP address to bind to"),
    KeySpec::required("port", KeyKind::PORT, "Port to bind to"),
    KeySpec::new(
        "max-line-length",
        KeyKind::int(2, 1 << 30),
        Some("512"),
        "Max line length per event body, in bytes, newline included",
    ),
    KeySpec::new(
        "ack-every-event",
        KeyKind::Bool,
        Some("true"),
        "Respond with \"OK\" for every event received",
    ),
    KeySpec::new(
        "encoding",
        KeyKind::Choice(&["utf-8"]),
        Some("utf-8"),
        "Character set of the lines (flume-fast passes bytes through; only utf-8 is accepted)",
    ),
    KeySpec::new(
        "idle-timeout",
        KeyKind::NON_NEGATIVE,
        Some("300000"),
        "flume-fast: milliseconds a connection may stay silent, or stalled in the middle of a line, before it is closed (0: never; Flume never closes one)",
    ),
    KeySpec::new(
        "max-buffered-bytes",
        KeyKind::int(1024, 1 << 40),
        Some("8388608"),
        "flume-fast: bytes of unfinished lines buffered over all of this source's connections on one shard; over it, connections holding a sixteenth of it or more stop being read (TCP pushes back) until it is below again, as for the avro source",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["netcat"],
    class: "org.apache.flume.source.NetcatSource",
    doc: "Listens on a TCP port and turns each line of text into an event (like nc -k -l).",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetcatConfig {
    pub bind: String,
    pub port: u16,
    pub max_line_length: usize,
    pub ack_every_event: bool,
    /// `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Per shard (see `runtime::budget`).
    pub max_buffered: usize,
}

impl Component for NetcatConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let cfg = NetcatConfig {
            bind: k.str("bind")?,
            port: k.int("port")? as u16,
            max_line_length: k.usize("max-line-length")?,
            ack_every_event: k.bool("ack-every-event")?,
            idle_timeout: k.opt_millis("idle-timeout")?,
            max_buffered: k.usize("max-buffered-bytes")?,
        };
        k.choice("encoding")?;
        Ok(cfg)
    }
}

impl SourceType for NetcatConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Plan::tcp(&self.bind, self.port)
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        Ok(Bound::new(
            TcpListening::bind(&self.bind, self.port, self)?,
            run,
        ))
    }
}

const READ_SIZE: usize = 64 * 1024;

async fn run(l: TcpListening<NetcatConfig>, ctx: Rc<SourceCtx>) {
    let cfg = Rc::new(l.cfg);
    let budget = Budget::new(cfg.max_buffered);
    super::accept_loop(l.listener, &ctx, |stream, peer| {
        let (ctx, cfg) = (ctx.clone(), cfg.clone());
        let hold = Hold::new(&budget);
        Some(async move { connection(stream, peer, &cfg, &ctx, hold).await })
    })
    .await;
}

/// Why a connection ended early, as told to the client.
enum Ending {
    Eof,
    TooLong,
    Stopped,
    /// Silent (holding this many bytes of a line) for the idle timeout; `paused`: waiting
    /// for the shard's buffer budget, not for the client.
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

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    cfg: &NetcatConfig,
    ctx: &SourceCtx,
    mut hold: Hold,
) {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut last_data = Instant::now();
    let ending = loop {
        let deadline = cfg.idle_timeout.map(|d| last_data + d);
        // The partial line so far counts toward the shard's budget; over it, a connection
        // holding much waits (TCP pushes back on its client).
        hold.set(buf.len());
        if !hold.may_grow() {
            tokio::select! {
                _ = ctx.stop.wait() => break Ending::Stopped,
                _ = until(deadline) => break Ending::Idle { held: buf.len(), paused: true },
                _ = hold.room() => {}
            }
        }
        if buf.capacity() - buf.len() < READ_SIZE / 4 {
            buf.reserve(READ_SIZE);
        }
        let start = buf.len();
        let read = tokio::select! {
            _ = ctx.stop.wait() => break Ending::Stopped,
            _ = until(deadline) => break Ending::Idle { held: start, paused: false },
            r = stream.read(BoundedBuf::slice(buf, start..)) => r,
        };
        let (result, slice) = read;
        crate::runtime::spin::activity();
        buf = slice.into_inner();
        match result {
            Ok(0) => break Ending::Eof,
            Ok(_) => last_data = Instant::now(),
            Err(e) => {
                tracing::debug!(source = %ctx.name, %peer, "read failed: {e}");
                return;
            }
        }
        let (events, too_long) = split_lines(&mut buf, cfg.max_line_length);
        if !events.is_empty() {
            let n = events.len();
            let delivered = ctx.deliver_all(events, &peer).await;
            if cfg.ack_every_event && !reply(&stream, acks(delivered, n - delivered)).await {
                return;
            }
            if delivered < n {
                break Ending::Stopped;
            }
            // Waiting for the channel is not the client's silence.
            last_data = Instant::now();
        }
        if too_long {
            break Ending::TooLong;
        }
    };
    if matches!(ending, Ending::Idle { .. } | Ending::Stopped) {
        // A read cancelled in flight keeps the socket open until it completes (see
        // `avro_rpc::conn`'s `Drop for Conn`): shutting it down completes it.
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    if let Ending::Idle { held, paused } = ending {
        let idle = cfg.idle_timeout.unwrap_or_default();
        match (held, paused) {
            (0, _) => {
                tracing::info!(source = %ctx.name, %peer, "closing the connection: silent for {idle:?} (idle-timeout)")
            }
            (n, false) => {
                tracing::warn!(source = %ctx.name, %peer, "closing the connection: stalled for {idle:?} in the middle of a line ({n} bytes of it received; idle-timeout)")
            }
            (n, true) => {
                tracing::warn!(source = %ctx.name, %peer, "closing the connection: held {n} bytes of an unfinished line for {idle:?} while the shard's buffer budget was exhausted (idle-timeout)")
            }
        }
    }
    if let Ending::TooLong = ending {
        tracing::warn!(source = %ctx.name, %peer, "client sent a line longer than max-line-length ({}); closing the connection", cfg.max_line_length);
        let msg = format!(
            "FAILED: Event exceeds the maximum length ({} chars, including newline)\n",
            cfg.max_line_length
        );
        reply(&stream, msg.into_bytes()).await;
    }
}

/// Cuts the complete lines off the front of `buf` as events (zero-copy). The second value
/// is true when a line (complete or still partial) is longer than allowed; the lines
/// before it are returned and the rest is discarded.
pub fn split_lines(buf: &mut BytesMut, max_line_length: usize) -> (Vec<Event>, bool) {
    let Some(last_nl) = memchr::memrchr(b'\n', buf) else {
        return (Vec::new(), buf.len() >= max_line_length);
    };
    let chunk = Rc::new(buf.split_to(last_nl + 1).freeze());
    // Sized exactly: the Vec is what a memory channel queues, and a guess of one event per
    // 32 bytes left three quarters of it empty with 100-byte lines.
    let lines = memchr::memchr_iter(b'\n', &chunk).count();
    let mut events = Vec::with_capacity(lines);
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', &chunk) {
        if nl - start >= max_line_length {
            buf.clear();
            return (events, true);
        }
        events.push(Event::new(Body::shared(chunk.clone(), start..nl)));
        start = nl + 1;
    }
    (events, buf.len() >= max_line_length)
}

fn acks(ok: usize, failed: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(ok * 3 + failed * 40);
    for _ in 0..ok {
        out.extend_from_slice(b"OK\n");
    }
    for _ in 0..failed {
        out.extend_from_slice(b"FAILED: agent is stopping; event not stored\n");
    }
    out
}

async fn reply(stream: &TcpStream, bytes: Vec<u8>) -> bool {
    if bytes.is_empty() {
        return true;
    }
    let (r, _) = stream.write_all(bytes).await;
    r.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(evs: &[Event]) -> Vec<&[u8]> {
        evs.iter().map(|e| &e.body[..]).collect()
    }

    #[test]
    fn splits_complete_lines_and_keeps_the_tail() {
        let mut buf = BytesMut::from(&b"one\ntwo\r\n\nthr"[..]);
        let (evs, too_long) = split_lines(&mut buf, 512);
        assert_eq!(bodies(&evs), [&b"one"[..], b"two\r", b""]);
        // The lines of one read share its buffer (no atomic count per line).
        assert!(evs[0].body.shares_buffer_with(&evs[1].body));
        assert!(!too_long);
        assert_eq!(&buf[..], b"thr");
    }

    #[test]
    fn max_line_length_counts_the_newline() {
        let mut ok = BytesMut::from(&b"abcd\n"[..]);
        assert_eq!(split_lines(&mut ok, 5).0.len(), 1);
        let mut long = BytesMut::from(&b"ab\nabcde\nzz\n"[..]);
        let (evs, too_long) = split_lines(&mut long, 5);
        assert_eq!(bodies(&evs), [&b"ab"[..]]);
        assert!(too_long);
        let mut partial = BytesMut::from(&b"abcde"[..]);
        assert!(split_lines(&mut partial, 5).1);
    }
}
