//! The agent model: which sources, channels, sinks and sink groups an agent has, how they
//! connect, and each one's typed configuration. Built from the flat properties, with every
//! structural mistake Flume would log-and-drop turned into an error naming file:line:key.

use super::keys::{Keys, Resolved};
use super::registry::Registration;
use super::{ConfigError, Loc, Prop};
use crate::channel::ChannelKind;
use crate::flow::interceptor::Interceptor;
use crate::flow::processor::ProcessorConfig;
use crate::flow::selector::SelectorConfig;
use crate::sink::SinkType;
use crate::source::SourceType;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub file: PathBuf,
    pub sources: Vec<SourceConfig>,
    pub channels: Vec<ChannelConfig>,
    pub sinks: Vec<SinkConfig>,
    pub sinkgroups: Vec<SinkGroupConfig>,
    /// Things that do not stop the agent but that the user should hear about.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub type_name: &'static str,
    pub kind: Arc<dyn SourceType>,
    /// Indices into `AgentConfig::channels`.
    pub channels: Vec<usize>,
    pub selector: SelectorConfig,
    pub interceptors: Vec<Arc<dyn Interceptor>>,
    pub resolved: Vec<Resolved>,
}

#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: String,
    pub type_name: &'static str,
    pub kind: ChannelKind,
    pub resolved: Vec<Resolved>,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub type_name: &'static str,
    /// Shared by every shard, each of which opens its own running sink from it.
    pub kind: Arc<dyn SinkType>,
    /// Index into `AgentConfig::channels`.
    pub channel: usize,
    pub resolved: Vec<Resolved>,
}

#[derive(Debug, Clone)]
pub struct SinkGroupConfig {
    pub name: String,
    /// Indices into `AgentConfig::sinks`.
    pub sinks: Vec<usize>,
    pub processor: ProcessorConfig,
    pub resolved: Vec<Resolved>,
}

/// The four sections of a Flume agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ComponentKind {
    Source,
    Channel,
    Sink,
    SinkGroup,
}

impl ComponentKind {
    const ALL: [ComponentKind; 4] = [
        ComponentKind::Source,
        ComponentKind::Channel,
        ComponentKind::Sink,
        ComponentKind::SinkGroup,
    ];
    pub fn section(self) -> &'static str {
        match self {
            ComponentKind::Source => "sources",
            ComponentKind::Channel => "channels",
            ComponentKind::Sink => "sinks",
            ComponentKind::SinkGroup => "sinkgroups",
        }
    }
    pub fn singular(self) -> &'static str {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Channel => "channel",
            ComponentKind::Sink => "sink",
            ComponentKind::SinkGroup => "sink group",
        }
    }
}

/// One listed component with its own keys (the part after `<agent>.<section>.<name>.`).
struct Raw {
    name: String,
    /// The line of the `<agent>.<section> = ...` list that names it.
    listed: Loc,
    props: BTreeMap<String, Prop>,
}

impl Raw {
    fn decl(&self) -> Loc {
        self.props
            .values()
            .map(|p| p.loc.clone())
            .min_by_key(|l| l.line)
            .unwrap_or_else(|| self.listed.clone())
    }

    fn full_key(&self, agent: &str, kind: ComponentKind, key: &str) -> String {
        format!("{agent}.{}.{}.{key}", kind.section(), self.name)
    }

    /// Finds the component type named by `type`, or explains what is wrong.
    fn type_info<K>(
        &self,
        agent: &str,
        kind: ComponentKind,
        types: &'static [Registration<K>],
    ) -> Result<&'static Registration<K>, ConfigError> {
        let Some(ty) = self.props.get("type") else {
            return Err(ConfigError::Key {
                loc: self.decl(),
                key: self.full_key(agent, kind, "type"),
                msg: format!("{} '{}' has no type", kind.singular(), self.name),
            });
        };
        let value = ty.value.trim();
        types.iter().find(|t| t.info.matches(value)).ok_or_else(|| {
            let known: Vec<_> = types.iter().map(|t| t.info.name()).collect();
            ConfigError::Key {
                loc: ty.loc.clone(),
                key: ty.key.clone(),
                msg: super::registry::unknown_type(kind.singular(), value, &known),
            }
        })
    }
}

/// Splits the agent's keys into its sections and builds the typed model.
pub(super) fn build(
    file: &Path,
    props: &[Prop],
    agent: Option<&str>,
) -> Result<AgentConfig, ConfigError> {
    let agent = pick_agent(file, props, agent)?;
    let mut warnings = Vec::new();
    let prefix = format!("{agent}.");

    // Last assignment wins, as in java.util.Properties; say so when it happens.
    let mut latest: BTreeMap<&str, &Prop> = BTreeMap::new();
    for p in props.iter().filter(|p| p.key.starts_with(&prefix)) {
        if let Some(old) = latest.insert(p.key.as_str(), p) {
            warnings.push(format!(
                "{}: {}: overrides the value set at line {}",
                p.loc, p.key, old.loc.line
            ));
        }
    }

    let mut lists: BTreeMap<ComponentKind, &Prop> = BTreeMap::new();
    let mut component_keys: BTreeMap<(ComponentKind, String), BTreeMap<String, Prop>> =
        BTreeMap::new();
    for (key, p) in &latest {
        let rest = &key[prefix.len()..];
        let (section, tail) = rest.split_once('.').unwrap_or((rest, ""));
        let Some(kind) = ComponentKind::ALL
            .into_iter()
            .find(|k| k.section() == section)
        else {
            warnings.push(format!(
                "{}: {}: unknown key for agent '{agent}' is ignored (expected {agent}.sources, .channels, .sinks or .sinkgroups)",
                p.loc, p.key
            ));
            continue;
        };
        if tail.is_empty() {
            lists.insert(kind, p);
            continue;
        }
        let Some((name, sub)) = tail.split_once('.') else {
            warnings.push(format!(
                "{}: {}: key has a component name but no property; ignored",
                p.loc, p.key
            ));
            continue;
        };
        component_keys
            .entry((kind, name.to_string()))
            .or_default()
            .insert(sub.to_string(), (*p).clone());
    }

    let mut sections: BTreeMap<ComponentKind, Vec<Raw>> = BTreeMap::new();
    for kind in ComponentKind::ALL {
        let mut raws = Vec::new();
        if let Some(list) = lists.get(&kind) {
            let mut seen = BTreeSet::new();
            for name in list.value.split_whitespace() {
                if !seen.insert(name) {
                    warnings.push(format!(
                        "{}: {}: '{name}' is listed twice; using it once",
                        list.loc, list.key
                    ));
                    continue;
                }
                let props = component_keys
                    .remove(&(kind, name.to_string()))
                    .unwrap_or_default();
                if props.is_empty() {
                    return Err(ConfigError::Key {
                        loc: list.loc.clone(),
                        key: list.key.clone(),
                        msg: format!(
                            "{} '{name}' is listed but never configured (no {agent}.{}.{name}.* keys)",
                            kind.singular(),
                            kind.section()
                        ),
                    });
                }
                raws.push(Raw {
                    name: name.to_string(),
                    listed: list.loc.clone(),
                    props,
                });
            }
        }
        sections.insert(kind, raws);
    }
    // Keys of components that no list names: Flume ignores them; say so.
    for ((kind, name), keys) in &component_keys {
        let first = keys.values().next().expect("non-empty");
        warnings.push(format!(
            "{}: {}: {} '{name}' is configured but not listed in {agent}.{}; ignored",
            first.loc,
            first.key,
            kind.singular(),
            kind.section()
        ));
    }

    let file_buf = file.to_path_buf();
    if sections[&ComponentKind::Source].is_empty() && sections[&ComponentKind::Sink].is_empty() {
        return Err(ConfigError::Agent {
            file: file_buf,
            msg: format!("agent '{agent}' has no sources and no sinks: nothing to run"),
        });
    }

    // Channels first: sources and sinks refer to them.
    let mut channels = Vec::new();
    for raw in &sections[&ComponentKind::Channel] {
        let reg = raw.type_info(&agent, ComponentKind::Channel, crate::channel::TYPES)?;
        let info = &reg.info;
        let label = format!("channel '{}'", raw.name);
        let prefix = format!("{agent}.channels.{}", raw.name);
        let mut keys = Keys::new(&label, &prefix, info.keys, &raw.props, raw.decl());
        let kind = (reg.build)(&mut keys)?;
        warnings.extend(keys.unknown_keys(&["type"]));
        warnings.extend(kind.notes().iter().cloned());
        channels.push(ChannelConfig {
            name: raw.name.clone(),
            type_name: info.name(),
            kind,
            resolved: keys.resolved,
        });
    }
    let channel_index = |raw: &Raw, key: &str, name: &str| -> Result<usize, ConfigError> {
        channels.iter().position(|c| c.name == name).ok_or_else(|| {
            let p = &raw.props[key];
            ConfigError::Key {
                loc: p.loc.clone(),
                key: p.key.clone(),
                msg: format!("channel '{name}' is not defined in {agent}.channels"),
            }
        })
    };

    let mut sources = Vec::new();
    for raw in &sections[&ComponentKind::Source] {
        let reg = raw.type_info(&agent, ComponentKind::Source, crate::source::TYPES)?;
        let info = &reg.info;
        let label = format!("source '{}'", raw.name);
        let prefix = format!("{agent}.sources.{}", raw.name);
        let names: Vec<&str> = raw
            .props
            .get("channels")
            .map(|p| p.value.split_whitespace().collect())
            .unwrap_or_default();
        if names.is_empty() {
            return Err(ConfigError::Key {
                loc: raw.decl(),
                key: raw.full_key(&agent, ComponentKind::Source, "channels"),
                msg: format!("source '{}' has no channels", raw.name),
            });
        }
        let channel_ids = names
            .iter()
            .map(|n| channel_index(raw, "channels", n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys = Keys::new(&label, &prefix, info.keys, &raw.props, raw.decl());
        let kind = (reg.build)(&mut keys)?;
        warnings.extend(keys.unknown_keys(&[
            "type",
            "channels",
            "selector.*",
            "interceptors",
            "interceptors.*",
        ]));
        let mut resolved = keys.resolved;
        let selector = crate::flow::selector::configure(
            &raw.name,
            &sub_props(&raw.props, "selector"),
            raw.decl(),
            &names,
            &mut warnings,
        )?;
        let interceptors = crate::flow::interceptor::configure(
            &raw.name,
            &prefix,
            &raw.props,
            raw.decl(),
            &mut warnings,
            &mut resolved,
        )?;
        sources.push(SourceConfig {
            name: raw.name.clone(),
            type_name: info.name(),
            kind,
            channels: channel_ids,
            selector,
            interceptors,
            resolved,
        });
    }

    let mut sinks = Vec::new();
    for raw in &sections[&ComponentKind::Sink] {
        let reg = raw.type_info(&agent, ComponentKind::Sink, crate::sink::TYPES)?;
        let info = &reg.info;
        let label = format!("sink '{}'", raw.name);
        let prefix = format!("{agent}.sinks.{}", raw.name);
        let Some(channel) = raw.props.get("channel") else {
            let hint = if raw.props.contains_key("channels") {
                " (sinks take one channel: the key is 'channel', not 'channels')"
            } else {
                ""
            };
            return Err(ConfigError::Key {
                loc: raw.decl(),
                key: raw.full_key(&agent, ComponentKind::Sink, "channel"),
                msg: format!("sink '{}' has no channel{hint}", raw.name),
            });
        };
        let channel_name = channel.value.trim();
        if channel_name.split_whitespace().count() != 1 {
            return Err(ConfigError::Key {
                loc: channel.loc.clone(),
                key: channel.key.clone(),
                msg: format!("a sink reads exactly one channel, found '{channel_name}'"),
            });
        }
        let channel = channel_index(raw, "channel", channel_name)?;
        let mut keys = Keys::new(&label, &prefix, info.keys, &raw.props, raw.decl());
        let kind = (reg.build)(&mut keys)?;
        warnings.extend(keys.unknown_keys(&["type", "channel"]));
        sinks.push(SinkConfig {
            name: raw.name.clone(),
            type_name: info.name(),
            kind,
            channel,
            resolved: keys.resolved,
        });
    }

    let mut sinkgroups = Vec::new();
    let mut grouped: BTreeMap<usize, String> = BTreeMap::new();
    for raw in &sections[&ComponentKind::SinkGroup] {
        let Some(list) = raw.props.get("sinks") else {
            return Err(ConfigError::Key {
                loc: raw.decl(),
                key: raw.full_key(&agent, ComponentKind::SinkGroup, "sinks"),
                msg: format!("sink group '{}' lists no sinks", raw.name),
            });
        };
        let mut members = Vec::new();
        for name in list.value.split_whitespace() {
            let idx =
                sinks
                    .iter()
                    .position(|s| s.name == name)
                    .ok_or_else(|| ConfigError::Key {
                        loc: list.loc.clone(),
                        key: list.key.clone(),
                        msg: format!("sink '{name}' is not defined in {agent}.sinks"),
                    })?;
            if let Some(other) = grouped.insert(idx, raw.name.clone()) {
                return Err(ConfigError::Key {
                    loc: list.loc.clone(),
                    key: list.key.clone(),
                    msg: format!("sink '{name}' is already in sink group '{other}'"),
                });
            }
            members.push(idx);
        }
        let mut resolved = Vec::new();
        let processor = crate::flow::processor::configure(
            &raw.name,
            &format!("{agent}.sinkgroups.{}.processor", raw.name),
            &sub_props(&raw.props, "processor"),
            raw.decl(),
            &members
                .iter()
                .map(|&i| sinks[i].name.as_str())
                .collect::<Vec<_>>(),
            &mut warnings,
            &mut resolved,
        )?;
        for (k, p) in &raw.props {
            if k != "sinks" && !k.starts_with("processor.") {
                warnings.push(format!(
                    "{}: {}: unknown key for sink group '{}' is ignored",
                    p.loc, p.key, raw.name
                ));
            }
        }
        sinkgroups.push(SinkGroupConfig {
            name: raw.name.clone(),
            sinks: members,
            processor,
            resolved,
        });
    }

    for (i, c) in channels.iter().enumerate() {
        let used_by_source = sources.iter().any(|s| s.channels.contains(&i));
        let used_by_sink = sinks.iter().any(|s| s.channel == i);
        if !used_by_source && !used_by_sink {
            warnings.push(format!(
                "{}: channel '{}' is connected to no source and no sink",
                file.display(),
                c.name
            ));
        } else if !used_by_sink {
            warnings.push(format!(
                "{}: channel '{}' has no sink: it will fill up and then refuse events",
                file.display(),
                c.name
            ));
        }
    }

    Ok(AgentConfig {
        name: agent,
        file: file_buf,
        sources,
        channels,
        sinks,
        sinkgroups,
        warnings,
    })
}

/// The keys under `prefix.`, with the prefix removed (a component's `selector.*` etc.).
pub(crate) fn sub_props(props: &BTreeMap<String, Prop>, prefix: &str) -> BTreeMap<String, Prop> {
    let with_dot = format!("{prefix}.");
    props
        .iter()
        .filter_map(|(k, p)| {
            k.strip_prefix(&with_dot)
                .map(|s| (s.to_string(), p.clone()))
        })
        .collect()
}

/// The agent the user asked for, or the only one the file defines.
fn pick_agent(file: &Path, props: &[Prop], wanted: Option<&str>) -> Result<String, ConfigError> {
    let mut agents: BTreeSet<&str> = BTreeSet::new();
    for p in props {
        if let Some((agent, rest)) = p.key.split_once('.') {
            let section = rest.split('.').next().unwrap_or("");
            if ComponentKind::ALL.iter().any(|k| k.section() == section) {
                agents.insert(agent);
            }
        }
    }
    let list = || agents.iter().copied().collect::<Vec<_>>().join(", ");
    match wanted {
        Some(name) if agents.contains(name) => Ok(name.to_string()),
        Some(name) => Err(ConfigError::Agent {
            file: file.to_path_buf(),
            msg: if agents.is_empty() {
                format!("no agent '{name}': the file defines no agents")
            } else {
                format!("no agent '{name}' in this file (it defines: {})", list())
            },
        }),
        None => match agents.len() {
            1 => Ok(agents.into_iter().next().unwrap().to_string()),
            0 => Err(ConfigError::Agent {
                file: file.to_path_buf(),
                msg: "defines no agent (expected keys like a1.sources, a1.channels, a1.sinks)"
                    .to_string(),
            }),
            _ => Err(ConfigError::Agent {
                file: file.to_path_buf(),
                msg: format!(
                    "defines several agents ({}); choose one with --name",
                    list()
                ),
            }),
        },
    }
}
