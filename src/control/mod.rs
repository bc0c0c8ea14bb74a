//! Beside the datagram's path: stopping, counting, reporting. Nothing here
//! touches a datagram; the pipeline writes the counters and reads the
//! shutdown flag, these threads read them.

pub(crate) mod busy;
pub(crate) mod shutdown;
pub(crate) mod socket_drops;
pub(crate) mod stats;
pub(crate) mod throttle;

pub(crate) mod probe;
pub(crate) mod reporter;
#[cfg(target_os = "linux")]
pub(crate) mod watchdog;

#[cfg(feature = "metrics")]
pub(crate) mod metrics;
#[cfg(feature = "metrics")]
pub(crate) mod process;
