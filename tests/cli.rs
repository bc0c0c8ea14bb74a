//! The real binaries end to end: the server and the client, their output,
//! their logs, their exit codes and their error messages.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use crate::support::{
    self, ask, recv_within, run, server_proc, socket_on, try_server_proc, Proc, CLIENT_BIN,
    PATIENCE, SERVER_BIN, V4, V6,
};
use udp_greeter::Client;

/// The source ports of the `Received from HOST:PORT.` lines of `log`.
fn received_from(log: &str, host: &str) -> Vec<u16> {
    let needle = format!("Received from {host}:");
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&needle)? + needle.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (rest[digits.len()..] == *".").then(|| digits.parse().ok())?
        })
        .collect()
}

/// Waits until the server has logged `n` `Received from` lines for `host`.
fn wait_received(server: &Proc, host: &str, n: usize) -> Vec<u16> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let ports = received_from(&server.stderr_text(), host);
        if ports.len() >= n {
            return ports;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wanted {n} `Received from {host}:PORT.` lines; log:\n{}",
            server.stderr_text()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

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

/// A port on which nothing listens (bound, then closed again).
fn closed_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    let server = format!("127.0.0.1:{}", closed_port());
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

/// The server binary given `flag value` must exit 2 with one error line
/// naming the flag and the value.
fn rejects(flag: &str, value: &str) {
    // Port 0 unless the bind address is what is tested: should the value
    // wrongly be accepted, the server runs (and the test fails) harmlessly.
    let mut args = vec![flag, value];
    if flag != "--bind" {
        args.extend(["--bind", "127.0.0.1:0"]);
    }
    let out = run(SERVER_BIN, &args, PATIENCE);
    out.refusal(&[flag, &format!("'{value}'")]);
    // clap adds at most a hint or the possible values.
    assert!(out.stderr_lines().len() <= 3, "{}", out.stderr);
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
