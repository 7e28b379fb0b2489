//! The foundation, end to end: the real binary, real sockets, real files, real signals.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

#[test]
fn netcat_to_file_roll_on_two_shards_delivers_every_line_once() {
    let port = free_port();
    let mut agent = Agent::start(&netcat_conf(port, ""), &["--cores", "2"]);
    let clients: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let lines: Vec<String> = (0..20_000).map(|i| format!("c{c}-{i}")).collect();
                send_lines(port, &lines)
            })
        })
        .collect();
    let acked: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(acked, 80_000);
    assert!(agent.stop().success(), "{}", agent.log_text());
    let out = lines_in(&agent.path("out"));
    assert_eq!(out.len(), 80_000, "every acknowledged line is written once");
    let unique: BTreeSet<_> = out.iter().collect();
    assert_eq!(unique.len(), 80_000);
    // Files carry the shard: <series>-<shard>-<index>.
    for name in file_names(&agent.path("out")) {
        let parts: Vec<_> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert!(parts[1] == "0" || parts[1] == "1", "{name}");
    }
}

#[test]
fn flume_ng_spelling_with_defines_and_environment() {
    let port = free_port();
    let conf = netcat_conf(port, "")
        .replace(&format!("port = {port}"), "port = ${nc.port}")
        .replace("{dir}/out", "${env:OUT_DIR}");
    let dir = tempfile::tempdir().unwrap();
    let conf_path = dir.path().join("flume.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let out_dir = dir.path().join("landing");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["agent", "-n", "a1", "-c", "/etc/flume/conf", "-f"])
        .arg(&conf_path)
        .arg(format!("-Dnc.port={port}"))
        .arg("-Dflume.root.logger=INFO,console")
        .env("OUT_DIR", &out_dir);
    let mut agent = Agent::spawn_cmd(cmd, dir);
    agent.wait_for_log("started:", Duration::from_secs(20));
    assert!(agent
        .log_text()
        .contains("-c /etc/flume/conf is accepted for flume-ng compatibility and ignored"));
    assert_eq!(send_lines(port, &["via flume-ng".to_string()]), 1);
    assert!(agent.stop().success());
    assert_eq!(lines_in(&out_dir), ["via flume-ng"]);
}

#[test]
fn check_prints_the_flow_and_rejects_errors_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.conf");
    std::fs::write(&good, netcat_conf(4545, "").replace("{dir}", "/tmp")).unwrap();
    let (code, out, _) = run(&["check", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("r1 (netcat) -> c1"), "{out}");
    assert!(out.contains("max-line-length = 512   (default)"), "{out}");
    assert!(out.contains("k1 (file_roll) <- c1"), "{out}");

    let bad = dir.path().join("bad.conf");
    std::fs::write(
        &bad,
        netcat_conf(4545, "a1.channels.c1.keep-alive = soon\n").replace("{dir}", "/tmp"),
    )
    .unwrap();
    let (code, _, err) = run(&["check", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "{}:15: a1.channels.c1.keep-alive: expected an integer, found 'soon'",
            bad.display()
        )),
        "{err}"
    );
    // The agent refuses to start on the same file, with the same exit code.
    let (code, _, err) = run(&[bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("keep-alive"), "{err}");
}

#[test]
fn describe_lists_keys_with_defaults() {
    let (code, out, _) = run(&["describe", "org.apache.flume.source.NetcatSource"]);
    assert_eq!(code, 0);
    assert!(out.contains("source type 'netcat'"), "{out}");
    assert!(
        out.contains("max-line-length") && out.contains("= 512"),
        "{out}"
    );
    let (code, out, _) = run(&["describe", "memory"]);
    assert_eq!(code, 0);
    assert!(out.contains("transactionCapacity"), "{out}");
    let (code, _, err) = run(&["describe", "nosuch"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown component type 'nosuch'"), "{err}");
}

#[test]
fn port_in_use_fails_the_start_with_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut agent = Agent::spawn(&netcat_conf(port, ""), &["--cores", "2"]);
    let status = agent.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", agent.log_text());
    let log = agent.log_text();
    assert!(
        log.contains("source 'r1'") && log.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{log}"
    );
}

#[test]
fn unwritable_sink_directory_fails_the_start_with_exit_1() {
    let port = free_port();
    // A directory below a regular file cannot be created, even by root.
    let conf = netcat_conf(port, "").replace("{dir}/out", "{dir}/agent.conf/out");
    let mut agent = Agent::spawn(&conf, &[]);
    let status = agent.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1));
    let log = agent.log_text();
    assert!(
        log.contains("sink 'k1'") && log.contains("agent.conf/out"),
        "{log}"
    );
}

#[test]
fn full_channel_stops_reading_the_socket_instead_of_buffering() {
    let port = free_port();
    // A channel with no sink fills up and stays full.
    let conf = format!(
        "a1.sources = r1
a1.channels = c1
a1.sources.r1.type = netcat
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 1000
a1.channels.c1.transactionCapacity = 100
a1.channels.c1.keep-alive = 0
"
    );
    let mut agent = Agent::start(&conf, &[]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let reader = s.try_clone().unwrap();
    let acks = std::thread::spawn(move || {
        let mut count = 0;
        let mut r = BufReader::new(reader);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line == "OK\n" {
                count += 1;
            }
            line.clear();
        }
        count
    });
    // 200 MB offered; a source that kept reading would buffer it all.
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let line = b"0123456789012345678901234567890123456789\n";
    let chunk: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * 25_000)
        .collect();
    let mut written = 0usize;
    let blocked = loop {
        match s.write(&chunk) {
            Ok(n) => written += n,
            Err(e) => break e,
        }
        assert!(
            written < 200 << 20,
            "the agent kept reading a connection it cannot store"
        );
    };
    assert!(
        matches!(
            blocked.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{blocked}"
    );
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap())
        })
        .unwrap();
    assert!(
        rss_kib < 64 * 1024,
        "agent RSS {rss_kib} KiB while backpressured"
    );
    agent.wait_for_log("pausing reads until they fit", Duration::from_secs(5));
    assert!(agent.stop().success());
    drop(s);
    assert_eq!(
        acks.join().unwrap(),
        1000,
        "exactly the channel's capacity was acknowledged"
    );
}

#[test]
fn a_line_over_max_line_length_is_refused_as_flume_does() {
    let port = free_port();
    let mut agent = Agent::start(
        &netcat_conf(port, "a1.sources.r1.max-line-length = 10\n"),
        &[],
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"short\n0123456789abc\nnever\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert_eq!(
        reply,
        "OK\nFAILED: Event exceeds the maximum length (10 chars, including newline)\n"
    );
    assert!(agent.stop().success());
    assert_eq!(lines_in(&agent.path("out")), ["short"]);
}

#[test]
fn ack_every_event_false_sends_no_acks() {
    let port = free_port();
    let mut agent = Agent::start(
        &netcat_conf(port, "a1.sources.r1.ack-every-event = false\n"),
        &[],
    );
    let lines: Vec<String> = (0..100).map(|i| format!("q{i}")).collect();
    assert_eq!(
        send_lines(port, &lines),
        0,
        "the connection closes with no reply"
    );
    let out = agent.path("out");
    wait_until(Duration::from_secs(10), "100 lines written", || {
        (lines_in(&out).len() == 100).then_some(())
    });
    assert!(agent.stop().success());
}

#[test]
fn netcatudp_with_remote_address_header_and_header_and_text() {
    let port = free_udp_port();
    let conf = format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = netcatudp
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.remoteAddressHeader = from
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 10000
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {{dir}}/out
a1.sinks.k1.sink.serializer = HEADER_AND_TEXT
a1.sinks.k1.channel = c1
"
    );
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    for i in 0..500 {
        sock.send_to(
            format!("d{i}\nignored after newline").as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
    }
    let out = agent.path("out");
    wait_until(
        Duration::from_secs(20),
        "500 datagrams in the output",
        || (lines_in(&out).len() >= 500).then_some(()),
    );
    assert!(agent.stop().success());
    let got: BTreeSet<String> = lines_in(&out).into_iter().collect();
    let want: BTreeSet<String> = (0..500).map(|i| format!("{{from=/{me}}} d{i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn seq_source_runs_on_one_shard_and_sends_total_events() {
    let conf = "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = seq
a1.sources.r1.totalEvents = 25000
a1.sources.r1.batchSize = 500
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 2000
a1.channels.c1.transactionCapacity = 500
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {dir}/out
a1.sinks.k1.sink.batchSize = 500
a1.sinks.k1.channel = c1
";
    let mut agent = Agent::start(conf, &["--cores", "2"]);
    agent.wait_for_log("sequence complete: 25000 events", Duration::from_secs(30));
    assert!(agent.stop().success());
    let out = lines_in(&agent.path("out"));
    let want: Vec<String> = (0..25000).map(|i| i.to_string()).collect();
    let mut got = out.clone();
    got.sort_by_key(|s| s.parse::<u64>().unwrap());
    assert_eq!(got, want);
    let shards: BTreeSet<String> = file_names(&agent.path("out"))
        .iter()
        .map(|n| n.split('-').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(shards.len(), 1, "a single-stream source stays on one shard");
}

#[test]
fn stress_source_into_null_sink_counts_every_event() {
    let conf = "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = org.apache.flume.source.StressSource
a1.sources.r1.size = 100
a1.sources.r1.maxTotalEvents = 50000
a1.sources.r1.batchSize = 1000
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 10000
a1.channels.c1.transactionCapacity = 1000
a1.sinks.k1.type = null
a1.sinks.k1.batchSize = 1000
a1.sinks.k1.channel = c1
";
    let mut agent = Agent::start(conf, &[]);
    agent.wait_for_log("stress source done: 50000 sent", Duration::from_secs(30));
    assert!(agent.stop().success());
    agent.wait_for_log("k1: events.drained = 50000", Duration::from_secs(5));
}

#[test]
fn logger_sink_prints_flume_event_dumps() {
    let port = free_port();
    let conf = netcat_conf(port, "")
        .replace("a1.sinks.k1.type = file_roll", "a1.sinks.k1.type = logger")
        .replace("a1.sinks.k1.sink.directory = {dir}/out\n", "");
    let mut agent = Agent::start(&conf, &[]);
    assert_eq!(send_lines(port, &["Hello world".to_string()]), 1);
    agent.wait_for_log(
        "Event: { headers:{} body: 48 65 6C 6C 6F 20 77 6F 72 6C 64                Hello world }",
        Duration::from_secs(10),
    );
    assert!(agent.stop().success());
}

#[test]
fn sigterm_drains_the_channel_before_exit() {
    let port = free_port();
    // rollInterval 0: one file; the sink writes slowly enough that events are still queued
    // when the signal arrives, and the drain must still write them all.
    let mut agent = Agent::start(&netcat_conf(port, "a1.sinks.k1.sink.batchSize = 1\n"), &[]);
    let lines: Vec<String> = (0..5000).map(|i| format!("e{i}")).collect();
    assert_eq!(send_lines(port, &lines), 5000);
    assert!(agent.stop().success());
    assert_eq!(lines_in(&agent.path("out")).len(), 5000);
    assert!(agent.log_text().contains("stopped cleanly"));
}

#[test]
fn failover_group_moves_to_the_next_sink_when_the_first_fails() {
    let port = free_port();
    let conf = format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1 k2
a1.sinkgroups = g1
a1.sources.r1.type = netcat
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 10000
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {{dir}}/primary
a1.sinks.k1.sink.rollInterval = 1
a1.sinks.k1.channel = c1
a1.sinks.k2.type = file_roll
a1.sinks.k2.sink.directory = {{dir}}/backup
a1.sinks.k2.channel = c1
a1.sinkgroups.g1.sinks = k1 k2
a1.sinkgroups.g1.processor.type = failover
a1.sinkgroups.g1.processor.priority.k1 = 10
a1.sinkgroups.g1.processor.priority.k2 = 5
"
    );
    let mut agent = Agent::start(&conf, &[]);
    assert_eq!(send_lines(port, &["first".to_string()]), 1);
    let primary = agent.path("primary");
    wait_until(Duration::from_secs(10), "the primary sink to write", || {
        (lines_in(&primary) == ["first"]).then_some(())
    });
    // Break the primary: its directory becomes a file, so its next roll cannot open.
    let moved = agent.path("primary.old");
    std::fs::rename(&primary, &moved).unwrap();
    std::fs::write(&primary, b"not a directory").unwrap();
    let backup = agent.path("backup");
    let mut sent = vec!["first".to_string()];
    let mut i = 0;
    wait_until(
        Duration::from_secs(20),
        "the backup sink to take over",
        || {
            let line = format!("after-{i}");
            i += 1;
            assert_eq!(send_lines(port, std::slice::from_ref(&line)), 1);
            sent.push(line);
            std::thread::sleep(Duration::from_millis(50));
            (!lines_in(&backup).is_empty()).then_some(())
        },
    );
    assert!(agent.stop().success());
    let mut got: Vec<String> = lines_in(&moved)
        .into_iter()
        .chain(lines_in(&backup))
        .collect();
    got.sort();
    sent.sort();
    assert_eq!(
        got, sent,
        "every acknowledged line is in one of the two sinks, once"
    );
}

/// CPU time (utime + stime, in clock ticks) a process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat(5); after the name, the first field is field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn shards_stop_polling_soon_after_traffic_stops() {
    let port = free_port();
    let mut agent = Agent::start(
        &netcat_conf(port, ""),
        &["--cores", "2", "--spin-us", "2000"],
    );
    let pid = agent.child.id();
    let lines: Vec<String> = (0..50_000).map(|i| format!("line-{i}")).collect();
    assert_eq!(send_lines(port, &lines), lines.len());
    // The spinner parks 2 ms after the last read; give it that, then watch a quiet second.
    std::thread::sleep(Duration::from_millis(50));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let idle = cpu_ticks(pid) - before;
    // Two shards polling would use 2 s of CPU in that second (200 ticks at 100 Hz).
    assert!(
        idle <= 5,
        "an idle agent used {idle} CPU ticks in one second"
    );
    assert!(agent.stop().success());
}

/// The CPUs a thread of `pid` may run on, by thread name.
fn thread_cpus(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_default()
        };
        out.push((field("Name:"), field("Cpus_allowed_list:")));
    }
    out.sort();
    out
}

#[test]
fn shards_are_pinned_to_distinct_cpus_of_the_allowed_set() {
    let allowed = core_count();
    if allowed < 2 {
        eprintln!("skipped: this machine lets the test use {allowed} CPU");
        return;
    }
    let port = free_port();
    let mut agent = Agent::start(&netcat_conf(port, ""), &["--cores", "2"]);
    let shards: Vec<_> = thread_cpus(agent.child.id())
        .into_iter()
        .filter(|(name, _)| name.starts_with("shard-"))
        .collect();
    assert_eq!(shards.len(), 2, "{shards:?}");
    assert_ne!(shards[0].1, shards[1].1, "{shards:?}");
    for (_, cpus) in &shards {
        assert!(
            cpus.parse::<usize>().is_ok(),
            "each shard is pinned to one CPU: {shards:?}"
        );
    }
    assert!(agent.stop().success());

    // Started on one CPU only, --cores 2 still runs, with a warning.
    let conf = netcat_conf(free_port(), "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.conf");
    std::fs::write(&path, conf.replace("{dir}", dir.path().to_str().unwrap())).unwrap();
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", "0", BIN, "--cores", "2"]).arg(&path);
    let mut agent = Agent::spawn_cmd(cmd, dir);
    agent.wait_for_log(
        "--cores 2 exceeds the 1 CPUs this process may use",
        Duration::from_secs(20),
    );
    agent.wait_for_log("started:", Duration::from_secs(20));
    assert!(agent.stop().success());
}

fn core_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A netcat connection silent, or stalled in the middle of a line, for idle-timeout is
/// closed with the peer and the reason in the log; one that keeps sending is not.
#[test]
fn netcat_closes_silent_and_stalled_connections_after_idle_timeout() {
    let port = free_port();
    let mut agent = Agent::start(&netcat_conf(port, "a1.sources.r1.idle-timeout = 1000"), &[]);
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled.write_all(b"a line without its end").unwrap();
    let mut busy = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut acks = BufReader::new(busy.try_clone().unwrap());
    let start = std::time::Instant::now();
    let mut line = String::new();
    while start.elapsed() < Duration::from_millis(2500) {
        busy.write_all(b"busy\n").unwrap();
        line.clear();
        acks.read_line(&mut line).unwrap();
        assert_eq!(line, "OK\n");
        std::thread::sleep(Duration::from_millis(200));
    }
    for s in [&mut silent, &mut stalled] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(s.read(&mut buf).expect("not closed within 10 s"), 0);
    }
    busy.write_all(b"still served\n").unwrap();
    line.clear();
    acks.read_line(&mut line).unwrap();
    assert_eq!(line, "OK\n");
    agent.wait_for_log("silent for 1s (idle-timeout)", Duration::from_secs(5));
    agent.wait_for_log(
        "stalled for 1s in the middle of a line (22 bytes of it received; idle-timeout)",
        Duration::from_secs(5),
    );
    assert!(agent.stop().success());
}

/// Netcat's partial lines count toward the shard's buffer budget: two clients each sending
/// one endless 80 MiB line (allowed by max-line-length) are pushed back once the shard holds
/// max-buffered-bytes, the agent's memory stays low, and a normal client is still served.
#[test]
fn netcat_endless_lines_are_pushed_back_by_the_buffer_budget() {
    const LINE: u64 = 80 << 20;
    let port = free_port();
    let mut agent = Agent::start(
        &netcat_conf(
            port,
            "a1.sources.r1.max-line-length = 1073741824\na1.sources.r1.max-buffered-bytes = 8388608",
        ),
        &["--cores", "1"],
    );
    let hogs = Hogs::start(port, 2, b"", LINE);
    hogs.await_steady(Duration::from_secs(120));
    eprintln!("bytes sent per client: {:?}", hogs.sent());
    assert_eq!(send_lines(port, &["normal".to_string()]), 1);
    let (now, peak) = rss(agent.child.id());
    eprintln!("agent RSS {} MiB, peak {} MiB", now >> 20, peak >> 20);
    assert!(!hogs.all_done(), "no client was pushed back");
    assert!(peak < 64 << 20, "agent peak RSS {} MiB", peak >> 20);
    hogs.finish();
    assert!(agent.stop().success());
}
