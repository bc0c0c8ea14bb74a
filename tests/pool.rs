//! The pool's contract (docs/architecture.md, "The pool's contract"):
//!
//! - no request waits while a worker is idle;
//! - a reply goes out when its handler returns, not when others' do;
//! - a stop with work in hand takes the time of that work, in waves of
//!   as many requests as there are workers.
//!
//! The handler holds each `hold-N` request until the test releases N, so
//! every assertion is about order ("entered while the others are still
//! held"), which a busy machine cannot reorder; no figure of time is
//! asserted. Each test runs on a cold server and again after a history of
//! fast requests, which must teach the pool nothing that breaks it.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use crate::support::*;
use udp_greeter::{greet_into, Request, Server};

/// The fast requests a warm server answers before the test begins.
const HISTORY: usize = 20_000;

/// The requests the handler holds, and which of them the test released.
#[derive(Default)]
struct Gate {
    released: Mutex<HashSet<String>>,
    changed: Condvar,
}

impl Gate {
    fn release(&self, name: &str) {
        self.released.lock().unwrap().insert(name.to_string());
        self.changed.notify_all();
    }

    /// Waits until `name` is released; at most `PATIENCE` × 3, so that a
    /// failed test still lets its workers go.
    fn wait(&self, name: &str) {
        let released = self.released.lock().unwrap();
        let _ = self
            .changed
            .wait_timeout_while(released, PATIENCE * 3, |r| !r.contains(name))
            .unwrap();
    }
}

/// A server of `workers` whose handler, for a `hold-N` request, says it
/// entered and waits for the test to release `hold-N`; any other request
/// is greeted at once.
struct Held {
    server: Server,
    to: SocketAddr,
    sock: UdpSocket,
    gate: Arc<Gate>,
    entered: mpsc::Receiver<String>,
    /// How many fast requests it answered before the test began.
    history: u64,
}

impl Held {
    fn start(workers: usize, warm: bool) -> Held {
        let gate = Arc::new(Gate::default());
        let (tx, entered) = mpsc::channel();
        let held = gate.clone();
        let handler = move |request: &Request<'_>, reply: &mut Vec<u8>| {
            let name = String::from_utf8_lossy(request.payload).into_owned();
            if name.starts_with("hold-") {
                let _ = tx.send(name.clone());
                held.wait(&name);
            }
            greet_into(request.payload, reply);
        };
        let server = Server::builder(config(workers, 1024))
            .handler(handler)
            .start()
            .unwrap();
        let to = server.local_addr();
        let held = Held {
            sock: socket_for(to),
            to,
            server,
            gate,
            entered,
            history: if warm { HISTORY as u64 } else { 0 },
        };
        if warm {
            held.history(HISTORY);
        }
        held
    }

    /// `n` fast requests, 32 in flight at a time, every one answered.
    fn history(&self, n: usize) {
        let sock = socket_for(self.to);
        for start in (0..n).step_by(32) {
            let burst = (n - start).min(32);
            for _ in 0..burst {
                sock.send_to(b"fast", self.to).unwrap();
            }
            for i in 0..burst {
                let (reply, _) = recv_within(&sock, PATIENCE)
                    .unwrap_or_else(|| panic!("history: reply {} missing", start + i));
                assert_eq!(reply, b"Hello, fast!");
            }
        }
    }

    fn send(&self, names: &[&str]) {
        for name in names {
            self.sock.send_to(name.as_bytes(), self.to).unwrap();
        }
    }

    /// The names of the next `n` requests to enter the handler, sorted.
    fn entered(&self, n: usize) -> Vec<String> {
        let mut names: Vec<String> = (0..n)
            .map(|i| {
                self.entered
                    .recv_timeout(PATIENCE)
                    .unwrap_or_else(|_| panic!("only {i} of {n} held requests entered a handler"))
            })
            .collect();
        names.sort();
        names
    }

    fn next_reply(&self) -> String {
        let (reply, _) = recv_within(&self.sock, PATIENCE).expect("a reply within PATIENCE");
        String::from_utf8(reply).unwrap()
    }

    /// Stops the server; the requests it answered beyond the history.
    fn finish(self) -> u64 {
        let stats = shutdown_within(self.server, PATIENCE).unwrap();
        assert_balanced(&stats);
        stats.replied - self.history
    }
}

/// Four held requests at once on four workers: all four are in their
/// handlers together, and each reply leaves when its own handler returns,
/// in the order the test releases them.
fn no_request_waits_while_a_worker_is_idle(warm: bool) {
    let pool = Held::start(4, warm);
    let names = ["hold-400", "hold-100", "hold-300", "hold-200"];
    pool.send(&names);
    let mut sorted = names.map(String::from).to_vec();
    sorted.sort();
    assert_eq!(
        pool.entered(4),
        sorted,
        "a worker held a queued request that an idle worker could take"
    );
    for name in ["hold-100", "hold-200", "hold-300", "hold-400"] {
        pool.gate.release(name);
        assert_eq!(
            pool.next_reply(),
            format!("Hello, {name}!"),
            "a reply waited for a handler not its own"
        );
    }
    assert_eq!(pool.finish(), 4);
}

#[test]
fn no_request_waits_while_a_worker_is_idle_cold() {
    no_request_waits_while_a_worker_is_idle(false);
}

#[test]
fn no_request_waits_while_a_worker_is_idle_warm() {
    no_request_waits_while_a_worker_is_idle(true);
}

/// One held request among twenty fast ones on two workers: every fast
/// reply comes while the held one is still in its handler.
fn a_slow_request_holds_up_only_itself(warm: bool) {
    let pool = Held::start(2, warm);
    let mut burst = vec!["hold-500"];
    burst.extend(["fast"; 20]);
    pool.send(&burst);
    assert_eq!(pool.entered(1), ["hold-500"]);
    for i in 0..20 {
        assert_eq!(
            pool.next_reply(),
            "Hello, fast!",
            "fast reply {i} waited behind the held request"
        );
    }
    pool.gate.release("hold-500");
    assert_eq!(pool.next_reply(), "Hello, hold-500!");
    assert_eq!(pool.finish(), 21);
}

#[test]
fn a_slow_request_holds_up_only_itself_cold() {
    a_slow_request_holds_up_only_itself(false);
}

#[test]
fn a_slow_request_holds_up_only_itself_warm() {
    a_slow_request_holds_up_only_itself(true);
}

/// A stop with four held requests on two workers answers them in two
/// waves of two, each wave in its handlers at once: the stop takes two
/// handler times, not four.
fn a_stop_takes_the_time_of_the_work_in_hand(warm: bool) {
    let pool = Held::start(2, warm);
    pool.send(&["hold-1", "hold-2"]);
    assert_eq!(pool.entered(2), ["hold-1", "hold-2"]);
    // The second wave is read and queued behind the first before the stop.
    let before = pool.server.stats().received;
    pool.send(&["hold-3", "hold-4"]);
    let deadline = std::time::Instant::now() + PATIENCE;
    while pool.server.stats().received < before + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second wave was not read"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    pool.server.shutdown_handle().trigger();
    pool.gate.release("hold-1");
    pool.gate.release("hold-2");
    assert_eq!(
        pool.entered(2),
        ["hold-3", "hold-4"],
        "the second wave did not run on both workers at once"
    );
    pool.gate.release("hold-3");
    pool.gate.release("hold-4");
    let mut replies: Vec<String> = (0..4).map(|_| pool.next_reply()).collect();
    replies.sort();
    assert_eq!(
        replies,
        [
            "Hello, hold-1!",
            "Hello, hold-2!",
            "Hello, hold-3!",
            "Hello, hold-4!"
        ]
    );
    assert_eq!(pool.finish(), 4);
}

#[test]
fn a_stop_takes_the_time_of_the_work_in_hand_cold() {
    a_stop_takes_the_time_of_the_work_in_hand(false);
}

#[test]
fn a_stop_takes_the_time_of_the_work_in_hand_warm() {
    a_stop_takes_the_time_of_the_work_in_hand(true);
}
