//! The HDFS sink against a real HDFS: a Hadoop MiniDFSCluster run by the Java peer in
//! `scripts/hdfs-peer` (built and run through Maven), which also reads every file back
//! with Hadoop's own readers (SequenceFile.Reader, CompressionCodecFactory, Avro's
//! DataFileStream). One peer serves every test in turn (they take its lock); the outage
//! tests stop and restart its namenode, keeping the data.
//!
//! Without `java` and `mvn` these tests print why and pass, unless
//! `FLUME_FAST_REQUIRE_JAVA=1` (CI), where they fail.

mod common;

use base64::Engine;
use common::{free_port, Agent};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

struct Peer {
    _child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    url: String,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

static PEER: OnceLock<Option<Mutex<Peer>>> = OnceLock::new();

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn start_peer() -> Option<Mutex<Peer>> {
    let required = std::env::var("FLUME_FAST_REQUIRE_JAVA").is_ok_and(|v| v == "1");
    if !have("java") || !have("mvn") {
        assert!(
            !required,
            "FLUME_FAST_REQUIRE_JAVA=1 but java or mvn is missing"
        );
        eprintln!("SKIPPED: the HDFS tests need java and mvn (for the MiniDFSCluster peer)");
        return None;
    }
    let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hdfs-peer");
    let build = Command::new("mvn")
        .args([
            "-q",
            "-B",
            "compile",
            "dependency:build-classpath",
            "-Dmdep.outputFile=target/classpath.txt",
        ])
        .current_dir(&pom)
        .status()
        .expect("run mvn");
    assert!(build.success(), "building scripts/hdfs-peer failed");
    let cp = std::fs::read_to_string(pom.join("target/classpath.txt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("peer.log");
    let mut child = Command::new("java")
        .args(["-Xmx768m", "-cp"])
        .arg(format!(
            "{}:{}",
            pom.join("target/classes").display(),
            cp.trim()
        ))
        .arg("flumefast.HdfsPeer")
        .arg(dir.path().join("dfs"))
        .arg("0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start the HDFS peer");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(240))
        .unwrap_or_else(|_| panic!("MiniDFS did not start; see {}", log.display()));
    let url = ready
        .strip_prefix("READY ")
        .expect("READY line")
        .to_string();
    eprintln!("MiniDFS at {url} (log {})", log.display());
    Some(Mutex::new(Peer {
        _child: child,
        stdin,
        lines: rx,
        url,
        _dir: dir,
        log,
    }))
}

/// The shared peer, held for the whole test (tests run one after another).
fn peer() -> Option<MutexGuard<'static, Peer>> {
    PEER.get_or_init(start_peer)
        .as_ref()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

type Records = Vec<(i64, Vec<u8>)>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileInfo {
    path: String,
    len: u64,
    closed: bool,
}

impl Peer {
    fn cmd(&mut self, line: &str) -> Result<Vec<String>, String> {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(120)) {
                Ok(l) if l == "END" => return Ok(out),
                Ok(l) if l.starts_with("ERR ") => return Err(l),
                Ok(l) => out.push(l),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("peer did not answer {line}; log {}", self.log.display())
                }
                Err(e) => panic!("peer gone ({e}); log {}", self.log.display()),
            }
        }
    }

    fn list(&mut self, dir: &str) -> Vec<FileInfo> {
        // Listing and asking whether each file is closed are separate calls: a file renamed
        // in between (a roll, a recovery) fails the listing, which is then simply redone.
        let mut tries = 0;
        let lines = loop {
            match self.cmd(&format!("LIST {dir}")) {
                Ok(l) => break l,
                Err(e) if e.contains("FileNotFoundException") && tries < 5 => tries += 1,
                Err(e) => panic!("LIST {dir}: {e}"),
            }
        };
        let mut v: Vec<FileInfo> = lines
            .iter()
            .map(|l| {
                let p: Vec<&str> = l.split(' ').collect();
                assert_eq!(p[0], "FILE", "{l}");
                FileInfo {
                    path: p[1].to_string(),
                    len: p[2].parse().unwrap(),
                    closed: p[3] == "true",
                }
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// The META line and the records as (key, value).
    fn seq(&mut self, path: &str) -> Result<(String, Records), String> {
        let lines = self.cmd(&format!("SEQ {path}"))?;
        let meta = lines[0].clone();
        let recs = lines[1..]
            .iter()
            .map(|l| {
                let p: Vec<&str> = l.split(' ').collect();
                (p[1].parse().unwrap(), b64(p[2]))
            })
            .collect();
        Ok((meta, recs))
    }

    fn text(&mut self, path: &str) -> Result<Vec<String>, String> {
        Ok(self
            .cmd(&format!("TEXT {path}"))?
            .iter()
            .map(|l| String::from_utf8(b64(&l[5..])).unwrap())
            .collect())
    }

    /// Records as ("k=v&k=v" headers, body).
    fn avro(&mut self, path: &str) -> Result<Vec<(String, String)>, String> {
        Ok(self
            .cmd(&format!("AVRO {path}"))?
            .iter()
            .map(|l| {
                let p: Vec<&str> = l.split(' ').collect();
                (
                    String::from_utf8(b64(p[1])).unwrap(),
                    String::from_utf8(b64(p[2])).unwrap(),
                )
            })
            .collect())
    }

    /// Every text line under `dir` (in-use files included, up to their synced length).
    fn all_lines(&mut self, dir: &str) -> Vec<String> {
        let files = self.list(dir);
        let mut out = Vec::new();
        for f in files {
            // A file being recovered may be briefly unreadable; the caller polls again.
            match self.text(&f.path) {
                Ok(l) => out.extend(l),
                Err(e) => eprintln!("reading {}: {e}", f.path),
            }
        }
        out
    }

    /// Polls (no event exists for "HDFS now holds X") until `f` holds.
    fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&mut Peer) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

/// `<prefix>.<counter>.<shard><suffix>` with a numeric counter and shard.
fn assert_flume_name(name: &str, prefix: &str, suffix: &str) {
    let rest = name
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("{name} is not {prefix}.<counter>.<shard>{suffix}"));
    let (counter, shard) = rest
        .split_once('.')
        .unwrap_or_else(|| panic!("{name}: no shard"));
    assert!(
        counter.parse::<u64>().is_ok() && shard.parse::<u32>().is_ok(),
        "{name}"
    );
}

fn expect_numbers(lines: &[String], n: usize) {
    let mut seen: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|_| panic!("torn or foreign line {l:?}"))
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        (0..n as u64).collect::<Vec<_>>(),
        "every event, none missing"
    );
}

const TS: &str = "1339502074567"; // 2012-06-12 11:54:34.567 UTC

#[test]
fn bucketing_by_host_and_rounded_time() {
    let Some(mut p) = peer() else { return };
    let url = p.url.clone();
    // Three sources: two hosts, two times; the third lands in the first's 10-minute bucket.
    let conf = format!(
        r#"
a.sources = s1 s2 s3
a.channels = c
a.sinks = k
a.channels.c.type = memory
a.channels.c.capacity = 10000
a.sources.s1.type = seq
a.sources.s1.totalEvents = 40
a.sources.s1.batchSize = 7
a.sources.s1.channels = c
a.sources.s1.interceptors = h t s
a.sources.s1.interceptors.h.type = static
a.sources.s1.interceptors.h.key = host
a.sources.s1.interceptors.h.value = web1
a.sources.s1.interceptors.t.type = static
a.sources.s1.interceptors.t.key = timestamp
a.sources.s1.interceptors.t.value = {TS}
a.sources.s1.interceptors.s.type = static
a.sources.s1.interceptors.s.key = src
a.sources.s1.interceptors.s.value = s1
a.sources.s2.type = seq
a.sources.s2.totalEvents = 30
a.sources.s2.batchSize = 7
a.sources.s2.channels = c
a.sources.s2.interceptors = h t s
a.sources.s2.interceptors.h.type = static
a.sources.s2.interceptors.h.key = host
a.sources.s2.interceptors.h.value = web2
a.sources.s2.interceptors.t.type = static
a.sources.s2.interceptors.t.key = timestamp
a.sources.s2.interceptors.t.value = 1339505674567
a.sources.s2.interceptors.s.type = static
a.sources.s2.interceptors.s.key = src
a.sources.s2.interceptors.s.value = s2
a.sources.s3.type = seq
a.sources.s3.totalEvents = 20
a.sources.s3.batchSize = 7
a.sources.s3.channels = c
a.sources.s3.interceptors = h t s
a.sources.s3.interceptors.h.type = static
a.sources.s3.interceptors.h.key = host
a.sources.s3.interceptors.h.value = web1
a.sources.s3.interceptors.t.type = static
a.sources.s3.interceptors.t.key = timestamp
a.sources.s3.interceptors.t.value = 1339502374567
a.sources.s3.interceptors.s.type = static
a.sources.s3.interceptors.s.key = src
a.sources.s3.interceptors.s.value = s3
a.sinks.k.type = hdfs
a.sinks.k.channel = c
a.sinks.k.hdfs.path = {url}/bucket/%{{host}}/%Y-%m-%d/%H%M
a.sinks.k.hdfs.filePrefix = ev-%{{src}}
a.sinks.k.hdfs.round = true
a.sinks.k.hdfs.roundValue = 10
a.sinks.k.hdfs.roundUnit = minute
a.sinks.k.hdfs.timeZone = UTC
a.sinks.k.hdfs.fileType = DataStream
a.sinks.k.hdfs.rollCount = 0
a.sinks.k.hdfs.rollSize = 0
a.sinks.k.serializer = HEADER_AND_TEXT
a.sinks.k.hdfs.journalDir = {{dir}}/journal
"#
    );
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    p.wait_for("all 90 events in HDFS", Duration::from_secs(60), |p| {
        (p.all_lines("/bucket").len() >= 90).then_some(())
    });
    assert!(agent.stop().success());

    let files = p.list("/bucket");
    let mut by_dir: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &files {
        assert!(f.closed, "{} still open", f.path);
        assert!(!f.path.ends_with(".tmp"), "{} left in use", f.path);
        let (dir, name) = f.path.rsplit_once('/').unwrap();
        let src = name
            .split('.')
            .next()
            .unwrap()
            .strip_prefix("ev-")
            .unwrap()
            .to_string();
        assert_flume_name(name, &format!("ev-{src}"), "");
        for line in p.text(&f.path).unwrap() {
            assert!(line.contains(&format!("src={src}")), "{line} in {name}");
            by_dir.entry(dir.to_string()).or_default().push(line);
        }
    }
    let dirs: Vec<&String> = by_dir.keys().collect();
    assert_eq!(
        dirs,
        [
            "/bucket/web1/2012-06-12/1150",
            "/bucket/web2/2012-06-12/1250"
        ],
        "s1 (11:54:34) and s3 (11:59:34) round to 11:50, s2 (12:54:34) to 12:50"
    );
    for (src, n, dir) in [
        ("s1", 40, "/bucket/web1/2012-06-12/1150"),
        ("s3", 20, "/bucket/web1/2012-06-12/1150"),
        ("s2", 30, "/bucket/web2/2012-06-12/1250"),
    ] {
        let bodies: Vec<String> = by_dir[dir]
            .iter()
            .filter(|l| l.contains(&format!("src={src}}}")) || l.contains(&format!("src={src},")))
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(bodies.len(), n, "{src}: exactly once");
        expect_numbers(&bodies, n);
    }
}

/// Runs an agent with one seq source into an hdfs sink with `extra` keys; returns the
/// files under `dir` once `n` events are readable and the agent stopped cleanly.
fn run_seq(p: &mut Peer, dir: &str, n: usize, extra: &str) -> Vec<FileInfo> {
    let conf = format!(
        r#"
a.sources = s
a.channels = c
a.sinks = k
a.channels.c.type = memory
a.channels.c.capacity = 10000
a.sources.s.type = seq
a.sources.s.totalEvents = {n}
a.sources.s.batchSize = 10
a.sources.s.channels = c
a.sinks.k.type = hdfs
a.sinks.k.channel = c
a.sinks.k.hdfs.path = {url}{dir}
a.sinks.k.hdfs.fileType = DataStream
a.sinks.k.hdfs.batchSize = 10
a.sinks.k.hdfs.journalDir = {{dir}}/journal
{extra}
"#,
        url = p.url
    );
    let mut agent = Agent::start(&conf, &["--cores", "1"]);
    p.wait_for("all events in HDFS", Duration::from_secs(60), |p| {
        (p.all_lines(dir).len() >= n).then_some(())
    });
    assert!(agent.stop().success());
    let files = p.list(dir);
    for f in &files {
        assert!(
            f.closed && !f.path.ends_with(".tmp"),
            "{f:?} left in use after a clean stop"
        );
    }
    expect_numbers(&p.all_lines(dir), n);
    files
}

#[test]
fn roll_by_count() {
    let Some(mut p) = peer() else { return };
    let files = run_seq(&mut p, "/roll/count", 95, "a.sinks.k.hdfs.rollCount = 10\na.sinks.k.hdfs.rollSize = 0\na.sinks.k.hdfs.rollInterval = 0");
    let counts: Vec<usize> = files
        .iter()
        .map(|f| p.text(&f.path).unwrap().len())
        .collect();
    assert_eq!(counts, [10, 10, 10, 10, 10, 10, 10, 10, 10, 5], "{files:?}");
    for f in &files {
        assert_flume_name(name_of(&f.path), "FlumeData", "");
    }
}

#[test]
fn roll_by_size() {
    let Some(mut p) = peer() else { return };
    // Bodies "0".."99": 10 one-byte, then two-byte ones; a file rolls once it holds 100
    // body bytes, before the next event: 10 + 45 events, then the remaining 45.
    let files = run_seq(&mut p, "/roll/size", 100, "a.sinks.k.hdfs.rollCount = 0\na.sinks.k.hdfs.rollSize = 100\na.sinks.k.hdfs.rollInterval = 0");
    let counts: Vec<usize> = files
        .iter()
        .map(|f| p.text(&f.path).unwrap().len())
        .collect();
    assert_eq!(counts, [55, 45]);
}

/// A netcat-fed agent, for tests that pace events.
fn netcat_agent(p: &Peer, dir: &str, extra: &str) -> (Agent, std::net::TcpStream) {
    let port = free_port();
    let conf = format!(
        r#"
a.sources = n
a.channels = c
a.sinks = k
a.channels.c.type = memory
a.channels.c.capacity = 10000
a.sources.n.type = netcat
a.sources.n.bind = 127.0.0.1
a.sources.n.port = {port}
a.sources.n.channels = c
a.sinks.k.type = hdfs
a.sinks.k.channel = c
a.sinks.k.hdfs.path = {url}{dir}
a.sinks.k.hdfs.fileType = DataStream
a.sinks.k.hdfs.rollCount = 0
a.sinks.k.hdfs.rollSize = 0
a.sinks.k.hdfs.retryInterval = 1
a.sinks.k.hdfs.callTimeout = 5000
a.sinks.k.hdfs.journalDir = {{dir}}/journal
{extra}
"#,
        url = p.url
    );
    let agent = Agent::start(&conf, &["--cores", "1"]);
    let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    (agent, conn)
}

/// Sends lines and waits for each "OK" (the channel committed them).
fn send(conn: &mut std::net::TcpStream, lines: impl IntoIterator<Item = String>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    for l in lines {
        writeln!(conn, "{l}").unwrap();
        let mut ack = String::new();
        reader.read_line(&mut ack).unwrap();
        assert_eq!(ack.trim(), "OK");
    }
}

fn closed_files(p: &mut Peer, dir: &str) -> Vec<FileInfo> {
    p.list(dir)
        .into_iter()
        .filter(|f| f.closed && !f.path.ends_with(".tmp"))
        .collect()
}

#[test]
fn roll_by_interval_and_by_idle_timeout_while_running() {
    let Some(mut p) = peer() else { return };
    for (dir, keys) in [
        (
            "/roll/interval",
            "a.sinks.k.hdfs.rollInterval = 1\na.sinks.k.hdfs.idleTimeout = 0",
        ),
        (
            "/roll/idle",
            "a.sinks.k.hdfs.rollInterval = 0\na.sinks.k.hdfs.idleTimeout = 1",
        ),
    ] {
        let (mut agent, mut conn) = netcat_agent(&p, dir, keys);
        for round in 0..2 {
            send(&mut conn, [format!("{round}")]);
            // Closed (and renamed) by the timer while the agent keeps running.
            p.wait_for(
                &format!("{dir}: file {round} closed by its timer"),
                Duration::from_secs(20),
                |p| {
                    let closed = closed_files(p, dir);
                    (closed.len() == round + 1 && p.list(dir).len() == round + 1).then_some(())
                },
            );
        }
        assert!(agent.stop().success());
        let files = p.list(dir);
        assert_eq!(files.len(), 2, "{dir}: {files:?}");
        expect_numbers(&p.all_lines(dir), 2);
    }
}

#[test]
fn every_format_read_back_by_hadoop() {
    let Some(mut p) = peer() else { return };
    let sinks: &[(&str, &str)] = &[
        ("seq_writable", "hdfs.fileType = SequenceFile"),
        ("seq_text", "hdfs.fileType = SequenceFile\nhdfs.writeFormat = Text"),
        ("seq_writable_gzip", "hdfs.fileType = SequenceFile\nhdfs.codeC = gzip"),
        ("seq_text_default", "hdfs.fileType = SequenceFile\nhdfs.writeFormat = Text\nhdfs.codeC = DefaultCodec"),
        ("stream_text", "hdfs.fileType = DataStream\nhdfs.fileSuffix = .txt"),
        ("stream_avro", "hdfs.fileType = DataStream\nserializer = avro_event\nhdfs.fileSuffix = .avro"),
        ("stream_avro_deflate", "hdfs.fileType = DataStream\nserializer = avro_event\nserializer.compressionCodec = deflate"),
        ("compressed_text_gzip", "hdfs.fileType = CompressedStream\nhdfs.codeC = gzip"),
        ("compressed_avro_gzip", "hdfs.fileType = CompressedStream\nhdfs.codeC = gzip\nserializer = avro_event"),
        ("compressed_text_deflate", "hdfs.fileType = CompressedStream\nhdfs.codeC = default"),
    ];
    let names: Vec<&str> = sinks.iter().map(|s| s.0).collect();
    let mut conf = format!(
        r#"
a.sources = s
a.channels = {channels}
a.sinks = {sinks}
a.sources.s.type = seq
a.sources.s.totalEvents = 50
a.sources.s.batchSize = 7
a.sources.s.channels = {channels}
a.sources.s.interceptors = t h
a.sources.s.interceptors.t.type = static
a.sources.s.interceptors.t.key = timestamp
a.sources.s.interceptors.t.value = {TS}
a.sources.s.interceptors.h.type = static
a.sources.s.interceptors.h.key = dc
a.sources.s.interceptors.h.value = eu
"#,
        channels = names
            .iter()
            .map(|n| format!("c_{n}"))
            .collect::<Vec<_>>()
            .join(" "),
        sinks = names.join(" "),
    );
    for (name, keys) in sinks {
        conf.push_str(&format!(
            "a.channels.c_{name}.type = memory\na.sinks.{name}.type = hdfs\na.sinks.{name}.channel = c_{name}\n\
             a.sinks.{name}.hdfs.path = {url}/formats/{name}\na.sinks.{name}.hdfs.batchSize = 10\n\
             a.sinks.{name}.hdfs.rollCount = 0\na.sinks.{name}.hdfs.rollSize = 0\n\
             a.sinks.{name}.hdfs.journalDir = {{dir}}/journal-{name}\n",
            url = p.url
        ));
        for kv in keys.lines() {
            conf.push_str(&format!("a.sinks.{name}.{kv}\n"));
        }
    }
    let mut agent = Agent::start(&conf, &["--cores", "1"]);
    // Every sink has flushed its last batch once its file holds all 50 (read back below);
    // stopping first and then reading checks the closed, renamed files.
    p.wait_for("the last sink's file", Duration::from_secs(60), |p| {
        let files = p.list("/formats/compressed_text_deflate");
        let lines: usize = files
            .iter()
            .map(|f| p.text(&f.path).map(|l| l.len()).unwrap_or(0))
            .sum();
        (lines >= 50).then_some(())
    });
    assert!(agent.stop().success());

    let bodies: Vec<Vec<u8>> = (0..50).map(|i| i.to_string().into_bytes()).collect();
    let ts: i64 = TS.parse().unwrap();
    for (name, _) in sinks {
        let dir = format!("/formats/{name}");
        let files = p.list(&dir);
        assert_eq!(files.len(), 1, "{name}: {files:?}");
        let f = &files[0];
        assert!(f.closed, "{name} not closed");
        let file = name_of(&f.path).to_string();
        let result = match *name {
            n if n.starts_with("seq") => {
                let (meta, recs) = p
                    .seq(&f.path)
                    .unwrap_or_else(|e| panic!("{name}: Hadoop could not read it: {e}"));
                let value = if n.contains("text") {
                    "org.apache.hadoop.io.Text"
                } else {
                    "org.apache.hadoop.io.BytesWritable"
                };
                let codec = match n {
                    _ if n.ends_with("gzip") => "true true org.apache.hadoop.io.compress.GzipCodec",
                    _ if n.ends_with("default") => {
                        "true true org.apache.hadoop.io.compress.DefaultCodec"
                    }
                    _ => "false false none",
                };
                assert_eq!(
                    meta,
                    format!("META org.apache.hadoop.io.LongWritable {value} {codec}"),
                    "{name}"
                );
                assert!(
                    recs.iter().all(|(k, _)| *k == ts),
                    "{name}: keys are the timestamp header"
                );
                recs.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
            }
            n if n.contains("avro") => {
                let recs = p
                    .avro(&f.path)
                    .unwrap_or_else(|e| panic!("{name}: Avro could not read it: {e}"));
                assert!(
                    recs.iter()
                        .all(|(h, _)| *h == format!("dc=eu&timestamp={TS}")),
                    "{name}: {recs:?}"
                );
                recs.into_iter().map(|(_, b)| b.into_bytes()).collect()
            }
            _ => p
                .text(&f.path)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .into_iter()
                .map(String::into_bytes)
                .collect(),
        };
        assert_eq!(result, bodies, "{name}: every event once, in order");
        let suffix = match *name {
            "stream_text" => ".txt",
            "stream_avro" => ".avro",
            n if n.ends_with("gzip") => ".gz",
            n if n.ends_with("default")
                || n.ends_with("deflate") && n.starts_with("compressed") =>
            {
                ".deflate"
            }
            _ => "",
        };
        assert_flume_name(&file, "FlumeData", suffix);
    }
}

#[test]
fn hdfs_unreachable_at_start_then_back() {
    let Some(mut p) = peer() else { return };
    p.cmd("STOPNN").unwrap();
    let (mut agent, mut conn) =
        netcat_agent(&p, "/outage/start", "a.sinks.k.hdfs.rollInterval = 0");
    send(&mut conn, (0..30).map(|i| i.to_string()));
    agent.wait_for_log("batch failed and was rolled back", Duration::from_secs(30));
    p.cmd("STARTNN").unwrap();
    p.wait_for(
        "all 30 events after HDFS came back",
        Duration::from_secs(90),
        |p| (p.all_lines("/outage/start").len() >= 30).then_some(()),
    );
    assert!(agent.stop().success());
    let files = p.list("/outage/start");
    assert!(
        files.iter().all(|f| f.closed && !f.path.ends_with(".tmp")),
        "{files:?}"
    );
    let lines = p.all_lines("/outage/start");
    assert_eq!(
        lines.len(),
        30,
        "nothing written before HDFS was up, so no duplicates"
    );
    expect_numbers(&lines, 30);
}

#[test]
fn hdfs_going_away_mid_stream_loses_nothing() {
    let Some(mut p) = peer() else { return };
    let dir = "/outage/mid";
    let (mut agent, mut conn) = netcat_agent(&p, dir, "a.sinks.k.hdfs.rollInterval = 0");
    send(&mut conn, (0..50).map(|i| i.to_string()));
    p.wait_for("the first 50 synced", Duration::from_secs(30), |p| {
        (p.all_lines(dir).len() >= 50).then_some(())
    });
    p.cmd("STOPNN").unwrap();
    send(&mut conn, (50..100).map(|i| i.to_string()));
    agent.wait_for_log("batch failed and was rolled back", Duration::from_secs(60));
    p.cmd("STARTNN").unwrap();
    send(&mut conn, (100..120).map(|i| i.to_string()));
    // The abandoned file is recovered (lease recovery, cut to its synced length, renamed)
    // while new batches go to a new file.
    p.wait_for(
        "all 120 events, and no file left in use",
        Duration::from_secs(120),
        |p| {
            let files = p.list(dir);
            let lines = p.all_lines(dir);
            let mut seen: Vec<u64> = lines.iter().filter_map(|l| l.parse().ok()).collect();
            seen.sort();
            seen.dedup();
            let in_use = files.iter().filter(|f| f.path.ends_with(".tmp")).count();
            (seen.len() == 120 && in_use <= 1).then_some(())
        },
    );
    assert!(agent.stop().success());
    let files = p.list(dir);
    assert!(
        files.iter().all(|f| f.closed && !f.path.ends_with(".tmp")),
        "{files:?}"
    );
    let lines = p.all_lines(dir);
    // At-least-once: a batch that failed may have been written before the failure showed.
    expect_numbers(&lines, 120);
}

/// The sink config of the crash test's agent: long rolls keep its files in use.
fn crash_sink(url: &str, journal: &Path) -> String {
    format!(
        r#"
a.sinks.k.type = hdfs
a.sinks.k.channel = c
a.sinks.k.hdfs.path = {url}/crash
a.sinks.k.hdfs.batchSize = 10
a.sinks.k.hdfs.rollCount = 0
a.sinks.k.hdfs.rollSize = 0
a.sinks.k.hdfs.rollInterval = 0
a.sinks.k.hdfs.retryInterval = 1
a.sinks.k.hdfs.journalDir = {}
"#,
        journal.display()
    )
}

#[test]
fn in_use_files_left_by_a_crash_are_recovered_at_the_next_start() {
    let Some(mut p) = peer() else { return };
    let dir = "/crash";
    let url = p.url.clone();
    // Another writer in the same directory, with the same file prefix (so its in-use
    // file looks like ours) and its own journal, holding its file open throughout.
    let (mut other, mut other_conn) = netcat_agent(&p, dir, "a.sinks.k.hdfs.rollInterval = 0");
    send(&mut other_conn, (0..10).map(|i| format!("other-{i}")));
    let other_file = p.wait_for(
        "the other writer's first batch",
        Duration::from_secs(30),
        |p| {
            let files = p.list(dir);
            (files.len() == 1 && p.all_lines(dir).len() == 10).then(|| files[0].path.clone())
        },
    );
    assert!(other_file.ends_with(".tmp"));

    // The agent that crashes: two shards, one seq source each (s0 hashes to shard 0, s1
    // to shard 1), every file left open.
    let journal = tempfile::tempdir().unwrap();
    let conf = format!(
        r#"
a.sources = s0 s1
a.channels = c
a.sinks = k
a.channels.c.type = memory
a.channels.c.capacity = 10000
a.sources.s0.type = seq
a.sources.s0.totalEvents = 50
a.sources.s0.batchSize = 10
a.sources.s0.channels = c
a.sources.s1.type = seq
a.sources.s1.totalEvents = 30
a.sources.s1.batchSize = 10
a.sources.s1.channels = c
{}"#,
        crash_sink(&url, journal.path())
    );
    let mut first = Agent::start(&conf, &["--cores", "2"]);
    let ours = |p: &mut Peer| -> Vec<FileInfo> {
        p.list(dir)
            .into_iter()
            .filter(|f| f.path != other_file)
            .collect()
    };
    // Every event hsync'd (and so committed): readable by Hadoop's reader while in use.
    let open_files = p.wait_for("all 80 events synced", Duration::from_secs(60), |p| {
        let files = ours(p);
        let n: usize = files
            .iter()
            .map(|f| p.seq(&f.path).map(|(_, r)| r.len()).unwrap_or(0))
            .sum();
        (files.len() == 2 && n == 80).then_some(files)
    });
    first.signal(libc::SIGKILL);
    assert!(!first.wait_exit(Duration::from_secs(10)).success());
    for f in &open_files {
        assert!(
            f.path.ends_with(".tmp") && !f.closed,
            "{f:?}: the crash must leave it in use for this test to mean anything"
        );
    }

    // The restart: one shard (it adopts shard 1's journal), no events of its own.
    let port = free_port();
    let conf = format!(
        r#"
a.sources = n
a.channels = c
a.sinks = k
a.channels.c.type = memory
a.sources.n.type = netcat
a.sources.n.bind = 127.0.0.1
a.sources.n.port = {port}
a.sources.n.channels = c
{}"#,
        crash_sink(&url, journal.path())
    );
    let mut second = Agent::start(&conf, &["--cores", "1"]);
    second.wait_for_log(
        "adopted the HDFS journal of shard 1",
        Duration::from_secs(10),
    );
    second.wait_for_log(
        "recovered all 2 in-use files left by an earlier run",
        Duration::from_secs(60),
    );
    let recovered = ours(&mut p);
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    for f in &recovered {
        assert!(f.closed && !f.path.ends_with(".tmp"), "{f:?} not recovered");
        assert!(
            open_files
                .iter()
                .any(|o| o.path == format!("{}.tmp", f.path)),
            "{f:?} is the rename of an in-use file"
        );
        let name = name_of(&f.path);
        assert_flume_name(name, "FlumeData", "");
        let n = if name.ends_with(".0") { 50 } else { 30 };
        let (_, recs) = p
            .seq(&f.path)
            .unwrap_or_else(|e| panic!("{}: Hadoop could not read it: {e}", f.path));
        let bodies: Vec<Vec<u8>> = recs.into_iter().map(|(_, v)| v).collect();
        let want: Vec<Vec<u8>> = (0..n).map(|i: i32| i.to_string().into_bytes()).collect();
        assert_eq!(
            bodies, want,
            "{}: every committed event once, in order",
            f.path
        );
    }
    // The other writer's file was not touched: still open under its in-use name, and its
    // writer goes on writing to it.
    let theirs: Vec<FileInfo> = p
        .list(dir)
        .into_iter()
        .filter(|f| f.path == other_file)
        .collect();
    assert!(
        theirs.len() == 1 && !theirs[0].closed,
        "the other writer's file was recovered: {theirs:?}"
    );
    send(&mut other_conn, (10..20).map(|i| format!("other-{i}")));
    p.wait_for(
        "the other writer's second batch",
        Duration::from_secs(30),
        |p| {
            let lines = p.text(&other_file).unwrap_or_default();
            (lines.len() == 20).then_some(())
        },
    );
    assert!(
        !other.log_text().contains("abandoning"),
        "the other writer lost its file"
    );

    assert!(second.stop().success());
    assert!(other.stop().success());
    let files = p.list(dir);
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files.iter().all(|f| f.closed && !f.path.ends_with(".tmp")),
        "{files:?}"
    );
    let theirs = other_file.trim_end_matches(".tmp").to_string();
    let lines = p.text(&theirs).unwrap();
    let want: Vec<String> = (0..20).map(|i| format!("other-{i}")).collect();
    assert_eq!(lines, want);
    // The orphaned shard's journal was folded into shard 0's.
    assert_eq!(
        common::file_names(journal.path()),
        ["shard-0"],
        "journal directories left"
    );
}

#[test]
fn recovery_at_start_waits_for_hdfs_without_holding_up_the_agent() {
    let Some(mut p) = peer() else { return };
    let dir = "/crash-nn-down";
    let url = p.url.clone();
    let journal = tempfile::tempdir().unwrap();
    // Short calls, so attempts against the stopped namenode end soon after it is back.
    let sink = crash_sink(&url, journal.path()).replace("/crash\n", &format!("{dir}\n"))
        + "a.sinks.k.hdfs.callTimeout = 5000\n";
    let conf = format!(
        "a.sources = s0\na.channels = c\na.sinks = k\na.channels.c.type = memory\n\
         a.sources.s0.type = seq\na.sources.s0.totalEvents = 40\na.sources.s0.batchSize = 10\n\
         a.sources.s0.channels = c\n{sink}"
    );
    let mut first = Agent::start(&conf, &["--cores", "1"]);
    let open_file = p.wait_for("all 40 events synced", Duration::from_secs(60), |p| {
        let files = p.list(dir);
        let n = files
            .first()
            .and_then(|f| p.seq(&f.path).ok())
            .map_or(0, |(_, r)| r.len());
        (files.len() == 1 && n == 40).then(|| files[0].clone())
    });
    first.signal(libc::SIGKILL);
    assert!(!first.wait_exit(Duration::from_secs(10)).success());
    assert!(open_file.path.ends_with(".tmp") && !open_file.closed);

    // HDFS is down when the agent comes back: it is ready all the same (Agent::start
    // waits for "started:"), and the recovery waits for the namenode on its own.
    p.cmd("STOPNN").unwrap();
    let port = free_port();
    let conf = format!(
        "a.sources = n\na.channels = c\na.sinks = k\na.channels.c.type = memory\n\
         a.sources.n.type = netcat\na.sources.n.bind = 127.0.0.1\na.sources.n.port = {port}\n\
         a.sources.n.channels = c\n{sink}"
    );
    let mut second = Agent::start(&conf, &["--cores", "1"]);
    second.wait_for_log("will retry every", Duration::from_secs(60));
    p.cmd("STARTNN").unwrap();
    // After a namenode restart HDFS itself may take its block-recovery timeout (about 90 s
    // seen here) before the lease recovery completes; the sink polls it meanwhile.
    second.wait_for_log(
        "waiting for the namenode to recover the lease",
        Duration::from_secs(60),
    );
    second.wait_for_log(
        "recovered all 1 in-use files left by an earlier run",
        Duration::from_secs(240),
    );
    assert!(second.stop().success());
    let files = p.list(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].closed && files[0].path == open_file.path.trim_end_matches(".tmp"));
    let (_, recs) = p.seq(&files[0].path).unwrap();
    let bodies: Vec<Vec<u8>> = recs.into_iter().map(|(_, v)| v).collect();
    let want: Vec<Vec<u8>> = (0..40).map(|i: i32| i.to_string().into_bytes()).collect();
    assert_eq!(bodies, want);
}
