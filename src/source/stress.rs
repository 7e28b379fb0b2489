//! The stress source (`org.apache.flume.source.StressSource`): events of `size` random
//! bytes (one body, shared by every event: no allocation per event), `batchSize` per
//! transaction, optionally rate-limited. As in Flume, a refused batch counts as sent and
//! failed; it is not retried. A single stream: it runs on one shard.

use super::{Bound, Plan, Shard, SourceCtx, SourceType};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use bytes::Bytes;
use std::rc::Rc;
use std::time::Duration;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "size",
        KeyKind::NON_NEGATIVE,
        Some("500"),
        "Payload size of each event, in bytes",
    ),
    KeySpec::new(
        "maxTotalEvents",
        KeyKind::int(-1, i64::MAX),
        Some("-1"),
        "Maximum number of events to send (-1: no limit)",
    ),
    KeySpec::new(
        "maxSuccessfulEvents",
        KeyKind::int(-1, i64::MAX),
        Some("-1"),
        "Maximum number of events successfully sent (-1: no limit)",
    ),
    KeySpec::new(
        "batchSize",
        KeyKind::POSITIVE,
        Some("1"),
        "Number of events per transaction",
    ),
    KeySpec::new(
        "maxEventsPerSecond",
        KeyKind::NON_NEGATIVE,
        Some("0"),
        "Rate limit in events per second (0: none)",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["stress"],
    class: "org.apache.flume.source.StressSource",
    doc: "Generates fixed-size random events as fast as the channel takes them; for load tests.",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StressConfig {
    pub size: usize,
    pub max_total_events: Option<u64>,
    pub max_successful_events: Option<u64>,
    pub batch_size: usize,
    pub max_events_per_second: u64,
}

impl Component for StressConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let limit = |v: i64| (v >= 0).then_some(v as u64);
        Ok(StressConfig {
            size: k.usize("size")?,
            max_total_events: limit(k.int("maxTotalEvents")?),
            max_successful_events: limit(k.int("maxSuccessfulEvents")?),
            batch_size: k.usize("batchSize")?,
            max_events_per_second: k.int("maxEventsPerSecond")? as u64,
        })
    }
}

/// A cheap deterministic filler (xorshift): the bytes only need to look random.
fn random_body(size: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

impl SourceType for StressConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Ok(Plan::HOME_SHARD)
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        Ok(Bound::new(self.clone(), run))
    }
}

async fn run(cfg: StressConfig, ctx: Rc<SourceCtx>) {
    let body = random_body(cfg.size, crate::runtime::clock::now_millis());
    let (mut total, mut successful) = (0u64, 0u64);
    let started = tokio::time::Instant::now();
    while !ctx.stop.is_stopped() {
        let left_total = cfg
            .max_total_events
            .map_or(u64::MAX, |m| m.saturating_sub(total));
        let left_ok = cfg
            .max_successful_events
            .map_or(u64::MAX, |m| m.saturating_sub(successful));
        let n = (cfg.batch_size as u64).min(left_total).min(left_ok);
        if n == 0 {
            break;
        }
        if cfg.max_events_per_second > 0 {
            // Sleep until this batch is due at the configured rate.
            let due =
                started + Duration::from_secs_f64(total as f64 / cfg.max_events_per_second as f64);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = ctx.stop.wait() => break,
            }
        }
        let batch: Vec<Event> = (0..n).map(|_| Event::new(body.clone())).collect();
        total += n;
        match ctx.deliver(batch).await {
            Ok(()) => {
                successful += n;
                tokio::task::yield_now().await;
            }
            Err(refused) => {
                successful += n - refused.events.len() as u64;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = ctx.stop.wait() => {}
                }
            }
        }
    }
    tracing::info!(source = %ctx.name, "stress source done: {total} sent, {successful} successful");
}
