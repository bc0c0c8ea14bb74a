//! What the two binaries share on the command line: value parsers with
//! messages in words, the reading of `UDP_GREETER_*` variables, the order
//! of `--help`, `--generate` (man page, shell completions), and their lines
//! on stderr.
//!
//! A module of each binary (`mod cli;` beside it), not of the library, so
//! it is free to change with the binaries; each uses part of it.

mod env;
mod generate;
mod output;
mod value;

pub use env::parse;
pub use output::{error, fail, say, stdout_failed};
pub use value::{
    bind_addr, boolish, duration, duration_or_off, peer_addr, whole, Addr, DAY, HOUR, MILLISECOND,
};
