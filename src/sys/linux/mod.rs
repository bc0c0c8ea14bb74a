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

/// `SO_MEMINFO` from `asm-generic/socket.h` (Linux 4.6 and later); the
/// libc crate has only the offsets into what it returns. SPARC numbers its
/// socket options apart.
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_MEMINFO: libc::c_int = 55;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_MEMINFO: libc::c_int = 0x39;

/// The kernel's count of datagrams dropped at `sock` (its `sk_drops`, the
/// `SK_MEMINFO_DROPS` slot of `SO_MEMINFO`): one getsockopt, nothing on
/// the path of a datagram.
pub(crate) fn socket_drops(sock: &UdpSocket) -> io::Result<u32> {
    const SLOTS: usize = libc::SK_MEMINFO_DROPS as usize + 1;
    let mut info = [0u32; SLOTS];
    let mut len = mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` and `len` outlive the call and describe each other;
    // the kernel writes at most `len` bytes into `info`, and into `len`
    // how many it wrote.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if (len as usize) < mem::size_of_val(&info) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel's SO_MEMINFO has no drop count",
        ));
    }
    Ok(info[SLOTS - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket nobody reads, sent more than its buffer holds: the kernel
    /// counts each datagram it could not keep.
    #[test]
    fn drops_are_counted() {
        let sink = crate::sys::test_support::loopback();
        let sender = crate::sys::test_support::loopback();
        socket2::SockRef::from(&sink)
            .set_recv_buffer_size(4096)
            .unwrap();
        assert_eq!(socket_drops(&sink).unwrap(), 0);
        let to = sink.local_addr().unwrap();
        for _ in 0..200 {
            sender.send_to(&[7; 512], to).unwrap();
        }
        let dropped = socket_drops(&sink).unwrap();
        let mut kept = 0;
        sink.set_nonblocking(true).unwrap();
        while sink.recv(&mut [0; 600]).is_ok() {
            kept += 1;
        }
        assert!(dropped > 0, "kept {kept}");
        assert_eq!(kept + dropped, 200);
    }
}
