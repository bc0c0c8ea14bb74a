//! The pool is what lets a handler take its time: a request that waits
//! holds up its own worker, not the requests behind it, while another
//! worker is free. Ordering, not speed: no figure is asserted.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;
use udp_greeter::{greet_into, Request, Server};

/// How long the handler sleeps on `slow`: long against a loopback round
/// trip, so that whatever is answered first was not held behind it.
const SLOW: Duration = Duration::from_millis(300);

fn slow_on_request(request: &Request<'_>, reply: &mut Vec<u8>) {
    if request.payload == b"slow" {
        std::thread::sleep(SLOW);
    }
    greet_into(request.payload, reply);
}

#[test]
fn a_slow_request_holds_up_only_itself() {
    let server = Server::builder(config(4, 64))
        .handler(slow_on_request)
        .start()
        .unwrap();
    let to: SocketAddr = server.local_addr();
    let sock = socket_for(to);
    // The pool learns the handler's pace from the requests it answers:
    // after one slow request, every worker takes one request at a time.
    assert_eq!(ask(&sock, to, b"slow"), b"Hello, slow!");
    for round in 0..3 {
        sock.send_to(b"slow", to).unwrap();
        sock.send_to(b"fast", to).unwrap();
        let (first, _) = recv_within(&sock, PATIENCE).expect("a reply");
        let (second, _) = recv_within(&sock, PATIENCE).expect("a second reply");
        assert_eq!(
            (first.as_slice(), second.as_slice()),
            (b"Hello, fast!".as_slice(), b"Hello, slow!".as_slice()),
            "round {round}: the fast request waited behind the slow one"
        );
    }
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_balanced(&stats);
    assert_eq!(stats.replied, 7, "{stats}");
}
