//! The file channel's keys (`file`, `org.apache.flume.channel.file.FileChannel`), with
//! Flume's names, defaults and units, and the typed config built from them. Flume's expert
//! and encryption keys are accepted with a warning saying why they are not needed or not
//! supported, so an existing agent.conf starts unchanged.

use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

/// 64 MiB: Flume's 2 GiB default suits its buffered files, but every segment here is
/// preallocated and mapped, and a whole segment is freed only once its last event is
/// taken; smaller segments free disk sooner and cost one file creation per 64 MiB.
pub const DEFAULT_SEGMENT: &str = "67108864";

const NOT_NEEDED_CKPT: &str = "Not needed: a damaged or missing checkpoint is rebuilt from the segments (accepted and ignored)";
const NOT_NEEDED_REPLAY: &str =
    "Not needed: flume-fast has one replay, at disk speed (accepted and ignored)";
const NO_ENCRYPTION: &str = "Not supported: flume-fast does not encrypt the log; use an encrypted filesystem (accepted and ignored, with a warning)";

const KEYS: &[KeySpec] = &[
    KeySpec::new("checkpointDir", KeyKind::Str, Some("~/.flume/file-channel/checkpoint"), "Directory for the checkpoints (shard k uses <checkpointDir>/shard-k)"),
    KeySpec::new("dataDirs", KeyKind::Str, Some("~/.flume/file-channel/data"), "Comma-separated directories for the log segments; shards are spread over them"),
    KeySpec::new("capacity", KeyKind::POSITIVE, Some("1000000"), "Maximum number of events in the channel (split evenly over shards)"),
    KeySpec::new("transactionCapacity", KeyKind::POSITIVE, Some("10000"), "Maximum number of events per put or take transaction"),
    KeySpec::new("checkpointInterval", KeyKind::POSITIVE, Some("30000"), "Milliseconds between checkpoints (flume-fast also checkpoints when the log rolls past a consumed segment, so it can be reused)"),
    KeySpec::new("maxFileSize", KeyKind::int(65536, 1 << 40), Some(DEFAULT_SEGMENT), "Size of each preallocated, mapped log segment in bytes (Flume's default is 2146435071; flume-fast defaults to 64 MiB, which frees disk sooner)"),
    KeySpec::new("minimumRequiredSpace", KeyKind::NON_NEGATIVE, Some("524288000"), "Puts fail while the data directory's filesystem has less free space than this (bytes), and the log makes no new segment file that would leave less; takes go on so sinks can drain"),
    KeySpec::new("keep-alive", KeyKind::NON_NEGATIVE, Some("3"), "Seconds a put waits for space before failing"),
    KeySpec::new("checkpointOnClose", KeyKind::Bool, Some("true"), "Write a checkpoint when the channel closes, so the next start replays less"),
    KeySpec::new("fsyncPerTransaction", KeyKind::Bool, Some("true"), "Sync the log before a put commit is acknowledged (one sync shared by all transactions committed meanwhile); false trades durability for speed: a crash of the machine may lose up to fsyncInterval of acknowledged events"),
    KeySpec::new("fsyncInterval", KeyKind::POSITIVE, Some("5"), "Seconds between background syncs when fsyncPerTransaction is false"),
    KeySpec::ignored("useDualCheckpoints", NOT_NEEDED_CKPT),
    KeySpec::ignored("backupCheckpointDir", NOT_NEEDED_CKPT),
    KeySpec::ignored("compressBackupCheckpoint", NOT_NEEDED_CKPT),
    KeySpec::ignored("checkpointFileSize", "Not needed: the checkpoint stores live events as runs and has no fixed size (accepted and ignored)"),
    KeySpec::ignored("use-log-replay-v1", NOT_NEEDED_REPLAY),
    KeySpec::ignored("use-fast-replay", NOT_NEEDED_REPLAY),
    KeySpec::ignored("encryption.*", NO_ENCRYPTION),
    // Misspellings that Flume's own documentation table carries.
    KeySpec::ignored("encrpytion.*", NO_ENCRYPTION),
    KeySpec::ignored("encyption.*", NO_ENCRYPTION),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["file"],
    class: "org.apache.flume.channel.file.FileChannel",
    doc: "Durable: a per-shard, segmented, memory-mapped write-ahead log with group commit. A put is acknowledged once it is on disk.",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalConfig {
    pub checkpoint_dir: PathBuf,
    pub data_dirs: Vec<PathBuf>,
    pub capacity: usize,
    pub transaction_capacity: usize,
    pub checkpoint_interval: Duration,
    pub segment_size: usize,
    pub minimum_required_space: u64,
    pub keep_alive: Duration,
    pub checkpoint_on_close: bool,
    pub fsync_per_transaction: bool,
    pub fsync_interval: Duration,
    /// Warnings for accepted-but-ignored Flume keys, for the agent's warning list.
    pub notes: Vec<String>,
}

/// `~` and `~/...` as the JVM's `user.home` would expand them.
pub fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(p),
    }
}

impl WalConfig {
    pub fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let (capacity, transaction_capacity) = crate::channel::capacities(k)?;
        let data_dirs: Vec<PathBuf> = k
            .str("dataDirs")?
            .split([',', ' ', '\t'])
            .filter(|s| !s.is_empty())
            .map(expand_home)
            .collect();
        if data_dirs.is_empty() {
            return Err(k.invalid("dataDirs", "dataDirs names no directory"));
        }
        let checkpoint_dir = k.str("checkpointDir")?;
        if checkpoint_dir.is_empty() {
            return Err(k.invalid(
                "checkpointDir",
                "checkpointDir is empty (it would put the checkpoints in the working directory)",
            ));
        }
        let checkpoint_dir = expand_home(&checkpoint_dir);
        if data_dirs.contains(&checkpoint_dir) {
            return Err(k.invalid(
                "checkpointDir",
                "checkpointDir must not be one of the dataDirs",
            ));
        }
        let mut notes = Vec::new();
        for spec in KEYS.iter().filter(|s| s.doc.starts_with("Not ")) {
            match spec.key.strip_suffix(".*") {
                Some(prefix) => {
                    for (rest, p) in k.prefixed(prefix) {
                        notes.push(format!("{}: {}: {}", p.loc, p.key, spec.doc));
                        let _ = rest;
                    }
                }
                None => {
                    if k.opt_str(spec.key)?.is_some() {
                        notes.push(k.invalid(spec.key, spec.doc).to_string());
                    }
                }
            }
        }
        Ok(WalConfig {
            checkpoint_dir,
            data_dirs,
            capacity,
            transaction_capacity,
            checkpoint_interval: k.millis("checkpointInterval")?,
            segment_size: k.usize("maxFileSize")?,
            minimum_required_space: k.int("minimumRequiredSpace")? as u64,
            keep_alive: k.secs("keep-alive")?,
            checkpoint_on_close: k.bool("checkpointOnClose")?,
            fsync_per_transaction: k.bool("fsyncPerTransaction")?,
            fsync_interval: k.secs("fsyncInterval")?,
            notes,
        })
    }

    /// This shard's share of the capacity (never below one transaction).
    pub fn per_shard(&self, shards: usize) -> WalConfig {
        WalConfig {
            capacity: self
                .capacity
                .div_ceil(shards.max(1))
                .max(self.transaction_capacity),
            ..self.clone()
        }
    }

    /// The data directory shard `k` lives in.
    pub fn data_dir(&self, k: usize) -> PathBuf {
        self.data_dirs[k % self.data_dirs.len()].join(shard_dir(k))
    }

    pub fn checkpoint_dir(&self, k: usize) -> PathBuf {
        self.checkpoint_dir.join(shard_dir(k))
    }
}

pub fn shard_dir(k: usize) -> String {
    format!("shard-{k}")
}

pub fn parse_shard_dir(name: &str) -> Option<usize> {
    let n = name.strip_prefix("shard-")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}
