//! The path from a source to its channels (Flume's ChannelProcessor): interceptors over the
//! whole batch, the selector's routing, then one put transaction per channel, split to each
//! channel's transactionCapacity. A failed required put hands the events back so a stream
//! source can hold them and retry (backpressure) instead of losing them.

use super::interceptor::Interceptor;
use super::selector::SelectorConfig;
use crate::channel::{Channel, ChannelError};
use crate::event::Event;
use crate::runtime::clock::now_millis;
use std::cell::Cell;
use std::sync::Arc;

pub struct Delivery {
    interceptors: Vec<Arc<dyn Interceptor>>,
    selector: SelectorConfig,
    channels: Vec<Channel>,
    /// The load_balancing selector's round-robin position (per source, per shard).
    next: Cell<usize>,
}

/// A put that a required channel refused: the error, and the events that were not
/// delivered to it (to retry or to report).
#[derive(Debug)]
pub struct Refused {
    pub error: ChannelError,
    pub events: Vec<Event>,
}

impl Delivery {
    pub fn new(
        interceptors: Vec<Arc<dyn Interceptor>>,
        selector: SelectorConfig,
        channels: Vec<Channel>,
    ) -> Self {
        Delivery {
            interceptors,
            selector,
            channels,
            next: Cell::new(0),
        }
    }

    /// The largest batch every channel accepts in one transaction.
    pub fn max_batch(&self) -> usize {
        self.channels
            .iter()
            .map(Channel::tx_capacity)
            .min()
            .unwrap_or(1)
    }

    /// Events every channel could take now without waiting (by count).
    pub fn room(&self) -> usize {
        self.channels.iter().map(Channel::room).min().unwrap_or(0)
    }

    /// Delivers a batch; `Ok` means every required channel committed it.
    pub async fn deliver(&self, mut batch: Vec<Event>) -> Result<(), Refused> {
        if !self.interceptors.is_empty() {
            let now = now_millis();
            for i in &self.interceptors {
                i.apply(&mut batch, now);
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        if self.channels.len() == 1 && self.selector.all_to_the_only_channel() {
            return put_chunked(&self.channels[0], batch).await;
        }
        for (pos, events, required) in self.selector.route(self.channels.len(), batch, &self.next) {
            match put_chunked(&self.channels[pos], events).await {
                Ok(()) => {}
                Err(refused) if required => return Err(refused),
                Err(refused) => tracing::debug!(
                    "optional channel '{}' refused {} events: {}",
                    self.channels[pos].name(),
                    refused.events.len(),
                    refused.error
                ),
            }
        }
        Ok(())
    }
}

async fn put_chunked(channel: &Channel, mut events: Vec<Event>) -> Result<(), Refused> {
    let max = channel.tx_capacity();
    while events.len() > max {
        let rest = events.split_off(max);
        if let Err(error) = channel.put(events).await {
            return Err(Refused {
                error: error.0,
                events: error.1.into_iter().chain(rest).collect(),
            });
        }
        events = rest;
    }
    channel
        .put(events)
        .await
        .map_err(|(error, events)| Refused { error, events })
}
