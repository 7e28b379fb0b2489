//! Adaptive busy-polling of a shard's event loop, as thread-per-core servers do (Seastar's
//! idle poll): for a short window after the last socket read, the shard keeps its io_uring
//! turning instead of sleeping in the kernel.
//!
//! Why: on a virtual machine, waking a sleeping thread costs an inter-processor interrupt and
//! a scheduler round trip on both ends, tens of microseconds each. A client with one batch in
//! flight pays that on every batch, and the agent pays it in CPU (half of its CPU time at one
//! connection × 100 events, by `perf`). Polling for a few tens of microseconds after each read
//! catches the next batch without either side sleeping.
//!
//! How: one spinner task per thread waits for activity (any socket read, reported through
//! [`activity`]), then submits a no-op to io_uring over and over. Each no-op completes at
//! once, so the runtime never blocks, yet every turn still submits queued operations and
//! reaps completions through the normal driver. Once no read has completed for the window,
//! the spinner parks again and the thread sleeps as usual: an idle agent uses no CPU.
//!
//! Connections that read their sockets with non-blocking calls (`direct_io`) wait for the
//! spinner's turns through [`poll_again`] instead of arming io_uring reads while it polls.
//!
//! Polling only pays for a wait of a few microseconds. A durable commit waits for an
//! `fdatasync` of a few hundred, and while every client of the thread waits for its answer
//! nothing else can arrive: the spinner then parks at once instead of polling out its
//! window, and the io_uring worker doing the sync has the core to itself. Clients are
//! [`Peer`]s, syncs in flight are [`Syncing`]; an answer sent starts the polling again,
//! since the next request follows within a round trip. At one connection × 100 events of
//! 100 B into the file channel, the shard thread's CPU in 3 s went from 1.24 s to 0.67 s
//! (see docs/architecture.md, "Polling").

use super::local::LocalNotify;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What this thread's spinner is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    /// There is none (never started, zero window, or its task has ended).
    #[default]
    Absent,
    /// It waits for a read to start polling.
    Parked,
    /// It is polling: its turns come without the thread sleeping.
    Polling,
}

#[derive(Default)]
struct State {
    reads: Cell<u64>,
    /// No-ops submitted so far (what the tests watch).
    turns: Cell<u64>,
    mode: Cell<Mode>,
    window: Cell<Duration>,
    /// Request/answer clients of this thread ([`Peer`]), and how many of them wait for
    /// their answer.
    peers: Cell<u32>,
    answering: Cell<u32>,
    /// Disk syncs in flight on this thread ([`Syncing`]).
    syncing: Cell<u32>,
    wake: LocalNotify,
    /// Notified after every turn, and when polling stops.
    turned: LocalNotify,
}

thread_local! {
    static STATE: Rc<State> = Rc::new(State::default());
}

/// Records that a socket read completed on this thread; wakes the spinner if it is parked.
#[inline]
pub fn activity() {
    STATE.with(|s| s.active());
}

impl State {
    fn active(&self) {
        self.reads.set(self.reads.get().wrapping_add(1));
        if self.mode.get() == Mode::Parked {
            // Polling from now: a reader asking at once waits for the first turn.
            self.mode.set(Mode::Polling);
            self.wake.notify_all();
        }
    }

    /// Nothing but a disk sync can come: every client waits for an answer that waits for
    /// a sync.
    fn waiting_for_disk(&self) -> bool {
        self.syncing.get() > 0 && self.peers.get() > 0 && self.answering.get() >= self.peers.get()
    }
}

/// A client of this thread that sends a request and waits for its answer (an Avro RPC
/// connection). Registered for its life; tells the spinner when it holds a request.
pub struct Peer {
    state: Rc<State>,
    answering: bool,
}

impl Peer {
    pub fn new() -> Peer {
        let state = STATE.with(Rc::clone);
        state.peers.set(state.peers.get() + 1);
        Peer {
            state,
            answering: false,
        }
    }

    /// The peer sent a request and waits for the answer: it sends nothing meanwhile.
    pub fn answering(&mut self) {
        if !self.answering {
            self.answering = true;
            self.state.answering.set(self.state.answering.get() + 1);
        }
    }

    /// The answer is sent: the peer's next request comes within a round trip, so polling
    /// starts (or goes on).
    pub fn answered(&mut self) {
        if self.answering {
            self.answering = false;
            self.state.answering.set(self.state.answering.get() - 1);
        }
        self.state.active();
    }
}

impl Default for Peer {
    fn default() -> Self {
        Peer::new()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.answering {
            self.state.answering.set(self.state.answering.get() - 1);
        }
        self.state.peers.set(self.state.peers.get() - 1);
    }
}

/// A disk sync in flight on this thread, for as long as it lives.
pub struct Syncing(Rc<State>);

/// Marks a disk sync in flight until the guard is dropped.
pub fn syncing() -> Syncing {
    let state = STATE.with(Rc::clone);
    state.syncing.set(state.syncing.get() + 1);
    Syncing(state)
}

impl Drop for Syncing {
    fn drop(&mut self) {
        self.0.syncing.set(self.0.syncing.get() - 1);
    }
}

/// For a task whose non-blocking read found nothing, with its own last data at `last_data`:
/// true after the spinner's next turn, to try again, while the thread polls and that data
/// is less than the window old; false at once or when polling stops, to arm an io_uring
/// read and sleep instead. A connection that went quiet stops costing a read per turn.
pub async fn poll_again(last_data: Instant) -> bool {
    let state = STATE.with(Rc::clone);
    if state.mode.get() != Mode::Polling || last_data.elapsed() >= state.window.get() {
        return false;
    }
    state.turned.notified().await;
    state.mode.get() == Mode::Polling
}

/// Marks the spinner gone however its task ends (its runtime drops it, or it is aborted),
/// so no reader waits for a turn that never comes.
struct Stopped(Rc<State>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.mode.set(Mode::Absent);
        self.0.turned.notify_all();
    }
}

/// The spinner task for this thread: polls for `window` after each read, then sleeps until
/// the next one (at once while it waits for the disk only, see the module's doc). Never
/// returns (it ends with the runtime); a zero window returns at once.
/// The spinner counts as parked from this call on, not from its first poll, so a read
/// that completes before the task first runs still starts it polling.
pub fn run(window: Duration) -> impl std::future::Future<Output = ()> {
    let state = STATE.with(Rc::clone);
    let stopped = (!window.is_zero()).then(|| {
        state.window.set(window);
        state.mode.set(Mode::Parked);
        Stopped(state.clone())
    });
    async move {
        let Some(_stopped) = stopped else {
            return;
        };
        loop {
            if state.mode.get() != Mode::Polling {
                state.mode.set(Mode::Parked);
                state.turned.notify_all();
                state.wake.notified().await;
            }
            let mut seen = state.reads.get();
            let mut quiet_since = Instant::now();
            loop {
                state.turns.set(state.turns.get() + 1);
                if tokio_uring::no_op().await.is_err() {
                    // The ring refused a no-op (it is being torn down): stop polling.
                    return;
                }
                state.turned.notify_all();
                let now = state.reads.get();
                if now != seen {
                    seen = now;
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= window || state.waiting_for_disk() {
                    break;
                }
            }
            state.mode.set(Mode::Parked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn until(what: &str, mut f: impl FnMut(&State) -> bool) {
        let state = STATE.with(Rc::clone);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f(&state) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[test]
    fn polls_after_a_read_then_sleeps_and_wakes_again() {
        crate::runtime::start_uring(async {
            tokio_uring::spawn(run(Duration::from_millis(20)));
            until("the spinner parks at start", |s| {
                s.mode.get() == Mode::Parked
            })
            .await;
            let idle_turns = STATE.with(|s| s.turns.get());
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert_eq!(
                STATE.with(|s| s.turns.get()),
                idle_turns,
                "no polling while idle"
            );

            activity();
            until("the spinner polls", |s| s.turns.get() > idle_turns + 10).await;
            let started = Instant::now();
            until("the spinner parks after the window", |s| {
                s.mode.get() == Mode::Parked
            })
            .await;
            assert!(started.elapsed() < Duration::from_secs(1));
            let parked_turns = STATE.with(|s| s.turns.get());

            // Reads keep it polling; it wakes from the park for the next one.
            activity();
            until("the spinner polls again", |s| s.turns.get() > parked_turns).await;
        });
    }

    #[test]
    fn readers_wait_for_turns_while_it_polls_and_are_released_when_it_stops() {
        crate::runtime::start_uring(async {
            assert!(!poll_again(Instant::now()).await, "no spinner: never wait");
            let spinner = tokio_uring::spawn(run(Duration::from_millis(20)));
            assert!(!poll_again(Instant::now()).await, "parked: never wait");
            activity();
            assert!(poll_again(Instant::now()).await, "a turn while polling");
            let stale = Instant::now() - Duration::from_millis(30);
            assert!(!poll_again(stale).await, "data older than the window");
            // With no more reads the spinner parks after the window, ending the wait.
            let mut turns = 0;
            while poll_again(Instant::now()).await {
                turns += 1;
            }
            assert!(turns > 0);
            assert!(STATE.with(|s| s.mode.get() == Mode::Parked));

            // A spinner that is aborted releases whoever waits for its turns.
            activity();
            let waiter = tokio_uring::spawn(async {
                let mut turns = 0u64;
                while poll_again(Instant::now()).await {
                    turns += 1;
                }
                turns
            });
            let at = STATE.with(|s| s.turns.get());
            until("the waiter sees turns", |s| s.turns.get() > at + 10).await;
            spinner.abort();
            let turns = tokio::time::timeout(Duration::from_secs(10), waiter)
                .await
                .expect("the waiter was released")
                .unwrap();
            assert!(turns > 0);
            assert!(!poll_again(Instant::now()).await);
        });
    }

    #[test]
    fn parks_at_once_while_every_client_waits_for_a_disk_sync_and_polls_when_answered() {
        crate::runtime::start_uring(async {
            // A window far longer than the test: only the disk rule can park it.
            tokio_uring::spawn(run(Duration::from_secs(60)));
            let mut a = Peer::new();
            let mut b = Peer::new();
            activity();
            let at = STATE.with(|s| s.turns.get());
            until("the spinner polls", |s| s.turns.get() > at + 10).await;

            // One client waits for a sync, the other may send: polling goes on.
            a.answering();
            let sync = syncing();
            let at = STATE.with(|s| s.turns.get());
            until("the spinner polls on", |s| s.turns.get() > at + 100).await;
            assert_eq!(STATE.with(|s| s.mode.get()), Mode::Polling);

            // Both wait for it: parked.
            b.answering();
            until("the spinner parks", |s| s.mode.get() == Mode::Parked).await;
            let parked = STATE.with(|s| s.turns.get());
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(STATE.with(|s| s.turns.get()), parked, "no polling");

            // The sync is done and one answer sent: polling for its next request.
            drop(sync);
            a.answered();
            until("the spinner polls again", |s| s.turns.get() > parked + 10).await;

            // Without a sync in flight, clients that wait keep it polling (for the
            // channel, a sink's answer, ...).
            a.answering();
            let at = STATE.with(|s| s.turns.get());
            until("the spinner polls on", |s| s.turns.get() > at + 100).await;
            assert_eq!(STATE.with(|s| s.mode.get()), Mode::Polling);

            // A client that goes away while waiting counts no more.
            let sync = syncing();
            until("the spinner parks", |s| s.mode.get() == Mode::Parked).await;
            drop(b);
            activity();
            let at = STATE.with(|s| s.turns.get());
            until("the spinner parks", |s| {
                s.mode.get() == Mode::Parked && s.turns.get() > at
            })
            .await;
            drop(a);
            activity();
            let at = STATE.with(|s| s.turns.get());
            until("no client: the spinner polls", |s| s.turns.get() > at + 100).await;
            assert_eq!(STATE.with(|s| (s.peers.get(), s.answering.get())), (0, 0));
            drop(sync);
        });
    }

    #[test]
    fn a_zero_window_never_polls() {
        crate::runtime::start_uring(async {
            tokio_uring::spawn(run(Duration::ZERO)).await.unwrap();
            activity();
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(STATE.with(|s| s.turns.get()), 0);
        });
    }
}
