//! The regex_extractor interceptor (`regex_extractor`): the first match of a Java regex in
//! the body (as UTF-8) sets one header per capturing group, in order, each through its
//! serializer (the text as it is, or a date pattern turned into epoch milliseconds).

use super::joda::JodaFormat;
use super::{Interceptor, JavaRegex};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use bytestring::ByteString;

const KEYS: &[KeySpec] = &[
    KeySpec::required(
        "regex",
        KeyKind::Str,
        "Java regular expression whose first match in the body gives the groups",
    ),
    KeySpec::required(
        "serializers",
        KeyKind::List,
        "Space-separated serializer names, one per group in order",
    ),
    KeySpec::new(
        "serializers.*",
        KeyKind::Prefix,
        None,
        "serializers.<s>.name = header for that group; serializers.<s>.type = DEFAULT or \
         org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer (with \
         serializers.<s>.pattern, a Joda date pattern)",
    ),
];

const MILLIS: &str = "org.apache.flume.interceptor.RegexExtractorInterceptorMillisSerializer";
const PASS_THROUGH: &str =
    "org.apache.flume.interceptor.RegexExtractorInterceptorPassThroughSerializer";

#[derive(Debug, Clone)]
pub enum Serializer {
    PassThrough,
    Millis(JodaFormat),
}

#[derive(Debug, Clone)]
pub struct RegexExtractor {
    pub regex: JavaRegex,
    /// (header, serializer) for groups 1, 2, ... in order.
    pub serializers: Vec<(String, Serializer)>,
}

impl Component for RegexExtractor {
    const TYPE: TypeInfo = TypeInfo {
        aliases: &["regex_extractor"],
        class: "org.apache.flume.interceptor.RegexExtractorInterceptor$Builder",
        doc: "Sets headers from the groups of a regex's first match in the body.",
        keys: KEYS,
    };
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let pattern = k.verbatim("regex")?.unwrap_or_default();
        let regex = JavaRegex::compile(k, "regex", &pattern)?;
        let names = k.list("serializers")?;
        let sub = k.prefixed("serializers");
        let get = |s: &str, key: &str| {
            sub.iter()
                .find(|(k, _)| *k == format!("{s}.{key}"))
                .map(|(_, p)| *p)
        };
        let mut serializers = Vec::new();
        for s in &names {
            let missing = |key: &str, why: &str| match k.invalid("serializers", "") {
                ConfigError::Key { loc, .. } => ConfigError::Key {
                    loc,
                    key: format!("{}.serializers.{s}.{key}", k.prefix()),
                    msg: format!("serializer '{s}' {why}"),
                },
                other => other,
            };
            let name = match get(s, "name") {
                Some(p) if !p.value.trim().is_empty() => p.value.trim().to_string(),
                Some(p) => {
                    return Err(ConfigError::Key {
                        loc: p.loc.clone(),
                        key: p.key.clone(),
                        msg: format!("serializer '{s}' has an empty header name"),
                    })
                }
                None => return Err(missing("name", "has no header name (serializers.<s>.name)")),
            };
            let ser = match get(s, "type") {
                // Flume compares "DEFAULT" exactly; any other text is a class name.
                None => Serializer::PassThrough,
                Some(p) if p.value.trim() == "DEFAULT" || p.value.trim() == PASS_THROUGH => {
                    Serializer::PassThrough
                }
                Some(p) if p.value.trim() == MILLIS => {
                    let Some(pat) = get(s, "pattern").filter(|p| !p.value.is_empty()) else {
                        return Err(missing("pattern", "of type RegexExtractorInterceptorMillisSerializer has no date pattern (serializers.<s>.pattern)"));
                    };
                    Serializer::Millis(JodaFormat::new(&pat.value).map_err(|msg| {
                        ConfigError::Key {
                            loc: pat.loc.clone(),
                            key: pat.key.clone(),
                            msg,
                        }
                    })?)
                }
                Some(p) => {
                    return Err(ConfigError::Key {
                        loc: p.loc.clone(),
                        key: p.key.clone(),
                        msg: format!(
                        "serializer type '{}' is not supported by flume-fast (DEFAULT, {MILLIS})",
                        p.value.trim()
                    ),
                    })
                }
            };
            serializers.push((name, ser));
        }
        if serializers.is_empty() {
            return Err(k.invalid("serializers", "must name at least one serializer"));
        }
        Ok(RegexExtractor { regex, serializers })
    }
}

impl Interceptor for RegexExtractor {
    fn apply(&self, events: &mut Vec<Event>, _: u64) {
        let names: Vec<ByteString> = self
            .serializers
            .iter()
            .map(|(n, _)| ByteString::from(n.as_str()))
            .collect();
        for e in events.iter_mut() {
            let text = String::from_utf8_lossy(&e.body);
            let Some(groups) = self.regex.first(&text) else {
                continue;
            };
            // Groups beyond the serializers are skipped, serializers beyond the groups
            // unused, as in Flume.
            for (g, ((_, ser), name)) in self.serializers.iter().zip(&names).enumerate() {
                let Some(&span) = groups.get(g + 1) else {
                    break;
                };
                // A group that took no part: Java would store a null value (and the
                // millis serializer throw); flume-fast leaves the header alone.
                let Some((a, b)) = span else { continue };
                let value = &text[a..b];
                match ser {
                    Serializer::PassThrough => e.headers.set(name.clone(), value.to_string()),
                    Serializer::Millis(f) => match f.parse_millis(value) {
                        Ok(ms) => e.headers.set(name.clone(), ms.to_string()),
                        // Java throws, failing the whole batch on every retry; flume-fast
                        // leaves the header unset.
                        Err(err) => tracing::debug!("regex_extractor: {err}"),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn run(kv: &[(&str, &str)], body: &str) -> String {
        let i: RegexExtractor = super::super::from_pairs(kv).unwrap();
        let mut evs = vec![Event::new(Bytes::from(body.to_string()))];
        i.apply(&mut evs, 0);
        evs[0].headers.to_string()
    }

    #[test]
    fn user_guide_examples() {
        let kv = [
            ("regex", "(\\d):(\\d):(\\d)"),
            ("serializers", "s1 s2 s3"),
            ("serializers.s1.name", "one"),
            ("serializers.s2.name", "two"),
            ("serializers.s3.name", "three"),
        ];
        assert_eq!(run(&kv, "1:2:3.4foobar5"), "{one=1, two=2, three=3}");
        // Fewer serializers than groups: the extra groups are skipped.
        let fewer = [kv[0], ("serializers", "s1"), kv[2]];
        assert_eq!(run(&fewer, "1:2:3"), "{one=1}");
        let kv = [
            (
                "regex",
                "^(?:\\n)?(\\d\\d\\d\\d-\\d\\d-\\d\\d\\s\\d\\d:\\d\\d)",
            ),
            ("serializers", "s1"),
            ("serializers.s1.type", MILLIS),
            ("serializers.s1.name", "timestamp"),
            ("serializers.s1.pattern", "yyyy-MM-dd HH:mm"),
        ];
        let h = run(&kv, "2012-10-18 18:47:57,614 some log line");
        let expected = jiff::civil::date(2012, 10, 18)
            .at(18, 47, 0, 0)
            .to_zoned(jiff::tz::TimeZone::system())
            .unwrap()
            .timestamp()
            .as_millisecond();
        assert_eq!(h, format!("{{timestamp={expected}}}"));
        assert_eq!(run(&kv, "no date here"), "{}");
    }

    #[test]
    fn more_serializers_than_groups_and_unmatched_groups() {
        let kv = [
            ("regex", "a(b)?(c)"),
            ("serializers", "x y z"),
            ("serializers.x.name", "x"),
            ("serializers.y.name", "y"),
            ("serializers.z.name", "z"),
        ];
        assert_eq!(run(&kv, "ac"), "{y=c}");
        assert_eq!(run(&kv, "abc"), "{x=b, y=c}");
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let err = |kv: &[(&str, &str)]| {
            super::super::from_pairs::<RegexExtractor>(kv)
                .unwrap_err()
                .to_string()
        };
        let e = err(&[("regex", "(a)"), ("serializers", "s1")]);
        assert!(e.contains("serializers.s1.name"), "{e}");
        let e = err(&[
            ("regex", "(a)"),
            ("serializers", "s1"),
            ("serializers.s1.name", "n"),
            ("serializers.s1.type", "com.example.Mine"),
        ]);
        assert!(
            e.contains("serializers.s1.type") && e.contains("com.example.Mine"),
            "{e}"
        );
        let e = err(&[
            ("regex", "(a)"),
            ("serializers", "s1"),
            ("serializers.s1.name", "n"),
            ("serializers.s1.type", MILLIS),
            ("serializers.s1.pattern", "yyyy-ww"),
        ]);
        assert!(
            e.contains("serializers.s1.pattern") && e.contains("'w'"),
            "{e}"
        );
        let e = err(&[("regex", "(?<=a)\\G"), ("serializers", "s1")]);
        assert!(
            e.contains("\\G") && e.contains("interceptors.i1.regex"),
            "{e}"
        );
    }
}
