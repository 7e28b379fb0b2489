//! Sink processors (sink groups): `default` (one sink), `failover` (highest priority live
//! sink, failed sinks penalised) and `load_balance` (round_robin or random, optional backoff).

use crate::config::keys::{KeyKind, KeySpec, Keys, Resolved, TypeInfo};
use crate::config::{ConfigError, Loc, Prop};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessorConfig {
    Default,
    Failover {
        /// Priority per member (same order as the group's sinks); higher goes first.
        priorities: Vec<i64>,
        max_penalty: Duration,
    },
    LoadBalance {
        backoff: bool,
        random: bool,
        max_timeout: Duration,
    },
}

const DEFAULT_KEYS: &[KeySpec] = &[];
const FAILOVER_KEYS: &[KeySpec] = &[
    KeySpec::new(
        "priority.*",
        KeyKind::Prefix,
        None,
        "priority.<sink> = N: higher values are tried first",
    ),
    KeySpec::new(
        "maxpenalty",
        KeyKind::POSITIVE,
        Some("30000"),
        "Longest back-off of a failed sink, in milliseconds",
    ),
];
const LB_KEYS: &[KeySpec] = &[
    KeySpec::new(
        "backoff",
        KeyKind::Bool,
        Some("false"),
        "Exclude failed sinks for an exponentially growing time",
    ),
    KeySpec::new(
        "selector",
        KeyKind::Choice(&["round_robin", "random"]),
        Some("round_robin"),
        "Selection order",
    ),
    KeySpec::new(
        "selector.maxTimeOut",
        KeyKind::POSITIVE,
        Some("30000"),
        "Longest back-off of a failed sink, in milliseconds",
    ),
];

pub static TYPES: &[TypeInfo] = &[
    TypeInfo {
        aliases: &["default"],
        class: "org.apache.flume.sink.DefaultSinkProcessor",
        doc: "A single sink, no group behaviour.",
        keys: DEFAULT_KEYS,
    },
    TypeInfo {
        aliases: &["failover"],
        class: "org.apache.flume.sink.FailoverSinkProcessor",
        doc: "Sends to the live sink with the highest priority; failed sinks are retried after a penalty.",
        keys: FAILOVER_KEYS,
    },
    TypeInfo {
        aliases: &["load_balance"],
        class: "org.apache.flume.sink.LoadBalancingSinkProcessor",
        doc: "Spreads batches over the group's sinks.",
        keys: LB_KEYS,
    },
];

pub fn configure(
    group: &str,
    prefix: &str,
    props: &BTreeMap<String, Prop>,
    decl: Loc,
    members: &[&str],
    warnings: &mut Vec<String>,
    resolved: &mut Vec<Resolved>,
) -> Result<ProcessorConfig, ConfigError> {
    let ty = props
        .get("type")
        .map(|p| p.value.trim())
        .unwrap_or("default");
    let info = TYPES.iter().find(|t| t.matches(ty)).ok_or_else(|| {
        let p = &props["type"];
        ConfigError::Key {
            loc: p.loc.clone(),
            key: p.key.clone(),
            msg: crate::config::registry::unknown_type(
                "sink processor",
                ty,
                &["default", "failover", "load_balance"],
            ),
        }
    })?;
    let label = format!("the processor of sink group '{group}'");
    let mut k = Keys::new(&label, prefix, info.keys, props, decl);
    let cfg = match info.name() {
        "default" => {
            if members.len() > 1 {
                return Err(k.invalid(
                    "type",
                    format!(
                        "the default processor drives one sink, sink group '{group}' has {}",
                        members.len()
                    ),
                ));
            }
            ProcessorConfig::Default
        }
        "failover" => {
            let max_penalty = k.millis("maxpenalty")?;
            let mut priorities = vec![0i64; members.len()];
            for (name, p) in k.prefixed("priority") {
                let Some(pos) = members.iter().position(|m| *m == name) else {
                    return Err(ConfigError::Key {
                        loc: p.loc.clone(),
                        key: p.key.clone(),
                        msg: format!(
                            "'{name}' is not a sink of group '{group}' ({})",
                            members.join(" ")
                        ),
                    });
                };
                priorities[pos] = p.value.trim().parse().map_err(|_| ConfigError::Key {
                    loc: p.loc.clone(),
                    key: p.key.clone(),
                    msg: format!("expected an integer priority, found '{}'", p.value.trim()),
                })?;
                resolved.push(Resolved {
                    key: format!("processor.priority.{name}"),
                    value: priorities[pos].to_string(),
                    defaulted: false,
                });
            }
            ProcessorConfig::Failover {
                priorities,
                max_penalty,
            }
        }
        "load_balance" => ProcessorConfig::LoadBalance {
            backoff: k.bool("backoff")?,
            random: k.choice("selector")? == "random",
            max_timeout: k.millis("selector.maxTimeOut")?,
        },
        // A type in TYPES without its arm here fails every_registered_type_builds_from_its_required_keys.
        other => unreachable!("sink processor type {other} registered but not built"),
    };
    warnings.extend(k.unknown_keys(&["type"]));
    resolved.extend(k.resolved);
    Ok(cfg)
}
