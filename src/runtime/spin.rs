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

use crate::channel::notify::LocalNotify;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    reads: Cell<u64>,
    /// No-ops submitted so far (what the tests watch).
    turns: Cell<u64>,
    parked: Cell<bool>,
    wake: LocalNotify,
}

thread_local! {
    static STATE: Rc<State> = Rc::new(State::default());
}

/// Records that a socket read completed on this thread; wakes the spinner if it is parked.
#[inline]
pub fn activity() {
    STATE.with(|s| {
        s.reads.set(s.reads.get().wrapping_add(1));
        if s.parked.get() {
            s.parked.set(false);
            s.wake.notify_all();
        }
    });
}

/// The spinner task for this thread: polls for `window` after each read, then sleeps until
/// the next one. Never returns (it ends with the runtime); a zero window returns at once.
pub async fn run(window: Duration) {
    if window.is_zero() {
        return;
    }
    let state = STATE.with(Rc::clone);
    loop {
        state.parked.set(true);
        state.wake.notified().await;
        let mut seen = state.reads.get();
        let mut quiet_since = Instant::now();
        loop {
            state.turns.set(state.turns.get() + 1);
            if tokio_uring::no_op().await.is_err() {
                // The ring refused a no-op (it is being torn down): stop polling.
                return;
            }
            let now = state.reads.get();
            if now != seen {
                seen = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= window {
                break;
            }
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
            until("the spinner parks at start", |s| s.parked.get()).await;
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
            until("the spinner parks after the window", |s| s.parked.get()).await;
            assert!(started.elapsed() < Duration::from_secs(1));
            let parked_turns = STATE.with(|s| s.turns.get());

            // Reads keep it polling; it wakes from the park for the next one.
            activity();
            until("the spinner polls again", |s| s.turns.get() > parked_turns).await;
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
