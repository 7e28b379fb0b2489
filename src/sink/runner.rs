//! The sink runner: the loop that drives one sink on one shard. It takes a batch in a
//! transaction, hands it to the sink, commits on success and rolls back on failure with an
//! exponential back-off (Flume's default: up to 5 s). With no events it sleeps until the
//! channel has some (no polling). On shutdown it drains the channel until empty, or until
//! the drain deadline aborts it.

use super::Sink;
use crate::channel::Channel;
use crate::runtime::metrics::{Counter, Registry};
use crate::runtime::stop::Stop;
use std::time::Duration;

pub struct SinkCtx {
    pub name: String,
    pub batch_size: usize,
    /// Sources have stopped: empty the channel, then end.
    pub drain: Stop,
    /// The drain deadline passed: end now (taken events roll back).
    pub abort: Stop,
    pub drained: Counter,
    pub failures: Counter,
}

impl SinkCtx {
    pub fn new(name: &str, batch_size: usize, drain: Stop, abort: Stop, m: &mut Registry) -> Self {
        SinkCtx {
            name: name.to_string(),
            batch_size,
            drain,
            abort,
            drained: m.counter(name, "events.drained"),
            failures: m.counter(name, "batches.failed"),
        }
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub async fn run(mut sink: Sink, channel: Channel, ctx: SinkCtx) {
    let mut backoff = Duration::ZERO;
    let mut failing = false;
    while !ctx.abort.is_stopped() {
        let tx = channel.take(ctx.batch_size);
        if tx.is_empty() {
            drop(tx);
            if ctx.drain.is_stopped() {
                break;
            }
            let tick = sink.next_tick();
            tokio::select! {
                _ = channel.wait_for_data() => {}
                _ = ctx.drain.wait() => {}
                _ = sleep_until_opt(tick) => sink.tick().await,
            }
            continue;
        }
        let result = tokio::select! {
            r = sink.process(&tx.events) => Some(r),
            _ = ctx.abort.wait() => None,
        };
        match result {
            Some(Ok(())) => {
                ctx.drained.add(tx.len() as u64);
                tx.commit();
                if failing {
                    tracing::info!(sink = %ctx.name, "sink recovered");
                    failing = false;
                }
                backoff = Duration::ZERO;
            }
            Some(Err(e)) => {
                tx.rollback();
                ctx.failures.add(1);
                backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                if !failing {
                    tracing::warn!(sink = %ctx.name, "batch failed, rolled back; retrying with back-off: {e}");
                    failing = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = ctx.abort.wait() => {}
                }
            }
            None => {
                tx.rollback();
                break;
            }
        }
    }
    sink.close().await;
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
