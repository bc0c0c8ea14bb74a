//! A log file that stops taking lines when a test says so: a FIFO whose
//! one reader stops reading, so that the server's next write to it blocks.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use super::{run, TempDir, PATIENCE};

pub struct StalledLog {
    _dir: TempDir,
    path: PathBuf,
    /// Open, so that the server's open and writes do not fail for want of
    /// a reader.
    reader: File,
}

impl StalledLog {
    pub fn new() -> StalledLog {
        let dir = TempDir::new("fifo");
        let path = dir.path().join("log");
        let made = run("mkfifo", &[path.to_str().unwrap()], PATIENCE);
        assert!(made.status.success(), "mkfifo: {made:?}");
        let reader = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        StalledLog {
            _dir: dir,
            path,
            reader,
        }
    }

    pub fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Reads until `text` has come through, at most [`PATIENCE`].
    pub fn read_until(&mut self, text: &str) {
        let mut seen = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        while !String::from_utf8_lossy(&seen).contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in the FIFO");
            let mut buf = [0u8; 4096];
            match self.reader.read(&mut buf) {
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Fills the FIFO, and reads no more: the next line written blocks.
    pub fn stall(&self) {
        let mut filler = File::options()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .unwrap();
        for chunk in [&[b'#'; 4096][..], &[b'#'; 1][..]] {
            while filler.write(chunk).is_ok() {}
        }
    }
}
