//! A socket that stands for a service manager's notify socket.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use udp_greeter::service::Notifier;

use super::TempDir;

/// Listens where `NOTIFY_SOCKET` would name, in a directory of its own.
pub struct Manager {
    dir: TempDir,
    listener: UnixDatagram,
}

impl Manager {
    pub fn new() -> Manager {
        let dir = TempDir::new("notify");
        let listener = UnixDatagram::bind(dir.path().join("notify.sock")).unwrap();
        Manager { dir, listener }
    }

    /// What `NOTIFY_SOCKET` is set to.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("notify.sock")
    }

    /// A notifier that sends here, for a server in this process.
    pub fn notifier(&self) -> Notifier {
        Notifier::new(self.path()).unwrap()
    }

    /// The next message, or `None` within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.listener.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 512];
        let n = self.listener.recv(&mut buf).ok()?;
        Some(String::from_utf8(buf[..n].to_vec()).unwrap())
    }
}
