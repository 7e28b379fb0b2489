//! Direct-I/O appends for a log whose puts wait for their sync (`fsyncPerTransaction`, the
//! default): frames are encoded into aligned memory (`Chunk`s), each group commit hands
//! them to the shard's disk thread (`Disk`), which writes them with `O_DIRECT` and syncs,
//! and the queue reads recently put events from that memory rather than from the log's
//! mapping.
//!
//! Why: through the page cache, each put batch paid for the kernel's copy into cached
//! pages and its per-page bookkeeping, for writing those pages back at the sync, and for
//! faulting them into the mapping and unmapping them when the sink read them, a large
//! share of the agent's CPU with many connections. An `O_DIRECT` write hands the device
//! the frames where they were encoded, and nothing of it stays in the page cache. (The
//! figures behind this module's choices: docs/file-channel.md, "Measurements behind the
//! design".)
//!
//! How: the active segment's *region* is a chunk whose byte 0 is a block boundary of the
//! segment; frames are appended into it and each group commit writes the blocks from the
//! last write's end (rounded down, so the partial block last written goes again with what
//! follows it) to the data's end (rounded up, the rest of that block zeroed). When a chunk
//! fills, the next one starts with a copy of that partial block. A new segment's region
//! starts with its header, read back from the file. Writes are serialised by the syncer,
//! so a block is never written twice at once.
//!
//! Memory: the queue's frames keep their chunk alive. A batch that would take the live
//! chunks past `MEMORY_BUDGET` per log, or that comes behind more than `QUEUE_AHEAD` of
//! queue, is written through the page cache instead, as without this module, and so is
//! every batch after it until both are down to half: a backlog lives on disk (and in the
//! page cache), not in memory; once that has lasted `RELEASE_AFTER`, the chunks kept for
//! reuse are given back, as are those the queue lets go of, until appends go to memory
//! again. Each switch pads the log to a block boundary with a
//! padding record, so a block is written either directly or through the page cache,
//! never both ways. The disk thread syncs what went either way.

use super::segment::{SegmentFile, PAGE};
use bytes::Bytes;
use std::alloc::Layout;
use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The block size direct writes are aligned to (a page: every device's logical block
/// divides it).
pub const BLOCK: usize = PAGE;

/// A chunk's usual size: three batches of 1,000 events of 1 KiB.
pub const CHUNK: usize = 4 << 20;

/// Live chunk bytes a log keeps for the queue before frames are read from the mapping.
pub const MEMORY_BUDGET: usize = 16 << 20;

/// The longest queue (in bytes of frames) a batch goes to memory behind: a sink that
/// keeps up takes it soon. Behind a backlog it would only hold memory until it is read,
/// raising the agent's peak memory for nothing; this bound and `MEMORY_BUDGET` were
/// chosen by that peak with a slow sink.
pub const QUEUE_AHEAD: usize = 4 << 20;

/// How long appends go through the page cache before the chunks kept for reuse are given
/// back: a backlog (a sink slower than the source) lasts seconds, while a queue near
/// `QUEUE_AHEAD` switches every few milliseconds, and giving them back at each switch
/// would cost throughput for the faults of mapping new ones.
const RELEASE_AFTER: Duration = Duration::from_millis(100);

thread_local! {
    /// Chunks of a log's usual size (`CHUNK`) each thread keeps for reuse, with their
    /// length, up to the log's budget's worth: a newly mapped page costs a fault and, on
    /// a virtual machine whose free memory goes back to the host, the host's work too.
    static POOL: RefCell<Vec<(NonNull<u8>, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Unmaps the chunks this thread keeps for reuse.
fn release_pool() {
    let pooled = POOL.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for (ptr, len) in pooled {
        // SAFETY: mapped in `Chunk::new` with this length, and used by no one.
        unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
    }
}

/// The bytes of the chunks this thread keeps for reuse.
#[cfg(test)]
pub fn pooled() -> usize {
    POOL.with(|p| p.borrow().iter().map(|c| c.1).sum())
}

/// A log's chunk memory: the bytes of its live chunks, and whether a chunk it lets go
/// of is kept for reuse (not while its appends go through the page cache: behind a
/// backlog, the sink reads the log's mapping, and kept chunks would only add to it).
struct Usage {
    live: AtomicUsize,
    pooling: AtomicBool,
    /// The log's usual chunk size (`CHUNK`; larger chunks, for a larger batch, are not
    /// kept) and its budget (`MEMORY_BUDGET`): the most its live chunks may hold before
    /// appends go through the page cache, and the most a thread keeps for reuse.
    chunk: usize,
    budget: usize,
}

/// Chunks are mapped, not allocated: the allocator kept freed blocks of this size in
/// its heap, where they fragmented and the agent's memory grew fast under load.
fn map(len: usize) -> NonNull<u8> {
    // SAFETY: an anonymous private mapping of a non-zero length.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::alloc::handle_alloc_error(Layout::from_size_align(len, BLOCK).expect("layout"));
    }
    NonNull::new(p.cast()).expect("mmap returned null")
}

pub const fn align_down(n: usize) -> usize {
    n & !(BLOCK - 1)
}

pub const fn align_up(n: usize) -> usize {
    (n + BLOCK - 1) & !(BLOCK - 1)
}

/// Block-aligned memory frames are encoded into. Written through raw pointers only,
/// each byte before any `Bytes` or write covers it; read by the queue (`slice`) and by
/// the kernel (`ChunkWrite`).
pub struct Chunk {
    ptr: NonNull<u8>,
    len: usize,
    usage: Arc<Usage>,
}

// SAFETY: a chunk is plain memory; who writes which bytes when is the appender's
// discipline (see the type's comment), and the owner only frees it.
unsafe impl Send for Chunk {}
unsafe impl Sync for Chunk {}

impl Chunk {
    fn new(len: usize, usage: &Arc<Usage>) -> Arc<Chunk> {
        let pooled = POOL.with(|p| {
            let mut p = p.borrow_mut();
            let at = p.iter().rposition(|c| c.1 == len)?;
            Some(p.swap_remove(at).0)
        });
        let ptr = pooled.unwrap_or_else(|| map(len));
        usage.live.fetch_add(len, Ordering::Relaxed);
        Arc::new(Chunk {
            ptr,
            len,
            usage: usage.clone(),
        })
    }

    /// `len` bytes from `off`, for writing frames that nothing else covers yet.
    ///
    /// # Safety
    /// No `Bytes` from `slice` covers the range, and the caller is the only writer.
    #[allow(clippy::mut_from_ref)]
    unsafe fn bytes_mut(&self, off: usize, len: usize) -> &mut [u8] {
        assert!(off + len <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(off), len)
    }

    /// `start..end` as `Bytes`: bytes the appender has finished and never changes again.
    fn slice(self: &Arc<Self>, start: usize, end: usize) -> Bytes {
        assert!(start <= end && end <= self.len);
        Bytes::from_owner(ChunkSlice {
            chunk: self.clone(),
            start,
            end,
        })
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.usage.live.fetch_sub(self.len, Ordering::Relaxed);
        let ptr = self.ptr;
        let usage = &self.usage;
        let kept = self.len == usage.chunk
            && usage.pooling.load(Ordering::Relaxed)
            && POOL
                .try_with(|p| {
                    let mut p = p.borrow_mut();
                    let kept: usize = p.iter().map(|c| c.1).sum();
                    (kept + self.len <= usage.budget)
                        .then(|| p.push((ptr, self.len)))
                        .is_some()
                })
                .unwrap_or(false);
        if !kept {
            // SAFETY: mapped in `Chunk::new` with this length, and no longer used.
            unsafe { libc::munmap(ptr.as_ptr().cast(), self.len) };
        }
    }
}

struct ChunkSlice {
    chunk: Arc<Chunk>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for ChunkSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: finished frames, never written again while a slice covers them.
        unsafe {
            std::slice::from_raw_parts(
                self.chunk.ptr.as_ptr().add(self.start),
                self.end - self.start,
            )
        }
    }
}

/// A block-aligned range of a chunk handed to an `O_DIRECT` write. It never makes a
/// reference to the bytes: past the data's end they are zeros the appender may overwrite
/// with later frames while the write is in flight (the next write covers them again).
/// The kernel reads them through the pointer.
pub struct ChunkWrite {
    chunk: Arc<Chunk>,
    off: usize,
    len: usize,
}

impl ChunkWrite {
    fn ptr(&self) -> *const u8 {
        // SAFETY: off + len <= chunk.len, checked at construction.
        unsafe { self.chunk.ptr.as_ptr().add(self.off) }
    }
}

/// A segment's file opened a second time with `O_DIRECT` (a separate open file
/// description: the log's other descriptor stays buffered, for the header and replay).
pub struct DirectFile {
    pub std: File,
    /// For errors: the segment's name when it was opened.
    pub path: std::path::PathBuf,
}

impl DirectFile {
    pub fn open(path: &Path) -> io::Result<Arc<DirectFile>> {
        let std = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        Ok(Arc::new(DirectFile {
            std,
            path: path.to_owned(),
        }))
    }

    fn err(&self, what: &str, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{what} {}: {e}", self.path.display()))
    }
}

/// One segment's frames in one chunk: chunk byte 0 is segment offset `base`.
struct Region {
    file: Arc<DirectFile>,
    chunk: Arc<Chunk>,
    base: usize,
    /// Segment offset up to which the frames have been handed to a write.
    written: usize,
    /// Segment offset where the frames in the chunk end.
    end: usize,
}

/// One direct write the syncer makes: `buf` at segment offset `at`.
pub struct Write {
    pub file: Arc<DirectFile>,
    pub buf: ChunkWrite,
    pub at: u64,
}

/// The direct-I/O side of a log: the active segment's region while appends go to memory
/// (`None` while they go through the page cache, past the budget), and the regions
/// sealed (by a roll, a full chunk or that switch) whose frames are not all written yet.
pub struct Appender {
    open: Option<Region>,
    sealed: Vec<Region>,
    /// The active segment, opened for direct writes (and syncs) whichever way appends go.
    file: Arc<DirectFile>,
    /// Files written through the page cache since the last sync.
    buffered: Vec<Arc<DirectFile>>,
    usage: Arc<Usage>,
    /// Since when appends go through the page cache (`None` while they go to memory).
    stopped_at: Option<Instant>,
    /// `QUEUE_AHEAD` and `RELEASE_AFTER` (and, in `usage`, `CHUNK` and `MEMORY_BUDGET`),
    /// smaller in tests.
    queue_ahead: usize,
    release_after: Duration,
    pub disk: Disk,
}

impl Appender {
    /// Starts appending to `seg` at offset `pos` (after the header, or where a replayed
    /// log ends): opens it with `O_DIRECT` (an error means this file system does not take
    /// direct writes), reads the partial block before `pos` into the first chunk and
    /// starts shard `shard`'s disk thread.
    pub fn start(seg: &SegmentFile, pos: usize, shard: u32) -> io::Result<Appender> {
        let usage = Self::usage(CHUNK, MEMORY_BUDGET);
        let file = DirectFile::open(&seg.path)?;
        let open = Self::region(seg, file.clone(), pos, &usage)?;
        Ok(Appender {
            open: Some(open),
            sealed: Vec::new(),
            file,
            buffered: Vec::new(),
            usage,
            stopped_at: None,
            queue_ahead: QUEUE_AHEAD,
            release_after: RELEASE_AFTER,
            disk: Disk::start(format!("wal-disk-{shard}"))?,
        })
    }

    /// Smaller chunks, budget and queue bound, and chunks given back at the first append
    /// through the page cache, so tests cross them with little data.
    #[cfg(test)]
    pub fn set_limits(&mut self, chunk: usize, budget: usize, queue_ahead: usize) {
        assert!(chunk % BLOCK == 0 && self.sealed.is_empty());
        self.queue_ahead = queue_ahead;
        self.release_after = Duration::ZERO;
        self.usage = Self::usage(chunk, budget);
        let r = self.open.as_mut().expect("direct at start");
        let new = Chunk::new(chunk, &self.usage);
        // SAFETY: both ranges are inside their chunks; the old one's is only read.
        unsafe {
            std::ptr::copy_nonoverlapping(r.chunk.ptr.as_ptr(), new.ptr.as_ptr(), r.end - r.base)
        };
        r.chunk = new;
        release_pool();
    }

    fn usage(chunk: usize, budget: usize) -> Arc<Usage> {
        Arc::new(Usage {
            live: AtomicUsize::new(0),
            pooling: AtomicBool::new(true),
            chunk,
            budget,
        })
    }

    fn region(
        seg: &SegmentFile,
        file: Arc<DirectFile>,
        pos: usize,
        usage: &Arc<Usage>,
    ) -> io::Result<Region> {
        let base = align_down(pos);
        let chunk = Chunk::new(usage.chunk, usage);
        // SAFETY: a new chunk: nothing covers it.
        let head = unsafe { chunk.bytes_mut(0, pos - base) };
        seg.file.read_exact_at(head, base as u64)?;
        Ok(Region {
            file,
            chunk,
            base,
            written: base,
            end: pos,
        })
    }

    /// Whether appends go to memory (else through the page cache).
    pub fn is_direct(&self) -> bool {
        self.open.is_some()
    }

    /// Whether the next batch of `n` bytes of frames, behind a queue of about `ahead`
    /// bytes, should go to memory: while the queue is short (`QUEUE_AHEAD`; a batch
    /// behind a backlog is read long after, and would only hold memory until then) and
    /// the live chunks are within the budget. Once appends went through the page cache,
    /// both must be down to half, so that a queue near either bound does not switch back
    /// and forth at every batch.
    pub fn wants_direct(&self, n: usize, ahead: usize) -> bool {
        let live = self.usage.live.load(Ordering::Relaxed) + n;
        let half = if self.is_direct() { 1 } else { 2 };
        live <= self.usage.budget / half && ahead <= self.queue_ahead / half
    }

    /// Appends go through the page cache from now on. The caller has padded the log to a
    /// block boundary, so no block is written both ways.
    pub fn stop(&mut self) {
        if let Some(r) = self.open.take() {
            debug_assert_eq!(r.end % BLOCK, 0);
            if r.end > r.written {
                self.sealed.push(r);
            }
        }
        self.stopped_at = Some(Instant::now());
    }

    /// Appends go to memory again, from block boundary `pos` of `seg` (the caller padded
    /// the log to it).
    pub fn resume(&mut self, seg: &SegmentFile, pos: usize) -> io::Result<()> {
        debug_assert_eq!(pos % BLOCK, 0);
        let file = self.file.clone();
        self.stopped_at = None;
        self.usage.pooling.store(true, Ordering::Relaxed);
        self.open = Some(Self::region(seg, file, pos, &self.usage)?);
        Ok(())
    }

    /// The log rolled to `seg`: what is left of the old segment's frames is written by
    /// the next sync, and appending goes on after the new one's header.
    pub fn roll(&mut self, seg: &SegmentFile, pos: usize) -> io::Result<()> {
        let file = DirectFile::open(&seg.path)?;
        if self.open.is_some() {
            let new = Self::region(seg, file.clone(), pos, &self.usage)?;
            if let Some(old) = self.open.replace(new) {
                if old.end > old.written {
                    self.sealed.push(old);
                }
            }
        }
        self.file = file;
        Ok(())
    }

    /// The active segment was written through the page cache: the next sync covers it.
    /// Past `RELEASE_AFTER` of that, chunks are no longer kept for reuse, and those kept
    /// are unmapped.
    pub fn wrote_buffered(&mut self) {
        if !self.buffered.iter().any(|f| Arc::ptr_eq(f, &self.file)) {
            self.buffered.push(self.file.clone());
        }
        let release = self.release_after;
        if self.usage.pooling.load(Ordering::Relaxed)
            && self.stopped_at.is_some_and(|t| t.elapsed() >= release)
        {
            self.usage.pooling.store(false, Ordering::Relaxed);
            release_pool();
        }
    }

    fn open(&mut self) -> &mut Region {
        self.open.as_mut().expect("appending to memory")
    }

    /// Room for `n` bytes of frames at segment offset `pos` (the log's write position,
    /// which is the region's end), moving to a new chunk when this one is full.
    pub fn reserve(&mut self, pos: usize, n: usize) -> &mut [u8] {
        let usage = self.usage.clone();
        let r = self.open();
        debug_assert_eq!(pos, r.end);
        if pos + n - r.base > r.chunk.len {
            let base = align_down(pos);
            let chunk = Chunk::new(usage.chunk.max(align_up(pos - base + n)), &usage);
            // SAFETY: both ranges are inside their chunks; the old one's is only read.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    r.chunk.ptr.as_ptr().add(base - r.base),
                    chunk.ptr.as_ptr(),
                    pos - base,
                );
            }
            let new = Region {
                file: r.file.clone(),
                chunk,
                base,
                written: base.max(r.written),
                end: pos,
            };
            let old = std::mem::replace(r, new);
            if old.end > old.written {
                self.sealed.push(old);
            }
        }
        let r = self.open();
        // SAFETY: past `end`: no slice covers it; a write in flight may cover it as
        // padding, which the next write sends again (see `ChunkWrite`).
        unsafe { r.chunk.bytes_mut(pos - r.base, n) }
    }

    /// The `n` bytes reserved at `pos` are finished frames.
    pub fn appended(&mut self, pos: usize, n: usize) {
        let r = self.open();
        debug_assert_eq!(pos, r.end);
        r.end = pos + n;
    }

    /// Frames `start..end` (segment offsets in the active segment, all appended) as
    /// `Bytes` for the queue.
    pub fn frames(&mut self, start: usize, end: usize) -> Bytes {
        let r = self.open();
        assert!(start >= r.base && end <= r.end);
        r.chunk.slice(start - r.base, end - r.base)
    }

    /// What puts every frame appended so far on disk: the writes of what is in memory,
    /// in order (what they cover counts as written from now on), and the files written
    /// through the page cache.
    pub fn flush(&mut self) -> Flush {
        let mut writes: Vec<Write> = self.sealed.drain(..).map(|r| Self::write_of(&r)).collect();
        if let Some(r) = &mut self.open {
            if r.end > r.written {
                writes.push(Self::write_of(r));
                r.written = r.end;
            }
        }
        Flush {
            writes,
            sync: std::mem::take(&mut self.buffered),
        }
    }

    fn write_of(r: &Region) -> Write {
        let from = align_down(r.written);
        let to = align_up(r.end);
        // SAFETY: past `end`, nothing covers the block's rest; zeros, not stale memory,
        // go to the disk there.
        unsafe { r.chunk.bytes_mut(r.end - r.base, to - r.end) }.fill(0);
        Write {
            file: r.file.clone(),
            buf: ChunkWrite {
                chunk: r.chunk.clone(),
                off: from - r.base,
                len: to - from,
            },
            at: from as u64,
        }
    }
}

/// Makes `flush` by blocking calls (start-up, orphan adoption).
pub fn flush_blocking(flush: Flush) -> io::Result<()> {
    run(&flush)
}

/// The thread that makes a log's direct writes and their `fdatasync`, with blocking
/// calls, for the shard's group commit.
///
/// Why a thread of its own, not io_uring: a direct write issued through the shard's ring
/// completes in the device's interrupt, and its completion reaches a shard asleep in its
/// event loop only when something else wakes it, so such a write took several times as
/// long as a blocking `pwrite`, and the `fdatasync` after it was a second hand-over to
/// an io_uring worker. Here both are one hand-over, as the page cache's `fdatasync`
/// alone was, and the shard is woken through its runtime's own channel.
#[derive(Clone)]
pub struct Disk {
    jobs: std::sync::mpsc::Sender<Job>,
}

struct Job {
    flush: Flush,
    done: tokio::sync::oneshot::Sender<(io::Result<()>, Flush)>,
}

/// What one group commit hands the disk thread: direct writes to make, then every file
/// they or the page cache wrote to since the last one to sync. It comes back with the
/// result, so that the chunks are freed (and pooled) on the shard's thread, which reuses
/// them.
pub struct Flush {
    pub writes: Vec<Write>,
    pub sync: Vec<Arc<DirectFile>>,
}

impl Disk {
    /// Starts the thread (on the caller's CPUs, which it inherits); it ends when the
    /// last handle is dropped.
    pub fn start(name: String) -> io::Result<Disk> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new().name(name).spawn(move || {
            for job in rx {
                let r = run(&job.flush);
                let _ = job.done.send((r, job.flush));
            }
        })?;
        Ok(Disk { jobs })
    }

    /// Makes `flush`'s writes, in order, and syncs every file it names.
    pub async fn flush(&self, flush: Flush) -> io::Result<()> {
        if flush.writes.is_empty() && flush.sync.is_empty() {
            return Ok(());
        }
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job { flush, done })
            .map_err(|_| io::Error::other("the log's disk thread has ended"))?;
        let (r, _flush) = result
            .await
            .map_err(|_| io::Error::other("the log's disk thread has ended"))?;
        r
    }
}

fn run(flush: &Flush) -> io::Result<()> {
    for Write { file, buf, at } in &flush.writes {
        // SAFETY: the chunk range is allocated and the `Arc` in `buf` keeps it alive.
        let bytes = unsafe { std::slice::from_raw_parts(buf.ptr(), buf.len) };
        file.std
            .write_all_at(bytes, *at)
            .map_err(|e| file.err("writing", e))?;
    }
    let files = flush.writes.iter().map(|w| &w.file).chain(&flush.sync);
    let mut synced: Vec<&Arc<DirectFile>> = Vec::new();
    for file in files {
        if !synced.iter().any(|f| Arc::ptr_eq(f, file)) {
            // On the inode: it also writes back what went through the page cache.
            file.std
                .sync_data()
                .map_err(|e| file.err("fdatasync of", e))?;
            synced.push(file);
        }
    }
    Ok(())
}
