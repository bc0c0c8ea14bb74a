//! The server's counters: every received datagram ends in exactly one fate.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keeps counters written by different threads on different cache lines, so
/// the receiver and the workers do not slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

#[derive(Debug, Default)]
struct ReceiverCounters {
    received: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_rate_limited: AtomicU64,
    dropped_truncated: AtomicU64,
}

#[derive(Debug, Default)]
struct WorkerCounters {
    replied: AtomicU64,
    send_errors: AtomicU64,
    dropped_reply_too_big: AtomicU64,
    worker_panics: AtomicU64,
}

/// Live counters, shared by the receiver and the workers.
///
/// Counters are only ever added to, with relaxed ordering: each is exact on
/// its own, and once every thread has been joined the whole set is exact.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    receiver: Padded<ReceiverCounters>,
    workers: Padded<WorkerCounters>,
}

fn add(counter: &AtomicU64, n: u64) {
    if n != 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Stats {
    pub(crate) fn received(&self, n: u64) {
        add(&self.receiver.0.received, n);
    }
    pub(crate) fn dropped_queue_full(&self, n: u64) {
        add(&self.receiver.0.dropped_queue_full, n);
    }
    pub(crate) fn dropped_rate_limited(&self, n: u64) {
        add(&self.receiver.0.dropped_rate_limited, n);
    }
    /// A datagram larger than the configured cap: seen by the receiver.
    pub(crate) fn dropped_truncated(&self, n: u64) {
        add(&self.receiver.0.dropped_truncated, n);
    }
    pub(crate) fn replied(&self, n: u64) {
        add(&self.workers.0.replied, n);
    }
    pub(crate) fn send_errors(&self, n: u64) {
        add(&self.workers.0.send_errors, n);
    }
    /// A reply that would not fit in a datagram: seen by a worker.
    pub(crate) fn dropped_reply_too_big(&self, n: u64) {
        add(&self.workers.0.dropped_reply_too_big, n);
    }
    pub(crate) fn worker_panics(&self, n: u64) {
        add(&self.workers.0.worker_panics, n);
    }

    /// A copy of every counter as it stands.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let r = &self.receiver.0;
        let w = &self.workers.0;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        // The fates are read before `received`, so a snapshot taken while
        // traffic flows never shows more fates than datagrams.
        let replied = get(&w.replied);
        let send_errors = get(&w.send_errors);
        let dropped_oversize = get(&w.dropped_reply_too_big) + get(&r.dropped_truncated);
        let dropped_queue_full = get(&r.dropped_queue_full);
        let dropped_rate_limited = get(&r.dropped_rate_limited);
        let worker_panics = get(&w.worker_panics);
        Snapshot {
            received: get(&r.received),
            replied,
            dropped_queue_full,
            send_errors,
            dropped_oversize,
            dropped_rate_limited,
            worker_panics,
        }
    }
}

/// The counters at one moment.
///
/// Every received datagram ends in exactly one fate: `replied`,
/// `dropped_queue_full`, `send_errors`, `dropped_oversize` or
/// `dropped_rate_limited`. `worker_panics` counts panics, not datagrams: the
/// datagram a panic interrupted is counted under `send_errors`.
///
/// Its `Display` is the server's closing line:
///
/// ```
/// let s = udp_greeter::Snapshot::default();
/// assert_eq!(
///     s.to_string(),
///     "stats: received=0 replied=0 dropped_queue_full=0 send_errors=0 \
///      dropped_oversize=0 dropped_rate_limited=0 worker_panics=0"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Datagrams read from the socket.
    pub received: u64,
    /// Datagrams answered.
    pub replied: u64,
    /// Datagrams dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Datagrams whose reply could not be sent, or whose handler panicked.
    pub send_errors: u64,
    /// Datagrams over `--max-datagram`, or whose reply would not fit in one.
    pub dropped_oversize: u64,
    /// Datagrams dropped by the per-source rate limit.
    pub dropped_rate_limited: u64,
    /// Panics caught in workers.
    pub worker_panics: u64,
}

impl Snapshot {
    /// The sum of every fate.
    pub fn settled(&self) -> u64 {
        self.replied
            + self.dropped_queue_full
            + self.send_errors
            + self.dropped_oversize
            + self.dropped_rate_limited
    }

    /// Whether every received datagram is accounted for in exactly one fate.
    ///
    /// Always true once the server has shut down; while it runs, datagrams
    /// still in the queue or in a worker are not yet settled.
    pub fn is_balanced(&self) -> bool {
        self.received == self.settled()
    }

    /// What happened between `earlier` and `self`, counter by counter.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            received: self.received.saturating_sub(earlier.received),
            replied: self.replied.saturating_sub(earlier.replied),
            dropped_queue_full: self
                .dropped_queue_full
                .saturating_sub(earlier.dropped_queue_full),
            send_errors: self.send_errors.saturating_sub(earlier.send_errors),
            dropped_oversize: self
                .dropped_oversize
                .saturating_sub(earlier.dropped_oversize),
            dropped_rate_limited: self
                .dropped_rate_limited
                .saturating_sub(earlier.dropped_rate_limited),
            worker_panics: self.worker_panics.saturating_sub(earlier.worker_panics),
        }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stats: received={} replied={} dropped_queue_full={} send_errors={} \
             dropped_oversize={} dropped_rate_limited={} worker_panics={}",
            self.received,
            self.replied,
            self.dropped_queue_full,
            self.send_errors,
            self.dropped_oversize,
            self.dropped_rate_limited,
            self.worker_panics
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance() {
        let stats = Stats::default();
        stats.received(10);
        stats.replied(4);
        stats.dropped_queue_full(1);
        stats.send_errors(1);
        stats.dropped_truncated(1);
        stats.dropped_reply_too_big(1);
        assert!(!stats.snapshot().is_balanced());
        stats.dropped_rate_limited(2);
        stats.worker_panics(5);
        let s = stats.snapshot();
        assert!(s.is_balanced());
        assert_eq!(s.dropped_oversize, 2);
        assert_eq!(s.worker_panics, 5);
    }

    #[test]
    fn since() {
        let a = Snapshot {
            received: 3,
            replied: 2,
            ..Snapshot::default()
        };
        let b = Snapshot {
            received: 10,
            replied: 9,
            ..Snapshot::default()
        };
        assert_eq!(b.since(&a).received, 7);
        assert_eq!(b.since(&a).replied, 7);
    }
}
