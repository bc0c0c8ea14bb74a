//! Shared by the integration tests: servers in-process and as the real
//! binaries, sockets, floods, other programs, HTTP and JSON, and waits that
//! are always bounded.
//!
//! Every test file uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use udp_greeter::{Config, Server, Snapshot};

pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_udp-greeter");
pub const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_udp-greeter-client");

pub const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
/// Another loopback address (all of 127.0.0.0/8 is loopback on Linux): a
/// source that the per-IP rate limiter tells apart from 127.0.0.1.
pub const V4_OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// How long any single wait in a test may last before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The environment variables the binaries read; removed so that the
/// caller's environment cannot change what a test runs.
const ENV_VARS: &[&str] = &[
    "UDP_GREETER_BIND",
    "UDP_GREETER_WORKERS",
    "UDP_GREETER_QUEUE",
    "UDP_GREETER_MAX_DATAGRAM",
    "UDP_GREETER_RATE_LIMIT",
    "UDP_GREETER_RATE_BURST",
    "UDP_GREETER_RECV_BUFFER",
    "UDP_GREETER_REUSE_PORT",
    "UDP_GREETER_STATS_INTERVAL",
    "UDP_GREETER_LOG_LEVEL",
    "UDP_GREETER_LOG_FILE",
    "UDP_GREETER_METRICS_ADDR",
    "UDP_GREETER_SERVER",
];

// ---------------------------------------------------------------------------
// In-process servers

/// A configuration bound to 127.0.0.1, port 0.
pub fn config(workers: usize, queue: usize) -> Config {
    let mut c = Config::new(SocketAddr::new(V4, 0));
    c.workers = workers;
    c.queue = queue;
    c
}

/// Runs `f` on its own thread and waits at most `limit` for its result.
///
/// On timeout the thread is left behind and the test fails.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name(format!("within: {what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn");
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: not done within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// Shuts `server` down and returns its final counters, failing the test if
/// that takes longer than `limit`.
pub fn shutdown_within(server: Server, limit: Duration) -> udp_greeter::Result<Snapshot> {
    within(limit, "shutdown", move || server.shutdown())
}

/// Waits until the server has settled every datagram it received and has
/// received at least `at_least`; returns the counters then.
pub fn settled(server: &Server, at_least: u64) -> Snapshot {
    let deadline = Instant::now() + PATIENCE;
    loop {
        // Fates are read before `received`, so a balanced snapshot means
        // nothing received so far is still in flight.
        let s = server.stats();
        if s.received >= at_least && s.is_balanced() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "not settled within {PATIENCE:?} (wanted received >= {at_least}): {s}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// Asserts the identity every finished server must satisfy.
pub fn assert_balanced(s: &Snapshot) {
    assert_eq!(
        s.received,
        s.replied
            + s.dropped_queue_full
            + s.send_errors
            + s.dropped_oversize
            + s.dropped_rate_limited,
        "counters do not balance: {s}"
    );
}

// ---------------------------------------------------------------------------
// Sockets

/// A UDP socket on `ip`, port 0.
pub fn socket_on(ip: IpAddr) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0)).expect("bind a test socket");
    s.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    s
}

/// A UDP socket on the loopback address of `server`'s family.
pub fn socket_for(server: SocketAddr) -> UdpSocket {
    socket_on(if server.is_ipv4() { V4 } else { V6 })
}

/// The next datagram on `sock`, or `None` after `timeout`.
pub fn recv_within(sock: &UdpSocket, timeout: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65_536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).expect("read timeout");
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => panic!("recv_from: {e}"),
        }
    }
}

/// Sends `payload` to `server` and returns the first datagram that comes
/// back from it, trying three times; fails the test if none does.
pub fn ask(sock: &UdpSocket, server: SocketAddr, payload: &[u8]) -> Vec<u8> {
    for _ in 0..3 {
        sock.send_to(payload, server).expect("send_to");
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Some((reply, from)) =
            recv_within(sock, deadline.saturating_duration_since(Instant::now()))
        {
            if from == server {
                return reply;
            }
        }
    }
    panic!("no reply from {server} to a {}-byte request", payload.len());
}

/// Sends `payload` to `to` and returns the first datagram that comes back,
/// from whatever address, with that address, trying three times; fails the
/// test if none does. For tests about where replies come from, which
/// [`ask`] would hide by waiting for one from `to` only.
pub fn first_reply(sock: &UdpSocket, to: SocketAddr, payload: &[u8]) -> (Vec<u8>, SocketAddr) {
    for _ in 0..3 {
        sock.send_to(payload, to).expect("send_to");
        if let Some(got) = recv_within(sock, Duration::from_secs(3)) {
            return got;
        }
    }
    panic!("no reply to a {}-byte request to {to}", payload.len());
}

/// Sends `payload`, then a unique sentinel, and returns every datagram that
/// arrived from `server` before the sentinel's greeting.
///
/// With one worker the server answers in the order it receives, and
/// loopback keeps that order; so whatever the payload got back (nothing,
/// or a reply, whole or truncated) arrives before the sentinel's greeting.
pub fn replies_before_sentinel(
    sock: &UdpSocket,
    server: SocketAddr,
    payload: &[u8],
) -> Vec<Vec<u8>> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let sentinel = format!("sentinel-{}", NEXT.fetch_add(1, Ordering::Relaxed)).into_bytes();
    let expected = udp_greeter::greet(&sentinel);
    sock.send_to(payload, server).expect("send_to");
    sock.send_to(&sentinel, server).expect("send_to");
    let mut before = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some((reply, from)) = recv_within(sock, left) else {
            panic!("no greeting for the sentinel within {PATIENCE:?}");
        };
        if from != server {
            continue;
        }
        if reply == expected {
            return before;
        }
        before.push(reply);
    }
}

// ---------------------------------------------------------------------------
// Payloads that say who sent them

/// A payload unique to (`tag`, `seq`), with a length (12 to 75 bytes) and
/// binary tail that vary with them, so a reply can be traced back to its
/// request and checked byte for byte.
pub fn tagged(tag: u32, seq: u32) -> Vec<u8> {
    let mut p = format!("{tag:03}:{seq:07}:").into_bytes();
    let mut x = (u64::from(tag) << 32 | u64::from(seq)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = (x >> 58) as usize;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.push(x as u8);
    }
    p
}

/// The (tag, seq) a greeting of a [`tagged`] payload was made for, if it
/// looks like one. The caller still compares the whole reply.
pub fn tag_of(reply: &[u8]) -> Option<(u32, u32)> {
    let inner = reply.strip_prefix(b"Hello, ")?;
    let head = inner.get(..12)?;
    let text = std::str::from_utf8(head).ok()?;
    let (tag, rest) = text.split_once(':')?;
    let seq = rest.strip_suffix(':')?;
    Some((tag.parse().ok()?, seq.parse().ok()?))
}

// ---------------------------------------------------------------------------
// Floods

/// Threads sending datagrams as fast as they can until stopped, or until
/// their count or time runs out. Dropping it stops them.
pub struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl Flood {
    /// `threads` senders on `from`, each sending `payload` to `target` at
    /// most `max_each` times and for at most `limit`.
    pub fn start(
        target: SocketAddr,
        from: IpAddr,
        threads: usize,
        payload: &[u8],
        max_each: u64,
        limit: Duration,
    ) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let threads = (0..threads)
            .map(|i| {
                let stop = stop.clone();
                let payload = payload.to_vec();
                let sock = socket_on(from);
                thread::Builder::new()
                    .name(format!("flood-{i}"))
                    .spawn(move || {
                        let mut sent = 0;
                        while sent < max_each
                            && !stop.load(Ordering::Relaxed)
                            && Instant::now() < deadline
                        {
                            if sock.send_to(&payload, target).is_ok() {
                                sent += 1;
                            }
                        }
                        sent
                    })
                    .expect("spawn")
            })
            .collect();
        Flood { stop, threads }
    }

    /// Stops every thread and returns how many datagrams they sent.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .drain(..)
            .map(|t| join_within(t, PATIENCE, "flood thread"))
            .sum()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Joins `handle`, failing the test if the thread has not finished within
/// `limit`; re-raises its panic.
pub fn join_within<T>(handle: JoinHandle<T>, limit: Duration, what: &str) -> T {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} did not finish within {limit:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    match handle.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Sets a flag when dropped, so helper threads stop even when the test
/// fails half-way.
pub struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// Child processes

/// A `Command` for one of the binaries (or another program), blind to the
/// caller's `UDP_GREETER_*` variables.
pub fn command(bin: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(bin);
    for var in ENV_VARS {
        c.env_remove(var);
    }
    c.stdin(Stdio::null());
    c
}

/// A running child whose stdout and stderr are collected by threads; it is
/// killed when dropped.
pub struct Proc {
    pub child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    /// A message each time more stderr arrives, so waits for a line end
    /// the moment it is written.
    err_ping: Mutex<mpsc::Receiver<()>>,
    status: Option<ExitStatus>,
}

fn collect(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
    ping: mpsc::Sender<()>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name("collect".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        into.lock().unwrap().extend_from_slice(&buf[..n]);
                        let _ = ping.send(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        })
        .expect("spawn")
}

impl Proc {
    /// Spawns `cmd` with its stdout and stderr piped to the test.
    pub fn spawn(cmd: &mut Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let (out_ping, _) = mpsc::channel();
        let (err_ping, err_pinged) = mpsc::channel();
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), out.clone(), out_ping),
            collect(child.stderr.take().expect("stderr"), err.clone(), err_ping),
        ];
        Proc {
            child,
            out,
            err,
            readers,
            err_ping: Mutex::new(err_pinged),
            status: None,
        }
    }

    /// Wraps a child whose output the caller handles itself.
    pub fn adopt(child: Child) -> Proc {
        Proc {
            child,
            out: Arc::default(),
            err: Arc::default(),
            readers: Vec::new(),
            err_ping: Mutex::new(mpsc::channel().1),
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        self.err.lock().unwrap().clone()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout()).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr()).into_owned()
    }

    /// Waits until stderr contains `what`; false after `timeout`. Returns
    /// as soon as the text is written.
    pub fn wait_stderr(&self, what: &str, timeout: Duration) -> bool {
        self.wait_stderr_for(timeout, |text| text.contains(what).then_some(()))
            .is_some()
    }

    /// Waits until `found` returns something for the stderr written so far;
    /// `None` after `timeout`.
    pub fn wait_stderr_for<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let pinged = self.err_ping.lock().unwrap();
        loop {
            if let Some(v) = found(&self.stderr_text()) {
                return Some(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Woken by new output; the short cap covers a reader that has
            // finished (stderr closed) and pings no more.
            let _ = pinged.recv_timeout(left.min(Duration::from_millis(20)));
        }
    }

    /// The first line of stderr that contains `what`, waiting for it at most
    /// [`PATIENCE`]; fails the test, showing stderr, if none comes.
    pub fn line_with(&self, what: &str) -> String {
        self.wait_stderr_for(PATIENCE, |text| {
            text.lines().find(|l| l.contains(what)).map(str::to_owned)
        })
        .unwrap_or_else(|| {
            panic!(
                "no line with {what:?} within {PATIENCE:?}; stderr:\n{}",
                self.stderr_text()
            )
        })
    }

    /// Waits until stdout contains `what`; false after `timeout`.
    pub fn wait_stdout(&self, what: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stdout_text().contains(what) {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        self.stdout_text().contains(what)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait().expect("try_wait") {
            Some(s) => {
                self.status = Some(s);
                false
            }
            None => true,
        }
    }

    /// Its exit status, waiting at most `timeout`; `None` if still running.
    /// Once it has exited, the output collected so far is complete.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.alive() {
                // The pipes close with the process: the readers finish.
                for r in self.readers.drain(..) {
                    join_within(r, PATIENCE, "output reader");
                }
                return self.status;
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Its exit status; fails the test if it runs longer than `timeout`.
    pub fn finish(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_exit(timeout) {
            Some(s) => s,
            None => panic!(
                "{:?} still running after {timeout:?}; stderr so far:\n{}",
                self.child.id(),
                self.stderr_text()
            ),
        }
    }

    /// Sends `sig` (e.g. `libc::SIGINT`).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with a pid of our own child; no memory involved.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(
            rc,
            0,
            "kill({}, {sig}): {}",
            self.pid(),
            io::Error::last_os_error()
        );
    }

    /// Stops a server binary the way a supervisor does (SIGTERM), expects a
    /// clean exit within [`PATIENCE`] and returns the counters of its final
    /// `stats:` line.
    pub fn stop(&mut self) -> Snapshot {
        wait_signal_handlers(self.pid());
        self.signal(libc::SIGTERM);
        let status = self.finish(PATIENCE);
        let log = self.stderr_text();
        assert!(
            status.success(),
            "exit status {status} after SIGTERM:\n{log}"
        );
        parse_stats(&log).unwrap_or_else(|| panic!("no final stats line:\n{log}"))
    }

    /// Peak resident memory (VmHWM) in bytes, from /proc.
    #[cfg(target_os = "linux")]
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM line");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("VmHWM value");
        kib * 1024
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The port in a `Bind UDP on PORT...` line, if there is one.
pub fn bound_port(log: &str) -> Option<u16> {
    let rest = &log[log.find("Bind UDP on ")? + "Bind UDP on ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    rest[digits.len()..].starts_with("...").then_some(())?;
    digits.parse().ok()
}

/// The UDP port process `pid` has bound, read from its socket descriptors
/// and /proc/net/udp{,6}: for a server whose log level hides `Bind UDP on`.
#[cfg(target_os = "linux")]
pub fn udp_port_of(pid: i32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && inodes.iter().any(|i| i == cols[9]) {
                let port = cols[1].rsplit(':').next()?;
                return u16::from_str_radix(port, 16).ok();
            }
        }
    }
    None
}

/// Starts the server binary with `args` (which should bind port 0) at a log
/// level that hides `Bind UDP on`, and returns it with the port it bound.
#[cfg(target_os = "linux")]
pub fn quiet_server_proc(args: &[&str]) -> (Proc, u16) {
    let mut p = Proc::spawn(command(SERVER_BIN).args(args));
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(port) = udp_port_of(p.pid()) {
            return (p, port);
        }
        assert!(
            p.alive() && Instant::now() < deadline,
            "the server bound no UDP port within {PATIENCE:?}; stderr:\n{}",
            p.stderr_text()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Starts the server binary with `args` (which should bind port 0) and
/// returns it with the port it logged.
pub fn server_proc(args: &[&str]) -> (Proc, u16) {
    server_with(command(SERVER_BIN).args(args))
}

/// As [`server_proc`], but a server that exits instead of binding is an
/// `Err` with its stderr.
pub fn try_server_proc(args: &[&str]) -> Result<(Proc, u16), String> {
    try_server_with(command(SERVER_BIN).args(args))
}

/// As [`server_proc`], for a [`command`] of the server binary that the
/// caller has given its arguments and environment.
pub fn server_with(cmd: &mut Command) -> (Proc, u16) {
    try_server_with(cmd).unwrap_or_else(|log| panic!("the server did not start:\n{log}"))
}

/// As [`try_server_proc`], for a [`command`] the caller has set up.
pub fn try_server_with(cmd: &mut Command) -> Result<(Proc, u16), String> {
    let mut p = Proc::spawn(cmd);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(port) = p.wait_stderr_for(left.min(Duration::from_millis(50)), bound_port) {
            return Ok((p, port));
        }
        if !p.alive() {
            p.wait_exit(PATIENCE);
            return Err(p.stderr_text());
        }
        assert!(
            !left.is_zero(),
            "no `Bind UDP on` line within {PATIENCE:?}; stderr:\n{}",
            p.stderr_text()
        );
    }
}

/// Waits until process `pid` catches SIGINT and SIGTERM (SigCgt in
/// /proc/PID/status).
///
/// The server installs its handler before it binds, so the handler is in
/// place once `Bind UDP on` is logged, and `sigterm_at_once` in
/// tests/shutdown.rs holds it to that. Tests about something else check
/// the handler first so that, should that order break, they fail saying so
/// instead of finding their server killed outright by the signal.
#[cfg(target_os = "linux")]
pub fn wait_signal_handlers(pid: i32) {
    let wanted: u64 = 1 << (libc::SIGINT - 1) | 1 << (libc::SIGTERM - 1);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0);
        if caught & wanted == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} installed no SIGINT/SIGTERM handler within {PATIENCE:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Elsewhere there is no SigCgt to read: a pause makes the race unlikely.
#[cfg(not(target_os = "linux"))]
pub fn wait_signal_handlers(_pid: i32) {
    thread::sleep(Duration::from_millis(500));
}

/// What a finished child did.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Runs `bin` with `args` to completion, killing it and failing the test
/// if it takes longer than `timeout`.
pub fn run(bin: &str, args: &[&str], timeout: Duration) -> Outcome {
    run_with(command(bin).args(args), timeout)
}

/// As [`run`], for a [`command`] the caller has given its arguments and
/// environment.
pub fn run_with(cmd: &mut Command, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let mut p = Proc::spawn(cmd);
    let status = p.finish(timeout);
    Outcome {
        status,
        stdout: p.stdout(),
        stderr: p.stderr_text(),
        elapsed: started.elapsed(),
    }
}

/// The counters of the last `stats:` line in `log`.
pub fn parse_stats(log: &str) -> Option<Snapshot> {
    let line = log.lines().rev().find(|l| l.contains("stats: received="))?;
    let mut s = Snapshot::default();
    let mut seen = 0;
    for field in line[line.find("stats: ")? + 7..].split_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let Ok(n) = value.parse::<u64>() else {
            continue;
        };
        let slot = match key {
            "received" => &mut s.received,
            "replied" => &mut s.replied,
            "dropped_queue_full" => &mut s.dropped_queue_full,
            "send_errors" => &mut s.send_errors,
            "dropped_oversize" => &mut s.dropped_oversize,
            "dropped_rate_limited" => &mut s.dropped_rate_limited,
            "worker_panics" => &mut s.worker_panics,
            "control_truncated" => &mut s.control_truncated,
            _ => continue,
        };
        *slot = n;
        seen += 1;
    }
    (seen == 8).then_some(s)
}

// ---------------------------------------------------------------------------
// Other programs, files, HTTP and JSON

/// Where program `name` is installed: on the PATH or in the sbin folders
/// that a non-root PATH may lack (nginx lives in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A file shipped with the project, read whole.
pub fn shipped(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh directory of its own under the system's temporary directory,
/// removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "udp-greeter-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover of an earlier run with the same pid.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One HTTP exchange: status, headers and body.
pub struct Http {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Http {
    /// The value of header `name` (any case), if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one `method` request to `url` (with `body`, unless empty) and
/// returns the response, whatever its status; fails the test if there is
/// none within 5 s.
pub fn http(method: &str, url: &str, body: &str) -> Http {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        // 4xx and 5xx are answers the tests look at, not errors.
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        // Loopback only: a proxy from the environment must not step in.
        .proxy(None)
        .build()
        .into();
    let request = ureq::http::Request::builder().method(method).uri(url);
    let sent = if body.is_empty() {
        agent.run(request.body(()).expect("a request"))
    } else {
        agent.run(request.body(body).expect("a request"))
    };
    let mut response = sent.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let body = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("{method} {url}: body: {e}"));
    Http {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body,
    }
}

/// The bench client's `--json` report: one line, one flat JSON object
/// whose values are numbers, strings or null. Fails the test otherwise.
pub fn bench_json(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    assert_eq!(text.lines().count(), 1, "not one line: {text}");
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let fields = report
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {text}"));
    for (key, value) in fields {
        assert!(
            value.is_number() || value.is_string() || value.is_null(),
            "value of {key} is not flat: {text}"
        );
    }
    report
}

/// A count in a [`bench_json`] report; fails the test if `key` is missing
/// or not a whole number.
pub fn json_count(report: &serde_json::Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {report}"))
}

// ---------------------------------------------------------------------------
// Injected panics

/// The message of every panic a test injects on purpose.
pub const INJECTED: &str = "injected panic";

/// Keeps injected panics off stderr (there may be thousands); any other
/// panic is still reported as usual.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&INJECTED) {
                default(info);
            }
        }));
    });
}

/// The greeting, except that a payload starting with `panic` makes the
/// handler panic (with [`INJECTED`]); each such panic is counted in `count`.
pub fn panicking_greeter(
    count: Arc<std::sync::atomic::AtomicU64>,
) -> impl Fn(&[u8], &mut Vec<u8>) + Send + Sync + 'static {
    move |req: &[u8], reply: &mut Vec<u8>| {
        if req.starts_with(b"panic") {
            count.fetch_add(1, Ordering::Relaxed);
            std::panic::panic_any(INJECTED);
        }
        udp_greeter::greet_into(req, reply);
    }
}

/// As [`try_server_proc`], with the environment variables `env` set.
pub fn try_server_proc_env(env: &[(&str, &str)], args: &[&str]) -> Result<(Proc, u16), String> {
    let mut cmd = command(SERVER_BIN);
    cmd.envs(env.iter().copied()).args(args);
    let mut p = Proc::spawn(&mut cmd);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(port) = p.wait_stderr_for(left.min(Duration::from_millis(50)), bound_port) {
            return Ok((p, port));
        }
        if !p.alive() {
            p.wait_exit(PATIENCE);
            return Err(p.stderr_text());
        }
        assert!(
            !left.is_zero(),
            "no `Bind UDP on` line within {PATIENCE:?}; stderr:\n{}",
            p.stderr_text()
        );
    }
}
