//! The file channel in the real binary: `flume-fast loadgen --unique` → avro → file channel
//! → file_roll, with the agent SIGKILLed at random moments and restarted (every event the
//! agent acknowledged must reach the output; duplicates are allowed and counted), the
//! disk-space floor as Avro and netcat clients see it, and the lock that keeps a second
//! agent off the same directories.

mod common;

use common::loadgen::{acknowledged, read_batches, Loadgen};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flume-fast");

struct Agent {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn conf(root: &Path, port: u16, extra: &str) -> PathBuf {
    conf_with(root, "netcat", port, extra)
}

/// The test agent with a `source` (netcat or avro) on `port`.
fn conf_with(root: &Path, source: &str, port: u16, extra: &str) -> PathBuf {
    let text = format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = {source}
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = file
a1.channels.c1.checkpointDir = {r}/ckpt
a1.channels.c1.dataDirs = {r}/data1,{r}/data2
a1.channels.c1.maxFileSize = 1048576
a1.channels.c1.checkpointInterval = 300
a1.channels.c1.capacity = 100000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {r}/out
a1.sinks.k1.sink.rollInterval = 0
a1.sinks.k1.sink.batchSize = 500
a1.sinks.k1.channel = c1
{extra}
",
        r = root.display()
    );
    let path = root.join(format!("agent-{port}.conf"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the agent and waits for "agent 'a1' started" on its stderr.
fn start(conf: &Path, cores: u16) -> Agent {
    let mut child = Command::new(BIN)
        .args(["--cores", &cores.to_string(), "--drain-timeout", "5"])
        .arg(conf)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    let log = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if line.contains("agent 'a1' started") {
                let _ = tx.send(());
            }
            let mut l = log.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let ss = Command::new("ss")
            .arg("-tanpe")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        panic!("agent did not start:\n{}\n{ss}", stderr.lock().unwrap());
    }
    Agent { child, stderr }
}

impl Agent {
    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) until the agent's stderr contains `text`.
    fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "no '{text}' in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) {
        // SAFETY: sending SIGTERM to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "agent failed: {status}\n{}", self.log());
    }

    fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

impl Drop for Agent {
    // A failing test must not leave its agent running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line in the output files, with how often it occurs.
fn output(root: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    if let Ok(dir) = std::fs::read_dir(root.join("out")) {
        for f in dir.flatten() {
            let text = std::fs::read_to_string(f.path()).unwrap();
            for l in text.lines() {
                *seen.entry(l.to_string()).or_insert(0) += 1;
            }
        }
    }
    seen
}

fn line(id: u64) -> String {
    format!("ev-{id:010}")
}

/// A small xorshift: the kill schedule is random but reproducible from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Body bytes per event loadgen sends (its id, then padding).
const SIZE: usize = 48;

/// What the file_roll output holds, by (connection, seq): how often each event arrived.
/// Lines that are not a whole loadgen body (a line torn by a kill) are counted apart.
fn delivered(root: &Path) -> (HashMap<(usize, u64), usize>, usize) {
    let mut seen = HashMap::new();
    let mut malformed = 0;
    for l in output(root)
        .into_iter()
        .flat_map(|(l, n)| std::iter::repeat_n(l, n))
    {
        let id = (l.len() == SIZE && l.as_bytes()[20..].iter().all(|&b| b == b'.'))
            .then(|| l[..20].split_once('-'))
            .flatten()
            .and_then(|(c, s)| Some((c.parse().ok()?, s.parse().ok()?)));
        match id {
            Some(id) => *seen.entry(id).or_insert(0) += 1,
            None => malformed += 1,
        }
    }
    (seen, malformed)
}

/// Waits (bounded) until the output holds every id in `acked`; returns those missing.
fn wait_delivered(root: &Path, acked: &[(usize, u64)]) -> Vec<(usize, u64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (out, _) = delivered(root);
        let lost: Vec<_> = acked
            .iter()
            .copied()
            .filter(|id| !out.contains_key(id))
            .collect();
        if lost.is_empty() || Instant::now() > deadline {
            return lost;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The crash test: loadgen sends acknowledged batches over Avro to a two-shard
/// agent (file channel -> file_roll) that is SIGKILLed at random moments and restarted;
/// at the end every acknowledged event must be in the output.
#[test]
fn every_acknowledged_avro_event_survives_repeated_sigkills() {
    let root = tempfile::tempdir().unwrap();
    let seed = std::env::var("FLUME_FAST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test seed {seed} (set FLUME_FAST_CRASH_SEED to replay it)");
    let mut rng = Rng(seed);
    // One port for the whole run: loadgen reconnects to it after every restart (the
    // source binds with SO_REUSEADDR, so the killed agent's connections do not block it).
    let port = free_port();
    let conf = conf_with(root.path(), "avro", port, "");
    let mut agent = start(&conf, 2);
    let loadgen = Loadgen::start(root.path(), port, 4, 100, SIZE);
    const KILLS: usize = 22;
    let mut seen = 0;
    for round in 0..KILLS {
        // Traffic reached this incarnation of the agent: the kill lands mid-stream.
        seen = loadgen.wait_for(seen, "acknowledged", |b| b.ok);
        let wait = Duration::from_millis(rng.next() % 250);
        std::thread::sleep(wait); // the random moment of the kill, not a wait for a condition
        agent.kill9();
        println!("round {round}: killed {wait:?} after an acknowledgement");
        // Restarted at once, as a supervisor would: the agent waits for the port its dead
        // predecessor's io_uring still holds for a few milliseconds.
        agent = start(&conf, 2);
    }
    // The last incarnation lives: let it acknowledge, then end the run.
    loadgen.wait_for(seen, "acknowledged", |b| b.ok);
    let log = loadgen.log.clone();
    let summary = loadgen.stop();
    let all = read_batches(&log);
    let acked = acknowledged(&all);
    assert_eq!(
        summary["acked_events"].as_u64().unwrap(),
        all.iter()
            .filter(|b| b.ok)
            .map(|b| b.end - b.first)
            .sum::<u64>(),
        "loadgen's count and its log disagree"
    );
    assert!(
        summary["reconnects"].as_u64().unwrap() >= KILLS as u64,
        "the kills did not break loadgen's connections: {summary}"
    );
    assert!(acked.len() > 1000, "too little traffic: {}", acked.len());

    let lost = wait_delivered(root.path(), &acked);
    agent.stop();
    let (out, malformed) = delivered(root.path());
    let duplicates: usize = out.values().map(|n| n - 1).sum();
    println!(
        "{KILLS} SIGKILLs: {} events acknowledged ({} batches unanswered and retried), {} distinct events delivered, {duplicates} duplicates, {malformed} torn lines, {} lost",
        acked.len(),
        summary["unanswered_batches"],
        out.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// The disk-space floor seen from an Avro client: below minimumRequiredSpace the agent
/// answers FAILED, nothing acknowledged is lost, and ingestion resumes with the space.
#[test]
fn avro_clients_get_failed_below_minimum_required_space_and_resume() {
    let _disk = DISK.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let free = free_bytes(root.path());
    let floor = free.saturating_sub(256 << 20);
    let conf = conf_with(
        root.path(),
        "avro",
        port,
        &format!("a1.channels.c1.minimumRequiredSpace = {floor}"),
    );
    let agent = start(&conf, 1);
    let loadgen = Loadgen::start(root.path(), port, 1, 50, SIZE);
    let seen = loadgen.wait_for(0, "acknowledged", |b| b.ok);

    let ballast = Ballast::fill(root.path());
    assert!(
        free_bytes(root.path()) < floor,
        "the ballast did not bring free space below the floor"
    );
    let seen = loadgen.wait_for(seen, "FAILED", |b| b.failed);
    agent.wait_log("below minimumRequiredSpace");
    drop(ballast);
    loadgen.wait_for(seen, "acknowledged (after the space returned)", |b| b.ok);
    let log = loadgen.log.clone();
    let summary = loadgen.stop();
    let all = read_batches(&log);
    assert!(
        summary["failed_batches"].as_u64().unwrap() > 0,
        "loadgen saw no FAILED: {summary}"
    );
    let acked = acknowledged(&all);
    let lost = wait_delivered(root.path(), &acked);
    agent.stop();
    assert!(lost.is_empty(), "{} acknowledged events lost", lost.len());
}

/// The disk-space tests move the filesystem's free space around: one at a time.
static DISK: Mutex<()> = Mutex::new(());

/// A 1 GiB file that pushes the filesystem's free space down while it exists.
struct Ballast(PathBuf);

impl Ballast {
    fn fill(dir: &Path) -> Ballast {
        let path = dir.join("ballast");
        let f = std::fs::File::create(&path).unwrap();
        // SAFETY: fallocate on a file we own.
        let rc =
            unsafe { libc::fallocate(std::os::unix::io::AsRawFd::as_raw_fd(&f), 0, 0, 1 << 30) };
        assert_eq!(rc, 0, "cannot allocate the ballast file");
        Ballast(path)
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn puts_pause_below_minimum_required_space_and_resume_when_space_returns() {
    let _disk = DISK.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    // The floor sits just below the free space now: a 1 GiB ballast file on the same
    // filesystem pushes the free space under it, and deleting the ballast lifts it again.
    let free = free_bytes(root.path());
    let floor = free.saturating_sub(256 << 20);
    let conf = conf(
        root.path(),
        port,
        &format!("a1.channels.c1.minimumRequiredSpace = {floor}"),
    );
    let agent = start(&conf, 1);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let send = |w: &mut TcpStream, ids: std::ops::Range<u64>| {
        let text: String = ids.map(|i| line(i) + "\n").collect();
        w.write_all(text.as_bytes()).unwrap();
    };
    let read_oks = |r: &mut BufReader<TcpStream>, n: usize| {
        for _ in 0..n {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            assert_eq!(l, "OK\n");
        }
    };
    send(&mut writer, 0..100);
    read_oks(&mut reader, 100);

    let ballast = root.path().join("ballast");
    let f = std::fs::File::create(&ballast).unwrap();
    // SAFETY: fallocate on a file we own.
    let rc = unsafe { libc::fallocate(std::os::unix::io::AsRawFd::as_raw_fd(&f), 0, 0, 1 << 30) };
    assert_eq!(rc, 0, "cannot allocate the ballast file");
    drop(f);
    assert!(
        free_bytes(root.path()) < floor,
        "the ballast did not bring free space below the floor"
    );
    // The channel re-reads free space at most every 250 ms (not per put); no event tells
    // us when it did, so this one wait is on the clock.
    std::thread::sleep(Duration::from_millis(300));
    send(&mut writer, 100..200);
    agent.wait_log("below minimumRequiredSpace");
    // Refused, not acknowledged: nothing comes back while the disk is low.
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut l = String::new();
    assert!(
        reader.read_line(&mut l).is_err() && l.is_empty(),
        "got '{l}' while below the floor"
    );

    std::fs::remove_file(&ballast).unwrap();
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    read_oks(&mut reader, 100);
    drop(writer);
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(20);
    while output(root.path()).len() < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.stop();
    let out = output(root.path());
    for i in 0..200 {
        assert_eq!(out.get(&line(i)), Some(&1), "line {i}");
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

#[test]
fn a_second_agent_on_the_same_directories_refuses_to_start() {
    let root = tempfile::tempdir().unwrap();
    let first = start(&conf(root.path(), free_port(), ""), 1);
    let second = Command::new(BIN)
        .arg(conf(root.path(), free_port(), ""))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("in use by another flume-fast agent or channel"),
        "{err}"
    );
    first.stop();
}

#[test]
fn channel_stat_and_verify_read_a_stopped_agents_directories() {
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    // No sink: the events stay in the channel.
    let text = std::fs::read_to_string(conf(root.path(), port, "")).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("a1.sinks"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = root.path().join("nosink.conf");
    std::fs::write(&path, text).unwrap();
    let agent = start(&path, 1);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    w.write_all(
        (0..50)
            .map(|i| line(i) + "\n")
            .collect::<String>()
            .as_bytes(),
    )
    .unwrap();
    for _ in 0..50 {
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        assert_eq!(l, "OK\n");
    }
    agent.kill9();
    let data = root.path().join("data1");
    let stat = Command::new(BIN)
        .args(["channel", "stat"])
        .arg(&data)
        .arg("--checkpoint-dir")
        .arg(root.path().join("ckpt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stat.stdout);
    assert!(stat.status.success(), "{text}");
    assert!(
        text.contains("total: 50 pending event(s), 650 body bytes"),
        "{text}"
    );
    assert!(text.contains("last checkpoint"), "{text}");
    let verify = Command::new(BIN)
        .args(["channel", "verify"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{text}");
    assert!(text.contains("0 damaged"), "{text}");
}

/// Resident kB of the agent's mappings of each WAL segment, by file name.
fn mapped_segments_kb(pid: u32) -> Vec<(String, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut inside = false;
    for line in smaps.lines() {
        if line.contains('-') && line.split_whitespace().count() >= 5 {
            inside = line.ends_with(".wal");
            if inside {
                let name = line.rsplit('/').next().unwrap().to_string();
                out.push((name, 0));
            }
        } else if let (true, Some(v)) = (inside, line.strip_prefix("Rss:")) {
            out.last_mut().unwrap().1 += v
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse::<u64>()
                .unwrap();
        }
    }
    out.sort();
    out
}

#[test]
fn log_pages_the_sink_has_read_leave_the_agents_resident_set() {
    // Sinks read bodies through the log's mapping, and the channel unmaps the pages behind
    // the oldest event still wanted. Puts synced by one group commit used to be queued in
    // the order their tasks woke, not in log order, so the queue's front was not the
    // oldest page: trims unmapped pages still to be read, the sink mapped them again
    // behind the trimmed mark, and they stayed resident for as long as their segment
    // lived (about a fifth of everything written, with 8 connections).
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = conf_with(root.path(), "avro", port, "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("maxFileSize = 1048576", "maxFileSize = 268435456");
    std::fs::write(&path, text).unwrap();
    let agent = start(&path, 1);
    let events = 100_000u64; // 100 MiB of bodies, in one segment
    let sent = Command::new(BIN)
        .args([
            "loadgen",
            "-p",
            &port.to_string(),
            "-c",
            "8",
            "-b",
            "100",
            "-s",
            "1024",
        ])
        .args(["-n", &events.to_string()])
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while output(root.path()).values().sum::<usize>() < events as usize {
        assert!(
            Instant::now() < deadline,
            "not all delivered:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let segs = mapped_segments_kb(agent.child.id());
    let kb: u64 = segs.iter().map(|s| s.1).sum();
    // What may stay: one trim step (4 MiB) and the pages read past it.
    assert!(kb <= 6 * 1024, "{kb} kB of the log still mapped: {segs:?}");
    agent.stop();
}
