//! The remove_header interceptor (`remove_header`): removes headers by name, by a
//! separated list, or by a Java regex that the whole name matches (`matches()`, as Flume).

use super::{Interceptor, JavaRegex};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;

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
        "Java regex separating fromList (String.split)",
    ),
    KeySpec::new(
        "matching",
        KeyKind::Str,
        None,
        "Remove every header whose whole name matches this Java regex",
    ),
];

#[derive(Debug, Clone)]
pub struct RemoveHeader {
    pub names: Vec<String>,
    pub matching: Option<JavaRegex>,
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
        let sep = k.verbatim("fromListSeparator")?.unwrap_or_default();
        if let Some(list) = k.verbatim("fromList")? {
            let sep = JavaRegex::compile(k, "fromListSeparator", &sep)?;
            names.extend(sep.split(&list).into_iter().map(str::to_string));
        }
        let matching = match k.verbatim("matching")? {
            Some(p) => Some(JavaRegex::compile_whole(k, "matching", &p)?),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Headers;
    use bytes::Bytes;

    #[test]
    fn removes_by_name_list_and_whole_name_match() {
        let ri: RemoveHeader = super::super::from_pairs(&[
            ("withName", "a"),
            ("fromList", "b ; c"),
            ("fromListSeparator", "\\s*;\\s*"),
            ("matching", "x.*"),
        ])
        .unwrap();
        let mut h = Headers::new();
        for n in ["a", "b", "c", "d", "xyz", "axe"] {
            h.set(n.to_string(), "v".to_string());
        }
        let mut evs = vec![Event::with_headers(h, Bytes::new())];
        ri.apply(&mut evs, 0);
        // "axe" contains a match of x.* but its whole name does not match.
        assert_eq!(evs[0].headers.to_string(), "{d=v, axe=v}");
    }
}
