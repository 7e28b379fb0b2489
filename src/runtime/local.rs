//! The shard-local synchronisation primitives: a shard runs all its tasks on one thread, so
//! these use `Cell`/`RefCell`/`Rc` instead of atomics and locks, and are `!Send`.
//!
//! - [`LocalNotify`]: a wake-up signal, the shard-local stand-in for `tokio::sync::Notify`
//!   without its internal mutex (nothing on the event path takes a lock).
//! - [`Stop`]: a stop signal, set once and awaited by any number of tasks on the shard.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Wakes the tasks waiting on it ([`notified`](LocalNotify::notified)); a wake-up given
/// when nobody waits is not kept.
#[derive(Default)]
pub struct LocalNotify {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl LocalNotify {
    /// Wakes every task currently waiting.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves at the next `notify_all` after this call.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            generation: self.generation.get(),
        }
    }
}

/// The future of [`LocalNotify::notified`].
pub struct Notified<'a> {
    notify: &'a LocalNotify,
    generation: u64,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A shard-local stop signal: set once, awaited by any number of tasks on the shard.
#[derive(Clone, Default)]
pub struct Stop(Rc<Inner>);

#[derive(Default)]
struct Inner {
    stopped: Cell<bool>,
    notify: LocalNotify,
}

impl Stop {
    pub fn new() -> Self {
        Stop::default()
    }

    pub fn trigger(&self) {
        if !self.0.stopped.replace(true) {
            self.0.notify.notify_all();
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.get()
    }

    /// Resolves once `trigger` has been called (at once if it already was).
    pub async fn wait(&self) {
        let woken = self.0.notify.notified();
        if !self.is_stopped() {
            woken.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notified_resolves_only_after_a_later_notify() {
        tokio_uring::start(async {
            let n = Rc::new(LocalNotify::default());
            n.notify_all(); // nobody waits: not kept
            let woken = Rc::new(Cell::new(false));
            let task = tokio_uring::spawn({
                let (n, woken) = (n.clone(), woken.clone());
                async move {
                    n.notified().await;
                    woken.set(true);
                }
            });
            tokio::task::yield_now().await;
            assert!(!woken.get());
            n.notify_all();
            task.await.unwrap();
            assert!(woken.get());
        });
    }

    #[test]
    fn stop_wakes_every_waiter_and_stays_set() {
        tokio_uring::start(async {
            let stop = Stop::new();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let s = stop.clone();
                    tokio_uring::spawn(async move { s.wait().await })
                })
                .collect();
            tokio::task::yield_now().await;
            assert!(!stop.is_stopped());
            stop.trigger();
            for w in waiters {
                w.await.unwrap();
            }
            assert!(stop.is_stopped());
            stop.wait().await; // at once once stopped
        });
    }
}
