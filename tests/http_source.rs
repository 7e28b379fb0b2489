//! The http source on the real binary, driven by curl and by raw sockets: JSON batches
//! delivered with their headers, keep-alive and pipelining, chunked bodies,
//! `Expect: 100-continue`, Flume's statuses (400 bad JSON, 503 channel full with nothing
//! acknowledged lost, the servlet's answers to other methods), 413 over
//! `max-request-bytes`, idle connections closed, and HTTPS with curl.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn conf(port: u16, source_extra: &str) -> String {
    format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = http
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
{source_extra}
a1.channels.c1.type = memory
a1.channels.c1.capacity = 10000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {{dir}}/out
a1.sinks.k1.sink.serializer = HEADER_AND_TEXT
a1.sinks.k1.channel = c1
"
    )
}

fn start(source_extra: &str) -> (Agent, u16) {
    let port = free_port();
    let agent = Agent::start(&conf(port, source_extra), &[]);
    (agent, port)
}

/// Waits for exactly `want` output lines (sorted) and checks no more come.
fn output(agent: &Agent, want: usize) -> Vec<String> {
    let dir = agent.path("out");
    let mut lines = wait_until(Duration::from_secs(20), "the events in the output", || {
        let l = lines_in(&dir);
        (l.len() >= want).then_some(l)
    });
    lines.sort();
    lines
}

/// Runs curl; returns the HTTP status and the response body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// One response read off a raw connection: status, headers (lower-cased names), body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_response(r: &mut BufReader<TcpStream>) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .expect("a status line")
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Response {
        status,
        headers,
        body,
    }
}

fn connect(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn post(body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// True once the peer has closed the connection (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn json_batch_is_delivered_with_headers_and_bodies() {
    let (agent, port) = start("");
    let url = format!("http://127.0.0.1:{port}/");
    let (status, body) = curl(&[
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        r#"[{"headers":{"host":"h1","n":"1"},"body":"first event"},{"headers":{},"body":"caf\u00e9 \"q\""},{"body":"third"}]"#,
        &url,
    ]);
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, _) = curl(&["--data-binary", "[]", &url]);
    assert_eq!(status, 200, "an empty batch is answered OK");
    let lines = output(&agent, 3);
    assert_eq!(
        lines,
        [
            r#"{host=h1, n=1} first event"#,
            r#"{} café "q""#,
            "{} third"
        ]
    );
}

#[test]
fn keep_alive_serves_several_requests_and_pipelined_ones_in_order() {
    let (agent, port) = start("");
    let (mut s, mut r) = connect(port);
    for i in 0..3 {
        s.write_all(post(&format!(r#"[{{"body":"one-{i}"}}]"#)).as_bytes())
            .unwrap();
        let resp = read_response(&mut r);
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("connection"),
            None,
            "HTTP/1.1 keeps the connection"
        );
    }
    // Three requests in one write, the last with Connection: close.
    let mut wire = String::new();
    wire += &post(r#"[{"body":"pipe-0"}]"#);
    wire += "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{x}";
    let last = r#"[{"body":"pipe-2"}]"#;
    wire += &format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{last}",
        last.len()
    );
    s.write_all(wire.as_bytes()).unwrap();
    let statuses: Vec<u16> = (0..3).map(|_| read_response(&mut r).status).collect();
    assert_eq!(statuses, [200, 400, 200]);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "closed after Connection: close"
    );
    // HTTP/1.0 closes unless asked to keep the connection.
    let (mut s, mut r) = connect(port);
    let ten = |i: u8, extra: &str| {
        let b = format!(r#"[{{"body":"ten-{i}"}}]"#);
        format!(
            "POST / HTTP/1.0\r\n{extra}Content-Length: {}\r\n\r\n{b}",
            b.len()
        )
    };
    s.write_all(ten(0, "Connection: keep-alive\r\n").as_bytes())
        .unwrap();
    let resp = read_response(&mut r);
    assert_eq!(
        (resp.status, resp.header("connection")),
        (200, Some("keep-alive"))
    );
    s.write_all(ten(1, "").as_bytes()).unwrap();
    assert_eq!(read_response(&mut r).status, 200);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "HTTP/1.0 closes by default"
    );
    let lines = output(&agent, 7);
    let want = [
        "one-0", "one-1", "one-2", "pipe-0", "pipe-2", "ten-0", "ten-1",
    ];
    assert_eq!(lines, want.map(|b| format!("{{}} {b}")));
}

#[test]
fn chunked_bodies_and_expect_100_continue() {
    let (agent, port) = start("");
    let url = format!("http://127.0.0.1:{port}/");
    // curl sends a chunked body when told to, and waits for 100 Continue when asked to
    // (curl 7.88 asks on its own only above 1 MiB).
    let big: String = (0..40)
        .map(|i| format!(r#"{{"body":"{i:02}-{}"}},"#, "x".repeat(60)))
        .collect();
    let big = format!("[{}]", big.trim_end_matches(','));
    assert!(big.len() > 1024);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &big).unwrap();
    let (status, _) = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", file.path().display()),
        &url,
    ]);
    assert_eq!(status, 200);
    let out = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "20", "--expect100-timeout", "10"])
        .args(["-H", "Expect: 100-continue"])
        .args([
            "--data-binary",
            &format!("@{}", file.path().display()),
            &url,
        ])
        .output()
        .unwrap();
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(trace.contains("> Expect: 100-continue"), "{trace}");
    let cont = trace
        .find("< HTTP/1.1 100 Continue")
        .expect("a 100 Continue");
    let ok = trace.find("< HTTP/1.1 200 OK").expect("a 200");
    assert!(cont < ok, "{trace}");
    // On a raw socket: the 100 comes before the body is sent, then the answer.
    let (mut s, mut r) = connect(port);
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    let cont = read_response(&mut r);
    assert_eq!(cont.status, 100);
    s.write_all(b"5\r\n[{\"bo\r\n11;ext=1\r\ndy\":\"raw-chunk\"}]\r\n0\r\nTrailer: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r).status, 200);
    let lines = output(&agent, 81);
    assert!(lines.contains(&"{} raw-chunk".to_string()));
    assert_eq!(
        lines.iter().filter(|l| l.contains(&"x".repeat(60))).count(),
        80
    );
}

#[test]
fn flumes_statuses_for_bad_bodies_and_other_methods() {
    let (agent, port) = start("");
    let url = format!("http://127.0.0.1:{port}/");
    let (status, body) = curl(&["--data-binary", "[{\"body\": ", &url]);
    assert_eq!(status, 400);
    assert!(body.contains("Request has invalid JSON Syntax"), "{body}");
    assert_eq!(curl(&["--data-binary", "{}", &url]).0, 400);
    assert_eq!(curl(&["--data-binary", "[null]", &url]).0, 500);
    let latin1 = ["-H", "Content-Type: application/json; charset=ISO-8859-1"];
    assert_eq!(
        curl(&[latin1[0], latin1[1], "--data-binary", "[]", &url]).0,
        500
    );
    // Flume's servlet serves GET as POST: an empty body is a null document (500), a
    // JSON body is delivered.
    assert_eq!(curl(&[&url]).0, 500);
    let (mut s, mut r) = connect(port);
    let get = r#"[{"body":"by-get"}]"#;
    let get = format!(
        "GET /any/path HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{get}",
        get.len()
    );
    s.write_all(get.as_bytes()).unwrap();
    assert_eq!(read_response(&mut r).status, 200);
    assert_eq!(curl(&["-X", "PUT", "--data-binary", "[]", &url]).0, 405);
    assert_eq!(curl(&["-X", "DELETE", "--http1.0", &url]).0, 400);
    assert_eq!(curl(&["-X", "OPTIONS", &url]).0, 403);
    assert_eq!(curl(&["-X", "TRACE", &url]).0, 403);
    assert_eq!(curl(&["-X", "PATCH", &url]).0, 501);
    // The connection survives a handler's 400.
    s.write_all(post("nope").as_bytes()).unwrap();
    let resp = read_response(&mut r);
    assert_eq!(resp.status, 400);
    let text = String::from_utf8_lossy(&resp.body);
    assert!(text.starts_with("Bad request from client."), "{text}");
    s.write_all(post(r#"[{"body":"after-400"}]"#).as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut r).status, 200);
    assert_eq!(output(&agent, 2), ["{} after-400", "{} by-get"]);
}

#[test]
fn over_max_request_bytes_is_413_and_the_connection_closes() {
    let (_agent, port) = start("a1.sources.r1.max-request-bytes = 4096");
    let (mut s, mut r) = connect(port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        .unwrap();
    s.write_all(&[b' '; 5000]).unwrap();
    assert_eq!(read_response(&mut r).status, 413);
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    // Chunked: found out while decoding.
    let (mut s, mut r) = connect(port);
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n")
        .unwrap();
    s.write_all(&[b' '; 0x800]).unwrap();
    s.write_all(b"\r\n900\r\n").unwrap();
    assert_eq!(read_response(&mut r).status, 413);
    // curl with a body over the limit gets the 413 instead of a 100 Continue.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), vec![b' '; 10_000]).unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        curl(&[
            "--data-binary",
            &format!("@{}", file.path().display()),
            &url
        ])
        .0,
        413
    );
}

#[test]
fn idle_and_stalled_connections_are_closed() {
    let (agent, port) = start("a1.sources.r1.idle-timeout = 500");
    let (mut idle, _) = connect(port);
    let (mut stalled, _) = connect(port);
    stalled
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[")
        .unwrap();
    let t = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(10)));
    assert!(closed_within(&mut stalled, Duration::from_secs(10)));
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    agent.wait_for_log("in the middle of a request", Duration::from_secs(5));
    // The source still serves others.
    let (status, _) = curl(&[
        "--data-binary",
        r#"[{"body":"later"}]"#,
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(status, 200);
}

/// Agent with a file channel of 10 events in `data`, and a sink only with `sink`.
fn wal_conf(port: u16, data: &Path, sink: bool) -> String {
    let d = data.display();
    let mut c = format!(
        "a1.sources = r1
a1.channels = c1
a1.sources.r1.type = http
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = file
a1.channels.c1.checkpointDir = {d}/ckpt
a1.channels.c1.dataDirs = {d}/data
a1.channels.c1.capacity = 10
a1.channels.c1.transactionCapacity = 10
"
    );
    if sink {
        c += "a1.sinks = k1
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {dir}/out
a1.sinks.k1.channel = c1
";
    }
    c
}

#[test]
fn a_full_channel_is_503_and_every_acknowledged_event_is_kept() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut agent = Agent::start(&wal_conf(port, data.path(), false), &[]);
    let (mut s, mut r) = connect(port);
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..8 {
        let batch = format!(r#"[{{"body":"e{i}-a"}},{{"body":"e{i}-b"}},{{"body":"e{i}-c"}}]"#);
        s.write_all(post(&batch).as_bytes()).unwrap();
        match read_response(&mut r).status {
            200 => acked.extend(["a", "b", "c"].map(|x| format!("e{i}-{x}"))),
            503 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(acked.len(), 9, "three batches of three fit in ten");
    assert_eq!(refused, 5);
    assert!(agent.stop().success());
    // Restarted with a sink on the same channel: exactly the acknowledged events.
    let agent = Agent::start(&wal_conf(port, data.path(), true), &[]);
    let mut lines = output(&agent, 9);
    lines.sort();
    acked.sort();
    assert_eq!(lines, acked);
}

#[test]
fn https_with_curl() {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = Certificate::from_der(made.cert.der()).unwrap();
    let mut ks = KeyStore::new();
    let chain = PrivateKeyChain::new(
        b"1".as_slice(),
        PrivateKey::from_der(&made.signing_key.serialize_der()).unwrap(),
        [cert],
    );
    ks.add_entry("server", KeyStoreEntry::PrivateKeyChain(chain));
    let keystore = dir.path().join("server.p12");
    std::fs::write(&keystore, ks.writer("secret").write().unwrap()).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, made.cert.pem()).unwrap();
    let (agent, port) = start(&format!(
        "a1.sources.r1.ssl = true
a1.sources.r1.keystore = {}
a1.sources.r1.keystorePassword = secret
a1.sources.r1.keystore-type = PKCS12",
        keystore.display()
    ));
    let url = format!("https://localhost:{port}/");
    let ca = ca.display().to_string();
    for i in 0..2 {
        let body = format!(r#"[{{"headers":{{"tls":"yes"}},"body":"secret-{i}"}}]"#);
        let (status, _) = curl(&["--cacert", &ca, "--data-binary", &body, &url]);
        assert_eq!(status, 200);
    }
    // Plain HTTP to the TLS port gets no answer.
    let (status, _) = curl(&["--data-binary", "[]", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(status, 0);
    assert_eq!(
        output(&agent, 2),
        ["{tls=yes} secret-0", "{tls=yes} secret-1"]
    );
}
