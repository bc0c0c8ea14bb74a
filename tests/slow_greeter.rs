//! `examples/slow_greeter.rs`, the server `benches/compare.sh` runs as
//! "ours" for per-request work: it greets through its pool of sleeping
//! workers, and refuses a bad flag with one line and exit code 2.
//!
//! Self-contained: `cargo test` builds the examples, and this finds the
//! example next to the server binary.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Every wait on the example or a reply ends within this.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `target/<profile>/examples/slow_greeter`, beside the directory of the
/// server binary that Cargo built for these tests.
fn example() -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_udp-greeter"));
    let dir = server
        .parent()
        .expect("the server binary is in a directory");
    let path = dir
        .join("examples")
        .join(format!("slow_greeter{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} was not built: run `cargo test` (which builds the examples) or \
         `cargo build --example slow_greeter` first",
        path.display()
    );
    path
}

/// The running example, killed when dropped so that a failed test leaves no
/// server behind (it stops only when killed).
struct Running {
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(example())
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start slow_greeter");
    let stdout = child.stdout.take().expect("stdout is piped");
    // The first line on a thread of its own, so that an example that never
    // prints it fails the test instead of hanging it.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut running = Running { child, port: 0 };
    let line = rx
        .recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("no line on stdout within {TIMEOUT:?}"));
    running.port = line
        .strip_prefix("Bind UDP on ")
        .and_then(|rest| rest.trim_end().strip_suffix("..."))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("expected `Bind UDP on PORT...`, got {line:?}"));
    running
}

#[test]
fn greets_through_sleeping_workers() {
    let server = start(&["--workers", "4", "--block-us", "2000"]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(("127.0.0.1", server.port)).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let names: [&[u8]; 3] = [b"Michael", b"Tracy", b"Sarah"];
    // Sent at once: four workers take them together.
    let start = Instant::now();
    for name in names {
        socket.send(name).unwrap();
    }
    let mut replies = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in names {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no reply within {TIMEOUT:?}: {e}"));
        replies.push(buf[..n].to_vec());
    }
    // The sleep is really taken: a lower bound, which no load can break.
    assert!(start.elapsed() >= Duration::from_millis(2));
    // Workers may finish in any order.
    replies.sort();
    let mut want: Vec<Vec<u8>> = names
        .iter()
        .map(|n| [&b"Hello, "[..], n, b"!"].concat())
        .collect();
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
        let mut child = Command::new(example())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start slow_greeter");
        let deadline = Instant::now() + TIMEOUT;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?}: still running after {TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr:?}");
    }
}
