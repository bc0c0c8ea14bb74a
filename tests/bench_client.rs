//! The load generator behind `udp-greeter-client bench`: what it counts
//! against a real server, against servers that answer wrongly or not at
//! all, and what its command line prints. No speed is asserted here.

use std::ffi::OsStr;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use udp_greeter::client::bench::{self, BenchConfig, BenchReport, Pacing, Sending};
use udp_greeter::{greet, Server, DEFAULT_QUEUE, MAX_GREETABLE};

use crate::support::{
    bench_json, command, config, join_within, json_count, run, run_with, shutdown_within, Outcome,
    TempDir, CLIENT_BIN, PATIENCE,
};

fn server() -> Server {
    Server::bind(config(2, DEFAULT_QUEUE)).unwrap()
}

/// Shuts `server` down within the shared patience.
fn stop(server: Server) -> udp_greeter::Snapshot {
    shutdown_within(server, PATIENCE).unwrap()
}

/// A short run, bounded in count as well as in time.
fn short(addr: SocketAddr) -> BenchConfig {
    let mut c = BenchConfig::new(addr);
    c.duration = Duration::from_millis(500);
    c.warmup = Duration::from_millis(100);
    c.count = Some(2_000_000);
    c
}

fn balanced(r: &BenchReport) {
    let dropped_here = r.client_dropped.min(r.sent - r.replies);
    assert_eq!(r.sent, r.replies + r.lost + dropped_here, "{r:?}");
}

/// A stand-in server on 127.0.0.1 that answers each datagram with whatever
/// `answer` makes of it (nothing, for an empty list); stops on drop and
/// after a bounded time and count in any case.
struct Fake {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Heard>>,
}

/// What a fake read.
struct Heard {
    /// Datagrams.
    seen: u64,
    /// Different peers they came from.
    peers: usize,
    /// The first [`RECORDED`] datagrams' bytes, in the order read.
    first: Vec<Vec<u8>>,
}

/// How many datagrams a fake keeps the bytes of.
const RECORDED: usize = 10_000;

impl Fake {
    fn start(answer: fn(&[u8]) -> Vec<Vec<u8>>) -> Fake {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + PATIENCE;
            let mut buf = vec![0u8; 65_536];
            let mut seen = 0u64;
            let mut peers = std::collections::HashSet::new();
            let mut first = Vec::new();
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline && seen < 10_000_000 {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                seen += 1;
                peers.insert(peer);
                if first.len() < RECORDED {
                    first.push(buf[..n].to_vec());
                }
                for reply in answer(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
            // What arrived before the stop still counts, however late this
            // thread was scheduled.
            let _ = socket.set_nonblocking(true);
            while let Ok((_, peer)) = socket.recv_from(&mut buf) {
                seen += 1;
                peers.insert(peer);
            }
            Heard {
                seen,
                peers: peers.len(),
                first,
            }
        });
        Fake {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the fake and returns how many datagrams it read.
    fn finish(self) -> u64 {
        self.heard().seen
    }

    /// Stops the fake and returns how many datagrams it read, and from how
    /// many different peers.
    fn finish_with_peers(self) -> (u64, usize) {
        let heard = self.heard();
        (heard.seen, heard.peers)
    }

    /// Stops the fake and returns what it read.
    fn heard(mut self) -> Heard {
        self.stop.store(true, Ordering::Relaxed);
        join_within(self.thread.take().unwrap(), PATIENCE, "fake server")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A run against a fake: no warm-up, a small window and a short timeout, so
/// several rounds of timeouts (and refills) fit in half a second.
fn against_fake(fake: &Fake) -> BenchReport {
    let mut c = BenchConfig::new(fake.addr);
    c.window = 4;
    c.duration = Duration::from_millis(500);
    c.warmup = Duration::ZERO;
    c.timeout = Duration::from_millis(50);
    c.count = Some(100_000);
    bench::run(&c).unwrap()
}

#[test]
fn loopback() {
    let server = server();
    let r = bench::run(&short(server.local_addr())).unwrap();
    let stats = stop(server);
    assert!(r.replies > 0, "{r:?}");
    assert_eq!((r.lost, r.bad, r.duplicates, r.late), (0, 0, 0, 0), "{r:?}");
    balanced(&r);
    assert!(r.replies_per_sec() > 0.0);
    let rtt = r.rtt.expect("round trips measured");
    assert!(rtt.p50 > Duration::ZERO && rtt.p50 <= rtt.p99 && rtt.p99 <= rtt.max);
    // The warm-up's requests reached the server too, uncounted by the bench.
    assert!(stats.replied >= r.replies, "{stats} {r:?}");
}

#[test]
fn payload_and_sockets() {
    let server = server();
    let mut c = short(server.local_addr());
    c.payload = 8192;
    c.sockets = 3;
    c.window = 9;
    let r = bench::run(&c).unwrap();
    stop(server);
    assert!(r.replies > 0, "{r:?}");
    assert_eq!((r.lost, r.bad, r.duplicates), (0, 0, 0), "{r:?}");
    balanced(&r);
}

/// Every way of sending reaches the server as the same requests, each
/// answered and counted once.
#[test]
fn every_send_shape() {
    let server = server();
    for sending in [Sending::Batched, Sending::Single, Sending::Segmented] {
        let mut c = short(server.local_addr());
        c.window = 16;
        c.sending = sending;
        let r = bench::run(&c).unwrap();
        assert!(r.replies > 0, "{sending:?}: {r:?}");
        assert_eq!(
            (r.lost, r.bad, r.duplicates),
            (0, 0, 0),
            "{sending:?}: {r:?}"
        );
        balanced(&r);
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["sending"], sending.name(), "{json}");
    }
    let stats = stop(server);
    assert!(stats.is_balanced() && stats.replied > 0, "{stats}");
}

/// Both pacings of an open loop send the rate asked for, counted in full.
#[test]
fn every_pacing() {
    let server = server();
    for pacing in [Pacing::Even, Pacing::Bursts] {
        let mut c = short(server.local_addr());
        c.rate = Some(4000);
        c.pacing = pacing;
        c.warmup = Duration::ZERO;
        c.duration = Duration::from_millis(500);
        let r = bench::run(&c).unwrap();
        // 2,000 due by the end, each sent or unsent; unsent only if the
        // generator was held up for more than MAX_LAG.
        assert_eq!(r.sent + r.unsent, 2_000, "{pacing:?}: {r:?}");
        assert!(r.unsent <= 500, "{pacing:?}: {r:?}");
        assert_eq!((r.lost, r.bad), (0, 0), "{pacing:?}: {r:?}");
        balanced(&r);
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["pacing"], pacing.name(), "{json}");
    }
    stop(server);
}

/// `--sockets 64 --window 64`: 64 clients, each a port of its own with one
/// request in flight, as the server sees them.
#[test]
fn many_sockets_are_many_clients() {
    let fake = Fake::start(|req| vec![greet(req)]);
    let mut c = BenchConfig::new(fake.addr);
    c.sockets = 64;
    c.window = 64;
    c.warmup = Duration::ZERO;
    c.duration = Duration::from_millis(300);
    c.count = Some(100_000);
    let r = bench::run(&c).unwrap();
    let (seen, peers) = fake.finish_with_peers();
    assert_eq!(peers, 64, "{r:?}");
    assert!(r.replies >= 64 && seen >= r.sent, "{r:?}");
    assert_eq!((r.lost, r.bad), (0, 0), "{r:?}");
    balanced(&r);
}

#[test]
fn count() {
    let server = server();
    let mut c = short(server.local_addr());
    c.duration = Duration::from_secs(10);
    c.count = Some(500);
    let started = Instant::now();
    let r = bench::run(&c).unwrap();
    stop(server);
    assert_eq!((r.sent, r.replies), (500, 500), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn open_loop() {
    let server = server();
    let mut c = short(server.local_addr());
    c.rate = Some(2000);
    c.warmup = Duration::ZERO;
    c.duration = Duration::from_secs(1);
    let r = bench::run(&c).unwrap();
    stop(server);
    // Each request due is sent or, when the generator was held up for more
    // than MAX_LAG (a busy machine), unsent.
    assert_eq!(r.sent + r.unsent, 2000, "{r:?}");
    assert!(r.sent >= 1000, "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    balanced(&r);
}

#[test]
fn silent() {
    let fake = Fake::start(|_| Vec::new());
    let r = against_fake(&fake);
    let seen = fake.finish();
    assert_eq!(r.replies, 0);
    assert_eq!(r.lost, r.sent, "{r:?}");
    // Each timeout frees a slot that is sent again: many rounds of 4.
    assert!(r.sent > 4 * 3, "{r:?}");
    assert_eq!(seen, r.sent);
    assert_eq!((r.bad, r.duplicates), (0, 0));
    assert_eq!(r.rtt, None, "no round trip was measured");
}

#[test]
fn wrong_bytes() {
    let fake = Fake::start(|req| {
        let mut reply = greet(req);
        let last = reply.len() - 2;
        reply[last] ^= 0x20;
        vec![reply]
    });
    let r = against_fake(&fake);
    fake.finish();
    assert_eq!(r.replies, 0);
    assert_eq!(r.lost, r.sent, "{r:?}");
    assert_eq!(r.bad, r.sent, "{r:?}");
    assert!(r.sent > 0);
    assert_eq!(r.rtt, None, "no round trip was measured");
}

#[test]
fn truncated() {
    // The tutorial's Python server reads at most 1,024 bytes: its greeting
    // of a longer request is short, and so is bad.
    let fake = Fake::start(|req| vec![greet(&req[..req.len().min(1024)])]);
    let mut c = BenchConfig::new(fake.addr);
    c.payload = 2000;
    c.window = 2;
    c.duration = Duration::from_millis(300);
    c.warmup = Duration::ZERO;
    c.timeout = Duration::from_millis(50);
    c.count = Some(100_000);
    let r = bench::run(&c).unwrap();
    fake.finish();
    assert_eq!((r.replies, r.lost), (0, r.sent), "{r:?}");
    assert_eq!(r.bad, r.sent, "{r:?}");
}

#[test]
fn duplicates() {
    let fake = Fake::start(|req| vec![greet(req), greet(req)]);
    // A timeout no scheduling delay of the fake's thread reaches, since
    // nothing may count as lost here.
    let mut c = BenchConfig::new(fake.addr);
    c.window = 4;
    c.duration = Duration::from_millis(500);
    c.warmup = Duration::ZERO;
    c.timeout = Duration::from_secs(2);
    c.count = Some(100_000);
    let r = bench::run(&c).unwrap();
    fake.finish();
    assert!(r.replies > 0);
    assert_eq!(r.lost, 0, "{r:?}");
    balanced(&r);
    // The run may end before the second copy of its last requests arrives.
    assert!(
        r.duplicates <= r.sent && r.duplicates + 4 >= r.sent,
        "{r:?}"
    );
    assert_eq!(r.bad, 0);
}

#[test]
fn invalid() {
    let mut c = BenchConfig::new("127.0.0.1:9".parse().unwrap());
    c.payload = 4;
    assert!(bench::run(&c).unwrap_err().is_config());
}

// ---------------------------------------------------------------------------
// The command line

fn client(args: &[&str]) -> Outcome {
    run(CLIENT_BIN, args, PATIENCE)
}

/// `udp-greeter-client bench` for 0.3 s against a fresh server, with `extra`
/// arguments; it must succeed.
fn bench_briefly(extra: &[&str]) -> Outcome {
    let server = server();
    let addr = server.local_addr().to_string();
    let mut args = vec![
        "bench",
        "--server",
        &addr,
        "--seconds",
        "0.3",
        "--warmup",
        "0",
    ];
    args.extend_from_slice(extra);
    let out = client(&args);
    stop(server);
    assert!(out.status.success(), "{out:?}");
    out
}

#[test]
fn json() {
    let out = bench_briefly(&["--count", "100000", "--json"]);
    // Piped: no progress lines.
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // One line, one flat object.
    let report = bench_json(&out.stdout);
    for key in [
        "sent",
        "replies",
        "lost",
        "bad",
        "duplicates",
        "replies_per_s",
        "rtt_p50_us",
        "rtt_p90_us",
        "rtt_p99_us",
        "rtt_p999_us",
        "rtt_max_us",
    ] {
        assert!(report[key].is_number(), "{key} is not a number: {report}");
    }
    assert!(json_count(&report, "replies") > 0, "{report}");
    assert_eq!(json_count(&report, "lost"), 0, "{report}");
    assert_eq!(report["mode"], "closed", "{report}");
    assert_eq!(json_count(&report, "window"), 64, "{report}");
}

#[test]
fn table() {
    let out = bench_briefly(&["--rate", "1000"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    for row in [
        "sent",
        "replies",
        "lost",
        "bad",
        "duplicates",
        "replies/s",
        "rtt p50",
        "rtt p99.9",
        "rtt max",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(row)),
            "no {row} in\n{stdout}"
        );
    }
    assert!(stdout.contains("open loop at 1000 req/s"), "{stdout}");
}

#[test]
fn names() {
    // The plain client is unchanged by the subcommand.
    let server = server();
    let addr = server.local_addr().to_string();
    let out = client(&["--server", &addr]);
    let out2 = client(&["--server", &addr, "--timeout", "2s", "Bo", "bench"]);
    stop(server);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Hello, Michael!\nHello, Tracy!\nHello, Sarah!\n"
    );
    assert!(out2.status.success(), "{out2:?}");
    assert_eq!(
        String::from_utf8(out2.stdout).unwrap(),
        "Hello, Bo!\nHello, bench!\n"
    );
}

#[test]
fn bad_args() {
    let out = client(&["bench", "--payload", "4"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = client(&["bench", "--window", "8", "--rate", "10"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

// ---------------------------------------------------------------------------
// Requests of one's own

fn echo(request: &[u8]) -> Vec<Vec<u8>> {
    vec![request.to_vec()]
}

fn greeting(request: &[u8]) -> Vec<Vec<u8>> {
    vec![greet(request)]
}

/// A key lookup, say: the same answer whatever was asked.
fn forty_two(_: &[u8]) -> Vec<Vec<u8>> {
    vec![b"42".to_vec()]
}

/// `bench --json` against `addr` with `args` and a run of `count`
/// requests, one in flight, no warm-up.
fn bench_own(addr: SocketAddr, count: &str, args: &[impl AsRef<OsStr>]) -> Outcome {
    let addr = addr.to_string();
    let fixed = [
        "bench",
        "--server",
        &addr,
        "--json",
        "--count",
        count,
        "--window",
        "1",
        "--warmup",
        "0",
        "--seconds",
        "10",
    ];
    run_with(command(CLIENT_BIN).args(fixed).args(args), PATIENCE)
}

/// `--request`, repeated, sends exactly those bytes, in turn, and each
/// `--expect` checks the replies against them: the greeting of those
/// bytes, the bytes themselves, or anything.
#[test]
fn own_requests_exactly() {
    let requests: [&[u8]; 3] = [b"GET lang", b"", b"SET lang Rust, 2021"];
    let mut args: Vec<&OsStr> = Vec::new();
    for r in &requests {
        args.extend([OsStr::new("--request"), os(r)]);
    }
    for (expect, answer) in [
        ("greeting", greeting as fn(&[u8]) -> Vec<Vec<u8>>),
        ("echo", echo),
        ("any", forty_two),
    ] {
        let fake = Fake::start(answer);
        let mut all = args.clone();
        all.extend(["--expect", expect, "--timeout", "5s"].map(OsStr::new));
        let out = bench_own(fake.addr, "6", &all);
        let heard = fake.heard();
        assert_eq!(out.code(), Some(0), "{expect}: {out:?}");
        let report = bench_json(&out.stdout);
        assert_eq!(json_count(&report, "requests"), 3, "{report}");
        for (key, want) in [("sent", 6), ("replies", 6), ("lost", 0), ("bad", 0)] {
            assert_eq!(
                json_count(&report, key),
                want,
                "{expect}: {key} in {report}"
            );
        }
        let sent: Vec<&[u8]> = requests.iter().cycle().take(6).copied().collect();
        assert_eq!(heard.first, sent, "{expect}");
    }
}

/// A reply that is not what `--expect` asks of the request sent is bad:
/// an echo is no greeting, and a greeting no echo.
#[test]
fn own_requests_checked() {
    for (expect, answer) in [
        ("greeting", echo as fn(&[u8]) -> Vec<Vec<u8>>),
        ("echo", greeting),
    ] {
        let fake = Fake::start(answer);
        let args = ["--request", "Bob", "--expect", expect, "--timeout", "200ms"];
        let out = bench_own(fake.addr, "3", &args);
        fake.finish();
        assert_eq!(out.code(), Some(1), "{expect}: {out:?}");
        let report = bench_json(&out.stdout);
        assert_eq!(json_count(&report, "replies"), 0, "{expect}: {report}");
        assert_eq!(json_count(&report, "bad"), 3, "{expect}: {report}");
        assert!(out.stderr.contains("3 not the"), "{expect}: {out:?}");
    }
}

/// `--request-file` sends each file's bytes, whole, as one request: bytes
/// that are not text, an empty file, and the largest request a greeting
/// can answer.
#[test]
fn request_files_whole() {
    let dir = TempDir::new("bench-requests");
    let files: [(&str, Vec<u8>); 3] = [
        ("binary", b"\xff\x00line\n\r\x80 end".to_vec()),
        ("empty", Vec::new()),
        (
            "largest",
            (0..MAX_GREETABLE).map(|i| (i % 251) as u8).collect(),
        ),
    ];
    let mut args: Vec<&OsStr> = Vec::new();
    let paths: Vec<_> = files
        .iter()
        .map(|(name, _)| dir.path().join(name))
        .collect();
    for ((_, bytes), path) in files.iter().zip(&paths) {
        std::fs::write(path, bytes).unwrap();
        args.extend([OsStr::new("--request-file"), path.as_os_str()]);
    }
    args.extend(["--timeout", "5s"].map(OsStr::new));
    let fake = Fake::start(greeting);
    let out = bench_own(fake.addr, "3", &args);
    let heard = fake.heard();
    assert_eq!(out.code(), Some(0), "{out:?}");
    let report = bench_json(&out.stdout);
    assert_eq!(json_count(&report, "replies"), 3, "{report}");
    let sent: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
    assert_eq!(heard.first, sent);
}

/// In the library, with several requests in flight on several sockets:
/// each reply finds a request it answers, and the requests go in turn.
#[test]
fn own_requests_in_flight_together() {
    let fake = Fake::start(greeting);
    let mut c = BenchConfig::new(fake.addr);
    c.requests = vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()];
    c.window = 6;
    c.sockets = 2;
    c.warmup = Duration::ZERO;
    c.duration = Duration::from_secs(5);
    c.timeout = Duration::from_secs(5);
    c.count = Some(600);
    let r = bench::run(&c).unwrap();
    let heard = fake.heard();
    assert_eq!((r.sent, r.replies), (600, 600), "{r:?}");
    assert_eq!((r.lost, r.bad, r.late), (0, 0, 0), "{r:?}");
    for request in &c.requests {
        let times = heard.first.iter().filter(|h| *h == request).count();
        assert_eq!(times, 200, "{request:?}");
    }
}

/// When nothing comes back at all, the run says what that can mean.
#[test]
fn nothing_back_says_why() {
    for (args, which) in [
        (&["--request", "GET lang"][..], "fails this request"),
        (
            &[],
            "fails the requests bench makes (--request sends your own)",
        ),
    ] {
        let fake = Fake::start(|_| Vec::new());
        let mut all = args.to_vec();
        all.extend(["--timeout", "100ms"]);
        let out = bench_own(fake.addr, "2", &all);
        fake.finish();
        assert_eq!(out.code(), Some(1), "{out:?}");
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "{out:?}");
        for words in [
            "2 sent, 2 lost, nothing came back",
            which,
            "or nothing listens there",
        ] {
            assert!(lines[0].contains(words), "no {words:?} in {out:?}");
        }
    }
}

/// Requests that cannot be sent are refused before anything is: one line,
/// exit code 2.
#[test]
fn bad_requests_refused() {
    let dir = TempDir::new("bench-bad-requests");
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let huge = dir.path().join("huge");
    std::fs::write(&huge, vec![b'x'; 70_000]).unwrap();
    let huge = huge.to_str().unwrap();
    let long = "x".repeat(MAX_GREETABLE + 1);
    for (args, words) in [
        (
            &["--request-file", missing][..],
            &["--request-file", missing, "No such file"][..],
        ),
        (
            &["--request", "a", "--payload", "9"],
            &["--request", "--payload"],
        ),
        (
            &["--request", "a", "--request-file", missing],
            &["--request-file"],
        ),
        (&["--request-file", huge], &[huge, "65507 bytes"]),
        (&["--request", &long], &["request 1 of 1 is 65500 bytes"]),
    ] {
        let mut all = vec!["bench", "--server", "127.0.0.1:9"];
        all.extend_from_slice(args);
        client(&all).refusal(words);
    }
}

/// `bytes` as a command-line argument.
fn os(bytes: &[u8]) -> &OsStr {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(bytes)
}

/// A bench whose reader is stopped while its replies come: its own socket
/// keeps what fits and the kernel drops the rest. Those are
/// `client_dropped`, not `lost`: every request is answered or accounted
/// for by a drop at the client.
#[cfg(target_os = "linux")]
#[test]
fn drops_at_the_client_are_not_lost() {
    use crate::support::{command, Proc};

    // 1,000 requests of 8 bytes, all sent at once (a closed loop whose
    // window holds them all), fit in this socket's buffer however late
    // this thread reads. 1,000 replies of 60,000 bytes, taken in order
    // (`--expect any`), are many times what the bench's socket can hold:
    // it asks for 4 MiB, and the kernel keeps at most twice
    // net.core.rmem_max.
    const N: usize = 1_000;
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&server)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let n = N.to_string();
    let load = [
        "--window",
        &n,
        "--count",
        &n,
        "--payload",
        "8",
        "--expect",
        "any",
    ];
    // The timeout only has to outlast the pause below, in which 60 MB
    // cross the loopback: well under a second even on a busy machine.
    let run = [
        "--warmup",
        "0",
        "--seconds",
        "30",
        "--timeout",
        "5s",
        "--json",
    ];
    let mut bench = Proc::spawn(
        command(CLIENT_BIN)
            .args(["bench", "--server", &addr])
            .args(load)
            .args(run),
    );
    let mut buf = [0u8; 64];
    let mut peer = None;
    for _ in 0..N {
        let (_, from) = server.recv_from(&mut buf).expect("every request");
        peer = Some(from);
    }
    bench.pause();
    let reply = vec![b'r'; 60_000];
    for _ in 0..N {
        server.send_to(&reply, peer.unwrap()).unwrap();
    }
    bench.resume();
    let status = bench.finish(PATIENCE);
    assert!(status.success(), "{status}: {}", bench.stderr_text());
    let report = bench_json(&bench.stdout());
    let count = |key| json_count(&report, key);
    assert_eq!(count("sent"), N as u64, "{report}");
    assert!(count("client_dropped") > 0, "nothing dropped: {report}");
    assert_eq!(count("lost"), 0, "{report}");
    assert_eq!(
        count("replies") + count("client_dropped"),
        N as u64,
        "{report}"
    );
    assert_eq!((count("late"), count("bad")), (0, 0), "{report}");
}
