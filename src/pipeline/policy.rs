//! The pool's policy, in one place: who looks for work, who sleeps, whom
//! to wake, and how much each stage takes at once. The receiver and the
//! workers only ask it; `docs/architecture.md` states the contract it
//! keeps and `docs/benchmarks.md` the measurements behind each choice.
//!
//! - **How much a worker takes: one request**, so that it never holds one
//!   an idle worker could take, and a reply never waits on another's
//!   handler. A quick handler (`Handler::is_quick`) takes its share of what
//!   waits among the workers awake, up to a batch ([`Idle::take`]).
//! - **Who looks: searchers.** A worker woken for work is *searching* until
//!   it takes a job. The receiver wakes a sleeper only when no worker is
//!   searching, and a searcher that takes a job while more are queued wakes
//!   the next: a burst wakes one worker per request, each woken by the one
//!   before, and the receiver pays for one wake. For a quick handler, a
//!   sleeper is woken only when no worker is awake or [`BACKLOG`] wait.
//! - **Who sleeps: a worker that finds the queue empty**, at once: no spin,
//!   so that nothing runs when nothing happens and the CPU a spin would
//!   take stays with the handlers and the client. Only a quick handler's
//!   worker that just served a batch of more than one (load that keeps
//!   coming) looks [`LOOKS`] more times first, as the one searcher.
//!
//! The receiver reads what the socket holds, up to a batch, at each read:
//! a burst is queued whole before anyone is woken for it. For a quick
//! handler, after a read of more than one it looks [`LOOKS`] more times
//! before it sleeps.

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};

use crate::sys::BATCH;

/// From this many jobs queued, a quick handler's work wakes a sleeping
/// worker even while another is awake: more than the awake one answers
/// in the time a sleeper takes to wake.
pub(crate) const BACKLOG: usize = 8;

/// How many looks a quick handler's worker takes after a batch, and the
/// receiver after a read of more than one, before it sleeps: a count, not
/// a time, so that no history changes it. Each look yields the CPU, so a
/// client on the same core runs meanwhile.
const LOOKS: u32 = 8;

/// The workers that sleep, and how many look for work: shared by the
/// receiver, which notifies it of work, and every worker.
#[derive(Debug)]
pub(crate) struct Idle {
    /// Sleeping workers, the last to sleep on top: it is the likeliest to
    /// still have its handler's state in the cache.
    sleepers: Mutex<Vec<Sleeper>>,
    /// How many sleep, read without the lock.
    sleeping: AtomicUsize,
    /// How many were woken and have not yet taken a job or slept again.
    searching: AtomicUsize,
    /// Per worker: set when it is woken to search, or when the pool closes.
    woken: Box<[AtomicBool]>,
    closed: AtomicBool,
    /// Whether every worker's handler is quick (`Handler::is_quick`).
    quick: bool,
}

#[derive(Debug)]
struct Sleeper {
    worker: usize,
    thread: Thread,
}

impl Idle {
    /// The policy of a pool of `workers`, all awake, whose handlers are
    /// all `quick` or not.
    pub(crate) fn new(workers: usize, quick: bool) -> Idle {
        Idle {
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            sleeping: AtomicUsize::new(0),
            searching: AtomicUsize::new(0),
            woken: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            closed: AtomicBool::new(false),
            quick,
        }
    }

    /// How many jobs a worker takes at once, its first among them, with
    /// `queued` more waiting: one, unless the handlers are quick; then its
    /// share of what waits among the workers awake, up to a batch. A quick
    /// handler answers a batch in less time than a sleeping worker takes
    /// to wake, and the replies, ready at about the same moment, leave in
    /// one system call.
    pub(crate) fn take(&self, queued: usize) -> usize {
        if !self.quick {
            return 1;
        }
        let awake = self.woken.len() - self.sleeping.load(SeqCst);
        (1 + queued.div_ceil(awake.max(1))).min(BATCH)
    }

    /// Work was queued, `queued` jobs in all: wakes a sleeping worker
    /// unless one is searching already (it will take the work, and wake
    /// the next if more waits). For quick handlers, only when no worker
    /// is awake or a backlog builds: a busy worker is back for more
    /// within microseconds, sooner than a sleeper could wake.
    pub(crate) fn notify(&self, queued: usize) {
        // Pairs with the fence in `sleep` and `found`: either the worker
        // sees the work queued, or this sees it sleeping or no longer
        // searching.
        fence(SeqCst);
        let sleeping = self.sleeping.load(SeqCst);
        let needed = !self.quick || sleeping == self.woken.len() || queued >= BACKLOG;
        if self.searching.load(SeqCst) == 0 && sleeping > 0 && needed {
            self.wake_one();
        }
    }

    /// How many more looks (a `yield` and a `try_recv` each) a worker takes
    /// before it sleeps, after serving `served` requests: for a quick
    /// handler under load (a batch of more than one), a few, as a searcher,
    /// so that the next batch finds it awake; otherwise none.
    pub(crate) fn looks(&self, served: usize) -> u32 {
        if self.quick && served > 1 && self.searching.load(SeqCst) == 0 {
            self.searching.fetch_add(1, SeqCst);
            LOOKS
        } else {
            0
        }
    }

    /// How many looks (a non-blocking read, yielding the CPU when it finds
    /// nothing) the receiver takes before it sleeps, after a read of `read`
    /// datagrams: for a quick handler after more than one, when load keeps
    /// coming and the next datagrams come within microseconds; otherwise
    /// none, so that the CPU stays with handlers that take their time.
    pub(crate) fn looks_after_read(&self, read: usize) -> u32 {
        if self.quick && read > 1 {
            LOOKS
        } else {
            0
        }
    }

    /// A worker took a job. If it was searching and was the last to, and
    /// `more` (how many jobs still wait) says so, wakes the next.
    pub(crate) fn found(&self, searching: bool, more: impl FnOnce() -> usize) {
        if searching && self.searching.fetch_sub(1, SeqCst) == 1 {
            fence(SeqCst);
            let queued = more();
            if queued > 0 {
                self.notify(queued);
            }
        }
    }

    /// Worker `worker` found the queue empty: it is counted as sleeping,
    /// then `look` looks once more, and if that finds something (a job, or
    /// the queue closed) the worker goes on without sleeping; otherwise it
    /// parks until woken. Returns what `look` found, and whether the worker
    /// is now searching (woken for work, or found work after a wake).
    pub(crate) fn sleep<T>(
        &self,
        worker: usize,
        searching: bool,
        look: impl FnOnce() -> Option<T>,
    ) -> (Option<T>, bool) {
        self.lay_down(worker);
        if searching {
            self.searching.fetch_sub(1, SeqCst);
        }
        fence(SeqCst);
        if let Some(found) = look() {
            return (Some(found), self.get_up(worker));
        }
        loop {
            if self.woken[worker].swap(false, SeqCst) {
                return (None, true);
            }
            if self.closed.load(SeqCst) {
                return (None, self.get_up(worker));
            }
            thread::park();
        }
    }

    /// The queue closed: wakes every sleeper, now and to come, to see it.
    pub(crate) fn close(&self) {
        self.closed.store(true, SeqCst);
        for s in self.lock().drain(..) {
            s.thread.unpark();
        }
        self.sleeping.store(0, SeqCst);
    }

    fn lay_down(&self, worker: usize) {
        let mut sleepers = self.lock();
        sleepers.push(Sleeper {
            worker,
            thread: thread::current(),
        });
        self.sleeping.store(sleepers.len(), SeqCst);
    }

    /// Takes `worker` off the sleepers; whether a wake took it off first,
    /// and so counts it as searching.
    fn get_up(&self, worker: usize) -> bool {
        let mut sleepers = self.lock();
        if let Some(at) = sleepers.iter().position(|s| s.worker == worker) {
            sleepers.swap_remove(at);
            self.sleeping.store(sleepers.len(), SeqCst);
            return false;
        }
        // Set under the lock by the wake that took it off (and not by
        // `close`, which drains the list without waking anyone to search).
        self.woken[worker].swap(false, SeqCst)
    }

    fn wake_one(&self) {
        let mut sleepers = self.lock();
        // Checked again under the lock, so that two notifications at once
        // make one searcher, not two.
        if self.searching.load(SeqCst) > 0 {
            return;
        }
        let Some(s) = sleepers.pop() else {
            return;
        };
        self.sleeping.store(sleepers.len(), SeqCst);
        self.searching.fetch_add(1, SeqCst);
        self.woken[s.worker].store(true, SeqCst);
        drop(sleepers);
        s.thread.unpark();
    }

    /// A poisoned lock only means a thread panicked while it held it; the
    /// list itself is always whole.
    fn lock(&self) -> MutexGuard<'_, Vec<Sleeper>> {
        self.sleepers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const PATIENCE: Duration = Duration::from_secs(10);

    /// Starts a worker `id` that sleeps on `idle` finding nothing, and
    /// says whether it was woken to search.
    fn sleeper(idle: &Arc<Idle>, id: usize, woke: &mpsc::Sender<(usize, bool)>) {
        let (idle, woke) = (idle.clone(), woke.clone());
        thread::spawn(move || {
            let (found, searching) = idle.sleep(id, false, || None::<()>);
            assert!(found.is_none());
            woke.send((id, searching)).unwrap();
        });
    }

    /// Waits until `n` workers sleep and none is searching.
    fn asleep(idle: &Idle, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while idle.sleeping.load(SeqCst) != n || idle.searching.load(SeqCst) != 0 {
            assert!(Instant::now() < deadline, "{n} workers never slept");
            thread::yield_now();
        }
    }

    #[test]
    fn wakes_one_searcher_at_a_time() {
        let idle = Arc::new(Idle::new(3, false));
        let (woke, woken) = mpsc::channel();
        for id in 0..3 {
            sleeper(&idle, id, &woke);
            asleep(&idle, id + 1);
        }
        // Three notifications while the first woken is still searching
        // make one searcher, not three.
        idle.notify(1);
        idle.notify(1);
        idle.notify(1);
        let (first, searching) = woken.recv_timeout(PATIENCE).unwrap();
        assert!(searching);
        assert_eq!(idle.searching.load(SeqCst), 1);
        assert_eq!(idle.sleeping.load(SeqCst), 2);
        // The last sleeper to lie down is the first woken.
        assert_eq!(first, 2);
        // It takes a job while more wait: it wakes the next.
        idle.found(true, || 1);
        let (second, searching) = woken.recv_timeout(PATIENCE).unwrap();
        assert!(searching);
        assert_ne!(second, first);
        // That one finds the last job: nobody else is woken.
        idle.found(true, || 0);
        assert_eq!(idle.searching.load(SeqCst), 0);
        assert_eq!(idle.sleeping.load(SeqCst), 1);
        idle.close();
        assert!(!woken.recv_timeout(PATIENCE).unwrap().1);
    }

    #[test]
    fn a_last_look_that_finds_work_does_not_sleep() {
        let idle = Idle::new(1, false);
        assert_eq!(idle.sleep(0, false, || Some(7)), (Some(7), false));
        assert_eq!(idle.sleeping.load(SeqCst), 0);
        // A searcher that finds nothing stops searching as it lies down.
        idle.searching.store(1, SeqCst);
        assert_eq!(idle.sleep(0, true, || Some(8)), (Some(8), false));
        assert_eq!(idle.searching.load(SeqCst), 0);
    }

    #[test]
    fn a_searcher_that_finds_nothing_lets_the_next_notify_wake() {
        let idle = Arc::new(Idle::new(2, false));
        let (woke, woken) = mpsc::channel();
        sleeper(&idle, 0, &woke);
        asleep(&idle, 1);
        idle.notify(1);
        let (id, searching) = woken.recv_timeout(PATIENCE).unwrap();
        assert_eq!((id, searching), (0, true));
        // It looks, finds the work gone, and sleeps again as a searcher.
        let idle2 = idle.clone();
        thread::spawn(move || {
            let (_, searching) = idle2.sleep(0, true, || None::<()>);
            woke.send((0, searching)).unwrap();
        });
        asleep(&idle, 1);
        idle.notify(1);
        assert_eq!(woken.recv_timeout(PATIENCE).unwrap(), (0, true));
        idle.close();
    }

    #[test]
    fn close_wakes_every_sleeper() {
        let idle = Arc::new(Idle::new(4, false));
        let (woke, woken) = mpsc::channel();
        for id in 0..4 {
            sleeper(&idle, id, &woke);
        }
        asleep(&idle, 4);
        idle.close();
        for _ in 0..4 {
            assert!(!woken.recv_timeout(PATIENCE).unwrap().1);
        }
        // A worker that comes to sleep after the close does not park.
        assert_eq!(idle.sleep(0, false, || None::<()>), (None, false));
    }

    #[test]
    fn a_handler_that_may_wait_is_given_one_request_at_a_time() {
        let idle = Idle::new(2, false);
        assert_eq!(idle.take(100), 1);
        assert_eq!(idle.take(10_000), 1);
    }

    #[test]
    fn a_quick_handler_takes_its_share_of_what_waits() {
        let idle = Arc::new(Idle::new(2, true));
        assert_eq!(idle.take(0), 1, "nothing else queued");
        // Its share, beside the other worker's.
        assert_eq!(idle.take(9), 1 + 5);
        assert_eq!(idle.take(10_000), BATCH);
        // With the other asleep, the share of the one worker awake.
        let (woke, woken) = mpsc::channel();
        sleeper(&idle, 0, &woke);
        asleep(&idle, 1);
        assert_eq!(idle.take(9), 1 + 9);
        // A sleeper is woken for a quick handler's work only when no worker
        // is awake or a backlog builds.
        idle.notify(BACKLOG - 1);
        assert_eq!(idle.searching.load(SeqCst), 0, "woken for a short queue");
        idle.notify(BACKLOG);
        assert_eq!(woken.recv_timeout(PATIENCE).unwrap(), (0, true));
        idle.found(true, || 0);
        idle.close();
    }

    #[test]
    fn one_worker_at_a_time_looks_again_after_a_quick_batch() {
        let idle = Idle::new(2, true);
        assert_eq!(idle.looks(1), 0, "a lone request: sleep at once");
        assert_eq!(idle.looks(2), LOOKS);
        assert_eq!(idle.searching.load(SeqCst), 1, "a looker searches");
        assert_eq!(idle.looks(32), 0, "one looker at a time");
        assert_eq!(Idle::new(2, false).looks(32), 0, "a handler that may wait");
    }

    #[test]
    fn the_receiver_looks_again_only_after_a_quick_read_of_more_than_one() {
        let quick = Idle::new(2, true);
        assert_eq!(quick.looks_after_read(1), 0);
        assert_eq!(quick.looks_after_read(2), LOOKS);
        assert_eq!(quick.looks_after_read(BATCH), LOOKS);
        assert_eq!(Idle::new(2, false).looks_after_read(BATCH), 0);
    }

    #[test]
    fn a_quick_pool_all_asleep_wakes_for_one_job() {
        let idle = Arc::new(Idle::new(1, true));
        let (woke, woken) = mpsc::channel();
        sleeper(&idle, 0, &woke);
        asleep(&idle, 1);
        idle.notify(1);
        assert_eq!(woken.recv_timeout(PATIENCE).unwrap(), (0, true));
        idle.close();
    }
}
