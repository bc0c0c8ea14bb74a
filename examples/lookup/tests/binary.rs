use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{ask, client, TempDb, PATIENCE};

const BIN: &str = env!("CARGO_BIN_EXE_udp-lookup");

/// Waits at most [`PATIENCE`] for `child` to exit; kills it otherwise.
fn exit_of(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("udp-lookup did not exit within {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Reads the `serving ... on ADDR with N workers` line from `child`'s
/// stderr and returns the address.
fn served_address(child: &mut Child) -> SocketAddr {
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(PATIENCE).expect("the serving line");
    let addr = line
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    addr.parse().expect("an address")
}

#[test]
fn the_binary_answers_and_exits_cleanly_on_sigterm() {
    let db = TempDb::new("binary");
    let mut child = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--workers", "2", "--create", "5"])
        .arg("--db")
        .arg(&db.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run udp-lookup");
    let addr = served_address(&mut child);
    let socket = client(addr);
    assert_eq!(
        ask(&socket, b"key-4", PATIENCE).as_deref(),
        Some(&b"value-4"[..])
    );

    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = exit_of(&mut child);
    assert!(status.success(), "{status}");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(
        out.starts_with("stats: received=1 socket_dropped=0 replied=1 "),
        "{out:?}"
    );
}

#[test]
fn a_database_it_cannot_open_exits_with_one_line() {
    let dir = TempDb::new("no-such-dir");
    let path = dir.path.join("x.db");
    let output = Command::new(BIN)
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run udp-lookup");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "udp-lookup: cannot make the handler of worker-0: cannot open {}: \
         unable to open database file\n",
        path.display()
    );
    assert_eq!(stderr, expected);
    assert!(output.stdout.is_empty());
}
