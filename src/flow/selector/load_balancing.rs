//! The load_balancing selector (`load_balancing`, Flume 1.10+): each event goes to exactly
//! one channel, required, chosen per event (not per batch) in turn (`round_robin`, from
//! the first channel) or at random. Flume keeps one position per source; flume-fast keeps
//! one per source in each shard, so the turn is per shard.

use super::{Ctx, Route, SelectorConfig};
use crate::config::keys::{KeyKind, KeySpec, TypeInfo};
use crate::config::{ConfigError, Prop};
use crate::event::Event;
use std::cell::Cell;
use std::collections::BTreeMap;

const KEYS: &[KeySpec] = &[KeySpec::new(
    "policy",
    KeyKind::Choice(&["round_robin", "random"]),
    Some("round_robin"),
    "How each event's channel is chosen: round_robin or random",
)];

pub(super) const TYPE: TypeInfo = TypeInfo {
    aliases: &["load_balancing"],
    class: "org.apache.flume.channel.LoadBalancingChannelSelector",
    doc: "Sends each event to one of the source's channels, in turn or at random.",
    keys: KEYS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    RoundRobin,
    Random,
}

pub(super) fn configure(
    ctx: &Ctx,
    props: &BTreeMap<String, Prop>,
    warnings: &mut Vec<String>,
) -> Result<SelectorConfig, ConfigError> {
    let mut policy = Policy::RoundRobin;
    for (k, p) in props {
        match k.as_str() {
            "type" => {}
            // Flume: Policy.valueOf(value.toUpperCase()).
            "policy" => {
                policy = match p.value.trim().to_ascii_uppercase().as_str() {
                    "ROUND_ROBIN" => Policy::RoundRobin,
                    "RANDOM" => Policy::Random,
                    other => {
                        return Err(ConfigError::Key {
                            loc: p.loc.clone(),
                            key: p.key.clone(),
                            msg: format!("invalid policy '{other}' (round_robin or random)"),
                        })
                    }
                }
            }
            _ => ctx.unknown(k, p, warnings),
        }
    }
    Ok(SelectorConfig::LoadBalancing { policy })
}

pub(super) fn route(
    policy: Policy,
    n_channels: usize,
    batch: Vec<Event>,
    next: &Cell<usize>,
) -> Vec<Route> {
    let mut per: Vec<Vec<Event>> = vec![Vec::new(); n_channels];
    for ev in batch {
        let pos = match policy {
            Policy::RoundRobin => {
                let pos = next.get() % n_channels;
                next.set((pos + 1) % n_channels);
                pos
            }
            Policy::Random => fastrand::usize(..n_channels),
        };
        per[pos].push(ev);
    }
    per.into_iter()
        .enumerate()
        .filter(|(_, evs)| !evs.is_empty())
        .map(|(p, evs)| (p, evs, true))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{configured, ev, summary};
    use super::*;

    #[test]
    fn round_robin_per_event_across_batches() {
        let (sel, warnings) = configured(&[("type", "load_balancing")]).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(
            sel,
            SelectorConfig::LoadBalancing {
                policy: Policy::RoundRobin
            }
        );
        let next = Cell::new(0);
        let routed = sel.route(3, vec![ev("a"), ev("b"), ev("c"), ev("d")], &next);
        assert_eq!(
            summary(&routed),
            vec![
                (0, vec!["a", "d"], true),
                (1, vec!["b"], true),
                (2, vec!["c"], true)
            ]
        );
        // The turn continues with the next batch.
        let routed = sel.route(3, vec![ev("e")], &next);
        assert_eq!(summary(&routed), vec![(1, vec!["e"], true)]);
    }

    #[test]
    fn random_sends_each_event_once_and_policy_is_checked() {
        let (sel, _) = configured(&[("type", "load_balancing"), ("policy", "RANDOM")]).unwrap();
        let routed = sel.route(3, (0..300).map(|_| ev("x")).collect(), &Cell::new(0));
        assert_eq!(routed.iter().map(|r| r.1.len()).sum::<usize>(), 300);
        assert_eq!(routed.len(), 3, "300 random picks reach all 3 channels");
        let e = configured(&[("type", "load_balancing"), ("policy", "least_used")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("selector.policy") && e.contains("LEAST_USED"),
            "{e}"
        );
        let (_, warnings) = configured(&[("type", "load_balancing"), ("optional", "c1")]).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
