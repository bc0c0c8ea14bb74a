//! The optional `watchdog` thread: pings the service manager's watchdog
//! only while the pipeline proves itself alive, and tells it how the
//! service is doing.
//!
//! A bare timer would ping while every worker hangs in a handler. Instead
//! each ping is earned: the watchdog asks for a probe, the receiver (woken
//! from its sleep by a nudge if idle) queues it like a datagram, and a
//! worker takes it off the queue and answers it. Only a probe answered
//! since the last tick earns the next ping, so a receiver that stopped
//! reading, a queue that no longer moves, or workers that are all stuck
//! let the watchdog run out, and the service manager restarts the service.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{select, tick};

use super::probe::Probe;
use super::reporter::status;
use super::shutdown::Shutdown;
use super::stats::Stats;
use crate::service::Notifier;

/// Wakes the receiver if it sleeps, so that it sees a probe asked for.
pub(crate) type Nudge = Box<dyn Fn() + Send>;

pub(crate) struct Watchdog {
    pub probe: Arc<Probe>,
    pub nudge: Nudge,
    pub notifier: Arc<Notifier>,
    pub stats: Arc<Stats>,
    pub shutdown: Shutdown,
    /// How often to ping: half the service manager's watchdog timeout.
    pub every: Duration,
}

impl Watchdog {
    /// Pings as soon as a probe has been answered, looking twice a period
    /// and asking for the next probe after each ping, until shutdown: so
    /// pings are at most a period and a half apart while the pipeline
    /// moves, within the manager's timeout of two periods. Without an
    /// answer it asks again, in case a request went astray, and logs.
    pub(crate) fn run(self) {
        let closed = self.shutdown.closed();
        let ticks = tick(self.every / 2);
        let mut seen = self.probe.answered();
        let mut waited = 0u32;
        self.ask();
        loop {
            select! {
                recv(closed) -> _ => return,
                recv(ticks) -> _ => {
                    let answered = self.probe.answered();
                    if answered == seen {
                        waited += 1;
                        if waited.is_multiple_of(2) {
                            log::warn!(
                                "watchdog: no worker has taken the probe for {} ms; no ping",
                                self.every.as_millis() * u128::from(waited) / 2
                            );
                            self.ask();
                        }
                        continue;
                    }
                    seen = answered;
                    waited = 0;
                    let status = status(&self.stats.snapshot());
                    let _ = self.notifier.notify(&format!("WATCHDOG=1\nSTATUS={status}"));
                    self.ask();
                }
            }
        }
    }

    fn ask(&self) {
        self.probe.request();
        (self.nudge)();
    }
}
