//! Channel selectors: which of a source's channels each event goes to, one file per type.
//! `replicating` (Flume's default) sends every event to every channel; `multiplexing`
//! routes on a header; `load_balancing` (Flume 1.10+) sends each event to one channel in
//! turn or at random. Channels named optional may refuse an event without failing the
//! put, as in Flume.

mod load_balancing;
mod multiplexing;
mod replicating;

pub use load_balancing::Policy;

use crate::config::keys::TypeInfo;
use crate::config::{ConfigError, Loc, Prop};
use crate::event::Event;
use std::cell::Cell;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorConfig {
    /// Positions (in the source's channel list) of the optional channels.
    Replicating {
        optional: Vec<usize>,
    },
    Multiplexing {
        header: String,
        /// header value → required channel positions (never empty).
        mapping: BTreeMap<String, Vec<usize>>,
        /// header value → optional channel positions, less the value's required ones.
        optional: BTreeMap<String, Vec<usize>>,
        default: Vec<usize>,
    },
    LoadBalancing {
        policy: Policy,
    },
}

/// One put the selector asks for: channel position, events, and whether the channel is
/// required (a refusal fails the delivery) or optional (a refusal is only logged).
pub type Route = (usize, Vec<Event>, bool);

impl SelectorConfig {
    /// Splits a batch into sub-batches per channel, required ones first, as Flume's
    /// ChannelProcessor does; `next` is the round-robin position of this source's
    /// selector in this shard. Events are cloned per channel (bodies are shared).
    pub fn route(&self, n_channels: usize, batch: Vec<Event>, next: &Cell<usize>) -> Vec<Route> {
        match self {
            SelectorConfig::Replicating { optional } => {
                replicating::route(optional, n_channels, batch)
            }
            SelectorConfig::Multiplexing {
                header,
                mapping,
                optional,
                default,
            } => multiplexing::route(header, mapping, optional, default, n_channels, batch),
            SelectorConfig::LoadBalancing { policy } => {
                load_balancing::route(*policy, n_channels, batch, next)
            }
        }
    }

    /// Whether a source with one channel can put every event into it, required, without
    /// asking the selector.
    pub fn all_to_the_only_channel(&self) -> bool {
        match self {
            SelectorConfig::Replicating { optional } => optional.is_empty(),
            SelectorConfig::LoadBalancing { .. } => true,
            SelectorConfig::Multiplexing { .. } => false,
        }
    }
}

/// The selector types, for `describe` and the docs. `configure` below matches the same
/// names (Flume compares selector types case-insensitively); a test keeps the two in step.
pub static TYPES: &[TypeInfo] = &[replicating::TYPE, multiplexing::TYPE, load_balancing::TYPE];

pub const KEYS_DOC: &str = "selector.type = replicating (selector.optional = CH ...) | \
multiplexing (selector.header, selector.mapping.<value>, selector.optional.<value>, selector.default) | \
load_balancing (selector.policy = round_robin | random)";

/// What a selector type's `configure` gets: the source, its channels and the
/// `selector.*` keys.
pub(crate) struct Ctx<'a> {
    source: &'a str,
    ty: &'a str,
    channels: &'a [&'a str],
}

impl Ctx<'_> {
    /// The positions of the channels a key names (space-separated).
    fn positions(&self, p: &Prop) -> Result<Vec<usize>, ConfigError> {
        p.value
            .split_whitespace()
            .map(|name| {
                self.channels
                    .iter()
                    .position(|c| *c == name)
                    .ok_or_else(|| ConfigError::Key {
                        loc: p.loc.clone(),
                        key: p.key.clone(),
                        msg: format!(
                            "channel '{name}' is not one of source '{}''s channels ({})",
                            self.source,
                            self.channels.join(" ")
                        ),
                    })
            })
            .collect()
    }

    fn unknown(&self, k: &str, p: &Prop, warnings: &mut Vec<String>) {
        warnings.push(format!(
            "{}: {}: unknown key '{k}' for the {} selector of source '{}' is ignored",
            p.loc, p.key, self.ty, self.source
        ))
    }
}

pub fn configure(
    source: &str,
    props: &BTreeMap<String, Prop>,
    decl: Loc,
    channels: &[&str],
    warnings: &mut Vec<String>,
) -> Result<SelectorConfig, ConfigError> {
    let ty = props
        .get("type")
        .map(|p| p.value.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "replicating".into());
    let ctx = Ctx {
        source,
        ty: &ty,
        channels,
    };
    let is = |t: &TypeInfo| t.name() == ty || t.class.eq_ignore_ascii_case(&ty);
    if is(&replicating::TYPE) {
        replicating::configure(&ctx, props, warnings)
    } else if is(&multiplexing::TYPE) {
        multiplexing::configure(&ctx, props, warnings)
    } else if is(&load_balancing::TYPE) {
        load_balancing::configure(&ctx, props, warnings)
    } else {
        let p = props.get("type");
        Err(ConfigError::Key {
            loc: p.map(|p| p.loc.clone()).unwrap_or(decl),
            key: p.map(|p| p.key.clone()).unwrap_or_default(),
            msg: crate::config::registry::unknown_type(
                "selector",
                p.map_or(ty.as_str(), |p| p.value.trim()),
                &["replicating", "multiplexing", "load_balancing"],
            ),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::Headers;
    use bytes::Bytes;
    use std::path::Path;
    use std::sync::Arc;

    pub(crate) fn ev(h: &str) -> Event {
        let mut headers = Headers::new();
        headers.set("state", h.to_string());
        Event::with_headers(headers, Bytes::from(h.to_string()))
    }

    /// (position, bodies, required) of each route.
    pub(crate) fn summary(routed: &[Route]) -> Vec<(usize, Vec<&str>, bool)> {
        routed
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
            .collect()
    }

    /// Configures a selector of source `r1` with channels c1 c2 c3 from `key = value`s.
    pub(crate) fn configured(
        kv: &[(&str, &str)],
    ) -> Result<(SelectorConfig, Vec<String>), ConfigError> {
        let loc = Loc {
            file: Arc::from(Path::new("test.conf")),
            line: 1,
        };
        let props = kv
            .iter()
            .map(|(k, v)| {
                let p = Prop {
                    key: format!("a1.sources.r1.selector.{k}"),
                    value: v.to_string(),
                    loc: loc.clone(),
                };
                (k.to_string(), p)
            })
            .collect();
        let mut warnings = Vec::new();
        let sel = configure("r1", &props, loc, &["c1", "c2", "c3"], &mut warnings)?;
        Ok((sel, warnings))
    }

    #[test]
    fn types_are_case_insensitive_and_classes_accepted() {
        for (ty, want) in [
            ("REPLICATING", "replicating"),
            ("Multiplexing", "multiplexing"),
            ("LOAD_BALANCING", "load_balancing"),
            (
                "org.apache.flume.channel.LoadBalancingChannelSelector",
                "load_balancing",
            ),
        ] {
            let (sel, _) = configured(&[("type", ty)]).unwrap();
            let got = match sel {
                SelectorConfig::Replicating { .. } => "replicating",
                SelectorConfig::Multiplexing { .. } => "multiplexing",
                SelectorConfig::LoadBalancing { .. } => "load_balancing",
            };
            assert_eq!(got, want, "{ty}");
        }
        let e = configured(&[("type", "roundrobin")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("selector.type") && e.contains("roundrobin"),
            "{e}"
        );
    }
}
