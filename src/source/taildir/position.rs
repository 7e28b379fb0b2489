//! The TAILDIR position file: which byte of which file has been delivered, in the format
//! Java Flume 1.11 writes with Gson (a compact JSON array of
//! `{"inode":N,"pos":N,"file":"path"}`), so an agent moved from Flume to flume-fast (or
//! back) resumes where the other stopped.
//!
//! [`parse`] accepts what Gson's reader in Flume accepts in practice (fields in any order,
//! any whitespace, numbers or numeric strings) and refuses anything else with an error,
//! never a panic: the file may have been edited by hand. [`format`] writes Gson's exact
//! bytes, escapes included.

use std::fmt::Write as _;

/// One file's delivered position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub inode: u64,
    /// Bytes of the file delivered (the offset of the first line not yet delivered).
    pub pos: u64,
    /// The path the file had when the position was recorded.
    pub file: String,
}

/// The positions in a position file's content. Empty content is no positions: Flume
/// writes an empty file when no file matches.
pub fn parse(bytes: &[u8]) -> Result<Vec<Position>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Array(items) = value else {
        return Err("expected a JSON array of {\"inode\",\"pos\",\"file\"} objects".into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| entry(item).map_err(|e| format!("entry {}: {e}", i + 1)))
        .collect()
}

fn entry(item: &serde_json::Value) -> Result<Position, String> {
    let serde_json::Value::Object(fields) = item else {
        return Err(format!("expected an object, found {item}"));
    };
    let field = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| format!("missing \"{name}\" in {item}"))
    };
    let file = match field("file")? {
        serde_json::Value::String(s) => s.clone(),
        other => return Err(format!("\"file\" must be a string, found {other}")),
    };
    Ok(Position {
        inode: number(field("inode")?, "inode")?,
        pos: number(field("pos")?, "pos")?,
        file,
    })
}

/// A Java `long` as Gson's `nextLong` reads it: a JSON integer or a string holding one.
/// A negative inode is how Java prints an inode above `i64::MAX`, so it is taken back.
fn number(v: &serde_json::Value, name: &str) -> Result<u64, String> {
    let n = match v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)),
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if name == "inode" => Ok(n as u64),
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(format!(
            "\"{name}\" must be a non-negative integer, found {v}"
        )),
    }
}

/// The position file content Flume's Gson writes for `positions`, byte for byte.
pub fn format(positions: &[Position]) -> String {
    let mut out = String::with_capacity(16 + positions.len() * 64);
    out.push('[');
    for (i, p) in positions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Java's long is signed: an inode above i64::MAX prints negative there.
        let _ = write!(
            out,
            "{{\"inode\":{},\"pos\":{},\"file\":",
            p.inode as i64, p.pos
        );
        gson_string(&mut out, &p.file);
        out.push('}');
    }
    out.push(']');
    out
}

/// A JSON string as Gson escapes it by default (HTML-safe: `<`, `>`, `&`, `=` and `'`
/// too, and the JavaScript line separators U+2028 and U+2029).
fn gson_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '=' | '\'' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(inode: u64, pos: u64, file: &str) -> Position {
        Position {
            inode,
            pos,
            file: file.into(),
        }
    }

    #[test]
    fn writes_the_bytes_java_flume_writes() {
        assert_eq!(
            format(&[p(1234, 56, "/var/log/a.log")]),
            r#"[{"inode":1234,"pos":56,"file":"/var/log/a.log"}]"#
        );
        assert_eq!(
            format(&[p(1, 0, "/a"), p(2, 3, "/b")]),
            r#"[{"inode":1,"pos":0,"file":"/a"},{"inode":2,"pos":3,"file":"/b"}]"#
        );
        assert_eq!(format(&[]), "[]");
        // Gson's HTML-safe escapes and control characters.
        assert_eq!(
            format(&[p(7, 8, "/l/a=b&c<d>'e\"f\\g\th\u{1}\u{2028}ü")]),
            r#"[{"inode":7,"pos":8,"file":"/l/a\u003db\u0026c\u003cd\u003e\u0027e\"f\\g\th\u0001\u2028ü"}]"#
        );
    }

    #[test]
    fn round_trips() {
        let ps = vec![
            p(1234, 56, "/var/log/a.log"),
            p(u64::MAX, 0, "/x/=&<>'\"\\\n\r\u{7f}ü\u{2029}"),
            p(0, i64::MAX as u64, ""),
        ];
        assert_eq!(parse(format(&ps).as_bytes()).unwrap(), ps);
    }

    proptest::proptest! {
        /// What the fuzz target checks, in short: any position round-trips, and anything
        /// that parses is written and read back unchanged.
        #[test]
        fn any_position_round_trips(inode: u64, pos in 0..=i64::MAX as u64, file: String) {
            let ps = vec![p(inode, pos, &file), p(1, 2, "/x")];
            proptest::prop_assert_eq!(parse(format(&ps).as_bytes()).unwrap(), ps);
        }

        #[test]
        fn any_bytes_parse_or_fail_and_what_parses_round_trips(data: Vec<u8>) {
            if let Ok(ps) = parse(&data) {
                let written = format(&ps);
                proptest::prop_assert_eq!(parse(written.as_bytes()).unwrap(), ps);
            }
        }
    }

    #[test]
    fn reads_any_field_order_whitespace_and_numeric_strings() {
        let text = "[\n  { \"file\" : \"/b\", \"pos\": \"10\",\n \"inode\" : 5 } ,{\"pos\":0,\"inode\":-1,\"file\":\"/c\"}]\n";
        assert_eq!(
            parse(text.as_bytes()).unwrap(),
            [p(5, 10, "/b"), p(u64::MAX, 0, "/c")]
        );
        // What Flume writes when no file matches.
        assert_eq!(parse(b"").unwrap(), []);
        assert_eq!(parse(b" \n").unwrap(), []);
        assert_eq!(parse(b"[]").unwrap(), []);
    }

    #[test]
    fn malformed_input_is_an_error_that_says_what_is_wrong() {
        for (text, says) in [
            ("[{\"inode\":1,\"pos\":2}]", "missing \"file\""),
            ("[{\"inode\":1,\"file\":\"/a\"}]", "missing \"pos\""),
            ("[{\"pos\":1,\"file\":\"/a\"}]", "missing \"inode\""),
            (
                "[{\"inode\":1,\"pos\":-2,\"file\":\"/a\"}]",
                "\"pos\" must be",
            ),
            (
                "[{\"inode\":1.5,\"pos\":2,\"file\":\"/a\"}]",
                "\"inode\" must be",
            ),
            (
                "[{\"inode\":1,\"pos\":2,\"file\":3}]",
                "\"file\" must be a string",
            ),
            ("[1]", "entry 1: expected an object"),
            ("{\"inode\":1}", "expected a JSON array"),
            ("[{\"inode\":1,\"pos\":2,\"file\":\"/a\"}", "not JSON"),
            ("\u{0}garbage", "not JSON"),
        ] {
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }
}
