//! What an operator meets around the server: its command line at the
//! edges (`--help`, numbers, addresses, `--generate`), signals from
//! supervisors, the volume and the failures of its log, the process
//! metrics, and the client's output on a terminal and in a pipe.

mod support;
use support::*;


/// Runs `bin` with `env` and `args` to completion.
fn run_env(bin: &str, env: &[(&str, &str)], args: &[&str]) -> Outcome {
    run_with(command(bin).envs(env.iter().copied()).args(args), PATIENCE)
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
