//! The spooldir source side by side with Java Flume 1.11.0: each agent reads its own copy
//! of the same spool directory (LINE deserializer, `fileHeader` and `basenameHeader`,
//! `recursiveDirectorySearch`, `ignorePattern`) into a file_roll sink (HEADER_AND_TEXT), and
//! both must give the same events, headers and bodies byte for byte (the directory part of
//! the path header aside), and mark the same files.

mod common;
mod java_peer;

use common::*;
use java_peer::{flume_lib, JavaProc};
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

/// The files both agents read: line ends, lines longer than and exactly `maxLineLength`
/// (2048 characters), characters of two and three bytes, an empty file, a file in a
/// subdirectory; and files both must leave alone (hidden, ignored).
fn spool_files() -> Vec<(&'static str, Vec<u8>)> {
    let mut long = "x".repeat(3000).into_bytes();
    long.push(b'\n');
    let mut exact = "y".repeat(2048).into_bytes();
    exact.push(b'\n');
    let mut wide = "é€".repeat(1100).into_bytes();
    wide.push(b'\n');
    vec![
        ("a.log", b"alpha\ncrlf\r\n\nlast without newline".to_vec()),
        ("b.log", [long, exact, wide].concat()),
        ("c.log", "héllo wörld\n€uro\n".as_bytes().to_vec()),
        ("empty.log", Vec::new()),
        ("sub/d.log", b"in a subdirectory\n".to_vec()),
        (".hidden.log", b"never read\n".to_vec()),
        ("skip.log", b"ignored\n".to_vec()),
    ]
}

/// The names the agent must have marked done and left alone.
const MARKED: &[&str] = &[
    "a.log.COMPLETED",
    "b.log.COMPLETED",
    "c.log.COMPLETED",
    "empty.log.COMPLETED",
    "sub/d.log.COMPLETED",
];
const LEFT: &[&str] = &[".hidden.log", "skip.log"];

fn conf(name: &str, spool: &Path, out: &Path) -> String {
    format!(
        "{name}.sources = r1
{name}.channels = c1
{name}.sinks = k1
{name}.sources.r1.type = spooldir
{name}.sources.r1.spoolDir = {}
{name}.sources.r1.fileHeader = true
{name}.sources.r1.basenameHeader = true
{name}.sources.r1.recursiveDirectorySearch = true
{name}.sources.r1.ignorePattern = ^skip.*
{name}.sources.r1.pollDelay = 100
{name}.sources.r1.channels = c1
{name}.channels.c1.type = memory
{name}.channels.c1.capacity = 10000
{name}.channels.c1.transactionCapacity = 1000
{name}.sinks.k1.type = file_roll
{name}.sinks.k1.channel = c1
{name}.sinks.k1.sink.directory = {}
{name}.sinks.k1.sink.rollInterval = 0
{name}.sinks.k1.sink.serializer = HEADER_AND_TEXT
",
        spool.display(),
        out.display()
    )
}

/// A spool directory holding `spool_files()` under `dir`.
fn make_spool(dir: &Path) -> PathBuf {
    let spool = dir.join("spool");
    for (name, bytes) in spool_files() {
        let p = spool.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    spool
}

/// Every marked file is there and the left ones untouched.
fn marked(spool: &Path) -> bool {
    MARKED.iter().all(|m| spool.join(m).exists()) && LEFT.iter().all(|l| spool.join(l).exists())
}

/// The events in `out` as HEADER_AND_TEXT wrote them (split at `\n` only, so a `\r` stays),
/// headers sorted by name, `spool` in the path header written as `SPOOL`, sorted.
fn events(out: &Path, spool: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for name in file_names(out) {
        all.extend(std::fs::read(out.join(name)).unwrap());
    }
    let text = String::from_utf8(all).unwrap();
    let spool = spool.display().to_string();
    let mut events: Vec<String> = text
        .split_terminator('\n')
        .map(|line| {
            let line = line.replace(&spool, "SPOOL");
            let (heads, body) = line
                .strip_prefix('{')
                .and_then(|r| r.split_once("} "))
                .unwrap_or_else(|| panic!("not HEADER_AND_TEXT: {line:?}"));
            let mut heads: Vec<&str> = heads.split(", ").collect();
            heads.sort();
            format!("{{{}}} {body}", heads.join(", "))
        })
        .collect();
    events.sort();
    events
}

#[test]
fn spooldir_gives_the_events_and_marks_the_files_java_flume_does() {
    let Some(lib) = flume_lib() else { return };
    let work = tempfile::tempdir().unwrap();
    let (jdir, fdir) = (work.path().join("java"), work.path().join("fast"));
    let (jspool, fspool) = (make_spool(&jdir), make_spool(&fdir));
    let (jout, fout) = (jdir.join("out"), fdir.join("out"));
    std::fs::create_dir_all(&jout).unwrap();
    std::fs::create_dir_all(&fout).unwrap();

    let mut fast = Agent::start(&conf("a1", &fspool, &fout), &["--cores", "2"]);
    wait_until(T, "flume-fast marked every file", || {
        marked(&fspool).then_some(())
    });
    // A clean stop drains the channel into the sink.
    assert!(fast.stop().success());
    let want = events(&fout, &fspool);

    let java = JavaProc::agent(&lib, work.path(), "j1", &conf("j1", &jspool, &jout));
    wait_until(T, "Java Flume marked every file", || {
        marked(&jspool).then_some(())
    });
    // Java's sink writes each batch as it takes it: wait for as many events as flume-fast
    // gave, then a little longer, so that an extra one shows.
    wait_until(T, "Java's sink wrote as many events", || {
        (events(&jout, &jspool).len() >= want.len()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = events(&jout, &jspool);
    drop(java);

    assert_eq!(got.len(), want.len(), "Java {got:#?}\nflume-fast {want:#?}");
    for (j, f) in got.iter().zip(&want) {
        assert_eq!(j, f, "Java's event, then flume-fast's");
    }
    // What both must have given, so that agreeing on nothing cannot pass.
    assert!(want.iter().any(|e| e.ends_with(" crlf\r")));
    assert!(want
        .iter()
        .any(|e| e.contains("file=SPOOL/empty.log") && e.ends_with("} ")));
    assert!(want
        .iter()
        .any(|e| e.contains("basename=d.log") && e.ends_with(" in a subdirectory")));
}
