//! The server's counters: every received datagram ends in exactly one fate.
//!
//! One table, [`counts!`] below, names every counter once: its field in
//! [`Snapshot`], what it counts, and whether it is a fate (every received
//! datagram ends in exactly one) or a side count. The `stats:` line, the
//! metrics, the balance identity and the tests all read that table, so a new
//! fate is one line there.

use std::fmt;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::socket_drops::SocketDrops;

/// What a counter is to the balance identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Every datagram read: the left side of the identity.
    Received,
    /// One of the fates: the right side of the identity sums them.
    Fate,
    /// Counted beside the datagrams, not one of their fates.
    Side,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// The field of [`Snapshot`], the key of the `stats:` line and the
    /// metric's name or label.
    pub name: &'static str,
    pub role: Role,
    /// What it counts: the metric's help (and, through the table's macro,
    /// the field's documentation).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub help: &'static str,
}

/// Declares every counter once; see the module's documentation.
macro_rules! counts {
    ($($variant:ident $field:ident $role:ident $help:literal;)*) => {
        /// What a counter counts: one name per fate, whichever thread
        /// settles it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Count {
            $($variant,)*
        }

        /// Every counter, in the order of the `stats:` line.
        pub(crate) const TABLE: &[Entry] = &[
            $(Entry { name: stringify!($field), role: Role::$role, help: $help },)*
        ];

        /// The counters at one moment.
        ///
        /// Every received datagram ends in exactly one fate, and once the
        /// server has stopped `received` equals their sum
        /// ([`Snapshot::is_balanced`]); [`Snapshot::fates`] lists them.
        /// `socket_dropped`, `worker_panics` and `control_truncated` are
        /// counted beside the fates: a datagram the kernel dropped at the
        /// socket was never received, the datagram a panic interrupted is
        /// counted under `send_failed`, and a datagram whose control
        /// messages were cut still meets a fate of its own.
        /// `socket_dropped` is the kernel's count for the socket, read when
        /// the counters are; a socket shared by several processes (an
        /// upgrade's handover) has one count, which each of them sees.
        ///
        /// Its `Display` is the server's closing line:
        ///
        /// ```
        /// let s = udp_greeter::Snapshot::default();
        /// assert_eq!(
        ///     s.to_string(),
        ///     "stats: received=0 socket_dropped=0 replied=0 declined=0 dropped_queue_full=0 \
        ///      dropped_oversize=0 dropped_rate_limited=0 dropped_loop=0 handler_failed=0 send_failed=0 \
        ///      worker_panics=0 control_truncated=0"
        /// );
        /// ```
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Snapshot {
            $(#[doc = concat!($help, ".")] pub $field: u64,)*
        }

        impl Snapshot {
            /// Every counter with its name, in the order of the `stats:` line.
            pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> {
                TABLE.iter().map(|e| e.name).zip([$(self.$field,)*])
            }

            /// What happened between `earlier` and `self`, counter by counter.
            pub fn since(&self, earlier: &Snapshot) -> Snapshot {
                Snapshot {
                    $($field: self.$field.saturating_sub(earlier.$field),)*
                }
            }

            fn from_fn(mut get: impl FnMut(Count) -> u64) -> Snapshot {
                Snapshot { $($field: get(Count::$variant),)* }
            }
        }

        const COUNTS: usize = TABLE.len();
    };
}

counts! {
    Received received Received "Datagrams read from the socket";
    SocketDropped socket_dropped Side
        "Datagrams the kernel dropped at the socket since the server started, before they could be read: its receive buffer was full (Linux)";
    Replied replied Fate "Datagrams answered";
    Declined declined Fate "Datagrams the handler chose not to answer";
    DroppedQueueFull dropped_queue_full Fate "Datagrams dropped because the queue was full";
    DroppedOversize dropped_oversize Fate
        "Datagrams over the size limit, or whose reply would not fit in one";
    DroppedRateLimited dropped_rate_limited Fate "Datagrams dropped by the per-source rate limit";
    DroppedLoop dropped_loop Fate
        "Datagrams refused by the loop guard: from the server itself or a service port, or the service's own replies";
    HandlerFailed handler_failed Fate "Datagrams whose handler failed to answer";
    SendFailed send_failed Fate
        "Datagrams whose reply the kernel refused, or whose handler panicked";
    WorkerPanics worker_panics Side "Panics caught in worker threads";
    ControlTruncated control_truncated Side
        "Datagrams whose control messages the kernel cut short; should stay 0";
}

/// One thread's counters, alone on their cache lines, so the receiver and
/// the workers do not slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Tally([AtomicU64; COUNTS]);

impl Tally {
    /// Adds `n` to one counter. Release: a snapshot that sees this count
    /// sees what this thread counted before it (see [`Stats::snapshot`]).
    pub(crate) fn add(&self, count: Count, n: u64) {
        if n != 0 {
            self.0[count as usize].fetch_add(n, Ordering::Release);
        }
    }

    /// Adds everything `pending` gathered: one atomic add per counter
    /// that moved, however many datagrams moved it.
    pub(crate) fn add_pending(&self, pending: &Pending) {
        for (i, &n) in pending.0.iter().enumerate() {
            if n != 0 {
                self.0[i].fetch_add(n, Ordering::Release);
            }
        }
    }

    fn get(&self, count: Count) -> u64 {
        self.0[count as usize].load(Ordering::Acquire)
    }
}

/// Counts one thread gathers over a batch, before it adds them to its
/// tally at once.
#[derive(Debug, Default)]
pub(crate) struct Pending([u64; COUNTS]);

impl Pending {
    pub(crate) fn add(&mut self, count: Count, n: u64) {
        self.0[count as usize] += n;
    }
}

/// Live counters: the receiver writes one tally, the workers the other;
/// the kernel's drops at the socket are read when the counters are.
///
/// Counters are only ever added to: each is exact on its own, and once
/// every thread has been joined the whole set is exact. The receiver
/// counts a datagram as received before it hands it on, and the queue
/// orders the hand-off before the worker's count of its fate.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    receiver: Tally,
    workers: Tally,
    socket: SocketDrops,
}

impl Stats {
    /// Counters for a server of `socket`, whose drops count from now.
    pub(crate) fn watching(socket: &UdpSocket) -> Stats {
        Stats {
            socket: SocketDrops::watch(socket),
            ..Stats::default()
        }
    }

    /// Takes the socket's last drop count, once the server has stopped,
    /// and lets go of the socket.
    pub(crate) fn release_socket(&self) {
        self.socket.release();
    }

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
        // The fates are read before `received`, with acquire: a fate seen
        // brings with it the count of the datagram received before it, so
        // a snapshot taken while traffic flows never shows more fates than
        // datagrams.
        let mut s = Snapshot::from_fn(|c| if c == Count::Received { 0 } else { get(c) });
        s.received = get(Count::Received);
        if let Some(dropped) = self.socket.count() {
            s.socket_dropped = dropped;
        }
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

impl Snapshot {
    /// The fates with their names: every received datagram ends in exactly
    /// one of them.
    pub fn fates(&self) -> impl Iterator<Item = (&'static str, u64)> {
        self.with_role(Role::Fate)
    }

    pub(crate) fn with_role(&self, role: Role) -> impl Iterator<Item = (&'static str, u64)> {
        TABLE
            .iter()
            .zip(self.counts())
            .filter(move |(e, _)| e.role == role)
            .map(|(_, count)| count)
    }

    /// Reads the counters back from a `stats:` line, as [`Display`]
    /// writes it and the server logs it; anything before `stats:` (a log
    /// line's time and level) and keys it does not know (the periodic
    /// report's rates) are passed over. `None` if a counter is missing or
    /// not a number.
    ///
    /// ```
    /// use udp_greeter::Snapshot;
    ///
    /// let s = Snapshot { received: 3, replied: 3, ..Snapshot::default() };
    /// let line = format!("12:00:01 [INFO] {s} received_per_sec=1.5");
    /// assert_eq!(Snapshot::from_line(&line), Some(s));
    /// ```
    ///
    /// [`Display`]: fmt::Display
    pub fn from_line(line: &str) -> Option<Snapshot> {
        let fields = &line[line.find("stats: ")? + "stats: ".len()..];
        let pairs: Vec<(&str, &str)> = fields
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .collect();
        let mut missing = false;
        let s = Snapshot::from_fn(|c| {
            let name = TABLE[c as usize].name;
            let value = pairs.iter().find(|(k, _)| *k == name);
            match value.and_then(|(_, v)| v.parse().ok()) {
                Some(n) => n,
                None => {
                    missing = true;
                    0
                }
            }
        });
        (!missing).then_some(s)
    }

    /// The sum of every fate.
    pub fn settled(&self) -> u64 {
        self.fates().map(|(_, n)| n).sum()
    }

    /// Whether every received datagram is accounted for in exactly one fate.
    ///
    /// Always true once the server has shut down; while it runs, datagrams
    /// still in the queue or in a worker are not yet settled.
    pub fn is_balanced(&self) -> bool {
        self.received == self.settled()
    }

    /// Whether any datagram met a fate other than a reply or a handler's
    /// choice not to reply, or any side count moved: what an operator
    /// should look at.
    pub fn has_trouble(&self) -> bool {
        self.settled() != self.replied + self.declined
            || self.with_role(Role::Side).any(|(_, n)| n > 0)
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stats:")?;
        for (name, n) in self.counts() {
            write!(f, " {name}={n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance() {
        let stats = Stats::default();
        let (r, w) = (stats.receiver(), stats.workers());
        r.add(Count::Received, 11);
        w.add(Count::Replied, 4);
        w.add(Count::Declined, 1);
        r.add(Count::DroppedQueueFull, 1);
        w.add(Count::SendFailed, 1);
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
            replied: 2,
            declined: 1,
            ..Snapshot::default()
        };
        assert!(clean.is_balanced() && !clean.has_trouble());
        let cut = Snapshot {
            control_truncated: 1,
            ..clean
        };
        assert!(cut.has_trouble(), "a side count is trouble too");
    }

    #[test]
    fn table_and_fields_agree() {
        // Each field reads its own counter: give each a different value.
        let stats = Stats::default();
        for (i, _) in TABLE.iter().enumerate() {
            // Row i of the table is variant i of `Count`.
            stats.receiver().0[i].store(i as u64 + 1, Ordering::Relaxed);
        }
        let s = stats.snapshot();
        let got: Vec<u64> = s.counts().map(|(_, n)| n).collect();
        let want: Vec<u64> = (1..=TABLE.len() as u64).collect();
        assert_eq!(got, want);
        assert_eq!(s.received, 1);
        assert_eq!(s.control_truncated, TABLE.len() as u64);
        let names: Vec<&str> = s.counts().map(|(name, _)| name).collect();
        assert_eq!(names[0], "received");
        assert!(s.fates().all(|(name, _)| name != "received"));
        assert_eq!(s.fates().count(), 8);
    }

    #[test]
    fn line_round_trip() {
        let s = Snapshot {
            received: 9,
            replied: 6,
            send_failed: 3,
            worker_panics: 3,
            ..Snapshot::default()
        };
        assert_eq!(Snapshot::from_line(&s.to_string()), Some(s));
        assert_eq!(Snapshot::from_line("stats: received=1 replied=1"), None);
        let bad = s.to_string().replace("replied=6", "replied=x");
        assert_eq!(Snapshot::from_line(&bad), None);
        assert_eq!(Snapshot::from_line("no counters here"), None);
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
