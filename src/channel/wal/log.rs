//! The append side of one shard's log: the list of open segments (the last one is
//! active), appending frames to the active segment, rolling to the next segment when it
//! is full (the spare made ahead of time when there is one, else a blocking creation),
//! handing out what a group sync must cover, and giving up the consumed prefix after a
//! checkpoint (kept as free segments for reuse, see `segment`). Single-threaded; the
//! channel owns it.
//!
//! Frames are encoded into a staging buffer and written with `pwrite`, not stored through
//! the mapping (which is only read). A page dirtied through a shared mapping must be
//! write-protected again when fdatasync writes it back, and every first store to a page
//! takes a fault: on ext4 here an mmap store + fdatasync of 12.8 KB took 544 µs against
//! 283 µs for pwrite + fdatasync of the same bytes (128 KB: 609 µs against 352 µs). The
//! page cache is shared, so the mapping sees what was written at once.

use super::queue::Span;
use super::record::{self, Record};
use super::segment::{self, SegmentFile, HEADER_LEN, PAGE};
use crate::channel::LocalNotify;
use crate::event::{Body, Event};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::rc::Rc;

pub struct Seg {
    pub file: SegmentFile,
    /// A dup of the file's descriptor for io_uring's fdatasync.
    pub uring: tokio_uring::fs::File,
    /// Highest put seq appended to or replayed from this segment.
    pub max_seq: Cell<Option<u64>>,
    /// Offset below which this process's mapping has been trimmed (`Log::trim_consumed`).
    trimmed: Cell<usize>,
}

impl Seg {
    pub fn new(file: SegmentFile, max_seq: Option<u64>) -> io::Result<Rc<Seg>> {
        let uring = tokio_uring::fs::File::from_std(file.file.try_clone()?);
        Ok(Seg::with_uring(file, uring, max_seq))
    }

    fn with_uring(
        file: SegmentFile,
        uring: tokio_uring::fs::File,
        max_seq: Option<u64>,
    ) -> Rc<Seg> {
        Rc::new(Seg {
            file,
            uring,
            max_seq: Cell::new(max_seq),
            trimmed: Cell::new(0),
        })
    }

    /// Whether this segment can be reused for a log of `segment_size` segments: it has
    /// that size and no body read from it is still alive anywhere.
    pub fn reusable(&self, segment_size: usize) -> bool {
        self.file.len() == segment_size && std::sync::Arc::strong_count(&self.file.map) == 1
    }

    fn saw_seq(&self, seq: u64) {
        self.max_seq
            .set(Some(self.max_seq.get().map_or(seq, |m| m.max(seq))));
    }
}

pub struct Log {
    pub dir: PathBuf,
    pub shard: u32,
    pub segment_size: usize,
    /// Oldest first; never empty; the last is being appended to.
    pub segs: VecDeque<Rc<Seg>>,
    /// Write offset in the active segment.
    pub pos: usize,
    /// Segments rolled away from that still hold unsynced frames.
    dirty: Vec<Rc<Seg>>,
    /// The next segment, made ahead of need (see `segment::SegmentFile::create_spare`).
    pub spare: Option<(SegmentFile, tokio_uring::fs::File)>,
    /// Woken when the log rolled, so the next spare gets made.
    pub want_spare: Rc<LocalNotify>,
    /// A spare was renamed into the log since the last sync: the directory needs one.
    dir_dirty: bool,
    /// Rolls that had no spare ready and created the segment on the loop (blocking).
    pub blocking_rolls: u64,
    /// Put frames encoded for one `pwrite` (kept for its capacity).
    stage: Vec<u8>,
    /// When the active segment became active, and how fast (bytes/s) the one before it
    /// was filled: what `zero_spares` goes by.
    active_since: std::time::Instant,
    fill_rate: Option<u64>,
    /// Consumed segment files kept for reuse as spares (at most `FREE_KEEP`).
    pub free: Vec<PathBuf>,
    /// Rolls so far (the channel checkpoints early when one leaves a consumed segment).
    pub rolls: u64,
}

/// Free segments a shard keeps for reuse; more are deleted. One is used per roll and a
/// checkpoint after each roll frees about one, so two cover a sink that keeps up; a
/// backlog drained all at once frees more than reuse needs.
pub const FREE_KEEP: usize = 2;

/// Below this fill rate (bytes/s) spares are zero-filled (see `segment::ZERO_CHUNK`).
const ZERO_FILL_BELOW: u64 = 64 << 20;

const TRIM_STEP: usize = 4 << 20;

/// How far below the last trim a trim starts again. A read fault maps the cached pages
/// of an aligned window around the faulting one (fault-around, 64 KiB by default), some
/// of them before it, so the first read past a trim maps part of the trimmed range
/// again; the slack leaves room for larger windows.
const REFAULT_SLACK: usize = 2 << 20;

/// Staging capacity kept between appends; a larger batch's buffer is freed after use.
const STAGE_KEEP: usize = 4 << 20;

/// What one group sync must cover.
pub struct SyncTargets {
    pub segs: Vec<Rc<Seg>>,
    pub dir: Option<PathBuf>,
}

impl Log {
    pub fn new(
        dir: PathBuf,
        shard: u32,
        segment_size: usize,
        segs: VecDeque<Rc<Seg>>,
        pos: usize,
    ) -> Log {
        assert!(!segs.is_empty());
        Log {
            dir,
            shard,
            segment_size,
            segs,
            pos,
            dirty: Vec::new(),
            spare: None,
            want_spare: Rc::new(LocalNotify::default()),
            dir_dirty: false,
            blocking_rolls: 0,
            stage: Vec::new(),
            active_since: std::time::Instant::now(),
            fill_rate: None,
            free: Vec::new(),
            rolls: 0,
        }
    }

    /// Whether the next spare should be zero-filled: while the log fills segments slower
    /// than `ZERO_FILL_BELOW` (or has not filled one yet), the journal commit each sync
    /// saves is worth more than the segment's worth of writes zero-filling costs.
    pub fn zero_spares(&self) -> bool {
        self.fill_rate.is_none_or(|r| r < ZERO_FILL_BELOW)
    }

    pub fn active(&self) -> &Rc<Seg> {
        self.segs.back().expect("a log always has a segment")
    }

    /// The LSN the next frame will be written at.
    pub fn written_lsn(&self) -> u64 {
        self.active().file.start + self.pos as u64
    }

    /// Makes room for a frame of `n` bytes, rolling to a new segment when needed.
    fn room(&mut self, n: usize) -> io::Result<()> {
        if self.pos + n <= self.active().file.len() {
            return Ok(());
        }
        if HEADER_LEN + n > self.segment_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a record of {n} bytes does not fit in a segment (maxFileSize = {})",
                    self.segment_size
                ),
            ));
        }
        let start = self.active().file.end_lsn();
        let seg = match self.spare.take() {
            Some((mut f, uring)) if f.start == start && f.len() == self.segment_size => {
                match f.activate(&self.dir) {
                    Ok(()) => {
                        self.dir_dirty = true;
                        Some(Seg::with_uring(f, uring, None))
                    }
                    Err(_) => {
                        // Made no difference to the log: fall back to creating it here.
                        let _ = std::fs::remove_file(&f.path);
                        None
                    }
                }
            }
            other => {
                if let Some((f, _)) = other {
                    let _ = std::fs::remove_file(&f.path);
                }
                None
            }
        };
        let seg = match seg {
            Some(s) => s,
            None => {
                self.blocking_rolls += 1;
                // On the loop: no zero-filling here, it would stall every connection.
                let file =
                    SegmentFile::create(&self.dir, self.shard, start, self.segment_size, false)?;
                Seg::new(file, None)?
            }
        };
        let now = std::time::Instant::now();
        self.fill_rate = Some(
            (self.active().file.len() as f64 / (now - self.active_since).as_secs_f64().max(1e-6))
                as u64,
        );
        self.active_since = now;
        self.rolls += 1;
        self.want_spare.notify_all();
        let old = self.active().clone();
        self.dirty.push(old);
        self.segs.push_back(seg);
        self.pos = HEADER_LEN;
        Ok(())
    }

    pub fn append_record(&mut self, r: &Record) -> io::Result<()> {
        let payload = record::small_payload(r);
        self.room(record::frame_len(payload.len()))?;
        let frame = record::frame(&payload, self.written_lsn());
        self.active()
            .file
            .file
            .write_all_at(&frame, self.pos as u64)?;
        self.pos += frame.len();
        Ok(())
    }

    /// Appends one put record per event (seqs `first..`), then re-points each event's
    /// body at its copy in the mapping, so the queue holds page cache rather than the
    /// source's receive buffers.
    ///
    /// On an error the frames of the failed run are not in the log and `pos` is where they
    /// would have started; the caller rolls the transaction back.
    pub fn append_puts(
        &mut self,
        tx: u64,
        first: u64,
        events: &mut [Event],
    ) -> io::Result<Vec<Span>> {
        let mut stage = std::mem::take(&mut self.stage);
        let mut spans = Vec::with_capacity(1);
        let r = self
            .append_puts_via(&mut stage, tx, first, events, &mut spans)
            .map(|()| spans);
        stage.clear();
        if stage.capacity() <= STAGE_KEEP {
            self.stage = stage;
        }
        r
    }

    fn append_puts_via(
        &mut self,
        stage: &mut Vec<u8>,
        tx: u64,
        first: u64,
        events: &mut [Event],
        spans: &mut Vec<Span>,
    ) -> io::Result<()> {
        // (index, body offset) of the events staged for the current segment.
        let mut placed: Vec<(usize, usize)> = Vec::with_capacity(events.len());
        let mut run_start = self.pos;
        let mut run_seg = self.active().clone();
        stage.clear();
        for i in 0..events.len() {
            let n = record::frame_len(record::put_payload_len(&events[i]));
            if let Err(e) = self.room(n) {
                // No roll happened: the staged run was never written.
                self.pos = run_start;
                return Err(e);
            }
            if !Rc::ptr_eq(&run_seg, self.active()) {
                // Rolled: the run so far belongs to the previous segment. Should writing it
                // fail, that segment just ends early (zeros); nothing of it is committed.
                run_seg.file.file.write_all_at(stage, run_start as u64)?;
                spans.extend(repoint(&run_seg, run_start, &placed, events));
                placed.clear();
                stage.clear();
                run_seg = self.active().clone();
                run_start = self.pos;
            }
            let seq = first + i as u64;
            let at = stage.len();
            stage.resize(at + n, 0);
            let lsn = self.written_lsn();
            let (len, body_at) = record::encode_put(&mut stage[at..], lsn, tx, seq, &events[i]);
            placed.push((i, self.pos + body_at));
            self.pos += len;
            self.active().saw_seq(seq);
        }
        if let Err(e) = run_seg.file.file.write_all_at(stage, run_start as u64) {
            self.pos = run_start;
            return Err(e);
        }
        spans.extend(repoint(&run_seg, run_start, &placed, events));
        Ok(())
    }

    /// What a sync must cover now: the segments rolled away from since the last sync and
    /// the active one, and the directory when a spare joined the log.
    pub fn sync_targets(&mut self) -> SyncTargets {
        let mut segs = std::mem::take(&mut self.dirty);
        segs.push(self.active().clone());
        let dir = std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone());
        SyncTargets { segs, dir }
    }

    /// Blocking sync of everything written (start-up and orphan adoption only).
    pub fn sync_blocking(&mut self) -> io::Result<()> {
        let t = self.sync_targets();
        for s in t.segs {
            s.file.sync_blocking()?;
        }
        if let Some(dir) = t.dir {
            segment::sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Takes the consumed prefix out of the log: segments wholly before `position` whose
    /// puts are all older than `min_live`. The active segment always stays. The caller
    /// deletes or reuses the files.
    pub fn drop_consumed(&mut self, position: u64, min_live: u64) -> Vec<Rc<Seg>> {
        let mut gone = Vec::new();
        while self.segs.len() > 1 {
            let s = &self.segs[0];
            if s.file.end_lsn() > position || s.max_seq.get().is_some_and(|m| m >= min_live) {
                break;
            }
            gone.extend(self.segs.pop_front());
        }
        gone
    }

    /// Whether a checkpoint now would give up the oldest segment: nothing before
    /// `upto` (what `trim_consumed` takes) is still to be read, and the log has moved on.
    pub fn oldest_consumed(&self, upto: Option<u64>) -> bool {
        self.segs.len() > 1 && upto.is_none_or(|u| u >= self.segs[0].file.end_lsn())
    }

    /// The LSN of a byte of the mapping (a body the log holds), or `None` for memory
    /// outside the log (an empty body).
    pub fn lsn_of(&self, p: *const u8) -> Option<u64> {
        let p = p as usize;
        self.segs.iter().find_map(|s| {
            let base = s.file.map.as_ptr() as usize;
            (p >= base && p < base + s.file.len()).then(|| s.file.start + (p - base) as u64)
        })
    }

    /// Unmaps (from this process only) the log pages before `upto`, the LSN of the first
    /// byte anyone may still read: the oldest event queued, taken or waiting for its
    /// sync; `None` means all written pages. Sinks read bodies through the mapping, and
    /// every page read stays in the process's resident set until its segment is deleted
    /// at a checkpoint; the page cache keeps the data, so a body read again later (a
    /// rolled-back take) faults back in. Trims in steps of at least `TRIM_STEP`, as each
    /// one costs a TLB flush on every CPU running a shard.
    pub fn trim_consumed(&self, upto: Option<u64>) {
        let upto = upto.unwrap_or_else(|| self.written_lsn());
        let Some(upto_seg) = self.segs.iter().position(|s| upto < s.file.end_lsn()) else {
            return;
        };
        let upto_off = (upto - self.segs[upto_seg].file.start) as usize;
        for (i, seg) in self.segs.iter().enumerate().take(upto_seg + 1) {
            let len = seg.file.len();
            let done = seg.trimmed.get();
            if i < upto_seg {
                // Left behind: all of it, from the start, as pages below `done` can have
                // been mapped again since they were trimmed (see `REFAULT_SLACK`).
                if done < len {
                    seg.file.unmap_pages(0, len);
                    seg.trimmed.set(len);
                }
                continue;
            }
            let end = upto_off & !(PAGE - 1);
            if end < done {
                // A rollback moved the bound back: trim from there again later.
                seg.trimmed.set(end);
            } else if end - done >= TRIM_STEP {
                let from = done.saturating_sub(REFAULT_SLACK);
                seg.file.unmap_pages(from, end - from);
                seg.trimmed.set(end);
            }
        }
    }

    pub fn segment_infos(&self) -> Vec<super::checkpoint::SegmentInfo> {
        self.segs
            .iter()
            .map(|s| super::checkpoint::SegmentInfo {
                start: s.file.start,
                len: s.file.len() as u64,
                max_seq: s.max_seq.get(),
            })
            .collect()
    }
}

/// Points the bodies of the events just written from `start` at their copies in the
/// mapping, and returns those frames as the queue keeps them.
fn repoint(
    seg: &Rc<Seg>,
    start: usize,
    placed: &[(usize, usize)],
    events: &mut [Event],
) -> Option<Span> {
    let &(last, last_at) = placed.last()?;
    let end = last_at + events[last].body.len();
    let owner = segment::map_bytes(&seg.file.map, start, end);
    // The bodies share the mapping without an atomic count each (see `event::Body`).
    let shared = Rc::new(owner.clone());
    for &(i, at) in placed {
        let len = events[i].body.len();
        events[i].body = Body::shared(shared.clone(), at - start..at - start + len);
    }
    Some(Span {
        frames: owner,
        first: placed[0].0,
        count: placed.len(),
    })
}
