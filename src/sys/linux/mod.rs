//! Linux: batched reads and writes, segmented sends, destination addresses.

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

use socket2::Socket;

mod addr;
mod cmsg;
mod recv;
mod send;

pub(crate) use recv::Reader;
pub(crate) use send::{Segmentation, Writer};

/// `UDP_SEGMENT` from `linux/udp.h`; the libc crate has it only for some
/// Linux targets.
const UDP_SEGMENT: libc::c_int = 103;

/// Asks the kernel for each request's destination address, so the reply
/// can leave from it.
pub(super) fn enable_pktinfo(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    match addr {
        SocketAddr::V4(_) => set_flag(fd, libc::IPPROTO_IP, libc::IP_PKTINFO),
        SocketAddr::V6(_) => {
            set_flag(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
            // A dual-stack socket also sees IPv4 requests, as mapped
            // addresses; their destination comes as IP_PKTINFO.
            let _ = set_flag(fd, libc::IPPROTO_IP, libc::IP_PKTINFO);
            Ok(())
        }
    }
}

fn set_flag(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` outlives the call and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&on as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the kernel segments datagrams for this socket: asked once per
/// socket (`Segmentation`), since a kernel before 4.18 would silently
/// ignore the control message and send one large datagram instead.
fn gso_supported(sock: &UdpSocket) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` outlive the call and describe each other.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0
}

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: `mmsghdr` is plain data for which all-zero is valid (null
    // pointers, zero lengths); the fields are filled in before each use.
    unsafe { mem::zeroed() }
}

fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }
}
