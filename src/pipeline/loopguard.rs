//! The loop guard's rules for any responder: datagrams that would set the
//! server talking to itself, to another instance, or to a service that
//! answers anything, get no reply.
//!
//! Two responders that answer everything can be made to answer each other
//! forever by one datagram with a forged source address (the "Loop DoS"
//! class, CVE-2024-2169). The old inetd refused "loop requests" from the
//! port of another built-in datagram service for this reason. The guard
//! refuses by source: the server's own address or port, port 0, a service
//! port. Whether a payload is one of the service's own replies is the
//! handler's to say (`Handler::is_reply`), and the worker asks it.
//!
//! Every check is a comparison on the datagram's header fields: no
//! allocation, no lock.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

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
    /// The handler recognised it as one of its own replies.
    Reply,
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
            Rule::Reply => f.write_str("it looks like one of this service's replies"),
        }
    }
}

/// The guard of one server, bound to `local`, refusing `service_ports`.
#[derive(Debug, Clone)]
pub(crate) struct LoopGuard {
    local: SocketAddr,
    service_ports: Box<[u16]>,
}

impl LoopGuard {
    pub(crate) fn new(local: SocketAddr, service_ports: &[u16]) -> LoopGuard {
        LoopGuard {
            local,
            service_ports: service_ports.into(),
        }
    }

    /// The rule that refuses a datagram from `peer`, sent to `destination`
    /// (the request's destination address on a wildcard bind, when known),
    /// or `None` to let it through.
    pub(crate) fn check(&self, peer: SocketAddr, destination: Option<IpAddr>) -> Option<Rule> {
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
        if self.service_ports.contains(&port) {
            return Some(Rule::ServicePort(port));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_SERVICE_PORTS;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_address() {
        let g = LoopGuard::new(addr("127.0.0.1:9999"), DEFAULT_SERVICE_PORTS);
        assert_eq!(
            g.check(addr("127.0.0.1:9999"), None),
            Some(Rule::OwnAddress)
        );
        // Another host's instance on the same port.
        assert_eq!(g.check(addr("192.0.2.1:9999"), None), Some(Rule::OwnPort));
        // A wildcard bind: the datagram's destination is the own address,
        // in either form on a dual-stack socket.
        let g = LoopGuard::new(addr("[::]:9999"), DEFAULT_SERVICE_PORTS);
        let to: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            g.check(addr("[::ffff:127.0.0.1]:9999"), Some(to)),
            Some(Rule::OwnAddress)
        );
        assert_eq!(
            g.check(addr("[::ffff:127.0.0.2]:9999"), Some(to)),
            Some(Rule::OwnPort)
        );
    }

    #[test]
    fn ports() {
        let g = LoopGuard::new(addr("127.0.0.1:9999"), DEFAULT_SERVICE_PORTS);
        assert_eq!(g.check(addr("127.0.0.1:0"), None), Some(Rule::PortZero));
        for &port in DEFAULT_SERVICE_PORTS {
            let peer = SocketAddr::new("192.0.2.7".parse().unwrap(), port);
            assert_eq!(g.check(peer, None), Some(Rule::ServicePort(port)));
        }
        assert_eq!(g.check(addr("192.0.2.7:40000"), None), None);
        assert_eq!(g.check(addr("192.0.2.7:1024"), None), None);
    }

    #[test]
    fn ports_configurable() {
        let g = LoopGuard::new(addr("127.0.0.1:9999"), &[4000]);
        assert_eq!(
            g.check(addr("192.0.2.7:4000"), None),
            Some(Rule::ServicePort(4000))
        );
        assert_eq!(g.check(addr("192.0.2.7:53"), None), None);
        // The server's own port and port 0 are not in the list: always refused.
        let none = LoopGuard::new(addr("127.0.0.1:9999"), &[]);
        assert_eq!(none.check(addr("127.0.0.1:0"), None), Some(Rule::PortZero));
        assert_eq!(
            none.check(addr("192.0.2.7:9999"), None),
            Some(Rule::OwnPort)
        );
    }

    #[test]
    fn said_plainly() {
        assert_eq!(
            Rule::ServicePort(19).to_string(),
            "it comes from port 19, a service that answers anything"
        );
    }
}
