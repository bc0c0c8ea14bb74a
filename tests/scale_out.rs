//! Several instances behind one address: processes sharing a port with
//! SO_REUSEPORT, and nginx (contrib/nginx-udp.conf) in front of three.
//!
//! The nginx test is ignored by a plain `cargo test`: it needs nginx with
//! its stream module, which `.ci/run` installs before running the ignored
//! tests too. Run where nginx is missing, it fails saying so.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use udp_greeter::{greet, Server};

use crate::support::{
    bench_json, command, config, find_program, first_reply, free_udp_port, json_count, recv_within,
    run, server_proc, server_with, shipped, shutdown_within, socket_on, Proc, TempDir, CLIENT_BIN,
    PATIENCE, SERVER_BIN, V4,
};

// ---------------------------------------------------------------------------
// SO_REUSEPORT

#[test]
fn reuse_port() {
    let (mut first, port) =
        server_proc(&["--bind", "127.0.0.1:0", "--reuse-port", "--workers", "1"]);
    // The second asks through its environment, in one of the spellings
    // a boolean variable accepts besides `true`.
    let (mut second, second_port) = server_with(
        command(SERVER_BIN)
            .env("UDP_GREETER_REUSE_PORT", "yes")
            .args(["--bind", &format!("127.0.0.1:{port}"), "--workers", "1"]),
    );
    assert_eq!(second_port, port);

    // The kernel picks a process by hashing each client's address and port,
    // so many client sockets reach both.
    let to = SocketAddr::from((V4, port));
    let clients: Vec<UdpSocket> = (0..64).map(|_| socket_on(V4)).collect();
    for (i, sock) in clients.iter().enumerate() {
        let name = format!("client-{i}");
        let (reply, from) = first_reply(sock, to, name.as_bytes());
        assert_eq!(reply, greet(name.as_bytes()));
        assert_eq!(from, to);
    }

    let a = first.stop();
    let b = second.stop();
    assert!(a.replied > 0, "the first process answered nothing: {a}");
    assert!(b.replied > 0, "the second process answered nothing: {b}");
    assert!(a.replied + b.replied >= 64, "{a}\n{b}");
    for s in [&a, &b] {
        assert_eq!(s.received, s.replied, "{s}");
    }
}

/// Without the flag on both, the second bind is refused, whichever of the
/// two lacks it: one line naming the address and the operating system's
/// error, and saying that both must set `--reuse-port`.
#[test]
fn reuse_port_off() {
    for (first_args, second_args) in [(&["--reuse-port"][..], &[][..]), (&[], &["--reuse-port"])] {
        let mut args = vec!["--bind", "127.0.0.1:0"];
        args.extend_from_slice(first_args);
        let (mut first, port) = server_proc(&args);
        let bind = format!("127.0.0.1:{port}");
        let mut args = vec!["--bind", &bind];
        args.extend_from_slice(second_args);
        let out = run(SERVER_BIN, &args, PATIENCE);
        first.stop();
        assert_eq!(out.code(), Some(1), "{args:?}: {out:?}");
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "{args:?}: {out:?}");
        for words in [
            &format!("cannot bind UDP {bind}: ")[..],
            "Address already in use",
            "both sockets must set SO_REUSEPORT (--reuse-port)",
        ] {
            assert!(lines[0].contains(words), "no {words:?} in {out:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// nginx in front of three instances

/// The stream module, where this nginx builds it as a loadable module.
fn stream_module() -> Option<&'static Path> {
    [
        "/usr/lib/nginx/modules/ngx_stream_module.so",
        "/usr/lib64/nginx/modules/ngx_stream_module.so",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.is_file())
}

/// contrib/nginx-udp.conf with this test's addresses: nginx on `listen`,
/// the upstream on `upstreams`, and its files in `dir`.
fn nginx_config(dir: &Path, listen: SocketAddr, upstreams: &[SocketAddr]) -> String {
    let conf = shipped("contrib/nginx-udp.conf");
    for needed in [
        "stream {",
        "upstream udp_greeter {",
        "udp",
        "proxy_pass udp_greeter;",
        "proxy_responses 1;",
    ] {
        assert!(
            conf.contains(needed),
            "contrib/nginx-udp.conf lost {needed:?}"
        );
    }
    // One process that a kill stops for good, and files of its own.
    let mut out = format!(
        "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n",
        dir = dir.display()
    );
    let mut in_upstream = false;
    let mut servers_written = false;
    for line in conf.lines() {
        let t = line.trim_start();
        if t.starts_with('#') {
            continue;
        }
        if t.starts_with("load_module ") {
            if let Some(module) = stream_module() {
                out += &format!("load_module {};\n", module.display());
            }
            continue;
        }
        if t.starts_with("worker_processes ") {
            continue;
        }
        if t.starts_with("upstream ") {
            in_upstream = true;
        } else if in_upstream && t.starts_with('}') {
            in_upstream = false;
        }
        if in_upstream && t.starts_with("server ") {
            if !servers_written {
                for u in upstreams {
                    out += &format!("        server {u};\n");
                }
                servers_written = true;
            }
            continue;
        }
        if t.starts_with("listen ") {
            assert!(t.contains(" udp"), "the shipped listen is not UDP: {t}");
            out += &format!("        listen {listen} udp;\n");
            continue;
        }
        out += line;
        out.push('\n');
    }
    assert!(
        servers_written,
        "no upstream servers in contrib/nginx-udp.conf"
    );
    out
}

/// nginx as a child process, killed on drop.
struct Nginx {
    proc: Proc,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    fn start(upstreams: &[SocketAddr]) -> Nginx {
        let bin = find_program("nginx").unwrap_or_else(|| {
            panic!(
                "nginx is not installed: this test needs nginx with its stream module \
                 (apt-get install nginx libnginx-mod-stream; .ci/run does)"
            )
        });
        let mut last_log = String::new();
        // nginx refuses to listen on port 0, so the test picks a port, which
        // may be taken between choosing and binding it: try again.
        for _ in 0..5 {
            let dir = TempDir::new("nginx");
            let addr = SocketAddr::from((V4, free_udp_port()));
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, nginx_config(dir.path(), addr, upstreams)).unwrap();
            let mut cmd = command(&bin);
            cmd.arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&conf);
            let proc = Proc::spawn(&mut cmd);
            let mut nginx = Nginx { proc, addr, dir };
            if nginx.ready() {
                return nginx;
            }
            last_log = nginx.error_log();
        }
        panic!(
            "nginx did not start (without its stream module it refuses the config: \
             apt-get install libnginx-mod-stream); its error log:\n{last_log}"
        );
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Whether a greeting comes back through nginx; false if nginx exited.
    fn ready(&mut self) -> bool {
        let sock = socket_on(V4);
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if !self.proc.alive() {
                return false;
            }
            let _ = sock.send_to(b"ready?", self.addr);
            if let Some((reply, _)) = recv_within(&sock, Duration::from_millis(200)) {
                assert_eq!(reply, b"Hello, ready?!");
                return true;
            }
        }
        panic!(
            "nginx did not answer within {PATIENCE:?}; its error log:\n{}\nits stderr:\n{}",
            self.error_log(),
            self.proc.stderr_text()
        );
    }
}

#[test]
#[ignore = "needs nginx with its stream module (.ci/run installs them): cargo test --test tests scale_out::nginx -- --include-ignored"]
fn nginx() {
    let servers: Vec<Server> = (0..3)
        .map(|_| Server::bind(config(2, 256)).unwrap())
        .collect();
    let upstreams: Vec<SocketAddr> = servers.iter().map(Server::local_addr).collect();
    let nginx = Nginx::start(&upstreams);

    // Every reply byte-exact, and from nginx's address.
    let clients: Vec<UdpSocket> = (0..32).map(|_| socket_on(V4)).collect();
    for round in 0..3 {
        for (i, sock) in clients.iter().enumerate() {
            let name = format!("client {i} round {round} \u{e9}\0\u{7f}");
            let (reply, from) = first_reply(sock, nginx.addr, name.as_bytes());
            assert_eq!(reply, greet(name.as_bytes()));
            assert_eq!(from, nginx.addr);
        }
    }

    // The bench client checks every reply against its request too.
    let out = run(
        CLIENT_BIN,
        &[
            "bench",
            "--server",
            &nginx.addr.to_string(),
            "--seconds",
            "1",
            "--warmup",
            "0.2",
            "--window",
            "16",
            "--sockets",
            "16",
            "--count",
            "1000000",
            "--json",
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "bench failed: {out:?}");
    let report = bench_json(&out.stdout);
    eprintln!("bench through nginx: {report}");
    let (sent, replies) = (json_count(&report, "sent"), json_count(&report, "replies"));
    assert!(replies > 0, "{report}");
    assert_eq!(
        json_count(&report, "bad"),
        0,
        "replies that were not the greeting: {report}"
    );
    assert_eq!(json_count(&report, "duplicates"), 0, "{report}");
    assert!(
        json_count(&report, "lost") * 20 <= sent,
        "more than 5% lost: {report}"
    );

    drop(nginx);
    let stats: Vec<_> = servers
        .into_iter()
        .map(|s| shutdown_within(s, PATIENCE).unwrap())
        .collect();
    let total: u64 = stats.iter().map(|s| s.replied).sum();
    assert!(total >= replies + 96, "{stats:?}");
    for (i, s) in stats.iter().enumerate() {
        assert!(s.is_balanced(), "{s}");
        // Round robin: a third each; a tenth is a generous floor.
        assert!(
            s.replied * 10 >= total,
            "instance {i} answered {} of {total}",
            s.replied
        );
    }
}
