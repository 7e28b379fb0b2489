//! The null sink (`null`, `org.apache.flume.sink.NullSink`): takes batches and discards
//! them, so a flow can be measured without a destination.

use super::{LocalBoxFuture, ShardSink, SinkError, SinkType};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use tokio::time::Instant;

const KEYS: &[KeySpec] = &[KeySpec::new(
    "batchSize",
    KeyKind::POSITIVE,
    Some("100"),
    "Events per take transaction",
)];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["null"],
    class: "org.apache.flume.sink.NullSink",
    doc: "Discards every event it takes.",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NullConfig {
    pub batch_size: usize,
}

impl Component for NullConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(NullConfig {
            batch_size: k.usize("batchSize")?,
        })
    }
}

impl SinkType for NullConfig {
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn open(&self, _: &str, _: usize, _: usize) -> Result<Box<dyn ShardSink>, SinkError> {
        Ok(Box::new(NullSink))
    }
}

/// One shard's null sink: nothing to hold.
pub struct NullSink;

impl ShardSink for NullSink {
    fn process<'a>(&'a mut self, _: &'a [Event]) -> LocalBoxFuture<'a, Result<(), SinkError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Nothing is time-driven: all the work is in `process`.
    fn next_tick(&self) -> Option<Instant> {
        None
    }

    fn tick(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn close(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}
