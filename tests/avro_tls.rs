//! Avro RPC over TLS with the real binary: avro sink to a TLS avro source (plain and with
//! deflate), avro-client and loadgen with `--ssl`, a client without TLS closed with a
//! logged reason, and keystore mistakes refused at start-up with file, line and key.
//! Certificates are made here (rcgen) into PKCS12 stores (p12-keystore), never committed.
//! TLS interop with Java Flume is in `avro_java.rs`.

mod common;

use common::*;
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A server keystore and a truststore holding the server's (self-signed) certificate.
struct Stores {
    dir: tempfile::TempDir,
    keystore: PathBuf,
    truststore: PathBuf,
}

const KS_PASS: &str = "ks-secret";
const TS_PASS: &str = "ts-secret";

fn stores() -> Stores {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = Certificate::from_der(made.cert.der()).unwrap();
    let mut ks = KeyStore::new();
    let chain = PrivateKeyChain::new(
        b"1".as_slice(),
        PrivateKey::from_der(&made.signing_key.serialize_der()).unwrap(),
        [cert.clone()],
    );
    ks.add_entry("server", KeyStoreEntry::PrivateKeyChain(chain));
    let keystore = dir.path().join("server.p12");
    std::fs::write(&keystore, ks.writer(KS_PASS).write().unwrap()).unwrap();
    let mut ts = KeyStore::new();
    ts.add_entry("server", KeyStoreEntry::Certificate(cert));
    let truststore = dir.path().join("trust.p12");
    std::fs::write(&truststore, ts.writer(TS_PASS).write().unwrap()).unwrap();
    Stores {
        dir,
        keystore,
        truststore,
    }
}

fn receiver_conf(port: u16, s: &Stores, extra: &str) -> String {
    common::receiver_conf(
        port,
        &format!(
            "a1.sources.r1.ssl = true
a1.sources.r1.keystore = {}
a1.sources.r1.keystore-password = {KS_PASS}
a1.sources.r1.keystore-type = PKCS12
{extra}",
            s.keystore.display()
        ),
    )
}

fn sender_conf(port: u16, total: u64, s: &Stores, extra: &str) -> String {
    common::sender_conf(
        port,
        total,
        &format!(
            "s1.sinks.k1.ssl = true
s1.sinks.k1.truststore = {}
s1.sinks.k1.truststore-password = {TS_PASS}
s1.sinks.k1.truststore-type = PKCS12
{extra}",
            s.truststore.display()
        ),
    )
}

fn expect_sequence(dir: &std::path::Path, n: u64) {
    wait_until(Duration::from_secs(60), "every event in the output", || {
        (lines_in(dir).len() as u64 >= n).then_some(())
    });
    let got: BTreeSet<u64> = lines_in(dir).iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(got.len() as u64, n, "duplicates or gaps");
    assert_eq!(got.last().copied(), Some(n - 1));
}

fn tls_agent_to_agent(compression: &str) {
    let s = stores();
    let port = free_port();
    let mut receiver = Agent::start(
        &receiver_conf(
            port,
            &s,
            &format!("a1.sources.r1.compression-type = {compression}"),
        ),
        &["--cores", "2"],
    );
    let mut sender = Agent::start(
        &sender_conf(
            port,
            30_000,
            &s,
            &format!("s1.sinks.k1.compression-type = {compression}"),
        ),
        &[],
    );
    expect_sequence(&receiver.path("out"), 30_000);
    assert!(sender.stop().success());
    assert!(receiver.stop().success());
    assert!(
        !sender.log_text().contains("batch failed"),
        "{}",
        sender.log_text()
    );
    assert!(!receiver.log_text().contains("closing the connection"));
}

#[test]
fn avro_sink_to_a_tls_avro_source() {
    tls_agent_to_agent("none");
}

#[test]
fn avro_sink_to_a_tls_avro_source_with_deflate() {
    tls_agent_to_agent("deflate");
}

fn avro_client(port: u16, input: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["avro-client", "-H", "127.0.0.1", "-p", &port.to_string()])
        .arg("-F")
        .arg(input)
        .args(["--timeout", "10"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn tools_drive_a_tls_source_and_a_plain_client_is_closed_with_a_reason() {
    let s = stores();
    let port = free_port();
    let mut agent = Agent::start(&receiver_conf(port, &s, ""), &[]);
    let input = agent.path("in.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();

    let plain = avro_client(port, &input, &[]);
    assert!(!plain.status.success());
    agent.wait_for_log("TLS handshake failed", Duration::from_secs(10));
    let log = agent.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("TLS handshake failed"))
        .unwrap();
    assert!(
        line.contains("peer=127.0.0.1:") && line.contains("is the client using TLS?"),
        "{line}"
    );

    let ts = s.truststore.to_str().unwrap();
    let ok = avro_client(
        port,
        &input,
        &[
            "--ssl",
            "--truststore",
            ts,
            "--truststore-password",
            TS_PASS,
            "--truststore-type",
            "PKCS12",
        ],
    );
    let err = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{err}");
    assert!(err.contains("sent 3 events"), "{err}");

    // The server's certificate is checked: with the system CA certificates (no
    // truststore) a self-signed one is refused.
    let untrusted = avro_client(port, &input, &["--ssl"]);
    let err = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(1), "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");

    // A wrong truststore password is refused before connecting.
    let bad = avro_client(
        port,
        &input,
        &["--ssl", "--truststore", ts, "--truststore-password", "nope"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("wrong password"));

    let (code, stdout, stderr) = run(&[
        "loadgen",
        "-p",
        &port.to_string(),
        "-c",
        "2",
        "-b",
        "100",
        "-s",
        "50",
        "-n",
        "20000",
        "--ssl",
        "--trust-all-certs",
        "--compression-type",
        "none",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(r#""acked_events":20000"#), "{stdout}");
    wait_until(Duration::from_secs(30), "20003 lines", || {
        (lines_in(&agent.path("out")).len() >= 20_003).then_some(())
    });
    assert!(agent.stop().success());
    assert_eq!(lines_in(&agent.path("out")).len(), 20_003);
}

/// The 1-based line of `key` in `conf`.
fn line_of(conf: &str, key: &str) -> usize {
    conf.lines()
        .position(|l| l.starts_with(&format!("{key} ")))
        .unwrap()
        + 1
}

#[test]
fn keystore_mistakes_are_config_errors_with_file_line_and_key() {
    let s = stores();
    let path = s.dir.path().join("a.conf");
    let check = |conf: &str| {
        std::fs::write(&path, conf.replace("{dir}", "/tmp")).unwrap();
        let (code, _, err) = run(&["check", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        err
    };

    // A valid TLS configuration checks, and the password is not printed.
    let conf = receiver_conf(1, &s, "").replace("{dir}", "/tmp");
    std::fs::write(&path, &conf).unwrap();
    let (code, out, err) = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("keystore-password = ********"), "{out}");
    assert!(!out.contains(KS_PASS) && !err.contains(KS_PASS), "{out}");

    let conf = receiver_conf(1, &s, "").replace(KS_PASS, "wrong");
    let err = check(&conf);
    let at = format!(
        "{}:{}: a1.sources.r1.keystore-password:",
        path.display(),
        line_of(&conf, "a1.sources.r1.keystore-password")
    );
    assert!(err.contains(&at) && err.contains("wrong password"), "{err}");

    // A JKS keystore (its magic number is all it takes to be recognised).
    let jks = s.dir.path().join("server.jks");
    std::fs::write(&jks, [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 0]).unwrap();
    let conf = receiver_conf(1, &s, "")
        .replace(s.keystore.to_str().unwrap(), jks.to_str().unwrap())
        .replace("keystore-type = PKCS12", "keystore-type = JKS");
    let err = check(&conf);
    let at = format!(
        "{}:{}: a1.sources.r1.keystore:",
        path.display(),
        line_of(&conf, "a1.sources.r1.keystore")
    );
    assert!(err.contains(&at), "{err}");
    assert!(
        err.contains(&format!(
            "keytool -importkeystore -srckeystore {}",
            jks.display()
        )) && err.contains("-deststoretype PKCS12"),
        "{err}"
    );

    // The sink's truststore, the same way.
    let conf = sender_conf(1, 1, &s, "").replace(TS_PASS, "wrong");
    let err = check(&conf);
    let at = format!(
        "{}:{}: s1.sinks.k1.truststore-password:",
        path.display(),
        line_of(&conf, "s1.sinks.k1.truststore-password")
    );
    assert!(err.contains(&at) && err.contains("wrong password"), "{err}");

    // Flume's protocol filter: nothing rustls speaks is left.
    let conf = receiver_conf(1, &s, "a1.sources.r1.include-protocols = TLSv1 TLSv1.1");
    let err = check(&conf);
    assert!(
        err.contains("a1.sources.r1.include-protocols:") && err.contains("TLSv1.2 and TLSv1.3"),
        "{err}"
    );

    // Running the agent fails the same way (exit 2), not at the first connection.
    let conf = receiver_conf(free_port(), &s, "").replace(KS_PASS, "wrong");
    let mut agent = Agent::spawn(&conf, &[]);
    // The log is read by another thread: wait for the line, not just for the exit.
    agent.wait_for_log("wrong password", Duration::from_secs(20));
    assert_eq!(agent.wait_exit(Duration::from_secs(20)).code(), Some(2));
}

#[test]
fn keystore_settings_fall_back_to_java_properties_then_flume_environment_variables() {
    let s = stores();
    let port = free_port();
    let conf = receiver_conf(port, &s, "")
        .lines()
        .filter(|l| !l.contains(".keystore"))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.conf");
    std::fs::write(&path, conf.replace("{dir}", dir.path().to_str().unwrap())).unwrap();
    let with_env = |cmd: &mut Command| {
        cmd.env("FLUME_SSL_KEYSTORE_PATH", &s.keystore)
            .env("FLUME_SSL_KEYSTORE_PASSWORD", "not-the-password")
            .env("FLUME_SSL_KEYSTORE_TYPE", "PKCS12");
    };

    // The environment alone: its (wrong) password is used.
    let mut cmd = Command::new(BIN);
    cmd.arg("check").arg(&path);
    with_env(&mut cmd);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("a1.sources.r1.keystore-password") && err.contains("wrong password"),
        "{err}"
    );

    // A Java system property given with -D comes first, as in Flume.
    let mut cmd = Command::new(BIN);
    cmd.arg(format!("-Djavax.net.ssl.keyStorePassword={KS_PASS}"))
        .arg(&path);
    with_env(&mut cmd);
    let mut agent = Agent::spawn_cmd(cmd, dir);
    agent.wait_for_log("started:", Duration::from_secs(20));
    let input = agent.path("in.txt");
    std::fs::write(&input, "via globals\n").unwrap();
    let out = avro_client(port, &input, &["--ssl", "--trust-all-certs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(Duration::from_secs(20), "the line", || {
        (!lines_in(&agent.path("out")).is_empty()).then_some(())
    });
    assert!(agent.stop().success());
    assert_eq!(lines_in(&agent.path("out")), ["via globals"]);
}

/// Waits (up to `within`) for the agent to close `s` (EOF or reset).
fn await_close(s: &mut std::net::TcpStream, within: Duration) {
    use std::io::Read;
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("not closed within {within:?}: {e}"),
        }
    }
}

/// Issue 31, item 2, over TLS: with `threads = 1`, a client that starts a TLS handshake and
/// never finishes it, and one that sends nothing at all, keep no real client out; both are
/// closed after handshake-timeout with the peer and the reason in the log.
#[test]
fn unfinished_tls_handshakes_keep_nobody_out_and_are_closed() {
    use std::io::Write;
    let s = stores();
    let port = free_port();
    let mut agent = Agent::start(
        &receiver_conf(
            port,
            &s,
            "a1.sources.r1.threads = 1\na1.sources.r1.handshake-timeout = 1500",
        ),
        &["--cores", "1"],
    );
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut started = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The first bytes of a TLS record carrying a ClientHello, and no more.
    started
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let (code, stdout, stderr) = run(&[
        "loadgen",
        "-p",
        &port.to_string(),
        "-c",
        "2",
        "-b",
        "100",
        "-s",
        "50",
        "-n",
        "10000",
        "--ssl",
        "--trust-all-certs",
    ]);
    assert_eq!(code, 0, "loadgen was not served: {stderr}");
    assert!(stdout.contains(r#""acked_events":10000"#), "{stdout}");
    await_close(&mut silent, Duration::from_secs(10));
    await_close(&mut started, Duration::from_secs(10));
    // The agent logs each close as it makes it; the log reader may be a moment behind.
    let needle = "no TLS handshake within 1.5s (handshake-timeout)";
    wait_until(
        Duration::from_secs(10),
        "two handshake-timeout lines",
        || (agent.log_text().matches(needle).count() >= 2).then_some(()),
    );
    let log = agent.log_text();
    let closed: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(closed.len(), 2, "{log}");
    assert!(
        closed.iter().all(|l| l.contains("peer=127.0.0.1:")),
        "{log}"
    );
    wait_until(Duration::from_secs(30), "10000 lines", || {
        (lines_in(&agent.path("out")).len() >= 10_000).then_some(())
    });
    assert!(agent.stop().success());
}
