//! The server binary's own pieces, apart from what both binaries share
//! (`cli`): its signals, its log file, and on Linux what a service manager
//! passes it and the upgrade in place.

// The process's signal dispositions and mask: `unsafe`, so the file sits
// with the crate's other `unsafe` code in src/sys/, but it is this
// binary's: the library installs no signal handler.
#[cfg(unix)]
#[allow(unsafe_code)]
#[deny(clippy::undocumented_unsafe_blocks)]
#[path = "../../sys/signal.rs"]
pub mod dispositions;
pub mod log_file;
#[cfg(target_os = "linux")]
pub mod service;
pub mod signals;
#[cfg(target_os = "linux")]
pub mod upgrade;
