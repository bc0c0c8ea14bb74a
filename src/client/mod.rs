//! The client: sends a name, waits for its greeting, and never hangs; and,
//! behind the `bench` feature, the load generator that measures a server.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::protocol::greet;
use crate::sys::is_timeout;

#[cfg(feature = "bench")]
pub mod bench;

/// How long each try waits for its reply by default: 1 s.
///
/// UDP says nothing when a request or its reply is lost, so waiting is the
/// only way to find out. A second is far longer than a round trip on a
/// local network and than most across the internet, so a reply that has
/// not come by then is taken as lost and the request is sent again, and
/// it is short enough that a person hardly waits. A reply slower than the
/// timeout is not an error but a wasted try: on slow paths, wait longer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times a request is sent again after a try times out, by
/// default: 2, so 3 tries in all.
///
/// If a share `p` of tries is lost (the request or its reply), each
/// independently of the others, a name goes unanswered with odds of `p` to
/// the power of the number of tries: 1 in 1,000 with 3 tries at 10 % loss.
/// Sending again is safe because a greeting depends on the request alone:
/// a request that arrives twice is simply answered twice.
pub const DEFAULT_RETRIES: u32 = 2;

/// Room for the largest datagram and one byte more, so an over-long reply
/// is seen as such rather than cut to a match.
const RECV_BUFFER: usize = 65_536;

/// A client of one greeting server.
///
/// UDP may lose a request or its reply, so each try waits a bounded time
/// and the request is sent again a bounded number of times. The socket is
/// connected to the server: the kernel passes on only datagrams from the
/// server's address, and reports at once when nothing listens there (an
/// ICMP port unreachable), where an unconnected socket would wait out every
/// try. Only a reply that is exactly the greeting for the request is taken;
/// anything else is counted and passed over.
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
        let socket = UdpSocket::bind(any).map_err(|e| Error::bind("UDP", any, e))?;
        socket
            .connect(server)
            .map_err(|e| Error::io(format!("connect to {server}"), e))?;
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
        self.socket
            .local_addr()
            .map_err(|e| Error::io("read the client's address", e))
    }

    /// Sends `name` and returns the server's greeting: `Hello, name!`.
    ///
    /// Fails with [`Error::is_refused`] as soon as the operating system
    /// says nothing listens at the server's address, and with
    /// [`Error::is_no_reply`] when every try timed out (saying how many
    /// datagrams came back that were not the greeting).
    pub fn greet(&self, name: &[u8]) -> Result<Vec<u8>> {
        let expected = greet(name);
        let mut buf = vec![0u8; RECV_BUFFER];
        let attempts = self.retries.saturating_add(1);
        let mut wrong = 0;
        // A refusal reported after an earlier call gave up is old news: the
        // server may be back.
        let _ = self.socket.take_error();
        for _ in 0..attempts {
            match self.socket.send(name) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(Error::refused(self.server))
                }
                Err(e) => return Err(Error::io(format!("send to {}", self.server), e)),
            }
            if self.wait_for(&expected, &mut buf, &mut wrong)? {
                return Ok(expected);
            }
        }
        Err(Error::no_reply(self.server, attempts, wrong))
    }

    /// Waits up to the timeout for `expected`. Whatever else arrives
    /// meanwhile (a late reply to an earlier try, a wrong answer) is counted
    /// in `wrong` and passed over.
    fn wait_for(&self, expected: &[u8], buf: &mut [u8], wrong: &mut u64) -> Result<bool> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(|e| Error::io("set the client's timeout", e))?;
            match self.socket.recv(buf) {
                Ok(n) if &buf[..n] == expected => return Ok(true),
                Ok(n) => {
                    *wrong += 1;
                    log::debug!(
                        "ignored {n} bytes from {}: not the reply awaited",
                        self.server
                    );
                }
                Err(e) if is_timeout(&e) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(Error::refused(self.server))
                }
                // A reset or an interrupted call: the wait goes on.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(Error::io(format!("receive from {}", self.server), e)),
            }
        }
    }
}
