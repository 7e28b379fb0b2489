//! The logger sink (`logger`, `org.apache.flume.sink.LoggerSink`): logs each event at INFO in
//! Flume's form, `Event: { headers:{k=v} body: 48 65 6C 6C 6F  Hello }`, the body cut to
//! `maxBytesToLog` bytes and shown as a hex dump with its printable characters.

use super::{LocalBoxFuture, ShardSink, SinkError, SinkType};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use std::fmt::Write;
use tokio::time::Instant;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "maxBytesToLog",
        KeyKind::NON_NEGATIVE,
        Some("16"),
        "Maximum number of body bytes to log",
    ),
    KeySpec::new(
        "batchSize",
        KeyKind::POSITIVE,
        Some("100"),
        "Events per take transaction (flume-fast addition; Flume logs one per transaction)",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["logger"],
    class: "org.apache.flume.sink.LoggerSink",
    doc: "Logs events at INFO level; for testing and debugging.",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerConfig {
    pub max_bytes_to_log: usize,
    pub batch_size: usize,
}

impl Component for LoggerConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        Ok(LoggerConfig {
            max_bytes_to_log: k.usize("maxBytesToLog")?,
            batch_size: k.usize("batchSize")?,
        })
    }
}

impl SinkType for LoggerConfig {
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn open(&self, name: &str, _: usize, _: usize) -> Result<Box<dyn ShardSink>, SinkError> {
        Ok(Box::new(LoggerSink {
            name: name.to_string(),
            cfg: self.clone(),
        }))
    }
}

/// One shard's logger sink: the sink's name (each line carries it) and its config.
pub struct LoggerSink {
    name: String,
    cfg: LoggerConfig,
}

impl ShardSink for LoggerSink {
    fn process<'a>(&'a mut self, events: &'a [Event]) -> LocalBoxFuture<'a, Result<(), SinkError>> {
        // Logged when polled, not when called: a batch the runner drops unpolled (abort)
        // is rolled back and must not have been logged.
        Box::pin(async move {
            log(&self.name, &self.cfg, events);
            Ok(())
        })
    }

    /// Nothing is time-driven: all the work is in `process`.
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

/// Flume's `EventHelper.dumpEvent`: commons-io `HexDump` rows of 16 bytes without the
/// leading offset, the final line separator removed.
pub fn dump_event(event: &Event, max_bytes: usize) -> String {
    let data = &event.body[..event.body.len().min(max_bytes)];
    let mut body = String::new();
    for (row_index, row) in data.chunks(16).enumerate() {
        if row_index > 0 {
            let _ = write!(body, "\n{:08X}", row_index * 16);
        }
        body.push(' ');
        for k in 0..16 {
            match row.get(k) {
                Some(b) => {
                    let _ = write!(body, "{b:02X} ");
                }
                None => body.push_str("   "),
            }
        }
        body.extend(row.iter().map(|&b| {
            if (b' '..127).contains(&b) {
                b as char
            } else {
                '.'
            }
        }));
    }
    format!("{{ headers:{} body:{} }}", event.headers, body)
}

pub fn log(name: &str, cfg: &LoggerConfig, events: &[Event]) {
    for e in events {
        tracing::info!(target: "flume_fast::sink::logger", sink = name, "Event: {}", dump_event(e, cfg.max_bytes_to_log));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Headers;
    use bytes::Bytes;

    #[test]
    fn matches_flume_dump() {
        let mut h = Headers::new();
        h.set("a", "1");
        let e = Event::with_headers(h, Bytes::from_static(b"Hello world\r"));
        assert_eq!(
            dump_event(&e, 16),
            "{ headers:{a=1} body: 48 65 6C 6C 6F 20 77 6F 72 6C 64 0D             Hello world. }"
        );
        let long = Event::new(Bytes::from_static(b"0123456789abcdefXY"));
        assert_eq!(
            dump_event(&long, 17),
            "{ headers:{} body: 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 0123456789abcdef\n00000010 58                                              X }"
        );
        assert_eq!(
            dump_event(&Event::new(Bytes::new()), 16),
            "{ headers:{} body: }"
        );
    }
}
