//! The syslog decoders side by side with Java Flume 1.11.0's own classes: a corpus of
//! RFC 3164 and RFC 5424 messages (valid, odd and broken) goes through `SyslogUtils` (TCP
//! streams and UDP datagrams, under several keepFields, eventSizes and clocks) and
//! `SyslogParser` (multiport_syslogtcp) in one JVM driven by tests/java_peer/SyslogHarness.java,
//! and through `Decoder`/`LineParser`; every event (body bytes and headers) must be equal.
//! Both sides run in America/New_York with the clock pinned.
//!
//! The intended differences (docs/differences.md), applied to Java's output before the
//! comparison:
//! - Flume's `SyslogUtils` keeps the `priority` and `version` of the message before when
//!   the next message does not set them (an Invalid one, or one no pattern matches);
//!   flume-fast gives each message only its own. The harness clears those two fields before
//!   each event.
//! - Where Flume throws an exception it does not turn into an event, dropping the message
//!   (a UDP datagram without priority digits; for multiport_syslogtcp an empty line, an RFC
//!   5424 date Joda refuses, fraction digits up to the end of the stamp), flume-fast makes
//!   an `Invalid` event of it: the raw bytes, `Facility`/`Severity` 0 for `SyslogUtils`.
//! - An RFC 5424 `-` timestamp in multiport_syslogtcp is "now": Java's is compared by being
//!   within the test's run.

mod java_peer;

use flume_fast::event::Event;
use flume_fast::source::syslog::decode::{Clock, Decoder, Keep, LineParser};
use java_peer::flume_lib;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;

const TZ: &str = "America/New_York";
/// 2025-12-08T00:00:00Z, and 2026-01-01T02:00:00Z (still 2025 in New York).
const CLOCKS: [i64; 2] = [1_765_152_000_000, 1_767_232_800_000];
const KEEPS: [&str; 5] = [
    "none",
    "all",
    "priority_hostname",
    "timestamp_version",
    "hostname",
];
const SIZES: [usize; 3] = [2500, 64, 10];

fn corpus() -> Vec<Vec<u8>> {
    let text: &[&str] = &[
        // RFC 5424
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8",
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] An application event log entry...",
        "<165>1 2003-10-11T22:14:15Z host app - - [ex@1 a=\"b\\\"c\\]d\"] escaped",
        "<13>1 2024-07-15T12:00:00+02:00 host app - - offset",
        "<13>1 2024-07-15T12:00:00-05:30 host app - - negative offset",
        "<13>1 2024-07-15T12:00:00.1+02:00 host app - - one digit fraction and offset",
        "<13>1 2024-07-15T12:00:00.12Z host app - - two digits",
        "<13>1 2024-07-15T12:00:00.123456Z host app - - micros",
        "<13>1 2024-07-15T12:00:00.1234567Z host app - - seven digits",
        "<13>1 2024-07-15T12:00:00 host app - - no zone",
        "<13>1 2024-07-15T12:00:00+24:00 host app - - bad offset hours",
        "<13>1 2024-07-15T12:00:00+01:60 host app - - bad offset minutes",
        "<13>1 2024-02-30T12:00:00Z host app - - Feb 30",
        "<13>1 2024-02-29T12:00:00Z host app - - leap day",
        "<13>1 2023-02-29T12:00:00Z host app - - not a leap year",
        "<13>1 2024-13-45T25:61:61Z host app - - everything out of range",
        "<13>1 2024-00-00T00:00:00Z host app - - zeros",
        "<13>1 2024-03-10T02:30:00 host app - - in the spring gap",
        "<13>1 2024-11-03T01:30:00 host app - - in the autumn fold",
        "<13>1 - host app - - nil timestamp",
        "<13>1 2024-07-15T12:00:00Z - app - - nil host",
        "<13>1 - - app - - both nil",
        "<13>2024-07-15T12:00:00Z host no version",
        "<13> 2024-07-15T12:00:00Z host space no version",
        "<13>12024-07-15T12:00:00Z host version glued",
        "<13>1 2024-07-15T12:00:00Z host ",
        "<13>1 2024-07-15T12:00:00Z host",
        "<13>1 2024-07-15T12:00:00Z -host x",
        "<13>1 2024-07-15T12:00:00Z h@st.ex-ample_1 x",
        "<13>1\t2024-07-15T12:00:00Z\thost\ttabs",
        "<0>1 2024-07-15T12:00:00Z host prio zero",
        "<191>1 2024-07-15T12:00:00Z host prio 191",
        "<192>1 2024-07-15T12:00:00Z host prio 192",
        "<999>1 2024-07-15T12:00:00Z host prio 999",
        "<013>1 2024-07-15T12:00:00Z host leading zero",
        "<1000>1 2024-07-15T12:00:00Z host four digits",
        "<>1 2024-07-15T12:00:00Z host empty prio",
        "<1a>1 2024-07-15T12:00:00Z host letter in prio",
        "<13",
        "<",
        "13>1 2024-07-15T12:00:00Z host no open bracket",
        "<13>",
        "<13>x",
        "<13>1 2024-07-15T12:00:00Z host body with \u{0085} next line",
        "<13>1 2024-07-15T12:00:00Z host body with \u{2028} line separator",
        "<13>1 2024-07-15T12:00:00Z host body with \u{2029} paragraph separator",
        "<13>1 2024-07-15T12:00:00Z host body with \r carriage return",
        "<13>1 2024-07-15T12:00:00Z host body ends with CR\r",
        "<13>1 2024-07-15T12:00:00Z host \u{FEFF}BOM then text",
        "<13>1 2024-07-15T12:00:00Z host unicode ünïcödé 日本 🎉",
        "<13>1 9999-12-31T23:59:59Z host year 9999",
        // RFC 3164
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        "<13>Jan  1 00:00:00 host single digit day, two spaces",
        "<13>Jan 1 00:00:00 host single digit day, one space",
        "<13>Jan 01 00:00:00 host zero padded day",
        "<13>Feb 29 12:00:00 host leap day",
        "<13>Feb 30 12:00:00 host Feb 30",
        "<13>Dec 31 23:59:59 host new year's eve",
        "<13>Jan  1 00:00:01 host new year",
        "<13>Nov 30 12:00:00 host a week ago",
        "<13>Jan 15 12:00:00 host next month",
        "<13>Feb 15 12:00:00 host in two months",
        "<13>Mar 10 02:30:00 host in the spring gap",
        "<13>Nov  3 01:30:00 host in the autumn fold",
        "<13>Foo 11 22:14:15 host unknown month",
        "<13>May 99 99:99:99 host everything out of range",
        "<13>Jan \t1 00:00:00 host tab in the date",
        "<13>Jan\t1 00:00:00 host tab instead of space",
        "<13>1 Oct 11 22:14:15 host with version",
        "<13>1Oct 11 22:14:15 host version glued",
        "<13>Oct 11 22:14:15 host",
        "<13>Oct 11 22:14:15 host ",
        "<13>Oct 11 22:14:15 -host body",
        "<13>OCT 11 22:14:15 host upper case month",
        "<13>Oct 11 22:14:15 host body\r",
        // neither
        "<13>just a message",
        "<13>1 2024-07-15 host date only",
        "no priority at all",
        "<13>Oct 11 22:14:15",
        "-",
        " <13>leading space",
    ];
    let mut out: Vec<Vec<u8>> = text.iter().map(|s| s.as_bytes().to_vec()).collect();
    let raw: &[&[u8]] = &[
        b"<13>1 2024-07-15T12:00:00Z host bad \xff\xfe utf8",
        b"<13>1 2024-07-15T12:00:00Z host surrogate \xed\xa0\x80 x",
        b"<13>1 2024-07-15T12:00:00Z host truncated \xe2\x82",
        b"<13>Oct 11 22:14:15 host latin1 caf\xe9",
        b"<13>Oct 11 22:14:15 host overlong \xc0\xaf and \xf4\x90\x80\x80",
        b"<13>1 2024-07-15T12:00:00Z host \xef\xbb\xbf\xffbom then bad",
        b"<13\xff>x",
        b"\xef\xbb\xbf<13>1 2024-07-15T12:00:00Z host BOM before the priority",
        b"<13>1 2024-07-15T12:00:00Z host nul \x00 inside",
    ];
    out.extend(raw.iter().map(|b| b.to_vec()));
    out
}

/// TCP streams: each corpus entry alone, several in one stream, and framing oddities.
fn streams(corpus: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut s: Vec<Vec<u8>> = corpus
        .iter()
        .map(|m| {
            let mut v = m.clone();
            v.push(b'\n');
            v
        })
        .collect();
    s.push(corpus.join(&b'\n'));
    s.push(b"\n\n\n<13>1 - host app - - after blank lines\n\n".to_vec());
    s.push(b"\n".to_vec());
    s.push(b"<13>1 - host app - - crlf\r\n<14>Oct 11 22:14:15 host crlf too\r\n".to_vec());
    s.push(b"<12\nstill the same event\n<13>next\n".to_vec());
    s.push(b"<13>1 - host app - - no newline at the end".to_vec());
    s.push(
        b"<13>1 2024-07-15T12:00:00Z host exactly-sixty-four-bytes-long-message-xx\n<13>x\n"
            .to_vec(),
    );
    s
}

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        write!(s, "{x:02x}").unwrap();
    }
    s
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// An event as the harness prints it.
fn line(e: &Event) -> String {
    let mut h: Vec<(String, String)> = e
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), hex(v.as_bytes())))
        .collect();
    h.sort();
    let h: Vec<String> = h.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("E {} {}", hex(&e.body), h.join(","))
}

/// A harness line made readable for a failure message.
fn readable(l: &str) -> String {
    let mut parts = l.splitn(3, ' ');
    let (tag, body, heads) = (parts.next(), parts.next(), parts.next());
    if tag != Some("E") {
        return l.to_string();
    }
    let heads: Vec<String> = heads
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            format!("{k}={}", String::from_utf8_lossy(&unhex(v)))
        })
        .collect();
    format!(
        "{:?} {{{}}}",
        String::from_utf8_lossy(&unhex(body.unwrap_or("-"))),
        heads.join(", ")
    )
}

struct Case {
    command: String,
    /// What flume-fast gives.
    rust: Vec<String>,
    /// Whether Java's `X` (an exception it drops the message on) may be an `Invalid`
    /// event here.
    dropped_ok: bool,
    /// The multiport `-` stamp: Java's "now" is compared by range.
    now_stamp: bool,
}

fn tz() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(TZ).unwrap()
}

fn utils_cases(corpus: &[Vec<u8>], cases: &mut Vec<Case>) {
    let streams = streams(corpus);
    for keep in KEEPS {
        for size in SIZES {
            for clock in CLOCKS {
                let k = Keep::from_flume(&keep.replace('_', " "));
                for s in &streams {
                    let mut d = Decoder::with_clock(size, k, Clock::Fixed(clock), tz());
                    let mut rust = Vec::new();
                    let mut at = 0;
                    while at < s.len() {
                        let (n, e) = d.feed(&s[at..]);
                        at += n;
                        rust.extend(e.as_ref().map(line));
                    }
                    // The same stream a byte at a time, and from a shared buffer.
                    let mut d = Decoder::with_clock(size, k, Clock::Fixed(clock), tz());
                    let mut bytewise = Vec::new();
                    for b in s.chunks(1) {
                        let (n, e) = d.feed(b);
                        assert_eq!(n, 1);
                        bytewise.extend(e.as_ref().map(line));
                    }
                    assert_eq!(
                        bytewise,
                        rust,
                        "byte-at-a-time feed of {:?}",
                        String::from_utf8_lossy(s)
                    );
                    let buf = Rc::new(bytes::Bytes::from(s.clone()));
                    let mut d = Decoder::with_clock(size, k, Clock::Fixed(clock), tz());
                    let mut shared = Vec::new();
                    let mut at = 0;
                    while at < buf.len() {
                        let (n, e) = d.feed_shared(&buf, at);
                        at += n;
                        shared.extend(e.as_ref().map(line));
                    }
                    assert_eq!(
                        shared,
                        rust,
                        "feed_shared of {:?}",
                        String::from_utf8_lossy(s)
                    );
                    cases.push(Case {
                        command: format!("utils {size} {keep} tcp {clock} {}", hex(s)),
                        rust,
                        dropped_ok: false,
                        now_stamp: false,
                    });
                }
                for m in corpus {
                    let mut d = Decoder::with_clock(size, k, Clock::Fixed(clock), tz());
                    let e = line(&d.datagram(m));
                    cases.push(Case {
                        command: format!("utils {size} {keep} udp {clock} {}", hex(m)),
                        rust: vec![e.clone()],
                        dropped_ok: true,
                        now_stamp: false,
                    });
                }
            }
        }
    }
}

fn parser_cases(corpus: &[Vec<u8>], cases: &mut Vec<Case>) {
    let mut lines: Vec<Vec<u8>> = corpus.to_vec();
    lines.extend(
        [
            "",
            "<13>1 2024-07-15T12:00:00.123 host fraction to the end of the stamp",
            "<13>1 2024-07-15T12:00:00. host empty fraction",
            "<13>1 2024-07-15T12:00:00.5X host fraction then junk zone",
            "<13>1 2024-07-15T12:00:00+05 host short offset",
            "<13>1 2024-7-15T12:00:00Z host one-digit month",
            "<+13>1 2024-07-15T12:00:00Z host signed priority",
            "<-1>1 2024-07-15T12:00:00Z host negative priority",
            "<13>1 2024-07-15T12:00:00.12345678901234567890Z host long fraction",
            "<13>Jan  5 10:00:00  two spaces before host",
            "<13>1 - host",
            "<13>1 -",
            "<13>Jan 5 10:00:00 host stamp one char short",
            "<13>January 5 10:0 host long month name",
            "<123456>x",
            "<13>1 2024-07-15T12:00:00Zhost glued",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec()),
    );
    for keep in KEEPS {
        for clock in CLOCKS {
            let k = Keep::from_flume(&keep.replace('_', " "));
            let p = LineParser::with_clock(k, Clock::Fixed(clock), tz());
            for (charset, enc) in [
                ("UTF-8", encoding_rs::UTF_8),
                ("ISO-8859-1", encoding_rs::WINDOWS_1252),
            ] {
                for l in &lines {
                    if enc != encoding_rs::UTF_8 && l.iter().any(|&b| (0x80..0xA0).contains(&b)) {
                        // windows-1252 (WHATWG's ISO-8859-1) and Java's ISO-8859-1 differ there.
                        continue;
                    }
                    let e = line(&p.parse(l, enc));
                    cases.push(Case {
                        command: format!("parser {keep} {charset} {clock} {}", hex(l)),
                        rust: vec![e.clone()],
                        dropped_ok: true,
                        now_stamp: l.starts_with(b"<13>1 - ") || l.starts_with(b"<13>1 -"),
                    });
                }
            }
        }
    }
}

/// Java's UTF-8 String round trip on random bytes, against `java_utf8` (through the
/// body of a message, the only way it shows).
fn utf8_cases(cases: &mut Vec<Case>) {
    let mut rng = fastrand::Rng::with_seed(7);
    const BYTES: &[u8] = &[
        0x41, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee,
        0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xff,
    ];
    for _ in 0..2000 {
        let n = rng.usize(1..8);
        let tail: Vec<u8> = (0..n).map(|_| BYTES[rng.usize(..BYTES.len())]).collect();
        let mut m = b"<13>1 2024-07-15T12:00:00Z host ".to_vec();
        m.extend_from_slice(&tail);
        let mut d = Decoder::with_clock(2500, Keep::default(), Clock::Fixed(CLOCKS[0]), tz());
        let e = line(&d.datagram(&m));
        cases.push(Case {
            command: format!("utils 2500 none udp {} {}", CLOCKS[0], hex(&m)),
            rust: vec![e],
            dropped_ok: false,
            now_stamp: false,
        });
    }
}

fn run_java(lib: &Path, cases: &[Case]) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java_peer/SyslogHarness.java");
    let cp = format!("{}/*", lib.display());
    let status = Command::new("javac")
        .args(["-nowarn", "-d"])
        .arg(dir.path())
        .args(["-cp", &cp])
        .arg(&src)
        .status()
        .expect("javac");
    assert!(status.success(), "javac failed");
    let mut child = Command::new("java")
        .arg(format!("-Duser.timezone={TZ}"))
        .args([
            "-Dfile.encoding=UTF-8",
            "-Duser.language=en",
            "-Duser.country=US",
        ])
        .arg("-cp")
        .arg(format!("{}:{cp}", dir.path().display()))
        .arg("SyslogHarness")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("java");
    let mut input = String::new();
    for c in cases {
        input.push_str(&c.command);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "the Java harness failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut blocks = vec![Vec::new()];
    for l in text.lines() {
        if l == "END" {
            blocks.push(Vec::new());
        } else {
            blocks.last_mut().unwrap().push(l.to_string());
        }
    }
    blocks.pop();
    assert_eq!(blocks.len(), cases.len(), "one answer per command");
    blocks
}

/// `l` with its `timestamp` header replaced.
fn with_timestamp(l: &str, ts: &str) -> String {
    let mut parts: Vec<String> = l.splitn(3, ' ').map(str::to_string).collect();
    let heads: Vec<String> = parts[2]
        .split(',')
        .map(|p| match p.split_once('=') {
            Some(("timestamp", _)) => format!("timestamp={}", hex(ts.as_bytes())),
            _ => p.to_string(),
        })
        .collect();
    parts[2] = heads.join(",");
    parts.join(" ")
}

fn timestamp_of(l: &str) -> Option<i64> {
    let heads = l.splitn(3, ' ').nth(2)?;
    heads.split(',').find_map(|p| {
        let v = p.strip_prefix("timestamp=")?;
        String::from_utf8(unhex(v)).ok()?.parse().ok()
    })
}

#[test]
fn syslog_events_equal_java_flume() {
    let Some(lib) = flume_lib() else { return };
    let corpus = corpus();
    let mut cases = Vec::new();
    utils_cases(&corpus, &mut cases);
    parser_cases(&corpus, &mut cases);
    utf8_cases(&mut cases);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let java = run_java(&lib, &cases);
    let ended = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut bad = Vec::new();
    let mut events = 0;
    for (case, java) in cases.iter().zip(java) {
        let java: Vec<String> = java
            .into_iter()
            .map(|l| {
                let invalid = format!("flume.syslog.status={}", hex(b"Invalid"));
                match case.rust.first() {
                    Some(r) if case.dropped_ok && l.starts_with("X ") && r.contains(&invalid) => {
                        r.clone()
                    }
                    _ => l,
                }
            })
            .map(|l| {
                if !case.now_stamp {
                    return l;
                }
                match timestamp_of(&l) {
                    Some(t) if (started..=ended).contains(&t) => {
                        let rust = case.rust.first().and_then(|r| timestamp_of(r));
                        with_timestamp(&l, &rust.unwrap_or(0).to_string())
                    }
                    _ => l,
                }
            })
            .collect();
        events += java.len();
        if java != case.rust {
            let at = java
                .iter()
                .zip(&case.rust)
                .take_while(|(j, r)| j == r)
                .count();
            let input = unhex(case.command.rsplit(' ').next().unwrap());
            bad.push(format!(
                "{} {:?}\n  event {at}: java {:?} ({} events)\n            rust {:?} ({} events)",
                case.command
                    .split(' ')
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" "),
                String::from_utf8_lossy(&input),
                java.get(at).map(|l| readable(l)),
                java.len(),
                case.rust.get(at).map(|l| readable(l)),
                case.rust.len(),
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} cases differ ({} events); the first:\n{}",
        bad.len(),
        cases.len(),
        events,
        bad.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!("{} cases, {events} events equal", cases.len());
}
