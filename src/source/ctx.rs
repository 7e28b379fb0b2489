//! What a running source gets from its shard, and the delivery every source shares: one
//! put per batch that counts what the channels accepted and refused, and the backpressure
//! of stream sources (hold the batch, stop reading, retry with back-off until it fits).

use crate::event::Event;
use crate::flow::delivery::{Delivery, Refused};
use crate::runtime::local::Stop;
use crate::runtime::metrics::{Counter, Registry};
use std::cell::Cell;
use std::fmt::Display;
use std::time::Duration;

pub struct SourceCtx {
    pub name: String,
    pub delivery: Delivery,
    pub stop: Stop,
    /// Events committed to the channels.
    pub accepted: Counter,
    /// Events a channel refused (counted per attempt; stream sources retry them).
    pub refused: Counter,
    /// `deliver_all` is waiting out refusals: logged once when it starts and once when
    /// the channels take events again, not at every batch.
    holding: Cell<bool>,
}

impl SourceCtx {
    pub fn new(name: &str, delivery: Delivery, stop: Stop, metrics: &mut Registry) -> Self {
        SourceCtx {
            name: name.to_string(),
            delivery,
            stop,
            accepted: metrics.counter(name, "events.accepted"),
            refused: metrics.counter(name, "events.refused"),
            holding: Cell::new(false),
        }
    }

    /// Puts a batch once and counts it. On a refusal the events the required channels
    /// did not take come back, for the source to answer FAILED, drop or retry.
    pub async fn deliver(&self, events: Vec<Event>) -> Result<(), Refused> {
        let n = events.len() as u64;
        match self.delivery.deliver(events).await {
            Ok(()) => {
                self.accepted.add(n);
                Ok(())
            }
            Err(refused) => {
                let left = refused.events.len() as u64;
                self.accepted.add(n - left);
                self.refused.add(left);
                Err(refused)
            }
        }
    }

    /// Delivers the whole batch, waiting out full channels with back-off: the caller does
    /// not read its input meanwhile, so a stream source pushes back instead of buffering
    /// or dropping. Returns how many events were delivered: all of them, unless the
    /// source stops first. A refusal is logged when the source starts holding events
    /// (naming `from`, what it was reading), not at every retry or batch.
    ///
    /// After a refusal the events that fit now (`Delivery::room`) go in at once and the
    /// rest wait, so a nearly full channel still fills to exactly its capacity (Flume's
    /// line-at-a-time sources behave so).
    pub async fn deliver_all(&self, events: Vec<Event>, from: &dyn Display) -> usize {
        let total = events.len();
        let mut pending = events;
        let mut delivered = 0;
        let mut chunk = total;
        let mut backoff = Backoff::default();
        loop {
            let rest = pending.split_off(chunk.min(pending.len()));
            let n = pending.len();
            let refused = match self.delivery.deliver(pending).await {
                Ok(()) => {
                    self.accepted.add(n as u64);
                    delivered += n;
                    if rest.is_empty() {
                        if self.holding.replace(false) {
                            tracing::info!(source = %self.name, "channels accept events again; reading resumes");
                        }
                        return total;
                    }
                    pending = rest;
                    chunk = pending.len();
                    continue;
                }
                Err(refused) => refused,
            };
            let left = refused.events.len();
            self.accepted.add((n - left) as u64);
            delivered += n - left;
            pending = refused.events;
            pending.extend(rest);
            let room = self.delivery.room();
            if room > 0 && room < chunk.min(pending.len()) {
                chunk = room;
                continue;
            }
            chunk = pending.len();
            self.refused.add(left as u64);
            if !self.holding.replace(true) {
                tracing::warn!(source = %self.name, from = %from, "{}; holding {} events and pausing reads until they fit", refused.error, pending.len());
            }
            if self.stop.is_stopped() {
                return delivered;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = self.stop.wait() => {}
            }
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
