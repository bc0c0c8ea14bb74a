//! Many client threads at once: every reply reaches the thread that asked,
//! byte for byte, and the counters account for every datagram.

use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{self, config, shutdown_within, socket_on, tag_of, tagged, V4};
use udp_greeter::{greet, Server};

const THREADS: u32 = 16;
const PER_THREAD: u32 = 2_000;
/// Requests a thread may have unanswered at once: keeps what is in flight
/// (16 x 16 small datagrams) far below the socket buffers and the queue, so
/// loss needs the machine to stall, not merely to be busy.
const WINDOW: usize = 16;
/// How long a request waits for its reply before it is sent again.
const TRY_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_TRIES: u32 = 10;
/// The bound on a whole run, far above what it needs.
const LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sends: u64,
    answered: u64,
    duplicates: u64,
}

/// Sends `PER_THREAD` unique requests tagged `tag` with at most `WINDOW`
/// outstanding, checking every reply, until each has been answered.
fn exchange(server: SocketAddr, tag: u32, deadline: Instant) -> Tally {
    let sock = socket_on(V4);
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut answered = vec![false; PER_THREAD as usize];
    // (seq, last sent, tries)
    let mut outstanding: Vec<(u32, Instant, u32)> = Vec::with_capacity(WINDOW);
    let mut next = 0;
    let mut tally = Tally::default();
    while tally.answered < u64::from(PER_THREAD) {
        while outstanding.len() < WINDOW && next < PER_THREAD {
            sock.send_to(&tagged(tag, next), server).unwrap();
            outstanding.push((next, Instant::now(), 1));
            tally.sends += 1;
            next += 1;
        }
        assert!(
            Instant::now() < deadline,
            "thread {tag}: not done within {LIMIT:?}: {tally:?}, {} outstanding",
            outstanding.len()
        );
        match sock.recv_from(&mut buf) {
            Ok((len, from)) => {
                assert_eq!(from, server, "thread {tag}: a datagram from a stranger");
                let reply = &buf[..len];
                let (t, seq) = tag_of(reply).unwrap_or_else(|| {
                    panic!(
                        "thread {tag}: not a greeting of ours: {:?}",
                        reply.escape_ascii().to_string()
                    )
                });
                assert_eq!(t, tag, "thread {tag}: got the reply meant for thread {t}");
                assert!(seq < next, "thread {tag}: a reply to {seq}, never sent");
                assert!(
                    reply == greet(&tagged(tag, seq)).as_slice(),
                    "thread {tag}: the reply to {seq} is not byte-exact"
                );
                match outstanding.iter().position(|o| o.0 == seq) {
                    Some(i) => {
                        outstanding.swap_remove(i);
                        answered[seq as usize] = true;
                        tally.answered += 1;
                    }
                    None => {
                        // A second reply to a request sent again.
                        assert!(answered[seq as usize]);
                        tally.duplicates += 1;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("thread {tag}: recv_from: {e}"),
        }
        for o in outstanding.iter_mut() {
            if o.1.elapsed() >= TRY_TIMEOUT {
                assert!(
                    o.2 < MAX_TRIES,
                    "thread {tag}: no reply to {} after {MAX_TRIES} tries",
                    o.0
                );
                sock.send_to(&tagged(tag, o.0), server).unwrap();
                o.1 = Instant::now();
                o.2 += 1;
                tally.sends += 1;
            }
        }
    }
    tally
}

fn stress(workers: usize) {
    let mut c = config(workers, 65_536);
    c.recv_buffer = Some(4 << 20);
    let server = Server::bind(c).unwrap();
    let addr = server.local_addr();
    let deadline = Instant::now() + LIMIT;
    let threads: Vec<_> = (0..THREADS)
        .map(|tag| thread::spawn(move || exchange(addr, tag, deadline)))
        .collect();
    let mut total = Tally::default();
    for t in threads {
        let tally = support::join_within(t, LIMIT + Duration::from_secs(5), "client thread");
        total.sends += tally.sends;
        total.answered += tally.answered;
        total.duplicates += tally.duplicates;
    }
    let stats = shutdown_within(server, Duration::from_secs(5)).unwrap();
    eprintln!("workers={workers}: {total:?} {stats}");

    let requests = u64::from(THREADS * PER_THREAD);
    assert_eq!(total.answered, requests);
    assert!(stats.is_balanced(), "{stats}");
    assert_eq!(stats.worker_panics, 0, "{stats}");
    assert_eq!(stats.send_failed, 0, "{stats}");
    assert_eq!(stats.dropped_oversize, 0, "{stats}");
    assert_eq!(stats.dropped_rate_limited, 0, "{stats}");
    assert_eq!(stats.dropped_queue_full, 0, "{stats}");
    // Every request was answered at least once; only a request sent again
    // can be received, and answered, twice.
    assert!(stats.replied >= requests, "{stats}");
    assert!(stats.received <= total.sends, "{stats} {total:?}");
    if total.sends == requests {
        assert_eq!(stats.received, requests, "{stats}");
        assert_eq!(stats.replied, requests, "{stats}");
    }
}

#[test]
fn workers_1() {
    stress(1);
}

#[test]
fn workers_2() {
    stress(2);
}

#[test]
fn workers_8() {
    stress(8);
}
