//! The server binary's command line at its edges: ranges, negative numbers,
//! host names, durations, environment variables, signals, and the
//! documentation of all that.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::{
    ask, bound_port, command, recv_within, server_proc, socket_on, Outcome, Proc, PATIENCE,
    SERVER_BIN, V4,
};

/// Runs the server binary with `env` and `args` to completion.
fn run_env(env: &[(&str, &str)], args: &[&str]) -> Outcome {
    support::run_with(
        command(SERVER_BIN).envs(env.iter().copied()).args(args),
        PATIENCE,
    )
}

fn refused(out: &Outcome, words: &[&str]) {
    out.refusal(words);
}

/// `flag value` with a harmless port: should the value wrongly be accepted,
/// the server runs and the test fails on the exit status.
fn refuses(flag: &str, value: &str, words: &[&str]) {
    let out = run_env(&[], &[flag, value, "--bind", "127.0.0.1:0"]);
    let mut all = vec![flag, value];
    all.extend_from_slice(words);
    refused(&out, &all);
}

fn help() -> String {
    let out = run_env(&[], &["--help"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    out.stdout_text()
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
    let out = run_env(
        &[],
        &[
            "--rate-limit",
            "5",
            "--rate-burst",
            "0",
            "--bind",
            "127.0.0.1:0",
        ],
    );
    refused(&out, &["--rate-burst", "must be at least 1"]);
}

#[test]
fn rate_burst_needs_rate_limit() {
    let out = run_env(&[], &["--rate-burst", "10", "--bind", "127.0.0.1:0"]);
    refused(&out, &["required"]);
    assert!(out.stderr.contains("--rate-limit"), "{}", out.stderr);
    // The same from the environment: it would be ignored as silently.
    let out = run_env(
        &[("UDP_GREETER_RATE_BURST", "10")],
        &["--bind", "127.0.0.1:0"],
    );
    refused(&out, &["required"]);
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
fn addresses_need_a_port() {
    for flag in ["--bind", "--metrics-addr"] {
        for value in ["127.0.0.1", "localhost", "[::1]"] {
            let mut args = vec![flag, value];
            if flag != "--bind" {
                args.extend(["--bind", "127.0.0.1:0"]);
            }
            refused(
                &run_env(&[], &args),
                &[
                    flag,
                    "expected HOST:PORT, like 127.0.0.1:9999 or [::1]:9999",
                ],
            );
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
    let out = run_env(&[("UDP_GREETER_STATS_INTERVAL", "1.5")], &["--version"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    refuses("--stats-interval", "1x", &["expected a duration"]);
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
        let out = run_env(&[(var, value)], &args);
        refused(
            &out,
            &[&format!("invalid value '{value}' for {var}: "), reason],
        );
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
    let out = run_env(&on, &["--bind", &bind, "--reuse-port=false"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("Address already in use"), "{out:?}");
}

#[test]
fn own_about_and_version() {
    let out = run_env(&[], &["--version"]);
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

/// The SigIgn and SigCgt masks of process `pid`.
fn signal_masks(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0)
    };
    (mask("SigIgn:"), mask("SigCgt:"))
}

fn bit(sig: libc::c_int) -> u64 {
    1 << (sig - 1)
}

/// Waits until `pid`'s signal dispositions satisfy `done`.
fn wait_masks(pid: i32, what: &str, done: impl Fn(u64, u64) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (ignored, caught) = signal_masks(pid);
        if done(ignored, caught) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: SigIgn {ignored:x}, SigCgt {caught:x}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

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
    let mut server = Proc::spawn(&mut cmd);
    let port = server
        .wait_stderr_for(PATIENCE, bound_port)
        .unwrap_or_else(|| panic!("no Bind line:\n{}", server.stderr_text()));
    let pid = server.pid();
    let term = bit(libc::SIGINT) | bit(libc::SIGTERM);
    wait_masks(
        pid,
        "SIGHUP ignored, SIGINT and SIGTERM caught",
        |ign, cgt| {
            cgt & term == term && ign & bit(libc::SIGHUP) != 0 && cgt & bit(libc::SIGHUP) == 0
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
    let all = bit(libc::SIGINT) | bit(libc::SIGTERM) | bit(libc::SIGHUP);
    wait_masks(server.pid(), "SIGINT, SIGTERM, SIGHUP caught", |_, cgt| {
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

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The first code block after `heading` in `text`.
fn block_after<'a>(text: &'a str, heading: &str) -> &'a str {
    let rest = &text[text.find(heading).unwrap_or_else(|| panic!("no {heading}"))..];
    let start = rest.find("```\n").expect("a code block") + 4;
    let len = rest[start..].find("```").expect("its end");
    &rest[start..start + len]
}

/// The `--flags` of a synopsis.
fn flags(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

fn has_flag(help: &str, flag: &str) -> bool {
    help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}["))
}

#[test]
fn readme_server_synopsis_matches_help() {
    let readme = repo_file("README.md");
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
    let doc = repo_file("docs/operations.md");
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
    assert_eq!(rows, 13, "settings rows in docs/operations.md");
}

/// The unit leaves every setting to the environment file: flags on
/// `ExecStart` would override the file's variables.
#[test]
fn systemd_unit_settings_come_from_the_environment() {
    let unit = repo_file("contrib/udp-greeter.service");
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    assert!(!exec.contains("--"), "{exec}");
    let file = unit
        .find("EnvironmentFile=-/etc/default/udp-greeter")
        .expect("EnvironmentFile");
    for default in [
        "Environment=UDP_GREETER_BIND=0.0.0.0:9999",
        "Environment=UDP_GREETER_STATS_INTERVAL=60",
    ] {
        let at = unit.find(default).unwrap_or_else(|| panic!("no {default}"));
        assert!(at < file, "{default} after EnvironmentFile=");
    }
}

/// The example error of docs/operations.md is what the server prints.
#[test]
fn documented_variable_error() {
    let out = run_env(&[("UDP_GREETER_BIND", "x")], &[]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    let line = out.stderr.lines().next().unwrap_or_default();
    let doc = repo_file("docs/operations.md");
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words(&doc).contains(&format!("`{line}`")),
        "docs/operations.md does not show {line:?}"
    );
}
