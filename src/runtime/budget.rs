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
//! - over it, a connection holding a large share (a sixteenth of the budget or more) waits;
//!   one holding less (a normal request in progress) goes on, so small clients keep being
//!   served;
//! - over twice the budget, every connection that would grow waits;
//! - but one alone in holding anything goes on: its request is bounded by the frame size
//!   limit, and nobody else's would finish first. It is then the one "ahead" (below), and
//!   what it holds does not count against the small requests' twice-the-budget;
//! - and when every connection holding anything waits, none would ever finish and release
//!   what it holds (large requests that together exceed the budget): one of them goes ahead
//!   until its request is complete or it holds the budget's worth itself, whatever the
//!   others hold (what it holds does not count against the small requests either). So any
//!   number of requests up to the budget's size, arriving together, are all served, while
//!   a shard holds at most about three budgets whatever its clients do (one request
//!   alone excepted, up to the frame size limit). Requests bigger than the budget in progress
//!   together wait for each other until the idle timeout closes one: the budget is meant
//!   to be above the largest request clients send.
//!
//! A connection that waits counts as silent for its source's idle timeout: a hog that never
//! finishes its request is closed in the end, and what it held is freed for the others.

use super::local::LocalNotify;
use std::cell::Cell;
use std::rc::Rc;

/// The account of one source on one shard.
pub struct Budget {
    limit: usize,
    used: Cell<usize>,
    /// Connections waiting for room (so a release wakes nobody when nobody waits), and the
    /// bytes they hold.
    waiting: Cell<usize>,
    waiting_held: Cell<usize>,
    /// The connection let ahead (0: none), what it holds, and the next id to give.
    ahead: Cell<u64>,
    ahead_held: Cell<usize>,
    next_id: Cell<u64>,
    room: LocalNotify,
}

impl Budget {
    pub fn new(limit: usize) -> Rc<Budget> {
        Rc::new(Budget {
            limit: limit.max(16),
            used: Cell::new(0),
            waiting: Cell::new(0),
            waiting_held: Cell::new(0),
            ahead: Cell::new(0),
            ahead_held: Cell::new(0),
            next_id: Cell::new(1),
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
    id: u64,
    held: usize,
}

impl Hold {
    pub fn new(budget: &Rc<Budget>) -> Hold {
        let id = budget.next_id.get();
        budget.next_id.set(id + 1);
        Hold {
            budget: budget.clone(),
            id,
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
        b.used.set(b.used.get() - self.held + n);
        let shrank = n < self.held;
        self.held = n;
        let ahead = b.ahead.get() == self.id;
        if ahead {
            b.ahead_held.set(n);
        }
        if shrank {
            // A request was completed (or the connection ended): a connection let ahead has
            // had its turn.
            if ahead {
                b.ahead.set(0);
                b.ahead_held.set(0);
            }
            // Waiters check their own rule again; releases with waiters are rare.
            if b.waiting.get() > 0 {
                b.room.notify_all();
            }
        }
    }

    /// Whether the connection may read more now (see the module's rules).
    #[inline]
    pub fn may_grow(&self) -> bool {
        let b = &*self.budget;
        let used = b.used.get();
        if used < b.limit {
            return true;
        }
        if self.held == used {
            if b.ahead.get() == 0 {
                self.go_ahead();
            }
            return true;
        }
        (b.ahead.get() == self.id && self.held < b.limit)
            || (self.held < b.small() && used - b.ahead_held.get() < 2 * b.limit)
    }

    fn go_ahead(&self) {
        self.budget.ahead.set(self.id);
        self.budget.ahead_held.set(self.held);
    }

    /// Waits until the connection may read more. Cancel-safe.
    pub async fn room(&self) {
        let b = &*self.budget;
        let _waiting = Waiting::new(b, self.held);
        loop {
            let released = b.room.notified();
            if self.may_grow() {
                return;
            }
            // Everybody holding anything waits: nobody would release. One goes ahead.
            if b.ahead.get() == 0 && b.waiting_held.get() == b.used.get() {
                self.go_ahead();
                return;
            }
            released.await;
        }
    }
}

/// Counts a connection among the waiters while it waits.
struct Waiting<'a>(&'a Budget, usize);

impl<'a> Waiting<'a> {
    fn new(b: &'a Budget, held: usize) -> Self {
        b.waiting.set(b.waiting.get() + 1);
        b.waiting_held.set(b.waiting_held.get() + held);
        Waiting(b, held)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.set(self.0.waiting.get() - 1);
        self.0.waiting_held.set(self.0.waiting_held.get() - self.1);
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
    fn one_alone_goes_on_past_any_limit_without_stopping_small_requests() {
        let b = Budget::new(1600);
        let mut big = Hold::new(&b);
        big.set(4000);
        assert!(big.may_grow());
        big.set(5000);
        let mut small = Hold::new(&b);
        small.set(50);
        // Its 5000 bytes do not count against the small requests' 3200.
        assert!(small.may_grow());
        assert!(!big.may_grow(), "no longer alone");
        drop(small);
        assert!(big.may_grow(), "alone again");
        big.set(0);
        assert_eq!((b.ahead.get(), b.ahead_held.get()), (0, 0));
    }

    #[test]
    fn a_release_wakes_a_waiting_connection() {
        tokio_uring::start(async {
            let b = Budget::new(100);
            let mut hog = Hold::new(&b);
            let mut other = Hold::new(&b);
            hog.set(80);
            other.set(40);
            // `hog` does not wait, so nobody goes ahead: `other` waits for a release.
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
            assert_eq!((b.waiting.get(), b.waiting_held.get()), (0, 0));
        });
    }

    /// Large requests that together exceed the budget would wait for each other for ever:
    /// one goes ahead up to the budget's size, whatever the sum, and its turn ends with its
    /// request; small requests do not count what it holds against their limit.
    #[test]
    fn when_every_holder_waits_one_goes_ahead_until_its_request_is_done() {
        tokio_uring::start(async {
            let b = Budget::new(3200);
            let mut holds: Vec<Hold> = (0..3).map(|_| Hold::new(&b)).collect();
            for h in &mut holds {
                h.set(1100);
            }
            assert!(holds.iter().all(|h| !h.may_grow()));
            let (a, rest) = holds.split_at_mut(1);
            let (h1, h2) = rest.split_at_mut(1);
            let first = async {
                a[0].room().await;
                0
            };
            let second = async {
                h1[0].room().await;
                1
            };
            let third = async {
                h2[0].room().await;
                2
            };
            // The last to wait sees everybody waiting and goes ahead; the others still wait.
            let went = tokio::select! {
                i = first => i,
                i = second => i,
                i = third => i,
            };
            assert_eq!(b.ahead.get(), holds[went].id);
            assert!(holds[went].may_grow());
            holds[went].set(3000);
            assert!(holds[went].may_grow(), "ahead whatever the others hold");
            holds[went].set(3300);
            assert!(
                !holds[went].may_grow(),
                "ahead up to the budget's size only"
            );
            let mut small = Hold::new(&b);
            small.set(100);
            assert!(small.may_grow());
            holds[went].set(0);
            assert_eq!(b.ahead.get(), 0, "its request done, its turn is over");
            assert_eq!((b.waiting.get(), b.waiting_held.get()), (0, 0));
        });
    }
}
