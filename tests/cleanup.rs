//! The tests' own guard: every process a test starts ends with the test,
//! even one its child started (a server under `timeout`), even when the
//! test panics.

use std::thread;

use crate::support::*;

/// A process's start time since boot, in clock ticks (field 22 of
/// /proc/PID/stat): with its PID, it names one process, whatever later
/// takes the same PID. `None` once it is gone or a zombie.
fn started(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's name, which may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    (fields.first() != Some(&"Z")).then_some(())?;
    fields.get(19)?.parse().ok()
}

/// The server `timeout`, process `pid`, started: its one child.
fn child_of(pid: i32) -> i32 {
    let path = format!("/proc/{pid}/task/{pid}/children");
    let children = std::fs::read_to_string(&path).unwrap_or_default();
    let mut pids = children.split_whitespace().map(|c| c.parse().unwrap());
    let child = pids.next().unwrap_or_else(|| panic!("no child in {path}"));
    assert_eq!(pids.next(), None, "{children}");
    child
}

/// A server under `timeout`, serving: the `Proc` of `timeout`, and the
/// server's PID and start time.
fn server_under_timeout() -> (Proc, (i32, u64)) {
    let timeout = find_program("timeout").expect("`timeout` (coreutils) is not installed");
    let (p, _port) =
        server_with(command(&timeout).args(["30", SERVER_BIN, "--bind", "127.0.0.1:0"]));
    let server = child_of(p.pid());
    let since = started(server).expect("the server's start time");
    (p, (server, since))
}

/// Whether the process `pid` that started at `since` has ended, waiting
/// for it at most [`PATIENCE`].
fn ended((pid, since): (i32, u64)) -> bool {
    wait_until(PATIENCE, || started(pid) != Some(since))
}

#[test]
fn a_dropped_proc_takes_what_its_child_started() {
    let (p, server) = server_under_timeout();
    drop(p);
    assert!(ended(server), "the server {} outlived the test", server.0);
}

#[test]
fn a_test_that_panics_takes_its_processes_too() {
    quiet_injected_panics();
    let (learn, learned) = std::sync::mpsc::channel();
    let failed = thread::spawn(move || {
        let (_p, server) = server_under_timeout();
        learn.send(server).unwrap();
        // A test that fails while its server runs.
        std::panic::panic_any(INJECTED);
    })
    .join();
    assert!(failed.is_err());
    let server = learned.recv().unwrap();
    assert!(ended(server), "the server {} outlived the test", server.0);
}
