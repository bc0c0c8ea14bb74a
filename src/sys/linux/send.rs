//! Sending many datagrams with one `sendmmsg` call, and runs of equal-sized
//! datagrams to one peer as one segmented send (`UDP_SEGMENT`).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::cmsg::{space, Buf, Encoder};
use super::{addr, empty_iovec, gso_supported, zeroed_mmsghdr, UDP_SEGMENT};
use crate::sys::datagram::{is_timeout, retry_if_interrupted, Outgoing};

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

/// Room for what one send carries: a source address (IPv6's is the larger)
/// and a segment size.
const ROOM: usize = space::<libc::in6_pktinfo>() + space::<u16>();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Gso {
    /// Not asked yet: no writer has seen the socket.
    Unknown,
    On,
    Off,
}

/// Whether the kernel segments runs for one socket: learned once, by the
/// first writer to send, and shared by every writer on a clone of that
/// socket, so that a refusal learned by one spares the others a failed
/// send each.
#[derive(Debug)]
pub(crate) struct Segmentation(AtomicU8);

impl Default for Segmentation {
    fn default() -> Segmentation {
        Segmentation(AtomicU8::new(Gso::Unknown as u8))
    }
}

impl Segmentation {
    #[cfg(any(feature = "bench", test))]
    fn off() -> Segmentation {
        Segmentation(AtomicU8::new(Gso::Off as u8))
    }

    fn get(&self) -> Gso {
        match self.0.load(Ordering::Relaxed) {
            x if x == Gso::On as u8 => Gso::On,
            x if x == Gso::Off as u8 => Gso::Off,
            _ => Gso::Unknown,
        }
    }

    fn set(&self, gso: Gso) {
        self.0.store(gso as u8, Ordering::Relaxed);
    }

    /// Asks the kernel the first time, then answers from what it said.
    fn learn(&self, sock: &UdpSocket) -> Gso {
        match self.get() {
            Gso::Unknown => {
                let gso = if gso_supported(sock) {
                    Gso::On
                } else {
                    Gso::Off
                };
                // A writer that learned `Off` from a refusal meanwhile wins.
                let _ = self.0.compare_exchange(
                    Gso::Unknown as u8,
                    gso as u8,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                self.get()
            }
            known => known,
        }
    }
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
    cmsgs: Vec<Buf<ROOM>>,
    groups: Vec<Group>,
    /// One entry per message; a group's entries are consecutive.
    iovs: Vec<libc::iovec>,
    /// Sends with no address, on a `connect()`ed socket: the kernel
    /// then uses the route it cached at `connect` instead of looking
    /// one up per datagram.
    connected: bool,
    segmentation: Arc<Segmentation>,
    /// What `segmentation` said at the start of the current write.
    gso: Gso,
}

// SAFETY: as for `Reader`.
unsafe impl Send for Writer {}

impl Writer {
    /// A writer for a socket whose segmentation capability `segmentation`
    /// tracks (one per socket, shared by the writers of all its clones).
    pub(crate) fn new(batch: usize, segmentation: Arc<Segmentation>) -> Writer {
        let batch = batch.max(1);
        Writer {
            hdrs: vec![zeroed_mmsghdr(); batch],
            addrs: vec![addr::storage(); batch],
            cmsgs: vec![Buf::new(); batch],
            groups: Vec::with_capacity(batch),
            iovs: vec![empty_iovec(); batch],
            connected: false,
            segmentation,
            gso: Gso::Unknown,
        }
    }

    /// A writer for a `connect()`ed socket: each message's `peer` is
    /// ignored and every datagram goes to the connected address. Without
    /// `segmented`, every datagram is sent on its own even where the kernel
    /// could segment a run.
    #[cfg(any(feature = "bench", test))]
    pub(crate) fn connected(batch: usize, segmented: bool) -> Writer {
        let segmentation = if segmented {
            Segmentation::default()
        } else {
            Segmentation::off()
        };
        Writer {
            connected: true,
            ..Writer::new(batch, Arc::new(segmentation))
        }
    }

    /// A writer that sends every datagram on its own, as a kernel
    /// without segmentation offload would have it.
    #[cfg(test)]
    fn without_gso(batch: usize) -> Writer {
        Writer::new(batch, Arc::new(Segmentation::off()))
    }

    /// Sends every message; calls `failed` with the index and error of
    /// each that could not be sent. Returns how many were sent.
    pub(crate) fn write<'a>(
        &mut self,
        sock: &UdpSocket,
        msgs: impl IntoIterator<Item = Outgoing<'a>>,
        mut failed: impl FnMut(usize, io::Error),
    ) -> usize {
        self.gso = self.segmentation.learn(sock);
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
            && g.source_len + space::<u16>() <= ROOM;
        if !fits {
            return false;
        }
        debug_assert_eq!(g.first + g.count, i);
        self.iovs[i] = libc::iovec {
            iov_base: m.payload.as_ptr().cast_mut().cast(),
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
            iov_base: m.payload.as_ptr().cast_mut().cast(),
            iov_len: m.payload.len(),
        };
        let namelen = if self.connected {
            0
        } else {
            addr::write(&m.peer, &mut self.addrs[g])
        };
        let source_len = put_source(&mut self.cmsgs[g], m.local, &m.peer);
        let h = &mut self.hdrs[g];
        h.msg_len = 0;
        h.msg_hdr.msg_name = if self.connected {
            ptr::null_mut()
        } else {
            (&mut self.addrs[g] as *mut libc::sockaddr_storage).cast()
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
                // `join` checked that the segment size fits after the
                // source address; a segment is at most GSO_MAX_SEGMENT
                // bytes, so it fits a u16.
                let mut enc = Encoder::after(&mut self.cmsgs[g], controllen);
                let pushed = enc.push(libc::SOL_UDP, UDP_SEGMENT, group.segment as u16);
                debug_assert!(pushed, "join leaves room for the segment size");
                controllen = enc.len();
            }
            let h = &mut self.hdrs[g].msg_hdr;
            h.msg_iov = &mut self.iovs[group.first];
            h.msg_iovlen = group.count as _;
            h.msg_control = if controllen == 0 {
                ptr::null_mut()
            } else {
                self.cmsgs[g].as_mut_ptr()
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
                // The same call again: nothing was sent.
                continue;
            }
            // The first unsent group is the one that failed; the rest
            // are tried again.
            let group = self.groups[i];
            if group.count == 1 {
                failed(base + group.first, err);
            } else if is_timeout(&err) {
                // The send buffer stayed full for the whole send
                // timeout: a try per datagram would wait that long
                // again for each. The run fails as a whole.
                for j in group.first..group.first + group.count {
                    failed(base + j, same(&err));
                }
            } else {
                // Whatever the cause, each datagram gets its own try and
                // its own fate. EIO is the device refusing segmentation
                // itself, EINVAL a kernel or route that will not take the
                // segment size: no later run would pass either, so no
                // writer on this socket forms runs any more.
                if matches!(err.raw_os_error(), Some(libc::EIO | libc::EINVAL)) {
                    self.gso = Gso::Off;
                    self.segmentation.set(Gso::Off);
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
            let result = retry_if_interrupted(|| {
                // SAFETY: `hdr` is the group's sealed header, narrowed to
                // one payload and to the source control message, all of
                // which outlive the call.
                let rc = unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, 0) };
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match result {
                Ok(()) => sent += 1,
                Err(err) => failed(base + j, err),
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

/// Writes the control message that makes the kernel send from `local` into
/// `buf`, and returns its length; 0 when there is nothing to say.
fn put_source(buf: &mut Buf<ROOM>, local: Option<IpAddr>, peer: &SocketAddr) -> usize {
    let Some(local) = local else { return 0 };
    // An IPv4 request on a dual-stack IPv6 socket reports its destination
    // as IPv4 while its peer is IPv4-mapped IPv6: either way IP_PKTINFO is
    // what sets the source.
    let v4 = match local.to_canonical() {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(_) => None,
    };
    let mut enc = Encoder::after(buf, 0);
    let pushed = match (v4, local) {
        (Some(ip), _) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, info)
        }
        (None, IpAddr::V6(ip)) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                // Link-local peers need the interface they came in on.
                ipi6_ifindex: match peer {
                    SocketAddr::V6(p) => p.scope_id(),
                    SocketAddr::V4(_) => 0,
                },
            };
            enc.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, info)
        }
        (None, IpAddr::V4(_)) => false,
    };
    if pushed {
        enc.len()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sys::test_support::loopback;

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

    fn writer(batch: usize) -> Writer {
        Writer::new(batch, Arc::default())
    }

    #[test]
    fn segmented() {
        let w = arrive_apart(writer(16));
        assert_eq!(w.gso, Gso::On, "this kernel segments (Linux 4.18+)");
    }

    #[test]
    fn learned_once_per_socket() {
        // Two writers of one socket share what was learned: a refusal
        // learned by one stops the other forming runs too.
        let shared = Arc::new(Segmentation::default());
        let (tx, rx) = (loopback(), loopback());
        let mut a = Writer::new(8, shared.clone());
        let mut b = Writer::new(8, shared.clone());
        let msgs = || [to(b"abc", &rx), to(b"def", &rx)];
        assert_eq!(a.write(&tx, msgs(), |_, e| panic!("{e}")), 2);
        assert_eq!(shared.get(), Gso::On);
        shared.set(Gso::Off);
        assert_eq!(b.write(&tx, msgs(), |_, e| panic!("{e}")), 2);
        assert_eq!(b.gso, Gso::Off);
        assert_eq!(a.write(&tx, msgs(), |_, e| panic!("{e}")), 2);
        assert_eq!(a.gso, Gso::Off, "learned from the other writer");
        assert_eq!(take(&rx, 6).len(), 6);
    }

    #[test]
    fn unsegmented() {
        let w = arrive_apart(Writer::without_gso(16));
        assert_eq!(w.gso, Gso::Off);
    }

    #[test]
    fn small_window() {
        // Runs are cut where the writer's window of messages ends.
        arrive_apart(writer(3));
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
            assert_eq!(writer(8).write(&tx, msgs, |_, e| panic!("{e}")), 3);
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
        let sent = writer(8).write(&tx, msgs, |_, e| panic!("{e}"));
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
        let mut w = writer(8);
        let sent = w.write(&tx, msgs, |i, _| failed.push(i));
        assert_eq!(sent, 2);
        assert_eq!(failed, [1, 2, 3]);
        assert_eq!(take(&rx, 2), [b"ok-1".to_vec(), b"ok-2".to_vec()]);
        assert!(quiet(&rx));
        assert_eq!(w.gso, Gso::On, "a refused run is no reason to stop");
    }
}
