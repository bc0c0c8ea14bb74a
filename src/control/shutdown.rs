//! The shutdown signal shared by the server's threads and whoever stops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest any server thread waits before it looks at the shutdown
/// flag again: half the 100 ms within which it must notice a shutdown.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A handle that stops a running [`Server`](crate::Server).
///
/// Cheap to clone and safe to use from any thread, including a signal
/// handler thread such as the one `ctrlc` runs. Triggering it more than once
/// is harmless. The library never installs a signal handler itself: the
/// binary wires Ctrl-C and SIGTERM to [`Shutdown::trigger`].
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// A handle that has not been triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks the server to stop. Returns `true` if it had already been asked.
    ///
    /// The receiver notices within its poll interval (50 ms) even when no
    /// traffic arrives; the workers then answer what is queued and exit.
    pub fn trigger(&self) -> bool {
        self.flag.swap(true, Ordering::AcqRel)
    }

    /// Whether [`trigger`](Shutdown::trigger) has been called.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_once() {
        let a = Shutdown::new();
        let b = a.clone();
        assert!(!b.is_triggered());
        assert!(!a.trigger());
        assert!(b.is_triggered());
        assert!(b.trigger());
    }
}
