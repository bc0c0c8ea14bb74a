//! The server's counters: every received datagram ends in exactly one fate.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a counter counts: one name per fate, whichever thread settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    Received,
    Replied,
    DroppedQueueFull,
    SendErrors,
    DroppedOversize,
    DroppedRateLimited,
    WorkerPanics,
    /// Not a fate: datagrams whose control messages the kernel cut short.
    ControlTruncated,
}

const COUNTS: usize = 8;

/// One thread's counters, alone on their cache lines, so the receiver and
/// the workers do not slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Tally([AtomicU64; COUNTS]);

impl Tally {
    /// Adds `n` to one counter.
    pub(crate) fn add(&self, count: Count, n: u64) {
        if n != 0 {
            self.0[count as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    fn get(&self, count: Count) -> u64 {
        self.0[count as usize].load(Ordering::Relaxed)
    }
}

/// Live counters: the receiver writes one tally, the workers the other.
///
/// Counters are only ever added to, with relaxed ordering: each is exact on
/// its own, and once every thread has been joined the whole set is exact.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    receiver: Tally,
    workers: Tally,
}

impl Stats {
    /// The receiver's counters.
    pub(crate) fn receiver(&self) -> &Tally {
        &self.receiver
    }

    /// The workers' counters.
    pub(crate) fn workers(&self) -> &Tally {
        &self.workers
    }

    /// A copy of every counter as it stands.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let get = |c| self.receiver.get(c) + self.workers.get(c);
        // The fates are read before `received`, so a snapshot taken while
        // traffic flows never shows more fates than datagrams.
        let mut s = Snapshot {
            received: 0,
            replied: get(Count::Replied),
            dropped_queue_full: get(Count::DroppedQueueFull),
            send_errors: get(Count::SendErrors),
            dropped_oversize: get(Count::DroppedOversize),
            dropped_rate_limited: get(Count::DroppedRateLimited),
            worker_panics: get(Count::WorkerPanics),
            control_truncated: get(Count::ControlTruncated),
        };
        s.received = get(Count::Received);
        s
    }
}

/// A handle that reads a running server's counters from any thread, such
/// as a signal handler that must report them before the process exits.
///
/// Cheap to clone; it keeps the counters alive, not the server.
#[derive(Debug, Clone)]
pub struct Counters(pub(crate) Arc<Stats>);

impl Counters {
    /// The counters as they stand now.
    pub fn snapshot(&self) -> Snapshot {
        self.0.snapshot()
    }
}

/// The counters at one moment.
///
/// Every received datagram ends in exactly one fate: `replied`,
/// `dropped_queue_full`, `send_errors`, `dropped_oversize` or
/// `dropped_rate_limited`. `worker_panics` counts panics, not datagrams: the
/// datagram a panic interrupted is counted under `send_errors`.
/// `control_truncated` is not a fate either: it counts datagrams whose
/// control messages the kernel cut short, whatever their fate.
///
/// Its `Display` is the server's closing line:
///
/// ```
/// let s = udp_greeter::Snapshot::default();
/// assert_eq!(
///     s.to_string(),
///     "stats: received=0 replied=0 dropped_queue_full=0 send_errors=0 \
///      dropped_oversize=0 dropped_rate_limited=0 worker_panics=0 control_truncated=0"
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
    /// Datagrams whose control messages (the destination address) the
    /// kernel cut short for lack of room, whatever their fate; should stay 0.
    pub control_truncated: u64,
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

    /// Whether any datagram met a fate other than a reply, or any panic or
    /// cut control message happened: what an operator should look at.
    pub fn has_trouble(&self) -> bool {
        self.settled() != self.replied || self.worker_panics > 0 || self.control_truncated > 0
    }

    /// What happened between `earlier` and `self`, counter by counter.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        Snapshot {
            received: d(self.received, earlier.received),
            replied: d(self.replied, earlier.replied),
            dropped_queue_full: d(self.dropped_queue_full, earlier.dropped_queue_full),
            send_errors: d(self.send_errors, earlier.send_errors),
            dropped_oversize: d(self.dropped_oversize, earlier.dropped_oversize),
            dropped_rate_limited: d(self.dropped_rate_limited, earlier.dropped_rate_limited),
            worker_panics: d(self.worker_panics, earlier.worker_panics),
            control_truncated: d(self.control_truncated, earlier.control_truncated),
        }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stats: received={} replied={} dropped_queue_full={} send_errors={} \
             dropped_oversize={} dropped_rate_limited={} worker_panics={} control_truncated={}",
            self.received,
            self.replied,
            self.dropped_queue_full,
            self.send_errors,
            self.dropped_oversize,
            self.dropped_rate_limited,
            self.worker_panics,
            self.control_truncated
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance() {
        let stats = Stats::default();
        let (r, w) = (stats.receiver(), stats.workers());
        r.add(Count::Received, 10);
        w.add(Count::Replied, 4);
        r.add(Count::DroppedQueueFull, 1);
        w.add(Count::SendErrors, 1);
        r.add(Count::DroppedOversize, 1);
        w.add(Count::DroppedOversize, 1);
        assert!(!stats.snapshot().is_balanced());
        r.add(Count::DroppedRateLimited, 2);
        w.add(Count::WorkerPanics, 5);
        let s = stats.snapshot();
        assert!(s.is_balanced());
        assert!(s.has_trouble());
        assert_eq!(s.dropped_oversize, 2);
        assert_eq!(s.worker_panics, 5);
        let clean = Snapshot {
            received: 3,
            replied: 3,
            ..Snapshot::default()
        };
        assert!(clean.is_balanced() && !clean.has_trouble());
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
