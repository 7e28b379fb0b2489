//! Flume's `JSONHandler`: a request body that is a JSON array of
//! `{"headers": {...}, "body": "..."}` objects becomes one event per object.
//!
//! As Flume: the text is read in the request's charset (`charset=` of Content-Type; UTF-8
//! when absent; only UTF-8, UTF-16 and UTF-32 are taken), malformed input becoming U+FFFD
//! as a Java reader makes it, and each body string is encoded back into that same charset
//! (Java's `String.getBytes(charset)`: UTF-16 with a big-endian byte order mark, UTF-32
//! big-endian). Header values and bodies may be JSON strings, numbers (their text as
//! written) or booleans, as Gson's string adapter takes them; `null` is no header or an
//! empty body. What Gson refuses as syntax is a 400; what makes Flume's handler throw
//! otherwise (a `null` document or event, text after the array, an unsupported charset)
//! is a 500, as Flume answers it.
//!
//! Parsing borrows from the request text: a UTF-8 body string without escapes becomes a
//! slice of the request's buffer, with no copy.

use super::handler::HandlerError;
use crate::event::{Body, Event, Headers};
use bytes::Bytes;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::rc::Rc;

/// The charsets Flume's JSONHandler takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Utf16,
    Utf32,
}

/// An object's field name, borrowed from the request when it has no escapes (serde's own
/// `Cow<str>` always allocates).
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// One event object: its last `headers` and `body` (Gson's reflective adapter keeps the
/// last of a repeated field); other fields are skipped.
#[derive(Default)]
struct JsonEvent<'a> {
    headers: Option<JsonHeaders>,
    body: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = JsonEvent<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut e = JsonEvent::default();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    match &*key {
                        "headers" => e.headers = map.next_value()?,
                        "body" => e.body = map.next_value::<Option<&'de RawValue>>()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(e)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A header object, read straight into an event's headers.
struct JsonHeaders(Headers);

impl<'de> Deserialize<'de> for JsonHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonHeaders;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of headers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let mut headers = Headers::new();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    let raw: &'de RawValue = map.next_value()?;
                    // A null value is no header; Gson's map adapter refuses a name repeated
                    // over a value it holds.
                    if let Some(value) = scalar(raw).map_err(A::Error::custom)? {
                        if headers.get(&key).is_some() {
                            return Err(A::Error::custom(format!("duplicate key: {key}")));
                        }
                        headers.set(&*key, &*value);
                    }
                }
                Ok(JsonHeaders(headers))
            }
        }
        d.deserialize_map(V)
    }
}

/// The charset a request's Content-Type names, as Jetty's `getCharacterEncoding` reads it
/// (`None` when it names none).
pub fn charset_param(content_type: Option<&str>) -> Option<&str> {
    content_type?.split(';').skip(1).find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The events of a JSON request body (`buf` holds the body; bodies may slice it).
pub fn events(buf: &Bytes, content_type: Option<&str>) -> Result<Vec<Event>, HandlerError> {
    let charset = match charset_param(content_type) {
        None => Charset::Utf8,
        Some(c) if c.eq_ignore_ascii_case("utf-8") => Charset::Utf8,
        Some(c) if c.eq_ignore_ascii_case("utf-16") => Charset::Utf16,
        Some(c) if c.eq_ignore_ascii_case("utf-32") => Charset::Utf32,
        Some(_) => {
            return Err(HandlerError::Failed(
                "JSON handler supports UTF-8, UTF-16 and UTF-32 only.".into(),
            ))
        }
    };
    match charset {
        Charset::Utf8 => match std::str::from_utf8(buf) {
            Ok(text) => {
                let shared = Rc::new(buf.clone());
                parse(text, charset, Some(&shared))
            }
            Err(_) => parse(&String::from_utf8_lossy(buf), charset, None),
        },
        Charset::Utf16 => parse(&decode_utf16(buf), charset, None),
        Charset::Utf32 => parse(&decode_utf32(buf), charset, None),
    }
}

/// `text` parsed; `shared`: the buffer `text` is, for bodies that can slice it.
fn parse(
    text: &str,
    charset: Charset,
    shared: Option<&Rc<Bytes>>,
) -> Result<Vec<Event>, HandlerError> {
    let bad = |e: serde_json::Error| {
        HandlerError::BadRequest(format!("Request has invalid JSON Syntax. ({e})"))
    };
    let base = text.as_ptr() as usize;
    // Gson's reader skips a byte order mark at the start.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Gson reads an empty document as null, which Flume's handler then trips over.
    if text.trim_matches(is_json_space).is_empty() {
        return Err(HandlerError::Failed("null".into()));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let list: Option<Vec<Option<JsonEvent>>> = Deserialize::deserialize(&mut de).map_err(bad)?;
    // Gson's lenient reader finds what follows the array malformed: a syntax error.
    de.end().map_err(bad)?;
    let Some(list) = list else {
        return Err(HandlerError::Failed("null".into()));
    };
    let mut events = Vec::with_capacity(list.len());
    for e in list {
        let Some(e) = e else {
            return Err(HandlerError::Failed("null".into()));
        };
        let headers = e.headers.map(|h| h.0).unwrap_or_default();
        let body = match e.body {
            None => Body::new(),
            Some(raw) => match scalar(raw).map_err(bad)? {
                None => Body::new(),
                Some(Cow::Borrowed(s)) if charset == Charset::Utf8 && shared.is_some() => {
                    let start = s.as_ptr() as usize - base;
                    Body::shared(shared.unwrap().clone(), start..start + s.len())
                }
                Some(s) => Body::from(Bytes::from(encode(&s, charset))),
            },
        };
        events.push(Event::with_headers(headers, body));
    }
    Ok(events)
}

fn is_json_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// A header value or body as Gson's string adapter reads it: a string, the text of a
/// number or boolean; `None` for null; an object or array is an error.
fn scalar(raw: &RawValue) -> Result<Option<Cow<'_, str>>, serde_json::Error> {
    let text = raw.get();
    match text.as_bytes()[0] {
        b'"' => {
            let inner = &text[1..text.len() - 1];
            if inner.contains('\\') {
                Ok(Some(Cow::Owned(unescape(inner))))
            } else {
                Ok(Some(Cow::Borrowed(inner)))
            }
        }
        b'n' => Ok(None),
        b'{' | b'[' => Err(serde::de::Error::custom(format!(
            "expected a string but was {}",
            if text.starts_with('{') {
                "BEGIN_OBJECT"
            } else {
                "BEGIN_ARRAY"
            }
        ))),
        _ => Ok(Some(Cow::Borrowed(text))),
    }
}

/// The text of a JSON string the parser has checked (escapes well formed). A lone
/// surrogate escape becomes `?`, as Java's encoders write an unpaired surrogate.
fn unescape(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut units: Vec<u16> = Vec::new();
    let mut chars = inner.chars();
    let flush = |units: &mut Vec<u16>, out: &mut String| {
        out.extend(char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or('?')));
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            flush(&mut units, &mut out);
            out.push(c);
            continue;
        }
        let e = chars.next().unwrap_or('\\');
        if e == 'u' {
            let hex: String = chars.by_ref().take(4).collect();
            units.push(u16::from_str_radix(&hex, 16).unwrap_or(u16::from(b'?')));
            continue;
        }
        flush(&mut units, &mut out);
        out.push(match e {
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            other => other,
        });
    }
    flush(&mut units, &mut out);
    out
}

/// Java's `String.getBytes(charset)`.
fn encode(s: &str, charset: Charset) -> Vec<u8> {
    match charset {
        Charset::Utf8 => s.as_bytes().to_vec(),
        Charset::Utf16 if s.is_empty() => Vec::new(),
        Charset::Utf16 => {
            let mut out = vec![0xFE, 0xFF];
            for u in s.encode_utf16() {
                out.extend_from_slice(&u.to_be_bytes());
            }
            out
        }
        Charset::Utf32 => s.chars().flat_map(|c| (c as u32).to_be_bytes()).collect(),
    }
}

/// Java's UTF-16 decoder: a byte order mark picks the order (and is dropped), big-endian
/// without one; malformed units become U+FFFD.
pub fn decode_utf16(b: &[u8]) -> String {
    let (le, b) = match b {
        [0xFF, 0xFE, rest @ ..] => (true, rest),
        [0xFE, 0xFF, rest @ ..] => (false, rest),
        _ => (false, b),
    };
    let units = b.chunks_exact(2).map(|p| {
        let p = [p[0], p[1]];
        if le {
            u16::from_le_bytes(p)
        } else {
            u16::from_be_bytes(p)
        }
    });
    let mut s: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if b.len() % 2 == 1 {
        s.push(char::REPLACEMENT_CHARACTER);
    }
    s
}

/// Java's UTF-32 decoder: as `decode_utf16`, with 4-byte units.
pub fn decode_utf32(b: &[u8]) -> String {
    let (le, b) = match b {
        [0xFF, 0xFE, 0, 0, rest @ ..] => (true, rest),
        [0, 0, 0xFE, 0xFF, rest @ ..] => (false, rest),
        _ => (false, b),
    };
    let mut s: String = b
        .chunks_exact(4)
        .map(|p| {
            let p = [p[0], p[1], p[2], p[3]];
            let u = if le {
                u32::from_le_bytes(p)
            } else {
                u32::from_be_bytes(p)
            };
            char::from_u32(u).unwrap_or(char::REPLACEMENT_CHARACTER)
        })
        .collect();
    if b.len() % 4 != 0 {
        s.push(char::REPLACEMENT_CHARACTER);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event's headers and body.
    type Got = (Vec<(String, String)>, Vec<u8>);

    fn ok(body: &str, ct: Option<&str>) -> Vec<Got> {
        events(&Bytes::copy_from_slice(body.as_bytes()), ct)
            .unwrap()
            .iter()
            .map(|e| {
                let h = e
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (h, e.body.to_vec())
            })
            .collect()
    }

    fn status(body: &[u8], ct: Option<&str>) -> u16 {
        match events(&Bytes::copy_from_slice(body), ct) {
            Ok(_) => 200,
            Err(e) => e.status(),
        }
    }

    #[test]
    fn a_batch_becomes_events_with_their_headers_and_bodies() {
        let got = ok(
            r#"[{"headers":{"a":"1","n":2.50,"t":true,"z":null},"body":"hi \u00e9"},{"body":"x"},{}]"#,
            None,
        );
        let h = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            got[0],
            (
                h(&[("a", "1"), ("n", "2.50"), ("t", "true")]),
                "hi é".as_bytes().to_vec()
            )
        );
        assert_eq!(got[1], (vec![], b"x".to_vec()));
        assert_eq!(got[2], (vec![], vec![]));
        assert!(ok("[]", None).is_empty());
    }

    #[test]
    fn bodies_without_escapes_slice_the_request() {
        let buf = Bytes::from_static(br#"[{"body":"abc"},{"body":"def"}]"#);
        let evs = events(&buf, None).unwrap();
        assert!(evs[0].body.shares_buffer_with(&evs[1].body));
    }

    #[test]
    fn bodies_are_encoded_back_in_the_request_charset() {
        let text = r#"[{"body":"é"}]"#;
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let evs = events(
            &Bytes::from(utf16),
            Some("application/json; charset=UTF-16"),
        )
        .unwrap();
        assert_eq!(&evs[0].body[..], [0xFE, 0xFF, 0x00, 0xE9]);
        let utf32: Vec<u8> = text
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        let evs = events(&Bytes::from(utf32), Some("text/plain;charset=\"utf-32\"")).unwrap();
        assert_eq!(&evs[0].body[..], [0, 0, 0, 0xE9]);
    }

    #[test]
    fn what_flume_refuses_gets_its_status() {
        assert_eq!(status(b"{}", None), 400);
        assert_eq!(status(b"[1]", None), 400);
        assert_eq!(status(br#"[{"body":{}}]"#, None), 400);
        assert_eq!(status(br#"[{"headers":{"a":[]}}]"#, None), 400);
        assert_eq!(status(br#"[{"headers":{"a":"1","a":"2"}}]"#, None), 400);
        assert_eq!(status(b"[", None), 400);
        assert_eq!(status(b"", None), 500);
        assert_eq!(status(b"null", None), 500);
        assert_eq!(status(b"[null]", None), 500);
        assert_eq!(status(b"[] []", None), 400);
        assert_eq!(status(b"[]]", None), 400);
        assert_eq!(
            status(b"[]", Some("application/json; charset=ISO-8859-1")),
            500
        );
    }
}
