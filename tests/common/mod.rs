//! Shared harness for integration tests: runs the real `flume-fast` binary on a config in a
//! temporary directory, follows its log, and stops it with a real signal.

#![allow(dead_code)]

pub mod loadgen;
pub mod tmpfs;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_flume-fast");

/// A port that was free a moment ago (the agent binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Default)]
struct Log {
    /// The lines so far, and how many of the two output streams (stdout, stderr) ended.
    lines: Mutex<(Vec<String>, u8)>,
    changed: Condvar,
}

pub struct Agent {
    pub child: Child,
    pub dir: tempfile::TempDir,
    log: Arc<Log>,
    status: Option<ExitStatus>,
}

impl Agent {
    /// Writes `conf` (with `{dir}` replaced by the temp dir) and starts the agent with `args`
    /// placed before the config path.
    pub fn spawn(conf: &str, args: &[&str]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let conf = conf.replace("{dir}", dir.path().to_str().unwrap());
        let path = dir.path().join("agent.conf");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(
            args.iter()
                .map(|a| a.replace("{conf}", path.to_str().unwrap())),
        );
        if !args.iter().any(|a| a.contains("{conf}")) {
            cmd.arg(&path);
        }
        Agent::spawn_cmd(cmd, dir)
    }

    pub fn spawn_cmd(mut cmd: Command, dir: tempfile::TempDir) -> Agent {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Log::default());
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[agent] {line}");
                    log.lines.lock().unwrap().0.push(line);
                    log.changed.notify_all();
                }
                // Both streams must end before the log is complete.
                log.lines.lock().unwrap().1 += 1;
                log.changed.notify_all();
            });
        }
        Agent {
            child,
            dir,
            log,
            status: None,
        }
    }

    /// Starts and waits until every shard is ready.
    pub fn start(conf: &str, args: &[&str]) -> Agent {
        let agent = Agent::spawn(conf, args);
        agent.wait_for_log("started:", Duration::from_secs(20));
        agent
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Waits until a log line contains `needle`; panics with the log on timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut guard = self.log.lines.lock().unwrap();
        loop {
            if let Some(l) = guard.0.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let now = Instant::now();
            if now >= deadline || guard.1 == 2 {
                panic!(
                    "no log line containing {needle:?}; log:\n{}",
                    guard.0.join("\n")
                );
            }
            guard = self
                .log
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap()
                .0;
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lines.lock().unwrap().0.join("\n")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit (within `timeout`) and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.status = Some(s);
                // Let the log readers finish.
                let guard = self.log.lines.lock().unwrap();
                let _ = self
                    .log
                    .changed
                    .wait_timeout_while(guard, Duration::from_secs(5), |l| l.1 < 2);
                return s;
            }
            if Instant::now() >= deadline {
                panic!(
                    "agent did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `f` until it returns Some, for conditions that have no event to wait on (files).
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every line of every regular file under `dir` (not recursive).
pub fn lines_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            out.extend(text.lines().map(str::to_string));
        }
    }
    out
}

pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs the binary to completion (for check/describe and start-up failures).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Agent `a1`: netcat source on `port` → memory → file_roll into `{dir}/out`; `extra`
/// lines are appended.
pub fn netcat_conf(port: u16, extra: &str) -> String {
    format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = netcat
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 10000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {{dir}}/out
a1.sinks.k1.sink.batchSize = 1000
a1.sinks.k1.channel = c1
{extra}"
    )
}

/// Sends `lines` to a netcat source on one connection and returns how many "OK" acks came back.
pub fn send_lines(port: u16, lines: &[String]) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let payload: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let writer = std::thread::spawn(move || {
        s.write_all(payload.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut acks = 0;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        assert_eq!(line, "OK\n");
        acks += 1;
        line.clear();
    }
    writer.join().unwrap();
    acks
}

/// An agent named `agent`: netcat source on `nc_port` → memory → avro sink to `port`.
pub fn netcat_to_avro_conf(agent: &str, nc_port: u16, port: u16) -> String {
    format!(
        "{agent}.sources = r1
{agent}.channels = c1
{agent}.sinks = k1
{agent}.sources.r1.type = netcat
{agent}.sources.r1.bind = 127.0.0.1
{agent}.sources.r1.port = {nc_port}
{agent}.sources.r1.channels = c1
{agent}.channels.c1.type = memory
{agent}.sinks.k1.type = avro
{agent}.sinks.k1.hostname = 127.0.0.1
{agent}.sinks.k1.port = {port}
{agent}.sinks.k1.channel = c1
"
    )
}

/// An agent `a1`: avro source on `port` → memory → file_roll into `{dir}/out`; `extra`
/// lines are appended (they may add source keys, such as TLS).
pub fn receiver_conf(port: u16, extra: &str) -> String {
    format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = avro
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 200000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {{dir}}/out
a1.sinks.k1.sink.batchSize = 1000
a1.sinks.k1.sink.rollInterval = 0
a1.sinks.k1.channel = c1
{extra}"
    )
}

/// An agent `s1`: seq source of `total` events → memory → avro sink to `port`; `extra`
/// lines are appended.
pub fn sender_conf(port: u16, total: u64, extra: &str) -> String {
    format!(
        "s1.sources = r1
s1.channels = c1
s1.sinks = k1
s1.sources.r1.type = seq
s1.sources.r1.totalEvents = {total}
s1.sources.r1.batchSize = 500
s1.sources.r1.channels = c1
s1.channels.c1.type = memory
s1.channels.c1.capacity = 10000
s1.channels.c1.transactionCapacity = 1000
s1.sinks.k1.type = avro
s1.sinks.k1.hostname = 127.0.0.1
s1.sinks.k1.port = {port}
s1.sinks.k1.batch-size = 300
s1.sinks.k1.channel = c1
{extra}"
    )
}

/// The resident memory of process `pid`, now and at its peak (VmRSS, VmHWM), in bytes.
pub fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = |key: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// Clients that each send `head` and then `body` filler bytes as fast as the agent takes
/// them, never finishing what they started (an unfinished frame or line), and keep their
/// connection open until `finish`. Writes are non-blocking, so a client the agent pushes
/// back on waits without hanging the test.
pub struct Hogs {
    stop: Arc<std::sync::atomic::AtomicBool>,
    sent: Vec<Arc<std::sync::atomic::AtomicU64>>,
    target: u64,
    threads: Vec<std::thread::JoinHandle<std::net::TcpStream>>,
}

impl Hogs {
    pub fn start(port: u16, n: usize, head: &[u8], body: u64) -> Hogs {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let target = head.len() as u64 + body;
        let sent: Vec<Arc<std::sync::atomic::AtomicU64>> = (0..n).map(|_| Arc::default()).collect();
        let threads = sent
            .iter()
            .map(|sent| {
                let (sent, stop, head) = (sent.clone(), stop.clone(), head.to_vec());
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                std::thread::spawn(move || {
                    s.write_all(&head).unwrap();
                    let mut done = head.len() as u64;
                    sent.store(done, Ordering::Relaxed);
                    s.set_nonblocking(true).unwrap();
                    let chunk = vec![b'x'; 256 << 10];
                    while done < target && !stop.load(Ordering::Relaxed) {
                        let n = chunk.len().min((target - done) as usize);
                        match s.write(&chunk[..n]) {
                            Ok(n) => {
                                done += n as u64;
                                sent.store(done, Ordering::Relaxed);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                std::thread::sleep(Duration::from_millis(5))
                            }
                            Err(e) => panic!("the agent dropped a client mid-request: {e}"),
                        }
                    }
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    s
                })
            })
            .collect();
        Hogs {
            stop,
            sent,
            target,
            threads,
        }
    }

    /// Bytes each client has sent so far.
    pub fn sent(&self) -> Vec<u64> {
        self.sent
            .iter()
            .map(|s| s.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    }

    pub fn all_done(&self) -> bool {
        self.sent().iter().all(|&s| s == self.target)
    }

    /// Waits until every client has sent everything, or none has made progress for two
    /// seconds (the agent stopped reading them and the socket buffers are full).
    pub fn await_steady(&self, timeout: Duration) {
        let total = || self.sent().iter().sum::<u64>();
        let mut last = (total(), Instant::now());
        wait_until(timeout, "the clients to finish or stall", || {
            let now = total();
            if now != last.0 {
                last = (now, Instant::now());
                return None;
            }
            (self.all_done() || last.1.elapsed() >= Duration::from_secs(2)).then_some(())
        });
    }

    /// Stops the clients and closes their connections.
    pub fn finish(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads {
            drop(t.join().unwrap());
        }
    }
}
