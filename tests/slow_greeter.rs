//! `examples/slow_greeter.rs`, the server `benches/compare.sh` runs as
//! "ours" for per-request work: it greets through its pool of sleeping
//! workers, and refuses a bad flag with one line and exit code 2.

use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn greets_through_sleeping_workers() {
    let mut cmd = command(example("slow_greeter"));
    cmd.args([
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "4",
        "--block-us",
        "2000",
        "--queue-full",
        "wait",
    ]);
    // Killed when dropped: it stops only when killed.
    let (_server, port) = server_with(&mut cmd);
    let to = std::net::SocketAddr::from((V4, port));
    let sock = socket_for(to);
    let names: [&[u8]; 3] = [b"Michael", b"Tracy", b"Sarah"];
    // Sent at once: four workers take them together.
    let start = Instant::now();
    for name in names {
        sock.send_to(name, to).unwrap();
    }
    let mut replies = Vec::new();
    for _ in names {
        let (reply, _) =
            recv_within(&sock, PATIENCE).unwrap_or_else(|| panic!("no reply within {PATIENCE:?}"));
        replies.push(reply);
    }
    // The sleep is really taken: a lower bound, which no load can break.
    assert!(start.elapsed() >= Duration::from_millis(2));
    // Workers may finish in any order.
    replies.sort();
    let mut want: Vec<Vec<u8>> = names.iter().map(|n| udp_greeter::greet(n)).collect();
    want.sort();
    assert_eq!(replies, want);
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    for args in [
        &["--nope"][..],
        &["--workers", "0"],
        &["--workers"],
        &["--block-us", "soon"],
        &["--spin-us", "-1"],
        &["--bind", "nowhere"],
        &["--queue-full", "block"],
    ] {
        let out = run_with(command(example("slow_greeter")).args(args), PATIENCE);
        let stderr = &out.stderr;
        assert_eq!(out.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr:?}");
    }
}
