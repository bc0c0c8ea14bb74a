//! The sd_notify(3) protocol: telling the service manager how the service
//! is doing, one datagram per message, and the watchdog's period.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// The longest a message waits for room in the manager's queue.
const SEND_WAIT: Duration = Duration::from_millis(500);

/// A way to tell the service manager about this service: the socket that
/// `NOTIFY_SOCKET` names, an absolute path or `@name` in the abstract
/// namespace.
///
/// Each message is `VARIABLE=value` lines in one datagram
/// (sd_notify(3) lists them); the methods send the common ones. Nothing
/// runs in the background: the caller decides when to send, and a
/// watchdog ping is the caller's to send every [`watchdog_interval`].
///
/// Written by hand, a few lines, rather than with a crate.
///
/// ```
/// use udp_greeter::service::Notifier;
///
/// // `None` when not started by a service manager that listens.
/// if let Some(notifier) = Notifier::from_env()? {
///     notifier.ready()?;
///     notifier.status("answering on 0.0.0.0:9999")?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
    silenced: Arc<AtomicBool>,
}

/// Silences a [`Notifier`] from elsewhere, once it has been moved into a
/// server: made by [`Notifier::silencer`].
///
/// A process that has handed the service to another (an upgrade, after
/// [`Notifier::main_pid`]) must tell the manager nothing more: where it
/// accepts messages from every process of the service, a `STOPPING=1`
/// from the old process would stop the service, new process and all.
#[derive(Debug, Clone)]
pub struct Silencer(Arc<AtomicBool>);

impl Silencer {
    /// From now on the notifier sends nothing; each message it is asked
    /// to send counts as sent.
    pub fn silence(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` names; `Ok(None)` when it is unset or
    /// empty, as it is outside a `Type=notify` service. Like
    /// [`inherited_socket`](super::inherited_socket), this leaves the
    /// variable set.
    ///
    /// # Errors
    ///
    /// The address is neither absolute nor abstract (`vsock:` addresses
    /// are not supported), or no socket could be made to send from.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(address) if !address.is_empty() => Notifier::new(address).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for the socket at `address`, written as `NOTIFY_SOCKET`
    /// writes it: `/run/...` for a path, `@name` for an abstract name.
    ///
    /// # Errors
    ///
    /// As for [`Notifier::from_env`].
    pub fn new(address: impl AsRef<OsStr>) -> io::Result<Notifier> {
        let address = address.as_ref();
        let to = match address.as_bytes() {
            [b'@', name @ ..] if !name.is_empty() => SocketAddr::from_abstract_name(name)?,
            [b'/', ..] => SocketAddr::from_pathname(Path::new(address))?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("notify socket {address:?} is neither an absolute path nor @name"),
                ))
            }
        };
        // Waits at most SEND_WAIT for a manager whose queue is full: long
        // enough for one that is only slow, short enough that a shutdown's
        // waker or the watchdog is never held up for long.
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SEND_WAIT))?;
        Ok(Notifier {
            socket,
            to,
            silenced: Arc::default(),
        })
    }

    /// A switch that silences this notifier, for good, from any thread.
    pub fn silencer(&self) -> Silencer {
        Silencer(self.silenced.clone())
    }

    /// Sends `message`, one or more `VARIABLE=value` lines, as one
    /// datagram.
    ///
    /// # Errors
    ///
    /// The send failed: nobody listens at the address any more, say.
    pub fn notify(&self, message: &str) -> io::Result<()> {
        if self.silenced.load(Ordering::SeqCst) {
            return Ok(());
        }
        let sent = self.socket.send_to_addr(message.as_bytes(), &self.to)?;
        if sent != message.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("only {sent} of {} bytes sent", message.len()),
            ));
        }
        Ok(())
    }

    /// `READY=1`: started, and answering. Under `Type=notify` the service
    /// counts as started only once this arrives.
    ///
    /// # Errors
    ///
    /// As for [`Notifier::notify`].
    pub fn ready(&self) -> io::Result<()> {
        self.notify("READY=1")
    }

    /// `STOPPING=1`: shutting down, on purpose.
    ///
    /// # Errors
    ///
    /// As for [`Notifier::notify`].
    pub fn stopping(&self) -> io::Result<()> {
        self.notify("STOPPING=1")
    }

    /// `STATUS=...`: one line for `systemctl status`; a line break in
    /// `text` becomes a space, so that it cannot start another variable.
    ///
    /// # Errors
    ///
    /// As for [`Notifier::notify`].
    pub fn status(&self, text: &str) -> io::Result<()> {
        self.notify(&format!("STATUS={}", text.replace('\n', " ")))
    }

    /// `WATCHDOG=1`: still alive; due every [`watchdog_interval`].
    ///
    /// # Errors
    ///
    /// As for [`Notifier::notify`].
    pub fn watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }

    /// `MAINPID=pid`: the service's main process is now `pid`, as when a
    /// server has handed its socket to its upgraded self and is about to
    /// exit.
    ///
    /// # Errors
    ///
    /// As for [`Notifier::notify`].
    pub fn main_pid(&self, pid: u32) -> io::Result<()> {
        self.notify(&format!("MAINPID={pid}"))
    }
}

/// How often to send [`Notifier::watchdog`]: half of `WATCHDOG_USEC`, the
/// service manager's deadline, as sd_watchdog_enabled(3) advises. `None`
/// when there is no watchdog: `WATCHDOG_USEC` unset, or `WATCHDOG_PID`
/// set to another process's id.
///
/// A server that re-executes itself passes its deadline on by removing
/// `WATCHDOG_PID` from the new program's `Command` (`env_remove`), which
/// otherwise sees the old process's id there and no watchdog.
///
/// # Errors
///
/// An [`Error::is_config`] error when a variable is not a number, or the
/// deadline is 0 or infinite (`u64::MAX`), which sd_watchdog_enabled(3)
/// refuses too.
pub fn watchdog_interval() -> Result<Option<Duration>> {
    let usec = std::env::var_os("WATCHDOG_USEC");
    let pid = std::env::var_os("WATCHDOG_PID");
    watchdog_period(
        usec.as_deref().map(OsStr::to_string_lossy).as_deref(),
        pid.as_deref().map(OsStr::to_string_lossy).as_deref(),
        std::process::id(),
    )
    .map_err(Error::inherited)
}

/// What `WATCHDOG_USEC` and `WATCHDOG_PID` say for process `our_pid`.
fn watchdog_period(
    usec: Option<&str>,
    pid: Option<&str>,
    our_pid: u32,
) -> std::result::Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    let deadline: u64 = usec
        .parse()
        .map_err(|_| format!("WATCHDOG_USEC is {usec:?}, not a number of microseconds"))?;
    if deadline == 0 || deadline == u64::MAX {
        return Err(format!("WATCHDOG_USEC is {usec}, not a deadline"));
    }
    if let Some(pid) = pid {
        let pid: u32 = pid
            .parse()
            .map_err(|_| format!("WATCHDOG_PID is {pid:?}, not a process id"))?;
        if pid != our_pid {
            return Ok(None);
        }
    }
    Ok(Some(Duration::from_micros(deadline / 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_period_parsed() {
        let ours = 77;
        let period = |usec, pid| watchdog_period(usec, pid, ours);
        assert_eq!(period(None, None), Ok(None));
        assert_eq!(period(None, Some("77")), Ok(None));
        let half = Some(Duration::from_millis(1500));
        assert_eq!(period(Some("3000000"), None), Ok(half));
        assert_eq!(period(Some("3000000"), Some("77")), Ok(half));
        assert_eq!(period(Some("3000000"), Some("78")), Ok(None));
        assert_eq!(period(Some("1"), None), Ok(Some(Duration::ZERO)));
        for bad in ["", "0", "-5", "1.5s", "18446744073709551615"] {
            assert!(period(Some(bad), None).is_err(), "{bad:?}");
        }
        let e = period(Some("3000000"), Some("pid")).unwrap_err();
        assert_eq!(e, "WATCHDOG_PID is \"pid\", not a process id");
    }

    #[test]
    fn a_silenced_notifier_sends_nothing() {
        let name = format!("udp-greeter-unit-silenced-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let notifier = Notifier::new(format!("@{name}")).unwrap();
        let silencer = notifier.silencer();
        notifier.ready().unwrap();
        silencer.silence();
        notifier.stopping().unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let e = listener.recv(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "STOPPING=1 was sent");
    }

    #[test]
    fn addresses() {
        assert!(Notifier::new("/run/systemd/notify").is_ok());
        assert!(Notifier::new("@name").is_ok());
        for bad in ["", "@", "relative/path", "vsock:2:1234"] {
            let e = Notifier::new(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
