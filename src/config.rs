//! The server's configuration: what the command line sets.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::MAX_DATAGRAM;

/// The address bound when none is given: the tutorial's `127.0.0.1:9999`,
/// loopback, so a server started without a second thought answers this
/// machine alone.
pub const DEFAULT_BIND: &str = "127.0.0.1:9999";

/// How many datagrams may wait for a worker by default: 1,024. Longer is
/// not better under overload (`docs/architecture.md`, "Defaults and limits").
/// What comes when it is full is [`QueueFull`]'s to settle.
pub const DEFAULT_QUEUE: usize = 1024;

/// The most worker threads a server may run: 1,024, enough for 10,000
/// requests a second that wait 100 ms each; it keeps a mistyped count from
/// starting thousands of threads.
pub const MAX_WORKERS: usize = 1024;

/// The most datagrams that may wait for a worker: 1,048,576 (2^20), each
/// holding a buffer of `max_datagram` + 1 bytes; it keeps a mistyped length
/// from setting a memory bound no machine meets.
pub const MAX_QUEUE: usize = 1 << 20;

/// What the receiver does with a datagram it has read when the queue has
/// no room for it. Either way the loss is counted: `dropped_queue_full` at
/// the queue, `socket_dropped` at the socket (`docs/architecture.md`, "Why
/// these choices").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueFull {
    /// Drop it (`dropped_queue_full`) and read on: under overload an
    /// answer waits behind the queue and no more.
    #[default]
    Drop,
    /// Wait for a worker to make room, reading nothing meanwhile, so that
    /// what arrives waits in the socket's receive buffer: a burst longer
    /// than the queue (a restart's backlog) is answered whole, but under
    /// sustained overload every answer waits behind the full buffer too.
    Wait,
}

impl QueueFull {
    /// Its name, as the command line gives it.
    pub fn name(self) -> &'static str {
        match self {
            QueueFull::Drop => "drop",
            QueueFull::Wait => "wait",
        }
    }
}

/// The values of the server's `--queue-full`, named as [`QueueFull::name`]
/// names them (feature `cli`).
#[cfg(feature = "cli")]
impl clap::ValueEnum for QueueFull {
    fn value_variants<'a>() -> &'a [Self] {
        &[QueueFull::Drop, QueueFull::Wait]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// How the server runs.
///
/// Start from [`Config::new`] and set what differs, field by field or
/// with struct update syntax. `None` means "off" (or "the system's
/// default") for every optional setting.
///
/// ```
/// use udp_greeter::Config;
///
/// let config = Config {
///     workers: 8,
///     queue: 64,
///     ..Config::new("127.0.0.1:0".parse()?)
/// };
/// assert!(config.validate().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The address to bind, IPv4 or IPv6. Port 0 lets the OS choose.
    /// Not used when the server is given a socket
    /// ([`Builder::socket`](crate::Builder::socket)), nor are
    /// `recv_buffer` and `reuse_port`, which are options of the socket.
    pub bind: SocketAddr,
    /// How many worker threads format and send replies: 1 to
    /// [`MAX_WORKERS`].
    pub workers: usize,
    /// How many datagrams may wait for a worker (1 to [`MAX_QUEUE`]); what
    /// comes beyond is `queue_full`'s to settle.
    pub queue: usize,
    /// What the receiver does when the queue is full: drop the datagram
    /// (the default) or wait for room, leaving the rest in the socket.
    pub queue_full: QueueFull,
    /// The largest datagram accepted, in bytes (1 to 65,507). A larger one is
    /// counted as `dropped_oversize`, never answered with a truncated greeting.
    pub max_datagram: usize,
    /// Replies per second allowed to each source IP address (at least 1);
    /// `None`: no limit.
    pub rate_limit: Option<u32>,
    /// The size of each source's token bucket: how many back-to-back
    /// requests a quiet source gets answered before its rate applies (at
    /// least 1). `None`: the same as `rate_limit`. Needs `rate_limit`.
    pub rate_burst: Option<u32>,
    /// The socket receive buffer to ask the kernel for, in bytes (at least
    /// 1); `None` keeps the system default. The kernel may grant less (on Linux, at most
    /// `net.core.rmem_max`); the server logs what it got.
    pub recv_buffer: Option<usize>,
    /// Sets `SO_REUSEPORT`, so several processes can share one port.
    pub reuse_port: bool,
    /// Refuses datagrams that would start or continue a loop with another
    /// responder, each counted as `dropped_loop`: those from the server's
    /// own address or port, from source port 0 or one of
    /// [`service_ports`](Config::service_ports), and those the handler
    /// recognises as its own replies
    /// ([`Handler::is_reply`](crate::Handler::is_reply)). On by default;
    /// turning it off is unsafe wherever source addresses can be forged,
    /// since one forged datagram can then set two servers answering each
    /// other.
    pub loop_guard: bool,
    /// The source ports refused while the loop guard is on: services that
    /// answer anything ([`DEFAULT_SERVICE_PORTS`] by default). Empty
    /// refuses none; the server's own port and port 0 are refused anyway.
    pub service_ports: Vec<u16>,
    /// Whether to log `Received from ADDR.` at `info` for each request a
    /// worker takes (at most 100 lines a second, under
    /// [`RECEIVED_TARGET`](crate::RECEIVED_TARGET)). Off by default: a
    /// library says nothing per request; the `udp-greeter` binary turns it
    /// on, as the tutorial's server prints it.
    pub log_requests: bool,
    /// How often the server logs its counters and rates; `None` never.
    pub stats_interval: Option<Duration>,
    /// Where to serve `GET /metrics` (Prometheus text format) over HTTP;
    /// `None` serves nothing. Port 0 lets the OS choose, see
    /// [`Server::metrics_addr`](crate::Server::metrics_addr). The endpoint
    /// has no authentication: bind it to a private or loopback address.
    /// Needs the crate's `metrics` feature.
    pub metrics_addr: Option<SocketAddr>,
    /// What every metric's name starts with: `udp_greeter` by default
    /// (`udp_greeter_received_total`, ...). A service built on the engine
    /// names its own; letters, digits and `_`, not starting with a digit.
    pub metrics_namespace: String,
}

impl Config {
    /// The defaults, bound to `bind`: a worker per CPU (at least two), a
    /// queue of 1,024 datagrams that drops what it has no room for,
    /// datagrams up to 65,507 bytes, a 4 MiB receive buffer, no rate limit,
    /// the loop guard on, no line logged per request.
    pub fn new(bind: SocketAddr) -> Config {
        Config {
            bind,
            workers: default_workers(num_cpus::get()),
            queue: DEFAULT_QUEUE,
            queue_full: QueueFull::Drop,
            max_datagram: MAX_DATAGRAM,
            rate_limit: None,
            rate_burst: None,
            recv_buffer: Some(DEFAULT_RECV_BUFFER),
            reuse_port: false,
            loop_guard: true,
            service_ports: DEFAULT_SERVICE_PORTS.to_vec(),
            log_requests: false,
            stats_interval: None,
            metrics_addr: None,
            metrics_namespace: DEFAULT_METRICS_NAMESPACE.to_string(),
        }
    }

    /// Checks every value, naming the first that the server cannot run with.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(Error::config(format!(
                "workers must be from 1 to {MAX_WORKERS}"
            )));
        }
        if !(1..=MAX_QUEUE).contains(&self.queue) {
            return Err(Error::config(format!(
                "queue must be from 1 to {MAX_QUEUE}"
            )));
        }
        if !(1..=MAX_DATAGRAM).contains(&self.max_datagram) {
            return Err(Error::config(format!(
                "max datagram must be from 1 to {MAX_DATAGRAM} bytes"
            )));
        }
        if self.rate_limit == Some(0) {
            return Err(Error::config(
                "rate limit must be at least 1 reply a second",
            ));
        }
        if self.rate_burst == Some(0) {
            return Err(Error::config("rate burst must be at least 1"));
        }
        if self.rate_burst.is_some() && self.rate_limit.is_none() {
            return Err(Error::config("a rate burst needs a rate limit"));
        }
        if self.recv_buffer == Some(0) {
            return Err(Error::config("receive buffer must be at least 1 byte"));
        }
        if self.stats_interval == Some(Duration::ZERO) {
            return Err(Error::config("stats interval must be more than 0"));
        }
        if !is_metric_name(&self.metrics_namespace) {
            return Err(Error::config(
                "metrics namespace must be letters, digits and `_`, not starting with a digit",
            ));
        }
        if self.metrics_addr.is_some() && !cfg!(feature = "metrics") {
            return Err(Error::config(
                "metrics need the crate's `metrics` feature, which this build lacks",
            ));
        }
        Ok(())
    }
}

/// The source ports refused by default: UDP services that answer whatever
/// they are sent (echo, chargen, DNS, NTP, ...; `docs/protocol.md` gives
/// each reason). [`Config::service_ports`] replaces the list.
pub const DEFAULT_SERVICE_PORTS: &[u16] = &[
    7,     // echo
    11,    // active users (systat)
    13,    // daytime
    17,    // quote of the day
    19,    // chargen
    37,    // time
    53,    // DNS
    69,    // TFTP
    123,   // NTP
    137,   // NetBIOS name service
    161,   // SNMP
    1900,  // SSDP
    11211, // memcached
];

/// What every metric's name starts with by default: `udp_greeter`.
pub(crate) const DEFAULT_METRICS_NAMESPACE: &str = "udp_greeter";

/// Whether `s` is a valid start of a Prometheus metric name.
fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The workers a machine with `cpus` CPUs gets by default: one per CPU, and
/// at least two, so a worker asleep in a slow handler leaves another.
pub(crate) fn default_workers(cpus: usize) -> usize {
    cpus.clamp(2, MAX_WORKERS)
}

/// The socket receive buffer asked for by default: 4 MiB, room to ride out
/// a burst while the receiver is descheduled; what the kernel drops when it
/// is full is in none of the fates, only in `socket_dropped`. Linux grants
/// at most `net.core.rmem_max`; the server logs what it got at `debug`.
pub const DEFAULT_RECV_BUFFER: usize = 4 << 20;

impl Default for Config {
    fn default() -> Config {
        // The constant is a valid socket address; the fallback only keeps
        // library code free of `unwrap`.
        let bind = DEFAULT_BIND
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9999)));
        Config::new(bind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "cli")]
    #[test]
    fn queue_full_read_back_by_name() {
        use clap::ValueEnum;
        for q in QueueFull::value_variants() {
            assert_eq!(QueueFull::from_str(q.name(), false), Ok(*q));
        }
        assert_eq!(Config::default().queue_full, QueueFull::Drop);
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.bind.to_string(), DEFAULT_BIND);
        assert!(c.workers >= 1);
        assert_eq!(c.queue, 1024);
        assert_eq!(c.max_datagram, 65_507);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn workers_per_cpu() {
        assert_eq!(default_workers(1), 2);
        assert_eq!(default_workers(2), 2);
        assert_eq!(default_workers(16), 16);
        assert_eq!(default_workers(100_000), MAX_WORKERS);
    }

    #[test]
    fn invalid() {
        let bad = |c: Config| c.validate().unwrap_err().is_config();
        assert!(bad(Config {
            workers: 0,
            ..Config::default()
        }));
        assert!(bad(Config {
            queue: 0,
            ..Config::default()
        }));
        assert!(bad(Config {
            max_datagram: 65_508,
            ..Config::default()
        }));
        assert!(bad(Config {
            workers: MAX_WORKERS + 1,
            ..Config::default()
        }));
        assert!(bad(Config {
            queue: MAX_QUEUE + 1,
            ..Config::default()
        }));
        assert!(bad(Config {
            rate_limit: Some(0),
            ..Config::default()
        }));
        assert!(bad(Config {
            rate_burst: Some(10),
            ..Config::default()
        }));
        for bad_namespace in ["", "9lives", "my-service", "a b"] {
            assert!(bad(Config {
                metrics_namespace: bad_namespace.to_string(),
                ..Config::default()
            }));
        }
        assert!(Config {
            metrics_namespace: "lookup_v2".to_string(),
            ..Config::default()
        }
        .validate()
        .is_ok());
        assert!(Config {
            rate_limit: Some(5),
            rate_burst: Some(10),
            ..Config::default()
        }
        .validate()
        .is_ok());
    }
}
