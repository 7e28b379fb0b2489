//! The sequence generator source (`seq`, `org.apache.flume.source.SequenceGeneratorSource`):
//! bodies "0", "1", ... up to `totalEvents`, `batchSize` per transaction. A refused batch is
//! retried with the same bodies, so the unique count at the destination is `totalEvents`.
//! It is a single stream: it runs on one shard.

use super::{Bound, Plan, Shard, SourceCtx, SourceType};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use bytes::Bytes;
use std::rc::Rc;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "batchSize",
        KeyKind::POSITIVE,
        Some("1"),
        "Number of events per transaction",
    ),
    KeySpec::new(
        "totalEvents",
        KeyKind::NON_NEGATIVE,
        Some("9223372036854775807"),
        "Number of unique events sent by the source",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["seq"],
    class: "org.apache.flume.source.SequenceGeneratorSource",
    doc: "Generates events whose bodies count up from 0; for testing.",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqConfig {
    pub batch_size: usize,
    pub total_events: u64,
}

impl Component for SeqConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(SeqConfig {
            batch_size: k.usize("batchSize")?,
            total_events: k.int("totalEvents")? as u64,
        })
    }
}

impl SourceType for SeqConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Ok(Plan::HOME_SHARD)
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        Ok(Bound::new(self.clone(), run))
    }
}

async fn run(cfg: SeqConfig, ctx: Rc<SourceCtx>) {
    let mut next = 0u64;
    while !ctx.stop.is_stopped() && next < cfg.total_events {
        let end = cfg.total_events.min(next + cfg.batch_size as u64);
        let batch: Vec<Event> = (next..end)
            .map(|i| Event::new(Bytes::from(i.to_string())))
            .collect();
        if ctx.deliver_all(batch, &"the sequence").await < (end - next) as usize {
            return; // stopping
        }
        next = end;
        // Let the shard's sinks and connections run between batches.
        tokio::task::yield_now().await;
    }
    if next >= cfg.total_events {
        tracing::info!(source = %ctx.name, "sequence complete: {} events", cfg.total_events);
    }
}
