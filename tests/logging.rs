//! What the server's log says, at the levels an operator picks.

use std::io::Write;
use std::net::SocketAddr;

use log::Level;
use udp_greeter::{Answer, Config, Request, Server, RECEIVED_TARGET};

use crate::support::{
    ask, config, quiet_server_proc, server_proc, settled, shutdown_within, socket_on,
    wait_received, wait_signal_handlers, LogWatch, Logged, PATIENCE, V4,
};

/// The lines an in-process server of `config` logs that name the client
/// of one request it answered, once it has stopped.
fn lines_about_one_request(config: Config) -> Vec<Logged> {
    let server = Server::bind(config).unwrap();
    let sock = socket_on(V4);
    let watch = LogWatch::new(sock.local_addr().unwrap().to_string());
    assert_eq!(ask(&sock, server.local_addr(), b"Bo"), b"Hello, Bo!");
    // Joined: every thread has logged all it will.
    shutdown_within(server, PATIENCE).unwrap();
    watch.lines()
}

/// A library says nothing per request, even with a logger installed at
/// `info`; `log_requests` turns the tutorial's line on.
#[test]
fn library_logs_no_line_per_request() {
    let quiet = lines_about_one_request(config(1, 16));
    assert!(quiet.is_empty(), "{quiet:?}");
    let loud = Config {
        log_requests: true,
        ..config(1, 16)
    };
    let lines = lines_about_one_request(loud);
    assert!(
        lines
            .iter()
            .any(|l| l.message.starts_with("Received from ") && l.target == RECEIVED_TARGET),
        "{lines:?}"
    );
}

/// What a failed handler wrote is the reason its warning shows, escaped,
/// and is never sent.
#[test]
fn handler_failure_shows_its_reason() {
    let server = Server::builder(config(1, 16))
        .handler(|_: &Request<'_>, reply: &mut Vec<u8>| {
            let _ = write!(reply, "database locked\nforged line");
            Answer::Fail
        })
        .start()
        .unwrap();
    let sock = socket_on(V4);
    let me = sock.local_addr().unwrap();
    let watch = LogWatch::new(me.to_string());
    sock.send_to(b"key", server.local_addr()).unwrap();
    assert_eq!(settled(&server, 1).handler_failed, 1);
    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_eq!(stats.replied, 0, "{stats}");
    let warnings: Vec<_> = watch
        .lines()
        .into_iter()
        .filter(|l| l.level == Level::Warn)
        .map(|l| l.message)
        .collect();
    assert_eq!(
        warnings,
        [format!(
            "handler failed on a datagram from {me}: database locked\\nforged line"
        )]
    );
}

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
