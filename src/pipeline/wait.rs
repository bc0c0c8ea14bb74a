//! How the stages of the pipeline pace themselves: how much the receiver
//! reads at once, how much a worker takes at once, and when a stage waits
//! awake rather than sleeps.
//!
//! **Reads.** While the queue is short the receiver reads one datagram per
//! call and hands it on at once, so that a worker starts on it while the
//! receiver reads the next: the window a client keeps in flight then moves
//! through the two stages datagram by datagram, as through a one-thread
//! loop, instead of as one wave that each stage waits for in turn. Once a
//! backlog builds, the workers are behind and the receiver's system calls
//! are what it can save: it reads whole batches ([`read_size`]).
//!
//! **Takes.** A worker takes what is queued, up to a batch, and sends the
//! replies in one call; but while requests take long (a handler that waits
//! on a database), every worker takes one at a time, so that no request
//! waits behind the others of a batch while another worker is idle
//! ([`Pace`]).
//!
//! **Waits.** Sleeping costs a wake-up per batch, and on a small virtual
//! machine a wake-up that has to rouse an idle CPU costs tens of
//! microseconds, during which nothing is answered. Looking costs the CPU
//! for as long as it looks. So each thread stays awake:
//!
//! - after a batch, for a learned time of at most [`LEARN_MAX`],
//!   about what a sleep and a wake-up cost: doubled to cover a wait that
//!   found work, halved after a wait that found none, down to zero. Never
//!   looking for longer than sleeping would cost bounds the waste at the
//!   cost of the sleeps it replaces (the classic competitive-spinning
//!   argument); sparse load soon looks no more and sleeps through its gaps,
//!   and idle costs nothing. At zero, one batch in [`PROBE_EVERY`] tries a
//!   short wait again, so a change of pace is noticed. A full batch gets no
//!   longer wait: on two cores shared with a client, the CPU a server
//!   spends looking is taken from the client;
//! - for the receiver, a few more looks ([`LONE_LOOKS`]) after a read that
//!   brought a single datagram, which while the queue is short is every
//!   read: a client keeping a few requests in flight sends the next as soon
//!   as a reply comes, and the looks catch it without a sleep and wake-up.
//!
//! `docs/benchmarks.md` has the measurements behind each choice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sys::BATCH;

/// The most a thread learns to stay awake after a batch: about what one
/// more wake-up adds to a round trip. Much longer, and the threads keep
/// looking through the gaps of a steady stream of lone datagrams, paying
/// more than the sleeps they save.
pub(crate) const LEARN_MAX: Duration = Duration::from_micros(20);

/// The wait a thread tries when it has learned not to wait.
const PROBE_TIME: Duration = LEARN_MAX;

/// At a learned wait of zero, one small batch in this many probes again.
const PROBE_EVERY: u32 = 64;

/// How many more times the receiver looks after a read of one datagram: a
/// few looks take a round trip's wake-up off, more cost CPU under a steady
/// stream of lone datagrams for nothing.
pub(crate) const LONE_LOOKS: u32 = 4;

/// While fewer datagrams than this wait in the queue, the receiver reads
/// one per call; from this many on, a whole batch.
pub(crate) const BACKLOG: usize = 8;

/// How many datagrams the receiver reads at once, with `queued` waiting.
pub(crate) fn read_size(queued: usize) -> usize {
    if queued < BACKLOG {
        1
    } else {
        BATCH
    }
}

/// Requests that take longer than this each, on average, are taken one at
/// a time: about what a sleep and a wake-up cost, the point past which a
/// batch saves less than it holds back.
pub(crate) const SLOW: Duration = Duration::from_micros(20);

/// How long the handler's requests take, and so how many a worker takes at
/// once. One for the pool: how long a request takes is the handler's, not
/// a worker's, so a worker that has not yet met a slow request takes one
/// at a time too.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Nanoseconds per request, a moving average over the last batches.
    /// Workers update it without a lock; a lost update only delays what
    /// the average learns by a batch.
    per_request_ns: AtomicU64,
}

impl Pace {
    /// Notes a batch of `n` requests whose handling took `took` (the
    /// handler's calls only: not logging, not sending).
    pub(crate) fn record(&self, n: usize, took: Duration) {
        let ns = took.as_nanos() / n.max(1) as u128;
        let ns = u64::try_from(ns).unwrap_or(u64::MAX);
        let before = self.per_request_ns.load(Ordering::Relaxed);
        // Weighted 7 to 1: a handler that turns slow is taken one request
        // at a time from its first slow batch on; one slow request among
        // fast ones costs a few dozen batches of one before the average
        // has forgotten it.
        let after = before.saturating_mul(7).saturating_add(ns) / 8;
        self.per_request_ns.store(after, Ordering::Relaxed);
    }

    /// How many requests to take at once.
    pub(crate) fn batch(&self) -> usize {
        if self.per_request_ns.load(Ordering::Relaxed) > SLOW.as_nanos() as u64 {
            1
        } else {
            BATCH
        }
    }
}

/// A learned wait below this is not worth a look: it becomes zero.
const MIN_WAIT: Duration = Duration::from_micros(2);

/// When the thread that owns it should look again rather than sleep.
#[derive(Debug)]
pub(crate) struct WaitPolicy {
    /// The end of the current wait awake, if the thread is in one.
    until: Option<Instant>,
    /// When the current wait began.
    since: Instant,
    /// Whether the current wait's outcome teaches `learned`.
    learning: bool,
    /// How long to stay awake after a batch.
    learned: Duration,
    /// Batches since the last probe, while `learned` is zero.
    unprobed: u32,
    /// Looks to take after a batch of one, and those left of them.
    lone_looks: u32,
    looks: u32,
}

impl WaitPolicy {
    /// The workers' policy.
    pub(crate) fn new() -> WaitPolicy {
        WaitPolicy::with_lone_looks(0)
    }

    /// The receiver's: also [`LONE_LOOKS`] looks after a lone datagram.
    pub(crate) fn with_lone_looks(lone_looks: u32) -> WaitPolicy {
        WaitPolicy {
            until: None,
            since: Instant::now(),
            learning: false,
            learned: PROBE_TIME,
            unprobed: 0,
            lone_looks,
            looks: 0,
        }
    }

    /// Notes a batch of `n` items, just taken, and decides how long to stay
    /// awake for the next.
    pub(crate) fn record(&mut self, n: usize) {
        self.record_at(n, Instant::now());
    }

    /// Whether to look again without waiting, rather than sleep.
    pub(crate) fn awake(&mut self) -> bool {
        self.awake_at(Instant::now())
    }

    fn record_at(&mut self, n: usize, now: Instant) {
        if self.until.is_some() && self.learning {
            // The wait found work: make sure the next covers it twice over.
            let waited = now.saturating_duration_since(self.since);
            self.learned = self.learned.max(waited * 2).min(LEARN_MAX);
        }
        let (wait, learning) = if !self.learned.is_zero() {
            (self.learned, true)
        } else {
            self.unprobed += 1;
            if self.unprobed >= PROBE_EVERY {
                self.unprobed = 0;
                (PROBE_TIME, true)
            } else {
                (Duration::ZERO, false)
            }
        };
        self.looks = if n == 1 { self.lone_looks } else { 0 };
        self.since = now;
        self.learning = learning;
        self.until = (!wait.is_zero()).then(|| now + wait);
    }

    fn awake_at(&mut self, now: Instant) -> bool {
        if self.waiting(now) {
            return true;
        }
        if self.looks > 0 {
            self.looks -= 1;
            return true;
        }
        false
    }

    /// Whether the current wait awake lasts at `now`; learns from its end.
    fn waiting(&mut self, now: Instant) -> bool {
        let Some(until) = self.until else {
            return false;
        };
        if now < until {
            return true;
        }
        if self.learning {
            // The wait found nothing: halve the next.
            self.learned /= 2;
            if self.learned < MIN_WAIT {
                self.learned = Duration::ZERO;
            }
        }
        self.until = None;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    /// A batch of `n` at `at` (microseconds from `t0`), after looking until
    /// then; says whether the thread was still awake when the batch came.
    fn batch(s: &mut WaitPolicy, t0: Instant, at: u32, n: usize) -> bool {
        let now = t0 + US * at;
        let awake = s.awake_at(now);
        s.record_at(n, now);
        awake
    }

    #[test]
    fn full_batch() {
        // A full batch waits no longer than a small one.
        let (mut s, t0) = (WaitPolicy::new(), Instant::now());
        batch(&mut s, t0, 0, BATCH);
        assert!(s.awake_at(t0 + PROBE_TIME - US));
        assert!(!s.awake_at(t0 + PROBE_TIME));
        assert_eq!(s.learned, PROBE_TIME / 2, "a wait that found nothing");
    }

    #[test]
    fn sparse() {
        // Batches 100 us apart: every wait finds nothing, so the waits
        // shrink to zero; then only one batch in PROBE_EVERY waits.
        let (mut s, t0) = (WaitPolicy::new(), Instant::now());
        let mut at = 0;
        for _ in 0..8 {
            batch(&mut s, t0, at, 1);
            at += 100;
        }
        assert_eq!(s.learned, Duration::ZERO);
        let mut waits = 0;
        for _ in 0..PROBE_EVERY * 2 {
            batch(&mut s, t0, at, 1);
            waits += usize::from(s.until.is_some());
            at += 100;
        }
        assert_eq!(waits, 2);
    }

    #[test]
    fn lone() {
        let (mut s, t0) = (WaitPolicy::with_lone_looks(LONE_LOOKS), Instant::now());
        s.learned = Duration::ZERO;
        batch(&mut s, t0, 0, 2);
        assert!(!s.awake_at(t0));
        batch(&mut s, t0, 100, 1);
        let later = t0 + Duration::from_secs(1);
        let looks = (0..10).take_while(|_| s.awake_at(later)).count();
        assert_eq!(looks, LONE_LOOKS as usize);
        // The workers' policy takes no such looks.
        let mut w = WaitPolicy::new();
        w.learned = Duration::ZERO;
        batch(&mut w, t0, 0, 1);
        assert!(!w.awake_at(t0));
    }

    #[test]
    fn reads() {
        assert_eq!(read_size(0), 1);
        assert_eq!(read_size(BACKLOG - 1), 1);
        assert_eq!(read_size(BACKLOG), BATCH);
    }

    #[test]
    fn slow_requests_one_at_a_time() {
        let p = Pace::default();
        assert_eq!(p.batch(), BATCH);
        p.record(32, US * 64);
        assert_eq!(p.batch(), BATCH, "2 us a request");
        // A handler that blocks for a millisecond: slow at once, and fast
        // again once it is.
        p.record(1, Duration::from_millis(1));
        assert_eq!(p.batch(), 1);
        for _ in 0..40 {
            p.record(32, US * 64);
        }
        assert_eq!(p.batch(), BATCH);
        // A slowish request among fast ones turns the pace for a while,
        // then the fast ones bring it back.
        p.record(1, US * 200);
        assert_eq!(p.batch(), 1);
        for _ in 0..20 {
            p.record(32, US * 64);
        }
        assert_eq!(p.batch(), BATCH);
    }

    #[test]
    fn paid() {
        // A wait that found work grows the next to twice what it took, up
        // to LEARN_MAX; batches that keep coming keep the thread awake.
        let (mut s, t0) = (WaitPolicy::new(), Instant::now());
        s.learned = US * 4;
        batch(&mut s, t0, 0, 1);
        assert!(batch(&mut s, t0, 3, 1));
        assert_eq!(s.learned, US * 6);
        let mut at = 3;
        for (gap, learned) in [(5, 10), (9, 18), (15, 20), (5, 20)] {
            at += gap;
            assert!(batch(&mut s, t0, at, 1));
            assert_eq!(s.learned, US * learned);
        }
        assert_eq!(s.learned, LEARN_MAX);
        assert!(!s.awake_at(t0 + US * at + LEARN_MAX));
        assert_eq!(s.learned, LEARN_MAX / 2);
    }
}
