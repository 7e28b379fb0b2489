//! The file channel in the real binary: netcat → file channel → file_roll, with the agent
//! SIGKILLed at random moments and restarted (every line the agent answered "OK" for must
//! reach the output; duplicates are allowed and counted), the disk-space floor, and the
//! lock that keeps a second agent off the same directories.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
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
    let text = format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = netcat
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

/// Sends `ids` in batches and records each id the agent answered OK for (one "OK" per
/// line, in order). Returns when done or when the connection breaks.
fn client(port: u16, ids: std::ops::Range<u64>, acked: Arc<Mutex<Vec<u64>>>) {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let ids: Vec<u64> = ids.collect();
    for batch in ids.chunks(40) {
        let text: String = batch.iter().map(|&i| line(i) + "\n").collect();
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
        for &id in batch {
            let mut reply = String::new();
            match reader.read_line(&mut reply) {
                Ok(n) if n > 0 && reply == "OK\n" => acked.lock().unwrap().push(id),
                _ => return,
            }
        }
    }
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

#[test]
fn every_acknowledged_line_survives_repeated_sigkills() {
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
    let acked = Arc::new(Mutex::new(Vec::new()));
    let next_id = AtomicU64::new(0);
    const KILLS: usize = 22;
    for round in 0..KILLS {
        // A fresh port per run: the killed agent's connections linger in TIME_WAIT, and
        // some kernels refuse to bind their port again while they do.
        let port = free_port();
        let agent = start(&conf(root.path(), port, ""), 2);
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let first = next_id.fetch_add(1_000_000, Ordering::Relaxed);
                let acked = acked.clone();
                std::thread::spawn(move || client(port, first..first + 1_000_000, acked))
            })
            .collect();
        let wait = Duration::from_millis(30 + rng.next() % 300);
        std::thread::sleep(wait); // the random moment of the kill, not a wait for a condition
        let before = acked.lock().unwrap().len();
        agent.kill9();
        for c in clients {
            c.join().unwrap();
        }
        println!("round {round}: killed after {wait:?}, {before}+ lines acknowledged so far");
    }
    let acked: Vec<u64> = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 1000,
        "too little traffic to mean anything: {}",
        acked.len()
    );

    // A last, clean run drains what the channel still holds.
    let agent = start(&conf(root.path(), free_port(), ""), 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    let lost = loop {
        let out = output(root.path());
        let lost: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|&i| !out.contains_key(&line(i)))
            .collect();
        if lost.is_empty() || Instant::now() > deadline {
            break lost;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    agent.stop();
    let out = output(root.path());
    let duplicates: usize = out.values().map(|n| n - 1).sum();
    println!(
        "{KILLS} SIGKILLs: {} lines acknowledged, {} distinct lines delivered, {duplicates} duplicates, {} lost",
        acked.len(),
        out.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged lines lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn puts_pause_below_minimum_required_space_and_resume_when_space_returns() {
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
