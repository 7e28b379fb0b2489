//! The TAILDIR source (`TAILDIR`, `org.apache.flume.source.taildir.TaildirSource`):
//! follows the files of its file groups and turns each complete line into an event,
//! remembering in a position file how far each file (by inode) was delivered.
//!
//! It runs on every shard (`Placement::Partitioned`): each shard lists the same files but
//! follows only those whose inode it owns (`Shard::owns` of the inode's little-endian
//! bytes), so no two shards read one file and a renamed file (same inode) stays on its
//! shard. The position file stays one file in Flume's format: the shards share a table
//! of its entries (`PositionTable`), loaded from the file by the first shard to start;
//! each shard takes its own entries from it at start, and when it saves (every
//! `writePosInterval` and at stop) replaces its own entries (dropping those of files it no
//! longer follows) and writes the whole table, under the table's lock, so concurrent
//! saves neither interleave nor lose another shard's entries.
//!
//! As in Flume 1.11: lines end at `\n` (a `\r` before it removed); a last line without
//! its `\n` waits for it, and is emitted as it is when the file is closed as idle
//! (`idleTimeout`); headers are the group's `headers.<fg>.*`, `byteoffset` and the
//! `fileHeaderKey` path when enabled; the position file is Flume's JSON, so positions
//! carry over between Flume and flume-fast; `skipToEnd` starts files that have no
//! position at their end; a file whose size drops below its position (copytruncate) is
//! read again from 0; a restart resumes a file whose inode and path match a position
//! (unless the file was created after the position file was written: a new file that got
//! a freed inode, which Flume would take for the old one).
//!
//! Unlike Flume (docs/differences.md#taildir says why):
//! - a full channel holds the batch and pauses reading (Flume sleeps and re-reads);
//! - a file renamed out of its group, or deleted, is read on through its descriptor (or,
//!   closed as idle, found again by inode in its directory) until idle for `idleTimeout`,
//!   and its position is saved meanwhile under its old name, so a restart after a crash
//!   finds it by inode (Flume stops reading it at once);
//! - a file renamed to another name of its group keeps its position, and so does one
//!   renamed while the agent was down where its creation time shows it is the same file
//!   (Flume reads it again from 0, or drops it);
//! - an inode reused by a new file is told apart by its creation time, where the file
//!   system records one (Flume resumes the new file at the old one's position);
//! - while idle the source polls every `backoffSleepIncrement` ms (Flume lengthens the
//!   pause by that much per idle poll, up to `maxBackoffSleep`), and a new name in a
//!   group's directory or a writer's close there wakes it at once (inotify, `watch`);
//! - a line longer than `max-line-length` is cut into events of that size (Flume holds
//!   any line whole);
//! - the position file is written atomically (Flume overwrites it in place).

pub mod matcher;
pub mod position;
pub mod tail;
pub mod watch;

use super::{Bound, Plan, Shard, SourceCtx, SourceType};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::{Event, Headers};
use crate::runtime::clock::now_millis;
use crate::runtime::state_file;
use crate::runtime::tick::Ticker;
use matcher::{Group, Listing};
use position::Position;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tail::{Line, Lines, TailFile};

const KEYS: &[KeySpec] = &[
    KeySpec::required(
        "filegroups",
        KeyKind::List,
        "Space-separated names of file groups",
    ),
    KeySpec::new(
        "filegroups.*",
        KeyKind::Prefix,
        None,
        "filegroups.<fg> = /dir/regex: the files of a group (the whole file name must match the expression)",
    ),
    KeySpec::new(
        "positionFile",
        KeyKind::Str,
        Some("~/.flume/taildir_position.json"),
        "JSON file recording each file's inode, path and delivered position",
    ),
    KeySpec::new(
        "headers.*",
        KeyKind::Prefix,
        None,
        "headers.<fg>.<key> = value: a header set on every event of group <fg>",
    ),
    KeySpec::new(
        "byteOffsetHeader",
        KeyKind::Bool,
        Some("false"),
        "Add the line's byte offset in its file as header 'byteoffset'",
    ),
    KeySpec::new(
        "skipToEnd",
        KeyKind::Bool,
        Some("false"),
        "Start files that have no recorded position at their end",
    ),
    KeySpec::new(
        "idleTimeout",
        KeyKind::NON_NEGATIVE,
        Some("120000"),
        "Milliseconds without new lines after which a file is closed (a partial last line is emitted then)",
    ),
    KeySpec::new(
        "writePosInterval",
        KeyKind::POSITIVE,
        Some("3000"),
        "Milliseconds between writes of the position file",
    ),
    KeySpec::new(
        "batchSize",
        KeyKind::POSITIVE,
        Some("100"),
        "Lines per transaction",
    ),
    KeySpec::new(
        "maxBatchCount",
        KeyKind::int(i64::MIN, i64::MAX),
        Some("9223372036854775807"),
        "Batches read from one file before the next file's turn (<= 0: no limit)",
    ),
    KeySpec::new(
        "backoffSleepIncrement",
        KeyKind::POSITIVE,
        Some("1000"),
        "Milliseconds between polls when no file had new lines",
    ),
    KeySpec::new(
        "maxBackoffSleep",
        KeyKind::POSITIVE,
        Some("5000"),
        "Upper bound of the pause between idle polls, in milliseconds",
    ),
    KeySpec::new(
        "cachePatternMatching",
        KeyKind::Bool,
        Some("true"),
        "List a group's directory again only when its modification time changed",
    ),
    super::FILE_HEADER,
    super::FILE_HEADER_KEY,
    KeySpec::new(
        "max-line-length",
        KeyKind::int(1, 1 << 30),
        Some("1048576"),
        "flume-fast: bytes of the longest event; a longer line is cut into events of this size (Flume holds any line whole)",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["TAILDIR"],
    class: "org.apache.flume.source.taildir.TaildirSource",
    doc: "Follows the files matching each file group and turns their lines into events, with positions kept in a file.",
    keys: KEYS,
};

#[derive(Debug, Clone)]
pub struct TaildirConfig {
    pub groups: Vec<Group>,
    pub position_file: PathBuf,
    pub byte_offset_header: bool,
    pub skip_to_end: bool,
    pub idle_timeout: Duration,
    pub write_pos_interval: Duration,
    pub batch_size: usize,
    pub max_batch_count: u64,
    /// The pause between polls that found nothing new.
    pub poll_interval: Duration,
    pub cache_pattern_matching: bool,
    /// The header name for the file's path, when `fileHeader` is on.
    pub file_header: Option<String>,
    /// Bytes of the longest event.
    pub max_line: usize,
    /// The position file's entries, shared by the source's shards (one per config, so
    /// every shard bound from it shares it).
    pub table: Arc<Mutex<PositionTable>>,
}

/// The position file's entries of every shard, by inode: what the file holds once every
/// shard has saved. Locked only at start and to save, never on the event path.
#[derive(Debug, Default)]
pub struct PositionTable {
    /// Whether the position file was read (by the first shard to bind).
    loaded: bool,
    entries: BTreeMap<u64, Position>,
    /// The position file's modification time when it was read (see `Saved`).
    saved_at: Option<SystemTime>,
    /// What the position file holds as last written, so an unchanged table is not
    /// written (and synced) again at every interval.
    written: Option<String>,
}

/// Whether `shard` follows the file of `inode`.
fn owns(shard: Shard, inode: u64) -> bool {
    shard.owns(&inode.to_le_bytes())
}

impl Component for TaildirConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let names = k.list("filegroups")?;
        if names.is_empty() {
            return Err(k.invalid("filegroups", "no file group is named"));
        }
        let specs = k.prefixed("filegroups");
        let mut groups = Vec::new();
        for name in &names {
            let Some((_, prop)) = specs.iter().find(|(n, _)| n == name) else {
                return Err(k.invalid(
                    "filegroups",
                    format!("file group '{name}' has no filegroups.{name} = /dir/regex"),
                ));
            };
            let group = Group::new(name, prop.value.trim()).map_err(|msg| ConfigError::Key {
                loc: prop.loc.clone(),
                key: prop.key.clone(),
                msg,
            })?;
            groups.push(group);
        }
        for (rest, prop) in k.prefixed("headers") {
            let err = |msg: String| ConfigError::Key {
                loc: prop.loc.clone(),
                key: prop.key.clone(),
                msg,
            };
            let Some((fg, key)) = rest.split_once('.') else {
                return Err(err("expected headers.<filegroup>.<header> = value".into()));
            };
            let Some(group) = groups.iter_mut().find(|g| g.name == fg) else {
                return Err(err(format!(
                    "'{fg}' is not one of the file groups ({})",
                    names.join(" ")
                )));
            };
            group
                .headers
                .push((key.to_string(), prop.value.trim().to_string()));
        }
        let position_file =
            crate::channel::wal::config::expand_home(k.str("positionFile")?.as_str());
        if position_file.file_name().is_none() {
            return Err(k.invalid("positionFile", "the position file needs a file name"));
        }
        let max_batch_count = match k.int("maxBatchCount")? {
            // Flume replaces a value <= 0 by its default, Long.MAX_VALUE.
            n if n <= 0 => i64::MAX as u64,
            n => n as u64,
        };
        let increment = k.millis("backoffSleepIncrement")?;
        let max_backoff = k.millis("maxBackoffSleep")?;
        let file_header = k.bool("fileHeader")?;
        let file_header_key = k.str("fileHeaderKey")?;
        Ok(TaildirConfig {
            groups,
            position_file,
            byte_offset_header: k.bool("byteOffsetHeader")?,
            skip_to_end: k.bool("skipToEnd")?,
            idle_timeout: k.millis("idleTimeout")?,
            write_pos_interval: k.millis("writePosInterval")?,
            batch_size: k.usize("batchSize")?,
            max_batch_count,
            poll_interval: increment.min(max_backoff),
            cache_pattern_matching: k.bool("cachePatternMatching")?,
            file_header: file_header.then_some(file_header_key),
            max_line: k.usize("max-line-length")?,
            table: Arc::default(),
        })
    }
}

impl SourceType for TaildirConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Ok(Plan::PARTITIONED)
    }

    /// Checks the groups' directories and reads the position file before the shard is
    /// ready, so a start that cannot follow its files fails at once and says why. The
    /// first shard to bind reads the position file into the shared table; every shard
    /// takes the entries it owns from the table.
    fn bind(&self, shard: Shard) -> std::io::Result<Bound> {
        let mut cfg = self.clone();
        for g in &mut cfg.groups {
            if !g.dir.is_dir() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "file group '{}': directory {} does not exist",
                        g.name,
                        g.dir.display()
                    ),
                ));
            }
            // Paths in headers and the position file are absolute, as Flume's are.
            g.dir = std::path::absolute(&g.dir)?;
        }
        if let Some(dir) = cfg.position_file.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot create the position file's directory {}: {e}",
                            dir.display()
                        ),
                    )
                })?;
            }
        }
        let mut table = cfg.table.lock().unwrap_or_else(PoisonError::into_inner);
        if !table.loaded {
            let saved = match state_file::read(&cfg.position_file)? {
            Some(bytes) => position::parse(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "position file {}: {e} (fix or remove it; without it files are read from the start)",
                        cfg.position_file.display()
                    ),
                )
            })?,
            None => Vec::new(),
        };
            // When the positions were written: a file born after that cannot be the one
            // a position is for, whatever its inode.
            table.saved_at = std::fs::metadata(&cfg.position_file)
                .and_then(|m| m.modified())
                .ok();
            table.entries = saved.into_iter().map(|p| (p.inode, p)).collect();
            table.loaded = true;
        }
        let saved = Saved {
            positions: table
                .entries
                .values()
                .filter(|p| owns(shard, p.inode))
                .cloned()
                .collect(),
            at: table.saved_at,
        };
        drop(table);
        Ok(Bound::new((cfg, shard, saved), run))
    }
}

/// The entries of the position file this shard owns, as read at start.
struct Saved {
    positions: Vec<Position>,
    /// Its modification time.
    at: Option<SystemTime>,
}

/// The running source: its files by inode and the groups' listings.
struct Taildir {
    cfg: TaildirConfig,
    ctx: Rc<SourceCtx>,
    /// The shard this runs on: it follows only the files whose inode it owns.
    shard: Shard,
    listings: Vec<Listing>,
    files: HashMap<u64, TailFile>,
    /// Positions read at start, applied at the first scan (by inode and path, as Flume).
    saved: Option<HashMap<u64, Position>>,
    /// When the position file was written (see `Saved`).
    saved_at: Option<SystemTime>,
    /// The order the last scan gave: gone files first (their lines are older), then the
    /// matching files from the least recently modified, as Flume reads them.
    order: Vec<u64>,
    /// Lines of the batch being built (reused).
    lines: Vec<Line>,
    /// When positions were last saved: a long read saves them between batches too, as
    /// Flume's position writer thread does every `writePosInterval` whatever the reader
    /// is doing (else a kill during a large backlog would repeat all of it).
    saved_last: tokio::time::Instant,
    /// A line was cut at `max-line-length` (logged once, not at every line).
    cut_logged: bool,
}

async fn run((cfg, shard, saved): (TaildirConfig, Shard, Saved), ctx: Rc<SourceCtx>) {
    let mut poll = Ticker::new(cfg.poll_interval, ctx.stop.clone());
    let mut save = Ticker::new(cfg.write_pos_interval, ctx.stop.clone());
    let mut t = Taildir {
        listings: cfg.groups.iter().map(|_| Listing::default()).collect(),
        cfg,
        ctx,
        shard,
        files: HashMap::new(),
        saved: Some(saved.positions.into_iter().map(|p| (p.inode, p)).collect()),
        saved_at: saved.at,
        order: Vec::new(),
        lines: Vec::new(),
        saved_last: tokio::time::Instant::now(),
        cut_logged: false,
    };
    let mut watch = match watch::DirWatch::new(t.cfg.groups.iter().map(|g| g.dir.as_path())) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(source = %t.ctx.name, "cannot watch the file groups' directories ({e}); new files are found by polling every {} ms", t.cfg.poll_interval.as_millis());
            None
        }
    };
    // The first scan applies the saved positions before the first save (due at once)
    // could write the file without them.
    let mut busy = t.poll().await;
    while let Some(more) = busy {
        let busy_now = more;
        tokio::select! {
            biased;
            ok = save.next() => {
                if !ok { break }
                t.save();
                continue;
            }
            ok = poll.next(), if !busy_now => if !ok { break },
            r = changed(&mut watch), if !busy_now => if let Err(e) = r {
                tracing::warn!(source = %t.ctx.name, "watching the file groups' directories failed ({e}); polling alone from now on");
                watch = None;
            },
            _ = tokio::task::yield_now(), if busy_now => {}
        }
        busy = t.poll().await;
    }
    t.save();
    tracing::info!(source = %t.ctx.name, "taildir source stopped; positions saved to {}", t.cfg.position_file.display());
}

/// Waits for a new name in a group's directory; never, without a watch.
async fn changed(watch: &mut Option<watch::DirWatch>) -> std::io::Result<()> {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

impl Taildir {
    /// One round: find the files, then read each that has new data. `Some(true)` when a
    /// file has more to read at once, `None` when the source stopped meanwhile.
    async fn poll(&mut self) -> Option<bool> {
        self.scan();
        let mut more = false;
        for i in 0..self.order.len() {
            // A stop ends the round: a long backlog is not read to its end first.
            if self.ctx.stop.is_stopped() {
                return None;
            }
            let inode = self.order[i];
            more |= self.read_file(inode).await?;
        }
        Some(more)
    }

    /// Lists the groups and updates the files known by inode: new ones, renamed ones
    /// (the inode under another name of a group), and gone ones.
    fn scan(&mut self) {
        let now = now_millis();
        let saved = self.saved.take();
        let saved_at = self.saved_at;
        // The matching files in the order to read them, and the same as a set.
        let mut seen: Vec<(u64, u64)> = Vec::new();
        let mut seen_set: HashSet<u64> = HashSet::new();
        for (gi, group) in self.cfg.groups.iter().enumerate() {
            let (paths, err) = self.listings[gi].files(group, self.cfg.cache_pattern_matching);
            if let Some(e) = err {
                tracing::warn!(source = %self.ctx.name, "listing {}: {e}", group.dir.display());
            }
            for path in paths {
                let Ok(meta) = std::fs::metadata(path) else {
                    continue; // deleted since the listing
                };
                let inode = meta.ino();
                if !owns(self.shard, inode) {
                    continue; // another shard's file
                }
                if !seen_set.insert(inode) {
                    continue; // a second name of a file already seen (a hard link)
                }
                let mtime = (meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000).max(0) as u64;
                seen.push((inode, mtime));
                let born = meta.created().ok();
                if let Some(tf) = self.files.get(&inode) {
                    if !same_birth(tf.born, born) {
                        // The file it was is gone (deleted, its inode freed) and a new one
                        // has its inode: a new file, from its start.
                        tracing::info!(source = %self.ctx.name, "inode {inode} of {} now belongs to a new file {}", tf.path.display(), path.display());
                        self.files.remove(&inode);
                    }
                }
                if let Some(tf) = self.files.get_mut(&inode) {
                    tf.stat = (meta.len(), mtime);
                    if tf.path != *path {
                        tracing::info!(source = %self.ctx.name, "{} is now {} (inode {inode}); following it from position {}", tf.path.display(), path.display(), tf.pos);
                        tf.path = path.clone();
                        tf.group = gi;
                    }
                    tf.gone_since = None;
                    continue;
                }
                let pos = match saved.as_ref().and_then(|s| s.get(&inode)) {
                    // Its inode and path (as Flume), unless it was born after the
                    // positions were written: a new file that got a freed inode.
                    Some(p) if Path::new(&p.file) == path && older(born, saved_at, true) => p.pos,
                    // Its inode in the same directory under another name of the group (a
                    // rotation while the agent was down), only where its birth shows it
                    // is the same file; else from 0, as Flume (a duplicate, not a loss).
                    Some(p)
                        if Path::new(&p.file).parent() == path.parent()
                            && meta.len() >= p.pos
                            && older(born, saved_at, false) =>
                    {
                        p.pos
                    }
                    _ if saved.is_some() && self.cfg.skip_to_end => meta.len(),
                    _ => 0,
                };
                tracing::info!(source = %self.ctx.name, "following {} (inode {inode}) from position {pos}", path.display());
                self.files.insert(
                    inode,
                    TailFile {
                        inode,
                        path: path.clone(),
                        group: gi,
                        pos,
                        file: None,
                        last_updated: now,
                        gone_since: None,
                        stat: (meta.len(), mtime),
                        born,
                    },
                );
            }
        }
        if let Some(saved) = saved {
            for p in saved.values() {
                if !seen_set.contains(&p.inode) {
                    self.find_renamed(p, now);
                }
            }
        }
        seen.sort_by_key(|&(_, mtime)| mtime);
        self.order.clear();
        for tf in self.files.values_mut() {
            if tf.gone_since.is_none() && !seen_set.contains(&tf.inode) {
                tf.gone_since = Some(now);
                // Its application may write to it until it reopens its log: a full
                // idleTimeout from the rotation, even for a file idle long before it.
                tf.last_updated = now;
            }
            if tf.gone_since.is_some() {
                self.order.push(tf.inode);
            }
        }
        self.order.extend(seen.iter().map(|(i, _)| *i));
    }

    /// A file with a saved position that no name of its group has now: if it was renamed
    /// in its directory while the agent was down (a rotation), it is read from its
    /// position on, as a file renamed while the agent runs is (Flume loses the rest).
    /// Where birth times are unknown, only a file not shorter than its position is.
    fn find_renamed(&mut self, p: &Position, now: u64) {
        let old = Path::new(&p.file);
        let Some(dir) = old.parent() else { return };
        let Some(group) = self.cfg.groups.iter().position(|g| g.dir == dir) else {
            return;
        };
        let Some((path, file)) = find_in_dir(dir, p.inode, p.pos, None) else {
            return;
        };
        let born = file.metadata().ok().and_then(|m| m.created().ok());
        if !older(born, self.saved_at, true) {
            return;
        }
        tracing::info!(source = %self.ctx.name, "{} (inode {}) was renamed to {} while the agent was stopped; reading it on from position {}", p.file, p.inode, path.display(), p.pos);
        self.files.insert(
            p.inode,
            TailFile {
                inode: p.inode,
                // Its lines were written under the name of its group.
                path: old.to_path_buf(),
                group,
                pos: p.pos,
                file: Some(file),
                last_updated: now,
                gone_since: Some(now),
                stat: (0, 0),
                born,
            },
        );
    }

    /// Reads a file's new lines and delivers them, `batchSize` per put and at most
    /// `maxBatchCount` puts; closes it when idle, drops it when gone and read to its end.
    /// `Some(true)` when the file has more right now, `None` when the source stopped.
    async fn read_file(&mut self, inode: u64) -> Option<bool> {
        let now = now_millis();
        let Some(tf) = self.files.get_mut(&inode) else {
            return Some(false);
        };
        let file = match tf.file.take() {
            Some(f) => f,
            // Closed as idle, then renamed: found again by its inode (an application may
            // write to it a while after a rotation), or dropped.
            None if tf.gone_since.is_some() => {
                let dir = tf.path.parent();
                match dir.and_then(|d| find_in_dir(d, inode, tf.pos, tf.born)) {
                    Some((_, f)) => f,
                    None => {
                        self.files.remove(&inode);
                        return Some(false);
                    }
                }
            }
            // Closed as idle, and neither longer nor modified since (Flume's test).
            None if tf.stat.0 == tf.pos && tf.stat.1 <= tf.last_updated => return Some(false),
            None => match open(tf) {
                Ok(Some(f)) => f,
                Ok(None) => return Some(false),
                Err(e) => {
                    tracing::warn!(source = %self.ctx.name, "cannot open {}: {e}", tf.path.display());
                    return Some(false);
                }
            },
        };
        let size = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                tracing::warn!(source = %self.ctx.name, "cannot stat {}: {e}", tf.path.display());
                tf.file = Some(file);
                return Some(false);
            }
        };
        if size < tf.pos {
            tracing::info!(source = %self.ctx.name, "{} (inode {inode}) is shorter than its position {}: truncated, reading it again from 0", tf.path.display(), tf.pos);
            tf.pos = 0;
        }
        let idle = now.saturating_sub(tf.last_updated) >= self.cfg.idle_timeout.as_millis() as u64;
        // A gone file is read as long as it grows (the application may write to it until
        // it reopens its log), and dropped once idle, with its partial last line.
        let finished = tf.gone_since.is_some() && idle;
        let closing = idle;
        let mut more = false;
        if size > tf.pos || closing {
            let (path, group, start) = (tf.path.clone(), tf.group, tf.pos);
            let headers = self.headers(group, &path);
            let mut lines = Lines::new(start, self.cfg.max_line);
            let mut batches = 0u64;
            loop {
                self.lines.clear();
                if let Err(e) = lines.read(&file, self.cfg.batch_size, closing, &mut self.lines) {
                    tracing::warn!(source = %self.ctx.name, "reading {}: {e}", path.display());
                    break;
                }
                if self.lines.is_empty() {
                    break;
                }
                let n = self.lines.len();
                let events = self.events(&headers);
                let delivered = self.ctx.deliver_all(events, &path.display()).await;
                let tf = self
                    .files
                    .get_mut(&inode)
                    .expect("only this task removes files");
                if delivered < n {
                    tf.file = Some(file);
                    return None;
                }
                tf.pos = lines.pos();
                tf.last_updated = now;
                if self.ctx.stop.is_stopped() {
                    tf.file = Some(file);
                    return None;
                }
                if self.saved_last.elapsed() >= self.cfg.write_pos_interval {
                    self.save();
                }
                if n < self.cfg.batch_size {
                    break;
                }
                batches += 1;
                if batches >= self.cfg.max_batch_count {
                    more = true;
                    break;
                }
            }
            if lines.cut_long && !self.cut_logged {
                self.cut_logged = true;
                tracing::warn!(source = %self.ctx.name, "a line of {} is longer than max-line-length ({} bytes): cut into events of that size (logged once)", path.display(), self.cfg.max_line);
            }
        }
        let tf = self
            .files
            .get_mut(&inode)
            .expect("only this task removes files");
        if finished && !more {
            tracing::info!(source = %self.ctx.name, "{} (inode {inode}) is no longer in its group and was read to its end at {}; dropped as idle", tf.path.display(), tf.pos);
            self.files.remove(&inode);
        } else if idle && !more && tf.gone_since.is_none() {
            tracing::info!(source = %self.ctx.name, "closed idle file {} (inode {inode}) at {}", tf.path.display(), tf.pos);
            tf.last_updated = now_millis();
        } else {
            tf.file = Some(file);
        }
        Some(more)
    }

    /// The headers every event of a group's file gets, before its `byteoffset`.
    fn headers(&self, group: usize, path: &Path) -> Headers {
        let mut h = Headers::new();
        for (k, v) in &self.cfg.groups[group].headers {
            h.set(k.as_str(), v.as_str());
        }
        if let Some(key) = &self.cfg.file_header {
            h.set(key.as_str(), path.to_string_lossy().as_ref());
        }
        h
    }

    /// The batch's lines as events (the lines keep their buffers for the next batch).
    fn events(&mut self, headers: &Headers) -> Vec<Event> {
        let mut events = Vec::with_capacity(self.lines.len());
        for line in self.lines.drain(..) {
            let mut h = headers.clone();
            if self.cfg.byte_offset_header {
                h.set("byteoffset", line.offset.to_string());
            }
            events.push(Event::with_headers(h, line.body));
        }
        events
    }

    /// Writes the followed files' positions (Flume's format, atomically); an error is
    /// logged and the next interval tries again.
    fn save(&mut self) {
        self.saved_last = tokio::time::Instant::now();
        let shard = self.shard;
        // This shard's entries replaced by its files' (those of files it dropped go), the
        // other shards' kept as they saved them; written whole under the lock, so two
        // shards saving at once neither interleave nor lose each other's entries.
        let mut table = self
            .cfg
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        table.entries.retain(|&inode, _| !owns(shard, inode));
        // Gone files too (Flume writes only those that match), under the name they had in
        // their group: after a kill, a restart finds a rotated file that was still being
        // read by its inode in that directory (`find_renamed`) and reads the rest. Flume
        // reading this file skips such an entry (its inode and path match no file).
        for tf in self.files.values() {
            let p = Position {
                inode: tf.inode,
                pos: tf.pos,
                file: tf.path.to_string_lossy().into_owned(),
            };
            table.entries.insert(tf.inode, p);
        }
        let mut positions: Vec<Position> = table.entries.values().cloned().collect();
        positions.sort_by(|a, b| a.file.cmp(&b.file).then(a.inode.cmp(&b.inode)));
        let text = position::format(&positions);
        if table.written.as_ref() == Some(&text) {
            return;
        }
        match state_file::write(&self.cfg.position_file, text.as_bytes()) {
            Ok(()) => table.written = Some(text),
            Err(e) => tracing::error!(source = %self.ctx.name, "writing the position file: {e}"),
        }
    }
}

/// The file of inode `inode` in `dir` under any name, opened, if it is a regular file at
/// least `min_len` long (a reused inode would rarely be as long as the old position) and
/// born when `born` says, where that is known.
fn find_in_dir(
    dir: &Path,
    inode: u64,
    min_len: u64,
    born: Option<SystemTime>,
) -> Option<(PathBuf, std::fs::File)> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.ino() == inode)?;
    let file = std::fs::File::open(entry.path()).ok()?;
    let m = file.metadata().ok()?;
    let same =
        m.is_file() && m.ino() == inode && m.len() >= min_len && same_birth(born, m.created().ok());
    same.then(|| (entry.path(), file))
}

/// Whether a file born at `born` existed when the positions were written (`saved_at`);
/// the answer is `unknown` when the file system or the position file cannot tell.
fn older(born: Option<SystemTime>, saved_at: Option<SystemTime>, unknown: bool) -> bool {
    match (born, saved_at) {
        (Some(born), Some(at)) => born <= at,
        _ => unknown,
    }
}

/// Whether two creation times can be the same file's: equal, or one unknown (a file
/// system without birth times, or a file known only from the position file).
fn same_birth(a: Option<SystemTime>, b: Option<SystemTime>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Opens a closed file by its path, if the path still names its inode (else the next
/// scan sees what became of it).
fn open(tf: &mut TailFile) -> std::io::Result<Option<std::fs::File>> {
    let f = match std::fs::File::open(&tf.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if m.ino() != tf.inode || !same_birth(tf.born, m.created().ok()) {
        return Ok(None);
    }
    // Idle again only `idleTimeout` after this opening.
    tf.last_updated = now_millis();
    Ok(Some(f))
}

#[cfg(test)]
mod tests;
