//! The crate's error type.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// A specialised `Result` for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An error from the server or the client.
///
/// Its `Display` is one line fit for a user: it names the address involved
/// and the operating system's own words.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Bind { addr: SocketAddr, err: io::Error },
    Config(String),
    Spawn { thread: String, err: io::Error },
    Receive(io::Error),
    ThreadPanicked(String),
    NoReply { server: SocketAddr, attempts: u32 },
    Io(io::Error),
}

impl Error {
    pub(crate) fn bind(addr: SocketAddr, err: io::Error) -> Error {
        Error {
            kind: ErrorKind::Bind { addr, err },
        }
    }

    pub(crate) fn config(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Config(msg.into()),
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

    pub(crate) fn no_reply(server: SocketAddr, attempts: u32) -> Error {
        Error {
            kind: ErrorKind::NoReply { server, attempts },
        }
    }

    /// The underlying I/O error, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.kind {
            ErrorKind::Bind { err, .. }
            | ErrorKind::Spawn { err, .. }
            | ErrorKind::Receive(err)
            | ErrorKind::Io(err) => Some(err),
            ErrorKind::Config(_) | ErrorKind::ThreadPanicked(_) | ErrorKind::NoReply { .. } => None,
        }
    }

    /// Whether this is a configuration value the server cannot run with.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, ErrorKind::Config(_))
    }

    /// Whether the client gave up waiting for a reply.
    pub fn is_no_reply(&self) -> bool {
        matches!(self.kind, ErrorKind::NoReply { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Bind { addr, err } => write!(f, "cannot bind UDP {addr}: {err}"),
            ErrorKind::Config(msg) => write!(f, "invalid configuration: {msg}"),
            ErrorKind::Spawn { thread, err } => {
                write!(f, "cannot start thread {thread}: {err}")
            }
            ErrorKind::Receive(err) => write!(f, "receiving stopped: {err}"),
            ErrorKind::ThreadPanicked(thread) => write!(f, "thread {thread} panicked"),
            ErrorKind::NoReply { server, attempts } => {
                let tries = if *attempts == 1 { "try" } else { "tries" };
                write!(f, "no reply from {server} after {attempts} {tries}")
            }
            ErrorKind::Io(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            // `Io` displays the inner error itself, so it is not its source
            // too: a reporter walking the chain would print it twice.
            ErrorKind::Io(err) => err.source(),
            _ => self
                .io_error()
                .map(|e| e as &(dyn std::error::Error + 'static)),
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error {
            kind: ErrorKind::Io(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn bind_display() {
        let addr: SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let err = Error::bind(addr, io::Error::from(io::ErrorKind::AddrInUse));
        let msg = err.to_string();
        assert!(msg.starts_with("cannot bind UDP 127.0.0.1:9999: "), "{msg}");
        assert!(!msg.contains('\n'));
        assert!(err.source().is_some());
    }

    #[test]
    fn from_io() {
        let err = Error::from(io::Error::other("boom"));
        assert_eq!(err.to_string(), "boom");
        assert!(err.io_error().is_some());
    }

    #[test]
    fn no_reply() {
        let addr: SocketAddr = "[::1]:7".parse().unwrap();
        let err = Error::no_reply(addr, 3);
        assert_eq!(err.to_string(), "no reply from [::1]:7 after 3 tries");
        assert!(err.is_no_reply() && err.source().is_none());
    }
}
