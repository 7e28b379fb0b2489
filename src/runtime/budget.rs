//! A shard's budget for bytes buffered in unfinished requests: the partial frames (avro) or
//! partial lines (netcat) that connections hold while they wait for the rest.
//!
//! `max-frame-size` bounds one request, not their sum: without a budget, every extra
//! client holding an unfinished request of nearly that size added its size to the agent's
//! memory. Each connection of a source reports what it holds ([`Hold::set`], once per read,
//! never per event) into one account per shard and source (single-threaded: `Cell`s, no
//! atomics). Over the budget, the connections holding the most stop reading, so TCP pushes
//! back on their clients, until the account is below the budget again:
//!
//! - while the shard holds less than the budget, everybody reads;
//! - over it, a connection holding a large share (a sixteenth of the budget or more) waits,
//!   unless it is the only one holding anything (its request is bounded by the frame size
//!   limit, and nobody else's would finish first); a connection holding less (a normal
//!   request in progress) goes on, so small clients keep being served;
//! - over twice the budget, every connection that would grow waits, but one alone in
//!   holding anything.
//!
//! A connection that waits counts as silent for its source's idle timeout: a hog that never
//! finishes its request is closed in the end, and what it held is freed for the others.

use crate::channel::LocalNotify;
use std::cell::Cell;
use std::rc::Rc;

/// The account of one source on one shard.
pub struct Budget {
    limit: usize,
    used: Cell<usize>,
    /// Connections waiting for room (so a release wakes nobody when nobody waits).
    waiting: Cell<usize>,
    room: LocalNotify,
}

impl Budget {
    pub fn new(limit: usize) -> Rc<Budget> {
        Rc::new(Budget {
            limit: limit.max(1),
            used: Cell::new(0),
            waiting: Cell::new(0),
            room: LocalNotify::default(),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held over all the connections of the account.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// What a connection may hold and still read over the budget.
    fn small(&self) -> usize {
        self.limit / 16
    }
}

/// One connection's share of a [`Budget`]; gives it back when dropped.
pub struct Hold {
    budget: Rc<Budget>,
    held: usize,
}

impl Hold {
    pub fn new(budget: &Rc<Budget>) -> Hold {
        Hold {
            budget: budget.clone(),
            held: 0,
        }
    }

    pub fn held(&self) -> usize {
        self.held
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The connection now holds `n` bytes of unfinished requests.
    #[inline]
    pub fn set(&mut self, n: usize) {
        if n == self.held {
            return;
        }
        let b = &*self.budget;
        let used = b.used.get() - self.held + n;
        b.used.set(used);
        let shrank = n < self.held;
        self.held = n;
        if shrank && b.waiting.get() > 0 && used < 2 * b.limit {
            b.room.notify_all();
        }
    }

    /// Whether the connection may read more now (see the module's rules).
    #[inline]
    pub fn may_grow(&self) -> bool {
        let b = &*self.budget;
        let used = b.used.get();
        used < b.limit || self.held == used || (self.held < b.small() && used < 2 * b.limit)
    }

    /// Waits until the connection may read more. Cancel-safe.
    pub async fn room(&self) {
        let b = &*self.budget;
        b.waiting.set(b.waiting.get() + 1);
        let _waiting = Waiting(b);
        loop {
            let released = b.room.notified();
            if self.may_grow() {
                return;
            }
            released.await;
        }
    }
}

struct Waiting<'a>(&'a Budget);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.set(self.0.waiting.get() - 1);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_budget_the_big_holders_wait_and_small_ones_go_on() {
        let b = Budget::new(1600);
        let (mut hog1, mut hog2, mut small) = (Hold::new(&b), Hold::new(&b), Hold::new(&b));
        hog1.set(900);
        // Alone holding anything: it may finish its request, whatever its size.
        assert!(hog1.may_grow());
        hog2.set(800);
        assert_eq!(b.used(), 1700);
        assert!(!hog1.may_grow() && !hog2.may_grow());
        small.set(50);
        assert!(small.may_grow());
        // Beyond twice the budget nobody grows.
        hog1.set(2600);
        assert!(!small.may_grow() && !hog1.may_grow());
        drop(hog1);
        assert_eq!(b.used(), 850);
        assert!(hog2.may_grow() && small.may_grow());
    }

    #[test]
    fn a_release_wakes_a_waiting_connection() {
        tokio_uring::start(async {
            let b = Budget::new(100);
            let mut hog = Hold::new(&b);
            let mut other = Hold::new(&b);
            hog.set(80);
            other.set(40);
            let waiter = async {
                other.room().await;
                true
            };
            let release = async {
                tokio::task::yield_now().await;
                hog.set(10);
            };
            let (woke, ()) = tokio::join!(waiter, release);
            assert!(woke);
            assert_eq!(b.waiting.get(), 0);
        });
    }
}
