//! Channels: where a source's committed batches wait for a sink. Each shard has its own
//! instance of every channel; a put or take is a transaction on that shard only.

pub mod memory;
pub mod wal;

pub use memory::{MemoryChannel, MemoryConfig};
pub use wal::{WalChannel, WalConfig};

use crate::config::Registration;
use crate::event::Event;
use std::rc::Rc;

#[derive(Debug, Clone)]
pub enum ChannelKind {
    Memory(MemoryConfig),
    Wal(WalConfig),
}

impl ChannelKind {
    /// Warnings the configuration produced besides unknown keys (ignored Flume keys).
    pub fn notes(&self) -> &[String] {
        match self {
            ChannelKind::Memory(_) => &[],
            ChannelKind::Wal(c) => &c.notes,
        }
    }
}

/// The channel types, one line each.
pub static TYPES: &[Registration<ChannelKind>] = &[
    Registration {
        info: memory::TYPE,
        build: |k| Ok(ChannelKind::Memory(MemoryConfig::from_keys(k)?)),
    },
    Registration {
        info: wal::TYPE,
        build: |k| Ok(ChannelKind::Wal(WalConfig::from_keys(k)?)),
    },
];

/// `capacity` and `transactionCapacity`, which every channel type reads, checked
/// together: a transaction larger than the channel could never commit.
pub(crate) fn capacities(
    k: &mut crate::config::Keys,
) -> Result<(usize, usize), crate::config::ConfigError> {
    let capacity = k.usize("capacity")?;
    let transaction_capacity = k.usize("transactionCapacity")?;
    if transaction_capacity > capacity {
        return Err(k.invalid(
            "transactionCapacity",
            format!("transactionCapacity ({transaction_capacity}) must not exceed capacity ({capacity})"),
        ));
    }
    Ok((capacity, transaction_capacity))
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
    #[error("channel '{channel}': only {free} bytes free in {dir}, below minimumRequiredSpace ({required}); puts resume when space returns")]
    DiskSpace {
        channel: String,
        dir: String,
        free: u64,
        required: u64,
    },
    #[error("channel '{channel}': write-ahead log: {message}")]
    Log { channel: String, message: String },
}

/// One shard's instance of a channel.
#[derive(Clone)]
pub enum Channel {
    Memory(Rc<MemoryChannel>),
    Wal(Rc<WalChannel>),
}

impl Channel {
    /// Builds shard `shard`'s instance of the channel; capacities are split over `shards`.
    /// A file channel replays its log here (blocking, before the shard reports ready).
    pub fn open(
        name: &str,
        kind: &ChannelKind,
        shard: usize,
        shards: usize,
    ) -> Result<Channel, wal::WalError> {
        Ok(match kind {
            ChannelKind::Memory(cfg) => {
                Channel::Memory(Rc::new(MemoryChannel::new(name, cfg.per_shard(shards))))
            }
            ChannelKind::Wal(cfg) => Channel::Wal(WalChannel::open(
                name,
                &cfg.per_shard(shards),
                shard,
                shards,
            )?),
        })
    }

    /// Whether queued events survive the agent stopping.
    pub fn is_durable(&self) -> bool {
        matches!(self, Channel::Wal(_))
    }

    /// Clean shutdown: a file channel syncs and checkpoints (checkpointOnClose).
    pub async fn close(&self) {
        if let Channel::Wal(c) = self {
            c.close().await;
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Channel::Memory(c) => c.name(),
            Channel::Wal(c) => c.name(),
        }
    }

    pub fn tx_capacity(&self) -> usize {
        match self {
            Channel::Memory(c) => c.tx_capacity(),
            Channel::Wal(c) => c.tx_capacity(),
        }
    }

    /// Puts a batch in one transaction: all of it is committed, or none, and then the
    /// events come back with the error.
    pub async fn put(&self, events: Vec<Event>) -> Result<(), (ChannelError, Vec<Event>)> {
        match self {
            Channel::Memory(c) => c.put(events).await,
            Channel::Wal(c) => c.put(events).await,
        }
    }

    /// Takes up to `max` events in one transaction (see `TakeTx`).
    pub fn take(&self, max: usize) -> TakeTx {
        match self {
            Channel::Memory(c) => c.take_from(max),
            Channel::Wal(c) => c.take_from(max),
        }
    }

    /// Resolves when the channel may hold events (or at once if it does).
    pub async fn wait_for_data(&self) {
        match self {
            Channel::Memory(c) => c.wait_for_data().await,
            Channel::Wal(c) => c.wait_for_data().await,
        }
    }

    /// Events a put could add now without waiting, by count.
    pub fn room(&self) -> usize {
        match self {
            Channel::Memory(c) => c.room(),
            Channel::Wal(c) => c.room(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Channel::Memory(c) => c.len(),
            Channel::Wal(c) => c.len(),
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
    /// The channel's id for this transaction (the file channel logs it).
    tx: u64,
}

impl TakeTx {
    pub(crate) fn new(events: Vec<Event>, channel: Channel) -> Self {
        Self::with_tx(events, channel, 0)
    }

    pub(crate) fn with_tx(events: Vec<Event>, channel: Channel, tx: u64) -> Self {
        TakeTx {
            events,
            channel: Some(channel),
            tx,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Commits the take. For the file channel the commit is logged but not synced before
    /// this returns: if a crash loses it, the events are delivered again (at-least-once).
    pub fn commit(mut self) {
        match self.channel.take() {
            Some(Channel::Memory(c)) => c.commit_take(&self.events),
            Some(Channel::Wal(c)) => c.commit_take(self.tx),
            None => {}
        }
    }

    pub fn rollback(mut self) {
        self.do_rollback();
    }

    fn do_rollback(&mut self) {
        match self.channel.take() {
            Some(Channel::Memory(c)) => c.rollback_take(std::mem::take(&mut self.events)),
            Some(Channel::Wal(c)) => c.rollback_take(self.tx, std::mem::take(&mut self.events)),
            None => {}
        }
    }
}

impl Drop for TakeTx {
    fn drop(&mut self) {
        self.do_rollback();
    }
}
