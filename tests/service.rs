//! A server under a service manager, in-process: what it tells the
//! manager (sd_notify) and when, a watchdog fed only while the pipeline
//! moves, and a socket that outlives one server to serve the next.

use std::net::UdpSocket;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use udp_greeter::{greet_into, Config, Request, Server};

use crate::support::*;

#[test]
fn ready_status_then_stopping() {
    let manager = Manager::new();
    let server = Server::builder(Config {
        stats_interval: Some(Duration::from_millis(100)),
        ..config(2, 64)
    })
    .notify(manager.notifier())
    .start()
    .unwrap();
    let addr = server.local_addr();
    // Ready once every thread serves: the first request is answered.
    let ready = manager.next(PATIENCE).expect("a message");
    assert_eq!(ready, format!("READY=1\nSTATUS=serving on {addr}"));
    assert_eq!(ask(&socket_for(addr), addr, b"Tracy"), b"Hello, Tracy!");
    // The periodic report's counters.
    let status = loop {
        let m = manager.next(PATIENCE).expect("a status");
        if m.contains("replied=1") {
            break m;
        }
    };
    assert_eq!(status, "STATUS=received=1 replied=1 dropped=0");
    let stats = server.shutdown().unwrap();
    let mut rest = Vec::new();
    while let Some(m) = manager.next(Duration::from_millis(200)) {
        rest.push(m);
    }
    assert!(
        rest.contains(&"STOPPING=1\nSTATUS=stopping: answering what is queued".to_string()),
        "{rest:?}"
    );
    assert_eq!(stats.replied, 1);
}

/// A greeting, except that `hang` holds its worker until the test lets go.
fn hanging(
    release: Arc<Mutex<mpsc::Receiver<()>>>,
) -> impl Fn(&Request<'_>, &mut Vec<u8>) + Clone + Send {
    move |request: &Request<'_>, reply: &mut Vec<u8>| {
        if request.payload == b"hang" {
            let _ = release.lock().unwrap().recv_timeout(PATIENCE);
        }
        greet_into(request.payload, reply);
    }
}

#[test]
fn the_watchdog_is_fed_only_while_the_pipeline_moves() {
    const EVERY: Duration = Duration::from_millis(50);
    let manager = Manager::new();
    let (release, held) = mpsc::channel();
    let server = Server::builder(config(1, 64))
        .handler(hanging(Arc::new(Mutex::new(held))))
        .notify(manager.notifier())
        .watchdog(EVERY)
        .start()
        .unwrap();
    let addr = server.local_addr();
    let pings = |within: Duration| {
        let deadline = Instant::now() + within;
        let mut n = 0;
        while let Some(m) = manager.next(deadline.saturating_duration_since(Instant::now())) {
            n += usize::from(m.starts_with("WATCHDOG=1\nSTATUS="));
            if Instant::now() >= deadline {
                break;
            }
        }
        n
    };
    // Idle, the probes go through: the watchdog is fed.
    assert!(
        pings(EVERY * 10) >= 3,
        "an idle, healthy pipeline earns its pings"
    );
    // The only worker hangs: no probe is taken, so no ping is earned.
    socket_for(addr).send_to(b"hang", addr).unwrap();
    std::thread::sleep(EVERY * 3);
    let _ = pings(EVERY * 2);
    assert_eq!(pings(EVERY * 10), 0, "pinged while the only worker hung");
    // Let go: the pings come back.
    release.send(()).unwrap();
    assert!(pings(EVERY * 10) >= 3, "pings after the worker came back");
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_eq!(stats.replied, 1, "{stats}");
    assert_balanced(&stats);
}

#[test]
fn a_stopped_servers_socket_serves_the_next() {
    // What a service manager holding the socket sees across a restart: the
    // first server stops, the second serves the same socket, and what
    // arrived between the two is answered by the second.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let kept = socket.try_clone().unwrap();
    let first = Server::builder(config(2, 64))
        .socket(socket)
        .start()
        .unwrap();
    let client = socket_for(addr);
    assert_eq!(ask(&client, addr, b"one"), b"Hello, one!");
    let stats = shutdown_within(first, PATIENCE).unwrap();
    assert_eq!(stats.replied, 1, "{stats}");
    client.send_to(b"between", addr).unwrap();
    let second = Server::builder(config(2, 64)).socket(kept).start().unwrap();
    let (reply, _) = recv_within(&client, PATIENCE).expect("the datagram sent between");
    assert_eq!(reply, b"Hello, between!");
    assert_eq!(ask(&client, addr, b"two"), b"Hello, two!");
    let stats = shutdown_within(second, PATIENCE).unwrap();
    assert_eq!(stats.replied, 2, "{stats}");
}

#[test]
fn a_watchdog_without_a_notifier_is_refused() {
    let err = Server::builder(config(1, 8))
        .watchdog(Duration::from_secs(1))
        .start()
        .unwrap_err();
    assert!(err.is_config(), "{err}");
}
