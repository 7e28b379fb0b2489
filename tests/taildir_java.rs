//! TAILDIR positions carry over between Java Flume 1.11.0 and flume-fast, both ways: each
//! reads the position file the other wrote and goes on from there, without duplicates,
//! and the file Java writes is byte for byte what flume-fast writes for the same
//! positions. Skips (with the reason) without java and mvn, unless
//! FLUME_FAST_REQUIRE_JAVA=1.

mod common;
mod java_peer;

use common::*;
use flume_fast::source::taildir::position;
use java_peer::{flume_lib, JavaProc};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// An agent `name` tailing `logs/[ab].log` into `out` with the position file `pos`.
fn conf(name: &str, logs: &Path, pos: &Path, out: &Path) -> String {
    format!(
        "{name}.sources = r1
{name}.channels = c1
{name}.sinks = k1
{name}.sources.r1.type = TAILDIR
{name}.sources.r1.filegroups = f1
{name}.sources.r1.filegroups.f1 = {logs}/[ab][.]log
{name}.sources.r1.positionFile = {pos}
{name}.sources.r1.backoffSleepIncrement = 100
{name}.sources.r1.maxBackoffSleep = 500
{name}.sources.r1.channels = c1
{name}.channels.c1.type = memory
{name}.channels.c1.capacity = 10000
{name}.channels.c1.transactionCapacity = 1000
{name}.sinks.k1.type = file_roll
{name}.sinks.k1.sink.directory = {out}
{name}.sinks.k1.sink.rollInterval = 0
{name}.sinks.k1.channel = c1
",
        logs = logs.display(),
        pos = pos.display(),
        out = out.display()
    )
}

fn append(path: &Path, prefix: &str, n: usize) -> Vec<String> {
    use std::io::Write;
    let lines: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in &lines {
        writeln!(f, "{l}").unwrap();
    }
    lines
}

/// Waits until `out` holds as many lines as `want`, then checks they are exactly those.
fn expect(out: &Path, want: &[String]) {
    wait_until(
        T,
        &format!("{} lines in {}", want.len(), out.display()),
        || (lines_in(out).len() >= want.len()).then_some(()),
    );
    let (mut got, mut want) = (lines_in(out), want.to_vec());
    got.sort();
    want.sort();
    assert_eq!(got, want, "in {}", out.display());
}

fn run_java(lib: &Path, dir: &Path, logs: &Path, pos: &Path, out: &Path, want: &[String]) {
    std::fs::create_dir_all(out).unwrap();
    let mut java = JavaProc::agent(lib, dir, "j1", &conf("j1", logs, pos, out));
    expect(out, want);
    java.signal(libc::SIGTERM);
    java.wait_exit(T);
}

#[test]
fn positions_carry_over_between_java_flume_and_flume_fast_both_ways() {
    let Some(lib) = flume_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let pos = dir.path().join("taildir_position.json");
    let (a, b) = (logs.join("a.log"), logs.join("b.log"));

    // Java reads the files from their start and writes its positions at stop.
    let mut first = append(&a, "a1", 60);
    first.extend(append(&b, "b1", 40));
    run_java(
        &lib,
        dir.path(),
        &logs,
        &pos,
        &dir.path().join("out-java-1"),
        &first,
    );
    let written = std::fs::read_to_string(&pos).unwrap();
    let positions = position::parse(written.as_bytes()).unwrap();
    assert_eq!(
        position::format(&positions),
        written,
        "flume-fast writes Java's bytes"
    );
    let mut files: Vec<_> = positions
        .iter()
        .map(|p| (p.file.clone(), p.inode, p.pos))
        .collect();
    files.sort();
    let at_end = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (p.display().to_string(), m.ino(), m.len())
    };
    assert_eq!(files, [at_end(&a), at_end(&b)]);

    // flume-fast goes on from Java's positions.
    let mut second = append(&a, "a2", 30);
    second.extend(append(&b, "b2", 20));
    let out = dir.path().join("out-fast");
    let mut agent = Agent::start(&conf("a1", &logs, &pos, &out), &["--cores", "2"]);
    expect(&out, &second);
    assert!(agent.stop().success());

    // ... and Java from flume-fast's.
    let mut third = append(&a, "a3", 10);
    third.extend(append(&b, "b3", 5));
    run_java(
        &lib,
        dir.path(),
        &logs,
        &pos,
        &dir.path().join("out-java-2"),
        &third,
    );
}
