//! The crate's error type.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// A specialised `Result` for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An error from the server or the client.
///
/// Opaque: every error is made by a constructor that adds what was being
/// done, so its `Display` is one line fit for a user that names the address
/// involved and the operating system's own words.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Bind {
        what: &'static str,
        addr: SocketAddr,
        err: io::Error,
        /// For the server's socket, which `SO_REUSEPORT` lets processes
        /// share: whether it was set.
        reuse_port: Option<bool>,
    },
    Config(String),
    Inherited(String),
    Spawn {
        thread: String,
        err: io::Error,
    },
    Receive(io::Error),
    ThreadPanicked(String),
    NoReply {
        server: SocketAddr,
        attempts: u32,
        wrong: u64,
    },
    Refused {
        server: SocketAddr,
    },
    Io {
        doing: String,
        err: io::Error,
    },
    Handler {
        worker: usize,
        msg: String,
    },
    Overdue {
        within: Duration,
        busy: Vec<(usize, Duration)>,
    },
}

impl Error {
    /// Binding `addr` for `what` ("UDP", "metrics") failed.
    pub(crate) fn bind(what: &'static str, addr: SocketAddr, err: io::Error) -> Error {
        Error {
            kind: ErrorKind::Bind {
                what,
                addr,
                err,
                reuse_port: None,
            },
        }
    }

    /// Binding the server's UDP socket to `addr` failed, with
    /// `SO_REUSEPORT` set or not (`reuse_port`): an address in use then
    /// says that sharing a port takes it on both sockets.
    pub(crate) fn bind_udp(addr: SocketAddr, err: io::Error, reuse_port: bool) -> Error {
        Error {
            kind: ErrorKind::Bind {
                what: "UDP",
                addr,
                err,
                reuse_port: Some(reuse_port),
            },
        }
    }

    pub(crate) fn config(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Config(msg.into()),
        }
    }

    /// What the process inherited from whoever started it (the sockets
    /// and variables of the service manager's protocols) cannot be used.
    /// A setting as much as a flag is, so [`Error::is_config`] holds.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn inherited(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Inherited(msg.into()),
        }
    }

    pub(crate) fn spawn(thread: &str, err: io::Error) -> Error {
        Error {
            kind: ErrorKind::Spawn {
                thread: thread.to_string(),
                err,
            },
        }
    }

    /// The factory could not make the handler of worker `worker`.
    pub(crate) fn handler(worker: usize, msg: String) -> Error {
        Error {
            kind: ErrorKind::Handler { worker, msg },
        }
    }

    /// The receiver's socket failed for good.
    pub(crate) fn receive(err: io::Error) -> Error {
        Error {
            kind: ErrorKind::Receive(err),
        }
    }

    pub(crate) fn thread_panicked(thread: &str) -> Error {
        Error {
            kind: ErrorKind::ThreadPanicked(thread.to_string()),
        }
    }

    /// Every try timed out; `wrong` datagrams came back that were not the
    /// reply awaited.
    pub(crate) fn no_reply(server: SocketAddr, attempts: u32, wrong: u64) -> Error {
        Error {
            kind: ErrorKind::NoReply {
                server,
                attempts,
                wrong,
            },
        }
    }

    /// The operating system said that nothing listens at `server`.
    pub(crate) fn refused(server: SocketAddr) -> Error {
        Error {
            kind: ErrorKind::Refused { server },
        }
    }

    /// An I/O error while `doing` something ("send to 127.0.0.1:9999").
    pub(crate) fn io(doing: impl Into<String>, err: io::Error) -> Error {
        Error {
            kind: ErrorKind::Io {
                doing: doing.into(),
                err,
            },
        }
    }

    /// A stop given `within` had not ended by then; `busy` are the workers
    /// still in their handler, each with how long it had been there.
    pub(crate) fn overdue(within: Duration, busy: Vec<(usize, Duration)>) -> Error {
        Error {
            kind: ErrorKind::Overdue { within, busy },
        }
    }

    /// The underlying I/O error, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.kind {
            ErrorKind::Bind { err, .. }
            | ErrorKind::Spawn { err, .. }
            | ErrorKind::Receive(err)
            | ErrorKind::Io { err, .. } => Some(err),
            ErrorKind::Config(_)
            | ErrorKind::Inherited(_)
            | ErrorKind::ThreadPanicked(_)
            | ErrorKind::NoReply { .. }
            | ErrorKind::Refused { .. }
            | ErrorKind::Handler { .. }
            | ErrorKind::Overdue { .. } => None,
        }
    }

    /// Whether this is a configuration value the server cannot run with,
    /// or something it inherited from the service manager that it cannot
    /// use (a socket of the wrong kind, a malformed variable): either way,
    /// starting again unchanged would fail again.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, ErrorKind::Config(_) | ErrorKind::Inherited(_))
    }

    /// Whether a stop with a deadline
    /// ([`Server::shutdown_within`](crate::Server::shutdown_within)) had
    /// not ended by then.
    pub fn is_overdue(&self) -> bool {
        matches!(self.kind, ErrorKind::Overdue { .. })
    }

    /// Whether the client gave up waiting for a reply.
    pub fn is_no_reply(&self) -> bool {
        matches!(self.kind, ErrorKind::NoReply { .. })
    }

    /// Whether the operating system said that nothing listens at the
    /// server's address (an ICMP port unreachable came back).
    pub fn is_refused(&self) -> bool {
        matches!(self.kind, ErrorKind::Refused { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Bind {
                what,
                addr,
                err,
                reuse_port,
            } => {
                write!(f, "cannot bind {what} {addr}: {err}")?;
                match reuse_port {
                    Some(set) if err.kind() == io::ErrorKind::AddrInUse => {
                        write!(
                            f,
                            "; to share a port, both sockets must set SO_REUSEPORT (--reuse-port)"
                        )?;
                        if *set {
                            write!(
                                f,
                                ": the one holding it does not, or belongs to another user"
                            )?;
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            ErrorKind::Config(msg) => write!(f, "invalid configuration: {msg}"),
            ErrorKind::Inherited(msg) => {
                write!(f, "cannot use what the service manager passed: {msg}")
            }
            ErrorKind::Spawn { thread, err } => {
                write!(f, "cannot start thread {thread}: {err}")
            }
            ErrorKind::Receive(err) => write!(f, "receiving stopped: {err}"),
            ErrorKind::ThreadPanicked(thread) => write!(f, "thread {thread} panicked"),
            ErrorKind::NoReply {
                server,
                attempts,
                wrong,
            } => {
                let tries = if *attempts == 1 { "try" } else { "tries" };
                write!(f, "no reply from {server} after {attempts} {tries}")?;
                match wrong {
                    0 => Ok(()),
                    1 => write!(f, " (1 datagram came back that was not the greeting)"),
                    n => write!(f, " ({n} datagrams came back that were not the greeting)"),
                }
            }
            ErrorKind::Refused { server } => write!(
                f,
                "nothing is listening at {server} (the operating system refused the request)"
            ),
            ErrorKind::Io { doing, err } => write!(f, "cannot {doing}: {err}"),
            ErrorKind::Handler { worker, msg } => {
                write!(f, "cannot make the handler of worker-{worker}: {msg}")
            }
            ErrorKind::Overdue { within, busy } => overdue(f, *within, busy),
        }
    }
}

/// `not stopped within 2s: worker-0 in its handler for 31.0 s, worker-3
/// for 2.2 s`, or what else may hold the stop up when no worker is.
fn overdue(
    f: &mut fmt::Formatter<'_>,
    within: Duration,
    busy: &[(usize, Duration)],
) -> fmt::Result {
    write!(f, "not stopped within {within:?}: ")?;
    if busy.is_empty() {
        return write!(
            f,
            "no worker is in its handler (the rest of the queue, a send or a log write may still be going)"
        );
    }
    for (n, (worker, time)) in busy.iter().enumerate() {
        let sep = if n == 0 { "" } else { ", " };
        let what = if n == 0 { " in its handler" } else { "" };
        write!(
            f,
            "{sep}worker-{worker}{what} for {:.1} s",
            time.as_secs_f64()
        )?;
    }
    Ok(())
}

/// The operating system's words are already in `Display`, the one line a
/// user sees; [`Error::io_error`] gives the `io::Error` itself. So there is
/// no `source`: a reporter walking the chain would print them twice.
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn bind_display() {
        let addr: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let err = Error::bind("UDP", addr, io::Error::from(io::ErrorKind::AddrInUse));
        let msg = err.to_string();
        assert!(msg.starts_with("cannot bind UDP 127.0.0.1:9999: "), "{msg}");
        assert!(!msg.contains('\n'));
        assert!(err.source().is_none() && err.io_error().is_some());
        let err = Error::bind("metrics", addr, io::Error::from(io::ErrorKind::AddrInUse));
        assert!(err
            .to_string()
            .starts_with("cannot bind metrics 127.0.0.1:9999: "));
        assert!(!err.to_string().contains("SO_REUSEPORT"), "{err}");
    }

    #[test]
    fn address_in_use_says_both_must_share() {
        let addr: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let in_use = || io::Error::from(io::ErrorKind::AddrInUse);
        for set in [false, true] {
            let msg = Error::bind_udp(addr, in_use(), set).to_string();
            assert!(msg.starts_with("cannot bind UDP 127.0.0.1:9999: "), "{msg}");
            assert!(
                msg.contains("both sockets must set SO_REUSEPORT (--reuse-port)"),
                "{msg}"
            );
            assert_eq!(msg.contains("the one holding it does not"), set, "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let msg = Error::bind_udp(addr, denied, true).to_string();
        assert!(
            !msg.contains("SO_REUSEPORT"),
            "only an address in use: {msg}"
        );
    }

    #[test]
    fn io_context() {
        let err = Error::io("send to [::1]:7", io::Error::other("boom"));
        assert_eq!(err.to_string(), "cannot send to [::1]:7: boom");
        assert!(err.io_error().is_some());
    }

    #[test]
    fn no_reply() {
        let addr: SocketAddr = "[::1]:7".parse().unwrap();
        let err = Error::no_reply(addr, 3, 0);
        assert_eq!(err.to_string(), "no reply from [::1]:7 after 3 tries");
        assert!(err.is_no_reply() && err.io_error().is_none());
        let err = Error::no_reply(addr, 1, 2);
        assert_eq!(
            err.to_string(),
            "no reply from [::1]:7 after 1 try (2 datagrams came back that were not the greeting)"
        );
        assert!(Error::refused(addr).is_refused());
    }

    #[test]
    fn overdue() {
        let within = Duration::from_secs(2);
        let busy = vec![
            (0, Duration::from_millis(31_040)),
            (3, Duration::from_secs(2)),
        ];
        let err = Error::overdue(within, busy);
        assert_eq!(
            err.to_string(),
            "not stopped within 2s: worker-0 in its handler for 31.0 s, worker-3 for 2.0 s"
        );
        assert!(err.is_overdue() && !err.is_config());
        let idle = Error::overdue(Duration::from_millis(500), Vec::new());
        assert!(idle
            .to_string()
            .starts_with("not stopped within 500ms: no worker is in its handler"));
    }

    #[test]
    fn inherited() {
        let err = Error::inherited("inherited fd 3 is a stream socket, not a UDP socket");
        assert_eq!(
            err.to_string(),
            "cannot use what the service manager passed: \
             inherited fd 3 is a stream socket, not a UDP socket"
        );
        assert!(err.is_config() && err.io_error().is_none());
    }
}
