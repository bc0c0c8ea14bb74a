//! Idle costs nothing: once traffic stops, every thread of the server binary
//! goes back to sleep, whatever kept it looking for work while busy, and
//! nothing wakes it until a datagram, a scrape or a signal comes.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use crate::support::{
    ask, bench_json, json_count, run, server_proc, socket_for, CLIENT_BIN, PATIENCE, V4,
};

/// CPU time all threads of the process have used, in nanoseconds, from
/// each thread's schedstat (finer than the 10 ms ticks of /proc/PID/stat).
fn cpu_time(pid: i32) -> Duration {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("schedstat");
        // A thread may end between the listing and the read.
        if let Ok(line) = std::fs::read_to_string(path) {
            total += line
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    Duration::from_nanos(total)
}

/// How many times the process's threads have gone to sleep of their own
/// accord (voluntary context switches), summed over every thread.
fn sleeps(pid: i32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("status");
        // A thread may end between the listing and the read.
        let Ok(status) = std::fs::read_to_string(path) else {
            continue;
        };
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map(|n| n.trim().parse::<u64>().unwrap())
            .unwrap_or(0);
    }
    total
}

#[test]
fn idle() {
    after_load(&["--bind", "127.0.0.1:0"]);
}

#[test]
fn idle_with_metrics_and_stats() {
    // The stats thread sleeps through its interval; the metrics thread
    // until a scrape comes.
    after_load(&[
        "--bind",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--stats-interval",
        "1h",
    ]);
}

/// Runs load through a server started with `args`, then checks that it
/// uses under 1 % of a core and that no thread wakes while nothing comes.
fn after_load(args: &[&str]) {
    let (mut server, port) = server_proc(args);
    let to = SocketAddr::from((V4, port));
    let sock = socket_for(to);

    // Load that fills whole batches (the bench client sends in runs of
    // 32), then a lone request: every wait policy has run.
    let out = run(
        CLIENT_BIN,
        &[
            "bench",
            "--server",
            &to.to_string(),
            "--window",
            "256",
            "--seconds",
            "0.5",
            "--warmup",
            "0",
            "--count",
            "200000",
            "--json",
        ],
        PATIENCE,
    );
    assert!(out.status.success(), "{out:?}");
    let report = bench_json(&out.stdout);
    assert!(json_count(&report, "replies") > 0, "{report}");
    assert_eq!(ask(&sock, to, b"lone"), b"Hello, lone!");

    // Every wait awake ends within a millisecond; give it ample time.
    thread::sleep(Duration::from_millis(200));
    let before = cpu_time(server.pid());
    let window = Duration::from_secs(2);
    thread::sleep(window);
    let used = cpu_time(server.pid()) - before;
    assert!(
        used <= window / 100,
        "{used:?} of CPU in {window:?} with no traffic"
    );
    // No thread polls: not for shutdown, not for a scrape, not for stats.
    // Two sleeps are allowed for what the kernel may do to any process.
    let before = sleeps(server.pid());
    let window = Duration::from_secs(3);
    thread::sleep(window);
    let woke = sleeps(server.pid()) - before;
    assert!(
        woke <= 2,
        "threads woke {woke} times in {window:?} with no traffic"
    );

    server.signal(libc::SIGTERM);
    assert!(
        server.finish(PATIENCE).success(),
        "{}",
        server.stderr_text()
    );
}
