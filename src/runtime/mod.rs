//! The runtime: N shard threads, each pinned to a core and running its own io_uring event
//! loop with the whole topology, plus the main thread that starts them, waits for signals
//! and stops them. Threads talk only at start, at shutdown and to report counters.

pub mod budget;
pub mod child;
pub mod clock;
pub mod direct_io;
pub mod host;
pub mod local;
pub mod metrics;
mod shard;
pub mod socket;
pub mod spin;
pub mod state_file;
pub mod tick;

use crate::config::AgentConfig;
use crate::source::Listen;
use metrics::Snapshot;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub shards: usize,
    /// How long sinks may keep draining channels after a stop signal.
    pub drain_timeout: Duration,
    /// How long a shard keeps polling its event loop after the last socket read before it
    /// sleeps (see `spin`); zero never polls.
    pub spin: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{component}: {message}")]
    Component { component: String, message: String },
    #[error("cannot start shard thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("shard {0} ended unexpectedly")]
    ShardPanicked(usize),
}

/// What shards and the signal thread tell the main thread.
enum Msg {
    Ready(usize),
    /// The shard could not start (or panicked) and has ended.
    Failed(usize, RuntimeError),
    Done(usize, Snapshot),
    Signal(i32),
}

/// Runs `future` on a new io_uring event loop on this thread. The ring is set up with
/// cooperative task running: completions for this thread are run at its next system call
/// instead of interrupting it with an inter-processor interrupt, which on a virtual machine
/// costs more than the work it delivers. Every thread here either polls (`spin`) or sleeps
/// in the event loop, so nothing waits on that. Kernels before 5.19 lack the flag and get the
/// default ring.
pub fn start_uring<F: std::future::Future>(future: F) -> F::Output {
    let mut b = tokio_uring::builder();
    b.uring_builder(tokio_uring::uring_builder().setup_coop_taskrun());
    match tokio_uring::Runtime::new(&b) {
        Ok(rt) => rt.block_on(future),
        Err(_) => tokio_uring::start(future),
    }
}

/// Runs the agent until SIGINT/SIGTERM (Ok) or a component failure (Err).
pub fn run(cfg: AgentConfig, opts: RunOptions) -> Result<Snapshot, RuntimeError> {
    let shards = opts.shards.max(1);
    check_ports(&cfg)?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if shards > cores.len() && !cores.is_empty() {
        tracing::warn!(
            "--cores {shards} exceeds the {} CPUs this process may use; shards will share CPUs",
            cores.len()
        );
    }

    let (tx, rx) = mpsc::channel::<Msg>();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(RuntimeError::Signals)?;
    let signal_handle = signals.handle();
    {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("flume-fast-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(Msg::Signal(sig)).is_err() {
                        break;
                    }
                }
            })
            .map_err(RuntimeError::Thread)?;
    }

    let cfg = Arc::new(cfg);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for k in 0..shards {
        let core = (!cores.is_empty()).then(|| cores[k % cores.len()]);
        let (cfg, tx, stop_rx, opts) = (cfg.clone(), tx.clone(), stop_rx.clone(), opts.clone());
        let handle = std::thread::Builder::new()
            .name(format!("shard-{k}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let report = tx.clone();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    start_uring(shard::run(k, shards, &cfg, stop_rx, &opts, tx))
                }));
                if result.is_err() {
                    let _ = report.send(Msg::Failed(k, RuntimeError::ShardPanicked(k)));
                }
            })
            .map_err(RuntimeError::Thread)?;
        threads.push(handle);
    }
    drop(tx);

    let mut ready = 0;
    let mut done = 0;
    let mut failure: Option<RuntimeError> = None;
    let mut stopping = false;
    let mut totals = Snapshot::default();
    while done < shards {
        let Ok(msg) = rx.recv() else { break };
        match msg {
            Msg::Ready(k) => {
                tracing::debug!("shard {k} ready");
                ready += 1;
                if ready == shards && !stopping {
                    tracing::info!(
                        "agent '{}' started: {shards} shard{}, {} source{}, {} channel{}, {} sink{}",
                        cfg.name,
                        if shards == 1 { "" } else { "s" },
                        cfg.sources.len(),
                        if cfg.sources.len() == 1 { "" } else { "s" },
                        cfg.channels.len(),
                        if cfg.channels.len() == 1 { "" } else { "s" },
                        cfg.sinks.len(),
                        if cfg.sinks.len() == 1 { "" } else { "s" },
                    );
                }
            }
            Msg::Failed(k, e) => {
                // A shard reports Failed instead of Done (it failed to start, or panicked):
                // it is finished too, or the loop would wait for it forever.
                done += 1;
                tracing::error!("shard {k}: {e}");
                failure.get_or_insert(e);
                if !stopping {
                    stopping = true;
                    let _ = stop_tx.send(true);
                }
            }
            Msg::Done(k, snapshot) => {
                tracing::debug!("shard {k} stopped");
                done += 1;
                totals.merge(&snapshot);
            }
            Msg::Signal(sig) => {
                if stopping {
                    tracing::warn!("second signal: exiting without waiting for the drain");
                    std::process::exit(130);
                }
                tracing::info!(
                    "signal {sig}: stopping sources, draining channels (up to {:?})",
                    opts.drain_timeout
                );
                stopping = true;
                let _ = stop_tx.send(true);
            }
        }
    }
    signal_handle.close();
    for (k, t) in threads.into_iter().enumerate() {
        if t.join().is_err() {
            failure.get_or_insert(RuntimeError::ShardPanicked(k));
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(totals),
    }
}

/// With SO_REUSEPORT our shards share a port; another process must not be able to share it
/// silently, so a port that is already taken fails the start here.
fn check_ports(cfg: &AgentConfig) -> Result<(), RuntimeError> {
    for s in &cfg.sources {
        let fail = |e: std::io::Error| RuntimeError::Component {
            component: format!("source '{}'", s.name),
            message: e.to_string(),
        };
        for listen in s.kind.plan().map_err(fail)?.listens {
            let (addr, probe): (_, fn(std::net::SocketAddr) -> std::io::Result<()>) = match listen {
                Listen::Tcp(addr) => (addr, socket::ensure_tcp_port_free),
                Listen::Udp(addr) => (addr, socket::ensure_udp_port_free),
            };
            // Port 0 asks the kernel for any free port: nothing to check.
            if addr.port() == 0 {
                continue;
            }
            wait_for_port(addr, probe, PORT_BUSY_WAIT).map_err(|e| {
                fail(std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr}: {e}"),
                ))
            })?;
        }
    }
    Ok(())
}

/// How long a port in use may take to come free before the start fails. Why: an agent
/// restarted right after a crash (kill -9, the OOM killer) finds its own port still taken
/// for a few milliseconds, while the kernel tears down the dead process's io_uring and the
/// sockets its requests hold (5-10 ms here); a supervisor restarting it at once must not
/// see that as a conflict.
const PORT_BUSY_WAIT: Duration = Duration::from_secs(2);

fn wait_for_port(
    addr: std::net::SocketAddr,
    probe: fn(std::net::SocketAddr) -> std::io::Result<()>,
    patience: Duration,
) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + patience;
    let mut said = false;
    loop {
        match probe(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                if !said {
                    tracing::info!("{addr} is in use; waiting up to {patience:?} for it (a previous instance may still be closing)");
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}
