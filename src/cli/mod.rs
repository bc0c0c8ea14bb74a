//! What the two binaries share on the command line: value parsers with
//! messages in words, the reading of `UDP_GREETER_*` variables, the order
//! of `--help`, `--generate` (man page, shell completions), and their lines
//! on stderr.
//!
//! The binaries' support, not part of the library's API: hidden from its
//! documentation, and free to change with the binaries.

#[cfg(feature = "bench")]
mod choices;
mod env;
mod generate;
mod output;
mod value;

pub use env::parse;
pub use output::{error, fail, say, stdout_failed};
pub use value::{
    bind_addr, boolish, duration, duration_or_off, parse_addr, parse_duration, peer_addr, span,
    whole, Addr, Whole, DAY, HOUR, MILLISECOND, SECOND,
};
