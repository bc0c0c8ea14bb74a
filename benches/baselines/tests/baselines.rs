//! Each baseline greets, with and without per-request work, and refuses a
//! bad command line with one line and exit code 2. Behaviour, not speed:
//! `benches/compare.sh` measures them.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const STD: &str = env!("CARGO_BIN_EXE_baseline_std");
const BATCHED: &str = env!("CARGO_BIN_EXE_baseline_batched");
const TOKIO: &str = env!("CARGO_BIN_EXE_baseline_tokio");
const HANDOFF: &str = env!("CARGO_BIN_EXE_baseline_handoff");
const THREADS: &str = env!("CARGO_BIN_EXE_baseline_threads");

/// Every wait on a child or a reply ends within this.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A running baseline, killed when dropped so that a failed test leaves no
/// server behind.
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

/// Starts `bin` on 127.0.0.1:0 and reads the port it reports.
fn start(bin: &str, args: &[&str]) -> Running {
    let mut child = Command::new(bin)
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    // The first line on a thread of its own, so that a server that never
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
        .unwrap_or_else(|_| panic!("{bin} {args:?}: no line on stdout within {TIMEOUT:?}"));
    running.port = line
        .strip_prefix("Bind UDP on ")
        .and_then(|rest| rest.trim_end().strip_suffix("..."))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("{bin} {args:?}: expected `Bind UDP on PORT...`, got {line:?}"));
    running
}

/// Sends `name` and returns the reply and how long it took.
fn greet(server: &Running, name: &[u8]) -> (Vec<u8>, Duration) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(("127.0.0.1", server.port)).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let start = Instant::now();
    socket.send(name).unwrap();
    let mut buf = [0u8; 1024];
    let n = loop {
        // A read with a timeout fails with EINTR when the process was
        // stopped and continued meanwhile (signal(7)), as a busy shared
        // machine's tools may do: that is no answer yet.
        match socket.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r.unwrap_or_else(|e| panic!("no reply within {TIMEOUT:?}: {e}")),
        }
    };
    (buf[..n].to_vec(), start.elapsed())
}

fn check(bin: &str, args: &[&str]) {
    let server = start(bin, args);
    for name in [&b"Michael"[..], b"", b"\xff\x00"] {
        let (reply, _) = greet(&server, name);
        let mut want = b"Hello, ".to_vec();
        want.extend_from_slice(name);
        want.push(b'!');
        assert_eq!(reply, want, "{bin} {args:?}");
    }
}

/// The work is really done: a request waits at least as long as asked
/// (a lower bound only, which no load on the machine can break).
fn check_slow(bin: &str, args: &[&str]) {
    let server = start(bin, args);
    let (reply, took) = greet(&server, b"Tracy");
    assert_eq!(reply, b"Hello, Tracy!", "{bin} {args:?}");
    assert!(
        took >= Duration::from_millis(20),
        "{bin} {args:?}: answered in {took:?}"
    );
}

#[test]
fn std_greets() {
    check(STD, &[]);
    check(STD, &["--block-us", "1000"]);
    check(STD, &["--spin-us", "50"]);
    check_slow(STD, &["--block-us", "20000"]);
    check_slow(STD, &["--spin-us", "20000"]);
}

#[test]
fn batched_greets() {
    check(BATCHED, &[]);
    check(BATCHED, &["--block-us", "1000"]);
    check(BATCHED, &["--spin-us", "50"]);
    check_slow(BATCHED, &["--block-us", "20000"]);
    check_slow(BATCHED, &["--spin-us", "20000"]);
}

#[test]
fn tokio_greets() {
    check(TOKIO, &[]);
    check(TOKIO, &["--block-us", "1000"]);
    check(TOKIO, &["--spin-us", "50"]);
    check_slow(TOKIO, &["--block-us", "20000"]);
    check_slow(TOKIO, &["--spin-us", "20000"]);
}

#[test]
fn handoff_greets() {
    check(HANDOFF, &[]);
    check(HANDOFF, &["--block-us", "1000"]);
    check_slow(HANDOFF, &["--spin-us", "20000"]);
}

#[test]
fn threads_greets() {
    check(THREADS, &[]);
    check(THREADS, &["--threads", "16", "--block-us", "1000"]);
    check(THREADS, &["--threads", "2", "--spin-us", "50"]);
    check_slow(THREADS, &["--block-us", "20000"]);
    check_slow(THREADS, &["--threads", "4", "--spin-us", "20000"]);
}

/// Four threads sleep through four requests side by side: one thread would
/// answer the last after 2 s, four all after 0.5 s. Sleeping threads need
/// no CPU, so a loaded machine leaves the 1.5 s between the two.
#[test]
fn threads_answer_side_by_side() {
    let server = start(THREADS, &["--threads", "4", "--block-us", "500000"]);
    let start = Instant::now();
    let askers: Vec<_> = (0..4)
        .map(|i| {
            let port = server.port;
            thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.set_read_timeout(Some(TIMEOUT)).unwrap();
                socket
                    .send_to(format!("n{i}").as_bytes(), ("127.0.0.1", port))
                    .unwrap();
                let mut buf = [0u8; 64];
                let n = socket.recv(&mut buf).expect("a reply");
                assert_eq!(&buf[..n], format!("Hello, n{i}!").as_bytes());
            })
        })
        .collect();
    for asker in askers {
        asker.join().unwrap();
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "four answered in {took:?}");
}

#[test]
fn tokio_spawn_blocking_greets() {
    check(TOKIO, &["--spawn-blocking"]);
    check(TOKIO, &["--spawn-blocking", "--block-us", "1000"]);
    check(TOKIO, &["--spawn-blocking", "--spin-us", "50"]);
    check_slow(TOKIO, &["--spawn-blocking", "--block-us", "20000"]);
    check_slow(TOKIO, &["--spawn-blocking", "--spin-us", "20000"]);
}

/// Waits for `child` to exit, killing it if it has not within [`TIMEOUT`].
fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    let cases: &[(&str, &[&str])] = &[
        (STD, &["--nope"]),
        (HANDOFF, &["--nope"]),
        (STD, &["--block-us", "soon"]),
        (STD, &["--spawn-blocking"]),
        (STD, &["--threads", "2"]),
        (THREADS, &["--threads", "0"]),
        (THREADS, &["--spawn-blocking"]),
        (BATCHED, &["--spin-us"]),
        (BATCHED, &["--bind", "nowhere"]),
        (TOKIO, &["--block-us", "-5"]),
        (TOKIO, &["--spawn-blocking", "extra"]),
    ];
    for (bin, args) in cases {
        let mut child = Command::new(bin)
            .args(*args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait(&mut child);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status.code(), Some(2), "{bin} {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{bin} {args:?}: {stderr:?}");
        assert!(stderr.starts_with("error: "), "{bin} {args:?}: {stderr:?}");
        assert!(out.stdout.is_empty(), "{bin} {args:?}");
    }
}
