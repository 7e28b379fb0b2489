//! The http sink on the real binary: a netcat source feeds a memory channel that an http
//! sink drains into a small HTTP server of the test's own (std sockets, one thread per
//! connection, requests parsed with httparse, statuses answered from a script). Checked:
//! Flume's request shape, each status's commit/rollback/back-off, timeouts, refused
//! connections and keep-alive. Then Java Flume 1.11 as the peer: its HTTP source receiving
//! from flume-fast, and its HttpSink sending to the same test server as flume-fast.

mod common;
mod java_peer;

use common::*;
use java_peer::{flume_lib, JavaProc};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request as the test server received it.
#[derive(Debug, Clone)]
struct Request {
    /// Which connection (0, 1, ... in accept order) carried it.
    conn: usize,
    at: Instant,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The request's bytes as they came.
    raw: Vec<u8>,
}

/// What the server does with the next request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// This status, its body framed by Content-Length.
    Status(u16),
    /// This status, its body chunked.
    Chunked(u16),
    /// Never answer (the connection stays open until the client gives up).
    Silent,
    /// Close the connection without answering.
    Close,
    /// These bytes as the answer, then close the connection.
    RawClose(&'static str),
    /// These bytes as the answer, the connection kept.
    Raw(&'static str),
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<Reply>>,
    conns: Mutex<usize>,
    changed: Condvar,
}

/// The test's HTTP server: answers 200 unless the script says otherwise.
struct Server {
    port: u16,
    state: Arc<State>,
}

impl Server {
    fn start() -> Server {
        Server::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn on(listener: TcpListener) -> Server {
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let id = {
                    let mut n = st.conns.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let st = st.clone();
                std::thread::spawn(move || serve(stream, id, &st));
            }
        });
        Server { port, state }
    }

    fn script(&self, replies: &[Reply]) {
        self.state.script.lock().unwrap().extend(replies);
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/flume/events?x=1", self.port)
    }

    /// The requests once there are at least `n`; panics after `timeout`.
    fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        let mut reqs = self.state.requests.lock().unwrap();
        while reqs.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {n} requests; got {:?}",
                reqs.iter().map(body).collect::<Vec<_>>()
            );
            reqs = self.state.changed.wait_timeout(reqs, left).unwrap().0;
        }
        reqs.clone()
    }

    fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        *self.state.conns.lock().unwrap()
    }
}

fn body(r: &Request) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn bodies(reqs: &[Request]) -> Vec<String> {
    reqs.iter().map(body).collect()
}

/// Serves one connection: a request at a time, each answered as the script says.
fn serve(mut s: TcpStream, conn: usize, st: &State) {
    let mut buf = Vec::new();
    loop {
        let (head_len, method, path, headers) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut hs);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let headers: Vec<(String, String)> = req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    break (
                        n,
                        req.method.unwrap().to_string(),
                        req.path.unwrap().to_string(),
                        headers,
                    );
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => panic!("the sink sent a malformed request: {e}"),
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("every request carries Content-Length");
        while buf.len() < head_len + len {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let raw: Vec<u8> = buf.drain(..head_len + len).collect();
        let reply = st.script.lock().unwrap().pop_front();
        st.requests.lock().unwrap().push(Request {
            conn,
            at: Instant::now(),
            method,
            path,
            headers,
            body: raw[head_len..].to_vec(),
            raw,
        });
        st.changed.notify_all();
        let answer = match reply.unwrap_or(Reply::Status(200)) {
            Reply::Status(code) => {
                format!("HTTP/1.1 {code} Scripted\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nfine\r\n")
            }
            Reply::Chunked(code) => format!(
                "HTTP/1.1 {code} Scripted\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n7;x=y\r\n, later\r\n0\r\nTrailer: t\r\n\r\n"
            ),
            Reply::Silent => {
                // Held open until the sink gives up and closes it.
                let _ = s.read(&mut [0u8; 1]);
                return;
            }
            Reply::Close => {
                let _ = s.shutdown(Shutdown::Both);
                return;
            }
            Reply::Raw(text) => text.to_string(),
            Reply::RawClose(text) => {
                let _ = s.write_all(text.as_bytes());
                let _ = s.shutdown(Shutdown::Both);
                return;
            }
        };
        if s.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Agent `a1`: netcat on `nc_port` → memory → http sink to `endpoint`, plus `extra` keys
/// of the sink (`KEY = value` lines, prefixed here).
fn conf(nc_port: u16, endpoint: &str, extra: &[&str]) -> String {
    let mut s = format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = netcat
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {nc_port}
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.sinks.k1.type = http
a1.sinks.k1.channel = c1
a1.sinks.k1.endpoint = {endpoint}
"
    );
    for line in extra {
        s.push_str(&format!("a1.sinks.k1.{line}\n"));
    }
    s
}

fn start(endpoint: &str, extra: &[&str]) -> (Agent, u16) {
    let nc = free_port();
    let agent = Agent::start(&conf(nc, endpoint, extra), &["--cores", "1"]);
    (agent, nc)
}

fn send(nc: u16, lines: &[&str]) {
    let lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    assert_eq!(send_lines(nc, &lines), lines.len());
}

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn every_event_arrives_with_flumes_request_shape() {
    let server = Server::start();
    let (mut agent, nc) = start(
        &server.endpoint(),
        &[
            "contentTypeHeader = application/json",
            "acceptHeader = application/json",
        ],
    );
    let sent = ["e0", "{\"k\": 1}", "e2 with spaces", "é3"];
    send(nc, &sent);
    let reqs = server.wait_requests(sent.len(), WAIT);
    assert!(agent.stop().success());
    assert_eq!(
        server.requests().len(),
        sent.len(),
        "no event is sent twice"
    );
    assert_eq!(bodies(&reqs), sent);
    for r in &reqs {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/flume/events?x=1")
        );
        let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        // Java's HttpURLConnection writes these, in this order (see the Java test below).
        assert_eq!(
            names,
            [
                "Content-Type",
                "Accept",
                "User-Agent",
                "Host",
                "Connection",
                "Content-Length"
            ]
        );
        let h = |name: &str| r.headers.iter().find(|(k, _)| k == name).unwrap().1.clone();
        assert_eq!(h("Content-Type"), "application/json");
        assert_eq!(h("Accept"), "application/json");
        assert_eq!(h("Host"), format!("127.0.0.1:{}", server.port));
        assert_eq!(h("Connection"), "keep-alive");
        assert_eq!(h("Content-Length"), r.body.len().to_string());
    }
}

#[test]
fn an_empty_event_is_dropped_unsent() {
    let server = Server::start();
    let (mut agent, nc) = start(&server.endpoint(), &[]);
    send(nc, &["", "after"]);
    let reqs = server.wait_requests(1, WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&reqs), ["after"]);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_503_rolls_back_and_the_event_is_sent_again_until_a_200() {
    let server = Server::start();
    server.script(&[Reply::Status(503), Reply::Chunked(503)]);
    let (mut agent, nc) = start(&server.endpoint(), &[]);
    send(nc, &["once"]);
    let reqs = server.wait_requests(3, WAIT);
    assert_eq!(bodies(&reqs), ["once", "once", "once"]);
    // The default back-off: the runner's, 100 ms then 200 ms.
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(90),
        "{:?}",
        reqs[1].at - reqs[0].at
    );
    assert!(
        reqs[2].at - reqs[1].at >= Duration::from_millis(190),
        "{:?}",
        reqs[2].at - reqs[1].at
    );
    send(nc, &["next"]);
    server.wait_requests(4, WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&server.requests()), ["once", "once", "once", "next"]);
    assert_eq!(
        server.connections(),
        1,
        "a 503, chunked or not, keeps the connection"
    );
}

#[test]
fn rollback_false_for_503_drops_the_event_as_flume_does() {
    let server = Server::start();
    server.script(&[Reply::Status(503)]);
    let (mut agent, nc) = start(&server.endpoint(), &["rollback.503 = false"]);
    send(nc, &["dropped", "kept"]);
    server.wait_requests(2, WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&server.requests()), ["dropped", "kept"]);
}

#[test]
fn backoff_4xx_false_sends_a_rolled_back_event_again_at_once() {
    let server = Server::start();
    server.script(&[Reply::Status(404), Reply::Status(429), Reply::Status(400)]);
    let (mut agent, nc) = start(&server.endpoint(), &["backoff.4XX = false"]);
    send(nc, &["again"]);
    let reqs = server.wait_requests(4, WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&server.requests()), ["again"; 4]);
    // Backing off would take 100 + 200 + 400 ms at least.
    let spread = reqs[3].at - reqs[0].at;
    assert!(spread < Duration::from_millis(600), "{spread:?}");
}

#[test]
fn an_exact_code_wins_over_its_class() {
    let server = Server::start();
    server.script(&[Reply::Status(500), Reply::Status(503)]);
    let (mut agent, nc) = start(
        &server.endpoint(),
        &[
            "rollback.5XX = false",
            "rollback.503 = true",
            "backoff.5XX = false",
        ],
    );
    // 500: committed (its class says no rollback); 503: sent again (its code says so).
    send(nc, &["a"]);
    server.wait_requests(1, WAIT);
    send(nc, &["b"]);
    server.wait_requests(3, WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&server.requests()), ["a", "b", "b"]);
}

#[test]
fn a_server_that_never_answers_times_out_and_the_event_is_sent_again() {
    let server = Server::start();
    server.script(&[Reply::Silent]);
    let (mut agent, nc) = start(&server.endpoint(), &["requestTimeout = 700"]);
    send(nc, &["slow"]);
    let reqs = server.wait_requests(2, WAIT);
    let waited = reqs[1].at - reqs[0].at;
    assert!(waited >= Duration::from_millis(700), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(
        (reqs[0].conn, reqs[1].conn),
        (0, 1),
        "a new connection after the timeout"
    );
    agent.wait_for_log("within requestTimeout", WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&server.requests()), ["slow", "slow"]);
}

#[test]
fn a_refused_connection_is_retried_until_the_server_listens() {
    // A port bound but not listening: connecting is refused, and no other test can take
    // the port meanwhile (freeing it let a parallel test's socket answer there).
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}/");
    let (mut agent, nc) = start(&endpoint, &["connectTimeout = 1000"]);
    send(nc, &["waits"]);
    agent.wait_for_log("cannot connect to 127.0.0.1", WAIT);
    socket.listen(128).unwrap();
    let server = Server::on(TcpListener::from(socket));
    server.wait_requests(1, WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&server.requests()), ["waits"]);
}

#[test]
fn keep_alive_carries_every_request_on_one_connection() {
    let server = Server::start();
    let mut script = Vec::new();
    for i in 0..20 {
        script.push(if i % 2 == 0 {
            Reply::Status(200)
        } else {
            Reply::Chunked(201)
        });
    }
    server.script(&script);
    let (mut agent, nc) = start(&server.endpoint(), &[]);
    let sent: Vec<String> = (0..20).map(|i| format!("event {i}")).collect();
    assert_eq!(send_lines(nc, &sent), 20);
    server.wait_requests(20, WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&server.requests()), sent);
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_kept_alive_connection_the_server_closed_is_replaced_without_losing_the_event() {
    let server = Server::start();
    server.script(&[Reply::Status(200), Reply::Close]);
    let (mut agent, nc) = start(&server.endpoint(), &[]);
    send(nc, &["first"]);
    server.wait_requests(1, WAIT);
    send(nc, &["second"]);
    let reqs = server.wait_requests(3, WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&reqs), ["first", "second", "second"]);
    assert_eq!((reqs[1].conn, reqs[2].conn), (0, 1));
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn interim_100_connection_close_and_unframed_answers_each_deliver_once() {
    let server = Server::start();
    server.script(&[
        Reply::Raw("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        Reply::RawClose("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
        Reply::RawClose("HTTP/1.1 200 OK\r\n\r\na body that ends at the close"),
    ]);
    let (mut agent, nc) = start(&server.endpoint(), &[]);
    for (i, line) in ["e1", "e2", "e3", "e4"].iter().enumerate() {
        send(nc, &[line]);
        server.wait_requests(i + 1, WAIT);
    }
    assert!(agent.stop().success());
    let reqs = server.requests();
    assert_eq!(bodies(&reqs), ["e1", "e2", "e3", "e4"]);
    let conns: Vec<usize> = reqs.iter().map(|r| r.conn).collect();
    assert_eq!(conns, [0, 0, 1, 2]);
    assert!(
        !agent.log_text().contains("rolled back"),
        "{}",
        agent.log_text()
    );
}

#[test]
fn a_malformed_answer_rolls_back_and_the_event_is_sent_again() {
    let server = Server::start();
    server.script(&[Reply::RawClose("SSH-2.0-OpenSSH_9.6\r\n\r\n")]);
    let (mut agent, nc) = start(&server.endpoint(), &[]);
    send(nc, &["again"]);
    let reqs = server.wait_requests(2, WAIT);
    agent.wait_for_log("malformed response", WAIT);
    assert!(agent.stop().success());
    assert_eq!(bodies(&reqs), ["again", "again"]);
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(90),
        "backed off"
    );
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn bad_keys_stop_the_agent_with_file_line_and_key() {
    for (extra, key, why) in [
        (
            "rollback.5xx = false",
            "a1.sinks.k1.rollback.5xx",
            "upper case",
        ),
        (
            "backoff.503 = maybe",
            "a1.sinks.k1.backoff.503",
            "true or false",
        ),
        (
            "connectTimeout = 0",
            "a1.sinks.k1.connectTimeout",
            "at least 1",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        std::fs::write(&path, conf(free_port(), "http://127.0.0.1:9/", &[extra])).unwrap();
        let (code, _, err) = run(&["check", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(&format!("a.conf:12: {key}")), "{err}");
        assert!(err.contains(why), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.conf");
    std::fs::write(&path, conf(free_port(), "https://127.0.0.1/", &[])).unwrap();
    let (code, _, err) = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("a.conf:11: a1.sinks.k1.endpoint")
            && err.contains("https is not supported yet"),
        "{err}"
    );
}

#[test]
fn java_flumes_http_source_receives_what_the_http_sink_sends() {
    let Some(lib) = flume_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let http_port = free_port();
    // The JSONHandler takes a JSON array of events: each flume-fast event's body is one.
    let java = JavaProc::agent(
        &lib,
        dir.path(),
        "j1",
        &format!(
            "j1.sources = r1
j1.channels = c1
j1.sinks = k1
j1.sources.r1.type = http
j1.sources.r1.bind = 127.0.0.1
j1.sources.r1.port = {http_port}
j1.sources.r1.channels = c1
j1.channels.c1.type = memory
j1.sinks.k1.type = file_roll
j1.sinks.k1.channel = c1
j1.sinks.k1.sink.directory = {}
j1.sinks.k1.sink.rollInterval = 0
j1.sinks.k1.sink.serializer = HEADER_AND_TEXT
",
            out.display()
        ),
    );
    java.wait_for_log("name: r1 started", Duration::from_secs(120));
    let (mut agent, nc) = start(
        &format!("http://127.0.0.1:{http_port}/"),
        &["contentTypeHeader = application/json"],
    );
    let sent: Vec<String> = (0..50)
        .map(|i| format!(r#"[{{"headers":{{"n":"{i}"}},"body":"event {i}"}}]"#))
        .collect();
    assert_eq!(send_lines(nc, &sent), sent.len());
    let lines = wait_until(
        Duration::from_secs(60),
        "50 events in Java's file_roll",
        || {
            let l = lines_in(&out);
            (l.len() >= 50).then_some(l)
        },
    );
    assert!(agent.stop().success());
    let want: Vec<String> = (0..50).map(|i| format!("{{n={i}}} event {i}")).collect();
    assert_eq!(lines, want);
}

#[test]
fn java_flumes_http_sink_and_ours_send_the_same_requests() {
    let Some(lib) = flume_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sink_keys = [
        "contentTypeHeader = application/json; charset=UTF-8",
        "acceptHeader = */*",
        "backoff.200 = false",
        "rollback.200 = false",
    ];
    let lines = ["a", "{\"b\": 2}", "third line"];
    let java_server = Server::start();
    let java_nc = free_port();
    let java = JavaProc::agent(
        &lib,
        dir.path(),
        "a1",
        &conf(java_nc, &java_server.endpoint(), &sink_keys),
    );
    java.wait_for_log(
        "NetcatSource - Created serverSocket",
        Duration::from_secs(120),
    );
    send(java_nc, &lines);
    let from_java = java_server.wait_requests(lines.len(), Duration::from_secs(60));
    let ours_server = Server::start();
    let (mut agent, nc) = start(&ours_server.endpoint(), &sink_keys);
    send(nc, &lines);
    let from_ours = ours_server.wait_requests(lines.len(), WAIT);
    assert!(agent.stop().success());
    // Byte for byte, but for the agent's name and the port in Host.
    let norm = |r: &Request, port: u16| {
        String::from_utf8_lossy(&r.raw)
            .lines()
            .filter(|l| !l.starts_with("User-Agent:"))
            .map(|l| l.replace(&port.to_string(), "PORT"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (j, o) in from_java.iter().zip(&from_ours) {
        assert_eq!(norm(j, java_server.port), norm(o, ours_server.port));
    }
    assert_eq!(java_server.connections(), 1);
    assert_eq!(ours_server.connections(), 1);
}
