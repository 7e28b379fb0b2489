//! Sources: the registry of source types (alias and Java class name → typed config) and the
//! per-shard running part. Network sources bind on every shard (SO_REUSEPORT); single-stream
//! sources (seq, stress) run on the one shard their name hashes to.

pub mod avro;
pub mod netcat;
pub mod netcat_udp;
pub mod seq;
pub mod stress;

use crate::config::Registration;
use crate::flow::delivery::Delivery;
use crate::runtime::local::Stop;
use crate::runtime::metrics::{Counter, Registry};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum SourceKind {
    Avro(avro::AvroSourceConfig),
    Netcat(netcat::NetcatConfig),
    NetcatUdp(netcat_udp::NetcatUdpConfig),
    Seq(seq::SeqConfig),
    Stress(stress::StressConfig),
}

/// The source types, one line each.
pub static TYPES: &[Registration<SourceKind>] = &[
    Registration {
        info: avro::TYPE,
        build: |k| Ok(SourceKind::Avro(avro::AvroSourceConfig::from_keys(k)?)),
    },
    Registration {
        info: netcat::TYPE,
        build: |k| Ok(SourceKind::Netcat(netcat::NetcatConfig::from_keys(k)?)),
    },
    Registration {
        info: netcat_udp::TYPE,
        build: |k| {
            Ok(SourceKind::NetcatUdp(
                netcat_udp::NetcatUdpConfig::from_keys(k)?,
            ))
        },
    },
    Registration {
        info: seq::TYPE,
        build: |k| Ok(SourceKind::Seq(seq::SeqConfig::from_keys(k)?)),
    },
    Registration {
        info: stress::TYPE,
        build: |k| Ok(SourceKind::Stress(stress::StressConfig::from_keys(k)?)),
    },
];

/// Where a network source listens, for the port check before shards start.
pub enum Listen {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    None,
}

impl SourceKind {
    /// Single-stream sources run on one shard only; network sources on all.
    pub fn single_stream(&self) -> bool {
        matches!(self, SourceKind::Seq(_) | SourceKind::Stress(_))
    }

    pub fn listen(&self) -> std::io::Result<Listen> {
        Ok(match self {
            SourceKind::Avro(c) => Listen::Tcp(crate::runtime::socket::resolve(&c.bind, c.port)?),
            SourceKind::Netcat(c) => Listen::Tcp(crate::runtime::socket::resolve(&c.bind, c.port)?),
            SourceKind::NetcatUdp(c) => {
                Listen::Udp(crate::runtime::socket::resolve(&c.bind, c.port)?)
            }
            _ => Listen::None,
        })
    }

    /// Acquires what the source needs before the shard reports ready (sockets).
    pub fn bind(&self) -> std::io::Result<Bound> {
        Ok(match self {
            SourceKind::Avro(c) => Bound::Avro(avro::bind(c)?),
            SourceKind::Netcat(c) => Bound::Netcat(netcat::bind(c)?),
            SourceKind::NetcatUdp(c) => Bound::NetcatUdp(netcat_udp::bind(c)?),
            SourceKind::Seq(c) => Bound::Seq(c.clone()),
            SourceKind::Stress(c) => Bound::Stress(c.clone()),
        })
    }
}

/// A TCP source's listening socket (bound with SO_REUSEPORT before the shard reports
/// ready) and the configuration its connections are served with.
pub struct TcpListening<C> {
    pub listener: std::net::TcpListener,
    pub cfg: C,
}

impl<C: Clone> TcpListening<C> {
    pub fn bind(host: &str, port: u16, cfg: &C) -> std::io::Result<Self> {
        let addr = crate::runtime::socket::resolve(host, port)?;
        Ok(TcpListening {
            listener: crate::runtime::socket::tcp_listener(addr)?,
            cfg: cfg.clone(),
        })
    }
}

/// Accepts connections until the source stops, runs each on its own task (`serve` makes
/// the task, or `None` to turn the connection away), then waits for the connections still
/// open to end (they see the stop too) before returning.
pub async fn accept_loop<F, Fut>(listener: std::net::TcpListener, ctx: &SourceCtx, mut serve: F)
where
    F: FnMut(tokio_uring::net::TcpStream, SocketAddr) -> Option<Fut>,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let listener = tokio_uring::net::TcpListener::from_std(listener);
    let open = Rc::new(std::cell::Cell::new(0usize));
    let closed = Rc::new(crate::runtime::local::LocalNotify::default());
    loop {
        let accepted = tokio::select! {
            _ = ctx.stop.wait() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(source = %ctx.name, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(task) = serve(stream, peer) else {
            continue;
        };
        open.set(open.get() + 1);
        let (open, closed) = (open.clone(), closed.clone());
        tokio_uring::spawn(async move {
            task.await;
            open.set(open.get() - 1);
            closed.notify_all();
        });
    }
    drop(listener);
    while open.get() > 0 {
        closed.notified().await;
    }
}

/// A source of one shard, ready to run.
pub enum Bound {
    Avro(avro::Listening),
    Netcat(netcat::Listening),
    NetcatUdp(netcat_udp::Listening),
    Seq(seq::SeqConfig),
    Stress(stress::StressConfig),
}

/// What a running source gets from its shard.
pub struct SourceCtx {
    pub name: String,
    pub delivery: Delivery,
    pub stop: Stop,
    /// Events committed to the channels.
    pub accepted: Counter,
    /// Events a channel refused (counted per attempt; stream sources retry them).
    pub refused: Counter,
}

impl SourceCtx {
    pub fn new(name: &str, delivery: Delivery, stop: Stop, metrics: &mut Registry) -> Self {
        SourceCtx {
            name: name.to_string(),
            delivery,
            stop,
            accepted: metrics.counter(name, "events.accepted"),
            refused: metrics.counter(name, "events.refused"),
        }
    }
}

impl Bound {
    pub async fn run(self, ctx: Rc<SourceCtx>) {
        match self {
            Bound::Avro(l) => avro::run(l, ctx).await,
            Bound::Netcat(l) => netcat::run(l, ctx).await,
            Bound::NetcatUdp(l) => netcat_udp::run(l, ctx).await,
            Bound::Seq(c) => seq::run(c, ctx).await,
            Bound::Stress(c) => stress::run(c, ctx).await,
        }
    }
}

/// Exponential back-off for retrying a refused put: 10 ms doubling to 1 s.
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(10))
    }
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
        d
    }
    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}
