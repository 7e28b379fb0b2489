//! The two message patterns of Flume's `SyslogUtils` (RFC 5424, then RFC 3164), matched by
//! hand over bytes with the captures Java's backtracking `Matcher.matches()` would give.
//! Java's `\d`, `\s` and `\w` are ASCII classes here, and `.` refuses the line
//! terminators `\n`, `\r`, U+0085, U+2028 and U+2029, so one of those in the body means
//! no match. A proptest in `decode.rs` holds these functions to the `regex` crate
//! running the patterns themselves.

use std::ops::Range;

/// What a pattern captured, as ranges of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Captures {
    pub rfc5424: bool,
    pub priority: Range<usize>,
    /// RFC 5424's `(\d?)` is always present (maybe empty); RFC 3164's `(\d)?` may not be.
    pub version: Option<Range<usize>>,
    /// `None` for RFC 5424's `-`.
    pub timestamp: Option<Range<usize>>,
    /// `None` for RFC 5424's `-`.
    pub host: Option<Range<usize>>,
    pub body: Range<usize>,
}

fn digit(m: &[u8], i: usize) -> bool {
    m.get(i).is_some_and(u8::is_ascii_digit)
}

/// Java's `\s`: `[ \t\n\x0B\f\r]`.
fn space(m: &[u8], i: usize) -> bool {
    matches!(m.get(i), Some(b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r'))
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is(m: &[u8], i: usize, c: u8) -> bool {
    m.get(i) == Some(&c)
}

/// Whether `(.*)$` with `matches()` takes all of `body`: no line terminator in it.
pub(crate) fn no_line_terminator(body: &[u8]) -> bool {
    if memchr::memchr2(b'\n', b'\r', body).is_some() {
        return false;
    }
    // U+0085 is C2 85; U+2028/2029 are E2 80 A8/A9.
    let mut from = 0;
    while let Some(i) = memchr::memchr2(0xC2, 0xE2, &body[from..]) {
        let i = from + i;
        match body[i] {
            0xC2 if body.get(i + 1) == Some(&0x85) => return false,
            0xE2 if body.get(i + 1) == Some(&0x80)
                && matches!(body.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                return false
            }
            _ => {}
        }
        from = i + 1;
    }
    true
}

/// `<\d{1,3}>`: the end of the priority's digits.
fn priority(m: &[u8]) -> Option<usize> {
    if !is(m, 0, b'<') {
        return None;
    }
    let n = m[1..]
        .iter()
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if n == 0 || n > 3 || !is(m, 1 + n, b'>') {
        return None;
    }
    Some(1 + n)
}

/// The (version, separator) choices of `(\d?)\s?` / `(\d)?\s?` in the order a
/// backtracking matcher tries them: where each leaves the match, and the version.
fn version_choices(m: &[u8], p: usize) -> impl Iterator<Item = (usize, Option<Range<usize>>)> {
    let d = digit(m, p);
    let ds = d && space(m, p + 1);
    let s = space(m, p);
    [
        (ds, p + 2, Some(p..p + 1)),
        (d, p + 1, Some(p..p + 1)),
        (s, p + 1, None),
        (true, p, None),
    ]
    .into_iter()
    .filter(|c| c.0)
    .map(|c| (c.1, c.2))
}

/// Both patterns in Flume's order.
pub(crate) fn captures(m: &[u8]) -> Option<Captures> {
    rfc5424(m).or_else(|| rfc3164(m))
}

/// `SYSLOG_MSG_RFC5424_0`.
pub(crate) fn rfc5424(m: &[u8]) -> Option<Captures> {
    let pe = priority(m)?;
    for (q, version) in version_choices(m, pe + 1) {
        let version = Some(version.unwrap_or(pe + 1..pe + 1));
        if let Some((timestamp, host, body)) = rfc5424_rest(m, q) {
            return Some(Captures {
                rfc5424: true,
                priority: 1..pe,
                version,
                timestamp,
                host,
                body,
            });
        }
    }
    None
}

type Rest = (Option<Range<usize>>, Option<Range<usize>>, Range<usize>);

fn rfc5424_rest(m: &[u8], q: usize) -> Option<Rest> {
    let (timestamp, r) = if is(m, q, b'-') {
        (None, q + 1)
    } else {
        let end = rfc5424_stamp(m, q)?;
        (Some(q..end), end)
    };
    if !space(m, r) {
        return None;
    }
    let r = r + 1;
    let (host, r) = match m.get(r) {
        Some(&b) if word(b) => {
            let n = m[r..]
                .iter()
                .take_while(|&&c| word(c) || c == b'.' || c == b'@' || c == b'-')
                .count();
            (Some(r..r + n), r + n)
        }
        Some(b'-') => (None, r + 1),
        _ => return None,
    };
    if !space(m, r) || !no_line_terminator(&m[r + 1..]) {
        return None;
    }
    Some((timestamp, host, r + 1..m.len()))
}

/// `\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[+-]\d{2}:\d{2}|Z)?` followed by
/// `\s` (the only way the pattern goes on): where the stamp ends.
fn rfc5424_stamp(m: &[u8], q: usize) -> Option<usize> {
    const SHAPE: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";
    let s = m.get(q..q + 19)?;
    let fits = SHAPE.iter().zip(s).all(|(&want, &c)| {
        if want == b'd' {
            c.is_ascii_digit()
        } else {
            c == want
        }
    });
    if !fits {
        return None;
    }
    let mut r = q + 19;
    if is(m, r, b'.') {
        let n = m[r + 1..]
            .iter()
            .take(7)
            .take_while(|c| c.is_ascii_digit())
            .count();
        // With 0 or more than 6 digits, no shorter choice can be followed by `\s`.
        if n == 0 || n > 6 {
            return None;
        }
        r += 1 + n;
    }
    if is(m, r, b'Z') {
        r += 1;
    } else if matches!(m.get(r), Some(b'+' | b'-'))
        && digit(m, r + 1)
        && digit(m, r + 2)
        && is(m, r + 3, b':')
        && digit(m, r + 4)
        && digit(m, r + 5)
    {
        r += 6;
    }
    Some(r)
}

/// `SYSLOG_MSG_RFC3164_0`.
pub(crate) fn rfc3164(m: &[u8]) -> Option<Captures> {
    let pe = priority(m)?;
    for (q, version) in version_choices(m, pe + 1) {
        if let Some((stamp, host, body)) = rfc3164_rest(m, q) {
            return Some(Captures {
                rfc5424: false,
                priority: 1..pe,
                version,
                timestamp: Some(stamp),
                host: Some(host),
                body,
            });
        }
    }
    None
}

fn rfc3164_rest(m: &[u8], q: usize) -> Option<(Range<usize>, Range<usize>, Range<usize>)> {
    let mon = m.get(q..q + 3)?;
    if !(mon[0].is_ascii_uppercase() && mon[1].is_ascii_lowercase() && mon[2].is_ascii_lowercase())
    {
        return None;
    }
    let mut r = q + 3;
    // `\s{1,2}\d{1,2}\s`: greedy, and nothing shorter can help since the classes differ.
    let ws = (0..2).take_while(|&i| space(m, r + i)).count();
    if ws == 0 {
        return None;
    }
    r += ws;
    let ds = (0..2).take_while(|&i| digit(m, r + i)).count();
    if ds == 0 {
        return None;
    }
    r += ds;
    if !space(m, r) {
        return None;
    }
    r += 1;
    let t = m.get(r..r + 8)?;
    let time_ok = t.iter().zip(b"dd:dd:dd").all(|(&c, &want)| {
        if want == b'd' {
            c.is_ascii_digit()
        } else {
            c == want
        }
    });
    if !time_ok {
        return None;
    }
    r += 8;
    let stamp = q..r;
    if !space(m, r) || !m.get(r + 1).is_some_and(|&b| word(b)) {
        return None;
    }
    let h = r + 1;
    let n = m[h..]
        .iter()
        .take_while(|&&c| word(c) || c == b'.' || c == b'@' || c == b'-')
        .count();
    let r = h + n;
    if !space(m, r) || !no_line_terminator(&m[r + 1..]) {
        return None;
    }
    Some((stamp, h..r, r + 1..m.len()))
}
