//! The exec source (`exec`, `org.apache.flume.source.ExecSource`): runs a command on one
//! shard and turns each line of its stdout into an event, `batchSize` lines per
//! transaction, or fewer once `batchTimeout` has passed since the last put.
//!
//! As in Flume, lines end at `\n`, `\r` or `\r\n` (Java's `readLine`), a last line without
//! an ending still counts, the command is split on whitespace (or given whole to `shell`),
//! and an exited command is started again after `restartThrottle` only with `restart`.
//! Unlike Flume, a batch the channels refuse is held and retried, and stdout is not read
//! meanwhile: the pipe fills and the command blocks, instead of the batch being dropped.
//! The command still cannot know what was delivered; what it wrote just before a crash or
//! a stop is lost, which is why Flume points to TAILDIR for files (see docs/sources.md).

use super::{Bound, Plan, Shard, SourceCtx, SourceType};
use crate::config::keys::{KeyKind, KeySpec, Keys, TypeInfo};
use crate::config::{Component, ConfigError};
use crate::event::Event;
use crate::runtime::child::{self, Child, Pipe, Stderr};
use bytes::Bytes;
use lines::Lines;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

pub mod lines;

const KEYS: &[KeySpec] = &[
    KeySpec::required("command", KeyKind::Str, "The command to run"),
    KeySpec::new(
        "shell",
        KeyKind::Str,
        None,
        "A shell to run the command with, e.g. /bin/sh -c (for pipes, globs, variables)",
    ),
    KeySpec::new(
        "restart",
        KeyKind::Bool,
        Some("false"),
        "Start the command again when it exits",
    ),
    KeySpec::new(
        "restartThrottle",
        KeyKind::NON_NEGATIVE,
        Some("10000"),
        "Milliseconds to wait before starting it again",
    ),
    KeySpec::new(
        "logStdErr",
        KeyKind::Bool,
        Some("false"),
        "Log the command's stderr lines (else they are discarded)",
    ),
    KeySpec::new(
        "batchSize",
        KeyKind::POSITIVE,
        Some("20"),
        "Lines per transaction",
    ),
    KeySpec::new(
        "batchTimeout",
        KeyKind::POSITIVE,
        Some("3000"),
        "Milliseconds after the last put before a smaller batch is put",
    ),
    KeySpec::new(
        "charset",
        KeyKind::Str,
        Some("UTF-8"),
        "Character set of the output; an ASCII-compatible one (bytes pass through unchanged)",
    ),
    KeySpec::new(
        "max-line-length",
        KeyKind::int(1, 1 << 30),
        Some("1048576"),
        "flume-fast: bytes of the longest event; a longer line is cut into events of this size (Flume buffers any line whole)",
    ),
];

pub const TYPE: TypeInfo = TypeInfo {
    aliases: &["exec"],
    class: "org.apache.flume.source.ExecSource",
    doc: "Runs a command and turns each line of its standard output into an event.",
    keys: KEYS,
};

/// How long a stopped command has after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

const READ_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// The program and its arguments.
    pub argv: Vec<String>,
    pub restart: bool,
    pub restart_throttle: Duration,
    pub log_stderr: bool,
    pub batch_size: usize,
    pub batch_timeout: Duration,
    pub max_line: usize,
}

impl Component for ExecConfig {
    const TYPE: TypeInfo = TYPE;

    fn from_keys(k: &mut Keys) -> Result<Self, ConfigError> {
        let command = k.str("command")?;
        if command.trim().is_empty() {
            return Err(k.invalid("command", "the command is empty"));
        }
        // Flume splits on whitespace, with no quoting; a shell gets the command whole.
        let argv: Vec<String> = match k.opt_str("shell")? {
            Some(shell) if !shell.trim().is_empty() => shell
                .split_whitespace()
                .map(str::to_string)
                .chain([command])
                .collect(),
            _ => command.split_whitespace().map(str::to_string).collect(),
        };
        let charset = k.str("charset")?;
        match encoding_rs::Encoding::for_label(charset.trim().as_bytes()) {
            Some(e) if e.is_ascii_compatible() => {}
            Some(_) => {
                return Err(k.invalid(
                    "charset",
                    format!("charset {charset} is not ASCII-compatible: its line endings are not the bytes \\n and \\r, which flume-fast splits on"),
                ))
            }
            None => return Err(k.invalid("charset", format!("unknown charset {charset}"))),
        }
        Ok(ExecConfig {
            argv,
            restart: k.bool("restart")?,
            restart_throttle: k.millis("restartThrottle")?,
            log_stderr: k.bool("logStdErr")?,
            batch_size: k.usize("batchSize")?,
            batch_timeout: k.millis("batchTimeout")?,
            max_line: k.usize("max-line-length")?,
        })
    }
}

impl SourceType for ExecConfig {
    fn plan(&self) -> std::io::Result<Plan> {
        Ok(Plan::HOME_SHARD)
    }
    fn bind(&self, _: Shard) -> std::io::Result<Bound> {
        Ok(Bound::new(self.clone(), run))
    }
}

async fn run(cfg: ExecConfig, ctx: Rc<SourceCtx>) {
    let shown = cfg.argv.join(" ");
    loop {
        match run_once(&cfg, &ctx).await {
            Ok(Some(status)) => {
                tracing::info!(source = %ctx.name, "command [{shown}] exited with {status}")
            }
            Ok(None) => {}
            Err(e) => tracing::error!(source = %ctx.name, "command [{shown}]: {e}"),
        }
        if ctx.stop.is_stopped() || !cfg.restart {
            return;
        }
        tracing::info!(source = %ctx.name, "starting command [{shown}] again in {:?} (restart)", cfg.restart_throttle);
        tokio::select! {
            _ = tokio::time::sleep(cfg.restart_throttle) => {}
            _ = ctx.stop.wait() => return,
        }
    }
}

/// Runs the command once, until it exits (`Some(status)`) or the source stops (`None`:
/// the command was terminated, and what it wrote that was not yet read is lost).
async fn run_once(
    cfg: &ExecConfig,
    ctx: &SourceCtx,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let stderr = if cfg.log_stderr {
        Stderr::Pipe
    } else {
        Stderr::Null
    };
    let mut child = child::spawn(Command::new(&cfg.argv[0]).args(&cfg.argv[1..]), stderr)?;
    let stdout = child.stdout.take().expect("stdout is piped");
    if let Some(pipe) = child.stderr.take() {
        tokio_uring::spawn(log_stderr(pipe, ctx.name.clone()));
    }
    let stopped = read_stdout(&stdout, cfg, ctx).await;
    drop(stdout);
    if stopped {
        child.terminate(STOP_GRACE).await?;
        return Ok(None);
    }
    wait(&mut child, ctx).await
}

/// After stdout's end: the exit status, or `None` when the source stops first.
async fn wait(
    child: &mut Child,
    ctx: &SourceCtx,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let status = child.wait_or_terminate(&ctx.stop, STOP_GRACE).await?;
    Ok((!ctx.stop.is_stopped()).then_some(status))
}

/// Reads stdout to its end, delivering lines in batches; returns whether the source
/// stopped first. The read in flight is never dropped while the command runs (a dropped
/// io_uring read would lose what it read): timeouts flush the batch beside it.
async fn read_stdout(stdout: &Pipe, cfg: &ExecConfig, ctx: &SourceCtx) -> bool {
    let mut lines = Lines::new(cfg.max_line);
    let mut pending: Vec<Event> = Vec::new();
    let mut last_put = Instant::now();
    let read = stdout.read(Vec::with_capacity(READ_SIZE));
    tokio::pin!(read);
    loop {
        let flush_at = last_put + cfg.batch_timeout;
        tokio::select! {
            (result, mut buf) = &mut read => {
                let n = match result {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(source = %ctx.name, "reading the command's output: {e}");
                        0
                    }
                };
                if n == 0 {
                    pending.extend(lines.finish());
                    return !put(&mut pending, ctx).await;
                }
                buf.truncate(n);
                pending.extend(lines.split(Bytes::from(buf)));
                while pending.len() >= cfg.batch_size {
                    let rest = pending.split_off(cfg.batch_size);
                    if !put(&mut pending, ctx).await {
                        return true;
                    }
                    pending = rest;
                    last_put = Instant::now();
                }
                read.set(stdout.read(Vec::with_capacity(READ_SIZE)));
            }
            _ = tokio::time::sleep_until(flush_at), if !pending.is_empty() => {
                if !put(&mut pending, ctx).await {
                    return true;
                }
                last_put = Instant::now();
            }
            _ = tokio::time::sleep_until(flush_at), if pending.is_empty() => {
                // Nothing to flush: the next batch's timeout counts from now, as Flume's
                // timer checks the time since the last put.
                last_put = Instant::now();
            }
            _ = ctx.stop.wait() => {
                put(&mut pending, ctx).await;
                return true;
            }
        }
    }
}

/// Delivers `pending` whole (waiting out full channels); false when the source stopped
/// first.
async fn put(pending: &mut Vec<Event>, ctx: &SourceCtx) -> bool {
    if pending.is_empty() {
        return !ctx.stop.is_stopped();
    }
    let n = pending.len();
    let delivered = ctx
        .deliver_all(std::mem::take(pending), &"the command's output")
        .await;
    delivered == n
}

async fn log_stderr(pipe: Pipe, source: String) {
    let mut lines = Lines::new(64 * 1024);
    let mut count = 0u64;
    let mut buf = Vec::with_capacity(READ_SIZE);
    loop {
        let (result, mut b) = pipe.read(buf).await;
        let n = result.unwrap_or(0);
        let got = if n == 0 {
            lines.finish()
        } else {
            b.truncate(n);
            lines.split(Bytes::from(b))
        };
        for e in got {
            count += 1;
            // Flume's own wording, which log searches may look for.
            tracing::info!(source = %source, "StderrLogger[{count}] = '{}'", String::from_utf8_lossy(&e.body));
        }
        if n == 0 {
            return;
        }
        buf = Vec::with_capacity(READ_SIZE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_split_on_whitespace_or_given_whole_to_the_shell() {
        let build = |pairs: &[(&str, &str)]| {
            crate::config::keys::from_pairs::<ExecConfig>("a1.sources.r1", pairs)
                .map_err(|e| e.to_string())
        };
        let plain = build(&[("command", " tail  -F /var/log/x ")]).unwrap();
        assert_eq!(plain.argv, ["tail", "-F", "/var/log/x"]);
        let shell = build(&[("command", "tail -F a | grep b"), ("shell", "/bin/sh -c")]).unwrap();
        assert_eq!(shell.argv, ["/bin/sh", "-c", "tail -F a | grep b"]);
        let err = build(&[("command", "x"), ("charset", "UTF-16")]).unwrap_err();
        assert!(
            err.contains("a.conf:11") && err.contains("not ASCII-compatible"),
            "{err}"
        );
        let err = build(&[("command", "x"), ("charset", "klingon")]).unwrap_err();
        assert!(err.contains("unknown charset klingon"), "{err}");
    }
}
