//! Sinks: the registry of sink types and the per-shard running sinks. A sink only writes a
//! batch; taking it from the channel, committing, rolling back and backing off is the
//! runner's job (`runner.rs`), the same for every sink.

pub mod avro;
pub mod file_roll;
pub mod hdfs;
pub mod logger;
pub mod runner;
pub mod serializer;

use crate::config::keys::{KeyKind, KeySpec, TypeInfo};
use crate::config::{Component, Registration};
use crate::event::Event;
use std::path::PathBuf;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub enum SinkKind {
    Avro(avro::AvroSinkConfig),
    Logger(logger::LoggerConfig),
    Null { batch_size: usize },
    FileRoll(file_roll::FileRollConfig),
    Hdfs(Box<hdfs::HdfsConfig>),
}

const NULL_KEYS: &[KeySpec] = &[KeySpec::new(
    "batchSize",
    KeyKind::POSITIVE,
    Some("100"),
    "Events per take transaction",
)];

const NULL_TYPE: TypeInfo = TypeInfo {
    aliases: &["null"],
    class: "org.apache.flume.sink.NullSink",
    doc: "Discards every event it takes.",
    keys: NULL_KEYS,
};

/// The sink types, one line each.
pub static TYPES: &[Registration<SinkKind>] = &[
    Registration {
        info: avro::TYPE,
        build: |k| Ok(SinkKind::Avro(avro::AvroSinkConfig::from_keys(k)?)),
    },
    Registration {
        info: logger::TYPE,
        build: |k| Ok(SinkKind::Logger(logger::LoggerConfig::from_keys(k)?)),
    },
    Registration {
        info: NULL_TYPE,
        build: |k| {
            Ok(SinkKind::Null {
                batch_size: k.usize("batchSize")?,
            })
        },
    },
    Registration {
        info: file_roll::TYPE,
        build: |k| Ok(SinkKind::FileRoll(file_roll::FileRollConfig::from_keys(k)?)),
    },
    Registration {
        info: hdfs::TYPE,
        build: |k| Ok(SinkKind::Hdfs(Box::new(hdfs::HdfsConfig::from_keys(k)?))),
    },
];

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Avro(#[from] avro::AvroSinkError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Hdfs(#[from] hdfs::sink::HdfsSinkError),
}

impl SinkKind {
    pub fn batch_size(&self) -> usize {
        match self {
            SinkKind::Avro(c) => c.batch_size,
            SinkKind::Logger(c) => c.batch_size,
            SinkKind::Null { batch_size } => *batch_size,
            SinkKind::FileRoll(c) => c.batch_size,
            SinkKind::Hdfs(c) => c.batch_size,
        }
    }

    /// Opens shard `shard`'s instance (of `shards`); errors here stop the agent at start.
    pub fn open(&self, name: &str, shard: usize, shards: usize) -> Result<Sink, SinkError> {
        Ok(match self {
            SinkKind::Avro(c) => Sink::Avro(avro::AvroSink::new(c)),
            SinkKind::Logger(c) => Sink::Logger(name.to_string(), c.clone()),
            SinkKind::Null { .. } => Sink::Null,
            SinkKind::FileRoll(c) => Sink::FileRoll(file_roll::FileRollSink::open(c, shard)?),
            SinkKind::Hdfs(c) => {
                Sink::Hdfs(Box::new(hdfs::sink::HdfsSink::open(c, shard, shards)?))
            }
        })
    }
}

/// One shard's running sink.
pub enum Sink {
    Avro(avro::AvroSink),
    Logger(String, logger::LoggerConfig),
    Null,
    FileRoll(file_roll::FileRollSink),
    Hdfs(Box<hdfs::sink::HdfsSink>),
}

impl Sink {
    /// Writes a batch; `Ok` means the destination has it and the take may commit.
    pub async fn process(&mut self, events: &[Event]) -> Result<(), SinkError> {
        match self {
            Sink::Avro(s) => Ok(s.process(events).await?),
            Sink::Logger(name, cfg) => {
                logger::log(name, cfg, events);
                Ok(())
            }
            Sink::Null => Ok(()),
            Sink::FileRoll(s) => s.write(events).await,
            Sink::Hdfs(s) => s.write(events).await,
        }
    }

    /// When the sink wants `tick` called even without events (file rolling).
    pub fn next_tick(&self) -> Option<Instant> {
        match self {
            Sink::FileRoll(s) => s.next_roll(),
            Sink::Hdfs(s) => s.next_tick(),
            _ => None,
        }
    }

    pub async fn tick(&mut self) {
        match self {
            Sink::FileRoll(s) => s.roll_if_due().await,
            Sink::Hdfs(s) => s.tick().await,
            _ => {}
        }
    }

    pub async fn close(&mut self) {
        match self {
            Sink::FileRoll(s) => s.close().await,
            Sink::Avro(s) => s.close(),
            Sink::Hdfs(s) => s.close().await,
            _ => {}
        }
    }
}
