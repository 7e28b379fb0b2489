//! Event serializers, shared by every file-writing sink (Flume's `EventSerializer`s):
//! `file_roll` names one with `sink.serializer`, `hdfs` with `serializer`, and both read
//! the same keys under that prefix (declared once, by [`serializer_keys!`]).
//!
//! - `TEXT` writes the body; `HEADER_AND_TEXT` writes `{k=v, ...} ` then the body; both end
//!   each event with a newline unless `appendNewline = false`.
//! - `avro_event` writes an Avro object container of Flume's event record (`avro.rs`),
//!   one block per flush or per `syncIntervalBytes`, codec `compressionCodec` (null, deflate,
//!   snappy).
//!
//! A [`Writer`] is one file's serializer: it writes the file's header when it starts,
//! appends events into the caller's buffer, and at `flush` (the end of a batch) puts
//! everything it buffered there, so the sink writes a batch with one write.

pub mod avro;

use crate::config::keys::Keys;
use crate::config::ConfigError;
use crate::event::Event;
use avro::{AvroCodec, AvroWriter};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;

/// A sink's serializer, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serializer {
    Text {
        append_newline: bool,
    },
    HeaderAndText {
        append_newline: bool,
    },
    Avro {
        codec: AvroCodec,
        sync_interval: usize,
    },
}

#[derive(Clone, Copy)]
enum Name {
    Text,
    HeaderAndText,
    Avro,
}

/// Flume's names: the `EventSerializerType` alias (any case, as Flume upper-cases it) and
/// the Builder class it stands for (exact, as Java loads classes).
const NAMES: &[(&str, &str, Name)] = &[
    (
        "TEXT",
        "org.apache.flume.serialization.BodyTextEventSerializer$Builder",
        Name::Text,
    ),
    (
        "HEADER_AND_TEXT",
        "org.apache.flume.serialization.HeaderAndBodyTextEventSerializer$Builder",
        Name::HeaderAndText,
    ),
    (
        "avro_event",
        "org.apache.flume.serialization.FlumeEventAvroEventSerializer$Builder",
        Name::Avro,
    ),
];

/// The keys of a serializer named by `$prefix` (`"sink.serializer"`, `"serializer"`), for a
/// sink's key table (joined with `config::keys::concat`).
macro_rules! serializer_keys {
    ($prefix:literal) => {
        [
            $crate::config::keys::KeySpec::new(
                $prefix,
                $crate::config::keys::KeyKind::Str,
                Some("TEXT"),
                "TEXT, HEADER_AND_TEXT or avro_event (or their Builder class names)",
            ),
            $crate::config::keys::KeySpec::new(
                concat!($prefix, ".appendNewline"),
                $crate::config::keys::KeyKind::Bool,
                Some("true"),
                "TEXT/HEADER_AND_TEXT: end each event with a newline",
            ),
            $crate::config::keys::KeySpec::new(
                concat!($prefix, ".syncIntervalBytes"),
                // Avro's DataFileWriter accepts 32 bytes to 1 GiB.
                $crate::config::keys::KeyKind::int(32, 1 << 30),
                Some("2048000"),
                "avro_event: a block is written once its records reach this many bytes",
            ),
            $crate::config::keys::KeySpec::new(
                concat!($prefix, ".compressionCodec"),
                $crate::config::keys::KeyKind::Str,
                Some("null"),
                "avro_event: Avro block codec: null, deflate or snappy",
            ),
        ]
    };
}
pub(crate) use serializer_keys;

/// Why a serializer name is refused (the caller adds file, line and key).
fn unknown(name: &str) -> String {
    let supported: Vec<String> = NAMES
        .iter()
        .map(|(alias, class, _)| format!("{alias} ({class})"))
        .collect();
    let why = if name.contains('.') {
        format!(
            "serializer class '{name}' cannot be loaded: flume-fast runs no JVM and has only its built-in serializers"
        )
    } else {
        format!("unknown serializer '{name}'")
    };
    format!("{why}; supported: {}", supported.join(", "))
}

impl Serializer {
    /// Reads the serializer named by the key `prefix` and the keys under it that it uses
    /// (declared in the sink's table by `serializer_keys!(prefix)`).
    pub fn from_keys(k: &mut Keys, prefix: &str) -> Result<Serializer, ConfigError> {
        let name = k.str(prefix)?;
        let found = NAMES
            .iter()
            .find(|(alias, class, _)| name.eq_ignore_ascii_case(alias) || name == *class);
        let Some(&(_, _, which)) = found else {
            return Err(k.invalid(prefix, unknown(&name)));
        };
        Ok(match which {
            Name::Text => Serializer::Text {
                append_newline: k.bool(&format!("{prefix}.appendNewline"))?,
            },
            Name::HeaderAndText => Serializer::HeaderAndText {
                append_newline: k.bool(&format!("{prefix}.appendNewline"))?,
            },
            Name::Avro => {
                let sync_interval = k.usize(&format!("{prefix}.syncIntervalBytes"))?;
                let codec_key = format!("{prefix}.compressionCodec");
                let codec =
                    AvroCodec::parse(&k.str(&codec_key)?).map_err(|m| k.invalid(&codec_key, m))?;
                Serializer::Avro {
                    codec,
                    sync_interval,
                }
            }
        })
    }
}

/// One file's serializer.
pub enum Writer {
    Text { append_newline: bool },
    HeaderAndText { append_newline: bool },
    Avro(AvroWriter),
}

impl Writer {
    /// A new file's writer; the file's header (if the format has one) is appended to `out`.
    /// `sync` is the file's sync marker (unique per file, see [`sync_marker`]).
    pub fn start(s: &Serializer, sync: [u8; 16], out: &mut Vec<u8>) -> Writer {
        match *s {
            Serializer::Text { append_newline } => Writer::Text { append_newline },
            Serializer::HeaderAndText { append_newline } => {
                Writer::HeaderAndText { append_newline }
            }
            Serializer::Avro {
                codec,
                sync_interval,
            } => {
                let w = AvroWriter::new(codec, sync_interval, sync);
                w.header(out);
                Writer::Avro(w)
            }
        }
    }

    /// Appends `events`; what the format buffers (an Avro block) reaches `out` at `flush`.
    pub fn append_all(&mut self, events: &[Event], out: &mut Vec<u8>) {
        match self {
            Writer::Text { append_newline } => {
                let extra = usize::from(*append_newline);
                out.reserve(events.iter().map(|e| e.body.len() + extra).sum());
                for e in events {
                    out.extend_from_slice(&e.body);
                    if *append_newline {
                        out.push(b'\n');
                    }
                }
            }
            Writer::HeaderAndText { append_newline } => {
                for e in events {
                    // Formatting into a Vec cannot fail.
                    let _ = write!(out, "{} ", e.headers);
                    out.extend_from_slice(&e.body);
                    if *append_newline {
                        out.push(b'\n');
                    }
                }
            }
            Writer::Avro(w) => {
                for e in events {
                    w.append(e, out);
                }
            }
        }
    }

    pub fn append(&mut self, e: &Event, out: &mut Vec<u8>) {
        self.append_all(std::slice::from_ref(e), out);
    }

    /// End of a batch (Flume's `EventSerializer.flush()`): everything appended is in `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if let Writer::Avro(w) = self {
            w.flush(out);
        }
    }

    /// Forgets what was appended since the last flush and is not in `out` yet.
    pub fn discard(&mut self) {
        if let Writer::Avro(w) = self {
            w.discard();
        }
    }
}

/// 16 bytes for a file's sync marker (Avro container, SequenceFile); unique per file is
/// all that matters. `counter` tells apart the files of one shard.
pub fn sync_marker(counter: u64, shard: usize) -> [u8; 16] {
    let s = std::collections::hash_map::RandomState::new();
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = s.build_hasher();
        h.write_u64(counter);
        h.write_usize(shard);
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

#[cfg(test)]
pub(crate) mod test_support {
    /// A record: sorted headers, body.
    pub(crate) type Record = (Vec<(String, String)>, Vec<u8>);

    /// Reads an Avro container of Flume's schema with the apache-avro crate.
    pub(crate) fn read_avro(bytes: &[u8]) -> Vec<Record> {
        use apache_avro::types::Value;
        let reader = apache_avro::Reader::new(bytes).unwrap();
        assert_eq!(reader.writer_schema().canonical_form(), {
            let s = apache_avro::Schema::parse_str(super::avro::SCHEMA).unwrap();
            s.canonical_form()
        });
        reader
            .map(|v| {
                let Value::Record(fields) = v.unwrap() else {
                    panic!("not a record")
                };
                let Value::Map(h) = &fields[0].1 else {
                    panic!("headers")
                };
                let mut headers: Vec<(String, String)> = h
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => (k.clone(), s.clone()),
                        other => panic!("header value {other:?}"),
                    })
                    .collect();
                headers.sort();
                let Value::Bytes(b) = &fields[1].1 else {
                    panic!("body")
                };
                (headers, b.clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::read_avro;
    use super::*;
    use crate::event::Headers;
    use bytes::Bytes;

    fn events() -> Vec<Event> {
        let mut h = Headers::new();
        h.set("host", "a");
        vec![
            Event::with_headers(h, Bytes::from_static(b"x")),
            Event::new(Bytes::from_static(b"y")),
        ]
    }

    fn serialize(s: Serializer, evs: &[Event]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::start(&s, [9; 16], &mut out);
        w.append_all(evs, &mut out);
        w.flush(&mut out);
        out
    }

    #[test]
    fn text_formats_match_flume() {
        let evs = events();
        let text = |append_newline| Serializer::Text { append_newline };
        assert_eq!(serialize(text(true), &evs), b"x\ny\n");
        assert_eq!(serialize(text(false), &evs), b"xy");
        let hat = |append_newline| Serializer::HeaderAndText { append_newline };
        assert_eq!(serialize(hat(false), &evs), b"{host=a} x{} y");
        assert_eq!(serialize(hat(true), &evs), b"{host=a} x\n{} y\n");
    }

    #[test]
    fn one_event_at_a_time_writes_what_a_batch_writes() {
        let evs = events();
        for s in [
            Serializer::Text {
                append_newline: true,
            },
            Serializer::HeaderAndText {
                append_newline: true,
            },
            Serializer::Avro {
                codec: AvroCodec::Deflate,
                sync_interval: 2048000,
            },
        ] {
            let mut out = Vec::new();
            let mut w = Writer::start(&s, [9; 16], &mut out);
            for e in &evs {
                w.append(e, &mut out);
            }
            w.flush(&mut out);
            assert_eq!(out, serialize(s, &evs), "{s:?}");
        }
    }

    #[test]
    fn avro_event_containers_read_back_with_apache_avro() {
        let evs = events();
        for codec in [AvroCodec::Null, AvroCodec::Deflate, AvroCodec::Snappy] {
            // A tiny sync interval: one block per record, and the flush adds none.
            for sync_interval in [32, 2048000] {
                let s = Serializer::Avro {
                    codec,
                    sync_interval,
                };
                let records = read_avro(&serialize(s, &evs));
                assert_eq!(
                    records,
                    [
                        (vec![("host".into(), "a".into())], b"x".to_vec()),
                        (vec![], b"y".to_vec()),
                    ],
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn discard_forgets_the_unflushed_records() {
        let s = Serializer::Avro {
            codec: AvroCodec::Null,
            sync_interval: 2048000,
        };
        let mut out = Vec::new();
        let mut w = Writer::start(&s, [9; 16], &mut out);
        w.append_all(&events(), &mut out);
        w.discard();
        w.append(&Event::new(Bytes::from_static(b"z")), &mut out);
        w.flush(&mut out);
        assert_eq!(read_avro(&out), [(vec![], b"z".to_vec())]);
    }

    #[test]
    fn sync_markers_differ_per_file() {
        assert_ne!(sync_marker(1, 0), sync_marker(2, 0));
        assert_ne!(sync_marker(1, 0), sync_marker(1, 1));
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use crate::config::{load_str, Substitutions};
    use crate::sink::file_roll::FileRollConfig;
    use crate::sink::hdfs::HdfsConfig;
    use std::path::Path;

    /// A seq → memory → `sink_type` agent; `extra` lines follow the sink's `channel` line,
    /// which is line 8.
    fn load(sink_type: &str, extra: &str) -> Result<Serializer, String> {
        let text = format!(
            "a.sources = s\na.channels = c\na.sinks = k\na.sources.s.type = seq\n\
             a.sources.s.channels = c\na.channels.c.type = memory\na.sinks.k.type = {sink_type}\n\
             a.sinks.k.channel = c\na.sinks.k.sink.directory = /tmp/x\na.sinks.k.hdfs.path = /x\n{extra}\n"
        );
        let cfg = load_str(Path::new("t.conf"), &text, None, &Substitutions::default())
            .map_err(|e| e.to_string())?;
        let kind = &cfg.sinks[0].kind;
        if let Some(c) = kind.as_any().downcast_ref::<FileRollConfig>() {
            Ok(c.serializer)
        } else if let Some(c) = kind.as_any().downcast_ref::<HdfsConfig>() {
            Ok(c.format.serializer)
        } else {
            unreachable!()
        }
    }

    /// Both sinks, each with its own prefix for the same keys.
    const SINKS: [(&str, &str); 2] = [("file_roll", "sink.serializer"), ("hdfs", "serializer")];

    #[test]
    fn both_sinks_read_the_same_serializers_and_keys() {
        for (ty, p) in SINKS {
            assert_eq!(
                load(ty, ""),
                Ok(Serializer::Text {
                    append_newline: true
                }),
                "{ty}: TEXT by default"
            );
            let conf =
                format!("a.sinks.k.{p} = header_and_text\na.sinks.k.{p}.appendNewline = false");
            assert_eq!(
                load(ty, &conf),
                Ok(Serializer::HeaderAndText {
                    append_newline: false
                }),
                "{ty}"
            );
            let conf = format!(
                "a.sinks.k.{p} = org.apache.flume.serialization.BodyTextEventSerializer$Builder"
            );
            assert!(
                matches!(load(ty, &conf), Ok(Serializer::Text { .. })),
                "{ty}"
            );
            let conf = format!("a.sinks.k.{p} = AVRO_EVENT");
            assert_eq!(
                load(ty, &conf),
                Ok(Serializer::Avro {
                    codec: AvroCodec::Null,
                    sync_interval: 2048000
                }),
                "{ty}: Flume's avro_event defaults"
            );
            let conf = format!(
                "a.sinks.k.{p} = org.apache.flume.serialization.FlumeEventAvroEventSerializer$Builder\n\
                 a.sinks.k.{p}.compressionCodec = deflate\na.sinks.k.{p}.syncIntervalBytes = 4096"
            );
            assert_eq!(
                load(ty, &conf),
                Ok(Serializer::Avro {
                    codec: AvroCodec::Deflate,
                    sync_interval: 4096
                }),
                "{ty}"
            );
        }
    }

    #[test]
    fn an_unknown_serializer_is_refused_at_its_file_line_and_key() {
        for (ty, p) in SINKS {
            let e = load(
                ty,
                &format!("a.sinks.k.{p} = com.example.MySerializer$Builder"),
            )
            .unwrap_err();
            assert!(
                e.starts_with(&format!("t.conf:11: a.sinks.k.{p}: serializer class 'com.example.MySerializer$Builder' cannot be loaded")),
                "{ty}: {e}"
            );
            for supported in [
                "TEXT",
                "HEADER_AND_TEXT",
                "avro_event",
                "FlumeEventAvroEventSerializer$Builder",
            ] {
                assert!(e.contains(supported), "{ty}: {e}");
            }
            let e = load(ty, &format!("a.sinks.k.{p} = json")).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "t.conf:11: a.sinks.k.{p}: unknown serializer 'json'; supported: TEXT"
                )),
                "{ty}: {e}"
            );
            // Class names are exact, as Java loads them.
            let e = load(
                ty,
                &format!("a.sinks.k.{p} = org.apache.flume.serialization.bodytexteventserializer$builder"),
            )
            .unwrap_err();
            assert!(e.contains("cannot be loaded"), "{ty}: {e}");
        }
    }

    #[test]
    fn avro_options_flume_does_not_write_are_refused_at_their_key() {
        for (ty, p) in SINKS {
            let e = load(
                ty,
                &format!("a.sinks.k.{p} = avro_event\na.sinks.k.{p}.compressionCodec = zstandard"),
            )
            .unwrap_err();
            assert!(
                e.starts_with(&format!("t.conf:12: a.sinks.k.{p}.compressionCodec: Avro codec 'zstandard' is accepted by Flume but not written by flume-fast")),
                "{ty}: {e}"
            );
            let e = load(
                ty,
                &format!("a.sinks.k.{p} = avro_event\na.sinks.k.{p}.syncIntervalBytes = 16"),
            )
            .unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "t.conf:12: a.sinks.k.{p}.syncIntervalBytes: 16 is out of range"
                )),
                "{ty}: {e}"
            );
        }
    }
}
