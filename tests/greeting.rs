//! The greeting, byte for byte, through a live in-process server.

use std::time::Duration;

use crate::support::{ask, config, shutdown_within, socket_on, V4};
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
