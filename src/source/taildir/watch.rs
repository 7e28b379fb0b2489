//! Wakes the TAILDIR source when a name appears in one of its groups' directories (a new
//! file, or one renamed into it by a rotation), through inotify on the shard's own event
//! loop, so new files are followed at once instead of at the next poll.
//!
//! Appends to files already followed are still found by the poll every
//! `backoffSleepIncrement`, as in Flume: waking on every write would turn a steady writer
//! into one small batch per write. Where inotify cannot be had (its per-user limit of
//! instances or watches reached, or a file system that does not report changes) the
//! source says so once and polls alone.

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
    /// Watches `dirs` for names created in or moved into them.
    pub fn new<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> io::Result<DirWatch> {
        let inotify = Inotify::init()?;
        for dir in dirs {
            inotify
                .watches()
                .add(dir, WatchMask::CREATE | WatchMask::MOVED_TO)
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
    fn a_created_or_renamed_in_name_wakes_it_and_an_append_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let existing = dir.path().join("a.log");
        std::fs::write(&existing, "x\n").unwrap();
        tokio_uring::start(async {
            let mut w = DirWatch::new([dir.path()]).unwrap();
            // An append to a file already there is not a new name.
            std::fs::write(&existing, "x\ny\n").unwrap();
            assert!(quiet(&mut w).await, "an append woke the watch");
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
