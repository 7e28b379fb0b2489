//! Event serializers for file-writing sinks (Flume's `EventSerializer`s): `TEXT` writes the
//! body, `HEADER_AND_TEXT` writes `{k=v, ...} ` then the body; both end each event with a
//! newline unless `appendNewline = false`. A whole batch is serialized into one buffer.

use crate::event::Event;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serializer {
    Text { append_newline: bool },
    HeaderAndText { append_newline: bool },
}

/// The names `sink.serializer` / `serializer` accept, lower-cased for matching.
pub const NAMES: &[&str] = &[
    "TEXT",
    "HEADER_AND_TEXT",
    "org.apache.flume.serialization.BodyTextEventSerializer$Builder",
    "org.apache.flume.serialization.HeaderAndBodyTextEventSerializer$Builder",
];

impl Serializer {
    /// Looks up a serializer by Flume name; `None` if unknown. `avro_event` is reported
    /// separately by callers until the Avro container serializer lands.
    pub fn from_name(name: &str, append_newline: bool) -> Option<Serializer> {
        let lower = name.to_ascii_lowercase();
        if lower == "text" || name == NAMES[2] {
            Some(Serializer::Text { append_newline })
        } else if lower == "header_and_text" || name == NAMES[3] {
            Some(Serializer::HeaderAndText { append_newline })
        } else {
            None
        }
    }

    pub fn write(&self, events: &[Event], out: &mut Vec<u8>) {
        match *self {
            Serializer::Text { append_newline } => {
                let extra = usize::from(append_newline);
                out.reserve(events.iter().map(|e| e.body.len() + extra).sum());
                for e in events {
                    out.extend_from_slice(&e.body);
                    if append_newline {
                        out.push(b'\n');
                    }
                }
            }
            Serializer::HeaderAndText { append_newline } => {
                for e in events {
                    let _ = write!(out, "{} ", e.headers);
                    out.extend_from_slice(&e.body);
                    if append_newline {
                        out.push(b'\n');
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Headers;
    use bytes::Bytes;

    #[test]
    fn formats_match_flume() {
        let mut h = Headers::new();
        h.set("host", "a");
        let evs = vec![
            Event::with_headers(h, Bytes::from_static(b"x")),
            Event::new(Bytes::from_static(b"y")),
        ];
        let mut out = Vec::new();
        Serializer::from_name("text", true)
            .unwrap()
            .write(&evs, &mut out);
        assert_eq!(out, b"x\ny\n");
        out.clear();
        Serializer::from_name("HEADER_AND_TEXT", false)
            .unwrap()
            .write(&evs, &mut out);
        assert_eq!(out, b"{host=a} x{} y");
    }
}
