//! What an operator meets around the server: its command line at the
//! edges (`--help`, numbers, addresses, `--generate`), signals from
//! supervisors, the volume and the failures of its log, the process
//! metrics, and the client's output on a terminal and in a pipe.

use crate::support::*;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

/// Runs `bin` with `env` and `args` to completion.
fn run_env(bin: &str, env: &[(&str, &str)], args: &[&str]) -> Outcome {
    run_with(command(bin).envs(env.iter().copied()).args(args), PATIENCE)
}

fn help_of(bin: &str, args: &[&str]) -> String {
    let out = run(bin, args, PATIENCE);
    assert_eq!(out.code(), Some(0), "{out:?}");
    out.stdout_text()
}

// ---------------------------------------------------------------------------
// --help

/// In every `--help`, an option's variable comes before its default,
/// whether clap shows the default or the text gives it in words.
#[test]
fn help_shows_env_then_default() {
    let helps = [
        help_of(SERVER_BIN, &["--help"]),
        help_of(CLIENT_BIN, &["--help"]),
        help_of(CLIENT_BIN, &["bench", "--help"]),
    ];
    let mut both = 0;
    for help in &helps {
        for line in help.lines() {
            let (Some(env), Some(default)) = (line.find("[env: "), line.find("[default: ")) else {
                continue;
            };
            assert!(env < default, "default before variable: {line}");
            both += 1;
        }
    }
    // Every server option with a variable has a default but --log-file,
    // and the client's --server is listed twice.
    assert!(both >= 13, "{helps:?}");
}

/// `--reuse-port` lists every spelling it takes, and a bad variable names
/// them instead of saying only that it was no boolean.
#[test]
fn reuse_port_shows_what_it_takes() {
    let help = help_of(SERVER_BIN, &["--help"]);
    let entry = help
        .lines()
        .find(|l| l.trim_start().starts_with("--reuse-port"))
        .expect("--reuse-port in --help");
    assert!(
        entry.contains("[possible values: true, false, yes, no, on, off, 1, 0, y, n, t, f]"),
        "{entry}"
    );
    let out = run_env(
        SERVER_BIN,
        &[("UDP_GREETER_REUSE_PORT", "maybe")],
        &["--bind", "127.0.0.1:0"],
    );
    out.refusal(&[
        "invalid value 'maybe' for UDP_GREETER_REUSE_PORT: ",
        "true, false, yes, no, on, off, 1, 0",
    ]);
    assert!(!out.stderr.contains("not a boolean"), "{}", out.stderr);
    let out = run_env(
        SERVER_BIN,
        &[],
        &["--reuse-port=maybe", "--bind", "127.0.0.1:0"],
    );
    out.refusal(&["--reuse-port", "maybe"]);
    assert!(out.stderr.contains("yes, no"), "{}", out.stderr);
}

/// Any case, from the variable as from the flag.
#[test]
fn reuse_port_in_any_case() {
    let (mut first, port) = server_with(
        command(SERVER_BIN)
            .env("UDP_GREETER_REUSE_PORT", "YES")
            .args(["--bind", "127.0.0.1:0"]),
    );
    let (mut second, again) =
        server_proc(&["--bind", &format!("127.0.0.1:{port}"), "--reuse-port=On"]);
    assert_eq!(again, port);
    second.stop();
    first.stop();
}

// ---------------------------------------------------------------------------
// Signals

/// The final line a graceful stop logs, and no cut-short one.
fn stopped_gracefully(p: &mut Proc, what: &str) -> udp_greeter::Snapshot {
    let status = p.finish(PATIENCE);
    let log = p.stderr_text();
    assert_eq!(status.code(), Some(0), "{what}: {status:?}\n{log}");
    assert!(!log.contains("cut short"), "{what}:\n{log}");
    parse_stats(&log).unwrap_or_else(|| panic!("{what}: no final stats line:\n{log}"))
}

/// Two signals at once are one request: SIGTERM and SIGINT (two kinds, so
/// the kernel cannot merge them into one) sent back to back end in a
/// graceful stop, not in exit 130.
#[test]
fn two_signals_at_once_are_one_request() {
    for attempt in 0..5 {
        let (mut server, port) = server_proc(&["--bind", "127.0.0.1:0", "--workers", "1"]);
        wait_signal_handlers(server.pid());
        let to = SocketAddr::from((V4, port));
        assert_eq!(ask(&socket_on(V4), to, b"once"), b"Hello, once!");
        server.signal(libc::SIGTERM);
        server.signal(libc::SIGINT);
        let stats = stopped_gracefully(&mut server, &format!("attempt {attempt}"));
        assert_eq!(stats.replied, 1, "attempt {attempt}: {stats}");
    }
}

/// `timeout` passes the signal it gets to the server and then to its
/// process group, which holds the server too: one `kill` of `timeout`
/// reaches the server twice and must still stop it gracefully; and one at
/// any moment of the server's start ends it, gracefully or by the
/// signal's default action, which `timeout` then takes itself.
#[cfg(target_os = "linux")]
#[test]
fn kill_through_timeout_stops_gracefully() {
    use std::os::unix::process::ExitStatusExt;

    let timeout = find_program("timeout").expect("`timeout` (coreutils) is not installed");
    let wrapped = || {
        let mut cmd = command(&timeout);
        cmd.args(["30", SERVER_BIN, "--bind", "127.0.0.1:0"]);
        cmd
    };
    for attempt in 0..5 {
        let (mut p, _port) = server_with(&mut wrapped());
        wait_supervising(p.pid());
        // The server wires its signals before it binds, so they are in
        // place once `Bind UDP on` is logged.
        p.signal(libc::SIGTERM);
        stopped_gracefully(&mut p, &format!("attempt {attempt}"));
    }
    for attempt in 0..10 {
        // As soon as `timeout` has its child: mostly while the server starts.
        let mut p = Proc::spawn(&mut wrapped());
        wait_supervising(p.pid());
        p.signal(libc::SIGTERM);
        let what = format!("early attempt {attempt}");
        let status = p.wait_exit(PATIENCE).unwrap_or_else(|| {
            panic!(
                "{what}: still running after {PATIENCE:?}:\n{}",
                p.stderr_text()
            )
        });
        // Killed by SIGTERM before the server caught it; or 143 from the
        // fork of `timeout` that had not yet become the server, which
        // takes the signal for one before `timeout` had a child.
        let before_the_server =
            status.code() == Some(128 + libc::SIGTERM) && p.stderr_text().is_empty();
        if status.signal() != Some(libc::SIGTERM) && !before_the_server {
            stopped_gracefully(&mut p, &what);
        }
    }
}

/// Waits until `timeout` (coreutils), process `pid`, supervises its child:
/// until it has armed its timer, which it does once `fork` has returned.
///
/// Before that, `timeout` 9.1 takes a SIGTERM for one that came before it
/// had a child and exits 143 at once, leaving the child it has just
/// started running with nothing to stop it; on a busy machine that moment
/// can last until after the server has logged `Bind UDP on`. Later
/// versions block the signal across the fork.
#[cfg(target_os = "linux")]
fn wait_supervising(pid: i32) {
    let timers = format!("/proc/{pid}/timers");
    let armed = wait_until(PATIENCE, || {
        std::fs::read_to_string(&timers).is_ok_and(|t| t.contains("signal: 14/"))
    });
    assert!(
        armed,
        "`timeout` ({pid}) armed no SIGALRM timer within {PATIENCE:?}: {:?}",
        std::fs::read_to_string(&timers)
    );
}

/// A signal after the grace, while the first one's shutdown cannot finish,
/// exits at once with 130, and first logs the counters so far, marked as
/// cut short.
///
/// To keep the shutdown from finishing, the log file is a FIFO the test
/// fills and never reads: the worker blocks writing its `Received from`
/// line there (stderr, written first, still shows every line). The signal
/// thread must not block behind it: its lines go to stderr all the same.
#[cfg(target_os = "linux")]
#[test]
fn later_signal_exits_130_with_the_counters_cut_short() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let dir = TempDir::new("fifo");
    let fifo = dir.path().join("log");
    let made = run("mkfifo", &[fifo.to_str().unwrap()], PATIENCE);
    assert!(made.status.success(), "mkfifo: {made:?}");
    // A reader that never reads, so that the server's open does not wait
    // for one.
    let mut reader = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let (mut server, port) = server_proc(&[
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--log-file",
        fifo.to_str().unwrap(),
    ]);
    wait_signal_handlers(server.pid());
    // stderr comes first: the file may not have the line yet, and filling
    // the FIFO before it does would block the start, not the shutdown.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    while !String::from_utf8_lossy(&seen).contains("Bind UDP on") {
        assert!(
            std::time::Instant::now() < deadline,
            "no Bind line in the FIFO"
        );
        let mut buf = [0u8; 4096];
        match std::io::Read::read(&mut reader, &mut buf) {
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }

    let mut filler = std::fs::File::options()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    for chunk in [&[b'#'; 4096][..], &[b'#'; 1][..]] {
        while filler.write(chunk).is_ok() {}
    }

    socket_on(V4)
        .send_to(b"stuck", SocketAddr::from((V4, port)))
        .unwrap();
    server.line_with("Received from");
    server.signal(libc::SIGTERM);
    server.line_with("shutting down");
    thread::sleep(Duration::from_millis(300));
    assert!(
        server.alive(),
        "stopped though its worker could not finish:\n{}",
        server.stderr_text()
    );
    server.signal(libc::SIGTERM);
    let status = server.finish(PATIENCE);
    let log = server.stderr_text();
    assert_eq!(status.code(), Some(130), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("stats (cut short): "))
        .unwrap_or_else(|| panic!("no cut-short line:\n{log}"));
    assert!(line.contains("[WARN]"), "{line}");
    assert!(line.contains("stats (cut short): received=1 "), "{line}");
    assert!(line.contains(" control_truncated=0"), "{line}");
    assert!(!log.contains("stats: received="), "{log}");
}

// ---------------------------------------------------------------------------
// The log: per-request lines, failures

/// `--log-requests=false` (or its variable) leaves out the `Received from`
/// lines, and only them: the start, the periodic counters and the final
/// ones stay.
#[test]
fn log_requests_false_keeps_the_rest() {
    for (env, flag) in [
        (None, Some("--log-requests=false")),
        (Some(("UDP_GREETER_LOG_REQUESTS", "false")), None),
        (
            Some(("UDP_GREETER_LOG_REQUESTS", "true")),
            Some("--log-requests=no"),
        ),
    ] {
        let mut cmd = command(SERVER_BIN);
        cmd.envs(env)
            .args(["--bind", "127.0.0.1:0", "--stats-interval", "100ms"]);
        cmd.args(flag);
        let (mut server, port) = server_with(&mut cmd);
        let sock = socket_on(V4);
        let to = SocketAddr::from((V4, port));
        for name in ["a", "b", "c"] {
            assert_eq!(
                ask(&sock, to, name.as_bytes()),
                format!("Hello, {name}!").as_bytes()
            );
        }
        server.line_with("received_per_sec=");
        let stats = server.stop();
        assert_eq!(stats.replied, 3, "{stats}");
        let log = server.stderr_text();
        assert!(!log.contains("Received from"), "{env:?} {flag:?}:\n{log}");
        assert!(!log.contains("not shown"), "{env:?} {flag:?}:\n{log}");
        assert!(log.contains("Bind UDP on"), "{log}");
        assert!(log.contains("shutting down"), "{log}");
    }
    // The default, and the flag alone, keep them.
    for args in [&[][..], &["--log-requests"][..]] {
        let (mut server, port) = server_with(
            command(SERVER_BIN)
                .args(["--bind", "127.0.0.1:0"])
                .args(args),
        );
        assert_eq!(
            ask(&socket_on(V4), SocketAddr::from((V4, port)), b"d"),
            b"Hello, d!"
        );
        server.stop();
        assert!(server.stderr_text().contains("Received from"), "{args:?}");
    }
}

/// A log file that cannot be written is said on stderr once (at most once
/// a minute), and the count of lines lost closes stderr at exit.
#[test]
fn log_file_write_failures_are_told() {
    let (mut server, port) = server_proc(&["--bind", "127.0.0.1:0", "--log-file", "/dev/full"]);
    let sock = socket_on(V4);
    let to = SocketAddr::from((V4, port));
    for name in ["a", "b", "c"] {
        assert_eq!(
            ask(&sock, to, name.as_bytes()),
            format!("Hello, {name}!").as_bytes()
        );
    }
    server.line_with("Received from");
    server.stop();
    let log = server.stderr_text();
    let told: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot write to log file /dev/full"))
        .collect();
    assert_eq!(told.len(), 1, "{log}");
    assert!(told[0].contains("No space left on device"), "{log}");
    let last = log.lines().last().unwrap_or_default();
    let n: u64 = last
        .strip_prefix("warning: log writes failed: ")
        .and_then(|rest| rest.strip_suffix(" lines not written to /dev/full"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of lost lines at the end:\n{log}"));
    // Bind, three Received, shutting down, stats.
    assert!(n >= 6, "{n}:\n{log}");
}

// ---------------------------------------------------------------------------
// Metrics

/// The endpoint serves the `process_*` metrics every Prometheus client
/// exports, and every help text in one style, ending with a period.
#[cfg(target_os = "linux")]
#[test]
fn metrics_have_process_conventions() {
    let (mut server, _port) =
        server_proc(&["--bind", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"]);
    let line = server.line_with("Serving metrics on http://");
    let url = line[line.find("http://").unwrap()..].trim().to_string();
    let r = http("GET", &url, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let value = |name: &str| -> f64 {
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{}", r.body))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = value("process_start_time_seconds");
    assert!(
        start <= now + 1.0 && start > now - 600.0,
        "{start} vs {now}"
    );
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    // stdin, stdout, stderr, the UDP socket and the metrics listener.
    assert!(value("process_open_fds") >= 5.0, "{}", r.body);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(
        r.body
            .contains("# TYPE process_cpu_seconds_total counter\n"),
        "{}",
        r.body
    );
    let helps: Vec<&str> = r
        .body
        .lines()
        .filter(|l| l.starts_with("# HELP "))
        .collect();
    assert!(helps.len() >= 14, "{}", r.body);
    for help in helps {
        assert!(help.ends_with('.'), "not one style: {help}");
    }
    server.stop();
}

// ---------------------------------------------------------------------------
// Numbers and addresses

/// A number too large says how large it may be.
#[test]
fn too_large_says_at_most() {
    let out = run(CLIENT_BIN, &["--retries", "4294967296"], PATIENCE);
    out.refusal(&["--retries", "4294967296", "must be at most 4294967295"]);
    let out = run(
        SERVER_BIN,
        &["--rate-limit", "99999999999", "--bind", "127.0.0.1:0"],
        PATIENCE,
    );
    out.refusal(&["--rate-limit", "99999999999", "must be at most 4294967295"]);
    let out = run_env(
        SERVER_BIN,
        &[("UDP_GREETER_RECV_BUFFER", "99999999999999999999999")],
        &["--bind", "127.0.0.1:0"],
    );
    out.refusal(&[
        "UDP_GREETER_RECV_BUFFER",
        "must be at most 18446744073709551615",
    ]);
}

/// Dotted digits that are no IPv4 address are refused as such, without
/// asking a resolver for a host of that name.
#[test]
fn malformed_ipv4_is_not_a_host_name() {
    for value in ["256.1.1.1:9999", "1.2.3:9999", "10.0.0.1.1:80"] {
        let out = run(SERVER_BIN, &["--bind", value], PATIENCE);
        let host = &value[..value.rfind(':').unwrap()];
        out.refusal(&[
            "--bind",
            &format!("'{host}' is not an IPv4 address"),
            "0 to 255",
        ]);
        assert!(!out.stderr.contains("resolve"), "{}", out.stderr);
    }
    let out = run_env(
        CLIENT_BIN,
        &[("UDP_GREETER_SERVER", "300.0.0.1:9999")],
        &["Bo"],
    );
    out.refusal(&["UDP_GREETER_SERVER", "'300.0.0.1' is not an IPv4 address"]);
}

// ---------------------------------------------------------------------------
// The environment, read and left alone

/// The binaries read their variables without changing the process's
/// environment: `std::env::remove_var` and `set_var` are unsafe from
/// edition 2024 on, since another thread may read the environment.
#[test]
fn binaries_leave_the_environment_alone() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut files = vec![dir.clone()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for call in ["remove_var(", "set_var("] {
            assert!(!text.contains(call), "{} calls {call}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 3, "{checked} files under src/bin");
}

/// An empty variable still counts as unset, and `--help` still names it.
#[test]
fn empty_variable_is_unset_and_still_listed() {
    let empty = [("UDP_GREETER_WORKERS", ""), ("UDP_GREETER_BIND", "")];
    let help = run_env(SERVER_BIN, &empty, &["--help"]);
    assert_eq!(help.code(), Some(0), "{help:?}");
    let help = help.stdout_text();
    assert!(help.contains("[env: UDP_GREETER_WORKERS=]"), "{help}");
    let (mut server, port) = server_with(
        command(SERVER_BIN)
            .envs(empty)
            .args(["--bind", "127.0.0.1:0"]),
    );
    let to = SocketAddr::from((V4, port));
    assert_eq!(ask(&socket_on(V4), to, b"e"), b"Hello, e!");
    server.stop();
}

// ---------------------------------------------------------------------------
// --generate

/// Each kind is printed, in full, by both binaries; the man page names the
/// program and its options.
#[test]
fn generate_man_and_completions() {
    for (bin, name, options) in [
        (
            SERVER_BIN,
            "udp-greeter",
            &["bind", "workers", "reuse-port", "log-file", "generate"][..],
        ),
        (
            CLIENT_BIN,
            "udp-greeter-client",
            &["server", "timeout", "retries", "generate"][..],
        ),
    ] {
        let man = run(bin, &["--generate", "man"], PATIENCE);
        assert_eq!(man.code(), Some(0), "{man:?}");
        assert!(man.stderr.is_empty(), "{man:?}");
        let page = man.stdout_text();
        let roff_name = name.replace('-', "\\-");
        assert!(page.contains(&format!(".TH {name} 1")), "{page}");
        assert!(page.contains(&format!(".SH NAME\n{roff_name} ")), "{page}");
        for option in options {
            let flag = format!("\\fB\\-\\-{}\\fR", option.replace('-', "\\-"));
            assert!(page.contains(&flag), "{flag} not in the man page of {name}");
        }
        if bin == SERVER_BIN {
            assert!(page.contains("UDP_GREETER_BIND"), "{page}");
        }
        for (kind, marker) in [
            (
                "complete-bash",
                format!("complete -F _{}", name.replace('-', "__")),
            ),
            ("complete-zsh", format!("#compdef {name}")),
            ("complete-fish", format!("complete -c {name}")),
        ] {
            let out = run(bin, &["--generate", kind], PATIENCE);
            assert_eq!(out.code(), Some(0), "{kind}: {out:?}");
            let script = out.stdout_text();
            assert!(script.contains(&marker), "{kind} of {name}: no {marker:?}");
            for option in options {
                // fish names a long option `-l NAME`, the others `--NAME`.
                let named = if kind == "complete-fish" {
                    format!("-l {option}")
                } else {
                    format!("--{option}")
                };
                assert!(script.contains(&named), "{kind} of {name}: no {named:?}");
            }
        }
    }
}

/// A kind that does not exist is a bad value: exit 2, the kinds listed.
#[test]
fn generate_bad_kind() {
    for bin in [SERVER_BIN, CLIENT_BIN] {
        let out = run(bin, &["--generate", "complete-tcsh"], PATIENCE);
        out.refusal(&["--generate", "complete-tcsh"]);
        assert!(out.stderr.contains("man, complete-bash"), "{}", out.stderr);
    }
}

/// A bad variable does not stand in the way of packaging: `--generate`
/// runs before bad values are reported, as `--help` does.
#[test]
fn generate_despite_bad_variable() {
    let out = run_env(
        SERVER_BIN,
        &[("UDP_GREETER_BIND", "x")],
        &["--generate", "man"],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout_text().contains(".TH udp-greeter"), "{out:?}");
}

// ---------------------------------------------------------------------------
// The client's output: exact in a pipe, escaped on a terminal

/// A name with what a terminal would obey (colours, a title, a bell, the
/// one-byte CSI) and text in other scripts; with `not_utf8`, a byte that is
/// not UTF-8 at its end.
#[cfg(unix)]
fn hostile_name(not_utf8: bool) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let mut name = "Zoë \x1b[31mred\x1b]0;owned\x07 \u{9b}2J"
        .as_bytes()
        .to_vec();
    if not_utf8 {
        name.extend(b" \xff");
    }
    std::ffi::OsString::from_vec(name)
}

/// A server on loopback that answers every datagram with its greeting,
/// whatever its bytes, until dropped; and its address.
fn echoing_server() -> (StopOnDrop, std::thread::JoinHandle<()>, SocketAddr) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let sock = socket_on(V4);
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = thread::spawn(move || {
        while !stopped.load(Ordering::Relaxed) {
            if let Some((request, from)) = recv_within(&sock, Duration::from_millis(50)) {
                let _ = sock.send_to(&udp_greeter::greet(&request), from);
            }
        }
    });
    (StopOnDrop(stop), thread, addr)
}

/// In a pipe the reply's bytes come out exactly, escapes and all, with a
/// newline: what a script reads is what the server sent.
#[cfg(unix)]
#[test]
fn client_pipe_gets_exact_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let (stop, thread, addr) = echoing_server();
    let name = hostile_name(true);
    let out = run_with(
        command(CLIENT_BIN)
            .args(["--server", &addr.to_string(), "--"])
            .arg(&name),
        PATIENCE,
    );
    drop(stop);
    join_within(thread, PATIENCE, "echoing server");
    assert_eq!(out.code(), Some(0), "{out:?}");
    let mut expected = udp_greeter::greet(name.as_bytes());
    expected.push(b'\n');
    assert_eq!(out.stdout, expected, "{:?}", out.stdout_text());
}

/// On a terminal the same reply shows its control bytes escaped, and its
/// printable text (in any script) as it is. `script` gives the client one.
#[cfg(unix)]
#[test]
fn client_terminal_gets_escapes() {
    assert!(
        std::process::Command::new("script")
            .arg("--version")
            .output()
            .is_ok(),
        "this test needs `script` from util-linux (Debian's bsdutils)"
    );
    let (stop, thread, addr) = echoing_server();
    for (not_utf8, shown) in [
        (false, r"Hello, Zoë \x1b[31mred\x1b]0;owned\x07 \u{9b}2J!"),
        (
            true,
            r"Hello, Zoë \x1b[31mred\x1b]0;owned\x07 \u{9b}2J \xff!",
        ),
    ] {
        let mut script = command("script");
        script
            .args([
                "-qefc",
                r#"exec "$CLIENT" --server "$SERVER" -- "$NAME""#,
                "/dev/null",
            ])
            .env("SHELL", "/bin/sh")
            .env("CLIENT", CLIENT_BIN)
            .env("SERVER", addr.to_string())
            .env("NAME", hostile_name(not_utf8));
        let out = run_with(&mut script, PATIENCE);
        assert_eq!(out.code(), Some(0), "{out:?}");
        let screen = out.stdout_text();
        assert!(
            !out.stdout.iter().any(|&b| b == 0x1b || b == 0x07),
            "raw control bytes reached the terminal: {screen:?}"
        );
        assert!(
            !screen.contains('\u{9b}'),
            "a raw CSI reached the terminal: {screen:?}"
        );
        assert!(screen.contains(shown), "{screen:?}");
    }
    drop(stop);
    join_within(thread, PATIENCE, "echoing server");
}
