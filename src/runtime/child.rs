//! A child process run from a shard (the exec source: a shell command whose stdout lines
//! become events): spawned with its output piped, read on the shard's io_uring loop, and
//! always reaped.
//!
//! - [`spawn`] starts the command with stdin from `/dev/null`, stdout piped and stderr as
//!   asked ([`Stderr`]), as the leader of a new process group, so that stopping it also
//!   stops what a shell started for it (`tail -F f | grep x`).
//! - [`Pipe::read`] reads a chunk of stdout (or stderr) with an io_uring read: the shard
//!   goes on with its other tasks while the child is silent.
//! - [`Child::wait`] waits for the exit without blocking the loop, checking with
//!   `try_wait` at growing intervals (1 ms up to `WAIT_POLL_MAX`): a child that closed
//!   its stdout but runs on costs a timer wake-up now and then, nothing more.
//! - [`Child::terminate`] sends SIGTERM to the group, waits up to a grace period, then
//!   sends SIGKILL, and reaps. [`Child::wait_or_terminate`] waits for the exit or, once the
//!   shard's [`Stop`] fires, terminates.
//! - Dropping a `Child` that was not reaped kills its group with SIGKILL and reaps it
//!   (a short blocking wait): no zombie is left either way.
//!
//! Only the child itself is reaped here; what it started and left behind is reparented
//! (to init or a subreaper), which reaps it.

use super::local::Stop;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// The longest interval between two `try_wait` checks while waiting for an exit.
pub const WAIT_POLL_MAX: Duration = Duration::from_millis(20);

/// Where the child's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// The agent's stderr.
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe: [`Child::stderr`].
    Pipe,
}

/// The read end of one of the child's output pipes, read through io_uring.
pub struct Pipe(tokio_uring::fs::File);

impl Pipe {
    fn new(fd: impl Into<OwnedFd>) -> Pipe {
        Pipe(tokio_uring::fs::File::from_std(std::fs::File::from(
            fd.into(),
        )))
    }

    /// Reads what the child has written, up to `buf`'s capacity, into `buf` (replacing
    /// its content): `Ok(0)` once every writer has closed the pipe. Waits without blocking
    /// the shard. `buf` is given back either way, as with tokio-uring's reads.
    pub async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        // A pipe has no offset: the kernel ignores this one.
        self.0.read_at(buf, 0).await
    }
}

/// A running (or exited, not yet reaped) child; see the module comment.
pub struct Child {
    child: std::process::Child,
    pub stdout: Option<Pipe>,
    pub stderr: Option<Pipe>,
}

/// Starts `cmd` with stdin from `/dev/null`, stdout piped and stderr as `stderr` says,
/// as the leader of a new process group. Call it on the shard that reads the pipes.
pub fn spawn(cmd: &mut Command, stderr: Stderr) -> io::Result<Child> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(match stderr {
            Stderr::Inherit => Stdio::inherit(),
            Stderr::Null => Stdio::null(),
            Stderr::Pipe => Stdio::piped(),
        })
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        io::Error::new(e.kind(), format!("cannot run {:?}: {e}", cmd.get_program()))
    })?;
    let stdout = child.stdout.take().map(Pipe::new);
    let stderr = child.stderr.take().map(Pipe::new);
    Ok(Child {
        child,
        stdout,
        stderr,
    })
}

impl Child {
    /// The child's process id (also its process group's).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the child has exited (reaping it), else `None`; never blocks.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits for the child to exit and reaps it, without blocking the shard. Cancel-safe:
    /// dropped before the exit, it leaves the child as it was.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(WAIT_POLL_MAX);
        }
    }

    /// Stops the child: SIGTERM to its process group, up to `grace` for it to exit, then
    /// SIGKILL; returns its exit status once reaped (at once if it had already exited).
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.signal_group(libc::SIGTERM)?;
        if let Ok(status) = tokio::time::timeout(grace, self.wait()).await {
            return status;
        }
        self.signal_group(libc::SIGKILL)?;
        self.wait().await
    }

    /// Waits for the child to exit or, once `stop` fires, [`terminate`](Child::terminate)s
    /// it with `grace`; either way returns its exit status once reaped.
    pub async fn wait_or_terminate(
        &mut self,
        stop: &Stop,
        grace: Duration,
    ) -> io::Result<ExitStatus> {
        tokio::select! {
            status = self.wait() => return status,
            () = stop.wait() => {}
        }
        self.terminate(grace).await
    }

    /// Sends `sig` to the child's process group. The child is not reaped yet, so its id
    /// still names the group (a zombie leader keeps it), never another process's.
    fn signal_group(&self, sig: libc::c_int) -> io::Result<()> {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory effects.
        if unsafe { libc::kill(-pgid, sig) } == 0 {
            return Ok(());
        }
        match io::Error::last_os_error() {
            // Nothing left in the group to signal.
            e if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            e => Err(io::Error::new(
                e.kind(),
                format!("cannot signal process group {pgid}: {e}"),
            )),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.signal_group(libc::SIGKILL);
            // A killed process exits at once: this blocks only for that.
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::os::unix::process::ExitStatusExt;
    use std::rc::Rc;
    use std::time::Instant;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    async fn read_all(pipe: &Pipe) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = Vec::with_capacity(4096);
        loop {
            let (r, b) = pipe.read(buf).await;
            let n = r.unwrap();
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&b[..n]);
            buf = b;
        }
    }

    /// Reads until `want` has been seen (the child is ready for the test's next step).
    async fn read_until(pipe: &Pipe, want: &[u8]) {
        let mut all = Vec::new();
        while !all.windows(want.len()).any(|w| w == want) {
            let (r, b) = pipe.read(Vec::with_capacity(256)).await;
            assert!(r.unwrap() > 0, "EOF before {want:?}: {all:?}");
            all.extend_from_slice(&b);
        }
    }

    /// Whether `pid` is gone entirely (reaped: `kill(pid, 0)` succeeds on a zombie).
    fn gone(pid: u32) -> bool {
        // SAFETY: signal 0 only checks the process exists.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    #[test]
    fn stdout_bytes_then_exit_0() {
        tokio_uring::start(async {
            let mut c = spawn(&mut sh("printf 'a\\nb\\n'"), Stderr::Inherit).unwrap();
            let out = read_all(c.stdout.as_ref().unwrap()).await;
            assert_eq!(out, b"a\nb\n");
            let status = c.wait().await.unwrap();
            assert_eq!(status.code(), Some(0));
            assert!(gone(c.id()));
        });
    }

    #[test]
    fn exit_status_is_returned() {
        tokio_uring::start(async {
            let mut c = spawn(&mut sh("exit 3"), Stderr::Null).unwrap();
            assert_eq!(read_all(c.stdout.as_ref().unwrap()).await, b"");
            assert_eq!(c.wait().await.unwrap().code(), Some(3));
        });
    }

    #[test]
    fn stderr_has_its_own_pipe() {
        tokio_uring::start(async {
            let mut c = spawn(&mut sh("echo out; echo err >&2"), Stderr::Pipe).unwrap();
            assert_eq!(read_all(c.stderr.as_ref().unwrap()).await, b"err\n");
            assert_eq!(read_all(c.stdout.as_ref().unwrap()).await, b"out\n");
            assert!(c.wait().await.unwrap().success());
        });
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let e = spawn(&mut Command::new("/no/such/program"), Stderr::Null)
            .err()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/no/such/program"), "{e}");
    }

    #[test]
    fn stop_terminates_a_running_child_within_the_grace_period() {
        tokio_uring::start(async {
            let mut sleep = Command::new("sleep");
            let mut c = spawn(sleep.arg("30"), Stderr::Null).unwrap();
            let stop = Stop::new();
            let stopper = tokio_uring::spawn({
                let stop = stop.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    stop.trigger();
                }
            });
            let grace = Duration::from_secs(10);
            let start = Instant::now();
            let status = c.wait_or_terminate(&stop, grace).await.unwrap();
            assert!(start.elapsed() < grace, "{:?}", start.elapsed());
            assert_eq!(status.signal(), Some(libc::SIGTERM));
            assert!(gone(c.id()), "not reaped");
            stopper.await.unwrap();
        });
    }

    #[test]
    fn a_child_ignoring_sigterm_gets_sigkill_after_the_grace_period() {
        tokio_uring::start(async {
            // SIGTERM ignored by the shell and by the `sleep` it execs.
            let mut c = spawn(
                &mut sh("trap '' TERM; echo ready; exec sleep 30"),
                Stderr::Null,
            )
            .unwrap();
            read_until(c.stdout.as_ref().unwrap(), b"ready\n").await;
            let grace = Duration::from_millis(200);
            let start = Instant::now();
            let status = c.terminate(grace).await.unwrap();
            assert!(start.elapsed() >= grace, "{:?}", start.elapsed());
            assert!(start.elapsed() < Duration::from_secs(10));
            assert_eq!(status.signal(), Some(libc::SIGKILL));
            assert!(gone(c.id()), "not reaped");
        });
    }

    #[test]
    fn terminate_stops_the_whole_process_group() {
        tokio_uring::start(async {
            // A pipeline: the shell waits for two children, which hold stdout open.
            let mut c = spawn(
                &mut sh("sleep 30 | (echo ready; sleep 31); echo never"),
                Stderr::Null,
            )
            .unwrap();
            read_until(c.stdout.as_ref().unwrap(), b"ready\n").await;
            let stop = Stop::new();
            stop.trigger();
            let status = c
                .wait_or_terminate(&stop, Duration::from_secs(10))
                .await
                .unwrap();
            assert!(!status.success());
            // The pipeline's sleeps got SIGTERM too, so the pipe reaches EOF.
            let out = tokio::time::timeout(
                Duration::from_secs(10),
                read_all(c.stdout.as_ref().unwrap()),
            )
            .await
            .expect("the group's other processes still hold stdout");
            assert_eq!(out, b"");
        });
    }

    #[test]
    fn a_child_that_closed_stdout_does_not_block_the_loop() {
        tokio_uring::start(async {
            let mut c = spawn(&mut sh("exec >&-; sleep 30"), Stderr::Null).unwrap();
            // EOF at once: the child closed its stdout but runs on.
            assert_eq!(read_all(c.stdout.as_ref().unwrap()).await, b"");
            let stop = Stop::new();
            let ticks = Rc::new(Cell::new(0u32));
            let other = tokio_uring::spawn({
                let (stop, ticks) = (stop.clone(), ticks.clone());
                async move {
                    // Another task on the same shard: it keeps running while the wait
                    // for the exit goes on, then stops the child.
                    while ticks.get() < 20 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        ticks.set(ticks.get() + 1);
                    }
                    stop.trigger();
                }
            });
            let status = c
                .wait_or_terminate(&stop, Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(ticks.get(), 20);
            assert_eq!(status.signal(), Some(libc::SIGTERM));
            assert!(gone(c.id()), "not reaped");
            other.await.unwrap();
        });
    }

    #[test]
    fn a_pending_read_of_a_silent_child_does_not_block_the_loop() {
        tokio_uring::start(async {
            let mut sleep = Command::new("sleep");
            let mut c = spawn(sleep.arg("30"), Stderr::Null).unwrap();
            let stdout = Rc::new(c.stdout.take().unwrap());
            let reader = tokio_uring::spawn({
                let stdout = stdout.clone();
                async move { read_all(&stdout).await }
            });
            // The read is in flight; timers on the same shard go on firing.
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(!reader.is_finished());
            let status = c.terminate(Duration::from_secs(10)).await.unwrap();
            assert_eq!(status.signal(), Some(libc::SIGTERM));
            assert_eq!(reader.await.unwrap(), b"", "EOF once the child is gone");
        });
    }

    #[test]
    fn dropping_a_running_child_kills_and_reaps_it() {
        tokio_uring::start(async {
            let mut sleep = Command::new("sleep");
            let c = spawn(sleep.arg("30"), Stderr::Null).unwrap();
            let pid = c.id();
            assert!(!gone(pid));
            drop(c);
            assert!(gone(pid), "left a zombie or a running child");
        });
    }
}
