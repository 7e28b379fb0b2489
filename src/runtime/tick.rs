//! A periodic tick for sources that poll (a directory, a file, a command's schedule):
//! [`Ticker::next`] resolves every `period` until the shard's [`Stop`] fires.
//!
//! A poll that overruns its period is followed by one tick at once, and ticks go on every
//! `period` from there (tokio's `MissedTickBehavior::Delay`): missed ticks do not pile up
//! into a burst of polls.

use super::local::Stop;
use std::time::Duration;
use tokio::time::{interval, Interval, MissedTickBehavior};

/// See the module comment.
pub struct Ticker {
    interval: Interval,
    stop: Stop,
}

impl Ticker {
    /// Ticks every `period`, the first at once, until `stop`. Panics if `period` is zero.
    pub fn new(period: Duration, stop: Stop) -> Ticker {
        let mut interval = interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ticker { interval, stop }
    }

    pub fn period(&self) -> Duration {
        self.interval.period()
    }

    /// Waits for the next tick: `true` at the tick, `false` once stopped (at once if stop
    /// has fired, even with a tick due). Cancel-safe: dropping the future loses no tick.
    pub async fn next(&mut self) -> bool {
        if self.stop.is_stopped() {
            return false;
        }
        tokio::select! {
            biased;
            _ = self.stop.wait() => false,
            _ = self.interval.tick() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use tokio::time::{advance, pause, sleep, Instant};

    const P: Duration = Duration::from_millis(100);

    /// Runs `f` on a tokio-uring runtime with tokio's clock paused: timers fire when the
    /// runtime has nothing else to do, in order, at exact virtual times.
    /// `elapsed` is `expected`, give or take the timer wheel's millisecond.
    fn near(elapsed: Duration, expected: Duration) -> bool {
        elapsed >= expected.saturating_sub(Duration::from_millis(1))
            && elapsed <= expected + Duration::from_millis(1)
    }

    fn paused<F: std::future::Future>(f: F) -> F::Output {
        tokio_uring::start(async {
            pause();
            f.await
        })
    }

    #[test]
    fn ticks_at_once_then_every_period() {
        paused(async {
            let mut t = Ticker::new(P, Stop::new());
            let start = Instant::now();
            for i in 0..4 {
                assert!(t.next().await);
                assert!(near(start.elapsed(), P * i), "{:?}", start.elapsed());
            }
        });
    }

    #[test]
    fn a_slow_poll_gets_one_tick_then_the_period_again() {
        paused(async {
            let mut t = Ticker::new(P, Stop::new());
            assert!(t.next().await);
            // A poll that takes three and a half periods.
            sleep(P * 7 / 2).await;
            let late = Instant::now();
            assert!(t.next().await);
            assert!(
                near(late.elapsed(), Duration::ZERO),
                "one missed tick comes at once"
            );
            assert!(t.next().await);
            assert!(
                near(late.elapsed(), P),
                "and no more: the next is a period later"
            );
            assert!(t.next().await);
            assert!(near(late.elapsed(), P * 2), "{:?}", late.elapsed());
        });
    }

    #[test]
    fn stop_ends_a_waiting_next_and_every_later_one() {
        paused(async {
            let stop = Stop::new();
            let mut t = Ticker::new(P, stop.clone());
            assert!(t.next().await);
            let start = Instant::now();
            let stopper = tokio_uring::spawn({
                let stop = stop.clone();
                async move {
                    sleep(P / 4).await;
                    stop.trigger();
                }
            });
            assert!(!t.next().await);
            assert!(
                near(start.elapsed(), P / 4),
                "woken by the stop, not the tick"
            );
            stopper.await.unwrap();
            // A tick is due now, but stop wins.
            advance(P * 2).await;
            assert!(!t.next().await);
        });
    }

    #[test]
    fn other_tasks_run_between_ticks() {
        paused(async {
            let stop = Stop::new();
            let ran = Rc::new(Cell::new(0));
            let other = tokio_uring::spawn({
                let (ran, stop) = (ran.clone(), stop.clone());
                async move {
                    while !stop.is_stopped() {
                        ran.set(ran.get() + 1);
                        sleep(P / 10).await;
                    }
                }
            });
            let mut t = Ticker::new(P, stop.clone());
            for _ in 0..3 {
                assert!(t.next().await);
            }
            stop.trigger();
            assert!(!t.next().await);
            other.await.unwrap();
            assert!(ran.get() >= 15, "{}", ran.get()); // every P/10 over 2P
        });
    }
}
