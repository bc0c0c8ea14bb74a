//! Sleeping until a socket is readable or another thread says stop,
//! without touching the socket.
//!
//! Shutting a socket's reading side (`shutdown(SHUT_RD)`) wakes a blocked
//! reader, but it marks the socket object itself, which every copy of the
//! descriptor shares: the copy the service manager keeps, the one a
//! re-executed server reads next. Each of those then gets empty reads at
//! once, for ever. A [`Wake`] is a descriptor of its own (an eventfd) that
//! the reader polls beside the socket, so the socket is left as it was and
//! what is still queued in it stays there for the next reader.
//!
//! Linux only, as eventfd is.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::datagram::{closed, retry_if_interrupted};

/// Two eventfds a reader polls beside its socket: `stop`, a latch that
/// once set ends every wait, then and later; and `nudge`, which ends one
/// wait and is taken by it, to ask the reader to look up from its socket
/// (the watchdog's probe).
#[derive(Debug)]
pub(crate) struct Wake {
    stop: OwnedFd,
    nudge: OwnedFd,
}

/// What ended a [`wait_readable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// The socket has a datagram, or an error, to read.
    Socket,
    /// [`Wake::wake`] was called.
    Woken,
    /// [`Wake::nudge`] was called since the last wait.
    Nudged,
}

/// A non-blocking eventfd whose counter starts at 0.
fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes two integers and touches no memory.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: eventfd just returned `fd`, open and owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter, making it readable. A write that
/// fails (the counter full, after 2^64 - 2 adds) leaves it readable too.
fn add_one(event: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: `one` is 8 readable bytes, the size an eventfd write takes,
    // and outlives the call.
    let _ = unsafe {
        libc::write(
            event.as_raw_fd(),
            (&one as *const u64).cast(),
            std::mem::size_of::<u64>(),
        )
    };
}

/// Takes an eventfd's counter back to 0, so it is no longer readable.
fn drain(event: &OwnedFd) {
    let mut count: u64 = 0;
    // SAFETY: `count` is 8 writable bytes, the size an eventfd read takes,
    // and outlives the call; the fd is non-blocking, so an empty counter
    // returns EAGAIN, which leaves nothing to do.
    let _ = unsafe {
        libc::read(
            event.as_raw_fd(),
            (&mut count as *mut u64).cast(),
            std::mem::size_of::<u64>(),
        )
    };
}

impl Wake {
    /// A wake neither woken nor nudged.
    pub(crate) fn new() -> io::Result<Wake> {
        Ok(Wake {
            stop: eventfd()?,
            nudge: eventfd()?,
        })
    }

    /// Wakes every thread waiting now and every later wait. The counter is
    /// never read, so it stays readable.
    pub(crate) fn wake(&self) {
        add_one(&self.stop);
    }

    /// Ends the next wait (or the current one) with [`Readiness::Nudged`].
    pub(crate) fn nudge(&self) {
        add_one(&self.nudge);
    }
}

/// Sleeps, with no timeout, until `socket` has something to read, or
/// `wake` is woken or nudged. A woken latch wins over both others, so a
/// reader told to stop leaves what is queued to the socket's next reader;
/// a nudge is taken by the wait it ends. A signal that interrupts the wait
/// does not end it. A socket whose reading side was shut (by another
/// process holding it: this one never does) fails with
/// [`closed`](super::datagram::closed): every wait would end at once and
/// every read find nothing.
pub(crate) fn wait_readable(socket: &UdpSocket, wake: &Wake) -> io::Result<Readiness> {
    let mut fds = [
        socket.as_raw_fd(),
        wake.stop.as_raw_fd(),
        wake.nudge.as_raw_fd(),
    ]
    .map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // A socket whose reading side another holder shut stays readable to
    // poll while reads find nothing: asked for, that shows as POLLRDHUP.
    fds[0].events |= libc::POLLRDHUP;
    retry_if_interrupted(|| {
        // SAFETY: `fds` outlives the call and the length is its own.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })?;
    if fds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    if fds[1].revents != 0 {
        return Ok(Readiness::Woken);
    }
    if fds[2].revents != 0 {
        drain(&wake.nudge);
        return Ok(Readiness::Nudged);
    }
    if fds[0].revents & libc::POLLRDHUP != 0 {
        return Err(closed());
    }
    // POLLIN, or POLLERR for an error the next read reports.
    Ok(Readiness::Socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// How long a wait that should end may take before the test fails.
    const PATIENCE: Duration = Duration::from_secs(5);

    /// Runs `wait_readable` on a thread and returns what it said, or fails
    /// if it did not return within [`PATIENCE`] after `act` ran.
    fn waited(socket: &UdpSocket, wake: &Arc<Wake>, act: impl FnOnce()) -> Readiness {
        let (tx, rx) = std::sync::mpsc::channel();
        let socket = socket.try_clone().unwrap();
        let waker = Arc::clone(wake);
        let t = std::thread::spawn(move || {
            let _ = tx.send(wait_readable(&socket, &waker));
        });
        // The thread asleep in poll first, most of the time; the result
        // is the same either way.
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        act();
        let r = rx
            .recv_timeout(PATIENCE)
            .expect("wait_readable did not return");
        assert!(start.elapsed() < PATIENCE);
        t.join().unwrap();
        r.unwrap()
    }

    #[test]
    fn wakes_on_wake_and_stays_woken() {
        let socket = crate::sys::test_support::loopback();
        let wake = Arc::new(Wake::new().unwrap());
        assert_eq!(waited(&socket, &wake, || wake.wake()), Readiness::Woken);
        // A latch: later waits return at once, and a datagram does not
        // take precedence over it.
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"x", socket.local_addr().unwrap()).unwrap();
        assert_eq!(wait_readable(&socket, &wake).unwrap(), Readiness::Woken);
    }

    #[test]
    fn wakes_on_datagram() {
        let socket = crate::sys::test_support::loopback();
        let wake = Arc::new(Wake::new().unwrap());
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        let r = waited(&socket, &wake, || {
            sender.send_to(b"ping", to).unwrap();
        });
        assert_eq!(r, Readiness::Socket);
        let mut buf = [0; 16];
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"ping"[..], sender.local_addr().unwrap())
        );
    }

    /// What `shutdown(SHUT_RD)` breaks: after a wake, another copy of the
    /// socket (a dup, as a service manager or the next process holds)
    /// still blocks for, and receives, datagrams.
    #[test]
    fn other_copies_unharmed() {
        let socket = crate::sys::test_support::loopback();
        let copy = socket.try_clone().unwrap();
        let wake = Arc::new(Wake::new().unwrap());
        assert_eq!(waited(&socket, &wake, || wake.wake()), Readiness::Woken);
        drop(socket);
        copy.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0; 16];
        let idle = copy.recv_from(&mut buf).unwrap_err();
        assert!(crate::sys::is_timeout(&idle), "{idle}");
        copy.set_read_timeout(Some(PATIENCE)).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .send_to(b"after", copy.local_addr().unwrap())
            .unwrap();
        let (n, from) = copy.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"after"[..], sender.local_addr().unwrap())
        );
    }

    #[test]
    fn a_nudge_ends_one_wait() {
        let socket = crate::sys::test_support::loopback();
        let wake = Arc::new(Wake::new().unwrap());
        assert_eq!(waited(&socket, &wake, || wake.nudge()), Readiness::Nudged);
        // Taken by the wait it ended: the next one sleeps until a datagram.
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        let r = waited(&socket, &wake, || {
            sender.send_to(b"x", to).unwrap();
        });
        assert_eq!(r, Readiness::Socket);
        // A stop wins over a nudge.
        wake.nudge();
        wake.wake();
        assert_eq!(wait_readable(&socket, &wake).unwrap(), Readiness::Woken);
    }
}
