//! The remove_header interceptor (`remove_header`): removes headers by name, by a
//! separated list, or by a regex on the name.

use super::{regex, Interceptor};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use regex::Regex;

const KEYS: &[KeySpec] = &[
    KeySpec::new("withName", KeyKind::Str, None, "Name of a header to remove"),
    KeySpec::new(
        "fromList",
        KeyKind::Str,
        None,
        "Separated list of header names to remove",
    ),
    KeySpec::new(
        "fromListSeparator",
        KeyKind::Str,
        Some("\\s*,\\s*"),
        "Regex separating fromList",
    ),
    KeySpec::new(
        "matching",
        KeyKind::Str,
        None,
        "Remove every header whose name matches this regex",
    ),
];

#[derive(Debug, Clone)]
pub struct RemoveHeader {
    pub names: Vec<String>,
    pub matching: Option<Regex>,
}

impl Component for RemoveHeader {
    const TYPE: TypeInfo = TypeInfo {
        aliases: &["remove_header"],
        class: "org.apache.flume.interceptor.RemoveHeaderInterceptor$Builder",
        doc: "Removes headers by name, list or regex.",
        keys: KEYS,
    };
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let mut names: Vec<String> = k.opt_str("withName")?.into_iter().collect();
        let sep = k.str("fromListSeparator")?;
        if let Some(list) = k.opt_str("fromList")? {
            let sep = regex(k, "fromListSeparator", &sep)?;
            names.extend(
                sep.split(&list)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
        let matching = match k.opt_str("matching")? {
            Some(p) => Some(regex(k, "matching", &p)?),
            None => None,
        };
        Ok(RemoveHeader { names, matching })
    }
}

impl Interceptor for RemoveHeader {
    fn apply(&self, events: &mut Vec<Event>, _: u64) {
        for e in events.iter_mut() {
            e.headers.retain(|k, _| {
                !self.names.iter().any(|n| n == k)
                    && !self.matching.as_ref().is_some_and(|m| m.is_match(k))
            });
        }
    }
}
