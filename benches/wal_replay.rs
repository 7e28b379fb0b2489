//! Replay of a large file-channel log next to the disk's own sequential read bandwidth,
//! in one run (not criterion: one measurement is gigabytes, and the interesting number
//! is the cold-cache one, which a repeated sample cannot give).
//!
//! It fills a channel with committed, untaken puts (`FLUME_FAST_REPLAY_MIB`, default 1024
//! MiB of log, for each event size in `FLUME_FAST_REPLAY_SIZES`, default `1024,100`),
//! closes it, then per size:
//!
//! - `disk read`: the segment files read sequentially (1 MiB `read`s) with the page cache
//!   dropped for them first (`posix_fadvise(DONTNEED)`, no root needed): what the disk
//!   gives;
//! - `replay cold`: `WalChannel::open` on the same files, cache dropped the same way,
//!   from the checkpoint;
//! - `replay cold, no checkpoint`: the same from the segments alone;
//! - `replay warm`: again with the files in the page cache: replay's CPU cost alone.
//!
//! MB/s are of log bytes (segment files up to the written end). Set FLUME_FAST_BENCH_DIR
//! to put the files on the disk you care about (default: a temporary directory under
//! target/). Run: `cargo bench --bench wal_replay` (or `scripts/wal-bench.sh --replay`).

use bytes::Bytes;
use flume_fast::channel::{Channel, WalChannel, WalConfig};
use flume_fast::event::Event;
use std::io::Read;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEGMENT: usize = 64 << 20;
const BATCH: usize = 1000;

fn cfg(root: &Path) -> WalConfig {
    WalConfig {
        checkpoint_dir: root.join("ckpt"),
        data_dirs: vec![root.join("data")],
        capacity: 100_000_000,
        transaction_capacity: BATCH,
        checkpoint_interval: Duration::from_secs(3600),
        segment_size: SEGMENT,
        minimum_required_space: 0,
        keep_alive: Duration::from_secs(3),
        checkpoint_on_close: true,
        // Filling is set-up, not what is measured; the close syncs everything.
        fsync_per_transaction: false,
        fsync_interval: Duration::from_secs(5),
        notes: Vec::new(),
    }
}

fn segments(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("data").join("shard-0");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

/// Drops the page cache of `paths` (they are clean: written and synced).
fn evict(paths: &[PathBuf]) {
    for p in paths {
        let f = std::fs::File::open(p).unwrap();
        f.sync_all().unwrap();
        // SAFETY: fadvise on a descriptor we own.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
    }
}

fn fill(root: &Path, size: usize, log_bytes: u64) -> u64 {
    let cfg = cfg(root);
    tokio_uring::start(async move {
        let ch = Channel::Wal(WalChannel::open("bench", &cfg, 0, 1).unwrap());
        let body = Bytes::from(vec![b'x'; size]);
        let events: Vec<Event> = (0..BATCH).map(|_| Event::new(body.clone())).collect();
        // Frame overhead: 8 header + 19 put fields, aligned to 8.
        let per_event = ((size + 27 + 7) & !7) as u64;
        let mut n = 0u64;
        while n * per_event < log_bytes {
            ch.put(events.clone()).await.map_err(|(e, _)| e).unwrap();
            n += BATCH as u64;
        }
        ch.close().await;
        n
    })
}

/// Opens the channel (replay) and returns how long it took and how many events it holds.
fn replay(root: &Path) -> (Duration, usize) {
    let cfg = cfg(root);
    tokio_uring::start(async move {
        let t = Instant::now();
        let ch = WalChannel::open("bench", &cfg, 0, 1).unwrap();
        let took = t.elapsed();
        let n = ch.len();
        ch.close().await;
        (took, n)
    })
}

fn disk_read(paths: &[PathBuf]) -> (Duration, u64) {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let t = Instant::now();
    for p in paths {
        let mut f = std::fs::File::open(p).unwrap();
        // SAFETY: fadvise on a descriptor we own.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    (t.elapsed(), total)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it, as a
    // smoke test that keeps the harness working: a few MiB, not a gigabyte.
    let measuring = std::env::args().any(|a| a == "--bench");
    let mib: u64 = std::env::var("FLUME_FAST_REPLAY_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if measuring { 1024 } else { 8 });
    let sizes: Vec<usize> = std::env::var("FLUME_FAST_REPLAY_SIZES")
        .unwrap_or_else(|_| "1024,100".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("FLUME_FAST_REPLAY_SIZES: sizes in bytes")
        })
        .collect();
    let base = std::env::var_os("FLUME_FAST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&base).unwrap();
    for size in sizes {
        let root = tempfile::tempdir_in(&base).unwrap();
        let events = fill(root.path(), size, mib << 20);
        let segs = segments(root.path());
        let files: u64 = segs
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        println!(
            "replay, {size}-byte events: {events} events, {} segments, {:.0} MiB of segment files",
            segs.len(),
            files as f64 / (1 << 20) as f64
        );
        evict(&segs);
        let (d, bytes) = disk_read(&segs);
        println!(
            "  {:<34} {:>8.2} s {:>8.0} MB/s",
            "disk read (sequential, cold)",
            d.as_secs_f64(),
            mbps(bytes, d)
        );
        let mut rows = Vec::new();
        evict(&segs);
        rows.push(("replay cold, from the checkpoint", replay(root.path())));
        let ckpt = root.path().join("ckpt/shard-0/checkpoint");
        evict(&segments(root.path()));
        std::fs::remove_file(&ckpt).unwrap();
        rows.push(("replay cold, segments alone", replay(root.path())));
        rows.push(("replay warm, from the checkpoint", replay(root.path())));
        for (name, (d, n)) in rows {
            assert_eq!(n as u64, events, "{name}: replayed {n} of {events} events");
            println!(
                "  {name:<34} {:>8.2} s {:>8.0} MB/s {:>10.0} events/s",
                d.as_secs_f64(),
                mbps(files, d),
                n as f64 / d.as_secs_f64()
            );
        }
    }
}
