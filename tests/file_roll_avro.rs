//! `file_roll` with `sink.serializer = avro_event`: the real binary (netcat → memory →
//! file_roll) writes Avro object containers of Flume's event schema, which Avro's own
//! readers read back: the apache-avro crate, and Java's avro-tools from Maven Central.

mod common;
mod java_peer;

use apache_avro::types::Value;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The schema Flume's `FlumeEventAvroEventSerializer` writes.
const FLUME_SCHEMA: &str = r#"{"type":"record","name":"Event","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}"#;

fn conf(port: u16, codec: &str) -> String {
    netcat_conf(
        port,
        &format!(
            "a1.sinks.k1.sink.serializer = avro_event
a1.sinks.k1.sink.serializer.compressionCodec = {codec}
a1.sinks.k1.sink.serializer.syncIntervalBytes = 4096
a1.sources.r1.interceptors = o
a1.sources.r1.interceptors.o.type = static
a1.sources.r1.interceptors.o.key = origin
a1.sources.r1.interceptors.o.value = netcat-test
"
        ),
    )
}

/// Lines of client `c`; some bodies are not ASCII.
fn lines(c: usize, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{c}-{i}-caf\u{e9}")).collect()
}

type Record = (BTreeMap<String, String>, Vec<u8>);

/// The records of the container at `path`, read by the apache-avro crate; `Err` for a
/// file that is not (yet) a whole container.
fn read_container(path: &Path) -> Result<Vec<Record>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let reader = apache_avro::Reader::new(&bytes[..]).map_err(|e| e.to_string())?;
    assert_eq!(
        reader.writer_schema().canonical_form(),
        apache_avro::Schema::parse_str(FLUME_SCHEMA)
            .unwrap()
            .canonical_form(),
        "{}",
        path.display()
    );
    let mut out = Vec::new();
    for v in reader {
        let Value::Record(fields) = v.map_err(|e| e.to_string())? else {
            panic!("a record")
        };
        let (Value::Map(h), Value::Bytes(body)) = (&fields[0].1, &fields[1].1) else {
            panic!("headers and body: {fields:?}")
        };
        let headers = h
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k.clone(), s.clone()),
                other => panic!("a string header value: {other:?}"),
            })
            .collect();
        out.push((headers, body.clone()));
    }
    Ok(out)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    file_names(dir).iter().map(|n| dir.join(n)).collect()
}

/// Every record of every file under `dir`, or `Err` while one is not a whole container.
fn read_all(dir: &Path) -> Result<Vec<Record>, String> {
    let mut all = Vec::new();
    for f in files_in(dir) {
        all.extend(read_container(&f)?);
    }
    Ok(all)
}

/// Runs an agent on `codec`, sends `clients` × `per_client` lines over netcat (each
/// acknowledged), waits until the open files hold all of them, stops the agent and
/// returns it (its files stay) with the lines sent.
fn run_agent(codec: &str, cores: &str, clients: usize, per_client: usize) -> (Agent, Vec<String>) {
    let port = free_port();
    let mut agent = Agent::start(&conf(port, codec), &["--cores", cores]);
    let senders: Vec<_> = (0..clients)
        .map(|c| std::thread::spawn(move || send_lines(port, &lines(c, per_client))))
        .collect();
    let acked: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
    let sent: Vec<String> = (0..clients).flat_map(|c| lines(c, per_client)).collect();
    assert_eq!(acked, sent.len());
    // Each committed batch ends with a whole block: the files, still open, are readable
    // containers holding every event once the sink has taken them all.
    let out = agent.path("out");
    let open = wait_until(
        Duration::from_secs(30),
        "every event in the open files",
        || read_all(&out).ok().filter(|r| r.len() >= sent.len()),
    );
    assert_eq!(open.len(), sent.len(), "no event written twice");
    assert!(agent.stop().success(), "{}", agent.log_text());
    (agent, sent)
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

#[test]
fn file_roll_avro_event_files_read_back_with_the_apache_avro_crate() {
    let (agent, sent) = run_agent("deflate", "2", 4, 5000);
    let out = agent.path("out");
    let files = files_in(&out);
    assert!(!files.is_empty());
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        // The header names the codec as Avro's metadata map encodes it.
        assert!(
            bytes.windows(19).any(|w| w == b"\x14avro.codec\x0edeflate"),
            "{} names the deflate codec",
            f.display()
        );
    }
    let records = read_all(&out).unwrap();
    let origin: BTreeMap<String, String> = [("origin".to_string(), "netcat-test".to_string())]
        .into_iter()
        .collect();
    for (headers, _) in &records {
        assert_eq!(headers, &origin);
    }
    assert_eq!(
        sorted(records.into_iter().map(|(_, b)| b).collect()),
        sorted(sent.into_iter().map(String::into_bytes).collect()),
        "every acknowledged line once, bytes as sent"
    );
}

/// Runs avro-tools `args` on `file`; its stdout.
fn avro_tools(jar: &Path, args: &[&str], file: &Path) -> String {
    let out = Command::new("java")
        // A short run: no optimising compiler, the smallest collector.
        .args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-jar"])
        .arg(jar)
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "avro-tools {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn java_avro_tools_reads_what_file_roll_writes() {
    let Some(jar) = java_peer::avro_tools_jar() else {
        return;
    };
    for codec in ["null", "deflate", "snappy"] {
        let (agent, sent) = run_agent(codec, "1", 2, 1000);
        let mut bodies = Vec::new();
        for f in files_in(&agent.path("out")) {
            // getmeta prints the header's metadata, one `key<TAB>value` a line.
            let meta = avro_tools(&jar, &["getmeta"], &f);
            let meta: BTreeMap<&str, &str> =
                meta.lines().filter_map(|l| l.split_once('\t')).collect();
            assert_eq!(meta.get("avro.codec"), Some(&codec), "{meta:?}");
            let schema: serde_json::Value = serde_json::from_str(meta["avro.schema"]).unwrap();
            assert_eq!(
                schema,
                serde_json::from_str::<serde_json::Value>(FLUME_SCHEMA).unwrap()
            );
            for line in avro_tools(&jar, &["tojson"], &f).lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(
                    v["headers"],
                    serde_json::json!({"origin": "netcat-test"}),
                    "{line}"
                );
                // tojson shows Avro bytes as a string of one char per byte.
                let body = v["body"].as_str().unwrap();
                bodies.push(body.chars().map(|c| u8::try_from(c).unwrap()).collect());
            }
        }
        assert_eq!(
            sorted(bodies),
            sorted(sent.into_iter().map(String::into_bytes).collect()),
            "{codec}: avro-tools reads every line once"
        );
    }
}
