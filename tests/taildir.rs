//! The TAILDIR source on the real binary: files appended to while the agent runs, new
//! files, rename-and-create and copytruncate rotation, partial lines and idle files, the
//! position file in Flume's format, restarts after a clean stop (no duplicates) and after
//! kill -9 (no loss, duplicates only past the last written position), and the headers.

mod common;

use common::*;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// Where a test's logs, position file, channel and output live: outside the agent's own
/// temporary directory, so they outlive an agent and a restart finds them.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        for d in ["logs", "pos", "out"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        World { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn log(&self, name: &str) -> PathBuf {
        self.path("logs").join(name)
    }
    fn out(&self) -> Vec<String> {
        lines_in(&self.path("out"))
    }
    /// Each shard's output lines, in the order its sink wrote them (file_roll names carry
    /// the shard and the file's index: `<series>-<shard>-<index>`).
    fn out_by_shard(&self) -> std::collections::BTreeMap<u64, Vec<String>> {
        let out = self.path("out");
        // By shard, then run (the series, a timestamp), then index.
        let mut names: Vec<(u64, u64, u64, String)> = file_names(&out)
            .into_iter()
            .map(|n| {
                let mut parts = n.split('-');
                let series = parts.next().unwrap().parse().unwrap();
                let shard = parts.next().unwrap().parse().unwrap();
                let index = parts.next().unwrap().parse().unwrap();
                (shard, series, index, n)
            })
            .collect();
        names.sort();
        let mut by_shard = std::collections::BTreeMap::new();
        for (shard, _, _, name) in names {
            let text = std::fs::read_to_string(out.join(&name)).unwrap();
            by_shard
                .entry(shard)
                .or_insert_with(Vec::new)
                .extend(text.lines().map(str::to_string));
        }
        by_shard
    }
    /// Checks each shard's output (its runs and files in order) is in the order of `want`.
    fn assert_in_order_per_shard(&self, want: &[String]) {
        for (shard, lines) in self.out_by_shard() {
            let mut rest = want.iter();
            for l in &lines {
                assert!(
                    rest.any(|x| x == l),
                    "shard {shard}: {l} out of the order written"
                );
            }
        }
    }
    /// `n` files `f<i>.log` of one line `first-<i>` each; their paths and lines.
    fn one_line_files(&self, n: usize) -> (Vec<PathBuf>, Vec<String>) {
        (0..n)
            .map(|i| {
                let f = self.log(&format!("f{i}.log"));
                append(&f, &format!("first-{i}\n"));
                (f, format!("first-{i}"))
            })
            .unzip()
    }
    /// How many of the files under `logs/` the agent has open.
    fn open_logs(&self, agent: &Agent) -> usize {
        let logs = self.path("logs");
        std::fs::read_dir(format!("/proc/{}/fd", agent.child.id()))
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(&logs)))
            .count()
    }
    fn positions(&self) -> String {
        std::fs::read_to_string(self.path("pos/taildir_position.json")).unwrap()
    }

    /// An agent tailing `logs/<pattern>` into `out/` through `channel` (memory unless
    /// given), with `extra` source keys.
    fn conf(&self, pattern: &str, extra: &str, channel: &str) -> String {
        let d = self.dir.path().display();
        let channel = if channel.is_empty() {
            "a1.channels.c1.type = memory\na1.channels.c1.capacity = 100000\na1.channels.c1.transactionCapacity = 1000\n".to_string()
        } else {
            channel.replace("{w}", &d.to_string())
        };
        format!(
            "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = TAILDIR
a1.sources.r1.filegroups = f1
a1.sources.r1.filegroups.f1 = {d}/logs/{pattern}
a1.sources.r1.positionFile = {d}/pos/taildir_position.json
a1.sources.r1.batchSize = 10
a1.sources.r1.writePosInterval = 200
a1.sources.r1.backoffSleepIncrement = 100
a1.sources.r1.channels = c1
{extra}
{channel}
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {d}/out
a1.sinks.k1.sink.rollInterval = 0
a1.sinks.k1.channel = c1
"
        )
    }

    fn start(&self, pattern: &str, extra: &str) -> Agent {
        Agent::start(&self.conf(pattern, extra, ""), &["--cores", "2"])
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

fn text(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Waits until the output holds `want` lines (in any order), then checks it holds
/// exactly those, each once.
fn wait_for_exactly(w: &World, want: &[String]) {
    let mut want = want.to_vec();
    want.sort();
    let deadline = Instant::now() + T;
    while w.out().len() < want.len() {
        if Instant::now() > deadline {
            let got = w.out();
            let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
            panic!("{} lines of {}; missing {missing:?}", got.len(), want.len());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut got = w.out();
    got.sort();
    assert_eq!(got, want);
}

/// The position file Flume would write for these files (sorted by path) at their ends.
fn flume_positions(files: &[PathBuf]) -> String {
    let mut files = files.to_vec();
    files.sort();
    let items: Vec<String> = files
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).unwrap();
            format!(
                "{{\"inode\":{},\"pos\":{},\"file\":\"{}\"}}",
                m.ino(),
                m.len(),
                p.display()
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[test]
fn appended_files_are_delivered_and_a_clean_restart_goes_on_without_duplicates() {
    let w = World::new();
    let (a, b) = (w.log("a.log"), w.log("b.log"));
    append(&a, &text(&numbered("a", 0..25)));
    append(&b, "");
    append(&w.log("c.txt"), "not in the group\n");
    let mut agent = w.start("[a-z][.]log", "");
    let mut want = numbered("a", 0..25);
    wait_for_exactly(&w, &want);
    for round in 0..4 {
        let (la, lb) = (
            numbered(&format!("a{round}"), 0..13),
            numbered(&format!("b{round}"), 0..7),
        );
        append(&a, &text(&la));
        append(&b, &text(&lb));
        want.extend(la);
        want.extend(lb);
        wait_for_exactly(&w, &want);
    }
    // A new file of the group is followed from its start.
    let d = w.log("d.log");
    append(&d, &text(&numbered("d", 0..5)));
    want.extend(numbered("d", 0..5));
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
    // Flume's format, byte for byte, at the files' ends.
    assert_eq!(w.positions(), flume_positions(&[a.clone(), b.clone(), d]));

    // A restart reads only what came after.
    let mut agent = w.start("[a-z][.]log", "");
    append(&b, &text(&numbered("late", 0..3)));
    want.extend(numbered("late", 0..3));
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
    let log = agent.log_text();
    assert!(
        log.contains(&format!("following {} (inode", a.display())),
        "{log}"
    );
}

#[test]
fn a_partial_line_waits_for_its_newline_and_an_idle_file_emits_it_as_flume_does() {
    let w = World::new();
    let f = w.log("app.log");
    append(&f, "first\npar");
    let mut agent = w.start("app[.]log", "a1.sources.r1.idleTimeout = 1500");
    wait_for_exactly(&w, &["first".to_string()]);
    append(&f, "tial\n");
    wait_for_exactly(&w, &["first".to_string(), "partial".to_string()]);

    // Left without its newline past idleTimeout, the line is emitted as it is and the
    // file is closed (Flume 1.11's idle close reads to the end of the file).
    append(&f, "no newline yet");
    let pid = agent.child.id();
    let open = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == f))
    };
    wait_for_exactly(
        &w,
        &["first".into(), "partial".into(), "no newline yet".into()],
    );
    agent.wait_for_log("closed idle file", T);
    assert!(!open(), "an idle file's descriptor is released");
    // The rest of that line is a line of its own; the file is opened again.
    append(&f, " - the end\n");
    wait_for_exactly(
        &w,
        &[
            "first".into(),
            "partial".into(),
            "no newline yet".into(),
            " - the end".into(),
        ],
    );
    assert!(agent.stop().success());
}

#[test]
fn many_idle_files_release_their_descriptors_and_reopen_when_they_grow() {
    const FILES: usize = 300;
    let w = World::new();
    let (_, mut want) = w.one_line_files(FILES);
    let mut agent = w.start("f[0-9]+[.]log", "a1.sources.r1.idleTimeout = 500");
    let open = || w.open_logs(&agent);
    wait_for_exactly(&w, &want);
    wait_until(T, "every idle file closed", || (open() == 0).then_some(()));
    // Growth reopens just the files that grew.
    for i in (0..FILES).step_by(50) {
        append(&w.log(&format!("f{i}.log")), &format!("second-{i}\n"));
        want.push(format!("second-{i}"));
    }
    wait_for_exactly(&w, &want);
    wait_until(T, "closed again", || (open() == 0).then_some(()));
    assert!(agent.stop().success());
    let closes = agent.log_text().matches("closed idle file").count();
    assert_eq!(
        closes,
        FILES + FILES / 50,
        "each file closed once, the grown ones twice"
    );
}

/// The agent's resident memory once `files` files of one line each were read and closed
/// as idle.
fn rss_with_idle_files(files: usize) -> u64 {
    let w = World::new();
    let mut want = Vec::new();
    for i in 0..files {
        append(&w.log(&format!("f{i}.log")), &format!("line-{i}\n"));
        want.push(format!("line-{i}"));
    }
    let mut agent = w.start("f[0-9]+[.]log", "a1.sources.r1.idleTimeout = 300");
    wait_for_exactly(&w, &want);
    agent.wait_for_log("closed idle file", T);
    wait_until(T, "every file closed", || {
        (agent.log_text().matches("closed idle file").count() == files).then_some(())
    });
    let (rss, _) = rss(agent.child.id());
    assert!(agent.stop().success());
    rss
}

#[test]
fn memory_does_not_grow_with_the_number_of_idle_files() {
    let few = rss_with_idle_files(20);
    let many = rss_with_idle_files(2000);
    eprintln!("RSS with 20 idle files {few}, with 2000 {many}");
    // A few hundred bytes each (the path, the inode, the position): no buffer or
    // descriptor stays with an idle file.
    assert!(
        many < few + (8 << 20),
        "2000 idle files cost {} KiB more than 20",
        (many.saturating_sub(few)) >> 10
    );
}

#[test]
fn rename_and_create_rotation_while_appending_loses_nothing() {
    let w = World::new();
    let live = w.log("app.log");
    append(&live, "");
    let mut agent = w.start("app[.]log", "a1.sources.r1.idleTimeout = 1000");
    // A writer that rotates as logrotate does without copytruncate: rename the live file,
    // write a little more to the old descriptor (until the application reopens), then
    // create the new file.
    let mut want = Vec::new();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap();
    for i in 0..3000 {
        if i > 0 && i % 500 == 0 {
            // A file renamed away before the source ever saw it cannot be found (in Flume
            // neither): rotate once the current one is followed, as a real rotation
            // minutes apart would.
            let first = format!("line-{}", i - 500);
            wait_until(T, &first, || w.out().contains(&first).then_some(()));
            std::fs::rename(&live, w.log(&format!("app.log.{}", i / 500))).unwrap();
            for j in 0..5 {
                let l = format!("late-{i}-{j}");
                writeln!(f, "{l}").unwrap();
                want.push(l);
            }
            f = std::fs::File::create(&live).unwrap();
        }
        let l = format!("line-{i}");
        writeln!(f, "{l}").unwrap();
        want.push(l);
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    wait_for_exactly(&w, &want);
    // Each file is read by the shard owning its inode, into that shard's output file: the
    // rotated files may be on different shards, so the order written holds per shard.
    w.assert_in_order_per_shard(&want);
    // Once idle, the rotated files are let go.
    agent.wait_for_log("is no longer in its group and was read to its end", T);
    assert!(agent.stop().success());
}

#[test]
fn a_file_rotated_while_the_agent_was_down_is_read_on_from_its_position() {
    let w = World::new();
    let live = w.log("app.log");
    append(&live, &text(&numbered("before", 0..20)));
    let mut agent = w.start("app[.]log", "");
    let mut want = numbered("before", 0..20);
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
    // Down: the application writes more, then the file is rotated and a new one started.
    append(&live, &text(&numbered("unread", 0..7)));
    std::fs::rename(&live, w.log("app.log.1")).unwrap();
    append(&live, &text(&numbered("new", 0..4)));
    want.extend(numbered("unread", 0..7));
    want.extend(numbered("new", 0..4));
    let mut agent = w.start("app[.]log", "");
    wait_for_exactly(&w, &want);
    // (Each run writes its own output files: the order is within the second run's, and
    // within a shard's, as the rotated file and the new one may be on different shards;
    // on one shard the rotated file's lines come first.)
    w.assert_in_order_per_shard(&want);
    assert!(agent.stop().success());
    assert!(agent.log_text().contains("was renamed to"));
}

#[test]
fn max_batch_count_gives_every_file_its_turn() {
    let w = World::new();
    let (big, small) = (w.log("big.log"), w.log("small.log"));
    let big_lines = numbered("big", 0..20_000);
    append(&big, &text(&big_lines));
    // Both files on one shard (files are spread over shards by inode), where they take
    // turns: a small file made until its inode's shard is the big one's.
    for k in 0.. {
        let candidate = w.log(&format!("candidate{k}"));
        append(&candidate, &text(&numbered("small", 0..5)));
        if owner_shard(&candidate, 2) == owner_shard(&big, 2) {
            std::fs::rename(&candidate, &small).unwrap();
            break;
        }
        assert!(k < 64, "no file hashed to the big file's shard");
    }
    // The big file is the older one, so each round reads it first.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .append(true)
        .open(&big)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut agent = w.start("[a-z]+[.]log", "a1.sources.r1.maxBatchCount = 2");
    let mut want = big_lines.clone();
    want.extend(numbered("small", 0..5));
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
    let out = w.out();
    let last_small = out.iter().position(|l| l == "small-4").unwrap();
    assert!(
        last_small < 100,
        "the small file waited for {last_small} lines of the big one"
    );
}

#[test]
fn a_rotated_file_written_to_late_or_after_idling_is_still_read() {
    let w = World::new();
    let (a, b) = (w.log("a.log"), w.log("b.log"));
    append(&a, "a-0\n");
    append(&b, "b-0\n");
    let mut agent = w.start("[ab][.]log", "a1.sources.r1.idleTimeout = 1000");
    let mut want = vec!["a-0".to_string(), "b-0".to_string()];
    wait_for_exactly(&w, &want);
    // b goes idle and is closed; then it is rotated and written to under its new name.
    // (a goes idle too; its files may be on another shard, closed at another poll: wait
    // for it as well, so it is rotated after its closing, as on one shard.)
    agent.wait_for_log(&format!("closed idle file {}", b.display()), T);
    agent.wait_for_log(&format!("closed idle file {}", a.display()), T);
    std::fs::rename(&b, w.log("b.log.1")).unwrap();
    append(&w.log("b.log.1"), "b-late\n");
    want.push("b-late".into());
    // a is rotated while its writer keeps the old descriptor, and written to only after
    // the source has seen the new file.
    let mut old = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    std::fs::rename(&a, w.log("a.log.1")).unwrap();
    append(&a, "a-new\n");
    want.push("a-new".into());
    wait_for_exactly(&w, &want);
    old.write_all(b"a-late\n").unwrap();
    want.push("a-late".into());
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
}

#[test]
fn a_file_idle_long_before_its_rotation_still_gets_its_late_writes() {
    let w = World::new();
    let a = w.log("a.log");
    append(&a, "a-0\n");
    let mut agent = w.start("a[.]log", "a1.sources.r1.idleTimeout = 2000");
    wait_for_exactly(&w, &["a-0".to_string()]);
    agent.wait_for_log(&format!("closed idle file {}", a.display()), T);
    // Idle for longer than idleTimeout before logrotate renames it, as a quiet log is.
    std::thread::sleep(Duration::from_millis(2500));
    let mut old = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    std::fs::rename(&a, w.log("a.log.1")).unwrap();
    append(&a, "a-new\n");
    let mut want = vec!["a-0".to_string(), "a-new".to_string()];
    wait_for_exactly(&w, &want);
    // The application writes to its old descriptor once more before it reopens its log.
    old.write_all(b"a-late\n").unwrap();
    want.push("a-late".into());
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
}

#[test]
fn copytruncate_reads_the_truncated_file_again_from_its_start() {
    let w = World::new();
    let live = w.log("app.log");
    let first = numbered("before-truncation-with-a-long-line", 0..100);
    append(&live, &text(&first));
    let mut agent = w.start("app[.]log", "");
    wait_for_exactly(&w, &first);
    std::fs::copy(&live, w.log("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&live)
        .unwrap();
    let after = numbered("after", 0..10);
    append(&live, &text(&after));
    let mut want = first.clone();
    want.extend(after);
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
    assert!(agent
        .log_text()
        .contains("truncated, reading it again from 0"));
}

#[test]
fn a_name_that_reappears_with_a_new_inode_is_a_new_file() {
    let w = World::new();
    let live = w.log("app.log");
    append(&live, &text(&numbered("old", 0..20)));
    let mut agent = w.start("app[.]log", "");
    let mut want = numbered("old", 0..20);
    wait_for_exactly(&w, &want);
    std::fs::remove_file(&live).unwrap();
    append(&live, &text(&numbered("new", 0..3)));
    want.extend(numbered("new", 0..3));
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
    // The new file's position is its end (the deleted one, still open, may be listed too,
    // under the same name and its own inode).
    let m = std::fs::metadata(&live).unwrap();
    let positions = flume_fast::source::taildir::position::parse(w.positions().as_bytes()).unwrap();
    let new: Vec<_> = positions.iter().filter(|p| p.inode == m.ino()).collect();
    assert_eq!(new.len(), 1, "{positions:?}");
    assert_eq!(
        (new[0].pos, new[0].file.as_str()),
        (m.len(), live.to_str().unwrap())
    );
}

/// A new empty file in `dir` that has inode `inode`, freed a moment ago: ext4 gives a new
/// file the lowest free inode, so files are created until that one comes back. `None`
/// (and a note) where the file system does not give it back.
fn take_inode(dir: &Path, inode: u64) -> Option<PathBuf> {
    let mut spares = Vec::new();
    let mut found = None;
    for i in 0..2000 {
        let p = dir.join(format!("spare-{i}.tmp"));
        std::fs::write(&p, "").unwrap();
        if std::fs::metadata(&p).unwrap().ino() == inode {
            found = Some(p);
            break;
        }
        spares.push(p);
    }
    for p in spares {
        std::fs::remove_file(p).unwrap();
    }
    if found.is_none() {
        eprintln!(
            "the file system did not give inode {inode} back: only the plain case is checked"
        );
    }
    found
}

#[test]
fn a_new_file_that_gets_a_freed_inode_is_read_from_its_start() {
    let w = World::new();
    let old = w.log("old.log");
    append(&old, &text(&numbered("old", 0..20)));
    let mut agent = w.start("[a-z]+[.]log", "a1.sources.r1.idleTimeout = 500");
    let mut want = numbered("old", 0..20);
    wait_for_exactly(&w, &want);
    // Closed as idle, the file holds no descriptor, so deleting it frees its inode; a new
    // file of the group gets it.
    agent.wait_for_log("closed idle file", T);
    let inode = std::fs::metadata(&old).unwrap().ino();
    std::fs::remove_file(&old).unwrap();
    let new = w.log("new.log");
    let content = text(&numbered("new", 0..30));
    match take_inode(&w.path("logs"), inode) {
        Some(p) => {
            std::fs::write(&p, &content).unwrap();
            std::fs::rename(&p, &new).unwrap();
        }
        None => append(&new, &content),
    }
    want.extend(numbered("new", 0..30));
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());

    // The same while the agent is down, under the very name of the old file: Flume would
    // resume the new file at the old one's position.
    let inode = std::fs::metadata(&new).unwrap().ino();
    std::fs::remove_file(&new).unwrap();
    let content = text(&numbered("newer", 0..40));
    match take_inode(&w.path("logs"), inode) {
        Some(p) => {
            std::fs::write(&p, &content).unwrap();
            std::fs::rename(&p, &new).unwrap();
        }
        None => append(&new, &content),
    }
    let mut agent = w.start("[a-z]+[.]log", "");
    want.extend(numbered("newer", 0..40));
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
}

#[test]
fn skip_to_end_starts_files_without_a_position_at_their_end() {
    let w = World::new();
    let f = w.log("app.log");
    append(&f, &text(&numbered("old", 0..10)));
    let mut agent = w.start("app[.]log", "a1.sources.r1.skipToEnd = true");
    // The first position write shows where the file starts.
    wait_until(T, "the position file", || {
        std::fs::read_to_string(w.path("pos/taildir_position.json"))
            .ok()
            .filter(|p| *p == flume_positions(std::slice::from_ref(&f)))
    });
    append(&f, "new\n");
    wait_for_exactly(&w, &["new".to_string()]);
    assert!(agent.stop().success());
}

#[test]
fn file_byteoffset_and_group_headers() {
    let w = World::new();
    let other = w.path("other");
    std::fs::create_dir(&other).unwrap();
    let (f, g) = (w.log("app.log"), other.join("x.txt"));
    append(&f, "one\r\ntwo\n");
    append(&g, "three\n");
    let conf = w
        .conf(
            "app[.]log",
            &format!(
                "a1.sources.r1.filegroups.f2 = {}/.*[.]txt
a1.sources.r1.fileHeader = true
a1.sources.r1.fileHeaderKey = path
a1.sources.r1.byteOffsetHeader = true
a1.sources.r1.headers.f1.topic = logs
a1.sources.r1.headers.f2.topic = other
a1.sources.r1.headers.f2.kind = txt
a1.sinks.k1.sink.serializer = header_and_text",
                other.display()
            ),
            "",
        )
        .replace("filegroups = f1\n", "filegroups = f1 f2\n");
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    wait_until(T, "three events", || (w.out().len() == 3).then_some(()));
    assert!(agent.stop().success());
    let out = w.out();
    for (body, headers) in [
        (
            "one",
            vec![
                format!("path={}", f.display()),
                "byteoffset=0".into(),
                "topic=logs".into(),
            ],
        ),
        (
            "two",
            vec![
                format!("path={}", f.display()),
                "byteoffset=5".into(),
                "topic=logs".into(),
            ],
        ),
        (
            "three",
            vec![
                format!("path={}", g.display()),
                "byteoffset=0".into(),
                "topic=other".into(),
                "kind=txt".into(),
            ],
        ),
    ] {
        let line = out
            .iter()
            .find(|l| l.ends_with(&format!("}} {body}")))
            .unwrap_or_else(|| panic!("no event {body} in {out:?}"));
        for h in &headers {
            assert!(line.contains(h.as_str()), "{h} missing in {line}");
        }
        // Exactly these headers, and no 'file' header under the default name.
        assert_eq!(line.matches('=').count(), headers.len(), "{line}");
    }
}

#[test]
fn a_line_longer_than_max_line_length_is_cut() {
    let w = World::new();
    let f = w.log("app.log");
    append(&f, "0123456789abcdefghijKLMNO\nshort\n");
    let mut agent = w.start("app[.]log", "a1.sources.r1.max-line-length = 10");
    wait_for_exactly(
        &w,
        &[
            "0123456789".into(),
            "abcdefghij".into(),
            "KLMNO".into(),
            "short".into(),
        ],
    );
    assert!(agent.stop().success());
    assert!(agent
        .log_text()
        .contains("longer than max-line-length (10 bytes)"));
}

#[test]
fn a_bad_position_file_or_missing_directory_stops_the_start_with_the_reason() {
    let w = World::new();
    std::fs::write(w.path("pos/taildir_position.json"), "[{\"inode\":1}").unwrap();
    let mut agent = Agent::spawn(&w.conf("app[.]log", "", ""), &["--cores", "2"]);
    let status = agent.wait_exit(T);
    assert!(!status.success());
    let log = agent.log_text();
    assert!(
        log.contains("taildir_position.json") && log.contains("not JSON"),
        "{log}"
    );
    std::fs::remove_file(w.path("pos/taildir_position.json")).unwrap();
    let conf = w.conf("app[.]log", "", "").replace("/logs/", "/nowhere/");
    let mut agent = Agent::spawn(&conf, &["--cores", "2"]);
    assert!(!agent.wait_exit(T).success());
    assert!(agent.log_text().contains("does not exist"));
}

#[test]
fn a_full_channel_pauses_reading_and_the_position_stays_at_what_it_committed() {
    const WIDTH: u64 = 12; // "L0000000000\n"
    let w = World::new();
    let f = w.log("app.log");
    let lines: Vec<String> = (0..2000).map(|i| format!("L{i:010}")).collect();
    append(&f, &text(&lines));
    let channel = "a1.channels.c1.type = file
a1.channels.c1.checkpointDir = {w}/ckpt
a1.channels.c1.dataDirs = {w}/data
a1.channels.c1.capacity = 200
a1.channels.c1.transactionCapacity = 10
a1.channels.c1.keep-alive = 0";
    let with_sink = w.conf("app[.]log", "", channel);
    // First without a sink: the channel fills and the source must wait.
    let no_sink: String = with_sink
        .lines()
        .filter(|l| !l.starts_with("a1.sinks"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut agent = Agent::start(&no_sink, &["--cores", "2"]);
    agent.wait_for_log("pausing reads until they fit", T);
    assert!(agent.stop().success());
    let pos =
        flume_fast::source::taildir::position::parse(w.positions().as_bytes()).unwrap()[0].pos;
    let size = std::fs::metadata(&f).unwrap().len();
    assert!(
        pos > 0 && pos < size && pos % WIDTH == 0,
        "position {pos} of {size}"
    );
    // With a sink, the channel's events and the rest of the file arrive, each once: the
    // position was exactly what the channel had committed.
    let mut agent = Agent::start(&with_sink, &["--cores", "2"]);
    wait_for_exactly(&w, &lines);
    assert!(agent.stop().success());
}

#[test]
fn positions_are_saved_while_a_large_backlog_is_read() {
    let w = World::new();
    let f = w.log("app.log");
    let lines: Vec<String> = (0..1_000_000).map(|i| format!("L{i:010}")).collect();
    append(&f, &text(&lines));
    let size = std::fs::metadata(&f).unwrap().len();
    let mut agent = w.start("app[.]log", "a1.sources.r1.writePosInterval = 50");
    // The whole backlog is one round of reading; positions must be saved during it.
    let mut seen = std::collections::BTreeSet::new();
    wait_until(Duration::from_secs(60), "the position at the end", || {
        let p = std::fs::read_to_string(w.path("pos/taildir_position.json")).ok()?;
        let pos = flume_fast::source::taildir::position::parse(p.as_bytes())
            .ok()?
            .first()?
            .pos;
        seen.insert(pos);
        (pos == size).then_some(())
    });
    assert!(agent.stop().success());
    let between = seen.iter().filter(|&&p| p > 0 && p < size).count();
    assert!(between >= 2, "positions seen: {seen:?}");
}

#[test]
fn a_kill_while_a_rotated_file_is_still_being_read_loses_none_of_it() {
    let w = World::new();
    let live = w.log("app.log");
    let backlog: Vec<String> = (0..100_000).map(|i| format!("L{i:010}")).collect();
    append(&live, &text(&backlog));
    let channel = "a1.channels.c1.type = file
a1.channels.c1.checkpointDir = {w}/ckpt
a1.channels.c1.dataDirs = {w}/data
a1.channels.c1.capacity = 1000000
a1.channels.c1.transactionCapacity = 1000";
    // A scan between batches, so the rotation is seen while the backlog is read.
    let conf = w
        .conf("app[.]log", "a1.sources.r1.maxBatchCount = 1", channel)
        .replace("batchSize = 10\n", "batchSize = 500\n");
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    wait_until(T, "the reading to start", || {
        (w.out().len() > 1000).then_some(())
    });
    let old = w.log("app.log.1");
    std::fs::rename(&live, &old).unwrap();
    let fresh = numbered("fresh", 0..10);
    append(&live, &text(&fresh));
    // Killed once a position of the rotated file (its old name, its inode) is saved,
    // before it is read to its end.
    let inode = std::fs::metadata(&old).unwrap().ino();
    let size = std::fs::metadata(&old).unwrap().len();
    wait_until(T, "the rotated file's position saved", || {
        let p = std::fs::read_to_string(w.path("pos/taildir_position.json")).ok()?;
        let ps = flume_fast::source::taildir::position::parse(p.as_bytes()).ok()?;
        (ps.len() == 2 && ps.iter().any(|p| p.inode == inode && p.pos < size)).then_some(())
    });
    agent.signal(libc::SIGKILL);
    agent.wait_exit(T);
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    let mut want = backlog;
    want.extend(fresh);
    wait_until(T, "every line", || {
        let got: std::collections::HashSet<String> = w.out().into_iter().collect();
        want.iter().all(|l| got.contains(l)).then_some(())
    });
    assert!(agent.stop().success());
    assert!(agent.log_text().contains("was renamed to"));
}

/// A small pseudo-random sequence (xorshift), seeded from the clock and printed, so a
/// failing run can be repeated.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Kill -9 at random moments while a writer appends, then restart, a dozen times: every
/// line is delivered, and the duplicates are only the lines after the position written
/// last before each kill (plus the sink's own batch in flight, which the file channel
/// hands it again after a crash).
#[test]
fn kill_9_in_a_loop_loses_no_line_and_duplicates_only_past_the_last_position() {
    const WIDTH: u64 = 12; // "L0000000000\n"
    const KILLS: usize = 12;
    const SINK_BATCH: u64 = 20;
    let w = World::new();
    let f = w.log("app.log");
    append(&f, "");
    let channel = format!(
        "a1.channels.c1.type = file
a1.channels.c1.checkpointDir = {{w}}/ckpt
a1.channels.c1.dataDirs = {{w}}/data
a1.channels.c1.checkpointInterval = 300
a1.channels.c1.capacity = 1000000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.sink.batchSize = {SINK_BATCH}"
    );
    let conf = w.conf("app[.]log", "", &channel);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (f, stop) = (f.clone(), stop.clone());
        move || {
            let mut out = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut chunk = String::new();
                for _ in 0..10 {
                    chunk.push_str(&format!("L{n:010}\n"));
                    n += 1;
                }
                out.write_all(chunk.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        }
    });
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    // The lines that could come twice: from the position saved before each kill to the
    // end of the file then.
    let mut window = 0u64;
    for kill in 0..KILLS {
        let mut agent = Agent::spawn(&conf, &["--cores", "2"]);
        if kill % 2 == 0 {
            // Half the kills after the agent is running, half at any moment of its start.
            agent.wait_for_log("started:", T);
        }
        std::thread::sleep(Duration::from_millis(100 + rng.below(500)));
        agent.signal(libc::SIGKILL);
        agent.wait_exit(T);
        let size = std::fs::metadata(&f).unwrap().len();
        let pos = std::fs::read_to_string(w.path("pos/taildir_position.json"))
            .ok()
            .and_then(|p| flume_fast::source::taildir::position::parse(p.as_bytes()).ok())
            .and_then(|p| p.first().map(|p| p.pos))
            .unwrap_or(0);
        assert_eq!(pos % WIDTH, 0, "a position at a line's start");
        assert!(pos <= size);
        window += (size - pos) / WIDTH;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    let started = Instant::now();
    let counts = wait_until(Duration::from_secs(30), "every line", || {
        let mut counts = vec![0u32; written as usize];
        for l in w.out() {
            let n: usize = l[1..].parse().unwrap();
            counts[n] += 1;
        }
        counts.iter().all(|&c| c > 0).then_some(counts)
    });
    eprintln!("caught up in {:?}", started.elapsed());
    assert!(agent.stop().success());
    let dups: u64 = counts.iter().map(|&c| u64::from(c - 1)).sum();
    eprintln!("{written} lines, {dups} duplicates, window {window}");
    assert!(
        dups <= window + KILLS as u64 * SINK_BATCH,
        "{dups} duplicates, more than the {window} lines past the saved positions"
    );
}

/// The shard that owns a file, by the source's own rule: its inode's little-endian bytes
/// hashed onto the shards (`Shard::owns`).
fn owner_shard(path: &Path, shards: u64) -> u64 {
    let inode = std::fs::metadata(path).unwrap().ino();
    flume_fast::source::shard_of(&inode.to_le_bytes(), shards as usize) as u64
}

#[test]
fn files_are_partitioned_over_the_shards_by_inode_and_share_one_position_file() {
    let w = World::new();
    // At least 8 files, and more until both shards own one.
    let mut files: Vec<PathBuf> = Vec::new();
    while files.len() < 8 || (0..2).any(|s| !files.iter().any(|f| owner_shard(f, 2) == s)) {
        let f = w.log(&format!("app{}.log", files.len()));
        append(&f, &text(&numbered(&format!("f{}", files.len()), 0..40)));
        files.push(f);
        assert!(files.len() < 64, "no file hashed to one of the shards");
    }
    let mut want: Vec<String> = (0..files.len())
        .flat_map(|i| numbered(&format!("f{i}"), 0..40))
        .collect();
    let mut agent = w.start("app[0-9]+[.]log", "");
    wait_for_exactly(&w, &want);
    // Lines appended while it runs, to every file.
    for (i, f) in files.iter().enumerate() {
        let more = numbered(&format!("f{i}"), 40..65);
        append(f, &text(&more));
        want.extend(more);
    }
    wait_for_exactly(&w, &want);
    assert!(agent.stop().success());
    let mut got = w.out();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every line exactly once");

    // Each file's lines came out of the shard that owns its inode, and both delivered.
    let out = w.path("out");
    let mut shards = std::collections::BTreeSet::new();
    for name in file_names(&out) {
        let shard: u64 = name.split('-').nth(1).unwrap().parse().unwrap();
        let text = std::fs::read_to_string(out.join(&name)).unwrap();
        for line in text.lines() {
            let i: usize = line[1..line.find('-').unwrap()].parse().unwrap();
            assert_eq!(owner_shard(&files[i], 2), shard, "{line} in {name}");
            shards.insert(shard);
        }
    }
    assert_eq!(shards.len(), 2, "both shards delivered");

    // One position file, with every file of both shards at its end.
    assert_eq!(w.positions(), flume_positions(&files));
}

#[test]
fn a_new_or_renamed_in_file_is_followed_at_once_not_at_the_next_poll() {
    let w = World::new();
    append(&w.log("a.log"), "a-0\n");
    // Polls ten minutes apart: only the directory watch can find the new files in time.
    let conf = w
        .conf("[a-z][.]log", "a1.sources.r1.maxBackoffSleep = 600000", "")
        .replace(
            "backoffSleepIncrement = 100",
            "backoffSleepIncrement = 600000",
        );
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    wait_for_exactly(&w, &["a-0".to_string()]);
    append(&w.log("b.log"), "b-0\n");
    wait_for_exactly(&w, &["a-0".to_string(), "b-0".to_string()]);
    // A rotation's new name: a file made elsewhere and renamed into the directory.
    let elsewhere = w.path("pos/c.tmp");
    append(&elsewhere, "c-0\n");
    std::fs::rename(&elsewhere, w.log("c.log")).unwrap();
    wait_for_exactly(&w, &numbered_names(&["a-0", "b-0", "c-0"]));
    assert!(agent.stop().success());
    assert!(
        !agent.log_text().contains("cannot watch"),
        "{}",
        agent.log_text()
    );
}

fn numbered_names(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn five_thousand_files_of_which_fifty_are_written_keep_only_those_open() {
    const FILES: usize = 5000;
    const ACTIVE: usize = 50;
    let w = World::new();
    let (files, mut want) = w.one_line_files(FILES);
    let mut agent = w.start("f[0-9]+[.]log", "a1.sources.r1.idleTimeout = 2000");
    let open = || w.open_logs(&agent);
    wait_for_exactly(&w, &want);
    wait_until(T, "every idle file closed", || (open() == 0).then_some(()));
    // Fifty files, spread over the names, written in rounds while the rest stay idle.
    let mut most_open = 0;
    for round in 0..20 {
        for a in 0..ACTIVE {
            let i = a * (FILES / ACTIVE);
            append(&files[i], &format!("r{round}-{i}\n"));
            want.push(format!("r{round}-{i}"));
        }
        most_open = most_open.max(open());
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_exactly(&w, &want);
    most_open = most_open.max(open());
    assert!(
        most_open <= ACTIVE,
        "{most_open} of the files open while {ACTIVE} were written"
    );
    assert!(agent.stop().success());
    assert_eq!(w.positions(), flume_positions(&files));
    // Each written file's lines came out in the order written (a file is one shard's).
    for lines in w.out_by_shard().values() {
        let mut last_round = std::collections::HashMap::new();
        for l in lines.iter().filter(|l| l.starts_with('r')) {
            let (round, file) = l[1..].split_once('-').unwrap();
            let round: usize = round.parse().unwrap();
            if let Some(prev) = last_round.insert(file.to_string(), round) {
                assert!(prev < round, "{l} after round {prev} of its file");
            }
        }
    }
}
