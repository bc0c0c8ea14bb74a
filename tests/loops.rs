//! The loop guard, as far as an unprivileged test can reach it: greetings
//! are not answered, a peer on the server's own port is not answered, names
//! still are, and every refusal is counted. Forged sources (the server's own
//! address, a second instance, a service port) need a raw socket: those
//! tests are in `loops_forged.rs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use crate::support::*;
use udp_greeter::Server;

#[test]
fn greetings_are_not_answered() {
    let server = Server::bind(config(1, 64)).unwrap();
    let addr = server.local_addr();
    let sock = socket_for(addr);
    // What another greeter's reply looks like: answering it would be the
    // next turn of a loop. A name that only starts or ends like one is
    // answered as usual.
    for refused in [b"Hello, Bob!".as_slice(), b"Hello, !", b"Hello, Hello, x!!"] {
        assert!(
            replies_before_sentinel(&sock, addr, refused).is_empty(),
            "{refused:?} was answered"
        );
    }
    for answered in [b"Hello, Bob".as_slice(), b"Bob!", b"Hello,Bob!"] {
        assert_eq!(ask(&sock, addr, answered), udp_greeter::greet(answered));
    }
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_balanced(&stats);
    assert_eq!(stats.dropped_loop, 3, "{stats}");
    // Three names and three sentinels.
    assert_eq!(stats.replied, 6, "{stats}");
}

#[test]
fn own_port_is_not_answered() {
    // A peer on the server's own port, on another loopback address: what
    // a second instance elsewhere looks like. No root needed.
    let server = Server::bind(config(1, 64)).unwrap();
    let addr = server.local_addr();
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let twin = UdpSocket::bind(SocketAddr::new(other, addr.port())).unwrap();
    twin.send_to(b"Michael", addr).unwrap();
    assert_eq!(recv_within(&twin, Duration::from_millis(300)), None);
    let stats = settled(&server, 1);
    assert_eq!(stats.dropped_loop, 1, "{stats}");
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_balanced(&stats);
    assert_eq!(stats.replied, 0, "{stats}");
}

#[test]
fn guard_off_answers_greetings() {
    // The switch works: the same greeting is answered without the guard.
    let mut c = config(1, 64);
    c.loop_guard = false;
    let server = Server::bind(c).unwrap();
    let addr = server.local_addr();
    let sock = socket_for(addr);
    assert_eq!(ask(&sock, addr, b"Hello, Bob!"), b"Hello, Hello, Bob!!");
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_eq!((stats.replied, stats.dropped_loop), (1, 0), "{stats}");
}
