//! The search_replace interceptor (`search_replace`): replaces every match of a Java regex
//! in the body (decoded with `charset`) by a Java replacement string (`$1`, `${name}`).

use super::java_regex::Replacement;
use super::{Interceptor, JavaRegex};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::{Body, Event};
use bytes::Bytes;
use std::borrow::Cow;

const KEYS: &[KeySpec] = &[
    KeySpec::required(
        "searchPattern",
        KeyKind::Str,
        "Java regular expression to search for in the body",
    ),
    KeySpec::new(
        "replaceString",
        KeyKind::Str,
        Some(""),
        "Replacement, with Java's $n and ${name} group references",
    ),
    KeySpec::new(
        "charset",
        KeyKind::Str,
        Some("UTF-8"),
        "Character set of the body (UTF-8, ISO-8859-1, US-ASCII, or a WHATWG label)",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    /// ISO-8859-1 exactly (every byte is the code point of the same number).
    Latin1,
    /// US-ASCII: bytes above 0x7F decode to U+FFFD and encode back as '?'.
    Ascii,
    Other(&'static encoding_rs::Encoding),
}

#[derive(Debug, Clone)]
pub struct SearchReplace {
    pub search: JavaRegex,
    pub replace: Replacement,
    charset: Charset,
}

impl Component for SearchReplace {
    const TYPE: TypeInfo = TypeInfo {
        aliases: &["search_replace"],
        class: "org.apache.flume.interceptor.SearchAndReplaceInterceptor$Builder",
        doc: "Replaces matches of a regex in the body.",
        keys: KEYS,
    };
    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let pattern = k.verbatim("searchPattern")?.unwrap_or_default();
        let search = JavaRegex::compile(k, "searchPattern", &pattern)?;
        let rep = k.verbatim("replaceString")?.unwrap_or_default();
        let replace = Replacement::parse(&rep, &search)
            .map_err(|e| k.invalid("replaceString", format!("'{rep}': {e}")))?;
        let name = k.str("charset")?;
        let charset = match name.to_ascii_uppercase().replace('_', "-").as_str() {
            "UTF-8" | "UTF8" => Charset::Utf8,
            "ISO-8859-1" | "ISO8859-1" | "LATIN1" | "ISO-LATIN-1" => Charset::Latin1,
            "US-ASCII" | "ASCII" => Charset::Ascii,
            _ => match encoding_rs::Encoding::for_label(name.as_bytes()) {
                Some(enc) if enc.output_encoding() == enc => Charset::Other(enc),
                _ => {
                    return Err(k.invalid(
                        "charset",
                        format!("character set '{name}' is not supported (UTF-8, ISO-8859-1, US-ASCII, or a single-byte or East Asian WHATWG encoding)"),
                    ))
                }
            },
        };
        Ok(SearchReplace {
            search,
            replace,
            charset,
        })
    }
}

impl SearchReplace {
    fn decode<'a>(&self, b: &'a [u8]) -> Cow<'a, str> {
        match self.charset {
            Charset::Utf8 => String::from_utf8_lossy(b),
            Charset::Latin1 => Cow::Owned(b.iter().map(|&c| c as char).collect()),
            Charset::Ascii if b.is_ascii() => Cow::Borrowed(std::str::from_utf8(b).unwrap()),
            Charset::Ascii => Cow::Owned(
                b.iter()
                    .map(|&c| if c.is_ascii() { c as char } else { '\u{fffd}' })
                    .collect(),
            ),
            Charset::Other(enc) => enc.decode_without_bom_handling(b).0,
        }
    }

    fn encode(&self, s: String) -> Vec<u8> {
        match self.charset {
            Charset::Utf8 => s.into_bytes(),
            Charset::Latin1 => s
                .chars()
                .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
                .collect(),
            Charset::Ascii => s
                .chars()
                .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                .collect(),
            Charset::Other(enc) => enc.encode(&s).0.into_owned(),
        }
    }
}

impl Interceptor for SearchReplace {
    fn apply(&self, events: &mut Vec<Event>, _: u64) {
        for e in events.iter_mut() {
            let text = self.decode(&e.body);
            let lossy = matches!(text, Cow::Owned(_)) && self.charset != Charset::Latin1;
            let new = match self.search.replace_all(&text, &self.replace) {
                Some(new) => new,
                // Java re-encodes the decoded text even when nothing matched, which
                // replaces undecodable bytes.
                None if lossy => text.into_owned(),
                None => continue,
            };
            e.body = Body::from(Bytes::from(self.encode(new)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kv: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let i: SearchReplace = super::super::from_pairs(kv).unwrap();
        let mut evs = vec![Event::new(Bytes::copy_from_slice(body))];
        i.apply(&mut evs, 0);
        evs[0].body.to_vec()
    }

    #[test]
    fn replaces_with_group_references() {
        let kv = [
            ("searchPattern", "^(\\w+) (\\d+)"),
            ("replaceString", "$2:$1"),
        ];
        assert_eq!(run(&kv, b"user 42 logged in"), b"42:user logged in");
        assert_eq!(run(&kv, b"no match"), b"no match");
        // The Flume user guide's example: drop a leading word and its space.
        let kv = [("searchPattern", "^INFO "), ("replaceString", "")];
        assert_eq!(run(&kv, b"INFO started"), b"started");
        // replaceString defaults to "" (Java's null becomes "").
        assert_eq!(run(&[("searchPattern", "[0-9]+")], b"a1b22c"), b"abc");
    }

    #[test]
    fn charset_and_errors() {
        let kv = [
            ("searchPattern", "\u{e9}"),
            ("replaceString", "e"),
            ("charset", "ISO-8859-1"),
        ];
        assert_eq!(run(&kv, b"caf\xe9"), b"cafe");
        let e = super::super::from_pairs::<SearchReplace>(&[
            ("searchPattern", "(a)"),
            ("replaceString", "$2"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("replaceString") && e.contains("no group 2"),
            "{e}"
        );
        let e = super::super::from_pairs::<SearchReplace>(&[("replaceString", "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("searchPattern"), "{e}");
    }
}
