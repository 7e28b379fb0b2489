//! The deserializers against what Flume's give: LINE's `\n`-only ends and its cut at
//! `maxLineLength` (the rest is the next event), charsets and decode errors, resuming at a
//! position, AVRO containers (null, deflate, snappy) with Flume's schema hash, and Blob.

use super::*;
use apache_avro::types::Record;
use std::io::Write;

fn line_fmt(max: usize) -> Format {
    Format::Line {
        max_chars: max,
        input: UTF_8,
        output: UTF_8,
        errors: DecodeErrors::Fail,
    }
}

fn file(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
    let mut t = tempfile::NamedTempFile::new().unwrap();
    t.write_all(bytes).unwrap();
    let f = File::open(t.path()).unwrap();
    (t, f)
}

/// Every body from `pos`, in batches of `n`, and the position after each batch.
fn all(format: &Format, bytes: &[u8], pos: Pos, n: usize) -> (Vec<Vec<u8>>, Vec<Pos>) {
    let (_t, f) = file(bytes);
    let mut r = Reader::open(format, f, pos).unwrap();
    let (mut bodies, mut positions) = (Vec::new(), Vec::new());
    loop {
        let evs = r.read(format, n).unwrap();
        if evs.is_empty() {
            return (bodies, positions);
        }
        bodies.extend(evs.iter().map(|e| e.body.to_vec()));
        positions.push(r.pos());
    }
}

fn strs(b: &[Vec<u8>]) -> Vec<String> {
    b.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn lines_end_at_newline_only_and_a_carriage_return_stays() {
    let (b, p) = all(&line_fmt(2048), b"one\r\ntwo\n\nlast", Pos::default(), 2);
    assert_eq!(strs(&b), ["one\r", "two", "", "last"]);
    assert_eq!(p.last().unwrap().offset, 14);
    // Resuming at a line's start.
    let (b, _) = all(
        &line_fmt(2048),
        b"one\r\ntwo\n\nlast",
        Pos {
            offset: 5,
            record: 0,
        },
        10,
    );
    assert_eq!(strs(&b), ["two", "", "last"]);
}

#[test]
fn a_long_line_is_cut_and_its_rest_is_the_next_event_as_flume() {
    let (b, _) = all(&line_fmt(4), b"abcdefghij\nabcd\nxy\n", Pos::default(), 100);
    // "abcd" of exactly the limit leaves its newline for an empty event, as in Flume.
    assert_eq!(strs(&b), ["abcd", "efgh", "ij", "abcd", "", "xy"]);
    // Characters, not bytes, and a 2-unit character is not split.
    let (b, _) = all(
        &line_fmt(3),
        "ééé€x\n😀😀y\n".as_bytes(),
        Pos::default(),
        100,
    );
    assert_eq!(strs(&b), ["ééé", "€x", "😀", "😀y", ""]);
    // Longer than a read chunk, without a newline.
    let long = vec![b'z'; CHUNK * 3 + 5];
    let (b, _) = all(&line_fmt(CHUNK), &long, Pos::default(), 100);
    assert_eq!(
        b.iter().map(Vec::len).collect::<Vec<_>>(),
        [CHUNK, CHUNK, CHUNK, 5]
    );
}

#[test]
fn charsets_and_decode_error_policies() {
    let latin1 = Format::Line {
        max_chars: 100,
        input: encoding_rs::WINDOWS_1252,
        output: UTF_8,
        errors: DecodeErrors::Fail,
    };
    let (b, _) = all(&latin1, b"caf\xe9\n", Pos::default(), 10);
    assert_eq!(strs(&b), ["café"]);
    let (_t, f) = file(b"ok\nbad\xff\n");
    let fmt = line_fmt(100);
    let mut r = Reader::open(&fmt, f, Pos::default()).unwrap();
    let e = r.read(&fmt, 10).err().unwrap().to_string();
    assert!(
        e.contains("not valid UTF-8") && e.contains("at byte 3"),
        "{e}"
    );
    for (errors, want) in [
        (DecodeErrors::Replace, "bad\u{fffd}"),
        (DecodeErrors::Ignore, "bad"),
    ] {
        let fmt = Format::Line {
            max_chars: 100,
            input: UTF_8,
            output: UTF_8,
            errors,
        };
        let (b, _) = all(&fmt, b"ok\nbad\xff\n", Pos::default(), 10);
        assert_eq!(strs(&b), ["ok", want]);
    }
    // Output in another charset, '?' for what it cannot hold (Java's getBytes).
    let fmt = Format::Line {
        max_chars: 100,
        input: UTF_8,
        output: encoding_rs::WINDOWS_1252,
        errors: DecodeErrors::Fail,
    };
    let (b, _) = all(&fmt, "é€😀\n".as_bytes(), Pos::default(), 10);
    assert_eq!(b, [vec![0xe9, 0x80, b'?']]);
}

#[test]
fn blob_is_the_whole_file_or_pieces_of_max_blob_length() {
    let (b, p) = all(
        &Format::Blob { max: 100 },
        b"all\nof it",
        Pos::default(),
        10,
    );
    assert_eq!(strs(&b), ["all\nof it"]);
    assert_eq!(
        p,
        [Pos {
            offset: 9,
            record: 0
        }]
    );
    let (b, _) = all(&Format::Blob { max: 4 }, b"0123456789", Pos::default(), 10);
    assert_eq!(strs(&b), ["0123", "4567", "89"]);
    let (b, _) = all(&Format::Blob { max: 4 }, b"", Pos::default(), 10);
    assert!(b.is_empty());
}

const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"s","type":"string"}]}"#;

/// A container of `n` records written by apache-avro with `codec`, a block every 7.
pub fn container(n: i64, codec: apache_avro::Codec) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(SCHEMA).unwrap();
    let mut w = apache_avro::Writer::builder()
        .schema(&schema)
        .writer(Vec::new())
        .codec(codec)
        .build();
    for i in 0..n {
        let mut r = Record::new(&schema).unwrap();
        r.put("id", i);
        r.put("s", format!("rec-{i}"));
        w.append(r).unwrap();
        if i % 7 == 6 {
            w.flush().unwrap();
        }
    }
    w.into_inner().unwrap()
}

fn datum(i: i64) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(SCHEMA).unwrap();
    let mut r = Record::new(&schema).unwrap();
    r.put("id", i);
    r.put("s", format!("rec-{i}"));
    apache_avro::to_avro_datum(&schema, r).unwrap()
}

#[test]
fn avro_datums_in_binary_with_flumes_schema_hash_and_resume_mid_block() {
    for codec in [
        apache_avro::Codec::Null,
        apache_avro::Codec::Deflate(Default::default()),
        apache_avro::Codec::Snappy,
    ] {
        let bytes = container(30, codec);
        let fmt = Format::Avro { literal: false };
        let (b, positions) = all(&fmt, &bytes, Pos::default(), 4);
        let want: Vec<Vec<u8>> = (0..30).map(datum).collect();
        assert_eq!(b, want, "{codec:?}");
        // From every saved position the rest follows, nothing twice.
        for (i, p) in positions.iter().enumerate() {
            let (rest, _) = all(&fmt, &bytes, *p, 4);
            assert_eq!(rest, want[((i + 1) * 4).min(30)..], "{codec:?} from {p:?}");
        }
    }
    let (_t, f) = file(&container(1, apache_avro::Codec::Null));
    let mut r = Reader::open(&Format::Avro { literal: true }, f, Pos::default()).unwrap();
    let evs = r.read(&Format::Avro { literal: true }, 10).unwrap();
    assert_eq!(evs[0].headers.get(SCHEMA_LITERAL), Some(SCHEMA));
    let (hash, _) = avro_datums(&container(1, apache_avro::Codec::Null)).unwrap();
    let canonical = apache_avro::Schema::parse_str(SCHEMA)
        .unwrap()
        .canonical_form();
    assert_eq!(
        canonical,
        r#"{"name":"R","type":"record","fields":[{"name":"id","type":"long"},{"name":"s","type":"string"}]}"#
    );
    assert_eq!(hash.len(), 16);
}

/// Java's `SchemaNormalization.parsingFingerprint("CRC-64-AVRO", Schema.create(INT))`:
/// the fingerprint 0x7275d51a3f395c8f, its bytes least significant first.
#[test]
fn the_schema_hash_is_javas_crc_64_avro_bytes_in_hex() {
    let s = apache_avro::Schema::parse_str("\"int\"").unwrap();
    let hex: String = s
        .fingerprint::<apache_avro::rabin::Rabin>()
        .bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, "8f5c393f1ad57572");
}

#[test]
fn broken_containers_are_errors_not_panics() {
    let good = container(20, apache_avro::Codec::Deflate(Default::default()));
    assert!(avro_datums(b"").is_err());
    assert!(avro_datums(b"Obj\x01").is_err());
    assert!(avro_datums(b"not avro")
        .unwrap_err()
        .to_string()
        .contains("magic"));
    for cut in [5, good.len() / 2, good.len() - 3] {
        assert!(avro_datums(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(avro_datums(&bad)
        .unwrap_err()
        .to_string()
        .contains("sync marker"));
}

/// Found by the fuzz target: a map whose block claims ~2^28 entries made apache-avro's
/// decoder reserve gigabytes. The walk refuses counts the block cannot hold.
#[test]
fn a_huge_item_count_is_an_error_not_an_allocation() {
    let bytes = include_bytes!("fuzz-oom-map-count.avro");
    let e = avro_datums(bytes).unwrap_err().to_string();
    assert!(
        e.contains("more than the block could hold") || e.contains("past"),
        "{e}"
    );
    // An array of nulls (items of no bytes) claiming 2^40 items.
    let schema = r#"{"type":"array","items":"null"}"#;
    let mut f = b"Obj\x01\x02\x16avro.schema".to_vec();
    f.push((schema.len() * 2) as u8);
    f.extend_from_slice(schema.as_bytes());
    f.push(0);
    f.extend_from_slice(&[7u8; 16]);
    // One datum: count 2^40 (zig-zag varint), then the block's sync.
    let mut datum = Vec::new();
    let mut v: u64 = (1u64 << 40) << 1;
    while v >= 0x80 {
        datum.push((v as u8) | 0x80);
        v >>= 7;
    }
    datum.push(v as u8);
    datum.push(0);
    f.extend_from_slice(&[2, (datum.len() * 2) as u8]);
    f.extend_from_slice(&datum);
    f.extend_from_slice(&[7u8; 16]);
    let e = avro_datums(&f).unwrap_err().to_string();
    assert!(e.contains("more than the block could hold"), "{e}");
}

/// The hand-made fuzz seeds are valid containers (every branch of the walk: unions, maps,
/// enums, fixed, a recursive record, deflate).
#[test]
fn the_fuzz_seeds_read() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/spooldir_avro");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let (_, datums) = avro_datums(&std::fs::read(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!datums.is_empty(), "{}", p.display());
    }
}

/// Found by the fuzz target: apache-avro 0.19's schema parser unwraps a bad name (and a bad
/// type name, alias or size); such a schema is an error here.
#[test]
fn a_schema_apache_avro_would_panic_on_is_an_error() {
    let bytes = include_bytes!("fuzz-crash-bad-name.avro");
    let e = avro_datums(bytes).unwrap_err().to_string();
    assert!(e.contains("not a valid"), "{e}");
    for bad in [
        r##"{"type":"record","name":"#","fields":[]}"##,
        r##"{"type":"record","name":"R","fields":[{"name":"f","type":"#x"}]}"##,
        r##"{"type":"record","name":"R","aliases":["a b"],"fields":[]}"##,
        r##"{"type":"fixed","name":"F","size":1.5}"##,
        r##"{"type":"record","name":"R","namespace":"1x","fields":[]}"##,
    ] {
        assert!(parse_schema(bad).is_err(), "{bad}");
    }
    // Defaults and other properties may hold any JSON.
    let ok = r##"{"type":"record","name":"n.R","namespace":"","fields":[{"name":"f","type":{"type":"record","name":"P","fields":[{"name":"name","type":"string"}]},"default":{"name":"J. Smith #1"},"x":{"name":"#"}},{"name":"u","type":["null",{"type":"array","items":"n.R"}]}]}"##;
    parse_schema(ok).unwrap();
}
