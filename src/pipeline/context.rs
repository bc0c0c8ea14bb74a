//! What the pipeline's threads share: one context per server.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use super::buffer::BufferPool;
use super::loopguard::LoopGuard;
use crate::control::busy::Busy;
use crate::control::probe::Probe;
use crate::control::shutdown::Shutdown;
use crate::control::stats::Stats;
use crate::control::throttle::{Admission, Throttle};

/// Everything the receiver and the workers share, built once by the
/// server and handed to each thread behind an `Arc`. The handlers are not
/// shared: each worker owns its own.
pub(crate) struct ServerContext {
    pub stats: Arc<Stats>,
    pub shutdown: Shutdown,
    pub pool: BufferPool,
    pub warnings: Arc<Warnings>,
    /// The address the socket is bound to (with the port the OS chose).
    pub local: SocketAddr,
    /// The largest datagram accepted, in bytes.
    pub max_datagram: usize,
    /// `None` when the configuration turned the guard off.
    pub loop_guard: Option<LoopGuard>,
    /// The watchdog's probe, asked for beside the pipeline.
    pub probe: Arc<Probe>,
    /// Which workers are in their handler, for a stop that runs late.
    pub busy: Arc<Busy>,
}

impl fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerContext")
            .field("local", &self.local)
            .field("max_datagram", &self.max_datagram)
            .finish_non_exhaustive()
    }
}

/// The log target of the `Received from` lines: `udp_greeter::received`.
///
/// Those lines are logged only when [`Config::log_requests`] is on (up to
/// 100 a second); under a target of their own, a logger can still send
/// them elsewhere.
///
/// [`Config::log_requests`]: crate::Config::log_requests
pub const RECEIVED_TARGET: &str = "udp_greeter::received";

/// How many `Received from` lines all workers together log per second.
pub(crate) const RECEIVED_LINES_PER_SECOND: u64 = 100;

/// How many warnings of one kind are logged per second.
const WARNINGS_PER_SECOND: u64 = 1;

/// How many bytes of a failed handler's reason a warning shows.
const REASON_BYTES: usize = 200;

/// What a failed handler wrote into its reply, its reason: shown after
/// `: `, escaped so that it can neither forge log lines nor drive a
/// terminal, and cut at [`REASON_BYTES`]; nothing when it wrote nothing.
pub(crate) struct Reason<'a>(pub &'a [u8]);

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        let shown = &self.0[..self.0.len().min(REASON_BYTES)];
        let cut = if self.0.len() > REASON_BYTES {
            "..."
        } else {
            ""
        };
        write!(f, ": {}{cut}", shown.escape_ascii())
    }
}

/// A kind of warning the pipeline logs, each throttled on its own so that
/// a flood of one kind does not hide another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Warning {
    Oversize,
    RateLimited,
    Loop,
    QueueFull,
    ReceiveError,
    ControlTruncated,
    ReplyOversize,
    HandlerPanic,
    HandlerFailed,
    SendFailed,
}

impl Warning {
    const ALL: [Warning; 10] = [
        Warning::Oversize,
        Warning::RateLimited,
        Warning::Loop,
        Warning::QueueFull,
        Warning::ReceiveError,
        Warning::ControlTruncated,
        Warning::ReplyOversize,
        Warning::HandlerPanic,
        Warning::HandlerFailed,
        Warning::SendFailed,
    ];

    /// What the closing count of held-back lines calls them.
    fn plural(self) -> &'static str {
        match self {
            Warning::Oversize => "oversize datagrams",
            Warning::RateLimited => "rate-limited sources",
            Warning::Loop => "datagrams refused by the loop guard",
            Warning::QueueFull => "datagrams dropped on a full queue",
            Warning::ReceiveError => "receive errors",
            Warning::ControlTruncated => "cut control messages",
            Warning::ReplyOversize => "oversize replies",
            Warning::HandlerPanic => "handler panics",
            Warning::HandlerFailed => "handler failures",
            Warning::SendFailed => "failed sends",
        }
    }
}

/// The line that stands for `n` `Received from` lines not logged.
fn received_held_back(n: u64) {
    if n > 0 {
        log::info!(
            target: RECEIVED_TARGET,
            "{n} more `Received from` lines not shown"
        );
    }
}

/// The pipeline's log throttles: one per kind of warning, and one for the
/// `Received from` lines, which are logged only if `log_requests`.
#[derive(Debug)]
pub(crate) struct Warnings {
    kinds: [Throttle; Warning::ALL.len()],
    received: Throttle,
    log_requests: bool,
}

impl Default for Warnings {
    /// A library's default: no line per request.
    fn default() -> Warnings {
        Warnings::new(false)
    }
}

impl Warnings {
    pub(crate) fn new(log_requests: bool) -> Warnings {
        Warnings {
            kinds: Warning::ALL.map(|_| Throttle::new(WARNINGS_PER_SECOND)),
            received: Throttle::new(RECEIVED_LINES_PER_SECOND),
            log_requests,
        }
    }

    /// Logs `message` at `level` if its kind is under its cap this second,
    /// with a count of the lines of that kind held back before it.
    pub(crate) fn log(&self, kind: Warning, level: log::Level, message: fmt::Arguments<'_>) {
        let a: Admission = self.kinds[kind as usize].admit();
        if a.admitted {
            log::log!(level, "{message}{}", a.more());
        }
    }

    /// How many of `n` `Received from` lines may be logged now, at one
    /// clock reading for all; says how many were held back before.
    /// None unless the configuration asked for them.
    pub(crate) fn admit_received(&self, n: usize) -> usize {
        if !self.log_requests {
            return 0;
        }
        let (admitted, held_back) = self.received.admit_many(n as u64);
        received_held_back(held_back);
        admitted as usize
    }

    /// Reports what was held back and not yet reported, once every thread
    /// that logs has stopped.
    pub(crate) fn flush(&self) {
        received_held_back(self.received.take_held_back());
        for kind in Warning::ALL {
            let n = self.kinds[kind as usize].take_held_back();
            if n > 0 {
                log::warn!("{n} more warnings about {} not shown", kind.plural());
            }
        }
    }
}
