//! Joda-Time date patterns (`DateTimeFormat.forPattern`, what Flume's
//! RegexExtractorInterceptorMillisSerializer uses) for parsing a whole string into epoch
//! milliseconds. English month and day names; the JVM's default time zone is the system's.
//! Letters without a meaning here are refused when the configuration loads, by name.

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year,
    /// `yy`: two digits around a pivot 30 years before now (lenient: more digits are a
    /// full year when the next token is not numeric).
    TwoDigitYear {
        lenient: bool,
    },
    Month,
    Day,
    /// H (0-23), k (1-24), h (1-12), K (0-11)
    Hour24,
    ClockHour24,
    ClockHour12,
    Hour12,
    Minute,
    Second,
    Fraction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Literal(String),
    Number {
        field: Field,
        max: usize,
    },
    MonthText,
    DayOfWeekText,
    HalfDay,
    /// Z / ZZ: an offset such as -0800, -08:00 or Z.
    Offset,
    /// ZZZ: a time zone id such as Europe/Paris.
    ZoneId,
}

#[derive(Debug, Clone)]
pub struct JodaFormat {
    items: Vec<Item>,
    pivot: i32,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn numeric(letter: char, count: usize) -> bool {
    match letter {
        'M' => count < 3,
        'y' | 'Y' | 'd' | 'H' | 'k' | 'h' | 'K' | 'm' | 's' | 'S' => true,
        _ => false,
    }
}

impl JodaFormat {
    pub fn new(pattern: &str) -> Result<JodaFormat, String> {
        // Tokens first: (letter, count) or literal text.
        let mut tokens: Vec<Result<(char, usize), String>> = Vec::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_alphabetic() {
                let n = chars[i..].iter().take_while(|x| **x == c).count();
                tokens.push(Ok((c, n)));
                i += n;
            } else if c == '\'' {
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => break,
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            lit.push(*ch);
                            i += 1;
                        }
                    }
                }
                if lit.is_empty() {
                    lit.push('\'');
                }
                tokens.push(Err(lit));
            } else {
                tokens.push(Err(c.to_string()));
                i += 1;
            }
        }
        let mut items = Vec::new();
        for (t, tok) in tokens.iter().enumerate() {
            let (letter, count) = match tok {
                Err(lit) => {
                    items.push(Item::Literal(lit.clone()));
                    continue;
                }
                Ok(x) => *x,
            };
            let next_numeric = matches!(tokens.get(t + 1), Some(Ok((l, n))) if numeric(*l, *n));
            let num = |field| Item::Number { field, max: 2 };
            items.push(match letter {
                'y' | 'Y' if count == 2 => Item::Number {
                    field: Field::TwoDigitYear {
                        lenient: !next_numeric,
                    },
                    max: if next_numeric { 2 } else { 9 },
                },
                'y' | 'Y' => Item::Number {
                    field: Field::Year,
                    max: if next_numeric { count } else { 9 },
                },
                'M' if count >= 3 => Item::MonthText,
                'M' => num(Field::Month),
                'd' => num(Field::Day),
                'H' => num(Field::Hour24),
                'k' => num(Field::ClockHour24),
                'h' => num(Field::ClockHour12),
                'K' => num(Field::Hour12),
                'm' => num(Field::Minute),
                's' => num(Field::Second),
                'S' => Item::Number {
                    field: Field::Fraction,
                    max: if next_numeric { count } else { 9 },
                },
                'E' => Item::DayOfWeekText,
                'a' => Item::HalfDay,
                'Z' if count <= 2 => Item::Offset,
                'Z' => Item::ZoneId,
                other => {
                    let what = match other {
                        'G' => "era",
                        'C' => "century of era",
                        'x' => "week year",
                        'w' => "week of week year",
                        'e' => "day of week as a number",
                        'D' => "day of year",
                        'z' => "time zone name (Joda cannot parse it either)",
                        _ => "not a Joda pattern letter",
                    };
                    return Err(format!(
                        "date pattern '{pattern}': letter '{other}' ({what}) is not supported by flume-fast \
                         (supported: y Y M d H k h K m s S E a Z, and quoted 'text')"
                    ));
                }
            });
        }
        let year = jiff::Zoned::now().year() as i32;
        Ok(JodaFormat {
            items,
            pivot: year - 30,
        })
    }

    /// Parses all of `text` into epoch milliseconds (Joda's `parseDateTime(text).getMillis()`).
    pub fn parse_millis(&self, text: &str) -> Result<i64, String> {
        let bad = |at: usize| {
            format!(
                "Invalid format: \"{text}\" is malformed at \"{}\"",
                &text[at..]
            )
        };
        let b = text.as_bytes();
        let mut pos = 0;
        let (mut year, mut month, mut day) = (1970i32, 1i32, 1i32);
        let (mut hour, mut minute, mut second, mut nanos) = (0i32, 0i32, 0i32, 0i32);
        let mut pm: Option<bool> = None;
        let mut hour12 = false;
        let mut zone: Option<TimeZone> = None;
        for item in &self.items {
            match item {
                Item::Literal(l) => {
                    if !text[pos..].starts_with(l.as_str()) {
                        return Err(bad(pos));
                    }
                    pos += l.len();
                }
                Item::Number { field, max } => {
                    let start = pos;
                    let neg = *field == Field::Year && b.get(pos) == Some(&b'-');
                    if neg || (*field == Field::Year && b.get(pos) == Some(&b'+')) {
                        pos += 1;
                    }
                    let digits = b[pos..]
                        .iter()
                        .take(*max)
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    if digits == 0 {
                        return Err(bad(start));
                    }
                    let s = &text[pos..pos + digits];
                    pos += digits;
                    let v: i64 = s.parse().map_err(|_| bad(start))?;
                    let v32 = if neg { -v } else { v }.clamp(-999_999_999, 999_999_999) as i32;
                    match field {
                        Field::Year => year = v32,
                        Field::TwoDigitYear { lenient } => {
                            if *lenient && digits != 2 {
                                year = v32;
                            } else {
                                let low = self.pivot - 50;
                                let mut y = low - low.rem_euclid(100) + v32;
                                if y < low {
                                    y += 100;
                                }
                                year = y;
                            }
                        }
                        Field::Month => month = v32,
                        Field::Day => day = v32,
                        Field::Hour24 => hour = v32,
                        Field::ClockHour24 => {
                            if !(1..=24).contains(&v32) {
                                return Err(format!("Cannot parse \"{text}\": clockhourOfDay {v32} must be in [1,24]"));
                            }
                            hour = v32 % 24
                        }
                        Field::ClockHour12 => {
                            if !(1..=12).contains(&v32) {
                                return Err(format!("Cannot parse \"{text}\": clockhourOfHalfday {v32} must be in [1,12]"));
                            }
                            hour12 = true;
                            hour = v32 % 12
                        }
                        Field::Hour12 => {
                            if !(0..=11).contains(&v32) {
                                return Err(format!("Cannot parse \"{text}\": hourOfHalfday {v32} must be in [0,11]"));
                            }
                            hour12 = true;
                            hour = v32
                        }
                        Field::Minute => minute = v32,
                        Field::Second => second = v32,
                        Field::Fraction => {
                            let mut n: i64 = s[..digits.min(9)].parse().unwrap_or(0);
                            for _ in digits..9 {
                                n *= 10;
                            }
                            // Joda keeps milliseconds.
                            nanos = (n / 1_000_000 * 1_000_000) as i32;
                        }
                    }
                }
                Item::MonthText => {
                    let (m, len) = word(&text[pos..], &MONTHS).ok_or_else(|| bad(pos))?;
                    month = m as i32 + 1;
                    pos += len;
                }
                Item::DayOfWeekText => {
                    let (_, len) = word(&text[pos..], &DAYS).ok_or_else(|| bad(pos))?;
                    pos += len;
                }
                Item::HalfDay => {
                    let (h, len) = word(&text[pos..], &["am", "pm"]).ok_or_else(|| bad(pos))?;
                    pm = Some(h == 1);
                    pos += len;
                }
                Item::Offset => {
                    let rest = &text[pos..];
                    if rest.starts_with('Z') {
                        zone = Some(TimeZone::UTC);
                        pos += 1;
                        continue;
                    }
                    let sign = match rest.as_bytes().first() {
                        Some(b'+') => 1,
                        Some(b'-') => -1,
                        _ => return Err(bad(pos)),
                    };
                    let r = &rest.as_bytes()[1..];
                    let two = |s: &[u8]| -> Option<i32> {
                        (s.len() >= 2 && s[0].is_ascii_digit() && s[1].is_ascii_digit())
                            .then(|| ((s[0] - b'0') * 10 + (s[1] - b'0')) as i32)
                    };
                    let h = two(r).ok_or_else(|| bad(pos))?;
                    let mut used = 3;
                    let mut m = 0;
                    let after = &r[2..];
                    if after.first() == Some(&b':') {
                        if let Some(v) = two(&after[1..]) {
                            m = v;
                            used += 3;
                        }
                    } else if let Some(v) = two(after) {
                        m = v;
                        used += 2;
                    }
                    let secs = sign * (h * 3600 + m * 60);
                    let off = Offset::from_seconds(secs).map_err(|_| bad(pos))?;
                    zone = Some(TimeZone::fixed(off));
                    pos += used;
                }
                Item::ZoneId => {
                    let len = text[pos..]
                        .bytes()
                        .take_while(|c| c.is_ascii_alphanumeric() || b"_/+-".contains(c))
                        .count();
                    let id = &text[pos..pos + len];
                    zone = Some(TimeZone::get(id).map_err(|_| bad(pos))?);
                    pos += len;
                }
            }
        }
        if pos != text.len() {
            return Err(bad(pos));
        }
        // With H or k the hour of day wins over 'a' (Joda applies the finer field last).
        if hour12 && pm == Some(true) {
            hour += 12;
        }
        let to_i8 = |v: i32| {
            i8::try_from(v)
                .map_err(|_| format!("Cannot parse \"{text}\": value {v} is out of range"))
        };
        let dt = DateTime::new(
            i16::try_from(year)
                .map_err(|_| format!("Cannot parse \"{text}\": year {year} is out of range"))?,
            to_i8(month)?,
            to_i8(day)?,
            to_i8(hour)?,
            to_i8(minute)?,
            to_i8(second)?,
            nanos,
        )
        .map_err(|e| format!("Cannot parse \"{text}\": {e}"))?;
        let tz = zone.unwrap_or_else(TimeZone::system);
        let ts = tz
            .to_timestamp(dt)
            .map_err(|e| format!("Cannot parse \"{text}\": {e}"))?;
        Ok(ts.as_millisecond())
    }
}

/// The longest of `names` (or their three-letter forms) that `text` starts with,
/// case-insensitively: (index, length in bytes).
fn word(text: &str, names: &[&str]) -> Option<(usize, usize)> {
    let lower = text
        .get(..text.len().min(12))
        .unwrap_or(text)
        .to_ascii_lowercase();
    let mut best: Option<(usize, usize)> = None;
    for (i, n) in names.iter().enumerate() {
        for cand in [*n, &n[..3.min(n.len())]] {
            if lower.starts_with(cand) && best.is_none_or(|b| cand.len() > b.1) {
                best = Some((i, cand.len()));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(p: &str, t: &str) -> i64 {
        JodaFormat::new(p).unwrap().parse_millis(t).unwrap()
    }

    #[test]
    fn parses_common_patterns() {
        // The Flume user guide's example pattern.
        assert_eq!(
            ms("yyyy-MM-dd HH:mmZ", "2012-10-18 18:47+0000"),
            1350586020000
        );
        assert_eq!(
            ms(
                "yyyy-MM-dd'T'HH:mm:ss.SSSZZ",
                "2012-10-18T18:47:01.250-01:00"
            ),
            1350589621250
        );
        assert_eq!(ms("yyyyMMddHHmmssZ", "20121018184701+0000"), 1350586021000);
        assert_eq!(
            ms("dd/MMM/yyyy:HH:mm:ss Z", "18/Oct/2012:18:47:01 +0000"),
            1350586021000
        );
        assert_eq!(
            ms(
                "EEE, d MMMM yyyy h:mm a Z",
                "Thu, 18 October 2012 6:47 PM +0000"
            ),
            1350586020000
        );
        assert_eq!(
            ms("yyyy-MM-dd HH:mm ZZZ", "2012-10-18 20:47 Europe/Paris"),
            1350586020000
        );
        assert_eq!(ms("yy-MM-dd Z", "12-10-18 +0000"), 1350518400000);
    }

    #[test]
    fn refuses_trailing_text_bad_values_and_unknown_letters() {
        let f = JodaFormat::new("yyyy-MM-dd Z").unwrap();
        assert!(f.parse_millis("2012-10-18 +0000 x").is_err());
        assert!(f.parse_millis("2012-13-18 +0000").is_err());
        assert!(f.parse_millis("2012-10-18").is_err());
        let e = JodaFormat::new("yyyy-DDD").unwrap_err();
        assert!(e.contains("'D'") && e.contains("day of year"), "{e}");
        assert!(JodaFormat::new("HH:mm z").unwrap_err().contains("'z'"));
    }
}
