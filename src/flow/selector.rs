//! Channel selectors: which of a source's channels each event goes to. `replicating`
//! (Flume's default) sends every event to every channel; `multiplexing` routes on a header.
//! Channels named `optional` may refuse an event without failing the put, as in Flume.

use crate::config::keys::{KeyKind, KeySpec, TypeInfo};
use crate::config::{ConfigError, Loc, Prop};
use crate::event::Event;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorConfig {
    /// Positions (in the source's channel list) of the optional channels.
    Replicating { optional: Vec<usize> },
    Multiplexing {
        header: String,
        /// header value → (required, optional) channel positions.
        mapping: BTreeMap<String, (Vec<usize>, Vec<usize>)>,
        default: Vec<usize>,
    },
}

impl SelectorConfig {
    /// Splits a batch into one sub-batch per channel position, with whether that channel is
    /// required. Replicating clones events (bodies are shared `Bytes`, so this is cheap).
    pub fn route(&self, n_channels: usize, batch: Vec<Event>) -> Vec<(usize, Vec<Event>, bool)> {
        match self {
            SelectorConfig::Replicating { optional } => {
                let mut out = Vec::with_capacity(n_channels);
                for pos in 1..n_channels {
                    out.push((pos, batch.clone(), !optional.contains(&pos)));
                }
                out.insert(0, (0, batch, !optional.contains(&0)));
                out
            }
            SelectorConfig::Multiplexing {
                header,
                mapping,
                default,
            } => {
                let mut per: Vec<(Vec<Event>, bool)> = vec![(Vec::new(), false); n_channels];
                for ev in batch {
                    let (req, opt) = match ev.headers.get(header).and_then(|v| mapping.get(v)) {
                        Some((req, opt)) if !req.is_empty() => (req.as_slice(), opt.as_slice()),
                        Some((_, opt)) => (default.as_slice(), opt.as_slice()),
                        None => (default.as_slice(), &[][..]),
                    };
                    for &pos in req {
                        per[pos].0.push(ev.clone());
                        per[pos].1 = true;
                    }
                    for &pos in opt.iter().filter(|p| !req.contains(p)) {
                        per[pos].0.push(ev.clone());
                    }
                }
                per.into_iter()
                    .enumerate()
                    .filter(|(_, (evs, _))| !evs.is_empty())
                    .map(|(pos, (evs, req))| (pos, evs, req))
                    .collect()
            }
        }
    }
}

const REPLICATING_KEYS: &[KeySpec] = &[KeySpec::new(
    "optional",
    KeyKind::List,
    None,
    "Channels that may refuse an event without failing the put",
)];
const MULTIPLEXING_KEYS: &[KeySpec] = &[
    KeySpec::new(
        "header",
        KeyKind::Str,
        Some("flume.selector.header"),
        "The header whose value picks the channels",
    ),
    KeySpec::new(
        "mapping.*",
        KeyKind::Prefix,
        None,
        "mapping.<value> = CH ...: the required channels for that header value",
    ),
    KeySpec::new(
        "optional.*",
        KeyKind::Prefix,
        None,
        "optional.<value> = CH ...: channels that may refuse events with that value",
    ),
    KeySpec::new(
        "default",
        KeyKind::List,
        None,
        "Channels for events whose header value has no mapping",
    ),
];

/// The selector types, for `describe` and the docs. `configure` below matches the same
/// names (Flume compares selector types case-insensitively); a test keeps the two in step.
pub static TYPES: &[TypeInfo] = &[
    TypeInfo {
        aliases: &["replicating"],
        class: "org.apache.flume.channel.ReplicatingChannelSelector",
        doc: "Sends every event to every channel of the source (Flume's default).",
        keys: REPLICATING_KEYS,
    },
    TypeInfo {
        aliases: &["multiplexing"],
        class: "org.apache.flume.channel.MultiplexingChannelSelector",
        doc: "Sends each event to the channels mapped to the value of one header.",
        keys: MULTIPLEXING_KEYS,
    },
];

pub const KEYS_DOC: &str = "selector.type = replicating (selector.optional = CH ...) | \
multiplexing (selector.header, selector.mapping.<value>, selector.optional.<value>, selector.default)";

pub fn configure(
    source: &str,
    props: &BTreeMap<String, Prop>,
    decl: Loc,
    channels: &[&str],
    warnings: &mut Vec<String>,
) -> Result<SelectorConfig, ConfigError> {
    let positions = |p: &Prop| -> Result<Vec<usize>, ConfigError> {
        p.value
            .split_whitespace()
            .map(|name| {
                channels
                    .iter()
                    .position(|c| *c == name)
                    .ok_or_else(|| ConfigError::Key {
                        loc: p.loc.clone(),
                        key: p.key.clone(),
                        msg: format!(
                            "channel '{name}' is not one of source '{source}''s channels ({})",
                            channels.join(" ")
                        ),
                    })
            })
            .collect()
    };
    let ty = props
        .get("type")
        .map(|p| p.value.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "replicating".into());
    let unknown = |k: &str, p: &Prop, warnings: &mut Vec<String>| {
        warnings.push(format!(
            "{}: {}: unknown key '{k}' for the {ty} selector of source '{source}' is ignored",
            p.loc, p.key
        ))
    };
    match ty.as_str() {
        "replicating" | "org.apache.flume.channel.replicatingchannelselector" => {
            let mut optional = Vec::new();
            for (k, p) in props {
                match k.as_str() {
                    "type" => {}
                    "optional" => optional = positions(p)?,
                    _ => unknown(k, p, warnings),
                }
            }
            Ok(SelectorConfig::Replicating { optional })
        }
        "multiplexing" | "org.apache.flume.channel.multiplexingchannelselector" => {
            let mut header = "flume.selector.header".to_string();
            let mut mapping: BTreeMap<String, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
            let mut default = Vec::new();
            for (k, p) in props {
                if let Some(value) = k.strip_prefix("mapping.") {
                    mapping.entry(value.to_string()).or_default().0 = positions(p)?;
                } else if let Some(value) = k.strip_prefix("optional.") {
                    mapping.entry(value.to_string()).or_default().1 = positions(p)?;
                } else {
                    match k.as_str() {
                        "type" => {}
                        "header" => header = p.value.trim().to_string(),
                        "default" => default = positions(p)?,
                        _ => unknown(k, p, warnings),
                    }
                }
            }
            Ok(SelectorConfig::Multiplexing {
                header,
                mapping,
                default,
            })
        }
        other => {
            let p = props.get("type");
            Err(ConfigError::Key {
                loc: p.map(|p| p.loc.clone()).unwrap_or(decl),
                key: p.map(|p| p.key.clone()).unwrap_or_default(),
                msg: format!(
                    "selector type '{other}' is not supported by flume-fast (use replicating or multiplexing)"
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Headers;
    use bytes::Bytes;

    fn ev(h: &str) -> Event {
        let mut headers = Headers::new();
        headers.set("state", h.to_string());
        Event::with_headers(headers, Bytes::from(h.to_string()))
    }

    #[test]
    fn multiplexing_routes_by_header_with_default() {
        let sel = SelectorConfig::Multiplexing {
            header: "state".into(),
            mapping: [
                ("CA".to_string(), (vec![0], vec![2])),
                ("NY".to_string(), (vec![1], vec![])),
            ]
            .into(),
            default: vec![2],
        };
        let routed = sel.route(3, vec![ev("CA"), ev("NY"), ev("TX")]);
        let summary: Vec<(usize, Vec<&str>, bool)> = routed
            .iter()
            .map(|(p, evs, req)| {
                (
                    *p,
                    evs.iter()
                        .map(|e| std::str::from_utf8(&e.body).unwrap())
                        .collect(),
                    *req,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, vec!["CA"], true),
                (1, vec!["NY"], true),
                (2, vec!["CA", "TX"], true)
            ]
        );
    }

    #[test]
    fn replicating_marks_optional() {
        let sel = SelectorConfig::Replicating { optional: vec![1] };
        let routed = sel.route(2, vec![ev("x")]);
        assert_eq!(routed.len(), 2);
        assert!(routed[0].2 && !routed[1].2);
    }
}
