//! The journal of one shard's in-use HDFS files: a small local file listing every in-use
//! file the shard's HDFS sink has open, so that a start after a crash recovers exactly the
//! files this agent left open (lease recovery, cut to the last synced length, rename) and
//! never the file of another writer, whose lease recovery would fence it.
//!
//! Layout: `<hdfs.journalDir>/shard-<k>/journal`, guarded by `shard-<k>/in_use.lock`, an
//! `flock` that dies with its process: a second live agent given the same directory is
//! refused at start instead of recovering the first one's files. Journals of shards a
//! run with fewer `--cores` has no shard for are adopted by shard `k mod N`, as the file
//! channel adopts its orphaned shard directories.
//!
//! Records are lines of tab-separated fields (`\`, tab and newline escaped):
//!
//! ```text
//! flume-fast-hdfs-journal 1  <boot id>  <namenode>   the header, first line
//! open     <tmp> <target>                            about to create <tmp>
//! created  <tmp>                                     the create succeeded
//! sync     <tmp> <bytes>                             hsync'd up to <bytes>
//! done     <tmp>                                     closed and renamed, or gone
//! recover  <tmp> <target> <bytes|->                  left by an earlier run
//! ```
//!
//! Why this order and these syncs:
//! - `open` is durable before the create, so no crash leaves a file this shard created
//!   missing from the journal.
//! - `created` is durable before the first byte of data. An entry with `open` alone is a
//!   file whose create this shard never saw succeed: it holds no committed event, and the
//!   name may be another writer's (the create may have failed because it existed), so a
//!   restart leaves it alone rather than risk fencing a live writer.
//! - `sync` is written, not fsync'd, before the take commits: a killed process leaves it
//!   in the page cache, which is all a restart in the same boot reads. After a reboot
//!   the tail may be lost, so `sync` lengths count only when the header's boot id is the
//!   running kernel's; otherwise the file is kept whole (at-least-once).
//! - `done` is not fsync'd: if it is lost, a later start finds the in-use name gone and
//!   skips it.
//! - Appends are positional, at the end of the last whole write, so a failed write is
//!   overwritten by the next; only the last line can be torn, and a line without its
//!   newline is ignored.

use crate::channel::wal::config::parse_shard_dir;
use crate::channel::wal::layout::{DirLock, LayoutError, LOCK_FILE};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &str = "flume-fast-hdfs-journal";
const VERSION: &str = "1";
const FILE: &str = "journal";
/// Rewrite the journal with only its live entries once it grows past this.
const COMPACT_AT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("hdfs.journalDir {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("hdfs.journalDir {} is in use by another flume-fast agent or sink{holder}; give each HDFS sink of each agent its own hdfs.journalDir", dir.display())]
    Locked { dir: PathBuf, holder: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<LayoutError> for JournalError {
    fn from(e: LayoutError) -> Self {
        match e {
            LayoutError::Io { path, source } => JournalError::Io { path, source },
            LayoutError::Locked { dir, holder } => JournalError::Locked { dir, holder },
        }
    }
}

/// What the journal knows about one in-use file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Opened by the run that wrote the journal.
    Open {
        target: String,
        created: bool,
        synced: Option<u64>,
    },
    /// Left by an earlier run; `synced` is `None` when its synced length is unknown.
    Recover { target: String, synced: Option<u64> },
}

/// An in-use file left by an earlier run, to be recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub tmp: String,
    pub target: String,
    /// The length of its committed data, or `None` when unknown (keep it whole).
    pub synced: Option<u64>,
}

/// A journal file as read back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// (boot id, namenode) from the header; `None` if the header is missing or torn.
    pub header: Option<(String, String)>,
    pub entries: BTreeMap<String, Entry>,
    /// Complete lines that did not parse (the torn last line is not one of them).
    pub bad_lines: usize,
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match it.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            _ => return None,
        });
    }
    Some(out)
}

fn line(fields: &[&str]) -> String {
    let mut s = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            s.push('\t');
        }
        escape(f, &mut s);
    }
    s.push('\n');
    s
}

fn header_line(boot: &str, namenode: &str) -> String {
    line(&[MAGIC, VERSION, boot, namenode])
}

/// Reads a journal's bytes. Later records about a file override earlier ones, so a
/// record written twice (a retried write, a compaction) reads the same as once.
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut p = Parsed::default();
    let text = String::from_utf8_lossy(bytes);
    // Only newline-terminated lines count: the last one may be torn.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => return p,
    };
    for (n, raw) in complete.lines().enumerate() {
        let fields: Option<Vec<String>> = raw.split('\t').map(unescape).collect();
        let Some(f) = fields else {
            p.bad_lines += 1;
            continue;
        };
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        if n == 0 {
            match f.as_slice() {
                [MAGIC, VERSION, boot, nn] => {
                    p.header = Some((boot.to_string(), nn.to_string()));
                    continue;
                }
                _ => {
                    p.bad_lines += 1;
                    continue;
                }
            }
        }
        let ok = match f.as_slice() {
            ["open", tmp, target] => {
                p.entries.insert(
                    tmp.to_string(),
                    Entry::Open {
                        target: target.to_string(),
                        created: false,
                        synced: None,
                    },
                );
                true
            }
            ["created", tmp] => match p.entries.get_mut(*tmp) {
                Some(Entry::Open { created, .. }) => {
                    *created = true;
                    true
                }
                _ => false,
            },
            ["sync", tmp, n] => match (p.entries.get_mut(*tmp), n.parse::<u64>()) {
                (Some(Entry::Open { synced, .. }), Ok(v)) => {
                    *synced = Some(v);
                    true
                }
                _ => false,
            },
            ["done", tmp] => {
                p.entries.remove(*tmp);
                true
            }
            ["recover", tmp, target, n] => {
                let synced = match *n {
                    "-" => Some(None),
                    n => n.parse().ok().map(Some),
                };
                match synced {
                    Some(synced) => {
                        p.entries.insert(
                            tmp.to_string(),
                            Entry::Recover {
                                target: target.to_string(),
                                synced,
                            },
                        );
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if !ok {
            p.bad_lines += 1;
        }
    }
    p
}

/// The files a parsed journal says to recover, judged against the running kernel's boot
/// id and the sink's namenode; the second list holds what is left alone, and why.
pub fn pending(p: &Parsed, boot: &str, namenode: &str) -> (Vec<Pending>, Vec<String>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let Some((jboot, jnn)) = &p.header else {
        // No header: the journal was never synced past its creation, so no create followed.
        return (out, skipped);
    };
    if jnn != namenode {
        for tmp in p.entries.keys() {
            skipped.push(format!(
                "{tmp}: the journal names namenode {jnn}, hdfs.path now names {namenode}; left as it is"
            ));
        }
        return (out, skipped);
    }
    // "-" is an unknown boot id: it never matches, so lengths are never trusted blindly.
    let same_boot = jboot == boot && boot != "-";
    for (tmp, e) in &p.entries {
        match e {
            Entry::Open {
                target,
                created: true,
                synced,
            } => out.push(Pending {
                tmp: tmp.clone(),
                target: target.clone(),
                // In the same boot every `sync` written is here; none means none committed.
                synced: same_boot.then_some(synced.unwrap_or(0)),
            }),
            Entry::Open { created: false, .. } => skipped.push(format!(
                "{tmp}: the agent stopped while creating it, before any event was written; \
                 left alone, as another writer may hold that name"
            )),
            Entry::Recover { target, synced } => out.push(Pending {
                tmp: tmp.clone(),
                target: target.clone(),
                synced: *synced,
            }),
        }
    }
    (out, skipped)
}

/// The running kernel's boot id ("-" when unknown).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && !s.contains(['\t', '\n']))
        .unwrap_or_else(|| "-".to_string())
}

fn render(boot: &str, namenode: &str, live: &BTreeMap<String, Entry>) -> String {
    let mut s = header_line(boot, namenode);
    for (tmp, e) in live {
        match e {
            Entry::Open {
                target,
                created,
                synced,
            } => {
                s.push_str(&line(&["open", tmp, target]));
                if *created {
                    s.push_str(&line(&["created", tmp]));
                }
                if let Some(n) = synced {
                    s.push_str(&line(&["sync", tmp, &n.to_string()]));
                }
            }
            Entry::Recover { target, synced } => {
                let n = synced.map_or_else(|| "-".to_string(), |n| n.to_string());
                s.push_str(&line(&["recover", tmp, target, &n]));
            }
        }
    }
    s
}

fn shard_dir(dir: &Path, shard: usize) -> PathBuf {
    dir.join(format!("shard-{shard}"))
}

/// Writes `text` as `dir/journal` atomically and durably (temp file, fsync, rename, fsync
/// of the directory). Start-up only: it blocks.
fn replace_blocking(dir: &Path, text: &str) -> Result<(), JournalError> {
    let new = dir.join("journal.new");
    let mut f = std::fs::File::create(&new).map_err(io_err(&new))?;
    f.write_all(text.as_bytes()).map_err(io_err(&new))?;
    f.sync_data().map_err(io_err(&new))?;
    let path = dir.join(FILE);
    std::fs::rename(&new, &path).map_err(io_err(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// One shard's open journal.
pub struct Journal {
    dir: PathBuf,
    path: PathBuf,
    file: tokio_uring::fs::File,
    /// End of the last whole write: where the next one goes.
    len: u64,
    compact_at: u64,
    /// The smallest `compact_at` (a field so tests can make it small).
    compact_min: u64,
    boot: String,
    namenode: String,
    /// Every file the journal still lists, as a compaction would rewrite it.
    live: BTreeMap<String, Entry>,
    /// Records not yet written.
    buf: String,
    _lock: DirLock,
}

impl Journal {
    /// Opens shard `shard`'s journal under `dir` (of `shards` shards), adopting the
    /// journals of shards `>= shards` that map to it. Returns the journal, rewritten to
    /// list only what is still to recover, and those files. Start-up only: local,
    /// blocking file I/O (a few small files); HDFS is not touched.
    pub fn open(
        dir: &Path,
        shard: usize,
        shards: usize,
        namenode: &str,
    ) -> Result<(Journal, Vec<Pending>), JournalError> {
        let own = shard_dir(dir, shard);
        let lock = DirLock::acquire(&own)?;
        let mut orphans = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let Some(k) = e.file_name().to_str().and_then(parse_shard_dir) else {
                    continue;
                };
                if k >= shards && k % shards.max(1) == shard && e.path().is_dir() {
                    let orphan_lock = DirLock::acquire(&e.path())?;
                    orphans.push((k, e.path(), orphan_lock));
                }
            }
        }
        orphans.sort_by_key(|o| o.0);
        let boot = boot_id();
        let mut live = BTreeMap::new();
        for d in std::iter::once(&own).chain(orphans.iter().map(|o| &o.1)) {
            let path = d.join(FILE);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&path)(e)),
            };
            let parsed = parse(&bytes);
            if parsed.bad_lines > 0 {
                tracing::warn!(
                    shard,
                    "{}: {} unreadable journal lines skipped",
                    path.display(),
                    parsed.bad_lines
                );
            }
            let (pend, skipped) = pending(&parsed, &boot, namenode);
            for s in skipped {
                tracing::warn!(shard, "in-use file not recovered: {s}");
            }
            for p in pend {
                live.insert(
                    p.tmp,
                    Entry::Recover {
                        target: p.target,
                        synced: p.synced,
                    },
                );
            }
        }
        // Durable before the orphans go: a crash in between recovers from either copy.
        let text = render(&boot, namenode, &live);
        replace_blocking(&own, &text)?;
        for (k, d, orphan_lock) in orphans {
            for f in [FILE, "journal.new", LOCK_FILE] {
                let _ = std::fs::remove_file(d.join(f));
            }
            drop(orphan_lock);
            let _ = std::fs::remove_dir(&d);
            tracing::info!(shard, "adopted the HDFS journal of shard {k}");
        }
        let found = live
            .iter()
            .filter_map(|(tmp, e)| match e {
                Entry::Recover { target, synced } => Some(Pending {
                    tmp: tmp.clone(),
                    target: target.clone(),
                    synced: *synced,
                }),
                Entry::Open { .. } => None,
            })
            .collect();
        let path = own.join(FILE);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok((
            Journal {
                dir: own,
                path,
                file: tokio_uring::fs::File::from_std(file),
                len: text.len() as u64,
                compact_at: COMPACT_AT,
                compact_min: COMPACT_AT,
                boot,
                namenode: namenode.to_string(),
                live,
                buf: String::new(),
                _lock: lock,
            },
            found,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the journal lists `tmp` (open, or left by an earlier run).
    pub fn knows(&self, tmp: &str) -> bool {
        self.live.contains_key(tmp)
    }

    /// About to create `tmp` (to be renamed `target`): durable when this returns.
    pub async fn opened(&mut self, tmp: &str, target: &str) -> Result<(), JournalError> {
        self.buf.push_str(&line(&["open", tmp, target]));
        self.live.insert(
            tmp.to_string(),
            Entry::Open {
                target: target.to_string(),
                created: false,
                synced: None,
            },
        );
        self.flush_inner(true).await
    }

    /// `tmp` was created: durable when this returns, before any data is written to it.
    pub async fn created(&mut self, tmp: &str) -> Result<(), JournalError> {
        self.buf.push_str(&line(&["created", tmp]));
        if let Some(Entry::Open { created, .. }) = self.live.get_mut(tmp) {
            *created = true;
        }
        self.flush_inner(true).await
    }

    /// `tmp` is hsync'd up to `n` bytes (written by the next `flush`).
    pub fn synced(&mut self, tmp: &str, n: u64) {
        self.buf.push_str(&line(&["sync", tmp, &n.to_string()]));
        if let Some(Entry::Open { synced, .. }) = self.live.get_mut(tmp) {
            *synced = Some(n);
        }
    }

    /// `tmp` needs nothing more (written by the next `flush`).
    pub fn done(&mut self, tmp: &str) {
        if self.live.remove(tmp).is_some() {
            self.buf.push_str(&line(&["done", tmp]));
        }
    }

    /// Writes the records noted since the last flush (no fsync: see the module doc).
    pub async fn flush(&mut self) -> Result<(), JournalError> {
        self.flush_inner(false).await?;
        if self.len >= self.compact_at {
            if let Err(e) = self.compact().await {
                // The long journal is still correct; try again once it doubled.
                tracing::warn!("compacting {} failed: {e}", self.path.display());
                self.compact_at = self.len * 2;
            }
        }
        Ok(())
    }

    async fn flush_inner(&mut self, durable: bool) -> Result<(), JournalError> {
        if !self.buf.is_empty() {
            let data = self.buf.as_bytes().to_vec();
            let n = data.len() as u64;
            let (r, _) = self.file.write_all_at(data, self.len).await;
            r.map_err(io_err(&self.path))?;
            if durable {
                self.file.sync_data().await.map_err(io_err(&self.path))?;
            }
            self.len += n;
            self.buf.clear();
        } else if durable {
            self.file.sync_data().await.map_err(io_err(&self.path))?;
        }
        Ok(())
    }

    /// Rewrites the journal with only its live entries (temp file, fsync, rename, fsync of
    /// the directory), all through io_uring.
    async fn compact(&mut self) -> Result<(), JournalError> {
        let text = render(&self.boot, &self.namenode, &self.live);
        let new = self.dir.join("journal.new");
        let f = tokio_uring::fs::File::create(&new)
            .await
            .map_err(io_err(&new))?;
        let n = text.len() as u64;
        let (r, _) = f.write_all_at(text.into_bytes(), 0).await;
        r.map_err(io_err(&new))?;
        f.sync_data().await.map_err(io_err(&new))?;
        tokio_uring::fs::rename(&new, &self.path)
            .await
            .map_err(io_err(&self.path))?;
        let old = std::mem::replace(&mut self.file, f);
        let _ = old.close().await;
        self.len = n;
        self.compact_at = self.compact_min.max(n * 2);
        let d = tokio_uring::fs::File::open(&self.dir)
            .await
            .map_err(io_err(&self.dir))?;
        let r = d.sync_all().await.map_err(io_err(&self.dir));
        let _ = d.close().await;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NN: &str = "hdfs://nn:8020";

    fn open(p: &Path, shard: usize, shards: usize) -> (Journal, Vec<Pending>) {
        Journal::open(p, shard, shards, NN).unwrap()
    }

    fn pend(tmp: &str, synced: Option<u64>) -> Pending {
        Pending {
            tmp: tmp.into(),
            target: tmp.trim_end_matches(".tmp").into(),
            synced,
        }
    }

    #[test]
    fn records_round_trip_and_later_ones_win() {
        let boot = "b1";
        let text = [
            header_line(boot, NN),
            line(&["open", "/d/a.tmp", "/d/a"]),
            line(&["created", "/d/a.tmp"]),
            line(&["sync", "/d/a.tmp", "10"]),
            line(&["sync", "/d/a.tmp", "25"]),
            // A duplicate (a retried write) changes nothing.
            line(&["sync", "/d/a.tmp", "25"]),
            line(&["open", "/d/b\tc.tmp", "/d/b\tc"]),
            line(&["created", "/d/b\tc.tmp"]),
            line(&["open", "/d/gone.tmp", "/d/gone"]),
            line(&["created", "/d/gone.tmp"]),
            line(&["done", "/d/gone.tmp"]),
            line(&["done", "/d/gone.tmp"]),
            line(&["open", "/d/never.tmp", "/d/never"]),
            line(&["recover", "/d/old.tmp", "/d/old", "-"]),
        ]
        .concat();
        let p = parse(text.as_bytes());
        assert_eq!(p.bad_lines, 0);
        let (got, skipped) = pending(&p, boot, NN);
        assert_eq!(
            got,
            [
                pend("/d/a.tmp", Some(25)),
                // Created, never synced: nothing committed in it.
                pend("/d/b\tc.tmp", Some(0)),
                pend("/d/old.tmp", None),
            ]
        );
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].starts_with("/d/never.tmp"));
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_garbage_lines_are_counted() {
        let full = [
            header_line("b", NN),
            line(&["open", "/d/a.tmp", "/d/a"]),
            line(&["created", "/d/a.tmp"]),
            line(&["sync", "/d/a.tmp", "7"]),
        ]
        .concat();
        // Cut anywhere inside the last line: the earlier length stands.
        let cut = full.len() - 3;
        let p = parse(&full.as_bytes()[..cut]);
        assert_eq!(p.bad_lines, 0);
        assert_eq!(
            p.entries["/d/a.tmp"],
            Entry::Open {
                target: "/d/a".into(),
                created: true,
                synced: None
            }
        );
        // A torn header: nothing was ever created after it.
        let p = parse(&full.as_bytes()[..10]);
        assert_eq!(pending(&p, "b", NN), (vec![], vec![]));
        let bad = [
            header_line("b", NN),
            "sync\t/d/x.tmp\tnot-a-number\n".to_string(),
            "bogus\\q\n".to_string(),
            line(&["sync", "/d/unknown.tmp", "5"]),
        ]
        .concat();
        assert_eq!(parse(bad.as_bytes()).bad_lines, 3);
    }

    #[test]
    fn lengths_from_another_boot_or_namenode_are_not_trusted() {
        let text = [
            header_line("old-boot", NN),
            line(&["open", "/d/a.tmp", "/d/a"]),
            line(&["created", "/d/a.tmp"]),
            line(&["sync", "/d/a.tmp", "9"]),
            line(&["recover", "/d/r.tmp", "/d/r", "4"]),
        ]
        .concat();
        let p = parse(text.as_bytes());
        let (got, _) = pending(&p, "new-boot", NN);
        // The `sync` tail may have been lost with the page cache: keep the file whole. A
        // `recover` length was established (and fsync'd) by an earlier start: it stands.
        assert_eq!(got, [pend("/d/a.tmp", None), pend("/d/r.tmp", Some(4))]);
        let (got, skipped) = pending(&p, "old-boot", "hdfs://other:8020");
        assert!(got.is_empty());
        assert_eq!(skipped.len(), 2);
        let (got, _) = pending(&p, "-", NN);
        assert_eq!(got[0].synced, None, "an unknown boot id never matches");
    }

    #[test]
    fn a_journal_survives_a_restart_and_finished_files_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        tokio_uring::start(async {
            let (mut j, found) = open(dir.path(), 0, 1);
            assert!(found.is_empty());
            j.opened("/d/a.tmp", "/d/a").await.unwrap();
            j.created("/d/a.tmp").await.unwrap();
            j.synced("/d/a.tmp", 100);
            j.opened("/d/b.tmp", "/d/b").await.unwrap();
            j.created("/d/b.tmp").await.unwrap();
            j.synced("/d/b.tmp", 5);
            j.done("/d/b.tmp");
            j.flush().await.unwrap();
            // A second agent on the same directory is refused while this one lives.
            let e = Journal::open(dir.path(), 0, 1, NN).err().unwrap();
            assert!(matches!(e, JournalError::Locked { .. }), "{e}");
            drop(j);
            // The restart (same boot): `a` at its synced length, `b` finished.
            let (j, found) = open(dir.path(), 0, 1);
            assert_eq!(found, [pend("/d/a.tmp", Some(100))]);
            assert!(
                j.knows("/d/a.tmp") && !j.knows("/d/b.tmp"),
                "no new file takes its name"
            );
            drop(j);
            // Not recovered yet, so the next start still has it, as a `recover` record.
            let (mut j, found) = open(dir.path(), 0, 1);
            assert_eq!(found, [pend("/d/a.tmp", Some(100))]);
            j.done("/d/a.tmp");
            j.flush().await.unwrap();
            drop(j);
            let (_j, found) = open(dir.path(), 0, 1);
            assert!(found.is_empty());
        });
    }

    #[test]
    fn fewer_shards_adopt_the_orphaned_journals_by_k_mod_n() {
        let dir = tempfile::tempdir().unwrap();
        tokio_uring::start(async {
            // A run with 4 shards, each with one file open.
            let mut js = Vec::new();
            for k in 0..4 {
                let (mut j, _) = open(dir.path(), k, 4);
                let tmp = format!("/d/f{k}.tmp");
                j.opened(&tmp, &format!("/d/f{k}")).await.unwrap();
                j.created(&tmp).await.unwrap();
                j.synced(&tmp, k as u64 + 1);
                j.flush().await.unwrap();
                js.push(j);
            }
            drop(js);
            // Restart with 2: shard 0 takes 0 and 2, shard 1 takes 1 and 3.
            let (j0, found0) = open(dir.path(), 0, 2);
            let (j1, found1) = open(dir.path(), 1, 2);
            assert_eq!(
                found0,
                [pend("/d/f0.tmp", Some(1)), pend("/d/f2.tmp", Some(3))]
            );
            assert_eq!(
                found1,
                [pend("/d/f1.tmp", Some(2)), pend("/d/f3.tmp", Some(4))]
            );
            let mut left: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            left.sort();
            assert_eq!(left, ["shard-0", "shard-1"], "the orphans are gone");
            drop((j0, j1));
            // And the adopted files are in the adopters' journals now.
            let (_j, found) = open(dir.path(), 0, 1);
            assert_eq!(found.len(), 4);
        });
    }

    #[test]
    fn compaction_keeps_exactly_the_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        tokio_uring::start(async {
            let (mut j, _) = open(dir.path(), 0, 1);
            (j.compact_at, j.compact_min) = (4096, 4096);
            j.opened("/d/keep.tmp", "/d/keep").await.unwrap();
            j.created("/d/keep.tmp").await.unwrap();
            for i in 0..100u64 {
                let tmp = format!("/d/roll{i}.tmp");
                j.opened(&tmp, &format!("/d/roll{i}")).await.unwrap();
                j.created(&tmp).await.unwrap();
                j.synced(&tmp, i);
                j.synced("/d/keep.tmp", i);
                j.done(&tmp);
                j.flush().await.unwrap();
            }
            assert!(j.len < 4096, "compacted: {} bytes", j.len);
            drop(j);
            let (_j, found) = open(dir.path(), 0, 1);
            assert_eq!(found, [pend("/d/keep.tmp", Some(99))]);
        });
    }
}
