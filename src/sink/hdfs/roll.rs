//! When a file rolls, as Flume's `BucketWriter` decides: before an event is appended, a file
//! that already holds `rollCount` events or `rollSize` body bytes is closed and a new one
//! opened (so a file holds exactly `rollCount` events); `rollInterval` after the file was
//! opened, and `idleTimeout` after its last flush, it is closed.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollRules {
    /// Zero: never by time.
    pub interval: Duration,
    /// Body bytes; zero: never by size.
    pub size: u64,
    /// Zero: never by count.
    pub count: u64,
    /// Zero: never closed for idleness.
    pub idle: Duration,
}

impl RollRules {
    /// Whether a file holding `events` events and `bytes` body bytes must roll before the
    /// next event.
    pub fn full(&self, events: u64, bytes: u64) -> bool {
        (self.count > 0 && events >= self.count) || (self.size > 0 && bytes >= self.size)
    }

    /// When a file opened at `opened` and last flushed at `flushed` must be closed.
    pub fn deadline(&self, opened: Instant, flushed: Instant) -> Option<Instant> {
        let by_time = (!self.interval.is_zero()).then(|| opened + self.interval);
        let by_idle = (!self.idle.is_zero()).then(|| flushed + self.idle);
        match (by_time, by_idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(count: u64, size: u64, interval: u64, idle: u64) -> RollRules {
        RollRules {
            interval: Duration::from_secs(interval),
            size,
            count,
            idle: Duration::from_secs(idle),
        }
    }

    #[test]
    fn count_and_size_roll_before_the_next_event() {
        let r = rules(10, 1024, 30, 0);
        assert!(!r.full(9, 1023));
        assert!(r.full(10, 0));
        assert!(r.full(1, 1024));
        let never = rules(0, 0, 0, 0);
        assert!(!never.full(u64::MAX, u64::MAX));
    }

    #[test]
    fn deadline_is_the_earlier_of_interval_and_idle() {
        let t = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(rules(0, 0, 30, 0).deadline(t, t + s(5)), Some(t + s(30)));
        assert_eq!(rules(0, 0, 30, 10).deadline(t, t + s(5)), Some(t + s(15)));
        assert_eq!(rules(0, 0, 30, 10).deadline(t, t + s(25)), Some(t + s(30)));
        assert_eq!(rules(0, 0, 0, 10).deadline(t, t + s(25)), Some(t + s(35)));
        assert_eq!(rules(10, 0, 0, 0).deadline(t, t), None);
    }
}
