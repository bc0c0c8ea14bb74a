//! The optional `stats` thread: logs the counters and the rates since its
//! last report, every `Config::stats_interval`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick};

use super::shutdown::Shutdown;
use super::stats::{Snapshot, Stats};
#[cfg(target_os = "linux")]
use crate::service::Notifier;

/// Where no service manager listens (not Linux), nothing is told.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub(crate) enum Notifier {}

#[cfg(not(target_os = "linux"))]
impl Notifier {
    pub(crate) fn notify(&self, _: &str) -> std::io::Result<()> {
        match *self {}
    }
}

pub(crate) struct Reporter {
    pub stats: Arc<Stats>,
    pub shutdown: Shutdown,
    pub every: Duration,
    /// Also told the counters at each report, when a service manager
    /// listens.
    pub notifier: Option<Arc<Notifier>>,
}

impl Reporter {
    /// Reports every interval until shutdown: it sleeps between reports,
    /// and the closing channel wakes it at once to stop.
    pub(crate) fn run(self) {
        let closed = self.shutdown.closed();
        let ticks = tick(self.every);
        let mut last = self.stats.snapshot();
        let mut last_at = Instant::now();
        loop {
            select! {
                recv(closed) -> _ => return,
                recv(ticks) -> _ => {
                    let now = self.stats.snapshot();
                    log::info!("{}", report(&now, &now.since(&last), last_at.elapsed()));
                    if let Some(notifier) = &self.notifier {
                        let _ = notifier.notify(&format!("STATUS={}", status(&now)));
                    }
                    last = now;
                    last_at = Instant::now();
                }
            }
        }
    }
}

/// The service manager's one-line status (`systemctl status`): the
/// counters that matter at a glance.
pub(crate) fn status(s: &Snapshot) -> String {
    format!(
        "received={} replied={} dropped={}",
        s.received,
        s.replied,
        s.settled() - s.replied - s.declined
    )
}

/// One `key=value` line: the totals, then the rates per second since the
/// last report.
pub(crate) fn report(total: &Snapshot, delta: &Snapshot, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let rate = |n: u64| n as f64 / secs;
    format!(
        "{total} received_per_sec={:.1} replied_per_sec={:.1} dropped_per_sec={:.1}",
        rate(delta.received),
        rate(delta.replied),
        rate(delta.settled() - delta.replied),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line() {
        let s = Snapshot {
            received: 10,
            replied: 7,
            declined: 1,
            dropped_queue_full: 2,
            ..Snapshot::default()
        };
        assert_eq!(status(&s), "received=10 replied=7 dropped=2");
    }

    #[test]
    fn line() {
        let total = Snapshot {
            received: 30,
            replied: 20,
            dropped_queue_full: 10,
            ..Snapshot::default()
        };
        let line = report(&total, &total, Duration::from_secs(2));
        assert!(
            line.starts_with("stats: received=30 socket_dropped=0 replied=20"),
            "{line}"
        );
        assert!(
            line.ends_with("received_per_sec=15.0 replied_per_sec=10.0 dropped_per_sec=5.0"),
            "{line}"
        );
    }
}
