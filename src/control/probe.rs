//! The watchdog's probe of the pipeline: asked for beside it, carried
//! through it like a datagram.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A probe of the pipeline: asked for by the watchdog, sent through the
/// queue by the receiver, answered by a worker.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    requested: AtomicBool,
    answered: AtomicU64,
}

impl Probe {
    /// Whether a probe is asked for and not yet sent: one relaxed load,
    /// which the receiver makes each time round its loop.
    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    /// Takes the request, if there is one: the receiver then sends the
    /// probe, or asks again (`request`) if it cannot. Taken before the
    /// probe goes, so that a request made once it has been answered is
    /// never wiped out by this one's.
    pub(crate) fn take_request(&self) -> bool {
        self.requested.swap(false, Ordering::Relaxed)
    }

    /// A worker took a probe off the queue.
    pub(crate) fn answer(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request(&self) {
        self.requested.store(true, Ordering::Relaxed);
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_round() {
        let p = Probe::default();
        assert!(!p.is_requested());
        p.request();
        assert!(p.is_requested());
        assert!(p.take_request());
        assert!(!p.is_requested());
        assert!(!p.take_request(), "taken once");
        let before = p.answered();
        p.answer();
        assert_eq!(p.answered(), before + 1);
    }
}
