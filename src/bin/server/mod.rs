//! The server binary's own pieces, apart from what both binaries share
//! (`udp_greeter::cli`): its signals and its log file.

pub mod log_file;
pub mod signals;
