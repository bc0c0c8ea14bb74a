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
//! Ctrl-C, SIGTERM and SIGHUP to [`Shutdown::trigger`], so one process may
//! run many servers (as the tests do).
//!
//! Features, all on by default: `metrics` (the Prometheus endpoint,
//! [`Config::metrics_addr`]), `bench` (the load generator,
//! `client::bench`) and `cli` (what the two binaries need:
//! argument parsing, logging, signals). `cargo build --no-default-features`
//! builds the library alone.
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
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(rust_2018_idioms, unreachable_pub, missing_debug_implementations)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

// The datagram's path, and what stands beside it.
mod control;
mod pipeline;
// The only module allowed `unsafe`: the operating system's interfaces,
// each behind a safe function.
#[allow(unsafe_code)]
mod sys;

pub mod client;
mod config;
mod error;
mod handler;
mod protocol;
mod server;

pub use crate::client::{Client, DEFAULT_RETRIES, DEFAULT_TIMEOUT};
pub use crate::config::{
    Config, DEFAULT_BIND, DEFAULT_QUEUE, DEFAULT_RECV_BUFFER, MAX_QUEUE, MAX_WORKERS,
};
pub use crate::control::shutdown::Shutdown;
pub use crate::control::stats::{Counters, Snapshot};
pub use crate::error::{Error, Result};
pub use crate::handler::{Answer, Greeter, Handler, Request};
pub use crate::pipeline::context::RECEIVED_TARGET;
pub use crate::pipeline::ratelimit::{RateLimiter, DEFAULT_SLOTS};
pub use crate::protocol::{greet, greet_into, MAX_DATAGRAM, MAX_GREETABLE, PREFIX, SUFFIX};
pub use crate::server::Server;

/// What a binary needs of the process's signal dispositions: the library
/// itself never installs a handler.
#[cfg(unix)]
pub mod signals {
    pub use crate::sys::signal::{hangup_ignored, ignore_hangup};
}

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
        assert_send_sync::<crate::Counters>();
        assert_send_sync::<crate::RateLimiter>();
    }
}
