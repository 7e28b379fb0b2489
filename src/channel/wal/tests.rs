//! The file channel against real files: transactions, restarts (a runtime that ends
//! without `close` is a crash as far as the log can tell), corruption, disk space, locks,
//! segment deletion and orphan adoption.

use super::config::WalConfig;
use super::segment::{self, SegmentFile};
use super::tools;
use super::WalChannel;
use crate::channel::{Channel, ChannelError};
use crate::event::Event;
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn cfg(root: &Path) -> WalConfig {
    WalConfig {
        checkpoint_dir: root.join("ckpt"),
        data_dirs: vec![root.join("data")],
        capacity: 100_000,
        transaction_capacity: 1000,
        checkpoint_interval: Duration::from_secs(3600),
        segment_size: 64 * 1024,
        minimum_required_space: 0,
        keep_alive: Duration::ZERO,
        checkpoint_on_close: true,
        fsync_per_transaction: true,
        fsync_interval: Duration::from_secs(5),
        notes: Vec::new(),
    }
}

fn evs(range: std::ops::Range<u32>) -> Vec<Event> {
    range
        .map(|i| {
            let mut e = Event::new(Bytes::from(format!("event-{i:06}")));
            e.headers.set("n", i.to_string());
            e
        })
        .collect()
}

fn bodies(evs: &[Event]) -> Vec<String> {
    evs.iter()
        .map(|e| String::from_utf8(e.body.to_vec()).unwrap())
        .collect()
}

fn names(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("event-{i:06}")).collect()
}

/// Runs `f` on a fresh io_uring runtime with the shard's channel opened; returning from
/// it without `close` leaves the log as a crash would.
fn with_channel<T, F: std::future::Future<Output = T>>(
    c: &WalConfig,
    shard: usize,
    shards: usize,
    f: impl FnOnce(Channel) -> F,
) -> T {
    tokio_uring::start(async {
        let ch = Channel::Wal(WalChannel::open("c1", c, shard, shards).unwrap());
        f(ch).await
    })
}

/// Ends a test runtime with a take still open. Dropping it rolls back in memory only and
/// writes nothing, so the log is left exactly as a crash would leave it.
fn crash_with(tx: crate::channel::TakeTx) {
    drop(tx);
}

/// Waits until the take commits so far are on disk: a crash before that only delivers
/// their events again (see `take_records_reach_the_disk_with_the_next_sync`).
async fn settle(ch: &Channel) {
    let Channel::Wal(w) = ch else { unreachable!() };
    w.flush().await.unwrap();
}

/// Takes everything and commits it, on disk.
async fn drain(ch: &Channel) -> Vec<String> {
    let tx = ch.take(usize::MAX);
    let out = bodies(&tx.events);
    tx.commit();
    settle(ch).await;
    out
}

async fn put(ch: &Channel, range: std::ops::Range<u32>) {
    ch.put(evs(range)).await.unwrap();
}

fn shard0(root: &Path) -> PathBuf {
    root.join("data/shard-0")
}

#[test]
fn committed_puts_survive_a_crash_in_order_and_takes_stay_taken() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..10).await;
        put(&ch, 10..20).await;
        let tx = ch.take(5);
        assert_eq!(bodies(&tx.events), names(0..5));
        assert_eq!(tx.events[0].headers.get("n"), Some("0"));
        tx.commit();
        settle(&ch).await;
        // Taken, never committed: the crash (end of the runtime) comes first.
        let held = ch.take(3);
        assert_eq!(bodies(&held.events), names(5..8));
        crash_with(held);
    });
    with_channel(&c, 0, 1, |ch| async move {
        let tx = ch.take(100);
        assert_eq!(bodies(&tx.events), names(5..20));
        assert_eq!(tx.events[3].headers.get("n"), Some("8"));
        tx.commit();
        settle(&ch).await;
    });
    with_channel(&c, 0, 1, |ch| async move {
        assert!(ch.is_empty());
    });
}

#[test]
fn rollback_returns_events_before_newer_ones_and_clean_close_keeps_the_queue() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..4).await;
        let tx = ch.take(3);
        put(&ch, 4..6).await;
        tx.rollback();
        drop(ch.take(1)); // dropped = rolled back
        let tx = ch.take(2);
        assert_eq!(bodies(&tx.events), names(0..2));
        tx.commit();
        ch.close().await;
    });
    let (r, ck) = tools::inspect(
        &shard0(root.path()),
        Some(&root.path().join("ckpt/shard-0")),
    )
    .unwrap();
    assert!(r.used_checkpoint && ck.is_some());
    assert_eq!(r.live.len(), 4);
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(drain(&ch).await, names(2..6));
    });
}

#[test]
fn capacity_counts_in_flight_and_a_refused_put_hands_the_events_back() {
    let root = tempfile::tempdir().unwrap();
    let mut c = cfg(root.path());
    c.capacity = 4;
    c.transaction_capacity = 4;
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..3).await;
        let tx = ch.take(2);
        let (err, back) = ch.put(evs(3..5)).await.unwrap_err();
        assert!(
            matches!(err, ChannelError::Full { capacity: 4, .. }),
            "{err}"
        );
        assert_eq!(bodies(&back), names(3..5));
        let (err, _) = ch.put(evs(0..5)).await.unwrap_err();
        assert!(matches!(err, ChannelError::TxTooLarge { .. }), "{err}");
        tx.commit();
        put(&ch, 3..5).await;
        assert_eq!(drain(&ch).await, names(2..5));
    });
}

#[test]
fn below_minimum_required_space_puts_fail_cleanly_and_takes_go_on() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..3).await;
    });
    let mut low = c.clone();
    low.minimum_required_space = u64::MAX / 2; // more than any disk has
    with_channel(&low, 0, 1, |ch| async move {
        let (err, back) = ch.put(evs(3..5)).await.unwrap_err();
        assert!(matches!(err, ChannelError::DiskSpace { .. }), "{err}");
        assert!(err.to_string().contains("minimumRequiredSpace"), "{err}");
        assert_eq!(bodies(&back), names(3..5));
        assert_eq!(ch.len(), 3, "a refused put adds nothing");
        let tx = ch.take(1);
        assert_eq!(bodies(&tx.events), names(0..1));
        tx.commit();
        settle(&ch).await;
    });
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 3..5).await;
        assert_eq!(drain(&ch).await, names(1..5));
    });
}

#[test]
fn a_second_channel_on_the_same_directories_refuses_to_start() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    tokio_uring::start(async {
        let _first = WalChannel::open("c1", &c, 0, 1).unwrap();
        let err = WalChannel::open("c2", &c, 0, 1)
            .err()
            .expect("second open must fail");
        let msg = err.to_string();
        assert!(
            msg.contains("in use by another flume-fast agent or channel"),
            "{msg}"
        );
        assert!(msg.contains("in_use.lock"), "{msg}");
    });
}

/// 4000 events put in batches of 100 over about 8 segments of 64 KiB, the log left as a
/// crash leaves it: the configuration and the shard's data directory.
fn spanning_log(root: &Path) -> (WalConfig, PathBuf) {
    let c = cfg(root);
    with_channel(&c, 0, 1, |ch| async move {
        for i in 0..40 {
            put(&ch, i * 100..(i + 1) * 100).await;
        }
    });
    (c, shard0(root))
}

#[test]
fn consumed_segments_are_deleted_at_checkpoint_and_replay_spans_segments() {
    let root = tempfile::tempdir().unwrap();
    let (c, dir) = spanning_log(root.path());
    let before = super::segment::list(&dir).unwrap().len();
    assert!(before >= 4, "expected several segments, got {before}");
    with_channel(&c, 0, 1, |ch| async move {
        let mut got = Vec::new();
        while !ch.is_empty() {
            got.extend(drain(&ch).await);
        }
        assert_eq!(got, names(0..4000));
        put(&ch, 5000..5001).await;
        let Channel::Wal(w) = &ch else { unreachable!() };
        w.checkpoint().await.unwrap();
    });
    let after = super::segment::list(&dir).unwrap().len();
    assert_eq!(
        after, 1,
        "only the active segment remains ({before} before)"
    );
    let kept = free_segments(&dir);
    assert!(
        kept.len() <= super::log::FREE_KEEP,
        "one checkpoint gave up {} segments and kept {kept:?} for reuse",
        before - 1
    );
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(drain(&ch).await, names(5000..5001));
    });
}

#[test]
fn a_restart_keeps_segments_it_finds_consumed_for_reuse() {
    let root = tempfile::tempdir().unwrap();
    let (c, dir) = spanning_log(root.path());
    // Drained and synced, then a crash: no roll in this run, so no early checkpoint, and
    // every segment but the last is consumed with nothing having freed it.
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(drain(&ch).await.len(), 1000);
        while !ch.is_empty() {
            drain(&ch).await;
        }
        put(&ch, 5000..5001).await;
    });
    let before = segment::list(&dir).unwrap().len();
    assert!(before >= 4, "expected consumed segments left, got {before}");
    assert!(free_segments(&dir).is_empty());
    let d = dir.clone();
    with_channel(&c, 0, 1, |ch| async move {
        // Nothing has yielded yet, so the preallocator has not made a spare of one.
        assert_eq!(
            segment::list(&d).unwrap().len(),
            1,
            "only the active segment"
        );
        assert_eq!(free_segments(&d).len(), super::log::FREE_KEEP);
        assert_eq!(drain(&ch).await, names(5000..5001));
    });
}

fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

#[test]
fn consumed_segments_are_reused_and_what_they_held_never_replays() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    let dir = shard0(root.path());
    let d = dir.clone();
    let last = with_channel(&c, 0, 1, |ch| async move {
        // (segment name, inode) of every segment seen; reuse shows as an inode that comes
        // back under a later segment's name.
        let mut seen: Vec<(String, u64)> = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut i = 0;
        let reused = loop {
            // A sink three batches behind: segments are consumed and freed a little after
            // the log rolls past them, and many of their puts are taken (the take record
            // written) only in the next segment. A segment's earlier use thus holds
            // committed puts with no take after them, which would come back as live
            // events if anything of that use were replayed.
            put(&ch, i * 100..(i + 1) * 100).await;
            if i >= 3 {
                let tx = ch.take(100);
                assert_eq!(bodies(&tx.events), names((i - 3) * 100..(i - 2) * 100));
                tx.commit();
            }
            i += 1;
            let mut found = None;
            for (_, path) in super::segment::list(&d).unwrap() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let ino = inode(&path);
                if let Some((old, _)) = seen.iter().find(|(n, o)| *o == ino && *n != name) {
                    found = Some((old.clone(), name.clone()));
                }
                if !seen.iter().any(|(n, _)| *n == name) {
                    seen.push((name, ino));
                }
            }
            if let Some(f) = found {
                break f;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no segment was reused in {i} batches: {seen:?}"
            );
        };
        assert_eq!(drain(&ch).await, names((i - 3) * 100..i * 100));
        // Fill the reused segment partly: after these, its earlier use's frames follow.
        put(&ch, 100_000..100_010).await;
        put(&ch, 100_010..100_020).await;
        let held = ch.take(5);
        assert_eq!(bodies(&held.events), names(100_000..100_005));
        crash_with(held);
        reused
    });
    let (old, new) = last;
    assert!(
        super::segment::list(&dir).unwrap().iter().any(|(_, p)| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            == new),
        "{new} (once {old}) is still in the log"
    );
    // From the segments alone, no checkpoint to hide behind: only what this use wrote.
    let (r, _) = tools::inspect(&dir, None).unwrap();
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let live: Vec<String> = r
        .live
        .into_values()
        .map(|e| bodies(&[e]).remove(0))
        .collect();
    assert_eq!(live, names(100_000..100_020));
    let mut report = String::new();
    let sum = tools::verify(&root.path().join("data"), false, &mut report).unwrap();
    assert_eq!(sum.damaged, 0, "{report}");
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(drain(&ch).await, names(100_000..100_020));
        put(&ch, 200_000..200_100).await;
    });
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(drain(&ch).await, names(200_000..200_100));
    });
}

/// Bodies from empty to several KiB, each with content of its own, some with a header.
fn mixed(range: std::ops::Range<u32>) -> Vec<Event> {
    const SIZES: [usize; 7] = [10, 600, 3000, 100, 512, 511, 0];
    range
        .map(|i| {
            let n = SIZES[i as usize % SIZES.len()];
            let body: Vec<u8> = (0..n).map(|j| (i as usize * 31 + j) as u8).collect();
            let mut e = Event::new(Bytes::from(body));
            if i % 3 == 0 {
                e.headers.set("n", i.to_string());
            }
            e
        })
        .collect()
}

#[test]
fn bodies_of_mixed_sizes_read_back_the_same_across_rolls_and_restarts() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    let dir = shard0(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        for b in 0..10 {
            ch.put(mixed(b * 50..(b + 1) * 50)).await.unwrap();
        }
        let tx = ch.take(120);
        assert_eq!(tx.events, mixed(0..120));
        tx.commit();
        settle(&ch).await;
    });
    assert!(
        super::segment::list(&dir).unwrap().len() > 2,
        "the batches span several segments"
    );
    with_channel(&c, 0, 1, |ch| async move {
        let tx = ch.take(1000);
        assert_eq!(tx.events, mixed(120..500));
        tx.commit();
    });
}

fn free_segments(dir: &Path) -> Vec<String> {
    named(dir, super::segment::FREE_SUFFIX)
}

#[test]
fn free_segments_are_kept_across_restarts_and_given_back_when_disk_runs_low() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    let dir = shard0(root.path());
    let d = dir.clone();
    with_channel(&c, 0, 1, |ch| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut i = 0;
        while free_segments(&d).is_empty() {
            put(&ch, i * 100..(i + 1) * 100).await;
            drain(&ch).await;
            i += 1;
            assert!(std::time::Instant::now() < deadline, "no free segment kept");
        }
        put(&ch, 0..3).await;
    });
    let kept = free_segments(&dir);
    assert!(
        (1..=super::log::FREE_KEEP).contains(&kept.len()),
        "{kept:?}"
    );
    let mut low = c.clone();
    low.minimum_required_space = u64::MAX / 2; // more than any disk has
    let d = dir.clone();
    with_channel(&low, 0, 1, |ch| async move {
        // Nothing has yielded yet, so the preallocator has not made a spare of one. The
        // last run may have ended with a checkpoint's rename still running in the kernel
        // (io_uring finishes it after the ring is gone), so one more may have joined them.
        let now = free_segments(&d);
        assert!(
            kept.iter().all(|k| now.contains(k)),
            "a restart keeps them: {kept:?} {now:?}"
        );
        assert!(now.len() <= super::log::FREE_KEEP, "{now:?}");
        let (err, _) = ch.put(evs(3..5)).await.unwrap_err();
        assert!(matches!(err, ChannelError::DiskSpace { .. }), "{err}");
        assert_eq!(drain(&ch).await, names(0..3));
    });
    assert_eq!(free_segments(&dir), Vec::<String>::new());
}

#[test]
fn a_log_written_before_segment_reuse_replays_and_goes_on_in_a_new_segment() {
    use super::record::{self, Record};
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    let dir = shard0(root.path());
    std::fs::create_dir_all(&dir).unwrap();
    // A version 1 segment as the log wrote it before frames carried their LSN: three
    // committed puts, a take of the first, and an uncommitted put.
    let mut data = segment::encode_header_version(1, 0, 0).to_vec();
    let frame = |r: &Record| record::to_v1(&record::encode_small(r, 0));
    let put_v1 = |tx: u64, seq: u64, e: &Event| {
        let mut b = vec![0u8; record::frame_len(record::put_payload_len(e))];
        record::encode_put(&mut b, 0, tx, seq, e);
        record::to_v1(&b)
    };
    for (seq, e) in evs(0..3).iter().enumerate() {
        data.extend(put_v1(1, seq as u64, e));
    }
    data.extend(frame(&Record::Commit { tx: 1 }));
    data.extend(frame(&Record::Take {
        tx: 2,
        runs: vec![(0, 1)],
    }));
    data.extend(frame(&Record::Commit { tx: 2 }));
    data.extend(put_v1(3, 3, &evs(3..4)[0]));
    data.resize(64 * 1024, 0);
    std::fs::write(dir.join(segment::file_name(0)), &data).unwrap();
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 10..12).await;
    });
    let segs = super::segment::list(&dir).unwrap();
    assert_eq!(
        segs.len(),
        2,
        "the old segment is not appended to: {segs:?}"
    );
    assert_eq!(segs[1].0, 64 * 1024);
    with_channel(&c, 0, 1, |ch| async move {
        let mut want = names(1..3);
        want.extend(names(10..12));
        assert_eq!(drain(&ch).await, want);
    });
}

/// Waits (bounded) until the channel's preallocator has the next segment ready.
async fn spare_ready(w: &WalChannel) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !w.spare_ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "no spare segment made"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn spares(dir: &Path) -> Vec<String> {
    named(dir, super::segment::SPARE_SUFFIX)
}

/// The names of the files in `dir` ending in `suffix`.
fn named(dir: &Path, suffix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect()
}

#[test]
fn rolls_take_the_spare_made_ahead_and_a_crash_leaves_no_spare_behind() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    let dir = shard0(root.path());
    let d = dir.clone();
    with_channel(&c, 0, 1, |ch| async move {
        let Channel::Wal(w) = &ch else { unreachable!() };
        let mut segments = 1;
        for i in 0..40 {
            spare_ready(w).await;
            put(&ch, i * 100..(i + 1) * 100).await; // ~ 8 segments of 64 KiB
            segments = super::segment::list(&d).unwrap().len();
        }
        assert!(segments >= 4, "expected several segments, got {segments}");
        assert_eq!(
            w.blocking_rolls(),
            0,
            "a roll created its segment on the loop"
        );
        spare_ready(w).await;
        assert_eq!(spares(&d).len(), 1);
        // The runtime ends without close: a crash, with a spare on disk.
    });
    with_channel(&c, 0, 1, |ch| async move {
        let mut got = Vec::new();
        while !ch.is_empty() {
            got.extend(drain(&ch).await);
        }
        assert_eq!(got, names(0..4000));
        // Only possible once the crashed run's spare (same name) is gone.
        let Channel::Wal(w) = &ch else { unreachable!() };
        spare_ready(w).await;
        ch.close().await;
    });
    assert_eq!(
        spares(&dir),
        Vec::<String>::new(),
        "close removes the spare"
    );
}

/// The byte offset of the put record holding `body` in the only segment of `dir`.
fn find(dir: &Path, body: &str) -> (PathBuf, usize) {
    for (_, path) in super::segment::list(dir).unwrap() {
        let data = std::fs::read(&path).unwrap();
        if let Some(p) = data.windows(body.len()).position(|w| w == body.as_bytes()) {
            return (path, p);
        }
    }
    panic!("{body} not found");
}

#[test]
fn a_flipped_bit_in_a_committed_record_is_reported_and_skipped() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..50).await;
    });
    let (path, at) = find(&shard0(root.path()), "event-000020");
    let mut data = std::fs::read(&path).unwrap();
    data[at + 3] ^= 0x04;
    std::fs::write(&path, &data).unwrap();
    // A replay from the segments alone must find it too.
    std::fs::remove_file(root.path().join("ckpt/shard-0/checkpoint")).unwrap();

    let mut report = String::new();
    let sum = tools::verify(&root.path().join("data"), false, &mut report).unwrap();
    assert_eq!(sum.damaged, 1, "{report}");
    assert!(report.contains("crc mismatch"), "{report}");
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        report.contains(name),
        "the report names the segment: {report}"
    );

    let (r, _) = tools::inspect(&shard0(root.path()), None).unwrap();
    assert_eq!(r.issues.len(), 1, "{:?}", r.issues);
    assert!(r.issues[0].offset > 0 && r.issues[0].segment == name);
    with_channel(&c, 0, 1, |ch| async move {
        let mut want = names(0..50);
        want.remove(20);
        assert_eq!(drain(&ch).await, want);
    });

    let sum = tools::verify(&root.path().join("data"), true, &mut report).unwrap();
    assert_eq!(sum.quarantined, 1, "{report}");
    let mut again = String::new();
    assert_eq!(
        tools::verify(&root.path().join("data"), false, &mut again)
            .unwrap()
            .damaged,
        0,
        "{again}"
    );
}

#[test]
fn quarantine_replaces_damage_with_padding() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..10).await;
    });
    let (path, at) = find(&shard0(root.path()), "event-000004");
    let mut data = std::fs::read(&path).unwrap();
    data[at] ^= 0xff;
    std::fs::write(&path, &data).unwrap();
    let mut report = String::new();
    let sum = tools::verify(&root.path().join("data"), true, &mut report).unwrap();
    assert_eq!((sum.damaged, sum.quarantined), (1, 1), "{report}");
    assert_eq!(
        std::fs::read_dir(shard0(root.path()).join("quarantine"))
            .unwrap()
            .count(),
        1
    );
    let mut again = String::new();
    let sum = tools::verify(&root.path().join("data"), false, &mut again).unwrap();
    assert_eq!(sum.damaged, 0, "{again}");
    let (r, _) = tools::inspect(&shard0(root.path()), None).unwrap();
    assert_eq!(r.live.len(), 9);
    assert!(r.issues.is_empty(), "{:?}", r.issues);
}

#[test]
fn a_segment_truncated_mid_record_loses_only_the_torn_transaction() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..10).await;
        put(&ch, 10..20).await;
    });
    let (path, at) = find(&shard0(root.path()), "event-000015");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(at as u64 + 4)
        .unwrap();
    std::fs::remove_file(root.path().join("ckpt/shard-0/checkpoint")).unwrap();
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(
            drain(&ch).await,
            names(0..10),
            "the torn second transaction is discarded"
        );
        put(&ch, 20..25).await; // the log goes on after the cut, and rolls to a new segment
        for i in 0..10 {
            put(&ch, 100 + i * 100..200 + i * 100).await;
        }
    });
    with_channel(&c, 0, 1, |ch| async move {
        let mut got = Vec::new();
        while !ch.is_empty() {
            got.extend(drain(&ch).await);
        }
        let mut want = names(20..25);
        want.extend(names(100..1100));
        assert_eq!(got, want);
    });
}

#[test]
fn a_damaged_or_missing_checkpoint_replays_the_same_from_segments() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..300).await;
        let tx = ch.take(120);
        tx.commit();
        let Channel::Wal(w) = &ch else { unreachable!() };
        w.checkpoint().await.unwrap();
        put(&ch, 300..400).await;
        ch.take(30).commit();
        settle(&ch).await;
        crash_with(ch.take(10));
    });
    let ck = root.path().join("ckpt/shard-0");
    let shard = shard0(root.path());
    let (with_ck, _) = tools::inspect(&shard, Some(&ck)).unwrap();
    assert!(with_ck.used_checkpoint);
    let (alone, _) = tools::inspect(&shard, None).unwrap();
    assert_eq!(with_ck.live, alone.live);
    assert_eq!(alone.live.len(), 250);

    let mut b = std::fs::read(ck.join("checkpoint")).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(ck.join("checkpoint"), &b).unwrap();
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(drain(&ch).await.len(), 250);
    });
    std::fs::remove_file(ck.join("checkpoint")).unwrap();
    with_channel(&c, 0, 1, |ch| async move {
        assert!(ch.is_empty());
    });
}

#[test]
fn fewer_shards_adopt_the_orphaned_shard_directories() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 1, 3, |ch| async move {
        put(&ch, 0..10).await;
    });
    with_channel(&c, 2, 3, |ch| async move {
        put(&ch, 10..20).await;
    });
    assert!(root.path().join("data/shard-2").exists());
    // One shard now: shard 0 adopts shards 1 and 2.
    with_channel(&c, 0, 1, |ch| async move {
        let mut got = drain(&ch).await;
        got.sort();
        assert_eq!(got, names(0..20));
    });
    assert!(!root.path().join("data/shard-1").exists());
    assert!(!root.path().join("data/shard-2").exists());
    assert!(!root.path().join("ckpt/shard-2").exists());
    with_channel(&c, 0, 1, |ch| async move {
        assert!(ch.is_empty(), "adopted events are not duplicated");
    });
}

#[test]
fn take_records_reach_the_disk_with_the_next_sync() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..10).await;
        ch.take(4).commit();
        // Crash before any sync wrote the take: at-least-once delivers them again.
    });
    with_channel(&c, 0, 1, |ch| async move {
        let tx = ch.take(4);
        assert_eq!(bodies(&tx.events), names(0..4));
        tx.commit();
        settle(&ch).await;
    });
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(drain(&ch).await, names(4..10));
    });
}

#[test]
fn direct_appends_cross_chunks_and_the_memory_budget_and_replay_the_same() {
    // 64 KiB chunks, at most four of them live: past that, batches go through the page
    // cache until the live chunks are down to half of it.
    direct_appends_switch_and_replay(64 << 10, 256 << 10, 64 << 20);
}

#[test]
fn direct_appends_reuse_the_chunks_the_queue_let_go_of() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        let Channel::Wal(w) = &ch else { unreachable!() };
        assert!(w.set_direct_limits(64 << 10, 64 << 20, 64 << 20));
        assert_eq!(w.pooled_chunks(), 0);
        for b in 0..8 {
            ch.put(mixed(b * 50..(b + 1) * 50)).await.unwrap();
        }
        let tx = ch.take(1000);
        assert_eq!(tx.events, mixed(0..400));
        tx.commit();
        settle(&ch).await;
        let kept = w.pooled_chunks();
        assert!(kept >= 64 << 10, "the chunks read are kept, {kept} bytes");
        ch.put(mixed(400..450)).await.unwrap();
        ch.put(mixed(450..500)).await.unwrap();
        assert!(w.pooled_chunks() < kept, "and used again");
        let tx = ch.take(1000);
        assert_eq!(tx.events, mixed(400..500));
        tx.commit();
    });
}

#[test]
fn direct_appends_stop_behind_a_long_queue_and_replay_the_same() {
    // Behind more than 128 KiB of queue, batches go through the page cache until it has
    // drained to half of it.
    direct_appends_switch_and_replay(64 << 10, 64 << 20, 128 << 10);
}

fn direct_appends_switch_and_replay(chunk: usize, budget: usize, ahead: usize) {
    let root = tempfile::tempdir().unwrap();
    let mut c = cfg(root.path());
    c.segment_size = 512 << 10;
    let dir = shard0(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        let Channel::Wal(w) = &ch else { unreachable!() };
        let direct = w.set_direct_limits(chunk, budget, ahead);
        assert!(direct, "this file system takes O_DIRECT");
        for b in 0..40 {
            ch.put(mixed(b * 50..(b + 1) * 50)).await.unwrap();
        }
        assert!(
            !w.front_in_mapping(),
            "the first batches are read from memory"
        );
        let tx = ch.take(1000);
        assert_eq!(tx.events, mixed(0..1000));
        tx.commit();
        assert!(w.front_in_mapping(), "past the bound, from the page cache");
        assert_eq!(
            w.pooled_chunks(),
            0,
            "chunks are not kept while appends go through the page cache"
        );
        let tx = ch.take(1000);
        assert_eq!(tx.events, mixed(1000..2000));
        tx.commit();
        assert!(ch.is_empty());
        ch.put(mixed(2000..2100)).await.unwrap();
        assert!(
            !w.front_in_mapping(),
            "back to memory once the queue drained"
        );
        settle(&ch).await;
        crash_with(ch.take(50));
    });
    assert!(
        super::segment::list(&dir).unwrap().len() > 2,
        "the batches span several segments"
    );
    with_channel(&c, 0, 1, |ch| async move {
        let tx = ch.take(1000);
        assert_eq!(tx.events, mixed(2000..2100));
        tx.commit();
    });
}

#[test]
fn without_fsync_per_transaction_puts_still_reach_the_log() {
    let root = tempfile::tempdir().unwrap();
    let mut c = cfg(root.path());
    c.fsync_per_transaction = false;
    with_channel(&c, 0, 1, |ch| async move {
        put(&ch, 0..5).await;
    });
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(drain(&ch).await, names(0..5));
    });
}

#[test]
fn without_fsync_per_transaction_puts_are_synced_while_a_sink_commits_faster_than_the_interval() {
    let root = tempfile::tempdir().unwrap();
    let mut c = cfg(root.path());
    c.fsync_per_transaction = false;
    c.fsync_interval = Duration::from_millis(100);
    with_channel(&c, 0, 1, |ch| async move {
        let Channel::Wal(w) = &ch else { unreachable!() };
        put(&ch, 0..400).await;
        assert!(
            !w.is_synced(),
            "a put without fsyncPerTransaction waits for no sync"
        );
        // Each take commit wakes the syncer, every 10 ms: that must not push the
        // fsyncInterval deadline of the put back (the checkpoint, an hour away, would
        // otherwise be the first sync).
        let start = std::time::Instant::now();
        let mut taken = 0;
        while !w.is_synced() {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "not synced after {taken} take commits in {:?}, fsyncInterval 100 ms",
                start.elapsed()
            );
            let tx = ch.take(1);
            assert_eq!(tx.events.len(), 1);
            tx.commit();
            taken += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            taken >= 3,
            "synced after {taken} take commits, before the interval"
        );
    });
}

#[test]
fn concurrent_puts_share_syncs() {
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    with_channel(&c, 0, 1, |ch| async move {
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let ch = ch.clone();
            tasks.push(tokio_uring::spawn(async move {
                for i in 0..10 {
                    let base = t * 1000 + i * 10;
                    ch.put(evs(base..base + 10)).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(ch.len(), 800);
    });
    with_channel(&c, 0, 1, |ch| async move {
        assert_eq!(drain(&ch).await.len(), 800);
    });
}

#[test]
fn flume_keys_defaults_aliases_and_ignored_keys() {
    let text = "a1.sources = r1\na1.channels = c1 c2\na1.sources.r1.type = seq\na1.sources.r1.channels = c1 c2\n\
                a1.channels.c1.type = file\n\
                a1.channels.c2.type = org.apache.flume.channel.file.FileChannel\n\
                a1.channels.c2.dataDirs = /d1, /d2\na1.channels.c2.checkpointDir = /ck\n\
                a1.channels.c2.useDualCheckpoints = true\na1.channels.c2.encryption.activeKey = k\n";
    let cfg = crate::config::load_str(
        Path::new("a.conf"),
        text,
        None,
        &crate::config::Substitutions::default(),
    )
    .unwrap();
    let crate::channel::ChannelKind::Wal(c1) = &cfg.channels[0].kind else {
        panic!("c1 is not a file channel")
    };
    let home = PathBuf::from(std::env::var_os("HOME").unwrap());
    assert_eq!(
        c1.checkpoint_dir,
        home.join(".flume/file-channel/checkpoint")
    );
    assert_eq!(c1.data_dirs, vec![home.join(".flume/file-channel/data")]);
    assert_eq!((c1.capacity, c1.transaction_capacity), (1_000_000, 10_000));
    assert_eq!(c1.checkpoint_interval, Duration::from_millis(30_000));
    assert_eq!(c1.minimum_required_space, 524_288_000);
    assert_eq!(c1.keep_alive, Duration::from_secs(3));
    assert!(c1.checkpoint_on_close && c1.fsync_per_transaction);
    let crate::channel::ChannelKind::Wal(c2) = &cfg.channels[1].kind else {
        panic!("c2 is not a file channel")
    };
    assert_eq!(
        c2.data_dirs,
        vec![PathBuf::from("/d1"), PathBuf::from("/d2")]
    );
    assert_eq!(c2.data_dir(3), PathBuf::from("/d2/shard-3"));
    let warned: Vec<&String> = cfg
        .warnings
        .iter()
        .filter(|w| w.contains("useDualCheckpoints") || w.contains("encryption.activeKey"))
        .collect();
    assert_eq!(warned.len(), 2, "{:?}", cfg.warnings);
    assert!(
        !cfg.warnings.iter().any(|w| w.contains("unknown key")),
        "{:?}",
        cfg.warnings
    );
}

/// Resident kB of this process's mappings of `path`, from /proc/self/smaps.
fn mapped_rss_kb(path: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.to_str().unwrap();
    let mut inside = false;
    let mut kb = 0;
    for line in smaps.lines() {
        if line.contains('-') && line.split_whitespace().count() >= 5 {
            inside = line.ends_with(name);
        } else if inside {
            if let Some(v) = line.strip_prefix("Rss:") {
                kb += v
                    .trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        }
    }
    kb
}

#[test]
fn pages_sinks_have_read_leave_the_resident_set_and_a_rollback_still_reads_them() {
    let root = tempfile::tempdir().unwrap();
    let mut c = cfg(root.path());
    c.segment_size = 64 << 20;
    let seg = shard0(root.path()).join("00000000000000000000.wal");
    with_channel(&c, 0, 1, |ch| async move {
        let body = |i: usize| Bytes::from(format!("{i:08}").repeat(128)); // 1 KiB
        for b in 0..16 {
            ch.put((0..1000).map(|i| Event::new(body(b * 1000 + i))).collect())
                .await
                .unwrap();
        }
        let mut read = 0usize;
        for b in 0..16 {
            let tx = ch.take(1000);
            // Read every body through the mapping, as a sink does.
            read += tx
                .events
                .iter()
                .map(|e| e.body.iter().map(|&x| x as usize).sum::<usize>())
                .sum::<usize>();
            if b == 3 {
                tx.rollback();
                let again = ch.take(1000);
                assert_eq!(
                    again.events[0].body,
                    body(3000),
                    "a rolled-back take reads back"
                );
                assert_eq!(again.events[999].body, body(3999));
                again.commit();
            } else {
                tx.commit();
            }
        }
        assert!(read > 0);
        assert!(ch.is_empty());
        let kb = mapped_rss_kb(&seg);
        // 16 MiB were written and read; without trimming all of it stays resident.
        assert!(kb < 5 * 1024, "{kb} kB of the segment still mapped");
    });
}

/// `filefrag -v` of a file, or why it cannot tell extents apart here.
fn extents(path: &Path) -> Result<String, String> {
    let out = std::process::Command::new("filefrag")
        .arg("-v")
        .arg(path)
        .output()
        .map_err(|e| format!("no filefrag ({e})"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !text.contains("ext:") {
        return Err(format!("filefrag cannot map extents here: {text}"));
    }
    Ok(text)
}

#[test]
fn zero_filled_spares_have_no_unwritten_extents() {
    let root = tempfile::tempdir().unwrap();
    let (zeroed, plain) = tokio_uring::start(async {
        let a = SegmentFile::create_spare(root.path(), 0, 0, 4 << 20, true)
            .await
            .unwrap();
        let b = SegmentFile::create_spare(root.path(), 0, 4 << 20, 4 << 20, false)
            .await
            .unwrap();
        (a.0.path, b.0.path)
    });
    let (zeroed, plain) = match (extents(&zeroed), extents(&plain)) {
        (Ok(z), Ok(p)) => (z, p),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    if !plain.contains("unwritten") {
        eprintln!("skipped: this filesystem's fallocate leaves no unwritten extents:\n{plain}");
        return;
    }
    assert!(!zeroed.contains("unwritten"), "{zeroed}");
    let data = std::fs::read(root.path().join(segment::spare_name(0))).unwrap();
    assert!(data[segment::HEADER_LEN..].iter().all(|&b| b == 0));
}

/// Takes and commits until the channel is empty; what it took, in order.
async fn drain_all(ch: &Channel) -> Vec<String> {
    let mut got = Vec::new();
    while !ch.is_empty() {
        got.extend(drain(ch).await);
    }
    got
}

#[path = "../../../tests/common/tmpfs.rs"]
mod tmpfs;
use tmpfs::Tmpfs;

/// A channel on a 512 KiB tmpfs (segments of 64 KiB: seven fit, beside the checkpoint),
/// with a floor of 16 KiB; `None` where no tmpfs can be mounted.
fn tiny_disk(fsync_per_transaction: bool) -> Option<(Tmpfs, WalConfig)> {
    let fs = match Tmpfs::mount("512k") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return None;
        }
    };
    let mut c = cfg(fs.path());
    c.minimum_required_space = 16 << 10;
    c.fsync_per_transaction = fsync_per_transaction;
    Some((fs, c))
}

/// The free space of a tmpfs once it holds no more than its files: a file deleted by a
/// runtime that has ended can keep its pages a moment longer, while the kernel tears the
/// runtime's io_uring down (which closes the last descriptors).
fn settled_free_space(root: &Path) -> u64 {
    fn blocks(dir: &Path) -> u64 {
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let m = e.metadata().unwrap();
            n += if m.is_dir() {
                blocks(&e.path())
            } else {
                std::os::unix::fs::MetadataExt::blocks(&m) * 512
            };
        }
        n
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).unwrap();
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a NUL-terminated path and a valid out pointer.
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        let used = (st.f_blocks - st.f_bfree) * st.f_frsize;
        if used <= blocks(root) {
            return st.f_bavail * st.f_frsize;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{used} bytes used, files hold {}",
            blocks(root)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Puts batches of 100 (yielding between them, as a source would, so the preallocator
/// runs) until the disk is full: a put fails with ENOSPC while the preallocator, too,
/// has failed for want of space (rather than holding the space for a spare still being
/// made, which the next put would roll to). Returns how many were acknowledged.
async fn fill_until_enospc(ch: &Channel) -> u32 {
    let Channel::Wal(w) = ch else { unreachable!() };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        match ch.put(evs(n..n + 100)).await {
            Ok(()) => n += 100,
            Err((ChannelError::Log { message, .. }, _))
                if message.contains("No space left on device") =>
            {
                if w.spare_failing() && !w.spare_ready() {
                    return n;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((e, _)) => panic!("after {n} events: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the disk never filled"
        );
        tokio::task::yield_now().await;
    }
}

/// The consumed segments a checkpoint keeps are the only space on a full disk. The
/// preallocator, once it had failed for want of space, slept until the next roll, which
/// could not happen (the roll itself failed): it must wake when a checkpoint frees
/// segments, and make the spare out of one.
#[test]
fn a_preallocator_that_failed_on_a_full_disk_reuses_the_segments_a_checkpoint_frees() {
    let Some((_fs, c)) = tiny_disk(true) else {
        return;
    };
    let dir = c.data_dir(0);
    with_channel(&c, 0, 1, |ch| async move {
        let Channel::Wal(w) = &ch else { unreachable!() };
        let acked = fill_until_enospc(&ch).await;
        assert!(acked > 2000, "{acked}");
        assert!(!w.spare_ready(), "no room for a spare on a full disk");
        let segs: Vec<u64> = segment::list(&dir)
            .unwrap()
            .iter()
            .map(|(_, p)| inode(p))
            .collect();
        // The sink drains the backlog (its take records find no room) and a checkpoint
        // frees the segments, with no await in between: nothing rolls meanwhile, which
        // would wake the preallocator by itself.
        let mut got = Vec::new();
        while !ch.is_empty() {
            let tx = ch.take(1000);
            got.extend(bodies(&tx.events));
            tx.commit();
        }
        assert!(got == names(0..acked), "the backlog");
        w.checkpoint().await.unwrap();
        assert!(!free_segments(&dir).is_empty(), "the checkpoint kept none");
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !w.spare_ready() {
            assert!(
                std::time::Instant::now() < deadline,
                "no spare made of the free segments {:?}",
                free_segments(&dir)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let spare = dir.join(&spares(&dir)[0]);
        assert!(segs.contains(&inode(&spare)), "the spare is a new file");
        for i in 0..30 {
            put(&ch, acked + i * 100..acked + (i + 1) * 100).await;
        }
        assert!(drain_all(&ch).await == names(acked..acked + 3000), "after");
    });
}

/// A roll that finds no spare ready makes the segment on the loop: on a full disk that
/// must be a free segment, not a new file. Here a restart finds free segments and a disk
/// with no room for a segment, and puts (not awaiting a sync, so the preallocator has not
/// run yet) roll before anything else could make a spare.
#[test]
fn a_roll_with_no_spare_ready_reuses_a_free_segment_rather_than_make_a_file() {
    let Some((fs, c)) = tiny_disk(false) else {
        return;
    };
    let dir = c.data_dir(0);
    let d = dir.clone();
    with_channel(&c, 0, 1, |ch| async move {
        let mut n = 0;
        while free_segments(&d).is_empty() {
            put(&ch, n..n + 1000).await;
            assert_eq!(drain(&ch).await, names(n..n + 1000));
            n += 1000;
            assert!(n < 100_000, "no segment was freed");
        }
        ch.close().await;
    });
    let root = fs.path().to_path_buf();
    with_channel(&c, 0, 1, |ch| async move {
        let Channel::Wal(w) = &ch else { unreachable!() };
        // Opened (consumed segments kept or deleted), nothing has yielded since. Ballast
        // leaves less than a segment of room.
        let free: Vec<u64> = free_segments(&dir)
            .iter()
            .map(|n| inode(&dir.join(n)))
            .collect();
        assert!(!free.is_empty());
        let room = settled_free_space(&root);
        let ballast = std::fs::File::create(root.join("ballast")).unwrap();
        let len = (room - (32 << 10)) as libc::off_t;
        // SAFETY: fallocate on a file we own.
        let rc =
            unsafe { libc::fallocate(std::os::unix::io::AsRawFd::as_raw_fd(&ballast), 0, 0, len) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        let mut n = 0;
        while w.blocking_rolls() == 0 {
            ch.put(evs(n..n + 100)).await.unwrap();
            n += 100;
        }
        let active = segment::list(&dir).unwrap().pop().unwrap().1;
        assert!(free.contains(&inode(&active)), "the roll made a new file");
        assert!(drain_all(&ch).await == names(0..n), "{n} events");
    });
}

/// A full log that cannot roll cannot hold take records either: while the sinks drain a
/// backlog, each take commit that is not logged asks for a checkpoint, which records it
/// and frees the consumed segments. Puts are accepted again within moments, and a crash
/// then does not deliver the drained backlog again. With direct appends and without
/// fsyncPerTransaction alike.
#[test]
fn after_a_full_disk_takes_are_recorded_and_puts_resume_as_the_backlog_drains() {
    for fsync in [true, false] {
        let Some((_fs, c)) = tiny_disk(fsync) else {
            return;
        };
        let ckpt = c.checkpoint_dir(0);
        let after = with_channel(&c, 0, 1, |ch| async move {
            let Channel::Wal(w) = &ch else { unreachable!() };
            assert_eq!(w.appends_direct(), fsync, "direct appends on tmpfs");
            let acked = fill_until_enospc(&ch).await;
            assert!(acked > 2000, "{acked}");
            // The sink drains the backlog; the log has no room for its take records.
            let mut got = Vec::new();
            while !ch.is_empty() {
                let tx = ch.take(1000);
                got.extend(bodies(&tx.events));
                tx.commit();
                tokio::task::yield_now().await;
            }
            assert_eq!(got, names(0..acked));
            let drained = std::time::Instant::now();
            let within = drained + Duration::from_secs(2);
            while super::checkpoint::read(&ckpt)
                .unwrap()
                .is_none_or(|k| k.live_count() > 0)
            {
                assert!(
                    std::time::Instant::now() < within,
                    "no checkpoint recorded the drained backlog"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            loop {
                match ch.put(evs(acked..acked + 100)).await {
                    Ok(()) => break,
                    Err((e, _)) => assert!(
                        std::time::Instant::now() < within,
                        "puts still refused 2 s after the drain: {e}"
                    ),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            settle(&ch).await;
            acked
            // A crash: no close, no checkpoint of its own.
        });
        with_channel(&c, 0, 1, |ch| async move {
            assert_eq!(drain(&ch).await, names(after..after + 100), "fsync {fsync}");
        });
    }
}

/// The log makes no new segment file that would leave less than minimumRequiredSpace:
/// taking the last bytes itself (a spare made ahead of need) left none for the
/// checkpoint that frees the consumed segments, and the channel stayed stuck with every
/// byte in segments. Puts now fail at the roll, the free space stays above the floor,
/// and a checkpoint after the drain succeeds.
#[test]
fn the_log_leaves_minimum_required_space_free_for_its_checkpoints() {
    let Some((fs, mut c)) = tiny_disk(true) else {
        return;
    };
    c.minimum_required_space = 160 << 10;
    let root = fs.path().to_path_buf();
    with_channel(&c, 0, 1, |ch| async move {
        let Channel::Wal(w) = &ch else { unreachable!() };
        let acked = fill_until_enospc(&ch).await;
        assert!(acked > 1000, "{acked}");
        let free = settled_free_space(&root);
        assert!(free >= 160 << 10, "the log left {free} bytes free");
        assert!(drain_all(&ch).await == names(0..acked), "the backlog");
        w.checkpoint().await.unwrap();
        put(&ch, acked..acked + 100).await;
        assert_eq!(drain(&ch).await, names(acked..acked + 100));
    });
}
