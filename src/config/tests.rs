//! Tests of the agent model: what a valid Flume file becomes, and the error (file:line:key
//! and the problem) for each kind of mistake.

use super::*;
use crate::channel::ChannelKind;
use crate::sink::logger::LoggerConfig;
use crate::source::netcat::NetcatConfig;

fn load(text: &str) -> Result<AgentConfig, ConfigError> {
    load_str(
        Path::new("agent.conf"),
        text,
        None,
        &Substitutions::default(),
    )
}

fn err(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

const BASE: &str = "\
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = netcat
a1.sources.r1.bind = localhost
a1.sources.r1.port = 44444
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.sinks.k1.type = logger
a1.sinks.k1.channel = c1
";

#[test]
fn builds_the_flow_with_flume_defaults() {
    let cfg = load(BASE).unwrap();
    assert_eq!(cfg.name, "a1");
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let nc = cfg.sources[0]
        .kind
        .as_any()
        .downcast_ref::<NetcatConfig>()
        .unwrap();
    assert_eq!(
        (nc.port, nc.max_line_length, nc.ack_every_event),
        (44444, 512, true)
    );
    let ChannelKind::Memory(m) = &cfg.channels[0].kind else {
        panic!()
    };
    assert_eq!(
        (m.capacity, m.transaction_capacity, m.keep_alive.as_secs()),
        (100, 100, 3)
    );
    assert!(
        matches!(cfg.sinks[0].kind.as_any().downcast_ref::<LoggerConfig>(), Some(l) if l.max_bytes_to_log == 16)
    );
    assert_eq!(cfg.sinks[0].channel, 0);
}

#[test]
fn java_class_names_and_case_insensitive_aliases() {
    let text = BASE
        .replace(
            "r1.type = netcat",
            "r1.type = org.apache.flume.source.NetcatSource",
        )
        .replace("c1.type = memory", "c1.type = MEMORY")
        .replace(
            "k1.type = logger",
            "k1.type = org.apache.flume.sink.LoggerSink",
        );
    let cfg = load(&text).unwrap();
    assert_eq!(cfg.sources[0].type_name, "netcat");
    assert_eq!(cfg.sinks[0].type_name, "logger");
}

#[test]
fn unknown_type_names_line_and_key() {
    let e = err(&BASE.replace("k1.type = logger", "k1.type = loggr"));
    assert!(
        e.starts_with("agent.conf:9: a1.sinks.k1.type: unknown sink type 'loggr'"),
        "{e}"
    );
}

#[test]
fn missing_required_key() {
    let e = err(&BASE.replace("a1.sources.r1.port = 44444\n", ""));
    assert!(
        e.contains("a1.sources.r1.port: required key 'port' is missing"),
        "{e}"
    );
    assert!(e.starts_with("agent.conf:4:"), "{e}");
}

#[test]
fn wrong_kind_of_value() {
    let e = err(&BASE.replace("port = 44444", "port = fourty"));
    assert_eq!(
        e,
        "agent.conf:6: a1.sources.r1.port: expected an integer, found 'fourty'"
    );
    let e = err(&BASE.replace("port = 44444", "port = 70000"));
    assert!(
        e.contains("70000 is out of range: must be between 0 and 65535"),
        "{e}"
    );
    let e = err(&format!("{BASE}a1.sources.r1.ack-every-event = yes\n"));
    assert!(e.contains("expected true or false, found 'yes'"), "{e}");
}

#[test]
fn undefined_channel() {
    let e = err(&BASE.replace("a1.sinks.k1.channel = c1", "a1.sinks.k1.channel = c2"));
    assert_eq!(
        e,
        "agent.conf:10: a1.sinks.k1.channel: channel 'c2' is not defined in a1.channels"
    );
    let e = err(&BASE.replace("r1.channels = c1", "r1.channels = c1 c9"));
    assert!(
        e.contains("a1.sources.r1.channels: channel 'c9' is not defined"),
        "{e}"
    );
}

#[test]
fn source_or_sink_without_channel() {
    let e = err(&BASE.replace("a1.sources.r1.channels = c1\n", ""));
    assert!(
        e.contains("a1.sources.r1.channels: source 'r1' has no channels"),
        "{e}"
    );
    let e = err(&BASE.replace("a1.sinks.k1.channel = c1", "a1.sinks.k1.channels = c1"));
    assert!(e.contains("sink 'k1' has no channel (sinks take one channel: the key is 'channel', not 'channels')"), "{e}");
}

#[test]
fn listed_but_never_configured() {
    let e = err(&BASE.replace("a1.sinks = k1", "a1.sinks = k1 k2"));
    assert_eq!(
        e,
        "agent.conf:3: a1.sinks: sink 'k2' is listed but never configured (no a1.sinks.k2.* keys)"
    );
}

#[test]
fn unknown_key_warns_with_the_closest_known_key() {
    let cfg = load(&format!("{BASE}a1.channels.c1.capacty = 5\n")).unwrap();
    assert_eq!(cfg.warnings.len(), 1);
    assert!(
        cfg.warnings[0].contains("agent.conf:11: a1.channels.c1.capacty: unknown key 'capacty' for channel 'c1' is ignored; did you mean 'capacity'?"),
        "{}",
        cfg.warnings[0]
    );
}

#[test]
fn configured_but_not_listed_is_a_warning() {
    let cfg = load(&format!("{BASE}a1.sinks.k9.type = null\n")).unwrap();
    assert!(cfg
        .warnings
        .iter()
        .any(|w| w.contains("sink 'k9' is configured but not listed")));
}

#[test]
fn agent_choice() {
    let two = format!("{BASE}{}", BASE.replace("a1.", "a2."));
    let e = load_str(Path::new("x.conf"), &two, None, &Substitutions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "x.conf: defines several agents (a1, a2); choose one with --name"
    );
    let cfg = load_str(
        Path::new("x.conf"),
        &two,
        Some("a2"),
        &Substitutions::default(),
    )
    .unwrap();
    assert_eq!(cfg.name, "a2");
    let e = load_str(
        Path::new("x.conf"),
        &two,
        Some("zz"),
        &Substitutions::default(),
    )
    .unwrap_err();
    assert!(e
        .to_string()
        .contains("no agent 'zz' in this file (it defines: a1, a2)"));
}

#[test]
fn transaction_capacity_must_fit_capacity() {
    let e = err(&format!(
        "{BASE}a1.channels.c1.capacity = 10\na1.channels.c1.transactionCapacity = 20\n"
    ));
    assert!(
        e.contains("transactionCapacity (20) must not exceed capacity (10)"),
        "{e}"
    );
}

#[test]
fn selectors_interceptors_and_sink_groups_are_modelled() {
    let text = format!(
        "{BASE}a1.channels = c1 c2
a1.channels.c2.type = memory
a1.sinks = k1 k2
a1.sinks.k2.type = null
a1.sinks.k2.channel = c2
a1.sources.r1.channels = c1 c2
a1.sources.r1.selector.type = multiplexing
a1.sources.r1.selector.header = state
a1.sources.r1.selector.mapping.CA = c1
a1.sources.r1.selector.default = c2
a1.sources.r1.interceptors = ts st
a1.sources.r1.interceptors.ts.type = timestamp
a1.sources.r1.interceptors.st.type = org.apache.flume.interceptor.StaticInterceptor$Builder
a1.sources.r1.interceptors.st.key = dc
a1.sinkgroups = g1
a1.sinkgroups.g1.sinks = k1 k2
a1.sinkgroups.g1.processor.type = failover
a1.sinkgroups.g1.processor.priority.k1 = 5
a1.sinkgroups.g1.processor.priority.k2 = 10
"
    );
    let cfg = load(&text).unwrap();
    assert_eq!(cfg.sources[0].channels, vec![0, 1]);
    assert!(matches!(
        &cfg.sources[0].selector,
        crate::flow::selector::SelectorConfig::Multiplexing { header, default, .. } if header == "state" && default == &vec![1]
    ));
    assert_eq!(cfg.sources[0].interceptors.len(), 2);
    assert_eq!(
        cfg.sinkgroups[0].processor,
        crate::flow::processor::ProcessorConfig::Failover {
            priorities: vec![5, 10],
            max_penalty: std::time::Duration::from_secs(30)
        }
    );
}

#[test]
fn a_sink_in_two_groups_is_an_error() {
    let text = format!(
        "{BASE}a1.sinkgroups = g1 g2
a1.sinkgroups.g1.sinks = k1
a1.sinkgroups.g2.sinks = k1
"
    );
    let e = err(&text);
    assert!(e.contains("sink 'k1' is already in sink group 'g1'"), "{e}");
}

#[test]
fn unsupported_interceptor_is_refused_not_dropped() {
    let e = err(&format!(
        "{BASE}a1.sources.r1.interceptors = i1\na1.sources.r1.interceptors.i1.type = com.example.Mine$Builder\n"
    ));
    assert!(
        e.contains("unknown interceptor type 'com.example.Mine$Builder': a Java class")
            && e.contains("plugins.d")
            && e.contains("timestamp, host"),
        "{e}"
    );
}

#[test]
fn a_plugin_class_or_a_typo_as_a_type_is_named_with_the_built_in_types() {
    let e = err(&BASE.replace(
        "a1.sinks.k1.type = logger",
        "a1.sinks.k1.type = com.acme.flume.S3Sink",
    ));
    assert!(
        e.contains("a1.sinks.k1.type: unknown sink type 'com.acme.flume.S3Sink': a Java class")
            && e.contains("plugins.d")
            && e.contains("file_roll"),
        "{e}"
    );
    let e = err(&BASE.replace("a1.sinks.k1.type = logger", "a1.sinks.k1.type = file_rol"));
    assert!(e.contains("did you mean 'file_roll'?"), "{e}");
    let e = err(&format!(
        "{BASE}a1.sources.r1.selector.type = com.acme.MySelector\n"
    ));
    assert!(
        e.contains("unknown selector type 'com.acme.MySelector': a Java class")
            && e.contains("load_balancing"),
        "{e}"
    );
}

#[test]
fn every_declared_default_parses() {
    // A default that its own parser rejects would only show when a user omits the key.
    for (family, types) in render::families() {
        for t in types {
            for k in t.keys {
                if let (Some(d), KeyKind::Int { min, max }) = (k.default, k.kind) {
                    let n: i64 = d
                        .parse()
                        .unwrap_or_else(|_| panic!("{family} {} {}", t.name(), k.key));
                    assert!(n >= min && n <= max, "{family} {} {}", t.name(), k.key);
                }
                if let (Some(d), KeyKind::Bool) = (k.default, k.kind) {
                    assert!(d == "true" || d == "false");
                }
            }
        }
    }
}

// ---- Every registered type, from the registry itself ----------------------------------

/// A value its key's kind accepts, for the keys a type requires.
fn plausible(k: &KeySpec) -> String {
    match k.kind {
        KeyKind::Int { min, max } => min.max(1).min(max).to_string(),
        KeyKind::Bool => "false".into(),
        KeyKind::Choice(options) => options[0].into(),
        _ => match k.key {
            "bind" | "hostname" => "127.0.0.1".into(),
            "hdfs.path" => "hdfs://127.0.0.1:9000/flume".into(),
            "endpoint" => "http://127.0.0.1:8080/flume".into(),
            "filegroups" => "f1".into(),
            "ports" => "5140".into(),
            "serializers" => "s1".into(),
            _ => "/tmp/flume-fast-test".into(),
        },
    }
}

fn required_keys(t: &TypeInfo, prefix: &str) -> String {
    t.keys
        .iter()
        .filter(|k| k.required)
        .map(|k| {
            let mut line = format!("{prefix}.{} = {}\n", k.key, plausible(k));
            // A list of names that each need a key of their own (TAILDIR's file groups).
            if k.key == "filegroups" {
                line.push_str(&format!("{prefix}.filegroups.f1 = /tmp/.*[.]log\n"));
            }
            // regex_extractor's serializers each need a header name.
            if k.key == "serializers" {
                line.push_str(&format!("{prefix}.serializers.s1.name = h1\n"));
            }
            line
        })
        .collect()
}

/// BASE with one component of `family` set to type `ty` (its required keys given), plus
/// `extra` lines under that component's prefix. Returns the text and the prefix.
fn with_type(family: &str, t: &TypeInfo, ty: &str, extra: &[&str]) -> String {
    let (prefix, set_type) = match family {
        "source" => ("a1.sources.r1", None),
        "channel" => ("a1.channels.c1", None),
        "sink" => ("a1.sinks.k1", None),
        "interceptor" => (
            "a1.sources.r1.interceptors.i1",
            Some("a1.sources.r1.interceptors = i1\n"),
        ),
        "channel selector" => ("a1.sources.r1.selector", Some("")),
        "sink processor" => (
            "a1.sinkgroups.g1.processor",
            Some("a1.sinkgroups = g1\na1.sinkgroups.g1.sinks = k1\n"),
        ),
        other => panic!("no test set-up for family {other}"),
    };
    let mut text = match set_type {
        // The component of BASE is replaced: drop its own keys but keep its wiring.
        None => BASE
            .lines()
            .filter(|l| {
                !l.starts_with(&format!("{prefix}.")) || l.starts_with(&format!("{prefix}.channel"))
            })
            .map(|l| format!("{l}\n"))
            .collect(),
        Some(pre) => format!("{BASE}{pre}"),
    };
    text.push_str(&format!("{prefix}.type = {ty}\n"));
    text.push_str(&required_keys(t, prefix));
    for e in extra {
        text.push_str(&format!("{prefix}.{e}\n"));
    }
    text
}

/// The variant name a flow config prints as (`RemoveHeader { .. }` → "remove_header").
fn variant(debug: &str) -> String {
    let name = debug.split([' ', '(', '{']).next().unwrap();
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Which type the loaded component of `family` resolved to, and the keys it read.
fn built(family: &str, cfg: &AgentConfig) -> (String, Vec<String>) {
    let s = &cfg.sources[0];
    match family {
        "source" => (
            s.type_name.into(),
            s.resolved.iter().map(|r| r.key.clone()).collect(),
        ),
        "channel" => (
            cfg.channels[0].type_name.into(),
            cfg.channels[0]
                .resolved
                .iter()
                .map(|r| r.key.clone())
                .collect(),
        ),
        "sink" => (
            cfg.sinks[0].type_name.into(),
            cfg.sinks[0]
                .resolved
                .iter()
                .map(|r| r.key.clone())
                .collect(),
        ),
        "interceptor" => (
            variant(&format!("{:?}", s.interceptors[0])),
            s.resolved
                .iter()
                .filter_map(|r| r.key.strip_prefix("interceptors.i1.").map(str::to_string))
                .collect(),
        ),
        "channel selector" => (variant(&format!("{:?}", s.selector)), Vec::new()),
        "sink processor" => (
            variant(&format!("{:?}", cfg.sinkgroups[0].processor)),
            cfg.sinkgroups[0]
                .resolved
                .iter()
                .map(|r| {
                    r.key
                        .strip_prefix("processor.")
                        .unwrap_or(&r.key)
                        .to_string()
                })
                .collect(),
        ),
        other => panic!("{other}"),
    }
}

#[test]
fn every_registered_type_builds_from_its_required_keys() {
    for (family, types) in render::families() {
        for t in types {
            let text = with_type(family, t, t.name(), &[]);
            let cfg = load(&text).unwrap_or_else(|e| panic!("{family} {}: {e}\n{text}", t.name()));
            assert_eq!(built(family, &cfg).0, t.name(), "{family}\n{text}");
        }
    }
}

#[test]
fn describe_shows_every_key_a_type_reads() {
    for (family, types) in render::families() {
        for t in types {
            let cfg = load(&with_type(family, t, t.name(), &[])).unwrap();
            let shown = t.describe(family);
            for key in built(family, &cfg).1 {
                let declared = t.keys.iter().any(|k| match k.key.strip_suffix(".*") {
                    Some(p) => key.starts_with(&format!("{p}.")),
                    None => k.key == key,
                });
                assert!(
                    declared,
                    "{family} {} read '{key}', not in its table",
                    t.name()
                );
                let head = key.split('.').next().unwrap();
                assert!(
                    shown.contains(&format!("  {key} ")) || shown.contains(&format!("  {head}.*")),
                    "describe {} does not show '{key}':\n{shown}",
                    t.name()
                );
            }
        }
    }
}

#[test]
fn every_alias_and_java_class_resolves_to_its_type() {
    for (family, types) in render::families() {
        for t in &types {
            let upper: Vec<String> = t.aliases.iter().map(|a| a.to_uppercase()).collect();
            let names = t
                .aliases
                .iter()
                .copied()
                .chain(std::iter::once(t.class))
                .chain(upper.iter().map(String::as_str));
            for name in names {
                let matching: Vec<_> = types.iter().filter(|o| o.matches(name)).collect();
                assert_eq!(matching.len(), 1, "{family} '{name}' is ambiguous");
                let text = with_type(family, t, name, &[]);
                let cfg = load(&text).unwrap_or_else(|e| panic!("{family} '{name}': {e}"));
                assert_eq!(built(family, &cfg).0, t.name(), "{family} '{name}'");
            }
        }
    }
}

#[test]
fn an_unknown_key_is_warned_about_for_every_type() {
    for (family, types) in render::families() {
        for t in types {
            let cfg = load(&with_type(family, t, t.name(), &["noSuchKey = 1"])).unwrap();
            assert!(
                cfg.warnings
                    .iter()
                    .any(|w| w.contains("noSuchKey") && w.contains("unknown key")),
                "{family} {}: no warning for noSuchKey in {:?}",
                t.name(),
                cfg.warnings
            );
        }
    }
}

#[test]
fn selector_tables_declare_exactly_what_the_selectors_read() {
    // Selectors parse their keys by hand; their table (for describe and the docs) must not
    // list a key the parser would warn about.
    for t in crate::flow::selector::TYPES {
        let keys: Vec<String> = t
            .keys
            .iter()
            .map(|k| {
                let value = match k.kind {
                    crate::config::keys::KeyKind::Choice(options) => options[0],
                    _ => "c1",
                };
                format!("{} = {value}", k.key.replace(".*", ".CA"))
            })
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let cfg = load(&with_type("channel selector", t, t.name(), &keys)).unwrap();
        assert!(cfg.warnings.is_empty(), "{}: {:?}", t.name(), cfg.warnings);
    }
}

/// The interceptor and selector examples of Flume 1.11's User Guide, as printed there, with
/// only what the guide leaves out around them (the source's type, the channels and a sink;
/// for the regex extractor's examples, the interceptor's name and type).
#[test]
fn the_user_guides_interceptor_and_selector_examples_are_accepted_unchanged() {
    let examples: &[(&str, &str)] = &[
        ("r1", "a1.sources = r1
a1.channels = c1 c2 c3 c4
a1.sources.r1.channels = c1 c2 c3 c4
a1.sources.r1.selector.type = load_balancing
a1.sources.r1.selector.policy = round_robin"),
        ("r1", "a1.sources = r1
a1.channels = c1 c2 c3 c4
a1.sources.r1.selector.type = multiplexing
a1.sources.r1.selector.header = state
a1.sources.r1.selector.mapping.CZ = c1
a1.sources.r1.selector.mapping.US = c2 c3
a1.sources.r1.selector.default = c4"),
        ("r1", "a1.sources = r1
a1.sinks = k1
a1.channels = c1
a1.sources.r1.interceptors = i1 i2
a1.sources.r1.interceptors.i1.type = org.apache.flume.interceptor.HostInterceptor$Builder
a1.sources.r1.interceptors.i1.preserveExisting = false
a1.sources.r1.interceptors.i1.hostHeader = hostname
a1.sources.r1.interceptors.i2.type = org.apache.flume.interceptor.TimestampInterceptor$Builder"),
        ("r1", "a1.sources = r1
a1.channels = c1
a1.sources.r1.channels =  c1
a1.sources.r1.type = seq
a1.sources.r1.interceptors = i1
a1.sources.r1.interceptors.i1.type = timestamp"),
        ("r1", "a1.sources = r1
a1.channels = c1
a1.sources.r1.interceptors = i1
a1.sources.r1.interceptors.i1.type = host"),
        ("r1", "a1.sources = r1
a1.channels = c1
a1.sources.r1.channels =  c1
a1.sources.r1.type = seq
a1.sources.r1.interceptors = i1
a1.sources.r1.interceptors.i1.type = static
a1.sources.r1.interceptors.i1.key = datacenter
a1.sources.r1.interceptors.i1.value = NEW_YORK"),
        ("avroSrc", "a1.sources.avroSrc.interceptors = search-replace
a1.sources.avroSrc.interceptors.search-replace.type = search_replace

# Remove leading alphanumeric characters in an event body.
a1.sources.avroSrc.interceptors.search-replace.searchPattern = ^[A-Za-z0-9_]+
a1.sources.avroSrc.interceptors.search-replace.replaceString ="),
        ("avroSrc", "a1.sources.avroSrc.interceptors = search-replace
a1.sources.avroSrc.interceptors.search-replace.type = search_replace

# Use grouping operators to reorder and munge words on a line.
a1.sources.avroSrc.interceptors.search-replace.searchPattern = The quick brown ([a-z]+) jumped over the lazy ([a-z]+)
a1.sources.avroSrc.interceptors.search-replace.replaceString = The hungry $2 ate the careless $1"),
        ("r1", "a1.sources.r1.interceptors = i1
a1.sources.r1.interceptors.i1.type = regex_extractor
a1.sources.r1.interceptors.i1.regex = (\\\\d):(\\\\d):(\\\\d)
a1.sources.r1.interceptors.i1.serializers = s1 s2 s3
a1.sources.r1.interceptors.i1.serializers.s1.name = one
a1.sources.r1.interceptors.i1.serializers.s2.name = two
a1.sources.r1.interceptors.i1.serializers.s3.name = three"),
        ("r1", "a1.sources.r1.interceptors = i1
a1.sources.r1.interceptors.i1.type = regex_extractor
a1.sources.r1.interceptors.i1.regex = ^(?:\\\\n)?(\\\\d\\\\d\\\\d\\\\d-\\\\d\\\\d-\\\\d\\\\d\\\\s\\\\d\\\\d:\\\\d\\\\d)
a1.sources.r1.interceptors.i1.serializers = s1
a1.sources.r1.interceptors.i1.serializers.s1.type = org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer
a1.sources.r1.interceptors.i1.serializers.s1.name = timestamp
a1.sources.r1.interceptors.i1.serializers.s1.pattern = yyyy-MM-dd HH:mm"),
    ];
    for (source, example) in examples {
        // What the guide leaves out, first, so that the example's own lines win; the
        // source reads from every channel the example declares.
        let channels = if example.contains("a1.channels = c1\n") {
            "c1"
        } else {
            "c1 c2 c3 c4"
        };
        let mut text = format!(
            "a1.sources = {source}
a1.channels = c1 c2 c3 c4
a1.sinks = k1
a1.sources.{source}.type = netcat
a1.sources.{source}.bind = localhost
a1.sources.{source}.port = 44444
a1.sources.{source}.channels = {channels}
a1.sinks.k1.type = null
a1.sinks.k1.channel = c1
"
        );
        for c in ["c1", "c2", "c3", "c4"] {
            text.push_str(&format!("a1.channels.{c}.type = memory\n"));
        }
        text.push_str(example);
        text.push('\n');
        if let Err(e) = load(&text) {
            panic!("{e}\nin:\n{text}");
        }
    }
}
