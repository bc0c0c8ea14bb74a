//! The tutorial's own Python programs against ours, both ways.
//!
//! python3 is required: without it these tests fail, they do not skip.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{bound_port, command, run, server_proc, Proc, CLIENT_BIN, PATIENCE};

const PY_SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/udp_server.py");
const PY_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/udp_client.py");

const GREETINGS: &str = "Hello, Michael!\nHello, Tracy!\nHello, Sarah!\n";

/// The Python interpreter; fails the test with a clear message if missing.
fn python3() -> &'static str {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => "python3",
        Ok(out) => panic!("python3 --version failed: {out:?}"),
        Err(e) => panic!(
            "python3 is required to run the tutorial's programs (interop tests) \
             and was not found: {e}; install it (CI does: see .ci/run)"
        ),
    }
}

#[test]
fn python_client() {
    let py = python3();
    let (server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let out = run(py, &[PY_CLIENT, &port.to_string()], PATIENCE);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout_text(), GREETINGS);
    assert!(server.wait_stderr("Received from 127.0.0.1:", PATIENCE));
}

#[test]
fn python_server() {
    let py = python3();
    let server = Proc::spawn(command(py).args([PY_SERVER, "0"]));
    let deadline = Instant::now() + PATIENCE;
    let port = loop {
        if let Some(port) = bound_port(&server.stdout_text()) {
            break port;
        }
        assert!(
            Instant::now() < deadline,
            "the Python server printed no `Bind UDP on PORT...`; stdout: {:?} stderr: {:?}",
            server.stdout_text(),
            server.stderr_text()
        );
        thread::sleep(Duration::from_millis(5));
    };
    assert_ne!(port, 0);

    let out = run(
        CLIENT_BIN,
        &["--server", &format!("127.0.0.1:{port}"), "--timeout", "3s"],
        PATIENCE,
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout_text(), GREETINGS);

    // The tutorial's server logs each request the way ours does.
    assert!(server.wait_stdout("Received from 127.0.0.1:", PATIENCE));
    let deadline = Instant::now() + PATIENCE;
    while server
        .stdout_text()
        .matches("Received from 127.0.0.1:")
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "{}", server.stdout_text());
        thread::sleep(Duration::from_millis(5));
    }
}
