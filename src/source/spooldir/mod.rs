//! The spooling directory source (`spooldir`, `org.apache.flume.source.SpoolDirectorySource`):
//! reads the files dropped into a directory, one after the other, turns them into events
//! with a deserializer (LINE, AVRO or Blob: `deserializer`), and marks each file done once
//! every one of its events was committed to the channels: renamed with `fileSuffix`,
//! deleted (`deletePolicy = immediate`) or recorded in the tracker directory
//! (`trackingPolicy = tracker_dir`).
//!
//! It runs on one shard (`Plan::HOME_SHARD`, like exec): Flume reads one file at a time in
//! its order, and so does this source; its file reads block the shard briefly, as
//! TAILDIR's do. Keys, defaults and headers (`fileHeaderKey`: the absolute path;
//! `basenameHeaderKey`: the file name) are Flume 1.11's, and as in Flume an empty file
//! gives one event with an empty body.
//!
//! Crash safety: after each committed batch the position in the file in progress is
//! written atomically to `<trackerDir>/.flume-fast-spool.json` (`tracker`), so after a
//! kill -9 the file resumes there: at most the batch in flight is delivered twice. It is
//! synced once a second, not after every batch (two syncs per batch held the source to
//! about 150,000 lines/s): a machine crash may go back up to a second of batches, or to the
//! file's start if the save is found empty; duplicates, never a loss. The
//! batch that reaches a file's end is not saved (the file is marked next; a crash in
//! between repeats that batch from the position before it), so a directory of small
//! files costs no sync per file but the marking's.
//!
//! Unlike Flume (docs/differences.md#spooldir says why):
//! - an error with a file (it changed size or modification time after it was read:
//!   Flume's "File has changed size since being read" / "File has been modified since
//!   being read"; its finished name is taken: "File name has been re-used with different
//!   files"; it does not decode) is logged as an error naming the file, and the file is
//!   left as it is, unmarked, and not read again until the agent restarts; the other files
//!   go on. Flume stops the source for good ("FATAL: ... Restart or reconfigure Flume").
//!   After a restart such a file is read again from its start, unless it is the file in
//!   progress and unchanged;
//! - a full channel holds the batch and retries it (back-off from 250 ms doubling to
//!   `maxBackoff`, as Flume), and the position moves only past committed events;
//! - a listing of the directory is read in its order until used up (see `scan`);
//! - the position is our own state file, not Flume's `.flumespool-main.meta` (see
//!   `tracker`); no canary file is written at start.

pub mod deserializer;
pub mod scan;
pub mod tracker;

use super::{Bound, Plan, Shard, SourceCtx, SourceType};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use deserializer::{DecodeErrors, Format, Pos, Reader};
use scan::{Filter, Order};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;
use tracker::{Marking, Progress};

const KEYS: &[KeySpec] = &[
    KeySpec::required("spoolDir", KeyKind::Str, "The directory to read files from"),
    KeySpec::new(
        "fileSuffix",
        KeyKind::Str,
        Some(".COMPLETED"),
        "Suffix appended to a file's name once it was read (trackingPolicy = rename)",
    ),
    KeySpec::new(
        "deletePolicy",
        KeyKind::Choice(&["never", "immediate"]),
        Some("never"),
        "Delete a file once it was read (immediate) or mark it (never)",
    ),
    super::FILE_HEADER,
    super::FILE_HEADER_KEY,
    KeySpec::new(
        "basenameHeader",
        KeyKind::Bool,
        Some("false"),
        "Add the file's name as a header",
    ),
    KeySpec::new(
        "basenameHeaderKey",
        KeyKind::Str,
        Some("basename"),
        "Name of the file name header",
    ),
    KeySpec::new(
        "includePattern",
        KeyKind::Str,
        Some("^.*$"),
        "Regular expression the whole file name must match to be read",
    ),
    KeySpec::new(
        "ignorePattern",
        KeyKind::Str,
        Some("^$"),
        "Regular expression of file (and subdirectory) names not to read",
    ),
    KeySpec::new(
        "trackerDir",
        KeyKind::Str,
        Some(".flumespool"),
        "Directory of the source's state (relative paths are under spoolDir)",
    ),
    KeySpec::new(
        "trackingPolicy",
        KeyKind::Choice(&["rename", "tracker_dir"]),
        Some("rename"),
        "Mark a read file by renaming it (rename) or by an empty file in trackerDir (tracker_dir)",
    ),
    KeySpec::new(
        "consumeOrder",
        KeyKind::Choice(&["oldest", "youngest", "random"]),
        Some("oldest"),
        "Which file is read next: by modification time (ties by name) or at random",
    ),
    KeySpec::new(
        "pollDelay",
        KeyKind::POSITIVE,
        Some("500"),
        "Milliseconds between looks at a directory that has no file to read",
    ),
    KeySpec::new(
        "recursiveDirectorySearch",
        KeyKind::Bool,
        Some("false"),
        "Read the files of subdirectories too",
    ),
    KeySpec::new(
        "maxBackoff",
        KeyKind::POSITIVE,
        Some("4000"),
        "Longest wait in milliseconds before retrying a batch the channels refused",
    ),
    KeySpec::new(
        "batchSize",
        KeyKind::POSITIVE,
        Some("100"),
        "Events per transaction",
    ),
    KeySpec::new(
        "inputCharset",
        KeyKind::Str,
        Some("UTF-8"),
        "Character set of the files (LINE); an ASCII-compatible one",
    ),
    KeySpec::new(
        "decodeErrorPolicy",
        KeyKind::Choice(&["FAIL", "REPLACE", "IGNORE"]),
        Some("FAIL"),
        "Input not valid in inputCharset: the file fails, becomes U+FFFD, or is dropped",
    ),
    KeySpec::new(
        "deserializer",
        KeyKind::Str,
        Some("LINE"),
        "LINE, AVRO, or org.apache.flume.sink.solr.morphline.BlobDeserializer$Builder (or the Java class names of LINE and AVRO)",
    ),
    KeySpec::new(
        "deserializer.maxLineLength",
        KeyKind::int(1, i32::MAX as i64),
        Some("2048"),
        "LINE: characters of the longest event; the rest of a longer line is the next event",
    ),
    KeySpec::new(
        "deserializer.outputCharset",
        KeyKind::Str,
        Some("UTF-8"),
        "LINE: character set of the event bodies",
    ),
    KeySpec::new(
        "deserializer.schemaType",
        KeyKind::Choice(&["HASH", "LITERAL"]),
        Some("HASH"),
        "AVRO: header flume.avro.schema.hash (the schema's fingerprint) or flume.avro.schema.literal (its JSON)",
    ),
    KeySpec::new(
        "deserializer.maxBlobLength",
        KeyKind::int(1, i32::MAX as i64),
        Some("100000000"),
        "Blob: bytes of the largest event; a longer file gives several",
    ),
    KeySpec::new(
        "bufferMaxLines",
        KeyKind::NON_NEGATIVE,
        None,
        "Deprecated (ignored, as by Flume)",
    ),
    KeySpec::new(
        "bufferMaxLineLength",
        KeyKind::POSITIVE,
        None,
        "Deprecated: deserializer.maxLineLength for LINE, as in Flume",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["spooldir"],
    class: "org.apache.flume.source.SpoolDirectorySource",
    doc: "Reads the files dropped into a directory, one after the other, and marks each done once all its events are in the channels.",
    keys: KEYS,
};

const LINE_CLASS: &str = "org.apache.flume.serialization.LineDeserializer$Builder";
const AVRO_CLASS: &str = "org.apache.flume.serialization.AvroEventDeserializer$Builder";
const BLOB_CLASS: &str = "org.apache.flume.sink.solr.morphline.BlobDeserializer$Builder";

#[derive(Debug, Clone)]
pub struct SpoolDirConfig {
    pub filter: Filter,
    pub marking: Marking,
    pub file_header: Option<String>,
    pub basename_header: Option<String>,
    pub order: Order,
    pub poll_delay: Duration,
    pub max_backoff: Duration,
    pub batch_size: usize,
    pub format: Format,
}

fn charset(
    k: &Keys,
    key: &str,
    value: &str,
) -> Result<&'static encoding_rs::Encoding, ConfigError> {
    match encoding_rs::Encoding::for_label(value.trim().as_bytes()) {
        Some(e) if e.is_ascii_compatible() && e.output_encoding() == e => Ok(e),
        Some(_) => Err(k.invalid(
            key,
            format!("charset {value} is not supported: lines end at the byte \\n, so it must be ASCII-compatible (UTF-8, ISO-8859-1, windows-1252, ...)"),
        )),
        None => Err(k.invalid(key, format!("unknown charset {value}"))),
    }
}

impl Component for SpoolDirConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let dir = PathBuf::from(k.str("spoolDir")?);
        let suffix = k.str("fileSuffix")?;
        let delete = k.choice("deletePolicy")? == "immediate";
        let tracking = k.choice("trackingPolicy")?;
        let marking = match (delete, tracking.as_str()) {
            (true, _) => Marking::Delete,
            (false, "tracker_dir") => Marking::TrackerDir,
            _ => Marking::Rename,
        };
        let pattern = |k: &mut Keys, key: &str| -> Result<regex::Regex, ConfigError> {
            let p = k.str(key)?;
            scan::whole(&p)
                .map_err(|e| k.invalid(key, format!("not a valid regular expression: {e}")))
        };
        let include = pattern(k, "includePattern")?;
        let ignore = pattern(k, "ignorePattern")?;
        let tracker = PathBuf::from(k.str("trackerDir")?);
        let tracker_dir = if tracker.is_absolute() {
            tracker
        } else {
            dir.join(tracker)
        };
        let file_header = k.bool("fileHeader")?;
        let file_header_key = k.str("fileHeaderKey")?;
        let basename_header = k.bool("basenameHeader")?;
        let basename_header_key = k.str("basenameHeaderKey")?;
        let order = match k.choice("consumeOrder")?.as_str() {
            "youngest" => Order::Youngest,
            "random" => Order::Random,
            _ => Order::Oldest,
        };
        let errors = match k.choice("decodeErrorPolicy")?.as_str() {
            "replace" => DecodeErrors::Replace,
            "ignore" => DecodeErrors::Ignore,
            _ => DecodeErrors::Fail,
        };
        let input_name = k.str("inputCharset")?;
        let input = charset(k, "inputCharset", &input_name)?;
        let output_name = k.str("deserializer.outputCharset")?;
        let output = charset(k, "deserializer.outputCharset", &output_name)?;
        let mut max_chars = k.usize("deserializer.maxLineLength")?;
        let literal = k.choice("deserializer.schemaType")? == "literal";
        let max_blob = k.usize("deserializer.maxBlobLength")?;
        let des = k.str("deserializer")?;
        k.opt_int("bufferMaxLines")?;
        let format = if des.eq_ignore_ascii_case("LINE") || des == LINE_CLASS {
            if let Some(n) = k.opt_int("bufferMaxLineLength")? {
                max_chars = n as usize;
            }
            Format::Line {
                max_chars,
                input,
                output,
                errors,
            }
        } else if des.eq_ignore_ascii_case("AVRO") || des == AVRO_CLASS {
            Format::Avro { literal }
        } else if des == BLOB_CLASS {
            Format::Blob { max: max_blob }
        } else {
            return Err(k.invalid(
                "deserializer",
                format!("'{des}' is not a known deserializer: LINE, AVRO or {BLOB_CLASS}"),
            ));
        };
        Ok(SpoolDirConfig {
            filter: Filter {
                dir,
                include,
                ignore,
                suffix,
                recursive: k.bool("recursiveDirectorySearch")?,
                tracker_dir,
                tracker_markers: marking == Marking::TrackerDir,
            },
            marking,
            file_header: file_header.then_some(file_header_key),
            basename_header: basename_header.then_some(basename_header_key),
            order,
            poll_delay: k.millis("pollDelay")?,
            max_backoff: k.millis("maxBackoff")?,
            batch_size: k.usize("batchSize")?,
            format,
        })
    }
}

impl SourceType for SpoolDirConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Ok(Plan::HOME_SHARD)
    }

    /// Checks the directory, creates the tracker directory and reads the progress before
    /// the shard is ready, so a start that cannot read its directory fails and says why.
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        let mut cfg = self.clone();
        let dir = &cfg.filter.dir;
        if !dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "spoolDir {}: the directory does not exist (or is not a directory)",
                    dir.display()
                ),
            ));
        }
        // Paths in headers are absolute, as Java's getAbsolutePath makes them.
        cfg.filter.dir = std::path::absolute(dir)?;
        cfg.filter.tracker_dir = std::path::absolute(&cfg.filter.tracker_dir)?;
        std::fs::create_dir_all(&cfg.filter.tracker_dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create the tracker directory {}: {e}",
                    cfg.filter.tracker_dir.display()
                ),
            )
        })?;
        let progress = Progress::load(&cfg.filter.tracker_dir)?;
        Ok(Bound::new((cfg, progress), run))
    }
}

/// Why a file was left unread or unmarked.
struct Failed(String);

async fn run((cfg, progress): (SpoolDirConfig, Option<Progress>), ctx: Rc<SourceCtx>) {
    let mut spool = Spool {
        cfg,
        ctx,
        progress,
        failed: HashSet::new(),
        cut_logged: false,
        synced: std::time::Instant::now(),
    };
    let mut seed = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64)
        | 1;
    tracing::info!(source = %spool.ctx.name, "reading the files of {}", spool.cfg.filter.dir.display());
    loop {
        if spool.ctx.stop.is_stopped() {
            return;
        }
        let mut errors = Vec::new();
        let mut files = spool.cfg.filter.list(&mut errors);
        for e in errors {
            tracing::error!(source = %spool.ctx.name, "{e}");
        }
        files.retain(|(p, _)| !spool.failed.contains(p));
        if files.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(spool.cfg.poll_delay) => {}
                _ = spool.ctx.stop.wait() => return,
            }
            continue;
        }
        scan::order(&mut files, spool.cfg.order, &mut seed);
        for (path, _) in files {
            if spool.ctx.stop.is_stopped() {
                return;
            }
            match spool.file(&path).await {
                Ok(()) => {}
                Err(Failed(why)) => {
                    tracing::error!(source = %spool.ctx.name, file = %path.display(), "{why}; the file is left as it is and not read again until the agent restarts");
                    spool.failed.insert(path);
                }
            }
        }
    }
}

struct Spool {
    cfg: SpoolDirConfig,
    ctx: Rc<SourceCtx>,
    /// The position in the file in progress, as last saved.
    progress: Option<Progress>,
    /// Files that failed: not read again until a restart.
    failed: HashSet<PathBuf>,
    cut_logged: bool,
    /// When the position was last saved synced.
    synced: std::time::Instant,
}

/// How often the position is saved synced (it is saved unsynced after every batch).
const SYNC_EVERY: Duration = Duration::from_secs(1);

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

impl Spool {
    /// Reads one file to its end, delivering its events, and marks it done. `Ok` also when
    /// the file vanished or the source stopped (it is then left for the next start).
    async fn file(&mut self, path: &Path) -> Result<(), Failed> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Failed(format!("cannot open {}: {e}", path.display()))),
        };
        let meta = file
            .metadata()
            .map_err(|e| Failed(format!("cannot stat {}: {e}", path.display())))?;
        let (inode, size, mtime) = (meta.ino(), meta.len(), mtime_ns(&meta));
        let start = match &self.progress {
            Some(p) if p.file == path && p.inode == inode && p.size == size && p.mtime == mtime => {
                let at = match self.cfg.format {
                    Format::Avro { .. } => format!(
                        "datum {} of the block at byte {}",
                        p.pos.record, p.pos.offset
                    ),
                    _ => format!("byte {}", p.pos.offset),
                };
                tracing::info!(source = %self.ctx.name, "resuming {} at {at}, where the last committed batch ended", path.display());
                p.pos
            }
            _ => Pos::default(),
        };
        let fresh = start == Pos::default();
        let mut reader = Reader::open(&self.cfg.format, file, start)
            .map_err(|e| Failed(format!("cannot read {}: {e}", path.display())))?;
        let mut first = true;
        loop {
            let mut events = reader
                .read(&self.cfg.format, self.cfg.batch_size)
                .map_err(|e| Failed(format!("cannot read {}: {e}", path.display())))?;
            if reader.take_cut() && !self.cut_logged {
                self.cut_logged = true;
                let max = match self.cfg.format {
                    Format::Line { max_chars, .. } => max_chars,
                    _ => 0,
                };
                tracing::warn!(source = %self.ctx.name, "Line length exceeds max ({max}), truncating line! ({}: the rest of the line is the next event; logged once)", path.display());
            }
            if events.is_empty() {
                if first && fresh && size == 0 {
                    // Flume's first read of an empty file gives one empty event.
                    events.push(Event::new(bytes::Bytes::new()));
                } else {
                    break;
                }
            }
            first = false;
            self.headers(&mut events, path);
            if !self.put(events, path).await {
                return Ok(());
            }
            let p = Progress {
                file: path.to_path_buf(),
                inode,
                size,
                mtime,
                pos: reader.pos(),
            };
            // The last batch of a file is not saved: the file is marked next, and a crash
            // before that repeats only this batch from the position saved before it.
            if !reader.at_end() {
                // Synced once a second: two syncs per batch would bound the rate at a few
                // hundred batches a second; a process crash finds the unsynced save.
                let sync = self.synced.elapsed() >= SYNC_EVERY;
                if sync {
                    self.synced = std::time::Instant::now();
                }
                if let Err(e) = p.save(&self.cfg.filter.tracker_dir, sync) {
                    tracing::error!(source = %self.ctx.name, "saving the position in {}: {e}", path.display());
                }
                self.progress = Some(p);
            }
            if self.ctx.stop.is_stopped() {
                return Ok(());
            }
        }
        // Flume's checks that the file was complete when it was read.
        let now = std::fs::metadata(path).map_err(|e| {
            Failed(format!(
                "cannot stat {} after reading it: {e}",
                path.display()
            ))
        })?;
        let resized = if now.len() != size {
            format!(
                " (and has changed size: {size} bytes when opened, {} now)",
                now.len()
            )
        } else {
            String::new()
        };
        if mtime_ns(&now) != mtime {
            return Err(Failed(format!(
                "File has been modified since being read: {}{resized}",
                path.display()
            )));
        }
        if now.len() != size {
            return Err(Failed(format!(
                "File has changed size since being read: {} ({size} bytes when opened, {} now)",
                path.display(),
                now.len()
            )));
        }
        let f = &self.cfg.filter;
        match tracker::mark_done(self.cfg.marking, path, &f.dir, &f.tracker_dir, &f.suffix) {
            Ok(how) => {
                tracing::info!(source = %self.ctx.name, "{} read to its end: {how}", path.display());
                Ok(())
            }
            Err(e) => Err(Failed(e.to_string())),
        }
    }

    fn headers(&self, events: &mut [Event], path: &Path) {
        if self.cfg.file_header.is_none() && self.cfg.basename_header.is_none() {
            return;
        }
        let full = path.to_string_lossy();
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        for e in events {
            if let Some(k) = &self.cfg.file_header {
                e.headers.set(k.as_str(), full.as_ref());
            }
            if let Some(k) = &self.cfg.basename_header {
                e.headers.set(k.as_str(), base.as_ref());
            }
        }
    }

    /// Delivers the batch whole, waiting out full channels (back-off from 250 ms doubling
    /// to `maxBackoff`, as Flume); false when the source stopped first.
    async fn put(&self, events: Vec<Event>, path: &Path) -> bool {
        let mut pending = events;
        let mut delay = Duration::from_millis(250).min(self.cfg.max_backoff);
        let mut held = false;
        loop {
            match self.ctx.deliver(pending).await {
                Ok(()) => {
                    if held {
                        tracing::info!(source = %self.ctx.name, "channels accept events again; reading resumes");
                    }
                    return true;
                }
                Err(refused) => {
                    if !held {
                        held = true;
                        tracing::warn!(source = %self.ctx.name, file = %path.display(), "{}; holding {} events and retrying after up to {:?}", refused.error, refused.events.len(), self.cfg.max_backoff);
                    }
                    pending = refused.events;
                }
            }
            if self.ctx.stop.is_stopped() {
                return false;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.ctx.stop.wait() => return false,
            }
            delay = (delay * 2).min(self.cfg.max_backoff);
        }
    }
}

#[cfg(test)]
mod tests;
