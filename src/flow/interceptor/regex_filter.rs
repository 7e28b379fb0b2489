//! The regex_filter interceptor (`regex_filter`): keeps, or with `excludeEvents` drops,
//! the events whose body (as UTF-8) matches a regex.

use super::{regex, Interceptor};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use regex::Regex;

const KEYS: &[KeySpec] = &[
    KeySpec::new(
        "regex",
        KeyKind::Str,
        Some(".*"),
        "Regular expression matched against the body as UTF-8",
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
    pub regex: Regex,
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
        let pattern = k.str("regex")?;
        Ok(RegexFilter {
            regex: regex(k, "regex", &pattern)?,
            exclude: k.bool("excludeEvents")?,
        })
    }
}

impl Interceptor for RegexFilter {
    fn apply(&self, events: &mut Vec<Event>, _: u64) {
        events.retain(|e| {
            let matched = self.regex.is_match(&String::from_utf8_lossy(&e.body));
            matched != self.exclude
        });
    }
}
