//! The loop guard, as far as an unprivileged test can reach it: greetings
//! are not answered, a peer on the server's own port is not answered, names
//! still are, and every refusal is counted. Forged sources (the server's own
//! address, a second instance, a service port) need a raw socket, root and
//! a network namespace: those tests, in `forged` below, are ignored by a
//! plain `cargo test`.

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

/// One forged datagram against servers in a namespace of the test's own:
/// a raw socket sends it with the source address the attack would forge.
/// Needs root, `ip` and `python3`; ignored by a plain `cargo test`.
#[cfg(target_os = "linux")]
mod forged {
    use super::*;

    /// A server in `ns`, on 127.0.0.1, port 0, with `args`.
    fn start(ns: &Netns, args: &[&str]) -> (Proc, u16) {
        let mut cmd = ns.command(SERVER_BIN);
        cmd.args(["--bind", "127.0.0.1:0", "--stats-interval", "100ms"])
            .args(args);
        let (server, port) = server_with(&mut cmd);
        wait_signal_handlers(server.pid());
        (server, port)
    }

    /// Sends `payload` to 127.0.0.1:`to` from 127.0.0.1:`from`, forged.
    fn forge(ns: &Netns, from: u16, to: u16, payload: &str) {
        let script = shipped("tests/loops/forge.py");
        let (from, to) = (from.to_string(), to.to_string());
        let out = ns.run(&[
            "python3",
            "-c",
            &script,
            "127.0.0.1",
            &from,
            "127.0.0.1",
            &to,
            payload,
        ]);
        ok(out, "forge a datagram");
    }

    /// Waits until `server` has logged `what`.
    fn logged(server: &Proc, what: &str) {
        assert!(
            server.wait_stderr(what, PATIENCE),
            "no {what:?} within {PATIENCE:?}:\n{}",
            server.stderr_text()
        );
    }

    fn netns() -> Netns {
        Netns::new("loops", &[PYTHON])
    }

    #[test]
    #[ignore = "needs root, iproute2 and python3: cargo test --test tests loops -- --include-ignored"]
    fn forged_from_itself() {
        let ns = netns();
        let (mut server, port) = start(&ns, &[]);
        forge(&ns, port, port, "x");
        logged(&server, "loop guard: no reply");
        let stats = server.stop();
        assert_balanced(&stats);
        assert_eq!((stats.received, stats.dropped_loop), (1, 1), "{stats}");
        assert_eq!(stats.replied, 0, "{stats}");
        assert!(server.stderr_text().contains("the server's own address"));
    }

    #[test]
    #[ignore = "needs root, iproute2 and python3: cargo test --test tests loops -- --include-ignored"]
    fn forged_from_another_instance() {
        // A greets B, B sees a greeting and stops: one reply in all.
        let ns = netns();
        let (mut a, port_a) = start(&ns, &[]);
        let (mut b, port_b) = start(&ns, &[]);
        forge(&ns, port_b, port_a, "x");
        logged(&b, "it looks like one of this service's replies");
        let (a, b) = (a.stop(), b.stop());
        assert_balanced(&a);
        assert_balanced(&b);
        assert!(a.replied + b.replied <= 2, "{a}\n{b}");
        assert_eq!((a.replied, b.dropped_loop), (1, 1), "{a}\n{b}");
    }

    #[test]
    #[ignore = "needs root, iproute2 and python3: cargo test --test tests loops -- --include-ignored"]
    fn forged_from_service_ports() {
        let ns = netns();
        let (mut server, port) = start(&ns, &[]);
        for from in [7, 19, 53, 123, 0] {
            forge(&ns, from, port, "x");
        }
        // Warnings are capped at one a second; the periodic counters are not.
        logged(&server, "dropped_loop=5");
        assert!(server.stderr_text().contains("from port 7, a service"));
        let stats = server.stop();
        assert_balanced(&stats);
        assert_eq!((stats.received, stats.dropped_loop), (5, 5), "{stats}");
    }

    #[test]
    #[ignore = "needs root, iproute2 and python3: cargo test --test tests loops -- --include-ignored"]
    fn without_the_guard_the_loop_runs_to_the_size_limit() {
        // What the guard prevents, and proof that the tests above can fail:
        // the server greets itself, 8 bytes more each turn, until the reply
        // no longer fits a datagram.
        let ns = netns();
        let (mut server, port) = start(&ns, &["--loop-guard=false"]);
        forge(&ns, port, port, "x");
        logged(&server, "over the UDP limit");
        let stats = server.stop();
        assert_balanced(&stats);
        let turns = (udp_greeter::MAX_DATAGRAM - 1) / 8;
        assert_eq!(stats.dropped_oversize, 1, "{stats}");
        assert!(stats.replied >= turns as u64 - 1, "{stats}");
        assert_eq!(stats.dropped_loop, 0, "{stats}");
    }
}
