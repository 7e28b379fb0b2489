//! Reads a Java `.properties` file (Flume's config format) into located key/value pairs,
//! then substitutes `${NAME}`, `${sys:NAME}` and `${env:NAME}` in values.
//!
//! Lexing (comments, separators, continuation lines, `\uXXXX` escapes) is the
//! `java-properties` crate's; this module adds what Flume needs on top: the line each key
//! came from, UTF-8 input (Flume reads configs with the platform charset), last-wins
//! duplicates reported as warnings, and substitution with a clear error for unresolved names.

use super::{ConfigError, Loc};
use std::cell::RefCell;
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

/// Replaces `${...}` references in every value, as Flume 1.10+ does through Commons Text's
/// `StringSubstitutor`: `${name:-default}` falls back to its default, references nest
/// (`${A:-${B}}`), and a default or a key of the file that holds references is itself
/// substituted. The file's own keys are a last resort, so a value file
/// (`NC_PORT = 44444`) can feed another.
pub fn substitute(props: &mut [Prop], subs: &Substitutions) -> Result<(), ConfigError> {
    // Last wins for a key given twice, as for the key itself.
    let own: HashMap<&str, &Prop> = props.iter().map(|p| (p.key.as_str(), p)).collect();
    let resolver = Resolver {
        subs,
        own: &own,
        done: RefCell::new(HashMap::new()),
    };
    let mut resolved = Vec::new();
    for (i, p) in props.iter().enumerate() {
        if p.value.contains("${") {
            let mut chain = vec![p.key.as_str()];
            let value = resolver
                .expand(&p.value, &mut chain)
                .map_err(|msg| ConfigError::Key {
                    loc: p.loc.clone(),
                    key: p.key.clone(),
                    msg,
                })?;
            resolved.push((i, value));
        }
    }
    for (i, value) in resolved {
        props[i].value = value;
    }
    Ok(())
}

/// The longest a value may grow to through references: keys that each double the one
/// before would otherwise take memory exponential in the number of lines.
const MAX_VALUE_LEN: usize = 64 << 10;

struct Resolver<'a> {
    subs: &'a Substitutions,
    own: &'a HashMap<&'a str, &'a Prop>,
    /// Keys of the file already expanded, so each is expanded once.
    done: RefCell<HashMap<&'a str, String>>,
}

impl<'a> Resolver<'a> {
    /// `text` with every reference replaced; `chain` holds the keys being expanded, to
    /// catch a key that refers to itself.
    fn expand(&self, text: &'a str, chain: &mut Vec<&'a str>) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = closing_brace(after)
                .ok_or_else(|| format!("unterminated '${{' in value '{text}'"))?;
            let reference = &after[..end];
            let (name, fallback) = split_default(reference);
            if name.contains("${") {
                return Err(format!(
                    "'${{{reference}}}': a reference inside a variable name is not supported"
                ));
            }
            match self.lookup(name, chain)? {
                Some(v) => out.push_str(&v),
                None => match fallback {
                    Some(d) => out.push_str(&self.expand(d, chain)?),
                    None if name.is_empty() => return Err("empty '${}' reference".to_string()),
                    None => {
                        let bare = name.trim_start_matches("env:").trim_start_matches("sys:");
                        return Err(format!(
                            "unresolved '${{{name}}}': define it with -D{bare}=VALUE or set the environment variable {bare}"
                        ));
                    }
                },
            }
            if out.len() > MAX_VALUE_LEN {
                return Err(format!(
                    "the value grows past {MAX_VALUE_LEN} bytes through its references"
                ));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The value `name` stands for: `-D` definitions, then the environment (both taken as
    /// they are), then a key of the file (itself expanded).
    fn lookup(&self, name: &'a str, chain: &mut Vec<&'a str>) -> Result<Option<String>, String> {
        if let Some(n) = name.strip_prefix("env:") {
            return Ok(self.subs.env.get(n).cloned());
        }
        if let Some(n) = name.strip_prefix("sys:") {
            return Ok(self.subs.defines.get(n).cloned());
        }
        if let Some(v) = self
            .subs
            .defines
            .get(name)
            .or_else(|| self.subs.env.get(name))
        {
            return Ok(Some(v.clone()));
        }
        let Some(p) = self.own.get(name) else {
            return Ok(None);
        };
        if !p.value.contains("${") {
            return Ok(Some(p.value.clone()));
        }
        if let Some(v) = self.done.borrow().get(name) {
            return Ok(Some(v.clone()));
        }
        if chain.contains(&name) {
            chain.push(name);
            return Err(format!(
                "'${{{name}}}' refers to itself: {}",
                chain.join(" -> ")
            ));
        }
        chain.push(name);
        let v = self.expand(&p.value, chain).map_err(|e| {
            format!(
                "'${{{name}}}' is the key {name} of {}, whose value cannot be resolved: {e}",
                p.loc
            )
        })?;
        chain.pop();
        self.done.borrow_mut().insert(name, v.clone());
        Ok(Some(v))
    }
}

/// The index of the `}` that closes a reference whose `${` came just before `s`.
fn closing_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            depth += 1;
            i += 2;
            continue;
        }
        if bytes[i] == b'}' {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
        i += 1;
    }
    None
}

/// `name:-default`, split at the first `:-` outside nested references.
fn split_default(reference: &str) -> (&str, Option<&str>) {
    let bytes = reference.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b'-') => {
                return (&reference[..i], Some(&reference[i + 2..]));
            }
            _ => {}
        }
        i += 1;
    }
    (reference, None)
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

    fn substituted(text: &str, env: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let mut props = parse(Path::new("t.conf"), text).unwrap();
        let subs = Substitutions {
            defines: HashMap::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        substitute(&mut props, &subs).map_err(|e| e.to_string())?;
        Ok(props.into_iter().map(|p| p.value).collect())
    }

    #[test]
    fn nested_defaults_resolve_as_flume_1_10() {
        let got = substituted(
            "a = ${UNDEF:-${HOME}}\nb = ${UNDEF:-${ALSO:-x}y}\nc = ${UNDEF:-}\nd = ${HOME:-${NOPE}}\n",
            &[("HOME", "/home/f")],
        )
        .unwrap();
        assert_eq!(got, ["/home/f", "xy", "", "/home/f"]);
        let err = substituted("a = ${UNDEF:-${NOPE}}\n", &[]).unwrap_err();
        assert!(
            err.starts_with("t.conf:1: a: unresolved '${NOPE}'"),
            "{err}"
        );
    }

    #[test]
    fn file_keys_that_hold_references_are_resolved_or_named() {
        let got =
            substituted("base = ${ROOT}/data\ndir = ${base}/ch\n", &[("ROOT", "/r")]).unwrap();
        assert_eq!(got, ["/r/data", "/r/data/ch"]);

        // The error names the key of the file and its line, not just "-D".
        let err = substituted("base = ${ROOT}/data\ndir = ${base}/ch\n", &[]).unwrap_err();
        assert!(
            err.starts_with("t.conf:1: base: unresolved '${ROOT}'"),
            "{err}"
        );
        let err = substituted("dir = ${base}/ch\nbase = ${ROOT}/data\n", &[]).unwrap_err();
        assert!(
            err.starts_with(
                "t.conf:1: dir: '${base}' is the key base of t.conf:2, whose value cannot be resolved: unresolved '${ROOT}'"
            ),
            "{err}"
        );

        let err = substituted("a = ${b}\nb = ${a}\n", &[]).unwrap_err();
        assert!(err.contains("refers to itself: a -> b -> a"), "{err}");
        let err = substituted("a = ${${b}}\n", &[]).unwrap_err();
        assert!(
            err.contains("inside a variable name is not supported"),
            "{err}"
        );
        let err = substituted("a = ${b\n", &[]).unwrap_err();
        assert!(err.contains("unterminated"), "{err}");
    }

    #[test]
    fn references_that_double_at_every_key_stop_at_a_bound() {
        let mut text = String::from("k0 = xxxxxxxxxxxxxxxx\n");
        for i in 1..40 {
            text.push_str(&format!("k{i} = ${{k{}}}${{k{}}}\n", i - 1, i - 1));
        }
        let err = substituted(&text, &[]).unwrap_err();
        assert!(err.contains("grows past 65536 bytes"), "{err}");
    }
}
