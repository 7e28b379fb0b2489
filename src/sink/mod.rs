//! Sinks: the registry of sink types and the two traits every type implements. A sink
//! only writes a batch; taking it from the channel, committing, rolling back and backing
//! off is the runner's job (`runner.rs`), the same for every sink.
//!
//! A sink type lives in its own file or folder: its key table and typed configuration
//! (`Component` + [`SinkType`], built once at start-up and shared by the shards) and its
//! per-shard running sink ([`ShardSink`]). Adding one takes that file and one line in
//! [`TYPES`]; a capability its author forgot (ticking, closing) fails to compile rather
//! than silently doing nothing, because the trait methods have no defaults.

pub mod avro;
pub mod file_roll;
pub mod hdfs;
pub mod http;
pub mod logger;
pub mod null;
pub mod runner;
pub mod serializer;

use crate::config::keys::Keys;
use crate::config::{AsAny, Component, ConfigError, Registration};
use crate::event::Event;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;

/// A future on the shard's own thread (sinks hold `Rc`s and io_uring files, never `Send`).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A sink type's typed configuration, built once at start-up from its keys.
pub trait SinkType: AsAny + std::fmt::Debug + Send + Sync {
    /// Events per take transaction.
    fn batch_size(&self) -> usize;
    /// Opens shard `shard`'s instance (of `shards`); errors here stop the agent at start.
    fn open(
        &self,
        name: &str,
        shard: usize,
        shards: usize,
    ) -> Result<Box<dyn ShardSink>, SinkError>;
}

/// One shard's running sink. Dispatch is once per batch (a boxed future per call), never
/// per event. No method has a default, so each type's author decides each capability.
pub trait ShardSink {
    /// Writes a batch; `Ok` means the destination has it and the take may commit.
    fn process<'a>(&'a mut self, events: &'a [Event]) -> LocalBoxFuture<'a, Result<(), SinkError>>;
    /// When the sink wants `tick` called even without events (file rolling); `None`: never.
    fn next_tick(&self) -> Option<Instant>;
    /// Time-driven work (rolling files, retries), called when `next_tick` is due.
    fn tick(&mut self) -> LocalBoxFuture<'_, ()>;
    /// Releases files and connections at agent stop, after the last batch.
    fn close(&mut self) -> LocalBoxFuture<'_, ()>;
}

/// The sink types, one line each.
pub static TYPES: &[Registration<Arc<dyn SinkType>>] = &[
    register::<avro::AvroSinkConfig>(),
    register::<logger::LoggerConfig>(),
    register::<null::NullConfig>(),
    register::<file_roll::FileRollConfig>(),
    register::<hdfs::HdfsConfig>(),
    register::<http::HttpSinkConfig>(),
];

/// A registry line for sink type `T`: its declaration and its builder.
pub const fn register<T: Component + SinkType>() -> Registration<Arc<dyn SinkType>> {
    Registration {
        info: T::TYPE,
        build: build::<T>,
    }
}

/// Arc, not Box: `AgentConfig` is cloned and every shard thread opens from the same config.
fn build<T: Component + SinkType>(k: &mut Keys) -> Result<Arc<dyn SinkType>, ConfigError> {
    Ok(Arc::new(T::from_keys(k)?))
}

/// Why a batch (or a shard's open) failed. The runner only shows it, so a sink type brings
/// its own error type as `Other` rather than a variant here.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
    /// The destination answered and the sink's own rules say what becomes of the take
    /// (the http sink, by status code): not always a failure, so not always a rollback.
    #[error("{}", .0.reason)]
    Verdict(Verdict),
}

/// What a sink's rules make of a take its destination answered (see [`SinkError::Verdict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Commit the take (the events are done with); otherwise roll it back to be sent again.
    pub commit: bool,
    /// Back off as after a failure before the next take.
    pub backoff: bool,
    /// Count the events as drained.
    pub count: bool,
    pub reason: String,
}

impl SinkError {
    /// Wraps a sink type's own error, its message unchanged.
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SinkError::Other(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    //! A new sink type needs only its own code and one registry line: `Counting` below is
    //! all of one, registered in a local slice shaped exactly like [`TYPES`].

    use super::*;
    use crate::config::keys::{KeyKind, KeySpec, TypeInfo};
    use crate::config::{Loc, Prop};
    use bytes::Bytes;
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // --- the whole of the new type (what would be `src/sink/counting.rs`) ---

    const KEYS: &[KeySpec] = &[KeySpec::new(
        "batchSize",
        KeyKind::POSITIVE,
        Some("100"),
        "Events per take transaction",
    )];

    const TYPE: TypeInfo = TypeInfo {
        aliases: &["counting"],
        class: "test.CountingSink",
        doc: "Counts the events it takes.",
        keys: KEYS,
    };

    #[derive(Debug)]
    struct CountingConfig {
        batch_size: usize,
        /// Shared by every shard's instance, so the test can see what they received.
        seen: Arc<AtomicUsize>,
    }

    impl Component for CountingConfig {
        const TYPE: TypeInfo = TYPE;

        fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
            Ok(CountingConfig {
                batch_size: k.usize("batchSize")?,
                seen: Arc::default(),
            })
        }
    }

    impl SinkType for CountingConfig {
        fn batch_size(&self) -> usize {
            self.batch_size
        }

        fn open(&self, _: &str, _: usize, _: usize) -> Result<Box<dyn ShardSink>, SinkError> {
            Ok(Box::new(Counting {
                seen: self.seen.clone(),
            }))
        }
    }

    struct Counting {
        seen: Arc<AtomicUsize>,
    }

    impl ShardSink for Counting {
        fn process<'a>(
            &'a mut self,
            events: &'a [Event],
        ) -> LocalBoxFuture<'a, Result<(), SinkError>> {
            Box::pin(async move {
                self.seen.fetch_add(events.len(), Ordering::Relaxed);
                Ok(())
            })
        }

        /// Nothing is time-driven.
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

    // --- its registry line ---

    static LOCAL_TYPES: &[Registration<Arc<dyn SinkType>>] = &[register::<CountingConfig>()];

    #[test]
    fn a_new_sink_type_is_its_own_code_plus_one_registry_line() {
        let reg = LOCAL_TYPES
            .iter()
            .find(|r| r.info.matches("COUNTING"))
            .expect("found by alias, case-insensitively, as the loader does");
        let loc = Loc {
            file: Arc::from(Path::new("agent.conf")),
            line: 1,
        };
        let props = BTreeMap::from([(
            "batchSize".to_string(),
            Prop {
                key: "a.sinks.k.batchSize".into(),
                value: "3".into(),
                loc: loc.clone(),
            },
        )]);
        let mut keys = Keys::new("sink 'k'", "a.sinks.k", reg.info.keys, &props, loc);
        let kind = (reg.build)(&mut keys).unwrap();
        assert_eq!(kind.batch_size(), 3);
        let seen = kind
            .as_any()
            .downcast_ref::<CountingConfig>()
            .expect("the built kind is the new type's config")
            .seen
            .clone();

        let mut sink = kind.open("k", 0, 1).unwrap();
        let events: Vec<Event> = (0..3)
            .map(|i| Event::new(Bytes::from(format!("e{i}"))))
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            sink.process(&events).await.unwrap();
            sink.process(&events[..1]).await.unwrap();
            assert_eq!(sink.next_tick(), None);
            sink.close().await;
        });
        assert_eq!(seen.load(Ordering::Relaxed), 4);
    }
}
