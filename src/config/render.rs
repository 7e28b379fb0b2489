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
pub fn families() -> [(&'static str, Vec<&'static TypeInfo>); 6] {
    use super::registry::infos;
    [
        ("source", infos(crate::source::TYPES)),
        ("channel", infos(crate::channel::TYPES)),
        ("sink", infos(crate::sink::TYPES)),
        ("interceptor", infos(crate::flow::interceptor::TYPES)),
        (
            "channel selector",
            crate::flow::selector::TYPES.iter().collect(),
        ),
        (
            "sink processor",
            crate::flow::processor::TYPES.iter().collect(),
        ),
    ]
}

/// One generated reference page: its file under `docs/`, its title, and the families it
/// holds with where their keys go in an agent's file.
pub struct Page {
    pub file: &'static str,
    pub title: &'static str,
    pub intro: &'static str,
    pub families: &'static [(&'static str, &'static str)],
}

/// The reference pages `describe --markdown` writes, one per component family as an
/// agent's file groups them (the flow pieces hang off sources and sink groups).
pub const PAGES: &[Page] = &[
    Page {
        file: "sources.md",
        title: "Sources",
        intro: "A source receives events and puts them into its channels, one transaction per \
                received batch. How the syslog sources frame and parse messages: \
                [syslog.md](syslog.md); what they do that Flume does not: \
                [differences.md](differences.md#syslog).",
        families: &[("source", "<agent>.sources.<name>.")],
    },
    Page {
        file: "channels.md",
        title: "Channels",
        intro: "A channel holds committed batches until a sink takes them; each shard has its \
                own instance. See [file-channel.md](file-channel.md) for the write-ahead log.",
        families: &[("channel", "<agent>.channels.<name>.")],
    },
    Page {
        file: "sinks.md",
        title: "Sinks",
        intro: "A sink takes a batch from its channel and commits only once its destination \
                has the data. See [hdfs.md](hdfs.md) and [avro-tls.md](avro-tls.md); the http \
                sink's status rules: [differences.md](differences.md#the-http-sink).",
        families: &[("sink", "<agent>.sinks.<name>.")],
    },
    Page {
        file: "flow.md",
        title: "Interceptors, channel selectors and sink processors",
        intro: "Interceptors change or drop a source's events before they reach a channel; \
                the selector picks a source's channels per event; a sink group's processor \
                picks which of its sinks takes the next batch. Regular expressions are \
                Java's (`java.util.regex`), run as Java runs them or refused by name: see \
                [differences.md](differences.md#java-regular-expressions); every difference \
                of these types from Flume is listed under \
                [Interceptors and selectors](differences.md#interceptors-and-selectors). \
                An example with every interceptor: \
                [conf/examples/interceptors.conf](../conf/examples/interceptors.conf).",
        families: &[
            (
                "interceptor",
                "<agent>.sources.<source>.interceptors.<name>.",
            ),
            ("channel selector", "<agent>.sources.<source>.selector."),
            ("sink processor", "<agent>.sinkgroups.<group>.processor."),
        ],
    },
];

/// The command that writes every page; the docs test prints it when a page is stale.
pub const REGENERATE: &str = "cargo run -q -- describe --markdown --out docs";

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// A generated reference page in markdown: per type its names, doc line and key table.
pub fn markdown(page: &Page) -> String {
    let mut out = format!(
        "# {}\n\n<!-- Generated from the key tables in the code by `{REGENERATE}`; \
         do not edit by hand. -->\n\n{}\n",
        page.title, page.intro
    );
    let all = families();
    for (family, prefix) in page.families {
        let types = all
            .iter()
            .find(|(f, _)| f == family)
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("page {} names unknown family {family}", page.file));
        if page.families.len() > 1 {
            let _ = write!(out, "\n## {}s\n", capitalise(family));
        }
        let _ = writeln!(out, "\nKeys are set as `{prefix}<key>`.");
        let level = if page.families.len() > 1 { "###" } else { "##" };
        for t in types {
            let _ = write!(out, "\n{level} {}\n\n{}\n\n", t.name(), t.doc);
            let _ = write!(out, "`type = {}`", t.name());
            for a in &t.aliases[1..] {
                let _ = write!(out, " or `{a}`");
            }
            let _ = writeln!(out, " or `{}`\n", t.class);
            if t.keys.is_empty() {
                out.push_str("No keys besides `type`.\n");
                continue;
            }
            out.push_str("| key | value | default | description |\n|---|---|---|---|\n");
            for k in t.keys {
                let default = match (k.required, k.default) {
                    (true, _) => "**required**".to_string(),
                    (false, Some("")) => "(empty)".to_string(),
                    (false, Some(d)) => format!("`{}`", cell(d)),
                    (false, None) => "–".to_string(),
                };
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    k.key,
                    cell(&k.kind.name()),
                    default,
                    cell(k.doc)
                );
            }
        }
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
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
