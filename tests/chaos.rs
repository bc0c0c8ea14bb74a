//! Everything at once, then a shutdown in the middle of it: floods into a
//! queue of 4, a source over its rate limit, oversize datagrams, injected
//! panics, and clients checking every reply they get. Afterwards every
//! datagram has exactly one fate and the only panics are the injected ones.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support::{
    self, config, join_within, recv_within, shutdown_within, socket_on, tag_of, tagged, Flood,
    StopOnDrop, PATIENCE, V4, V4_OTHER,
};
use udp_greeter::{greet, Server, Snapshot};

const ROUNDS: u32 = 20;

/// Sends unique requests one at a time from 127.0.0.2 and checks that every
/// datagram it gets back is the exact greeting of one of its own requests.
/// Says `ready` once its first request is answered (before the load
/// starts, so every round checks something). Returns how many it got.
fn checker(
    addr: SocketAddr,
    tag: u32,
    stop: Arc<AtomicBool>,
    deadline: Instant,
    ready: mpsc::Sender<()>,
) -> u64 {
    let sock = socket_on(V4_OTHER);
    let mut got = 0;
    let mut seq = 0;
    let mut wait = Duration::from_millis(200);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && seq < 100_000 {
        sock.send_to(&tagged(tag, seq), addr).unwrap();
        seq += 1;
        while let Some((reply, from)) = recv_within(&sock, wait) {
            assert_eq!(from, addr, "checker {tag}: a datagram from a stranger");
            let (t, s) = tag_of(&reply).unwrap_or_else(|| {
                panic!("checker {tag}: not a greeting: {}", reply.escape_ascii())
            });
            assert_eq!(t, tag, "checker {tag}: got checker {t}'s reply");
            assert!(s < seq, "checker {tag}: a reply to {s}, never sent");
            assert!(
                reply == greet(&tagged(tag, s)),
                "checker {tag}: reply to {s} not byte-exact"
            );
            got += 1;
            if got == 1 {
                let _ = ready.send(());
                // Under load most requests are dropped: do not wait long.
                wait = Duration::from_millis(20);
            }
            if s + 1 == seq {
                break;
            }
        }
    }
    got
}

/// Sends `payload(i)` from 127.0.0.2 every `every`, until stopped.
fn trickle(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    deadline: Instant,
    every: Duration,
    payload: impl Fn(u32) -> Vec<u8> + Send + 'static,
) -> JoinHandle<u64> {
    thread::spawn(move || {
        let sock = socket_on(V4_OTHER);
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && sent < 1_000 {
            if sock.send_to(&payload(sent), addr).is_ok() {
                sent += 1;
            }
            thread::sleep(every);
        }
        u64::from(sent)
    })
}

struct Round {
    stats: Snapshot,
    checked: u64,
}

fn round(n: u32) -> Round {
    let injected = Arc::new(AtomicU64::new(0));
    let count = injected.clone();
    let mut c = config(2, 4);
    // 127.0.0.1 floods far above this; the checkers on 127.0.0.2 stay
    // mostly below it.
    c.rate_limit = Some(2_000);
    c.rate_burst = Some(2_000);
    let server = Server::builder(c)
        .handler(support::panicking_greeter(count))
        .start()
        .unwrap();
    let addr = server.local_addr();

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_failure = StopOnDrop(stop.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    let (ready, checkers_ready) = mpsc::channel();
    let checkers: Vec<_> = (0..2)
        .map(|tag| {
            let (stop, ready) = (stop.clone(), ready.clone());
            thread::spawn(move || checker(addr, tag, stop, deadline, ready))
        })
        .collect();
    for _ in 0..2 {
        checkers_ready
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("round {n}: a checker got no reply before the load"));
    }
    let flood = Flood::start(addr, V4, 3, b"flood", 500_000, Duration::from_secs(10));
    let oversize = trickle(
        addr,
        stop.clone(),
        deadline,
        Duration::from_millis(5),
        |i| vec![b'o'; 65_500 + (i % 8) as usize],
    );
    let panics = trickle(
        addr,
        stop.clone(),
        deadline,
        Duration::from_millis(2),
        |i| format!("panic {i}").into_bytes(),
    );

    // Shut down in the middle of it all, at a point that varies by round.
    thread::sleep(Duration::from_millis(100 + u64::from(n % 5) * 20));
    let stats = shutdown_within(server, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("round {n}: join failed: {e}"));

    stop.store(true, Ordering::Relaxed);
    flood.stop();
    let checked = checkers
        .into_iter()
        .map(|t| join_within(t, PATIENCE, "checker"))
        .sum();
    join_within(oversize, PATIENCE, "oversize sender");
    join_within(panics, PATIENCE, "panic sender");

    assert!(stats.is_balanced(), "round {n}: {stats}");
    assert_eq!(
        stats.worker_panics,
        injected.load(Ordering::Relaxed),
        "round {n}: a panic that was not injected: {stats}"
    );
    assert_eq!(
        stats.send_failed, stats.worker_panics,
        "round {n}: send errors besides the panicked datagrams: {stats}"
    );
    Round { stats, checked }
}

#[test]
fn chaos() {
    support::quiet_injected_panics();
    let mut total = Snapshot::default();
    let mut checked = 0;
    for n in 0..ROUNDS {
        let r = round(n);
        let s = r.stats;
        total.received += s.received;
        total.replied += s.replied;
        total.dropped_queue_full += s.dropped_queue_full;
        total.send_failed += s.send_failed;
        total.dropped_oversize += s.dropped_oversize;
        total.dropped_rate_limited += s.dropped_rate_limited;
        total.worker_panics += s.worker_panics;
        checked += r.checked;
    }
    eprintln!("{ROUNDS} rounds: {total}; checked replies: {checked}");
    // Each kind of trouble really happened, or the test tested less than
    // it claims.
    assert!(total.dropped_queue_full > 0, "{total}");
    assert!(total.dropped_rate_limited > 0, "{total}");
    assert!(total.dropped_oversize > 0, "{total}");
    assert!(total.worker_panics > 0, "{total}");
    // Each checker's first reply comes before the load starts; anything
    // beyond those was checked byte for byte under it.
    assert!(
        checked > u64::from(ROUNDS) * 2,
        "no reply checked under load: {total}"
    );
}
