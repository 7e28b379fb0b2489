//! Syslog messages to events as Flume's `SyslogUtils` makes them (syslogtcp, syslogudp),
//! and (`LineParser`, in `line_parser.rs`) as its `SyslogParser` does
//! (multiport_syslogtcp).
//!
//! The framing is `SyslogUtils.extractEvent`'s START/PRIO/DATA machine: a message starts
//! at `<`, its priority is one to three digits closed by `>` (anything else makes the
//! event `Invalid` and the rest of the line its data), it ends at `\n` or, at `eventSize`
//! bytes, as `Incomplete` with the bytes after starting the next message; `\n` between
//! messages is skipped. The headers are `buildEvent`/`formatHeaders`': the RFC 5424 and
//! RFC 3164 patterns (`rfc_match`), the timestamps (`java_time`), and a body per
//! `keepFields`, re-encoded as Java's String round trip does (`java_utf8`).

pub use super::java_time::Clock;
use super::java_time::{self, OffsetCache};
use super::java_utf8;
use super::rfc_match::{self, Captures};
use crate::event::{Body, Event, Headers};
use bytes::Bytes;
use bytestring::ByteString;
use jiff::tz::TimeZone;
use std::borrow::Cow;
use std::rc::Rc;
use std::sync::LazyLock;

pub use super::line_parser::LineParser;

/// `flume.syslog.status`, Flume's header for events that did not parse whole.
pub const STATUS: &str = "flume.syslog.status";

/// Which parsed fields stay in the body (Flume's `keepFields`: `none`/`false`,
/// `all`/`true`, or a list naming `priority version timestamp hostname`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    pub all: bool,
    pub priority: bool,
    pub version: bool,
    pub timestamp: bool,
    pub hostname: bool,
}

impl Keep {
    /// As Flume's `SyslogUtils.chooseFieldsToKeep`.
    pub fn from_flume(value: &str) -> Keep {
        let v = value.trim().to_ascii_lowercase();
        match v.as_str() {
            "false" | "none" => Keep::default(),
            "true" | "all" => Keep {
                all: true,
                ..Keep::default()
            },
            _ => Keep {
                all: false,
                priority: v.contains("priority"),
                version: v.contains("version"),
                timestamp: v.contains("timestamp"),
                hostname: v.contains("hostname"),
            },
        }
    }

    fn any_field(self) -> bool {
        self.priority || self.version || self.timestamp || self.hostname
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Start,
    Prio,
    Data,
}

/// What one `scan` found: where the current message's bytes begin in its input, and
/// where it ended (and whether `Incomplete`) when it did.
struct Done {
    start: usize,
    end: Option<(usize, bool)>,
}

/// Header names and fixed values, static so that setting them allocates nothing.
const FACILITY: ByteString = ByteString::from_static("Facility");
const SEVERITY: ByteString = ByteString::from_static("Severity");
const PRIORITY: ByteString = ByteString::from_static("priority");
const VERSION: ByteString = ByteString::from_static("version");
const TIMESTAMP: ByteString = ByteString::from_static("timestamp");
const HOST: ByteString = ByteString::from_static("host");
const STATUS_NAME: ByteString = ByteString::from_static(STATUS);
const INVALID: ByteString = ByteString::from_static("Invalid");
const INCOMPLETE: ByteString = ByteString::from_static("Incomplete");

/// The decimal strings of 0..=999, shared so that the numeric headers of most messages
/// cost no allocation.
static NUMBERS: LazyLock<Vec<ByteString>> = LazyLock::new(|| {
    (0..1000)
        .map(|n: u32| ByteString::from(n.to_string()))
        .collect()
});

fn number(n: u16) -> ByteString {
    NUMBERS[usize::from(n)].clone()
}

/// One connection's (or one UDP socket's) decoder: `SyslogUtils` keeps the state of an
/// unfinished message between reads.
#[derive(Debug)]
pub struct Decoder {
    event_size: usize,
    keep: Keep,
    clock: Clock,
    tz: TimeZone,
    mode: Mode,
    prio: u16,
    prio_len: u8,
    bad: bool,
    /// Bytes of the current message so far (Java's `baos.size()`).
    len: usize,
    /// The current message's bytes when it spans reads.
    pending: Vec<u8>,
    offsets: OffsetCache,
    last3164: Option<Stamp3164>,
    /// The clock's UTC year and the instants it spans.
    year: (i64, i64, i64),
    /// The last timestamp header made, to share its string.
    last_ts: Option<(i64, ByteString)>,
    last_host: Option<ByteString>,
}

impl Decoder {
    /// `event_size`: Flume's `eventSize` (at least 10, as Flume raises smaller values).
    /// Times are read in the local zone (`TZ`, else /etc/localtime, as the JVM does).
    pub fn new(event_size: usize, keep: Keep) -> Decoder {
        Decoder::with_clock(event_size, keep, Clock::System, TimeZone::system())
    }

    /// As `new`, with the clock that dates RFC 3164 messages and the zone wall-clock
    /// times are read in given (tests, and the comparison with Java Flume, pin both).
    pub fn with_clock(event_size: usize, keep: Keep, clock: Clock, tz: TimeZone) -> Decoder {
        Decoder {
            event_size: event_size.max(10),
            keep,
            clock,
            tz,
            mode: Mode::Start,
            prio: 0,
            prio_len: 0,
            bad: false,
            len: 0,
            pending: Vec::new(),
            offsets: OffsetCache::default(),
            last3164: None,
            year: (0, 0, 0),
            last_ts: None,
            last_host: None,
        }
    }

    /// Newline framing, as `SyslogUtils.extractEvent` on a TCP stream: takes bytes from the
    /// front of `input` until one event ends (at a `\n`, or at `eventSize` bytes: the event
    /// is then `Incomplete` and the rest starts the next one). Returns how many bytes it
    /// took and the event, or `None` when `input` ran out first (the part read is kept for
    /// the next call).
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        self.feed_from(input, None)
    }

    /// `feed` over `buf[from..]`, with bodies that are slices of `buf` when the message
    /// lies in it whole and its bytes go to the body unchanged (the usual case): the
    /// socket's buffer becomes the events without a copy. Returns bytes taken from `from`.
    pub fn feed_shared(&mut self, buf: &Rc<Bytes>, from: usize) -> (usize, Option<Event>) {
        self.feed_from(&buf[from..], Some((buf, from)))
    }

    fn feed_from(
        &mut self,
        input: &[u8],
        shared: Option<(&Rc<Bytes>, usize)>,
    ) -> (usize, Option<Event>) {
        let (used, done) = self.scan(input, true);
        let Some((end, incomplete)) = done.end else {
            self.pending.extend_from_slice(&input[done.start..used]);
            return (used, None);
        };
        let event = if self.pending.is_empty() {
            let shared = shared.map(|(buf, from)| (buf, from + done.start));
            self.build(&input[done.start..end], shared, incomplete)
        } else {
            self.pending.extend_from_slice(&input[done.start..end]);
            let raw = std::mem::take(&mut self.pending);
            let e = self.build(&raw, None, incomplete);
            self.pending = raw;
            self.pending.clear();
            e
        };
        (used, Some(event))
    }

    /// One UDP datagram, as `SyslogUDPSource` passes it to `extractEvent` (once: what
    /// follows a `\n` in the datagram is not read, as in Flume). A datagram with no
    /// priority digits at all (empty, only newlines, or `<`), which Flume drops on a
    /// `NumberFormatException`, is an `Invalid` event here.
    pub fn datagram(&mut self, datagram: &[u8]) -> Event {
        self.whole(datagram, true)
    }

    /// One whole message from an octet-counted frame (RFC 6587), which Flume cannot read:
    /// parsed as the same bytes on one line would be (a `\n` inside is data); past
    /// `eventSize` it is cut and `Incomplete`, and the rest dropped.
    pub fn message(&mut self, message: &[u8]) -> Event {
        self.whole(message, false)
    }

    fn whole(&mut self, input: &[u8], newline_ends: bool) -> Event {
        self.reset();
        self.pending.clear();
        let (used, done) = self.scan(input, newline_ends);
        let (end, incomplete) = done.end.unwrap_or((used, false));
        if done.end.is_none() && !self.bad && self.prio_len == 0 {
            // Flume's `Integer.parseInt("")` throws here.
            self.bad = true;
        }
        self.build(&input[done.start..end], None, incomplete)
    }

    fn reset(&mut self) {
        self.mode = Mode::Start;
        self.prio = 0;
        self.prio_len = 0;
        self.bad = false;
        self.len = 0;
    }

    /// Runs the framing machine over `input`: how many bytes it took, and where the
    /// message lies in `input` (after `pending`, if that is not empty).
    fn scan(&mut self, input: &[u8], newline_ends: bool) -> (usize, Done) {
        let mut i = 0;
        let mut start = 0;
        while i < input.len() {
            match self.mode {
                Mode::Start => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\n' if newline_ends => start = i,
                        b'<' => {
                            self.len += 1;
                            self.mode = Mode::Prio;
                        }
                        _ => {
                            self.len += 1;
                            self.bad = true;
                            self.mode = Mode::Data;
                        }
                    }
                }
                Mode::Prio => {
                    let b = input[i];
                    i += 1;
                    self.len += 1;
                    if b == b'>' {
                        self.bad |= self.prio_len == 0;
                        self.mode = Mode::Data;
                    } else {
                        self.prio_len += 1;
                        if b.is_ascii_digit() && self.prio_len <= 3 {
                            self.prio = self.prio * 10 + u16::from(b - b'0');
                        } else {
                            self.bad = true;
                            self.mode = Mode::Data;
                        }
                    }
                }
                Mode::Data => {
                    let need = self.event_size - self.len;
                    let window = &input[i..input.len().min(i + need)];
                    let nl = if newline_ends {
                        memchr::memchr(b'\n', window)
                    } else {
                        None
                    };
                    if let Some(j) = nl {
                        self.len += j;
                        let end = i + j;
                        return (
                            end + 1,
                            Done {
                                start,
                                end: Some((end, false)),
                            },
                        );
                    }
                    self.len += window.len();
                    i += window.len();
                    if self.len == self.event_size {
                        return (
                            i,
                            Done {
                                start,
                                end: Some((i, true)),
                            },
                        );
                    }
                }
            }
        }
        (input.len(), Done { start, end: None })
    }

    /// The event of one message's bytes, as `buildEvent` makes it. `shared`: the buffer
    /// `raw` lies in and its offset there, for bodies that need no copy.
    fn build(
        &mut self,
        raw: &[u8],
        shared: Option<(&Rc<Bytes>, usize)>,
        incomplete: bool,
    ) -> Event {
        let bad = self.bad;
        let prio = self.prio;
        self.reset();
        let whole = |shared: Option<(&Rc<Bytes>, usize)>| match shared {
            Some((buf, at)) => Body::shared(buf.clone(), at..at + raw.len()),
            None => Body::from(Bytes::copy_from_slice(raw)),
        };
        let mut h = Headers::new();
        if bad {
            h.set(FACILITY, number(0));
            h.set(SEVERITY, number(0));
            h.set(STATUS_NAME, INVALID);
            return Event::with_headers(h, whole(shared));
        }
        h.set(FACILITY, number(prio / 8));
        h.set(SEVERITY, number(prio % 8));
        let body = match rfc_match::captures(raw) {
            None => whole(shared),
            Some(c) => self.matched(raw, &c, &mut h, shared, whole),
        };
        if incomplete {
            h.set(STATUS_NAME, INCOMPLETE);
        }
        Event::with_headers(h, body)
    }

    /// Headers and body of a message one of the patterns matched (`formatHeaders`).
    fn matched(
        &mut self,
        raw: &[u8],
        c: &Captures,
        h: &mut Headers,
        shared: Option<(&Rc<Bytes>, usize)>,
        whole: impl Fn(Option<(&Rc<Bytes>, usize)>) -> Body,
    ) -> Body {
        let text = |r: &std::ops::Range<usize>| {
            // The captures other than the body are ASCII by their patterns.
            std::str::from_utf8(&raw[r.clone()]).unwrap_or_default()
        };
        let pri = &raw[c.priority.clone()];
        if pri.len() == 1 || pri[0] != b'0' {
            h.set(PRIORITY, number(text(&c.priority).parse().unwrap_or(0)));
        } else {
            h.set(PRIORITY, text(&c.priority));
        }
        if let Some(v) = c.version.as_ref().filter(|v| !v.is_empty()) {
            h.set(VERSION, number(u16::from(raw[v.start] - b'0')));
        }
        if let Some(ts) = &c.timestamp {
            let stamp = &raw[ts.clone()];
            let ms = if c.rfc5424 {
                Some(java_time::rfc5424_millis(
                    stamp,
                    &self.tz,
                    &mut self.offsets,
                ))
            } else {
                self.rfc3164(stamp)
            };
            if let Some(ms) = ms {
                let value = match &self.last_ts {
                    Some((last, s)) if *last == ms => s.clone(),
                    _ => {
                        let s = ByteString::from(ms.to_string());
                        self.last_ts = Some((ms, s.clone()));
                        s
                    }
                };
                h.set(TIMESTAMP, value);
            }
        }
        if let Some(host) = c.host.as_ref().filter(|r| !r.is_empty()) {
            let name = text(host);
            let value = match &self.last_host {
                Some(last) if &**last == name => last.clone(),
                _ => {
                    let s = ByteString::from(name);
                    self.last_host = Some(s.clone());
                    s
                }
            };
            h.set(HOST, value);
        }
        if self.keep.all {
            return whole(shared);
        }
        if self.keep.any_field() {
            // `addFieldsToBody`: never empty, so always the round-tripped string.
            let mut b = Vec::with_capacity(raw.len() + 8);
            if self.keep.priority {
                b.push(b'<');
                b.extend_from_slice(pri);
                b.push(b'>');
            }
            if let Some(v) = c
                .version
                .as_ref()
                .filter(|v| self.keep.version && !v.is_empty())
            {
                b.extend_from_slice(&raw[v.clone()]);
                b.push(b' ');
            }
            let null = |r: &Option<std::ops::Range<usize>>| match r {
                Some(r) => &raw[r.clone()],
                None => b"null".as_slice(),
            };
            if self.keep.timestamp {
                b.extend_from_slice(null(&c.timestamp));
                b.push(b' ');
            }
            if self.keep.hostname {
                b.extend_from_slice(null(&c.host));
                b.push(b' ');
            }
            b.extend_from_slice(&java_utf8::round_trip(&raw[c.body.clone()]));
            return Body::from(Bytes::from(b));
        }
        if c.body.is_empty() {
            // Flume's "parse failed" branch: the message as received.
            return whole(shared);
        }
        match java_utf8::round_trip(&raw[c.body.clone()]) {
            Cow::Borrowed(_) => match shared {
                Some((buf, at)) => Body::shared(buf.clone(), at + c.body.start..at + c.body.end),
                None => Body::from(Bytes::copy_from_slice(&raw[c.body.clone()])),
            },
            Cow::Owned(v) => Body::from(Bytes::from(v)),
        }
    }

    /// An RFC 3164 stamp's instant. The lenient parse and the two bounds of the year
    /// window are cached per stamp and year; only the comparison with the clock is made
    /// for each message.
    fn rfc3164(&mut self, stamp: &[u8]) -> Option<i64> {
        let now = self.clock.millis();
        if !(self.year.1..self.year.2).contains(&now) {
            self.year = utc_year(now);
        }
        let year = self.year.0;
        let hit = matches!(&self.last3164, Some(c) if c.stamp == stamp && c.year == year);
        if !hit {
            let parsed = java_time::rfc3164_parse(stamp, &self.tz, year)?;
            self.last3164 = Some(Stamp3164 {
                stamp: stamp.to_vec(),
                year,
                parsed,
                month_before: java_time::add_months(&self.tz, parsed, -1),
                months_after: java_time::add_months(&self.tz, parsed, 11),
            });
        }
        let c = self.last3164.as_ref()?;
        Some(if c.parsed > now && c.month_before > now {
            java_time::add_months(&self.tz, c.parsed, -12)
        } else if c.parsed < now && c.months_after < now {
            java_time::add_months(&self.tz, c.parsed, 12)
        } else {
            c.parsed
        })
    }
}

/// The last RFC 3164 stamp read: its instant in `year` and the bounds of the year window.
#[derive(Debug)]
struct Stamp3164 {
    stamp: Vec<u8>,
    year: i64,
    parsed: i64,
    month_before: i64,
    months_after: i64,
}

/// The UTC year of `ms`, and the instants it begins and ends at.
fn utc_year(ms: i64) -> (i64, i64, i64) {
    let y = java_time::civil_from_days(ms.div_euclid(java_time::DAY_MS)).0;
    (
        y,
        java_time::days_from_civil(y, 1, 1) * java_time::DAY_MS,
        java_time::days_from_civil(y + 1, 1, 1) * java_time::DAY_MS,
    )
}

#[cfg(test)]
mod tests;
