//! What the server's log says, at the levels an operator picks.

use std::net::SocketAddr;

use crate::support::{
    ask, quiet_server_proc, server_proc, socket_on, wait_received, wait_signal_handlers, PATIENCE,
    V4,
};

/// An IPv4 client of a dual-stack socket shows in its IPv4 form, as the
/// tutorial prints it, not as `[::ffff:127.0.0.1]:PORT`.
#[test]
fn dual_stack_logs_ipv4_form() {
    let (mut server, port) = server_proc(&["--bind", "[::]:0", "--workers", "1"]);
    // An IPv4 request reaches the dual-stack socket from the IPv4-mapped
    // address `[::ffff:127.0.0.1]:PORT`.
    let sock = socket_on(V4);
    assert_eq!(ask(&sock, (V4, port).into(), b"hi"), b"Hello, hi!");
    let me = sock.local_addr().unwrap();
    let line = server.line_with("Received from");
    assert!(line.ends_with(&format!("Received from {me}.")), "{line}");
    server.stop();
}

/// `--log-level warn` still shows the closing counters when a datagram was
/// dropped: the operator's receipt of what was lost.
#[test]
fn final_stats_at_warn_when_something_was_dropped() {
    let (mut server, port) = quiet_server_proc(&[
        "--bind",
        "127.0.0.1:0",
        "--log-level",
        "warn",
        "--max-datagram",
        "8",
    ]);
    let sock = socket_on(V4);
    let to = SocketAddr::from((V4, port));
    assert_eq!(ask(&sock, to, b"short"), b"Hello, short!");
    sock.send_to(b"far too long", to).unwrap();
    assert!(
        server.wait_stderr("over 8 bytes", PATIENCE),
        "{}",
        server.stderr_text()
    );
    let stats = server.stop();
    assert_eq!((stats.replied, stats.dropped_oversize), (1, 1), "{stats}");
    let log = server.stderr_text();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("stats: received=2 ")),
        "{log}"
    );
}

/// When every datagram was answered the closing line is information: at
/// `--log-level warn` it is not shown.
#[test]
fn final_stats_at_info_when_all_answered() {
    let (mut server, port) = quiet_server_proc(&["--bind", "127.0.0.1:0", "--log-level", "warn"]);
    let sock = socket_on(V4);
    assert_eq!(ask(&sock, (V4, port).into(), b"Bo"), b"Hello, Bo!");
    wait_signal_handlers(server.pid());
    server.signal(libc::SIGTERM);
    assert!(
        server.finish(PATIENCE).success(),
        "{}",
        server.stderr_text()
    );
    let log = server.stderr_text();
    assert!(
        !log.contains("stats:"),
        "a clean run's receipt is info: {log}"
    );
}

#[test]
fn received_log() {
    let (server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let sock = socket_on(V4);
    let addr = SocketAddr::new(V4, port);
    assert_eq!(ask(&sock, addr, b"Michael"), b"Hello, Michael!");
    let me = sock.local_addr().unwrap().port();
    assert_eq!(wait_received(&server, "127.0.0.1", 1), vec![me]);
    assert!(server
        .stderr_text()
        .contains(&format!("Received from 127.0.0.1:{me}.\n")));
}

/// A flood cannot flood the log: at most 100 `Received from` lines a
/// second, and the rest said in one line with their count, at the latest
/// when the server stops.
#[test]
fn received_lines_capped_and_counted() {
    let (mut server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let sock = socket_on(V4);
    let to = SocketAddr::from((V4, port));
    for i in 0..300u32 {
        sock.send_to(format!("n{i}").as_bytes(), to).unwrap();
    }
    // The last one answered (on a socket of its own, apart from the
    // replies to the others): every one before it was read.
    assert_eq!(ask(&socket_on(V4), to, b"last"), b"Hello, last!");
    let stats = server.stop();
    let log = server.stderr_text();
    let shown = log.matches("] Received from ").count() as u64;
    let held: u64 = log
        .lines()
        .filter_map(|l| l.strip_suffix(" more `Received from` lines not shown"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(held > 0, "no held-back count:\n{log}");
    assert!(shown <= 200, "{shown} lines in at most two seconds:\n{log}");
    // Every request the workers saw is either shown or counted.
    assert_eq!(shown + held, stats.received, "{stats}\n{log}");
}
