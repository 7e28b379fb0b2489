//! The append side of one shard's log: the list of open segments (the last one is
//! active), appending frames to the active segment, rolling to the next segment when it
//! is full (the spare made ahead of time when there is one, else a blocking creation),
//! handing out what a group sync must cover, and giving up the consumed prefix after a
//! checkpoint (kept as free segments for reuse, see `segment`). Single-threaded; the
//! channel owns it.
//!
//! With direct appends (`direct`, for a log whose puts wait for their sync) frames are
//! encoded into the appender's memory and written by the group commit. Otherwise they
//! are encoded into a staging buffer and written with `pwrite`, not stored through the
//! mapping (which is only read). A page dirtied through a shared mapping must be
//! write-protected again when fdatasync writes it back, and every first store to a page
//! takes a fault, so storing through the mapping and syncing costs well more than a
//! `pwrite` and sync of the same bytes (figures: docs/file-channel.md). The page cache is
//! shared, so the mapping sees what was written at once.

use super::direct::{self, Appender, Disk, Flush};
use super::queue::Span;
use super::record::{self, Record};
use super::segment::{self, SegmentFile, HEADER_LEN, PAGE};
use crate::event::{Body, Event};
use crate::runtime::local::LocalNotify;
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
    /// Appends go to memory and are written with `O_DIRECT` at each sync (see `direct`),
    /// whose disk thread then makes every sync of this log.
    pub direct: Option<Appender>,
    /// Free space (minimumRequiredSpace) a new segment file must leave on the disk.
    pub reserve: u64,
}

/// The smallest padding record (frame header, kind byte, alignment).
const MIN_PAD: usize = record::frame_len(1);

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
    /// For a log with direct appends, all it needs: its disk thread and what to give it.
    pub direct: Option<(Disk, Flush)>,
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
            direct: None,
            reserve: 0,
        }
    }

    /// Appends from now on with `O_DIRECT` writes at each sync, for a log whose puts wait
    /// for their sync. An error means the file system does not take them; the log goes
    /// on through the page cache.
    pub fn enable_direct(&mut self) -> io::Result<()> {
        self.direct = Some(Appender::start(&self.active().file, self.pos, self.shard)?);
        Ok(())
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
                self.segment_blocking(start)?
            }
        };
        if let Some(d) = &mut self.direct {
            if let Err(e) = d.roll(&seg.file, HEADER_LEN) {
                // The log has not moved on: the next roll makes this segment again.
                let _ = std::fs::remove_file(&seg.file.path);
                return Err(e);
            }
        }
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

    /// The segment starting at `start`, made on the loop for a roll that found no spare
    /// ready: out of a free segment when there is one, else a new file (not zero-filled,
    /// which would stall every connection). Free segments come first because on a full
    /// disk they are the only space left: a new file fails with ENOSPC while the log's
    /// own consumed segments sit there, and the log could never roll again.
    fn segment_blocking(&mut self, start: u64) -> io::Result<Rc<Seg>> {
        while let Some(from) = self.free.pop() {
            // A failed reuse removed the file; the next one, or a new file, may do.
            let Ok(mut f) =
                SegmentFile::reuse_blocking(&self.dir, &from, self.shard, start, self.segment_size)
            else {
                continue;
            };
            if f.activate(&self.dir).is_err() {
                let _ = std::fs::remove_file(&f.path);
                continue;
            }
            // Durable with the next group commit, before anything in it is acknowledged.
            self.dir_dirty = true;
            let path = f.path.clone();
            return Seg::new(f, None).inspect_err(|_| {
                let _ = std::fs::remove_file(&path);
            });
        }
        self.check_room_for_new_segment()?;
        let file = SegmentFile::create(&self.dir, self.shard, start, self.segment_size, false)?;
        Seg::new(file, None)
    }

    /// Fails unless a new segment file leaves `reserve` bytes free. Why: the log must
    /// not take the disk below minimumRequiredSpace by itself, or nothing is left for the
    /// checkpoint that frees the segments the sinks have consumed, and the channel stays
    /// stuck with every byte in segments. (Reusing a free segment takes no space.)
    pub fn check_room_for_new_segment(&self) -> io::Result<()> {
        self.check_room(self.segment_size as u64)
    }

    /// Fails when the disk is already below `reserve` (a segment just made took it there).
    pub fn check_room_left(&self) -> io::Result<()> {
        self.check_room(0)
    }

    fn check_room(&self, segment: u64) -> io::Result<()> {
        if self.reserve == 0 {
            return Ok(());
        }
        // Unknown free space does not stop the log; creating the file still fails
        // cleanly if the disk is really full.
        match super::layout::free_space(&self.dir) {
            Ok(free) if free < segment + self.reserve => {
                Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "No space left on device for a new segment: {free} bytes free, a segment takes {} and minimumRequiredSpace keeps {}",
                        self.segment_size, self.reserve
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    pub fn append_record(&mut self, r: &Record) -> io::Result<()> {
        let payload = record::small_payload(r);
        self.room(record::frame_len(payload.len()))?;
        let frame = record::frame(&payload, self.written_lsn());
        self.append_frame(&frame)
    }

    /// Appends an encoded frame at the write position (which has room for it), to
    /// memory or through the page cache as appends go now.
    fn append_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        match &mut self.direct {
            Some(d) if d.is_direct() => {
                d.reserve(self.pos, frame.len()).copy_from_slice(frame);
                d.appended(self.pos, frame.len());
            }
            d => {
                if let Some(d) = d {
                    d.wrote_buffered();
                }
                self.active()
                    .file
                    .file
                    .write_all_at(frame, self.pos as u64)?
            }
        }
        self.pos += frame.len();
        Ok(())
    }

    /// Switches direct appends to memory on or off for a batch of `n` bytes of frames
    /// behind a queue of about `ahead` bytes (see `direct`), padding the log to a block
    /// boundary first so that no block is written both ways.
    fn choose_direct(&mut self, n: usize, ahead: usize) -> io::Result<()> {
        let Some(d) = &self.direct else {
            return Ok(());
        };
        let want = d.wants_direct(n, ahead);
        if want == d.is_direct() {
            return Ok(());
        }
        while self.pos % direct::BLOCK != 0 {
            let mut gap = direct::align_up(self.pos) - self.pos;
            if gap < MIN_PAD {
                gap += direct::BLOCK;
            }
            if self.pos + gap > self.active().file.len() {
                // No room for the padding here: the next segment starts the new way
                // (after its header, so it is padded in turn).
                self.room(self.active().file.len() - self.pos + 1)?;
                continue;
            }
            let framing = record::Framing::V2 {
                start: self.active().file.start,
            };
            let pad = record::encode_pad(framing, self.pos, gap);
            self.append_frame(&pad)?;
        }
        let seg = self.active().clone();
        let d = self.direct.as_mut().expect("checked above");
        if want {
            d.resume(&seg.file, self.pos)
        } else {
            d.stop();
            Ok(())
        }
    }

    /// Appends one put record per event (seqs `first..`), then re-points each event's
    /// body at its copy in the log (the direct appender's memory within its budget, else
    /// the mapping), so the queue holds that rather than the source's receive buffers.
    ///
    /// On an error the frames of the failed run are not in the log and `pos` is where they
    /// would have started; the caller rolls the transaction back.
    ///
    /// `queued` is how many events wait in the queue before these: a long queue means
    /// they will be read long after, so keeping them in memory would only cost memory
    /// (see `direct`).
    pub fn append_puts(
        &mut self,
        tx: u64,
        first: u64,
        events: &mut [Event],
        queued: usize,
    ) -> io::Result<Vec<Span>> {
        let mut stage = std::mem::take(&mut self.stage);
        let mut spans = Vec::with_capacity(1);
        let r = self
            .append_puts_via(&mut stage, tx, first, events, queued, &mut spans)
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
        queued: usize,
        spans: &mut Vec<Span>,
    ) -> io::Result<()> {
        let lens: Vec<usize> = events
            .iter()
            .map(|e| record::frame_len(record::put_payload_len(e)))
            .collect();
        let bytes: usize = lens.iter().sum();
        // The queue ahead in bytes, as if its events were the size of these.
        let ahead = queued.saturating_mul(bytes) / events.len().max(1);
        self.choose_direct(bytes, ahead)?;
        // (index, body offset in the run) of the run's events.
        let mut placed: Vec<(usize, usize)> = Vec::with_capacity(events.len());
        let mut i = 0;
        while i < events.len() {
            // Rolls when the next frame does not fit; a run is what fits after that.
            // Should a later run fail, the earlier ones' segment just ends early (zeros,
            // or frames of no committed transaction).
            self.room(lens[i])?;
            let start = self.pos;
            let room = self.active().file.len() - start;
            let mut total = 0;
            let mut j = i;
            while j < events.len() && total + lens[j] <= room {
                total += lens[j];
                j += 1;
            }
            placed.clear();
            let mut lsn = self.written_lsn();
            let seg = self.active().clone();
            let mut encode = |buf: &mut [u8]| {
                let mut at = 0;
                for (k, e) in events[i..j].iter().enumerate() {
                    let seq = first + (i + k) as u64;
                    let (len, body_at) =
                        record::encode_put(&mut buf[at..at + lens[i + k]], lsn, tx, seq, e);
                    placed.push((i + k, at + body_at));
                    at += len;
                    lsn += len as u64;
                    seg.saw_seq(seq);
                }
            };
            let owner = match &mut self.direct {
                Some(d) if d.is_direct() => {
                    encode(d.reserve(start, total));
                    d.appended(start, total);
                    d.frames(start, run_end(start, &placed, events))
                }
                d => {
                    if let Some(d) = d {
                        d.wrote_buffered();
                    }
                    stage.clear();
                    stage.resize(total, 0);
                    encode(stage);
                    seg.file.file.write_all_at(stage, start as u64)?;
                    segment::map_bytes(&seg.file.map, start, run_end(start, &placed, events))
                }
            };
            self.pos = start + total;
            spans.extend(repoint(owner, &placed, events));
            i = j;
        }
        Ok(())
    }

    /// What a sync must cover now: for a log with direct appends, what its disk thread
    /// must write and sync; for one without, the segments rolled away from since the
    /// last sync and the active one; and the directory when a spare joined the log.
    pub fn sync_targets(&mut self) -> SyncTargets {
        let mut segs = std::mem::take(&mut self.dirty);
        segs.push(self.active().clone());
        if self.direct.is_some() {
            segs.clear();
        }
        let dir = std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone());
        let direct = self.direct.as_mut().map(|d| (d.disk.clone(), d.flush()));
        SyncTargets { direct, segs, dir }
    }

    /// Blocking sync of everything written (start-up and orphan adoption only).
    pub fn sync_blocking(&mut self) -> io::Result<()> {
        let t = self.sync_targets();
        if let Some((_, flush)) = t.direct {
            direct::flush_blocking(flush)?;
        }
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

/// Where a run's frames end for the queue: the last body's end (its frame's padding is not
/// needed). `placed` holds body offsets from the run's `start`.
fn run_end(start: usize, placed: &[(usize, usize)], events: &[Event]) -> usize {
    placed
        .last()
        .map_or(start, |&(i, at)| start + at + events[i].body.len())
}

/// Points the bodies of a run's events at their copies in `owner` (the run's frames, from
/// its first byte), and returns those frames as the queue keeps them.
fn repoint(owner: bytes::Bytes, placed: &[(usize, usize)], events: &mut [Event]) -> Option<Span> {
    placed.last()?;
    // The bodies share the frames without an atomic count each (see `event::Body`).
    let shared = Rc::new(owner.clone());
    for &(i, at) in placed {
        let len = events[i].body.len();
        events[i].body = Body::shared(shared.clone(), at..at + len);
    }
    Some(Span {
        frames: owner,
        first: placed[0].0,
        count: placed.len(),
    })
}
