//! The replicating selector (`replicating`, Flume's default): every event to every channel
//! of the source; the `optional` ones may refuse it.

use super::{Ctx, Route, SelectorConfig};
use crate::config::keys::{KeyKind, KeySpec, TypeInfo};
use crate::config::{ConfigError, Prop};
use crate::event::Event;
use std::collections::BTreeMap;

const KEYS: &[KeySpec] = &[KeySpec::new(
    "optional",
    KeyKind::List,
    None,
    "Channels that may refuse an event without failing the put",
)];

pub(super) const TYPE: TypeInfo = TypeInfo {
    aliases: &["replicating"],
    class: "org.apache.flume.channel.ReplicatingChannelSelector",
    doc: "Sends every event to every channel of the source (Flume's default).",
    keys: KEYS,
};

pub(super) fn configure(
    ctx: &Ctx,
    props: &BTreeMap<String, Prop>,
    warnings: &mut Vec<String>,
) -> Result<SelectorConfig, ConfigError> {
    let mut optional = Vec::new();
    for (k, p) in props {
        match k.as_str() {
            "type" => {}
            "optional" => optional = ctx.positions(p)?,
            _ => ctx.unknown(k, p, warnings),
        }
    }
    Ok(SelectorConfig::Replicating { optional })
}

pub(super) fn route(optional: &[usize], n_channels: usize, batch: Vec<Event>) -> Vec<Route> {
    let required = |pos: &usize| !optional.contains(pos);
    // Required channels first (Flume puts to them before the optional ones); the last
    // route takes the batch itself instead of a clone.
    let mut order: Vec<usize> = (0..n_channels).filter(required).collect();
    order.extend((0..n_channels).filter(|p| !required(p)));
    let mut out = Vec::with_capacity(n_channels);
    let Some((&last, rest)) = order.split_last() else {
        return out;
    };
    for &pos in rest {
        out.push((pos, batch.clone(), required(&pos)));
    }
    out.push((last, batch, required(&last)));
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{configured, ev, summary};
    use super::*;

    #[test]
    fn every_channel_required_ones_first() {
        let (sel, warnings) = configured(&[("optional", "c1")]).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(sel, SelectorConfig::Replicating { optional: vec![0] });
        let routed = sel.route(3, vec![ev("x")], &Default::default());
        assert_eq!(
            summary(&routed),
            vec![
                (1, vec!["x"], true),
                (2, vec!["x"], true),
                (0, vec!["x"], false)
            ]
        );
        let e = configured(&[("optional", "c9")]).unwrap_err().to_string();
        assert!(e.contains("selector.optional") && e.contains("'c9'"), "{e}");
    }
}
