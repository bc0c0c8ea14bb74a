//! Reading many datagrams with one `recvmmsg` call.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

use super::addr;
use super::cmsg::{space, Buf, Decoder};
use super::{empty_iovec, zeroed_mmsghdr};
use crate::sys::datagram::{closed, is_timeout, Meta};
use crate::sys::wake::{wait_readable, Readiness, Wake};

/// Room for every control message a datagram may bring: a dual-stack socket
/// asks for both `IPV6_PKTINFO` and `IP_PKTINFO`, and an IPv4 request gets
/// both; `UDP_GRO` would add a segment size.
const ROOM: usize =
    space::<libc::in6_pktinfo>() + space::<libc::in_pktinfo>() + space::<libc::c_int>();

/// Reads many datagrams with one `recvmmsg` call.
pub(crate) struct Reader {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<Buf<ROOM>>,
}

// SAFETY: the raw pointers inside are only set and used within one call to
// `read`, on the thread that owns the reader.
unsafe impl Send for Reader {}

impl Reader {
    pub(crate) fn new(batch: usize) -> Reader {
        let batch = batch.max(1);
        Reader {
            hdrs: vec![zeroed_mmsghdr(); batch],
            iovs: vec![empty_iovec(); batch],
            addrs: vec![addr::storage(); batch],
            cmsgs: vec![Buf::new(); batch],
        }
    }

    /// Fills `bufs` from the front with datagrams (each buffer's length
    /// becomes the bytes received, up to its capacity) and describes each
    /// in `out`. Blocks for the first only (on a blocking socket), then
    /// takes whatever else is already waiting. Once the reading side is
    /// shut it fails with [`closed`](crate::sys::datagram::closed).
    #[cfg(any(feature = "bench", test))]
    pub(crate) fn read(
        &mut self,
        sock: &UdpSocket,
        bufs: &mut [Vec<u8>],
        out: &mut Vec<Meta>,
    ) -> io::Result<()> {
        self.read_with(sock, bufs, out, libc::MSG_WAITFORONE)
    }

    /// Like `read`, but never waits: `WouldBlock` when nothing is there.
    pub(crate) fn try_read(
        &mut self,
        sock: &UdpSocket,
        bufs: &mut [Vec<u8>],
        out: &mut Vec<Meta>,
    ) -> io::Result<()> {
        self.read_with(sock, bufs, out, libc::MSG_DONTWAIT)
    }

    /// Like [`try_read`](Reader::try_read), but when nothing is there it
    /// sleeps until something is ([`Readiness::Socket`], with `out` filled),
    /// or until `wake` is woken or nudged, which it says, reading nothing.
    /// The socket itself is never touched, so its other copies read on.
    pub(crate) fn read_or_wake(
        &mut self,
        sock: &UdpSocket,
        bufs: &mut [Vec<u8>],
        out: &mut Vec<Meta>,
        wake: &Wake,
    ) -> io::Result<Readiness> {
        out.clear();
        loop {
            match self.try_read(sock, bufs, out) {
                Ok(()) => return Ok(Readiness::Socket),
                Err(e) if is_timeout(&e) => match wait_readable(sock, wake)? {
                    Readiness::Socket => continue,
                    other => return Ok(other),
                },
                Err(e) => return Err(e),
            }
        }
    }

    fn read_with(
        &mut self,
        sock: &UdpSocket,
        bufs: &mut [Vec<u8>],
        out: &mut Vec<Meta>,
        flags: libc::c_int,
    ) -> io::Result<()> {
        out.clear();
        let n = self.prepare(bufs);
        // SAFETY: `prepare` pointed every header into buffers owned by
        // `self` or `bufs`, which outlive the call and are not moved during
        // it, and gave each buffer's true size; `n` is within all of them.
        let rc = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                flags,
                ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.collect(bufs, rc as usize, out);
        if out.is_empty() {
            return Err(closed());
        }
        Ok(())
    }

    /// Points the first headers at `bufs` (emptied), each with its own
    /// address and control buffer; returns how many are ready.
    fn prepare(&mut self, bufs: &mut [Vec<u8>]) -> usize {
        let n = bufs.len().min(self.hdrs.len());
        for (i, buf) in bufs.iter_mut().enumerate().take(n) {
            buf.clear();
            // The kernel writes into the spare capacity through a raw
            // pointer; no reference to uninitialised bytes is made.
            self.iovs[i] = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.capacity(),
            };
            let h = &mut self.hdrs[i];
            h.msg_len = 0;
            h.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.cmsgs[i].as_mut_ptr();
            h.msg_hdr.msg_controllen = ROOM as _;
            h.msg_hdr.msg_flags = 0;
        }
        n
    }

    /// Describes in `out` the `count` datagrams a `recvmmsg` just read into
    /// `bufs`, and gives each buffer its length.
    fn collect(&self, bufs: &mut [Vec<u8>], count: usize, out: &mut Vec<Meta>) {
        for (i, buf) in bufs.iter_mut().enumerate().take(count) {
            let h = &self.hdrs[i];
            // A message with no source address is no datagram: it is what
            // a read returns once the socket's reading side is shut. What
            // came before it is kept.
            let Some(peer) = addr::read(&self.addrs[i], h.msg_hdr.msg_namelen) else {
                break;
            };
            let len = (h.msg_len as usize).min(buf.capacity());
            // SAFETY: the kernel initialised the first `len` bytes.
            unsafe { buf.set_len(len) };
            // `msg_controllen` is a usize on glibc, a u32 on musl.
            #[allow(clippy::unnecessary_cast)]
            let control = self.cmsgs[i].written(h.msg_hdr.msg_controllen as usize);
            out.push(Meta {
                len,
                peer,
                local: destination(Decoder::new(control)),
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                control_truncated: h.msg_hdr.msg_flags & libc::MSG_CTRUNC != 0,
            });
        }
    }
}

/// The address to answer a received datagram from, from its `IP_PKTINFO`
/// or `IPV6_PKTINFO` control message.
///
/// For IPv4 that is `ipi_spec_dst`, the local address the kernel assigns
/// the datagram: the header's destination for unicast, but an address of
/// the interface for a broadcast or multicast request, which no reply may
/// be sent from. An IPv4 request on a dual-stack socket brings both
/// messages; the IPv4 one is preferred for that reason. An IPv6 multicast
/// destination gives `None`: the kernel then chooses.
fn destination(msgs: Decoder<'_>) -> Option<IpAddr> {
    let mut v6 = None;
    for m in msgs {
        if m.level == libc::IPPROTO_IP && m.ty == libc::IP_PKTINFO {
            if let Some(info) = m.read::<libc::in_pktinfo>() {
                let ip = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
                return (!ip.is_unspecified()).then_some(IpAddr::V4(ip));
            }
        } else if m.level == libc::IPPROTO_IPV6 && m.ty == libc::IPV6_PKTINFO {
            if let Some(info) = m.read::<libc::in6_pktinfo>() {
                v6 = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
            }
        }
    }
    let ip = v6?;
    let group = match IpAddr::V6(ip).to_canonical() {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    };
    (!group).then_some(IpAddr::V6(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::SocketAddr;
    use std::time::Duration;

    /// A socket bound to `[::]` with both destination options, as the
    /// server makes one for a dual-stack bind.
    fn dual_stack() -> UdpSocket {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.set_only_v6(false).unwrap();
        let any: SocketAddr = "[::]:0".parse().unwrap();
        s.bind(&any.into()).unwrap();
        super::super::enable_pktinfo(&s, any).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.into()
    }

    #[test]
    fn dual_stack_destinations() {
        // An IPv4 request on a dual-stack socket brings IPV6_PKTINFO and
        // IP_PKTINFO (72 bytes of control messages): both must fit, so the
        // kernel cuts nothing and the IPv4 destination is read whole.
        let server = dual_stack();
        let port = server.local_addr().unwrap().port();
        let mut reader = Reader::new(4);
        let mut bufs = vec![Vec::with_capacity(64)];
        let mut metas = Vec::new();
        for (from, to) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
            let client = UdpSocket::bind(from).unwrap();
            let to: IpAddr = to.parse().unwrap();
            client.send_to(b"hi", (to, port)).unwrap();
            reader.read(&server, &mut bufs, &mut metas).unwrap();
            assert_eq!(metas.len(), 1);
            let m = metas[0];
            assert!(!m.control_truncated, "control messages cut for {from}");
            assert_eq!(m.local, Some(to), "destination of a request from {from}");
            assert_eq!(bufs[0], b"hi");
        }
    }

    #[test]
    fn woken_reader_leaves_the_socket_alone() {
        // What the shutdown does to stop a receiver asleep on an idle
        // socket: the read returns, says it was woken, and the socket still
        // delivers to another copy what arrives after.
        let server = crate::sys::test_support::loopback();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        client.send_to(b"queued", to).unwrap();
        let wake = std::sync::Arc::new(Wake::new().unwrap());
        let mut reader = Reader::new(4);
        let mut bufs: Vec<Vec<u8>> = (0..4).map(|_| Vec::with_capacity(64)).collect();
        let mut metas = Vec::new();
        let r = reader.read_or_wake(&server, &mut bufs, &mut metas, &wake);
        assert_eq!(r.unwrap(), Readiness::Socket);
        assert_eq!(bufs[0], b"queued");
        let copy = server.try_clone().unwrap();
        let waker = wake.clone();
        let blocked = std::thread::spawn(move || {
            let r = reader.read_or_wake(&server, &mut bufs, &mut metas, &waker);
            (r.map_err(|e| e.kind()), metas.len())
        });
        std::thread::sleep(Duration::from_millis(50));
        wake.wake();
        let (r, read) = blocked.join().unwrap();
        assert_eq!((r, read), (Ok(Readiness::Woken), 0));
        client.send_to(b"after", to).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = copy.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after");
    }

    #[test]
    fn ipv4_mapped_multicast_is_no_source() {
        let mut buf = Buf::<ROOM>::new();
        // SAFETY: all-zero is a valid `in6_pktinfo` (integers and bytes).
        let mut info: libc::in6_pktinfo = unsafe { mem::zeroed() };
        info.ipi6_addr.s6_addr = "::ffff:224.0.0.1".parse::<Ipv6Addr>().unwrap().octets();
        let mut enc = super::super::cmsg::Encoder::after(&mut buf, 0);
        assert!(enc.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, info));
        let len = enc.len();
        assert_eq!(destination(Decoder::new(buf.written(len))), None);
    }
}
