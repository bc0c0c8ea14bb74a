//! Graceful shutdown: in-process while idle and under a flood, and the
//! server binary under SIGINT and SIGTERM.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    self, ask, assert_balanced, config, parse_stats, recv_within, server_proc, shutdown_within,
    socket_on, within, Flood, PATIENCE, V4,
};
use udp_greeter::{Request, Server};

#[test]
fn idle() {
    let server = Server::bind(config(2, 64)).unwrap();
    // Let the receiver settle into its blocking read with nothing to read.
    thread::sleep(Duration::from_millis(120));
    let started = Instant::now();
    let stats = shutdown_within(server, Duration::from_secs(5)).unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "idle shutdown took {took:?}");
    assert_eq!(stats, udp_greeter::Snapshot::default());
}

/// A stop with a deadline returns by then past a handler that blocks for
/// 30 s, naming its worker and how long it has been in its handler; the
/// worker is left to finish, and does once released.
#[test]
fn shutdown_within_a_deadline_past_a_blocked_handler() {
    let (entered, in_handler) = crossbeam_channel::bounded::<usize>(2);
    let (release, released) = crossbeam_channel::bounded::<()>(0);
    let server = Server::builder(config(2, 16))
        .handler_per_worker(|worker| {
            let (entered, released) = (entered.clone(), released.clone());
            move |request: &Request<'_>, reply: &mut Vec<u8>| {
                if request.payload == b"block" {
                    let _ = entered.send(worker);
                    let _ = released.recv_timeout(Duration::from_secs(30));
                }
                reply.extend_from_slice(b"done");
            }
        })
        .start()
        .unwrap();
    let addr = server.local_addr();
    let sock = socket_on(V4);
    sock.send_to(b"block", addr).unwrap();
    let worker = in_handler
        .recv_timeout(PATIENCE)
        .expect("the handler blocks");
    // The other worker still answers.
    assert_eq!(ask(&sock, addr, b"x"), b"done");

    let deadline = Duration::from_millis(300);
    let started = Instant::now();
    let err = within(PATIENCE, "shutdown_within", move || {
        server.shutdown_within(deadline)
    })
    .unwrap_err();
    assert!(started.elapsed() >= deadline);
    assert!(err.is_overdue(), "{err}");
    let msg = err.to_string();
    let named = format!("not stopped within 300ms: worker-{worker} in its handler for ");
    let time = msg
        .strip_prefix(&named)
        .and_then(|rest| rest.strip_suffix(" s"))
        .unwrap_or_else(|| panic!("{msg}"));
    // It entered before the stop began: at least the deadline, to the
    // clock's few milliseconds.
    assert!(time.parse::<f64>().unwrap() >= 0.25, "{msg}");

    // Released, the worker answers and ends: its copy of the socket closes
    // and the port binds again.
    drop(release);
    let (reply, _) = recv_within(&sock, PATIENCE).expect("the blocked request's reply");
    assert_eq!(reply, b"done");
    let free = Instant::now() + PATIENCE;
    while std::net::UdpSocket::bind(addr).is_err() {
        assert!(Instant::now() < free, "{addr} still bound");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The binary's stop has a deadline (`--stop-timeout`): past it, it exits
/// 1 with the counters so far and what held it up. Here its one worker is
/// stuck writing a log line to a FIFO nobody reads.
#[cfg(target_os = "linux")]
#[test]
fn binary_stop_timeout_exits_1() {
    let mut log = support::StalledLog::new();
    let (mut server, port) = server_proc(&[
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--stop-timeout",
        "500ms",
        "--log-file",
        log.path(),
    ]);
    support::wait_signal_handlers(server.pid());
    log.read_until("Bind UDP on");
    log.stall();
    socket_on(V4)
        .send_to(b"stuck", SocketAddr::from((V4, port)))
        .unwrap();
    // On stderr first; the same line then blocks the worker on the FIFO.
    server.line_with("Received from");
    server.signal(libc::SIGTERM);
    let status = server.finish(PATIENCE);
    let text = server.stderr_text();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("\nstats (cut short): received=1 "), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: not stopped within 500ms: no worker is in its handler"),
        "{text}"
    );
}

#[test]
fn flooded() {
    let mut queue_full = 0;
    for round in 0..20 {
        let server = Server::bind(config(2, 4)).unwrap();
        let addr = server.local_addr();
        let flood = Flood::start(addr, V4, 8, b"flood", 200_000, Duration::from_secs(5));
        // Shut down in the middle of the flood, once it has reached the server.
        let deadline = Instant::now() + PATIENCE;
        while server.stats().received < 200 {
            assert!(
                Instant::now() < deadline,
                "round {round}: the flood never arrived"
            );
            thread::sleep(Duration::from_millis(1));
        }
        let stats = shutdown_within(server, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let sent = flood.stop();
        assert!(stats.is_balanced(), "round {round}: {stats}");
        assert_eq!(stats.worker_panics, 0, "round {round}: {stats}");
        assert!(
            stats.received <= sent,
            "round {round}: {stats}, sent {sent}"
        );
        queue_full += stats.dropped_queue_full;
    }
    // A queue of 4 under 8 flooding threads overflows; otherwise this test
    // did not test what it says.
    assert!(queue_full > 0);
}

/// The server binary, asked to stop by `sig`, logs its final counters and
/// exits 0 within 2 s.
fn stops_on(sig: libc::c_int) {
    let (mut server, port) = server_proc(&["--bind", "127.0.0.1:0", "--workers", "2"]);
    support::wait_signal_handlers(server.pid());
    let sock = socket_on(V4);
    let addr = SocketAddr::new(V4, port);
    assert_eq!(ask(&sock, addr, b"Michael"), b"Hello, Michael!");
    assert_eq!(ask(&sock, addr, b"Tracy"), b"Hello, Tracy!");
    server.signal(sig);
    let status = server.wait_exit(Duration::from_secs(2)).unwrap_or_else(|| {
        panic!(
            "still running 2 s after the signal:\n{}",
            server.stderr_text()
        )
    });
    let log = server.stderr_text();
    assert_eq!(status.code(), Some(0), "{log}");
    let stats = parse_stats(&log).unwrap_or_else(|| panic!("no stats line:\n{log}"));
    assert_eq!(stats.received, 2, "{log}");
    assert_eq!(stats.replied, 2, "{log}");
    assert!(stats.is_balanced(), "{log}");
}

/// A supervisor may stop the server as soon as it reports itself bound:
/// SIGTERM right after the `Bind UDP on` line must still shut it down
/// gracefully (a `stats:` line, exit 0), not kill it outright.
#[test]
fn sigterm_at_once() {
    for attempt in 0..10 {
        let (mut server, _) = server_proc(&["--bind", "127.0.0.1:0"]);
        server.signal(libc::SIGTERM);
        let status = server.finish(Duration::from_secs(2));
        let log = server.stderr_text();
        assert_eq!(
            status.code(),
            Some(0),
            "attempt {attempt}: {status:?}\n{log}"
        );
        assert!(
            parse_stats(&log).is_some(),
            "attempt {attempt}: no stats line\n{log}"
        );
    }
}

/// A SIGTERM or SIGINT at any moment of the start (before the handler is
/// wired, while the socket binds, while the workers start, just after
/// `Bind UDP on`) ends the process: by the signal's default action before
/// the handler is in place, gracefully after. Never a server that keeps
/// running, and never the exit of a second signal, 130, for a first one.
#[cfg(unix)]
#[test]
fn a_signal_at_any_moment_of_the_start_ends_it() {
    use std::os::unix::process::ExitStatusExt;

    // The moments spread over one and a half starts as long as this one,
    // each shifted at random within its share.
    let spawned = Instant::now();
    let (mut first, _) = server_proc(&["--bind", "127.0.0.1:0"]);
    let start = spawned.elapsed();
    first.stop();
    let seed = seed();
    let mut random = Random(seed);
    const ATTEMPTS: u32 = 40;
    let share = start * 3 / 2 / ATTEMPTS;
    let (mut graceful, mut default) = (0, 0);
    for attempt in 0..ATTEMPTS {
        let sig = [libc::SIGTERM, libc::SIGINT][attempt as usize % 2];
        let at = share * attempt + share.mul_f64(random.fraction());
        let what = format!("attempt {attempt} (seed {seed}), signal {sig} {at:?} into the start");
        let mut server = support::Proc::spawn(
            support::command(support::SERVER_BIN).args(["--bind", "127.0.0.1:0"]),
        );
        thread::sleep(at);
        server.signal(sig);
        let status = server.wait_exit(PATIENCE).unwrap_or_else(|| {
            panic!(
                "{what}: still running after {PATIENCE:?}:\n{}",
                server.stderr_text()
            )
        });
        let log = server.stderr_text();
        match (status.code(), status.signal()) {
            (Some(0), _) => {
                assert!(parse_stats(&log).is_some(), "{what}: no stats line:\n{log}");
                assert!(!log.contains("cut short"), "{what}:\n{log}");
                graceful += 1;
            }
            (None, Some(s)) if s == sig => default += 1,
            _ => panic!("{what}: {status:?}\n{log}"),
        }
    }
    eprintln!("seed {seed}: {graceful} graceful stops, {default} by the default action");
}

/// A seed for [`Random`], from the clock: each run tries other moments,
/// and says which, so that a failure can be told apart from the next.
fn seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(1, |d| d.as_nanos() as u64)
}

/// SplitMix64: enough to spread moments, with no crate for it.
struct Random(u64);

impl Random {
    /// A number in [0, 1).
    fn fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
    }
}

#[test]
fn sigint() {
    stops_on(libc::SIGINT);
}

#[test]
fn sigterm() {
    stops_on(libc::SIGTERM);
}

/// Under a flood, SIGTERM still ends in a `stats:` line whose counters
/// balance exactly.
#[test]
fn sigterm_flooded() {
    let (mut server, port) =
        server_proc(&["--bind", "127.0.0.1:0", "--workers", "1", "--queue", "64"]);
    support::wait_signal_handlers(server.pid());
    let addr = SocketAddr::new(V4, port);
    let flood = Flood::start(addr, V4, 4, b"flood", 1_000_000, Duration::from_secs(10));
    thread::sleep(Duration::from_millis(500));
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(2));
    let sent = flood.stop();
    let log = server.stderr_text();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    let stats = parse_stats(&log).unwrap_or_else(|| panic!("no stats line:\n{log}"));
    eprintln!("sent {sent}; {stats}");
    assert!(stats.received > 0, "{log}");
    assert!(stats.received <= sent, "{log}");
    assert_balanced(&stats);
    assert_eq!(stats.worker_panics, 0, "{log}");
}

/// A second SIGINT while the first one's shutdown is still running exits at
/// once with 130.
///
/// To make "still running" certain rather than likely, the server's stderr
/// is a pipe the test filled before starting it: its receiver's first
/// warning blocks in write(2), so the shutdown the first SIGINT asks for
/// cannot finish. The first signal alone must not end the process; the
/// second must.
#[cfg(target_os = "linux")]
#[test]
fn second_sigint() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::Stdio;

    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by no one else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    fill(&write_end);

    let mut cmd = support::command(support::SERVER_BIN);
    cmd.args([
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--max-datagram",
        "16",
        "--recv-buffer",
        "0",
        // Nothing is logged before the first warning, and neither the
        // signal handler's info line nor anything else can block.
        "--log-level",
        "warn",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::from(write_end));
    let child = cmd.spawn().expect("start the server");
    drop(cmd);
    let mut server = support::Proc::adopt(child);
    let port = support::wait_udp_port(&mut server);
    support::wait_signal_handlers(server.pid());

    // One datagram over --max-datagram: the receiver warns at once.
    socket_on(V4)
        .send_to(&[b'x'; 17], SocketAddr::new(V4, port))
        .unwrap();
    wait_receiver_in_write(server.pid());

    server.signal(libc::SIGINT);
    thread::sleep(Duration::from_millis(300));
    assert!(
        server.alive(),
        "exited on the first SIGINT while its shutdown could not finish"
    );
    // 300 ms apart: signals of one kind do not queue, so two sent at once
    // could arrive as one.
    server.signal(libc::SIGINT);
    let status = server.finish(Duration::from_secs(2));
    assert_eq!(status.code(), Some(130), "{status:?}");
    // Held open until now: with no reader left, the server's write would
    // fail (EPIPE) instead of blocking.
    drop(read_end);
}

/// Fills the pipe behind `fd` to the last byte, leaving it blocking.
#[cfg(target_os = "linux")]
fn fill(fd: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl and write on a descriptor we own, with a live buffer.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        assert!(flags >= 0);
        assert_eq!(libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
        let page = [b'#'; 4096];
        for chunk in [&page[..], &page[..1]] {
            while libc::write(raw, chunk.as_ptr().cast(), chunk.len()) > 0 {}
            assert_eq!(
                std::io::Error::last_os_error().kind(),
                std::io::ErrorKind::WouldBlock
            );
        }
        // The child shares this open file: it must block, not fail.
        assert_eq!(libc::fcntl(raw, libc::F_SETFL, flags), 0);
    }
}

/// Waits until the thread named `receiver` of `pid` is blocked in write(2)
/// (the first number in /proc/PID/task/TID/syscall).
#[cfg(target_os = "linux")]
fn wait_receiver_in_write(pid: i32) {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = String::new();
    loop {
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim() != "receiver" {
                continue;
            }
            seen = std::fs::read_to_string(dir.join("syscall"))
                .unwrap_or_else(|e| format!("cannot read: {e}"));
            let nr = seen
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<i64>().ok());
            if nr == Some(libc::SYS_write) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the receiver of {pid} never blocked writing its warning; its syscall: {seen:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}
