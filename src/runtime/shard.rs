//! One shard: builds the agent's whole topology for itself (channels, sinks, sources),
//! reports ready, runs until the stop signal, then stops sources, drains sinks and reports
//! its counters. Everything here runs on the shard's single thread.

use super::local::Stop;
use super::metrics::Registry;
use super::{Msg, RunOptions, RuntimeError};
use crate::channel::Channel;
use crate::config::AgentConfig;
use crate::config::SinkConfig;
use crate::flow::delivery::Delivery;
use crate::flow::processor::ProcessorConfig;
use crate::sink::runner::{self, Group, Member};
use crate::sink::ShardSink;
use crate::source::{Shard, SourceCtx};
use std::rc::Rc;
use std::sync::mpsc::Sender;

pub(super) async fn run(
    k: usize,
    shards: usize,
    cfg: &AgentConfig,
    mut stop_rx: tokio::sync::watch::Receiver<bool>,
    opts: &RunOptions,
    report: Sender<Msg>,
) {
    let mut metrics = Registry::default();
    let fail = |component: String, message: String| {
        let _ = report.send(Msg::Failed(
            k,
            RuntimeError::Component { component, message },
        ));
    };
    let mut channels: Vec<Channel> = Vec::with_capacity(cfg.channels.len());
    for c in &cfg.channels {
        match Channel::open(&c.name, &c.kind, k, shards) {
            Ok(ch) => channels.push(ch),
            Err(e) => return fail(format!("channel '{}'", c.name), e.to_string()),
        }
    }

    let mut sinks = Vec::new();
    for s in &cfg.sinks {
        match s.kind.open(&s.name, k, shards) {
            Ok(sink) => sinks.push((s, sink)),
            Err(e) => return fail(format!("sink '{}'", s.name), e.to_string()),
        }
    }
    let mut sources = Vec::new();
    for s in &cfg.sources {
        let placement = match s.kind.plan() {
            Ok(plan) => plan.placement,
            Err(e) => return fail(format!("source '{}'", s.name), e.to_string()),
        };
        if !placement.runs_on(&s.name, k, shards) {
            continue;
        }
        match s.kind.bind(Shard {
            index: k,
            count: shards,
        }) {
            Ok(bound) => sources.push((s, bound)),
            Err(e) => return fail(format!("source '{}'", s.name), e.to_string()),
        }
    }

    tokio_uring::spawn(super::spin::run(opts.spin));
    let drain = Stop::new();
    let abort = Stop::new();
    let mut sink_tasks = Vec::new();
    for group in groups(cfg, sinks, &channels, &mut metrics) {
        let (members, policy) = group;
        sink_tasks.push(tokio_uring::spawn(runner::run(Group {
            members,
            policy,
            drain: drain.clone(),
            abort: abort.clone(),
        })));
    }
    let stop_sources = Stop::new();
    let mut source_tasks = Vec::new();
    for (s, bound) in sources {
        let delivery = Delivery::new(
            s.interceptors.clone(),
            s.selector.clone(),
            s.channels.iter().map(|&i| channels[i].clone()).collect(),
        );
        let ctx = Rc::new(SourceCtx::new(
            &s.name,
            delivery,
            stop_sources.clone(),
            &mut metrics,
        ));
        source_tasks.push(tokio_uring::spawn(bound.run(ctx)));
    }
    let _ = report.send(Msg::Ready(k));

    // Wait for the stop signal from the main thread.
    while !*stop_rx.borrow() {
        if stop_rx.changed().await.is_err() {
            break;
        }
    }
    // The drain budget counts from the stop signal: a source still waiting to put into a
    // full channel (a memory channel waits up to keep-alive) spends it too, so the agent
    // exits within --drain-timeout whatever the sources and sinks are doing.
    let deadline = tokio::time::Instant::now() + opts.drain_timeout;
    stop_sources.trigger();
    let source_aborts: Vec<_> = source_tasks.iter().map(|t| t.abort_handle()).collect();
    let sources_joined = futures_join(source_tasks);
    tokio::pin!(sources_joined);
    tokio::select! {
        _ = &mut sources_joined => {}
        _ = tokio::time::sleep_until(deadline) => {
            tracing::warn!("shard {k}: drain timeout while sources were stopping; events they had not delivered were not acknowledged");
            for a in &source_aborts {
                a.abort();
            }
            sources_joined.await;
        }
    }
    drain.trigger();
    let deadline = tokio::time::sleep_until(deadline);
    tokio::pin!(deadline);
    let joined = futures_join(sink_tasks);
    tokio::pin!(joined);
    tokio::select! {
        _ = &mut joined => {}
        _ = &mut deadline => {
            let left: usize = channels.iter().filter(|c| !c.is_durable()).map(Channel::len).sum();
            tracing::warn!("shard {k}: drain timeout; {left} events left in memory channels are lost (file channels keep theirs)");
            abort.trigger();
            joined.await;
        }
    }
    for c in &channels {
        c.close().await;
    }
    let _ = report.send(Msg::Done(k, metrics.snapshot()));
}

/// Awaits every task (in order; they all run concurrently on the shard regardless).
async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// Sink groups as configured, and every sink outside a group as a group of one.
fn groups(
    cfg: &AgentConfig,
    sinks: Vec<(&SinkConfig, Box<dyn ShardSink>)>,
    channels: &[Channel],
    metrics: &mut Registry,
) -> Vec<(Vec<Member>, ProcessorConfig)> {
    let mut members: Vec<Option<Member>> = sinks
        .into_iter()
        .map(|(s, sink)| {
            Some(Member::new(
                &s.name,
                sink,
                channels[s.channel].clone(),
                s.kind.batch_size(),
                0,
                metrics,
            ))
        })
        .collect();
    let mut out = Vec::new();
    for g in &cfg.sinkgroups {
        let mut group = Vec::new();
        for (pos, &i) in g.sinks.iter().enumerate() {
            let mut m = members[i].take().expect("a sink is in one group only");
            if let ProcessorConfig::Failover { priorities, .. } = &g.processor {
                m.priority = priorities[pos];
            }
            group.push(m);
        }
        out.push((group, g.processor.clone()));
    }
    out.extend(
        members
            .into_iter()
            .flatten()
            .map(|m| (vec![m], ProcessorConfig::Default)),
    );
    out
}
