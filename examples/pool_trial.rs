//! The pool's contract, timed as a new user would try it: a handler that
//! sleeps N ms on `slow-N` and greets anything else at once. It prints,
//! on a cold server and after 20,000 fast requests:
//!
//! - when each of `slow-400`, `slow-100`, `slow-300`, `slow-200`, sent at
//!   once to 4 workers, is answered (each should take its own time);
//! - when the last of 20 fast requests sent behind a `slow-500` on 2
//!   workers is answered (at once, not after 500 ms);
//! - how long a stop takes with 4 requests of 1 s on 2 workers (2 s of
//!   work in two waves, not 4).
//!
//! `tests/pool.rs` holds the same contract by order, not by time; this is
//! the figure for `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release --example pool_trial
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use udp_greeter::{greet_into, Config, Request, Server};

fn slow_on_request(request: &Request<'_>, reply: &mut Vec<u8>) {
    let ms = std::str::from_utf8(request.payload)
        .ok()
        .and_then(|p| p.strip_prefix("slow-"))
        .and_then(|n| n.parse().ok());
    if let Some(ms) = ms {
        std::thread::sleep(Duration::from_millis(ms));
    }
    greet_into(request.payload, reply);
}

fn start(workers: usize, warm: bool) -> (Server, SocketAddr, UdpSocket) {
    let mut config = Config::new("127.0.0.1:0".parse().expect("an address"));
    config.workers = workers;
    let server = Server::builder(config)
        .handler(slow_on_request)
        .start()
        .expect("a server");
    let to = server.local_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    if warm {
        for _ in 0..20_000 / 32 {
            for _ in 0..32 {
                sock.send_to(b"fast", to).expect("sent");
            }
            for _ in 0..32 {
                recv(&sock);
            }
        }
    }
    (server, to, sock)
}

fn recv(sock: &UdpSocket) -> String {
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).expect("a reply within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn four_slow(warm: bool) {
    let (server, to, sock) = start(4, warm);
    let t0 = Instant::now();
    for name in ["slow-400", "slow-100", "slow-300", "slow-200"] {
        sock.send_to(name.as_bytes(), to).expect("sent");
    }
    let times: Vec<String> = (0..4)
        .map(|_| format!("{} at {}", recv(&sock), ms(t0.elapsed())))
        .collect();
    println!("  4 slow on 4 workers: {}", times.join(", "));
    server.shutdown().expect("a stop");
}

fn one_slow_twenty_fast(warm: bool) {
    let (server, to, sock) = start(2, warm);
    let t0 = Instant::now();
    sock.send_to(b"slow-500", to).expect("sent");
    for _ in 0..20 {
        sock.send_to(b"fast", to).expect("sent");
    }
    let mut last_fast = Duration::ZERO;
    for _ in 0..21 {
        if recv(&sock) == "Hello, fast!" {
            last_fast = t0.elapsed();
        }
    }
    println!(
        "  slow-500 and 20 fast on 2 workers: last fast reply at {}",
        ms(last_fast)
    );
    server.shutdown().expect("a stop");
}

fn stop_with_work(warm: bool) {
    let (server, to, sock) = start(2, warm);
    for _ in 0..4 {
        sock.send_to(b"slow-1000", to).expect("sent");
    }
    // Until all four are read: the stop answers what was read.
    while server.stats().received < 4 + if warm { 20_000 } else { 0 } {
        std::thread::sleep(Duration::from_millis(1));
    }
    let t0 = Instant::now();
    let stats = server.shutdown().expect("a stop");
    println!(
        "  stop with 4 x 1 s on 2 workers: {} ({} replied)",
        ms(t0.elapsed()),
        stats.replied
    );
}

fn main() {
    for warm in [false, true] {
        println!(
            "{}:",
            if warm {
                "after 20,000 fast requests"
            } else {
                "cold"
            }
        );
        four_slow(warm);
        one_slow_twenty_fast(warm);
        stop_with_work(warm);
    }
}
