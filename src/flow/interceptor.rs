//! Interceptors: per-source event transformations applied to a whole batch before the
//! channel selector, in the order the source's `interceptors` key lists them.
//! Supported: timestamp, host, static, remove_header, regex_filter (Flume's keys and defaults).

use crate::config::keys::{KeyKind, KeySpec, Keys, Resolved, TypeInfo};
use crate::config::{ConfigError, Loc, Prop};
use crate::event::Event;
use regex::Regex;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub enum InterceptorConfig {
    Timestamp {
        header: String,
        preserve_existing: bool,
    },
    Host {
        header: String,
        preserve_existing: bool,
        /// The value, resolved once at configuration time.
        value: String,
    },
    Static {
        key: String,
        value: String,
        preserve_existing: bool,
    },
    RemoveHeader {
        names: Vec<String>,
        matching: Option<Regex>,
    },
    RegexFilter {
        regex: Regex,
        exclude: bool,
    },
}

const TIMESTAMP_KEYS: &[KeySpec] = &[
    KeySpec::new(
        "headerName",
        KeyKind::Str,
        Some("timestamp"),
        "Header that receives the time in epoch milliseconds",
    ),
    KeySpec::new(
        "preserveExisting",
        KeyKind::Bool,
        Some("false"),
        "Keep a timestamp header that is already set",
    ),
];
const HOST_KEYS: &[KeySpec] = &[
    KeySpec::new(
        "hostHeader",
        KeyKind::Str,
        Some("host"),
        "Header that receives the host",
    ),
    KeySpec::new(
        "useIP",
        KeyKind::Bool,
        Some("true"),
        "Use the IP address (true) or the host name (false)",
    ),
    KeySpec::new(
        "preserveExisting",
        KeyKind::Bool,
        Some("false"),
        "Keep a host header that is already set",
    ),
];
const STATIC_KEYS: &[KeySpec] = &[
    KeySpec::new("key", KeyKind::Str, Some("key"), "Header name"),
    KeySpec::new("value", KeyKind::Str, Some("value"), "Header value"),
    KeySpec::new(
        "preserveExisting",
        KeyKind::Bool,
        Some("true"),
        "Keep the header when already set",
    ),
];
const REMOVE_KEYS: &[KeySpec] = &[
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
const REGEX_FILTER_KEYS: &[KeySpec] = &[
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

pub static TYPES: &[TypeInfo] = &[
    TypeInfo {
        aliases: &["timestamp"],
        class: "org.apache.flume.interceptor.TimestampInterceptor$Builder",
        doc: "Sets a header to the time of interception in epoch milliseconds.",
        keys: TIMESTAMP_KEYS,
    },
    TypeInfo {
        aliases: &["host"],
        class: "org.apache.flume.interceptor.HostInterceptor$Builder",
        doc: "Sets a header to this agent's host name or IP address.",
        keys: HOST_KEYS,
    },
    TypeInfo {
        aliases: &["static"],
        class: "org.apache.flume.interceptor.StaticInterceptor$Builder",
        doc: "Sets a fixed header on every event.",
        keys: STATIC_KEYS,
    },
    TypeInfo {
        aliases: &["remove_header"],
        class: "org.apache.flume.interceptor.RemoveHeaderInterceptor$Builder",
        doc: "Removes headers by name, list or regex.",
        keys: REMOVE_KEYS,
    },
    TypeInfo {
        aliases: &["regex_filter"],
        class: "org.apache.flume.interceptor.RegexFilteringInterceptor$Builder",
        doc: "Keeps (or drops, with excludeEvents) events whose body matches a regex.",
        keys: REGEX_FILTER_KEYS,
    },
];

fn regex(keys: &Keys, key: &str, pattern: &str) -> Result<Regex, ConfigError> {
    Regex::new(pattern).map_err(|e| keys.invalid(key, format!("invalid regular expression: {e}")))
}

/// Builds the source's interceptor chain from `interceptors` and `interceptors.<name>.*`.
pub fn configure(
    source: &str,
    prefix: &str,
    props: &BTreeMap<String, Prop>,
    decl: Loc,
    warnings: &mut Vec<String>,
    resolved: &mut Vec<Resolved>,
) -> Result<Vec<InterceptorConfig>, ConfigError> {
    let Some(list) = props.get("interceptors") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in list.value.split_whitespace() {
        let sub = crate::config::sub_props(props, &format!("interceptors.{name}"));
        let Some(ty) = sub.get("type") else {
            return Err(ConfigError::Key {
                loc: list.loc.clone(),
                key: list.key.clone(),
                msg: format!(
                    "interceptor '{name}' of source '{source}' has no interceptors.{name}.type"
                ),
            });
        };
        let info = TYPES
            .iter()
            .find(|t| t.matches(ty.value.trim()))
            .ok_or_else(|| ConfigError::Key {
                loc: ty.loc.clone(),
                key: ty.key.clone(),
                msg: format!(
                    "interceptor type '{}' is not supported by flume-fast (supported: {})",
                    ty.value.trim(),
                    TYPES
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        let label = format!("interceptor '{name}' of source '{source}'");
        let mut k = Keys::new(
            &label,
            &format!("{prefix}.interceptors.{name}"),
            info.keys,
            &sub,
            decl.clone(),
        );
        let cfg = match info.name() {
            "timestamp" => InterceptorConfig::Timestamp {
                header: k.str("headerName")?,
                preserve_existing: k.bool("preserveExisting")?,
            },
            "host" => {
                let header = k.str("hostHeader")?;
                let use_ip = k.bool("useIP")?;
                InterceptorConfig::Host {
                    header,
                    preserve_existing: k.bool("preserveExisting")?,
                    value: crate::runtime::host::local_host(use_ip),
                }
            }
            "static" => InterceptorConfig::Static {
                key: k.str("key")?,
                value: k.str("value")?,
                preserve_existing: k.bool("preserveExisting")?,
            },
            "remove_header" => {
                let mut names: Vec<String> = k.opt_str("withName")?.into_iter().collect();
                let sep = k.str("fromListSeparator")?;
                if let Some(list) = k.opt_str("fromList")? {
                    let sep = regex(&k, "fromListSeparator", &sep)?;
                    names.extend(
                        sep.split(&list)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                    );
                }
                let matching = match k.opt_str("matching")? {
                    Some(p) => Some(regex(&k, "matching", &p)?),
                    None => None,
                };
                InterceptorConfig::RemoveHeader { names, matching }
            }
            "regex_filter" => {
                let pattern = k.str("regex")?;
                InterceptorConfig::RegexFilter {
                    regex: regex(&k, "regex", &pattern)?,
                    exclude: k.bool("excludeEvents")?,
                }
            }
            other => unreachable!("interceptor type {other} listed but not built"),
        };
        warnings.extend(k.unknown_keys(&["type"]));
        resolved.extend(k.resolved.into_iter().map(|mut r| {
            r.key = format!("interceptors.{name}.{}", r.key);
            r
        }));
        out.push(cfg);
    }
    Ok(out)
}

impl InterceptorConfig {
    /// Applies this interceptor to a whole batch; `now_ms` is read once per batch.
    pub fn apply(&self, events: &mut Vec<Event>, now_ms: u64) {
        match self {
            InterceptorConfig::Timestamp {
                header,
                preserve_existing,
            } => {
                let now = bytestring::ByteString::from(now_ms.to_string());
                let header = bytestring::ByteString::from(header.as_str());
                for e in events.iter_mut() {
                    if *preserve_existing {
                        e.headers.set_if_absent(header.clone(), now.clone());
                    } else {
                        e.headers.set(header.clone(), now.clone());
                    }
                }
            }
            InterceptorConfig::Host {
                header,
                preserve_existing,
                value,
            }
            | InterceptorConfig::Static {
                key: header,
                value,
                preserve_existing,
            } => {
                let header = bytestring::ByteString::from(header.as_str());
                let value = bytestring::ByteString::from(value.as_str());
                for e in events.iter_mut() {
                    if *preserve_existing {
                        e.headers.set_if_absent(header.clone(), value.clone());
                    } else {
                        e.headers.set(header.clone(), value.clone());
                    }
                }
            }
            InterceptorConfig::RemoveHeader { names, matching } => {
                for e in events.iter_mut() {
                    e.headers.retain(|k, _| {
                        !names.iter().any(|n| n == k)
                            && !matching.as_ref().is_some_and(|m| m.is_match(k))
                    });
                }
            }
            InterceptorConfig::RegexFilter { regex, exclude } => {
                events.retain(|e| {
                    let matched = regex.is_match(&String::from_utf8_lossy(&e.body));
                    matched != *exclude
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn chain_applies_in_order() {
        let mut evs = vec![
            Event::new(Bytes::from_static(b"keep me")),
            Event::new(Bytes::from_static(b"drop")),
        ];
        let chain = [
            InterceptorConfig::Static {
                key: "dc".into(),
                value: "eu".into(),
                preserve_existing: true,
            },
            InterceptorConfig::Timestamp {
                header: "timestamp".into(),
                preserve_existing: false,
            },
            InterceptorConfig::RegexFilter {
                regex: Regex::new("^drop$").unwrap(),
                exclude: true,
            },
            InterceptorConfig::RemoveHeader {
                names: vec!["dc".into()],
                matching: None,
            },
        ];
        for i in &chain {
            i.apply(&mut evs, 1234);
        }
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].headers.to_string(), "{timestamp=1234}");
    }
}
