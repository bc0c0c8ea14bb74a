//! Control messages (`cmsghdr`): one encoder for what a send carries, one
//! decoder for what a receive brings. Both work on a byte buffer the caller
//! owns and check every length against it before touching a byte, so no
//! message, however the kernel cut it, is read or written past its room.

use std::mem;
use std::ptr;

/// A control-message buffer of `N` bytes, aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(super) struct Buf<const N: usize>([u8; N]);

impl<const N: usize> Buf<N> {
    pub(super) const fn new() -> Buf<N> {
        Buf([0; N])
    }

    /// For `msghdr.msg_control`: the kernel writes at most `N` bytes here.
    pub(super) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.0.as_mut_ptr().cast()
    }

    /// What the kernel wrote: the first `len` bytes, never more than `N`.
    pub(super) fn written(&self, len: usize) -> &[u8] {
        &self.0[..len.min(N)]
    }
}

/// Bytes a message with a `T` payload takes, padding included (`CMSG_SPACE`).
pub(super) const fn space<T>() -> usize {
    // SAFETY: CMSG_SPACE only computes a size from its argument.
    unsafe { libc::CMSG_SPACE(mem::size_of::<T>() as u32) as usize }
}

/// Bytes a message with a `T` payload declares in `cmsg_len` (`CMSG_LEN`).
const fn declared<T>() -> usize {
    // SAFETY: CMSG_LEN only computes a size from its argument.
    unsafe { libc::CMSG_LEN(mem::size_of::<T>() as u32) as usize }
}

/// Where a message's payload starts, after its aligned header.
// SAFETY: CMSG_LEN only computes a size from its argument.
const DATA: usize = unsafe { libc::CMSG_LEN(0) as usize };

/// Rounds `len` up to the alignment of the next message.
const fn align(len: usize) -> usize {
    let a = mem::size_of::<usize>();
    (len + a - 1) & !(a - 1)
}

/// Payload types for which every bit pattern is a valid value, so they can
/// be read from bytes the kernel wrote.
///
/// # Safety
/// Only plain-old-data C types without padding invariants may implement it.
pub(super) unsafe trait Plain: Copy {}

// SAFETY: integers and these C structs of integers and byte arrays accept
// any bit pattern.
unsafe impl Plain for libc::c_int {}
// SAFETY: as above.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for libc::in_pktinfo {}
// SAFETY: as above.
unsafe impl Plain for libc::in6_pktinfo {}

/// Appends messages to a buffer, each aligned and within its room.
pub(super) struct Encoder<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Encoder<'a> {
    /// An encoder that appends after the first `len` bytes of `buf`, which
    /// hold messages written by an earlier encoder (or none, for 0).
    pub(super) fn after<const N: usize>(buf: &'a mut Buf<N>, len: usize) -> Encoder<'a> {
        Encoder {
            buf: &mut buf.0,
            len: align(len).min(N),
        }
    }

    /// Bytes written so far: the `msg_controllen` to send with.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Appends one message; `false`, writing nothing, if it has no room.
    pub(super) fn push<T: Plain>(&mut self, level: libc::c_int, ty: libc::c_int, value: T) -> bool {
        let room = space::<T>();
        let Some(slot) = self.buf.get_mut(self.len..self.len + room) else {
            return false;
        };
        slot.fill(0);
        // SAFETY: all-zero is a valid `cmsghdr` (integers only, on every
        // libc the crate builds with, padding fields included).
        let mut hdr: libc::cmsghdr = unsafe { mem::zeroed() };
        hdr.cmsg_len = declared::<T>() as _;
        hdr.cmsg_level = level;
        hdr.cmsg_type = ty;
        // SAFETY: `slot` is `space::<T>()` bytes, which holds the header
        // (DATA bytes, at least its size) and then the payload; unaligned
        // writes need no alignment of the bytes.
        unsafe {
            ptr::write_unaligned(slot.as_mut_ptr().cast::<libc::cmsghdr>(), hdr);
            ptr::write_unaligned(slot.as_mut_ptr().add(DATA).cast::<T>(), value);
        }
        self.len += room;
        true
    }
}

/// The messages in the bytes a receive wrote, in order. A message whose
/// declared length runs past the bytes ends the walk: nothing after it can
/// be trusted to start where the header says.
pub(super) struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Walks `bytes`: only what the kernel reported writing (`Buf::written`).
    pub(super) fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { rest: bytes }
    }
}

/// One decoded message: its level, type and payload bytes.
pub(super) struct Message<'a> {
    pub level: libc::c_int,
    pub ty: libc::c_int,
    data: &'a [u8],
}

impl Message<'_> {
    /// The payload as a `T`, if it is at least that long: a message the
    /// kernel cut short (`MSG_CTRUNC`) gives `None`.
    pub(super) fn read<T: Plain>(&self) -> Option<T> {
        if self.data.len() < mem::size_of::<T>() {
            return None;
        }
        // SAFETY: the payload holds at least size_of::<T>() initialised
        // bytes, and `T: Plain` accepts any of their values.
        Some(unsafe { ptr::read_unaligned(self.data.as_ptr().cast::<T>()) })
    }
}

impl<'a> Iterator for Decoder<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        if self.rest.len() < mem::size_of::<libc::cmsghdr>() {
            return None;
        }
        // SAFETY: the bytes hold at least one header, and a `cmsghdr` of
        // integers accepts any bit pattern.
        let hdr: libc::cmsghdr = unsafe { ptr::read_unaligned(self.rest.as_ptr().cast()) };
        let len = hdr.cmsg_len as usize;
        if len < DATA || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let data = &self.rest[DATA..len];
        self.rest = &self.rest[align(len).min(self.rest.len())..];
        Some(Message {
            level: hdr.cmsg_level,
            ty: hdr.cmsg_type,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Buf::<{ space::<libc::in6_pktinfo>() + space::<u16>() }>::new();
        // SAFETY: all-zero is a valid `in6_pktinfo` (integers and bytes).
        let mut info: libc::in6_pktinfo = unsafe { mem::zeroed() };
        info.ipi6_addr.s6_addr[15] = 1;
        info.ipi6_ifindex = 7;
        let mut enc = Encoder::after(&mut buf, 0);
        assert!(enc.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, info));
        let first = enc.len();
        assert_eq!(first, space::<libc::in6_pktinfo>());
        let mut enc = Encoder::after(&mut buf, first);
        assert!(enc.push(libc::SOL_UDP, 103, 1200u16));
        // Full: a third message does not fit and writes nothing.
        assert!(!enc.push(libc::SOL_UDP, 103, 1u16));
        let len = enc.len();
        let msgs: Vec<_> = Decoder::new(buf.written(len)).collect();
        assert_eq!(msgs.len(), 2);
        let got: libc::in6_pktinfo = msgs[0].read().unwrap();
        assert_eq!(got.ipi6_addr.s6_addr, info.ipi6_addr.s6_addr);
        assert_eq!(got.ipi6_ifindex, 7);
        assert_eq!((msgs[1].level, msgs[1].ty), (libc::SOL_UDP, 103));
        assert_eq!(msgs[1].read::<u16>(), Some(1200));
        // A payload shorter than the type asked for is not read.
        assert_eq!(msgs[1].read::<libc::in_pktinfo>().map(|_| ()), None);
    }

    #[test]
    fn cut_short() {
        // As the kernel leaves a message it had no room for: the header
        // declares 8 payload bytes where an `in_pktinfo` needs 12.
        let mut buf = Buf::<64>::new();
        let mut enc = Encoder::after(&mut buf, 0);
        assert!(enc.push(libc::IPPROTO_IP, libc::IP_PKTINFO, 0u16));
        let len = DATA + 8;
        buf.0[..mem::size_of::<usize>()].copy_from_slice(&len.to_ne_bytes());
        let msgs: Vec<_> = Decoder::new(buf.written(len)).collect();
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].read::<libc::in_pktinfo>().is_none());
        // A declared length past the bytes written ends the walk.
        assert_eq!(Decoder::new(buf.written(len - 1)).count(), 0);
        // So do bytes too few for a header, or a length below one.
        assert_eq!(Decoder::new(buf.written(4)).count(), 0);
        buf.0[..mem::size_of::<usize>()].copy_from_slice(&4usize.to_ne_bytes());
        assert_eq!(Decoder::new(buf.written(64)).count(), 0);
    }
}
