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

// Every `unsafe` block says why it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

mod clock;
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

// signal.rs, the process's signal dispositions, is the server binary's
// (`mod dispositions` in src/bin/server/mod.rs), not the library's.

#[cfg(feature = "metrics")]
pub(crate) mod process;

// The descriptors of socket activation; `crate::service` reads the
// protocol's variables and calls these.
#[cfg(target_os = "linux")]
pub(crate) mod activation;

// Waking a blocked reader without shutting the socket's reading side, which
// every copy of the socket would see.
#[cfg(target_os = "linux")]
mod wake;

pub(crate) use clock::coarse_nanos;
#[cfg(feature = "bench")]
pub(crate) use datagram::retry_if_interrupted;
pub(crate) use datagram::{is_timeout, is_transient, Meta, Outgoing, BATCH};
#[cfg(feature = "bench")]
pub(crate) use poll::wait_readable;
pub(crate) use socket::{adopt, bind};
#[cfg(feature = "bench")]
pub(crate) use socket::{client_socket, TimerSlack};

#[cfg(target_os = "linux")]
pub(crate) use linux::{socket_drops, Reader, Segmentation, Writer};
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{socket_drops, Reader, Readiness, Segmentation, Wake, Writer};
#[cfg(target_os = "linux")]
pub(crate) use wake::{Readiness, Wake};

#[cfg(all(test, unix))]
pub(crate) use socket::break_for_test;

/// What the platform modules' tests share.
#[cfg(test)]
mod test_support {
    use std::net::UdpSocket;
    use std::time::Duration;

    /// A socket on 127.0.0.1 whose reads give up after 5 s, so that a
    /// datagram that never comes fails the test instead of hanging it.
    pub(crate) fn loopback() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set a read timeout");
        s
    }
}
