//! Small state files a shard rewrites whole, atomically: position files and trackers
//! (TAILDIR positions, spooling-directory trackers).
//!
//! [`write`] writes the new content to a temporary file in the same directory
//! ([`temp_path`]: the target's name with a leading `.` and a `.tmp` suffix, hidden from
//! directory scans that skip dot files), syncs it, renames it over the target and syncs
//! the directory: a reader, or the next start after a crash, finds the old version or the
//! new one, never part of one. A temporary file a crash left behind is never read, and the
//! next `write` replaces it.
//!
//! These calls block (`std::fs`, two syncs per write): they are for rare writes off the
//! event path, such as a position saved every few seconds or a file marked done.
//! [`write_unsynced`] skips the syncs, for a position saved after every batch.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary file [`write`] writes `target`'s new content to: `dir/.name.tmp`.
pub fn temp_path(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(".tmp");
    target.with_file_name(name)
}

/// Replaces `path`'s content with `bytes` atomically and durably (see the module comment).
/// Errors name the file and the step that failed.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path`'s content with `bytes` atomically, without the syncs: a crash of the
/// process finds the old version or the new one, as with [`write`]; a crash of the machine
/// may find an older version, or an empty file. For a position saved after every batch,
/// where two syncs per batch would bound the source's rate, with a [`write`] now and then.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    if path.file_name().is_none() {
        return Err(error(
            path,
            "cannot write",
            io::ErrorKind::InvalidInput.into(),
        ));
    }
    let tmp = temp_path(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| error(&tmp, "cannot create", e))?;
    f.write_all(bytes)
        .and_then(|()| if sync { f.sync_all() } else { Ok(()) })
        .map_err(|e| error(&tmp, "cannot write", e))?;
    drop(f);
    fs::rename(&tmp, path)
        .map_err(|e| error(path, &format!("cannot rename {} over", tmp.display()), e))?;
    if !sync {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| error(dir, "cannot sync directory", e))
}

/// The content of `path`, or `None` when there is no such file.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(error(path, "cannot read", e)),
    }
}

fn error(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn round_trip_and_absent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("positions.json");
        assert_eq!(read(&p).unwrap(), None);
        write(&p, b"[1]").unwrap();
        assert_eq!(read(&p).unwrap().as_deref(), Some(&b"[1]"[..]));
        write(&p, b"").unwrap();
        assert_eq!(read(&p).unwrap().as_deref(), Some(&b""[..]));
        write(&p, b"[1, 2]").unwrap();
        assert_eq!(read(&p).unwrap().as_deref(), Some(&b"[1, 2]"[..]));
        // Nothing but the target is left in the directory.
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["positions.json"]);
    }

    #[test]
    fn a_leftover_temp_file_is_ignored_then_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tracker");
        // A crash in the middle of the first write: only half a temp file.
        fs::write(temp_path(&p), b"{\"half").unwrap();
        assert_eq!(read(&p).unwrap(), None);
        write(&p, b"v1").unwrap();
        // ... and of a later one.
        fs::write(temp_path(&p), b"v2, but not all of").unwrap();
        assert_eq!(read(&p).unwrap().as_deref(), Some(&b"v1"[..]));
        write(&p, b"v3").unwrap();
        assert_eq!(read(&p).unwrap().as_deref(), Some(&b"v3"[..]));
        assert!(!temp_path(&p).exists());
    }

    #[test]
    fn temp_file_is_a_hidden_sibling() {
        assert_eq!(
            temp_path(Path::new("/var/spool/.flumespool/tracker")),
            Path::new("/var/spool/.flumespool/.tracker.tmp")
        );
        assert_eq!(temp_path(Path::new("pos")), Path::new(".pos.tmp"));
    }

    #[test]
    fn errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no-such-dir").join("pos");
        let e = write(&p, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("no-such-dir"), "{e}");
        // A directory where the file should be.
        let e = read(d.path()).unwrap_err();
        assert!(e.to_string().contains(&*d.path().to_string_lossy()), "{e}");
    }

    /// A reader never sees a version half-written: each version is 1 MiB of one byte,
    /// and every read must be all one byte, at full length. The writer goes on until the
    /// reader has read many times, so reads and writes overlap whatever the disk's speed.
    #[test]
    fn a_concurrent_reader_only_sees_whole_versions() {
        const LEN: usize = 1 << 20;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        write(&p, &vec![0u8; LEN]).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let reader = std::thread::spawn({
            let (p, done, reads) = (p.clone(), done.clone(), reads.clone());
            move || {
                let mut versions = std::collections::BTreeSet::new();
                while !done.load(Ordering::Relaxed) {
                    let b = read(&p).unwrap().expect("the target always exists");
                    assert_eq!(b.len(), LEN, "a partial version");
                    assert!(b.iter().all(|&x| x == b[0]), "a mix of versions");
                    versions.insert(b[0]);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                versions.len()
            }
        });
        let mut writes = 0usize;
        // (Until the reader is done, too: if it fails, its panic is the test's.)
        while (writes < 40 || reads.load(Ordering::Relaxed) < 100) && !reader.is_finished() {
            writes += 1;
            write(&p, &vec![(writes % 250) as u8 + 1; LEN]).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let seen = reader.join().unwrap();
        assert!(seen > 1, "{writes} writes, reads saw {seen} versions");
    }
}
