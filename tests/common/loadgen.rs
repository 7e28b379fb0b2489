//! `flume-fast loadgen --unique` as a child process, for tests that check delivery event
//! by event: it keeps sending through agent deaths and refusals, and writes one line per
//! batch outcome to `acked.log`.

use super::BIN;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Loadgen {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One line of loadgen's acked log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Batch {
    pub ok: bool,
    pub failed: bool,
    pub conn: usize,
    pub first: u64,
    pub end: u64,
}

impl Loadgen {
    /// `connections` × `batch` events of `size` bytes, logged to `<dir>/acked.log`.
    pub fn start(dir: &Path, port: u16, connections: u32, batch: u32, size: usize) -> Loadgen {
        let log = dir.join("acked.log");
        let child = Command::new(BIN)
            .args(["loadgen", "-p", &port.to_string(), "--unique"])
            .args(["--timeout", "5"])
            .args(["-c", &connections.to_string(), "-b", &batch.to_string()])
            .args(["-s", &size.to_string(), "-d", "600", "--acked-log"])
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Loadgen {
            child: Some(child),
            log,
        }
    }

    pub fn batches(&self) -> Vec<Batch> {
        read_batches(&self.log)
    }

    /// Every event the log says was acknowledged, sorted, once each.
    pub fn acked(&self) -> Vec<(usize, u64)> {
        acknowledged(&self.batches())
    }

    /// Waits (bounded) until the acked log has a line past the first `after` lines that
    /// satisfies `want`; returns the line count then. The log is a file: polled.
    pub fn wait_for(&self, after: usize, what: &str, want: impl Fn(&Batch) -> bool) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let b = self.batches();
            if b.iter().skip(after).any(&want) {
                return b.len();
            }
            assert!(Instant::now() < deadline, "loadgen logged no {what} batch");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM (loadgen finishes the batches in flight), then its JSON summary.
    pub fn stop(mut self) -> serde_json::Value {
        let child = self.child.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "loadgen failed: {err}");
        println!("loadgen: {}", err.trim());
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The lines of loadgen's acked log.
pub fn read_batches(log: &Path) -> Vec<Batch> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // Only whole lines: loadgen may be writing the last one right now.
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    whole
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 4, "acked log line {l:?}");
            Batch {
                ok: f[0] == "ok",
                failed: f[0] == "failed",
                conn: f[1].parse().unwrap(),
                first: f[2].parse().unwrap(),
                end: f[3].parse().unwrap(),
            }
        })
        .collect()
}

/// Every event of every batch loadgen logged as acknowledged.
pub fn acknowledged(batches: &[Batch]) -> Vec<(usize, u64)> {
    let mut v: Vec<_> = batches
        .iter()
        .filter(|b| b.ok)
        .flat_map(|b| (b.first..b.end).map(move |s| (b.conn, s)))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}
