//! SIGINT, SIGTERM and SIGHUP: the first asks for a graceful shutdown, a
//! repeat that arrives right after it is the same request, and a later one
//! exits at once, after logging the counters so far.
//!
//! One `kill` can reach the server twice: `timeout` passes the signal it
//! gets to its child and then to its whole process group, which holds the
//! child too, and a supervisor may signal the main process and its group.
//! The two arrive microseconds apart, long before a person could have read
//! `signal again to exit at once`. The binary cannot see how far the
//! shutdown has come (the library does not say when the receiver stops
//! reading), so the rule is one of time: a signal within [`REPEAT_GRACE`]
//! of the first is that same request.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use log::Level;
use udp_greeter::{Counters, Shutdown, Snapshot};

/// How soon after the first signal another one still counts as the same
/// request. Copies of one signal come microseconds apart, even on a busy
/// machine well under this; a person who means a second Ctrl-C takes
/// longer than this to press it again.
pub const REPEAT_GRACE: Duration = Duration::from_millis(100);

/// How long a forced exit waits for its last line to be logged: a log
/// that blocks (a full pipe, a stalled disk) must not keep the process
/// from exiting.
const LAST_LINE_WAIT: Duration = Duration::from_millis(500);

/// What a signal asks for, by when it comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The first: stop gracefully.
    Shutdown,
    /// Another within [`REPEAT_GRACE`] of the first: the same request.
    Repeat,
    /// Another, later: exit at once.
    Exit,
}

/// The rule: when the first signal came.
#[derive(Debug, Default)]
pub struct Rule {
    first: Option<Instant>,
}

impl Rule {
    /// What a signal arriving at `now` asks for.
    pub fn on_signal(&mut self, now: Instant) -> Action {
        match self.first {
            None => {
                self.first = Some(now);
                Action::Shutdown
            }
            Some(first) if now.saturating_duration_since(first) < REPEAT_GRACE => Action::Repeat,
            Some(_) => Action::Exit,
        }
    }
}

/// The line a forced exit logs: the counters so far, marked as cut short,
/// since what was queued may not all have been answered.
pub fn cut_short(s: &Snapshot) -> String {
    s.to_string().replacen("stats:", "stats (cut short):", 1)
}

/// The first signal's line, logged on a thread of its own: the process
/// must not exit before that thread has written it.
#[derive(Debug, Clone, Default)]
pub struct Announced(Arc<Mutex<Option<mpsc::Receiver<()>>>>);

impl Announced {
    /// Waits (a bounded time) until the first signal's line is logged, if
    /// a signal came.
    pub fn settle(&self) {
        let pending = self.0.lock().ok().and_then(|mut p| p.take());
        if let Some(logged) = pending {
            let _ = logged.recv_timeout(LAST_LINE_WAIT);
        }
    }
}

/// Wires SIGINT, SIGTERM and SIGHUP to `shutdown`, by [`Rule`]. A forced
/// exit logs the counters from `counters` (zeros if the server has not
/// started yet), then runs `at_exit` and exits with code 130. The caller
/// calls [`Announced::settle`] before it exits by itself.
pub fn wire(
    shutdown: Shutdown,
    counters: Arc<OnceLock<Counters>>,
    at_exit: impl Fn() + Send + 'static,
) -> Result<Announced, ctrlc::Error> {
    let mut rule = Rule::default();
    let announced = Announced::default();
    let first_line = announced.clone();
    ctrlc::set_handler(move || match rule.on_signal(Instant::now()) {
        Action::Shutdown => {
            // The line is on its way before the shutdown starts, so that
            // it comes before the final counters.
            let logged = log_aside_done(
                Level::Info,
                "shutting down: answering what is queued (signal again to exit at once)".into(),
            );
            if let Ok(mut pending) = first_line.0.lock() {
                *pending = Some(logged);
            }
            shutdown.trigger();
        }
        Action::Repeat => log_aside(
            Level::Debug,
            format!(
                "signal again within {} ms of the first: the same request",
                REPEAT_GRACE.as_millis()
            ),
        ),
        Action::Exit => {
            let so_far = counters.get().map(Counters::snapshot).unwrap_or_default();
            let logged = log_aside_done(Level::Warn, cut_short(&so_far));
            let _ = logged.recv_timeout(LAST_LINE_WAIT);
            at_exit();
            std::process::exit(130);
        }
    })?;
    Ok(announced)
}

/// Logs `line` on a thread of its own. This runs on the one thread that
/// receives signals: were it to block in the log, no later signal could
/// force the exit.
fn log_aside(level: Level, line: String) {
    drop(log_aside_done(level, line));
}

/// As [`log_aside`]; the receiver hears once the line is logged (or at
/// once, should no thread start: a lost line rather than a blocked exit).
fn log_aside_done(level: Level, line: String) -> mpsc::Receiver<()> {
    let (done, logged) = mpsc::channel();
    let _ = thread::Builder::new()
        .name("signal-log".into())
        .spawn(move || {
            log::log!(level, "{line}");
            log::logger().flush();
            let _ = done.send(());
        });
    logged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_grace_are_one_request() {
        let start = Instant::now();
        let mut rule = Rule::default();
        assert_eq!(rule.on_signal(start), Action::Shutdown);
        assert_eq!(rule.on_signal(start), Action::Repeat);
        assert_eq!(
            rule.on_signal(start + REPEAT_GRACE - Duration::from_millis(1)),
            Action::Repeat
        );
        assert_eq!(rule.on_signal(start + REPEAT_GRACE), Action::Exit);
    }

    #[test]
    fn later_signals_exit() {
        let start = Instant::now();
        let mut rule = Rule::default();
        assert_eq!(rule.on_signal(start), Action::Shutdown);
        assert_eq!(rule.on_signal(start + Duration::from_secs(1)), Action::Exit);
    }

    #[test]
    fn cut_short_line() {
        let s = Snapshot {
            received: 3,
            replied: 2,
            ..Snapshot::default()
        };
        let line = cut_short(&s);
        assert!(
            line.starts_with("stats (cut short): received=3 socket_dropped=0 replied=2 "),
            "{line}"
        );
        assert!(!line.contains("stats: "), "{line}");
    }
}
