//! Avro RPC end to end with the real binary: agent to agent over the avro sink and source
//! (plain and deflate), avro-client, loadgen, FAILED on a full channel, ipFilter, and
//! hostile clients (each closed with a logged reason while a good client keeps working).
//! Interop with Java Flume is in `avro_java.rs`.

mod common;

use bytes::BytesMut;
use common::*;
use flume_fast::avro_rpc::client::{ClientConn, ClientReply};
use flume_fast::avro_rpc::frame::FrameDecoder;
use flume_fast::avro_rpc::protocol::Status;
use flume_fast::event::Event;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Waits until `dir` holds `n` lines, then checks they are exactly 0..n.
fn expect_sequence(dir: &std::path::Path, n: u64) {
    wait_until(Duration::from_secs(60), "every event in the output", || {
        (lines_in(dir).len() as u64 >= n).then_some(())
    });
    let got: BTreeSet<u64> = lines_in(dir)
        .iter()
        .map(|l| l.trim_start_matches("{} ").parse().unwrap())
        .collect();
    assert_eq!(got.len() as u64, n, "duplicates or gaps");
    assert_eq!(got.last().copied(), Some(n - 1));
}

fn agent_to_agent(compression: &str) {
    let port = free_port();
    let extra = format!("a1.sources.r1.compression-type = {compression}");
    let mut receiver = Agent::start(&receiver_conf(port, &extra), &["--cores", "2"]);
    let extra =
        format!("s1.sinks.k1.compression-type = {compression}\ns1.sinks.k1.compression-level = 1");
    let mut sender = Agent::start(&sender_conf(port, 20_000, &extra), &[]);
    expect_sequence(&receiver.path("out"), 20_000);
    assert!(sender.stop().success());
    assert!(receiver.stop().success());
    assert!(sender.log_text().contains("k1: events.drained = 20000"));
}

#[test]
fn avro_sink_to_avro_source_delivers_every_event() {
    agent_to_agent("none");
}

#[test]
fn avro_sink_to_avro_source_with_deflate() {
    agent_to_agent("deflate");
}

#[test]
fn the_sink_retries_until_the_receiver_comes_up() {
    let port = free_port();
    let mut sender = Agent::start(&sender_conf(port, 2_000, ""), &[]);
    sender.wait_for_log("batch failed", Duration::from_secs(20));
    let mut receiver = Agent::start(&receiver_conf(port, ""), &[]);
    expect_sequence(&receiver.path("out"), 2_000);
    sender.wait_for_log("sink recovered", Duration::from_secs(20));
    assert!(sender.stop().success());
    assert!(receiver.stop().success());
}

/// A blocking client built from the library's sans-IO client.
struct RawClient {
    s: TcpStream,
    client: ClientConn,
    dec: FrameDecoder,
    buf: BytesMut,
}

impl RawClient {
    fn connect(port: u16) -> RawClient {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        RawClient {
            s,
            client: ClientConn::new(false),
            dec: FrameDecoder::new(1 << 20),
            buf: BytesMut::new(),
        }
    }

    fn send(&mut self, bodies: &[&str]) -> Status {
        let out = self.encode(bodies);
        self.s.write_all(&out).unwrap();
        self.reply()
    }

    /// The frame of an appendBatch of `bodies`.
    fn encode(&mut self, bodies: &[&str]) -> BytesMut {
        let events: Vec<Event> = bodies
            .iter()
            .map(|b| Event::new(bytes::Bytes::copy_from_slice(b.as_bytes())))
            .collect();
        let mut out = BytesMut::new();
        self.client.encode_batch(&events, &mut out);
        out
    }

    /// Waits for the status of the request sent.
    fn reply(&mut self) -> Status {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                match self.client.on_frame(&f).unwrap() {
                    ClientReply::Status { status, .. } => return status,
                    ClientReply::Resend => panic!("server did not know our protocol"),
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Sends `bytes` on a fresh connection and returns what the server sent back before it
/// closed the connection (the test fails if it does not close it).
fn send_and_expect_close(port: u16, bytes: &[u8], then_close_write: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may close before taking everything: a reset here is fine.
    let _ = s.write_all(bytes);
    if then_close_write {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("server did not close the connection: {e}"),
    }
    got
}

fn frame(serial: i32, bufs: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&serial.to_be_bytes());
    v.extend_from_slice(&(bufs.len() as i32).to_be_bytes());
    for b in bufs {
        v.extend_from_slice(&(b.len() as i32).to_be_bytes());
        v.extend_from_slice(b);
    }
    v
}

/// A handshake as Java sends it (our hash both ways) followed by a call of `message`.
fn handshake_and_call(message: &str) -> Vec<u8> {
    let mut p = BytesMut::new();
    let hash = flume_fast::avro_rpc::protocol::PROTOCOL_MD5;
    p.extend_from_slice(&hash);
    p.extend_from_slice(&[0]);
    p.extend_from_slice(&hash);
    p.extend_from_slice(&[0, 0]);
    flume_fast::avro_rpc::binary::put_bytes(&mut p, message.as_bytes());
    frame(0, &[&p])
}

#[test]
fn hostile_clients_are_closed_with_a_reason_and_others_keep_working() {
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(port, "a1.sources.r1.max-frame-size = 1048576"),
        &[],
    );
    let mut good = RawClient::connect(port);
    assert_eq!(good.send(&["before"]), Status::Ok);

    send_and_expect_close(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false);
    agent.wait_for_log("closing the connection: frame", Duration::from_secs(10));

    // A frame declaring a 2 GiB buffer is refused on its header, before any body.
    let mut huge = Vec::new();
    huge.extend_from_slice(&1i32.to_be_bytes());
    huge.extend_from_slice(&1i32.to_be_bytes());
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    send_and_expect_close(port, &huge, false);
    agent.wait_for_log("above the maximum frame size", Duration::from_secs(10));

    // A client that stops mid-frame.
    let whole = handshake_and_call("appendBatch");
    send_and_expect_close(port, &whole[..whole.len() - 3], true);
    agent.wait_for_log("in the middle of a frame", Duration::from_secs(10));

    // An unknown message gets Avro's error reply, then the connection is closed.
    let reply = send_and_expect_close(port, &handshake_and_call("drop"), false);
    assert!(String::from_utf8_lossy(&reply).contains("unknown message 'drop'"));
    agent.wait_for_log("unknown message 'drop'", Duration::from_secs(10));

    // A frame whose call is truncated inside (valid framing, bad Avro).
    send_and_expect_close(port, &frame(0, &[b"\x01\x02\x03"]), false);
    agent.wait_for_log("malformed request", Duration::from_secs(10));

    // A different protocol under a different hash.
    let mut p = BytesMut::new();
    p.extend_from_slice(&[7u8; 16]);
    p.extend_from_slice(&[2]);
    let other = r#"{"protocol":"Other","messages":{}}"#;
    flume_fast::avro_rpc::binary::put_bytes(&mut p, other.as_bytes());
    p.extend_from_slice(&[7u8; 16]);
    p.extend_from_slice(&[0, 0]);
    flume_fast::avro_rpc::binary::put_bytes(&mut p, b"append");
    send_and_expect_close(port, &frame(0, &[&p]), false);
    agent.wait_for_log("not AvroSourceProtocol", Duration::from_secs(10));

    // Every reason names the peer.
    let log = agent.log_text();
    for line in log.lines().filter(|l| l.contains("closing the connection")) {
        assert!(line.contains("peer=127.0.0.1:"), "{line}");
    }
    assert_eq!(good.send(&["after"]), Status::Ok);
    assert!(agent.stop().success());
    let mut lines = lines_in(&agent.path("out"));
    lines.sort();
    assert_eq!(lines, ["after", "before"]);
}

#[test]
fn a_full_channel_is_answered_failed() {
    let port = free_port();
    let conf = format!(
        "a1.sources = r1
a1.channels = c1
a1.sources.r1.type = avro
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 5
a1.channels.c1.transactionCapacity = 5
a1.channels.c1.keep-alive = 0
"
    );
    let mut agent = Agent::start(&conf, &[]);
    let mut c = RawClient::connect(port);
    assert_eq!(c.send(&["1", "2", "3"]), Status::Ok);
    assert_eq!(c.send(&["4", "5", "6"]), Status::Failed);
    agent.wait_for_log("answering FAILED", Duration::from_secs(10));
    // The connection stays usable.
    assert_eq!(c.send(&["4", "5"]), Status::Ok);
    assert!(agent.stop().success());
}

#[test]
fn avro_client_sends_every_line_with_headers() {
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(
            port,
            "a1.sinks.k1.sink.serializer = HEADER_AND_TEXT\na1.sources.r1.compression-type = deflate",
        ),
        &[],
    );
    let input = agent.path("in.txt");
    let text: String = (0..10_000).map(|i| format!("line {i}\r\n")).collect();
    std::fs::write(&input, text).unwrap();
    let headers = agent.path("h.properties");
    std::fs::write(&headers, "host = web1\n# comment\nkind: access\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "avro-client",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-F",
        ])
        .arg(&input)
        .arg("-R")
        .arg(&headers)
        .args(["--batch-size", "77", "--compression-type", "deflate"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("sent 10000 events"));
    wait_until(Duration::from_secs(30), "10000 lines", || {
        (lines_in(&agent.path("out")).len() >= 10_000).then_some(())
    });
    let lines = lines_in(&agent.path("out"));
    assert_eq!(lines.len(), 10_000);
    assert_eq!(lines[0], "{host=web1, kind=access} line 0");
    assert_eq!(lines[9_999], "{host=web1, kind=access} line 9999");
    assert!(agent.stop().success());
}

#[test]
fn avro_client_fails_when_nothing_listens() {
    let port = free_port();
    let (code, _, err) = run(&["avro-client", "-H", "127.0.0.1", "-p", &port.to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn loadgen_acknowledged_count_equals_what_the_receiver_wrote() {
    let port = free_port();
    let mut agent = Agent::start(&receiver_conf(port, ""), &["--cores", "2"]);
    let (code, stdout, stderr) = run(&[
        "loadgen",
        "-p",
        &port.to_string(),
        "-c",
        "4",
        "-b",
        "250",
        "-s",
        "40",
        "-n",
        "100000",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(r#""acked_events":100000"#), "{stdout}");
    assert!(stdout.contains(r#""failed_batches":0"#), "{stdout}");
    // A batch of 250 events of 40 B without headers: per event an empty map (1 byte), the
    // body's length (1) and the body (40); the array's count (2) and end (1); the call's
    // empty metadata (1) and name "appendBatch" (12); the frame's serial, buffer count and
    // buffer length (12).
    assert!(stdout.contains(r#""batch_frame_bytes":10528"#), "{stdout}");
    wait_until(Duration::from_secs(30), "100000 lines", || {
        (lines_in(&agent.path("out")).len() >= 100_000).then_some(())
    });
    assert!(agent.stop().success());
    assert_eq!(lines_in(&agent.path("out")).len(), 100_000);
    assert!(agent.log_text().contains("r1: events.accepted = 100000"));
}

#[test]
fn loadgen_headers_reach_the_agent_and_bad_ones_are_refused() {
    let port = free_port();
    let conf = receiver_conf(port, "a1.sinks.k1.sink.serializer = header_and_text");
    let mut agent = Agent::start(&conf, &[]);
    let (code, stdout, stderr) = run(&[
        "loadgen",
        "-p",
        &port.to_string(),
        "-b",
        "50",
        "-s",
        "10",
        "-n",
        "500",
        "--header",
        "timestamp=1700000000000",
        "--header",
        "host=web1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(r#""acked_events":500"#), "{stdout}");
    wait_until(Duration::from_secs(30), "500 lines", || {
        (lines_in(&agent.path("out")).len() >= 500).then_some(())
    });
    assert!(agent.stop().success());
    let lines = lines_in(&agent.path("out"));
    assert_eq!(lines.len(), 500);
    for l in &lines {
        assert!(
            l.starts_with("{timestamp=1700000000000, host=web1} "),
            "{l}"
        );
    }

    let (code, _, err) = run(&["loadgen", "-p", "1", "--header", "novalue"]);
    assert_eq!(code, 2);
    assert!(err.contains("'novalue' is not KEY=VALUE"), "{err}");
    let (code, _, err) = run(&[
        "loadgen",
        "-p",
        "1",
        "--protocol",
        "netcat",
        "--header",
        "a=b",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--header is for --protocol avro"), "{err}");
}

#[test]
fn loadgen_congestion_control_is_used_or_refused_with_exit_2() {
    let port = free_port();
    let mut agent = Agent::start(&receiver_conf(port, ""), &[]);
    let p = port.to_string();
    let args = ["loadgen", "-p", &p, "-b", "50", "-s", "10", "-n", "500"];
    let (code, stdout, stderr) = run(&[&args[..], &["--congestion", "reno"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(r#""acked_events":500"#), "{stdout}");
    let (code, stdout, err) = run(&[&args[..], &["--congestion", "no-such-algorithm"]].concat());
    assert_eq!(code, 2, "{stdout}");
    assert!(
        err.contains("--congestion no-such-algorithm: ") && err.contains("available: "),
        "{err}"
    );
    assert!(agent.stop().success());
}

#[test]
fn loadgen_drives_netcat_too() {
    let port = free_port();
    let conf = receiver_conf(port, "").replace("type = avro", "type = netcat");
    let mut agent = Agent::start(&conf, &[]);
    let (code, stdout, stderr) = run(&[
        "loadgen",
        "--protocol",
        "netcat",
        "-p",
        &port.to_string(),
        "-c",
        "2",
        "-b",
        "100",
        "-s",
        "20",
        "-n",
        "10000",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(r#""acked_events":10000"#), "{stdout}");
    wait_until(Duration::from_secs(30), "10000 lines", || {
        (lines_in(&agent.path("out")).len() >= 10_000).then_some(())
    });
    assert!(agent.stop().success());
}

#[test]
fn ip_filter_refuses_denied_clients() {
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(
            port,
            "a1.sources.r1.ipFilter = true\na1.sources.r1.ipFilterRules = deny:ip:127.0.0.*,allow:ip:*",
        ),
        &[],
    );
    send_and_expect_close(port, &handshake_and_call("append"), false);
    agent.wait_for_log("refused by ipFilterRules", Duration::from_secs(10));
    assert!(agent.stop().success());

    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(
            port,
            "a1.sources.r1.ipFilter = true\na1.sources.r1.ipFilterRules = allow:name:localhost,deny:ip:*",
        ),
        &[],
    );
    assert_eq!(RawClient::connect(port).send(&["x"]), Status::Ok);
    assert!(agent.stop().success());
}

#[test]
fn config_errors_for_ssl_and_ip_filter_rules() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("a.conf");
    std::fs::write(
        &conf,
        receiver_conf(1, "a1.sources.r1.ssl = true").replace("{dir}", "/tmp"),
    )
    .unwrap();
    let (code, _, err) = run(&["check", conf.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("a1.sources.r1.keystore") && err.contains("ssl = true needs keystore"),
        "{err}"
    );
    std::fs::write(
        &conf,
        receiver_conf(
            1,
            "a1.sources.r1.ipFilter = true\na1.sources.r1.ipFilterRules = allow:everyone",
        )
        .replace("{dir}", "/tmp"),
    )
    .unwrap();
    let (code, _, err) = run(&["check", conf.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("ipFilterRules") && err.contains("<allow|deny>"),
        "{err}"
    );
}

/// Runs loadgen against `port`: `conns` connections, `n` events in batches of 100.
fn loadgen(port: u16, conns: usize, n: u64) -> (i32, String, String) {
    run(&[
        "loadgen",
        "-p",
        &port.to_string(),
        "-c",
        &conns.to_string(),
        "-b",
        "100",
        "-s",
        "50",
        "-n",
        &n.to_string(),
    ])
}

/// Whether the agent has closed `s` (EOF or reset) rather than left it open, looked at
/// without blocking.
fn closed_by_agent(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match (&*s).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("the agent sent something unasked"),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// Issue 31, item 2: `threads = 2` with three idle sockets open must still serve loadgen
/// (flume-fast used `threads` as a connection cap and refused every real client), and the
/// idle sockets are not closed for it either (no eviction: nothing is capped).
#[test]
fn idle_sockets_beyond_threads_do_not_keep_a_real_client_out() {
    let port = free_port();
    // One shard: one accept queue, so the idle sockets are taken before loadgen's.
    let mut agent = Agent::start(
        &receiver_conf(port, "a1.sources.r1.threads = 2"),
        &["--cores", "1"],
    );
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let (code, stdout, stderr) = loadgen(port, 2, 20_000);
    assert_eq!(code, 0, "loadgen was not served: {stderr}");
    assert!(stdout.contains(r#""acked_events":20000"#), "{stdout}");
    wait_until(Duration::from_secs(30), "20000 lines", || {
        (lines_in(&agent.path("out")).len() >= 20_000).then_some(())
    });
    for s in &idle {
        assert!(!closed_by_agent(s), "an idle socket was closed");
    }
    assert!(agent.stop().success());
    assert_eq!(lines_in(&agent.path("out")).len(), 20_000);
    assert!(!agent.log_text().contains("refusing connection"));
}

/// Waits (up to `within`) for the agent to close `s`; returns how long it took.
fn await_close(s: &mut TcpStream, within: Duration) -> Duration {
    let start = std::time::Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("not closed within {within:?}: {e}"),
        }
    }
}

/// A connection that never sends its first request is closed after handshake-timeout; one
/// silent between requests, or stalled in the middle of one, after idle-timeout; each with
/// a log line naming the peer and the reason. Clients that keep talking are not touched.
#[test]
fn silent_and_stalled_connections_are_closed_after_their_timeouts() {
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(
            port,
            "a1.sources.r1.handshake-timeout = 700\na1.sources.r1.idle-timeout = 1500",
        ),
        &[],
    );
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut idle = RawClient::connect(port);
    assert_eq!(idle.send(&["one"]), Status::Ok);
    let mut stalled = RawClient::connect(port);
    assert_eq!(stalled.send(&["two"]), Status::Ok);
    // Half of a request's frame: serial, one buffer of 100 bytes, 10 of them.
    let mut half = frame(5, &[&[0u8; 100]]);
    half.truncate(8 + 4 + 10);
    stalled.s.write_all(&half).unwrap();
    // A client that keeps sending more often than the idle timeout stays.
    let mut busy = RawClient::connect(port);
    assert_eq!(busy.send(&["busy"]), Status::Ok);

    let took = await_close(&mut silent, Duration::from_secs(10));
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_millis(2500);
    while std::time::Instant::now() < deadline {
        assert_eq!(busy.send(&["busy"]), Status::Ok);
        std::thread::sleep(Duration::from_millis(200));
    }
    await_close(&mut idle.s, Duration::from_secs(10));
    await_close(&mut stalled.s, Duration::from_secs(10));
    assert_eq!(busy.send(&["still served"]), Status::Ok);

    agent.wait_for_log(
        "no request within 700ms (handshake-timeout)",
        Duration::from_secs(5),
    );
    agent.wait_for_log("silent for 1.5s (idle-timeout)", Duration::from_secs(5));
    let line = agent.wait_for_log("in the middle of a request", Duration::from_secs(5));
    assert!(
        line.contains("peer=127.0.0.1:") && line.contains("(22 bytes of it received)"),
        "{line}"
    );
    assert!(agent.stop().success());
}

/// The avro sink reconnects by itself when the receiver closed its idle connection (as
/// Avro's NettyTransceiver does for Java Flume), instead of failing a batch on it.
#[test]
fn the_sink_reconnects_quietly_after_the_source_closed_its_idle_connection() {
    let port = free_port();
    let mut receiver = Agent::start(
        &receiver_conf(port, "a1.sources.r1.idle-timeout = 1000"),
        &["--cores", "1"],
    );
    let nc_port = free_port();
    let sender_conf = netcat_to_avro_conf("s1", nc_port, port);
    let mut sender = Agent::start(&sender_conf, &["--cores", "1"]);
    let mut nc = TcpStream::connect(("127.0.0.1", nc_port)).unwrap();
    nc.write_all(b"before\n").unwrap();
    wait_until(Duration::from_secs(20), "the first line", || {
        (lines_in(&receiver.path("out")).len() == 1).then_some(())
    });
    receiver.wait_for_log("(idle-timeout)", Duration::from_secs(10));
    // The close is on the wire (a batch sent in the same instant may fail, and be retried,
    // with any client: that race is not what this test is about).
    wait_until(
        Duration::from_secs(10),
        "the receiver's side closed",
        || (established_on(port) == 0).then_some(()),
    );
    nc.write_all(b"after\n").unwrap();
    wait_until(Duration::from_secs(20), "the second line", || {
        (lines_in(&receiver.path("out")).len() == 2).then_some(())
    });
    drop(nc);
    assert!(sender.stop().success());
    assert!(receiver.stop().success());
    let log = sender.log_text();
    assert!(!log.contains("batch failed"), "{log}");
}

/// TCP connections in state ESTABLISHED whose local port is `port` (IPv4).
fn established_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f[1].rsplit(':').next().unwrap();
            u16::from_str_radix(local_port, 16).unwrap() == port && f[3] == "01"
        })
        .count()
}

/// Issue 31, item 3: six clients each hold an unfinished frame of nearly 60 MiB (under the
/// default max-frame-size of 64 MiB). Without a budget the agent held them all (515 MiB of
/// RSS here); with it, the shards stop reading the biggest holders, TCP pushes back on
/// them, the agent's peak RSS stays below 256 MiB, and a normal client is still served.
#[test]
fn six_unfinished_60_mib_frames_keep_the_agent_rss_bounded() {
    const BODY: usize = 60 << 20;
    let port = free_port();
    // The clients must stay connected for the whole measurement (closing them would free
    // what they hold): their first request must not run into handshake-timeout.
    let mut agent = Agent::start(
        &receiver_conf(port, "a1.sources.r1.handshake-timeout = 600000"),
        &["--cores", "2"],
    );
    let mut head = Vec::new();
    head.extend_from_slice(&1i32.to_be_bytes());
    head.extend_from_slice(&1i32.to_be_bytes());
    head.extend_from_slice(&(BODY as i32).to_be_bytes());
    // Everything of the frame but its last KiB.
    let hogs = Hogs::start(port, 6, &head, (BODY - 1024) as u64);
    hogs.await_steady(Duration::from_secs(120));
    eprintln!("bytes sent per client: {:?}", hogs.sent());
    // A normal client is served meanwhile.
    let (code, stdout, stderr) = loadgen(port, 2, 10_000);
    assert_eq!(code, 0, "loadgen was not served: {stderr}");
    assert!(stdout.contains(r#""acked_events":10000"#), "{stdout}");
    let (now, peak) = rss(agent.child.id());
    eprintln!("agent RSS {} MiB, peak {} MiB", now >> 20, peak >> 20);
    assert!(
        peak < 256 << 20,
        "agent peak RSS {} MiB with six unfinished frames",
        peak >> 20
    );
    // The agent pushed back: not every client got its frame in.
    assert!(!hogs.all_done(), "no client was pushed back");
    hogs.finish();
    wait_until(Duration::from_secs(30), "10000 lines", || {
        (lines_in(&agent.path("out")).len() >= 10_000).then_some(())
    });
    assert!(agent.stop().success());
}

/// The receive queues of the established TCP connections whose local port is `port`.
fn receive_queues(port: u16) -> Vec<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap();
            (local_port == port && f[3] == "01")
                .then(|| u64::from_str_radix(f[4].split(':').nth(1).unwrap(), 16).unwrap())
        })
        .collect()
}

/// Large requests that are in progress together beyond the budget are not left waiting for
/// each other until the idle timeout. Four clients send the first 1.9 MiB of a 4 MiB batch
/// (7.6 MiB in all, under the 8 MiB budget) and, once the agent has read all of it, the
/// rest: every one of them then holds too much to be read over the budget. One goes
/// ahead, its completion frees room, and all four are answered OK at once.
#[test]
fn large_requests_waiting_on_each_other_over_the_budget_all_complete() {
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(port, "a1.sources.r1.max-buffered-bytes = 8388608"),
        &["--cores", "1"],
    );
    let body = "x".repeat(512 << 10);
    let mut clients: Vec<(RawClient, BytesMut)> = (0..4)
        .map(|_| {
            let mut c = RawClient::connect(port);
            let frame = c.encode(&[body.as_str(); 8]);
            (c, frame)
        })
        .collect();
    let first = 1900 << 10;
    for (c, frame) in &mut clients {
        c.s.write_all(&frame[..first]).unwrap();
    }
    wait_until(
        Duration::from_secs(20),
        "the agent to read every first part",
        || {
            let q = receive_queues(port);
            (q.len() == 4 && q.iter().all(|&n| n == 0)).then_some(())
        },
    );
    let start = std::time::Instant::now();
    let threads: Vec<_> = clients
        .into_iter()
        .map(|(mut c, frame)| {
            std::thread::spawn(move || {
                c.s.write_all(&frame[first..]).unwrap();
                c.reply()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Status::Ok);
    }
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    wait_until(Duration::from_secs(30), "32 events", || {
        (lines_in(&agent.path("out")).len() >= 32).then_some(())
    });
    assert!(agent.stop().success());
}

/// A client alone in holding an unfinished request may take it past the budget (up to
/// max-frame-size, so a request bigger than the budget can still be served), but what it
/// holds must not stop the small requests of others arriving meanwhile.
#[test]
fn a_huge_unfinished_request_alone_does_not_stop_small_ones() {
    const BODY: usize = 60 << 20;
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(port, "a1.sources.r1.handshake-timeout = 600000"),
        &["--cores", "1"],
    );
    let mut head = Vec::new();
    head.extend_from_slice(&1i32.to_be_bytes());
    head.extend_from_slice(&1i32.to_be_bytes());
    head.extend_from_slice(&(BODY as i32).to_be_bytes());
    let hog = Hogs::start(port, 1, &head, (BODY - 1024) as u64);
    hog.await_steady(Duration::from_secs(120));
    assert!(
        hog.all_done(),
        "a request alone was pushed back: {:?}",
        hog.sent()
    );
    let (code, stdout, stderr) = loadgen(port, 2, 10_000);
    assert_eq!(code, 0, "loadgen was not served: {stderr}");
    assert!(stdout.contains(r#""acked_events":10000"#), "{stdout}");
    hog.finish();
    wait_until(Duration::from_secs(30), "10000 lines", || {
        (lines_in(&agent.path("out")).len() >= 10_000).then_some(())
    });
    assert!(agent.stop().success());
}
