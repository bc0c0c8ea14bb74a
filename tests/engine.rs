//! The engine under a service of one's own: a handler per worker with
//! state no other thread sees, a factory that may fail, a socket the
//! caller made, a handler that fails a request, the handler's own loop
//! rule, and a dropped server that gives its port back at once.

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use udp_greeter::{greet_into, Answer, Config, Handler, Request, Server, Shutdown};

/// Answers each payload reversed: a service whose replies look like any
/// request, so it recognises none of them.
fn reverse(request: &Request<'_>, reply: &mut Vec<u8>) {
    reply.extend(request.payload.iter().rev());
}

#[test]
fn a_closure_answers_what_the_greeter_refuses() {
    let server = Server::builder(config(2, 64))
        .handler(reverse)
        .start()
        .unwrap();
    let addr = server.local_addr();
    let sock = socket_for(addr);
    // Greeting-shaped, which the greeter refuses (tests/loops.rs): here a
    // request like any other.
    assert_eq!(ask(&sock, addr, b"Hello, Bob!"), b"!boB ,olleH");
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_eq!((stats.replied, stats.dropped_loop), (1, 0), "{stats}");
    assert_balanced(&stats);
}

/// A handler whose state is its worker's alone: a `RefCell`, which is
/// `Send` but not `Sync`, so no handler shared between threads could hold it.
struct Tally {
    worker: usize,
    seen: RefCell<Vec<u8>>,
    made: Arc<AtomicUsize>,
}

impl Handler for Tally {
    fn respond(&mut self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
        self.seen.borrow_mut().extend_from_slice(request.payload);
        let seen = self.seen.borrow().len();
        reply.extend_from_slice(format!("{} {seen}", self.worker).as_bytes());
        Answer::Reply
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.made.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A factory runs at once, on the caller's thread, so it may borrow what
/// the caller holds (here a local `Vec` and a counter); one that cannot
/// fail needs no error type, and one that can may borrow too.
#[test]
fn factories_borrow() {
    let words = vec!["Hi".to_string(), "Hey".to_string()];
    let mut made = 0;
    let builder = Server::builder(config(2, 16)).handler_per_worker(|worker| {
        made += 1;
        let word = words[worker].clone();
        move |request: &Request<'_>, reply: &mut Vec<u8>| {
            reply.extend_from_slice(word.as_bytes());
            reply.extend_from_slice(request.payload);
        }
    });
    assert_eq!(made, 2, "made before start");
    let server = builder.start().unwrap();
    let addr = server.local_addr();
    let reply = ask(&socket_for(addr), addr, b", Bo");
    assert!(reply == b"Hi, Bo" || reply == b"Hey, Bo", "{reply:?}");
    shutdown_within(server, PATIENCE).unwrap();

    let err = Server::builder(config(3, 16))
        .handler_factory(|worker| words.get(worker).map(|_| reverse).ok_or("no word"))
        .start()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot make the handler of worker-2: no word"
    );
    drop(words);
}

#[test]
fn each_worker_owns_its_handler() {
    let alive = Arc::new(AtomicUsize::new(0));
    let made = alive.clone();
    let on = thread::current().id();
    let server = Server::builder(config(3, 64))
        .handler_factory(move |worker| {
            assert_eq!(thread::current().id(), on, "made on the caller's thread");
            made.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(Tally {
                worker,
                seen: RefCell::new(Vec::new()),
                made: made.clone(),
            })
        })
        .start()
        .unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 3, "one handler per worker");
    let addr = server.local_addr();
    let sock = socket_for(addr);
    // Each reply names its worker and the bytes that worker alone has
    // seen: one-byte requests, so the counts of each worker run 1, 2, 3...
    let mut last = [0usize; 3];
    for _ in 0..30 {
        let reply = String::from_utf8(ask(&sock, addr, b"x")).unwrap();
        let (worker, seen) = reply.split_once(' ').unwrap();
        let (worker, seen): (usize, usize) = (worker.parse().unwrap(), seen.parse().unwrap());
        assert_eq!(
            seen,
            last[worker] + 1,
            "worker {worker}'s own count: {reply}"
        );
        last[worker] = seen;
    }
    assert_eq!(last.iter().sum::<usize>(), 30);
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_eq!(stats.replied, 30, "{stats}");
    assert_eq!(alive.load(Ordering::SeqCst), 0, "every handler dropped");
}

#[test]
fn a_failing_factory_fails_start_and_leaves_nothing() {
    let alive = Arc::new(AtomicUsize::new(0));
    let made = alive.clone();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let err = Server::builder(config(4, 64))
        .socket(socket)
        .handler_factory(move |worker| {
            if worker == 2 {
                return Err("no such database: /nonexistent.db".to_string());
            }
            made.fetch_add(1, Ordering::SeqCst);
            Ok(Tally {
                worker,
                seen: RefCell::new(Vec::new()),
                made: made.clone(),
            })
        })
        .start()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot make the handler of worker-2: no such database: /nonexistent.db"
    );
    // The handlers made before it are dropped, so no worker holds one; and
    // the socket given is closed: its port binds again at once.
    assert_eq!(alive.load(Ordering::SeqCst), 0);
    UdpSocket::bind(addr).expect("the given socket was released");
}

#[test]
fn a_socket_of_the_callers_own() {
    // Options the caller chose stay: a send timeout of its own, and the
    // address it bound, which is the server's.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_write_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    let bound = socket.local_addr().unwrap();
    let server = Server::builder(config(2, 64))
        .socket(socket)
        .start()
        .unwrap();
    assert_eq!(server.local_addr(), bound);
    let sock = socket_for(bound);
    // A non-blocking socket is made blocking: the receiver sleeps in its
    // read, and still answers.
    assert_eq!(ask(&sock, bound, b"Sarah"), b"Hello, Sarah!");
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_eq!(stats.replied, 1, "{stats}");
}

#[test]
fn a_socket_that_cannot_serve_is_refused() {
    let unbound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let err = Server::builder(config(1, 8))
        .socket(unbound.into())
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("not bound"), "{err}");
    assert!(err.is_config());
}

#[test]
fn a_failed_request_is_counted_apart() {
    // One worker: answered in order, so nothing comes back before the
    // sentinel's greeting.
    let server = Server::builder(config(1, 64))
        .handler(|request: &Request<'_>, reply: &mut Vec<u8>| {
            if request.payload == b"fail" {
                // What was written before failing is never sent.
                reply.extend_from_slice(b"half an answer");
                return Answer::Fail;
            }
            greet_into(request.payload, reply);
            Answer::Reply
        })
        .start()
        .unwrap();
    let addr = server.local_addr();
    let sock = socket_for(addr);
    for _ in 0..3 {
        assert!(replies_before_sentinel(&sock, addr, b"fail").is_empty());
    }
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_balanced(&stats);
    assert_eq!(stats.handler_failed, 3, "{stats}");
    assert_eq!(stats.declined, 0, "{stats}");
    assert_eq!(stats.replied, 3, "the three sentinels: {stats}");
    assert!(stats.has_trouble(), "a failure is for an operator to see");
}

/// Answers `reply:` + the request, and recognises that shape as its own.
#[derive(Clone)]
struct Prefixed;

impl Handler for Prefixed {
    fn respond(&mut self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
        reply.extend_from_slice(b"reply:");
        reply.extend_from_slice(request.payload);
        Answer::Reply
    }

    fn is_reply(&self, payload: &[u8]) -> bool {
        payload.starts_with(b"reply:")
    }
}

#[test]
fn a_handler_states_its_own_loop_rule() {
    let server = Server::builder(config(1, 64))
        .handler(Prefixed)
        .start()
        .unwrap();
    let addr = server.local_addr();
    let sock = socket_for(addr);
    assert_eq!(ask(&sock, addr, b"Hello, Bob!"), b"reply:Hello, Bob!");
    // One worker answers in order: the first datagram back answers `y`,
    // so `reply:x`, sent before it, got none.
    sock.send_to(b"reply:x", addr).unwrap();
    assert_eq!(ask(&sock, addr, b"y"), b"reply:y");
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_balanced(&stats);
    assert_eq!(stats.dropped_loop, 1, "{stats}");
    // Without the guard, its own rule goes too.
    let server = Server::builder(Config {
        loop_guard: false,
        ..config(1, 64)
    })
    .handler(Prefixed)
    .start()
    .unwrap();
    let addr = server.local_addr();
    assert_eq!(ask(&sock, addr, b"reply:x"), b"reply:reply:x");
    drop(server);
}

#[test]
fn service_ports_are_configurable() {
    // A peer on a port put on the list is refused; the default list's
    // ports are no longer special.
    let peer = socket_on(V4);
    let port = peer.local_addr().unwrap().port();
    let server = Server::bind(Config {
        service_ports: vec![port],
        ..config(1, 64)
    })
    .unwrap();
    let addr = server.local_addr();
    peer.send_to(b"Michael", addr).unwrap();
    assert_eq!(recv_within(&peer, Duration::from_millis(300)), None);
    let stats = settled(&server, 1);
    assert_eq!(stats.dropped_loop, 1, "{stats}");
    let other = socket_for(addr);
    assert_eq!(ask(&other, addr, b"Tracy"), b"Hello, Tracy!");
}

#[test]
fn a_dropped_server_releases_its_port_at_once() {
    let first = Server::bind(config(2, 64)).unwrap();
    let addr: SocketAddr = first.local_addr();
    drop(first);
    for round in 0..20 {
        let server =
            Server::bind(Config::new(addr)).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let sock = socket_for(addr);
        assert_eq!(ask(&sock, addr, b"again"), b"Hello, again!");
        drop(server);
    }
}

#[test]
fn a_shutdown_made_beforehand_is_obeyed() {
    let shutdown = Shutdown::new();
    let server = Server::builder(config(2, 64))
        .shutdown(shutdown.clone())
        .start()
        .unwrap();
    let addr = server.local_addr();
    assert_eq!(ask(&socket_for(addr), addr, b"Bo"), b"Hello, Bo!");
    shutdown.trigger();
    let stats = within(PATIENCE, "join", move || server.join()).unwrap();
    assert_eq!(stats.replied, 1, "{stats}");
}

/// Two reverse servers, each answering the other: B's socket is the
/// test's, so the test can send from B's address as a forger would.
fn reverse_pair(rate: Option<u32>) -> (Server, Server, UdpSocket) {
    let limited = |c: Config| Config {
        rate_limit: rate,
        rate_burst: rate.map(|_| LOOP_BURST),
        ..c
    };
    let a = Server::builder(limited(config(1, 64)))
        .handler(reverse)
        .start()
        .unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let forger = socket.try_clone().unwrap();
    let b = Server::builder(limited(config(1, 64)))
        .socket(socket)
        .handler(reverse)
        .start()
        .unwrap();
    (a, b, forger)
}

#[test]
fn the_rate_limit_bounds_a_loop_no_handler_can_see() {
    // A reversal's replies look like requests: no rule of the handler can
    // tell them apart. One forged datagram from B's address to A starts a
    // loop; the per-source rate limit ends it once a bucket is spent. A
    // bucket earns one turn a second, so however slowly a busy machine
    // turns the loop, A answers at most the burst plus what it earned
    // while the loop ran.
    let (a, b, forger) = reverse_pair(Some(LOOP_RATE));
    let started = Instant::now();
    forger.send_to(b"ping", a.local_addr()).unwrap();
    // One datagram is in flight: once either server drops it, the loop
    // has ended, and nothing more can be answered.
    let ended = wait_until(PATIENCE, || {
        a.stats().dropped_rate_limited + b.stats().dropped_rate_limited >= 1
    });
    let elapsed = started.elapsed();
    let (a, b) = (a.shutdown().unwrap(), b.shutdown().unwrap());
    assert!(ended, "the loop still ran after {elapsed:?}: {a} / {b}");
    // A bucket that keeps the reply it is still earning gives fewer than
    // burst + 1 + rate × t over t seconds (RateLimiter).
    let earned = f64::from(LOOP_BURST + 1) + f64::from(LOOP_RATE) * elapsed.as_secs_f64();
    for (name, s) in [("A", &a), ("B", &b)] {
        assert!(
            (s.replied as f64) < earned,
            "{name} answered {} turns in {elapsed:?}, more than the {earned:.1} its bucket \
             earned: {a} / {b}",
            s.replied
        );
    }
    assert_eq!(
        a.replied + b.replied,
        a.received + b.received - 1,
        "one turn dropped"
    );

    // Without a limit the same datagram runs until the servers stop: many
    // more turns than the limit would have allowed in the same time.
    let (a, b, forger) = reverse_pair(None);
    let started = Instant::now();
    forger.send_to(b"ping", a.local_addr()).unwrap();
    let ran = wait_until(PATIENCE, || a.stats().replied >= 100);
    let elapsed = started.elapsed();
    let (a, b) = (a.shutdown().unwrap(), b.shutdown().unwrap());
    assert!(ran, "the unlimited loop ran only {a} / {b} in {elapsed:?}");
    assert_eq!(a.dropped_rate_limited + b.dropped_rate_limited, 0);
}

/// The rate-limit loop's limit: one reply a second to each source, far
/// slower than the slowest machine turns the loop, and its burst.
const LOOP_RATE: u32 = 1;
const LOOP_BURST: u32 = 5;
