//! On-disk layout around the segments: per-shard directories, the lock file that keeps a
//! second agent (or a second channel) off a directory, free-space checks, and finding the
//! shard directories a previous run with more `--cores` (or other `dataDirs`) left behind.

use super::config::{parse_shard_dir, WalConfig};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "in_use.lock";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is in use by another flume-fast agent or channel{holder} (lock file {}); give each file channel its own checkpointDir and dataDirs", dir.display(), dir.join(LOCK_FILE).display())]
    Locked { dir: PathBuf, holder: String },
}

pub fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An exclusive `flock` on `<dir>/in_use.lock`, held while the value lives. The lock dies
/// with the process, so a SIGKILLed agent never leaves a stale lock behind.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, LayoutError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LayoutError::Io { path, source: e });
            }
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let holder = if pid.is_empty() {
                String::new()
            } else if pid == std::process::id().to_string() {
                " (another channel of this agent)".to_string()
            } else {
                format!(" (pid {pid})")
            };
            return Err(LayoutError::Locked {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(DirLock { _file: file })
    }
}

/// Free bytes for unprivileged users on the filesystem holding `dir`.
pub fn free_space(dir: &Path) -> io::Result<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated and st is a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// A shard directory that no shard of this run owns, and the shard that drains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub shard: usize,
    pub dir: PathBuf,
    pub adopter: usize,
}

/// Every `shard-k` directory under the data dirs that is not some shard's home in this run
/// (k >= shards, or a home that moved because `dataDirs` changed). Shard `k mod shards`
/// adopts it, so each orphan has exactly one adopter and adopters work in parallel.
pub fn orphans(cfg: &WalConfig, shards: usize) -> Vec<Orphan> {
    let mut out = Vec::new();
    for d in &cfg.data_dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(k) = e.file_name().to_str().and_then(parse_shard_dir) else {
                continue;
            };
            let path = e.path();
            if !path.is_dir() || (k < shards && cfg.data_dir(k) == path) {
                continue;
            }
            out.push(Orphan {
                shard: k,
                dir: path,
                adopter: k % shards.max(1),
            });
        }
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}
