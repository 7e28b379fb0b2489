//! The file channel's durable put path next to the disk's own speed, in one run:
//!
//! - `wal_put_commit/<size>x<batch>`: one put transaction of `batch` events of `size`
//!   bytes, acknowledged only after its group commit's fdatasync (fsyncPerTransaction),
//!   then taken and committed so the channel stays small. One producer: each put pays
//!   for its own sync. `..._8_producers` runs eight producers at once, so one sync
//!   covers several transactions (group commit). `..._4MiB_segments` uses 4 MiB segments,
//!   so a new segment is needed every few transactions: what rolling costs shows.
//! - `disk_fdatasync/<size>x<batch>`: the same number of bytes the WAL writes for that
//!   batch (frames included), written sequentially with pwrite into a fallocated file
//!   and fdatasync'ed each time: the disk's own durable sequential bandwidth.
//!
//! Throughput is in event body bytes for both, so the MB/s figures compare directly.
//! Set FLUME_FAST_BENCH_DIR to put the files on the disk you care about (default: a
//! temporary directory under target/).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flume_fast::channel::wal::record;
use flume_fast::channel::{Channel, WalChannel, WalConfig};
use flume_fast::event::Event;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEGMENT: usize = 64 << 20;

fn bench_root() -> tempfile::TempDir {
    let base = std::env::var_os("FLUME_FAST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn cfg(root: &Path, segment_size: usize) -> WalConfig {
    WalConfig {
        checkpoint_dir: root.join("ckpt"),
        data_dirs: vec![root.join("data")],
        capacity: 1_000_000,
        transaction_capacity: 1000,
        checkpoint_interval: Duration::from_secs(30),
        segment_size,
        minimum_required_space: 0,
        keep_alive: Duration::from_secs(3),
        checkpoint_on_close: true,
        fsync_per_transaction: true,
        fsync_interval: Duration::from_secs(5),
        notes: Vec::new(),
    }
}

fn batch(size: usize, n: usize) -> Vec<Event> {
    let body = Bytes::from(vec![b'x'; size]);
    (0..n).map(|_| Event::new(body.clone())).collect()
}

/// Bytes the WAL appends for one put transaction of this batch.
fn wal_bytes(size: usize, n: usize) -> usize {
    let e = Event::new(Bytes::from(vec![b'x'; size]));
    record::frame_len(record::put_payload_len(&e)) * n + record::frame_len(9)
}

fn put_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_put_commit");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (size, n, producers, segment) in [
        (100, 100, 1, SEGMENT),
        (100, 1000, 1, SEGMENT),
        (1024, 100, 1, SEGMENT),
        (1024, 1000, 1, SEGMENT),
        (1024, 1000, 1, 4 << 20),
        (100, 100, 8, SEGMENT),
        (1024, 100, 8, SEGMENT),
    ] {
        g.throughput(Throughput::Bytes((size * n * producers) as u64));
        let mut name = if producers == 1 {
            format!("{size}x{n}")
        } else {
            format!("{size}x{n}_{producers}_producers")
        };
        if segment != SEGMENT {
            name += &format!("_{}MiB_segments", segment >> 20);
        }
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let root = bench_root();
                let cfg = cfg(root.path(), segment);
                tokio_uring::start(async move {
                    let ch = Channel::Wal(WalChannel::open("bench", &cfg, 0, 1).unwrap());
                    let events = batch(size, n);
                    let t = Instant::now();
                    for _ in 0..iters {
                        let mut tasks = Vec::new();
                        for _ in 0..producers {
                            let (ch, ev) = (ch.clone(), events.clone());
                            tasks.push(tokio_uring::spawn(async move {
                                ch.put(ev).await.map_err(|(e, _)| e).unwrap();
                            }));
                        }
                        for t in tasks {
                            t.await.unwrap();
                        }
                        while !ch.is_empty() {
                            ch.take(n).commit();
                        }
                    }
                    let took = t.elapsed();
                    ch.close().await;
                    took
                })
            })
        });
    }
    g.finish();
}

fn disk_fdatasync(c: &mut Criterion) {
    let mut g = c.benchmark_group("disk_fdatasync");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (size, n) in [(100, 100), (100, 1000), (1024, 100), (1024, 1000)] {
        let write = wal_bytes(size, n);
        g.throughput(Throughput::Bytes((size * n) as u64));
        g.bench_function(format!("{size}x{n}"), |b| {
            b.iter_custom(|iters| {
                let root = bench_root();
                let buf = vec![b'x'; write];
                let mut file = None;
                let mut pos = SEGMENT;
                let mut k = 0;
                let t = Instant::now();
                for _ in 0..iters {
                    if pos + write > SEGMENT {
                        // A fresh preallocated file, as the WAL rolls to a new segment.
                        let f = std::fs::File::create(root.path().join(format!("f{k}"))).unwrap();
                        k += 1;
                        let rc = unsafe {
                            libc::fallocate(
                                std::os::unix::io::AsRawFd::as_raw_fd(&f),
                                0,
                                0,
                                SEGMENT as libc::off_t,
                            )
                        };
                        assert_eq!(rc, 0);
                        file = Some(f);
                        pos = 0;
                    }
                    let f = file.as_ref().unwrap();
                    f.write_all_at(&buf, pos as u64).unwrap();
                    f.sync_data().unwrap();
                    pos += write;
                }
                t.elapsed()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, disk_fdatasync, put_commit);
criterion_main!(benches);
