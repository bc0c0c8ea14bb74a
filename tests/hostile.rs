//! Hostile and odd input: each is settled exactly once (answered byte for
//! byte, or dropped and counted), and the server answers the next request.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{
    self, ask, config, parse_stats, recv_within, replies_before_sentinel, server_proc, settled,
    shutdown_within, socket_on, PATIENCE, V4, V4_OTHER,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use udp_greeter::{greet, Server, Snapshot};

/// One worker, so replies come back in request order (see
/// `replies_before_sentinel`).
fn one_worker() -> (Server, SocketAddr, UdpSocket) {
    let server = Server::bind(config(1, 64)).unwrap();
    let addr = server.local_addr();
    (server, addr, socket_on(V4))
}

/// Sends `payload` and checks its fate: answered with exactly the greeting
/// if that fits in a datagram, otherwise counted as oversize and not
/// answered at all; never both, never neither.
fn one_fate(server: &Server, sock: &UdpSocket, payload: &[u8]) -> Result<(), TestCaseError> {
    let addr = server.local_addr();
    let before = settled(server, 0);
    let replies = replies_before_sentinel(sock, addr, payload);
    let delta = settled(server, before.received + 2).since(&before);
    // The sentinel is one of the two received and one of the replies; the
    // payload is either the other reply or the one oversize, never both.
    prop_assert_eq!(delta.received, 2, "{}", delta);
    prop_assert_eq!(delta.replied + delta.dropped_oversize, 2, "{}", delta);
    prop_assert_eq!(
        delta.send_failed + delta.dropped_queue_full + delta.worker_panics,
        0
    );
    if payload.len() <= udp_greeter::MAX_GREETABLE {
        prop_assert_eq!(delta.replied, 2, "{}", delta);
        prop_assert_eq!(replies.len(), 1);
        prop_assert!(replies[0] == greet(payload), "reply not byte-exact");
    } else {
        prop_assert_eq!(delta.dropped_oversize, 1, "{}", delta);
        prop_assert!(
            replies.is_empty(),
            "{} replies to an oversize request",
            replies.len()
        );
    }
    Ok(())
}

/// The server still answers an ordinary request.
fn still_answers(addr: SocketAddr) {
    assert_eq!(ask(&socket_on(V4), addr, b"Michael"), b"Hello, Michael!");
}

#[test]
fn arbitrary() {
    let (server, addr, sock) = one_worker();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // Short payloads as often as any size up to the largest datagram.
    let payloads = prop_oneof![vec(any::<u8>(), 0..=64), vec(any::<u8>(), 0..=65_507)];
    runner
        .run(&payloads, |payload| one_fate(&server, &sock, &payload))
        .unwrap();
    for len in [65_498, 65_499, 65_500, 65_507] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        one_fate(&server, &sock, &payload).unwrap();
    }
    still_answers(addr);
    let stats = shutdown_within(server, Duration::from_secs(5)).unwrap();
    assert!(stats.is_balanced(), "{stats}");
    assert!(stats.dropped_oversize >= 2, "{stats}");
}

#[test]
fn oversize() {
    let (server, addr, sock) = one_worker();
    let before = settled(&server, 0);
    for len in 65_500..=65_507 {
        let replies = replies_before_sentinel(&sock, addr, &vec![b'x'; len]);
        assert!(replies.is_empty(), "{len} bytes: {} replies", replies.len());
    }
    let delta = settled(&server, 16).since(&before);
    assert_eq!(delta.dropped_oversize, 8, "{delta}");
    assert_eq!(delta.send_failed, 0, "{delta}");
    assert_eq!(delta.replied, 8, "{delta}");
    still_answers(addr);
}

#[test]
fn over_cap() {
    let mut c = config(1, 64);
    c.max_datagram = 100;
    let server = Server::bind(c).unwrap();
    let addr = server.local_addr();
    let sock = socket_on(V4);
    for len in [101, 102, 1_000, 65_507] {
        // Not even a truncated greeting may come back.
        let replies = replies_before_sentinel(&sock, addr, &vec![b'y'; len]);
        assert!(
            replies.is_empty(),
            "{len} bytes: {:?}",
            replies.first().map(Vec::len)
        );
    }
    let at_cap = vec![b'z'; 100];
    assert_eq!(
        replies_before_sentinel(&sock, addr, &at_cap),
        vec![greet(&at_cap)]
    );
    let stats = settled(&server, 10);
    assert_eq!(stats.dropped_oversize, 4, "{stats}");
    assert_eq!(stats.replied, 6, "{stats}");
    assert_eq!(stats.send_failed, 0, "{stats}");
    still_answers(addr);
}

/// `payload` is answered with exactly its greeting, once, and the server
/// goes on answering.
fn answered_exactly(payload: &[u8]) {
    let (server, addr, sock) = one_worker();
    assert_eq!(
        replies_before_sentinel(&sock, addr, payload),
        vec![greet(payload)]
    );
    still_answers(addr);
    let stats = shutdown_within(server, Duration::from_secs(5)).unwrap();
    assert_eq!(stats.replied, 3, "{stats}");
    assert!(stats.is_balanced(), "{stats}");
}

#[test]
fn empty() {
    answered_exactly(b"");
}

#[test]
fn nul() {
    answered_exactly(b"\0");
    answered_exactly(b"Mich\0ael\0\0");
}

#[test]
fn control() {
    let all: Vec<u8> = (0u8..0x20).chain([0x7f]).collect();
    answered_exactly(&all);
    answered_exactly(b"\r\n\t\x08\x07");
}

#[test]
fn ansi() {
    answered_exactly(b"\x1b[2J\x1b[H\x1b[31mred\x1b[0m");
    answered_exactly(b"\x1b]0;title\x07\x1b[?1049h");
}

/// At trace level the log shows payloads, but only escaped: no raw ESC and
/// no line a payload could forge.
#[test]
fn trace_log_escaped() {
    let (mut server, port) = server_proc(&["--bind", "127.0.0.1:0", "--log-level", "trace"]);
    support::wait_signal_handlers(server.pid());
    let addr = SocketAddr::new(V4, port);
    let sock = socket_on(V4);
    let payloads: [&[u8]; 3] = [
        b"\x1b[2J\x1b[31mred\x1b[0m",
        b"Michael\n00:00:00 [INFO] stats: received=0 forged\r\n",
        b"nul\0bell\x07",
    ];
    for p in payloads {
        assert_eq!(ask(&sock, addr, p), greet(p));
    }
    // The three trace lines are written by the time the server has exited.
    server.signal(libc::SIGTERM);
    let status = server.finish(PATIENCE);
    let log = server.stderr();
    let text = String::from_utf8_lossy(&log);
    assert!(status.success(), "{text}");
    assert!(!log.contains(&0x1b), "raw ESC in the log:\n{text}");
    assert!(!log.contains(&0), "raw NUL in the log:\n{text}");
    assert!(!log.contains(&b'\r'), "raw CR in the log:\n{text}");
    assert!(text.contains(r"\x1b[2J\x1b[31mred\x1b[0m"), "{text}");
    assert!(
        text.contains(r"Michael\n00:00:00 [INFO] stats: received=0 forged\r\n"),
        "{text}"
    );
    assert!(text.contains(r"nul\x00bell\x07"), "{text}");
    // Every line is one the logger wrote: it starts with its timestamp.
    for line in text.lines() {
        let b = line.as_bytes();
        let stamped = b.len() > 10
            && b[2] == b':'
            && b[5] == b':'
            && b[8] == b' '
            && b[9] == b'['
            && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit());
        assert!(stamped, "a line the logger did not write: {line:?}");
    }
    // The forged stats line is not the real one.
    let stats = parse_stats(&text).unwrap();
    assert_eq!(stats.received, 3, "{text}");
}

#[test]
fn rate_limit() {
    let mut c = config(1, 1024);
    c.rate_limit = Some(5);
    c.rate_burst = Some(5);
    let server = Server::bind(c).unwrap();
    let addr = server.local_addr();

    // 50 at once from one source: its burst of 5 is answered, and perhaps
    // one or two more as tokens refill meanwhile.
    let burst = socket_on(V4_OTHER);
    for seq in 0..50 {
        burst.send_to(&support::tagged(1, seq), addr).unwrap();
    }
    let stats = settled(&server, 50);
    let mut replies = 0;
    while let Some((reply, from)) = recv_within(&burst, Duration::from_millis(200)) {
        assert_eq!(from, addr);
        let (_, seq) = support::tag_of(&reply).unwrap();
        assert_eq!(reply, greet(&support::tagged(1, seq)));
        replies += 1;
    }
    assert_eq!(stats.received, 50, "{stats}");
    assert!((5..=10).contains(&stats.replied), "{stats}");
    assert_eq!(stats.dropped_rate_limited, 50 - stats.replied, "{stats}");
    assert_eq!(replies, stats.replied);

    // Another source has its own bucket.
    still_answers(addr);
    let stats = shutdown_within(server, Duration::from_secs(5)).unwrap();
    assert!(stats.is_balanced(), "{stats}");
}

/// A source flooding a real server gets its burst of 1 and then the limit,
/// for as long as the server saw it flood. The limit is far below what the
/// sender manages even on a loaded machine, and its interval (10 ms) longer
/// than most stalls: a bucket of burst 1 loses nothing to gaps shorter than
/// that, so the count is the rate's almost to the reply.
#[test]
fn rate_limit_holds_the_rate() {
    const RATE: u32 = 100;
    const FLOOD: Duration = Duration::from_secs(1);
    let mut c = udp_greeter::Config::new(SocketAddr::new(V4, 0));
    c.rate_limit = Some(RATE);
    c.rate_burst = Some(1);
    let server = Server::bind(c).unwrap();
    let addr = server.local_addr();
    let sock = socket_on(V4);

    // Eight back to back, then a short sleep: tens of thousands a second
    // without filling the server's receive buffer.
    let first = Instant::now();
    let (mut last, mut sent) = (first, 0u64);
    while last - first < FLOOD {
        for _ in 0..8 {
            last = Instant::now();
            if sock.send_to(b"flood", addr).is_ok() {
                sent += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    // Everything that arrived is counted; a datagram the kernel dropped
    // never arrives, so after a while the count is taken as it is.
    let settle = Instant::now() + Duration::from_millis(300);
    let (stats, counted) = loop {
        let s = server.stats();
        let done = s.replied + s.dropped_rate_limited == s.received;
        if done && (s.received == sent || Instant::now() > settle) {
            break (s, Instant::now());
        }
        assert!(Instant::now() < settle + PATIENCE, "not settled: {s}");
        std::thread::sleep(Duration::from_millis(2));
    };
    let replied = stats.replied as f64;
    // Every check fell between the first send and the count: no more than
    // the burst and what that time earns.
    let most = 1.0 + f64::from(RATE) * (counted - first).as_secs_f64();
    // The server saw the flood for at least the sending time, less a
    // stall or two that cost it a reply each.
    let least = 0.9 * (1.0 + f64::from(RATE) * (last - first).as_secs_f64()) - 1.0;
    assert!(
        (least..=most).contains(&replied),
        "{replied} replies, wanted {least:.1} to {most:.1}; sent {sent}: {stats}"
    );
    assert!(stats.received > 10 * stats.replied, "not a flood: {stats}");
    shutdown_within(server, Duration::from_secs(5)).unwrap();
}

#[test]
fn panics() {
    support::quiet_injected_panics();
    let panicked = Arc::new(AtomicU64::new(0));
    let count = panicked.clone();
    let server = Server::builder(config(1, 64))
        .handler(support::panicking_greeter(count))
        .start()
        .unwrap();
    let addr = server.local_addr();
    let sock = socket_on(V4);
    for i in 0..3 {
        let payload = format!("panic {i}");
        assert!(replies_before_sentinel(&sock, addr, payload.as_bytes()).is_empty());
        // The one worker survived its panic and answers.
        assert_eq!(ask(&sock, addr, b"Tracy"), b"Hello, Tracy!");
    }
    let stats = shutdown_within(server, Duration::from_secs(5)).unwrap();
    assert_eq!(panicked.load(Ordering::Relaxed), 3);
    assert_eq!(
        stats,
        Snapshot {
            received: 9,
            replied: 6,
            send_failed: 3,
            worker_panics: 3,
            ..Snapshot::default()
        }
    );
}
