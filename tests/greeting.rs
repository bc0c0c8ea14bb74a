//! The greeting, byte for byte: through a live in-process server, and from
//! the server binary to the client binary.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{
    ask, config, run, server_proc, shutdown_within, socket_on, wait_received, CLIENT_BIN, PATIENCE,
    V4, V6,
};
use udp_greeter::{Client, Server};

/// Sends `payload` from a plain socket and from the library's client, and
/// checks both get exactly `Hello, ` + payload + `!`.
fn greets(payload: &[u8], expected: &[u8]) {
    let server = Server::bind(config(2, 64)).unwrap();
    let addr = server.local_addr();

    let sock = socket_on(V4);
    assert_eq!(ask(&sock, addr, payload), expected);

    let client = Client::new(addr).unwrap().timeout(Duration::from_secs(3));
    assert_eq!(client.greet(payload).unwrap(), expected);

    let stats = shutdown_within(server, Duration::from_secs(5)).unwrap();
    assert_eq!(stats.received, 2, "{stats}");
    assert_eq!(stats.replied, 2, "{stats}");
    assert!(stats.is_balanced(), "{stats}");
}

#[test]
fn empty() {
    greets(b"", b"Hello, !");
}

#[test]
fn ascii() {
    greets(b"Michael", b"Hello, Michael!");
}

#[test]
fn utf8() {
    greets("Zoë, 世界 🌍".as_bytes(), "Hello, Zoë, 世界 🌍!".as_bytes());
}

#[test]
fn invalid_utf8() {
    greets(b"\xc3\x28\xff\xfe\x80", b"Hello, \xc3\x28\xff\xfe\x80!");
}

#[test]
fn largest() {
    // 65,499 bytes: the largest request whose greeting (65,507 bytes) still
    // fits in one IPv4 UDP datagram.
    let payload: Vec<u8> = (0..65_499u32).map(|i| (i % 251) as u8).collect();
    let mut expected = b"Hello, ".to_vec();
    expected.extend_from_slice(&payload);
    expected.push(b'!');
    assert_eq!(expected.len(), 65_507);
    greets(&payload, &expected);
}

// ---------------------------------------------------------------------------
// The binaries end to end

#[test]
fn default_names() {
    let (server, port) = server_proc(&["--bind", "127.0.0.1:0", "--workers", "2"]);
    let out = run(
        CLIENT_BIN,
        &["--server", &format!("127.0.0.1:{port}")],
        PATIENCE,
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout_text(),
        "Hello, Michael!\nHello, Tracy!\nHello, Sarah!\n"
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    // One request per name, so one line each, all from the client's port.
    let ports = wait_received(&server, "127.0.0.1", 3);
    assert!(ports.iter().all(|p| *p == ports[0] && *p != 0), "{ports:?}");
}

#[test]
fn given_names() {
    let (_server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    let out = run(
        CLIENT_BIN,
        &[
            "--server",
            &format!("127.0.0.1:{port}"),
            "Zoë",
            "Bob",
            "世界",
        ],
        PATIENCE,
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout_text(),
        "Hello, Zoë!\nHello, Bob!\nHello, 世界!\n"
    );
}

#[test]
fn ipv6() {
    let (server, port) = server_proc(&["--bind", "[::1]:0"]);
    let out = run(
        CLIENT_BIN,
        &["--server", &format!("[::1]:{port}")],
        PATIENCE,
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout_text(),
        "Hello, Michael!\nHello, Tracy!\nHello, Sarah!\n"
    );
    wait_received(&server, "[::1]", 3);

    let sock = socket_on(V6);
    assert_eq!(
        ask(&sock, SocketAddr::new(V6, port), b"Tracy"),
        b"Hello, Tracy!"
    );
    let me = sock.local_addr().unwrap().port();
    assert!(wait_received(&server, "[::1]", 4).contains(&me));
}

#[test]
fn large() {
    let (_server, port) = server_proc(&["--bind", "127.0.0.1:0"]);
    // 2,000 bytes: twice what the tutorial's recvfrom(1024) would have kept.
    let name: String = (0..2_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let out = run(
        CLIENT_BIN,
        &["--server", &format!("127.0.0.1:{port}"), &name],
        PATIENCE,
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout_text(), format!("Hello, {name}!\n"));

    let payload: Vec<u8> = (0..2_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let reply = ask(&socket_on(V4), SocketAddr::new(V4, port), &payload);
    assert_eq!(reply.len(), 2_008);
    assert_eq!(reply, udp_greeter::greet(&payload));
}
