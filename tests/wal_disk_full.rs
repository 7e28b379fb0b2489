//! The file channel on a disk that fills up (issue 31, item 1): avro source → file
//! channel on a small tmpfs → avro sink whose downstream agent is down, loaded by
//! `flume-fast loadgen --unique --acked-log` until puts fail with ENOSPC. Then the
//! downstream comes up: once the backlog is delivered, puts must be accepted again within
//! 2 s (the space the channel needs is in its own consumed segments), every acknowledged
//! event must be delivered, and neither the recovery nor a SIGKILL and restart after it
//! may deliver the backlog a second time.
//!
//! Needs to mount a tmpfs (root, as CI runs); skips with the reason otherwise.

mod common;

use common::loadgen::{acknowledged, read_batches, Loadgen};
use common::tmpfs::Tmpfs;
use common::{free_port, receiver_conf, wait_until, Agent};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Size of the tmpfs the channel lives on, and of its segments: five segments fill it
/// (the sixth, made ahead of need, does not fit), with room left above the floor.
const FS_SIZE: &str = "24m";
const SEGMENT: u64 = 4 << 20;
const FLOOR: u64 = 1 << 20;

/// Body bytes per event: the loadgen id, then padding.
const SIZE: usize = 256;

/// The tests time a recovery: one at a time, not competing for the machine's cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// The agent under test: avro on `port` → file channel on `fs` → avro sink to `down`.
fn upstream_conf(fs: &Path, port: u16, down: u16, fsync_per_transaction: bool) -> String {
    format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = avro
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = file
a1.channels.c1.checkpointDir = {fs}/ckpt
a1.channels.c1.dataDirs = {fs}/data
a1.channels.c1.maxFileSize = {SEGMENT}
a1.channels.c1.minimumRequiredSpace = {FLOOR}
a1.channels.c1.fsyncPerTransaction = {fsync_per_transaction}
a1.channels.c1.capacity = 1000000
a1.channels.c1.transactionCapacity = 1000
# No periodic checkpoint during the test: what recovers must not wait for one.
a1.channels.c1.checkpointInterval = 600000
a1.sinks.k1.type = avro
a1.sinks.k1.hostname = 127.0.0.1
a1.sinks.k1.port = {down}
a1.sinks.k1.batch-size = 1000
a1.sinks.k1.channel = c1
",
        fs = fs.display()
    )
}

/// What the receiver's file_roll output holds, by loadgen id: how often each arrived.
/// Only whole lines: the receiver may be writing the last one right now.
fn delivered(out: &Path) -> HashMap<(usize, u64), usize> {
    let mut seen = HashMap::new();
    let files = std::fs::read_dir(out).into_iter().flatten().flatten();
    let texts: Vec<String> = files
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .collect();
    let whole = texts
        .iter()
        .map(|t| &t[..t.rfind('\n').map_or(0, |i| i + 1)]);
    for l in whole.flat_map(str::lines) {
        let id = (l.len() == SIZE)
            .then(|| l[..20].split_once('-'))
            .flatten()
            .and_then(|(c, s)| Some((c.parse().ok()?, s.parse().ok()?)));
        let id = id.unwrap_or_else(|| panic!("not a loadgen body: {l:?}"));
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// Waits (bounded) until the output holds every id in `ids`; returns the output then.
fn await_delivery(out: &Path, ids: &[(usize, u64)], what: &str) -> HashMap<(usize, u64), usize> {
    let mut missing = ids.len();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let seen = delivered(out);
        let now = ids.iter().filter(|id| !seen.contains_key(id)).count();
        if now == 0 {
            return seen;
        }
        missing = missing.min(now);
        assert!(
            Instant::now() < deadline,
            "{what}: {missing} of {} acknowledged events never arrived",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn disk_full_cycle(fsync_per_transaction: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fs = match Tmpfs::mount(FS_SIZE) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let began = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let (port, down) = (free_port(), free_port());
    let conf = upstream_conf(fs.path(), port, down, fsync_per_transaction);
    let mut agent = Agent::start(&conf, &["--cores", "1"]);
    let loadgen = Loadgen::start(work.path(), port, 2, 500, SIZE);

    // The downstream is down: the backlog grows until the disk is full.
    agent.wait_for_log("No space left on device", Duration::from_secs(40));
    let failed_at = loadgen.batches().len();
    wait_until(Duration::from_secs(10), "a batch answered FAILED", || {
        loadgen.batches().iter().any(|b| b.failed).then_some(())
    });
    let backlog = loadgen.acked();
    println!(
        "disk full after {} acknowledged events ({:?}); {failed_at} batches logged",
        backlog.len(),
        began.elapsed()
    );
    assert!(
        backlog.len() > 20_000,
        "too little backlog: {}",
        backlog.len()
    );

    // The downstream comes back and takes the whole backlog.
    let receiver = Agent::start(&receiver_conf(down, ""), &["--cores", "1"]);
    let out = receiver.path("out");
    let t = Instant::now();
    await_delivery(&out, &backlog, "the backlog");
    let drained = Instant::now();
    println!("backlog delivered in {:?}", t.elapsed());

    // Puts are accepted again (loadgen retries every 500 ms at most).
    let lines = loadgen.batches().len();
    let deadline = drained + Duration::from_secs(2);
    loop {
        if loadgen.batches()[lines..].iter().any(|b| b.ok) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no put accepted within 2 s of the drain; channel log:\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "puts accepted again {:?} after the drain",
        drained.elapsed()
    );

    // A little more traffic through the recovered channel, then the end of the load.
    let more = loadgen.acked().len() + 5000;
    wait_until(Duration::from_secs(20), "more acknowledged events", || {
        (loadgen.acked().len() >= more).then_some(())
    });
    let log = loadgen.log.clone();
    let summary = loadgen.stop();
    let acked = acknowledged(&read_batches(&log));
    assert_eq!(
        summary["acked_events"].as_u64().unwrap(),
        acked.len() as u64,
        "loadgen's count and its log disagree"
    );
    let seen = await_delivery(&out, &acked, "after the recovery");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "{} acknowledged, {} distinct delivered, {duplicates} duplicates",
        acked.len(),
        seen.len()
    );
    assert!(
        duplicates * 10 < backlog.len(),
        "{duplicates} duplicates of a backlog of {}: delivered a second time",
        backlog.len()
    );

    // A crash now: the takes of the backlog were recorded (in the log or a checkpoint),
    // so the restarted agent has next to nothing left to deliver.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    drop(agent);
    // On a port of its own: the killed agent's listener can linger a moment.
    let conf = upstream_conf(fs.path(), free_port(), down, fsync_per_transaction);
    let agent = Agent::start(&conf, &["--cores", "1"]);
    let line = agent.wait_for_log("replayed ", Duration::from_secs(20));
    let replayed: usize = line
        .split("replayed ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    println!("the restarted agent replayed {replayed} events");
    assert!(
        replayed * 10 < backlog.len(),
        "a restart after the recovery would deliver {replayed} events again (backlog {})",
        backlog.len()
    );
    let total: usize = seen.values().sum();
    let seen = wait_until(Duration::from_secs(20), "the replayed events", || {
        let seen = delivered(&out);
        (seen.values().sum::<usize>() >= total + replayed).then_some(seen)
    });
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert!(
        duplicates * 10 < backlog.len(),
        "{duplicates} duplicates after the restart (backlog {})",
        backlog.len()
    );
    drop(agent);
    drop(receiver);
    println!("took {:?}", began.elapsed());
}

#[test]
fn a_full_disk_recovers_once_the_backlog_drains_with_fsync_per_transaction() {
    disk_full_cycle(true);
}

#[test]
fn a_full_disk_recovers_once_the_backlog_drains_without_fsync_per_transaction() {
    disk_full_cycle(false);
}
