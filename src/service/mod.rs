//! Running under a service manager: the socket it passed (socket
//! activation), telling it how the service is doing (sd_notify), and
//! handing the socket on to a new program for an upgrade in place.
//!
//! The point of each is that the UDP socket outlives the process: a socket
//! that systemd holds (a `.socket` unit, or the file descriptor store) or
//! that a server passes to its re-executed self keeps receiving while no
//! process reads it, so a restart or an upgrade loses no datagram that
//! fits in the receive buffer meanwhile.
//!
//! - [`inherited_socket`]: the UDP socket passed by the sd_listen_fds(3)
//!   protocol (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`), if any;
//! - [`pass_socket`]: the other direction, a socket made descriptor 3 of a
//!   child, with the variables that say so;
//! - [`Notifier`]: the sd_notify(3) protocol (`NOTIFY_SOCKET`): `READY=1`,
//!   `STOPPING=1`, `STATUS=`, `WATCHDOG=1`, `MAINPID=`;
//! - [`watchdog_interval`]: how often the watchdog wants a ping
//!   (`WATCHDOG_USEC`, `WATCHDOG_PID`);
//! - [`bind`]: the socket a server would bind, bound ahead, for a caller
//!   that keeps a copy to hand on.
//!
//! Both protocols are written by hand, a few lines each, rather than with
//! a crate (libsystemd's own C, or a binding). Nothing here starts a thread
//! or a timer, and nothing changes the process's environment.
//!
//! Linux only, as systemd is.

mod activation;
mod notify;

use std::net::UdpSocket;

use crate::config::Config;
use crate::error::Result;

pub use activation::{inherited_socket, pass_socket};
pub use notify::{watchdog_interval, Notifier, Silencer};

/// Binds the socket `config` describes, with the options the server sets
/// when it binds one itself (its address, `SO_REUSEPORT`, the receive
/// buffer), for a caller that keeps a copy of it: to hand it on to an
/// upgrade ([`pass_socket`]) while the server serves it
/// ([`Builder::socket`](crate::Builder::socket)).
///
/// # Errors
///
/// An invalid `config` ([`Error::is_config`](crate::Error::is_config)), or
/// the bind failed, as [`Builder::start`](crate::Builder::start) fails.
///
/// ```
/// use udp_greeter::{service, Config, Server};
///
/// let socket = service::bind(&Config::new("127.0.0.1:0".parse()?))?;
/// let kept = socket.try_clone()?;
/// let server = Server::builder(Config::new("127.0.0.1:0".parse()?))
///     .socket(socket)
///     .start()?;
/// assert_eq!(server.local_addr(), kept.local_addr()?);
/// server.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn bind(config: &Config) -> Result<UdpSocket> {
    config.validate()?;
    crate::sys::bind(config)
}
