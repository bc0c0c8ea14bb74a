//! The server's configuration: what the command line sets.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::greeting::MAX_DATAGRAM;

/// The address the server binds when none is given: the tutorial's.
pub const DEFAULT_BIND: &str = "127.0.0.1:9999";

/// How many datagrams may wait for a worker when none is given.
pub const DEFAULT_QUEUE: usize = 1024;

/// How the server runs.
///
/// Start from [`Config::new`] and set what differs:
///
/// ```
/// let mut config = udp_greeter::Config::new("127.0.0.1:0".parse()?);
/// config.workers = 2;
/// config.queue = 64;
/// assert!(config.validate().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The address to bind, IPv4 or IPv6. Port 0 lets the OS choose.
    pub bind: SocketAddr,
    /// How many worker threads format and send replies. At least 1.
    pub workers: usize,
    /// How many datagrams may wait for a worker; more are dropped and
    /// counted as `dropped_queue_full`. At least 1.
    pub queue: usize,
    /// The largest datagram accepted, in bytes (1 to 65,507). A larger one is
    /// counted as `dropped_oversize`, never answered with a truncated greeting.
    pub max_datagram: usize,
    /// Replies per second allowed to each source IP address; 0 turns the
    /// limit off.
    pub rate_limit: u32,
    /// How many replies a source may have at once above its rate; 0 means
    /// the same as `rate_limit`.
    pub rate_burst: u32,
    /// The socket receive buffer to ask the kernel for, in bytes; `None`
    /// keeps the system default. The kernel may grant less (on Linux, at most
    /// `net.core.rmem_max`); the server logs what it got.
    pub recv_buffer: Option<usize>,
    /// Sets `SO_REUSEPORT`, so several processes can share one port.
    pub reuse_port: bool,
    /// How often the server logs its counters and rates; `None` never.
    pub stats_interval: Option<Duration>,
    /// Where to serve `GET /metrics` (Prometheus text format) over HTTP;
    /// `None` serves nothing. Port 0 lets the OS choose, see
    /// [`Server::metrics_addr`](crate::Server::metrics_addr). The endpoint
    /// has no authentication: bind it to a private or loopback address.
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    /// The defaults, bound to `bind`: one worker per CPU but one (the
    /// receiver keeps the last CPU busy under load), at least one; a queue
    /// of 1,024 datagrams, datagrams up to 65,507 bytes, no rate limit.
    pub fn new(bind: SocketAddr) -> Config {
        Config {
            bind,
            workers: num_cpus::get().saturating_sub(1).max(1),
            queue: DEFAULT_QUEUE,
            max_datagram: MAX_DATAGRAM,
            rate_limit: 0,
            rate_burst: 0,
            recv_buffer: Some(DEFAULT_RECV_BUFFER),
            reuse_port: false,
            stats_interval: None,
            metrics_addr: None,
        }
    }

    /// Checks every value, naming the first that the server cannot run with.
    pub fn validate(&self) -> Result<()> {
        if self.workers == 0 {
            return Err(Error::config("workers must be at least 1"));
        }
        if self.queue == 0 {
            return Err(Error::config("queue must be at least 1"));
        }
        if !(1..=MAX_DATAGRAM).contains(&self.max_datagram) {
            return Err(Error::config(format!(
                "max datagram must be from 1 to {MAX_DATAGRAM} bytes"
            )));
        }
        if self.stats_interval == Some(Duration::ZERO) {
            return Err(Error::config("stats interval must be more than 0"));
        }
        Ok(())
    }
}

/// The receive buffer asked for by default: room for a burst of several
/// thousand small datagrams while the receiver is descheduled.
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
    }
}
