//! The syslog sources with real senders: util-linux `logger` (TCP newline-framed and
//! octet-counted, UDP, RFC 3164 and 5424), rsyslog forwarding over TCP (both framings) and
//! TLS (its gtls driver), multiport_syslogtcp with two ports, the sender headers,
//! backpressure on a TCP sender, messages over eventSize and the idle timeout.
//!
//! Bodies are checked for the message text each sender was given, not for their exact
//! parsed form; `Facility`/`Severity` are checked (pri/8, pri%8, as Flume) on every event.
//! Tests that need rsyslog skip with a reason when `rsyslogd` is missing,
//! unless CI=true.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Record = (BTreeMap<String, String>, String);

/// Agent `a1`: the source `r1` (its keys in `source`, each line without the prefix) →
/// memory → file_roll writing headers and body into `{dir}/out`.
fn conf(source: &str, extra: &str) -> String {
    let source: String = source
        .lines()
        .map(|l| format!("a1.sources.r1.{}\n", l.trim()))
        .collect();
    format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
{source}a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 100000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {{dir}}/out
a1.sinks.k1.sink.rollInterval = 0
a1.sinks.k1.sink.batchSize = 1000
a1.sinks.k1.sink.serializer = HEADER_AND_TEXT
a1.sinks.k1.channel = c1
{extra}"
    )
}

/// The `{k=v, ...} body` lines of HEADER_AND_TEXT files.
fn records(dir: &Path) -> Vec<Record> {
    lines_in(dir)
        .into_iter()
        .map(|l| {
            let rest = l.strip_prefix('{').expect("a header block");
            let (h, body) = rest
                .split_once("} ")
                .unwrap_or((rest.trim_end_matches('}'), ""));
            let headers = h
                .split(", ")
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            (headers, body.to_string())
        })
        .collect()
}

fn wait_records(agent: &Agent, n: usize) -> Vec<Record> {
    let dir = agent.path("out");
    wait_until(Duration::from_secs(60), &format!("{n} events"), || {
        let r = records(&dir);
        (r.len() >= n).then_some(r)
    })
}

/// Every token `{prefix}{i}.` for i < n is in exactly one body, and nothing else came.
fn assert_all_arrived(records: &[Record], prefix: &str, n: usize) {
    let mut seen = BTreeSet::new();
    for (_, body) in records {
        let at = body
            .find(prefix)
            .unwrap_or_else(|| panic!("no {prefix} in {body:?}"));
        let digits: String = body[at + prefix.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        assert!(
            seen.insert(digits.parse::<usize>().unwrap()),
            "twice: {body:?}"
        );
        // No octet count or framing byte leaked into the body.
        assert!(!body.starts_with(|c: char| c.is_ascii_digit()), "{body:?}");
        assert!(!body.ends_with('\n') && !body.ends_with('\r'), "{body:?}");
    }
    assert_eq!(seen, (0..n).collect::<BTreeSet<_>>());
}

/// Every event's Facility and Severity are Flume's pri/8 and pri%8.
fn assert_priority(records: &[Record], pri: u32) {
    for (h, _) in records {
        assert_eq!(h.get("Facility"), Some(&(pri / 8).to_string()), "{h:?}");
        assert_eq!(h.get("Severity"), Some(&(pri % 8).to_string()), "{h:?}");
    }
}

/// Runs `logger` with `args`, its stdin the lines `{prefix}{i}. hello` for i < n.
fn logger(args: &[&str], prefix: &str, n: usize) {
    let mut child = Command::new("logger")
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("util-linux logger");
    let text: String = (0..n).map(|i| format!("{prefix}{i}. hello\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "logger {args:?} failed");
}

fn logger_tcp(framing: &[&str], format: &str) {
    let port = free_port();
    let mut agent = Agent::start(
        &conf(
            &format!(
                "type = syslogtcp
                host = 127.0.0.1
                port = {port}
                clientIPHeader = ip
                clientHostnameHeader = host"
            ),
            "",
        ),
        &["--cores", "2"],
    );
    let p = port.to_string();
    let mut args = vec![
        "--tcp",
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        format,
        "-p",
        "user.notice",
        "-t",
        "t",
    ];
    args.extend_from_slice(framing);
    logger(&args, "tcpmsg", 300);
    let got = wait_records(&agent, 300);
    assert_all_arrived(&got, "tcpmsg", 300);
    assert_priority(&got, 13);
    for (h, _) in &got {
        assert_eq!(h.get("ip").map(String::as_str), Some("127.0.0.1"), "{h:?}");
        assert_eq!(
            h.get("host").map(String::as_str),
            Some("localhost"),
            "{h:?}"
        );
    }
    assert!(agent.stop().success());
}

#[test]
fn logger_over_tcp_newline_framed_rfc3164() {
    logger_tcp(&[], "--rfc3164");
}

#[test]
fn logger_over_tcp_newline_framed_rfc5424() {
    logger_tcp(&[], "--rfc5424");
}

#[test]
fn logger_over_tcp_octet_counted_rfc3164() {
    logger_tcp(&["--octet-count"], "--rfc3164");
}

#[test]
fn logger_over_tcp_octet_counted_rfc5424() {
    logger_tcp(&["--octet-count"], "--rfc5424");
}

#[test]
fn logger_over_udp_rfc3164_and_rfc5424_with_client_headers() {
    let port = free_udp_port();
    let mut agent = Agent::start(
        &conf(
            &format!(
                "type = syslogudp
                host = 127.0.0.1
                port = {port}
                clientIPHeader = ip
                clientHostnameHeader = host"
            ),
            "",
        ),
        &["--cores", "2"],
    );
    let p = port.to_string();
    // 200 datagrams fit the socket's receive buffer (4 MiB): none is lost on loopback.
    for (format, prefix) in [("--rfc3164", "udpA"), ("--rfc5424", "udpB")] {
        logger(
            &[
                "--udp",
                "-n",
                "127.0.0.1",
                "-P",
                &p,
                format,
                "-p",
                "local0.err",
                "-t",
                "t",
            ],
            prefix,
            100,
        );
    }
    let got = wait_records(&agent, 200);
    let of = |p: &str| -> Vec<Record> {
        got.iter()
            .filter(|(_, body)| body.contains(p))
            .cloned()
            .collect()
    };
    assert_all_arrived(&of("udpA"), "udpA", 100);
    assert_all_arrived(&of("udpB"), "udpB", 100);
    assert_priority(&got, 16 * 8 + 3);
    for (h, _) in &got {
        assert_eq!(h.get("ip").map(String::as_str), Some("127.0.0.1"), "{h:?}");
        assert_eq!(
            h.get("host").map(String::as_str),
            Some("localhost"),
            "{h:?}"
        );
    }
    assert!(agent.stop().success());
}

/// UDP cannot push back: datagrams the full channel refuses are dropped, counted and
/// logged once per batch; what the channel took is delivered once a sink drains it.
#[test]
fn syslogudp_drops_what_a_full_channel_refuses_and_says_so() {
    let (port, avro) = (free_udp_port(), free_port());
    let mut agent = Agent::start(
        &format!(
            "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = syslogudp
a1.sources.r1.host = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 10
a1.channels.c1.transactionCapacity = 10
a1.channels.c1.keep-alive = 0
a1.sinks.k1.type = avro
a1.sinks.k1.hostname = 127.0.0.1
a1.sinks.k1.port = {avro}
a1.sinks.k1.batch-size = 10
a1.sinks.k1.channel = c1
"
        ),
        &["--cores", "1"],
    );
    let p = port.to_string();
    logger(
        &["--udp", "-n", "127.0.0.1", "-P", &p, "--rfc5424"],
        "drop",
        50,
    );
    agent.wait_for_log("dropped", Duration::from_secs(20));
    let mut receiver = Agent::start(&receiver_conf(avro, ""), &[]);
    let out = receiver.path("out");
    // The sink drains the channel before the agent stops.
    assert!(agent.stop().success());
    assert!(receiver.stop().success());
    // What the channel took arrived; the rest was dropped and counted, none lost unseen.
    let count = |what: &str| -> usize {
        let line = agent.wait_for_log(&format!("r1: events.{what} = "), Duration::from_secs(1));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (accepted, refused) = (count("accepted"), count("refused"));
    assert_eq!(accepted + refused, 50);
    assert!(refused > 0 && accepted > 0, "{accepted} {refused}");
    let got = lines_in(&out);
    assert_eq!(got.len(), accepted, "{got:?}");
}

#[test]
fn multiport_two_ports_with_port_and_client_headers() {
    let (p1, p2) = (free_port(), free_port());
    let mut agent = Agent::start(
        &conf(
            &format!(
                "type = multiport_syslogtcp
                host = 127.0.0.1
                ports = {p1} {p2}
                portHeader = port
                clientIPHeader = ip
                charset.port.{p2} = ISO-8859-1
                numProcessors = 4"
            ),
            "",
        ),
        &["--cores", "2"],
    );
    for (port, prefix) in [(p1, "portx"), (p2, "porty")] {
        let p = port.to_string();
        logger(
            &["--tcp", "-n", "127.0.0.1", "-P", &p, "--rfc3164", "-t", "t"],
            prefix,
            150,
        );
    }
    let got = wait_records(&agent, 300);
    for (port, prefix) in [(p1, "portx"), (p2, "porty")] {
        let of: Vec<Record> = got
            .iter()
            .filter(|(h, _)| h.get("port") == Some(&port.to_string()))
            .cloned()
            .collect();
        assert_all_arrived(&of, prefix, 150);
        assert!(of.iter().all(|(h, _)| h["ip"] == "127.0.0.1"));
    }
    assert!(agent.stop().success());
}

// ---- rsyslog -------------------------------------------------------------------------

/// Whether rsyslog can run here; prints why not (and fails under CI=true).
fn have_rsyslog() -> bool {
    let found = Command::new("rsyslogd")
        .arg("-v")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "rsyslogd is missing (CI=true): run scripts/setup"
        );
        eprintln!("SKIPPED: rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls, or scripts/setup)");
    }
    found
}

/// An unprivileged rsyslogd with its own work directory, receiving on `input` (imtcp)
/// and forwarding with `action`; killed when dropped.
struct Rsyslog {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start(input: u16, global: &str, action: &str) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "global(workDirectory=\"{d}\" {global})
module(load=\"imtcp\")
input(type=\"imtcp\" port=\"{input}\" address=\"127.0.0.1\")
{action}
"
        );
        let path = dir.path().join("rsyslog.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&path)
            .arg("-i")
            .arg(dir.path().join("pid"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(20), "rsyslog's imtcp input", || {
            TcpStream::connect(("127.0.0.1", input)).ok()
        });
        Rsyslog { child, _dir: dir }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// rsyslog fed by `logger` forwards to the source `ty` (syslogtcp or
/// multiport_syslogtcp) with `framing`; every message arrives once.
fn rsyslog_forwards(ty: &str, framing: &str, source_extra: &str, global: &str, driver: &str) {
    let (input, port) = (free_port(), free_port());
    let port_key = if ty == "syslogtcp" { "port" } else { "ports" };
    let mut agent = Agent::start(
        &conf(
            &format!(
                "type = {ty}
                host = 127.0.0.1
                {port_key} = {port}
                clientIPHeader = ip
                {source_extra}"
            ),
            "",
        ),
        &["--cores", "2"],
    );
    let _rsyslog = Rsyslog::start(
        input,
        global,
        &format!(
            "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" TCP_Framing=\"{framing}\" {driver})"
        ),
    );
    let p = input.to_string();
    logger(
        &[
            "--tcp",
            "-n",
            "127.0.0.1",
            "-P",
            &p,
            "--rfc3164",
            "-p",
            "daemon.warning",
            "-t",
            "t",
        ],
        "rsys",
        20_000,
    );
    let got = wait_records(&agent, 20_000);
    assert_all_arrived(&got, "rsys", 20_000);
    assert_priority(&got, 3 * 8 + 4);
    assert!(got.iter().all(|(h, _)| h["ip"] == "127.0.0.1"));
    assert!(agent.stop().success());
    assert!(
        !agent.log_text().contains("closing the connection"),
        "{}",
        agent.log_text()
    );
}

#[test]
fn rsyslog_forwards_over_tcp_newline_framed() {
    if have_rsyslog() {
        rsyslog_forwards("syslogtcp", "traditional", "", "", "");
    }
}

#[test]
fn rsyslog_forwards_over_tcp_octet_counted() {
    if have_rsyslog() {
        rsyslog_forwards("syslogtcp", "octet-counted", "", "", "");
    }
}

/// A self-signed certificate for localhost: its PEM (rsyslog's CA file) and a PKCS12
/// keystore with its key (our side).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf) {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, made.cert.pem()).unwrap();
    let mut ks = KeyStore::new();
    let chain = PrivateKeyChain::new(
        b"1".as_slice(),
        PrivateKey::from_der(&made.signing_key.serialize_der()).unwrap(),
        [Certificate::from_der(made.cert.der()).unwrap()],
    );
    ks.add_entry("server", KeyStoreEntry::PrivateKeyChain(chain));
    let keystore = dir.join("server.p12");
    std::fs::write(&keystore, ks.writer("ks-secret").write().unwrap()).unwrap();
    (ca, keystore)
}

/// Whether rsyslog's gtls driver is installed; prints why not (and fails under CI=true).
fn have_gtls() -> bool {
    let found = Command::new("sh")
        .args(["-c", "ls /usr/lib/*/rsyslog/lmnsd_gtls.so"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "rsyslog-gnutls is missing (CI=true): run scripts/setup"
        );
        eprintln!(
            "SKIPPED: rsyslog's gtls driver is not installed (apt-get install rsyslog-gnutls)"
        );
    }
    found
}

fn rsyslog_forwards_over_tls(ty: &str, framing: &str) {
    if !have_rsyslog() || !have_gtls() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, keystore) = tls_files(dir.path());
    rsyslog_forwards(
        ty,
        framing,
        &format!(
            "ssl = true
            keystore = {}
            keystore-password = ks-secret
            keystore-type = PKCS12",
            keystore.display()
        ),
        &format!("DefaultNetstreamDriverCAFile=\"{}\"", ca.display()),
        "StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"anon\"",
    );
}

#[test]
fn rsyslog_forwards_over_tls_with_its_gtls_driver() {
    rsyslog_forwards_over_tls("syslogtcp", "octet-counted");
}

#[test]
fn rsyslog_forwards_to_multiport_over_tls_newline_framed() {
    rsyslog_forwards_over_tls("multiport_syslogtcp", "traditional");
}

#[test]
fn a_plain_sender_to_a_tls_source_is_closed_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_, keystore) = tls_files(dir.path());
    let port = free_port();
    let mut agent = Agent::start(
        &conf(
            &format!(
                "type = syslogtcp
                host = 127.0.0.1
                port = {port}
                ssl = true
                keystore = {}
                keystore-password = ks-secret
                keystore-type = PKCS12",
                keystore.display()
            ),
            "",
        ),
        &[],
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"<13>Dec  8 00:00:00 h t: plain\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Whatever alert comes back, the connection ends.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    agent.wait_for_log("is the sender using TLS?", Duration::from_secs(10));
    assert!(agent.stop().success());
    assert!(records(&agent.path("out")).is_empty());
}

// ---- limits --------------------------------------------------------------------------

#[test]
fn a_message_over_event_size_is_cut_there_newline_framed_or_octet_counted() {
    let port = free_port();
    let mut agent = Agent::start(
        &conf(
            &format!(
                "type = syslogtcp
                host = 127.0.0.1
                port = {port}
                eventSize = 100"
            ),
            "",
        ),
        &[],
    );
    let long = format!("<13>{}", "x".repeat(246));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("{long}\n<13>after1\n").as_bytes())
        .unwrap();
    let long2 = format!("<13>{}", "y".repeat(296));
    s.write_all(format!("{} {long2}10 <13>after2", long2.len()).as_bytes())
        .unwrap();
    drop(s);
    let got = wait_records(&agent, 8);
    let bodies: Vec<&str> = got.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(got.len(), 8, "{bodies:?}");
    // Newline-framed: 100 + 100 + 50 bytes, then the next message.
    let xs: usize = bodies[..3].iter().map(|b| b.matches('x').count()).sum();
    assert_eq!(xs, 246, "{bodies:?}");
    assert!(bodies[..3].iter().all(|b| b.len() <= 100));
    assert!(bodies[3].contains("after1"), "{bodies:?}");
    // Octet-counted 300 bytes: three pieces of 100, then the next frame.
    let ys: usize = bodies[4..7].iter().map(|b| b.matches('y').count()).sum();
    assert_eq!(ys, 296, "{bodies:?}");
    assert!(bodies[4..7].iter().all(|b| b.len() <= 100));
    assert!(bodies[7].contains("after2"), "{bodies:?}");
    for first in [0, 4] {
        assert_eq!(
            got[first].0.get("flume.syslog.status").map(String::as_str),
            Some("Incomplete"),
            "{:?}",
            got[first].0
        );
    }
    assert!(agent.stop().success());
}

#[test]
fn an_idle_connection_is_closed_after_idle_timeout() {
    let port = free_port();
    let mut agent = Agent::start(
        &conf(
            &format!(
                "type = syslogtcp
                host = 127.0.0.1
                port = {port}
                idle-timeout = 500"
            ),
            "",
        ),
        &[],
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Half a message, then silence.
    s.write_all(b"<13>unfinished").unwrap();
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = s.read(&mut [0u8; 16]).unwrap_or(0);
    let waited = start.elapsed();
    assert_eq!(n, 0, "the agent closes, it does not answer");
    assert!(
        waited >= Duration::from_millis(400),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    agent.wait_for_log("idle-timeout", Duration::from_secs(5));
    // A connection that keeps talking stays open.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for i in 0..8 {
        s.write_all(format!("<13>alive{i}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(s);
    let got = wait_records(&agent, 8);
    assert_eq!(got.len(), 8);
    assert!(agent.stop().success());
}

/// With no sink draining (the avro sink's receiver is down) and a small channel, a TCP
/// sender is slowed to what the agent holds; nothing is lost once the receiver is up and
/// the channel drains, and the agent's memory stays bounded meanwhile.
#[test]
fn a_full_channel_slows_a_tcp_sender_and_nothing_is_lost_once_it_drains() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let (port, avro) = (free_port(), free_port());
    let mut agent = Agent::start(
        &format!(
            "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = syslogtcp
a1.sources.r1.host = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 500
a1.channels.c1.transactionCapacity = 100
a1.sinks.k1.type = avro
a1.sinks.k1.hostname = 127.0.0.1
a1.sinks.k1.port = {avro}
a1.sinks.k1.batch-size = 100
a1.sinks.k1.channel = c1
"
        ),
        &["--cores", "1"],
    );
    let total = 200_000usize;
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let sender = std::thread::spawn(move || {
        let mut chunk = String::new();
        for i in 0..total {
            chunk.push_str(&format!(
                "<13>Dec  8 00:00:00 h t: bp{i}. {}\n",
                "z".repeat(40)
            ));
            if chunk.len() > 16 << 10 || i + 1 == total {
                s.write_all(chunk.as_bytes()).unwrap();
                w.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                chunk.clear();
            }
        }
    });
    agent.wait_for_log("pausing reads", Duration::from_secs(30));
    // The sender stalls: its progress stops while nothing drains.
    let mut last = (written.load(Ordering::Relaxed), Instant::now());
    let deadline = Instant::now() + Duration::from_secs(30);
    while last.1.elapsed() < Duration::from_secs(1) {
        assert!(Instant::now() < deadline, "the sender never stalled");
        std::thread::sleep(Duration::from_millis(50));
        let now = written.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    assert!(!sender.is_finished(), "the sender was never slowed");
    let whole = (total * 60) as u64;
    println!(
        "stalled after {} of about {whole} bytes",
        written.load(Ordering::Relaxed)
    );
    assert!(written.load(Ordering::Relaxed) < whole / 2);
    let (now, peak) = rss(agent.child.id());
    println!(
        "agent RSS while stalled: {} KiB (peak {} KiB)",
        now >> 10,
        peak >> 10
    );
    assert!(peak < 96 << 20, "peak RSS {peak}");
    // The receiver comes up: the channel drains and every message arrives.
    let mut receiver = Agent::start(&receiver_conf(avro, ""), &[]);
    sender.join().unwrap();
    let out = receiver.path("out");
    wait_until(
        Duration::from_secs(120),
        "every message at the receiver",
        || (lines_in(&out).len() >= total).then_some(()),
    );
    let mut seen = BTreeSet::new();
    for l in lines_in(&out) {
        let at = l.find("bp").unwrap();
        let digits: String = l[at + 2..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        seen.insert(digits.parse::<usize>().unwrap());
    }
    assert_eq!(seen.len(), total, "lost messages");
    let (_, peak) = rss(agent.child.id());
    println!("agent peak RSS: {} KiB", peak >> 10);
    assert!(agent.stop().success());
    assert!(receiver.stop().success());
}

#[test]
fn describe_lists_the_keys_of_the_three_types() {
    for (ty, key) in [
        ("syslogtcp", "eventSize"),
        ("syslogudp", "clientHostnameHeader"),
        ("multiport_syslogtcp", "charset.port.*"),
        (
            "org.apache.flume.source.MultiportSyslogTCPSource",
            "portHeader",
        ),
    ] {
        let (code, out, err) = run(&["describe", ty]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(key), "{out}");
    }
}
