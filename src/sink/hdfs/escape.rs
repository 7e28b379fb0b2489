//! `hdfs.path` / `hdfs.filePrefix` escape sequences, as Flume's `BucketPath` expands them:
//! `%{header}`, the strftime-like time escapes (`%Y %m %d %H ...`, in `hdfs.timeZone`, after
//! `hdfs.round`ing), `%t` / `%s`, and `%[localhost] %[IP] %[FQDN]`.
//!
//! A template is parsed once at configuration into parts; rendering an event appends to a
//! caller's reused buffer and allocates nothing. The civil time of the last second seen is
//! cached, since a batch's events mostly share a second.
//!
//! Matching follows Flume's regex `%(\w|%)|%\{([\w.-]+)\}|%\[(\w+)\]` (ASCII `\w`): a `%`
//! that starts none of these stays a literal `%`. Differences from Flume, all on inputs
//! Flume mishandles: `%%` and unknown letters (which expand to nothing, as in Flume) do not
//! demand a `timestamp` header; an unknown `%[name]` is a configuration error instead of a
//! failure on every event; `useLocalTimeStamp` reads the clock once per batch, not per event.

use crate::event::Headers;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeField {
    WeekdayShort,
    WeekdayLong,
    MonthShort,
    MonthLong,
    DateTime,
    Day2,
    Day,
    DateShort,
    Hour24x2,
    Hour12x2,
    DayOfYear,
    Hour24,
    Hour12,
    Month2,
    Month,
    Minute2,
    AmPm,
    UnixSeconds,
    Second2,
    Year2,
    Year4,
    Zone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Header(String),
    Time(TimeField),
    /// `%t`: the timestamp header as written (not rounded), or the local clock.
    Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundUnit {
    Second,
    Minute,
    Hour,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EscapeError {
    #[error("time escapes in hdfs.path/hdfs.filePrefix need a 'timestamp' header, and this event has none (add a timestamp interceptor or set hdfs.useLocalTimeStamp = true)")]
    MissingTimestamp,
    #[error("the event's 'timestamp' header '{0}' is not an integer of milliseconds, so time-based bucketing cannot resolve it")]
    BadTimestamp(String),
    #[error("timestamp {0} cannot be rounded (hdfs.round needs a positive timestamp)")]
    NotRoundable(i64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("the static escape '%[{0}]' is not one of %[localhost], %[IP], %[FQDN]")]
    UnknownStatic(String),
}

/// The host facts `%[...]` expands to, resolved once at configuration.
#[derive(Debug, Clone, Default)]
pub struct HostNames {
    pub localhost: String,
    pub ip: String,
    pub fqdn: String,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Template {
    pub fn parse(s: &str, hosts: &HostNames) -> Result<Template, TemplateError> {
        let b = s.as_bytes();
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        // Byte-wise scan; every split point is at an ASCII byte, so slicing stays on
        // char boundaries.
        let mut lit_start = 0;
        macro_rules! flush_lit {
            ($end:expr) => {
                lit.push_str(&s[lit_start..$end]);
            };
        }
        while i < b.len() {
            if b[i] != b'%' || i + 1 >= b.len() {
                i += 1;
                continue;
            }
            let c = b[i + 1];
            let (part, next) = if is_word(c) || c == b'%' {
                let part = match c {
                    b'%' => Some(Part::Lit("%".into())),
                    b't' => Some(Part::Millis),
                    _ => shorthand(c).map(Part::Time),
                };
                (part, i + 2)
            } else if c == b'{' {
                let start = i + 2;
                let mut j = start;
                while j < b.len() && (is_word(b[j]) || b[j] == b'.' || b[j] == b'-') {
                    j += 1;
                }
                if j > start && j < b.len() && b[j] == b'}' {
                    (Some(Part::Header(s[start..j].to_string())), j + 1)
                } else {
                    i += 1;
                    continue;
                }
            } else if c == b'[' {
                let start = i + 2;
                let mut j = start;
                while j < b.len() && is_word(b[j]) {
                    j += 1;
                }
                if j > start && j < b.len() && b[j] == b']' {
                    let name = &s[start..j];
                    let value = match name.to_ascii_lowercase().as_str() {
                        "localhost" => &hosts.localhost,
                        "ip" => &hosts.ip,
                        "fqdn" => &hosts.fqdn,
                        _ => return Err(TemplateError::UnknownStatic(name.to_string())),
                    };
                    (Some(Part::Lit(value.clone())), j + 1)
                } else {
                    i += 1;
                    continue;
                }
            } else {
                i += 1;
                continue;
            };
            flush_lit!(i);
            match part {
                Some(Part::Lit(l)) => lit.push_str(&l),
                Some(p) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(p);
                }
                // An unknown letter expands to nothing, as in Flume.
                None => {}
            }
            i = next;
            lit_start = next;
        }
        flush_lit!(b.len());
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// Whether rendering needs the event's time.
    pub fn uses_time(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Time(_) | Part::Millis))
    }

    /// The literal text before the first escape (for finding in-use files on start).
    pub fn static_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Lit(l)) => l,
            _ => "",
        }
    }

    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }
}

fn shorthand(c: u8) -> Option<TimeField> {
    use TimeField::*;
    Some(match c {
        b'a' => WeekdayShort,
        b'A' => WeekdayLong,
        b'b' => MonthShort,
        b'B' => MonthLong,
        b'c' => DateTime,
        b'd' => Day2,
        b'e' => Day,
        b'D' => DateShort,
        b'H' => Hour24x2,
        b'I' => Hour12x2,
        b'j' => DayOfYear,
        b'k' => Hour24,
        b'l' => Hour12,
        b'm' => Month2,
        b'n' => Month,
        b'M' => Minute2,
        b'p' => AmPm,
        b's' => UnixSeconds,
        b'S' => Second2,
        b'y' => Year2,
        b'Y' => Year4,
        b'z' => Zone,
        _ => return None,
    })
}

/// The time settings shared by every template of a sink.
#[derive(Debug, Clone)]
pub struct TimeSettings {
    pub tz: TimeZone,
    pub round: Option<(RoundUnit, u32)>,
    pub use_local: bool,
}

/// Parses `hdfs.timeZone` as Java's `TimeZone.getTimeZone` would, except that an unknown
/// name is an error (Java silently falls back to GMT).
pub fn parse_time_zone(name: &str) -> Option<TimeZone> {
    let custom = name
        .strip_prefix("GMT")
        .filter(|r| r.starts_with('+') || r.starts_with('-'));
    if let Some(rest) = custom {
        let sign: i32 = if rest.starts_with('-') { -1 } else { 1 };
        let digits = &rest[1..];
        let (h, m) = match digits.split_once(':') {
            Some((h, m)) => (h, m),
            None if digits.len() > 2 => digits.split_at(digits.len() - 2),
            None => (digits, "0"),
        };
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        if h > 23 || m > 59 || h < 0 || m < 0 {
            return None;
        }
        return Offset::from_seconds(sign * (h * 3600 + m * 60))
            .ok()
            .map(TimeZone::fixed);
    }
    TimeZone::get(name).ok()
}

#[derive(Clone, Copy)]
struct Civil {
    dt: DateTime,
    offset_secs: i32,
    /// The rounded instant in milliseconds (what `%s` shows).
    rounded_ms: i64,
}

/// Renders templates for events; owns the per-second cache.
pub struct Renderer {
    time: TimeSettings,
    cache: Option<(i64, Civil)>,
}

/// Milliseconds of the event for time escapes, and the `%t` text.
fn event_time<'h>(
    headers: &'h Headers,
    local: Option<i64>,
) -> Result<(i64, TsText<'h>), EscapeError> {
    if let Some(now) = local {
        return Ok((now, TsText::Local(now)));
    }
    let raw = headers
        .get("timestamp")
        .ok_or(EscapeError::MissingTimestamp)?;
    let ts = raw
        .parse::<i64>()
        .map_err(|_| EscapeError::BadTimestamp(raw.to_string()))?;
    Ok((ts, TsText::Header(raw)))
}

enum TsText<'h> {
    Header(&'h str),
    Local(i64),
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Renderer {
    pub fn new(time: TimeSettings) -> Self {
        Renderer { time, cache: None }
    }

    pub fn settings(&self) -> &TimeSettings {
        &self.time
    }

    fn civil(&mut self, ts: i64) -> Result<Civil, EscapeError> {
        let sec = ts.div_euclid(1000);
        if let Some((s, c)) = self.cache {
            if s == sec {
                return Ok(c);
            }
        }
        let to_civil = |ms: i64| -> Option<(DateTime, i32)> {
            let t = Timestamp::from_millisecond(ms).ok()?;
            let offset = self.time.tz.to_offset(t);
            Some((offset.to_datetime(t), offset.seconds()))
        };
        let out_of_range = || EscapeError::BadTimestamp(ts.to_string());
        let (mut dt, mut offset_secs) = to_civil(ts).ok_or_else(out_of_range)?;
        let mut rounded_ms = ts;
        if let Some((unit, value)) = self.time.round {
            if ts <= 0 {
                return Err(EscapeError::NotRoundable(ts));
            }
            let v = value.max(1) as i8;
            let (h, m, s) = (dt.hour(), dt.minute(), dt.second());
            let (h, m, s) = match unit {
                RoundUnit::Second => (h, m, s - s % v),
                RoundUnit::Minute => (h, m - m % v, 0),
                RoundUnit::Hour => (h - h % v, 0, 0),
            };
            let rounded = dt
                .with()
                .hour(h)
                .minute(m)
                .second(s)
                .subsec_nanosecond(0)
                .build()
                .map_err(|_| out_of_range())?;
            // A civil time in a DST gap moves forward, as Java's lenient Calendar does.
            let t = self
                .time
                .tz
                .to_ambiguous_timestamp(rounded)
                .compatible()
                .map_err(|_| out_of_range())?;
            rounded_ms = t.as_millisecond();
            (dt, offset_secs) = to_civil(rounded_ms).ok_or_else(out_of_range)?;
        }
        let c = Civil {
            dt,
            offset_secs,
            rounded_ms,
        };
        self.cache = Some((sec, c));
        Ok(c)
    }

    /// Appends `t` rendered for an event to `out`. `now_ms` is used when
    /// `useLocalTimeStamp` is set.
    pub fn render(
        &mut self,
        t: &Template,
        headers: &Headers,
        now_ms: i64,
        out: &mut String,
    ) -> Result<(), EscapeError> {
        let mut time: Option<(i64, TsText, Option<Civil>)> = None;
        for part in &t.parts {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Header(h) => out.push_str(headers.get(h).unwrap_or("")),
                Part::Millis | Part::Time(_) => {
                    if time.is_none() {
                        let local = self.time.use_local.then_some(now_ms);
                        let (ts, text) = event_time(headers, local)?;
                        time = Some((ts, text, None));
                    }
                    let (ts, text, civil) = time.as_mut().expect("set above");
                    match part {
                        Part::Millis => match text {
                            TsText::Header(h) => out.push_str(h),
                            TsText::Local(n) => {
                                let _ = write!(out, "{n}");
                            }
                        },
                        Part::Time(f) => {
                            let c = match civil {
                                Some(c) => *c,
                                None => *civil.insert(self.civil(*ts)?),
                            };
                            let ts = if self.time.round.is_some() {
                                c.rounded_ms
                            } else {
                                *ts
                            };
                            format_field(*f, &c, ts, out);
                        }
                        _ => unreachable!(),
                    }
                }
            }
        }
        Ok(())
    }
}

fn format_field(f: TimeField, c: &Civil, ts: i64, out: &mut String) {
    use TimeField::*;
    let d = &c.dt;
    let weekday = WEEKDAYS[d.weekday().to_monday_zero_offset() as usize];
    let month = MONTHS[(d.month() - 1) as usize];
    let h12 = match d.hour() % 12 {
        0 => 12,
        h => h,
    };
    let _ = match f {
        WeekdayShort => write!(out, "{}", &weekday[..3]),
        WeekdayLong => write!(out, "{weekday}"),
        MonthShort => write!(out, "{}", &month[..3]),
        MonthLong => write!(out, "{month}"),
        DateTime => write!(
            out,
            "{} {} {} {:02}:{:02}:{:02} {:04}",
            &weekday[..3],
            &month[..3],
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            d.year()
        ),
        Day2 => write!(out, "{:02}", d.day()),
        Day => write!(out, "{}", d.day()),
        DateShort => write!(
            out,
            "{:02}/{:02}/{:02}",
            d.month(),
            d.day(),
            (d.year() as i32).rem_euclid(100)
        ),
        Hour24x2 => write!(out, "{:02}", d.hour()),
        Hour12x2 => write!(out, "{h12:02}"),
        DayOfYear => write!(out, "{:03}", d.day_of_year()),
        Hour24 => write!(out, "{}", d.hour()),
        Hour12 => write!(out, "{h12}"),
        Month2 => write!(out, "{:02}", d.month()),
        Month => write!(out, "{}", d.month()),
        Minute2 => write!(out, "{:02}", d.minute()),
        AmPm => write!(out, "{}", if d.hour() < 12 { "AM" } else { "PM" }),
        // Java's `ts / 1000`: truncation toward zero.
        UnixSeconds => write!(out, "{}", ts / 1000),
        Second2 => write!(out, "{:02}", d.second()),
        Year2 => write!(out, "{:02}", (d.year() as i32).rem_euclid(100)),
        Year4 => write!(out, "{:04}", d.year()),
        Zone => {
            let s = c.offset_secs;
            let a = s.abs();
            write!(
                out,
                "{}{:02}{:02}",
                if s < 0 { '-' } else { '+' },
                a / 3600,
                (a % 3600) / 60
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> HostNames {
        HostNames {
            localhost: "box".into(),
            ip: "10.0.0.7".into(),
            fqdn: "box.example.com".into(),
        }
    }

    fn settings(tz: &str, round: Option<(RoundUnit, u32)>) -> TimeSettings {
        TimeSettings {
            tz: parse_time_zone(tz).unwrap(),
            round,
            use_local: false,
        }
    }

    fn render(tpl: &str, s: TimeSettings, headers: &[(&str, &str)]) -> Result<String, EscapeError> {
        let t = Template::parse(tpl, &hosts()).unwrap();
        let h: Headers = headers.iter().copied().collect();
        let mut out = String::new();
        Renderer::new(s).render(&t, &h, 0, &mut out)?;
        Ok(out)
    }

    // 2012-06-12 11:54:34.567 UTC (a Tuesday), the User Guide's rounding example.
    const TS: &str = "1339502074567";

    #[test]
    fn every_time_escape_matches_java_simpledateformat() {
        let all = "%a|%A|%b|%B|%c|%d|%e|%D|%H|%I|%j|%k|%l|%m|%n|%M|%p|%s|%S|%y|%Y|%z|%t";
        let out = render(all, settings("UTC", None), &[("timestamp", TS)]).unwrap();
        assert_eq!(
            out,
            "Tue|Tuesday|Jun|June|Tue Jun 12 11:54:34 2012|12|12|06/12/12|11|11|164|11|11|06|6|54|AM|1339502074|34|12|2012|+0000|1339502074567"
        );
        // Same instant in Los Angeles: PDT, previous... same day, 04:54 AM.
        let out = render(
            "%Y-%m-%d %H %I %p %z %e %k",
            settings("America/Los_Angeles", None),
            &[("timestamp", TS)],
        )
        .unwrap();
        assert_eq!(out, "2012-06-12 04 04 AM -0700 12 4");
        let out = render("%z", settings("GMT+05:30", None), &[("timestamp", TS)]).unwrap();
        assert_eq!(out, "+0530");
    }

    #[test]
    fn rounding_matches_the_user_guide_example() {
        let s = settings("UTC", Some((RoundUnit::Minute, 10)));
        let out = render(
            "/flume/events/%Y-%m-%d/%H%M/%S",
            s.clone(),
            &[("timestamp", TS)],
        );
        assert_eq!(out.unwrap(), "/flume/events/2012-06-12/1150/00");
        // %t is never rounded; %s is.
        let out = render("%t %s", s, &[("timestamp", TS)]).unwrap();
        assert_eq!(out, "1339502074567 1339501800");
        let hour = settings("Asia/Kolkata", Some((RoundUnit::Hour, 6)));
        // 17:24:34 IST rounds to 12:00 IST.
        let out = render("%H:%M:%S %s", hour, &[("timestamp", TS)]).unwrap();
        assert_eq!(out, "12:00:00 1339482600");
        let sec = settings("UTC", Some((RoundUnit::Second, 15)));
        assert_eq!(
            render("%M:%S", sec.clone(), &[("timestamp", TS)]).unwrap(),
            "54:30"
        );
        assert_eq!(
            render("%S", sec, &[("timestamp", "-5")]),
            Err(EscapeError::NotRoundable(-5))
        );
    }

    #[test]
    fn headers_statics_and_literal_percents() {
        let out = render(
            "/d/%{host}/%{a.b-c}/%{missing}/%[localhost]/%[ip]/%[FQDN]/100%%/%x/%{bad key}/%[ x]/%",
            settings("UTC", None),
            &[("host", "web1"), ("a.b-c", "v")],
        )
        .unwrap();
        assert_eq!(
            out,
            "/d/web1/v//box/10.0.0.7/box.example.com/100%//%{bad key}/%[ x]/%"
        );
        assert_eq!(
            Template::parse("%[nope]", &hosts()),
            Err(TemplateError::UnknownStatic("nope".into()))
        );
        // Non-ASCII text around escapes survives.
        let out = render("é%{h}ü", settings("UTC", None), &[("h", "ß")]).unwrap();
        assert_eq!(out, "éßü");
    }

    #[test]
    fn missing_or_bad_timestamp_fails_like_flume_unless_local_time() {
        assert_eq!(
            render("/x/%Y", settings("UTC", None), &[]),
            Err(EscapeError::MissingTimestamp)
        );
        assert_eq!(
            render("/x/%t", settings("UTC", None), &[("timestamp", "12a")]),
            Err(EscapeError::BadTimestamp("12a".into()))
        );
        // No time escape: no timestamp needed.
        assert_eq!(
            render("/x/%%/%{h}", settings("UTC", None), &[]).unwrap(),
            "/x/%/"
        );
        let mut s = settings("UTC", None);
        s.use_local = true;
        let t = Template::parse("%Y %t", &hosts()).unwrap();
        let mut out = String::new();
        Renderer::new(s)
            .render(&t, &Headers::new(), 1339502074567, &mut out)
            .unwrap();
        assert_eq!(out, "2012 1339502074567");
    }

    #[test]
    fn time_zone_names() {
        assert!(parse_time_zone("America/New_York").is_some());
        assert!(parse_time_zone("UTC").is_some());
        assert!(parse_time_zone("GMT-8").is_some());
        assert!(parse_time_zone("GMT+0530").is_some());
        assert!(parse_time_zone("Mars/Olympus").is_none());
        assert!(parse_time_zone("GMT+99").is_none());
    }

    #[test]
    fn static_prefix_is_the_text_before_the_first_escape() {
        let t = Template::parse("/flume/%{host}/%Y", &hosts()).unwrap();
        assert_eq!(t.static_prefix(), "/flume/");
        assert!(t.uses_time());
        let t = Template::parse("/flume/%[localhost]/x", &hosts()).unwrap();
        assert!(t.is_static());
        assert_eq!(t.static_prefix(), "/flume/box/x");
    }
}
