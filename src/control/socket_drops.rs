//! The kernel's drops at a socket, counted from a moment on.
//!
//! The kernel counts, per socket, the datagrams it could not keep for the
//! reader (its receive buffer full, mostly): a count that starts when the
//! socket is made, is shared by every process that holds the socket, and
//! wraps at 2^32. It is read when the counters are reported (a stats tick,
//! a scrape, the final line), one system call each time, so the receiver's
//! path does nothing for it.

use std::net::UdpSocket;
use std::sync::{Mutex, PoisonError};

use crate::sys;

/// The kernel's count since a moment: each reading adds what the count
/// moved by since the last, so a wrap of the kernel's 32 bits between two
/// readings loses nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Since {
    last: u32,
    total: u64,
}

impl Since {
    /// Counting from the kernel's count `now`.
    pub(crate) fn from(now: u32) -> Since {
        Since {
            last: now,
            total: 0,
        }
    }

    /// Takes the kernel's count `now`; returns the drops since the start.
    pub(crate) fn advance(&mut self, now: u32) -> u64 {
        self.total += u64::from(now.wrapping_sub(self.last));
        self.last = now;
        self.total
    }
}

/// The server socket's drops since the server started.
///
/// Holds a copy of the socket's descriptor while the server runs, and
/// gives it back with [`release`](SocketDrops::release) once the server
/// has stopped, so the port is free when the server says so.
#[derive(Debug, Default)]
pub(crate) struct SocketDrops {
    watch: Mutex<Watch>,
}

#[derive(Debug, Default)]
enum Watch {
    /// No socket to read (a server's counters made by hand, in tests).
    #[default]
    None,
    Reading(UdpSocket, Since),
    /// The server has stopped: its last count.
    Released(u64),
}

impl SocketDrops {
    /// Counts `socket`'s drops from now on. Where the kernel gives no count
    /// (not Linux, a kernel before 4.6), there is nothing to report.
    pub(crate) fn watch(socket: &UdpSocket) -> SocketDrops {
        let start = socket
            .try_clone()
            .and_then(|copy| Ok((sys::socket_drops(&copy)?, copy)));
        let watch = match start {
            Ok((now, copy)) => {
                if now > 0 {
                    // A socket passed on (by a service manager, or by the
                    // previous process of an upgrade) may have overflowed
                    // while no process read it: a restart's gap.
                    log::info!(
                        "the kernel had dropped {now} datagrams at this socket before this \
                         process started (counted since the socket was made)"
                    );
                }
                Watch::Reading(copy, Since::from(now))
            }
            Err(e) => {
                log::debug!("the kernel's drops at the socket are not counted: {e}");
                Watch::None
            }
        };
        SocketDrops {
            watch: Mutex::new(watch),
        }
    }

    /// The drops since the start, if the socket is watched.
    pub(crate) fn count(&self) -> Option<u64> {
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *watch {
            Watch::None => None,
            // A failed reading (never, for a socket that gave one) keeps
            // the last count.
            Watch::Reading(socket, since) => Some(match sys::socket_drops(socket) {
                Ok(now) => since.advance(now),
                Err(_) => since.total,
            }),
            Watch::Released(total) => Some(*total),
        }
    }

    /// Takes the last count and closes the copy of the socket.
    pub(crate) fn release(&self) {
        if let Some(total) = self.count() {
            *self.watch.lock().unwrap_or_else(PoisonError::into_inner) = Watch::Released(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_across_a_wrap() {
        let mut since = Since::from(u32::MAX - 2);
        assert_eq!(since.advance(u32::MAX - 2), 0);
        assert_eq!(since.advance(u32::MAX), 2);
        assert_eq!(since.advance(5), 8);
        assert_eq!(since.advance(5), 8);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn from_the_start_and_kept_once_released() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&sink)
            .set_recv_buffer_size(4096)
            .unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let flood = |n| {
            for _ in 0..n {
                sender
                    .send_to(&[1; 512], sink.local_addr().unwrap())
                    .unwrap();
            }
        };
        // Drops before the watch began are not its own.
        flood(100);
        let before = sys::socket_drops(&sink).unwrap();
        assert!(before > 0);
        let drops = SocketDrops::watch(&sink);
        assert_eq!(drops.count(), Some(0));
        flood(100);
        assert_eq!(drops.count(), Some(100), "the buffer was full already");
        drops.release();
        flood(10);
        assert_eq!(drops.count(), Some(100));
        assert_eq!(SocketDrops::default().count(), None);
    }
}
