//! Elsewhere than Linux: one datagram per system call, no destination
//! addresses.

use std::io;
use std::net::UdpSocket;
use std::sync::Arc;

use crate::sys::datagram::{closed, retry_if_interrupted, Meta, Outgoing};

/// Runs are never segmented here; kept for the writers' common shape.
#[derive(Debug, Default)]
pub(crate) struct Segmentation;

/// Reads one datagram per call.
pub(crate) struct Reader;

/// What ended a [`Reader::read_or_wake`], as on Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    Socket,
    Woken,
    Nudged,
}

/// Here a blocked read ends on the socket's read timeout, and the receiver
/// then sees the shutdown's flag and any probe asked for: nothing to wake.
#[derive(Debug)]
pub(crate) struct Wake;

impl Wake {
    pub(crate) fn new() -> io::Result<Wake> {
        Ok(Wake)
    }

    pub(crate) fn wake(&self) {}

    pub(crate) fn nudge(&self) {}
}

impl Reader {
    pub(crate) fn new(_batch: usize) -> Reader {
        Reader
    }

    /// A blocking read, ended by the socket's read timeout at the latest.
    pub(crate) fn read_or_wake(
        &mut self,
        sock: &UdpSocket,
        bufs: &mut [Vec<u8>],
        out: &mut Vec<Meta>,
        _wake: &Wake,
    ) -> io::Result<Readiness> {
        self.read(sock, bufs, out).map(|()| Readiness::Socket)
    }

    pub(crate) fn read(
        &mut self,
        sock: &UdpSocket,
        bufs: &mut [Vec<u8>],
        out: &mut Vec<Meta>,
    ) -> io::Result<()> {
        self.read_with(sock, bufs, out, 0)
    }

    /// Like `read`, but never waits: `WouldBlock` when nothing is there.
    /// Where a call cannot be told not to wait (not Unix), it never reads,
    /// and the caller goes straight to `read`.
    pub(crate) fn try_read(
        &mut self,
        sock: &UdpSocket,
        bufs: &mut [Vec<u8>],
        out: &mut Vec<Meta>,
    ) -> io::Result<()> {
        #[cfg(unix)]
        return self.read_with(sock, bufs, out, libc::MSG_DONTWAIT);
        #[cfg(not(unix))]
        {
            let _ = (sock, bufs);
            out.clear();
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    fn read_with(
        &mut self,
        sock: &UdpSocket,
        bufs: &mut [Vec<u8>],
        out: &mut Vec<Meta>,
        flags: std::os::raw::c_int,
    ) -> io::Result<()> {
        out.clear();
        let Some(buf) = bufs.first_mut() else {
            return Ok(());
        };
        buf.clear();
        // Into the spare capacity: a buffer is not zeroed for every
        // datagram, only the bytes the kernel writes are touched.
        let (len, from) =
            socket2::SockRef::from(sock).recv_from_with_flags(buf.spare_capacity_mut(), flags)?;
        // SAFETY: `recv_from` initialised the first `len` bytes of the
        // spare capacity, and `len` is at most its length.
        unsafe { buf.set_len(len.min(buf.capacity())) };
        // No source address: the reading side was shut.
        let peer = from.as_socket().ok_or_else(closed)?;
        out.push(Meta {
            len,
            peer,
            local: None,
            truncated: false,
            control_truncated: false,
        });
        Ok(())
    }
}

/// Sends one datagram per call.
pub(crate) struct Writer {
    connected: bool,
}

impl Writer {
    pub(crate) fn new(_batch: usize, _segmentation: Arc<Segmentation>) -> Writer {
        Writer { connected: false }
    }

    /// A writer for a `connect()`ed socket: each message's `peer` is
    /// ignored and every datagram goes to the connected address.
    #[cfg(any(feature = "bench", test))]
    pub(crate) fn connected(_batch: usize, _segmented: bool) -> Writer {
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
            let result = retry_if_interrupted(|| {
                if self.connected {
                    sock.send(m.payload)
                } else {
                    sock.send_to(m.payload, m.peer)
                }
            });
            match result {
                Ok(_) => sent += 1,
                Err(e) => failed(i, e),
            }
        }
        sent
    }
}

/// Elsewhere than Linux no drop count of a socket is read.
pub(crate) fn socket_drops(_sock: &UdpSocket) -> io::Result<u32> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the kernel's drop count of a socket is read on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    use crate::sys::test_support::loopback;

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
        let mut writer = Writer::new(8, Arc::default());
        assert_eq!(writer.write(&tx, msgs, |i, _| failed.push(i)), 3);
        assert_eq!(failed, [3]);

        let mut reader = Reader::new(8);
        let mut bufs = vec![Vec::with_capacity(64), Vec::with_capacity(64)];
        let mut metas = Vec::new();
        let from = tx.local_addr().unwrap();
        for want in [b"one".as_slice(), b"", b"three"] {
            reader.read(&rx, &mut bufs, &mut metas).unwrap();
            assert_eq!(metas.len(), 1);
            assert_eq!(metas[0].peer, from);
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
            Writer::connected(1, false).write(&tx, [msg], |_, e| panic!("{e}")),
            1
        );
        let mut buf = [0u8; 8];
        assert_eq!(rx.recv(&mut buf).unwrap(), 2);
    }
}
