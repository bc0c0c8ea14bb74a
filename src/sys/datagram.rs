//! What every platform module shares: the description of a datagram read
//! or to send, and the classification of socket errors.

use std::io;
use std::net::{IpAddr, SocketAddr};

/// How many datagrams one system call reads or sends at most: the
/// server's receiver and workers, and the bench's generator.
pub(crate) const BATCH: usize = 32;

/// One datagram as read: how many bytes, from whom, and to which address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    /// Bytes in the buffer; with `truncated`, the datagram was larger.
    pub len: usize,
    pub peer: SocketAddr,
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
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
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

/// Calls `f` again for as long as it fails with `EINTR`: a signal that
/// interrupted a system call says nothing about the call itself.
pub(crate) fn retry_if_interrupted<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The error a read gives when the socket's reading side was shut
/// (`shutdown(SHUT_RD)`), by whichever process holds a copy of it: every
/// read then returns at once with nothing, so no reader can go on.
pub(crate) fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the socket's reading side was shut",
    )
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
        assert!(!is_transient(&closed()));
    }

    #[test]
    fn retries() {
        let mut calls = 0;
        let r = retry_if_interrupted(|| {
            calls += 1;
            if calls < 3 {
                Err(io::ErrorKind::Interrupted.into())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        let e =
            retry_if_interrupted(|| -> io::Result<()> { Err(io::ErrorKind::WouldBlock.into()) });
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
