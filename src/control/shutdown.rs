//! The shutdown signal shared by the server's threads and whoever stops it.
//!
//! Nothing polls it. Threads that wait on channels also wait on
//! [`Shutdown::closed`], a channel that closes when shutdown is triggered;
//! a thread blocked where no channel reaches (a socket read, an HTTP
//! accept) registers a waker with [`Shutdown::on_trigger`] that unblocks
//! it. So an idle server sleeps in every thread, and still stops at once.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::{Receiver, Sender};

/// A handle that stops a running [`Server`](crate::Server).
///
/// Cheap to clone and safe to use from any thread, including a signal
/// handler thread such as the one `ctrlc` runs. Triggering it more than once
/// is harmless. The library never installs a signal handler itself: the
/// binary wires Ctrl-C, SIGTERM and SIGHUP to [`Shutdown::trigger`].
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    flag: AtomicBool,
    /// Dropped when triggered, which closes every receiver of `closed`.
    closing: Mutex<Option<Sender<()>>>,
    closed: Receiver<()>,
    /// Run once, by the thread that triggers.
    wakers: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

impl Default for Inner {
    fn default() -> Inner {
        let (closing, closed) = crossbeam_channel::bounded(0);
        Inner {
            flag: AtomicBool::new(false),
            closing: Mutex::new(Some(closing)),
            closed,
            wakers: Mutex::new(Vec::new()),
        }
    }
}

impl Shutdown {
    /// A handle that has not been triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks the server to stop. Returns `true` if it had already been asked.
    ///
    /// The receiver is woken at once, even when no traffic arrives, and
    /// stops reading; the workers then answer what is queued and exit.
    pub fn trigger(&self) -> bool {
        if self.inner.flag.swap(true, Ordering::AcqRel) {
            return true;
        }
        drop(lock(&self.inner.closing).take());
        // Taken under the lock, run outside it: a waker may take its time.
        let wakers = std::mem::take(&mut *lock(&self.inner.wakers));
        for wake in wakers {
            wake();
        }
        false
    }

    /// Waits until [`trigger`](Shutdown::trigger) is called, by anyone:
    /// a signal's handler, or the server itself when its socket fails for
    /// good. Returns at once if it was.
    pub fn wait(&self) {
        // The channel never carries a message: it only closes.
        let _ = self.inner.closed.recv();
    }

    /// Whether [`trigger`](Shutdown::trigger) has been called.
    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::Acquire)
    }

    /// A channel that never carries a message and closes when shutdown is
    /// triggered: for a `select!` beside a thread's other channels.
    pub(crate) fn closed(&self) -> Receiver<()> {
        self.inner.closed.clone()
    }

    /// Runs `wake` when shutdown is triggered, on the triggering thread; at
    /// once if it already was.
    pub(crate) fn on_trigger(&self, wake: impl FnOnce() + Send + 'static) {
        let mut wakers = lock(&self.inner.wakers);
        // `trigger` sets the flag before it takes the wakers, so a waker
        // pushed while the flag is clear is still taken and run.
        if self.is_triggered() {
            drop(wakers);
            wake();
        } else {
            wakers.push(Box::new(wake));
        }
    }
}

/// A poisoned lock only means a waker panicked; the list is still sound.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish_non_exhaustive()
    }
}

/// Triggers shutdown when dropped: however the thread holding it ends
/// ([`TriggerOnDrop::always`]), or only when it dies of a panic
/// ([`TriggerOnDrop::if_panicking`]).
#[derive(Debug)]
pub(crate) struct TriggerOnDrop {
    shutdown: Shutdown,
    only_on_panic: bool,
}

impl TriggerOnDrop {
    /// For a thread without which the server cannot go on: returning,
    /// failing or panicking, it stops the server.
    pub(crate) fn always(shutdown: Shutdown) -> TriggerOnDrop {
        TriggerOnDrop {
            shutdown,
            only_on_panic: false,
        }
    }

    /// For a thread that may end in order on its own, but must not die
    /// silently.
    pub(crate) fn if_panicking(shutdown: Shutdown) -> TriggerOnDrop {
        TriggerOnDrop {
            shutdown,
            only_on_panic: true,
        }
    }
}

impl Drop for TriggerOnDrop {
    fn drop(&mut self) {
        if !self.only_on_panic || std::thread::panicking() {
            self.shutdown.trigger();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn trigger_once() {
        let a = Shutdown::new();
        let b = a.clone();
        assert!(!b.is_triggered());
        assert!(!a.trigger());
        assert!(b.is_triggered());
        assert!(b.trigger());
    }

    #[test]
    fn closes_and_wakes() {
        let s = Shutdown::new();
        let closed = s.closed();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        s.on_trigger(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(
            closed.recv_timeout(Duration::from_millis(1)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
        );
        s.trigger();
        s.trigger();
        assert!(closed.recv().is_err(), "closed, not a message");
        assert_eq!(woken.load(Ordering::SeqCst), 1, "each waker runs once");
        // A waker registered after the trigger runs at once.
        let w = woken.clone();
        s.on_trigger(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn guard_triggers_on_panic() {
        let s = Shutdown::new();
        let guard = TriggerOnDrop::if_panicking(s.clone());
        drop(guard);
        assert!(!s.is_triggered(), "a thread that ends in order");
        let guard = TriggerOnDrop::if_panicking(s.clone());
        let ended = std::thread::spawn(move || {
            let _guard = guard;
            std::panic::panic_any("a thread that dies");
        })
        .join();
        assert!(ended.is_err());
        assert!(s.is_triggered());
        let always = Shutdown::new();
        drop(TriggerOnDrop::always(always.clone()));
        assert!(always.is_triggered());
    }
}
