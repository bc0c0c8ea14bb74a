//! A cap on how many lines of one kind are logged per second, so a flood
//! can neither throttle the server on its own logging nor fill a disk.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Admits at most `per_second` events each second and counts the rest.
///
/// Shared by threads without a lock. The count of what was held back is
/// handed to the first caller of the next second, to log as one line.
#[derive(Debug)]
pub(crate) struct Throttle {
    per_second: u64,
    epoch: Instant,
    /// The second (since `epoch`) that `admitted` counts for.
    second: AtomicU64,
    admitted: AtomicU64,
    held_back: AtomicU64,
}

/// What a caller may log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Admission {
    /// Whether this event's own line may be logged.
    pub admitted: bool,
    /// Lines held back in an earlier second, to report now; 0 for none.
    pub held_back: u64,
}

impl Admission {
    /// The tail of a rate-limited line: how many like it were not shown.
    pub(crate) fn more(&self) -> HeldBack {
        HeldBack(self.held_back)
    }
}

/// Shows as ` (N more like this not shown)`, or as nothing for none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeldBack(u64);

impl fmt::Display for HeldBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " ({n} more like this not shown)"),
        }
    }
}

impl Throttle {
    pub(crate) fn new(per_second: u64) -> Throttle {
        Throttle {
            per_second,
            epoch: Instant::now(),
            second: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    pub(crate) fn admit(&self) -> Admission {
        self.admit_at(Instant::now())
    }

    pub(crate) fn admit_at(&self, now: Instant) -> Admission {
        let (admitted, held_back) = self.admit_many_at(1, now);
        Admission {
            admitted: admitted == 1,
            held_back,
        }
    }

    /// Admits as many of `n` events as this second has room for, at one
    /// clock reading for all: how many may be logged, and the lines held
    /// back in an earlier second, to report now.
    pub(crate) fn admit_many(&self, n: u64) -> (u64, u64) {
        self.admit_many_at(n, Instant::now())
    }

    fn admit_many_at(&self, n: u64, now: Instant) -> (u64, u64) {
        let second = now.saturating_duration_since(self.epoch).as_secs();
        let current = self.second.load(Ordering::Acquire);
        let mut held_back = 0;
        if second > current
            && self
                .second
                .compare_exchange(current, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // Only the thread that moved the window on resets it, so each
            // held-back line is reported exactly once.
            self.admitted.store(0, Ordering::Release);
            held_back = self.held_back.swap(0, Ordering::AcqRel);
        }
        let before = self.admitted.fetch_add(n, Ordering::AcqRel);
        let admitted = self.per_second.saturating_sub(before).min(n);
        if admitted < n {
            self.held_back.fetch_add(n - admitted, Ordering::AcqRel);
        }
        (admitted, held_back)
    }

    /// Takes the count of lines held back and not yet reported.
    pub(crate) fn take_held_back(&self) -> u64 {
        self.held_back.swap(0, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn caps_per_second() {
        let t = Throttle::new(3);
        let now = t.epoch;
        let admitted = (0..10).filter(|_| t.admit_at(now).admitted).count();
        assert_eq!(admitted, 3);
        let next = t.admit_at(now + Duration::from_secs(1));
        assert_eq!(
            next,
            Admission {
                admitted: true,
                held_back: 7
            }
        );
        assert_eq!(t.take_held_back(), 0);
    }

    #[test]
    fn many_at_once() {
        let t = Throttle::new(5);
        let now = t.epoch;
        assert_eq!(t.admit_many_at(3, now), (3, 0));
        assert_eq!(t.admit_many_at(4, now), (2, 0));
        assert_eq!(t.admit_many_at(2, now), (0, 0));
        // The next second reports the 4 held back and admits anew.
        assert_eq!(t.admit_many_at(1, now + Duration::from_secs(1)), (1, 4));
    }

    #[test]
    fn more() {
        let t = Throttle::new(1);
        let now = t.epoch;
        assert_eq!(t.admit_at(now).more().to_string(), "");
        t.admit_at(now);
        let a = t.admit_at(now + Duration::from_secs(1));
        assert_eq!(a.more().to_string(), " (1 more like this not shown)");
    }

    #[test]
    fn take_at_end() {
        let t = Throttle::new(0);
        assert!(!t.admit().admitted);
        assert!(!t.admit().admitted);
        assert_eq!(t.take_held_back(), 2);
    }
}
