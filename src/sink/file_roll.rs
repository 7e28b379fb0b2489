//! The file roll sink (`file_roll`, `org.apache.flume.sink.RollingFileSink`): writes events
//! to files in `sink.directory`, starting a new file every `sink.rollInterval` seconds.
//! Each batch is serialized by the serializer all file-writing sinks share
//! (`sink.serializer`: TEXT, HEADER_AND_TEXT, avro_event) and written with io_uring writes
//! of about [`WRITE_CHUNK`] bytes; the take transaction commits after the last write
//! returns (as Flume, which flushes its serializer and stream to the OS per batch). With
//! avro_event each file is one Avro object container and every batch ends with a complete
//! block, so the file is a valid container at every commit.
//!
//! File names are Flume's `<prefix><seriesTimestamp>-<index>[.<extension>]` with the shard
//! inserted, `<prefix><seriesTimestamp>-<shard>-<index>[.<extension>]`, so shards and
//! restarts never write the same file. Unlike Flume, a file is created only when an event
//! arrives (no empty file every roll interval) and the directory is created if missing.

use super::serializer::{serializer_keys, sync_marker, Serializer, Writer};
use super::{LocalBoxFuture, ShardSink, SinkError, SinkType};
use crate::config::keys::{self, KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

const OWN_KEYS: &[KeySpec] = &[
    KeySpec::required(
        "sink.directory",
        KeyKind::Str,
        "Directory where files are written (created if missing)",
    ),
    KeySpec::new(
        "sink.rollInterval",
        KeyKind::NON_NEGATIVE,
        Some("30"),
        "Seconds before starting a new file; 0 writes one file",
    ),
    KeySpec::new(
        "sink.pathManager",
        KeyKind::Choice(&["DEFAULT"]),
        Some("DEFAULT"),
        "File naming scheme",
    ),
    KeySpec::new(
        "sink.pathManager.prefix",
        KeyKind::Str,
        Some(""),
        "Text at the start of every file name",
    ),
    KeySpec::new(
        "sink.pathManager.extension",
        KeyKind::Str,
        Some(""),
        "File extension (without the dot)",
    ),
    KeySpec::new(
        "sink.batchSize",
        KeyKind::POSITIVE,
        Some("100"),
        "Events per take transaction and write",
    ),
    KeySpec::new(
        "batchSize",
        KeyKind::POSITIVE,
        None,
        "Alias of sink.batchSize",
    ),
];

const SERIALIZER_KEYS: [KeySpec; 4] = serializer_keys!("sink.serializer");
const KEYS: &[KeySpec] =
    &keys::concat::<{ OWN_KEYS.len() + SERIALIZER_KEYS.len() }>(OWN_KEYS, &SERIALIZER_KEYS);

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["file_roll"],
    class: "org.apache.flume.sink.RollingFileSink",
    doc: "Writes events to local files (text, or one Avro container per file with avro_event), rolling to a new file at an interval.",
    keys: KEYS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRollConfig {
    pub directory: PathBuf,
    pub roll_interval: Duration,
    pub prefix: String,
    pub extension: String,
    pub serializer: Serializer,
    pub batch_size: usize,
}

impl Component for FileRollConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let directory = PathBuf::from(k.str("sink.directory")?);
        let roll_interval = k.secs("sink.rollInterval")?;
        k.choice("sink.pathManager")?;
        let prefix = k.str("sink.pathManager.prefix")?;
        let extension = k.str("sink.pathManager.extension")?;
        let serializer = Serializer::from_keys(k, "sink.serializer")?;
        let batch_size = match k.opt_int("batchSize")? {
            Some(n) => n as usize,
            None => k.usize("sink.batchSize")?,
        };
        Ok(FileRollConfig {
            directory,
            roll_interval,
            prefix,
            extension,
            serializer,
            batch_size,
        })
    }
}

impl SinkType for FileRollConfig {
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn open(&self, _: &str, shard: usize, _: usize) -> Result<Box<dyn ShardSink>, SinkError> {
        Ok(Box::new(FileRollSink::open(self, shard)?))
    }
}

/// Body bytes staged per write. A batch is written in parts of about this size, so the
/// staging buffer (kept between batches) stays this small, or as big as the largest single
/// event: a batch of 1000 × 1 KiB would otherwise keep a whole MiB staged.
const WRITE_CHUNK: usize = 256 * 1024;

/// How many of `events` (at least one) go into one write of about [`WRITE_CHUNK`] bytes.
fn chunk_len(events: &[Event]) -> usize {
    let mut bytes = 0;
    events
        .iter()
        .position(|e| {
            bytes += e.body.len() + 1;
            bytes > WRITE_CHUNK
        })
        .unwrap_or(events.len())
        .max(1)
}

struct Open {
    file: tokio_uring::fs::File,
    path: PathBuf,
    offset: u64,
    opened: Instant,
    /// The file's serializer (an Avro container's block and sync marker).
    writer: Writer,
}

pub struct FileRollSink {
    cfg: FileRollConfig,
    shard: usize,
    series: u128,
    index: u64,
    current: Option<Open>,
    /// Bytes staged for the next write; empty between writes.
    buf: Vec<u8>,
}

impl FileRollSink {
    /// Checks the directory now, so a sink that cannot write fails the start, not later.
    pub fn open(cfg: &FileRollConfig, shard: usize) -> Result<Self, SinkError> {
        let dir = &cfg.directory;
        let io = |source| SinkError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let probe = dir.join(format!(".flume-fast-probe-{}-{shard}", std::process::id()));
        std::fs::write(&probe, b"").map_err(io)?;
        let _ = std::fs::remove_file(&probe);
        Ok(FileRollSink {
            cfg: cfg.clone(),
            shard,
            series: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            index: 0,
            current: None,
            buf: Vec::new(),
        })
    }

    fn next_path(&mut self) -> PathBuf {
        self.index += 1;
        let mut name = format!(
            "{}{}-{}-{}",
            self.cfg.prefix, self.series, self.shard, self.index
        );
        if !self.cfg.extension.is_empty() {
            name.push('.');
            name.push_str(&self.cfg.extension);
        }
        self.cfg.directory.join(name)
    }

    /// Writes a batch: `Ok` when all of it (an Avro container's last block included) has
    /// been written to the file, so the take may commit.
    pub async fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.roll_if_due().await;
        if events.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        if self.current.is_none() {
            let path = self.next_path();
            let file = tokio_uring::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .await
                .map_err(|source| SinkError::Io {
                    path: path.clone(),
                    source,
                })?;
            // The header (an Avro container's) goes out with the first chunk.
            let writer = Writer::start(
                &self.cfg.serializer,
                sync_marker(self.index, self.shard),
                &mut self.buf,
            );
            self.current = Some(Open {
                file,
                path,
                offset: 0,
                opened: Instant::now(),
                writer,
            });
        }
        let mut rest = events;
        while !rest.is_empty() {
            let n = chunk_len(rest);
            let open = self.current.as_mut().expect("opened above");
            open.writer.append_all(&rest[..n], &mut self.buf);
            rest = &rest[n..];
            if rest.is_empty() {
                open.writer.flush(&mut self.buf);
            }
            // An Avro block still filling has nothing to write yet.
            if !self.buf.is_empty() {
                self.write_buf().await?;
            }
        }
        Ok(())
    }

    /// Writes the staged bytes at the end of the current file and empties the stage.
    async fn write_buf(&mut self) -> Result<(), SinkError> {
        let buf = std::mem::take(&mut self.buf);
        let open = self.current.as_mut().expect("opened by write");
        let len = buf.len() as u64;
        let (result, mut buf) = open.file.write_all_at(buf, open.offset).await;
        buf.clear();
        self.buf = buf;
        match result {
            Ok(()) => {
                open.offset += len;
                Ok(())
            }
            Err(source) => {
                // Start a fresh file next time: the failed one may hold a partial batch,
                // which will be written again (at-least-once), and its writer the rest.
                let path = open.path.clone();
                self.close().await;
                Err(SinkError::Io { path, source })
            }
        }
    }

    /// When the current file is due to roll (for the runner's timer).
    pub fn next_roll(&self) -> Option<Instant> {
        if self.cfg.roll_interval.is_zero() {
            return None;
        }
        self.current
            .as_ref()
            .map(|o| o.opened + self.cfg.roll_interval)
    }

    pub async fn roll_if_due(&mut self) {
        if self.next_roll().is_some_and(|t| t <= Instant::now()) {
            self.close().await;
        }
    }

    pub async fn close(&mut self) {
        if let Some(open) = self.current.take() {
            if let Err(e) = open.file.close().await {
                tracing::warn!("closing {} failed: {e}", open.path.display());
            }
        }
    }

    pub fn directory(&self) -> &Path {
        &self.cfg.directory
    }
}

impl ShardSink for FileRollSink {
    fn process<'a>(&'a mut self, events: &'a [Event]) -> LocalBoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.write(events))
    }

    fn next_tick(&self) -> Option<Instant> {
        self.next_roll()
    }

    fn tick(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(self.roll_if_due())
    }

    fn close(&mut self) -> LocalBoxFuture<'_, ()> {
        Box::pin(FileRollSink::close(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::serializer::test_support::read_avro;
    use bytes::Bytes;

    fn event(len: usize, seed: usize) -> Event {
        let body: Vec<u8> = (0..len).map(|i| b'a' + ((i + seed) % 26) as u8).collect();
        Event::new(Bytes::from(body))
    }

    /// Text lines into `dir`, never rolled by time.
    fn text_lines_into(dir: &Path) -> FileRollConfig {
        FileRollConfig {
            directory: dir.to_path_buf(),
            roll_interval: Duration::ZERO,
            prefix: String::new(),
            extension: String::new(),
            serializer: Serializer::Text {
                append_newline: true,
            },
            batch_size: 1000,
        }
    }

    #[test]
    fn a_chunk_is_about_write_chunk_bytes_and_never_empty() {
        let small: Vec<Event> = (0..1000).map(|i| event(1023, i)).collect();
        assert_eq!(chunk_len(&small), WRITE_CHUNK / 1024, "256 lines of 1 KiB");
        assert_eq!(chunk_len(&small[..10]), 10);
        let huge = [event(WRITE_CHUNK * 2, 0), event(1, 0)];
        assert_eq!(
            chunk_len(&huge),
            1,
            "an event bigger than a chunk goes alone"
        );
    }

    #[test]
    fn a_batch_bigger_than_a_chunk_is_written_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = text_lines_into(dir.path());
        let mut events: Vec<Event> = (0..1000).map(|i| event(1000 + i % 50, i)).collect();
        events.insert(500, event(WRITE_CHUNK * 2, 7));
        let mut expected = Vec::new();
        Writer::start(&cfg.serializer, [0; 16], &mut expected).append_all(&events, &mut expected);

        crate::runtime::start_uring(async {
            let mut sink = FileRollSink::open(&cfg, 0).unwrap();
            sink.write(&events[..600]).await.unwrap();
            sink.write(&events[600..]).await.unwrap();
            sink.close().await;
        });
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let written = std::fs::read(files[0].as_ref().unwrap().path()).unwrap();
        assert_eq!(written.len(), expected.len());
        assert!(written == expected, "the file holds every line, in order");
    }

    #[test]
    fn the_staging_buffer_stays_about_a_chunk_for_a_batch_of_a_mib() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = text_lines_into(dir.path());
        let events: Vec<Event> = (0..1000).map(|i| event(1023, i)).collect();
        let staged = crate::runtime::start_uring(async {
            let mut sink = FileRollSink::open(&cfg, 0).unwrap();
            sink.write(&events).await.unwrap();
            let staged = sink.buf.capacity();
            sink.close().await;
            staged
        });
        assert!(
            staged < 2 * WRITE_CHUNK,
            "{staged} bytes staged for a batch of 1000 × 1 KiB"
        );
    }

    /// The bodies of the records of the Avro container at `path`, read by apache-avro.
    fn avro_bodies(path: &Path) -> Vec<Vec<u8>> {
        let records = read_avro(&std::fs::read(path).unwrap());
        records.into_iter().map(|(_, body)| body).collect()
    }

    #[test]
    fn avro_event_files_are_whole_containers_when_each_batch_returns() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FileRollConfig {
            serializer: Serializer::Avro {
                codec: crate::sink::serializer::avro::AvroCodec::Deflate,
                sync_interval: 64 * 1024,
            },
            ..text_lines_into(dir.path())
        };
        // 1000 events of about 1 KiB: several chunks, several blocks per batch.
        let events: Vec<Event> = (0..1000).map(|i| event(1000 + i % 50, i)).collect();
        let bodies = |evs: &[Event]| evs.iter().map(|e| e.body.to_vec()).collect::<Vec<_>>();
        let files = |dir: &Path| {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            v.sort();
            v
        };
        crate::runtime::start_uring(async {
            let mut sink = FileRollSink::open(&cfg, 0).unwrap();
            sink.write(&events[..600]).await.unwrap();
            // Committed: the file, still open, is a container holding the whole batch.
            let first = files(dir.path());
            assert_eq!(first.len(), 1);
            assert_eq!(avro_bodies(&first[0]), bodies(&events[..600]));
            sink.write(&events[600..900]).await.unwrap();
            assert_eq!(avro_bodies(&first[0]), bodies(&events[..900]));
            // A roll starts a new container with its own header.
            sink.close().await;
            sink.write(&events[900..]).await.unwrap();
            let both = files(dir.path());
            assert_eq!(both.len(), 2);
            assert_eq!(avro_bodies(&both[1]), bodies(&events[900..]));
            sink.close().await;
        });
    }
}
