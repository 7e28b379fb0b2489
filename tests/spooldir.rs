//! The spooling directory source on the real binary: a thousand files delivered exactly
//! once and marked with each policy (rename, immediate delete, tracker_dir), a kill -9 in
//! the middle of a file (every line delivered, at most a batch again), AVRO container files
//! (null and deflate codecs) and Blob, a file changed after it was read or whose finished
//! name is taken (a clear error, the file left unmarked, the source going on), headers,
//! and the order of consumeOrder oldest and youngest.

mod common;

use apache_avro::types::{Record, Value};
use common::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// The spool directory, the output and the channel's files of one test, outliving agents.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        for d in ["spool", "out"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        World { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn spool(&self, name: &str) -> PathBuf {
        self.path("spool").join(name)
    }
    fn out(&self) -> Vec<String> {
        lines_in(&self.path("out"))
    }
    /// An agent reading `spool/` into `out/` (file_roll) through a memory channel unless
    /// `channel` is given (`{w}` is the world's directory), with `extra` keys.
    fn conf(&self, extra: &str, channel: &str) -> String {
        let d = self.dir.path().display();
        let channel = if channel.is_empty() {
            "a1.channels.c1.type = memory\na1.channels.c1.capacity = 100000\na1.channels.c1.transactionCapacity = 1000\n".to_string()
        } else {
            channel.replace("{w}", &d.to_string())
        };
        format!(
            "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = spooldir
a1.sources.r1.spoolDir = {d}/spool
a1.sources.r1.pollDelay = 50
a1.sources.r1.channels = c1
{extra}
{channel}
a1.sinks.k1.type = file_roll
a1.sinks.k1.sink.directory = {d}/out
a1.sinks.k1.sink.rollInterval = 0
a1.sinks.k1.sink.batchSize = 1000
a1.sinks.k1.channel = c1
"
        )
    }
    fn start(&self, extra: &str) -> Agent {
        Agent::start(&self.conf(extra, ""), &["--cores", "2"])
    }
}

/// Writes a file whole under a hidden name and renames it in, as a producer of a spool
/// directory must (the source reads only complete files).
fn drop_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn counts(lines: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in lines {
        *m.entry(l.clone()).or_insert(0) += 1;
    }
    m
}

/// Waits until the output holds `want` lines, then checks each is there exactly once.
fn wait_for_exactly(w: &World, want: &[String]) {
    wait_until(T, &format!("{} lines", want.len()), || {
        (w.out().len() >= want.len()).then_some(())
    });
    let mut got = w.out();
    got.sort();
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(got.len(), want.len(), "duplicates");
    assert_eq!(got, want);
}

fn thousand_files(w: &World, extra: &str, marked: impl Fn(&World, &str) -> bool) {
    let mut want = Vec::new();
    for i in 0..1000 {
        let lines: Vec<String> = (0..3).map(|j| format!("f{i}-l{j}")).collect();
        want.extend(lines.iter().cloned());
        drop_file(
            &w.spool(&format!("f{i:04}.log")),
            lines.join("\n").as_bytes(),
        );
    }
    let mut agent = w.start(extra);
    wait_for_exactly(w, &want);
    wait_until(T, "every file marked", || {
        (0..1000)
            .all(|i| marked(w, &format!("f{i:04}.log")))
            .then_some(())
    });
    assert!(agent.stop().success());
    // A restart reads none of them again.
    let mut agent = w.start(extra);
    std::thread::sleep(Duration::from_millis(300));
    drop_file(&w.spool("last.log"), b"last\n");
    want.push("last".into());
    wait_for_exactly(w, &want);
    assert!(agent.stop().success());
    assert!(!agent.log_text().contains("ERROR"), "{}", agent.log_text());
}

#[test]
fn a_thousand_files_are_delivered_once_and_renamed() {
    let w = World::new();
    thousand_files(&w, "", |w, name| {
        w.spool(&format!("{name}.COMPLETED")).exists() && !w.spool(name).exists()
    });
}

#[test]
fn a_thousand_files_are_delivered_once_and_deleted_with_delete_policy_immediate() {
    let w = World::new();
    thousand_files(&w, "a1.sources.r1.deletePolicy = immediate", |w, name| {
        !w.spool(name).exists()
    });
    let left = file_names(&w.path("spool"));
    assert_eq!(left, [".flumespool"], "only the tracker directory is left");
}

#[test]
fn a_thousand_files_are_delivered_once_and_recorded_in_the_tracker_dir() {
    let w = World::new();
    thousand_files(
        &w,
        "a1.sources.r1.trackingPolicy = tracker_dir\na1.sources.r1.fileSuffix = .DONE",
        |w, name| w.spool(name).exists() && w.spool(&format!(".flumespool/{name}.DONE")).exists(),
    );
}

#[test]
fn kill_9_in_the_middle_of_a_file_resumes_it_with_at_most_a_batch_again() {
    const LINES: usize = 60_000;
    const BATCH: usize = 100;
    const SINK_BATCH: usize = 100;
    let w = World::new();
    let lines: Vec<String> = (0..LINES).map(|i| format!("L{i:08}")).collect();
    drop_file(
        &w.spool("big.log"),
        format!("{}\n", lines.join("\n")).as_bytes(),
    );
    drop_file(&w.spool("small.log"), b"s1\ns2\n");
    // The big file first (oldest), read slowly enough to be killed in its middle.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(w.spool("big.log"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let channel = format!(
        "a1.channels.c1.type = file
a1.channels.c1.checkpointDir = {{w}}/ckpt
a1.channels.c1.dataDirs = {{w}}/data
a1.channels.c1.capacity = 1000000
a1.channels.c1.transactionCapacity = 1000
a1.sources.r1.batchSize = {BATCH}
a1.sinks.k1.sink.batchSize = {SINK_BATCH}"
    );
    let conf = w.conf("", &channel);
    let state = w.spool(".flumespool/.flume-fast-spool.json");
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    let offset = |s: &str| -> u64 {
        serde_json::from_str::<serde_json::Value>(s).unwrap()["offset"]
            .as_u64()
            .unwrap()
    };
    wait_until(T, "a position in the middle of big.log", || {
        let s = std::fs::read_to_string(&state).ok()?;
        let v: serde_json::Value = serde_json::from_str(&s).ok()?;
        (v["file"].as_str()?.ends_with("big.log") && v["offset"].as_u64()? > 0).then_some(())
    });
    agent.signal(libc::SIGKILL);
    agent.wait_exit(T);
    let saved = offset(&std::fs::read_to_string(&state).unwrap());
    let size = std::fs::metadata(w.spool("big.log")).unwrap().len();
    assert!(saved < size, "killed after the end ({saved} of {size})");
    assert!(w.spool("big.log").exists(), "not marked before the kill");
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    let mut want = lines.clone();
    want.extend(["s1".to_string(), "s2".to_string()]);
    let got = wait_until(Duration::from_secs(120), "every line", || {
        let got = counts(&w.out());
        want.iter().all(|l| got.contains_key(l)).then_some(got)
    });
    wait_until(T, "both files renamed", || {
        (w.spool("big.log.COMPLETED").exists() && w.spool("small.log.COMPLETED").exists())
            .then_some(())
    });
    assert!(agent.stop().success());
    assert!(
        agent.log_text().contains("resuming"),
        "{}",
        agent.log_text()
    );
    let dups: usize = got.values().map(|c| c - 1).sum();
    eprintln!("{LINES} lines, saved offset {saved} of {size}, {dups} duplicates");
    // The source repeats at most its batch in flight. The file channel also gives back the
    // sink batches whose take records a kill -9 caught before they were written (they are
    // written with the next put's sync or 1 ms later): here one or two, as the source's
    // synced puts pace the sink.
    assert!(
        dups <= BATCH + 3 * SINK_BATCH,
        "{dups} duplicates: more than the batch in flight"
    );
    assert_eq!(got.len(), want.len(), "no line that was not written");
}

const SCHEMA: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"tags","type":{"type":"array","items":"string"}}]}"#;

/// The records of every avro_event container file_roll wrote: (headers, body).
fn read_out_containers(dir: &Path) -> Vec<(BTreeMap<String, String>, Vec<u8>)> {
    let mut out = Vec::new();
    for name in file_names(dir) {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        if bytes.is_empty() {
            continue;
        }
        for v in apache_avro::Reader::new(&bytes[..]).unwrap() {
            let Value::Record(fields) = v.unwrap() else {
                panic!("a record")
            };
            let (Value::Map(h), Value::Bytes(body)) = (&fields[0].1, &fields[1].1) else {
                panic!("{fields:?}")
            };
            let h = h
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k.clone(), s.clone()),
                    other => panic!("{other:?}"),
                })
                .collect();
            out.push((h, body.clone()));
        }
    }
    out
}

fn user(schema: &apache_avro::Schema, i: i64) -> Record<'_> {
    let mut r = Record::new(schema).unwrap();
    r.put("id", i);
    r.put("name", format!("user-{i}"));
    r.put(
        "tags",
        Value::Array(vec![
            Value::String("a".into()),
            Value::String(i.to_string()),
        ]),
    );
    r
}

#[test]
fn avro_container_files_give_their_datums_with_the_schema_hash() {
    let w = World::new();
    let schema = apache_avro::Schema::parse_str(SCHEMA).unwrap();
    let mut want = Vec::new();
    for (name, codec) in [
        ("plain.avro", apache_avro::Codec::Null),
        (
            "deflate.avro",
            apache_avro::Codec::Deflate(Default::default()),
        ),
    ] {
        let mut wr = apache_avro::Writer::builder()
            .schema(&schema)
            .writer(Vec::new())
            .codec(codec)
            .build();
        for i in 0..250 {
            wr.append(user(&schema, i)).unwrap();
            want.push(apache_avro::to_avro_datum(&schema, user(&schema, i)).unwrap());
            if i % 40 == 0 {
                wr.flush().unwrap();
            }
        }
        drop_file(&w.spool(name), &wr.into_inner().unwrap());
    }
    let mut agent = w.start(
        "a1.sources.r1.deserializer = AVRO
a1.sources.r1.basenameHeader = true
a1.sinks.k1.sink.serializer = avro_event",
    );
    wait_until(T, "both files renamed", || {
        (w.spool("plain.avro.COMPLETED").exists() && w.spool("deflate.avro.COMPLETED").exists())
            .then_some(())
    });
    assert!(agent.stop().success());
    let got = read_out_containers(&w.path("out"));
    // Java's SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema), in hex.
    let fp: String = schema
        .fingerprint::<apache_avro::rabin::Rabin>()
        .bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut bodies: Vec<Vec<u8>> = got.iter().map(|(_, b)| b.clone()).collect();
    for (h, _) in &got {
        assert_eq!(h.get("flume.avro.schema.hash"), Some(&fp));
        assert!(h["basename"].ends_with(".avro"));
    }
    bodies.sort();
    want.sort();
    assert_eq!(bodies, want);
    // Each body is the datum in Avro binary, as a reader of the schema reads it.
    let v = apache_avro::from_avro_datum(&schema, &mut &got[0].1[..], None).unwrap();
    assert!(matches!(v, Value::Record(_)));
}

#[test]
fn blob_gives_each_file_as_one_event() {
    let w = World::new();
    drop_file(&w.spool("one.bin"), b"line one\nline two\n");
    drop_file(&w.spool("two.bin"), b"no newline at all");
    let mut agent = w.start(
        "a1.sources.r1.deserializer = org.apache.flume.sink.solr.morphline.BlobDeserializer$Builder
a1.sources.r1.basenameHeader = true
a1.sinks.k1.sink.serializer = avro_event",
    );
    wait_until(T, "both files renamed", || {
        (w.spool("one.bin.COMPLETED").exists() && w.spool("two.bin.COMPLETED").exists())
            .then_some(())
    });
    assert!(agent.stop().success());
    let mut got: Vec<(String, Vec<u8>)> = read_out_containers(&w.path("out"))
        .into_iter()
        .map(|(h, b)| (h["basename"].clone(), b))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("one.bin".to_string(), b"line one\nline two\n".to_vec()),
            ("two.bin".to_string(), b"no newline at all".to_vec())
        ]
    );
}

#[test]
fn file_and_basename_headers_and_an_empty_file_as_flume() {
    let w = World::new();
    std::fs::create_dir(w.spool("sub")).unwrap();
    drop_file(&w.spool("a.log"), b"one\r\ntwo\n");
    drop_file(&w.spool("sub/b.log"), b"three");
    drop_file(&w.spool("empty.log"), b"");
    drop_file(&w.spool("skip.tmp"), b"not included\n");
    let mut agent = w.start(
        "a1.sources.r1.fileHeader = true
a1.sources.r1.basenameHeader = true
a1.sources.r1.basenameHeaderKey = name
a1.sources.r1.includePattern = .*[.]log
a1.sources.r1.recursiveDirectorySearch = true
a1.sinks.k1.sink.serializer = header_and_text",
    );
    wait_until(T, "three files renamed", || {
        ["a.log", "sub/b.log", "empty.log"]
            .iter()
            .all(|f| w.spool(&format!("{f}.COMPLETED")).exists())
            .then_some(())
    });
    assert!(agent.stop().success());
    assert!(w.spool("skip.tmp").exists());
    let out = w.out();
    assert_eq!(out.len(), 4, "{out:?}");
    // LINE keeps the \r of a \r\n, as Flume's LineDeserializer.
    let raw: String = file_names(&w.path("out"))
        .iter()
        .map(|n| std::fs::read_to_string(w.path("out").join(n)).unwrap())
        .collect();
    assert!(raw.contains("} one\r\n"), "{raw:?}");
    let spool = w.path("spool");
    for (body, file, name) in [
        ("one", spool.join("a.log"), "a.log"),
        ("two", spool.join("a.log"), "a.log"),
        ("three", spool.join("sub/b.log"), "b.log"),
        // Flume's first read of an empty file gives an event with an empty body.
        ("", spool.join("empty.log"), "empty.log"),
    ] {
        let line = out
            .iter()
            .find(|l| l.ends_with(&format!("}} {body}")) && l.contains(&format!("name={name}")))
            .unwrap_or_else(|| panic!("no event {body:?} of {name} in {out:?}"));
        assert!(line.contains(&format!("file={}", file.display())), "{line}");
        assert_eq!(line.matches('=').count(), 2, "{line}");
    }
}

#[test]
fn a_file_changed_after_it_was_read_or_whose_done_name_is_taken_is_an_error_not_a_skip() {
    let w = World::new();
    let port = free_port();
    // The first agent's sink has no receiver yet: its channel fills and the source waits
    // with the file half read.
    let lines: Vec<String> = (0..500).map(|i| format!("c{i}")).collect();
    drop_file(
        &w.spool("changing.log"),
        format!("{}\n", lines.join("\n")).as_bytes(),
    );
    let d = w.dir.path().display();
    let conf = format!(
        "a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = spooldir
a1.sources.r1.spoolDir = {d}/spool
a1.sources.r1.pollDelay = 50
a1.sources.r1.batchSize = 10
a1.sources.r1.maxBackoff = 200
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.capacity = 50
a1.channels.c1.transactionCapacity = 10
a1.sinks.k1.type = avro
a1.sinks.k1.hostname = 127.0.0.1
a1.sinks.k1.port = {port}
a1.sinks.k1.channel = c1
"
    );
    let mut agent = Agent::start(&conf, &["--cores", "2"]);
    agent.wait_for_log("holding", T);
    // Appended to while it is read: Flume's "File has been modified since being read".
    std::fs::OpenOptions::new()
        .append(true)
        .open(w.spool("changing.log"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"late\n"))
        .unwrap();
    let mut receiver = Agent::start(
        &receiver_conf(port, "").replace("{dir}/out", &format!("{d}/out")),
        &["--cores", "1"],
    );
    let err = agent.wait_for_log("File has been modified since being read", T);
    assert!(
        err.contains("ERROR") && err.contains("changing.log") && err.contains("changed size"),
        "{err}"
    );
    assert!(w.spool("changing.log").exists(), "left unmarked");
    assert!(!w.spool("changing.log.COMPLETED").exists());
    // The source goes on: a file whose finished name is taken is read, then refused its
    // mark (Flume's "File name has been re-used"), and a good file is read and marked.
    drop_file(&w.spool("reused.log.COMPLETED"), b"from before\n");
    drop_file(&w.spool("reused.log"), b"r1\n");
    agent.wait_for_log("File name has been re-used with different files", T);
    assert!(w.spool("reused.log").exists());
    drop_file(&w.spool("good.log"), b"g1\n");
    wait_until(T, "good.log renamed", || {
        w.spool("good.log.COMPLETED").exists().then_some(())
    });
    wait_until(T, "the lines", || {
        let out = w.out();
        (out.contains(&"g1".to_string()) && out.contains(&"r1".to_string())).then_some(())
    });
    // The changed file is not read again while the agent runs.
    std::thread::sleep(Duration::from_millis(300));
    let c0 = w.out().iter().filter(|l| *l == "c0").count();
    assert_eq!(c0, 1);
    assert!(agent.stop().success());
    assert!(receiver.stop().success());
    let log = agent.log_text();
    assert!(
        log.contains("changing.log") && log.contains("not read again until the agent restarts"),
        "{log}"
    );
}

#[test]
fn a_missing_spool_dir_or_bad_key_stops_the_start_with_the_reason() {
    let w = World::new();
    let conf = w.conf("", "").replace("/spool\n", "/nowhere\n");
    let mut agent = Agent::spawn(&conf, &["--cores", "2"]);
    assert!(!agent.wait_exit(T).success());
    assert!(
        agent.log_text().contains("does not exist"),
        "{}",
        agent.log_text()
    );
    let path = w.path("bad.conf");
    std::fs::write(&path, w.conf("a1.sources.r1.consumeOrder = newest", "")).unwrap();
    let (code, out, err) = run(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("consumeOrder")
            && format!("{out}{err}").contains("bad.conf:"),
        "{out}{err}"
    );
}

/// The lines of every output file in the order written (the source runs on one shard, so
/// one shard's sink writes them all).
fn out_in_order(w: &World) -> Vec<String> {
    file_names(&w.path("out"))
        .iter()
        .flat_map(|n| {
            std::fs::read_to_string(w.path("out").join(n))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn consume_order_oldest_and_youngest_by_modification_time_ties_by_name() {
    for order in ["oldest", "youngest"] {
        let w = World::new();
        let now = std::time::SystemTime::now();
        // b the oldest, d the youngest, a and c of the same time.
        for (name, age) in [("a", 20), ("b", 30), ("c", 20), ("d", 10)] {
            let p = w.spool(name);
            drop_file(&p, format!("{name}\n").as_bytes());
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(now - Duration::from_secs(age))
                .unwrap();
        }
        let want: Vec<String> = match order {
            // Ties by name: a before c, whichever way the times go.
            "oldest" => ["b", "a", "c", "d"],
            _ => ["d", "a", "c", "b"],
        }
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut agent = w.start(&format!("a1.sources.r1.consumeOrder = {order}"));
        wait_until(T, "four lines", || (w.out().len() == 4).then_some(()));
        assert!(agent.stop().success());
        assert_eq!(out_in_order(&w), want, "consumeOrder = {order}");
    }
}
