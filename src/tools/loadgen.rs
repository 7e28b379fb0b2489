//! `flume-fast loadgen`: drives an avro (or netcat) endpoint with C connections, each
//! sending batches of B events of S bytes and waiting for the answer before the next, for
//! a number of events or a duration. Reports acknowledged events/s, MB/s of bodies and
//! the batch latency (send to answer) p50/p99; a live progress line on a terminal and a
//! one-line JSON summary on stdout for scripts.
//!
//! It runs on one thread and one io_uring loop. Each avro connection encodes its batch
//! once and resends the same bytes with a new serial, so generating load costs next to
//! nothing beside the syscalls and the receiver is what gets measured.
//!
//! `--unique` is the correctness mode (crash and disk-space tests): every body names its
//! connection and sequence number, so a reader of the output can tell which events
//! arrived, how often; a batch is retried until it is acknowledged, and a broken
//! connection (the agent died) counts as "not acknowledged" and is reopened with back-off,
//! so one run outlives any number of agent restarts. `--acked-log` records the outcome
//! of every attempt, one line per batch. Each batch is encoded anew: not for benchmarks.

use super::ToolError;
use crate::avro_rpc::client::{ClientConn, ClientReply};
use crate::avro_rpc::conn::{self, Compression, Conn, Tls};
use crate::avro_rpc::protocol::Status;
use crate::event::{Event, Headers};
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_uring::buf::BoundedBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Avro,
    Netcat,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub connections: usize,
    pub batch: usize,
    pub size: usize,
    /// Stop after this many events (acknowledged or failed) ...
    pub count: Option<u64>,
    /// ... or after this long.
    pub duration: Option<Duration>,
    pub compression: Compression,
    /// TLS for avro connections (netcat is always plain).
    pub tls: Tls,
    pub timeout: Duration,
    /// Unique bodies, retry until acknowledged, reconnect (avro only).
    pub unique: bool,
    /// With `unique`: append one line per batch attempt here.
    pub acked_log: Option<PathBuf>,
    /// Busy-poll window after each read (`runtime::spin`).
    pub spin: Duration,
    /// Events per second over all connections (`--rate`); unpaced when `None`.
    pub rate: Option<f64>,
    /// Headers every avro event carries, in this order.
    pub headers: Vec<(String, String)>,
    /// TCP congestion control for the connections (`TCP_CONGESTION`); the system's
    /// default when `None`.
    pub congestion: Option<String>,
    /// Set (by SIGINT/SIGTERM) to end the run after the batches in flight.
    pub stop: Arc<AtomicBool>,
}

/// Length of the id that starts every `--unique` body: `CCCCCC-SSSSSSSSSSSSS`, the
/// connection and the event's sequence number on it, both zero-padded decimal.
pub const UNIQUE_ID_LEN: usize = 20;
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub acked: u64,
    pub failed_batches: u64,
    /// Events sent and never acknowledged: refused without a retry (count and time runs
    /// without `--unique`), or still refused when the run ended (`--unique`). Not zero
    /// makes `loadgen` exit with status 3.
    pub unacked_events: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub mb_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub batches: u64,
    /// Batches whose connection broke before the answer (`--unique` retries them).
    pub unanswered_batches: u64,
    /// Connections opened again after one broke.
    pub reconnects: u64,
    /// Bytes of the Avro RPC frame of one full batch after the handshake, before any
    /// compression or TLS (what `examples/tcp_floor` sends to time the kernel's share);
    /// 0 for netcat and `--unique` runs, or when no full batch was sent.
    pub batch_frame_bytes: u64,
}

impl Summary {
    pub fn json(&self, o: &LoadOptions) -> String {
        format!(
            concat!(
                r#"{{"protocol":"{}","connections":{},"batch":{},"size":{},"acked_events":{},"#,
                r#""failed_batches":{},"unacked_events":{},"batches":{},"seconds":{:.3},"#,
                r#""events_per_sec":{:.0},"#,
                r#""mb_per_sec":{:.2},"p50_ms":{:.3},"p99_ms":{:.3},"unanswered_batches":{},"#,
                r#""reconnects":{},"batch_frame_bytes":{}}}"#
            ),
            match o.protocol {
                Protocol::Avro => "avro",
                Protocol::Netcat => "netcat",
            },
            o.connections,
            o.batch,
            o.size,
            self.acked,
            self.failed_batches,
            self.unacked_events,
            self.batches,
            self.seconds,
            self.events_per_sec,
            self.mb_per_sec,
            self.p50_ms,
            self.p99_ms,
            self.unanswered_batches,
            self.reconnects,
            self.batch_frame_bytes,
        )
    }
}

/// Shared by the connection tasks (one thread: cells, no atomics).
struct Shared {
    /// Events not yet claimed by a connection (count mode).
    unclaimed: Cell<u64>,
    /// Events claimed so far, for `--rate`: the next batch is due when the ones before it
    /// have had their share of time.
    claimed: Cell<u64>,
    rate: Option<f64>,
    started: Instant,
    deadline: Option<Instant>,
    acked: Cell<u64>,
    failed_batches: Cell<u64>,
    unacked_events: Cell<u64>,
    unanswered_batches: Cell<u64>,
    reconnects: Cell<u64>,
    batch_frame_bytes: Cell<u64>,
    latencies_us: RefCell<Vec<u32>>,
    error: RefCell<Option<String>>,
    stop: Arc<AtomicBool>,
    acked_log: RefCell<Option<std::fs::File>>,
}

impl Shared {
    /// Claims the next batch: its size, or None when the run is over.
    fn claim(&self, batch: usize) -> Option<usize> {
        if self.over() {
            return None;
        }
        let left = self.unclaimed.get();
        if left == 0 {
            return None;
        }
        let n = (batch as u64).min(left);
        self.unclaimed.set(left - n);
        self.claimed.set(self.claimed.get() + n);
        Some(n as usize)
    }

    /// With `--rate`, waits until the batch just claimed is due.
    async fn pace(&self, n: usize) {
        if let Some(rate) = self.rate {
            let before = (self.claimed.get() - n as u64) as f64;
            let due = self.started + Duration::from_secs_f64(before / rate);
            tokio::time::sleep_until(due.into()).await;
        }
    }

    /// The run ends: an error, the deadline, or a stop signal.
    fn over(&self) -> bool {
        self.error.borrow().is_some()
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.stop.load(Ordering::Relaxed)
    }

    /// One `--acked-log` line: `<outcome> <connection> <first seq> <end seq>` (end
    /// exclusive); outcome is ok, failed (the agent answered FAILED) or unanswered.
    fn log_batch(&self, outcome: &str, conn: usize, first: u64, n: usize) -> Result<(), String> {
        if let Some(f) = self.acked_log.borrow_mut().as_mut() {
            // One write per line, unbuffered: a reader polling the file mid-run sees
            // every outcome as soon as loadgen knows it.
            let line = format!("{outcome} {conn} {first} {}\n", first + n as u64);
            f.write_all(line.as_bytes())
                .map_err(|e| format!("cannot write the acked log: {e}"))?;
        }
        Ok(())
    }

    fn record(&self, started: Instant) {
        let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
        self.latencies_us.borrow_mut().push(us);
    }
}

fn body(size: usize, salt: usize) -> Bytes {
    // Printable, no newline: the same bytes work for netcat lines and text sinks.
    Bytes::from(
        (0..size)
            .map(|i| b'a' + ((i + salt) % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

pub fn run(o: &LoadOptions) -> Result<Summary, ToolError> {
    if o.unique {
        if o.protocol != Protocol::Avro {
            return Err(ToolError::Input(
                "--unique drives avro only (netcat has no batch acknowledgement)".into(),
            ));
        }
        if o.size < UNIQUE_ID_LEN {
            return Err(ToolError::Input(format!(
                "--unique needs --size of at least {UNIQUE_ID_LEN} (the id in each body)"
            )));
        }
    }
    crate::runtime::start_uring(async {
        // Connect everything first, so the clock measures sending, not connecting.
        let (compression, tls) = match o.protocol {
            Protocol::Avro => (o.compression, o.tls.clone()),
            Protocol::Netcat => (Compression::None, Tls::None),
        };
        let mut streams = Vec::new();
        for _ in 0..o.connections {
            let c = conn::open(&o.host, o.port, o.timeout, 1 << 20, compression, &tls)
                .await
                .map_err(|e| ToolError::Connect(format!("{}:{}: {e}", o.host, o.port)))?;
            set_congestion(&c, o).map_err(ToolError::Option)?;
            streams.push(c);
        }
        let acked_log = match &o.acked_log {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| ToolError::Input(format!("{}: {e}", p.display())))?,
            ),
            None => None,
        };
        let shared = Rc::new(Shared {
            unclaimed: Cell::new(o.count.unwrap_or(u64::MAX)),
            claimed: Cell::new(0),
            rate: o.rate,
            started: Instant::now(),
            deadline: o.duration.map(|d| Instant::now() + d),
            acked: Cell::new(0),
            failed_batches: Cell::new(0),
            unacked_events: Cell::new(0),
            unanswered_batches: Cell::new(0),
            reconnects: Cell::new(0),
            batch_frame_bytes: Cell::new(0),
            latencies_us: RefCell::new(Vec::new()),
            error: RefCell::new(None),
            stop: o.stop.clone(),
            acked_log: RefCell::new(acked_log),
        });
        let spinner = tokio_uring::spawn(crate::runtime::spin::run(o.spin));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, s) in streams.into_iter().enumerate() {
            let (shared, o) = (shared.clone(), o.clone());
            tasks.push(tokio_uring::spawn(async move {
                let r = match o.protocol {
                    Protocol::Avro if o.unique => avro_unique_conn(s, &o, &shared, i).await,
                    Protocol::Avro => avro_conn(s, &o, &shared, i).await,
                    Protocol::Netcat => netcat_conn(s, &o, &shared, i).await,
                };
                if let Err(e) = r {
                    shared.error.borrow_mut().get_or_insert(e);
                }
            }));
        }
        let progress = std::io::stderr().is_terminal().then(|| {
            let shared = shared.clone();
            tokio_uring::spawn(async move {
                let mut last = 0;
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let now = shared.acked.get();
                    eprint!(
                        "\r{:>12} events acknowledged, {:>10} events/s   ",
                        now,
                        now - last
                    );
                    last = now;
                }
            })
        });
        for t in tasks {
            let _ = t.await;
        }
        spinner.abort();
        if let Some(p) = progress {
            p.abort();
            eprintln!();
        }
        let seconds = start.elapsed().as_secs_f64();
        if let Some(e) = shared.error.borrow_mut().take() {
            return Err(ToolError::Rpc(e));
        }
        let mut lat = std::mem::take(&mut *shared.latencies_us.borrow_mut());
        lat.sort_unstable();
        let pct = |p: f64| {
            if lat.is_empty() {
                0.0
            } else {
                lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
            }
        };
        let acked = shared.acked.get();
        Ok(Summary {
            acked,
            failed_batches: shared.failed_batches.get(),
            unacked_events: shared.unacked_events.get(),
            seconds,
            events_per_sec: acked as f64 / seconds,
            mb_per_sec: (acked * o.size as u64) as f64 / seconds / 1e6,
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
            batches: lat.len() as u64,
            unanswered_batches: shared.unanswered_batches.get(),
            reconnects: shared.reconnects.get(),
            batch_frame_bytes: shared.batch_frame_bytes.get(),
        })
    })
}

async fn avro_conn(mut s: Conn, o: &LoadOptions, sh: &Shared, i: usize) -> Result<(), String> {
    let events: Vec<Event> = (0..o.batch)
        .map(|j| Event::with_headers(headers(o), body(o.size, i + j)))
        .collect();
    let mut client = ClientConn::new(false);
    // A full batch encoded after the handshake, resent with new serials.
    let mut template: Option<BytesMut> = None;
    let mut buf = BytesMut::new();
    while let Some(n) = sh.claim(o.batch) {
        sh.pace(n).await;
        let started = Instant::now();
        let status = loop {
            let sent = match template.take() {
                Some(mut t) if n == o.batch => {
                    client.reuse_frame(&mut t);
                    template = Some(s.send_keep(t).await.map_err(|e| e.to_string())?);
                    Ok(())
                }
                kept => {
                    template = kept;
                    buf.clear();
                    let reusable = client.established() && n == o.batch;
                    client.encode_batch(&events[..n], &mut buf);
                    if reusable {
                        sh.batch_frame_bytes.set(buf.len() as u64);
                    }
                    let r = s.send_keep(std::mem::take(&mut buf)).await;
                    r.map(|b| {
                        if reusable {
                            template = Some(b);
                        } else {
                            buf = b;
                        }
                    })
                }
            };
            sent.map_err(|e| format!("write failed: {e}"))?;
            let frame = tokio::time::timeout(o.timeout, s.next())
                .await
                .map_err(|_| format!("no answer within {:?}", o.timeout))?
                .map_err(|e| e.to_string())?
                .ok_or("the server closed the connection")?;
            match client.on_frame(&frame).map_err(|e| e.to_string())? {
                ClientReply::Status { status, .. } => break status,
                ClientReply::Resend => continue,
            }
        };
        sh.record(started);
        if status == Status::Ok {
            sh.acked.set(sh.acked.get() + n as u64);
        } else {
            sh.failed_batches.set(sh.failed_batches.get() + 1);
            sh.unacked_events.set(sh.unacked_events.get() + n as u64);
        }
    }
    Ok(())
}

fn headers(o: &LoadOptions) -> Headers {
    o.headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// `n` events whose bodies are `CCCCCC-SSSSSSSSSSSSS` (connection `conn`, sequence
/// numbers from `first`) padded with dots to `size` bytes: one buffer per batch, each body
/// a slice of it.
pub fn unique_batch(conn: usize, first: u64, n: usize, size: usize) -> Vec<Event> {
    let mut buf = BytesMut::with_capacity(n * size);
    for seq in first..first + n as u64 {
        let at = buf.len();
        write!(buf, "{conn:06}-{seq:013}").expect("BytesMut grows");
        buf.resize(at + size, b'.');
    }
    let buf = buf.freeze();
    (0..n)
        .map(|j| Event::new(Bytes::slice(&buf, j * size..(j + 1) * size)))
        .collect()
}

/// One avro connection's protocol state, made afresh for every reconnect (a new
/// connection starts with a new handshake).
struct AvroConn {
    conn: Conn,
    client: ClientConn,
}

/// Why a batch was not acknowledged.
enum Unanswered {
    /// The connection broke (write, read, end of stream or timeout): reconnect and retry.
    Broken,
    /// The server is not speaking Flume's protocol: retrying cannot help.
    Fatal(String),
}

impl AvroConn {
    fn new(conn: Conn) -> AvroConn {
        AvroConn {
            conn,
            client: ClientConn::new(false),
        }
    }

    /// Sends `events` as one appendBatch and waits for the answer.
    async fn send(
        &mut self,
        events: &[Event],
        buf: &mut BytesMut,
        timeout: Duration,
    ) -> Result<Status, Unanswered> {
        loop {
            buf.clear();
            self.client.encode_batch(events, buf);
            let sent = self.conn.send(std::mem::take(buf)).await;
            *buf = sent.map_err(|_| Unanswered::Broken)?;
            let frame = match tokio::time::timeout(timeout, self.conn.next()).await {
                Ok(Ok(Some(frame))) => frame,
                _ => return Err(Unanswered::Broken),
            };
            match self.client.on_frame(&frame) {
                Ok(ClientReply::Status { status, .. }) => return Ok(status),
                Ok(ClientReply::Resend) => continue,
                Err(e) => return Err(Unanswered::Fatal(e.to_string())),
            }
        }
    }
}

/// The `--unique` connection: each claimed batch gets the next sequence numbers of this
/// connection and is sent until acknowledged (or the run ends), whatever happens to the
/// agent in between.
async fn avro_unique_conn(c: Conn, o: &LoadOptions, sh: &Shared, i: usize) -> Result<(), String> {
    let mut conn = Some(AvroConn::new(c));
    let mut buf = BytesMut::new();
    let mut next_seq = 0u64;
    let mut backoff = BACKOFF_MIN;
    while let Some(n) = sh.claim(o.batch) {
        sh.pace(n).await;
        let first = next_seq;
        next_seq += n as u64;
        let mut events = unique_batch(i, first, n, o.size);
        if !o.headers.is_empty() {
            for e in &mut events {
                e.headers = headers(o);
            }
        }
        loop {
            let c = match &mut conn {
                Some(c) => c,
                None => {
                    match conn::open(&o.host, o.port, o.timeout, 1 << 20, o.compression, &o.tls)
                        .await
                    {
                        Ok(c) => {
                            set_congestion(&c, o)?;
                            sh.reconnects.set(sh.reconnects.get() + 1);
                            conn.insert(AvroConn::new(c))
                        }
                        Err(_) => {
                            if sh.over() {
                                sh.unacked_events.set(sh.unacked_events.get() + n as u64);
                                return Ok(());
                            }
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            continue;
                        }
                    }
                }
            };
            let started = Instant::now();
            match c.send(&events, &mut buf, o.timeout).await {
                Ok(Status::Ok) => {
                    sh.record(started);
                    sh.acked.set(sh.acked.get() + n as u64);
                    sh.log_batch("ok", i, first, n)?;
                    backoff = BACKOFF_MIN;
                    break;
                }
                Ok(_) => {
                    sh.failed_batches.set(sh.failed_batches.get() + 1);
                    sh.log_batch("failed", i, first, n)?;
                }
                Err(Unanswered::Broken) => {
                    sh.unanswered_batches.set(sh.unanswered_batches.get() + 1);
                    sh.log_batch("unanswered", i, first, n)?;
                    conn = None;
                }
                Err(Unanswered::Fatal(e)) => return Err(e),
            }
            // Not acknowledged: the same events again, after a pause that grows while
            // the agent keeps refusing or stays away.
            if sh.over() {
                sh.unacked_events.set(sh.unacked_events.get() + n as u64);
                return Ok(());
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
    Ok(())
}

/// Applies `--congestion` to a connection. Why: on loopback the sender's congestion
/// control shapes big frames (with `bbr`, batches above about 1 MiB ran at 60% of the
/// events/s of smaller ones on this machine, with `cubic` at 90%), and a benchmark should
/// be able to choose it, or at least say which it used.
fn set_congestion(c: &Conn, o: &LoadOptions) -> Result<(), String> {
    let Some(name) = &o.congestion else {
        return Ok(());
    };
    socket2::SockRef::from(&crate::runtime::direct_io::sock(c.stream()))
        .set_tcp_congestion(name.as_bytes())
        .map_err(|e| {
            let available =
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
                    .map(|a| format!(" (available: {})", a.trim()))
                    .unwrap_or_default();
            format!("--congestion {name}: {e}{available}")
        })
}

async fn netcat_conn(c: Conn, o: &LoadOptions, sh: &Shared, i: usize) -> Result<(), String> {
    let s = c.stream();
    let mut batch = Vec::with_capacity(o.batch * (o.size + 1));
    for j in 0..o.batch {
        batch.extend_from_slice(&body(o.size, i + j));
        batch.push(b'\n');
    }
    let mut batch = Some(batch);
    let mut acks = BytesMut::with_capacity(64 * 1024);
    while let Some(n) = sh.claim(o.batch) {
        sh.pace(n).await;
        let started = Instant::now();
        let mut out = batch.take().expect("returned after each write");
        let len = n * (o.size + 1);
        let (r, slice) = s.write_all(out.slice(..len)).await;
        out = slice.into_inner();
        batch = Some(out);
        r.map_err(|e| format!("write failed: {e}"))?;
        // One answer line per event: "OK" or "FAILED: ...".
        let mut lines = 0;
        let mut ok = 0;
        while lines < n {
            if acks.capacity() - acks.len() < 1024 {
                acks.reserve(64 * 1024);
            }
            let at = acks.len();
            let read = tokio::time::timeout(o.timeout, s.read(acks.slice(at..))).await;
            let (r, slice) = read.map_err(|_| format!("no answer within {:?}", o.timeout))?;
            acks = slice.into_inner();
            if r.map_err(|e| format!("read failed: {e}"))? == 0 {
                return Err("the server closed the connection".into());
            }
            while let Some(nl) = acks.iter().position(|&b| b == b'\n') {
                let line = acks.split_to(nl + 1);
                lines += 1;
                if line.starts_with(b"OK") {
                    ok += 1;
                }
            }
        }
        sh.record(started);
        sh.acked.set(sh.acked.get() + ok);
        if ok < n as u64 {
            sh.failed_batches.set(sh.failed_batches.get() + 1);
            sh.unacked_events
                .set(sh.unacked_events.get() + n as u64 - ok);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(congestion: Option<&str>) -> LoadOptions {
        LoadOptions {
            host: "127.0.0.1".into(),
            port: 0,
            protocol: Protocol::Avro,
            connections: 1,
            batch: 1,
            size: 1,
            count: Some(1),
            duration: None,
            compression: Compression::None,
            tls: Tls::None,
            timeout: Duration::from_secs(5),
            unique: false,
            acked_log: None,
            spin: Duration::ZERO,
            rate: None,
            headers: Vec::new(),
            congestion: congestion.map(str::to_string),
            stop: Default::default(),
        }
    }

    #[test]
    fn congestion_control_is_set_on_the_connection_or_refused_with_the_choices() {
        crate::runtime::start_uring(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let c = conn::open(
                "127.0.0.1",
                port,
                Duration::from_secs(5),
                1 << 20,
                Compression::None,
                &Tls::None,
            )
            .await
            .unwrap();
            let current = || {
                socket2::SockRef::from(&crate::runtime::direct_io::sock(c.stream()))
                    .tcp_congestion()
                    .unwrap()
                    .into_iter()
                    .take_while(|&b| b != 0)
                    .collect::<Vec<u8>>()
            };
            // reno is built into every Linux kernel; the default here is something else
            // or reno itself, and either way reno must be what is read back.
            set_congestion(&c, &options(Some("reno"))).unwrap();
            assert_eq!(current(), b"reno");
            let before = current();
            set_congestion(&c, &options(None)).unwrap();
            assert_eq!(current(), before, "no option: left alone");
            let e = set_congestion(&c, &options(Some("no-such-algorithm"))).unwrap_err();
            assert!(e.starts_with("--congestion no-such-algorithm: "), "{e}");
            assert!(e.contains("available: ") && e.contains("reno"), "{e}");
        });
    }
}
