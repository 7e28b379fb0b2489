//! Interceptors and channel selectors side by side with Java Flume 1.11.0: the same events
//! (sent by `flume-fast avro-client` with the same header file) go through a Java agent and
//! a flume-fast agent configured with the same lines, and each channel's file_roll output
//! (HEADER_AND_TEXT) must hold the same events. Header order is normalised (Java prints a
//! HashMap); values that are time by nature (the timestamp interceptor) are compared by
//! shape. The UUID interceptor lives in Java Flume's morphline Solr sink module, which the
//! peer's classpath does not carry: flume-fast is tested alone for it.

mod common;
mod java_peer;

use common::*;
use java_peer::{flume_lib, JavaProc};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// An agent `name` with an avro source on `port` into channels c1..c3, each drained by a
/// file_roll sink (HEADER_AND_TEXT) into `out/cN`; `flow` lines use `AGENT` for the name.
fn conf(name: &str, port: u16, out: &Path, flow: &str) -> String {
    let mut s = format!(
        "AGENT.sources = r1
AGENT.channels = c1 c2 c3
AGENT.sinks = k1 k2 k3
AGENT.sources.r1.type = avro
AGENT.sources.r1.bind = 127.0.0.1
AGENT.sources.r1.port = {port}
AGENT.sources.r1.channels = c1 c2 c3
"
    );
    for n in 1..=3 {
        let dir = out.join(format!("c{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        s.push_str(&format!(
            "AGENT.channels.c{n}.type = memory
AGENT.channels.c{n}.capacity = 10000
AGENT.channels.c{n}.transactionCapacity = 1000
AGENT.sinks.k{n}.type = file_roll
AGENT.sinks.k{n}.channel = c{n}
AGENT.sinks.k{n}.sink.directory = {}
AGENT.sinks.k{n}.sink.rollInterval = 0
AGENT.sinks.k{n}.sink.serializer = HEADER_AND_TEXT
",
            dir.display()
        ));
    }
    s.push_str(flow);
    s.replace("AGENT", name)
}

/// A HEADER_AND_TEXT line with its headers sorted by name (`{b=2, a=1} x` → `{a=1, b=2} x`),
/// after `shape` has rewritten the values that differ by nature.
fn normalise(line: &str, shape: &dyn Fn(&str, &str) -> String) -> String {
    let Some(rest) = line.strip_prefix('{') else {
        return line.to_string();
    };
    let (heads, body) = rest
        .split_once("} ")
        .unwrap_or((rest.trim_end_matches('}'), ""));
    let map: BTreeMap<&str, String> = heads
        .split(", ")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k, shape(k, v))
        })
        .collect();
    let heads: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}} {body}", heads.join(", "))
}

/// Each channel's normalised, sorted lines once `want` lines in all have arrived.
fn outputs(out: &Path, want: usize, shape: &dyn Fn(&str, &str) -> String) -> Channels {
    wait_until(
        Duration::from_secs(120),
        &format!("{want} lines in {}", out.display()),
        || {
            let n: usize = (1..=3)
                .map(|c| lines_in(&out.join(format!("c{c}"))).len())
                .sum();
            (n >= want).then_some(())
        },
    );
    // Let a wrong extra line show up before comparing.
    std::thread::sleep(Duration::from_millis(500));
    (1..=3)
        .map(|c| {
            let mut l: Vec<String> = lines_in(&out.join(format!("c{c}")))
                .iter()
                .map(|l| normalise(l, shape))
                .collect();
            l.sort();
            l
        })
        .collect()
}

/// Sends `lines` with the headers of `header_file` to `port` with flume-fast's avro-client.
fn send(port: u16, dir: &Path, lines: &[String], header_file: &str) {
    let input = dir.join("in.txt");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let headers = dir.join("h.properties");
    std::fs::write(&headers, header_file).unwrap();
    let (code, out, err) = run(&[
        "avro-client",
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-F",
        input.to_str().unwrap(),
        "-R",
        headers.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Each channel's normalised, sorted lines.
type Channels = Vec<Vec<String>>;

/// Runs `flow` in a Java agent and in flume-fast, sends them the same events, and returns
/// (Java's, flume-fast's) outputs per channel; `None` when Java is unavailable.
fn both(
    flow: &str,
    lines: &[String],
    header_file: &str,
    want: usize,
    shape: &dyn Fn(&str, &str) -> String,
) -> Option<(Channels, Channels)> {
    let lib = flume_lib()?;
    let work = tempfile::tempdir().unwrap();
    let (jport, fport) = (free_port(), free_port());
    let jout = work.path().join("java");
    let java = JavaProc::agent(&lib, work.path(), "j1", &conf("j1", jport, &jout, flow));
    java.wait_for_log("Avro source r1 started", Duration::from_secs(120));
    let fout = work.path().join("fast");
    let mut fast = Agent::start(&conf("a1", fport, &fout, flow), &["--cores", "1"]);
    send(jport, work.path(), lines, header_file);
    send(fport, work.path(), lines, header_file);
    let j = outputs(&jout, want, shape);
    let f = outputs(&fout, want, shape);
    assert!(fast.stop().success());
    drop(java);
    Some((j, f))
}

/// Backslashes are doubled: a .properties file reads `\d` as `d` (Java and flume-fast).
const INTERCEPTED: &str = r#"AGENT.sources.r1.interceptors = rf rf2 rx rx2 ts ts2 hst hst2 st st2 sr sr2 rm
AGENT.sources.r1.interceptors.rf.type = regex_filter
AGENT.sources.r1.interceptors.rf.regex = state=XX\\b
AGENT.sources.r1.interceptors.rf.excludeEvents = true
AGENT.sources.r1.interceptors.rf2.type = regex_filter
AGENT.sources.r1.interceptors.rf2.regex = n=
AGENT.sources.r1.interceptors.rx2.type = regex_extractor
AGENT.sources.r1.interceptors.rx2.regex = t2=\\[([^\\]]+)\\] t3=(\\S+)
AGENT.sources.r1.interceptors.rx2.serializers = a b
AGENT.sources.r1.interceptors.rx2.serializers.a.name = t2
AGENT.sources.r1.interceptors.rx2.serializers.a.type = org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer
AGENT.sources.r1.interceptors.rx2.serializers.a.pattern = dd/MMM/yyyy:HH:mm:ss Z
AGENT.sources.r1.interceptors.rx2.serializers.b.name = t3
AGENT.sources.r1.interceptors.rx2.serializers.b.type = org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer
AGENT.sources.r1.interceptors.rx2.serializers.b.pattern = yyyy-MM-dd'T'HH:mm:ss.SSSZZ
AGENT.sources.r1.interceptors.ts2.type = timestamp
AGENT.sources.r1.interceptors.ts2.headerName = first
AGENT.sources.r1.interceptors.ts2.preserveExisting = true
AGENT.sources.r1.interceptors.hst2.type = host
AGENT.sources.r1.interceptors.hst2.useIP = false
AGENT.sources.r1.interceptors.hst2.hostHeader = fqdn
AGENT.sources.r1.interceptors.rx.type = regex_extractor
AGENT.sources.r1.interceptors.rx.regex = ^state=(\\w+) user=(\\w+) at=(\\S+ \\S+)
AGENT.sources.r1.interceptors.rx.serializers = s1 s2 s3
AGENT.sources.r1.interceptors.rx.serializers.s1.name = state
AGENT.sources.r1.interceptors.rx.serializers.s2.name = user
AGENT.sources.r1.interceptors.rx.serializers.s2.type = DEFAULT
AGENT.sources.r1.interceptors.rx.serializers.s3.name = when
AGENT.sources.r1.interceptors.rx.serializers.s3.type = org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer
AGENT.sources.r1.interceptors.rx.serializers.s3.pattern = yyyy-MM-dd HH:mm:ss
AGENT.sources.r1.interceptors.ts.type = timestamp
AGENT.sources.r1.interceptors.hst.type = host
AGENT.sources.r1.interceptors.hst.hostHeader = ip
AGENT.sources.r1.interceptors.st.type = static
AGENT.sources.r1.interceptors.st.key = dc
AGENT.sources.r1.interceptors.st.value = eu
AGENT.sources.r1.interceptors.st2.type = org.apache.flume.interceptor.StaticInterceptor$Builder
AGENT.sources.r1.interceptors.st2.key = tier
AGENT.sources.r1.interceptors.st2.value = gold
AGENT.sources.r1.interceptors.st2.preserveExisting = false
AGENT.sources.r1.interceptors.sr.type = search_replace
AGENT.sources.r1.interceptors.sr.searchPattern = (?<=n=)(\\d+)
AGENT.sources.r1.interceptors.sr.replaceString = #$1
AGENT.sources.r1.interceptors.sr2.type = search_replace
AGENT.sources.r1.interceptors.sr2.searchPattern = user=(\\w+)
AGENT.sources.r1.interceptors.sr2.replaceString = user=<$1>
AGENT.sources.r1.interceptors.sr2.charset = UTF-8
AGENT.sources.r1.interceptors.rm.type = remove_header
AGENT.sources.r1.interceptors.rm.withName = drop1
AGENT.sources.r1.interceptors.rm.fromList = gone ,tmpA
AGENT.sources.r1.interceptors.rm.matching = tmp.*
AGENT.sources.r1.selector.type = multiplexing
AGENT.sources.r1.selector.header = state
AGENT.sources.r1.selector.mapping.CA = c1
AGENT.sources.r1.selector.mapping.NY = c2
AGENT.sources.r1.selector.optional.CA = c3
AGENT.sources.r1.selector.optional.NY = c2
AGENT.sources.r1.selector.default = c3
"#;

#[test]
fn interceptors_and_multiplexing_match_java_flume() {
    let states = ["CA", "NY", "TX", "XX"];
    let mut lines = Vec::new();
    let mut want = 0;
    for i in 0..60 {
        if i % 7 == 6 {
            lines.push(format!("no match here n={i}"));
            want += 1; // state=WA from the header file: default c3
            continue;
        }
        if i % 11 == 10 {
            lines.push(format!("dropped by rf2: no n ({i})"));
            continue;
        }
        let st = states[i % 4];
        let mon = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ][i % 12];
        lines.push(format!(
            "state={st} user=u{i} at=2024-03-{:02} 1{}:{:02}:{:02} \
             t2=[{:02}/{mon}/2023:0{}:{:02}:00 {}] t3=2022-1{}-0{}T12:00:{:02}.{}{} n={i}",
            1 + i % 28,
            i % 10,
            i % 60,
            (i * 7) % 60,
            1 + i % 28,
            i % 10,
            i % 60,
            ["+0100", "-0530", "+0000"][i % 3],
            i % 3,
            1 + i % 9,
            i % 60,
            i % 1000,
            ["+01:00", "-08:00", "Z"][i % 3],
        ));
        want += match st {
            "CA" => 2,
            "XX" => 0,
            _ => 1,
        };
    }
    let header_file = "first=0\ndc=us\ndrop1=x\ntmpA=1\ntmpB=2\nxtmp=3\ngone=4\nstate=WA\n";
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let shape = move |k: &str, v: &str| {
        if k == "timestamp" {
            let ms: u64 = v.parse().unwrap_or_else(|_| panic!("timestamp {v:?}"));
            assert!(ms >= started && ms < started + 600_000, "timestamp {ms}");
            return "<now>".into();
        }
        v.to_string()
    };
    let Some((java, fast)) = both(INTERCEPTED, &lines, header_file, want, &shape) else {
        return;
    };
    for c in 0..3 {
        assert_eq!(java[c], fast[c], "channel c{}", c + 1);
    }
    // And what both produced is what the configuration means.
    let c1 = &fast[0];
    assert!(c1.iter().all(|l| l.contains("state=CA")), "{c1:?}");
    let sample = c1
        .iter()
        .find(|l| l.ends_with(" n=#0"))
        .unwrap_or_else(|| panic!("{c1:#?}"));
    assert!(
        sample.contains("dc=us") && sample.contains("tier=gold") && sample.contains("xtmp=3"),
        "{sample}"
    );
    assert!(
        !sample.contains("drop1") && !sample.contains("tmpA") && !sample.contains("gone="),
        "{sample}"
    );
    assert!(
        sample.contains("user=u0") && sample.contains("state=CA user=<u0> at="),
        "{sample}"
    );
    assert!(fast[2].iter().any(|l| l.contains("state=WA")
        && l.starts_with('{')
        && l.ends_with("no match here n=#6")));
    assert!(fast.iter().flatten().all(|l| !l.contains("state=XX")));
}

/// Java Flume 1.11 has the load_balancing selector's class but its configuration layer
/// does not know the type (ChannelSelectorConfigurationType has no LOAD_BALANCING), so a
/// Java agent drops the source; flume-fast runs what the class does: one channel per
/// event, in turn from the first.
#[test]
fn load_balancing_round_robin_per_event() {
    let flow = "AGENT.sources.r1.selector.type = load_balancing\n";
    if let Some(lib) = flume_lib() {
        let work = tempfile::tempdir().unwrap();
        let java = JavaProc::agent(
            &lib,
            work.path(),
            "j1",
            &conf("j1", free_port(), work.path(), flow),
        );
        java.wait_for_log(
            "No enum constant org.apache.flume.conf.channel.ChannelSelectorConfiguration.ChannelSelectorConfigurationType.LOAD_BALANCING",
            Duration::from_secs(120),
        );
    }
    let port = free_port();
    let out = tempfile::tempdir().unwrap();
    let mut fast = Agent::start(&conf("a1", port, out.path(), flow), &["--cores", "1"]);
    let lines: Vec<String> = (0..31).map(|i| format!("event {i}")).collect();
    send(port, out.path(), &lines, "k=v\n");
    let got = outputs(out.path(), lines.len(), &|_, v| v.to_string());
    assert!(fast.stop().success());
    for (c, got) in got.iter().enumerate() {
        let mut want: Vec<String> = (0..31)
            .filter(|i| i % 3 == c)
            .map(|i| format!("{{k=v}} event {i}"))
            .collect();
        want.sort();
        assert_eq!(got, &want, "channel c{}", c + 1);
    }
}

#[test]
fn uuid_interceptor_sets_prefixed_unique_ids_keeping_existing_ones() {
    // flume-fast alone: Java's UUIDInterceptor is in flume-ng-morphline-solr-sink.
    let port = free_port();
    let out = tempfile::tempdir().unwrap();
    let flow = "AGENT.sources.r1.interceptors = u1 u2
AGENT.sources.r1.interceptors.u1.type = org.apache.flume.sink.solr.morphline.UUIDInterceptor$Builder
AGENT.sources.r1.interceptors.u1.prefix = ev-
AGENT.sources.r1.interceptors.u2.type = org.apache.flume.sink.solr.morphline.UUIDInterceptor$Builder
AGENT.sources.r1.interceptors.u2.headerName = trace
AGENT.sources.r1.selector.type = load_balancing
AGENT.sources.r1.selector.policy = random
";
    let mut fast = Agent::start(&conf("a1", port, out.path(), flow), &[]);
    let lines: Vec<String> = (0..50).map(|i| format!("e{i}")).collect();
    send(port, out.path(), &lines, "trace=t-1\n");
    let got = outputs(out.path(), 50, &|_, v| v.to_string());
    assert!(fast.stop().success());
    let mut ids = std::collections::BTreeSet::new();
    for l in got.iter().flatten() {
        let id = l
            .split("id=ev-")
            .nth(1)
            .unwrap()
            .split([',', '}'])
            .next()
            .unwrap();
        assert_eq!(id.len(), 36, "{l}");
        assert_eq!(id.as_bytes()[14], b'4', "version 4: {l}");
        assert!(
            l.contains("trace=t-1"),
            "preserveExisting defaults to true: {l}"
        );
        ids.insert(id.to_string());
    }
    assert_eq!(ids.len(), 50);
}

#[test]
fn what_flume_fast_cannot_run_as_java_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, names) in [
        ("rf.regex", "\\\\Gstart", "\\G"),
        ("rf.regex", "(?U)a+", "inline flag 'U'"),
        ("rx.serializers.s1.pattern", "yyyy-DDD", "'D' (day of year)"),
        ("sr.replaceString", "$3", "no group 3"),
    ] {
        let mut flow = String::from(
            "AGENT.sources.r1.interceptors = rf rx sr
AGENT.sources.r1.interceptors.rf.type = regex_filter
AGENT.sources.r1.interceptors.rx.type = regex_extractor
AGENT.sources.r1.interceptors.rx.regex = (\\\\d+)
AGENT.sources.r1.interceptors.rx.serializers = s1
AGENT.sources.r1.interceptors.rx.serializers.s1.name = n
AGENT.sources.r1.interceptors.rx.serializers.s1.type = org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer
AGENT.sources.r1.interceptors.sr.type = search_replace
AGENT.sources.r1.interceptors.sr.searchPattern = (a)
",
        );
        flow.push_str(&format!("AGENT.sources.r1.interceptors.{key} = {value}\n"));
        if key != "rx.serializers.s1.pattern" {
            flow.push_str("AGENT.sources.r1.interceptors.rx.serializers.s1.pattern = yyyy\n");
        }
        let text = conf("a1", free_port(), dir.path(), &flow);
        let line = text
            .lines()
            .position(|l| l.contains(&format!(".{key} =")))
            .unwrap()
            + 1;
        let path = dir.path().join("agent.conf");
        std::fs::write(&path, &text).unwrap();
        let (code, _, err) = run(&["check", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{key}: {err}");
        let at = format!("agent.conf:{line}: a1.sources.r1.interceptors.{key}:");
        assert!(
            err.contains(&at) && err.contains(names),
            "{key}: want {at} and {names:?} in {err}"
        );
    }
}
