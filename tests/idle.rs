//! Idle costs nothing: once traffic stops, every thread of the server binary
//! goes back to sleep, whatever kept it looking for work while busy.

#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use support::{ask, run, server_proc, socket_for, CLIENT_BIN, PATIENCE, V4};

/// CPU time the process has used (user + system), from /proc.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold
    // spaces; utime and stime are the 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn idle() {
    let (mut server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
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
            "--json",
        ],
        PATIENCE,
    );
    assert!(out.status.success(), "{out:?}");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!report.contains("\"replies\":0,"), "{report}");
    assert_eq!(ask(&sock, to, b"lone"), b"Hello, lone!");

    // Every wait awake ends within a millisecond; give it ample time.
    thread::sleep(Duration::from_millis(200));
    let before = cpu_time(server.pid());
    let window = Duration::from_secs(2);
    thread::sleep(window);
    let used = cpu_time(server.pid()) - before;
    // Under 1 % of a core: the 50 ms read timeout that lets the receiver
    // see a shutdown is all that should run.
    assert!(
        used <= window / 100,
        "{used:?} of CPU in {window:?} with no traffic"
    );

    server.signal(libc::SIGTERM);
    assert!(
        server.finish(PATIENCE).success(),
        "{}",
        server.stderr_text()
    );
}
