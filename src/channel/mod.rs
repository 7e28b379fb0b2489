//! Channels: where a source's committed batches wait for a sink. Each shard has its own
//! instance of every channel; a put or take is a transaction on that shard only.

pub mod memory;
mod notify;

pub use memory::{MemoryChannel, MemoryConfig};
pub use notify::LocalNotify;

use crate::config::keys::{Keys, TypeInfo};
use crate::config::ConfigError;
use crate::event::Event;
use std::rc::Rc;

#[derive(Debug, Clone)]
pub enum ChannelKind {
    Memory(MemoryConfig),
}

pub static TYPES: &[TypeInfo] = &[memory::TYPE];

pub fn configure(info: &TypeInfo, keys: &mut Keys) -> Result<ChannelKind, ConfigError> {
    match info.name() {
        "memory" => Ok(ChannelKind::Memory(MemoryConfig::from_keys(keys)?)),
        other => unreachable!("channel type {other} registered but not built"),
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ChannelError {
    #[error("channel '{channel}' is full ({capacity} events): sinks are not keeping up, waited {keep_alive_secs}s for space")]
    Full {
        channel: String,
        capacity: usize,
        keep_alive_secs: u64,
    },
    #[error("channel '{channel}' byte capacity ({byte_capacity} bytes of bodies) is reached: sinks are not keeping up")]
    Bytes { channel: String, byte_capacity: u64 },
    #[error(
        "a batch of {batch} events exceeds channel '{channel}''s transactionCapacity of {capacity}"
    )]
    TxTooLarge {
        channel: String,
        batch: usize,
        capacity: usize,
    },
}

/// One shard's instance of a channel.
#[derive(Clone)]
pub enum Channel {
    Memory(Rc<MemoryChannel>),
}

impl Channel {
    /// Builds this shard's instance of the channel; capacities are split over `shards`.
    pub fn new(name: &str, kind: &ChannelKind, shards: usize) -> Channel {
        match kind {
            ChannelKind::Memory(cfg) => {
                Channel::Memory(Rc::new(MemoryChannel::new(name, cfg.per_shard(shards))))
            }
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Channel::Memory(c) => c.name(),
        }
    }

    pub fn tx_capacity(&self) -> usize {
        match self {
            Channel::Memory(c) => c.tx_capacity(),
        }
    }

    /// Puts a batch in one transaction: all of it is committed, or none, and then the
    /// events come back with the error.
    pub async fn put(&self, events: Vec<Event>) -> Result<(), (ChannelError, Vec<Event>)> {
        match self {
            Channel::Memory(c) => c.put(events).await,
        }
    }

    /// Takes up to `max` events in one transaction (see `TakeTx`).
    pub fn take(&self, max: usize) -> TakeTx {
        match self {
            Channel::Memory(c) => c.take_from(max),
        }
    }

    /// Resolves when the channel may hold events (or at once if it does).
    pub async fn wait_for_data(&self) {
        match self {
            Channel::Memory(c) => c.wait_for_data().await,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Channel::Memory(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A take transaction: the events are out of the channel but not gone. `commit` forgets
/// them; `rollback` (or dropping the transaction) puts them back at the head, in order.
pub struct TakeTx {
    pub events: Vec<Event>,
    channel: Option<Channel>,
}

impl TakeTx {
    pub(crate) fn new(events: Vec<Event>, channel: Channel) -> Self {
        TakeTx {
            events,
            channel: Some(channel),
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn commit(mut self) {
        if let Some(Channel::Memory(c)) = self.channel.take() {
            c.commit_take(&self.events);
        }
    }

    pub fn rollback(mut self) {
        self.do_rollback();
    }

    fn do_rollback(&mut self) {
        if let Some(Channel::Memory(c)) = self.channel.take() {
            c.rollback_take(std::mem::take(&mut self.events));
        }
    }
}

impl Drop for TakeTx {
    fn drop(&mut self) {
        self.do_rollback();
    }
}
