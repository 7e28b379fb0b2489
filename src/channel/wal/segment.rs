//! Segment files: fixed-size, preallocated files named by the log sequence number (LSN, the
//! log's byte position) of their first byte, `<lsn:020>.wal`, each mapped shared with
//! memmap2. A segment starts with a small header (magic, version, shard, start LSN, crc);
//! frames follow from `HEADER_LEN`. The next segment starts at `start + len`, so an LSN
//! names one byte of the shard's log for its whole life, across deletions and restarts.
//!
//! Preallocation (`fallocate`) means appends (`pwrite`, see `log`) never hit ENOSPC in
//! the middle of a segment; running out of space shows up when a segment is created,
//! where it is an ordinary error. Log frames are never stored through the mapping; it
//! is written only for a fresh segment's header and by the offline
//! `channel verify --quarantine`.
//!
//! The next segment is normally made ahead of need, off the event path, as a *spare*:
//! `<lsn:020>.spare`, created, preallocated, headed and synced through io_uring. Rolling
//! to it is a rename (the directory is synced with the next group commit). The spare's
//! own name keeps it out of the log until then, so a blocking creation of the same
//! segment never collides with one in flight, and a spare left by a crash is just removed.
//!
//! A segment whose records are all consumed is not deleted but kept as a *free* segment,
//! `<old lsn:020>.free` (a few per shard: `log::FREE_KEEP`, kept by
//! `WalChannel::checkpoint`), and the next spare is made by renaming one and writing a new
//! header (`reuse_as_spare`; so is a segment a roll has to make on the loop,
//! `reuse_blocking`, since on a full disk the free segments are the only room there is).
//! Its pages are still in the page cache, so appending overwrites cached pages instead of
//! allocating new ones, which is costly, the more so on a virtual machine that hands free
//! memory back to its host. Its blocks are already written, too, so no sync has to commit
//! an unwritten-extent conversion (see `ZERO_CHUNK`). Frames record the LSN they were
//! written at (`record`), so what an earlier use left is never read as part of the new
//! one. (Figures: docs/file-channel.md, "Measurements behind the design".)

use super::record::Framing;
use memmap2::MmapRaw;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_uring::buf::BoundedBuf;

pub const HEADER_LEN: usize = 64;
/// The unit `unmap_pages` works in.
pub const PAGE: usize = 4096;
const MAGIC: &[u8; 8] = b"FFWALSEG";
/// 2: frames carry their LSN and files are reused. 1: neither (still read).
const VERSION: u32 = 2;
pub const SUFFIX: &str = ".wal";
pub const FREE_SUFFIX: &str = ".free";

/// Zero-filling writes a segment's blocks before the log appends to them. `fallocate`
/// leaves its blocks as unwritten extents, and the first write into each turns it into a
/// written one: a metadata change that makes every `fdatasync` commit the filesystem's
/// journal. Into zero-filled blocks an `fdatasync` only writes the data and flushes, so
/// syncs are much faster. It costs a write of the whole segment (through the page
/// cache, so appends never read a block back), so the log asks for it only while it fills
/// segments slowly enough for the sync latency, not the disk's bandwidth, to be what
/// bounds it (`Log::zero_spares`).
pub const ZERO_CHUNK: usize = 1 << 20;
pub const SPARE_SUFFIX: &str = ".spare";

pub fn file_name(start: u64) -> String {
    format!("{start:020}{SUFFIX}")
}

pub fn spare_name(start: u64) -> String {
    format!("{start:020}{SPARE_SUFFIX}")
}

pub fn free_name(start: u64) -> String {
    format!("{start:020}{FREE_SUFFIX}")
}

/// Free segments in `dir` (left by a previous run) of exactly `len` bytes, at most `keep`
/// of them; any others are removed.
pub fn take_free(dir: &Path, len: usize, keep: usize) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .and_then(|n| numbered(n, FREE_SUFFIX))
            .is_none()
        {
            continue;
        }
        if out.len() < keep && entry.metadata()?.len() == len as u64 {
            out.push(entry.path());
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(out)
}

/// Removes spare segments a previous run left (they were never part of its log).
pub fn remove_spares(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .and_then(|n| numbered(n, SPARE_SUFFIX))
            .is_some()
        {
            std::fs::remove_file(entry.path())?;
            n += 1;
        }
    }
    Ok(n)
}

/// The start LSN a segment file name stands for.
pub fn parse_name(name: &str) -> Option<u64> {
    numbered(name, SUFFIX)
}

/// The LSN in a `<lsn:020><suffix>` file name (a segment, spare or free segment).
fn numbered(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir`, oldest first, as (start LSN, path).
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(start) = entry.file_name().to_str().and_then(parse_name) {
            out.push((start, entry.path()));
        }
    }
    out.sort_by_key(|(s, _)| *s);
    Ok(out)
}

pub fn encode_header(shard: u32, start: u64) -> [u8; HEADER_LEN] {
    encode_header_version(VERSION, shard, start)
}

/// A header of an older `version`: for tests and fuzzing of logs written before reuse.
pub fn encode_header_version(version: u32, shard: u32, start: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&shard.to_le_bytes());
    h[16..24].copy_from_slice(&start.to_le_bytes());
    let crc = crc32fast::hash(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header; returns the start LSN it records and how its frames are laid
/// out.
pub fn check_header(data: &[u8]) -> Result<(u64, Framing), &'static str> {
    let h = data
        .get(..HEADER_LEN)
        .ok_or("shorter than a segment header")?;
    if &h[..8] != MAGIC {
        return Err(if h.iter().all(|&b| b == 0) {
            "header never written (segment creation was interrupted)"
        } else {
            "not a flume-fast WAL segment (bad magic)"
        });
    }
    if crc32fast::hash(&h[..24]).to_le_bytes() != h[24..28] {
        return Err("segment header crc mismatch");
    }
    let start = u64::from_le_bytes(h[16..24].try_into().unwrap());
    match u32::from_le_bytes(h[8..12].try_into().unwrap()) {
        1 => Ok((start, Framing::V1)),
        VERSION => Ok((start, Framing::V2 { start })),
        _ => Err("unsupported segment version"),
    }
}

/// An open, mapped segment file.
pub struct SegmentFile {
    pub start: u64,
    pub path: PathBuf,
    pub file: File,
    pub map: Arc<MmapRaw>,
}

impl SegmentFile {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    pub fn end_lsn(&self) -> u64 {
        self.start + self.map.len() as u64
    }

    /// Creates, preallocates (zero-filled when `zero`, see `ZERO_CHUNK`) and maps a new
    /// segment, makes its existence durable (file and directory synced) and writes its
    /// header. Blocking: once per segment.
    pub fn create(
        dir: &Path,
        shard: u32,
        start: u64,
        len: usize,
        zero: bool,
    ) -> io::Result<SegmentFile> {
        let path = dir.join(file_name(start));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let made = (|| {
            // SAFETY: fallocate on a file we own, in range.
            let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                // Filesystems without fallocate still get a full-size (sparse) file.
                if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                    return Err(e);
                }
                file.set_len(len as u64)?;
            }
            if zero {
                let zeros = vec![0u8; ZERO_CHUNK];
                for off in (0..len).step_by(ZERO_CHUNK) {
                    file.write_all_at(&zeros[..ZERO_CHUNK.min(len - off)], off as u64)?;
                }
            }
            let map = MmapRaw::map_raw(&file)?;
            let header = encode_header(shard, start);
            // SAFETY: the map is len >= HEADER_LEN bytes, freshly created and not shared yet.
            unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), map.as_mut_ptr(), HEADER_LEN) };
            file.sync_all()?;
            sync_dir(dir)?;
            Ok(map)
        })();
        made_or_removed(made.map(|map| (file, map)), start, path)
    }

    /// Creates the spare for the segment starting at `start` through io_uring: created,
    /// preallocated, mapped, headed and synced without blocking the shard's loop. Returns
    /// the file and its io_uring handle. It joins the log with `activate`.
    pub async fn create_spare(
        dir: &Path,
        shard: u32,
        start: u64,
        len: usize,
        zero: bool,
    ) -> io::Result<(SegmentFile, tokio_uring::fs::File)> {
        let path = dir.join(spare_name(start));
        let uring = tokio_uring::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        let made = async {
            let file = dup_file(&uring)?;
            match uring.fallocate(0, len as u64, 0).await {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => file.set_len(len as u64)?,
                Err(e) => return Err(e),
            }
            if zero {
                let mut zeros = vec![0u8; ZERO_CHUNK];
                for off in (0..len).step_by(ZERO_CHUNK) {
                    let n = ZERO_CHUNK.min(len - off);
                    let (r, slice) = uring.write_all_at(zeros.slice(..n), off as u64).await;
                    zeros = slice.into_inner();
                    r?;
                }
            }
            let map = MmapRaw::map_raw(&file)?;
            let header = encode_header(shard, start);
            // SAFETY: the map is len >= HEADER_LEN bytes, freshly created and not shared yet.
            unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), map.as_mut_ptr(), HEADER_LEN) };
            uring.sync_all().await?;
            Ok((file, map))
        }
        .await;
        spare_or_remove(made, start, path, uring).await
    }

    /// Makes the spare for the segment starting at `start` out of the free segment `from`
    /// (see the module doc): renamed, headed for its new start and synced, through
    /// io_uring. The file must be `len` bytes. On an error the file is removed.
    pub async fn reuse_as_spare(
        dir: &Path,
        from: &Path,
        shard: u32,
        start: u64,
        len: usize,
    ) -> io::Result<(SegmentFile, tokio_uring::fs::File)> {
        let path = dir.join(spare_name(start));
        if let Err(e) = tokio_uring::fs::rename(from, &path).await {
            let _ = tokio_uring::fs::remove_file(from).await;
            return Err(e);
        }
        let uring = tokio_uring::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await;
        let uring = match uring {
            Ok(u) => u,
            Err(e) => {
                let _ = tokio_uring::fs::remove_file(&path).await;
                return Err(e);
            }
        };
        let made = async {
            let file = dup_file(&uring)?;
            let size = file.metadata()?.len();
            if size != len as u64 {
                return Err(io::Error::other(format!(
                    "free segment is {size} bytes, not {len}"
                )));
            }
            let map = MmapRaw::map_raw(&file)?;
            let header = encode_header(shard, start).to_vec();
            let (r, _) = uring.write_all_at(header, 0).await;
            r?;
            uring.sync_data().await?;
            Ok((file, map))
        }
        .await;
        spare_or_remove(made, start, path, uring).await
    }

    /// `reuse_as_spare` by blocking calls, for a roll that found no spare ready (see
    /// `Log::room`): renamed to a spare, headed for `start` and synced; `activate` makes
    /// it part of the log. On an error the file is removed.
    pub fn reuse_blocking(
        dir: &Path,
        from: &Path,
        shard: u32,
        start: u64,
        len: usize,
    ) -> io::Result<SegmentFile> {
        let path = dir.join(spare_name(start));
        if let Err(e) = std::fs::rename(from, &path) {
            let _ = std::fs::remove_file(from);
            return Err(e);
        }
        let made = (|| {
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let size = file.metadata()?.len();
            if size != len as u64 {
                return Err(io::Error::other(format!(
                    "free segment is {size} bytes, not {len}"
                )));
            }
            let map = MmapRaw::map_raw(&file)?;
            file.write_all_at(&encode_header(shard, start), 0)?;
            file.sync_data()?;
            Ok((file, map))
        })();
        made_or_removed(made, start, path)
    }

    /// Gives a spare its segment name, making it part of the log. The rename is durable
    /// only once the directory is synced, which the caller must arrange before anything
    /// written to the segment is acknowledged.
    pub fn activate(&mut self, dir: &Path) -> io::Result<()> {
        let to = dir.join(file_name(self.start));
        std::fs::rename(&self.path, &to)?;
        self.path = to;
        Ok(())
    }

    /// Opens and maps an existing segment read-write.
    pub fn open(path: &Path, start: u64) -> io::Result<SegmentFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let map = MmapRaw::map_raw(&file)?;
        Ok(SegmentFile {
            start,
            path: path.to_path_buf(),
            file,
            map: Arc::new(map),
        })
    }

    /// The mapped bytes. Only for reading regions that are not being written.
    ///
    /// # Safety
    /// No write through `write_at` may overlap the returned slice while it is alive.
    pub unsafe fn bytes(&self) -> &[u8] {
        std::slice::from_raw_parts(self.map.as_ptr(), self.map.len())
    }

    /// A mutable view of `off..off + len` for appending.
    ///
    /// # Safety
    /// The region must not be covered by any live slice or `Bytes` of this mapping.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn region_mut(&self, off: usize, len: usize) -> &mut [u8] {
        assert!(off + len <= self.map.len());
        std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(off), len)
    }

    /// Drops this process's page-table entries for `off..off + len` (page-aligned); the
    /// mapping stays valid and faults the pages back in from the page cache if read.
    pub fn unmap_pages(&self, off: usize, len: usize) {
        assert!(off + len <= self.map.len() && off % PAGE == 0);
        // SAFETY: the range is inside our mapping; MADV_DONTNEED on a shared file mapping
        // discards no data (it is in the page cache and the file), it only unmaps.
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(off).cast(),
                len,
                libc::MADV_DONTNEED,
            );
        }
    }

    /// `fdatasync` on the calling thread.
    pub fn sync_blocking(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// A std `File` on a dup of `uring`'s descriptor, for mapping and blocking calls.
fn dup_file(uring: &tokio_uring::fs::File) -> io::Result<File> {
    // SAFETY: dup of a descriptor we own; the new one is owned by the returned File.
    let fd = unsafe { libc::dup(uring.as_raw_fd()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { <File as std::os::unix::io::FromRawFd>::from_raw_fd(fd) })
}

/// The segment a blocking create or reuse made, or its file removed on an error, so a
/// half-made segment never lies where replay or the next roll would find it.
fn made_or_removed(
    made: io::Result<(File, MmapRaw)>,
    start: u64,
    path: PathBuf,
) -> io::Result<SegmentFile> {
    match made {
        Ok((file, map)) => Ok(SegmentFile {
            start,
            path,
            file,
            map: Arc::new(map),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// The spare that making it at `path` produced, or, when that failed, the file removed
/// and the error.
async fn spare_or_remove(
    made: io::Result<(File, MmapRaw)>,
    start: u64,
    path: PathBuf,
    uring: tokio_uring::fs::File,
) -> io::Result<(SegmentFile, tokio_uring::fs::File)> {
    match made {
        Ok((file, map)) => Ok((
            SegmentFile {
                start,
                path,
                file,
                map: Arc::new(map),
            },
            uring,
        )),
        Err(e) => {
            let _ = tokio_uring::fs::remove_file(&path).await;
            Err(e)
        }
    }
}

/// A `Bytes` owner for an immutable, already written range of a mapping: event bodies
/// read from the log are slices of it, so the queue holds page cache, not heap.
pub struct MapSlice {
    pub map: Arc<MmapRaw>,
    pub start: usize,
    pub end: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: start..end is inside the mapping and, by construction, never written
        // again while mapped (the log only appends; quarantine runs offline).
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(self.start), self.end - self.start)
        }
    }
}

pub fn map_bytes(map: &Arc<MmapRaw>, start: usize, end: usize) -> bytes::Bytes {
    bytes::Bytes::from_owner(MapSlice {
        map: map.clone(),
        start,
        end,
    })
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
