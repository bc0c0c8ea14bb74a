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

use std::io;
use std::net::{IpAddr, SocketAddr};

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

/// One datagram as read: how many bytes, from whom, and to which address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    /// Bytes in the buffer; with `truncated`, the datagram was larger.
    pub len: usize,
    pub peer: Option<SocketAddr>,
    /// The address the datagram was sent to, when the socket is bound to a
    /// wildcard address and the platform says.
    pub local: Option<IpAddr>,
    pub truncated: bool,
    /// The kernel had more control messages than the buffer had room for
    /// (`MSG_CTRUNC`): `local` may be missing.
    pub control_truncated: bool,
}

/// One datagram to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    pub payload: &'a [u8],
    pub peer: SocketAddr,
    /// The source address to send from, if not the socket's own.
    pub local: Option<IpAddr>,
}

/// Whether a receive error is worth logging and carrying on after, rather
/// than a sign that the socket itself is broken.
pub(crate) fn is_transient(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        err.kind(),
        Interrupted | WouldBlock | TimedOut | ConnectionRefused | ConnectionReset | OutOfMemory
    ) {
        return true;
    }
    #[cfg(unix)]
    {
        matches!(
            err.raw_os_error(),
            Some(
                libc::ENOBUFS
                    | libc::ENOMEM
                    | libc::EHOSTUNREACH
                    | libc::ENETUNREACH
                    | libc::EHOSTDOWN
                    | libc::ENETDOWN
                    | libc::EPROTO
            )
        )
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Whether the error is only a read timeout running out.
pub(crate) fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient() {
        use io::ErrorKind::*;
        for kind in [Interrupted, WouldBlock, TimedOut, ConnectionRefused] {
            assert!(is_transient(&kind.into()), "{kind:?}");
        }
        #[cfg(unix)]
        for errno in [libc::ENOBUFS, libc::EHOSTUNREACH, libc::ENETDOWN] {
            assert!(
                is_transient(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        #[cfg(unix)]
        for errno in [libc::EBADF, libc::ENOTSOCK, libc::EINVAL, libc::EFAULT] {
            assert!(
                !is_transient(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        assert!(is_timeout(&WouldBlock.into()));
        assert!(!is_timeout(&Interrupted.into()));
    }
}
