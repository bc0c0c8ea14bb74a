//! The bench as a UDP latency and loss probe: it never reports impossible
//! numbers (an open loop above what the generator can send, a `--count`
//! run, replies that come after the timeout), its figures read at a glance,
//! it measures any UDP echo service, and it says at once when nothing
//! listens. No speed is asserted: the loads are bounded in count and time.

use crate::support::*;

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use udp_greeter::client::bench::{self, BenchConfig, Expect};
use udp_greeter::{greet, Server, DEFAULT_QUEUE};

/// A stand-in service on 127.0.0.1 that answers each datagram with what
/// `answer` makes of it, `delay` after it came; stops on drop, and after a
/// bounded time and count in any case.
struct Service {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Service {
    fn start(delay: Duration, answer: fn(&[u8]) -> Vec<u8>) -> Service {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + PATIENCE;
            let mut buf = vec![0u8; 65_536];
            let mut pending: VecDeque<(Instant, SocketAddr, Vec<u8>)> = VecDeque::new();
            let mut seen = 0u64;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline && seen < 2_000_000 {
                let now = Instant::now();
                while pending.front().is_some_and(|(due, _, _)| *due <= now) {
                    let (_, peer, reply) = pending.pop_front().unwrap();
                    let _ = socket.send_to(&reply, peer);
                }
                let wait = pending
                    .front()
                    .map_or(Duration::from_millis(5), |(due, _, _)| {
                        due.saturating_duration_since(now)
                    })
                    .clamp(Duration::from_micros(100), Duration::from_millis(5));
                socket.set_read_timeout(Some(wait)).unwrap();
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                seen += 1;
                let reply = answer(&buf[..n]);
                if delay.is_zero() {
                    let _ = socket.send_to(&reply, peer);
                } else {
                    pending.push_back((Instant::now() + delay, peer, reply));
                }
            }
        });
        Service {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn greeter(delay: Duration) -> Service {
        Service::start(delay, greet)
    }

    fn echo() -> Service {
        Service::start(Duration::ZERO, <[u8]>::to_vec)
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        join_within(self.thread.take().unwrap(), PATIENCE, "service");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `udp-greeter-client bench --server ADDR ARGS...`, within the patience.
fn probe(addr: SocketAddr, args: &[&str]) -> Outcome {
    let addr = addr.to_string();
    let mut all = vec!["bench", "--server", &addr];
    all.extend_from_slice(args);
    run(CLIENT_BIN, &all, PATIENCE)
}

/// As [`probe`] with `--json`; it must succeed.
fn probe_json(addr: SocketAddr, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = probe(addr, &all);
    assert_eq!(out.code(), Some(0), "{out:?}");
    bench_json(&out.stdout)
}

fn seconds(report: &serde_json::Value, key: &str) -> f64 {
    report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {report}"))
}

fn balanced(report: &serde_json::Value) {
    let get = |key| json_count(report, key);
    assert_eq!(get("sent"), get("replies") + get("lost"), "{report}");
}

/// A port on 127.0.0.1 with nothing listening: bound, then let go.
fn closed_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

// ---------------------------------------------------------------------------
// An open loop above what the generator can send

/// Five million requests a second for 0.2 s is beyond any generator here:
/// what could not leave on time is unsent, to the request, no reply older
/// than the timeout counts as a round trip, the run ends on time, and the
/// report says the generator fell behind.
#[test]
fn open_loop_beyond_the_generator() {
    let service = Service::greeter(Duration::ZERO);
    let started = Instant::now();
    let report = probe_json(
        service.addr,
        &[
            "--rate",
            "5000000",
            "--seconds",
            "0.2",
            "--warmup",
            "0",
            "--timeout",
            "50ms",
        ],
    );
    let wall = started.elapsed();
    service.finish();
    let sent = json_count(&report, "sent");
    let unsent = json_count(&report, "unsent");
    assert_eq!(sent + unsent, 1_000_000, "every request asked: {report}");
    assert!(unsent > 0, "{report}");
    balanced(&report);
    let on_time = seconds(&report, "on_time_pct");
    assert!(on_time < 100.0, "{report}");
    // The share shown is the share sent, rounded down.
    let share = 100.0 * sent as f64 / 1e6;
    assert!(on_time <= share && share - on_time < 0.1, "{report}");
    if json_count(&report, "replies") > 0 {
        assert!(seconds(&report, "rtt_max_us") <= 50_000.0, "{report}");
    }
    // Sending for 0.2 s, then at most a timeout for the last replies, and
    // a quarter of a second more for a busy machine's scheduling.
    assert_eq!(seconds(&report, "seconds"), 0.2, "{report}");
    assert!(seconds(&report, "tail_s") <= 0.05 + 0.25, "{report}");
    assert!(wall < Duration::from_secs(3), "{wall:?}: {report}");
}

/// The same in a table: the line that says so.
#[test]
fn behind_in_the_table() {
    let service = Service::greeter(Duration::ZERO);
    let out = probe(
        service.addr,
        &[
            "--rate",
            "5000000",
            "--seconds",
            "0.1",
            "--warmup",
            "0",
            "--timeout",
            "50ms",
        ],
    );
    service.finish();
    let table = out.stdout_text();
    assert!(
        table.contains("the generator fell behind: only")
            && table.contains("so these figures measure the generator, not the server"),
        "{table}"
    );
    let on_time = table
        .lines()
        .find(|l| l.trim_start().starts_with("on time"))
        .unwrap_or_else(|| panic!("no on time row:\n{table}"));
    assert!(on_time.trim_end().ends_with('%'), "{on_time}");
}

/// A reply that comes after the timeout is late, its request lost, and
/// never a round trip, however the replies interleave.
#[test]
fn late_replies_are_no_round_trips() {
    // Every other datagram answered at once, the rest after 80 ms.
    let fast = Service::greeter(Duration::ZERO);
    let slow = Service::greeter(Duration::from_millis(80));
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    relay
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let flag = stop.clone();
    let (fast_addr, slow_addr) = (fast.addr, slow.addr);
    // The relay hands requests to the two services in turn and their
    // replies back to the client.
    let thread = thread::spawn(move || {
        let deadline = Instant::now() + PATIENCE;
        let mut buf = vec![0u8; 65_536];
        let mut client = None;
        let mut turn = false;
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((n, from)) = relay.recv_from(&mut buf) else {
                continue;
            };
            if from == fast_addr || from == slow_addr {
                if let Some(c) = client {
                    let _ = relay.send_to(&buf[..n], c);
                }
                continue;
            }
            client = Some(from);
            turn = !turn;
            let _ = relay.send_to(&buf[..n], if turn { fast_addr } else { slow_addr });
        }
    });
    let mut c = BenchConfig::new(relay_addr);
    c.rate = Some(200);
    c.duration = Duration::from_millis(400);
    c.warmup = Duration::ZERO;
    c.timeout = Duration::from_millis(30);
    let r = bench::run(&c).unwrap();
    stop.store(true, Ordering::Relaxed);
    join_within(thread, PATIENCE, "relay");
    fast.finish();
    slow.finish();
    assert_eq!(r.sent + r.unsent, 80, "{r:?}");
    assert_eq!(r.sent, r.replies + r.lost, "{r:?}");
    assert!(r.replies > 0 && r.late > 0, "{r:?}");
    assert!(r.late <= r.lost, "{r:?}");
    let rtt = r.rtt.expect("round trips measured");
    assert!(rtt.max <= c.timeout, "{rtt:?}");
}

// ---------------------------------------------------------------------------
// --count

/// A run that `--count` ends says so, and its times and rates are those
/// of the run that happened, not of `--seconds`.
#[test]
fn count_describes_the_run() {
    let server = Server::bind(config(1, DEFAULT_QUEUE)).unwrap();
    let addr = server.local_addr();
    let closed = probe_json(addr, &["--count", "10", "--seconds", "5", "--warmup", "0"]);
    let open = probe_json(
        addr,
        &[
            "--count",
            "50",
            "--rate",
            "1000",
            "--seconds",
            "5",
            "--warmup",
            "0",
        ],
    );
    let table = probe(addr, &["--count", "10", "--seconds", "5", "--warmup", "0"]);
    let ping = probe_json(
        addr,
        &[
            "--count",
            "10",
            "--window",
            "1",
            "--seconds",
            "5",
            "--warmup",
            "0",
        ],
    );
    shutdown_within(server, PATIENCE).unwrap();

    assert_eq!(json_count(&closed, "sent"), 10, "{closed}");
    balanced(&closed);
    let sending = seconds(&closed, "seconds");
    let (tail, elapsed) = (seconds(&closed, "tail_s"), seconds(&closed, "elapsed_s"));
    assert!(sending < 1.0, "sent 10 requests, not for 5 s: {closed}");
    assert!(elapsed > 0.0 && tail > 0.0, "{closed}");
    assert!((sending + tail - elapsed).abs() < 2e-6, "{closed}");
    // All ten left before the first reply: one burst, which has no rate.
    assert!(closed.get("replies_per_s").is_none(), "{closed}");
    assert!(closed.get("sent_per_s").is_none(), "{closed}");
    // One at a time, each sent on the last one's reply: ten replies in
    // nine round trips and a bit.
    let rate = seconds(&ping, "replies_per_s");
    let expected = 10.0 / seconds(&ping, "seconds");
    // (`seconds` is rounded to the microsecond.)
    assert!(rate > 0.0 && (rate / expected - 1.0).abs() < 0.01, "{ping}");

    // The fiftieth request of 1000 a second is due at 50 ms.
    assert_eq!(
        json_count(&open, "sent") + json_count(&open, "unsent"),
        50,
        "{open}"
    );
    let sending = seconds(&open, "seconds");
    assert!((0.049..1.0).contains(&sending), "{open}");

    assert!(table.status.success(), "{table:?}");
    let text = table.stdout_text();
    let head = text.lines().next().unwrap_or_default();
    assert!(head.contains("the count of 10 sent in"), "{head}");
    assert!(!head.contains("5.00 s"), "{head}");
}

// ---------------------------------------------------------------------------
// Replies per second

/// Against a service that answers after 200 ms, replies/s is the rate the
/// requests were answered at, and the wait for the last replies is apart.
#[test]
fn replies_per_second_leave_the_tail_out() {
    let service = Service::greeter(Duration::from_millis(200));
    let report = probe_json(
        service.addr,
        &[
            "--rate",
            "100",
            "--seconds",
            "0.5",
            "--warmup",
            "0",
            "--timeout",
            "2s",
        ],
    );
    service.finish();
    let (sent, replies) = (json_count(&report, "sent"), json_count(&report, "replies"));
    assert_eq!(sent + json_count(&report, "unsent"), 50, "{report}");
    assert_eq!(seconds(&report, "seconds"), 0.5, "{report}");
    assert_eq!(
        json_count(&report, "replies_per_s"),
        replies * 2,
        "{report}"
    );
    assert_eq!(json_count(&report, "sent_per_s"), sent * 2, "{report}");
    assert!(replies >= 45, "a slow machine may lose a few: {report}");
    let tail = seconds(&report, "tail_s");
    assert!((0.19..2.2).contains(&tail), "{report}");
}

// ---------------------------------------------------------------------------
// Readable figures

/// Round trips of about 200 ms read as milliseconds, three digits at most.
#[test]
fn round_trips_in_a_unit_that_fits() {
    let service = Service::greeter(Duration::from_millis(200));
    let out = probe(
        service.addr,
        &[
            "--rate",
            "50",
            "--seconds",
            "0.2",
            "--warmup",
            "0",
            "--timeout",
            "2s",
        ],
    );
    service.finish();
    assert!(out.status.success(), "{out:?}");
    let table = out.stdout_text();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.trim_start().starts_with("rtt "))
        .collect();
    assert_eq!(rows.len(), 5, "{table}");
    for row in rows {
        let mut words = row.split_whitespace().rev();
        let (unit, value) = (words.next().unwrap(), words.next().unwrap());
        assert_eq!(unit, "ms", "{row}");
        let digits = value.chars().filter(char::is_ascii_digit).count();
        assert!(digits <= 3, "{row}");
        let ms: f64 = value.parse().unwrap();
        assert!((195.0..2000.0).contains(&ms), "{row}");
    }
}

/// `bench --help` says what every figure of the report means, and the
/// largest payload.
#[test]
fn help_explains_the_report() {
    let out = run(CLIENT_BIN, &["bench", "--help"], PATIENCE);
    assert!(out.status.success(), "{out:?}");
    let help = out.stdout_text();
    let report = &help[help.find("The report").expect("the report explained")..];
    for field in [
        "sent",
        "replies",
        "lost",
        "unsent",
        "late",
        "duplicates",
        "bad",
        "on time",
        "sent/s",
        "replies/s",
        "tail",
        "rtt",
    ] {
        assert!(
            report.lines().any(|l| l.trim_start().starts_with(field)),
            "{field} not explained:\n{report}"
        );
    }
    for key in [
        "on_time_pct",
        "sent_per_s",
        "replies_per_s",
        "tail_s",
        "elapsed_s",
    ] {
        assert!(report.contains(key), "{key} not explained:\n{report}");
    }
    assert!(help.contains("65,499"), "{help}");
}

// ---------------------------------------------------------------------------
// Any UDP echo service

/// Five requests with the default `--expect greeting` to `service`, which
/// greets no one: the run says so and exits 1.
fn not_greetings(service: Service) {
    let out = probe(
        service.addr,
        &[
            "--count",
            "5",
            "--seconds",
            "2",
            "--warmup",
            "0",
            "--timeout",
            "50ms",
        ],
    );
    service.finish();
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("5 not the greeting expected"),
        "{out:?}"
    );
}

/// With `Expect::Echo` an echo service is measured like the greeter; with
/// the default its replies are all bad.
#[test]
fn echo_service() {
    let service = Service::echo();
    let mut c = BenchConfig::new(service.addr);
    c.window = 4;
    c.duration = Duration::from_millis(200);
    c.warmup = Duration::ZERO;
    c.count = Some(2000);
    c.expect = Expect::Echo;
    let echo = bench::run(&c).unwrap();
    c.expect = Expect::Greeting;
    c.timeout = Duration::from_millis(50);
    c.count = Some(20);
    let greeting = bench::run(&c).unwrap();
    service.finish();
    assert!(echo.replies > 0, "{echo:?}");
    assert_eq!((echo.lost, echo.bad, echo.late), (0, 0, 0), "{echo:?}");
    assert_eq!(echo.sent, echo.replies, "{echo:?}");
    assert!(echo.rtt.is_some());
    assert_eq!(greeting.replies, 0, "{greeting:?}");
    assert_eq!(greeting.bad, greeting.sent, "{greeting:?}");
}

/// `--expect echo` on the command line, and every payload size up to the
/// largest.
#[test]
fn echo_service_from_the_command_line() {
    let service = Service::echo();
    for payload in ["8", "1500", "65499"] {
        let report = probe_json(
            service.addr,
            &[
                "--expect",
                "echo",
                "--payload",
                payload,
                "--window",
                "2",
                "--count",
                "20",
                "--seconds",
                "2",
                "--warmup",
                "0",
            ],
        );
        assert_eq!(report["expect"], "echo", "{report}");
        assert_eq!(json_count(&report, "replies"), 20, "{payload}: {report}");
        assert_eq!(json_count(&report, "bad"), 0, "{payload}: {report}");
    }
    not_greetings(service);
}

// ---------------------------------------------------------------------------
// Any UDP service, whose replies carry nothing of the request

/// A key lookup, say: every answer is `42`, whatever was asked.
fn forty_two(_: &[u8]) -> Vec<u8> {
    b"42".to_vec()
}

/// The request backwards: as long as the request, but no echo of it.
fn reversed(request: &[u8]) -> Vec<u8> {
    request.iter().rev().copied().collect()
}

/// `--expect any` measures a service whose replies carry nothing of the
/// request: with one request in flight, one per socket, and several per
/// socket. `--expect greeting` finds the same replies all bad.
#[test]
fn any_service_from_the_command_line() {
    let service = Service::start(Duration::ZERO, forty_two);
    for (window, sockets) in [("1", "1"), ("4", "4"), ("8", "2")] {
        let report = probe_json(
            service.addr,
            &[
                "--expect",
                "any",
                "--window",
                window,
                "--sockets",
                sockets,
                "--count",
                "200",
                "--seconds",
                "5",
                "--warmup",
                "0",
                "--timeout",
                "5s",
            ],
        );
        let shape = format!("window {window}, sockets {sockets}");
        assert_eq!(report["expect"], "any", "{report}");
        assert_eq!(json_count(&report, "replies"), 200, "{shape}: {report}");
        for key in ["lost", "bad", "duplicates", "late"] {
            assert_eq!(json_count(&report, key), 0, "{shape}: {key} in {report}");
        }
        balanced(&report);
        assert!(report.get("rtt_p50_us").is_some(), "{shape}: {report}");
    }
    not_greetings(service);
}

/// In the library: replies as long as their requests but not echoes are
/// all bad to `Expect::Echo` and all replies to `Expect::Any`.
#[test]
fn any_service_in_the_library() {
    let service = Service::start(Duration::ZERO, reversed);
    let mut c = BenchConfig::new(service.addr);
    c.window = 6;
    c.sockets = 3;
    c.duration = Duration::from_secs(5);
    c.warmup = Duration::ZERO;
    c.timeout = Duration::from_secs(5);
    c.count = Some(300);
    c.expect = Expect::Any;
    let any = bench::run(&c).unwrap();
    c.expect = Expect::Echo;
    c.timeout = Duration::from_millis(50);
    c.count = Some(20);
    let echo = bench::run(&c).unwrap();
    service.finish();
    assert_eq!((any.sent, any.replies), (300, 300), "{any:?}");
    assert_eq!((any.lost, any.bad, any.duplicates), (0, 0, 0), "{any:?}");
    assert!(any.rtt.is_some(), "{any:?}");
    assert_eq!(echo.replies, 0, "{echo:?}");
    assert_eq!(echo.bad, echo.sent, "{echo:?}");
}

/// With `Expect::Any`, a reply that comes while no request of its socket
/// is in flight is `late`: here every reply comes after its request's
/// timeout and before the next request leaves.
#[test]
fn any_reply_with_nothing_in_flight_is_late() {
    let service = Service::start(Duration::from_millis(50), forty_two);
    let mut c = BenchConfig::new(service.addr);
    c.rate = Some(10);
    c.duration = Duration::from_secs(2);
    c.warmup = Duration::ZERO;
    c.timeout = Duration::from_millis(20);
    c.count = Some(10);
    c.expect = Expect::Any;
    let r = bench::run(&c).unwrap();
    service.finish();
    assert_eq!(r.sent, r.replies + r.lost, "{r:?}");
    assert!(r.late > 0, "{r:?}");
    assert!(r.lost > 0, "{r:?}");
    assert_eq!((r.bad, r.duplicates), (0, 0), "{r:?}");
}

// ---------------------------------------------------------------------------
// Nothing listening

/// The operating system's word that nothing listens ends the run at once,
/// in every loop and send shape, with the plain client's words.
#[test]
fn nothing_listening() {
    let addr = closed_port();
    for shape in [
        &["--window", "64"][..],
        &["--rate", "100"][..],
        &["--window", "1", "--send", "single"][..],
    ] {
        // A warm-up and a run far longer than any wait of a test: a run
        // that went on past the refusal would be seen to.
        let mut args = vec!["--seconds", "60", "--warmup", "60"];
        args.extend_from_slice(shape);
        let out = probe(addr, &args);
        assert_eq!(out.code(), Some(1), "{shape:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{shape:?}: {out:?}");
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "{shape:?}: {out:?}");
        assert!(
            lines[0].contains(&format!("nothing is listening at {addr}")),
            "{shape:?}: {out:?}"
        );
        // At once: not after the warm-up, let alone the run.
        assert!(out.elapsed < PATIENCE, "{shape:?}: {out:?}");
    }
}

#[test]
fn nothing_listening_in_the_library() {
    let mut c = BenchConfig::new(closed_port());
    c.duration = Duration::from_secs(60);
    c.warmup = Duration::from_secs(60);
    let err = within(PATIENCE, "a refused run", move || bench::run(&c)).unwrap_err();
    assert!(err.is_refused(), "{err}");
}

/// Once the server has answered, its going away is loss to measure, not
/// a reason to stop: a restart mid-run shows as requests lost.
#[test]
fn server_gone_mid_run() {
    let server = Server::bind(config(1, DEFAULT_QUEUE)).unwrap();
    let mut c = BenchConfig::new(server.local_addr());
    c.rate = Some(200);
    c.duration = Duration::from_millis(600);
    c.warmup = Duration::ZERO;
    c.timeout = Duration::from_millis(50);
    let run = thread::spawn(move || bench::run(&c));
    thread::sleep(Duration::from_millis(200));
    shutdown_within(server, PATIENCE).unwrap();
    let r = join_within(run, PATIENCE, "bench").unwrap();
    assert!(r.replies > 0 && r.lost > 0, "{r:?}");
    assert_eq!(r.sent, r.replies + r.lost, "{r:?}");
    assert_eq!(r.sent + r.unsent, 120, "{r:?}");
}
