//! The client and the bench over a lossy network: nftables drops a share
//! of requests and of replies, at random, inside a network namespace of
//! the test's own.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables), so the tests are
//! ignored by a plain `cargo test`; run them with
//! `cargo test --test tests lossy -- --include-ignored`. Without what they need
//! they fail, saying what is missing: they never pass without having run.
//!
//! Only 127.0.0.1 inside the namespace is used. Every datagram crosses the
//! namespace's loopback once, so the rules sit on the input hook alone: a
//! request is dropped (or not) once, on its way into the server, a reply
//! once, on its way into the client. Dropping on input, after the sender's
//! `sendto` has succeeded, is what a real network does; dropping on output
//! would fail the `sendto` with EPERM instead.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::{
    self, assert_balanced, bench_json, json_count, ok, server_with, Netns, Proc, CLIENT_BIN, NFT,
    SERVER_BIN,
};
use udp_greeter::Snapshot;

// ---------------------------------------------------------------------------
// What this file asks of its namespace

/// A namespace for these tests: `nft` at hand, and loss per datagram.
fn lossy_netns() -> Netns {
    let ns = Netns::new("lossy", &[NFT]);
    // The binaries send and receive in batches (UDP GSO), and loopback
    // passes a batch on whole: a rule would drop every datagram of it at
    // once, and loss would come in bursts, not one datagram at a time. One
    // segment per packet splits each batch before the input hook sees it.
    ok(
        ns.run(&["ip", "link", "set", "dev", "lo", "gso_max_segs", "1"]),
        "lo gso_max_segs 1",
    );
    ns
}

impl Netns {
    /// Installs `rules` (an nftables script) in the namespace.
    fn nft(&self, rules: &str) {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.nft", self.name));
        fs::write(&path, rules).expect("write the nftables script");
        let out = self.run(&["nft", "-f", path.to_str().expect("UTF-8 path")]);
        let _ = fs::remove_file(&path);
        ok(out, &format!("nft -f:\n{rules}"));
    }

    /// The packets the named counter of the `lossy` table has seen.
    fn counter(&self, name: &str) -> u64 {
        let out = self.run(&["nft", "list", "counter", "ip", "lossy", name]);
        let text = ok(out, "nft list counter").stdout_text();
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packet count for counter {name}:\n{text}"))
    }

    /// The namespace's UDP datagrams dropped because a socket's receive
    /// buffer was full (RcvbufErrors in /proc/net/snmp).
    fn rcvbuf_errors(&self) -> u64 {
        let text = ok(self.run(&["cat", "/proc/net/snmp"]), "/proc/net/snmp").stdout_text();
        let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
        let (names, values) = (udp.next(), udp.next());
        let (Some(names), Some(values)) = (names, values) else {
            panic!("no Udp lines in /proc/net/snmp:\n{text}");
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(k, _)| *k == "RcvbufErrors")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no RcvbufErrors in /proc/net/snmp:\n{text}"))
    }
}

// ---------------------------------------------------------------------------
// Loss

/// Percentages of datagrams dropped or duplicated, each at random.
#[derive(Clone, Copy)]
struct Loss {
    /// Requests dropped on their way into the server.
    requests: u32,
    /// Replies dropped on their way into the client.
    replies: u32,
    /// Replies, among those not dropped, delivered twice: the second copy
    /// is a stray the client must not take for its next request.
    duplicated: u32,
}

/// The nftables script for `loss` of the traffic to and from `port`, with
/// a named counter for every rule.
///
/// A duplicate is sent on through loopback and comes back to the input
/// hook with its TTL one less: only originals (TTL 64) are duplicated, and
/// since duplication comes after the drop, whether a request is answered
/// depends on the originals alone.
fn rules(port: u16, loss: Loss) -> String {
    let Loss {
        requests,
        replies,
        duplicated,
    } = loss;
    // `numgen random mod 100` is 0 to 99: `< 100` is refused, and needless.
    let chance = |pct: u32| match pct {
        100.. => String::new(),
        _ => format!("numgen random mod 100 < {pct} "),
    };
    let (requests, replies, duplicated) = (chance(requests), chance(replies), chance(duplicated));
    format!(
        "table ip lossy {{
  counter requests {{}}
  counter requests_dropped {{}}
  counter replies {{}}
  counter replies_dropped {{}}
  counter replies_duplicated {{}}
  chain input {{
    type filter hook input priority 0; policy accept;
    udp dport {port} counter name \"requests\"
    udp dport {port} {requests}counter name \"requests_dropped\" drop
    udp sport {port} counter name \"replies\"
    udp sport {port} {replies}counter name \"replies_dropped\" drop
    udp sport {port} ip ttl 64 {duplicated}counter name \"replies_duplicated\" dup to 127.0.0.1
  }}
}}
"
    )
}

/// How many standard deviations a count may stray from its mean: a
/// binomial count lands beyond 6 sigma less than once in 10^8 runs (the
/// normal tail, 2e-9, and a little more for a binomial of these sizes).
const SIGMAS: f64 = 6.0;

/// Asserts that `k` successes in `n` trials fit a probability `p`.
fn assert_binomial(what: &str, k: u64, n: u64, p: f64) {
    let mean = n as f64 * p;
    let bound = SIGMAS * (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (k as f64 - mean).abs() <= bound,
        "{what}: {k} of {n}, expected {mean:.0} +- {bound:.0} (p = {p})"
    );
}

// ---------------------------------------------------------------------------
// The server, in the namespace

/// Starts the server on 127.0.0.1, port 0, inside `ns`; returns it with
/// its port once it catches SIGTERM.
fn start_server(ns: &Netns) -> (Proc, u16) {
    let mut cmd = ns.command(SERVER_BIN);
    cmd.args(["--bind", "127.0.0.1:0", "--workers", "2"]);
    let (server, port) = server_with(&mut cmd);
    support::wait_signal_handlers(server.pid());
    (server, port)
}

/// Stops `server` with SIGTERM and returns its final counters, which must
/// balance: every datagram received has exactly one fate.
fn stop_server(mut server: Proc) -> Snapshot {
    let stats = server.stop();
    assert_balanced(&stats);
    assert_eq!(stats.worker_panics, 0, "{stats}");
    stats
}

/// The requests that got past the rules reached the server: all of them
/// were received, but for any a full receive buffer dropped.
fn assert_server_saw_what_passed(ns: &Netns, stats: &Snapshot) {
    let passed = ns.counter("requests") - ns.counter("requests_dropped");
    let overflowed = ns.rcvbuf_errors();
    assert!(
        stats.received <= passed && passed - stats.received <= overflowed,
        "{passed} requests passed the rules, {overflowed} dropped for a full \
         receive buffer, but the server received {}: {stats}",
        stats.received
    );
}

// ---------------------------------------------------------------------------
// The tests

/// 20 % of requests and 20 % of replies lost, and most replies that get
/// through delivered twice: the client greets every name, each with its
/// own greeting, in order.
///
/// A try succeeds with probability 0.8 * 0.8 = 0.64; a name fails only if
/// all 21 tries fail: 0.36^21 = 4.6e-10, so 20 names fail less than once
/// in 10^8 runs. The expected number of timeouts over the 20 names is 11
/// (2.3 s at 200 ms); the 60 s limit covers 300.
#[test]
#[ignore = "needs root, iproute2 and nftables: cargo test --test tests lossy -- --include-ignored"]
fn client_greets_every_name_through_loss() {
    let ns = lossy_netns();
    let (server, port) = start_server(&ns);
    ns.nft(&rules(
        port,
        Loss {
            requests: 20,
            replies: 20,
            duplicated: 60,
        },
    ));
    let names: Vec<String> = (0..20)
        .map(|i| format!("name-{i:02}-{}", "x".repeat(i)))
        .collect();
    let server_addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        CLIENT_BIN,
        "--server",
        &server_addr,
        "--retries",
        "20",
        "--timeout",
        "200ms",
    ];
    args.extend(names.iter().map(String::as_str));
    let out = ns.run_within(&args, Duration::from_secs(60));
    assert_eq!(out.code(), Some(0), "{out:?}");
    let expected: String = names.iter().map(|n| format!("Hello, {n}!\n")).collect();
    assert_eq!(out.stdout_text(), expected, "{out:?}");
    assert!(out.stderr_lines().is_empty(), "{out:?}");

    // The rules did what they say, so the run above had something to
    // overcome: strays of earlier names (at least one of the 20 replies
    // taken is duplicated but with odds 0.4^20 = 1e-8), and loss.
    let duplicated = ns.counter("replies_duplicated");
    assert!(duplicated > 0, "no reply was duplicated");

    let stats = stop_server(server);
    assert_server_saw_what_passed(&ns, &stats);
}

/// Every request dropped: the client gives up after its tries and says so
/// (exit 1, one line on stderr naming the server and the name), and the
/// bench counts every request lost.
#[test]
#[ignore = "needs root, iproute2 and nftables: cargo test --test tests lossy -- --include-ignored"]
fn total_loss_fails_clearly() {
    let ns = lossy_netns();
    let (server, port) = start_server(&ns);
    ns.nft(&rules(
        port,
        Loss {
            requests: 100,
            replies: 100,
            duplicated: 0,
        },
    ));
    let server_addr = format!("127.0.0.1:{port}");
    let out = ns.run(&[
        CLIENT_BIN,
        "--server",
        &server_addr,
        "--retries",
        "2",
        "--timeout",
        "200ms",
        "Michael",
        "Tracy",
    ]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(
        lines[0].contains(&format!("no reply from {server_addr} after 3 tries"))
            && lines[0].contains("\"Michael\""),
        "{out:?}"
    );
    // Three tries of 200 ms each, and not much more.
    assert!(
        out.elapsed >= Duration::from_millis(600) && out.elapsed < Duration::from_secs(5),
        "{out:?}"
    );

    // A bench that got no valid reply still reports, and fails.
    let out = ns.run(&[
        CLIENT_BIN,
        "bench",
        "--server",
        &server_addr,
        "--count",
        "200",
        "--window",
        "64",
        "--timeout",
        "100ms",
        "--warmup",
        "0",
        "--seconds",
        "30",
        "--json",
    ]);
    assert_eq!(out.code(), Some(1), "bench: {out:?}");
    // Nothing came back at all: the line says so, and what that can mean.
    assert!(
        out.stderr_lines()
            .iter()
            .any(|l| l.contains(&format!("no reply from {server_addr}"))
                && l.contains("nothing came back")),
        "{out:?}"
    );
    let json = bench_json(&out.stdout);
    let sent = json_count(&json, "sent");
    assert_eq!(sent, 200, "{json}");
    assert_eq!(json_count(&json, "lost"), sent, "{json}");
    for key in ["replies", "bad", "duplicates", "late"] {
        assert_eq!(json_count(&json, key), 0, "{key}: {json}");
    }

    let stats = stop_server(server);
    assert_eq!(stats.received, 0, "{stats}");
    assert_eq!(
        ns.counter("requests"),
        ns.counter("requests_dropped"),
        "not every request was dropped"
    );
}

/// 20 % of requests and 20 % of replies lost, 10 % of replies duplicated:
/// the bench measures 1 - 0.8 * 0.8 = 36 % lost, within 6 sigma, and counts
/// every request once (replies + lost == sent), the duplicates apart and
/// no reply as bad.
///
/// 5000 requests: sigma = sqrt(5000 * 0.36 * 0.64) = 34, so the bound is
/// 36 % +- 4.1 points; dropping each direction twice (59 % lost) or once
/// in all (20 %) is far outside. A window of 512 keeps the run short
/// while lost requests hold their slot for the 500 ms timeout (about 2 s
/// in all); the timeout is long enough that a reply late only for want of
/// CPU is rare, and such a reply counts as `late` and widens the upper
/// bound by as much.
#[test]
#[ignore = "needs root, iproute2 and nftables: cargo test --test tests lossy -- --include-ignored"]
fn bench_measures_the_injected_loss() {
    let ns = lossy_netns();
    let (server, port) = start_server(&ns);
    let loss = Loss {
        requests: 20,
        replies: 20,
        duplicated: 10,
    };
    ns.nft(&rules(port, loss));
    let server_addr = format!("127.0.0.1:{port}");
    let out = ok(
        ns.run_within(
            &[
                CLIENT_BIN,
                "bench",
                "--server",
                &server_addr,
                "--count",
                "5000",
                "--window",
                "512",
                "--timeout",
                "500ms",
                "--warmup",
                "0.2",
                "--seconds",
                "60",
                "--json",
            ],
            Duration::from_secs(90),
        ),
        "bench",
    );
    let json = bench_json(&out.stdout);
    let get = |key| json_count(&json, key);
    let (sent, replies, lost) = (get("sent"), get("replies"), get("lost"));
    let (bad, duplicates, late) = (get("bad"), get("duplicates"), get("late"));
    assert_eq!(sent, 5000, "{json}");
    assert_eq!(replies + lost, sent, "each request counted once: {json}");
    assert_eq!(bad, 0, "{json}");
    assert!(
        json.get("unsent").is_none(),
        "a closed loop reports no unsent: {json}"
    );

    let p_request = f64::from(loss.requests) / 100.0;
    let p_reply = f64::from(loss.replies) / 100.0;
    let p_lost = 1.0 - (1.0 - p_request) * (1.0 - p_reply);
    // A late reply is a request answered but counted lost: it can only
    // raise `lost`, so it widens the bound upward alone.
    let mean = sent as f64 * p_lost;
    let bound = SIGMAS * (sent as f64 * p_lost * (1.0 - p_lost)).sqrt();
    assert!(
        lost as f64 >= mean - bound && lost as f64 <= mean + bound + late as f64,
        "lost {lost} of {sent}, expected {mean:.0} +- {bound:.0} (+ {late} late): {json}"
    );

    // The strays were there, and none was taken for another request.
    let duplicated = ns.counter("replies_duplicated");
    assert!(
        duplicates > 0 && duplicates <= duplicated,
        "{duplicated} replies duplicated by the rules, {duplicates} counted: {json}"
    );

    // The rules dropped what they say, over the whole run (warm-up too).
    assert_binomial(
        "requests dropped by the rules",
        ns.counter("requests_dropped"),
        ns.counter("requests"),
        p_request,
    );
    assert_binomial(
        "replies dropped by the rules",
        ns.counter("replies_dropped"),
        ns.counter("replies"),
        p_reply,
    );

    let stats = stop_server(server);
    assert_server_saw_what_passed(&ns, &stats);
}
