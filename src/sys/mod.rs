//! The operating-system layer: binding, reading and writing datagrams in
//! batches, waiting for readability. The only `unsafe` code of the crate
//! lives in this folder, each block behind a safe function.
//!
//! On Linux datagrams move in batches (`recvmmsg`/`sendmmsg`), runs of
//! replies to one peer leave as one segmented send (`UDP_SEGMENT`), and a
//! socket bound to a wildcard address learns the address each request was
//! sent to (`IP_PKTINFO`, `IPV6_RECVPKTINFO`) so the reply leaves from that
//! same address: otherwise a host with several addresses would answer from
//! whichever the routing table picks, and a client that `connect()`ed its
//! socket would drop the reply. Elsewhere one datagram moves per call.

mod datagram;
mod socket;

#[cfg(target_os = "linux")]
mod linux;

// Also built for tests on Linux, so the fallback is compiled and exercised
// where the project's CI runs.
#[cfg(any(not(target_os = "linux"), test))]
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod portable;

#[cfg(feature = "bench")]
mod poll;

#[cfg(unix)]
pub(crate) mod signal;

#[cfg(feature = "metrics")]
pub(crate) mod process;

pub(crate) use datagram::{is_timeout, is_transient, Meta, Outgoing};
#[cfg(feature = "bench")]
pub(crate) use poll::wait_readable;
pub(crate) use socket::bind;
#[cfg(feature = "bench")]
pub(crate) use socket::{client_socket, TimerSlack};

#[cfg(target_os = "linux")]
pub(crate) use linux::{Reader, Writer};
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{Reader, Writer};

#[cfg(all(test, unix))]
pub(crate) use socket::break_for_test;
