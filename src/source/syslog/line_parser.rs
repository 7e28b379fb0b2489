//! multiport_syslogtcp's parser, as Flume's `SyslogParser` reads a line: its own rules
//! (not `SyslogUtils`' patterns), headers `Priority`, `Facility`, `Severity`, `Version`,
//! `timestamp`, `host`, and a body in the port's charset. Positions are counted in UTF-16
//! units where Java's `String` counts them (the `>` within 6, the 15 of an RFC 3164 stamp).
//!
//! Flume's quirks are kept: RFC 3164 dates are read in the year 2000 and then moved to this
//! year, or to 1999 or 2001 when more than a month away from now; a priority may carry a
//! sign; an unknown zone designator is ignored. Where Flume throws something other than an
//! `IllegalArgumentException` (an empty line, fraction digits up to the end, an RFC 5424
//! date Joda refuses) and so drops the line, this gives an `Invalid` event.

use super::decode::{Keep, STATUS};
use super::java_time::{civil_from_days, days_from_civil, Clock, DAY_MS};
use crate::event::{Event, Headers};
use bytes::Bytes;
use encoding_rs::{Encoding, UTF_8};
use jiff::tz::TimeZone;
use std::borrow::Cow;
use std::cell::RefCell;

/// multiport_syslogtcp's parser (Flume's `SyslogParser`): one line (without its `\n`) to
/// one event, its body decoded from the port's charset.
#[derive(Debug, Clone)]
pub struct LineParser {
    keep: Keep,
    clock: Clock,
    tz: TimeZone,
    /// The last RFC 5424 date-and-time prefix and its instant (Flume caches these too).
    last5424: RefCell<Option<(String, i64)>>,
}

/// A line Flume's parser refuses (an `IllegalArgumentException`): the decoded line
/// becomes the body of an `Invalid` event.
struct Bad;

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The byte index `units` UTF-16 units after byte `from` (past the end: `None`).
fn units_after(s: &str, from: usize, units: usize) -> Option<usize> {
    let mut n = 0;
    for (i, c) in s[from..].char_indices() {
        if n >= units {
            return Some(from + i);
        }
        n += c.len_utf16();
    }
    (n >= units).then_some(s.len())
}

impl LineParser {
    pub fn new(keep: Keep) -> LineParser {
        LineParser::with_clock(keep, Clock::System, TimeZone::system())
    }

    /// As `new`, with the clock (for "now": `-` stamps and RFC 3164 years) and the zone
    /// whose year is "this year" given.
    pub fn with_clock(keep: Keep, clock: Clock, tz: TimeZone) -> LineParser {
        LineParser {
            keep,
            clock,
            tz,
            last5424: RefCell::new(None),
        }
    }

    /// `charset`: the port's `charset.port.<port>` or `charset.default` (a WHATWG label).
    /// The line is read up to its first NUL byte, as Flume's `IoBuffer.getString` does.
    pub fn parse(&self, line: &[u8], charset: &'static Encoding) -> Event {
        let line = match memchr::memchr(0, line) {
            Some(nul) => &line[..nul],
            None => line,
        };
        let msg: Cow<'_, str> = if charset == UTF_8 {
            match std::str::from_utf8(line) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => return invalid(Bytes::copy_from_slice(line)),
            }
        } else {
            match charset.decode_without_bom_handling_and_without_replacement(line) {
                Some(s) => s,
                None => return invalid(Bytes::copy_from_slice(line)),
            }
        };
        let encode = |s: &str| -> Bytes {
            if charset == UTF_8 {
                Bytes::copy_from_slice(s.as_bytes())
            } else {
                Bytes::from(charset.encode(s).0.into_owned())
            }
        };
        match self.parse_str(&msg) {
            Ok((headers, body)) => Event::with_headers(headers, encode(&body)),
            Err(Bad) => invalid(encode(&msg)),
        }
    }

    fn parse_str<'a>(&self, msg: &'a str) -> Result<(Headers, Cow<'a, str>), Bad> {
        let b = msg.as_bytes();
        if b.first() != Some(&b'<') {
            return Err(Bad);
        }
        let end = memchr::memchr(b'>', b).ok_or(Bad)?;
        if end == 0 || utf16_len(&msg[..end]) > 6 {
            return Err(Bad);
        }
        let priority = &msg[1..end];
        let pri = java_parse_int(priority).ok_or(Bad)?;
        let mut h = Headers::new();
        h.set("Priority", priority);
        h.set("Facility", (pri / 8).to_string());
        h.set("Severity", (pri % 8).to_string());
        let mut cur = end + 1;
        if cur >= b.len() {
            return Err(Bad);
        }
        let mut version = None;
        if b[cur..].starts_with(b"1 ") && b.len() > cur + 2 {
            version = Some("1");
            h.set("Version", "1");
            cur += 2;
        }
        let (ts, ts_str) = match b[cur] {
            b'-' => {
                let after = units_after(msg, cur, 2).ok_or(Bad)?;
                if after >= b.len() {
                    return Err(Bad);
                }
                let now = self.clock.millis();
                cur = after;
                (now, "-")
            }
            b'A'..=b'Z' => {
                let stamp_end = units_after(msg, cur, 15).ok_or(Bad)?;
                if stamp_end >= b.len() {
                    return Err(Bad);
                }
                let stamp = &msg[cur..stamp_end];
                cur = units_after(msg, stamp_end, 1).ok_or(Bad)?;
                (self.rfc3164(stamp), stamp)
            }
            _ => {
                let sp = memchr::memchr(b' ', &b[cur..]).ok_or(Bad)? + cur;
                let stamp = &msg[cur..sp];
                cur = sp + 1;
                (self.rfc5424(stamp)?, stamp)
            }
        };
        h.set("timestamp", ts.to_string());
        let sp = memchr::memchr(b' ', b.get(cur..).unwrap_or_default()).ok_or(Bad)? + cur;
        let host = &msg[cur..sp];
        h.set("host", host);
        let body = if b.len() > sp + 1 && !self.keep.all {
            let data = &msg[sp + 1..];
            let k = self.keep;
            if k.priority || k.version || k.timestamp || k.hostname {
                let mut s = String::with_capacity(msg.len() + 8);
                if k.priority {
                    s.push('<');
                    s.push_str(priority);
                    s.push('>');
                }
                if let Some(v) = version.filter(|_| k.version) {
                    s.push_str(v);
                    s.push(' ');
                }
                if k.timestamp {
                    s.push_str(ts_str);
                    s.push(' ');
                }
                if k.hostname {
                    s.push_str(host);
                    s.push(' ');
                }
                s.push_str(data);
                Cow::Owned(s)
            } else {
                Cow::Borrowed(data)
            }
        } else {
            Cow::Borrowed(msg)
        };
        Ok((h, body))
    }

    /// `parseRfc5424Date`: a strict `yyyy-MM-dd'T'HH:mm:ss` prefix (UTC), then optional
    /// fraction digits scaled to ms, then `Z`, `±hh:mm`, or anything (ignored).
    fn rfc5424(&self, s: &str) -> Result<i64, Bad> {
        if utf16_len(s) <= 19 {
            return Err(Bad);
        }
        let prefix_end = units_after(s, 0, 19).ok_or(Bad)?;
        let prefix = &s[..prefix_end];
        let cached = match &*self.last5424.borrow() {
            Some((p, ms)) if p == prefix => Some(*ms),
            _ => None,
        };
        // Flume drops the line when Joda refuses the prefix; `Invalid` here.
        let mut ts = match cached {
            Some(ms) => ms,
            None => {
                let ms = joda_datetime(prefix).ok_or(Bad)?;
                *self.last5424.borrow_mut() = Some((prefix.to_string(), ms));
                ms
            }
        };
        let b = s.as_bytes();
        let mut cur = prefix_end;
        if b[cur] == b'.' {
            let digits = b[cur + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if cur + 1 >= b.len() || cur + 1 + digits >= b.len() || digits == 0 {
                // No digits is Flume's IllegalArgumentException; digits to the end of
                // the stamp its StringIndexOutOfBoundsException (a dropped line).
                return Err(Bad);
            }
            let ms: i64 = s[cur + 1..cur + 1 + digits].parse().map_err(|_| Bad)?;
            let n = digits as i32;
            let ms = if n > 3 {
                (ms as f64 / 10f64.powi(n - 3)) as i64
            } else if n < 3 {
                (ms as f64 * 10f64.powi(3 - n)) as i64
            } else {
                ms
            };
            ts += ms;
            cur += 1 + digits;
        }
        if let sign @ (b'+' | b'-') = b[cur] {
            if utf16_len(s) <= utf16_len(&s[..cur]) + 5 {
                return Err(Bad);
            }
            let h = &b[cur + 1..];
            let ok = h.len() >= 5
                && h[0].is_ascii_digit()
                && h[1].is_ascii_digit()
                && h[2] == b':'
                && h[3].is_ascii_digit()
                && h[4].is_ascii_digit();
            if !ok {
                return Err(Bad);
            }
            let hours = i64::from((h[0] - b'0') * 10 + (h[1] - b'0'));
            let mins = i64::from((h[3] - b'0') * 10 + (h[4] - b'0'));
            let polarity = if sign == b'+' { 1 } else { -1 };
            ts -= polarity * (hours * 60 + mins) * 60_000;
        }
        Ok(ts)
    }

    /// `parseRfc3164Time`: "MMM d HH:mm:ss" read strictly in UTC in the year 2000 (0 when
    /// it does not parse), then given this year, or Flume's 1999/2001 when that is more
    /// than a month ahead/behind now.
    fn rfc3164(&self, stamp: &str) -> i64 {
        let now = self.clock.millis();
        let year = jiff::Timestamp::from_millisecond(now)
            .map(|t| i64::from(self.tz.to_datetime(t).year()))
            .unwrap_or(1970);
        let stamp = stamp.replacen("  ", " ", 1);
        let Some((m, d, tod)) = joda_rfc3164(&stamp) else {
            return 0;
        };
        let at =
            |y: i64, m: i64, d: i64| days_from_civil(y, m, d.min(days_in(y, m))) * DAY_MS + tod;
        let fixed = at(year, m, d);
        let month_shift = |ms: i64, by: i64| {
            let (y, mo, dd) = civil_from_days(ms.div_euclid(DAY_MS));
            let m0 = mo - 1 + by;
            at(y + m0.div_euclid(12), m0.rem_euclid(12) + 1, dd)
        };
        if fixed > now && month_shift(fixed, -1) > now {
            at(1999, m, d)
        } else if fixed < now && month_shift(fixed, 1) < now {
            at(2001, m, d)
        } else {
            fixed
        }
    }
}

fn days_in(y: i64, m: i64) -> i64 {
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn invalid(body: Bytes) -> Event {
    let mut h = Headers::new();
    h.set(STATUS, "Invalid");
    Event::with_headers(h, body)
}

/// `Integer.parseInt` for ASCII digits: an optional sign, then at least one digit.
fn java_parse_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Reads 1..=max ASCII digits at `*p` (Joda's unsigned number parsing).
fn digits(b: &[u8], p: &mut usize, max: usize) -> Option<i64> {
    let n = b[*p..]
        .iter()
        .take(max)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if n == 0 {
        return None;
    }
    let v = b[*p..*p + n]
        .iter()
        .fold(0, |v, &c| v * 10 + i64::from(c - b'0'));
    *p += n;
    Some(v)
}

fn literal(b: &[u8], p: &mut usize, c: u8) -> Option<()> {
    (b.get(*p) == Some(&c)).then(|| *p += 1)
}

/// Joda's strict `yyyy-MM-dd'T'HH:mm:ss` in UTC: the year signed, up to 9 digits, the
/// other fields one or two digits, every field in range, all text used.
fn joda_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut p = 0;
    let neg = match b.first() {
        Some(b'-') => {
            p += 1;
            true
        }
        Some(b'+') => {
            p += 1;
            false
        }
        _ => false,
    };
    let y = digits(b, &mut p, 9)?;
    let y = if neg { -y } else { y };
    literal(b, &mut p, b'-')?;
    let mo = digits(b, &mut p, 2)?;
    literal(b, &mut p, b'-')?;
    let d = digits(b, &mut p, 2)?;
    literal(b, &mut p, b'T')?;
    let h = digits(b, &mut p, 2)?;
    literal(b, &mut p, b':')?;
    let mi = digits(b, &mut p, 2)?;
    literal(b, &mut p, b':')?;
    let sec = digits(b, &mut p, 2)?;
    if p != b.len()
        || !(1..=12).contains(&mo)
        || d < 1
        || d > days_in(y, mo)
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * DAY_MS + ((h * 60 + mi) * 60 + sec) * 1000)
}

const MONTHS: [(&str, &str); 12] = [
    ("jan", "january"),
    ("feb", "february"),
    ("mar", "march"),
    ("apr", "april"),
    ("may", "may"),
    ("jun", "june"),
    ("jul", "july"),
    ("aug", "august"),
    ("sep", "september"),
    ("oct", "october"),
    ("nov", "november"),
    ("dec", "december"),
];

/// Joda's strict `MMM d HH:mm:ss` (English month names, short or long, any case) in the
/// year 2000: (month, day, ms of the day).
fn joda_rfc3164(s: &str) -> Option<(i64, i64, i64)> {
    let b = s.as_bytes();
    let lower = s.to_ascii_lowercase();
    // Joda takes the longest name that matches.
    let (m, len) = MONTHS
        .iter()
        .enumerate()
        .flat_map(|(i, (short, long))| [(i, *long), (i, *short)])
        .find(|(_, name)| lower.starts_with(name))
        .map(|(i, name)| (i as i64 + 1, name.len()))?;
    let mut p = len;
    literal(b, &mut p, b' ')?;
    let d = digits(b, &mut p, 2)?;
    literal(b, &mut p, b' ')?;
    let h = digits(b, &mut p, 2)?;
    literal(b, &mut p, b':')?;
    let mi = digits(b, &mut p, 2)?;
    literal(b, &mut p, b':')?;
    let sec = digits(b, &mut p, 2)?;
    if p != b.len() || d < 1 || d > days_in(2000, m) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    Some((m, d, ((h * 60 + mi) * 60 + sec) * 1000))
}
