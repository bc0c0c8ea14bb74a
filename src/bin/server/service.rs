//! What the process was handed by whoever started it: a socket (socket
//! activation, or the previous process of an upgrade), a service manager
//! to notify, a watchdog to ping, and a previous process waiting to hear
//! that this one serves.

use std::net::UdpSocket;
use std::time::Duration;

use udp_greeter::service::{self, Notifier};

/// Where the previous process of an upgrade listens for `READY=1`: an
/// `@abstract` address, as `NOTIFY_SOCKET` writes one.
pub const UPGRADE_NOTIFY: &str = "UDP_GREETER_UPGRADE_NOTIFY";

/// The token that a `READY=1` to [`UPGRADE_NOTIFY`] carries: anyone on
/// the host may send to an abstract address, but only this process (and
/// its user) can read its environment.
pub const UPGRADE_TOKEN: &str = "UDP_GREETER_UPGRADE_TOKEN";

/// Who passed the socket, for the line that says it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passer {
    ServiceManager,
    PreviousProcess,
}

/// What the process inherited.
#[derive(Debug)]
pub struct Inherited {
    /// The socket passed (`LISTEN_FDS`), and by whom.
    pub socket: Option<(UdpSocket, Passer)>,
    /// `NOTIFY_SOCKET`, for the server to report on.
    pub notifier: Option<Notifier>,
    /// `NOTIFY_SOCKET` again, for the binary's own `MAINPID=`.
    pub manager: Option<Notifier>,
    /// Half of `WATCHDOG_USEC`, when there is a notifier to ping.
    pub watchdog: Option<Duration>,
    /// The previous process of an upgrade.
    pub previous: Option<Previous>,
}

/// Why the inheritance cannot be used: a line for stderr, and the exit
/// code (2 when starting again unchanged would fail again).
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    fn setting(message: String) -> Failure {
        Failure { message, code: 2 }
    }
}

impl Inherited {
    /// Reads the variables and takes the socket passed, if any.
    pub fn from_env() -> Result<Inherited, Failure> {
        let previous = Previous::from_env()?;
        let socket = service::inherited_socket(None).map_err(|e| Failure {
            code: if e.is_config() { 2 } else { 1 },
            message: e.to_string(),
        })?;
        let passer = if previous.is_some() {
            Passer::PreviousProcess
        } else {
            Passer::ServiceManager
        };
        let notifier = notify_socket()?;
        let manager = match notifier {
            Some(_) => notify_socket()?,
            None => None,
        };
        let watchdog = service::watchdog_interval().map_err(|e| Failure::setting(e.to_string()))?;
        if watchdog.is_some() && notifier.is_none() {
            log::warn!("WATCHDOG_USEC is set but NOTIFY_SOCKET is not: no watchdog to ping");
        }
        Ok(Inherited {
            socket: socket.map(|s| (s, passer)),
            watchdog: watchdog.filter(|_| notifier.is_some()),
            notifier,
            manager,
            previous,
        })
    }
}

/// The notifier `NOTIFY_SOCKET` names, if set.
fn notify_socket() -> Result<Option<Notifier>, Failure> {
    Notifier::from_env().map_err(|e| Failure {
        code: if e.kind() == std::io::ErrorKind::InvalidInput {
            2
        } else {
            1
        },
        message: format!("cannot use NOTIFY_SOCKET: {e}"),
    })
}

/// The previous process of an upgrade: where it waits for `READY=1`, and
/// the token to send with it.
#[derive(Debug)]
pub struct Previous {
    notifier: Notifier,
    token: String,
}

impl Previous {
    /// From [`UPGRADE_NOTIFY`] and [`UPGRADE_TOKEN`]; `None` when this
    /// process is no upgrade.
    fn from_env() -> Result<Option<Previous>, Failure> {
        let Some(address) = std::env::var_os(UPGRADE_NOTIFY) else {
            return Ok(None);
        };
        let bad = |what: String| Failure::setting(format!("cannot use {UPGRADE_NOTIFY}: {what}"));
        let token =
            std::env::var(UPGRADE_TOKEN).map_err(|e| bad(format!("{UPGRADE_TOKEN}: {e}")))?;
        let notifier = Notifier::new(&address).map_err(|e| bad(e.to_string()))?;
        Ok(Some(Previous { notifier, token }))
    }

    /// Tells the previous process that this one serves, so that it stops.
    pub fn ready(&self) {
        if let Err(e) = self.notifier.notify(&ready_message(&self.token)) {
            log::warn!("cannot tell the previous process this one is ready: {e}");
        }
    }
}

/// The message a process started by an upgrade sends once it serves.
pub fn ready_message(token: &str) -> String {
    format!("READY=1\nTOKEN={token}")
}
