//! The durable channel (`file`, `org.apache.flume.channel.file.FileChannel`): a per-shard,
//! segmented, memory-mapped write-ahead log with group commit.
//!
//! Layout, per shard k: `<dataDir>/shard-k/<lsn>.wal` segments (`segment`), framed records
//! (`record`), `<checkpointDir>/shard-k/checkpoint` (`checkpoint`), an `in_use.lock` in
//! each (`layout`). `log` appends and rolls segments, `channel` runs Flume's transactions
//! and the group commit on top, `queue` holds what is committed and untaken, `replay` rebuilds the live events at start-up, and `tools`
//! backs `flume-fast channel verify|stat`.

pub mod channel;
pub mod checkpoint;
pub mod config;
mod direct;
pub mod layout;
mod log;
mod queue;
pub mod record;
pub mod replay;
pub mod segment;
pub mod tools;

#[cfg(test)]
mod tests;

pub use channel::{WalChannel, WalError};
pub use config::{WalConfig, TYPE};
