//! Which workers are in their handler, and since when: what a stop that
//! runs out of time names ([`Server::shutdown_within`]).
//!
//! Each worker writes its own slot, on a cache line of its own, on the way
//! into its handler and out of it; only a stop reads them.
//!
//! [`Server::shutdown_within`]: crate::Server::shutdown_within

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::sys::coarse_nanos;

/// One worker's slot: when it entered its handler, 0 when it is not in it.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

/// The table of every worker's slot.
#[derive(Debug, Default)]
pub(crate) struct Busy {
    slots: Box<[Slot]>,
}

/// A worker in its handler: its slot is cleared when this is dropped,
/// however the handler ends.
#[derive(Debug)]
pub(crate) struct InHandler<'a>(Option<&'a Slot>);

impl Drop for InHandler<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            slot.0.store(0, Ordering::Relaxed);
        }
    }
}

impl Busy {
    /// A table for `workers` workers, none in its handler.
    pub(crate) fn new(workers: usize) -> Busy {
        Busy {
            slots: (0..workers).map(|_| Slot::default()).collect(),
        }
    }

    /// Marks `worker` as in its handler from now until the guard drops.
    /// Relaxed: a stop reads the table for its report, nothing more.
    pub(crate) fn enter(&self, worker: usize) -> InHandler<'_> {
        let slot = self.slots.get(worker);
        if let Some(slot) = slot {
            slot.0.store(coarse_nanos(), Ordering::Relaxed);
        }
        InHandler(slot)
    }

    /// The workers in their handler now, each with how long it has been
    /// there (to the clock's few milliseconds).
    pub(crate) fn now(&self) -> Vec<(usize, Duration)> {
        let now = coarse_nanos();
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| match slot.0.load(Ordering::Relaxed) {
                0 => None,
                since => Some((i, Duration::from_nanos(now.saturating_sub(since)))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entered_and_left() {
        let busy = Busy::new(3);
        assert!(busy.now().is_empty());
        let one = busy.enter(1);
        let outside = busy.enter(7);
        assert_eq!(busy.now().iter().map(|b| b.0).collect::<Vec<_>>(), [1]);
        drop(one);
        drop(outside);
        assert!(busy.now().is_empty());
    }
}
