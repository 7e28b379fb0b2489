//! The http source side by side with Java Flume 1.11.0's HTTPSource (Jetty 9.4, Gson
//! 2.9.1): one corpus of good and bad requests (bodies, charsets, edge cases of the JSON
//! handler, other methods) is sent to both agents, configured with the same lines; the
//! status of every request and the events delivered (file_roll, HEADER_AND_TEXT, header
//! order normalised) must be equal, except for the intended differences listed in `CASES`
//! with their reasons (docs/differences.md#http). Error bodies are not compared: Jetty
//! writes an HTML page, flume-fast one line of text with Flume's message.

mod common;
mod java_peer;

use common::*;
use java_peer::{flume_lib, JavaProc};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

fn conf(name: &str, port: u16, out: &Path, extra: &str) -> String {
    std::fs::create_dir_all(out).unwrap();
    format!(
        "{name}.sources = r1
{name}.channels = c1
{name}.sinks = k1
{name}.sources.r1.type = http
{name}.sources.r1.bind = 127.0.0.1
{name}.sources.r1.port = {port}
{name}.sources.r1.channels = c1
{name}.channels.c1.type = memory
{name}.channels.c1.capacity = 10000
{name}.channels.c1.transactionCapacity = 1000
{name}.sinks.k1.type = file_roll
{name}.sinks.k1.channel = c1
{name}.sinks.k1.sink.directory = {}
{name}.sinks.k1.sink.rollInterval = 0
{name}.sinks.k1.sink.serializer = HEADER_AND_TEXT
{}
",
        out.display(),
        extra.replace("AGENT", name)
    )
}

/// One request of the corpus: method, Content-Type, body; and the statuses expected
/// from Java and from flume-fast when they differ on purpose (with why).
struct Case {
    name: &'static str,
    method: &'static str,
    target: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    differs: Option<(u16, u16, &'static str)>,
}

fn case(name: &'static str, method: &'static str, ct: Option<&'static str>, body: &[u8]) -> Case {
    Case {
        name,
        method,
        target: "/flume",
        content_type: ct,
        body: body.to_vec(),
        differs: None,
    }
}

const JSON: Option<&str> = Some("application/json");

fn utf16le(s: &str) -> Vec<u8> {
    [0xFF, 0xFE]
        .into_iter()
        .chain(s.encode_utf16().flat_map(u16::to_le_bytes))
        .collect()
}

fn utf32be(s: &str) -> Vec<u8> {
    s.chars().flat_map(|c| (c as u32).to_be_bytes()).collect()
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let mut v = vec![
        case("batch", "POST", JSON, br#"[{"headers":{"a":"1","b":"two words"},"body":"first"},{"body":"second"}]"#),
        case("escapes and unicode", "POST", JSON, "[{\"headers\":{\"k\\u00e9\":\"v\\t\"},\"body\":\"caf\\u00e9 \\\"q\\\" \u{1F600} \\/\"}]".as_bytes()),
        case("scalars as strings", "POST", JSON, br#"[{"headers":{"n":1.50,"t":true,"e":-2e3},"body":12}]"#),
        case("empty array", "POST", JSON, b"[]"),
        case("empty object", "POST", JSON, b"[{}]"),
        case("null body and headers", "POST", JSON, br#"[{"headers":null,"body":null}]"#),
        case("unknown fields", "POST", JSON, br#"[{"body":"x-extra","other":[1,{"a":2}]}]"#),
        case("whitespace around", "POST", JSON, b" \n[ {\"body\" : \"spaced\"} ]\n "),
        case("no content type", "POST", None, br#"[{"body":"no-ct"}]"#),
        case("charset utf-16", "POST", Some("application/json; charset=UTF-16"), &utf16le(r#"[{"headers":{"h":"é"},"body":"sixteen é"}]"#)),
        case("charset utf-32", "POST", Some("application/json;charset=utf-32"), &utf32be(r#"[{"body":"thirty-two é"}]"#)),
        case("malformed utf-8", "POST", JSON, b"[{\"body\":\"bad \xff\xfe byte\"}]"),
        case("object", "POST", JSON, b"{}"),
        case("array of numbers", "POST", JSON, b"[1]"),
        case("truncated", "POST", JSON, br#"[{"body":"#),
        case("body object", "POST", JSON, br#"[{"body":{"a":1}}]"#),
        case("header array", "POST", JSON, br#"[{"headers":{"a":[1]},"body":"x"}]"#),
        case("duplicate header", "POST", JSON, br#"[{"headers":{"a":"1","a":"2"},"body":"x"}]"#),
        case("empty body", "POST", JSON, b""),
        case("null", "POST", JSON, b"null"),
        case("null event", "POST", JSON, b"[null]"),
        case("charset latin-1", "POST", Some("application/json; charset=ISO-8859-1"), b"[]"),
        case("charset unknown", "POST", Some("application/json; charset=nope"), b"[]"),
        case("get with body", "GET", JSON, br#"[{"body":"by-get"}]"#),
        case("get", "GET", None, b""),
        case("head", "HEAD", None, b""),
        case("put", "PUT", JSON, b"[]"),
        case("delete", "DELETE", None, b""),
        case("options", "OPTIONS", None, b""),
        case("trace", "TRACE", None, b""),
        case("patch", "PATCH", JSON, b"[]"),
        case("text after the array", "POST", JSON, b"[] x"),
        case("second array", "POST", JSON, b"[] []"),
        case("extra bracket", "POST", JSON, b"[]]"),
        case("utf-8 bom", "POST", JSON, b"\xef\xbb\xbf[]"),
    ];
    let lenient = |name, body: &[u8], why| Case {
        differs: Some((200, 400, why)),
        ..case(name, "POST", JSON, body)
    };
    v.push(lenient("single quotes", br#"[{'body':'single'}]"#, "Gson reads JSON leniently; flume-fast strictly"));
    v.push(lenient("unquoted", br#"[{body:unquoted}]"#, "Gson reads JSON leniently; flume-fast strictly"));
    v.push(case("repeated body field", "POST", JSON, br#"[{"body":"a","body":"dupbody"}]"#));
    v.push(case("null header value", "POST", JSON, br#"[{"headers":{"z":null},"body":"nullhdr"}]"#));
    v.push(case("lone surrogate", "POST", JSON, br#"[{"body":"s\ud800"}]"#));
    v
}

/// Sends one case on its own connection; the status.
fn send(port: u16, c: &Case) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n",
        c.method, c.target
    );
    if let Some(ct) = c.content_type {
        head += &format!("Content-Type: {ct}\r\n");
    }
    if !c.body.is_empty() || c.method == "POST" || c.method == "PUT" {
        head += &format!("Content-Length: {}\r\n", c.body.len());
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&c.body).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status for {}: {text:?}", c.name))
}

/// Every line of the output files, bytes outside printable ASCII escaped, headers sorted.
fn events(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        for line in bytes.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            out.push(normalise(&line.escape_ascii().to_string()));
        }
    }
    out.sort();
    out
}

fn normalise(line: &str) -> String {
    let Some(rest) = line.strip_prefix('{') else {
        return line.to_string();
    };
    let (heads, body) = rest
        .split_once("} ")
        .unwrap_or((rest.trim_end_matches('}'), ""));
    let mut pairs: Vec<&str> = heads.split(", ").filter(|p| !p.is_empty()).collect();
    pairs.sort();
    format!("{{{}}} {body}", pairs.join(", "))
}

/// Sends `cases` to a Java agent and a flume-fast agent whose source has the `extra`
/// lines; checks the statuses; returns (Java's, flume-fast's) events once flume-fast has
/// `fast_want` and Java `java_want`. `None` without Java.
fn compare(
    extra: &str,
    cases: &[Case],
    fast_want: usize,
    java_want: usize,
) -> Option<(Vec<String>, Vec<String>)> {
    let lib = flume_lib()?;
    let work = tempfile::tempdir().unwrap();
    let (jport, fport) = (free_port(), free_port());
    let jout = work.path().join("java");
    let _java = JavaProc::agent(&lib, work.path(), "j1", &conf("j1", jport, &jout, extra));
    wait_until(
        Duration::from_secs(120),
        "Java's HTTP source listening",
        || TcpStream::connect(("127.0.0.1", jport)).ok(),
    );
    let fout = work.path().join("fast");
    let mut fast = Agent::start(&conf("a1", fport, &fout, extra), &["--cores", "1"]);
    let mut mismatches = Vec::new();
    for c in cases {
        let (j, f) = (send(jport, c), send(fport, c));
        let want = c.differs.map_or((j, j), |(wj, wf, _)| (wj, wf));
        if (j, f) != want {
            mismatches.push(format!(
                "{}: Java {j}, flume-fast {f} (expected {want:?})",
                c.name
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "statuses differ:\n{}",
        mismatches.join("\n")
    );
    let settle = |dir: &Path, want: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut e = events(dir);
        while e.len() < want && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            e = events(dir);
        }
        e
    };
    let fast_events = settle(&fout, fast_want);
    assert_eq!(
        fast_events.len(),
        fast_want,
        "flume-fast's events: {fast_events:#?}"
    );
    let java_events = settle(&jout, java_want);
    assert_eq!(
        java_events.len(),
        java_want,
        "Java's events: {java_events:#?}"
    );
    // A wrong extra event would show up by now.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(events(&fout), fast_events, "no more events");
    assert_eq!(events(&jout), java_events, "no more events");
    assert!(fast.stop().success());
    Some((java_events, fast_events))
}

#[test]
fn the_same_corpus_gets_the_same_statuses_and_events_from_java_flume() {
    let cases = cases();
    // The lenient cases deliver in Java only.
    let lenient = cases.iter().filter(|c| c.differs.is_some()).count();
    let Some((mut java_events, fast_events)) = compare("", &cases, 16, 16 + lenient) else {
        return;
    };
    java_events.retain(|l| !l.ends_with("} single") && !l.ends_with("} unquoted"));
    // Intended: a null header value is no header in flume-fast (its headers are strings;
    // Java carries the null, which HEADER_AND_TEXT prints as `null`).
    for l in &mut java_events {
        if l == "{z=null} nullhdr" {
            *l = "{} nullhdr".into();
        }
    }
    java_events.sort();
    assert_eq!(java_events, fast_events);
}

fn blob(name: &'static str, target: &'static str, ct: Option<&'static str>, body: &[u8]) -> Case {
    Case {
        target,
        ..case(name, "POST", ct, body)
    }
}

#[test]
fn blob_handlers_match_java_flume() {
    let form = Some("application/x-www-form-urlencoded");
    let cases = [
        blob(
            "query as headers",
            "/up?host=h1&tag=a+b%21&tag=second",
            Some("application/octet-stream"),
            b"raw \x00\x01 bytes",
        ),
        blob(
            "form body as headers",
            "/?host=hf&q=1",
            form,
            b"f1=v1&f2=%C3%A9",
        ),
        blob("missing parameter", "/?tag=x", None, b"no host"),
        blob("empty body", "/?host=h2", None, b""),
        Case {
            method: "GET",
            ..blob("get keeps a form body", "/?host=h3", form, b"k=v")
        },
    ];
    let extra = "AGENT.sources.r1.handler = org.apache.flume.source.http.BLOBHandler
AGENT.sources.r1.handler.mandatoryParameters = host";
    let Some((java, fast)) = compare(extra, &cases, 4, 4) else {
        return;
    };
    assert_eq!(java, fast);
    // Intended: Flume 1.11's BLOBHandler with no mandatoryParameters requires one empty
    // name, so it answers every request 500; flume-fast requires nothing.
    let unset = [Case {
        differs: Some((
            500,
            200,
            "Flume splits the empty default into one empty name",
        )),
        ..blob("default parameters", "/?a=1", None, b"x")
    }];
    let extra = "AGENT.sources.r1.handler = org.apache.flume.source.http.BLOBHandler";
    let Some((java, fast)) = compare(extra, &unset, 1, 0) else {
        return;
    };
    assert!(java.is_empty());
    assert_eq!(fast, ["{a=1} x"]);
}
