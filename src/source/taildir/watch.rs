//! Wakes the TAILDIR source when a name appears in one of its groups' directories (a new
//! file, or one renamed into it by a rotation) or a writer closes a file there, through
//! inotify on the shard's own event loop, so new files are followed at once instead of at
//! the next poll.
//!
//! The close matters because a new name is often seen before its first write lands (the
//! writer's `open` makes the name, its `write` comes after): a writer that writes and
//! closes wakes the source again once the data is there. Appends by writers that keep the
//! file open are still found by the poll every `backoffSleepIncrement`, as in Flume: waking
//! on every write would turn a steady writer into one small batch per write. Where inotify
//! cannot be had (its per-user limit of instances or watches reached, or a file system that
//! does not report changes) the source says so once and polls alone.

use inotify::{Inotify, WatchMask};
use std::io;
use std::path::Path;
use tokio::io::unix::AsyncFd;

/// An inotify instance watching the groups' directories for new names.
pub struct DirWatch {
    fd: AsyncFd<Inotify>,
    buf: Vec<u8>,
}

impl DirWatch {
    /// Watches `dirs` for names created in or moved into them, and for files closed after
    /// writing.
    pub fn new<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> io::Result<DirWatch> {
        let inotify = Inotify::init()?;
        for dir in dirs {
            inotify
                .watches()
                .add(
                    dir,
                    WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::CLOSE_WRITE,
                )
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        }
        // SAFETY: `Inotify` owns its descriptor from `init` until it is dropped, which
        // happens only with the `AsyncFd`, and `as_raw_fd` always returns that one.
        let fd = unsafe { AsyncFd::register(inotify) }.map_err(io::Error::from)?;
        Ok(DirWatch {
            fd,
            buf: vec![0; 4096],
        })
    }

    /// Waits until some name appeared since the last call, and takes every event queued
    /// meanwhile (one wake for a burst of new files).
    pub async fn changed(&mut self) -> io::Result<()> {
        loop {
            let mut ready = self.fd.readable_mut().await?;
            let mut got = false;
            loop {
                match ready.get_inner_mut().read_events(&mut self.buf) {
                    Ok(mut events) => got |= events.next().is_some(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready.clear_ready();
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if got {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether nothing wakes the watch for a while.
    async fn quiet(w: &mut DirWatch) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(200), w.changed())
            .await
            .is_err()
    }

    #[test]
    fn a_new_name_or_a_close_after_writing_wakes_it_and_an_append_does_not() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let existing = dir.path().join("a.log");
        std::fs::write(&existing, "x\n").unwrap();
        tokio_uring::start(async {
            let mut writer = std::fs::OpenOptions::new()
                .append(true)
                .open(&existing)
                .unwrap();
            let mut w = DirWatch::new([dir.path()]).unwrap();
            // An append by a writer that keeps the file open is left to the poll...
            writer.write_all(b"y\n").unwrap();
            assert!(quiet(&mut w).await, "an append woke the watch");
            // ...and its close, when the data is surely there, wakes the source.
            drop(writer);
            w.changed().await.unwrap();
            assert!(quiet(&mut w).await, "a wake left events behind");
            std::fs::write(dir.path().join("b.log"), "").unwrap();
            w.changed().await.unwrap();
            let moved = other.path().join("c.log");
            std::fs::write(&moved, "").unwrap();
            std::fs::rename(&moved, dir.path().join("c.log")).unwrap();
            w.changed().await.unwrap();
            assert!(quiet(&mut w).await, "a wake left events behind");
        });
    }
}
