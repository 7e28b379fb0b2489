//! What the spooling directory source keeps on disk: the position in the file in progress
//! ([`Progress`], a small JSON state file in the tracker directory, replaced atomically
//! after each committed batch) and the marking of a finished file ([`mark_done`]: renamed
//! with `fileSuffix`, deleted, or recorded by an empty `<trackerDir>/<relative path><suffix>`
//! file).
//!
//! Unlike Flume, whose position lives in an Avro meta file `.flumespool-main.meta` that it
//! rewrites in place, ours is our own format, `.flume-fast-spool.json`, written with
//! `runtime::state_file` (old or new version after a crash, never part of one). Flume's
//! meta file is neither read nor written: a spool directory moved from Flume with a file
//! half read reads that file again from its start (duplicates, no loss). The progress
//! names the file by path, inode, size and modification time, so a different file that
//! later gets the same name (or the same inode) is never resumed at the old one's position.

use super::deserializer::Pos;
use crate::runtime::state_file;
use std::io;
use std::path::{Path, PathBuf};

/// The state file's name in the tracker directory (hidden, as the directory scan skips).
pub const STATE_FILE: &str = ".flume-fast-spool.json";

/// The delivered position in the file in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub file: PathBuf,
    pub inode: u64,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime: i128,
    pub pos: Pos,
}

impl Progress {
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "file": self.file.to_string_lossy(),
            "inode": self.inode,
            "size": self.size,
            "mtime": self.mtime.to_string(),
            "offset": self.pos.offset,
            "record": self.pos.record,
        })
        .to_string()
    }

    pub fn parse(bytes: &[u8]) -> Result<Progress, String> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let num = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("\"{k}\" must be a non-negative integer"))
        };
        let file = v
            .get("file")
            .and_then(serde_json::Value::as_str)
            .ok_or("\"file\" must be a string")?;
        let mtime = v
            .get("mtime")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or("\"mtime\" must be a string holding an integer")?;
        Ok(Progress {
            file: PathBuf::from(file),
            inode: num("inode")?,
            size: num("size")?,
            mtime,
            pos: Pos {
                offset: num("offset")?,
                record: num("record")?,
            },
        })
    }

    /// Reads the progress in `dir`, if any.
    pub fn load(dir: &Path) -> io::Result<Option<Progress>> {
        let path = dir.join(STATE_FILE);
        match state_file::read(&path)? {
            None => Ok(None),
            // What a machine crash may leave of an unsynced save: no position, so the file
            // in progress is read again from its start (duplicates, never a loss).
            Some(b) if b.is_empty() => {
                tracing::warn!("{} is empty (a machine crash during a save?): the file in progress is read again from its start", path.display());
                Ok(None)
            }
            Some(b) => Progress::parse(&b).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {e} (fix or remove it; without it the file in progress is read again from its start)",
                        path.display()
                    ),
                )
            }),
        }
    }

    /// Saves it atomically; synced (durable through a machine crash) when `sync`.
    pub fn save(&self, dir: &Path, sync: bool) -> io::Result<()> {
        let path = dir.join(STATE_FILE);
        if sync {
            state_file::write(&path, self.to_json().as_bytes())
        } else {
            state_file::write_unsynced(&path, self.to_json().as_bytes())
        }
    }
}

/// How a finished file is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marking {
    /// Renamed to `<name><fileSuffix>` (Flume's default).
    Rename,
    /// An empty `<trackerDir>/<path relative to spoolDir><fileSuffix>` is created.
    TrackerDir,
    /// Deleted (`deletePolicy = immediate`).
    Delete,
}

/// Where `file`'s marker lives with `trackingPolicy = tracker_dir`.
pub fn marker(file: &Path, spool_dir: &Path, tracker_dir: &Path, suffix: &str) -> PathBuf {
    let rel = file.strip_prefix(spool_dir).unwrap_or(file);
    let mut name = tracker_dir.join(rel).into_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Marks `file` done. Errors say what went wrong in Flume's words where Flume has them:
/// a name already taken by a finished file is "File name has been re-used with different
/// files. Spooling assumptions violated for <dest>".
pub fn mark_done(
    marking: Marking,
    file: &Path,
    spool_dir: &Path,
    tracker_dir: &Path,
    suffix: &str,
) -> io::Result<String> {
    let reused = |dest: &Path| {
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "File name has been re-used with different files. Spooling assumptions violated for {}",
                dest.display()
            ),
        )
    };
    match marking {
        Marking::Rename => {
            let mut dest = file.as_os_str().to_owned();
            dest.push(suffix);
            let dest = PathBuf::from(dest);
            if dest.symlink_metadata().is_ok() {
                return Err(reused(&dest));
            }
            std::fs::rename(file, &dest).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "Unable to move {} to {}: {e}",
                        file.display(),
                        dest.display()
                    ),
                )
            })?;
            Ok(format!("renamed to {}", dest.display()))
        }
        Marking::TrackerDir => {
            let dest = marker(file, spool_dir, tracker_dir, suffix);
            if dest.symlink_metadata().is_ok() {
                return Err(reused(&dest));
            }
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&dest)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("Could not create tracker file {}: {e}", dest.display()),
                    )
                })?;
            Ok(format!("recorded as {}", dest.display()))
        }
        Marking::Delete => match std::fs::remove_file(file) {
            Ok(()) => Ok("deleted".into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok("already gone (unable to delete nonexistent file)".into())
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("Unable to delete spool file {}: {e}", file.display()),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_and_bad_state_says_why() {
        let p = Progress {
            file: "/spool/a b.log".into(),
            inode: u64::MAX,
            size: 10,
            mtime: -5_000_000_123,
            pos: Pos {
                offset: 7,
                record: 3,
            },
        };
        assert_eq!(Progress::parse(p.to_json().as_bytes()).unwrap(), p);
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Progress::load(d.path()).unwrap(), None);
        p.save(d.path(), true).unwrap();
        assert_eq!(Progress::load(d.path()).unwrap(), Some(p.clone()));
        let later = Progress {
            size: 11,
            ..p.clone()
        };
        later.save(d.path(), false).unwrap();
        assert_eq!(Progress::load(d.path()).unwrap(), Some(later));
        // What a machine crash may leave of an unsynced save: read from the start.
        std::fs::write(d.path().join(STATE_FILE), b"").unwrap();
        assert_eq!(Progress::load(d.path()).unwrap(), None);
        std::fs::write(d.path().join(STATE_FILE), b"{\"file\":1}").unwrap();
        let e = Progress::load(d.path()).unwrap_err().to_string();
        assert!(e.contains(STATE_FILE) && e.contains("\"file\""), "{e}");
    }

    #[test]
    fn marking_renames_records_or_deletes_and_refuses_a_reused_name() {
        let d = tempfile::tempdir().unwrap();
        let spool = d.path();
        let tracker = spool.join(".flumespool");
        let f = spool.join("sub").join("a.log");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "x").unwrap();
        mark_done(Marking::Rename, &f, spool, &tracker, ".COMPLETED").unwrap();
        assert!(spool.join("sub/a.log.COMPLETED").exists() && !f.exists());
        std::fs::write(&f, "y").unwrap();
        let e = mark_done(Marking::Rename, &f, spool, &tracker, ".COMPLETED").unwrap_err();
        assert!(e.to_string().contains("File name has been re-used"), "{e}");
        assert!(f.exists());
        mark_done(Marking::TrackerDir, &f, spool, &tracker, ".DONE").unwrap();
        assert!(tracker.join("sub/a.log.DONE").exists() && f.exists());
        let e = mark_done(Marking::TrackerDir, &f, spool, &tracker, ".DONE").unwrap_err();
        assert!(e.to_string().contains("re-used"), "{e}");
        mark_done(Marking::Delete, &f, spool, &tracker, "").unwrap();
        assert!(!f.exists());
        assert!(mark_done(Marking::Delete, &f, spool, &tracker, "").is_ok());
    }
}
