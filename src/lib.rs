//! A threaded UDP greeting server and its client.
//!
//! The server answers every datagram `data`, from any sender, with the bytes
//! `Hello, ` + `data` + `!` sent back to that sender. It is the server of
//! the UDP chapter of Liao Xuefeng's Python tutorial (`udp_server.py` in
//! `michaelliao/learn-python3`), with the threads that chapter left out
//! "because the example is simple".
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
//! # From the tutorial's loop to threads
//!
//! The tutorial answers in one loop: read a datagram, answer it, read the
//! next. While one answer waits (on a database, say), nobody else is
//! answered, and what arrives meanwhile piles up in the kernel's receive
//! buffer, which drops the excess without anyone seeing it. So here:
//!
//! - one **receiver** thread only reads. It drops what it must (too large,
//!   a loop, over the rate limit) and queues the rest, and by default it
//!   never waits for a worker: on a full queue it drops the datagram and
//!   counts it ([`QueueFull::Wait`] waits for room instead, leaving a
//!   burst in the socket's buffer, whose overflow the kernel counts);
//! - the queue from the receiver to the workers is bounded
//!   ([`Config::queue`]), so memory stays fixed whatever arrives;
//! - a pool of **worker** threads ([`Config::workers`]) asks the
//!   [`Handler`] for each reply ([`Greeter`] by default) and sends it on the
//!   worker's own clone of the socket, so a slow handler holds up one
//!   worker, not the server (while requests are slow, each worker takes
//!   one at a time);
//! - while the queue is short the receiver hands each datagram on as it
//!   reads it, so a worker answers while the next is read; once a backlog
//!   builds, each thread reads or sends up to 32 datagrams per system call
//!   on Linux, and runs of replies to one peer leave as one segmented send.
//!
//! # A service of one's own
//!
//! The greeting is one [`Handler`]; the engine serves any request-reply
//! service. [`Server::builder`] gives each worker a handler of its own,
//! a clone ([`Builder::handler`]) or one a factory makes for it
//! ([`Builder::handler_factory`]), so a handler may hold state no other
//! thread touches, such as a database connection, without a lock. It may
//! serve a socket it is given ([`Builder::socket`]) instead of binding one.
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
//!     .handler_factory(|_worker| Ok::<_, std::io::Error>(Counter { answered: 0 }))
//!     .start()?;
//! let stats = server.shutdown()?;
//! assert!(stats.is_balanced());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A handler may also decline ([`Answer::Decline`]) or fail
//! ([`Answer::Fail`]), each counted apart, and says what its own replies
//! look like ([`Handler::is_reply`]), so that a forged loop between two
//! instances ends at the first turn.
//!
//! # Shutdown
//!
//! A [`Shutdown`] handle stops the server in order: the receiver stops
//! reading, what was already queued is still answered, every thread is
//! joined, and [`Server::join`] returns the final counters. Every datagram
//! read ends in exactly one fate, so the counters balance
//! ([`Snapshot::is_balanced`]).
//!
//! The library installs no signal handler: the `udp-greeter` binary wires
//! Ctrl-C, SIGTERM and SIGHUP to [`Shutdown::trigger`], so one process may
//! run many servers (as the tests do).
//!
//! # Guides
//!
//! The guides are Markdown files shipped in the crate's package, under
//! `docs/`; docs.rs serves them in the crate's source view, where these
//! links lead (in a checkout, the same files sit beside `Cargo.toml`):
//!
//! - [the tutorial](https://docs.rs/crate/udp-greeter/latest/source/docs/tutorial.md):
//!   from the tutorial's Python pair to these threads, step by step, each
//!   step with code to run: the one-thread loop in Rust, why it is not
//!   enough, the receiver, queue and workers, a handler of one's own,
//!   graceful shutdown, batching.
//! - [the architecture](https://docs.rs/crate/udp-greeter/latest/source/docs/architecture.md):
//!   every thread and what wakes it, the source tree that mirrors them, the
//!   table of fates, the memory bound, the shutdown sequence, and why each
//!   choice was made.
//! - [the protocol](https://docs.rs/crate/udp-greeter/latest/source/docs/protocol.md):
//!   the bytes on the wire, what happens to every kind of input, the loop
//!   guard.
//! - [operations](https://docs.rs/crate/udp-greeter/latest/source/docs/operations.md):
//!   running the binary as a service: settings, signals, logs, metrics,
//!   tuning, load balancers.
//! - [the benchmarks](https://docs.rs/crate/udp-greeter/latest/source/docs/benchmarks.md):
//!   how the server compares with a one-thread loop, each figure with its
//!   command and date.
//!
//! # Features
//!
//! All on by default: `metrics` (the Prometheus endpoint,
//! [`Config::metrics_addr`]), `bench` (the load generator,
//! `client::bench`) and `cli` (what the two binaries need:
//! argument parsing, logging, signals). `cargo build --no-default-features`
//! builds the library alone.

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
// The binaries' command line, feature `cli`: their support, not the API.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
mod config;
mod error;
mod handler;
mod protocol;
mod server;
// Socket activation, sd_notify, the socket handed on to an upgrade.
#[cfg(target_os = "linux")]
pub mod service;

pub use crate::client::{Client, DEFAULT_RETRIES, DEFAULT_TIMEOUT};
pub use crate::config::{
    default_workers, Config, QueueFull, DEFAULT_BIND, DEFAULT_METRICS_NAMESPACE, DEFAULT_QUEUE,
    DEFAULT_RECV_BUFFER, DEFAULT_SERVICE_PORTS, MAX_QUEUE, MAX_WORKERS,
};
pub use crate::control::shutdown::Shutdown;
pub use crate::control::stats::{Counters, Snapshot};
pub use crate::error::{Error, Result};
pub use crate::handler::{Answer, Greeter, Handler, Request};
pub use crate::pipeline::context::RECEIVED_TARGET;
pub use crate::pipeline::ratelimit::{RateLimiter, DEFAULT_SLOTS};
pub use crate::protocol::{
    greet, greet_into, is_greeting, MAX_DATAGRAM, MAX_GREETABLE, PREFIX, SUFFIX,
};
pub use crate::server::{Builder, Server};

/// What a binary needs of the process's signal dispositions: the library
/// itself never installs a handler.
#[cfg(unix)]
pub mod signals {
    pub use crate::sys::signal::{
        block_sigusr2, block_sigusr2_in_child, hangup_ignored, ignore_hangup, take_pending_sigusr2,
        wait_sigusr2,
    };
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
