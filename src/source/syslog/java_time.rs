//! Syslog timestamps as Java Flume computes them: `SyslogUtils`' lenient
//! `SimpleDateFormat`/`GregorianCalendar` arithmetic (RFC 5424 and RFC 3164, the year of
//! RFC 3164 taken from the clock, the ±1 year window) and the strict Joda parsing of
//! `SyslogParser`. Everything is millisecond arithmetic on a proleptic Gregorian calendar;
//! only the wall-clock → instant step asks the time zone.

use jiff::tz::{AmbiguousOffset, TimeZone};

/// Where "now" comes from: the system clock, or a fixed instant (tests, and the Java
/// comparison, pin it as Flume's `Clock` argument does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    /// Milliseconds since the epoch.
    Fixed(i64),
}

impl Clock {
    pub fn millis(self) -> i64 {
        match self {
            Clock::Fixed(ms) => ms,
            Clock::System => {
                let now = std::time::SystemTime::now();
                match now.duration_since(std::time::UNIX_EPOCH) {
                    Ok(d) => d.as_millis() as i64,
                    Err(e) => -(e.duration().as_millis() as i64),
                }
            }
        }
    }
}

pub(crate) const DAY_MS: i64 = 86_400_000;

/// Days from 1970-01-01 to `y-m-d` (proleptic Gregorian, `m` in 1..=12).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from `days_from_civil`: (year, month 1..=12, day).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Wall-clock milliseconds (as if the zone were UTC) of fields a lenient Java calendar
/// accepts out of range: month 13 is January next year, day 0 the last of the month
/// before, hour 25 one o'clock the next day.
pub(crate) fn lenient_wall(y: i64, month: i64, d: i64, h: i64, mi: i64, s: i64, ms: i64) -> i64 {
    let m0 = month - 1;
    let y = y + m0.div_euclid(12);
    let m = m0.rem_euclid(12) + 1;
    let days = days_from_civil(y, m, 1) + (d - 1);
    days * DAY_MS + ((h * 60 + mi) * 60 + s) * 1000 + ms
}

/// The zone's offset (seconds) for a wall-clock time, resolved as `java.util.Calendar`
/// does: in a gap the offset before it (the time moves forward), in a fold the offset
/// after it (the later instant).
pub(crate) fn wall_offset(tz: &TimeZone, wall_ms: i64) -> i64 {
    let secs = wall_ms.div_euclid(1000);
    let Ok(ts) = jiff::Timestamp::from_second(secs) else {
        return tz.to_offset(jiff::Timestamp::UNIX_EPOCH).seconds().into();
    };
    let dt = TimeZone::UTC.to_datetime(ts);
    let offset = match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        AmbiguousOffset::Gap { before, .. } => before,
        AmbiguousOffset::Fold { after, .. } => after,
    };
    offset.seconds().into()
}

/// The instant (ms) of a wall-clock time in `tz`.
pub(crate) fn wall_to_instant(tz: &TimeZone, wall_ms: i64) -> i64 {
    wall_ms - wall_offset(tz, wall_ms) * 1000
}

/// The wall-clock time (ms, as if UTC) of an instant in `tz`.
fn instant_to_wall(tz: &TimeZone, ms: i64) -> i64 {
    let off = match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => i64::from(tz.to_offset(ts).seconds()),
        Err(_) => 0,
    };
    ms + off * 1000
}

/// `Calendar.add(MONTH, months)` (or `YEAR` as 12 months) on an instant: the wall date
/// moves, the day is pinned to the new month's length, the time of day stays.
pub(crate) fn add_months(tz: &TimeZone, ms: i64, months: i64) -> i64 {
    let wall = instant_to_wall(tz, ms);
    let days = wall.div_euclid(DAY_MS);
    let tod = wall.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let m0 = m - 1 + months;
    let ny = y + m0.div_euclid(12);
    let nm = m0.rem_euclid(12) + 1;
    let nd = d.min(days_in_month(ny, nm));
    wall_to_instant(tz, days_from_civil(ny, nm, nd) * DAY_MS + tod)
}

fn num(b: &[u8]) -> i64 {
    b.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0'))
}

/// An RFC 5424 timestamp as the regex captured it (`YYYY-MM-DDTHH:MM:SS[.f{1,6}][Z|±hh:mm]`),
/// as `SyslogUtils` turns it into ms: with a fraction, the first three digits are
/// milliseconds as a number (".5" is 5 ms) and the zone is ignored (the wall time is read
/// in `tz`); without one, `Z` or a valid `±hh:mm` (hours ≤ 23, minutes ≤ 59) is the
/// offset; otherwise the wall time is read in `tz`. Fields out of range roll over.
pub(crate) fn rfc5424_millis(stamp: &[u8], tz: &TimeZone, cache: &mut OffsetCache) -> i64 {
    let wall_s = lenient_wall(
        num(&stamp[0..4]),
        num(&stamp[5..7]),
        num(&stamp[8..10]),
        num(&stamp[11..13]),
        num(&stamp[14..16]),
        num(&stamp[17..19]),
        0,
    );
    let rest = &stamp[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        let ms = num(&frac[..digits.min(3)]);
        return cache.instant(tz, wall_s) + ms;
    }
    match rest {
        [b'Z'] => wall_s,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = num(&[*h1, *h2]);
            let m = num(&[*m1, *m2]);
            if h > 23 || m > 59 {
                return cache.instant(tz, wall_s);
            }
            let off = (h * 60 + m) * 60_000;
            if *sign == b'+' {
                wall_s - off
            } else {
                wall_s + off
            }
        }
        _ => cache.instant(tz, wall_s),
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// The month (1..=12) of an English abbreviation, any case.
fn month_of(name: &[u8]) -> Option<i64> {
    let lower = [
        name[0].to_ascii_lowercase(),
        name[1].to_ascii_lowercase(),
        name[2].to_ascii_lowercase(),
    ];
    MONTHS
        .iter()
        .position(|m| **m == lower)
        .map(|i| i as i64 + 1)
}

#[cfg(test)]
/// An RFC 3164 timestamp as the regex captured it (`Mmm\s{1,2}d{1,2}\sHH:MM:SS`) as
/// `SyslogUtils` reads it: the clock's year (UTC) in front, two spaces made one, parsed
/// leniently in `tz` (a first separator that is not a space fails), then moved a year back when
/// more than a month ahead of the clock, or a year on when more than eleven months behind.
pub(crate) fn rfc3164_millis(stamp: &[u8], tz: &TimeZone, clock: Clock) -> Option<i64> {
    let now = clock.millis();
    let year = jiff::Timestamp::from_millisecond(now)
        .map(|t| i64::from(TimeZone::UTC.to_datetime(t).year()))
        .unwrap_or(1970);
    let parsed = rfc3164_parse(stamp, tz, year)?;
    Some(rfc3164_window(tz, parsed, now))
}

/// The lenient parse of `rfc3164_millis` in year `year`, before the year window.
pub(crate) fn rfc3164_parse(stamp: &[u8], tz: &TimeZone, year: i64) -> Option<i64> {
    let month = month_of(&stamp[..3])?;
    // `SimpleDateFormat` wants the pattern's space itself, then skips spaces and tabs
    // before each field (the regex allowed one more whitespace character).
    if stamp[3] != b' ' {
        return None;
    }
    let mut p = 4;
    while matches!(stamp[p], b' ' | b'\t') {
        p += 1;
    }
    let d_len = stamp[p..].iter().take_while(|c| c.is_ascii_digit()).count();
    if d_len == 0 {
        return None;
    }
    let day = num(&stamp[p..p + d_len]);
    p += d_len;
    if stamp[p] != b' ' {
        return None;
    }
    p += 1;
    let t = &stamp[p..];
    let wall = lenient_wall(
        year,
        month,
        day,
        num(&t[0..2]),
        num(&t[3..5]),
        num(&t[6..8]),
        0,
    );
    Some(wall_to_instant(tz, wall))
}

/// `SyslogUtils`' year window around the clock's `now`.
#[cfg(test)]
fn rfc3164_window(tz: &TimeZone, parsed: i64, now: i64) -> i64 {
    if parsed > now && add_months(tz, parsed, -1) > now {
        add_months(tz, parsed, -12)
    } else if parsed < now && add_months(tz, parsed, 11) < now {
        add_months(tz, parsed, 12)
    } else {
        parsed
    }
}

/// The last wall-clock second resolved in the local zone: consecutive messages mostly
/// share their second, and the zone lookup is the dear part of a timestamp.
#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetCache {
    last: Option<(i64, i64)>,
}

impl OffsetCache {
    /// The instant of wall time `wall_ms` (whole seconds) in `tz`.
    pub(crate) fn instant(&mut self, tz: &TimeZone, wall_ms: i64) -> i64 {
        match self.last {
            Some((w, i)) if w == wall_ms => i,
            _ => {
                let i = wall_to_instant(tz, wall_ms);
                self.last = Some((wall_ms, i));
                i
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    #[test]
    fn civil_days_round_trip() {
        for z in [-800_000, -1, 0, 1, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn lenient_fields_roll_over() {
        // Feb 30 is Mar 1 (2021) or Mar 2? 2021 is not leap: Feb has 28 days → Mar 2.
        assert_eq!(
            lenient_wall(2021, 2, 30, 0, 0, 0, 0),
            lenient_wall(2021, 3, 2, 0, 0, 0, 0)
        );
        assert_eq!(
            lenient_wall(2020, 13, 1, 0, 0, 0, 0),
            lenient_wall(2021, 1, 1, 0, 0, 0, 0)
        );
        assert_eq!(
            lenient_wall(2020, 3, 0, 0, 0, 0, 0),
            lenient_wall(2020, 2, 29, 0, 0, 0, 0)
        );
        assert_eq!(
            lenient_wall(2020, 1, 1, 25, 0, 0, 0),
            lenient_wall(2020, 1, 2, 1, 0, 0, 0)
        );
    }

    #[test]
    fn gaps_move_forward_and_folds_take_the_later_instant() {
        let tz = ny();
        // 2024-03-10 02:30 does not exist: read with EST, 07:30Z.
        let gap = lenient_wall(2024, 3, 10, 2, 30, 0, 0);
        assert_eq!(wall_to_instant(&tz, gap), gap + 5 * 3_600_000);
        // 2024-11-03 01:30 happens twice: the EST one, 06:30Z.
        let fold = lenient_wall(2024, 11, 3, 1, 30, 0, 0);
        assert_eq!(wall_to_instant(&tz, fold), fold + 5 * 3_600_000);
    }

    #[test]
    fn rfc5424_fraction_ignores_the_zone() {
        let tz = ny();
        let mut c = OffsetCache::default();
        let utc = rfc5424_millis(b"2024-07-15T12:00:00Z", &tz, &mut c);
        assert_eq!(utc, lenient_wall(2024, 7, 15, 12, 0, 0, 0));
        let frac = rfc5424_millis(b"2024-07-15T12:00:00.5Z", &tz, &mut c);
        assert_eq!(frac, utc + 4 * 3_600_000 + 5);
        let off = rfc5424_millis(b"2024-07-15T12:00:00+02:00", &tz, &mut c);
        assert_eq!(off, utc - 2 * 3_600_000);
        let bad_off = rfc5424_millis(b"2024-07-15T12:00:00+24:00", &tz, &mut c);
        assert_eq!(bad_off, utc + 4 * 3_600_000);
    }

    #[test]
    fn rfc3164_year_window() {
        let tz = TimeZone::UTC;
        let now = lenient_wall(2026, 1, 2, 0, 0, 0, 0);
        // Dec 31 read as 2026 is almost a year ahead: it was last year's.
        let dec = rfc3164_millis(b"Dec 31 23:00:00", &tz, Clock::Fixed(now)).unwrap();
        assert_eq!(dec, lenient_wall(2025, 12, 31, 23, 0, 0, 0));
        let jan = rfc3164_millis(b"Jan  1 10:00:00", &tz, Clock::Fixed(now)).unwrap();
        assert_eq!(jan, lenient_wall(2026, 1, 1, 10, 0, 0, 0));
        assert_eq!(
            rfc3164_millis(b"Foo  1 10:00:00", &tz, Clock::Fixed(now)),
            None
        );
        assert_eq!(
            rfc3164_millis(b"Jan\t1 10:00:00", &tz, Clock::Fixed(now)),
            None
        );
        assert_eq!(
            rfc3164_millis(b"Jan \t1 10:00:00", &tz, Clock::Fixed(now)),
            Some(jan)
        );
    }
}
