//! What an operator meets around the server: its command line at the
//! edges (`--help`, numbers, addresses, `--generate`), signals from
//! supervisors, the volume and the failures of its log, the process
//! metrics, and the client's output on a terminal and in a pipe.

mod support;
use support::*;

use std::net::SocketAddr;

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
