//! A server bound to a wildcard address answers from the address each
//! request was sent to (IP_PKTINFO / IPV6_RECVPKTINFO): otherwise a client
//! that connected its socket, or that checks the sender, drops the reply.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use udp_greeter::Server;

use crate::support::{config, first_reply, shutdown_within, socket_on, PATIENCE, V4, V4_OTHER, V6};

/// A wildcard-bound server with the tests' usual two workers.
fn server_on(wildcard: IpAddr) -> Server {
    let mut c = config(2, 256);
    c.bind = SocketAddr::new(wildcard, 0);
    Server::bind(c).unwrap()
}

/// A client connected to `to` gets its reply, and an unconnected socket
/// sees it come from exactly `to`.
fn assert_answers_from(to: SocketAddr, client_ip: IpAddr) {
    // The kernel hands a connected socket only datagrams from `to`: a reply
    // from another address never arrives.
    let connected = socket_on(client_ip);
    connected.connect(to).unwrap();
    connected
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut got = None;
    for _ in 0..3 {
        connected.send(b"pktinfo").unwrap();
        let mut buf = [0; 64];
        if let Ok(n) = connected.recv(&mut buf) {
            got = Some(buf[..n].to_vec());
            break;
        }
    }
    assert_eq!(
        got.as_deref(),
        Some(&b"Hello, pktinfo!"[..]),
        "no reply on a socket connected to {to}"
    );

    let open = socket_on(client_ip);
    let (reply, from) = first_reply(&open, to, b"where");
    assert_eq!(reply, b"Hello, where!");
    assert_eq!(from, to, "the reply left from another address");
}

#[test]
fn pktinfo_v4() {
    let server = server_on(Ipv4Addr::UNSPECIFIED.into());
    let port = server.local_addr().port();
    assert_answers_from((V4_OTHER, port).into(), V4);
    assert_answers_from((V4, port).into(), V4);
    assert!(shutdown_within(server, PATIENCE).unwrap().is_balanced());
}

#[test]
fn pktinfo_multicast() {
    // A request to a multicast group cannot be answered from the group's
    // address: the reply leaves from the interface's own (127.0.0.1).
    let server = server_on(Ipv4Addr::UNSPECIFIED.into());
    let port = server.local_addr().port();
    // A group per test process, so parallel runs do not hear each other.
    let group = Ipv4Addr::new(239, 255, 71, (std::process::id() % 250) as u8 + 1);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sock.bind(&SocketAddr::from((V4, 0)).into()).unwrap();
    // Kept on the loopback interface and on this host.
    sock.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    sock.set_multicast_ttl_v4(0).unwrap();
    sock.set_multicast_loop_v4(true).unwrap();
    // Someone on the host must be in the group for it to be delivered; the
    // server's socket is bound to the port and takes it too.
    sock.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
        .unwrap_or_else(|e| panic!("cannot join {group} on the loopback interface: {e}"));
    let sock: UdpSocket = sock.into();
    let (reply, from) = first_reply(&sock, (group, port).into(), b"group");
    assert_eq!(reply, b"Hello, group!");
    assert_eq!(from, SocketAddr::from((V4, port)));
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_eq!(stats.send_failed, 0, "{stats}");
}

#[test]
fn pktinfo_v6() {
    let server = server_on(Ipv6Addr::UNSPECIFIED.into());
    let port = server.local_addr().port();
    assert_answers_from((Ipv6Addr::LOCALHOST, port).into(), V6);
    // The same socket also takes IPv4 unless the host makes IPv6 sockets
    // IPv6-only; its requests arrive as IPv4-mapped addresses.
    // The same socket also takes IPv4, as Linux makes IPv6 sockets by
    // default; its requests arrive as IPv4-mapped addresses.
    let v6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").unwrap_or_default();
    assert_eq!(
        v6only.trim(),
        "0",
        "this test needs net.ipv6.bindv6only = 0, the Linux default"
    );
    let mapped = |ip: Ipv4Addr| SocketAddr::from((ip.to_ipv6_mapped(), port));
    let open = socket_on(Ipv6Addr::UNSPECIFIED.into());
    let (reply, from) = first_reply(&open, mapped(Ipv4Addr::new(127, 0, 0, 2)), b"mapped");
    assert_eq!(reply, b"Hello, mapped!");
    assert_eq!(from, mapped(Ipv4Addr::new(127, 0, 0, 2)));
    assert_answers_from((V4_OTHER, port).into(), V4);
    // An IPv4 request on a dual-stack socket brings two control messages:
    // the receiver has room for both, so the kernel cut none.
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert!(stats.is_balanced(), "{stats}");
    assert_eq!(stats.control_truncated, 0, "{stats}");
}
