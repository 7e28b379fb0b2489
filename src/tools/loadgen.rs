//! `flume-fast loadgen`: drives an avro (or netcat) endpoint with C connections, each
//! sending batches of B events of S bytes and waiting for the answer before the next, for
//! a number of events or a duration. Reports acknowledged events/s, MB/s of bodies and
//! the batch latency (send to answer) p50/p99; a live progress line on a terminal and a
//! one-line JSON summary on stdout for scripts.
//!
//! It runs on one thread and one io_uring loop. Each avro connection encodes its batch
//! once and resends the same bytes with a new serial, so generating load costs next to
//! nothing beside the syscalls and the receiver is what gets measured.

use super::ToolError;
use crate::avro_rpc::client::{ClientConn, ClientReply};
use crate::avro_rpc::conn::{self, Compression, Conn, Tls};
use crate::avro_rpc::protocol::Status;
use crate::event::Event;
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::rc::Rc;
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub acked: u64,
    pub failed_batches: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub mb_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub batches: u64,
}

impl Summary {
    pub fn json(&self, o: &LoadOptions) -> String {
        format!(
            concat!(
                r#"{{"protocol":"{}","connections":{},"batch":{},"size":{},"acked_events":{},"#,
                r#""failed_batches":{},"batches":{},"seconds":{:.3},"events_per_sec":{:.0},"#,
                r#""mb_per_sec":{:.2},"p50_ms":{:.3},"p99_ms":{:.3}}}"#
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
            self.batches,
            self.seconds,
            self.events_per_sec,
            self.mb_per_sec,
            self.p50_ms,
            self.p99_ms,
        )
    }
}

/// Shared by the connection tasks (one thread: cells, no atomics).
struct Shared {
    /// Events not yet claimed by a connection (count mode).
    unclaimed: Cell<u64>,
    deadline: Option<Instant>,
    acked: Cell<u64>,
    failed_batches: Cell<u64>,
    latencies_us: RefCell<Vec<u32>>,
    error: RefCell<Option<String>>,
}

impl Shared {
    /// Claims the next batch: its size, or None when the run is over.
    fn claim(&self, batch: usize) -> Option<usize> {
        if self.error.borrow().is_some() || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let left = self.unclaimed.get();
        if left == 0 {
            return None;
        }
        let n = (batch as u64).min(left);
        self.unclaimed.set(left - n);
        Some(n as usize)
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
    tokio_uring::start(async {
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
            streams.push(c);
        }
        let shared = Rc::new(Shared {
            unclaimed: Cell::new(o.count.unwrap_or(u64::MAX)),
            deadline: o.duration.map(|d| Instant::now() + d),
            acked: Cell::new(0),
            failed_batches: Cell::new(0),
            latencies_us: RefCell::new(Vec::new()),
            error: RefCell::new(None),
        });
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, s) in streams.into_iter().enumerate() {
            let (shared, o) = (shared.clone(), o.clone());
            tasks.push(tokio_uring::spawn(async move {
                let r = match o.protocol {
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
            seconds,
            events_per_sec: acked as f64 / seconds,
            mb_per_sec: (acked * o.size as u64) as f64 / seconds / 1e6,
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
            batches: lat.len() as u64,
        })
    })
}

async fn avro_conn(mut s: Conn, o: &LoadOptions, sh: &Shared, i: usize) -> Result<(), String> {
    let events: Vec<Event> = (0..o.batch)
        .map(|j| Event::new(body(o.size, i + j)))
        .collect();
    let mut client = ClientConn::new(false);
    // A full batch encoded after the handshake, resent with new serials.
    let mut template: Option<BytesMut> = None;
    let mut buf = BytesMut::new();
    while let Some(n) = sh.claim(o.batch) {
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
        }
    }
    Ok(())
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
        }
    }
    Ok(())
}
