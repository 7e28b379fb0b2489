//! Human-readable views of the configuration model: the flow that `check` prints and the
//! type catalogue that `describe` prints, both from the declared key tables.

use super::keys::{Resolved, TypeInfo};
use super::AgentConfig;
use std::fmt::Write;

fn keys(out: &mut String, resolved: &[Resolved]) {
    for r in resolved {
        // `check` output ends up in terminals, tickets and CI logs: never show a secret.
        let secret = r.key.to_ascii_lowercase().contains("password");
        let _ = writeln!(
            out,
            "      {} = {}{}",
            r.key,
            if secret { "********" } else { &r.value },
            if r.defaulted { "   (default)" } else { "" }
        );
    }
}

/// The validated flow: each source → its channels, each channel, each sink ← its channel.
pub fn flow(cfg: &AgentConfig) -> String {
    let mut out = format!("agent '{}' from {}\n", cfg.name, cfg.file.display());
    let ch = |i: usize| cfg.channels[i].name.as_str();
    out.push_str("  sources:\n");
    for s in &cfg.sources {
        let targets: Vec<_> = s.channels.iter().map(|&i| ch(i)).collect();
        let _ = writeln!(
            out,
            "    {} ({}) -> {}",
            s.name,
            s.type_name,
            targets.join(", ")
        );
        keys(&mut out, &s.resolved);
        if s.channels.len() > 1 {
            let _ = writeln!(out, "      selector: {:?}", s.selector);
        }
        if !s.interceptors.is_empty() {
            let _ = writeln!(out, "      interceptors: {}", s.interceptors.len());
        }
    }
    out.push_str("  channels:\n");
    for c in &cfg.channels {
        let _ = writeln!(out, "    {} ({})", c.name, c.type_name);
        keys(&mut out, &c.resolved);
    }
    out.push_str("  sinks:\n");
    for s in &cfg.sinks {
        let _ = writeln!(out, "    {} ({}) <- {}", s.name, s.type_name, ch(s.channel));
        keys(&mut out, &s.resolved);
    }
    if !cfg.sinkgroups.is_empty() {
        out.push_str("  sink groups:\n");
        for g in &cfg.sinkgroups {
            let members: Vec<_> = g
                .sinks
                .iter()
                .map(|&i| cfg.sinks[i].name.as_str())
                .collect();
            let _ = writeln!(
                out,
                "    {} [{}]: {:?}",
                g.name,
                members.join(" "),
                g.processor
            );
            keys(&mut out, &g.resolved);
        }
    }
    out
}

/// Every component family with its registry, for `describe`.
pub fn families() -> [(&'static str, &'static [TypeInfo]); 5] {
    [
        ("source", crate::source::TYPES),
        ("channel", crate::channel::TYPES),
        ("sink", crate::sink::TYPES),
        ("interceptor", crate::flow::interceptor::TYPES),
        ("sink processor", crate::flow::processor::TYPES),
    ]
}

/// The `describe TYPE` text, or `None` when no family knows the type.
pub fn describe(ty: &str) -> Option<String> {
    let found: Vec<String> = families()
        .iter()
        .flat_map(|(family, types)| {
            types
                .iter()
                .filter(|t| t.matches(ty))
                .map(move |t| t.describe(family))
        })
        .collect();
    (!found.is_empty()).then(|| found.join("\n"))
}

/// The list of every known type, for `describe` without an argument.
pub fn catalogue() -> String {
    let mut out = String::new();
    for (family, types) in families() {
        let _ = writeln!(out, "{family} types:");
        for t in types {
            let _ = writeln!(out, "  {:<16} {}", t.name(), t.doc);
        }
    }
    out
}
