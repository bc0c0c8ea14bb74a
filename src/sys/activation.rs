//! The descriptors of socket activation (sd_listen_fds(3)): what an
//! inherited descriptor is, taking one as the process's own, and handing a
//! socket to a child as descriptor 3. The protocol's variables are read in
//! `crate::service`; only the system calls are here.

use std::fmt;
use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

/// The first descriptor the protocol passes; the others follow it.
pub(crate) const LISTEN_FDS_START: RawFd = 3;

/// The descriptors already taken as a socket of this process's own. An fd
/// is taken at most once: the variables stay in the environment, so a
/// second look would otherwise give a second owner to the same number, or
/// to whatever reused the number after the first owner closed it.
static TAKEN: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

/// What an inherited descriptor is, as far as its socket options tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// Nothing is open at that number.
    Closed,
    /// Open, but not a socket (a file, a pipe, a terminal).
    NotSocket,
    Socket {
        domain: libc::c_int,
        ty: libc::c_int,
        protocol: libc::c_int,
    },
}

impl FdKind {
    /// Whether this is what the server reads: a UDP socket over IPv4 or
    /// IPv6.
    pub(crate) fn is_udp(self) -> bool {
        matches!(
            self,
            FdKind::Socket {
                domain: libc::AF_INET | libc::AF_INET6,
                ty: libc::SOCK_DGRAM,
                protocol: libc::IPPROTO_UDP,
            }
        )
    }
}

/// Words for an error message: "a stream socket", "not open".
impl fmt::Display for FdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (domain, ty, protocol) = match *self {
            FdKind::Closed => return f.write_str("not open"),
            FdKind::NotSocket => return f.write_str("not a socket"),
            FdKind::Socket {
                domain,
                ty,
                protocol,
            } => (domain, ty, protocol),
        };
        let family = match domain {
            libc::AF_INET => "an IPv4",
            libc::AF_INET6 => "an IPv6",
            libc::AF_UNIX => "a Unix",
            libc::AF_NETLINK => "a netlink",
            libc::AF_PACKET => "a packet",
            _ => "a",
        };
        let kind = match ty {
            libc::SOCK_STREAM => "stream",
            libc::SOCK_DGRAM => "datagram",
            libc::SOCK_SEQPACKET => "seqpacket",
            libc::SOCK_RAW => "raw",
            _ => "",
        };
        match (family, kind) {
            // Family does not matter for the first reason to refuse it.
            (_, "stream") => f.write_str("a stream socket"),
            ("an IPv4" | "an IPv6", "datagram") if protocol == libc::IPPROTO_UDP => {
                write!(f, "{family} UDP socket")
            }
            ("an IPv4" | "an IPv6", "datagram") => {
                write!(f, "{family} datagram socket of protocol {protocol}")
            }
            (_, "") => write!(f, "{family} socket of type {ty}"),
            ("a", _) => write!(f, "a {kind} socket of family {domain}"),
            _ => write!(f, "{family} {kind} socket"),
        }
    }
}

/// What descriptor `fd` is. Only asks: nothing about it changes.
pub(crate) fn probe(fd: RawFd) -> io::Result<FdKind> {
    let ty = match socket_option(fd, libc::SO_TYPE) {
        Ok(ty) => ty,
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Ok(FdKind::Closed),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => return Ok(FdKind::NotSocket),
        Err(e) => return Err(e),
    };
    Ok(FdKind::Socket {
        domain: socket_option(fd, libc::SO_DOMAIN)?,
        ty,
        protocol: socket_option(fd, libc::SO_PROTOCOL)?,
    })
}

/// One integer option of level `SOL_SOCKET`.
fn socket_option(fd: RawFd, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid and writable for the call, and
    // `len` is `value`'s size; getsockopt only reads the descriptor's state
    // (on a number that is not open or not a socket it fails, harmlessly).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Marks `fd` close-on-exec, as sd_listen_fds(3) does with every
/// descriptor it reports: they were passed to this process, not to the
/// programs it may start.
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD takes no argument and touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFD takes an integer and touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Why [`adopt_udp`] did not take a descriptor.
#[derive(Debug)]
pub(crate) enum AdoptError {
    /// An earlier call took it already.
    Taken,
    /// It is not a UDP socket.
    Kind(FdKind),
    /// The system calls that look at it failed.
    Io(io::Error),
}

/// Takes inherited descriptor `fd` as a UDP socket of this process's own,
/// close-on-exec, once it is checked to be one. Each number is taken once
/// in the life of the process; later calls for it fail with
/// [`AdoptError::Taken`].
///
/// The caller says that `fd` was passed to this process by the socket
/// activation protocol (`LISTEN_FDS`), so that no other part of the
/// program owns it.
pub(crate) fn adopt_udp(fd: RawFd) -> Result<UdpSocket, AdoptError> {
    // A poisoned lock only means another thread panicked while holding
    // it; the list itself is whole (a push is the only change).
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    if taken.contains(&fd) {
        return Err(AdoptError::Taken);
    }
    let kind = probe(fd).map_err(AdoptError::Io)?;
    if !kind.is_udp() {
        return Err(AdoptError::Kind(kind));
    }
    set_cloexec(fd).map_err(AdoptError::Io)?;
    taken.push(fd);
    // SAFETY: `fd` is open and a UDP socket (just checked). The protocol
    // passed it to this process for its own use, so nothing else in the
    // program owns it, and `TAKEN` makes this the only `UdpSocket` ever
    // made from this number: the socket is the descriptor's one owner.
    Ok(unsafe { UdpSocket::from_raw_fd(fd) })
}

/// Makes `cmd`'s child receive `socket` as descriptor 3, not
/// close-on-exec, whatever number it has here. `socket` stays open as long
/// as `cmd` lives, so the command may be spawned later, or again.
pub(crate) fn pass_as_fd3(cmd: &mut Command, socket: OwnedFd) {
    let target = LISTEN_FDS_START;
    let hook = move || -> io::Result<()> {
        let fd = socket.as_raw_fd();
        let rc = if fd == target {
            // dup2 onto itself would leave close-on-exec set: clear it.
            // SAFETY: F_SETFD takes an integer and touches no memory.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }
        } else {
            // The copy at 3 has close-on-exec clear; `fd`, a std socket
            // or a clone of one, has it set and so closes at exec.
            // SAFETY: both are plain numbers; dup2 touches no memory and
            // only replaces what the child had at 3.
            unsafe { libc::dup2(fd, target) }
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it calls dup2 or fcntl, both
    // async-signal-safe, allocates nothing (an OS error is stored inline
    // in io::Error) and takes no lock.
    unsafe {
        cmd.pre_exec(hook);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn kinds() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            probe(udp.as_raw_fd()).unwrap().to_string(),
            "an IPv4 UDP socket"
        );
        assert!(probe(udp.as_raw_fd()).unwrap().is_udp());
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let kind = probe(tcp.as_raw_fd()).unwrap();
        assert_eq!(kind.to_string(), "a stream socket");
        assert!(!kind.is_udp());
        let (unix, _peer) = UnixDatagram::pair().unwrap();
        let kind = probe(unix.as_raw_fd()).unwrap();
        assert_eq!(kind.to_string(), "a Unix datagram socket");
        assert!(!kind.is_udp());
        let file = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(probe(file.as_raw_fd()).unwrap(), FdKind::NotSocket);
        // A number far above anything this process opens.
        assert_eq!(probe(1 << 20).unwrap(), FdKind::Closed);
        assert_eq!(FdKind::Closed.to_string(), "not open");
    }

    #[test]
    fn adopts_once() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(udp);
        let adopted = adopt_udp(fd).unwrap();
        assert_eq!(adopted.local_addr().unwrap(), addr);
        assert!(matches!(adopt_udp(fd), Err(AdoptError::Taken)));
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        match adopt_udp(tcp.as_raw_fd()) {
            Err(AdoptError::Kind(kind)) => assert_eq!(kind.to_string(), "a stream socket"),
            other => panic!("{other:?}"),
        }
    }
}
