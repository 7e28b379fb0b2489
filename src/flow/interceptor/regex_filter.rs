//! The regex_filter interceptor (`regex_filter`): keeps, or with `excludeEvents` drops,
//! the events whose body (as UTF-8) contains a match of a Java regex (`find()`).

use super::{Interceptor, JavaRegex};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "regex",
        KeyKind::Str,
        Some(".*"),
        "Java regular expression searched for in the body as UTF-8",
    ),
    KeySpec::new(
        "excludeEvents",
        KeyKind::Bool,
        Some("false"),
        "Drop matching events instead of keeping them",
    ),
];

#[derive(Debug, Clone)]
pub struct RegexFilter {
    pub regex: JavaRegex,
    pub exclude: bool,
}

impl Component for RegexFilter {
    const TYPE: TypeInfo = TypeInfo {
        aliases: &["regex_filter"],
        class: "org.apache.flume.interceptor.RegexFilteringInterceptor$Builder",
        doc: "Keeps (or drops, with excludeEvents) events whose body matches a regex.",
        keys: KEYS,
    };
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let pattern = k.verbatim("regex")?.unwrap_or_default();
        Ok(RegexFilter {
            regex: JavaRegex::compile(k, "regex", &pattern)?,
            exclude: k.bool("excludeEvents")?,
        })
    }
}

impl Interceptor for RegexFilter {
    fn apply(&self, events: &mut Vec<Event>, _: u64) {
        events.retain(|e| {
            let matched = match std::str::from_utf8(&e.body) {
                Ok(s) => self.regex.is_match(s),
                Err(_) => self.regex.is_match(&String::from_utf8_lossy(&e.body)),
            };
            matched != self.exclude
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn bodies(evs: &[Event]) -> Vec<&[u8]> {
        evs.iter().map(|e| &e.body[..]).collect()
    }

    #[test]
    fn keeps_or_drops_on_find() {
        let mut evs: Vec<Event> = ["error: x", "info: y", "an error"]
            .iter()
            .map(|b| Event::new(Bytes::from_static(b.as_bytes())))
            .collect();
        let keep = RegexFilter {
            regex: JavaRegex::new("error").unwrap(),
            exclude: false,
        };
        let mut kept = evs.clone();
        keep.apply(&mut kept, 0);
        assert_eq!(bodies(&kept), [&b"error: x"[..], b"an error"]);
        let drop = RegexFilter {
            regex: JavaRegex::new("^error").unwrap(),
            exclude: true,
        };
        drop.apply(&mut evs, 0);
        assert_eq!(bodies(&evs), [&b"info: y"[..], b"an error"]);
    }
}
