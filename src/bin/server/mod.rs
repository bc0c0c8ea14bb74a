//! The server binary's own pieces, apart from what both binaries share
//! (`udp_greeter::cli`): its signals, its log file, and on Linux what a
//! service manager passes it and the upgrade in place.

pub mod log_file;
#[cfg(target_os = "linux")]
pub mod service;
pub mod signals;
#[cfg(target_os = "linux")]
pub mod upgrade;
