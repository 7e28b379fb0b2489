//! The decoder's tricky rules, one by one, and the hand matcher held to Flume's patterns.

use super::*;
use crate::source::syslog::rfc_match;
use proptest::prelude::*;

const NOW: i64 = 1_765_152_000_000; // 2025-12-08T00:00:00Z

fn decoder(size: usize, keep: &str) -> Decoder {
    Decoder::with_clock(
        size,
        Keep::from_flume(keep),
        Clock::Fixed(NOW),
        TimeZone::UTC,
    )
}

fn all(d: &mut Decoder, input: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let (n, e) = d.feed(&input[at..]);
        at += n;
        out.extend(e);
    }
    out
}

fn head<'a>(e: &'a Event, k: &str) -> Option<&'a str> {
    e.headers.get(k)
}

#[test]
fn rfc5424_headers_and_body() {
    let mut d = decoder(2500, "none");
    let e = all(
        &mut d,
        b"<165>1 2003-10-11T22:14:15.003Z host.ex app - - hello\n",
    );
    assert_eq!(e.len(), 1);
    let e = &e[0];
    assert_eq!(&e.body[..], b"app - - hello");
    assert_eq!(head(e, "Facility"), Some("20"));
    assert_eq!(head(e, "Severity"), Some("5"));
    assert_eq!(head(e, "priority"), Some("165"));
    assert_eq!(head(e, "version"), Some("1"));
    assert_eq!(head(e, "host"), Some("host.ex"));
    // A fraction means the wall time is read in the local zone (UTC here), zone ignored.
    assert_eq!(head(e, "timestamp"), Some("1065910455003"));
    assert_eq!(head(e, STATUS), None);
}

#[test]
fn keep_fields_prepend_in_flumes_order() {
    let line = b"<13>1 - - app msg\n";
    let e = &all(
        &mut decoder(2500, "priority version timestamp hostname"),
        line,
    )[0];
    assert_eq!(&e.body[..], b"<13>1 null null app msg");
    let e = &all(&mut decoder(2500, "all"), line)[0];
    assert_eq!(&e.body[..], b"<13>1 - - app msg");
    let e = &all(&mut decoder(2500, "hostname"), b"<13>Oct 11 22:14:15 h x\n")[0];
    assert_eq!(&e.body[..], b"h x");
}

#[test]
fn an_empty_body_keeps_the_whole_message() {
    let e = &all(&mut decoder(2500, "none"), b"<13>Oct 11 22:14:15 host \n")[0];
    assert_eq!(&e.body[..], b"<13>Oct 11 22:14:15 host ");
    assert_eq!(head(e, "host"), Some("host"));
}

#[test]
fn bad_priorities_are_invalid_and_the_line_is_data() {
    for (input, body) in [
        (&b"<>x\n"[..], &b"<>x"[..]),
        (b"<1a>x\n", b"<1a>x"),
        (b"<1000>x\n", b"<1000>x"),
        (b"plain\n", b"plain"),
        // A newline inside the priority is data: the event runs to the next one.
        (b"<12\nmore\n", b"<12\nmore"),
    ] {
        let e = all(&mut decoder(2500, "none"), input);
        assert_eq!(e.len(), 1, "{input:?}");
        assert_eq!(&e[0].body[..], body);
        assert_eq!(head(&e[0], STATUS), Some("Invalid"));
        assert_eq!(head(&e[0], "Facility"), Some("0"));
    }
    let e = &all(&mut decoder(2500, "none"), b"<999>x\n")[0];
    assert_eq!(head(e, "Facility"), Some("124"));
    assert_eq!(head(e, "Severity"), Some("7"));
    assert_eq!(head(e, STATUS), None);
}

#[test]
fn event_size_cuts_incomplete_and_the_rest_starts_over() {
    let mut d = decoder(10, "none");
    let e = all(&mut d, b"<13>abcdefghij\n");
    assert_eq!(e.len(), 2);
    assert_eq!(&e[0].body[..], b"<13>abcdef");
    assert_eq!(head(&e[0], STATUS), Some("Incomplete"));
    // The rest does not start with '<'.
    assert_eq!(&e[1].body[..], b"ghij");
    assert_eq!(head(&e[1], STATUS), Some("Invalid"));
    // A message of exactly eventSize bytes is Incomplete; its newline is skipped.
    let e = all(&mut decoder(10, "none"), b"<13>abcdef\n<13>x\n");
    assert_eq!(e.len(), 2);
    assert_eq!(head(&e[0], STATUS), Some("Incomplete"));
    assert_eq!(&e[1].body[..], b"<13>x");
}

#[test]
fn blank_lines_are_skipped_and_partial_messages_wait() {
    let mut d = decoder(2500, "none");
    assert!(all(&mut d, b"\n\n\n").is_empty());
    let (n, e) = d.feed(b"<13>Oct 11 22:1");
    assert_eq!((n, e.is_none()), (15, true));
    let (n, e) = d.feed(b"4:15 host hi\nnext");
    assert_eq!(n, 13);
    assert_eq!(&e.unwrap().body[..], b"hi");
}

#[test]
fn datagrams_end_at_the_first_newline_and_empty_ones_are_invalid() {
    let mut d = decoder(2500, "none");
    let e = d.datagram(b"<13>Oct 11 22:14:15 host hi\nignored");
    assert_eq!(&e.body[..], b"hi");
    let e = d.datagram(b"");
    assert_eq!(head(&e, STATUS), Some("Invalid"));
    let e = d.datagram(b"<");
    assert_eq!(head(&e, STATUS), Some("Invalid"));
    // Digits without '>' parse as a priority; no pattern matches.
    let e = d.datagram(b"<12");
    assert_eq!(head(&e, "Severity"), Some("4"));
    assert_eq!(head(&e, STATUS), None);
    let e = d.message(b"<13>Oct 11 22:14:15 host a\nb");
    assert_eq!(&e.body[..], b"<13>Oct 11 22:14:15 host a\nb");
}

#[test]
fn line_terminators_in_the_body_mean_no_match() {
    for body in [&b"a\rb"[..], "a\u{85}b".as_bytes(), "a\u{2028}".as_bytes()] {
        let mut m = b"<13>Oct 11 22:14:15 host ".to_vec();
        m.extend_from_slice(body);
        let e = decoder(2500, "none").datagram(&m);
        assert_eq!(&e.body[..], &m[..]);
        assert_eq!(head(&e, "host"), None);
    }
}

#[test]
fn bodies_are_java_string_round_trips() {
    let e = decoder(2500, "none").datagram(b"<13>Oct 11 22:14:15 host \xef\xbb\xbfa\xffb");
    assert_eq!(&e.body[..], "\u{FEFF}a\u{FFFD}b".as_bytes());
    // Kept whole, the bytes are as received.
    let e = decoder(2500, "all").datagram(b"<13>Oct 11 22:14:15 host a\xffb");
    assert_eq!(&e.body[..], b"<13>Oct 11 22:14:15 host a\xffb");
}

#[test]
fn shared_feeds_slice_the_buffer() {
    let buf = Rc::new(Bytes::from_static(
        b"<13>Oct 11 22:14:15 host one\n<13>Oct 11 22:14:15 host two\n",
    ));
    let mut d = decoder(2500, "none");
    let (n, e) = d.feed_shared(&buf, 0);
    let (_, e2) = d.feed_shared(&buf, n);
    let (e, e2) = (e.unwrap(), e2.unwrap());
    assert_eq!((&e.body[..], &e2.body[..]), (&b"one"[..], &b"two"[..]));
    assert!(e.body.shares_buffer_with(&e2.body));
}

#[test]
fn line_parser_reads_like_syslog_parser() {
    let p = LineParser::with_clock(Keep::default(), Clock::Fixed(NOW), TimeZone::UTC);
    let e = p.parse(
        b"<13>1 2024-07-15T12:00:00.5+01:00 host app msg",
        encoding_rs::UTF_8,
    );
    assert_eq!(head(&e, "Priority"), Some("13"));
    assert_eq!(head(&e, "Version"), Some("1"));
    assert_eq!(head(&e, "timestamp"), Some("1721041200500"));
    assert_eq!(&e.body[..], b"app msg");
    // RFC 3164 dates a month or more behind are put in 2001, as Flume does.
    let e = p.parse(b"<13>Jan  5 10:00:00 host body", encoding_rs::UTF_8);
    assert_eq!(head(&e, "timestamp"), Some("978688800000"));
    let e = p.parse(b"no bracket", encoding_rs::UTF_8);
    assert_eq!(head(&e, STATUS), Some("Invalid"));
    assert_eq!(&e.body[..], b"no bracket");
    let e = p.parse(b"<13>bad \xff", encoding_rs::UTF_8);
    assert_eq!(head(&e, STATUS), Some("Invalid"));
    assert_eq!(&e.body[..], b"<13>bad \xff");
    // Read up to a NUL, as MINA's getString.
    let e = p.parse(b"<13>1 - host a\x00b", encoding_rs::UTF_8);
    assert_eq!(&e.body[..], b"a");
}

/// Flume's two patterns with Java's meanings spelled out for the `regex` crate: ASCII
/// `\d \s \w`, `.` without Java's line terminators, `matches()` anchoring.
fn java_pattern(p: &str) -> regex::Regex {
    let p = p
        .replace(r"\<", "<")
        .replace(r"\>", ">")
        .replace(r"\d", "[0-9]")
        .replace(r"\s", r"[ \t\n\x0B\x0C\r]")
        .replace(r"\w", "[A-Za-z0-9_]")
        .replace(r"[[A-Za-z0-9_]]", "[A-Za-z0-9_]")
        .replace("(.*)$", r"([^\n\r\x{85}\x{2028}\x{2029}]*)");
    regex::Regex::new(&format!("^(?:{p})$")).unwrap()
}

const RFC5424: &str = concat!(
    r"(?:\<(\d{1,3})\>)",
    r"(?:(\d?)\s?)",
    r"(?:(\d{4}[-]\d{2}[-]\d{2}[T]\d{2}[:]\d{2}[:]\d{2}",
    r"(?:\.\d{1,6})?(?:[+-]\d{2}[:]\d{2}|Z)?)|-)",
    r"\s",
    r"(?:([\w][\w\d\.@\-]*)|-)",
    r"\s",
    r"(.*)$"
);

const RFC3164: &str = concat!(
    r"(?:\<(\d{1,3})\>)",
    r"(?:(\d)?\s?)",
    r"([A-Z][a-z][a-z]\s{1,2}\d{1,2}\s\d{2}[:]\d{2}[:]\d{2})",
    r"\s",
    r"([\w][\w\d\.@-]*)",
    r"\s(.*)$"
);

static PATTERNS: std::sync::LazyLock<(regex::Regex, regex::Regex)> =
    std::sync::LazyLock::new(|| (java_pattern(RFC5424), java_pattern(RFC3164)));

fn regex_captures(re: &regex::Regex, m: &str) -> Option<Vec<Option<std::ops::Range<usize>>>> {
    let c = re.captures(m)?;
    Some((1..=5).map(|i| c.get(i).map(|g| g.range())).collect())
}

fn hand_captures(c: Option<rfc_match::Captures>) -> Option<Vec<Option<std::ops::Range<usize>>>> {
    let c = c?;
    Some(vec![
        Some(c.priority),
        c.version,
        c.timestamp,
        c.host,
        Some(c.body),
    ])
}

/// Messages near the patterns: pieces of valid ones glued with odd characters.
fn near_syslog() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<13>".to_string()),
        Just("<".to_string()),
        Just(">".to_string()),
        Just("1".to_string()),
        Just("12".to_string()),
        Just(" ".to_string()),
        Just("  ".to_string()),
        Just("\t".to_string()),
        Just("\r".to_string()),
        Just("\u{85}".to_string()),
        Just("\u{2028}".to_string()),
        Just("-".to_string()),
        Just("2024-07-15T12:00:00".to_string()),
        Just(".".to_string()),
        Just("123".to_string()),
        Just("1234567".to_string()),
        Just("Z".to_string()),
        Just("+01:00".to_string()),
        Just("-05:3".to_string()),
        Just("Oct".to_string()),
        Just("OCT".to_string()),
        Just("1 ".to_string()),
        Just("22:14:15".to_string()),
        Just("host.ex@a-b_c".to_string()),
        Just("é".to_string()),
        Just("x".to_string()),
    ];
    prop::collection::vec(piece, 0..14).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn hand_matchers_equal_flumes_patterns(m in near_syslog()) {
        let (re5424, re3164) = &*PATTERNS;
        prop_assert_eq!(hand_captures(rfc_match::rfc5424(m.as_bytes())), regex_captures(re5424, &m));
        prop_assert_eq!(hand_captures(rfc_match::rfc3164(m.as_bytes())), regex_captures(re3164, &m));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_split_of_a_stream_gives_the_same_events(
        m in prop::collection::vec(near_syslog(), 1..5),
        cuts in prop::collection::vec(0usize..200, 0..6),
        size in 10usize..80,
    ) {
        let stream = m.join("\n").into_bytes();
        let whole = all(&mut decoder(size, "none"), &stream);
        let mut d = decoder(size, "none");
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
        cuts.sort();
        cuts.push(stream.len());
        let mut split = Vec::new();
        let mut at = 0;
        for cut in cuts {
            while at < cut {
                let (n, e) = d.feed(&stream[at..cut]);
                at += n;
                split.extend(e);
            }
        }
        prop_assert_eq!(split, whole);
    }
}
