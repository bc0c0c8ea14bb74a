//! A threaded UDP greeting server and its client, and the engine under
//! them for request-reply services of one's own.
//!
//! The server answers every datagram `data` with `Hello, ` + `data` + `!`:
//! the server of the UDP chapter of Liao Xuefeng's Python tutorial
//! (`udp_server.py`), with the threads that chapter left out.
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
//!
//! # The engine
//!
//! One **receiver** thread only reads: it drops what it must (too large, a
//! loop, over the rate limit, a full queue), counting each, and queues the
//! rest on a bounded queue ([`Config::queue`]), never waiting for a
//! worker unless told to wait for room ([`Config::queue_full`]). A pool of **workers** ([`Config::workers`]) asks a [`Handler`]
//! for each reply and sends it on its own clone of the socket, so a slow
//! handler holds up one worker, not the server.
//!
//! [`Server::builder`] gives each worker a handler of its own: a clone
//! ([`Builder::handler`]) or one made for it, at once and on the caller's
//! thread ([`Builder::handler_per_worker`]; [`Builder::handler_factory`]
//! when making it can fail). So a handler may hold state no other thread
//! touches, such as a database connection, without a lock.
//!
//! ```
//! use udp_greeter::{Answer, Config, Handler, Request, Server};
//!
//! /// Answers each request with how many this worker answered before.
//! struct Counter {
//!     answered: u64,
//! }
//!
//! impl Handler for Counter {
//!     fn respond(&mut self, _: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
//!         reply.extend_from_slice(self.answered.to_string().as_bytes());
//!         self.answered += 1;
//!         Answer::Reply
//!     }
//! }
//!
//! let server = Server::builder(Config::new("127.0.0.1:0".parse()?))
//!     .handler_per_worker(|_worker| Counter { answered: 0 })
//!     .start()?;
//! let stats = server.shutdown()?;
//! assert!(stats.is_balanced());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A handler may also decline ([`Answer::Decline`]) or fail
//! ([`Answer::Fail`], what it wrote being the reason its warning shows),
//! each counted apart, and says what its own replies look like
//! ([`Handler::is_reply`]), so that a forged loop between two instances
//! ends at the first turn. A service serves its own metrics beside the
//! engine's ([`Builder::metrics`], feature `metrics`).
//!
//! # Stopping, and what it logs
//!
//! A [`Shutdown`] handle stops the server in order: the receiver stops
//! reading, what was queued is still answered, every thread is joined and
//! [`Server::join`] returns the final counters, which balance: every
//! datagram read ends in exactly one fate ([`Snapshot::is_balanced`]).
//! [`Server::shutdown_within`] does the same within a deadline, and past
//! it names the workers still in their handler.
//!
//! The library installs no signal handler (the `udp-greeter` binary wires
//! Ctrl-C, SIGTERM and SIGHUP to [`Shutdown::trigger`]) and, with a logger
//! installed, logs no line per request unless [`Config::log_requests`] asks.
//!
//! # Guides
//!
//! Markdown files in the crate's package, under `docs/` (docs.rs serves
//! them in the crate's source view, where these links lead):
//! [the tutorial](https://docs.rs/crate/udp-greeter/latest/source/docs/tutorial.md),
//! from the Python pair to these threads step by step;
//! [the architecture](https://docs.rs/crate/udp-greeter/latest/source/docs/architecture.md),
//! every thread, the table of fates, the memory bound, the shutdown, and
//! why each choice was made;
//! [the protocol](https://docs.rs/crate/udp-greeter/latest/source/docs/protocol.md),
//! what happens to every kind of input;
//! [operations](https://docs.rs/crate/udp-greeter/latest/source/docs/operations.md),
//! running the binary as a service;
//! [the benchmarks](https://docs.rs/crate/udp-greeter/latest/source/docs/benchmarks.md),
//! each figure with its command and date.
//!
//! # Features
//!
//! All on by default: `metrics` (the Prometheus endpoint,
//! [`Config::metrics_addr`]), `bench` (the load generator,
//! `client::bench`) and `cli` (what the two binaries need).
//! `cargo build --no-default-features` builds the library alone.

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
// Socket activation, sd_notify, the socket handed on to an upgrade.
#[cfg(target_os = "linux")]
pub mod service;

pub use crate::client::Client;
pub use crate::config::{
    Config, QueueFull, DEFAULT_BIND, DEFAULT_QUEUE, DEFAULT_RECV_BUFFER, DEFAULT_SERVICE_PORTS,
    MAX_QUEUE, MAX_WORKERS,
};
pub use crate::control::shutdown::Shutdown;
pub use crate::control::stats::{Counters, Snapshot};
pub use crate::error::{Error, Result};
pub use crate::handler::{Answer, Greeter, Handler, Request};
pub use crate::pipeline::context::RECEIVED_TARGET;
pub use crate::protocol::{greet, greet_into, is_greeting, MAX_DATAGRAM, MAX_GREETABLE};
pub use crate::server::{Builder, Server};

/// The Prometheus client the metrics endpoint is built on, for a service's
/// own metrics ([`Builder::metrics`]): its registry and metric types.
#[cfg(feature = "metrics")]
pub use prometheus_client;

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
    }
}
