//! The server binary under a service manager and across an upgrade: the
//! socket it is passed (LISTEN_FDS), what it tells NOTIFY_SOCKET and when,
//! its watchdog pings, and SIGUSR2, which runs the binary again on the same
//! socket and stops the old process once the new one serves, losing
//! nothing; or, when the new one fails, keeps the old one serving.
//!
//! python3 is required, as for the interop tests: a few lines of it reap
//! the processes an upgrade leaves, which are no longer the test's
//! children, to report how each one exited.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use udp_greeter::service::pass_socket;
use udp_greeter::Snapshot;

use crate::support::*;

/// The server's line when it serves a socket it was passed.
const PASSED: &str = "serving the socket the service manager passed";

/// An address on no interface of this host (TEST-NET-2): a server that
/// binds it fails, so one that serves shows it did not bind `--bind`.
const UNBINDABLE: &str = "198.51.100.1:9999";

#[test]
fn serves_the_socket_passed() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    // The buffer the socket has, not the one --recv-buffer asks for.
    let buffer = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
    let mut cmd = command(SERVER_BIN);
    cmd.args(["--bind", UNBINDABLE, "--reuse-port", "--recv-buffer", "1"]);
    pass_socket(&mut cmd, &socket, None).unwrap();
    drop(socket);
    let (mut p, port) = server_with(&mut cmd);
    assert_eq!(port, addr.port());
    assert_eq!(ask(&socket_for(addr), addr, b"Michael"), b"Hello, Michael!");
    let line = p.line_with(PASSED);
    assert!(
        line.ends_with(&format!(
            "{PASSED} ({addr}, receive buffer {buffer} bytes); --bind, --reuse-port and \
             --recv-buffer are not used"
        )),
        "{line}"
    );
    assert_eq!(p.stop().replied, 1);
}

/// A server stopped by SIGTERM leaves the socket it was passed as it
/// found it: the next process passed the same socket answers what arrived
/// between the two, and what comes after.
#[test]
fn a_stopped_servers_socket_serves_the_next_process() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let client = socket_for(addr);
    let start = |socket: &UdpSocket| {
        let mut cmd = command(SERVER_BIN);
        pass_socket(&mut cmd, socket, None).unwrap();
        server_with(&mut cmd).0
    };
    let mut first = start(&socket);
    assert_eq!(ask(&client, addr, b"one"), b"Hello, one!");
    assert_eq!(first.stop().replied, 1);
    client.send_to(b"between", addr).unwrap();
    let mut second = start(&socket);
    let (reply, _) = recv_within(&client, PATIENCE).expect("the datagram sent between");
    assert_eq!(reply, b"Hello, between!");
    assert_eq!(ask(&client, addr, b"two"), b"Hello, two!");
    assert_eq!(second.stop().replied, 2);
}

/// A socket passed on after it overflowed while nobody read it (a
/// restart's gap): the new process says at start how many datagrams the
/// kernel had dropped there, and counts none of them as its own.
#[test]
fn drops_before_the_start_are_said_and_not_counted() {
    const N: u64 = 100;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&socket)
        .set_recv_buffer_size(4096)
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let client = socket_on(V4);
    for _ in 0..N {
        client.send_to(&[b'x'; 512], addr).unwrap();
    }
    let mut cmd = command(SERVER_BIN);
    pass_socket(&mut cmd, &socket, None).unwrap();
    drop(socket);
    let (mut p, _) = server_with(&mut cmd);
    let line = p.line_with("datagrams at this socket before this process started");
    let before: u64 = line
        .split("the kernel had dropped ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"));
    assert!(before > 0, "{line}");
    // What the socket kept is read, and answered.
    let kept = N - before;
    wait_received(&p, "127.0.0.1", kept as usize);
    let stats = p.stop();
    assert_eq!((stats.received, stats.socket_dropped), (kept, 0), "{stats}");
}

#[test]
fn tells_the_manager_it_is_ready_then_stopping() {
    let manager = Manager::new();
    let (mut p, port) = server_with(
        command(SERVER_BIN)
            .args(["--bind", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", manager.path()),
    );
    let ready = manager.next(PATIENCE).expect("READY=1");
    assert_eq!(
        ready,
        format!("READY=1\nSTATUS=serving on 127.0.0.1:{port}")
    );
    let addr = SocketAddr::new(V4, port);
    assert_eq!(ask(&socket_for(addr), addr, b"Tracy"), b"Hello, Tracy!");
    p.stop();
    let mut rest = Vec::new();
    while let Some(m) = manager.next(Duration::from_millis(200)) {
        rest.push(m);
    }
    assert_eq!(
        rest,
        ["STOPPING=1\nSTATUS=stopping: answering what is queued"]
    );
}

#[test]
fn pings_the_watchdog() {
    let manager = Manager::new();
    let (mut p, _) = server_with(
        command(SERVER_BIN)
            .args(["--bind", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", manager.path())
            .env("WATCHDOG_USEC", "200000"),
    );
    assert!(manager.next(PATIENCE).unwrap().starts_with("READY=1\n"));
    // Every 100 ms: at least 3 in a second even on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut pings = 0;
    while let Some(m) = manager.next(deadline.saturating_duration_since(Instant::now())) {
        pings += usize::from(m.starts_with("WATCHDOG=1\n"));
        if Instant::now() >= deadline {
            break;
        }
    }
    assert!(pings >= 3, "{pings} pings in a second");
    p.stop();
}

#[test]
fn malformed_service_variables_are_refused() {
    let manager = Manager::new();
    let notify = manager.path();
    let notify = notify.to_str().unwrap();
    for (env, words) in [
        (
            vec![("NOTIFY_SOCKET", "relative/notify.sock")],
            "cannot use NOTIFY_SOCKET: notify socket \"relative/notify.sock\"",
        ),
        (
            vec![("NOTIFY_SOCKET", notify), ("WATCHDOG_USEC", "soon")],
            "WATCHDOG_USEC is \"soon\", not a number of microseconds",
        ),
    ] {
        let out = run_env(SERVER_BIN, &env, &["--bind", "127.0.0.1:0"]);
        out.refusal(&[words]);
    }
}

// ---------------------------------------------------------------------------
// Upgrades

/// Runs argv[1:] as a child subreaper, so that the processes an upgrade
/// starts become its children when their parent exits: prints `started
/// PID` for the first and `exited PID CODE` for each that ends, and ends
/// once none is left.
const REAPER: &str = r#"
import ctypes, os, subprocess, sys
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
first = subprocess.Popen(sys.argv[1:])
print("started", first.pid, flush=True)
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    print("exited", pid, os.waitstatus_to_exitcode(status), flush=True)
"#;

/// The servers an upgrade chain has run, killed when the test ends
/// whatever happened: once re-executed they are no longer the test's
/// children, and no `Proc` kills them.
#[derive(Default)]
struct Pids(Vec<i32>);

impl Pids {
    fn learn(&mut self, pid: i32) {
        self.0.push(pid);
    }
}

impl Drop for Pids {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // Only a server of ours: the number may have been reused.
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.starts_with("udp-greeter") {
                // SAFETY: kill(2) takes numbers; a process gone is ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) takes numbers and touches no memory.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// The pid of the `n`-th (from 1) `upgrade: PID N serves` line of `p`,
/// waiting for it at most [`PATIENCE`].
fn nth_upgrade(p: &Proc, n: usize) -> i32 {
    p.wait_stderr_for(PATIENCE, |log| {
        let line = log
            .lines()
            .filter(|l| l.contains("upgrade: PID "))
            .nth(n - 1)?;
        let rest = &line[line.find("upgrade: PID ")? + "upgrade: PID ".len()..];
        assert!(rest.ends_with(" serves the socket now; stopping"), "{line}");
        rest.split(' ').next()?.parse().ok()
    })
    .unwrap_or_else(|| panic!("no upgrade {n} within {PATIENCE:?}:\n{}", p.stderr_text()))
}

/// Waits until the reaper says `pid` exited; its exit code.
fn exit_code(reaper: &Proc, pid: i32) -> i32 {
    let prefix = format!("exited {pid} ");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = reaper.stdout_text();
        if let Some(code) = out.lines().find_map(|l| l.strip_prefix(&prefix)) {
            return code.parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{pid} did not exit within {PATIENCE:?}; reaper: {out}\n{}",
            reaper.stderr_text()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Three SIGUSR2 upgrades under a paced load: each new process serves the
/// same socket (and the same metrics address), each old one exits 0 after
/// answering what it took, and not one request of the load goes
/// unanswered.
#[test]
fn three_upgrades_under_load_lose_nothing() {
    // A metrics address of its own: each new process binds it while the
    // old one still listens there.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let mut cmd = command("python3");
    cmd.args(["-c", REAPER, SERVER_BIN, "--bind", "127.0.0.1:0"])
        .args(["--metrics-addr", &metrics])
        .arg("--log-requests=false");
    let (reaper, port) = server_with(&mut cmd);
    let mut pids = Pids::default();
    let first = reaper
        .wait_stdout("started ", PATIENCE)
        .then(|| reaper.stdout_text())
        .and_then(|out| {
            out.lines()
                .find_map(|l| l.strip_prefix("started ")?.parse().ok())
        })
        .expect("the first server's pid");
    pids.learn(first);
    let server = format!("127.0.0.1:{port}");
    let bench = thread::spawn(move || {
        let args = [
            "bench",
            "--server",
            &server,
            "--rate",
            "2000",
            "--seconds",
            "4",
            "--warmup",
            "0",
            "--timeout",
            "3s",
            "--json",
        ];
        run(CLIENT_BIN, &args, Duration::from_secs(30))
    });
    let mut serving = first;
    for n in 1..=3 {
        thread::sleep(Duration::from_millis(500));
        signal(serving, libc::SIGUSR2);
        let next = nth_upgrade(&reaper, n);
        pids.learn(next);
        assert_eq!(exit_code(&reaper, serving), 0, "{}", reaper.stderr_text());
        serving = next;
    }
    let out = join_within(bench, Duration::from_secs(40), "bench");
    assert_eq!(out.code(), Some(0), "{out:?}");
    let report = bench_json(&out.stdout);
    let count = |key| json_count(&report, key);
    assert!(count("sent") > 1000, "{report}");
    assert_eq!(count("lost"), 0, "{report}\n{}", reaper.stderr_text());
    assert_eq!(count("replies"), count("sent"), "{report}");
    signal(serving, libc::SIGTERM);
    assert_eq!(exit_code(&reaper, serving), 0, "{}", reaper.stderr_text());
    let log = reaper.stderr_text();
    // Each of the four answered its share, once.
    let replied: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("stats: received="))
        .map(|l| Snapshot::from_line(l).unwrap().replied)
        .collect();
    assert_eq!(replied.len(), 4, "{log}");
    assert_eq!(replied.iter().sum::<u64>(), count("replies"), "{log}");
}

/// Waits until the file at `path` can be run: a fork of another test's
/// thread may hold it open for writing a moment after it was written
/// (ETXTBSY), until that fork runs its own program.
fn wait_runnable(path: &Path) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match command(path).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                assert!(Instant::now() < deadline, "{}: {e}", path.display());
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot run {}: {e}", path.display()),
            Ok(_) => return,
        }
    }
}

/// Puts `contents` at `path` as a new file, executable: the file there is
/// removed first, so a process running it keeps its own.
fn replace_program(path: &Path, contents: &[u8]) {
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    wait_runnable(path);
}

/// A new program that fails leaves the old process serving; once a good
/// one is back in its place, a second SIGUSR2 upgrades.
#[test]
fn a_failed_upgrade_keeps_serving() {
    let dir = TempDir::new("upgrade-failed");
    let program = dir.path().join("udp-greeter");
    let binary = std::fs::read(SERVER_BIN).unwrap();
    std::fs::write(&program, &binary).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    wait_runnable(&program);
    let (mut p, port) = server_with(command(&program).args(["--bind", "127.0.0.1:0"]));
    let mut pids = Pids::default();
    let addr = SocketAddr::new(V4, port);
    let client = socket_for(addr);
    assert_eq!(ask(&client, addr, b"before"), b"Hello, before!");
    replace_program(&program, b"#!/bin/sh\nexit 1\n");
    p.signal(libc::SIGUSR2);
    let line = p.line_with("upgrade failed");
    assert!(
        line.ends_with(
            "upgrade failed: the new process exited with status 1 before it was ready; \
             still serving"
        ),
        "{line}"
    );
    assert_eq!(ask(&client, addr, b"after"), b"Hello, after!");
    // The real program back: the next SIGUSR2 upgrades.
    replace_program(&program, &binary);
    p.signal(libc::SIGUSR2);
    let next = nth_upgrade(&p, 1);
    pids.learn(next);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        // Not `finish`: the new process holds the output pipes open.
        if let Some(status) = p.exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "{}", p.stderr_text());
        thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "{status}: {}", p.stderr_text());
    let old = parse_stats(&p.stderr_text()).expect("the old process's stats");
    assert_eq!(old.replied, 2, "{old}");
    assert_eq!(ask(&client, addr, b"upgraded"), b"Hello, upgraded!");
    signal(next, libc::SIGTERM);
    assert!(p
        .wait_stderr_for(PATIENCE, |log| {
            (log.matches("stats: received=").count() == 2).then_some(())
        })
        .is_some());
}

/// Under a service manager, the old process names the new one the main
/// process and then says nothing more: its STOPPING=1 would stop the
/// service, new process and all. The new one is ready on its own, pings
/// the watchdog that was the old one's, and says STOPPING=1 at its stop.
#[test]
fn hands_the_service_to_the_new_process() {
    let manager = Manager::new();
    let own_pid = std::process::id().to_string();
    let (mut p, port) = server_with(
        command(SERVER_BIN)
            .args(["--bind", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", manager.path())
            .env("WATCHDOG_USEC", "200000")
            // Another process's: the old one has no watchdog, the new one does.
            .env("WATCHDOG_PID", &own_pid),
    );
    let mut pids = Pids::default();
    let serving = format!("READY=1\nSTATUS=serving on 127.0.0.1:{port}");
    assert_eq!(manager.next(PATIENCE).as_deref(), Some(&serving[..]));
    p.signal(libc::SIGUSR2);
    let next = nth_upgrade(&p, 1);
    pids.learn(next);
    let deadline = Instant::now() + PATIENCE;
    while p.alive() {
        assert!(Instant::now() < deadline, "{}", p.stderr_text());
        thread::sleep(Duration::from_millis(5));
    }
    // The old process is gone: all it said is queued. Read on to the new
    // one's first ping after MAINPID=.
    let mut told = Vec::new();
    loop {
        let m = manager.next(PATIENCE).expect("a ping from the new process");
        if m.starts_with("WATCHDOG=1\n") {
            if told.iter().any(|t: &String| t.starts_with("MAINPID=")) {
                break;
            }
        } else {
            told.push(m);
        }
    }
    assert_eq!(told, [serving.clone(), format!("MAINPID={next}")]);
    signal(next, libc::SIGTERM);
    let stopping = loop {
        let m = manager
            .next(PATIENCE)
            .expect("the new process's STOPPING=1");
        if !m.starts_with("WATCHDOG=1\n") {
            break m;
        }
    };
    assert_eq!(
        stopping,
        "STOPPING=1\nSTATUS=stopping: answering what is queued"
    );
}
