//! The TAILDIR keys: Flume's defaults, the file groups and their headers, and errors that
//! name the file, line and key.

use super::*;

fn build(pairs: &[(&str, &str)]) -> Result<TaildirConfig, String> {
    crate::config::keys::from_pairs("a1.sources.r1", pairs).map_err(|e| e.to_string())
}

#[test]
fn flumes_defaults() {
    let c = build(&[("filegroups", "f1"), ("filegroups.f1", "/var/log/.*\\.log")]).unwrap();
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].dir, Path::new("/var/log"));
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    assert_eq!(
        c.position_file,
        Path::new(&home).join(".flume/taildir_position.json")
    );
    assert!(!c.byte_offset_header && !c.skip_to_end && c.file_header.is_none());
    assert!(c.cache_pattern_matching);
    assert_eq!(c.idle_timeout, Duration::from_millis(120_000));
    assert_eq!(c.write_pos_interval, Duration::from_millis(3000));
    assert_eq!(c.batch_size, 100);
    assert_eq!(c.max_batch_count, i64::MAX as u64);
    assert_eq!(c.poll_interval, Duration::from_millis(1000));
}

#[test]
fn groups_headers_and_options() {
    let c = build(&[
        ("filegroups", "f1 f2"),
        ("filegroups.f1", "/a/x\\.log"),
        ("filegroups.f2", "/b/.*"),
        ("filegroups.unused", "/c/.*"),
        ("headers.f1.topic", " t1 "),
        ("headers.f1.k.with.dots", "v"),
        ("headers.f2.topic", "t2"),
        ("fileHeader", "true"),
        ("maxBatchCount", "0"),
        ("backoffSleepIncrement", "200"),
        ("positionFile", "/tmp/p.json"),
    ])
    .unwrap();
    assert_eq!(c.groups[0].name, "f1");
    assert_eq!(
        c.groups[0].headers,
        [
            ("k.with.dots".into(), "v".into()),
            ("topic".into(), "t1".into())
        ]
    );
    assert_eq!(c.groups[1].headers, [("topic".into(), "t2".into())]);
    assert_eq!(c.file_header.as_deref(), Some("file"));
    assert_eq!(
        c.max_batch_count,
        i64::MAX as u64,
        "<= 0 is Flume's default"
    );
    assert_eq!(c.poll_interval, Duration::from_millis(200));
    assert_eq!(c.position_file, Path::new("/tmp/p.json"));
}

#[test]
fn errors_name_the_file_line_and_key() {
    let e = build(&[("filegroups", "f1 f2"), ("filegroups.f1", "/a/.*")]).unwrap_err();
    assert!(
        e.contains("a.conf:10") && e.contains("a1.sources.r1.filegroups") && e.contains("f2"),
        "{e}"
    );
    let e = build(&[("filegroups", "f1"), ("filegroups.f1", "/a/(unclosed")]).unwrap_err();
    assert!(
        e.contains("a.conf:11")
            && e.contains("a1.sources.r1.filegroups.f1")
            && e.contains("not a valid regular expression"),
        "{e}"
    );
    let e = build(&[
        ("filegroups", "f1"),
        ("filegroups.f1", "/a/.*"),
        ("headers.f9.topic", "x"),
    ])
    .unwrap_err();
    assert!(
        e.contains("a.conf:12") && e.contains("headers.f9.topic") && e.contains("'f9'"),
        "{e}"
    );
    let e = build(&[("filegroups", "f1"), ("filegroups.f1", "a.log")]).unwrap_err();
    assert!(e.contains("has no directory"), "{e}");
    let e = build(&[("filegroups.f1", "/a/.*")]).unwrap_err();
    assert!(e.contains("filegroups") && e.contains("missing"), "{e}");
}
