//! What the receiver does when the queue is full: `QueueFull::Drop` (the
//! default, held by `shutdown::flooded` and `chaos`) drops the datagram
//! read; `QueueFull::Wait` reads nothing more until a worker makes room,
//! so a burst longer than the queue waits in the socket and is answered
//! whole.
//!
//! One worker, a queue of 4, and a handler that holds a `hold` request
//! until the test lets it go: while it holds, the receiver can have read
//! the held request, the 4 queued behind it and the rest of the read in
//! which the queue filled, and no other. Every assertion is about counts,
//! never about time.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Condvar, Mutex};

use crate::support::*;
use udp_greeter::{greet_into, QueueFull, Request, Server};

const QUEUE: usize = 4;
/// The most datagrams the receiver reads at once.
const BATCH: u64 = 32;
/// What the receiver has read once it met a full queue: the held
/// request, those queued behind it, and one it had no room for.
const FULL: u64 = 1 + QUEUE as u64 + 1;
/// The most it can have read while the handler holds: the held request,
/// those queued, and the read in which the queue filled.
const READ_WHILE_HELD: u64 = 1 + QUEUE as u64 + BATCH;
const BURST: usize = 200;

/// Whether the held request may go on.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Waits until open; at most `PATIENCE` × 3, so that a failed test
    /// still lets its worker go.
    fn wait(&self) {
        let open = self.open.lock().unwrap();
        let _ = self
            .opened
            .wait_timeout_while(open, PATIENCE * 3, |open| !*open)
            .unwrap();
    }
}

/// A server of one worker and a queue of [`QUEUE`] that settles a full
/// queue as `queue_full` says, holding a `hold` request in its handler,
/// and the burst sent behind it: returns once the receiver has met a full
/// queue ([`FULL`]).
fn held_burst(queue_full: QueueFull) -> (Server, SocketAddr, std::net::UdpSocket, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let (entered, held) = mpsc::channel();
    let waiting = gate.clone();
    let handler = move |request: &Request<'_>, reply: &mut Vec<u8>| {
        if request.payload == b"hold" {
            let _ = entered.send(());
            waiting.wait();
        }
        greet_into(request.payload, reply);
    };
    let mut config = config(1, QUEUE);
    config.queue_full = queue_full;
    let server = Server::builder(config).handler(handler).start().unwrap();
    let to = server.local_addr();
    let sock = socket_for(to);
    sock.send_to(b"hold", to).unwrap();
    held.recv_timeout(PATIENCE)
        .expect("the held request entered");
    for i in 0..BURST {
        sock.send_to(format!("n-{i}").as_bytes(), to).unwrap();
    }
    assert!(
        wait_until(PATIENCE, || server.stats().received >= FULL),
        "the burst was not read: {}",
        server.stats()
    );
    (server, to, sock, gate)
}

/// Waiting for room: while the handler holds, the receiver reads no more
/// than the queue takes and the read in its hand, leaving the rest of the
/// burst in the socket; let go, every request is answered, once, and
/// nothing is dropped anywhere.
#[test]
fn wait_leaves_a_burst_in_the_socket_and_answers_it_whole() {
    let (server, _, sock, gate) = held_burst(QueueFull::Wait);
    let held = server.stats();
    assert!(held.received <= READ_WHILE_HELD, "{held}");
    assert_eq!(held.dropped_queue_full, 0, "{held}");
    gate.open();
    let mut answered = HashSet::new();
    while answered.len() < BURST + 1 {
        let Some((reply, _)) = recv_within(&sock, PATIENCE) else {
            panic!(
                "{} of {} answered: {}",
                answered.len(),
                BURST + 1,
                server.stats()
            );
        };
        assert!(answered.insert(reply.clone()), "twice: {reply:?}");
    }
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_balanced(&stats);
    assert_eq!(stats.received, BURST as u64 + 1, "{stats}");
    assert_eq!(stats.replied, stats.received, "{stats}");
    assert_eq!(stats.socket_dropped, 0, "{stats}");
}

/// A stop while the receiver waits for room: it still queues what it had
/// read, the worker answers it all, and the stop ends; what it never read
/// stays in the socket.
#[test]
fn a_stop_while_waiting_answers_what_was_read() {
    let (server, _, sock, gate) = held_burst(QueueFull::Wait);
    let stop = server.shutdown_handle();
    stop.trigger();
    gate.open();
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_balanced(&stats);
    assert!(
        (FULL..=READ_WHILE_HELD).contains(&stats.received),
        "{stats}"
    );
    assert_eq!(stats.replied, stats.received, "{stats}");
    for _ in 0..stats.received {
        assert!(recv_within(&sock, PATIENCE).is_some(), "{stats}");
    }
}
