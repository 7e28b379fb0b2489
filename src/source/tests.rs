//! The source shape and its shared plumbing: a new type is its own code plus one
//! registry line, placement decides the shards, and delivery counts and pushes back.

use super::*;
use crate::channel::{Channel, ChannelKind, MemoryConfig};
use crate::config::keys::{KeyKind, KeySpec, TypeInfo};
use crate::config::{Loc, Prop};
use crate::event::Event;
use crate::flow::delivery::Delivery;
use crate::flow::selector::SelectorConfig;
use crate::runtime::local::Stop;
use crate::runtime::metrics::Registry;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// An example source type, written as a new type would be: its keys, its typed config,
/// `Component` and `SourceType`. Nothing else in the crate names it: the
/// registry line below (a local registry here, `TYPES` for real types) is all it needs.
#[derive(Debug, Clone)]
struct Countdown {
    from: u64,
}

const COUNTDOWN_KEYS: &[KeySpec] = &[KeySpec::required(
    "from",
    KeyKind::POSITIVE,
    "Events to make, counting down to 1",
)];

impl Component for Countdown {
    const TYPE: TypeInfo = TypeInfo {
        aliases: &["countdown"],
        class: "example.Countdown",
        doc: "Counts down once, one event per number.",
        keys: COUNTDOWN_KEYS,
    };
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(Countdown {
            from: k.int("from")? as u64,
        })
    }
}

impl SourceType for Countdown {
    fn plan(&self) -> std::io::Result<Plan> {
        Ok(Plan::HOME_SHARD)
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        Ok(Bound::new(self.clone(), count_down))
    }
}

async fn count_down(cfg: Countdown, ctx: Rc<SourceCtx>) {
    let events = (1..=cfg.from)
        .rev()
        .map(|i| Event::new(Bytes::from(i.to_string())))
        .collect();
    ctx.deliver_all(events, &"the countdown").await;
}

static EXAMPLE_REGISTRY: &[Registration<Arc<dyn SourceType>>] = &[register::<Countdown>()];

fn memory(capacity: usize) -> Channel {
    let cfg = MemoryConfig {
        capacity,
        transaction_capacity: capacity,
        keep_alive: Duration::ZERO,
        body_budget: None,
    };
    Channel::open("c1", &ChannelKind::Memory(cfg), 0, 1).unwrap()
}

fn ctx(channel: &Channel, reg: &mut Registry, stop: &Stop) -> Rc<SourceCtx> {
    let delivery = Delivery::new(
        Vec::new(),
        SelectorConfig::Replicating {
            optional: Vec::new(),
        },
        vec![channel.clone()],
    );
    Rc::new(SourceCtx::new("r1", delivery, stop.clone(), reg))
}

fn bodies(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(e.body.as_ref()).into_owned())
        .collect()
}

#[test]
fn a_new_source_type_is_its_own_code_and_one_registry_line() {
    let reg = EXAMPLE_REGISTRY
        .iter()
        .find(|r| r.info.matches("Countdown"))
        .expect("found by its alias, case-insensitively");
    let props: BTreeMap<String, Prop> = [(
        "from".to_string(),
        Prop {
            key: "a1.sources.r1.from".into(),
            value: "3".into(),
            loc: Loc {
                file: Arc::from(Path::new("agent.conf")),
                line: 7,
            },
        },
    )]
    .into();
    let decl = props["from"].loc.clone();
    let mut keys = Keys::new("source 'r1'", "a1.sources.r1", reg.info.keys, &props, decl);
    let source = (reg.build)(&mut keys).unwrap();
    assert!(keys.unknown_keys(&["type"]).is_empty());
    assert_eq!(source.plan().unwrap(), Plan::HOME_SHARD);

    tokio_uring::start(async {
        let channel = memory(10);
        let mut metrics = Registry::default();
        let ctx = ctx(&channel, &mut metrics, &Stop::new());
        let bound = source.bind(Shard { index: 0, count: 1 }).unwrap();
        bound.run(ctx.clone()).await;
        let tx = channel.take(10);
        assert_eq!(bodies(&tx.events), ["3", "2", "1"]);
        tx.commit();
        assert_eq!((ctx.accepted.get(), ctx.refused.get()), (3, 0));
    });
}

#[test]
fn a_missing_required_key_of_a_new_type_names_the_key() {
    let reg = &EXAMPLE_REGISTRY[0];
    let props = BTreeMap::new();
    let decl = Loc {
        file: Arc::from(Path::new("agent.conf")),
        line: 4,
    };
    let mut keys = Keys::new("source 'r1'", "a1.sources.r1", reg.info.keys, &props, decl);
    let err = (reg.build)(&mut keys).unwrap_err().to_string();
    assert!(err.contains("a1.sources.r1.from"), "{err}");
    assert!(err.contains("agent.conf:4"), "{err}");
}

#[test]
fn placement_runs_a_home_shard_source_on_exactly_one_stable_shard() {
    for shards in 1..=8 {
        let on: Vec<usize> = (0..shards)
            .filter(|&k| Placement::HomeShard.runs_on("gen", k, shards))
            .collect();
        assert_eq!(on, [shard_of(b"gen", shards)], "{shards} shards");
        assert!((0..shards).all(|k| Placement::EveryShard.runs_on("gen", k, shards)));
        assert!((0..shards).all(|k| Placement::Partitioned.runs_on("gen", k, shards)));
    }
    // FNV-1a of "a" is 0xaf63dc4c8601ec8c: the same value in every build and run, so a
    // restart gives a source, or a tailed file, the same shard.
    assert_eq!(
        shard_of(b"a", 1000),
        (0xaf63dc4c8601ec8c_u64 % 1000) as usize
    );
}

#[test]
fn a_partitioned_key_has_exactly_one_owner_shard() {
    for shards in 1..=8 {
        for file in ["/var/log/a.log", "/var/log/b.log", "x"] {
            let owners = (0..shards)
                .filter(|&index| {
                    Shard {
                        index,
                        count: shards,
                    }
                    .owns(file.as_bytes())
                })
                .count();
            assert_eq!(owners, 1, "{file} over {shards} shards");
        }
    }
}

#[test]
fn deliver_counts_what_the_channel_accepted_and_refused() {
    tokio_uring::start(async {
        let channel = memory(4);
        let mut metrics = Registry::default();
        let ctx = ctx(&channel, &mut metrics, &Stop::new());
        let events = |n: u32| {
            (0..n)
                .map(|i| Event::new(Bytes::from(i.to_string())))
                .collect()
        };
        ctx.deliver(events(3)).await.unwrap();
        let refused = ctx.deliver(events(3)).await.unwrap_err();
        assert_eq!(refused.events.len(), 3, "a batch is one transaction");
        assert_eq!((ctx.accepted.get(), ctx.refused.get()), (3, 3));
    });
}

#[test]
fn deliver_all_holds_a_refused_batch_until_the_channel_has_room() {
    tokio_uring::start(async {
        let channel = memory(10);
        let mut metrics = Registry::default();
        let ctx = ctx(&channel, &mut metrics, &Stop::new());
        let events: Vec<Event> = (0..25)
            .map(|i| Event::new(Bytes::from(i.to_string())))
            .collect();
        // A sink that takes 5 at a time, only while the source is held.
        let drain = {
            let channel = channel.clone();
            async move {
                let mut got = Vec::new();
                while got.len() < 25 {
                    channel.wait_for_data().await;
                    let tx = channel.take(5);
                    got.extend(bodies(&tx.events));
                    tx.commit();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                got
            }
        };
        let (delivered, got) = tokio::join!(ctx.deliver_all(events, &"test"), drain);
        assert_eq!(delivered, 25);
        let want: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        assert_eq!(got, want, "every event once, in order");
        assert_eq!(ctx.accepted.get(), 25);
        assert!(ctx.refused.get() > 0, "the full channel refused some first");
    });
}

#[test]
fn deliver_all_gives_up_when_the_source_stops() {
    tokio_uring::start(async {
        let channel = memory(10);
        let mut metrics = Registry::default();
        let stop = Stop::new();
        let ctx = ctx(&channel, &mut metrics, &stop);
        let events: Vec<Event> = (0..25)
            .map(|i| Event::new(Bytes::from(i.to_string())))
            .collect();
        let stopper = async {
            while ctx.refused.get() == 0 {
                tokio::task::yield_now().await;
            }
            stop.trigger();
        };
        let (delivered, ()) = tokio::join!(ctx.deliver_all(events, &"test"), stopper);
        assert_eq!(delivered, 10, "the channel's capacity, then the stop");
        assert_eq!(channel.len(), 10);
    });
}

#[test]
fn the_accept_loop_returns_on_stop_only_after_its_open_connections_end() {
    tokio_uring::start(async {
        let channel = memory(10);
        let mut metrics = Registry::default();
        let stop = Stop::new();
        let ctx = ctx(&channel, &mut metrics, &stop);
        let listening = TcpListening::bind("127.0.0.1", 0, &()).unwrap();
        let addr = listening.listener.local_addr().unwrap();
        let ended = Rc::new(std::cell::Cell::new(false));
        let accepting = {
            let (ctx, ended) = (ctx.clone(), ended.clone());
            async move {
                accept_loop(listening.listener, &ctx, |stream, _| {
                    let (stop, ended) = (ctx.stop.clone(), ended.clone());
                    Some(async move {
                        // A connection that finishes its work after the stop.
                        stop.wait().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        ended.set(true);
                        drop(stream);
                    })
                })
                .await;
                ended.get()
            }
        };
        let client = async {
            let _conn = tokio_uring::net::TcpStream::connect(addr).await.unwrap();
            // Stop once the connection is being served.
            while Rc::strong_count(&ended) < 3 {
                tokio::task::yield_now().await;
            }
            stop.trigger();
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let returned_after_the_connection = tokio::select! {
            ended = accepting => ended,
            _ = client => panic!("the accept loop did not return within 1 s of the stop"),
        };
        assert!(returned_after_the_connection);
    });
}
