//! Socket I/O: binding, and reading and writing datagrams in batches where
//! the platform offers it (`recvmmsg`/`sendmmsg` on Linux), one at a time
//! elsewhere.
//!
//! On Linux it also learns the address each request was sent to
//! (`IP_PKTINFO`, `IPV6_RECVPKTINFO`) when the socket is bound to a wildcard
//! address, and sends the reply from that same address: otherwise a host
//! with several addresses would answer from whichever the routing table
//! picks, and a client that `connect()`ed its socket would drop the reply.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::error::{Error, Result};

/// How long the receiver blocks before it looks at the shutdown flag again.
/// Half the 100 ms within which it must notice a shutdown.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long a worker may block on a full socket send buffer before the reply
/// counts as a send error; bounds how long shutdown can wait for a worker.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

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
}

/// One datagram to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing<'a> {
    pub payload: &'a [u8],
    pub peer: SocketAddr,
    /// The source address to send from, if not the socket's own.
    pub local: Option<IpAddr>,
}

/// Creates, configures and binds the server's socket.
pub(crate) fn bind(config: &Config) -> Result<UdpSocket> {
    let addr = config.bind;
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| Error::bind(addr, e))?;
    if config.reuse_port {
        set_reuse_port(&socket).map_err(|e| Error::bind(addr, e))?;
    }
    if let Some(size) = config.recv_buffer {
        // A refusal is not fatal: the default buffer still works, only
        // bursts are more likely to be dropped by the kernel.
        if let Err(e) = socket.set_recv_buffer_size(size) {
            log::warn!("cannot set receive buffer to {size} bytes: {e}");
        }
    }
    socket
        .bind(&addr.into())
        .map_err(|e| Error::bind(addr, e))?;
    if addr.ip().is_unspecified() {
        if let Err(e) = enable_pktinfo(&socket, addr) {
            log::warn!("replies may leave from another address than requests reached: {e}");
        }
    }
    socket.set_read_timeout(Some(POLL_INTERVAL))?;
    socket.set_write_timeout(Some(SEND_TIMEOUT))?;
    if let Ok(granted) = socket.recv_buffer_size() {
        match config.recv_buffer {
            Some(asked) => {
                log::debug!("receive buffer: asked {asked} bytes, kernel granted {granted}")
            }
            None => log::debug!("receive buffer: {granted} bytes (system default)"),
        }
    }
    Ok(socket.into())
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
)))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not supported on this platform",
    ))
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

/// Whether the error is only the read timeout that lets the receiver look at
/// the shutdown flag.
pub(crate) fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(target_os = "linux")]
use linux::enable_pktinfo;
#[cfg(target_os = "linux")]
pub(crate) use linux::{Reader, Writer};

#[cfg(not(target_os = "linux"))]
use portable::enable_pktinfo;
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{Reader, Writer};

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::ptr;

    use socket2::Socket;

    use super::{Meta, Outgoing};

    /// Room for one `IP_PKTINFO` or `IPV6_PKTINFO` control message.
    const CMSG_ROOM: usize = 64;

    #[derive(Clone, Copy)]
    #[repr(C, align(8))]
    struct Cmsg([u8; CMSG_ROOM]);

    pub(super) fn enable_pktinfo(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
        let fd = socket.as_raw_fd();
        let on: libc::c_int = 1;
        let set = |level, name| {
            // SAFETY: `on` outlives the call and its size is passed with it.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    &on as *const libc::c_int as *const libc::c_void,
                    mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        match addr {
            SocketAddr::V4(_) => set(libc::IPPROTO_IP, libc::IP_PKTINFO),
            SocketAddr::V6(_) => {
                set(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
                // A dual-stack socket also sees IPv4 requests, as mapped
                // addresses; their destination comes as IP_PKTINFO.
                let _ = set(libc::IPPROTO_IP, libc::IP_PKTINFO);
                Ok(())
            }
        }
    }

    fn zeroed_msghdr() -> libc::mmsghdr {
        // SAFETY: `mmsghdr` is plain data for which all-zero is valid (null
        // pointers, zero lengths); the fields are filled in before each use.
        unsafe { mem::zeroed() }
    }

    fn zeroed_storage() -> libc::sockaddr_storage {
        // SAFETY: as above, all-zero is a valid `sockaddr_storage`.
        unsafe { mem::zeroed() }
    }

    fn empty_iovec() -> libc::iovec {
        libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        }
    }

    /// Reads many datagrams with one `recvmmsg` call.
    pub(crate) struct Reader {
        hdrs: Vec<libc::mmsghdr>,
        iovs: Vec<libc::iovec>,
        addrs: Vec<libc::sockaddr_storage>,
        cmsgs: Vec<Cmsg>,
    }

    // SAFETY: the raw pointers inside are only set and used within one call
    // to `read`, on the thread that owns the reader.
    unsafe impl Send for Reader {}

    impl Reader {
        pub(crate) fn new(batch: usize) -> Reader {
            let batch = batch.max(1);
            Reader {
                hdrs: vec![zeroed_msghdr(); batch],
                iovs: vec![empty_iovec(); batch],
                addrs: vec![zeroed_storage(); batch],
                cmsgs: vec![Cmsg([0; CMSG_ROOM]); batch],
            }
        }

        /// Fills `bufs` from the front with datagrams (each buffer's length
        /// becomes the bytes received, up to its capacity) and describes each
        /// in `out`. Blocks (up to the socket's read timeout) for the first
        /// only, then takes whatever else is already waiting.
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

        fn read_with(
            &mut self,
            sock: &UdpSocket,
            bufs: &mut [Vec<u8>],
            out: &mut Vec<Meta>,
            flags: libc::c_int,
        ) -> io::Result<()> {
            out.clear();
            let n = bufs.len().min(self.hdrs.len());
            for (i, buf) in bufs.iter_mut().enumerate().take(n) {
                buf.clear();
                // The kernel writes into the spare capacity through a raw
                // pointer; no reference to uninitialised bytes is made.
                self.iovs[i] = libc::iovec {
                    iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                    iov_len: buf.capacity(),
                };
                let h = &mut self.hdrs[i];
                h.msg_len = 0;
                h.msg_hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
                h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_hdr.msg_iov = &mut self.iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_control = self.cmsgs[i].0.as_mut_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_controllen = CMSG_ROOM as _;
                h.msg_hdr.msg_flags = 0;
            }
            // SAFETY: every header points into buffers owned by `self` or
            // `bufs`, which outlive the call and are not moved during it;
            // `n` is within all of them.
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
            for (i, buf) in bufs.iter_mut().enumerate().take(rc as usize) {
                let h = &self.hdrs[i];
                let len = (h.msg_len as usize).min(buf.capacity());
                // SAFETY: the kernel initialised the first `len` bytes.
                unsafe { buf.set_len(len) };
                out.push(Meta {
                    len,
                    peer: to_std(&self.addrs[i], h.msg_hdr.msg_namelen),
                    // SAFETY: the kernel wrote `msg_controllen` bytes of
                    // control messages into the header's own buffer.
                    local: unsafe { destination(&h.msg_hdr) },
                    truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                });
            }
            Ok(())
        }
    }

    /// `UDP_SEGMENT` from `linux/udp.h`; the libc crate has it only for
    /// some Linux targets.
    const UDP_SEGMENT: libc::c_int = 103;

    /// Most datagrams one segmented send may carry (the kernel's
    /// `UDP_MAX_SEGMENTS`).
    const GSO_MAX_SEGMENTS: usize = 64;

    /// Largest datagram that is ever coalesced: what fits one packet at the
    /// smallest IPv6 MTU (1280 - 40 - 8). The kernel refuses segments that
    /// do not fit the path's MTU, since it cannot fragment them; larger
    /// replies gain little from coalescing anyway, as their cost is in the
    /// bytes, not in the packets.
    const GSO_MAX_SEGMENT: usize = 1232;

    /// Largest payload of one segmented send: an IPv4 datagram's limit.
    const GSO_MAX_BYTES: usize = 65_507;

    /// Room the `UDP_SEGMENT` control message takes after the source one.
    // SAFETY: CMSG_SPACE only computes a size.
    const SEGMENT_CMSG_SPACE: usize =
        unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) as usize };

    /// Whether the kernel segments datagrams for this socket: asked once
    /// per writer, since a kernel before 4.18 would silently ignore the
    /// control message and send one large datagram instead.
    fn gso_supported(sock: &UdpSocket) -> bool {
        let mut value: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` outlive the call and describe each other.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_UDP,
                UDP_SEGMENT,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        rc == 0
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Gso {
        /// Not asked yet: the writer has not seen its socket.
        Unknown,
        On,
        Off,
    }

    /// The datagrams one header sends: a run of messages to the same peer
    /// from the same source, all of one size but the last, which the kernel
    /// splits into datagrams again (UDP generic segmentation offload).
    #[derive(Clone, Copy, Debug)]
    struct Group {
        /// Index of the first message, within the staged messages.
        first: usize,
        count: usize,
        /// Size of every datagram but maybe the last.
        segment: usize,
        bytes: usize,
        /// Whether the last datagram is shorter, which ends the group.
        closed: bool,
        /// Length of the source address control message alone.
        source_len: usize,
        peer: SocketAddr,
        local: Option<IpAddr>,
    }

    /// Sends many datagrams with one `sendmmsg` call, and where the kernel
    /// can, runs of equal-sized datagrams to one peer as one segmented send
    /// (`UDP_SEGMENT`), which crosses the network stack once for the run.
    pub(crate) struct Writer {
        /// One header per group.
        hdrs: Vec<libc::mmsghdr>,
        addrs: Vec<libc::sockaddr_storage>,
        cmsgs: Vec<Cmsg>,
        groups: Vec<Group>,
        /// One entry per message; a group's entries are consecutive.
        iovs: Vec<libc::iovec>,
        /// Sends with no address, on a `connect()`ed socket: the kernel
        /// then uses the route it cached at `connect` instead of looking
        /// one up per datagram.
        connected: bool,
        gso: Gso,
    }

    // SAFETY: as for `Reader`.
    unsafe impl Send for Writer {}

    impl Writer {
        pub(crate) fn new(batch: usize) -> Writer {
            let batch = batch.max(1);
            Writer {
                hdrs: vec![zeroed_msghdr(); batch],
                addrs: vec![zeroed_storage(); batch],
                cmsgs: vec![Cmsg([0; CMSG_ROOM]); batch],
                groups: Vec::with_capacity(batch),
                iovs: vec![empty_iovec(); batch],
                connected: false,
                gso: Gso::Unknown,
            }
        }

        /// A writer for a `connect()`ed socket: each message's `peer` is
        /// ignored and every datagram goes to the connected address.
        pub(crate) fn connected(batch: usize) -> Writer {
            Writer {
                connected: true,
                ..Writer::new(batch)
            }
        }

        /// A writer that sends every datagram on its own, as a kernel
        /// without segmentation offload would have it.
        #[cfg(test)]
        fn without_gso(batch: usize) -> Writer {
            Writer {
                gso: Gso::Off,
                ..Writer::new(batch)
            }
        }

        /// Sends every message; calls `failed` with the index and error of
        /// each that could not be sent. Returns how many were sent.
        pub(crate) fn write<'a>(
            &mut self,
            sock: &UdpSocket,
            msgs: impl IntoIterator<Item = Outgoing<'a>>,
            mut failed: impl FnMut(usize, io::Error),
        ) -> usize {
            if self.gso == Gso::Unknown {
                self.gso = if gso_supported(sock) {
                    Gso::On
                } else {
                    Gso::Off
                };
            }
            let mut sent = 0;
            let mut filled = 0;
            let mut base = 0;
            self.groups.clear();
            for m in msgs {
                if !self.join(filled, &m) {
                    self.stage(filled, &m);
                }
                filled += 1;
                if filled == self.iovs.len() {
                    sent += self.flush(sock, base, &mut failed);
                    base += filled;
                    filled = 0;
                    self.groups.clear();
                }
            }
            if filled > 0 {
                sent += self.flush(sock, base, &mut failed);
                self.groups.clear();
            }
            sent
        }

        /// Adds message `i` to the last group if it can ride along.
        fn join(&mut self, i: usize, m: &Outgoing<'_>) -> bool {
            if self.gso != Gso::On {
                return false;
            }
            let Some(g) = self.groups.last_mut() else {
                return false;
            };
            let len = m.payload.len();
            let fits = !g.closed
                && g.segment > 0
                && g.segment <= GSO_MAX_SEGMENT
                && (1..=g.segment).contains(&len)
                && g.count < GSO_MAX_SEGMENTS
                && g.bytes + len <= GSO_MAX_BYTES
                && (self.connected || g.peer == m.peer)
                && g.local == m.local
                && g.source_len + SEGMENT_CMSG_SPACE <= CMSG_ROOM;
            if !fits {
                return false;
            }
            debug_assert_eq!(g.first + g.count, i);
            self.iovs[i] = libc::iovec {
                iov_base: m.payload.as_ptr() as *mut libc::c_void,
                iov_len: len,
            };
            g.count += 1;
            g.bytes += len;
            g.closed = len < g.segment;
            true
        }

        /// Starts a group with message `i`.
        fn stage(&mut self, i: usize, m: &Outgoing<'_>) {
            let g = self.groups.len();
            self.iovs[i] = libc::iovec {
                iov_base: m.payload.as_ptr() as *mut libc::c_void,
                iov_len: m.payload.len(),
            };
            let namelen = if self.connected {
                0
            } else {
                from_std(&m.peer, &mut self.addrs[g])
            };
            // SAFETY: the control buffer is CMSG_ROOM bytes and aligned for
            // `cmsghdr` by its type.
            let source_len = unsafe { put_source(&mut self.cmsgs[g], m.local, &m.peer) };
            let h = &mut self.hdrs[g];
            h.msg_len = 0;
            h.msg_hdr.msg_name = if self.connected {
                ptr::null_mut()
            } else {
                &mut self.addrs[g] as *mut _ as *mut libc::c_void
            };
            h.msg_hdr.msg_namelen = namelen;
            h.msg_hdr.msg_flags = 0;
            self.groups.push(Group {
                first: i,
                count: 1,
                segment: m.payload.len(),
                bytes: m.payload.len(),
                closed: false,
                source_len,
                peer: m.peer,
                local: m.local,
            });
        }

        /// Points each header at its group's payloads and control messages,
        /// now that the groups are complete.
        fn seal(&mut self) {
            for (g, group) in self.groups.iter().enumerate() {
                let mut controllen = group.source_len;
                if group.count > 1 {
                    // SAFETY: `join` checked that the segment message fits
                    // after the source one within CMSG_ROOM, and the source
                    // message's length is a CMSG_SPACE, so the offset is
                    // aligned for `cmsghdr`.
                    unsafe {
                        let cmsg =
                            self.cmsgs[g].0.as_mut_ptr().add(controllen) as *mut libc::cmsghdr;
                        (*cmsg).cmsg_level = libc::SOL_UDP;
                        (*cmsg).cmsg_type = UDP_SEGMENT;
                        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
                        // A segment is at most GSO_MAX_SEGMENT bytes.
                        ptr::write_unaligned(
                            libc::CMSG_DATA(cmsg) as *mut u16,
                            group.segment as u16,
                        );
                    }
                    controllen += SEGMENT_CMSG_SPACE;
                }
                let h = &mut self.hdrs[g].msg_hdr;
                h.msg_iov = &mut self.iovs[group.first];
                h.msg_iovlen = group.count as _;
                h.msg_control = if controllen == 0 {
                    ptr::null_mut()
                } else {
                    self.cmsgs[g].0.as_mut_ptr() as *mut libc::c_void
                };
                h.msg_controllen = controllen as _;
            }
        }

        /// Sends the staged groups, whose first message is message number
        /// `base` of the caller's. Returns how many datagrams were sent.
        fn flush(
            &mut self,
            sock: &UdpSocket,
            base: usize,
            failed: &mut impl FnMut(usize, io::Error),
        ) -> usize {
            self.seal();
            let n = self.groups.len();
            let mut sent = 0;
            let mut i = 0;
            while i < n {
                // SAFETY: headers `i..n` were sealed above and point into
                // `self` and into payloads the caller keeps alive (they are
                // borrowed for 'a by `write`).
                let rc = unsafe {
                    libc::sendmmsg(
                        sock.as_raw_fd(),
                        self.hdrs[i..].as_mut_ptr(),
                        (n - i) as libc::c_uint,
                        0,
                    )
                };
                if rc > 0 {
                    let rc = rc as usize;
                    sent += self.groups[i..i + rc]
                        .iter()
                        .map(|g| g.count)
                        .sum::<usize>();
                    i += rc;
                    continue;
                }
                let err = if rc == 0 {
                    io::Error::new(io::ErrorKind::WriteZero, "sendmmsg sent nothing")
                } else {
                    io::Error::last_os_error()
                };
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first unsent group is the one that failed; the rest
                // are tried again.
                let group = self.groups[i];
                if group.count == 1 {
                    failed(base + group.first, err);
                } else if super::is_timeout(&err) {
                    // The send buffer stayed full for the whole send
                    // timeout: a try per datagram would wait that long
                    // again for each. The run fails as a whole.
                    for j in group.first..group.first + group.count {
                        failed(base + j, same(&err));
                    }
                } else {
                    // Whatever the cause, each datagram gets its own try and
                    // its own fate. EIO is the device refusing segmentation
                    // itself: no group will pass it, so stop forming them.
                    if err.raw_os_error() == Some(libc::EIO) {
                        self.gso = Gso::Off;
                    }
                    sent += self.send_each(sock, i, base, failed);
                }
                i += 1;
            }
            sent
        }

        /// Sends the datagrams of group `g` one by one.
        fn send_each(
            &mut self,
            sock: &UdpSocket,
            g: usize,
            base: usize,
            failed: &mut impl FnMut(usize, io::Error),
        ) -> usize {
            let group = self.groups[g];
            let mut sent = 0;
            for j in group.first..group.first + group.count {
                let mut hdr = self.hdrs[g].msg_hdr;
                hdr.msg_iov = &mut self.iovs[j];
                hdr.msg_iovlen = 1;
                hdr.msg_controllen = group.source_len as _;
                if group.source_len == 0 {
                    hdr.msg_control = ptr::null_mut();
                }
                loop {
                    // SAFETY: `hdr` is the group's sealed header, narrowed to
                    // one payload and to the source control message, all of
                    // which outlive the call.
                    let rc = unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, 0) };
                    if rc >= 0 {
                        sent += 1;
                        break;
                    }
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        failed(base + j, err);
                        break;
                    }
                }
            }
            sent
        }
    }

    /// Another error like `err`, for each datagram a failure covers.
    fn same(err: &io::Error) -> io::Error {
        match err.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::from(err.kind()),
        }
    }

    fn to_std(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match addr.ss_family as libc::c_int {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says this storage holds a `sockaddr_in`.
                let a = unsafe { &*(addr as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says this storage holds a `sockaddr_in6`.
                let a = unsafe { &*(addr as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn from_std(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: `sockaddr_storage` is large and aligned enough for
                // any socket address.
                let s = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in) };
                s.sin_family = libc::AF_INET as libc::sa_family_t;
                s.sin_port = a.port().to_be();
                s.sin_addr = libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                };
                s.sin_zero = [0; 8];
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above.
                let s = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in6) };
                s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                s.sin6_port = a.port().to_be();
                s.sin6_flowinfo = a.flowinfo();
                s.sin6_addr = libc::in6_addr {
                    s6_addr: a.ip().octets(),
                };
                s.sin6_scope_id = a.scope_id();
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// The address to answer a received datagram from, from its
    /// `IP_PKTINFO` or `IPV6_PKTINFO` control message.
    ///
    /// For IPv4 that is `ipi_spec_dst`, the local address the kernel
    /// assigns the datagram: the header's destination for unicast, but an
    /// address of the interface for a broadcast or multicast request, which
    /// no reply may be sent from. An IPv4 request on a dual-stack socket
    /// brings both messages; the IPv4 one is preferred for that reason. An
    /// IPv6 multicast destination gives `None`: the kernel then chooses.
    ///
    /// # Safety
    /// `hdr` must describe control messages the kernel wrote.
    unsafe fn destination(hdr: &libc::msghdr) -> Option<IpAddr> {
        // SAFETY: the caller's contract, stated above, covers every
        // pointer this reads or writes.
        unsafe {
            if hdr.msg_controllen == 0 {
                return None;
            }
            let mut v6 = None;
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                let c = &*cmsg;
                if c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_PKTINFO {
                    let info =
                        ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::in_pktinfo);
                    let ip = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
                    return (!ip.is_unspecified()).then_some(IpAddr::V4(ip));
                }
                if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
                    let info =
                        ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::in6_pktinfo);
                    v6 = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
            let ip = v6?;
            let group = match ip.to_ipv4_mapped() {
                Some(v4) => v4.is_multicast() || v4.is_broadcast(),
                None => ip.is_multicast(),
            };
            (!group).then_some(IpAddr::V6(ip))
        }
    }

    /// Writes the control message that makes the kernel send from `local`,
    /// and returns its length; 0 when there is nothing to say.
    ///
    /// # Safety
    /// `buf` must be aligned for `cmsghdr` (it is, by its type).
    unsafe fn put_source(buf: &mut Cmsg, local: Option<IpAddr>, peer: &SocketAddr) -> usize {
        // SAFETY: the caller's contract, stated above, covers every
        // pointer this reads or writes.
        unsafe {
            let Some(local) = local else { return 0 };
            // An IPv4 request on a dual-stack IPv6 socket reports its
            // destination as IPv4 while its peer is IPv4-mapped IPv6: either
            // way IP_PKTINFO is what sets the source.
            let v4 = match (local, peer) {
                (IpAddr::V4(ip), _) => Some(ip),
                (IpAddr::V6(ip), _) => ip.to_ipv4_mapped(),
            };
            let mut hdr: libc::msghdr = mem::zeroed();
            hdr.msg_control = buf.0.as_mut_ptr() as *mut libc::c_void;
            hdr.msg_controllen = CMSG_ROOM as _;
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            if cmsg.is_null() {
                return 0;
            }
            match (v4, local) {
                (Some(ip), _) => {
                    let mut info: libc::in_pktinfo = mem::zeroed();
                    info.ipi_spec_dst = libc::in_addr {
                        s_addr: u32::from(ip).to_be(),
                    };
                    (*cmsg).cmsg_level = libc::IPPROTO_IP;
                    (*cmsg).cmsg_type = libc::IP_PKTINFO;
                    (*cmsg).cmsg_len =
                        libc::CMSG_LEN(mem::size_of::<libc::in_pktinfo>() as u32) as _;
                    ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in_pktinfo, info);
                    libc::CMSG_SPACE(mem::size_of::<libc::in_pktinfo>() as u32) as usize
                }
                (None, IpAddr::V6(ip)) => {
                    let mut info: libc::in6_pktinfo = mem::zeroed();
                    info.ipi6_addr = libc::in6_addr {
                        s6_addr: ip.octets(),
                    };
                    if let SocketAddr::V6(p) = peer {
                        // Link-local peers need the interface they came in on.
                        info.ipi6_ifindex = p.scope_id();
                    }
                    (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
                    (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                    (*cmsg).cmsg_len =
                        libc::CMSG_LEN(mem::size_of::<libc::in6_pktinfo>() as u32) as _;
                    ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in6_pktinfo, info);
                    libc::CMSG_SPACE(mem::size_of::<libc::in6_pktinfo>() as u32) as usize
                }
                (None, IpAddr::V4(_)) => 0,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn address_round_trip() {
            for s in ["127.0.0.1:9999", "[::1]:63823", "[fe80::1%2]:1"] {
                let addr: SocketAddr = s.parse().unwrap();
                let mut storage = zeroed_storage();
                let len = from_std(&addr, &mut storage);
                assert_eq!(to_std(&storage, len), Some(addr));
            }
        }

        fn loopback() -> UdpSocket {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            s
        }

        /// Reads `n` datagrams, in order.
        fn take(sock: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
            let mut buf = [0u8; 4096];
            (0..n)
                .map(|_| {
                    let len = sock.recv(&mut buf).unwrap();
                    buf[..len].to_vec()
                })
                .collect()
        }

        /// Nothing more arrives within a moment.
        fn quiet(sock: &UdpSocket) -> bool {
            sock.set_nonblocking(true).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let r = sock.recv(&mut [0u8; 16]);
            sock.set_nonblocking(false).unwrap();
            r.is_err()
        }

        fn to<'a>(payload: &'a [u8], peer: &UdpSocket) -> Outgoing<'a> {
            Outgoing {
                payload,
                peer: peer.local_addr().unwrap(),
                local: None,
            }
        }

        /// Equal datagrams, a shorter one that ends the run, a new run, an
        /// empty one (never coalesced) and one too large to coalesce.
        fn mixed() -> Vec<Vec<u8>> {
            let mut p: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; 10]).collect();
            p.push(b"tail".to_vec());
            p.push(vec![b'x'; 10]);
            p.push(vec![b'y'; 10]);
            p.push(Vec::new());
            p.push(Vec::new());
            p.push(vec![b'z'; 2000]);
            p.push(vec![b'w'; 2000]);
            p
        }

        fn arrive_apart(mut writer: Writer) -> Writer {
            let (tx, rx) = (loopback(), loopback());
            let payloads = mixed();
            let mut errors = Vec::new();
            let sent = writer.write(&tx, payloads.iter().map(|p| to(p, &rx)), |i, e| {
                errors.push((i, e.kind()))
            });
            assert_eq!(errors, []);
            assert_eq!(sent, payloads.len());
            assert_eq!(take(&rx, payloads.len()), payloads);
            assert!(quiet(&rx));
            writer
        }

        #[test]
        fn segmented() {
            let w = arrive_apart(Writer::new(16));
            assert_eq!(w.gso, Gso::On, "this kernel segments (Linux 4.18+)");
        }

        #[test]
        fn unsegmented() {
            let w = arrive_apart(Writer::without_gso(16));
            assert_eq!(w.gso, Gso::Off);
        }

        #[test]
        fn small_window() {
            // Runs are cut where the writer's window of messages ends.
            arrive_apart(Writer::new(3));
        }

        #[test]
        fn segmented_from_source() {
            // The source address message and the segment message share the
            // control buffer; IPv6's is the larger of the two kinds.
            for (any, lo) in [("0.0.0.0:0", "127.0.0.1"), ("[::]:0", "::1")] {
                let tx = UdpSocket::bind(any).unwrap();
                let rx = UdpSocket::bind((lo, 0)).unwrap();
                rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                let local: IpAddr = lo.parse().unwrap();
                let payloads = [b"abc", b"def", b"ghi"];
                let msgs = payloads.iter().map(|p| Outgoing {
                    payload: p.as_slice(),
                    peer: rx.local_addr().unwrap(),
                    local: Some(local),
                });
                assert_eq!(Writer::new(8).write(&tx, msgs, |_, e| panic!("{e}")), 3);
                let mut buf = [0u8; 16];
                for p in payloads {
                    let (n, from) = rx.recv_from(&mut buf).unwrap();
                    assert_eq!(&buf[..n], p);
                    assert_eq!(from.ip(), local);
                }
                assert!(quiet(&rx));
            }
        }

        #[test]
        fn peers_apart() {
            let (tx, a, b) = (loopback(), loopback(), loopback());
            let msgs = [
                to(b"one", &a),
                to(b"two", &a),
                to(b"red", &b),
                to(b"blu", &b),
                to(b"six", &a),
            ];
            let sent = Writer::new(8).write(&tx, msgs, |_, e| panic!("{e}"));
            assert_eq!(sent, 5);
            assert_eq!(
                take(&a, 3),
                [b"one".to_vec(), b"two".to_vec(), b"six".to_vec()]
            );
            assert_eq!(take(&b, 2), [b"red".to_vec(), b"blu".to_vec()]);
            assert!(quiet(&a) && quiet(&b));
        }

        #[test]
        fn failed_run() {
            // A run the kernel refuses (broadcast without SO_BROADCAST) is
            // tried datagram by datagram, each failure reported once.
            let (tx, rx) = (loopback(), loopback());
            let bcast: SocketAddr = "255.255.255.255:9".parse().unwrap();
            let msgs = [
                to(b"ok-1", &rx),
                Outgoing {
                    payload: b"no-1",
                    peer: bcast,
                    local: None,
                },
                Outgoing {
                    payload: b"no-2",
                    peer: bcast,
                    local: None,
                },
                Outgoing {
                    payload: b"no-3",
                    peer: bcast,
                    local: None,
                },
                to(b"ok-2", &rx),
            ];
            let mut failed = Vec::new();
            let mut w = Writer::new(8);
            let sent = w.write(&tx, msgs, |i, _| failed.push(i));
            assert_eq!(sent, 2);
            assert_eq!(failed, [1, 2, 3]);
            assert_eq!(take(&rx, 2), [b"ok-1".to_vec(), b"ok-2".to_vec()]);
            assert!(quiet(&rx));
            assert_eq!(w.gso, Gso::On, "a refused run is no reason to stop");
        }
    }
}

// Also built for tests on Linux, so the fallback is compiled and exercised
// where the project's CI runs.
#[cfg(any(not(target_os = "linux"), test))]
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod portable {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};

    use socket2::Socket;

    use super::{Meta, Outgoing};

    pub(super) fn enable_pktinfo(_socket: &Socket, _addr: SocketAddr) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "destination addresses are only tracked on Linux",
        ))
    }

    /// Reads one datagram per call.
    pub(crate) struct Reader;

    impl Reader {
        pub(crate) fn new(_batch: usize) -> Reader {
            Reader
        }

        pub(crate) fn read(
            &mut self,
            sock: &UdpSocket,
            bufs: &mut [Vec<u8>],
            out: &mut Vec<Meta>,
        ) -> io::Result<()> {
            out.clear();
            let Some(buf) = bufs.first_mut() else {
                return Ok(());
            };
            let cap = buf.capacity();
            buf.resize(cap, 0);
            let received = sock.recv_from(buf);
            let len = received.as_ref().map_or(0, |r| r.0);
            buf.truncate(len);
            let (len, peer) = received?;
            out.push(Meta {
                len,
                peer: Some(peer),
                local: None,
                truncated: false,
            });
            Ok(())
        }

        /// Never reads: only `read` can wait here, so the caller goes
        /// straight to it.
        pub(crate) fn try_read(
            &mut self,
            _sock: &UdpSocket,
            _bufs: &mut [Vec<u8>],
            out: &mut Vec<Meta>,
        ) -> io::Result<()> {
            out.clear();
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Sends one datagram per call.
    pub(crate) struct Writer {
        connected: bool,
    }

    impl Writer {
        pub(crate) fn new(_batch: usize) -> Writer {
            Writer { connected: false }
        }

        /// A writer for a `connect()`ed socket: each message's `peer` is
        /// ignored and every datagram goes to the connected address.
        pub(crate) fn connected(_batch: usize) -> Writer {
            Writer { connected: true }
        }

        pub(crate) fn write<'a>(
            &mut self,
            sock: &UdpSocket,
            msgs: impl IntoIterator<Item = Outgoing<'a>>,
            mut failed: impl FnMut(usize, io::Error),
        ) -> usize {
            let mut sent = 0;
            for (i, m) in msgs.into_iter().enumerate() {
                let result = if self.connected {
                    sock.send(m.payload)
                } else {
                    sock.send_to(m.payload, m.peer)
                };
                match result {
                    Ok(_) => sent += 1,
                    Err(e) => failed(i, e),
                }
            }
            sent
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn loopback() -> UdpSocket {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            s
        }

        #[test]
        fn round_trip() {
            let (tx, rx) = (loopback(), loopback());
            let peer = rx.local_addr().unwrap();
            let bcast: SocketAddr = "255.255.255.255:9".parse().unwrap();
            let msgs = [b"one".as_slice(), b"", b"three"]
                .into_iter()
                .map(|payload| Outgoing {
                    payload,
                    peer,
                    local: None,
                })
                .chain([Outgoing {
                    payload: b"refused",
                    peer: bcast,
                    local: None,
                }]);
            let mut failed = Vec::new();
            assert_eq!(Writer::new(8).write(&tx, msgs, |i, _| failed.push(i)), 3);
            assert_eq!(failed, [3]);

            let mut reader = Reader::new(8);
            let mut bufs = vec![Vec::with_capacity(64), Vec::with_capacity(64)];
            let mut metas = Vec::new();
            let from = tx.local_addr().unwrap();
            for want in [b"one".as_slice(), b"", b"three"] {
                reader.read(&rx, &mut bufs, &mut metas).unwrap();
                assert_eq!(metas.len(), 1);
                assert_eq!(metas[0].peer, Some(from));
                assert_eq!(metas[0].len, want.len());
                assert_eq!(bufs[0], want);
            }
            let e = reader.try_read(&rx, &mut bufs, &mut metas).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        }

        #[test]
        fn connected() {
            let (tx, rx) = (loopback(), loopback());
            tx.connect(rx.local_addr().unwrap()).unwrap();
            let elsewhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
            let msg = Outgoing {
                payload: b"hi",
                peer: elsewhere,
                local: None,
            };
            assert_eq!(
                Writer::connected(1).write(&tx, [msg], |_, e| panic!("{e}")),
                1
            );
            let mut buf = [0u8; 8];
            assert_eq!(rx.recv(&mut buf).unwrap(), 2);
        }
    }
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
