//! The spooldir keys: Flume's defaults, the deserializer's keys, and errors that name the
//! file, line and key.

use super::*;

fn build(pairs: &[(&str, &str)]) -> Result<SpoolDirConfig, String> {
    crate::config::keys::from_pairs("a1.sources.r1", pairs).map_err(|e| e.to_string())
}

#[test]
fn flumes_defaults() {
    let c = build(&[("spoolDir", "/var/spool/x")]).unwrap();
    assert_eq!(c.filter.dir, Path::new("/var/spool/x"));
    assert_eq!(c.filter.tracker_dir, Path::new("/var/spool/x/.flumespool"));
    assert_eq!(c.filter.suffix, ".COMPLETED");
    assert_eq!(c.marking, Marking::Rename);
    assert!(c.filter.include.is_match("anything") && !c.filter.ignore.is_match("a"));
    assert!(!c.filter.recursive);
    assert_eq!(c.order, Order::Oldest);
    assert_eq!(c.poll_delay, Duration::from_millis(500));
    assert_eq!(c.max_backoff, Duration::from_millis(4000));
    assert_eq!(c.batch_size, 100);
    assert!(c.file_header.is_none() && c.basename_header.is_none());
    match c.format {
        Format::Line {
            max_chars,
            input,
            output,
            errors,
        } => {
            assert_eq!(max_chars, 2048);
            assert_eq!((input, output), (encoding_rs::UTF_8, encoding_rs::UTF_8));
            assert_eq!(errors, DecodeErrors::Fail);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn options_and_deserializers() {
    let c = build(&[
        ("spoolDir", "/s"),
        ("deletePolicy", "IMMEDIATE"),
        ("fileHeader", "true"),
        ("basenameHeader", "true"),
        ("basenameHeaderKey", "bn"),
        ("trackerDir", "/t"),
        ("consumeOrder", "youngest"),
        ("deserializer", "avro"),
        ("deserializer.schemaType", "literal"),
    ])
    .unwrap();
    assert_eq!(c.marking, Marking::Delete);
    assert_eq!(c.file_header.as_deref(), Some("file"));
    assert_eq!(c.basename_header.as_deref(), Some("bn"));
    assert_eq!(c.filter.tracker_dir, Path::new("/t"));
    assert_eq!(c.order, Order::Youngest);
    assert!(matches!(c.format, Format::Avro { literal: true }));
    let c = build(&[("spoolDir", "/s"), ("trackingPolicy", "tracker_dir")]).unwrap();
    assert_eq!(c.marking, Marking::TrackerDir);
    assert!(c.filter.tracker_markers);
    let c = build(&[
        ("spoolDir", "/s"),
        ("deserializer", BLOB_CLASS),
        ("deserializer.maxBlobLength", "10"),
    ])
    .unwrap();
    assert!(matches!(c.format, Format::Blob { max: 10 }));
    let c = build(&[
        ("spoolDir", "/s"),
        ("bufferMaxLineLength", "7"),
        ("deserializer", LINE_CLASS),
    ])
    .unwrap();
    assert!(matches!(c.format, Format::Line { max_chars: 7, .. }));
}

#[test]
fn errors_name_the_file_line_and_key() {
    let e = build(&[("spoolDir", "/s"), ("deletePolicy", "later")]).unwrap_err();
    assert!(
        e.contains("a.conf:11") && e.contains("deletePolicy") && e.contains("never"),
        "{e}"
    );
    let e = build(&[("spoolDir", "/s"), ("includePattern", "(")]).unwrap_err();
    assert!(
        e.contains("a.conf:11") && e.contains("not a valid regular expression"),
        "{e}"
    );
    let e = build(&[("spoolDir", "/s"), ("deserializer", "com.example.Mine")]).unwrap_err();
    assert!(
        e.contains("a1.sources.r1.deserializer") && e.contains("com.example.Mine"),
        "{e}"
    );
    let e = build(&[("spoolDir", "/s"), ("inputCharset", "UTF-16")]).unwrap_err();
    assert!(
        e.contains("inputCharset") && e.contains("ASCII-compatible"),
        "{e}"
    );
    let e = build(&[("spoolDir", "/s"), ("batchSize", "0")]).unwrap_err();
    assert!(e.contains("batchSize"), "{e}");
    let e = build(&[("fileSuffix", ".DONE")]).unwrap_err();
    assert!(e.contains("spoolDir") && e.contains("missing"), "{e}");
}
