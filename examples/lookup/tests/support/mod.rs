//! What the tests share: a database that removes itself, a client that
//! waits a bounded time, and a bounded wait for the server's counters.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use udp_greeter::{Config, Server, Snapshot};

/// How long any one wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A database file of the test's own in the temporary directory, removed
/// (with SQLite's side files) when dropped.
pub struct TempDb {
    pub path: PathBuf,
}

impl TempDb {
    /// A path no file has yet: `name` and a counter keep parallel tests apart.
    pub fn new(name: &str) -> TempDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file = format!("udp-lookup-{}-{n}-{name}.db", std::process::id());
        let path = std::env::temp_dir().join(file);
        remove(&path);
        TempDb { path }
    }

    /// A database with the demo rows `key-0` ... `key-{rows - 1}`.
    pub fn with_rows(name: &str, rows: u64) -> TempDb {
        let db = TempDb::new(name);
        udp_greeter_lookup::create(&db.path, rows).expect("create the database");
        db
    }

    /// A connection of the test's own, beside the server's.
    pub fn connect(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).expect("open the database")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        remove(&self.path);
    }
}

fn remove(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// A server configuration on a free loopback port.
pub fn config(workers: usize) -> Config {
    let mut config = Config::new("127.0.0.1:0".parse().expect("address"));
    config.workers = workers;
    config
}

/// A client socket on loopback, connected to `server`.
pub fn client(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the client");
    socket.connect(server).expect("connect the client");
    socket
}

/// Sends `key` and returns the reply, or `None` if none came within `wait`.
pub fn ask(socket: &UdpSocket, key: &[u8], wait: Duration) -> Option<Vec<u8>> {
    socket.send(key).expect("send");
    socket
        .set_read_timeout(Some(wait))
        .expect("set the timeout");
    let mut buf = [0u8; 2048];
    socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// Waits until the counters satisfy `done`, and returns them.
pub fn counters_when(server: &Server, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = server.stats();
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "not within {PATIENCE:?}: {s}");
        thread::sleep(Duration::from_millis(2));
    }
}
