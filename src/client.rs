//! The client: sends a name, waits for its greeting, and never hangs.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::greeting::greet;
use crate::transport::is_timeout;

/// How long each try waits for a reply by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times a request is sent again after a try times out, by default.
pub const DEFAULT_RETRIES: u32 = 2;

/// Room for the largest datagram and one byte more, so an over-long reply
/// is seen as such rather than cut to a match.
const RECV_BUFFER: usize = 65_536;

/// A client of one greeting server.
///
/// UDP may lose a request or its reply, so each try waits a bounded time
/// and the request is sent again a bounded number of times. Only a reply
/// that comes from the server's address and is exactly the greeting for the
/// request is taken; anything else is ignored.
///
/// ```
/// use udp_greeter::{Client, Config, Server};
///
/// let server = Server::bind(Config::new("127.0.0.1:0".parse()?))?;
/// let client = Client::new(server.local_addr())?;
/// assert_eq!(client.greet(b"Michael")?, b"Hello, Michael!");
/// server.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    timeout: Duration,
    retries: u32,
}

impl Client {
    /// A client of `server`, on an ephemeral port of the same address family.
    pub fn new(server: SocketAddr) -> Result<Client> {
        let any: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(any)?;
        Ok(Client {
            socket,
            server,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
        })
    }

    /// Sets how long each try waits for its reply (at least 1 ms).
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how many times a request is sent again after a try times out.
    pub fn retries(mut self, retries: u32) -> Client {
        self.retries = retries;
        self
    }

    /// The server this client talks to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The client's own address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    /// Sends `name` and returns the server's greeting: `Hello, name!`.
    ///
    /// Fails with [`Error::is_no_reply`] when every try timed out.
    pub fn greet(&self, name: &[u8]) -> Result<Vec<u8>> {
        let expected = greet(name);
        let mut buf = vec![0u8; RECV_BUFFER];
        let attempts = self.retries.saturating_add(1);
        for _ in 0..attempts {
            self.socket.send_to(name, self.server)?;
            if self.wait_for(&expected, &mut buf)? {
                return Ok(expected);
            }
        }
        Err(Error::no_reply(self.server, attempts))
    }

    /// Waits up to the timeout for `expected` from the server. Whatever else
    /// arrives meanwhile (a late reply to an earlier try, a stranger's
    /// datagram) is passed over.
    fn wait_for(&self, expected: &[u8], buf: &mut [u8]) -> Result<bool> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.recv_from(buf) {
                Ok((n, from)) if from == self.server && &buf[..n] == expected => return Ok(true),
                Ok((n, from)) => {
                    log::debug!("ignored {n} bytes from {from}: not the reply awaited");
                }
                Err(e) if is_timeout(&e) => return Ok(false),
                // An ICMP error for an earlier datagram; the wait goes on.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
