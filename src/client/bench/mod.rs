//! The load generator behind the client binary's `bench`.
//!
//! Every request carries a unique 8-byte id at the start of its payload,
//! padded to the payload size with fixed filler. A reply is matched to its
//! request by that id and checked byte for byte against what the request
//! asks for: its greeting, or itself from an echo service ([`Expect`]).
//! A service whose replies carry nothing of the request is measured with
//! [`Expect::Any`]: any reply is taken, for the oldest request in flight
//! on its socket.
//! Each request sent while measuring ends in exactly one of `replies` or
//! `lost`; `bad`, `duplicates` and `late` count datagrams that arrived on
//! top of that, and a reply later than the timeout is `late`, its request
//! `lost`: no round-trip time counted exceeds the timeout.
//!
//! In an open loop a request that cannot leave within [`MAX_LAG`] of its
//! due time never does: it counts as `unsent`, so that `sent + unsent` is
//! every request the rate asks for, and the report says when the generator
//! fell behind.
//!
//! ```no_run
//! use udp_greeter::client::bench::{run, BenchConfig};
//!
//! let mut config = BenchConfig::new("127.0.0.1:9999".parse()?);
//! config.window = 64;
//! let report = run(&config)?;
//! println!("{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// The choices as clap values, for the client binary's flags.
#[cfg(feature = "cli")]
mod choices;
mod config;
mod generator;
mod payload;
mod report;
mod table;

pub use config::{BenchConfig, Expect, Pacing, Sending, MAX_SOCKETS};
pub use report::{BenchReport, Phase, Progress, Rtt};
pub use table::MAX_SLOTS;

use std::time::Duration;

use crate::error::Result;
use generator::Generator;

/// Bytes of a request that carry its id: 8, which makes it also the
/// smallest payload a run can send.
///
/// Each request starts with a number unique within the run (a `u64`,
/// little-endian), and the rest of its payload is fixed filler. The id
/// comes back in the greeting, so each reply finds its request, and a
/// duplicate, a reply to a request already counted lost, or a stranger's
/// datagram is told apart from it; the filler is checked byte for byte,
/// so a server that damages a payload is caught.
pub const ID_BYTES: usize = 8;

use crate::sys::BATCH;

/// Open loop: how late a request may leave and still count as sent on
/// time. One later than that is skipped and counted as `unsent`: sending it
/// would bunch the load up and report a rate the generator did not keep.
pub const MAX_LAG: Duration = Duration::from_millis(10);

/// The longest the generator sends before it reads replies and counts
/// expiries again, so that a backlog never keeps replies waiting long.
const TURN: Duration = Duration::from_micros(500);

/// Runs the load described by `config` and reports what it measured.
pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    run_with(config, |_| {})
}

/// Like [`run`], and hands the run so far to `progress` about once a
/// second, warm-up included.
pub fn run_with(config: &BenchConfig, progress: impl FnMut(&Progress)) -> Result<BenchReport> {
    config.validate()?;
    let mut generator = Generator::new(config)?;
    generator.run(progress)?;
    Ok(generator.report())
}
