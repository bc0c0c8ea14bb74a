//! The loop guard: datagrams that would set the server talking to itself,
//! to another greeter, or to a service that answers anything, get no
//! reply.
//!
//! Two responders that answer everything can be made to answer each other
//! forever by one datagram with a forged source address (the "Loop DoS"
//! class, CVE-2024-2169). The old inetd refused "loop requests" from the
//! port of another built-in datagram service for this reason. A greeting
//! grows by 8 bytes per turn, so an unguarded loop only ends at the size
//! limit, some 8,000 turns later. The guard refuses the first turn it can
//! recognise: a datagram from the server's own address, from a service
//! port, or that is itself a greeting.
//!
//! Every check is a comparison on the datagram's header fields or its first
//! and last bytes: no allocation, no lock.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::protocol::{PREFIX, SUFFIX};

/// Source ports of UDP services that answer whatever they are sent, or
/// whose answers a greeting would keep going; the reasons are in
/// `docs/protocol.md`. The server's own port is refused besides these.
pub(crate) const SERVICE_PORTS: &[u16] = &[
    7,     // echo
    11,    // active users (systat)
    13,    // daytime
    17,    // quote of the day
    19,    // chargen
    37,    // time
    53,    // DNS
    69,    // TFTP
    123,   // NTP
    137,   // NetBIOS name service
    161,   // SNMP
    1900,  // SSDP
    11211, // memcached
];

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// It came from the server's own address: answering would be talking
    /// to itself.
    OwnAddress,
    /// It came from source port 0, which no real sender uses.
    PortZero,
    /// It came from the server's own port: another instance of it.
    OwnPort,
    /// It came from the port of a service that answers anything.
    ServicePort(u16),
    /// It is itself a greeting: another greeter's reply.
    Greeting,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::OwnAddress => f.write_str("it comes from the server's own address"),
            Rule::PortZero => f.write_str("it comes from port 0"),
            Rule::OwnPort => f.write_str("it comes from the server's own port"),
            Rule::ServicePort(port) => {
                write!(
                    f,
                    "it comes from port {port}, a service that answers anything"
                )
            }
            Rule::Greeting => f.write_str("it is itself a greeting"),
        }
    }
}

/// The guard of one server, bound to `local`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoopGuard {
    local: SocketAddr,
}

impl LoopGuard {
    pub(crate) fn new(local: SocketAddr) -> LoopGuard {
        LoopGuard { local }
    }

    /// The rule that refuses a datagram of `payload` from `peer`, sent to
    /// `destination` (the request's destination address on a wildcard
    /// bind, when known), or `None` to let it through.
    pub(crate) fn check(
        &self,
        peer: SocketAddr,
        destination: Option<IpAddr>,
        payload: &[u8],
    ) -> Option<Rule> {
        let port = peer.port();
        if port == self.local.port() {
            let own_ip = match destination {
                Some(ip) => ip.to_canonical(),
                None => self.local.ip().to_canonical(),
            };
            return Some(if peer.ip().to_canonical() == own_ip {
                Rule::OwnAddress
            } else {
                Rule::OwnPort
            });
        }
        if port == 0 {
            return Some(Rule::PortZero);
        }
        if SERVICE_PORTS.contains(&port) {
            return Some(Rule::ServicePort(port));
        }
        if is_greeting(payload) {
            return Some(Rule::Greeting);
        }
        None
    }
}

/// Whether `payload` has the shape of a greeting: `Hello, ` ... `!`.
fn is_greeting(payload: &[u8]) -> bool {
    payload.len() >= PREFIX.len() + SUFFIX.len()
        && payload.starts_with(PREFIX)
        && payload.ends_with(SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_address() {
        let g = LoopGuard::new(addr("127.0.0.1:9999"));
        assert_eq!(
            g.check(addr("127.0.0.1:9999"), None, b"x"),
            Some(Rule::OwnAddress)
        );
        // Another host's instance on the same port.
        assert_eq!(
            g.check(addr("192.0.2.1:9999"), None, b"x"),
            Some(Rule::OwnPort)
        );
        // A wildcard bind: the datagram's destination is the own address,
        // in either form on a dual-stack socket.
        let g = LoopGuard::new(addr("[::]:9999"));
        let to: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            g.check(addr("[::ffff:127.0.0.1]:9999"), Some(to), b"x"),
            Some(Rule::OwnAddress)
        );
        assert_eq!(
            g.check(addr("[::ffff:127.0.0.2]:9999"), Some(to), b"x"),
            Some(Rule::OwnPort)
        );
    }

    #[test]
    fn ports() {
        let g = LoopGuard::new(addr("127.0.0.1:9999"));
        assert_eq!(
            g.check(addr("127.0.0.1:0"), None, b"x"),
            Some(Rule::PortZero)
        );
        for &port in SERVICE_PORTS {
            let peer = SocketAddr::new("192.0.2.7".parse().unwrap(), port);
            assert_eq!(g.check(peer, None, b"x"), Some(Rule::ServicePort(port)));
        }
        assert_eq!(g.check(addr("192.0.2.7:40000"), None, b"Michael"), None);
        assert_eq!(g.check(addr("192.0.2.7:1024"), None, b""), None);
    }

    #[test]
    fn greetings() {
        let g = LoopGuard::new(addr("127.0.0.1:9999"));
        let from = addr("127.0.0.1:40000");
        for refused in [b"Hello, !".as_slice(), b"Hello, Bob!", b"Hello, Hello, x!!"] {
            assert_eq!(g.check(from, None, refused), Some(Rule::Greeting));
        }
        for answered in [
            b"Hello".as_slice(),
            b"Hello, Bob",
            b"Hello,!",
            b"hello, Bob!",
            b" Hello, Bob!",
            b"!",
        ] {
            assert_eq!(g.check(from, None, answered), None, "{answered:?}");
        }
    }

    #[test]
    fn said_plainly() {
        assert_eq!(
            Rule::ServicePort(19).to_string(),
            "it comes from port 19, a service that answers anything"
        );
    }
}
