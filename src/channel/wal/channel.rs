//! The file channel on one shard: Flume's transactions over the shard's log.
//!
//! A put appends its put records and a commit record to the active segment (no await in
//! between, so a transaction's records are contiguous), then waits until a sync covers
//! them, and only then makes the events visible and returns: a put that returned `Ok` is
//! on disk. Syncs are group commits: a background task on the shard issues one io_uring
//! `fdatasync` for everything appended since the previous one (on Linux, fdatasync of the
//! file also writes back the pages dirtied through the shared mapping), and every waiting
//! transaction is released by it. With `fsyncPerTransaction = false` puts return at once
//! and the task syncs every `fsyncInterval`.
//!
//! With `fsyncPerTransaction` the log appends to memory and each sync first writes what
//! was appended with `O_DIRECT` (see `direct`); without it, appends go to the page cache
//! at once.
//!
//! A take commit appends its take and commit records and returns without waiting for a
//! sync, which keeps `TakeTx::commit` synchronous: losing a take record in a crash only
//! makes its events come back once more, which at-least-once allows. Its records reach
//! the disk with the next put's sync, or `LAZY_SYNC_AFTER` later: a sync of their own
//! started at once made the next put wait for two.
//!
//! A failed sync is not retried (after a failed fdatasync Linux may have dropped the dirty
//! pages): the channel refuses puts until restart, and takes go on.
//!
//! A full disk is not that: it shows up when the log needs a new segment (see `segment`),
//! before anything is acknowledged, and fails the put (or leaves a take commit unlogged)
//! without harm to the log. The channel recovers as the sinks drain: take commits that
//! cannot be logged ask for a checkpoint, which records them and frees the consumed
//! segments, and the next roll reuses those (`Log::room`).
//!
//! A third task keeps a spare segment ready (created through io_uring right after each
//! roll), so rolling costs the event path a rename instead of a fallocate and two fsyncs.

use super::checkpoint::{self, Checkpoint};
use super::config::WalConfig;
use super::layout::{self, DirLock, LayoutError};
use super::log::{Log, Seg, FREE_KEEP};
use super::queue::{Queue, Span, Taken};
use super::record::{self, Record};
use super::replay::{self, SegmentInput};
use super::segment::{self, SegmentFile, HEADER_LEN};
use crate::channel::{Channel, ChannelError, TakeTx};
use crate::event::Event;
use crate::runtime::local::LocalNotify;
use crate::runtime::spin;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |e| WalError::Layout(layout::io_err(path)(e))
}

struct Inner {
    log: Log,
    queue: Queue,
    /// Open take transactions: the seqs they hold, the runs to put back on rollback, and
    /// the LSN of the oldest of their frames (the sink may still read from there).
    takes: HashMap<u64, TakeRec>,
    in_flight: usize,
    /// Put transactions appended but not yet visible (waiting for their sync): first seq,
    /// count and the LSN their frames start at. They hold capacity and a checkpoint
    /// counts them as live.
    pending: BTreeMap<u64, (u64, usize, u64)>,
    reserved: usize,
    next_seq: u64,
    next_tx: u64,
    synced_lsn: u64,
    /// The highest LSN someone waits to see synced: the syncer syncs (everything written)
    /// while it is above `synced_lsn`.
    wanted: u64,
    /// Since when something written (take records) has waited for a sync nobody asked for.
    unsynced_since: Option<Instant>,
    sync_error: Option<String>,
    /// Set when appending a take failed, so the warning is logged once, not per batch.
    take_log_failing: bool,
}

struct TakeRec {
    seqs: Vec<u64>,
    taken: Vec<Taken>,
    lowest: Option<u64>,
}

pub struct WalChannel {
    name: String,
    cfg: WalConfig,
    shard: usize,
    ckpt_dir: PathBuf,
    inner: RefCell<Inner>,
    space: LocalNotify,
    data: LocalNotify,
    synced: LocalNotify,
    wake_syncer: LocalNotify,
    stop_tasks: LocalNotify,
    /// Asks the checkpointer for a checkpoint now, to free a consumed segment for reuse.
    want_checkpoint: LocalNotify,
    /// `log.rolls` when the last such request was made: one per roll at most.
    early_checkpoint_at: Cell<u64>,
    closing: Cell<bool>,
    /// Set at the end of close: background tasks end.
    stopped: Cell<bool>,
    checkpointing: Cell<bool>,
    /// Woken when a checkpoint ends, for one waiting to start.
    checkpoint_done: LocalNotify,
    /// The preallocator's last attempt failed (a full disk): it waits for a roll or for
    /// a checkpoint to free segments.
    spare_failing: Cell<bool>,
    /// Last free-space check: when, and whether puts were allowed.
    space_check: Cell<Option<(Instant, Option<u64>)>>,
    _locks: Vec<DirLock>,
}

/// The length of the segment a fresh log starts with: small enough to zero-fill within
/// the start-up budget (a few ms), so the first appends get its faster syncs too.
const FIRST_SEGMENT: usize = 4 << 20;

/// How long a free-space reading is trusted: a statvfs per second at most, not per put.
const SPACE_CHECK_EVERY: Duration = Duration::from_millis(250);

impl WalChannel {
    /// Opens shard `shard`'s log (replaying it), adopts orphaned shard directories, writes
    /// a fresh checkpoint and starts the sync and checkpoint tasks. `cfg` is this shard's
    /// share. Must run on the shard's io_uring runtime.
    pub fn open(
        name: &str,
        cfg: &WalConfig,
        shard: usize,
        shards: usize,
    ) -> Result<Rc<WalChannel>, WalError> {
        let started = Instant::now();
        let data_dir = cfg.data_dir(shard);
        let ckpt_dir = cfg.checkpoint_dir(shard);
        let locks = vec![DirLock::acquire(&data_dir)?, DirLock::acquire(&ckpt_dir)?];
        let ckpt = match checkpoint::read(&ckpt_dir) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    channel = name,
                    shard,
                    "{e}; replaying from the segments alone"
                );
                None
            }
        };
        let Opened {
            files,
            inputs,
            last_end,
        } = open_segments(name, shard, &data_dir)?;
        let r = replay::replay(&inputs, ckpt.as_ref());
        // The whole-segment views go before the start-up checkpoint, which can keep a
        // consumed segment for reuse only when nothing else maps it.
        drop(inputs);
        report(name, shard, &r.issues);
        let mut segs = VecDeque::new();
        for (file, summary) in files.into_iter().zip(&r.segments) {
            segs.push_back(Seg::new(file, summary.max_seq).map_err(io_at(&data_dir))?);
        }
        let (pos, need_new) = match (last_end, segs.back()) {
            (Some(end), Some(_)) => (end, false),
            _ => (HEADER_LEN, true),
        };
        if need_new {
            // After the last segment, and never below the checkpoint's position: records
            // the checkpoint says it has reflected must not be written again.
            let start = segs
                .back()
                .map_or(0, |s: &Rc<Seg>| s.file.end_lsn())
                .max(ckpt.as_ref().map_or(0, |c| c.position));
            // A small first segment, zero-filled at once (see `segment::ZERO_CHUNK`): the
            // full-size spares that follow are zero-filled in the background.
            let first = FIRST_SEGMENT.min(cfg.segment_size);
            let f = SegmentFile::create(&data_dir, shard as u32, start, first, true)
                .map_err(io_at(&data_dir))?;
            segs.push_back(Seg::new(f, None).map_err(io_at(&data_dir))?);
        }
        let mut log = Log::new(data_dir.clone(), shard as u32, cfg.segment_size, segs, pos);
        log.reserve = cfg.minimum_required_space;
        if cfg.fsync_per_transaction {
            if let Err(e) = log.enable_direct() {
                tracing::info!(
                    channel = name,
                    shard,
                    "{} does not take O_DIRECT writes ({e}); writing through the page cache",
                    data_dir.display()
                );
            }
        }
        log.free =
            segment::take_free(&data_dir, cfg.segment_size, FREE_KEEP).map_err(io_at(&data_dir))?;
        let replayed = r.live.len();
        let mut queue = Queue::default();
        for (seq, e) in r.live.into_queue() {
            queue.push_one(seq, e);
        }
        let chan = Rc::new(WalChannel {
            name: name.to_string(),
            cfg: cfg.clone(),
            shard,
            ckpt_dir,
            inner: RefCell::new(Inner {
                log,
                queue,
                takes: HashMap::new(),
                in_flight: 0,
                pending: BTreeMap::new(),
                reserved: 0,
                next_seq: r.next_seq,
                next_tx: r.next_tx,
                synced_lsn: 0,
                wanted: 0,
                unsynced_since: None,
                sync_error: None,
                take_log_failing: false,
            }),
            space: LocalNotify::default(),
            data: LocalNotify::default(),
            synced: LocalNotify::default(),
            wake_syncer: LocalNotify::default(),
            stop_tasks: LocalNotify::default(),
            want_checkpoint: LocalNotify::default(),
            early_checkpoint_at: Cell::new(0),
            closing: Cell::new(false),
            stopped: Cell::new(false),
            checkpointing: Cell::new(false),
            checkpoint_done: LocalNotify::default(),
            spare_failing: Cell::new(false),
            space_check: Cell::new(None),
            _locks: locks,
        });
        let adopted = chan.adopt_orphans(shards)?;
        chan.checkpoint_blocking()?;
        let nsegs = chan.inner.borrow().log.segs.len();
        tracing::info!(
            channel = name,
            shard,
            "replayed {replayed} events{} from {} segment(s) in {:?} ({}; {} uncommitted transaction(s) discarded)",
            if adopted > 0 { format!(" and adopted {adopted} from orphaned shard directories") } else { String::new() },
            nsegs,
            started.elapsed(),
            if r.used_checkpoint { "from the checkpoint" } else { "from the segments alone" },
            r.discarded_txs,
        );
        tokio_uring::spawn(syncer(chan.clone()));
        tokio_uring::spawn(checkpointer(chan.clone()));
        tokio_uring::spawn(preallocator(chan.clone()));
        Ok(chan)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tx_capacity(&self) -> usize {
        self.cfg.transaction_capacity
    }

    pub fn len(&self) -> usize {
        self.inner.borrow().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fits(&self, n: usize) -> Result<(), ChannelError> {
        let s = self.inner.borrow();
        if s.queue.len() + s.in_flight + s.reserved + n > self.cfg.capacity {
            return Err(ChannelError::Full {
                channel: self.name.clone(),
                capacity: self.cfg.capacity,
                keep_alive_secs: self.cfg.keep_alive.as_secs(),
            });
        }
        Ok(())
    }

    async fn wait_for_space(&self, n: usize) -> Result<(), ChannelError> {
        if self.fits(n).is_ok() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.cfg.keep_alive;
        loop {
            let woken = self.space.notified();
            match self.fits(n) {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    if tokio::time::timeout_at(deadline, woken).await.is_err() {
                        return self.fits(n);
                    }
                }
            }
        }
    }

    /// With too little disk, the free segments kept for reuse are the first to go:
    /// deletes them and returns the free space left if it is still too little.
    fn give_back_free_segments(&self, dir: &Path, free: u64) -> Option<u64> {
        let pool = std::mem::take(&mut self.inner.borrow_mut().log.free);
        if pool.is_empty() {
            return Some(free);
        }
        for p in &pool {
            // Blocking, but only on this rare path, and an unlink is metadata only.
            if let Err(e) = std::fs::remove_file(p) {
                tracing::warn!(channel = %self.name, "cannot delete free segment {}: {e}", p.display());
            }
        }
        match layout::free_space(dir) {
            Ok(now) if now < self.cfg.minimum_required_space => Some(now),
            Ok(_) => None,
            Err(_) => Some(free),
        }
    }

    /// Refuses puts while the data directory's filesystem is below minimumRequiredSpace.
    fn check_space(&self) -> Result<(), ChannelError> {
        if self.cfg.minimum_required_space == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let low = match self.space_check.get() {
            Some((at, low)) if now.duration_since(at) < SPACE_CHECK_EVERY => low,
            _ => {
                let dir = self.inner.borrow().log.dir.clone();
                let low = match layout::free_space(&dir) {
                    Ok(free) if free < self.cfg.minimum_required_space => {
                        self.give_back_free_segments(&dir, free)
                    }
                    Ok(_) => None,
                    // Unknown free space must not stop the agent; the next segment
                    // creation still fails cleanly if the disk is really full.
                    Err(_) => None,
                };
                self.space_check.set(Some((now, low)));
                low
            }
        };
        match low {
            Some(free) => Err(ChannelError::DiskSpace {
                channel: self.name.clone(),
                dir: self.inner.borrow().log.dir.display().to_string(),
                free,
                required: self.cfg.minimum_required_space,
            }),
            None => Ok(()),
        }
    }

    fn log_error(&self, e: impl std::fmt::Display) -> ChannelError {
        ChannelError::Log {
            channel: self.name.clone(),
            message: e.to_string(),
        }
    }

    pub async fn put(&self, mut events: Vec<Event>) -> Result<(), (ChannelError, Vec<Event>)> {
        if events.is_empty() {
            return Ok(());
        }
        let n = events.len();
        if n > self.cfg.transaction_capacity {
            let error = ChannelError::TxTooLarge {
                channel: self.name.clone(),
                batch: n,
                capacity: self.cfg.transaction_capacity,
            };
            return Err((error, events));
        }
        if let Some(e) = &self.inner.borrow().sync_error {
            return Err((self.log_error(e), events));
        }
        if let Err(e) = self.check_space() {
            return Err((e, events));
        }
        if let Err(e) = self.wait_for_space(n).await {
            return Err((e, events));
        }
        let (tx, first, target, spans) = {
            let mut s = self.inner.borrow_mut();
            let tx = s.next_tx;
            let first = s.next_seq;
            let at = s.log.written_lsn();
            s.next_tx += 1;
            s.next_seq += n as u64;
            let queued = s.queue.len();
            let appended = s
                .log
                .append_puts(tx, first, &mut events, queued)
                .and_then(|spans| {
                    s.log.append_record(&Record::Commit { tx })?;
                    Ok(spans)
                });
            let spans = match appended {
                Ok(spans) => spans,
                Err(e) => {
                    // Best effort: replay would discard the open transaction anyway.
                    let _ = s.log.append_record(&Record::Rollback {
                        tx,
                        first,
                        count: 0,
                    });
                    return Err((self.log_error(e), events));
                }
            };
            s.reserved += n;
            s.pending.insert(tx, (first, n, at));
            (tx, first, s.log.written_lsn(), spans)
        };
        let mut guard = Pending {
            chan: self,
            tx,
            first,
            events: Some((events, spans)),
        };
        if self.cfg.fsync_per_transaction {
            if let Err(e) = self.wait_synced(target).await {
                let events = guard.events.take().map(|(e, _)| e).unwrap_or_default();
                let mut s = self.inner.borrow_mut();
                s.reserved -= n;
                s.pending.remove(&tx);
                // So a replay does not deliver what the source was told failed.
                let _ = s.log.append_record(&Record::Rollback {
                    tx,
                    first,
                    count: n as u32,
                });
                drop(s);
                self.space.notify_all();
                return Err((self.log_error(e), events));
            }
        }
        guard.publish();
        Ok(())
    }

    /// Resolves once everything appended so far is on disk, take records included (a
    /// take commit does not wait for that; see the module comment).
    pub async fn flush(&self) -> Result<(), String> {
        let target = self.inner.borrow().log.written_lsn();
        self.wait_synced(target).await
    }

    /// Whether a sync covers every record written so far.
    #[cfg(test)]
    pub fn is_synced(&self) -> bool {
        let s = self.inner.borrow();
        s.synced_lsn >= s.log.written_lsn()
    }

    /// Resolves once a sync covers `target` (or with the sync's error).
    async fn wait_synced(&self, target: u64) -> Result<(), String> {
        loop {
            let woken = self.synced.notified();
            {
                let mut s = self.inner.borrow_mut();
                if s.synced_lsn >= target {
                    return Ok(());
                }
                if let Some(e) = &s.sync_error {
                    return Err(e.clone());
                }
                s.wanted = s.wanted.max(target);
            }
            self.wake_syncer.notify_all();
            woken.await;
        }
    }

    fn publish(&self, tx: u64, first: u64, events: Vec<Event>, spans: Vec<Span>) {
        let mut s = self.inner.borrow_mut();
        s.reserved -= events.len();
        s.pending.remove(&tx);
        // Puts synced by one group commit wake in any order; the queue puts a late one
        // before the later seqs already queued, so its front stays the oldest page
        // anyone still reads (`trim_bound`).
        s.queue.push_batch(first, events, spans);
        drop(s);
        self.data.notify_all();
    }

    /// The LSN below which no one reads the log any more: the oldest of the queue's
    /// front, the open takes and the puts waiting for their sync; `None` (everything
    /// written) when none of them holds a page.
    fn trim_bound(s: &Inner) -> Option<u64> {
        let front = s.queue.front_ptr().and_then(|p| s.log.lsn_of(p));
        let taken = s.takes.values().filter_map(|t| t.lowest);
        let pending = s.pending.values().map(|p| p.2);
        front.into_iter().chain(taken).chain(pending).min()
    }

    pub fn take_from(self: &Rc<Self>, max: usize) -> TakeTx {
        let mut s = self.inner.borrow_mut();
        let n = max.min(self.cfg.transaction_capacity).min(s.queue.len());
        if n == 0 {
            drop(s);
            return TakeTx::new(Vec::new(), Channel::Wal(self.clone()));
        }
        let tx = s.next_tx;
        s.next_tx += 1;
        let lowest = s.queue.front_ptr().and_then(|p| s.log.lsn_of(p));
        let (seqs, events, taken) = s.queue.take(n);
        s.takes.insert(
            tx,
            TakeRec {
                seqs,
                taken,
                lowest,
            },
        );
        s.in_flight += n;
        drop(s);
        TakeTx::with_tx(events, Channel::Wal(self.clone()), tx)
    }

    /// Events a put could add now (by count; disk space may still refuse them).
    pub fn room(&self) -> usize {
        let s = self.inner.borrow();
        self.cfg
            .capacity
            .saturating_sub(s.queue.len() + s.in_flight + s.reserved)
    }

    pub(crate) fn commit_take(&self, tx: u64) {
        let mut s = self.inner.borrow_mut();
        let Some(TakeRec { seqs, .. }) = s.takes.remove(&tx) else {
            return;
        };
        s.in_flight -= seqs.len();
        let runs = record::runs(&seqs);
        let logged = s
            .log
            .append_record(&Record::Take { tx, runs })
            .and_then(|()| s.log.append_record(&Record::Commit { tx }));
        match logged {
            Ok(()) => {
                if std::mem::take(&mut s.take_log_failing) {
                    tracing::info!(channel = %self.name, shard = self.shard, "take commits are logged again");
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut s.take_log_failing, true) {
                    tracing::warn!(channel = %self.name, shard = self.shard, "cannot log take commits ({e}); recording them with checkpoints until the log can roll again");
                }
                // The log is full and cannot roll (no disk for a new segment): a
                // checkpoint records the take instead (its events are no longer live in
                // it), so a restart does not deliver a drained backlog again. It also
                // frees the segments the sinks have consumed, which lets the log roll.
                self.want_checkpoint.notify_all();
            }
        }
        // Its records reach the disk with the next sync, or after `LAZY_SYNC_AFTER`.
        self.wake_syncer.notify_all();
        let bound = Self::trim_bound(&s);
        s.log.trim_consumed(bound);
        // The oldest segment is all read: a checkpoint now frees it for the next spare,
        // rather than a new file's worth of page cache being allocated (see `segment`).
        if s.log.rolls > self.early_checkpoint_at.get() && s.log.oldest_consumed(bound) {
            self.early_checkpoint_at.set(s.log.rolls);
            self.want_checkpoint.notify_all();
        }
        drop(s);
        self.space.notify_all();
    }

    pub(crate) fn rollback_take(&self, tx: u64, events: Vec<Event>) {
        let mut s = self.inner.borrow_mut();
        let Some(TakeRec { seqs, taken, .. }) = s.takes.remove(&tx) else {
            return;
        };
        s.in_flight -= seqs.len();
        s.queue.put_back(taken, events);
        drop(s);
        self.data.notify_all();
    }

    pub async fn wait_for_data(&self) {
        let woken = self.data.notified();
        if self.is_empty() {
            woken.await;
        }
    }

    /// The state a checkpoint records now, and the smallest live seq.
    fn snapshot(&self) -> (Checkpoint, u64) {
        let s = self.inner.borrow();
        let mut ranges: Vec<(u64, u64)> = s.queue.seq_runs().collect();
        for t in s.takes.values() {
            ranges.extend(
                record::runs(&t.seqs)
                    .iter()
                    .map(|&(f, n)| (f, u64::from(n))),
            );
        }
        for &(first, n, _) in s.pending.values() {
            ranges.push((first, n as u64));
        }
        let live = record::merge_runs(ranges);
        let min_live = live.first().map_or(s.next_seq, |r| r.0);
        let c = Checkpoint {
            shard: self.shard as u32,
            written_at_ms: crate::runtime::clock::now_millis(),
            position: s.log.written_lsn(),
            next_seq: s.next_seq,
            next_tx: s.next_tx,
            segments: s.log.segment_infos(),
            live,
        };
        (c, min_live)
    }

    /// Start-up checkpoint: blocking, before the shard reports ready. Consumed segments it
    /// finds are kept for reuse or deleted as `checkpoint` does.
    fn checkpoint_blocking(&self) -> Result<(), WalError> {
        let dir = self.inner.borrow().log.dir.clone();
        self.inner
            .borrow_mut()
            .log
            .sync_blocking()
            .map_err(io_at(&dir))?;
        let (c, min_live) = self.snapshot();
        self.inner.borrow_mut().synced_lsn = c.position;
        checkpoint::write_blocking(&self.ckpt_dir, &c)?;
        let gone = self
            .inner
            .borrow_mut()
            .log
            .drop_consumed(c.position, min_live);
        let mut kept = Vec::new();
        for (path, free) in self.disposal(gone) {
            if let Some(to) = free {
                match std::fs::rename(&path, &to) {
                    Ok(()) => {
                        kept.push(to);
                        continue;
                    }
                    Err(e) => self.not_kept(&path, e),
                }
            }
            std::fs::remove_file(&path).map_err(io_at(&path))?;
        }
        if !kept.is_empty() {
            // As in `checkpoint`: reused only once the rename is durable.
            segment::sync_dir(&dir).map_err(io_at(&dir))?;
            self.inner.borrow_mut().log.free.extend(kept);
        }
        Ok(())
    }

    /// What becomes of the consumed segments a checkpoint gives up: each one's path, and
    /// the free segment name it is kept under for reuse (while fewer than `FREE_KEEP` are
    /// kept), else `None` for deletion. Their mappings are gone when this returns.
    fn disposal(&self, gone: Vec<Rc<Seg>>) -> Vec<(PathBuf, Option<PathBuf>)> {
        let (dir, mut keeping) = {
            let s = self.inner.borrow();
            (s.log.dir.clone(), s.log.free.len())
        };
        gone.into_iter()
            .map(|seg| {
                let keep = keeping < FREE_KEEP && seg.reusable(self.cfg.segment_size);
                keeping += usize::from(keep);
                let free = keep.then(|| dir.join(segment::free_name(seg.file.start)));
                (seg.file.path.clone(), free)
            })
            .collect()
    }

    fn not_kept(&self, path: &Path, e: std::io::Error) {
        tracing::warn!(channel = %self.name, "cannot keep consumed segment {} for reuse: {e}", path.display());
    }

    /// Writes a checkpoint: snapshot, sync the log up to it, write the file atomically,
    /// then give up the segments it made unnecessary: kept as free segments for reuse
    /// (see `segment`), up to `FREE_KEEP`, else deleted.
    pub async fn checkpoint(&self) -> Result<(), String> {
        // One at a time, and one that starts after the call: a caller (close, a test)
        // must not return on a checkpoint whose snapshot predates it.
        loop {
            let done = self.checkpoint_done.notified();
            if !self.checkpointing.replace(true) {
                break;
            }
            done.await;
        }
        let result = async {
            let (c, min_live) = self.snapshot();
            self.wait_synced(c.position).await?;
            checkpoint::write_async(&self.ckpt_dir, &c)
                .await
                .map_err(|e| e.to_string())?;
            let gone = self.inner.borrow_mut().log.drop_consumed(c.position, min_live);
            let dir = self.inner.borrow().log.dir.clone();
            let mut kept = Vec::new();
            for (path, free) in self.disposal(gone) {
                if let Some(to) = free {
                    match tokio_uring::fs::rename(&path, &to).await {
                        Ok(()) => {
                            kept.push(to);
                            continue;
                        }
                        Err(e) => self.not_kept(&path, e),
                    }
                }
                if let Err(e) = tokio_uring::fs::remove_file(&path).await {
                    tracing::warn!(channel = %self.name, "cannot delete consumed segment {}: {e}", path.display());
                }
            }
            if !kept.is_empty() {
                // A free segment may be reused only once its old name is gone for good, so
                // a crash never finds a segment under a name its new header contradicts.
                sync_dir(&dir).await.map_err(|e| e.to_string())?;
                let want_spare = {
                    let mut s = self.inner.borrow_mut();
                    s.log.free.extend(kept);
                    s.log.want_spare.clone()
                };
                // A preallocator that failed (a full disk) waits for this: the space it
                // lacked may be these segments.
                want_spare.notify_all();
            }
            Ok(())
        }
        .await;
        self.checkpointing.set(false);
        self.checkpoint_done.notify_all();
        result
    }

    /// Clean close: waits for outstanding syncs, checkpoints (checkpointOnClose) and stops
    /// the background tasks. Events still queued stay in the log for the next start.
    pub async fn close(&self) {
        if self.closing.replace(true) {
            return;
        }
        let written = self.inner.borrow().log.written_lsn();
        let r = if self.cfg.checkpoint_on_close {
            self.checkpoint().await
        } else {
            self.wait_synced(written).await
        };
        if let Err(e) = r {
            tracing::warn!(channel = %self.name, shard = self.shard, "close: {e}");
        }
        self.stopped.set(true);
        self.stop_tasks.notify_all();
        self.wake_syncer.notify_all();
        let want_spare = self.inner.borrow().log.want_spare.clone();
        want_spare.notify_all();
        let spare = self.inner.borrow_mut().log.spare.take();
        if let Some((f, _)) = spare {
            let _ = tokio_uring::fs::remove_file(&f.path).await;
        }
    }

    /// Whether the next segment is ready ahead of time.
    pub fn spare_ready(&self) -> bool {
        self.inner.borrow().log.spare.is_some()
    }

    /// Direct appends' chunk size, memory budget and queue bound, smaller (tests); false
    /// when the log appends through the page cache.
    #[cfg(test)]
    pub fn set_direct_limits(&self, chunk: usize, budget: usize, ahead: usize) -> bool {
        let mut s = self.inner.borrow_mut();
        let d = s.log.direct.as_mut();
        d.map(|d| d.set_limits(chunk, budget, ahead)).is_some()
    }

    /// Whether the preallocator failed to make the next segment and waits (see
    /// `spare_failing`).
    #[cfg(test)]
    pub fn spare_failing(&self) -> bool {
        self.spare_failing.get()
    }

    /// Whether the log appends with direct I/O (see `direct`).
    #[cfg(test)]
    pub fn appends_direct(&self) -> bool {
        self.inner.borrow().log.direct.is_some()
    }

    /// The bytes of chunks the shard keeps for reuse (see `direct`).
    #[cfg(test)]
    pub fn pooled_chunks(&self) -> usize {
        super::direct::pooled()
    }

    /// Whether the queue's oldest event is read from the log's mapping (else from
    /// memory, or the queue is empty).
    #[cfg(test)]
    pub fn front_in_mapping(&self) -> bool {
        let s = self.inner.borrow();
        s.queue.front_ptr().and_then(|p| s.log.lsn_of(p)).is_some()
    }

    /// Rolls so far that found no spare ready and created the segment on the loop.
    pub fn blocking_rolls(&self) -> u64 {
        self.inner.borrow().log.blocking_rolls
    }

    /// Moves the live events of orphaned shard directories this shard adopts into its own
    /// log (synced), then deletes the orphans. Returns how many events it adopted.
    fn adopt_orphans(&self, shards: usize) -> Result<usize, WalError> {
        let mut total = 0;
        for o in layout::orphans(&self.cfg, shards) {
            if o.adopter != self.shard {
                continue;
            }
            let lock = DirLock::acquire(&o.dir)?;
            // Segments alone replay exactly; the orphan's checkpoint may not even match.
            let opened = open_segments(&self.name, o.shard, &o.dir)?;
            let r = replay::replay(&opened.inputs, None);
            report(&self.name, o.shard, &r.issues);
            let events: Vec<Event> = r.live.into_values().collect();
            let n = events.len();
            let mut s = self.inner.borrow_mut();
            let dir = s.log.dir.clone();
            for chunk in events.chunks(self.cfg.transaction_capacity.max(1)) {
                let mut batch = chunk.to_vec();
                let tx = s.next_tx;
                let first = s.next_seq;
                s.next_tx += 1;
                s.next_seq += batch.len() as u64;
                let spans = s
                    .log
                    .append_puts(tx, first, &mut batch, usize::MAX)
                    .map_err(io_at(&dir))?;
                s.log
                    .append_record(&Record::Commit { tx })
                    .map_err(io_at(&dir))?;
                s.queue.push_batch(first, batch, spans);
            }
            s.log.sync_blocking().map_err(io_at(&dir))?;
            drop(s);
            drop(opened);
            drop(lock);
            std::fs::remove_dir_all(&o.dir).map_err(io_at(&o.dir))?;
            if o.shard >= shards {
                let ck = self.cfg.checkpoint_dir(o.shard);
                if ck.exists() {
                    std::fs::remove_dir_all(&ck).map_err(io_at(&ck))?;
                }
            }
            tracing::info!(channel = %self.name, shard = self.shard, "adopted {n} events from orphaned {}", o.dir.display());
            total += n;
        }
        Ok(total)
    }
}

/// A put whose records are in the log: if its future is dropped before it publishes, the
/// events are published anyway, since the log already holds them committed.
struct Pending<'a> {
    chan: &'a WalChannel,
    tx: u64,
    first: u64,
    events: Option<(Vec<Event>, Vec<Span>)>,
}

impl Pending<'_> {
    fn publish(&mut self) {
        if let Some((events, spans)) = self.events.take() {
            self.chan.publish(self.tx, self.first, events, spans);
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.publish();
    }
}

/// The group-commit task: whenever frames were appended past the synced point and someone
/// waits (or, without fsyncPerTransaction, every fsyncInterval), one fdatasync per dirty
/// segment covers all of them.
async fn syncer(chan: Rc<WalChannel>) {
    loop {
        let woken = chan.wake_syncer.notified();
        let (work, lazy) = {
            let mut s = chan.inner.borrow_mut();
            let written = s.log.written_lsn();
            let unsynced = written > s.synced_lsn && s.sync_error.is_none();
            let work = (unsynced && s.wanted > s.synced_lsn).then(|| {
                s.unsynced_since = None;
                (written, s.log.sync_targets())
            });
            let lazy = (unsynced && work.is_none())
                .then(|| *s.unsynced_since.get_or_insert_with(Instant::now));
            (work, lazy)
        };
        if let Some((upto, targets)) = work {
            let syncing = spin::syncing();
            let mut failed = None;
            if let Some((disk, flush)) = targets.direct {
                if let Err(e) = disk.flush(flush).await {
                    failed = Some(format!("{e}; the channel refuses puts until restart"));
                }
            }
            if failed.is_none() {
                for seg in &targets.segs {
                    if let Err(e) = seg.uring.sync_data().await {
                        failed = Some(format!(
                            "fdatasync of {} failed: {e}; the channel refuses puts until restart",
                            seg.file.path.display()
                        ));
                        break;
                    }
                }
            }
            if let (None, Some(dir)) = (&failed, &targets.dir) {
                if let Err(e) = sync_dir(dir).await {
                    failed = Some(format!(
                        "fsync of directory {} failed: {e}; the channel refuses puts until restart",
                        dir.display()
                    ));
                }
            }
            drop(syncing);
            let mut s = chan.inner.borrow_mut();
            match failed {
                Some(e) => {
                    tracing::error!(channel = %chan.name, shard = chan.shard, "{e}");
                    s.sync_error = Some(e);
                }
                None => s.synced_lsn = s.synced_lsn.max(upto),
            }
            drop(s);
            chan.synced.notify_all();
            continue;
        }
        if chan.stopped.get() {
            return;
        }
        // Unless someone waits, what is written is synced after a while: take records
        // soon (a crash before that delivers their events again), puts without
        // fsyncPerTransaction every fsyncInterval.
        // The deadline counts from when the data was first seen unsynced, so that the
        // wake-ups of take commits do not push it back.
        let after = match (chan.cfg.fsync_per_transaction, lazy) {
            (true, None) => None,
            (true, Some(since)) => Some(since + LAZY_SYNC_AFTER),
            (false, since) => Some(since.unwrap_or_else(Instant::now) + chan.cfg.fsync_interval),
        };
        match after {
            None => woken.await,
            Some(at) => tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(at.into()) => {
                    let mut s = chan.inner.borrow_mut();
                    s.wanted = s.log.written_lsn();
                }
            },
        }
    }
}

/// How long take records wait for a put's sync to cover them before they get their own.
const LAZY_SYNC_AFTER: Duration = Duration::from_millis(1);

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let d = tokio_uring::fs::File::open(dir).await?;
    let r = d.sync_all().await;
    let _ = d.close().await;
    r
}

/// Keeps a spare segment ready for the next roll: makes one whenever there is none (at
/// start and after each roll), through io_uring, so the shard's loop goes on serving. A
/// failure (a full disk) is logged and left to the roll itself, which then creates the
/// segment on the loop and reports its error to the put, as without a spare.
async fn preallocator(chan: Rc<WalChannel>) {
    let want = chan.inner.borrow().log.want_spare.clone();
    loop {
        let woken = want.notified();
        if chan.stopped.get() {
            return;
        }
        let job = {
            let mut s = chan.inner.borrow_mut();
            let free = s.log.spare.is_none().then(|| s.log.free.pop()).flatten();
            s.log.spare.is_none().then(|| {
                (
                    s.log.dir.clone(),
                    s.log.shard,
                    s.log.active().file.end_lsn(),
                    s.log.segment_size,
                    s.log.zero_spares(),
                    free,
                )
            })
        };
        if let Some((dir, shard, start, size, zero, free)) = job {
            let create = || async {
                chan.inner.borrow().log.check_room_for_new_segment()?;
                let spare = SegmentFile::create_spare(&dir, shard, start, size, zero).await?;
                // A roll that found no spare ready may have made a segment meanwhile,
                // from the same free space: the spare then gives its room back rather
                // than take the disk below minimumRequiredSpace.
                let left = chan.inner.borrow().log.check_room_left();
                if let Err(e) = left {
                    let path = spare.0.path.clone();
                    drop(spare);
                    let _ = tokio_uring::fs::remove_file(&path).await;
                    return Err(e);
                }
                Ok(spare)
            };
            let made = match free {
                Some(from) => {
                    match SegmentFile::reuse_as_spare(&dir, &from, shard, start, size).await {
                        Ok(spare) => Ok(spare),
                        Err(e) => {
                            tracing::warn!(channel = %chan.name, shard = chan.shard, "cannot reuse free segment {} ({e}); making a new one", from.display());
                            create().await
                        }
                    }
                }
                None => create().await,
            };
            match made {
                Ok(spare) => {
                    chan.spare_failing.set(false);
                    let unused = {
                        let mut s = chan.inner.borrow_mut();
                        let current = s.log.active().file.end_lsn() == start && !chan.stopped.get();
                        if current && s.log.spare.is_none() {
                            s.log.spare = Some(spare);
                            None
                        } else {
                            Some(spare)
                        }
                    };
                    // The log rolled past it meanwhile (a blocking roll) or is closing.
                    // Rolled past: it goes back to the free segments, since on a full disk
                    // it may be the only room there is (both names are outside the log,
                    // so the rename needs no directory sync).
                    if let Some((f, uring)) = unused {
                        let keep =
                            !chan.stopped.get() && chan.inner.borrow().log.free.len() < FREE_KEEP;
                        let to = dir.join(segment::free_name(f.start));
                        let path = f.path.clone();
                        drop((f, uring));
                        if keep && tokio_uring::fs::rename(&path, &to).await.is_ok() {
                            chan.inner.borrow_mut().log.free.push(to);
                        } else {
                            let _ = tokio_uring::fs::remove_file(&path).await;
                        }
                    }
                    continue;
                }
                Err(e) if !chan.spare_failing.get() => {
                    chan.spare_failing.set(true);
                    tracing::warn!(channel = %chan.name, shard = chan.shard, "cannot make the next segment ahead of time ({e}); it will be created when needed");
                }
                Err(_) => {}
            }
        }
        woken.await;
    }
}

/// Checkpoints every checkpointInterval, and early when a consumed segment can be freed
/// for reuse or a take commit could not be logged (see `commit_take`), until the channel
/// closes.
async fn checkpointer(chan: Rc<WalChannel>) {
    let mut early = chan.want_checkpoint.notified();
    let mut failing = false;
    loop {
        let stop = chan.stop_tasks.notified();
        if chan.stopped.get() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(chan.cfg.checkpoint_interval) => {}
            _ = stop => {}
            _ = early => {}
        }
        if chan.closing.get() {
            return;
        }
        // Armed before the checkpoint runs, so a request made during it is not lost.
        early = chan.want_checkpoint.notified();
        // Logged once per failing spell: on a full disk every take commit asks for one.
        match chan.checkpoint().await {
            Ok(()) if std::mem::take(&mut failing) => {
                tracing::info!(channel = %chan.name, shard = chan.shard, "checkpoints succeed again");
            }
            Ok(()) => {}
            Err(e) if !std::mem::replace(&mut failing, true) => {
                tracing::warn!(channel = %chan.name, shard = chan.shard, "checkpoint failed: {e}");
            }
            Err(e) => {
                tracing::debug!(channel = %chan.name, shard = chan.shard, "checkpoint failed: {e}")
            }
        }
    }
}

struct Opened {
    files: Vec<SegmentFile>,
    inputs: Vec<SegmentInput>,
    /// Where the last segment's valid data ends (the writer resumes there).
    last_end: Option<usize>,
}

/// Opens and maps a shard directory's segments for replay. A torn tail of the last
/// segment is reported and zeroed, so the writer can append over it; a last segment whose
/// creation was interrupted (header never written) is removed.
fn open_segments(name: &str, shard: usize, dir: &Path) -> Result<Opened, WalError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    segment::remove_spares(dir).map_err(io_at(dir))?;
    let mut list = segment::list(dir).map_err(io_at(dir))?;
    if let Some((start, path)) = list.last() {
        let f = SegmentFile::open(path, *start).map_err(io_at(path))?;
        // SAFETY: nothing writes to this mapping yet.
        let unwritten = unsafe { f.bytes() }[..HEADER_LEN.min(f.len())]
            .iter()
            .all(|&b| b == 0);
        if unwritten {
            tracing::warn!(
                channel = name,
                shard,
                "removing {}: its creation was interrupted before anything was written to it",
                path.display()
            );
            std::fs::remove_file(path).map_err(io_at(path))?;
            list.pop();
        }
    }
    let mut files = Vec::with_capacity(list.len());
    let mut inputs = Vec::with_capacity(list.len());
    let mut last_end = None;
    let count = list.len();
    for (i, (start, path)) in list.into_iter().enumerate() {
        let f = SegmentFile::open(&path, start).map_err(io_at(&path))?;
        let name_s = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut len = f.len();
        // SAFETY: nothing writes to this mapping yet.
        let header = segment::check_header(unsafe { f.bytes() });
        if let (true, Ok((_, framing))) = (i + 1 == count, header) {
            let (end, torn) = {
                // SAFETY: as above.
                let data = unsafe { f.bytes() };
                let mut scan = record::Scanner::new(data, HEADER_LEN, framing);
                let mut torn = None;
                for item in scan.by_ref() {
                    if let record::Item::Damaged {
                        offset,
                        len,
                        tail: true,
                        reason,
                    } = item
                    {
                        torn = Some((offset, len, reason));
                    }
                }
                (scan.end(), torn)
            };
            if let Some((offset, tlen, reason)) = torn {
                tracing::warn!(channel = name, shard, "segment {name_s} offset {offset}: torn tail ({reason}, {tlen} bytes) truncated; transactions it held were never acknowledged");
                // SAFETY: no slice of this mapping is alive; the region is in range.
                unsafe { f.region_mut(offset, tlen) }.fill(0);
                f.sync_blocking().map_err(io_at(&path))?;
            }
            len = end;
            // A version 1 segment is not appended to: the log goes on in a new one.
            last_end = (framing != record::Framing::V1).then_some(end);
        }
        inputs.push(SegmentInput {
            start,
            name: name_s,
            data: segment::map_bytes(&f.map, 0, len),
        });
        files.push(f);
    }
    Ok(Opened {
        files,
        inputs,
        last_end,
    })
}

fn report(name: &str, shard: usize, issues: &[replay::Issue]) {
    const MAX: usize = 50;
    for i in issues.iter().take(MAX) {
        tracing::warn!(channel = name, shard, "replay: {i}");
    }
    if issues.len() > MAX {
        tracing::warn!(
            channel = name,
            shard,
            "replay: {} more issues not shown; run `flume-fast channel verify` on the data directory",
            issues.len() - MAX
        );
    }
}
