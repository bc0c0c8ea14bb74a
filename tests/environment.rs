//! Settings from `UDP_GREETER_*` environment variables: listed by `--help`,
//! refused when bad, and obeyed by a server given nothing else.

use std::net::SocketAddr;

use crate::support::{
    ask, command, http, run, run_with, server_with, socket_on, ENV_VARS, PATIENCE, SERVER_BIN, V4,
};

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
