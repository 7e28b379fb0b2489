//! The multiplexing selector (`multiplexing`): the value of one header picks each event's
//! channels: `mapping.<value>` the required ones, `optional.<value>` those that may refuse
//! it, `default` the required ones of a value without a mapping (or a missing or blank
//! header).

use super::{Ctx, Route, SelectorConfig};
use crate::config::keys::{KeyKind, KeySpec, TypeInfo};
use crate::config::{ConfigError, Prop};
use crate::event::Event;
use std::collections::BTreeMap;

const KEYS: &[KeySpec] = &[
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

pub(super) const TYPE: TypeInfo = TypeInfo {
    aliases: &["multiplexing"],
    class: "org.apache.flume.channel.MultiplexingChannelSelector",
    doc: "Sends each event to the channels mapped to the value of one header.",
    keys: KEYS,
};

pub(super) fn configure(
    ctx: &Ctx,
    props: &BTreeMap<String, Prop>,
    warnings: &mut Vec<String>,
) -> Result<SelectorConfig, ConfigError> {
    let mut header = "flume.selector.header".to_string();
    let mut mapping = BTreeMap::new();
    let mut optional = BTreeMap::new();
    let mut default = Vec::new();
    for (k, p) in props {
        if let Some(value) = k.strip_prefix("mapping.") {
            let chans = ctx.positions(p)?;
            if chans.is_empty() {
                return Err(ConfigError::Key {
                    loc: p.loc.clone(),
                    key: p.key.clone(),
                    msg: format!("no channel configured for header value '{value}'"),
                });
            }
            mapping.insert(value.to_string(), chans);
        } else if let Some(value) = k.strip_prefix("optional.") {
            optional.insert(value.to_string(), ctx.positions(p)?);
        } else {
            match k.as_str() {
                "type" => {}
                "header" => header = p.value.trim().to_string(),
                "default" => default = ctx.positions(p)?,
                _ => ctx.unknown(k, p, warnings),
            }
        }
    }
    // As Flume: an optional channel that is also required for the value is only required.
    for (value, opt) in optional.iter_mut() {
        let req: &Vec<usize> = mapping.get(value).unwrap_or(&default);
        opt.retain(|c| !req.contains(c));
    }
    Ok(SelectorConfig::Multiplexing {
        header,
        mapping,
        optional,
        default,
    })
}

pub(super) fn route(
    header: &str,
    mapping: &BTreeMap<String, Vec<usize>>,
    optional: &BTreeMap<String, Vec<usize>>,
    default: &[usize],
    n_channels: usize,
    batch: Vec<Event>,
) -> Vec<Route> {
    let mut req: Vec<Vec<Event>> = vec![Vec::new(); n_channels];
    let mut opt: Vec<Vec<Event>> = vec![Vec::new(); n_channels];
    for ev in batch {
        let value = ev.headers.get(header);
        let required = match value {
            Some(v) if !v.trim().is_empty() => mapping.get(v).map_or(default, Vec::as_slice),
            _ => default,
        };
        let optional = value
            .and_then(|v| optional.get(v))
            .map_or(&[][..], Vec::as_slice);
        // Clones for all targets but the last, which takes the event itself.
        let n = required.len() + optional.len();
        let targets = required
            .iter()
            .map(|&p| (p, true))
            .chain(optional.iter().map(|&p| (p, false)));
        let mut ev = Some(ev);
        for (k, (pos, is_req)) in targets.enumerate() {
            let e = if k + 1 == n {
                ev.take().unwrap()
            } else {
                ev.clone().unwrap()
            };
            if is_req {
                req[pos].push(e);
            } else {
                opt[pos].push(e);
            }
        }
    }
    let req = req.into_iter().enumerate().map(|(p, evs)| (p, evs, true));
    let opt = opt.into_iter().enumerate().map(|(p, evs)| (p, evs, false));
    req.chain(opt)
        .filter(|(_, evs, _)| !evs.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{configured, ev, summary};

    #[test]
    fn routes_by_header_with_default_and_optional() {
        let (sel, warnings) = configured(&[
            ("type", "multiplexing"),
            ("header", "state"),
            ("mapping.CA", "c1"),
            ("mapping.NY", "c2"),
            ("optional.CA", "c3 c1"),
            ("optional.TX", "c2 c3"),
            ("default", "c3"),
        ])
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let routed = sel.route(
            3,
            vec![ev("CA"), ev("NY"), ev("TX"), ev(" ")],
            &Default::default(),
        );
        assert_eq!(
            summary(&routed),
            vec![
                (0, vec!["CA"], true),
                (1, vec!["NY"], true),
                (2, vec!["TX", " "], true),
                // optional.CA less its required c1; optional.TX less the default c3.
                (1, vec!["TX"], false),
                (2, vec!["CA"], false),
            ]
        );
    }

    #[test]
    fn no_mapping_and_no_default_goes_nowhere() {
        let (sel, _) = configured(&[("type", "multiplexing"), ("header", "state")]).unwrap();
        assert!(sel.route(3, vec![ev("CA")], &Default::default()).is_empty());
        assert!(!sel.all_to_the_only_channel());
    }

    #[test]
    fn empty_mapping_is_an_error() {
        let e = configured(&[("type", "multiplexing"), ("mapping.CA", " ")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("selector.mapping.CA") && e.contains("no channel"),
            "{e}"
        );
    }
}
