//! Reads a Java `.properties` file (Flume's config format) into located key/value pairs,
//! then substitutes `${NAME}`, `${sys:NAME}` and `${env:NAME}` in values.
//!
//! Lexing (comments, separators, continuation lines, `\uXXXX` escapes) is the
//! `java-properties` crate's; this module adds what Flume needs on top: the line each key
//! came from, UTF-8 input (Flume reads configs with the platform charset), last-wins
//! duplicates reported as warnings, and substitution with a clear error for unresolved names.

use super::{ConfigError, Loc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One `key = value` line of the file, after escapes and substitution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prop {
    pub key: String,
    pub value: String,
    pub loc: Loc,
}

/// Where `${NAME}` looks: `-D` definitions first (Flume's system properties), then the
/// environment, then top-level keys of the file itself (Flume 1.10's "override file" lookup).
#[derive(Clone, Debug, Default)]
pub struct Substitutions {
    pub defines: HashMap<String, String>,
    pub env: HashMap<String, String>,
}

impl Substitutions {
    pub fn from_process_env(defines: HashMap<String, String>) -> Self {
        Substitutions {
            defines,
            env: std::env::vars().collect(),
        }
    }
}

/// Parses `text` (the content of `file`) into properties in file order.
pub fn parse(file: &Path, text: &str) -> Result<Vec<Prop>, ConfigError> {
    let file: Arc<Path> = Arc::from(file);
    let mut out = Vec::new();
    let iter =
        java_properties::PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8);
    for line in iter {
        let line = line.map_err(|e| ConfigError::Syntax {
            loc: Loc {
                file: file.clone(),
                line: e.line_number().unwrap_or(0) as u32,
            },
            msg: e.to_string(),
        })?;
        let number = line.line_number() as u32;
        if let java_properties::LineContent::KVPair(key, value) = line.consume_content() {
            out.push(Prop {
                key,
                value,
                loc: Loc {
                    file: file.clone(),
                    line: number,
                },
            });
        }
    }
    Ok(out)
}

/// Replaces `${...}` references in every value. The file's own keys are a last resort, so a
/// value file (`NC_PORT = 44444`) can feed another, as in Flume 1.10+.
pub fn substitute(props: &mut [Prop], subs: &Substitutions) -> Result<(), ConfigError> {
    let own: HashMap<String, String> = props
        .iter()
        .filter(|p| !p.value.contains("${"))
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    for p in props.iter_mut() {
        if p.value.contains("${") {
            p.value = substitute_one(&p.value, subs, &own).map_err(|msg| ConfigError::Key {
                loc: p.loc.clone(),
                key: p.key.clone(),
                msg,
            })?;
        }
    }
    Ok(())
}

fn substitute_one(
    value: &str,
    subs: &Substitutions,
    own: &HashMap<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated '${{' in value '{value}'"))?;
        let reference = &after[..end];
        // Commons Text's `${name:-default}`, which Flume 1.10+ accepts.
        let (name, fallback) = match reference.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        let resolved = if let Some(n) = name.strip_prefix("env:") {
            subs.env.get(n)
        } else if let Some(n) = name.strip_prefix("sys:") {
            subs.defines.get(n)
        } else {
            subs.defines
                .get(name)
                .or_else(|| subs.env.get(name))
                .or_else(|| own.get(name))
        };
        match resolved.map(String::as_str).or(fallback) {
            Some(v) => out.push_str(v),
            None if name.is_empty() => return Err("empty '${}' reference".to_string()),
            None => {
                return Err(format!(
                "unresolved '${{{name}}}': define it with -D{0}=VALUE or set the environment variable {0}",
                name.trim_start_matches("env:").trim_start_matches("sys:")
            ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String, u32)> {
        parse(Path::new("t.conf"), text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value, p.loc.line))
            .collect()
    }

    #[test]
    fn java_properties_lexing() {
        let text = "# comment\n! also comment\na = 1\nb:2\nc 3\n  d=  spaced value  \n\
                    e = one \\\n    two\nf = \\u0041\\t\\\\\nkey\\ with\\ space = x\n";
        let got = kv(text);
        assert_eq!(
            got,
            vec![
                ("a".into(), "1".into(), 3),
                ("b".into(), "2".into(), 4),
                ("c".into(), "3".into(), 5),
                ("d".into(), "spaced value  ".into(), 6),
                ("e".into(), "one two".into(), 7),
                ("f".into(), "A\t\\".into(), 9),
                ("key with space".into(), "x".into(), 10),
            ]
        );
    }

    #[test]
    fn utf8_values() {
        assert_eq!(kv("k = héllo\n")[0].1, "héllo");
    }

    #[test]
    fn substitution_order_and_errors() {
        let mut props = parse(
            Path::new("t.conf"),
            "PORT_FROM_FILE = 7\na = ${P}\nb = ${env:E}-${sys:P}\nc = ${PORT_FROM_FILE}\nd = ${NOPE:-x/y}\n",
        )
        .unwrap();
        let subs = Substitutions {
            defines: [("P".to_string(), "1".to_string())].into(),
            env: [
                ("P".to_string(), "2".to_string()),
                ("E".to_string(), "3".to_string()),
            ]
            .into(),
        };
        substitute(&mut props, &subs).unwrap();
        let values: Vec<_> = props.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(values, ["7", "1", "3-1", "7", "x/y"]);

        let mut bad = parse(Path::new("t.conf"), "x = 1\ny = ${NOPE}\n").unwrap();
        let err = substitute(&mut bad, &subs).unwrap_err().to_string();
        assert!(
            err.starts_with("t.conf:2: y: unresolved '${NOPE}'"),
            "{err}"
        );
    }
}
