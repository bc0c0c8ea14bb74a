//! A threaded UDP greeting server and its client.
//!
//! The server answers every datagram `data`, from any sender, with the bytes
//! `Hello, ` + `data` + `!` sent back to that sender. One **receiver** thread
//! reads datagrams into a bounded queue; a pool of **worker** threads formats
//! the greetings and sends them on their own clones of the socket. A
//! [`Shutdown`] handle stops it gracefully: what was already queued is still
//! answered, every thread is joined, and the final counters are returned.
//! `docs/architecture.md` draws the threads and the shutdown sequence.
//!
//! The library installs no signal handler: the `udp-greeter` binary wires
//! Ctrl-C and SIGTERM to [`Shutdown::trigger`], so one process may run many
//! servers (as the tests do).
//!
//! ```
//! use udp_greeter::{Client, Config, Server};
//!
//! // Port 0: the OS chooses a free port.
//! let server = Server::bind(Config::new("127.0.0.1:0".parse()?))?;
//! let client = Client::new(server.local_addr())?;
//! assert_eq!(client.greet(b"Michael")?, b"Hello, Michael!");
//!
//! let stats = server.shutdown()?;
//! assert_eq!(stats.replied, 1);
//! assert!(stats.is_balanced());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(rust_2018_idioms, unreachable_pub, missing_debug_implementations)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bench;
mod buffer;
mod client;
mod config;
mod error;
mod greeting;
mod handler;
mod metrics;
mod ratelimit;
mod receiver;
mod reporter;
mod server;
mod shutdown;
mod spin;
mod stats;
mod throttle;
mod transport;
mod worker;

pub use crate::bench::{BenchConfig, BenchReport};
pub use crate::client::{Client, DEFAULT_RETRIES, DEFAULT_TIMEOUT};
pub use crate::config::{Config, DEFAULT_BIND, DEFAULT_QUEUE, DEFAULT_RECV_BUFFER};
pub use crate::error::{Error, Result};
pub use crate::greeting::{greet, greet_into, MAX_DATAGRAM, MAX_GREETABLE, PREFIX, SUFFIX};
pub use crate::handler::{Greeter, Handler};
pub use crate::ratelimit::{RateLimiter, DEFAULT_SLOTS};
pub use crate::server::Server;
pub use crate::shutdown::Shutdown;
pub use crate::stats::Snapshot;

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn send_sync() {
        assert_send_sync::<crate::Server>();
        assert_send_sync::<crate::Client>();
        assert_send_sync::<crate::Shutdown>();
        assert_send_sync::<crate::Error>();
        assert_send_sync::<crate::Config>();
        assert_send_sync::<crate::Snapshot>();
        assert_send_sync::<crate::RateLimiter>();
    }
}
