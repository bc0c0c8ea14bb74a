//! The Prometheus endpoint: what it serves, what it refuses, that it goes
//! with the server, and a clear error when its address is taken.

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use udp_greeter::prometheus_client::metrics::counter::Counter;
use udp_greeter::{greet, Request, Server};

use crate::support::{
    ask, config, http, run, settled, shutdown_within, socket_on, PATIENCE, SERVER_BIN, V4,
};

#[test]
fn metrics() {
    let mut c = config(2, 256);
    c.max_datagram = 16;
    c.metrics_addr = Some((V4, 0).into());
    let server = Server::bind(c).unwrap();
    let addr = server.metrics_addr().expect("a metrics address");
    assert_ne!(addr.port(), 0);
    let url = format!("http://{addr}/metrics");

    let sock = socket_on(V4);
    for i in 0..5 {
        let name = format!("name-{i}");
        let reply = ask(&sock, server.local_addr(), name.as_bytes());
        assert_eq!(reply, greet(name.as_bytes()));
    }
    // Over max_datagram: dropped, and counted as such.
    sock.send_to(&[b'x'; 40], server.local_addr()).unwrap();
    settled(&server, 6);

    let r = http("GET", &url, "");
    assert_eq!(r.status, 200, "{:?}", r.headers);
    let content_type = r.header("content-type").unwrap_or_default();
    assert!(
        content_type
            .to_ascii_lowercase()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers
    );
    let lines: Vec<&str> = r.body.lines().collect();
    for want in [
        "# TYPE udp_greeter_received_total counter",
        "udp_greeter_received_total 6",
        "# TYPE udp_greeter_datagrams_total counter",
        "udp_greeter_datagrams_total{fate=\"replied\"} 5",
        "udp_greeter_datagrams_total{fate=\"dropped_oversize\"} 1",
        "udp_greeter_datagrams_total{fate=\"dropped_queue_full\"} 0",
        "udp_greeter_datagrams_total{fate=\"send_failed\"} 0",
        "udp_greeter_datagrams_total{fate=\"dropped_rate_limited\"} 0",
        "udp_greeter_worker_panics_total 0",
        "# TYPE udp_greeter_queue_depth gauge",
        "udp_greeter_queue_depth 0",
        "udp_greeter_queue_capacity 256",
        "udp_greeter_workers 2",
        concat!(
            "udp_greeter_build_info{service=\"udp-greeter\",version=\"",
            env!("CARGO_PKG_VERSION"),
            "\",engine_version=\"",
            env!("CARGO_PKG_VERSION"),
            "\"} 1"
        ),
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{}", r.body);
    }
    // Every sample line is `name{labels} value` with a number for a value.
    for line in lines.iter().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        // The server's own, and the process_* metrics every client exports.
        assert!(
            name.starts_with("udp_greeter_") || name.starts_with("process_"),
            "{line}"
        );
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }

    let r = http("GET", &format!("http://{addr}/other"), "");
    assert_eq!(r.status, 404, "{:?}", r.headers);
    let r = http("POST", &url, "x");
    assert_eq!(r.status, 405, "{:?}", r.headers);
    assert!(
        r.header("allow").unwrap_or_default().starts_with("GET"),
        "{:?}",
        r.headers
    );
    let r = http("HEAD", &url, "");
    assert_eq!(r.status, 200);

    let stats = shutdown_within(server, PATIENCE).unwrap();
    assert_eq!(stats.replied, 5);
    // The endpoint goes with the server (tiny_http closes its listener on
    // its own thread, just after).
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the metrics endpoint outlived the server"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A service built on the engine serves its own metrics beside the
/// engine's, and its build_info names it and its version.
#[test]
fn a_services_own_metrics() {
    let mut c = config(2, 16);
    c.metrics_addr = Some((V4, 0).into());
    c.metrics_namespace = "lookup".to_string();
    let misses = Counter::<u64>::default();
    let counted = misses.clone();
    let server = Server::builder(c)
        .metrics(|registry| {
            registry
                .sub_registry_with_prefix("lookup")
                .register("misses", "Keys not found", misses)
        })
        .build_info("lookup", "1.2.3")
        .handler(move |request: &Request<'_>, reply: &mut Vec<u8>| {
            if request.payload == b"nope" {
                counted.inc();
            }
            reply.extend_from_slice(request.payload);
        })
        .start()
        .unwrap();
    let sock = socket_on(V4);
    for key in ["nope", "yes", "nope"] {
        assert_eq!(
            ask(&sock, server.local_addr(), key.as_bytes()),
            key.as_bytes()
        );
    }
    settled(&server, 3);
    let url = format!("http://{}/metrics", server.metrics_addr().unwrap());
    let r = http("GET", &url, "");
    assert_eq!(r.status, 200);
    let lines: Vec<&str> = r.body.lines().collect();
    for want in [
        "# TYPE lookup_misses_total counter",
        "lookup_misses_total 2",
        "lookup_received_total 3",
        concat!(
            "lookup_build_info{service=\"lookup\",version=\"1.2.3\",engine_version=\"",
            env!("CARGO_PKG_VERSION"),
            "\"} 1"
        ),
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{}", r.body);
    }
    shutdown_within(server, PATIENCE).unwrap();
}

#[test]
fn metrics_busy() {
    let taken = TcpListener::bind((V4, 0)).unwrap();
    let busy = taken.local_addr().unwrap();
    let mut c = config(2, 256);
    c.metrics_addr = Some(busy);
    let err = Server::bind(c).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot bind metrics {busy}: ")),
        "{msg}"
    );

    let out = run(
        SERVER_BIN,
        &["--bind", "127.0.0.1:0", "--metrics-addr", &busy.to_string()],
        PATIENCE,
    );
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains(&format!("error: cannot bind metrics {busy}: ")),
        "{}",
        out.stderr
    );
}

/// A server whose socket overflows while it is stopped: what the kernel
/// dropped there is `socket_dropped`, in the metrics and the final line,
/// beside `received` and in none of the fates. On loopback nothing else
/// drops, so the two add up to what was sent.
#[cfg(target_os = "linux")]
#[test]
fn drops_at_the_socket_are_counted() {
    use crate::support::{server_proc, wait_signal_handlers, wait_until};

    const N: u64 = 200;
    // A receive buffer of a few datagrams (the kernel keeps twice what is
    // asked, at least 2,304 bytes).
    let args = [
        "--bind",
        "127.0.0.1:0",
        "--recv-buffer",
        "4096",
        "--log-requests=false",
    ];
    let (mut server, port) = server_proc(&[&args[..], &["--metrics-addr", "127.0.0.1:0"]].concat());
    wait_signal_handlers(server.pid());
    let line = server.line_with("Serving metrics on ");
    let url = line[line.find("http://").expect("a URL")..].to_string();
    server.pause();
    let sock = socket_on(V4);
    for _ in 0..N {
        sock.send_to(&[b'x'; 512], (V4, port)).unwrap();
    }
    server.resume();
    // Read, or dropped: every datagram is one or the other once the
    // receiver has read what the socket kept.
    let count = |text: &str, name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let mut text = String::new();
    let all = wait_until(PATIENCE, || {
        text = http("GET", &url, "").body;
        count(&text, "udp_greeter_received_total")
            + count(&text, "udp_greeter_socket_dropped_total")
            == N
    });
    assert!(all, "{text}");
    let dropped = count(&text, "udp_greeter_socket_dropped_total");
    assert!(dropped > 0, "nothing dropped: {text}");
    let stats = server.stop();
    assert_eq!(stats.socket_dropped, dropped, "{stats}");
    assert_eq!(stats.received + stats.socket_dropped, N, "{stats}");
    assert!(stats.is_balanced(), "{stats}");
}
