//! The server binary's command line and environment at their edges: bad
//! values and ranges, host names, ports in use, durations, `UDP_GREETER_*`
//! variables, signals, and the documentation of all that.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use crate::support::{
    self, ask, block_after, command, flags, http, recv_within, run, run_env, run_with, server_proc,
    server_with, shipped, socket_on, try_server_proc, Outcome, ENV_VARS, PATIENCE, SERVER_BIN, V4,
};
#[cfg(target_os = "linux")]
use crate::support::{signal_bit, wait_signal_masks};

/// `flag value` must be refused with one error line that holds the flag,
/// the value and every one of `words`. Port 0 unless the bind address is
/// what is tested: should the value wrongly be accepted, the server runs
/// (and the test fails on the exit status) harmlessly.
fn refuses(flag: &str, value: &str, words: &[&str]) -> Outcome {
    let mut args = vec![flag, value];
    if flag != "--bind" {
        args.extend(["--bind", "127.0.0.1:0"]);
    }
    let out = run(SERVER_BIN, &args, PATIENCE);
    let mut all = vec![flag, value];
    all.extend_from_slice(words);
    out.refusal(&all);
    out
}

/// As [`refuses`], with the value quoted in the error line.
fn rejects(flag: &str, value: &str) {
    let out = refuses(flag, value, &[&format!("'{value}'")]);
    // clap adds at most a hint or the possible values.
    assert!(out.stderr_lines().len() <= 3, "{}", out.stderr);
}

fn help() -> String {
    let out = run(SERVER_BIN, &["--help"], PATIENCE);
    assert_eq!(out.code(), Some(0), "{out:?}");
    out.stdout_text()
}

#[test]
fn workers_zero() {
    rejects("--workers", "0");
}

#[test]
fn workers_abc() {
    rejects("--workers", "abc");
}

#[test]
fn queue_zero() {
    rejects("--queue", "0");
}

#[test]
fn bind_nonsense() {
    rejects("--bind", "nonsense");
}

#[test]
fn log_level_loud() {
    rejects("--log-level", "loud");
}

#[test]
fn max_datagram_too_big() {
    rejects("--max-datagram", "70000");
}

#[test]
fn negative_numbers_get_the_range() {
    refuses("--workers", "-1", &["must be from 1 to 1024"]);
    refuses("--rate-limit", "-5", &["must be at least 1"]);
    refuses("--queue", "-1", &["must be from 1 to 1048576"]);
    refuses("--stats-interval", "-1", &["must be from 100 ms to 24 h"]);
}

#[test]
fn zero_rates_are_refused() {
    refuses("--rate-limit", "0", &["must be at least 1"]);
    let out = run(
        SERVER_BIN,
        &[
            "--rate-limit",
            "5",
            "--rate-burst",
            "0",
            "--bind",
            "127.0.0.1:0",
        ],
        PATIENCE,
    );
    out.refusal(&["--rate-burst", "must be at least 1"]);
}

#[test]
fn rate_burst_needs_rate_limit() {
    let out = run(
        SERVER_BIN,
        &["--rate-burst", "10", "--bind", "127.0.0.1:0"],
        PATIENCE,
    );
    out.refusal(&["required"]);
    assert!(out.stderr.contains("--rate-limit"), "{}", out.stderr);
    // The same from the environment: it would be ignored as silently.
    let out = run_env(
        SERVER_BIN,
        &[("UDP_GREETER_RATE_BURST", "10")],
        &["--bind", "127.0.0.1:0"],
    );
    out.refusal(&["required"]);
}

#[test]
fn rate_burst_help_has_one_default() {
    let help = help();
    // Without clap's `wrap_help`, each option is one line of --help.
    let entry = help
        .lines()
        .find(|l| l.trim_start().starts_with("--rate-burst "))
        .expect("--rate-burst in --help");
    assert_eq!(entry.matches("[default:").count(), 1, "{entry}");
    assert!(!entry.contains("[default: 0]"), "{entry}");
    assert!(entry.contains("--rate-limit"), "{entry}");
}

/// The burst is the bucket's whole size: 30 requests back to back get that
/// many replies, not the rate's worth plus the burst.
#[test]
fn rate_burst_is_the_bucket_size() {
    let (_server, port) = server_proc(&[
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--rate-limit",
        "5",
        "--rate-burst",
        "10",
    ]);
    let sock = socket_on(V4);
    let to = SocketAddr::new(V4, port);
    for i in 0..30 {
        sock.send_to(format!("r{i}").as_bytes(), to).unwrap();
    }
    let mut replies = 0;
    while recv_within(&sock, Duration::from_millis(500)).is_some() {
        replies += 1;
        assert!(replies <= 30);
    }
    // At 5 a second a slow sender may earn one or two more while sending.
    assert!((10..=12).contains(&replies), "{replies} replies");
}

#[test]
fn bind_host_name() {
    let (server, port) = server_proc(&["--bind", "localhost:0", "--log-level", "info"]);
    let needle = "--bind localhost:0 resolves to ";
    let log = server.stderr_text();
    let line = log
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} line in\n{log}"));
    let chosen: SocketAddr = line[line.find(needle).unwrap() + needle.len()..]
        .trim()
        .parse()
        .unwrap();
    assert!(chosen.ip().is_loopback(), "{line}");
    let to = SocketAddr::new(chosen.ip(), port);
    assert_eq!(ask(&support::socket_for(to), to, b"name"), b"Hello, name!");
}

#[test]
fn addr_in_use() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(SERVER_BIN, &["--bind", &addr], PATIENCE);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(lines[0].contains(&addr), "{out:?}");
    assert!(lines[0].contains("Address already in use"), "{out:?}");
}

/// TCP and UDP ports are separate: a TCP listener on the port does not stop
/// the UDP server from binding it (the tutorial's closing point).
#[test]
fn tcp_same_port() {
    // The OS picks the TCP port; its UDP twin may happen to be some other
    // process's, so a few ports are tried. A server that cannot bind any
    // port held by TCP fails every try.
    let mut failures = Vec::new();
    for _ in 0..5 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        match try_server_proc(&["--bind", &format!("127.0.0.1:{port}")]) {
            Ok((_server, bound)) => {
                assert_eq!(bound, port);
                let reply = ask(&socket_on(V4), SocketAddr::new(V4, port), b"Michael");
                assert_eq!(reply, b"Hello, Michael!");
                // The TCP listener still accepts on it: the two really
                // share the number.
                let addr = SocketAddr::new(V4, port);
                let _conn = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
                // Connected means queued: accept without blocking.
                tcp.set_nonblocking(true).unwrap();
                let (_peer, _) = tcp.accept().unwrap();
                return;
            }
            Err(log) => failures.push(log),
        }
    }
    panic!("could not bind UDP on a port held by TCP: {failures:?}");
}

#[test]
fn addresses_need_a_port() {
    for flag in ["--bind", "--metrics-addr"] {
        for value in ["127.0.0.1", "localhost", "[::1]"] {
            let mut args = vec![flag, value];
            if flag != "--bind" {
                args.extend(["--bind", "127.0.0.1:0"]);
            }
            run(SERVER_BIN, &args, PATIENCE).refusal(&[
                flag,
                "expected HOST:PORT, like 127.0.0.1:9999 or [::1]:9999",
            ]);
        }
    }
}

/// Fractions and units, as every duration flag takes them.
#[test]
fn stats_interval_fraction() {
    let (server, _port) = server_proc(&["--bind", "127.0.0.1:0", "--stats-interval", "300ms"]);
    assert!(
        server.wait_stderr("received_per_sec=", PATIENCE),
        "{}",
        server.stderr_text()
    );
    let out = run_env(
        SERVER_BIN,
        &[("UDP_GREETER_STATS_INTERVAL", "1.5")],
        &["--version"],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    refuses("--stats-interval", "1x", &["expected a duration"]);
}

#[test]
fn env_vars() {
    let help = run(SERVER_BIN, &["--help"], PATIENCE);
    assert!(help.status.success());
    let help = help.stdout_text();
    // Every variable but the client's.
    for var in ENV_VARS.iter().filter(|v| **v != "UDP_GREETER_SERVER") {
        assert!(
            help.contains(&format!("[env: {var}=")),
            "--help does not show {var}:\n{help}"
        );
    }

    for (var, value) in [
        ("UDP_GREETER_WORKERS", "0"),
        ("UDP_GREETER_REUSE_PORT", "maybe"),
    ] {
        let out = run_with(
            command(SERVER_BIN)
                .env(var, value)
                .args(["--bind", "127.0.0.1:0"]),
            PATIENCE,
        );
        assert_eq!(out.code(), Some(2), "{var}={value}: {}", out.stderr);
    }

    let (mut server, port) = server_with(
        command(SERVER_BIN)
            .env("UDP_GREETER_BIND", "127.0.0.1:0")
            .env("UDP_GREETER_WORKERS", "3")
            .env("UDP_GREETER_STATS_INTERVAL", "1")
            .env("UDP_GREETER_METRICS_ADDR", "127.0.0.1:0")
            .env("UDP_GREETER_REUSE_PORT", "true"),
    );
    // Not the default port: the bind address came from the environment.
    assert_ne!(port, 9999);
    let sock = socket_on(V4);
    let reply = ask(&sock, SocketAddr::from((V4, port)), b"env");
    assert_eq!(reply, b"Hello, env!");

    let line = server.line_with("Serving metrics on http://");
    let url = &line[line.find("http://").unwrap()..];
    let r = http("GET", url, "");
    assert_eq!(r.status, 200);
    assert!(
        r.body.lines().any(|l| l == "udp_greeter_workers 3"),
        "{}",
        r.body
    );

    // The periodic line: totals, then rates.
    let periodic = server.line_with("received_per_sec=");
    assert!(periodic.contains("stats: received="), "{periodic}");
    assert!(
        periodic.contains(" replied_per_sec=") && periodic.contains(" dropped_per_sec="),
        "{periodic}"
    );

    // With SO_REUSEPORT from the environment, a second process shares the port.
    let (mut second, second_port) = server_with(command(SERVER_BIN).args([
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--reuse-port",
    ]));
    assert_eq!(second_port, port);
    second.stop();
    let last = server.stop();
    assert_eq!(last.replied, last.received, "{last}");
}

#[test]
fn env_errors_name_the_variable() {
    for (var, value, reason) in [
        (
            "UDP_GREETER_BIND",
            "x",
            "expected HOST:PORT, like 127.0.0.1:9999 or [::1]:9999",
        ),
        ("UDP_GREETER_WORKERS", "-1", "must be from 1 to 1024"),
        ("UDP_GREETER_STATS_INTERVAL", "1x", "expected a duration"),
        (
            "UDP_GREETER_LOG_LEVEL",
            "loud",
            "error, warn, info, debug, trace",
        ),
        ("UDP_GREETER_REUSE_PORT", "maybe", "maybe"),
    ] {
        let mut args = vec!["--log-level", "info"];
        if var != "UDP_GREETER_BIND" {
            args.extend(["--bind", "127.0.0.1:0"]);
        }
        if var == "UDP_GREETER_LOG_LEVEL" {
            args.clear();
            args.extend(["--bind", "127.0.0.1:0"]);
        }
        let out = run_env(SERVER_BIN, &[(var, value)], &args);
        out.refusal(&[&format!("invalid value '{value}' for {var}: "), reason]);
        assert!(!out.stderr.contains("<"), "names a flag: {}", out.stderr);
    }
}

#[test]
fn flag_wins_over_bad_variable() {
    let (server, _port) = support::try_server_proc_env(
        &[("UDP_GREETER_WORKERS", "abc"), ("UDP_GREETER_BIND", "x")],
        &["--workers", "2", "--bind", "127.0.0.1:0"],
    )
    .unwrap_or_else(|log| panic!("the flags did not win:\n{log}"));
    drop(server);
}

#[test]
fn empty_variables_are_unset() {
    let empty = [
        ("UDP_GREETER_WORKERS", ""),
        ("UDP_GREETER_RATE_LIMIT", ""),
        ("UDP_GREETER_RATE_BURST", ""),
        ("UDP_GREETER_STATS_INTERVAL", ""),
        ("UDP_GREETER_METRICS_ADDR", ""),
        ("UDP_GREETER_LOG_LEVEL", ""),
        ("UDP_GREETER_LOG_FILE", ""),
        ("UDP_GREETER_REUSE_PORT", ""),
    ];
    let (server, port) = support::try_server_proc_env(&empty, &["--bind", "127.0.0.1:0"])
        .unwrap_or_else(|log| panic!("empty variables were not taken as unset:\n{log}"));
    assert_eq!(
        ask(&socket_on(V4), SocketAddr::new(V4, port), b"e"),
        b"Hello, e!"
    );
    drop(server);
}

/// `--reuse-port=false` overrides `UDP_GREETER_REUSE_PORT=true`: its bind of
/// a port held with SO_REUSEPORT is refused, where the variable alone
/// shares it.
#[test]
fn reuse_port_flag_overrides_variable() {
    let (_first, port) = server_proc(&["--bind", "127.0.0.1:0", "--reuse-port"]);
    let bind = format!("127.0.0.1:{port}");
    let on = [("UDP_GREETER_REUSE_PORT", "true")];
    let (shared, shared_port) = support::try_server_proc_env(&on, &["--bind", &bind])
        .unwrap_or_else(|log| panic!("the variable did not set SO_REUSEPORT:\n{log}"));
    assert_eq!(shared_port, port);
    drop(shared);
    let out = run_env(SERVER_BIN, &on, &["--bind", &bind, "--reuse-port=false"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("Address already in use"), "{out:?}");
}

#[test]
fn own_about_and_version() {
    let out = run(SERVER_BIN, &["--version"], PATIENCE);
    assert_eq!(
        out.stdout_text(),
        format!("udp-greeter {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = help();
    assert!(
        help.starts_with("Answers every UDP datagram `data` with `Hello, data!`"),
        "{help}"
    );
    assert!(help.contains("--log-level <LEVEL>"), "{help}");
}

// ---------------------------------------------------------------------------
// Signals

/// As under `nohup`: SIGHUP ignored when the server starts stays ignored.
#[cfg(target_os = "linux")]
#[test]
fn sighup_ignored_at_start_stays_ignored() {
    let mut cmd = command("sh");
    cmd.args([
        "-c",
        r#"trap "" HUP; exec "$0" "$@""#,
        SERVER_BIN,
        "--bind",
        "127.0.0.1:0",
    ]);
    let (mut server, port) = server_with(&mut cmd);
    let pid = server.pid();
    let term = signal_bit(libc::SIGINT) | signal_bit(libc::SIGTERM);
    wait_signal_masks(
        pid,
        "SIGHUP ignored, SIGINT and SIGTERM caught",
        |ign, cgt| {
            cgt & term == term
                && ign & signal_bit(libc::SIGHUP) != 0
                && cgt & signal_bit(libc::SIGHUP) == 0
        },
    );

    server.signal(libc::SIGHUP);
    let to = SocketAddr::new(V4, port);
    assert_eq!(ask(&socket_on(V4), to, b"hup"), b"Hello, hup!");
    assert!(
        !server.wait_stderr("shutting down", Duration::from_millis(300)),
        "{}",
        server.stderr_text()
    );
    assert!(server.alive(), "{}", server.stderr_text());

    server.signal(libc::SIGTERM);
    let status = server.finish(PATIENCE);
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    assert!(server.stderr_text().contains("shutting down"));
}

#[cfg(target_os = "linux")]
#[test]
fn sighup_shuts_down_gracefully() {
    let (mut server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let all = signal_bit(libc::SIGINT) | signal_bit(libc::SIGTERM) | signal_bit(libc::SIGHUP);
    wait_signal_masks(server.pid(), "SIGINT, SIGTERM, SIGHUP caught", |_, cgt| {
        cgt & all == all
    });
    let to = SocketAddr::new(V4, port);
    assert_eq!(ask(&socket_on(V4), to, b"up"), b"Hello, up!");
    server.signal(libc::SIGHUP);
    let status = server.finish(PATIENCE);
    let log = server.stderr_text();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    let stats = support::parse_stats(&log).unwrap_or_else(|| panic!("no stats line:\n{log}"));
    assert_eq!(stats.replied, 1, "{log}");
}

// ---------------------------------------------------------------------------
// The documentation against the binary

fn has_flag(help: &str, flag: &str) -> bool {
    help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}["))
}

#[test]
fn readme_server_synopsis_matches_help() {
    let readme = shipped("README.md");
    let synopsis = block_after(&readme, "## Server options");
    let found = flags(synopsis);
    assert!(found.len() >= 12, "{synopsis}");
    let help = help();
    for flag in found {
        assert!(has_flag(&help, &flag), "{flag} is not in --help:\n{help}");
    }
}

/// Each row of the settings table: the flag exists, with that variable.
#[test]
fn operations_settings_table_matches_help() {
    let doc = shipped("docs/operations.md");
    let help = help();
    let mut rows = 0;
    for line in doc.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let flag = cells[1].trim_matches('`').split([' ', '[']).next().unwrap();
        let var = cells[2].trim_matches('`');
        // Without clap's `wrap_help`, each option is one line of --help.
        let entry = help
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(&format!("{flag} ")) || l.starts_with(&format!("{flag}[")))
            .unwrap_or_else(|| panic!("{flag} is not in --help:\n{help}"));
        assert!(
            entry.contains(&format!("[env: {var}=")),
            "{flag}: not {var} in --help:\n{entry}"
        );
        rows += 1;
    }
    // Every option that has a variable has its row: none is left out.
    let options = help.lines().filter(|l| l.contains("[env: ")).count();
    assert_eq!(rows, options, "settings rows in docs/operations.md");
}

/// The example error of docs/operations.md is what the server prints.
#[test]
fn documented_variable_error() {
    let out = run_env(SERVER_BIN, &[("UDP_GREETER_BIND", "x")], &[]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    let line = out.stderr.lines().next().unwrap_or_default();
    let doc = shipped("docs/operations.md");
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words(&doc).contains(&format!("`{line}`")),
        "docs/operations.md does not show {line:?}"
    );
}
