//! The memory channel (`memory`, `org.apache.flume.channel.MemoryChannel`): a bounded queue
//! per shard with Flume's transaction semantics. Capacity counts events queued plus events
//! taken but not yet committed, so a rollback always has room; a put that does not fit
//! waits up to `keep-alive` seconds for space, then fails as a whole.
//!
//! Pacing: while the channel's sinks keep taking, a put that finds a backlog of a few
//! transactions waits (briefly) for the next take to commit. Source and sink share the
//! shard's core, so reading input faster than the sink drains it gains nothing: it only
//! fills memory (a netcat source filled a million-event channel in half a second while
//! file_roll wrote at its own pace). A sink that stops taking stops the pacing, so the whole
//! `capacity` still absorbs an outage downstream, as in Flume.

use super::{Channel, ChannelError, TakeTx};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::ConfigError;
use crate::event::Event;
use crate::runtime::local::LocalNotify;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How puts are paced to the sinks (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pacing {
    /// A backlog of this many transactions (at `transactionCapacity` each) paces the puts.
    transactions: usize,
    /// A sink that took within this long counts as keeping up; a longer pause (a stalled or
    /// slow downstream) lets puts fill the channel to capacity.
    sink_active: Duration,
    /// The longest one put waits for a take before going in anyway.
    wait: Duration,
}

impl Default for Pacing {
    /// Two transactions: a sink coming back for more finds a whole batch while the next one
    /// is put. Half a second: longer than the kernel throttles a writer of dirty pages
    /// (200 ms at most), so a sink bound by the disk still counts as keeping up.
    fn default() -> Self {
        Pacing {
            transactions: 2,
            sink_active: Duration::from_millis(500),
            wait: Duration::from_millis(500),
        }
    }
}

const KEYS: &[KeySpec] = &[
    KeySpec::new("capacity", KeyKind::POSITIVE, Some("100"), "Maximum number of events stored in the channel (split evenly over shards)"),
    KeySpec::new("transactionCapacity", KeyKind::POSITIVE, Some("100"), "Maximum number of events per put or take transaction"),
    KeySpec::new("keep-alive", KeyKind::NON_NEGATIVE, Some("3"), "Seconds a put waits for space before failing"),
    KeySpec::new("byteCapacity", KeyKind::NON_NEGATIVE, None, "Maximum total bytes of event bodies (split over shards); default 80% of physical memory, 0 = no byte limit"),
    KeySpec::new("byteCapacityBufferPercentage", KeyKind::int(0, 99), Some("20"), "Percent of byteCapacity kept free to account for headers"),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["memory"],
    class: "org.apache.flume.channel.MemoryChannel",
    doc: "Events in a bounded in-memory queue: fast, lost if the agent dies.",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    pub capacity: usize,
    pub transaction_capacity: usize,
    pub keep_alive: Duration,
    /// Budget for event bodies in bytes, after the buffer percentage; `None` = unlimited.
    pub body_budget: Option<u64>,
}

impl MemoryConfig {
    pub fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let (capacity, transaction_capacity) = super::capacities(k)?;
        let keep_alive = k.secs("keep-alive")?;
        let byte_capacity = match k.opt_int("byteCapacity")? {
            Some(0) => None,
            Some(n) => Some(n as u64),
            None => Some(physical_memory() / 10 * 8),
        };
        let buffer = k.int("byteCapacityBufferPercentage")? as u64;
        Ok(MemoryConfig {
            capacity,
            transaction_capacity,
            keep_alive,
            body_budget: byte_capacity.map(|b| b / 100 * (100 - buffer)),
        })
    }

    /// This shard's share: capacities are for the whole agent, as a Flume user reads them,
    /// but never below one transaction.
    pub fn per_shard(&self, shards: usize) -> MemoryConfig {
        let shards = shards.max(1);
        MemoryConfig {
            capacity: self
                .capacity
                .div_ceil(shards)
                .max(self.transaction_capacity),
            body_budget: self.body_budget.map(|b| b.div_ceil(shards as u64)),
            ..self.clone()
        }
    }
}

fn physical_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        pages as u64 * size as u64
    } else {
        u64::MAX
    }
}

/// Queued events are kept as the batches they were put in: a put moves one `Vec` in and a
/// take of a whole batch moves one `Vec` out, instead of moving every event twice.
struct State {
    queue: VecDeque<Vec<Event>>,
    /// Events in `queue`.
    queued: usize,
    /// Events taken by uncommitted take transactions: they still hold capacity.
    in_flight: usize,
    /// Body bytes held by queued and in-flight events.
    bytes: u64,
    /// When a sink last took events (pacing applies only while sinks keep taking).
    last_take: Option<Instant>,
}

pub struct MemoryChannel {
    name: String,
    cfg: MemoryConfig,
    pacing: Pacing,
    state: RefCell<State>,
    space: LocalNotify,
    data: LocalNotify,
    /// Signalled by every take: paced puts wait for it.
    taken: LocalNotify,
}

fn body_bytes(events: &[Event]) -> u64 {
    events.iter().map(|e| e.body.len() as u64).sum()
}

impl MemoryChannel {
    pub fn new(name: &str, cfg: MemoryConfig) -> Self {
        Self::with_pacing(name, cfg, Pacing::default())
    }

    fn with_pacing(name: &str, cfg: MemoryConfig, pacing: Pacing) -> Self {
        MemoryChannel {
            name: name.to_string(),
            pacing,
            state: RefCell::new(State {
                queue: VecDeque::new(),
                queued: 0,
                in_flight: 0,
                bytes: 0,
                last_take: None,
            }),
            cfg,
            space: LocalNotify::default(),
            data: LocalNotify::default(),
            taken: LocalNotify::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tx_capacity(&self) -> usize {
        self.cfg.transaction_capacity
    }

    pub fn capacity(&self) -> usize {
        self.cfg.capacity
    }

    pub fn len(&self) -> usize {
        self.state.borrow().queued
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events a put could add now (by count; `byteCapacity` may still refuse them).
    pub fn room(&self) -> usize {
        let s = self.state.borrow();
        self.cfg.capacity.saturating_sub(s.queued + s.in_flight)
    }

    fn fits(&self, n: usize, bytes: u64) -> Result<(), ChannelError> {
        let s = self.state.borrow();
        if s.queued + s.in_flight + n > self.cfg.capacity {
            return Err(ChannelError::Full {
                channel: self.name.clone(),
                capacity: self.cfg.capacity,
                keep_alive_secs: self.cfg.keep_alive.as_secs(),
            });
        }
        if let Some(budget) = self.cfg.body_budget {
            if s.bytes + bytes > budget {
                return Err(ChannelError::Bytes {
                    channel: self.name.clone(),
                    byte_capacity: budget,
                });
            }
        }
        Ok(())
    }

    pub async fn put(&self, events: Vec<Event>) -> Result<(), (ChannelError, Vec<Event>)> {
        if events.is_empty() {
            return Ok(());
        }
        if events.len() > self.cfg.transaction_capacity {
            let error = ChannelError::TxTooLarge {
                channel: self.name.clone(),
                batch: events.len(),
                capacity: self.cfg.transaction_capacity,
            };
            return Err((error, events));
        }
        self.pace().await;
        let bytes = self.accounted_bytes(&events);
        if let Err(e) = self.wait_for_space(events.len(), bytes).await {
            return Err((e, events));
        }
        let mut s = self.state.borrow_mut();
        s.bytes += bytes;
        s.queued += events.len();
        s.queue.push_back(events);
        drop(s);
        self.data.notify_all();
        Ok(())
    }

    /// The backlog at which puts wait for the sinks: at most half the capacity, and at least
    /// one event, so that a put into an empty channel never waits for a take that cannot come.
    fn pace_mark(&self) -> usize {
        (self.cfg.transaction_capacity * self.pacing.transactions)
            .min(self.cfg.capacity / 2)
            .max(1)
    }

    /// True when the backlog is at the pace mark and a sink took recently.
    fn should_pace(&self) -> bool {
        let s = self.state.borrow();
        s.queued >= self.pace_mark()
            && s.last_take
                .is_some_and(|t| t.elapsed() < self.pacing.sink_active)
    }

    /// Waits, at most `pacing.wait`, for the sinks to bring the backlog under the pace mark.
    async fn pace(&self) {
        if !self.should_pace() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.pacing.wait;
        loop {
            let woken = self.taken.notified();
            if !self.should_pace() || tokio::time::timeout_at(deadline, woken).await.is_err() {
                return;
            }
        }
    }

    /// Waits (up to keep-alive) until `n` events of `bytes` body bytes fit.
    async fn wait_for_space(&self, n: usize, bytes: u64) -> Result<(), ChannelError> {
        if self.fits(n, bytes).is_ok() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.cfg.keep_alive;
        loop {
            let woken = self.space.notified();
            match self.fits(n, bytes) {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    if tokio::time::timeout_at(deadline, woken).await.is_err() {
                        return self.fits(n, bytes);
                    }
                }
            }
        }
    }

    /// Body bytes as the byte budget counts them; nothing to count without a budget.
    fn accounted_bytes(&self, events: &[Event]) -> u64 {
        if self.cfg.body_budget.is_some() {
            body_bytes(events)
        } else {
            0
        }
    }

    pub fn take_from(self: &Rc<Self>, max: usize) -> TakeTx {
        let mut s = self.state.borrow_mut();
        let n = max.min(self.cfg.transaction_capacity).min(s.queued);
        let mut events: Vec<Event> = Vec::new();
        while events.len() < n {
            let want = n - events.len();
            let mut front = s.queue.pop_front().expect("queued counts these events");
            if front.len() > want {
                // Split the batch: the rest stays at the head, in order.
                let rest = front.split_off(want);
                s.queue.push_front(rest);
            }
            if events.is_empty() {
                events = front;
            } else {
                events.append(&mut front);
            }
        }
        s.queued -= n;
        s.in_flight += n;
        if n > 0 {
            s.last_take = Some(Instant::now());
        }
        drop(s);
        if n > 0 {
            // Paced puts refill while the sink works through what it took.
            self.taken.notify_all();
        }
        TakeTx::new(events, Channel::Memory(self.clone()))
    }

    pub(super) fn commit_take(&self, events: &[Event]) {
        let bytes = self.accounted_bytes(events);
        let mut s = self.state.borrow_mut();
        s.in_flight -= events.len();
        s.bytes -= bytes;
        drop(s);
        self.space.notify_all();
    }

    pub(super) fn rollback_take(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut s = self.state.borrow_mut();
        s.in_flight -= events.len();
        s.queued += events.len();
        s.queue.push_front(events);
        drop(s);
        self.data.notify_all();
    }

    pub async fn wait_for_data(&self) {
        let woken = self.data.notified();
        if self.is_empty() {
            woken.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cfg(capacity: usize, tx: usize, budget: Option<u64>) -> MemoryConfig {
        MemoryConfig {
            capacity,
            transaction_capacity: tx,
            keep_alive: Duration::from_millis(0),
            body_budget: budget,
        }
    }

    fn evs(range: std::ops::Range<u32>) -> Vec<Event> {
        range
            .map(|i| Event::new(Bytes::from(i.to_string())))
            .collect()
    }

    fn bodies(evs: &[Event]) -> Vec<String> {
        evs.iter()
            .map(|e| String::from_utf8(e.body.to_vec()).unwrap())
            .collect()
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn rollback_returns_events_in_order_before_newer_ones() {
        run(async {
            let ch = Channel::Memory(Rc::new(MemoryChannel::new("c", cfg(10, 10, None))));
            ch.put(evs(0..4)).await.unwrap();
            let tx = ch.take(3);
            assert_eq!(bodies(&tx.events), ["0", "1", "2"]);
            ch.put(evs(4..6)).await.unwrap();
            tx.rollback();
            let tx = ch.take(10);
            assert_eq!(bodies(&tx.events), ["0", "1", "2", "3", "4", "5"]);
            tx.commit();
            assert!(ch.is_empty());
        });
    }

    #[test]
    fn takes_span_and_split_put_batches_in_order() {
        run(async {
            let ch = Channel::Memory(Rc::new(MemoryChannel::new("c", cfg(20, 10, Some(1000)))));
            ch.put(evs(0..3)).await.unwrap();
            ch.put(evs(3..6)).await.unwrap();
            ch.put(evs(6..7)).await.unwrap();
            let tx = ch.take(4);
            assert_eq!(bodies(&tx.events), ["0", "1", "2", "3"]);
            tx.commit();
            let tx = ch.take(10);
            assert_eq!(bodies(&tx.events), ["4", "5", "6"]);
            tx.rollback();
            assert_eq!(ch.len(), 3);
            assert_eq!(bodies(&ch.take(2).events), ["4", "5"]);
        });
    }

    #[test]
    fn dropped_take_rolls_back() {
        run(async {
            let ch = Channel::Memory(Rc::new(MemoryChannel::new("c", cfg(10, 10, None))));
            ch.put(evs(0..2)).await.unwrap();
            drop(ch.take(1));
            assert_eq!(ch.len(), 2);
        });
    }

    #[test]
    fn capacity_counts_in_flight_and_put_is_all_or_nothing() {
        run(async {
            let ch = Channel::Memory(Rc::new(MemoryChannel::new("c", cfg(4, 4, None))));
            ch.put(evs(0..3)).await.unwrap();
            let tx = ch.take(2);
            let (err, back) = ch.put(evs(3..5)).await.unwrap_err();
            assert_eq!(
                bodies(&back),
                ["3", "4"],
                "a refused put hands the events back"
            );
            assert!(
                matches!(err, ChannelError::Full { capacity: 4, .. }),
                "{err}"
            );
            assert_eq!(ch.len(), 1, "a failed put adds nothing");
            tx.commit();
            ch.put(evs(3..5)).await.unwrap();
            assert_eq!(ch.len(), 3);
        });
    }

    #[test]
    fn transaction_capacity_and_byte_budget() {
        run(async {
            let ch = Channel::Memory(Rc::new(MemoryChannel::new("c", cfg(100, 3, Some(5)))));
            assert!(matches!(
                ch.put(evs(0..4)).await,
                Err((ChannelError::TxTooLarge { batch: 4, .. }, _))
            ));
            ch.put(evs(10..12)).await.unwrap(); // 4 bytes
            assert!(matches!(
                ch.put(evs(12..13)).await,
                Err((ChannelError::Bytes { .. }, _))
            ));
            assert_eq!(ch.take(5).len(), 2);
        });
    }

    #[test]
    fn put_waits_for_space_within_keep_alive() {
        run(async {
            let mut c = cfg(2, 2, None);
            c.keep_alive = Duration::from_secs(5);
            let ch = Channel::Memory(Rc::new(MemoryChannel::new("c", c)));
            ch.put(evs(0..2)).await.unwrap();
            let taker = ch.clone();
            let (put, ()) = tokio::join!(ch.put(evs(2..3)), async move {
                tokio::task::yield_now().await;
                taker.take(1).commit();
            });
            put.unwrap();
            assert_eq!(bodies(&ch.take(5).events), ["1", "2"]);
        });
    }

    fn paced(capacity: usize, tx: usize, pacing: Pacing) -> Channel {
        let c = cfg(capacity, tx, None);
        Channel::Memory(Rc::new(MemoryChannel::with_pacing("c", c, pacing)))
    }

    /// Polls `f` once: `Some` if it finished.
    async fn poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let mut f = Some(f);
        std::future::poll_fn(|cx| {
            let f = f.take().expect("polled once");
            std::task::Poll::Ready(match f.poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    const LONG: Duration = Duration::from_secs(60);

    /// Pacing at two transactions, as by default, with the given windows.
    fn two_transactions(sink_active: Duration, wait: Duration) -> Pacing {
        Pacing {
            transactions: 2,
            sink_active,
            wait,
        }
    }

    #[test]
    fn a_put_waits_for_a_sink_that_keeps_taking_once_a_backlog_of_two_transactions_builds() {
        run(async {
            let pacing = two_transactions(LONG, LONG);
            let ch = paced(100, 5, pacing);
            ch.put(evs(0..5)).await.unwrap();
            ch.put(evs(5..10)).await.unwrap();
            ch.put(evs(10..15)).await.unwrap();
            assert_eq!(ch.len(), 15, "no sink has taken yet: nothing is paced");

            let first = ch.take(5);
            assert_eq!(ch.len(), 10);
            let mut put = std::pin::pin!(ch.put(evs(15..20)));
            assert!(
                poll_once(put.as_mut()).await.is_none(),
                "a backlog of 10 (2 × 5) waits"
            );
            assert_eq!(ch.len(), 10);

            let second = ch.take(5);
            put.await.unwrap();
            assert_eq!(ch.len(), 10, "the take let the put in");
            first.commit();
            second.commit();
            for expected in [
                ["10", "11", "12", "13", "14"],
                ["15", "16", "17", "18", "19"],
            ] {
                let tx = ch.take(5);
                assert_eq!(bodies(&tx.events), expected, "in the order put");
                tx.commit();
            }
        });
    }

    #[test]
    fn a_sink_that_stopped_taking_lets_puts_fill_the_channel_to_capacity() {
        run(async {
            let pacing = two_transactions(Duration::from_millis(20), LONG);
            let ch = paced(50, 5, pacing);
            ch.put(evs(0..5)).await.unwrap();
            ch.take(5).commit();
            tokio::time::sleep(Duration::from_millis(30)).await;
            for i in 0..10 {
                let mut put = std::pin::pin!(ch.put(evs(i * 5..i * 5 + 5)));
                let done = poll_once(put.as_mut()).await;
                assert!(matches!(done, Some(Ok(()))), "put {i} went in at once");
            }
            assert_eq!(ch.len(), 50);
        });
    }

    #[test]
    fn a_paced_put_goes_in_after_the_pacing_wait_even_without_a_take() {
        run(async {
            let wait = Duration::from_millis(30);
            let ch = paced(100, 5, two_transactions(LONG, wait));
            for i in 0..3 {
                ch.put(evs(i * 5..i * 5 + 5)).await.unwrap();
            }
            let _in_flight = ch.take(5);
            let started = tokio::time::Instant::now();
            ch.put(evs(15..20)).await.unwrap();
            assert!(started.elapsed() >= wait, "waited {:?}", started.elapsed());
            assert_eq!(ch.len(), 15);
        });
    }

    #[test]
    fn a_put_into_an_empty_channel_never_waits_even_at_a_capacity_of_one() {
        run(async {
            let ch = paced(1, 1, two_transactions(LONG, LONG));
            for i in 0..3 {
                let mut put = std::pin::pin!(ch.put(evs(i..i + 1)));
                let done = poll_once(put.as_mut()).await;
                assert!(matches!(done, Some(Ok(()))), "put {i} went in at once");
                let tx = ch.take(1);
                assert_eq!(bodies(&tx.events), [i.to_string()]);
                tx.commit();
            }
        });
    }

    #[test]
    fn the_pace_mark_is_at_most_half_the_capacity() {
        run(async {
            let pacing = two_transactions(LONG, LONG);
            // Two transactions of 10 would be the whole capacity of 20: the mark is 10.
            let ch = paced(20, 10, pacing);
            ch.put(evs(0..10)).await.unwrap();
            let _in_flight = ch.take(1);
            ch.put(evs(10..11)).await.unwrap();
            assert_eq!(ch.len(), 10);
            let mut put = std::pin::pin!(ch.put(evs(11..12)));
            assert!(
                poll_once(put.as_mut()).await.is_none(),
                "a backlog of 10 waits"
            );
        });
    }
}
