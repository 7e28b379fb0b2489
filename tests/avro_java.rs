//! Interop with the real Java Flume 1.11.0 in both directions: Java's AvroCLIClient and a
//! Java agent's avro sink sending to flume-fast, flume-fast's avro sink and loadgen sending
//! to a Java agent's avro source, plain and with deflate, and both agent-to-agent flows
//! over TLS (stores made by keytool), with and without deflate.

mod common;
mod java_peer;

use common::*;
use java_peer::{flume_lib, keytool_stores, JavaProc, KEYSTORE_PASSWORD, TRUSTSTORE_PASSWORD};
use std::collections::BTreeSet;
use std::time::Duration;

/// A Java agent `j2`: seq source of 20,000 events → memory → avro sink to `port` with
/// `compression`; `extra` lines are appended.
fn java_sender_conf(port: u16, compression: &str, extra: &str) -> String {
    format!(
        "j2.sources = r1
j2.channels = c1
j2.sinks = k1
j2.sources.r1.type = seq
j2.sources.r1.totalEvents = 20000
j2.sources.r1.batchSize = 100
j2.sources.r1.channels = c1
j2.channels.c1.type = memory
j2.channels.c1.capacity = 10000
j2.channels.c1.transactionCapacity = 1000
j2.sinks.k1.type = avro
j2.sinks.k1.hostname = 127.0.0.1
j2.sinks.k1.port = {port}
j2.sinks.k1.batch-size = 250
j2.sinks.k1.compression-type = {compression}
j2.sinks.k1.channel = c1
{extra}
"
    )
}

/// A Java agent: avro source on `port` → memory → file_roll into `out`.
fn java_receiver_conf(port: u16, out: &std::path::Path, compression: &str) -> String {
    format!(
        "j1.sources = r1
j1.channels = c1
j1.sinks = k1
j1.sources.r1.type = avro
j1.sources.r1.bind = 127.0.0.1
j1.sources.r1.port = {port}
j1.sources.r1.compression-type = {compression}
j1.sources.r1.channels = c1
j1.channels.c1.type = memory
j1.channels.c1.capacity = 200000
j1.channels.c1.transactionCapacity = 1000
j1.sinks.k1.type = file_roll
j1.sinks.k1.sink.directory = {}
j1.sinks.k1.sink.rollInterval = 0
j1.sinks.k1.sink.batchSize = 1000
j1.sinks.k1.channel = c1
",
        out.display()
    )
}

fn numbers(lines: &[String]) -> BTreeSet<u64> {
    lines.iter().map(|l| l.parse().unwrap()).collect()
}

fn wait_for_lines(dir: &std::path::Path, n: usize) -> Vec<String> {
    wait_until(Duration::from_secs(120), &format!("{n} lines"), || {
        let l = lines_in(dir);
        (l.len() >= n).then_some(l)
    })
}

#[test]
fn java_avro_cli_client_sends_100k_lines_with_headers_to_flume_fast() {
    let Some(lib) = flume_lib() else { return };
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(port, "a1.sinks.k1.sink.serializer = HEADER_AND_TEXT"),
        &["--cores", "2"],
    );
    let input = agent.path("in.txt");
    let text: String = (0..100_000)
        .map(|i| format!("event number {i}\n"))
        .collect();
    std::fs::write(&input, text).unwrap();
    std::fs::write(agent.path("h.properties"), "dc=eu-1\nservice=checkout\n").unwrap();
    let mut client = JavaProc::avro_client(
        &lib,
        agent.dir.path(),
        &[
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-F",
            input.to_str().unwrap(),
            "-R",
            agent.path("h.properties").to_str().unwrap(),
        ],
    );
    assert!(
        client.wait_exit(Duration::from_secs(300)).success(),
        "{}",
        client.log_text()
    );
    let lines = wait_for_lines(&agent.path("out"), 100_000);
    assert!(agent.stop().success());
    let got: BTreeSet<String> = lines.into_iter().collect();
    assert_eq!(got.len(), 100_000);
    for i in [0, 1, 99_999] {
        let want = format!("{{dc=eu-1, service=checkout}} event number {i}");
        let alt = format!("{{service=checkout, dc=eu-1}} event number {i}");
        assert!(
            got.contains(&want) || got.contains(&alt),
            "missing line {i}"
        );
    }
    assert!(got
        .iter()
        .all(|l| l.contains("dc=eu-1") && l.contains("service=checkout")));
}

fn java_agent_to_flume_fast(compression: &str) {
    let Some(lib) = flume_lib() else { return };
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(
            port,
            &format!("a1.sources.r1.compression-type = {compression}"),
        ),
        &["--cores", "2"],
    );
    let conf = java_sender_conf(port, compression, "j2.sinks.k1.compression-level = 4");
    let _java = JavaProc::agent(&lib, agent.dir.path(), "j2", &conf);
    let lines = wait_for_lines(&agent.path("out"), 20_000);
    assert!(agent.stop().success());
    assert_eq!(numbers(&lines), (0..20_000).collect());
}

#[test]
fn java_agent_avro_sink_sends_to_flume_fast() {
    java_agent_to_flume_fast("none");
}

#[test]
fn java_agent_avro_sink_sends_to_flume_fast_with_deflate() {
    java_agent_to_flume_fast("deflate");
}

fn flume_fast_to_java_agent(compression: &str) {
    let Some(lib) = flume_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    let java = JavaProc::agent(
        &lib,
        dir.path(),
        "j1",
        &java_receiver_conf(port, &out, compression),
    );
    java.wait_for_log("Avro source r1 started", Duration::from_secs(120));
    let conf = sender_conf(
        port,
        20_000,
        &format!("s1.sinks.k1.compression-type = {compression}"),
    );
    let mut sender = Agent::start(&conf, &[]);
    let lines = wait_for_lines(&out, 20_000);
    assert!(sender.stop().success());
    assert_eq!(numbers(&lines), (0..20_000).collect());
    assert!(sender.log_text().contains("k1: events.drained = 20000"));
    assert!(
        !sender.log_text().contains("batch failed"),
        "{}",
        sender.log_text()
    );
    drop(java);
}

#[test]
fn flume_fast_avro_sink_sends_to_a_java_agent() {
    flume_fast_to_java_agent("none");
}

#[test]
fn flume_fast_avro_sink_sends_to_a_java_agent_with_deflate() {
    flume_fast_to_java_agent("deflate");
}

#[test]
fn loadgen_against_java_flume_matches_its_output() {
    let Some(lib) = flume_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    let java = JavaProc::agent(
        &lib,
        dir.path(),
        "j1",
        &java_receiver_conf(port, &out, "none"),
    );
    java.wait_for_log("Avro source r1 started", Duration::from_secs(120));
    let (code, stdout, stderr) = run(&[
        "loadgen",
        "-p",
        &port.to_string(),
        "-c",
        "3",
        "-b",
        "100",
        "-s",
        "30",
        "-n",
        "30000",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(r#""acked_events":30000"#), "{stdout}");
    let lines = wait_for_lines(&out, 30_000);
    assert_eq!(lines.len(), 30_000);
}

/// A Java agent's avro sink with `ssl = true` (trusting keytool's JKS truststore, Java's
/// own default type) sends to flume-fast's TLS source, whose keystore keytool made.
fn java_tls_agent_to_flume_fast(compression: &str) {
    let Some(lib) = flume_lib() else { return };
    let stores_dir = tempfile::tempdir().unwrap();
    let stores = keytool_stores(stores_dir.path());
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(
            port,
            &format!(
                "a1.sources.r1.compression-type = {compression}
a1.sources.r1.ssl = true
a1.sources.r1.keystore = {}
a1.sources.r1.keystore-password = {KEYSTORE_PASSWORD}
a1.sources.r1.keystore-type = PKCS12",
                stores.keystore.display()
            ),
        ),
        &["--cores", "2"],
    );
    let conf = java_sender_conf(
        port,
        compression,
        &format!(
            "j2.sinks.k1.ssl = true
j2.sinks.k1.truststore = {}
j2.sinks.k1.truststore-password = {TRUSTSTORE_PASSWORD}
j2.sinks.k1.truststore-type = JKS",
            stores.truststore_jks.display()
        ),
    );
    let java = JavaProc::agent(&lib, agent.dir.path(), "j2", &conf);
    let lines = wait_for_lines(&agent.path("out"), 20_000);
    assert!(agent.stop().success());
    assert_eq!(numbers(&lines), (0..20_000).collect());
    assert!(
        !agent.log_text().contains("closing the connection"),
        "{}",
        agent.log_text()
    );
    drop(java);
}

#[test]
fn java_agent_avro_sink_sends_to_flume_fast_over_tls() {
    java_tls_agent_to_flume_fast("none");
}

#[test]
fn java_agent_avro_sink_sends_to_flume_fast_over_tls_with_deflate() {
    java_tls_agent_to_flume_fast("deflate");
}

/// flume-fast's avro sink with `ssl = true` (trusting keytool's PKCS12 truststore) sends to
/// a Java agent's avro source with `ssl = true` and keytool's PKCS12 keystore.
fn flume_fast_tls_to_java_agent(compression: &str) {
    let Some(lib) = flume_lib() else { return };
    let dir = tempfile::tempdir().unwrap();
    let stores = keytool_stores(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    let conf = java_receiver_conf(port, &out, compression)
        + &format!(
            "j1.sources.r1.ssl = true
j1.sources.r1.keystore = {}
j1.sources.r1.keystore-password = {KEYSTORE_PASSWORD}
j1.sources.r1.keystore-type = PKCS12
",
            stores.keystore.display()
        );
    let java = JavaProc::agent(&lib, dir.path(), "j1", &conf);
    java.wait_for_log("Avro source r1 started", Duration::from_secs(120));
    let conf = sender_conf(
        port,
        20_000,
        &format!(
            "s1.sinks.k1.compression-type = {compression}
s1.sinks.k1.ssl = true
s1.sinks.k1.truststore = {}
s1.sinks.k1.truststore-password = {TRUSTSTORE_PASSWORD}
s1.sinks.k1.truststore-type = PKCS12",
            stores.truststore_p12.display()
        ),
    );
    let mut sender = Agent::start(&conf, &[]);
    let lines = wait_for_lines(&out, 20_000);
    assert!(sender.stop().success());
    assert_eq!(numbers(&lines), (0..20_000).collect());
    assert!(
        !sender.log_text().contains("batch failed"),
        "{}",
        sender.log_text()
    );
    drop(java);
}

#[test]
fn flume_fast_avro_sink_sends_to_a_java_agent_over_tls() {
    flume_fast_tls_to_java_agent("none");
}

#[test]
fn flume_fast_avro_sink_sends_to_a_java_agent_over_tls_with_deflate() {
    flume_fast_tls_to_java_agent("deflate");
}

/// The TCP connections in state ESTABLISHED whose local port is `port` (IPv4).
fn established_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap();
            local_port == port && f[3] == "01"
        })
        .count()
}

/// The avro source's idle-timeout closes the connection of a Java avro sink that merely has
/// nothing to send; Avro's NettyTransceiver sees the close and reconnects on its next batch,
/// which is delivered without an error on the Java side (why closing idle connections is
/// harmless to Flume's clients).
#[test]
fn a_java_avro_sink_reconnects_by_itself_after_an_idle_close() {
    use std::io::{BufRead, BufReader, Write};
    let Some(lib) = flume_lib() else { return };
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(port, "a1.sources.r1.idle-timeout = 2000"),
        &["--cores", "1"],
    );
    let nc_port = free_port();
    let conf = netcat_to_avro_conf("j2", nc_port, port);
    let java = JavaProc::agent(&lib, agent.dir.path(), "j2", &conf);
    let nc = wait_until(Duration::from_secs(120), "the Java netcat source", || {
        std::net::TcpStream::connect(("127.0.0.1", nc_port)).ok()
    });
    let mut acks = BufReader::new(nc.try_clone().unwrap());
    let mut send = |line: &str| {
        (&nc).write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut ack = String::new();
        acks.read_line(&mut ack).unwrap();
        assert_eq!(ack, "OK\n");
    };
    send("0");
    wait_for_lines(&agent.path("out"), 1);
    agent.wait_for_log("(idle-timeout)", Duration::from_secs(30));
    wait_until(Duration::from_secs(10), "the close on the wire", || {
        (established_on(port) == 0).then_some(())
    });
    send("1");
    let lines = wait_for_lines(&agent.path("out"), 2);
    assert_eq!(numbers(&lines), (0..2).collect());
    assert!(agent.stop().success());
    let log = java.log_text();
    assert!(
        !log.contains("Unable to deliver") && !log.contains("EventDeliveryException"),
        "{log}"
    );
}
