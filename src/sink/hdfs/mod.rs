//! The HDFS sink (`hdfs`, `org.apache.flume.sink.hdfs.HDFSEventSink`): Flume's keys and
//! defaults, parsed into `HdfsConfig`. The running sink is in `sink.rs`, one per shard;
//! file formats in `format.rs` (with `seqfile.rs`, `codec.rs`, and the serializers every
//! file-writing sink shares, `crate::sink::serializer`), path escapes in
//! `escape.rs`, roll rules in `roll.rs`.
//!
//! Where flume-fast differs from Flume (all documented in `describe hdfs`):
//! - file names carry the shard: `<filePrefix>.<counter>.<shard>[<fileSuffix> | codec
//!   extension]`, where `<counter>` starts at the open time in milliseconds and only grows
//!   (Flume: `<filePrefix>.<counter>`), so shards and restarts never collide;
//! - the batch is `hsync`'d (Flume: `hflush`) before the take commits;
//! - a file abandoned after an HDFS error is recovered in the background (lease recovery,
//!   cut back to the last synced length, rename), not left as `.tmp`;
//! - in-use files a crash left open are recovered at the next start, found in a local
//!   journal of the files each shard has open (`hdfs.journalDir`, `journal.rs`), so no
//!   other writer's file is ever touched;
//! - keys Flume reads but that mean nothing without JVM thread pools are accepted and
//!   ignored with a warning; values Flume silently replaces (an unknown time zone, an
//!   unknown round unit) are refused.

pub mod codec;
pub mod escape;
pub mod format;
pub mod journal;
pub mod roll;
pub mod seqfile;
pub mod sink;

use crate::config::keys::{self, KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::sink::serializer::{serializer_keys, Serializer};
use codec::Codec;
use escape::{HostNames, RoundUnit, Template, TimeSettings};
use format::{FileType, Format};
use roll::RollRules;
use seqfile::ValueType;
use std::path::PathBuf;
use std::time::Duration;

const OWN_KEYS: &[KeySpec] = &[
    KeySpec::required(
        "hdfs.path",
        KeyKind::Str,
        "Directory (hdfs://namenode[:port]/dir, viewfs://..., or /dir on fs.defaultFS), with escapes",
    ),
    KeySpec::new("hdfs.filePrefix", KeyKind::Str, Some("FlumeData"), "Name prefixed to files (escapes allowed)"),
    KeySpec::new("hdfs.fileSuffix", KeyKind::Str, Some(""), "Suffix appended to file names (no dot is added)"),
    KeySpec::new("hdfs.inUsePrefix", KeyKind::Str, Some(""), "Prefix of files while they are written"),
    KeySpec::new("hdfs.inUseSuffix", KeyKind::Str, Some(".tmp"), "Suffix of files while they are written"),
    KeySpec::new("hdfs.emptyInUseSuffix", KeyKind::Bool, Some("false"), "Write under the final name (hdfs.inUseSuffix ignored)"),
    KeySpec::new("hdfs.rollInterval", KeyKind::NON_NEGATIVE, Some("30"), "Seconds before a file is rolled (0: never by time)"),
    KeySpec::new("hdfs.rollSize", KeyKind::NON_NEGATIVE, Some("1024"), "Body bytes that trigger a roll (0: never by size)"),
    KeySpec::new("hdfs.rollCount", KeyKind::NON_NEGATIVE, Some("10"), "Events per file before it is rolled (0: never by count)"),
    KeySpec::new("hdfs.idleTimeout", KeyKind::NON_NEGATIVE, Some("0"), "Seconds without writes before a file is closed (0: never)"),
    KeySpec::new("hdfs.batchSize", KeyKind::POSITIVE, Some("100"), "Events per take transaction; each batch is hsync'd"),
    KeySpec::new("hdfs.codeC", KeyKind::Str, None, "Compression codec: gzip, default, deflate (Hadoop codec names)"),
    KeySpec::new(
        "hdfs.fileType",
        KeyKind::Choice(&["SequenceFile", "DataStream", "CompressedStream"]),
        Some("SequenceFile"),
        "File format",
    ),
    KeySpec::new("hdfs.maxOpenFiles", KeyKind::POSITIVE, Some("5000"), "Open files per shard; the least recently used is closed beyond"),
    KeySpec::new(
        "hdfs.minBlockReplicas",
        KeyKind::NON_NEGATIVE,
        None,
        "Accepted; no effect (hdfs-native does not report pipeline replicas, so no under-replication roll)",
    ),
    KeySpec::new(
        "hdfs.writeFormat",
        KeyKind::Choice(&["Writable", "Text"]),
        Some("Writable"),
        "SequenceFile value class: BytesWritable or Text",
    ),
    KeySpec::ignored("hdfs.threadsPoolSize", "Ignored: HDFS I/O runs on each shard's event loop, no thread pool"),
    KeySpec::ignored("hdfs.rollTimerPoolSize", "Ignored: roll timers run on each shard's event loop"),
    KeySpec::ignored("hdfs.useRawLocalFileSystem", "Ignored: only HDFS file systems are written"),
    KeySpec::new("hdfs.kerberosPrincipal", KeyKind::Str, None, "Kerberos principal (passed to hdfs-native)"),
    KeySpec::new("hdfs.kerberosKeytab", KeyKind::Str, None, "Kerberos keytab (passed to hdfs-native)"),
    KeySpec::new("hdfs.proxyUser", KeyKind::Str, None, "User to act as (hdfs-native's effective user)"),
    KeySpec::new("hdfs.round", KeyKind::Bool, Some("false"), "Round the timestamp down (all time escapes but %t)"),
    KeySpec::new("hdfs.roundValue", KeyKind::int(1, 60), Some("1"), "Round down to a multiple of this (<= 24 for hours)"),
    KeySpec::new(
        "hdfs.roundUnit",
        KeyKind::Choice(&["second", "minute", "hour"]),
        Some("second"),
        "Unit of hdfs.roundValue",
    ),
    KeySpec::new("hdfs.timeZone", KeyKind::Str, None, "Time zone of time escapes (IANA name or GMT+hh:mm; default: local)"),
    KeySpec::new("hdfs.useLocalTimeStamp", KeyKind::Bool, Some("false"), "Use the local clock instead of the timestamp header"),
    KeySpec::new("hdfs.closeTries", KeyKind::int(i32::MIN as i64, i32::MAX as i64), Some("0"), "Attempts to close/rename a file (<= 0: until it succeeds)"),
    KeySpec::new("hdfs.retryInterval", KeyKind::int(i32::MIN as i64, i32::MAX as i64), Some("180"), "Seconds between close/rename attempts (<= 0: one attempt)"),
    KeySpec::new("hdfs.callTimeout", KeyKind::NON_NEGATIVE, Some("30000"), "Milliseconds allowed for each HDFS operation (0: no limit)"),
    KeySpec::new(
        "hdfs.journalDir",
        KeyKind::Str,
        Some(DEFAULT_JOURNAL_DIR),
        "Local directory of the per-shard journals of open in-use files, read at start to recover what a crash left open (flume-fast only)",
    ),
];

const SERIALIZER_KEYS: [KeySpec; 4] = serializer_keys!("serializer");
const KEYS: &[KeySpec] =
    &keys::concat::<{ OWN_KEYS.len() + SERIALIZER_KEYS.len() }>(OWN_KEYS, &SERIALIZER_KEYS);

/// `<agent>` and `<sink>` are replaced by the agent's and the sink's names.
const DEFAULT_JOURNAL_DIR: &str = "~/.flume-fast/<agent>/<sink>/hdfs-journal";

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["hdfs"],
    class: "org.apache.flume.sink.hdfs.HDFSEventSink",
    doc: "Writes events to HDFS (SequenceFile, text or Avro; bucketed by escapes in hdfs.path; \
          names <filePrefix>.<counter>.<shard>; batches hsync'd before commit; abandoned in-use \
          files recovered by lease recovery, cut to their synced length and renamed, and \
          in-use files a crash left open recovered at the next start from a local journal \
          of each shard's open files, hdfs.journalDir, so other writers' files are never \
          touched).",
    keys: KEYS,
};

#[derive(Debug, Clone)]
pub struct HdfsConfig {
    /// `scheme://authority` for the client, or `None` for `fs.defaultFS`.
    pub url: Option<String>,
    pub path: Template,
    /// The `hdfs.path` text after the authority (for messages).
    pub path_text: String,
    pub prefix: Template,
    pub suffix: String,
    pub in_use_prefix: String,
    pub in_use_suffix: String,
    pub rules: RollRules,
    pub batch_size: usize,
    pub max_open_files: usize,
    pub call_timeout: Option<Duration>,
    /// 0: until it succeeds.
    pub close_tries: u32,
    pub retry_interval: Duration,
    pub time: TimeSettings,
    pub format: Format,
    pub kerberos_principal: Option<String>,
    pub kerberos_keytab: Option<String>,
    pub proxy_user: Option<String>,
    /// The journals' directory (`shard-<k>` under it).
    pub journal_dir: PathBuf,
}

/// Splits `hdfs://nn:8020/a/b` into (`Some("hdfs://nn:8020")`, `/a/b`).
fn split_url(path: &str) -> Result<(Option<String>, String), String> {
    let Some((scheme, rest)) = path.split_once("://") else {
        if !path.starts_with('/') {
            return Err(format!(
                "'{path}' must be an absolute path or an hdfs:// URL"
            ));
        }
        return Ok((None, path.to_string()));
    };
    if !scheme.eq_ignore_ascii_case("hdfs") && !scheme.eq_ignore_ascii_case("viewfs") {
        return Err(format!(
            "scheme '{scheme}://' is not supported: flume-fast writes through hdfs-native, which speaks hdfs:// and viewfs://"
        ));
    }
    let (authority, dir) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('%') {
        return Err("escape sequences are not supported in the namenode part of hdfs.path".into());
    }
    let url = if authority.is_empty() {
        None
    } else {
        Some(format!("{scheme}://{authority}"))
    };
    Ok((url, dir.to_string()))
}

impl Component for HdfsConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let raw_path = k.str("hdfs.path")?;
        let (url, path_text) = split_url(&raw_path).map_err(|m| k.invalid("hdfs.path", m))?;
        let hosts = HostNames {
            localhost: crate::runtime::host::hostname(),
            ip: crate::runtime::host::ip_address(),
            fqdn: crate::runtime::host::fqdn(),
        };
        let path = Template::parse(&path_text, &hosts)
            .map_err(|e| k.invalid("hdfs.path", e.to_string()))?;
        let prefix_text = k.str("hdfs.filePrefix")?;
        let prefix = Template::parse(&prefix_text, &hosts)
            .map_err(|e| k.invalid("hdfs.filePrefix", e.to_string()))?;
        let suffix = k.str("hdfs.fileSuffix")?;
        let in_use_prefix = k.str("hdfs.inUsePrefix")?;
        let mut in_use_suffix = k.str("hdfs.inUseSuffix")?;
        if k.bool("hdfs.emptyInUseSuffix")? {
            in_use_suffix.clear();
        }
        let rules = RollRules {
            interval: k.secs("hdfs.rollInterval")?,
            size: k.int("hdfs.rollSize")? as u64,
            count: k.int("hdfs.rollCount")? as u64,
            idle: k.secs("hdfs.idleTimeout")?,
        };
        let batch_size = k.usize("hdfs.batchSize")?;
        let codec = match k.opt_str("hdfs.codeC")? {
            Some(name) => Codec::parse(&name).map_err(|m| k.invalid("hdfs.codeC", m))?,
            None => None,
        };
        let file_type = match k.choice("hdfs.fileType")?.as_str() {
            "sequencefile" => FileType::SequenceFile,
            "datastream" => FileType::DataStream,
            _ => FileType::CompressedStream,
        };
        if file_type == FileType::DataStream && codec.is_some() {
            return Err(k.invalid(
                "hdfs.codeC",
                "fileType DataStream does not compress: remove hdfs.codeC or use fileType CompressedStream",
            ));
        }
        if file_type == FileType::CompressedStream && codec.is_none() {
            return Err(k.invalid(
                "hdfs.fileType",
                "fileType CompressedStream needs hdfs.codeC (e.g. gzip)",
            ));
        }
        let max_open_files = k.usize("hdfs.maxOpenFiles")?;
        if k.opt_int("hdfs.minBlockReplicas")?.is_some() {
            tracing::warn!("hdfs.minBlockReplicas has no effect in flume-fast: hdfs-native does not report a pipeline's replica count");
        }
        let value = match k.choice("hdfs.writeFormat")?.as_str() {
            "text" => ValueType::Text,
            _ => ValueType::Bytes,
        };
        for key in [
            "hdfs.threadsPoolSize",
            "hdfs.rollTimerPoolSize",
            "hdfs.useRawLocalFileSystem",
        ] {
            if k.opt_str(key)?.is_some() {
                tracing::warn!("{key} is ignored: flume-fast runs HDFS I/O and roll timers on each shard's own event loop");
            }
        }
        let kerberos_principal = k.opt_str("hdfs.kerberosPrincipal")?;
        let kerberos_keytab = k.opt_str("hdfs.kerberosKeytab")?;
        let proxy_user = k.opt_str("hdfs.proxyUser")?;
        let round = if k.bool("hdfs.round")? {
            let value = k.int("hdfs.roundValue")? as u32;
            let unit = match k.choice("hdfs.roundUnit")?.as_str() {
                "hour" => RoundUnit::Hour,
                "minute" => RoundUnit::Minute,
                _ => RoundUnit::Second,
            };
            if unit == RoundUnit::Hour && value > 24 {
                return Err(k.invalid("hdfs.roundValue", "must be between 1 and 24 for hours"));
            }
            Some((unit, value))
        } else {
            None
        };
        let tz = match k.opt_str("hdfs.timeZone")? {
            Some(name) => escape::parse_time_zone(&name).ok_or_else(|| {
                k.invalid("hdfs.timeZone", format!("unknown time zone '{name}' (use an IANA name such as America/Los_Angeles, or GMT+hh:mm)"))
            })?,
            None => jiff::tz::TimeZone::system(),
        };
        let time = TimeSettings {
            tz,
            round,
            use_local: k.bool("hdfs.useLocalTimeStamp")?,
        };
        let tries = k.int("hdfs.closeTries")?;
        let retry = k.int("hdfs.retryInterval")?;
        let (close_tries, retry_interval) = if retry <= 0 {
            (1, Duration::ZERO)
        } else {
            (tries.max(0) as u32, Duration::from_secs(retry as u64))
        };
        let call_timeout = k.opt_millis("hdfs.callTimeout")?;
        let journal_dir = journal_dir(k)?;
        let serializer = Serializer::from_keys(k, "serializer")?;
        Ok(HdfsConfig {
            url,
            path,
            path_text,
            prefix,
            suffix,
            in_use_prefix,
            in_use_suffix,
            rules,
            batch_size,
            max_open_files,
            call_timeout,
            close_tries,
            retry_interval,
            time,
            format: Format {
                file_type,
                value,
                codec,
                serializer,
            },
            kerberos_principal,
            kerberos_keytab,
            proxy_user,
            journal_dir,
        })
    }
}

impl crate::sink::SinkType for HdfsConfig {
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn open(
        &self,
        _: &str,
        shard: usize,
        shards: usize,
    ) -> Result<Box<dyn crate::sink::ShardSink>, crate::sink::SinkError> {
        Ok(Box::new(sink::HdfsSink::open(self, shard, shards)?))
    }
}

/// `hdfs.journalDir`, its default spelled out for this agent and sink (also in `check`).
fn journal_dir(k: &mut Keys) -> Result<PathBuf, ConfigError> {
    let raw = k.str("hdfs.journalDir")?;
    let text = if raw == DEFAULT_JOURNAL_DIR {
        let (agent, sink) = k
            .prefix()
            .split_once(".sinks.")
            .unwrap_or(("agent", "sink"));
        let text = raw.replace("<agent>", agent).replace("<sink>", sink);
        if let Some(r) = k.resolved.iter_mut().find(|r| r.key == "hdfs.journalDir") {
            r.value = text.clone();
        }
        text
    } else {
        raw
    };
    if text.is_empty() {
        return Err(k.invalid("hdfs.journalDir", "must name a directory"));
    }
    Ok(crate::channel::wal::config::expand_home(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_client_and_path() {
        assert_eq!(
            split_url("hdfs://nn:8020/flume/%Y").unwrap(),
            (Some("hdfs://nn:8020".into()), "/flume/%Y".into())
        );
        assert_eq!(
            split_url("hdfs://nn").unwrap(),
            (Some("hdfs://nn".into()), "/".into())
        );
        assert_eq!(split_url("hdfs:///a").unwrap(), (None, "/a".into()));
        assert_eq!(split_url("/a/b").unwrap(), (None, "/a/b".into()));
        assert!(split_url("s3a://bucket/x")
            .unwrap_err()
            .contains("not supported"));
        assert!(split_url("relative/dir").is_err());
        assert!(split_url("hdfs://%{nn}/x").is_err());
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::{load_str, Substitutions};
    use std::path::Path;

    fn load(extra: &str) -> Result<super::HdfsConfig, String> {
        let text = format!(
            "a.sources = s\na.channels = c\na.sinks = k\na.sources.s.type = seq\n\
             a.sources.s.channels = c\na.channels.c.type = memory\na.sinks.k.type = hdfs\n\
             a.sinks.k.channel = c\n{extra}\n"
        );
        let cfg = load_str(Path::new("t.conf"), &text, None, &Substitutions::default())
            .map_err(|e| e.to_string())?;
        Ok(cfg.sinks[0]
            .kind
            .as_any()
            .downcast_ref::<super::HdfsConfig>()
            .expect("an hdfs sink")
            .clone())
    }

    #[test]
    fn flume_defaults() {
        let c = load("a.sinks.k.hdfs.path = hdfs://nn:8020/flume/%Y").unwrap();
        assert_eq!(c.url.as_deref(), Some("hdfs://nn:8020"));
        assert_eq!(
            (c.rules.count, c.rules.size, c.rules.interval.as_secs()),
            (10, 1024, 30)
        );
        assert_eq!((c.batch_size, c.max_open_files), (100, 5000));
        assert_eq!(c.in_use_suffix, ".tmp");
        assert_eq!(c.format.file_type, super::FileType::SequenceFile);
        assert_eq!(c.format.value, super::ValueType::Bytes);
        assert_eq!(c.call_timeout, Some(std::time::Duration::from_secs(30)));
        assert_eq!((c.close_tries, c.retry_interval.as_secs()), (0, 180));
    }

    #[test]
    fn the_journal_dir_defaults_to_the_agent_and_sink_and_check_shows_it() {
        let c = load("a.sinks.k.hdfs.path = /x").unwrap();
        let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap());
        assert_eq!(c.journal_dir, home.join(".flume-fast/a/k/hdfs-journal"));
        let text = "a.sources = s\na.channels = c\na.sinks = k\na.sources.s.type = seq\n\
             a.sources.s.channels = c\na.channels.c.type = memory\na.sinks.k.type = hdfs\n\
             a.sinks.k.channel = c\na.sinks.k.hdfs.path = /x\n";
        let cfg = load_str(Path::new("t.conf"), text, None, &Substitutions::default()).unwrap();
        let r = cfg.sinks[0]
            .resolved
            .iter()
            .find(|r| r.key == "hdfs.journalDir")
            .expect("check lists hdfs.journalDir");
        assert_eq!(
            (r.value.as_str(), r.defaulted),
            ("~/.flume-fast/a/k/hdfs-journal", true)
        );
        let c =
            load("a.sinks.k.hdfs.path = /x\na.sinks.k.hdfs.journalDir = /var/lib/ff/j").unwrap();
        assert_eq!(c.journal_dir, std::path::PathBuf::from("/var/lib/ff/j"));
    }

    #[test]
    fn refusals_name_the_key() {
        let cases = [
            ("a.sinks.k.hdfs.path = /x\na.sinks.k.hdfs.fileType = DataStream\na.sinks.k.hdfs.codeC = gzip", "hdfs.codeC"),
            ("a.sinks.k.hdfs.path = /x\na.sinks.k.hdfs.fileType = CompressedStream", "hdfs.fileType"),
            ("a.sinks.k.hdfs.path = /x\na.sinks.k.hdfs.codeC = snappy", "not supported"),
            ("a.sinks.k.hdfs.path = /x\na.sinks.k.hdfs.timeZone = Mars/Base", "hdfs.timeZone"),
            ("a.sinks.k.hdfs.path = /x\na.sinks.k.hdfs.round = true\na.sinks.k.hdfs.roundUnit = hour\na.sinks.k.hdfs.roundValue = 30", "hdfs.roundValue"),
            ("a.sinks.k.hdfs.path = /x/%[nothing]", "%[nothing]"),
            ("a.sinks.k.hdfs.path = file:///tmp/x", "not supported"),
            ("a.sinks.k.hdfs.path = /x\na.sinks.k.serializer = avro_event\na.sinks.k.serializer.compressionCodec = xz", "serializer.compressionCodec"),
        ];
        for (conf, needle) in cases {
            let e = load(conf).unwrap_err();
            assert!(e.contains(needle), "{conf}: {e}");
        }
        assert!(
            load("a.sinks.k.type = hdfs").is_err(),
            "hdfs.path is required"
        );
    }

    #[test]
    fn thread_pool_keys_are_accepted() {
        let c = load("a.sinks.k.hdfs.path = /x\na.sinks.k.hdfs.threadsPoolSize = 20\na.sinks.k.hdfs.rollTimerPoolSize = 2");
        assert!(c.is_ok());
    }
}
