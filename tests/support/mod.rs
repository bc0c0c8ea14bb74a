//! Shared by the integration tests: servers in-process and as the real
//! binaries, sockets, floods, other programs, HTTP and JSON, and waits that
//! are always bounded.

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
pub const ENV_VARS: &[&str] = &[
    "UDP_GREETER_BIND",
    "UDP_GREETER_WORKERS",
    "UDP_GREETER_QUEUE",
    "UDP_GREETER_QUEUE_FULL",
    "UDP_GREETER_MAX_DATAGRAM",
    "UDP_GREETER_RATE_LIMIT",
    "UDP_GREETER_RATE_BURST",
    "UDP_GREETER_RECV_BUFFER",
    "UDP_GREETER_REUSE_PORT",
    "UDP_GREETER_LOOP_GUARD",
    "UDP_GREETER_LOG_REQUESTS",
    "UDP_GREETER_STATS_INTERVAL",
    "UDP_GREETER_LOG_LEVEL",
    "UDP_GREETER_LOG_FILE",
    "UDP_GREETER_STOP_TIMEOUT",
    "UDP_GREETER_METRICS_ADDR",
    "UDP_GREETER_SERVER",
];

/// What a service manager, or the previous process of an upgrade, passes
/// the server: removed too, so that tests run under a service manager do
/// not hand its socket or its notify socket to the servers they start.
pub const SERVICE_VARS: &[&str] = &[
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "UDP_GREETER_UPGRADE_NOTIFY",
    "UDP_GREETER_UPGRADE_TOKEN",
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

/// Whether `done` holds within `limit`, looked at every few milliseconds:
/// for a state that no line or channel announces.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
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
    let fates: u64 = s.fates().map(|(_, n)| n).sum();
    assert_eq!(s.received, fates, "counters do not balance: {s}");
}

#[cfg(unix)]
mod fifo;
mod logs;
#[cfg(target_os = "linux")]
mod manager;
mod net;
#[cfg(target_os = "linux")]
mod netns;
#[cfg(target_os = "linux")]
mod nspawn;
mod process;
mod tools;

#[cfg(unix)]
pub use fifo::*;
pub use logs::*;
#[cfg(target_os = "linux")]
pub use manager::*;
pub use net::*;
#[cfg(target_os = "linux")]
pub use netns::*;
#[cfg(target_os = "linux")]
pub use nspawn::*;
pub use process::*;
pub use tools::*;

// ---------------------------------------------------------------------------
// The examples, as programs

/// `target/<profile>/examples/NAME`, beside the directory of the server
/// binary that Cargo built for these tests (`cargo test` builds the
/// examples too).
pub fn example(name: &str) -> PathBuf {
    let server = PathBuf::from(SERVER_BIN);
    let dir = server
        .parent()
        .expect("the server binary is in a directory");
    let examples = dir.join("examples");
    let path = examples.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        return path;
    }
    // Cargo builds it as `NAME-HASH` and links the plain name to it; the
    // link alone may be gone.
    let prefix = format!("{name}-");
    std::fs::read_dir(&examples)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let file = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            file.starts_with(&prefix) && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| {
            panic!(
                "{} was not built: run `cargo test` (which builds the examples) or \
                 `cargo build --example {name}` first",
                path.display()
            )
        })
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
) -> impl Fn(&udp_greeter::Request<'_>, &mut Vec<u8>) + Send + Clone + 'static {
    move |req: &udp_greeter::Request<'_>, reply: &mut Vec<u8>| {
        if req.payload.starts_with(b"panic") {
            count.fetch_add(1, Ordering::Relaxed);
            std::panic::panic_any(INJECTED);
        }
        udp_greeter::greet_into(req.payload, reply);
    }
}
