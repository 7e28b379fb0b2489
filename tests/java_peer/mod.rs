//! Java Flume 1.11.0 as a test peer: finds (or fetches, through `scripts/java-flume`) its
//! jars, runs agents and the Java avro client, and follows their logs. Without java or mvn
//! the tests that need it skip with a printed reason, unless FLUME_FAST_REQUIRE_JAVA=1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

const LOG4J2: &str = r#"<Configuration status="warn">
  <Appenders><Console name="err" target="SYSTEM_ERR"><PatternLayout pattern="%d %p %c{1} - %m%n"/></Console></Appenders>
  <Loggers><Root level="info"><AppenderRef ref="err"/></Root></Loggers>
</Configuration>
"#;

fn works(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The directory of Java Flume's jars, fetched once per test run; `None` (after printing
/// why) when Java or Maven is missing and Java is not required.
pub fn flume_lib() -> Option<PathBuf> {
    static LIB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    fetched(&LIB, "flume", "lib", "Java Flume peer")
}

/// Avro's own tools jar (`java -jar JAR tojson FILE`), fetched once per test run; `None`
/// (after printing why) when Java or Maven is missing and Java is not required.
pub fn avro_tools_jar() -> Option<PathBuf> {
    static JAR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = fetched(&JAR, "avro-tools", "lib-avro-tools", "Java avro-tools")?;
    let jar = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jar"))
        .unwrap_or_else(|| panic!("no jar in {}", dir.display()));
    Some(jar)
}

/// `scripts/java-flume/<dir>`, made complete by `fetch.sh <what>` once per test run.
fn fetched(
    cell: &OnceLock<Result<PathBuf, String>>,
    what: &str,
    dir: &str,
    peer: &str,
) -> Option<PathBuf> {
    let result = cell.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/java-flume");
        if !works("java", "-version") {
            return Err("java is not installed".into());
        }
        if !root.join(dir).join(".complete").exists() && !works("mvn", "-v") {
            return Err(format!(
                "mvn is not installed (needed once to fetch {what})"
            ));
        }
        let out = Command::new(root.join("fetch.sh"))
            .arg(what)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run fetch.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/java-flume/fetch.sh {what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(root.join(dir))
    });
    match result {
        Ok(p) => Some(p.clone()),
        Err(why) if std::env::var("FLUME_FAST_REQUIRE_JAVA").as_deref() == Ok("1") => {
            panic!("FLUME_FAST_REQUIRE_JAVA=1 but the {peer} is unavailable: {why}")
        }
        Err(why) => {
            // Written to the stderr handle, not eprintln!, so the test harness's output
            // capture does not hide why the test did nothing.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED: {peer} unavailable: {why}");
            None
        }
    }
}

#[derive(Default)]
struct Log {
    /// The lines so far, and how many of the two output streams (stdout, stderr) ended.
    lines: Mutex<(Vec<String>, u8)>,
    changed: Condvar,
}

/// A running Java process whose output is followed.
pub struct JavaProc {
    child: Child,
    log: Arc<Log>,
}

fn java(lib: &Path, dir: &Path) -> Command {
    let log4j = dir.join("log4j2.xml");
    std::fs::write(&log4j, LOG4J2).unwrap();
    let mut cmd = Command::new("java");
    cmd.arg("-Xmx512m")
        .arg(format!("-Dlog4j.configurationFile={}", log4j.display()))
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .current_dir(dir);
    cmd
}

impl JavaProc {
    fn spawn(mut cmd: Command, tag: &'static str) -> JavaProc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Log::default());
        let streams: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stderr.take().unwrap()),
            Box::new(child.stdout.take().unwrap()),
        ];
        for stream in streams {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[{tag}] {line}");
                    log.lines.lock().unwrap().0.push(line);
                    log.changed.notify_all();
                }
                // Both streams must end before the log is complete.
                log.lines.lock().unwrap().1 += 1;
                log.changed.notify_all();
            });
        }
        JavaProc { child, log }
    }

    /// A Java Flume agent running `conf` (agent `name`), its files under `dir`.
    pub fn agent(lib: &Path, dir: &Path, name: &str, conf: &str) -> JavaProc {
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, conf).unwrap();
        let mut cmd = java(lib, dir);
        cmd.args(["org.apache.flume.node.Application", "-n", name, "-f"])
            .arg(&path);
        JavaProc::spawn(cmd, "java-agent")
    }

    /// Java Flume's own avro client (`flume-ng avro-client`).
    pub fn avro_client(lib: &Path, dir: &Path, args: &[&str]) -> JavaProc {
        let mut cmd = java(lib, dir);
        cmd.arg("org.apache.flume.client.avro.AvroCLIClient")
            .args(args);
        JavaProc::spawn(cmd, "java-client")
    }

    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut guard = self.log.lines.lock().unwrap();
        loop {
            if guard.0.iter().any(|l| l.contains(needle)) {
                return;
            }
            let now = Instant::now();
            if now >= deadline || guard.1 == 2 {
                panic!(
                    "Java log has no line containing {needle:?}:\n{}",
                    guard.0.join("\n")
                );
            }
            guard = self
                .log
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Sends `sig` (SIGTERM: Flume's shutdown hook stops the components, which then
    /// write their state, as a TAILDIR source its positions).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "Java process did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lines.lock().unwrap().0.join("\n")
    }
}

impl Drop for JavaProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Key and trust stores made by the JDK's keytool, as a Flume operator makes them: a
/// PKCS12 keystore with a self-signed RSA key for CN=localhost, and its certificate in
/// a PKCS12 and a JKS truststore. Made fresh per test; nothing is committed.
pub struct KeytoolStores {
    pub keystore: PathBuf,
    pub truststore_p12: PathBuf,
    pub truststore_jks: PathBuf,
}

pub const KEYSTORE_PASSWORD: &str = "keystore-pw";
pub const TRUSTSTORE_PASSWORD: &str = "truststore-pw";

fn keytool(dir: &Path, args: &[&str]) {
    let out = Command::new("keytool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("keytool runs (it comes with java)");
    assert!(
        out.status.success(),
        "keytool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn keytool_stores(dir: &Path) -> KeytoolStores {
    let ks = dir.join("server.p12");
    let cer = dir.join("server.cer");
    let ts_p12 = dir.join("trust.p12");
    let ts_jks = dir.join("trust.jks");
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    keytool(
        dir,
        &[
            "-genkeypair",
            "-alias",
            "server",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-storetype",
            "PKCS12",
            "-keystore",
            &p(&ks),
            "-storepass",
            KEYSTORE_PASSWORD,
            "-dname",
            "CN=localhost",
            "-validity",
            "2",
            "-noprompt",
        ],
    );
    keytool(
        dir,
        &[
            "-exportcert",
            "-alias",
            "server",
            "-keystore",
            &p(&ks),
            "-storepass",
            KEYSTORE_PASSWORD,
            "-file",
            &p(&cer),
        ],
    );
    for (ts, ty) in [(&ts_p12, "PKCS12"), (&ts_jks, "JKS")] {
        keytool(
            dir,
            &[
                "-importcert",
                "-alias",
                "server",
                "-file",
                &p(&cer),
                "-storetype",
                ty,
                "-keystore",
                &p(ts),
                "-storepass",
                TRUSTSTORE_PASSWORD,
                "-noprompt",
            ],
        );
    }
    KeytoolStores {
        keystore: ks,
        truststore_p12: ts_p12,
        truststore_jks: ts_jks,
    }
}
