//! Sources: the registry of source types and what every type declares next to its code.
//! A type is one file (or folder) here plus one `register` line in `TYPES`: its config
//! implements `Component` (keys, builder) and `SourceType` (its plan: placement and
//! listening ports; binding a shard to a `Bound` that runs). A type that lacks one of
//! those does not compile. The plumbing that sources share (delivery with counting and
//! backpressure, the TCP accept loop) lives in `ctx` and `tcp`.

pub mod avro;
mod ctx;
pub mod exec;
pub mod http;
pub mod netcat;
pub mod netcat_udp;
pub mod seq;
pub mod spooldir;
pub mod stress;
pub mod syslog;
pub mod taildir;
mod tcp;

pub use ctx::{Backoff, SourceCtx};
pub use tcp::{accept_loop, TcpListening};

use crate::config::keys::{KeyKind, KeySpec};
use crate::config::{AsAny, Component, ConfigError, Keys, Registration};
use crate::runtime::socket::resolve;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

/// `fileHeader`, as Flume's file sources (TAILDIR, spooldir) have it.
pub(crate) const FILE_HEADER: KeySpec = KeySpec::new(
    "fileHeader",
    KeyKind::Bool,
    Some("false"),
    "Add the file's absolute path as a header",
);
/// `fileHeaderKey`, the header `fileHeader` sets.
pub(crate) const FILE_HEADER_KEY: KeySpec = KeySpec::new(
    "fileHeaderKey",
    KeyKind::Str,
    Some("file"),
    "Name of the path header",
);

/// The source types, one line each.
pub static TYPES: &[Registration<Arc<dyn SourceType>>] = &[
    register::<avro::AvroSourceConfig>(),
    register::<exec::ExecConfig>(),
    register::<http::HttpSourceConfig>(),
    register::<netcat::NetcatConfig>(),
    register::<netcat_udp::NetcatUdpConfig>(),
    register::<seq::SeqConfig>(),
    register::<spooldir::SpoolDirConfig>(),
    register::<stress::StressConfig>(),
    register::<syslog::tcp::SyslogTcpConfig>(),
    register::<syslog::udp::SyslogUdpConfig>(),
    register::<syslog::multiport::MultiportConfig>(),
    register::<taildir::TaildirConfig>(),
];

/// A source type's typed configuration, built once at start-up from its keys and shared
/// by every shard.
pub trait SourceType: AsAny + std::fmt::Debug + Send + Sync {
    /// Which shards run the source and which sockets it listens on (checked free before
    /// any shard starts: with SO_REUSEPORT another process could share a port silently).
    fn plan(&self) -> std::io::Result<Plan>;
    /// Acquires what `shard`'s instance needs before the shard reports ready (its
    /// sockets), so that a start that cannot bind fails before anything runs.
    fn bind(&self, shard: Shard) -> std::io::Result<Bound>;
}

/// Where a source runs and what it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub placement: Placement,
    pub listens: Vec<Listen>,
}

impl Plan {
    /// On every shard, accepting on `host:port` through SO_REUSEPORT.
    pub fn tcp(host: &str, port: u16) -> std::io::Result<Plan> {
        Ok(Plan {
            placement: Placement::EveryShard,
            listens: vec![Listen::Tcp(resolve(host, port)?)],
        })
    }
    /// On every shard, receiving on `host:port` through SO_REUSEPORT.
    pub fn udp(host: &str, port: u16) -> std::io::Result<Plan> {
        Ok(Plan {
            placement: Placement::EveryShard,
            listens: vec![Listen::Udp(resolve(host, port)?)],
        })
    }
    /// On one shard, listening on nothing: a single stream (a generator).
    pub const HOME_SHARD: Plan = Plan {
        placement: Placement::HomeShard,
        listens: Vec::new(),
    };
    /// On every shard, listening on nothing, each shard owning part of the work.
    pub const PARTITIONED: Plan = Plan {
        placement: Placement::Partitioned,
        listens: Vec::new(),
    };
}

/// Which shards run a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Every shard, each accepting on the same port through SO_REUSEPORT.
    EveryShard,
    /// One shard, the one its name hashes to (a single stream, like a generator).
    HomeShard,
    /// Every shard, each owning the part of the work whose key hashes to it
    /// (`Shard::owns`): one owner shard per tailed file, so no two read it.
    Partitioned,
}

impl Placement {
    /// Whether shard `index` of `count` runs the source named `name`.
    pub fn runs_on(self, name: &str, index: usize, count: usize) -> bool {
        match self {
            Placement::EveryShard | Placement::Partitioned => true,
            Placement::HomeShard => shard_of(name.as_bytes(), count) == index,
        }
    }
}

/// The shard a source instance is bound for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Whether this shard owns the work named `key` (a `Partitioned` source's file).
    pub fn owns(&self, key: &[u8]) -> bool {
        shard_of(key, self.count) == self.index
    }
}

/// A stable hash of `key` onto `count` shards (FNV-1a: the same across runs and builds,
/// unlike the std hasher, so a restart gives a source or a file the same shard).
pub fn shard_of(key: &[u8], count: usize) -> usize {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % count.max(1) as u64) as usize
}

/// A socket a source listens on, for the port check before shards start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Udp(SocketAddr),
}

type Start = Box<dyn FnOnce(Rc<SourceCtx>) -> Pin<Box<dyn Future<Output = ()>>>>;

/// One shard's source, bound and ready to run until its context's stop.
pub struct Bound(Start);

impl Bound {
    /// What `bind` acquired (`state`: sockets and config) and the function that serves
    /// it on the shard; one allocation per source per shard, at start.
    pub fn new<S, F>(state: S, run: fn(S, Rc<SourceCtx>) -> F) -> Bound
    where
        S: 'static,
        F: Future<Output = ()> + 'static,
    {
        Bound(Box::new(move |ctx| Box::pin(run(state, ctx))))
    }

    pub async fn run(self, ctx: Rc<SourceCtx>) {
        (self.0)(ctx).await
    }
}

/// The registry line of source type `T`: its declaration and its builder.
pub const fn register<T: Component + SourceType>() -> Registration<Arc<dyn SourceType>> {
    Registration {
        info: T::TYPE,
        build: build::<T>,
    }
}

fn build<T: Component + SourceType>(k: &mut Keys) -> Result<Arc<dyn SourceType>, ConfigError> {
    Ok(Arc::new(T::from_keys(k)?))
}

#[cfg(test)]
mod tests;
