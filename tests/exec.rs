//! The exec source on the real binary: a command's stdout lines become events, `tail -F`
//! follows a growing file, a command that exits is restarted only with `restart`, a full
//! channel stops the reading (the command blocks, the agent's memory stays bounded), and
//! the command is stopped with the agent.

mod common;

use common::*;
use std::io::Write;
use std::time::Duration;

fn conf(command: &str, extra: &str) -> String {
    format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = exec
a1.sources.r1.command = {command}
a1.sources.r1.batchSize = 3
a1.sources.r1.batchTimeout = 200
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {{dir}}/out
a1.sinks.k1.sink.rollInterval = 0
a1.sinks.k1.channel = c1
{extra}"
    )
}

/// The process ids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        if after.split_whitespace().nth(1) == Some(pid.to_string().as_str()) {
            out.push(p);
        }
    }
    out
}

/// Whether process `pid` is gone: exited and reaped (a zombie still has its /proc entry).
fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn every_stdout_line_becomes_an_event_with_javas_line_endings() {
    let mut agent = Agent::start(
        // A .properties value unescapes `\\` to `\`, so printf sees `a\nb...`.
        &conf(
            "printf 'a\\\\nb\\\\r\\\\nc\\\\rlast'",
            "a1.sources.r1.shell = /bin/sh -c\n",
        ),
        &["--cores", "2"],
    );
    agent.wait_for_log("exited with exit status: 0", Duration::from_secs(10));
    let out = agent.path("out");
    wait_until(Duration::from_secs(10), "four lines", || {
        (lines_in(&out).len() == 4).then_some(())
    });
    assert!(agent.stop().success());
    assert_eq!(lines_in(&out), ["a", "b", "c", "last"]);
    assert!(
        !agent.log_text().contains("starting command"),
        "no restart without restart = true"
    );
}

#[test]
fn tail_f_of_a_growing_file_delivers_lines_as_they_are_appended() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    std::fs::write(&file, "").unwrap();
    let mut agent = Agent::start(
        &conf(&format!("tail -F {}", file.display()), ""),
        &["--cores", "2"],
    );
    let out = agent.path("out");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    for round in 0..5 {
        for i in 0..7 {
            writeln!(f, "line {round}-{i}").unwrap();
        }
        f.flush().unwrap();
        // Seven lines are two batches of three and one the batchTimeout puts.
        let want = (round + 1) * 7;
        wait_until(Duration::from_secs(10), "the appended lines", || {
            (lines_in(&out).len() == want).then_some(())
        });
    }
    assert!(agent.stop().success());
    let want: Vec<String> = (0..5)
        .flat_map(|r| (0..7).map(move |i| format!("line {r}-{i}")))
        .collect();
    assert_eq!(lines_in(&out), want);
}

#[test]
fn an_exited_command_is_started_again_after_restart_throttle() {
    let mut agent = Agent::start(
        &conf(
            "echo once more",
            "a1.sources.r1.restart = true\na1.sources.r1.restartThrottle = 100\n",
        ),
        &[],
    );
    let out = agent.path("out");
    wait_until(Duration::from_secs(20), "three runs", || {
        (lines_in(&out).len() >= 3).then_some(())
    });
    assert!(agent.stop().success());
    assert!(lines_in(&out).iter().all(|l| l == "once more"));
    let log = agent.log_text();
    assert!(
        log.contains("starting command [echo once more] again in 100ms"),
        "{log}"
    );
}

#[test]
fn a_command_that_cannot_start_is_reported_and_the_agent_runs_on() {
    let mut agent = Agent::start(&conf("/nonexistent/flume-fast-cmd x", ""), &[]);
    agent.wait_for_log("cannot run", Duration::from_secs(10));
    assert!(agent.log_text().contains("/nonexistent/flume-fast-cmd"));
    assert!(agent.stop().success());
}

#[test]
fn a_full_channel_blocks_the_command_instead_of_buffering_its_output() {
    // No sink: the channel fills and stays full while `yes` writes without end.
    let text = "a1.sources = r1
a1.channels = c1
a1.sources.r1.type = exec
a1.sources.r1.command = yes 0123456789012345678901234567890123456789
a1.sources.r1.batchSize = 100
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 1000
a1.channels.c1.transactionCapacity = 100
a1.channels.c1.keep-alive = 0
";
    let mut agent = Agent::start(text, &[]);
    agent.wait_for_log("pausing reads until they fit", Duration::from_secs(10));
    let pid = agent.child.id();
    let yes = wait_until(Duration::from_secs(5), "the command", || {
        children_of(pid).first().copied()
    });
    // `yes` blocks in its write once the pipe is full: its written bytes stop growing.
    let written = |p: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{p}/io"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("wchar: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let settled = wait_until(Duration::from_secs(10), "the command to block", || {
        let before = written(yes);
        std::thread::sleep(Duration::from_millis(200));
        (written(yes) == before).then_some(before)
    });
    assert!(
        settled < 64 << 20,
        "{settled} bytes read from a command whose events cannot be stored"
    );
    let (rss, _) = rss(pid);
    assert!(
        rss < 64 << 20,
        "agent RSS {rss} while the command is blocked"
    );
    assert!(agent.stop().success());
    wait_until(Duration::from_secs(5), "the command to be reaped", || {
        gone(yes).then_some(())
    });
}

#[test]
fn the_command_is_stopped_and_reaped_with_the_agent() {
    let mut agent = Agent::start(&conf("sleep 1000", ""), &[]);
    let pid = agent.child.id();
    let sleeper = wait_until(Duration::from_secs(5), "the command", || {
        children_of(pid).first().copied()
    });
    assert!(agent.stop().success());
    wait_until(Duration::from_secs(5), "the command to be gone", || {
        gone(sleeper).then_some(())
    });
}
