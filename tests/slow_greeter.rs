//! `examples/slow_greeter.rs`, the server `benches/compare.sh` runs as
//! "ours" for per-request work: it greets through its pool of sleeping
//! workers, and refuses a bad flag with one line and exit code 2.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::*;

/// `target/<profile>/examples/slow_greeter`, beside the directory of the
/// server binary that Cargo built for these tests (`cargo test` builds the
/// examples too).
fn example() -> PathBuf {
    let server = PathBuf::from(SERVER_BIN);
    let dir = server
        .parent()
        .expect("the server binary is in a directory");
    let examples = dir.join("examples");
    let path = examples.join(format!("slow_greeter{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        return path;
    }
    // Cargo builds it as `slow_greeter-HASH` and links the plain name to
    // it; the link alone may be gone.
    std::fs::read_dir(&examples)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("slow_greeter-") && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| {
            panic!(
                "{} was not built: run `cargo test` (which builds the examples) or \
                 `cargo build --example slow_greeter` first",
                path.display()
            )
        })
}

#[test]
fn greets_through_sleeping_workers() {
    let mut cmd = command(example());
    cmd.args([
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "4",
        "--block-us",
        "2000",
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
    ] {
        let out = run_with(command(example()).args(args), PATIENCE);
        let stderr = &out.stderr;
        assert_eq!(out.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr:?}");
    }
}
