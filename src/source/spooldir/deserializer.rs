//! The spooling directory source's deserializers: how a file's bytes become events, from a
//! position and in batches, with the position after each batch (what the tracker keeps).
//!
//! - **LINE** (Flume's `LineDeserializer`): a line ends at `\n` only; a `\r` before it stays
//!   in the body (Flume's "FIXME: support \r\n"). A line of `maxLineLength` characters or
//!   more gives an event of its first `maxLineLength` characters, and the rest of the line
//!   is read as the next line, as Flume does (so a line of exactly that many characters is
//!   followed by an empty event, as in Flume). Characters are counted as Java counts them
//!   (UTF-16 units after decoding `inputCharset`). Bodies are decoded from `inputCharset`
//!   (malformed input per `decodeErrorPolicy`) and encoded in `outputCharset`; UTF-8 to
//!   UTF-8, the usual case, passes the file's bytes through without a copy per line.
//!   Unlike Flume, a cut never splits a character that takes two UTF-16 units (Flume's
//!   "TODO" emits half of it as `?`): such a character goes whole to the next event.
//! - **AVRO** (Flume's `AvroEventDeserializer`): reads an Avro object container file
//!   (codecs null, deflate and snappy) and gives each datum as the event body in Avro binary
//!   encoding (its bytes as the file holds them, which for a file Java wrote are the bytes
//!   Flume's `GenericDatumWriter` writes again), with header `flume.avro.schema.hash` (the schema's CRC-64-AVRO parsing
//!   fingerprint, its 8 bytes in Java's order, in hex) or `flume.avro.schema.literal` (the
//!   schema JSON as the file's header holds it, which is Java's `Schema.toString()` for a
//!   file Java wrote). Unlike Flume, which goes back to the start of the block on a restart,
//!   the position is the block and the datum within it, so a restart repeats nothing
//!   beyond the batch in flight.
//! - **Blob** (Flume's morphline `BlobDeserializer`): the file's bytes as one event, up to
//!   `maxBlobLength`; a longer file gives several events of that length, as Flume does.
//!   A batch of blobs stops once it holds `maxBlobLength` bytes (Flume would hold
//!   `batchSize` of them).

use crate::event::{Body, Event, Headers};
use bytes::Bytes;
use encoding_rs::{DecoderResult, EncoderResult, Encoding, UTF_8};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

/// Bytes read from a file at a time.
pub const CHUNK: usize = 64 * 1024;

/// What `decodeErrorPolicy` does with input that is not valid in `inputCharset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrors {
    /// The file fails (Flume's FAIL).
    Fail,
    /// Each malformed sequence becomes U+FFFD.
    Replace,
    /// Malformed sequences are dropped.
    Ignore,
}

/// A deserializer and its settings.
#[derive(Debug, Clone)]
pub enum Format {
    Line {
        max_chars: usize,
        input: &'static Encoding,
        output: &'static Encoding,
        errors: DecodeErrors,
    },
    Avro {
        /// Put the schema's JSON in each event (`flume.avro.schema.literal`), else its hash.
        literal: bool,
    },
    Blob {
        max: usize,
    },
}

/// Where a file's next event starts: a byte offset (LINE, Blob), or for AVRO the offset of
/// a block and the datums of it already delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub offset: u64,
    pub record: u64,
}

/// An open file read as events from a position.
pub enum Reader {
    Line(LineReader),
    Avro(Box<AvroReader>),
    Blob(BlobReader),
}

impl Reader {
    pub fn open(format: &Format, file: File, pos: Pos) -> io::Result<Reader> {
        Ok(match format {
            Format::Line { .. } => Reader::Line(LineReader {
                file,
                data: Rc::new(Bytes::new()),
                base: pos.offset,
                at: 0,
                eof: false,
                cut: false,
            }),
            Format::Avro { literal } => {
                Reader::Avro(Box::new(AvroReader::open(file, pos, *literal)?))
            }
            Format::Blob { .. } => Reader::Blob(BlobReader {
                file,
                pos: pos.offset,
                eof: false,
            }),
        })
    }

    /// Up to `n` events after the position, which moves past them; none at the end.
    pub fn read(&mut self, format: &Format, n: usize) -> io::Result<Vec<Event>> {
        match (self, format) {
            (
                Reader::Line(r),
                Format::Line {
                    max_chars,
                    input,
                    output,
                    errors,
                },
            ) => r.read(n, *max_chars, input, output, *errors),
            (Reader::Avro(r), _) => r.read(n),
            (Reader::Blob(r), Format::Blob { max }) => r.read(n, *max),
            _ => unreachable!("a reader is opened for its format"),
        }
    }

    /// Where the next event starts.
    pub fn pos(&self) -> Pos {
        match self {
            Reader::Line(r) => Pos {
                offset: r.base + r.at as u64,
                record: 0,
            },
            Reader::Avro(r) => Pos {
                offset: r.block_start,
                record: r.in_block,
            },
            Reader::Blob(r) => Pos {
                offset: r.pos,
                record: 0,
            },
        }
    }

    /// Whether the last read reached the end of the file (nothing is left to read).
    pub fn at_end(&self) -> bool {
        match self {
            Reader::Line(r) => r.eof && r.at == r.data.len(),
            Reader::Avro(r) => r.done,
            Reader::Blob(r) => r.eof,
        }
    }

    /// Whether a LINE read cut a line at `maxLineLength` since the last call.
    pub fn take_cut(&mut self) -> bool {
        match self {
            Reader::Line(r) => std::mem::take(&mut r.cut),
            _ => false,
        }
    }
}

pub struct LineReader {
    file: File,
    /// The file's bytes from offset `base`, which the lines' bodies share.
    data: Rc<Bytes>,
    base: u64,
    /// Index in `data` of the next line's first byte.
    at: usize,
    eof: bool,
    cut: bool,
}

impl LineReader {
    /// Reads more of the file after what `data` holds, keeping the bytes from `at`;
    /// false at the end of the file.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let keep = &self.data[self.at..];
        let mut buf = Vec::with_capacity(keep.len() + CHUNK);
        buf.extend_from_slice(keep);
        let end = self.base + self.data.len() as u64;
        buf.resize(keep.len() + CHUNK, 0);
        let n = read_at_full(&self.file, &mut buf[keep.len()..], end)?;
        buf.truncate(keep.len() + n);
        self.base += self.at as u64;
        self.at = 0;
        self.data = Rc::new(Bytes::from(buf));
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    fn read(
        &mut self,
        n: usize,
        max_chars: usize,
        input: &'static Encoding,
        output: &'static Encoding,
        errors: DecodeErrors,
    ) -> io::Result<Vec<Event>> {
        let mut out = Vec::with_capacity(n.min(1024));
        // Bytes that surely hold `max_chars` characters (4 bytes at most each).
        let enough = max_chars.saturating_mul(4).saturating_add(4);
        while out.len() < n {
            let rest = &self.data[self.at..];
            // (bytes of the body, bytes consumed, whether the line was cut)
            let (content, consumed, cut) = match memchr::memchr(b'\n', rest) {
                Some(i) => match cut_at(&rest[..i], max_chars, input) {
                    Some(c) => (c, c, true),
                    None => (i, i + 1, false),
                },
                None if rest.len() >= enough => {
                    let c = cut_at(&rest[..enough], max_chars, input).unwrap_or(enough);
                    (c, c, true)
                }
                None if !self.eof => {
                    self.fill()?;
                    continue;
                }
                None if rest.is_empty() => break,
                None => match cut_at(rest, max_chars, input) {
                    Some(c) => (c, c, true),
                    None => (rest.len(), rest.len(), false),
                },
            };
            self.cut |= cut;
            let range = self.at..self.at + content;
            let body = decode(&self.data, range, input, output, errors).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("at byte {}: {e}", self.base + self.at as u64),
                )
            })?;
            out.push(Event::new(body));
            self.at += consumed;
        }
        Ok(out)
    }
}

/// Where a line of `bytes` (no `\n` in them) is cut: after the character that makes
/// `max` UTF-16 units, when it has that many; a character of two units that would pass
/// `max` goes to the next part (at least one character is kept).
pub fn cut_at(bytes: &[u8], max: usize, input: &'static Encoding) -> Option<usize> {
    if bytes.len() < max {
        return None;
    }
    let mut units = 0usize;
    if input == UTF_8 {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let (len, u) = match b {
                0xF0..=0xF7 => (4, 2),
                0xE0..=0xEF => (3, 1),
                0xC0..=0xDF => (2, 1),
                _ => (1, 1),
            };
            let len = len.min(bytes.len() - i);
            // Malformed sequences count a unit per byte (a replacement each, roughly).
            let len = if bytes[i + 1..i + len].iter().all(|&c| c & 0xC0 == 0x80) {
                len
            } else {
                1
            };
            if units + u > max && units > 0 {
                return Some(i);
            }
            units += u;
            i += len;
            if units >= max {
                return Some(i);
            }
        }
        return None;
    }
    // Another charset: decode byte by byte, counting the units each byte completes.
    let mut dec = input.new_decoder_without_bom_handling();
    let mut tmp = [0u8; 16];
    for (i, b) in bytes.iter().enumerate() {
        let (_, _, written, _) = dec.decode_to_utf8(std::slice::from_ref(b), &mut tmp, false);
        let s = std::str::from_utf8(&tmp[..written]).unwrap_or("");
        let u: usize = s.chars().map(char::len_utf16).sum();
        if u > 0 && units + u > max && units > 0 {
            // Not exact for a multi-byte character ending at this byte; rare and bounded.
            return Some(i);
        }
        units += u;
        if units >= max {
            return Some(i + 1);
        }
    }
    None
}

/// A line's body in `output`, decoded from `input` per `errors`.
fn decode(
    data: &Rc<Bytes>,
    range: std::ops::Range<usize>,
    input: &'static Encoding,
    output: &'static Encoding,
    errors: DecodeErrors,
) -> Result<Body, String> {
    let bytes = &data[range.clone()];
    if input == UTF_8 && output == UTF_8 && std::str::from_utf8(bytes).is_ok() {
        return Ok(Body::shared(data.clone(), range));
    }
    let text = decode_text(bytes, input, errors)?;
    if output == UTF_8 {
        return Ok(Body::from(Bytes::from(text.into_bytes())));
    }
    Ok(Body::from(Bytes::from(encode_text(&text, output))))
}

/// `bytes` decoded from `input` per `errors` (FAIL: an error naming the charset).
pub fn decode_text(
    bytes: &[u8],
    input: &'static Encoding,
    errors: DecodeErrors,
) -> Result<String, String> {
    match errors {
        DecodeErrors::Fail => input
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|c| c.into_owned())
            .ok_or_else(|| {
                format!(
                    "input is not valid {} (decodeErrorPolicy = FAIL)",
                    input.name()
                )
            }),
        DecodeErrors::Replace => Ok(input.decode_without_bom_handling(bytes).0.into_owned()),
        DecodeErrors::Ignore => {
            let mut dec = input.new_decoder_without_bom_handling();
            let mut out = String::with_capacity(bytes.len());
            let mut src = bytes;
            loop {
                out.reserve(src.len() * 3 + 16);
                let (r, read) = dec.decode_to_string_without_replacement(src, &mut out, true);
                src = &src[read..];
                match r {
                    DecoderResult::InputEmpty => return Ok(out),
                    DecoderResult::OutputFull => {}
                    DecoderResult::Malformed(_, _) => {}
                }
            }
        }
    }
}

/// `text` in `output`, a character it cannot hold as `?` (Java's `getBytes`).
pub fn encode_text(text: &str, output: &'static Encoding) -> Vec<u8> {
    let mut enc = output.new_encoder();
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut src = text;
    loop {
        out.reserve(src.len() * 4 + 16);
        let (r, read) = enc.encode_from_utf8_to_vec_without_replacement(src, &mut out, true);
        src = &src[read..];
        match r {
            EncoderResult::InputEmpty => return out,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(_) => out.push(b'?'),
        }
    }
}

/// Reads into `buf` at `offset` until it is full or the file ends; how many bytes.
fn read_at_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub struct BlobReader {
    file: File,
    pos: u64,
    eof: bool,
}

impl BlobReader {
    fn read(&mut self, n: usize, max: usize) -> io::Result<Vec<Event>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < n && bytes < max {
            let mut buf = vec![0u8; max.min(CHUNK)];
            let mut blob = Vec::new();
            loop {
                let want = (max - blob.len()).min(buf.len());
                let k = read_at_full(&self.file, &mut buf[..want], self.pos + blob.len() as u64)?;
                blob.extend_from_slice(&buf[..k]);
                self.eof = k < want;
                if k < want || blob.len() >= max {
                    break;
                }
            }
            if blob.is_empty() {
                break;
            }
            self.pos += blob.len() as u64;
            bytes += blob.len();
            out.push(Event::new(Bytes::from(blob)));
        }
        Ok(out)
    }
}

/// A `Read` over a file from an offset, with `pread` (the file's own offset untouched).
struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The header name of an AVRO event's schema hash.
pub const SCHEMA_HASH: &str = "flume.avro.schema.hash";
/// The header name of an AVRO event's schema literal.
pub const SCHEMA_LITERAL: &str = "flume.avro.schema.literal";

/// Metadata values and blocks larger than this are refused as corrupt (a bound for what a
/// damaged or hostile file makes the source allocate).
const MAX_BLOCK: u64 = 1 << 30;
const MAX_META: u64 = 64 << 20;

/// An Avro object container's header.
#[derive(Debug)]
pub struct Container {
    pub schema: apache_avro::Schema,
    /// The schema's named types, for its references.
    pub names: Names,
    /// The schema's JSON as the header holds it.
    pub schema_json: String,
    /// The CRC-64-AVRO fingerprint in hex, as Flume writes it.
    pub hash: String,
    pub codec: Codec,
    pub sync: [u8; 16],
    /// Offset of the first block.
    pub data_start: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Null,
    Deflate,
    Snappy,
}

fn corrupt(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A zig-zag varint `long` from `r`.
fn read_long(r: &mut impl Read) -> io::Result<i64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let mut b = [0u8];
        r.read_exact(&mut b)?;
        v |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    Err(corrupt("a varint longer than 10 bytes"))
}

fn read_bytes(r: &mut impl Read, max: u64) -> io::Result<Vec<u8>> {
    let len = read_long(r)?;
    if len < 0 || len as u64 > max {
        return Err(corrupt(format!("a length of {len} bytes")));
    }
    let mut v = Vec::new();
    r.take(len as u64).read_to_end(&mut v)?;
    if v.len() as u64 != len as u64 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(v)
}

impl Container {
    /// Reads a container's header from `r` (positioned at the file's start), `pos` after
    /// it being how far `r` has read.
    pub fn read(r: &mut impl Read) -> io::Result<(Container, u64)> {
        let mut counted = Counted { r, n: 0 };
        let mut magic = [0u8; 4];
        counted.read_exact(&mut magic)?;
        if magic != *b"Obj\x01" {
            return Err(corrupt(
                "not an Avro object container file (no Obj\\x01 magic)",
            ));
        }
        let mut schema_json = None;
        let mut codec = Codec::Null;
        loop {
            let mut count = read_long(&mut counted)?;
            if count == 0 {
                break;
            }
            if count < 0 {
                count = count
                    .checked_neg()
                    .ok_or_else(|| corrupt("a bad block count"))?;
                read_long(&mut counted)?;
            }
            for _ in 0..count {
                let key = read_bytes(&mut counted, MAX_META)?;
                let value = read_bytes(&mut counted, MAX_META)?;
                match &key[..] {
                    b"avro.schema" => {
                        schema_json = Some(
                            String::from_utf8(value)
                                .map_err(|_| corrupt("the schema is not UTF-8"))?,
                        )
                    }
                    b"avro.codec" => {
                        codec = match &value[..] {
                            b"null" | b"" => Codec::Null,
                            b"deflate" => Codec::Deflate,
                            b"snappy" => Codec::Snappy,
                            other => {
                                return Err(corrupt(format!(
                                    "codec {} is not supported (null, deflate, snappy are)",
                                    String::from_utf8_lossy(other)
                                )))
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut sync = [0u8; 16];
        counted.read_exact(&mut sync)?;
        let schema_json = schema_json.ok_or_else(|| corrupt("no avro.schema in the header"))?;
        let schema = parse_schema(&schema_json)
            .map_err(|e| corrupt(format!("the schema does not parse: {e}")))?;
        let names = apache_avro::schema::ResolvedSchema::try_from(&schema)
            .map_err(|e| corrupt(format!("the schema does not resolve: {e}")))?
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect();
        let hash = schema
            .fingerprint::<apache_avro::rabin::Rabin>()
            .bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let n = counted.n;
        Ok((
            Container {
                schema,
                names,
                schema_json,
                hash,
                codec,
                sync,
                data_start: n,
            },
            n,
        ))
    }

    /// Reads the block at the start of `r`: its datum count and decompressed data, and
    /// the bytes it took; `None` at the end of the file.
    pub fn read_block(&self, r: &mut impl Read) -> io::Result<Option<(u64, Vec<u8>, u64)>> {
        let mut counted = Counted { r, n: 0 };
        let count = match read_long(&mut counted) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && counted.n == 0 => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        if count < 0 {
            return Err(corrupt(format!("a block of {count} datums")));
        }
        let data = read_bytes(&mut counted, MAX_BLOCK)?;
        let mut sync = [0u8; 16];
        counted.read_exact(&mut sync)?;
        if sync != self.sync {
            return Err(corrupt("a block's sync marker does not match the header's"));
        }
        let data = match self.codec {
            Codec::Null => data,
            Codec::Deflate => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(&data[..])
                    .take(MAX_BLOCK)
                    .read_to_end(&mut out)
                    .map_err(|e| corrupt(format!("a deflate block: {e}")))?;
                out
            }
            Codec::Snappy => {
                if data.len() < 4 {
                    return Err(corrupt("a snappy block without its checksum"));
                }
                let (body, crc) = data.split_at(data.len() - 4);
                let len = snap::raw::decompress_len(body)
                    .map_err(|e| corrupt(format!("a snappy block: {e}")))?;
                if len as u64 > MAX_BLOCK {
                    return Err(corrupt("a snappy block too large"));
                }
                let out = snap::raw::Decoder::new()
                    .decompress_vec(body)
                    .map_err(|e| corrupt(format!("a snappy block: {e}")))?;
                if crc32fast::hash(&out).to_be_bytes() != crc {
                    return Err(corrupt("a snappy block's checksum does not match"));
                }
                out
            }
        };
        Ok(Some((count as u64, data, counted.n)))
    }
}

struct Counted<'a, R> {
    r: &'a mut R,
    n: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.r.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// Parses a container's schema with apache-avro, after checking what its parser would
/// `unwrap` (0.19 panics on a bad name, type name, alias or size instead of returning an
/// error, as the fuzz target found); a panic the check misses is caught as an error.
pub fn parse_schema(json: &str) -> Result<apache_avro::Schema, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    check_schema(&value, 0)?;
    std::panic::catch_unwind(|| apache_avro::Schema::parse_str(json))
        .map_err(|_| "the Avro schema parser failed on it".to_string())?
        .map_err(|e| e.to_string())
}

/// Whether `s` is an Avro full name: dotted identifiers.
fn is_full_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut c = part.chars();
            c.next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Checks the schema positions of `v` (types, fields, items, values, union branches; not
/// defaults or other properties, which may hold any JSON).
fn check_schema(v: &serde_json::Value, depth: usize) -> Result<(), String> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err("the schema is nested too deep".into());
    }
    match v {
        J::String(t) if !is_full_name(t) => Err(format!("'{t}' is not a valid type name")),
        J::Array(branches) => branches.iter().try_for_each(|b| check_schema(b, depth + 1)),
        J::Object(o) => {
            for key in ["name", "namespace"] {
                match o.get(key) {
                    Some(J::String(n)) if key == "namespace" && n.is_empty() => {}
                    Some(J::String(n)) if !is_full_name(n) => {
                        return Err(format!("'{n}' is not a valid {key}"))
                    }
                    _ => {}
                }
            }
            if let Some(J::Array(aliases)) = o.get("aliases") {
                for a in aliases {
                    if !a.as_str().is_some_and(is_full_name) {
                        return Err(format!("{a} is not a valid alias"));
                    }
                }
            }
            for key in ["size", "precision", "scale"] {
                if let Some(n) = o.get(key) {
                    let ok = n.as_i64().is_some()
                        || n.as_str().is_some_and(|s| s.parse::<i64>().is_ok());
                    if !ok {
                        return Err(format!("\"{key}\" must be an integer, found {n}"));
                    }
                }
            }
            for key in ["type", "items", "values"] {
                if let Some(t) = o.get(key) {
                    check_schema(t, depth + 1)?;
                }
            }
            if let Some(J::Array(fields)) = o.get("fields") {
                fields.iter().try_for_each(|f| check_schema(f, depth + 1))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A schema's named types by full name.
pub type Names = std::collections::HashMap<apache_avro::schema::Name, apache_avro::Schema>;

/// The datums of one decompressed block: each one's bytes as the file holds them (Avro
/// binary of the schema, what Flume's `GenericDatumWriter` writes again for a file Java
/// wrote). Each datum is walked by the schema without building values, with its lengths
/// checked against the block and its values counted, so a corrupt or hostile block is an
/// error, never an allocation its counts ask for (apache-avro's decoder reserves them).
pub fn block_datums(c: &Container, data: &[u8], count: u64) -> io::Result<Vec<Vec<u8>>> {
    let mut at = 0usize;
    // Values a block may hold: a few per byte, as an item takes at least one byte unless
    // its type is empty (null, an empty record), which this bounds too.
    let mut budget = data.len() as u64 * 8 + 1024;
    let mut out = Vec::with_capacity(count.min(data.len() as u64 + 1) as usize);
    for i in 0..count {
        let start = at;
        let mut w = Walk {
            data,
            at,
            budget: &mut budget,
            names: &c.names,
        };
        w.skip(&c.schema, 0)
            .map_err(|e| corrupt(format!("datum {i} of a block: {e}")))?;
        at = w.at;
        out.push(data[start..at].to_vec());
    }
    Ok(out)
}

struct Walk<'a> {
    data: &'a [u8],
    at: usize,
    budget: &'a mut u64,
    names: &'a Names,
}

/// Nesting deeper than this is refused (a recursive schema's data could else run the
/// stack out).
const MAX_DEPTH: usize = 256;

impl Walk<'_> {
    fn long(&mut self) -> Result<i64, String> {
        let (v, n) = crate::avro_slice::varint(&self.data[self.at..])
            .ok_or("the block ends inside a number")?;
        self.at += n;
        Ok(v)
    }
    fn take(&mut self, n: u64) -> Result<(), String> {
        if n > (self.data.len() - self.at) as u64 {
            return Err(format!("a length of {n} bytes past the block's end"));
        }
        self.at += n as usize;
        Ok(())
    }
    fn len(&mut self) -> Result<(), String> {
        let n = self.long()?;
        if n < 0 {
            return Err(format!("a negative length {n}"));
        }
        self.take(n as u64)
    }
    fn skip(&mut self, schema: &apache_avro::Schema, depth: usize) -> Result<(), String> {
        use apache_avro::Schema as S;
        if depth > MAX_DEPTH {
            return Err("values nested too deep".into());
        }
        if *self.budget == 0 {
            return Err("more values than the block could hold".into());
        }
        *self.budget -= 1;
        match schema {
            S::Null => Ok(()),
            S::Boolean => self.take(1),
            S::Int
            | S::Long
            | S::Date
            | S::TimeMillis
            | S::TimeMicros
            | S::TimestampMillis
            | S::TimestampMicros
            | S::TimestampNanos
            | S::LocalTimestampMillis
            | S::LocalTimestampMicros
            | S::LocalTimestampNanos => self.long().map(drop),
            S::Float => self.take(4),
            S::Double => self.take(8),
            S::Bytes | S::String | S::BigDecimal | S::Uuid => self.len(),
            S::Fixed(f) => self.take(f.size as u64),
            S::Duration => self.take(12),
            S::Decimal(d) => self.skip(&d.inner, depth + 1),
            S::Enum(e) => {
                let i = self.long()?;
                if i < 0 || i as usize >= e.symbols.len() {
                    return Err(format!("enum index {i} of {} symbols", e.symbols.len()));
                }
                Ok(())
            }
            S::Union(u) => {
                let i = self.long()?;
                let v = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union index {i} of {} branches", u.variants().len()))?;
                self.skip(v, depth + 1)
            }
            S::Record(r) => {
                for f in &r.fields {
                    self.skip(&f.schema, depth + 1)?;
                }
                Ok(())
            }
            S::Array(a) => self.blocks(|w| w.skip(&a.items, depth + 1)),
            S::Map(m) => self.blocks(|w| {
                w.len()?;
                w.skip(&m.types, depth + 1)
            }),
            S::Ref { name } => {
                let target = self
                    .names
                    .get(name)
                    .or_else(|| {
                        self.names
                            .iter()
                            .find(|(n, _)| n.name == name.name)
                            .map(|(_, s)| s)
                    })
                    .ok_or_else(|| format!("a reference to unknown type {name}"))?;
                self.skip(target, depth + 1)
            }
        }
    }
    /// An array's or map's blocks of items, to the closing 0.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let mut n = self.long()?;
            if n == 0 {
                return Ok(());
            }
            if n < 0 {
                n = n.checked_neg().ok_or("a bad item count")?;
                self.long()?;
            }
            if n as u64 > *self.budget {
                return Err(format!("{n} items, more than the block could hold"));
            }
            for _ in 0..n {
                item(self)?;
            }
        }
    }
}

pub struct AvroReader {
    file: File,
    container: Container,
    literal: bool,
    /// The block being read: where it starts, where the next one does, its datums.
    block_start: u64,
    next_block: u64,
    datums: std::vec::IntoIter<Vec<u8>>,
    in_block: u64,
    done: bool,
}

impl AvroReader {
    fn open(file: File, pos: Pos, literal: bool) -> io::Result<AvroReader> {
        let (container, data_start) = Container::read(&mut At {
            file: &file,
            pos: 0,
        })?;
        let start = pos.offset.max(data_start);
        let mut r = AvroReader {
            file,
            container,
            literal,
            block_start: start,
            next_block: start,
            datums: Vec::new().into_iter(),
            in_block: 0,
            done: false,
        };
        if pos.offset >= data_start && pos.record > 0 {
            r.load_block()?;
            for _ in 0..pos.record {
                if r.datums.next().is_none() {
                    break;
                }
                r.in_block += 1;
            }
        }
        Ok(r)
    }

    /// Loads the block at `next_block`; false at the end of the file.
    fn load_block(&mut self) -> io::Result<bool> {
        let mut at = At {
            file: &self.file,
            pos: self.next_block,
        };
        let Some((count, data, len)) = self.container.read_block(&mut at)? else {
            return Ok(false);
        };
        let datums = block_datums(&self.container, &data, count)?;
        self.block_start = self.next_block;
        self.next_block += len;
        self.datums = datums.into_iter();
        self.in_block = 0;
        Ok(true)
    }

    fn read(&mut self, n: usize) -> io::Result<Vec<Event>> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.datums.next() {
                Some(d) => {
                    self.in_block += 1;
                    let mut h = Headers::new();
                    if self.literal {
                        h.set(SCHEMA_LITERAL, self.container.schema_json.as_str());
                    } else {
                        h.set(SCHEMA_HASH, self.container.hash.as_str());
                    }
                    out.push(Event::with_headers(h, Bytes::from(d)));
                }
                None => {
                    if !self.load_block()? {
                        // At the end: the position is past the last block.
                        self.block_start = self.next_block;
                        self.in_block = 0;
                        self.done = true;
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Every datum of a whole container file in memory, as the AVRO deserializer gives them
/// (for the fuzz target and tests): the schema hash and the bodies.
pub fn avro_datums(bytes: &[u8]) -> io::Result<(String, Vec<Vec<u8>>)> {
    let mut r = bytes;
    let (c, _) = Container::read(&mut r)?;
    let mut out = Vec::new();
    while let Some((count, data, _)) = c.read_block(&mut r)? {
        out.extend(block_datums(&c, &data, count)?);
    }
    Ok((c.hash, out))
}

#[cfg(test)]
mod tests;
