//! Declared key tables: every component type lists its keys once (name, kind, default, one
//! line of doc). Parsing, defaults, unknown-key warnings, `flume-fast describe` and
//! `flume-fast check` all read the same table, so they cannot drift apart.

use super::{ConfigError, Loc, Prop};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a key's value must look like; also how `describe` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Str,
    Bool,
    /// A signed integer within the bounds.
    Int {
        min: i64,
        max: i64,
    },
    /// One of the listed words (case-insensitive).
    Choice(&'static [&'static str]),
    /// A space-separated list.
    List,
    /// A family of keys under a prefix (`spec.key` ends in `.*`).
    Prefix,
}

impl KeyKind {
    pub const fn int(min: i64, max: i64) -> Self {
        KeyKind::Int { min, max }
    }
    pub const POSITIVE: KeyKind = KeyKind::Int {
        min: 1,
        max: i64::MAX,
    };
    pub const NON_NEGATIVE: KeyKind = KeyKind::Int {
        min: 0,
        max: i64::MAX,
    };
    pub const PORT: KeyKind = KeyKind::Int { min: 0, max: 65535 };

    pub fn name(&self) -> String {
        match self {
            KeyKind::Str => "string".into(),
            KeyKind::Bool => "boolean".into(),
            KeyKind::Int {
                min: i64::MIN,
                max: i64::MAX,
            } => "integer".into(),
            KeyKind::Int { min, max } if *max == i64::MAX => format!("integer >= {min}"),
            KeyKind::Int { min, max } => format!("integer {min}..={max}"),
            KeyKind::Choice(c) => c.join("|"),
            KeyKind::List => "space-separated list".into(),
            KeyKind::Prefix => "keys".into(),
        }
    }
}

/// One declared key of a component type.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    pub key: &'static str,
    pub kind: KeyKind,
    /// `None` with `required` means the user must set it; `None` otherwise means "unset".
    pub default: Option<&'static str>,
    pub required: bool,
    pub doc: &'static str,
}

impl KeySpec {
    pub const fn new(
        key: &'static str,
        kind: KeyKind,
        default: Option<&'static str>,
        doc: &'static str,
    ) -> Self {
        KeySpec {
            key,
            kind,
            default,
            required: false,
            doc,
        }
    }
    pub const fn required(key: &'static str, kind: KeyKind, doc: &'static str) -> Self {
        KeySpec {
            key,
            kind,
            default: None,
            required: true,
            doc,
        }
    }
    /// A Flume key that flume-fast accepts and ignores (with a note saying why).
    pub const fn ignored(key: &'static str, doc: &'static str) -> Self {
        KeySpec {
            key,
            kind: KeyKind::Str,
            default: None,
            required: false,
            doc,
        }
    }
}

/// `a` then `b` as one key table, for a family of keys several types share (a sink's
/// serializer keys): `concat::<{ A.len() + B.len() }>(A, &B)`.
pub const fn concat<const N: usize>(a: &[KeySpec], b: &[KeySpec]) -> [KeySpec; N] {
    assert!(a.len() + b.len() == N, "N must be the sum of the lengths");
    let mut out = [KeySpec::ignored("", ""); N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

/// A component type as `describe` and the registries see it.
#[derive(Debug)]
pub struct TypeInfo {
    /// Short aliases (matched case-insensitively, as Flume does), first is canonical.
    pub aliases: &'static [&'static str],
    /// The Java class name Flume configs may spell out.
    pub class: &'static str,
    pub doc: &'static str,
    pub keys: &'static [KeySpec],
}

impl TypeInfo {
    pub fn matches(&self, ty: &str) -> bool {
        ty == self.class || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(ty))
    }

    pub fn name(&self) -> &'static str {
        self.aliases.first().copied().unwrap_or(self.class)
    }

    /// The `describe` text: a header and one line per key.
    pub fn describe(&self, kind: &str) -> String {
        let mut s = format!(
            "{kind} type '{}' (Java class {})\n  {}\n\n",
            self.name(),
            self.class,
            self.doc
        );
        if self.aliases.len() > 1 {
            s.push_str(&format!("  aliases: {}\n\n", self.aliases.join(", ")));
        }
        let width = self.keys.iter().map(|k| k.key.len()).max().unwrap_or(0);
        for k in self.keys {
            let default = match (k.required, k.default) {
                (true, _) => "(required)".to_string(),
                (false, Some(d)) => format!("= {d}"),
                (false, None) => "(unset)".to_string(),
            };
            s.push_str(&format!(
                "  {:width$}  {:<22} {}\n  {:width$}  {}\n",
                k.key,
                k.kind.name(),
                default,
                "",
                k.doc,
            ));
        }
        s
    }
}

/// A resolved key as `check` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub key: String,
    pub value: String,
    pub defaulted: bool,
}

/// Typed access to one component's properties, driven by its key table. Every read is
/// recorded so `check` can print the effective configuration, and `finish` warns about the
/// keys that were set but that no table declares.
pub struct Keys<'a> {
    /// How messages name the component ("source 'r1'").
    component: String,
    /// The full key prefix, for errors about absent keys ("a1.sources.r1").
    prefix: String,
    spec: &'static [KeySpec],
    props: &'a BTreeMap<String, Prop>,
    /// Where the component was declared, for errors about keys that are absent.
    decl: Loc,
    pub resolved: Vec<Resolved>,
}

impl<'a> Keys<'a> {
    pub fn new(
        component: &str,
        prefix: &str,
        spec: &'static [KeySpec],
        props: &'a BTreeMap<String, Prop>,
        decl: Loc,
    ) -> Self {
        Keys {
            component: component.to_string(),
            prefix: prefix.to_string(),
            spec,
            props,
            decl,
            resolved: Vec::new(),
        }
    }

    /// The component's full key prefix (`<agent>.<section>.<name>`), for defaults that
    /// derive from the agent's and the component's names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn spec(&self, key: &str) -> &'static KeySpec {
        self.spec
            .iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("key '{key}' read but not declared in its table"))
    }

    /// The raw text for `key` (user's or default) and where it came from.
    fn raw(&mut self, key: &str) -> Result<Option<(String, Option<&'a Prop>)>, ConfigError> {
        let spec = self.spec(key);
        if let Some(p) = self.props.get(key) {
            self.resolved.push(Resolved {
                key: key.to_string(),
                value: p.value.clone(),
                defaulted: false,
            });
            let value = p.value.trim();
            // An empty required value would mean "here" for a directory or "any" for a host:
            // never what was meant, so it is refused like a missing key.
            if spec.required && value.is_empty() {
                return Err(self.err(
                    Some(p),
                    key,
                    format!("required key '{key}' is empty ({})", spec.doc),
                ));
            }
            return Ok(Some((value.to_string(), Some(p))));
        }
        if spec.required {
            return Err(ConfigError::Key {
                loc: self.decl.clone(),
                key: format!("{}.{}", self.prefix, key),
                msg: format!("required key '{key}' is missing ({})", spec.doc),
            });
        }
        Ok(spec.default.map(|d| {
            self.resolved.push(Resolved {
                key: key.to_string(),
                value: d.to_string(),
                defaulted: true,
            });
            (d.to_string(), None)
        }))
    }

    fn err(&self, prop: Option<&Prop>, key: &str, msg: String) -> ConfigError {
        ConfigError::Key {
            loc: prop
                .map(|p| p.loc.clone())
                .unwrap_or_else(|| self.decl.clone()),
            key: prop
                .map(|p| p.key.clone())
                .unwrap_or_else(|| format!("{}.{}", self.prefix, key)),
            msg,
        }
    }

    /// A string key exactly as written, trailing whitespace kept, as Java's
    /// `Context.getString` returns it (patterns, replacement strings, header values).
    pub fn verbatim(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        let raw = self.raw(key)?;
        Ok(raw.map(|(v, prop)| prop.map(|p| p.value.clone()).unwrap_or(v)))
    }

    pub fn opt_str(&mut self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.raw(key)?.map(|(v, _)| v))
    }

    pub fn str(&mut self, key: &str) -> Result<String, ConfigError> {
        Ok(self.opt_str(key)?.unwrap_or_default())
    }

    pub fn opt_int(&mut self, key: &str) -> Result<Option<i64>, ConfigError> {
        let Some((v, prop)) = self.raw(key)? else {
            return Ok(None);
        };
        let KeyKind::Int { min, max } = self.spec(key).kind else {
            panic!("key '{key}' is not declared as an integer");
        };
        let n: i64 = v
            .parse()
            .map_err(|_| self.err(prop, key, format!("expected an integer, found '{v}'")))?;
        if n < min || n > max {
            let range = if max == i64::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            return Err(self.err(prop, key, format!("{n} is out of range: must be {range}")));
        }
        Ok(Some(n))
    }

    pub fn int(&mut self, key: &str) -> Result<i64, ConfigError> {
        Ok(self.opt_int(key)?.unwrap_or(0))
    }

    /// An integer key that must fit `usize` (sizes, counts); bounds come from the table.
    pub fn usize(&mut self, key: &str) -> Result<usize, ConfigError> {
        Ok(self.int(key)?.max(0) as usize)
    }

    pub fn secs(&mut self, key: &str) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.int(key)?.max(0) as u64))
    }

    pub fn millis(&mut self, key: &str) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.int(key)?.max(0) as u64))
    }

    /// A timeout in milliseconds where 0 means none (Flume's and flume-fast's convention).
    pub fn opt_millis(&mut self, key: &str) -> Result<Option<Duration>, ConfigError> {
        Ok(Some(self.millis(key)?).filter(|d| !d.is_zero()))
    }

    pub fn bool(&mut self, key: &str) -> Result<bool, ConfigError> {
        let Some((v, prop)) = self.raw(key)? else {
            return Ok(false);
        };
        // Java's Boolean.parseBoolean would read anything but "true" as false; a typo
        // there silently flips behaviour, so anything else is an error here.
        match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.err(prop, key, format!("expected true or false, found '{v}'"))),
        }
    }

    /// A `Choice` key, returned lower-cased so callers match on canonical spellings.
    pub fn choice(&mut self, key: &str) -> Result<String, ConfigError> {
        let Some((v, prop)) = self.raw(key)? else {
            return Ok(String::new());
        };
        let KeyKind::Choice(options) = self.spec(key).kind else {
            panic!("key '{key}' is not declared as a choice");
        };
        options
            .iter()
            .find(|o| o.eq_ignore_ascii_case(&v))
            .map(|o| o.to_ascii_lowercase())
            .ok_or_else(|| {
                self.err(
                    prop,
                    key,
                    format!("'{v}' is not one of: {}", options.join(", ")),
                )
            })
    }

    pub fn list(&mut self, key: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .opt_str(key)?
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default())
    }

    /// All keys under `prefix.` (for `Prefix` families), with the prefix removed.
    pub fn prefixed(&mut self, prefix: &str) -> Vec<(String, &'a Prop)> {
        let with_dot = format!("{prefix}.");
        self.props
            .range(with_dot.clone()..)
            .take_while(|(k, _)| k.starts_with(&with_dot))
            .map(|(k, p)| (k[with_dot.len()..].to_string(), p))
            .collect()
    }

    /// An error about a key's value, located at the key's line.
    pub fn invalid(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        self.err(self.props.get(key), key, msg.into())
    }

    /// Warnings for keys that no table declares, each with the closest known key.
    /// `structural` are keys the caller handled itself (type, channels, selector.*, ...).
    pub fn unknown_keys(&self, structural: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for (k, p) in self.props {
            let declared = self.spec.iter().any(|s| match s.key.strip_suffix(".*") {
                Some(prefix) => k.starts_with(prefix) && k[prefix.len()..].starts_with('.'),
                None => s.key == k,
            });
            let structural_hit = structural.iter().any(|s| match s.strip_suffix(".*") {
                Some(prefix) => k.starts_with(prefix) && k[prefix.len()..].starts_with('.'),
                None => *s == k,
            });
            if declared || structural_hit {
                continue;
            }
            let candidates = self.spec.iter().map(|s| s.key);
            let hint = match closest(k, candidates.chain(structural.iter().copied())) {
                Some(s) => format!("; did you mean '{s}'?"),
                None => String::new(),
            };
            out.push(format!(
                "{}: {}: unknown key '{k}' for {} is ignored{hint}",
                p.loc, p.key, self.component
            ));
        }
        out
    }
}

/// The candidate closest to `word` (case aside) when it is close enough to be a typo of it.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&word, &c.to_lowercase()), c))
        .min()
        .filter(|&(d, _)| d <= 3.max(word.len() / 3))
        .map(|(_, c)| c)
}

/// Builds a component of type `T` from `key = value` pairs under `prefix`, for the types'
/// unit tests: the pairs come from `a.conf`, the first on line 10 and each next one on
/// the next line, so an error's file:line can be checked.
#[cfg(test)]
pub(crate) fn from_pairs<T: super::Component>(
    prefix: &str,
    pairs: &[(&str, &str)],
) -> Result<T, ConfigError> {
    let file: std::sync::Arc<std::path::Path> =
        std::sync::Arc::from(std::path::Path::new("a.conf"));
    let props: BTreeMap<String, Prop> = pairs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let prop = Prop {
                key: format!("{prefix}.{k}"),
                value: v.to_string(),
                loc: Loc {
                    file: file.clone(),
                    line: 10 + i as u32,
                },
            };
            (k.to_string(), prop)
        })
        .collect();
    let decl = Loc { file, line: 1 };
    let mut k = Keys::new(prefix, prefix, T::TYPE.keys, &props, decl);
    T::from_keys(&mut k)
}
