//! The sink runner: the loop that drives sinks on one shard. A runner owns one sink group
//! (a sink outside any group is a group of one with the default processor). Each round it
//! picks a sink by the group's policy (failover: highest priority not penalised;
//! load_balance: round robin or random), takes a batch from that sink's channel in a
//! transaction, commits when the sink wrote it and rolls back when it failed (or, for a
//! sink that returns a `Verdict`, as the verdict says: the http sink's status rules); a failed
//! sink is penalised with an exponential back-off (up to 5 s for a single sink, as Flume's
//! default, or the group's maxpenalty / maxTimeOut). With no events it sleeps until a
//! channel has some: no polling. On shutdown it drains the channels until they are empty,
//! or until the drain deadline aborts it.

use super::{ShardSink, SinkError};
use crate::channel::Channel;
use crate::flow::processor::ProcessorConfig;
use crate::runtime::local::Stop;
use crate::runtime::metrics::{Counter, Registry};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

/// One sink of a group, with its channel and its failure state.
pub struct Member {
    pub name: String,
    pub sink: Box<dyn ShardSink>,
    pub channel: Channel,
    pub batch_size: usize,
    /// Higher goes first (failover).
    pub priority: i64,
    drained: Counter,
    failures: Counter,
    penalty: Duration,
    penalised_until: Option<Instant>,
    failing: bool,
}

impl Member {
    pub fn new(
        name: &str,
        sink: Box<dyn ShardSink>,
        channel: Channel,
        batch_size: usize,
        priority: i64,
        m: &mut Registry,
    ) -> Self {
        Member {
            name: name.to_string(),
            sink,
            channel,
            batch_size,
            priority,
            drained: m.counter(name, "events.drained"),
            failures: m.counter(name, "batches.failed"),
            penalty: Duration::ZERO,
            penalised_until: None,
            failing: false,
        }
    }

    fn available(&self, now: Instant) -> bool {
        self.penalised_until.is_none_or(|t| t <= now)
    }
}

pub struct Group {
    pub members: Vec<Member>,
    pub policy: ProcessorConfig,
    /// Sources have stopped: empty the channels, then end.
    pub drain: Stop,
    /// The drain deadline passed: end now (taken events roll back).
    pub abort: Stop,
}

const SINGLE_MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Group {
    fn max_penalty(&self) -> Duration {
        match &self.policy {
            ProcessorConfig::Default => SINGLE_MAX_BACKOFF,
            ProcessorConfig::Failover { max_penalty, .. } => *max_penalty,
            ProcessorConfig::LoadBalance { max_timeout, .. } => *max_timeout,
        }
    }

    /// Whether a failed sink is set aside for a while (otherwise only the round backs off).
    fn penalises(&self) -> bool {
        match &self.policy {
            ProcessorConfig::Default | ProcessorConfig::Failover { .. } => true,
            ProcessorConfig::LoadBalance { backoff, .. } => *backoff,
        }
    }

    /// The members to try this round, in order.
    fn order(&self, round: u64) -> Vec<usize> {
        let n = self.members.len();
        let mut idx: Vec<usize> = (0..n).collect();
        match &self.policy {
            ProcessorConfig::Default => {}
            ProcessorConfig::Failover { .. } => {
                idx.sort_by_key(|&i| std::cmp::Reverse(self.members[i].priority));
            }
            ProcessorConfig::LoadBalance { random, .. } => {
                let start = if *random {
                    // splitmix64 of the round: uniform enough to spread load.
                    let mut z = round.wrapping_add(0x9E3779B97F4A7C15);
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
                    ((z ^ (z >> 31)) % n as u64) as usize
                } else {
                    (round % n as u64) as usize
                };
                idx.rotate_left(start);
            }
        }
        idx
    }
}

/// What one attempt on one member came to.
enum Attempt {
    Wrote,
    Empty,
    Failed,
    Aborted,
}

async fn attempt(m: &mut Member, abort: &Stop, max_penalty: Duration, penalise: bool) -> Attempt {
    let tx = m.channel.take(m.batch_size);
    if tx.is_empty() {
        return Attempt::Empty;
    }
    let result = tokio::select! {
        r = m.sink.process(&tx.events) => Some(r),
        _ = abort.wait() => None,
    };
    match result {
        Some(Ok(())) => {
            m.drained.add(tx.len() as u64);
            tx.commit();
            if m.failing {
                tracing::info!(sink = %m.name, "sink recovered");
                m.failing = false;
            }
            m.penalty = Duration::ZERO;
            m.penalised_until = None;
            Attempt::Wrote
        }
        Some(Err(SinkError::Verdict(v))) => {
            if v.count {
                m.drained.add(tx.len() as u64);
            }
            if v.commit {
                tx.commit();
            } else {
                tx.rollback();
                m.failures.add(1);
            }
            if v.backoff {
                m.penalty = (m.penalty * 2).clamp(Duration::from_millis(100), max_penalty);
                if penalise {
                    m.penalised_until = Some(Instant::now() + m.penalty);
                }
            } else {
                m.penalty = Duration::ZERO;
                m.penalised_until = None;
            }
            if !m.failing && (v.backoff || !v.commit) {
                tracing::warn!(sink = %m.name, "{}", v.reason);
                m.failing = true;
            } else {
                tracing::debug!(sink = %m.name, "{}", v.reason);
            }
            // Without a back-off the next take follows at once, as after a write.
            if v.backoff {
                Attempt::Failed
            } else {
                Attempt::Wrote
            }
        }
        Some(Err(e)) => {
            tx.rollback();
            m.failures.add(1);
            m.penalty = (m.penalty * 2).clamp(Duration::from_millis(100), max_penalty);
            if penalise {
                m.penalised_until = Some(Instant::now() + m.penalty);
            }
            if !m.failing {
                tracing::warn!(sink = %m.name, "batch failed and was rolled back; retrying with back-off: {e}");
                m.failing = true;
            }
            Attempt::Failed
        }
        None => {
            tx.rollback();
            Attempt::Aborted
        }
    }
}

pub async fn run(mut g: Group) {
    let mut round = 0u64;
    while !g.abort.is_stopped() {
        round += 1;
        let now = Instant::now();
        let (max_penalty, penalise) = (g.max_penalty(), g.penalises());
        let mut wrote = false;
        let mut failed = false;
        let mut tried = false;
        for i in g.order(round) {
            if !g.members[i].available(now) {
                continue;
            }
            tried = true;
            match attempt(&mut g.members[i], &g.abort, max_penalty, penalise).await {
                Attempt::Wrote => {
                    wrote = true;
                    break;
                }
                // Failover and load balancing move on to the next sink at once.
                Attempt::Failed => failed = true,
                Attempt::Empty => {
                    if !matches!(g.policy, ProcessorConfig::LoadBalance { .. }) {
                        break;
                    }
                }
                Attempt::Aborted => break,
            }
        }
        if wrote {
            continue;
        }
        let all_empty = g.members.iter().all(|m| m.channel.is_empty());
        if g.drain.is_stopped() && all_empty {
            break;
        }
        if failed || !tried {
            // Every usable sink failed (or all are penalised): wait for the first to be due.
            let wait = g
                .members
                .iter()
                .map(|m| {
                    m.penalised_until
                        .unwrap_or(now + m.penalty.max(Duration::from_millis(100)))
                })
                .min()
                .unwrap_or(now + Duration::from_millis(100));
            tokio::select! {
                _ = tokio::time::sleep_until(wait) => {}
                _ = g.abort.wait() => {}
            }
            continue;
        }
        wait_idle(&mut g).await;
    }
    for m in &mut g.members {
        m.sink.close().await;
    }
}

/// Sleeps until a member's channel has data, a sink's timer is due, or the drain starts.
async fn wait_idle(g: &mut Group) {
    let tick = g.members.iter().filter_map(|m| m.sink.next_tick()).min();
    let data = {
        let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = g
            .members
            .iter()
            .map(|m| Box::pin(m.channel.wait_for_data()) as Pin<Box<dyn Future<Output = ()>>>)
            .collect();
        std::future::poll_fn(move |cx| {
            if waits.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    };
    let timer = async {
        match tick {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    let ticked = tokio::select! {
        _ = data => false,
        _ = g.drain.wait() => false,
        _ = timer => true,
    };
    if ticked {
        for m in &mut g.members {
            m.sink.tick().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(policy: ProcessorConfig, prios: &[i64]) -> Group {
        let mut reg = Registry::default();
        let ch = Channel::open(
            "c",
            &crate::channel::ChannelKind::Memory(crate::channel::MemoryConfig {
                capacity: 10,
                transaction_capacity: 10,
                keep_alive: Duration::ZERO,
                body_budget: None,
            }),
            0,
            1,
        )
        .unwrap();
        Group {
            members: prios
                .iter()
                .enumerate()
                .map(|(i, &p)| {
                    Member::new(
                        &format!("k{i}"),
                        Box::new(crate::sink::null::NullSink),
                        ch.clone(),
                        10,
                        p,
                        &mut reg,
                    )
                })
                .collect(),
            policy,
            drain: Stop::new(),
            abort: Stop::new(),
        }
    }

    #[test]
    fn failover_orders_by_priority_and_round_robin_rotates() {
        let fo = group(
            ProcessorConfig::Failover {
                priorities: vec![],
                max_penalty: Duration::from_secs(1),
            },
            &[5, 10, 1],
        );
        assert_eq!(fo.order(1), [1, 0, 2]);
        let rr = group(
            ProcessorConfig::LoadBalance {
                backoff: false,
                random: false,
                max_timeout: Duration::from_secs(1),
            },
            &[0, 0, 0],
        );
        assert_eq!(rr.order(1), [1, 2, 0]);
        assert_eq!(rr.order(2), [2, 0, 1]);
    }
}
