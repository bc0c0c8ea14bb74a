//! Creating sockets: the server's, bound and configured once, and the bench
//! client's, connected and non-blocking.

use std::io;
#[cfg(feature = "bench")]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::error::{Error, Result};

/// How long one send may block on a full socket send buffer before its
/// replies count as failed sends; what bounds how long a worker, and so
/// the shutdown, can wait on a send (per call: a batch to many peers that
/// all block may take this once per run).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a read blocks where the receiver cannot sleep on the socket and
/// a wake together (elsewhere than Linux), so it still sees the shutdown's
/// flag within this.
#[cfg(not(target_os = "linux"))]
const READ_TIMEOUT: Duration = Duration::from_millis(50);

/// Creates, configures and binds the server's socket. Elsewhere than
/// Linux a blocking read also ends after [`READ_TIMEOUT`], so the receiver
/// sees the shutdown's flag.
pub(crate) fn bind(config: &Config) -> Result<UdpSocket> {
    let addr = config.bind;
    let fail = |e| Error::bind_udp(addr, e, config.reuse_port);
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(fail)?;
    if config.reuse_port {
        set_reuse_port(&socket).map_err(fail)?;
    }
    if let Some(size) = config.recv_buffer {
        // A refusal is not fatal: the default buffer still works, only
        // bursts are more likely to be dropped by the kernel.
        if let Err(e) = socket.set_recv_buffer_size(size) {
            log::warn!("cannot set receive buffer to {size} bytes: {e}");
        }
    }
    socket.bind(&addr.into()).map_err(fail)?;
    prepare(&socket, addr).map_err(fail)?;
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

/// Takes a socket the caller bound and configured, and changes only what
/// serving needs: reads that block, a send timeout where none is set, and destination
/// addresses on a wildcard bind. Its buffers, `SO_REUSEPORT` and any other
/// option stay as the caller set them.
pub(crate) fn adopt(socket: UdpSocket) -> Result<UdpSocket> {
    let socket = Socket::from(socket);
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .filter(|a| a.port() != 0)
        .ok_or_else(|| Error::config("the socket given to the server is not bound"))?;
    if socket.r#type().ok() != Some(Type::DGRAM) {
        return Err(Error::config(format!(
            "the socket given to the server ({addr}) is not a datagram socket"
        )));
    }
    let fail = |e| {
        Error::io(
            format!("prepare the socket given to the server ({addr})"),
            e,
        )
    };
    socket.set_nonblocking(false).map_err(fail)?;
    // A send timeout the caller chose stands.
    if socket.write_timeout().map_err(fail)?.is_none() {
        socket.set_write_timeout(Some(SEND_TIMEOUT)).map_err(fail)?;
    }
    prepare_reads(&socket, addr).map_err(fail)?;
    Ok(socket.into())
}

/// What every server socket needs once bound: the send timeout, and what
/// [`prepare_reads`] sets.
fn prepare(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    socket.set_write_timeout(Some(SEND_TIMEOUT))?;
    prepare_reads(socket, addr)
}

/// Destination addresses on a wildcard bind, and the read timeout where a
/// wake cannot end a read.
fn prepare_reads(socket: &Socket, addr: SocketAddr) -> io::Result<()> {
    if addr.ip().is_unspecified() {
        if let Err(e) = enable_pktinfo(socket, addr) {
            log::warn!("replies may leave from another address than requests reached: {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    socket.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(())
}

#[cfg(target_os = "linux")]
use super::linux::enable_pktinfo;

#[cfg(not(target_os = "linux"))]
fn enable_pktinfo(_socket: &Socket, _addr: SocketAddr) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "destination addresses are only tracked on Linux",
    ))
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

/// A non-blocking socket of the server's address family, connected to it,
/// with `buffer` bytes asked for each way; on the loopback address when the
/// server is there, so test traffic stays on it.
#[cfg(feature = "bench")]
pub(crate) fn client_socket(server: SocketAddr, buffer: usize) -> io::Result<UdpSocket> {
    let ip: IpAddr = match server.ip() {
        ip if ip.is_loopback() => ip,
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = Socket::new(
        Domain::for_address(server),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    // Best effort: a smaller buffer only makes bursts likelier to drop.
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    // Connected: the kernel looks the route up once, not per datagram, and
    // drops datagrams from any other address before they reach the caller.
    socket.connect(&server.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Makes `socket`'s descriptor refer to `/dev/null`, so that every socket
/// call on it fails with `ENOTSOCK`: an error no retry mends.
#[cfg(all(test, unix))]
pub(crate) fn break_for_test(socket: &UdpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: both descriptors are open and owned by the caller and this
    // function; dup2 only makes the socket's number refer to /dev/null.
    if unsafe { libc::dup2(null.as_raw_fd(), socket.as_raw_fd()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's timer slack set to its finest (1 ns) while this
/// lives, so that short sleeps end when asked rather than up to 50 us late;
/// the slack it had is restored on drop.
#[cfg(feature = "bench")]
#[derive(Debug)]
pub(crate) struct TimerSlack {
    #[cfg(target_os = "linux")]
    before: libc::c_ulong,
    /// The slack is the thread's own: restoring it on another thread would
    /// change that thread's, so the guard must not be sent.
    _thread_bound: std::marker::PhantomData<*const ()>,
}

#[cfg(feature = "bench")]
impl TimerSlack {
    pub(crate) fn finest() -> TimerSlack {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the
            // slack; PR_SET_TIMERSLACK takes a value. Neither touches memory.
            let before = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK) };
            // SAFETY: as above.
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
            TimerSlack {
                before: before.max(1) as libc::c_ulong,
                _thread_bound: std::marker::PhantomData,
            }
        }
        #[cfg(not(target_os = "linux"))]
        TimerSlack {
            _thread_bound: std::marker::PhantomData,
        }
    }
}

#[cfg(feature = "bench")]
impl Drop for TimerSlack {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        // SAFETY: as in `finest`.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, self.before);
        }
    }
}
