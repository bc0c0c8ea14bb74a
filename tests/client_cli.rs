//! The client binary's command line at its edges: servers that are absent,
//! silent or wrong (and the library client beneath it against those), a
//! closed stdout, options on either side of `bench`, ranges, durations, its
//! own name, and the live progress on a terminal.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::{
    self, block_after, command, flags, free_udp_port, recv_within, run, run_env, server_proc,
    shipped, socket_on, within, Outcome, Proc, CLIENT_BIN, PATIENCE, V4,
};
use udp_greeter::Client;

/// Runs the client binary with `args` to completion.
fn client(args: &[&str]) -> Outcome {
    run(CLIENT_BIN, args, PATIENCE)
}

/// `args` and a bench short enough for a test, whatever comes first.
fn bench_json(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--seconds", "0.2", "--warmup", "0", "--json"]);
    let out = client(&all);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let json = out.stdout_text();
    assert!(json.starts_with('{') && json.ends_with("}\n"), "{json}");
    json
}

/// Spawns the client with its stdout and stderr piped; returns the child's
/// stdout and a thread collecting its stderr.
fn spawn_piped(args: &[&str]) -> (Proc, std::process::ChildStdout, thread::JoinHandle<String>) {
    let mut child = command(CLIENT_BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    (Proc::adopt(child), stdout, errors)
}

fn finished(mut p: Proc, errors: thread::JoinHandle<String>) -> (ExitStatus, String) {
    let status = p.finish(PATIENCE);
    (
        status,
        support::join_within(errors, PATIENCE, "stderr reader"),
    )
}

// ---------------------------------------------------------------------------
// Servers that are absent, silent or wrong

/// Runs the client against `server` with `args`; it must fail with one
/// line on stderr that names the server; returns that line.
fn client_fails(server: &str, args: &[&str]) -> String {
    let mut all = vec!["--server", server];
    all.extend_from_slice(args);
    let out = run(CLIENT_BIN, &all, PATIENCE);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(lines[0].contains(server), "{out:?}");
    lines[0].to_string()
}

#[test]
fn no_server() {
    // Six tries of 20 s would far outlast the run's patience: the client
    // must take the operating system's word (port unreachable) at once.
    let server = format!("127.0.0.1:{}", free_udp_port());
    let line = client_fails(&server, &["--timeout", "20s", "--retries", "5"]);
    assert!(line.contains("nothing is listening at"), "{line}");
}

#[test]
fn silent_server() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let line = client_fails(&server, &["--timeout", "200ms", "--retries", "1"]);
    assert!(
        line.contains("no reply from") && line.contains("after 2 tries"),
        "{line}"
    );
    assert!(!line.contains("came back"), "nothing came back: {line}");
}

/// A name that is itself a greeting is one the server's loop guard
/// refuses: the client says so before sending it, reports the reply that
/// does not come, and still greets every name after it.
#[test]
fn greeting_as_a_name() {
    let server = udp_greeter::Server::bind(support::config(2, 64)).unwrap();
    let addr = server.local_addr().to_string();
    let args = ["--server", &addr, "--timeout", "200ms", "--retries", "0"];
    let out = client(&[&args[..], &["Michael", "Hello, Bob!", "Sarah"]].concat());
    let stats = support::shutdown_within(server, PATIENCE).unwrap();
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert_eq!(
        out.stdout_text(),
        "Hello, Michael!\nHello, Sarah!\n",
        "{out:?}"
    );
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(
        lines[0].starts_with("warning: \"Hello, Bob!\" is itself a greeting")
            && lines[0].contains("--loop-guard=false"),
        "{out:?}"
    );
    assert!(
        lines[1].starts_with("error: no reply from") && lines[1].contains("\"Hello, Bob!\""),
        "{out:?}"
    );
    assert_eq!((stats.replied, stats.dropped_loop), (2, 1), "{stats}");
}

/// Without the loop guard the server greets a greeting too: the warning
/// still comes first, and the reply is printed.
#[test]
fn greeting_as_a_name_without_the_guard() {
    let mut config = support::config(1, 64);
    config.loop_guard = false;
    let server = udp_greeter::Server::bind(config).unwrap();
    let addr = server.local_addr().to_string();
    let out = client(&["--server", &addr, "Hello, Bob!"]);
    support::shutdown_within(server, PATIENCE).unwrap();
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout_text(), "Hello, Hello, Bob!!\n", "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
    assert!(out.stderr.starts_with("warning: "), "{out:?}");
}

/// An echo server answers, but not with the greeting: the client says what
/// came back, and cuts a long name short in its message.
#[test]
fn echo_server() {
    let echo = socket_on(V4);
    let server = echo.local_addr().unwrap().to_string();
    let stop = support::StopOnDrop(Default::default());
    let flag = stop.0.clone();
    let echoer = thread::spawn(move || {
        let mut echoed = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some((payload, from)) = recv_within(&echo, Duration::from_millis(50)) {
                echo.send_to(&payload, from).unwrap();
                echoed += 1;
            }
        }
        echoed
    });
    let name = "x".repeat(1100);
    let line = client_fails(&server, &["--timeout", "300ms", "--retries", "1", &name]);
    assert!(
        line.contains("2 datagrams came back that were not the greeting"),
        "{line}"
    );
    assert!(line.contains("(1100 bytes)") && line.len() < 300, "{line}");
    drop(stop);
    assert_eq!(support::join_within(echoer, PATIENCE, "echo server"), 2);
}

/// A fake server that answers wrong bytes first, then a stranger that sends
/// the right bytes from another address; only the fake server's right reply
/// may be taken, and only once it is sent.
#[test]
fn wrong_reply() {
    let fake = socket_on(V4);
    let stranger = socket_on(V4);
    let fake_addr = fake.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let client = Client::new(fake_addr)
        .unwrap()
        .timeout(Duration::from_secs(20))
        .retries(0);
    let t = thread::spawn(move || {
        let _ = tx.send(client.greet(b"Michael").map_err(|e| e.to_string()));
    });

    let (request, client_addr) = recv_within(&fake, PATIENCE).expect("the client's request");
    assert_eq!(request, b"Michael");
    fake.send_to(b"Hello, Tracy!", client_addr).unwrap();
    fake.send_to(b"Hello, Michael", client_addr).unwrap();
    fake.send_to(b"Hello, Michael!!", client_addr).unwrap();
    stranger.send_to(b"Hello, Michael!", client_addr).unwrap();
    // None of those is the reply: the client is still waiting.
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the client took a wrong reply"
    );
    fake.send_to(b"Hello, Michael!", client_addr).unwrap();
    let got = rx.recv_timeout(PATIENCE).expect("the client's answer");
    assert_eq!(got.unwrap(), b"Hello, Michael!");
    support::join_within(t, PATIENCE, "client thread");
}

/// The same through the client binary.
#[test]
fn wrong_reply_binary() {
    let fake = socket_on(V4);
    let stranger = socket_on(V4);
    let fake_addr = fake.local_addr().unwrap();
    let mut client = Proc::spawn(support::command(CLIENT_BIN).args([
        "--server",
        &fake_addr.to_string(),
        "--timeout",
        "20s",
        "--retries",
        "0",
        "Michael",
    ]));
    let (request, client_addr) = recv_within(&fake, PATIENCE).expect("the client's request");
    assert_eq!(request, b"Michael");
    fake.send_to(b"Hello, Sarah!", client_addr).unwrap();
    stranger.send_to(b"Hello, Michael!", client_addr).unwrap();
    assert!(
        client.wait_exit(Duration::from_millis(500)).is_none(),
        "the client took a wrong reply: {}",
        client.stdout_text()
    );
    fake.send_to(b"Hello, Michael!", client_addr).unwrap();
    let status = client.finish(PATIENCE);
    assert!(status.success(), "{}", client.stderr_text());
    assert_eq!(client.stdout_text(), "Hello, Michael!\n");
}

// ---------------------------------------------------------------------------
// Output, options and ranges

/// As `... | head -1`: the reader goes away after the first greeting. A
/// fake server holds the second reply back until then, so the client
/// surely writes into the closed pipe.
#[test]
fn closed_stdout_ends_quietly() {
    let fake = socket_on(V4);
    let addr = fake.local_addr().unwrap().to_string();
    let (p, stdout, errors) = spawn_piped(&["--server", &addr, "--retries", "0", "one", "two"]);

    let (request, from) = recv_within(&fake, PATIENCE).expect("the first request");
    assert_eq!(request, b"one");
    fake.send_to(b"Hello, one!", from).unwrap();
    let (line, reader) = within(PATIENCE, "the first greeting", move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (line, reader)
    });
    assert_eq!(line, "Hello, one!\n");
    drop(reader);

    let (request, from) = recv_within(&fake, PATIENCE).expect("the second request");
    assert_eq!(request, b"two");
    fake.send_to(b"Hello, two!", from).unwrap();
    let (status, stderr) = finished(p, errors);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

/// As `bench --json | true`.
#[test]
fn bench_closed_stdout_ends_quietly() {
    let (_server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let addr = format!("127.0.0.1:{port}");
    let (p, stdout, errors) = spawn_piped(&[
        "bench",
        "--server",
        &addr,
        "--seconds",
        "0.2",
        "--warmup",
        "0",
        "--json",
    ]);
    drop(stdout);
    let (status, stderr) = finished(p, errors);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn shared_options_on_either_side_of_bench() {
    let (_server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let addr = format!("127.0.0.1:{port}");
    let server_field = format!("\"server\":\"{addr}\"");
    for args in [
        vec!["--server", &addr, "bench", "--timeout", "300ms"],
        vec!["--timeout", "300ms", "bench", "--server", &addr],
        vec!["--server", &addr, "--timeout", "300ms", "bench"],
        vec!["bench", "--server", &addr, "--timeout", "300ms"],
    ] {
        let json = bench_json(&args);
        assert!(json.contains(&server_field), "{args:?}: {json}");
        assert!(json.contains("\"timeout\":0.3,"), "{args:?}: {json}");
        assert!(!json.contains("Hello"), "{args:?}: {json}");
    }
    // A flag after `bench` wins over the variable as well.
    let out = run_env(
        CLIENT_BIN,
        &[("UDP_GREETER_SERVER", "x")],
        &[
            "bench",
            "--server",
            &addr,
            "--seconds",
            "0.1",
            "--warmup",
            "0",
            "--json",
        ],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
}

#[test]
fn retries_is_not_for_bench() {
    let out = client(&["--retries", "3", "bench", "--seconds", "0.1"]);
    out.refusal(&["--retries", "bench"]);
}

#[test]
fn zero_is_refused_at_parse_time() {
    client(&["bench", "--seconds", "0"]).refusal(&[
        "--seconds",
        "'0'",
        "must be from 1 ms to 24 h",
    ]);
    client(&["bench", "--count", "0"]).refusal(&["--count", "'0'", "must be at least 1"]);
    for args in [
        ["--server", "127.0.0.1:0", "bench"],
        ["bench", "--server", "127.0.0.1:0"],
        ["--server", "127.0.0.1:0", "Bo"],
    ] {
        client(&args).refusal(&["--server", "'127.0.0.1:0'", "port 0 cannot be sent to"]);
    }
}

#[test]
fn negative_numbers_get_the_range() {
    client(&["--timeout", "-1"]).refusal(&["--timeout", "'-1'", "must be from 1 ms to 1 h"]);
    client(&["--retries", "-1"]).refusal(&["--retries", "'-1'", "must be at least 0"]);
    client(&["bench", "--window", "-3"]).refusal(&[
        "--window",
        "'-3'",
        "must be from 1 to 16777216",
    ]);
    client(&["bench", "--warmup", "-1s"]).refusal(&["--warmup", "'-1s'", "must be from 0 to 24 h"]);
}

#[test]
fn durations_with_units() {
    let (_server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let addr = format!("127.0.0.1:{port}");
    let out = client(&[
        "bench",
        "--server",
        &addr,
        "--seconds",
        "300ms",
        "--warmup",
        "0.1s",
        "--timeout",
        "1.5",
        "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let json = out.stdout_text();
    for field in ["\"seconds\":0.3,", "\"warmup\":0.1,", "\"timeout\":1.5,"] {
        assert!(json.contains(field), "no {field} in {json}");
    }
    let out = client(&["--server", &addr, "--timeout", "2m", "Bo"]);
    assert_eq!(out.stdout_text(), "Hello, Bo!\n", "{out:?}");
    client(&["--timeout", "1d"]).refusal(&[
        "--timeout",
        "expected a duration, like 1.5, 1.5s, 500ms or 2m",
    ]);
}

#[test]
fn server_variable_is_named() {
    let out = run_env(CLIENT_BIN, &[("UDP_GREETER_SERVER", "127.0.0.1")], &[]);
    out.refusal(&[
        "invalid value '127.0.0.1' for UDP_GREETER_SERVER: ",
        "expected HOST:PORT",
    ]);
    let out = run_env(
        CLIENT_BIN,
        &[("UDP_GREETER_SERVER", "127.0.0.1:0")],
        &["bench"],
    );
    out.refusal(&["UDP_GREETER_SERVER", "port 0 cannot be sent to"]);
}

#[test]
fn own_about_and_version() {
    let out = client(&["--version"]);
    assert_eq!(
        out.stdout_text(),
        format!("udp-greeter-client {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = client(&["--help"]).stdout_text();
    assert!(
        help.starts_with("Sends each NAME to a udp-greeter server and prints its greeting"),
        "{help}"
    );
}

/// Every flag of the README's client synopsis is in the matching --help.
#[test]
fn readme_client_synopsis_matches_help() {
    let readme = shipped("README.md");
    let synopsis = block_after(&readme, "## Client options");
    let plain = client(&["--help"]).stdout_text();
    let bench = client(&["bench", "--help"]).stdout_text();
    let mut checked = 0;
    for line in synopsis.lines() {
        let help = if line.contains(" bench ") || !line.starts_with("udp-greeter-client") {
            &bench
        } else {
            &plain
        };
        for flag in flags(line) {
            assert!(
                help.contains(&format!("{flag} ")),
                "{flag} ({line}) is not in --help:\n{help}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 13, "{synopsis}");
}

/// On a terminal the progress line moves during the warm-up. `script`
/// (util-linux) gives the client one.
#[test]
fn warm_up_progress_moves() {
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "this test needs `script` from util-linux (Debian's bsdutils)"
    );
    let (_server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let to = SocketAddr::new(V4, port);
    let line = format!("{CLIENT_BIN} bench --server {to} --rate 100 --seconds 0.1 --warmup 1.6");
    let mut script = Command::new("script");
    script
        .args(["-qefc", &line, "/dev/null"])
        .env_remove("UDP_GREETER_SERVER")
        .stdin(Stdio::null());
    let mut p = Proc::spawn(&mut script);
    let status = p.finish(PATIENCE);
    let screen = p.stdout_text();
    assert!(status.success(), "{screen}");
    // The latest warm-up time shown, from lines like `warm-up   1.0 s of 1.6 s`.
    let shown: Vec<f64> = screen
        .split('\r')
        .filter_map(|l| l.trim().strip_prefix("warm-up"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        shown.iter().any(|s| *s >= 1.0),
        "warm-up never moved: {shown:?} in {screen:?}"
    );
    assert!(screen.contains("of 1.6 s"), "{screen:?}");
    // The warm-up's own counts move too.
    let warm_sent: Vec<u64> = screen
        .split('\r')
        .filter(|l| l.trim().starts_with("warm-up"))
        .filter_map(|l| {
            l.split("sent ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        warm_sent.iter().any(|n| *n > 0),
        "no request counted during the warm-up: {screen:?}"
    );
}

/// A bench that measured no valid reply measured no server: it says so,
/// shows no round-trip time, and exits 1, in both output forms.
#[test]
fn bench_without_replies_fails() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let args = [
        "bench",
        "--server",
        &server,
        "--seconds",
        "0.3",
        "--warmup",
        "0",
        "--timeout",
        "100ms",
    ];
    let out = support::run(CLIENT_BIN, &args, PATIENCE);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let table = out.stdout_text();
    assert!(
        table.contains("no reply measured") && !table.contains("p50"),
        "{table}"
    );
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(lines[0].contains("no reply from"), "{out:?}");
    assert!(lines[0].contains("nothing came back"), "{out:?}");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = support::run(CLIENT_BIN, &json_args, PATIENCE);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let report = support::bench_json(&out.stdout);
    assert_eq!(report["replies"], 0, "{report}");
    assert!(report.get("rtt_p50_us").is_none(), "{report}");
}

/// `--send` and `--pacing` choose the load's shape; the report names it,
/// and pacing without a rate is refused.
#[test]
fn send_and_pacing_flags() {
    let (_server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let to = format!("127.0.0.1:{port}");
    for (args, sending, pacing) in [
        (&["--send", "single", "--window", "4"][..], "single", None),
        (
            &["--send", "segmented", "--rate", "2000"][..],
            "segmented",
            Some("even"),
        ),
        (
            &["--rate", "2000", "--pacing", "bursts"][..],
            "batched",
            Some("bursts"),
        ),
    ] {
        let mut all = vec![
            "bench",
            "--server",
            &to,
            "--seconds",
            "0.2",
            "--warmup",
            "0",
            "--json",
        ];
        all.extend_from_slice(args);
        let out = support::run(CLIENT_BIN, &all, PATIENCE);
        assert_eq!(out.code(), Some(0), "{args:?}: {out:?}");
        let report = support::bench_json(&out.stdout);
        assert_eq!(report["sending"], sending, "{report}");
        assert_eq!(report["pacing"].as_str(), pacing, "{report}");
        assert!(support::json_count(&report, "replies") > 0, "{report}");
    }
    let out = support::run(
        CLIENT_BIN,
        &["bench", "--server", &to, "--pacing", "bursts"],
        PATIENCE,
    );
    assert_eq!(out.code(), Some(2), "{out:?}");
}
