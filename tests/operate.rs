//! Operating the server: metrics over HTTP, replies from the right address,
//! SO_REUSEPORT, nginx in front of several instances, the systemd unit, and
//! settings from the environment.
//!
//! Needs `curl` and `nginx` with its stream module (`.ci/run` installs them);
//! a test fails, saying so, when one is missing. The systemd unit is checked
//! where `systemd-analyze` exists.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use udp_greeter::{Config, Server};

const SERVER_BIN: &str = env!("CARGO_BIN_EXE_udp-greeter");
const CLIENT_BIN: &str = env!("CARGO_BIN_EXE_udp-greeter-client");

/// How long any single wait may last before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

const LOCAL_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Another loopback address: all of 127.0.0.0/8 is loopback on Linux.
const OTHER_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn greeting(payload: &[u8]) -> Vec<u8> {
    [b"Hello, ", payload, b"!"].concat()
}

fn config(bind: SocketAddr) -> Config {
    let mut c = Config::new(bind);
    c.workers = 2;
    c.queue = 256;
    c
}

/// A UDP socket on `ip`, port 0, with a short read timeout.
fn socket_on(ip: IpAddr) -> UdpSocket {
    let sock = UdpSocket::bind((ip, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    sock
}

/// The next datagram, or `None` after `limit`.
fn recv_within(sock: &UdpSocket, limit: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0; 65_536];
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("recv on {:?}: {e} ({:?})", sock.local_addr(), e.kind()),
        }
    }
    None
}

/// Sends `payload` to `to` up to three times and returns the first reply
/// with the address it came from.
fn ask(sock: &UdpSocket, to: SocketAddr, payload: &[u8]) -> Option<(Vec<u8>, SocketAddr)> {
    for _ in 0..3 {
        sock.send_to(payload, to).unwrap();
        if let Some(reply) = recv_within(sock, Duration::from_secs(1)) {
            return Some(reply);
        }
    }
    None
}

/// Waits for the child, killing it and failing the test after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion within `limit`, collecting its output. Only a
/// failure to start it (a missing program) is returned as an error.
fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = wait_bounded(&mut child, limit, &format!("{cmd:?}"));
    Ok(Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    })
}

fn run_bounded(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    output_within(cmd, limit).unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

/// The server binary with none of the caller's `UDP_GREETER_*` variables.
fn server_command() -> Command {
    let mut cmd = Command::new(SERVER_BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("UDP_GREETER_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A running binary whose stderr is read line by line; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (seen before or arriving within PATIENCE) that
    /// contains `needle`.
    fn line_with(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The UDP port from `Bind UDP on PORT...`.
    fn port(&mut self) -> u16 {
        let line = self.line_with("Bind UDP on ");
        let rest = &line[line.find("Bind UDP on ").unwrap() + 12..];
        rest.trim_end_matches("...").parse().unwrap()
    }

    /// Waits until the process catches SIGTERM: the binary installs its
    /// handler just after it logs `Bind UDP on`, and a signal before that
    /// would kill it outright.
    fn wait_for_handler(&mut self) {
        let status = format!("/proc/{}/status", self.child.id());
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = fs::read_to_string(&status).unwrap_or_default();
            let caught = text
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                .unwrap_or(0);
            if caught & (1 << (libc::SIGTERM - 1)) != 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no SIGTERM handler after {PATIENCE:?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM, waits for a clean exit and returns the final stats line.
    fn terminate(&mut self) -> String {
        self.wait_for_handler();
        // SAFETY: kill() with a pid this test spawned and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let status = wait_bounded(&mut self.child, PATIENCE, "server after SIGTERM");
        assert!(status.success(), "exit status {status}");
        self.line_with("stats: received=")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=N` in a stats line.
fn stat(line: &str, key: &str) -> u64 {
    let tag = format!(" {key}=");
    let at = line
        .find(&tag)
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        + tag.len();
    line[at..].split(' ').next().unwrap().parse().unwrap()
}

/// The value of `"key":N` in a one-line JSON object.
fn json_u64(json: &str, key: &str) -> u64 {
    let tag = format!("\"{key}\":");
    let at = json
        .find(&tag)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + tag.len();
    json[at..]
        .split([',', '}'])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{key} in {json}: {e}"))
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "udp-greeter-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One HTTP exchange with the real curl: status, headers, body.
struct Http {
    status: u16,
    headers: String,
    body: String,
}

fn curl(args: &[&str], url: &str) -> Http {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5", "-i"])
        .args(args)
        .arg(url);
    let out = match output_within(&mut cmd, PATIENCE) {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("curl is not installed: the metrics tests need it (apt-get install curl)")
        }
        Err(e) => panic!("cannot run curl: {e}"),
    };
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Http {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    }
}

/// Waits until the server has settled everything and received `at_least`.
fn settled(server: &Server, at_least: u64) -> udp_greeter::Snapshot {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = server.stats();
        if s.received >= at_least && s.is_balanced() {
            return s;
        }
        assert!(Instant::now() < deadline, "not settled: {s}");
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

#[test]
fn metrics() {
    let mut c = config((LOCAL_V4, 0).into());
    c.max_datagram = 16;
    c.metrics_addr = Some((LOCAL_V4, 0).into());
    let server = Server::bind(c).unwrap();
    let addr = server.metrics_addr().expect("a metrics address");
    assert_ne!(addr.port(), 0);
    let url = format!("http://{addr}/metrics");

    let sock = socket_on(LOCAL_V4);
    for i in 0..5 {
        let name = format!("name-{i}");
        let (reply, _) = ask(&sock, server.local_addr(), name.as_bytes()).expect("a reply");
        assert_eq!(reply, greeting(name.as_bytes()));
    }
    sock.send_to(&[b'x'; 40], server.local_addr()).unwrap();
    settled(&server, 6);

    let r = curl(&[], &url);
    assert_eq!(r.status, 200, "{}", r.headers);
    assert!(
        r.headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
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
        "udp_greeter_datagrams_total{fate=\"send_errors\"} 0",
        "udp_greeter_datagrams_total{fate=\"dropped_rate_limited\"} 0",
        "udp_greeter_worker_panics_total 0",
        "# TYPE udp_greeter_queue_depth gauge",
        "udp_greeter_queue_depth 0",
        "udp_greeter_queue_capacity 256",
        "udp_greeter_workers 2",
        concat!(
            "udp_greeter_build_info{version=\"",
            env!("CARGO_PKG_VERSION"),
            "\"} 1"
        ),
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{}", r.body);
    }
    // Every sample line is `name{labels} value` with a number for a value.
    for line in lines.iter().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("udp_greeter_"), "{line}");
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }

    let r = curl(&[], &format!("http://{addr}/other"));
    assert_eq!(r.status, 404, "{}", r.headers);
    let r = curl(&["-X", "POST", "-d", "x"], &url);
    assert_eq!(r.status, 405, "{}", r.headers);
    assert!(r.headers.contains("Allow: GET"), "{}", r.headers);
    let r = curl(&["-I"], &url);
    assert_eq!(r.status, 200);

    let stats = server.shutdown().unwrap();
    assert_eq!(stats.replied, 5);
    // The endpoint goes with the server (tiny_http closes its listener on
    // its own thread, just after).
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the metrics endpoint outlived the server"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_busy() {
    let taken = TcpListener::bind((LOCAL_V4, 0)).unwrap();
    let busy = taken.local_addr().unwrap();
    let mut c = config((LOCAL_V4, 0).into());
    c.metrics_addr = Some(busy);
    let err = Server::bind(c).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot bind metrics {busy}: ")),
        "{msg}"
    );

    let out = run_bounded(
        server_command().args(["--bind", "127.0.0.1:0", "--metrics-addr", &busy.to_string()]),
        PATIENCE,
        "udp-greeter",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("error: cannot bind metrics {busy}: ")),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// Replies from the address the request was sent to
// ---------------------------------------------------------------------------

/// A client connected to `to` gets its reply, and an unconnected socket
/// sees it come from exactly `to`.
fn assert_answers_from(to: SocketAddr, client_ip: IpAddr) {
    let connected = socket_on(client_ip);
    connected.connect(to).unwrap();
    let mut got = None;
    for _ in 0..3 {
        connected.send(b"pktinfo").unwrap();
        let mut buf = [0; 64];
        match connected.recv(&mut buf) {
            Ok(n) => {
                got = Some(buf[..n].to_vec());
                break;
            }
            Err(_) => thread::sleep(Duration::from_millis(300)),
        }
    }
    assert_eq!(
        got.as_deref(),
        Some(&b"Hello, pktinfo!"[..]),
        "no reply on a socket connected to {to}"
    );

    let open = socket_on(client_ip);
    let (reply, from) = ask(&open, to, b"where").expect("a reply");
    assert_eq!(reply, b"Hello, where!");
    assert_eq!(from, to, "the reply left from another address");
}

#[test]
fn pktinfo_v4() {
    let server = Server::bind(config((Ipv4Addr::UNSPECIFIED, 0).into())).unwrap();
    let port = server.local_addr().port();
    assert_answers_from((OTHER_V4, port).into(), LOCAL_V4);
    assert_answers_from((LOCAL_V4, port).into(), LOCAL_V4);
    assert!(server.shutdown().unwrap().is_balanced());
}

#[test]
fn pktinfo_multicast() {
    // A request to a multicast group cannot be answered from the group's
    // address: the reply leaves from the interface's own (127.0.0.1).
    let server = Server::bind(config((Ipv4Addr::UNSPECIFIED, 0).into())).unwrap();
    let port = server.local_addr().port();
    let group = Ipv4Addr::new(239, 255, 71, (std::process::id() % 250) as u8 + 1);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sock.bind(&SocketAddr::from((LOCAL_V4, 0)).into()).unwrap();
    // Kept on the loopback interface and on this host.
    sock.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    sock.set_multicast_ttl_v4(0).unwrap();
    sock.set_multicast_loop_v4(true).unwrap();
    // Someone on the host must be in the group for it to be delivered; the
    // server's socket is bound to the port and takes it too.
    sock.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
        .unwrap_or_else(|e| panic!("cannot join {group} on the loopback interface: {e}"));
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (reply, from) = ask(&sock, (group, port).into(), b"group").expect("a reply");
    assert_eq!(reply, b"Hello, group!");
    assert_eq!(from, SocketAddr::from((LOCAL_V4, port)));
    let stats = server.shutdown().unwrap();
    assert_eq!(stats.send_errors, 0, "{stats}");
}

#[test]
fn pktinfo_v6() {
    let server = Server::bind(config((Ipv6Addr::UNSPECIFIED, 0).into())).unwrap();
    let port = server.local_addr().port();
    assert_answers_from(
        (Ipv6Addr::LOCALHOST, port).into(),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    );
    // The same socket also takes IPv4 unless the host makes IPv6 sockets
    // IPv6-only; its requests arrive as IPv4-mapped addresses.
    let v6only = fs::read_to_string("/proc/sys/net/ipv6/bindv6only").unwrap_or_default();
    if v6only.trim() == "0" {
        let mapped = |ip: Ipv4Addr| SocketAddr::from((ip.to_ipv6_mapped(), port));
        let open = socket_on(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let (reply, from) = ask(&open, mapped(Ipv4Addr::new(127, 0, 0, 2)), b"mapped").unwrap();
        assert_eq!(reply, b"Hello, mapped!");
        assert_eq!(from, mapped(Ipv4Addr::new(127, 0, 0, 2)));
        assert_answers_from((OTHER_V4, port).into(), LOCAL_V4);
    } else {
        eprintln!(
            "skipped: dual-stack part (net.ipv6.bindv6only is {})",
            v6only.trim()
        );
    }
    assert!(server.shutdown().unwrap().is_balanced());
}

// ---------------------------------------------------------------------------
// SO_REUSEPORT
// ---------------------------------------------------------------------------

#[test]
fn reuse_port() {
    let mut first = Proc::spawn(server_command().args([
        "--bind",
        "127.0.0.1:0",
        "--reuse-port",
        "--workers",
        "1",
    ]));
    let port = first.port();
    // The second asks through its environment, in one of the spellings
    // a boolean variable accepts besides `true`.
    let mut second = Proc::spawn(server_command().env("UDP_GREETER_REUSE_PORT", "yes").args([
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--workers",
        "1",
    ]));
    assert_eq!(second.port(), port);

    // The kernel picks a process by hashing each client's address and port,
    // so many client sockets reach both.
    let to = SocketAddr::from((LOCAL_V4, port));
    let clients: Vec<UdpSocket> = (0..64).map(|_| socket_on(LOCAL_V4)).collect();
    for (i, sock) in clients.iter().enumerate() {
        let name = format!("client-{i}");
        let (reply, from) = ask(sock, to, name.as_bytes()).expect("a reply");
        assert_eq!(reply, greeting(name.as_bytes()));
        assert_eq!(from, to);
    }

    let a = first.terminate();
    let b = second.terminate();
    assert!(
        stat(&a, "replied") > 0,
        "the first process answered nothing: {a}"
    );
    assert!(
        stat(&b, "replied") > 0,
        "the second process answered nothing: {b}"
    );
    assert!(stat(&a, "replied") + stat(&b, "replied") >= 64, "{a}\n{b}");
    for line in [&a, &b] {
        assert_eq!(stat(line, "received"), stat(line, "replied"), "{line}");
    }
}

#[test]
fn reuse_port_off() {
    // Without the flag on both, the second bind is refused as usual.
    let mut first = Proc::spawn(server_command().args(["--bind", "127.0.0.1:0", "--reuse-port"]));
    let port = first.port();
    let out = run_bounded(
        server_command().args(["--bind", &format!("127.0.0.1:{port}")]),
        PATIENCE,
        "udp-greeter",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot bind UDP 127.0.0.1:{port}")),
        "{stderr}"
    );
    first.terminate();
}

// ---------------------------------------------------------------------------
// nginx in front of three instances
// ---------------------------------------------------------------------------

fn nginx_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "nginx is not installed: the scale-out test needs it \
             (apt-get install nginx libnginx-mod-stream; .ci/run does)"
        )
    })
}

/// The stream module, where this nginx builds it as a loadable module.
fn stream_module() -> Option<PathBuf> {
    [
        "/usr/lib/nginx/modules/ngx_stream_module.so",
        "/usr/lib64/nginx/modules/ngx_stream_module.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// contrib/nginx-udp.conf with this test's addresses: nginx on `listen`,
/// the upstream on `upstreams`, and its files in `dir`.
fn nginx_config(dir: &Path, listen: SocketAddr, upstreams: &[SocketAddr]) -> String {
    let shipped =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/nginx-udp.conf"))
            .unwrap();
    for needed in [
        "stream {",
        "upstream udp_greeter {",
        "udp",
        "proxy_pass udp_greeter;",
        "proxy_responses 1;",
    ] {
        assert!(
            shipped.contains(needed),
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
    for line in shipped.lines() {
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

/// A free UDP port on 127.0.0.1, as far as can be told: nginx has no port 0.
fn free_udp_port() -> u16 {
    UdpSocket::bind((LOCAL_V4, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx as a child process, killed on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    fn start(upstreams: &[SocketAddr]) -> Nginx {
        let bin = nginx_binary();
        let mut last_log = String::new();
        // The port may be taken between choosing and binding it: try again.
        for _ in 0..5 {
            let dir = TempDir::new("nginx");
            let addr = SocketAddr::from((LOCAL_V4, free_udp_port()));
            let conf = dir.0.join("nginx.conf");
            fs::write(&conf, nginx_config(&dir.0, addr, upstreams)).unwrap();
            let child = Command::new(&bin)
                .arg("-p")
                .arg(&dir.0)
                .arg("-e")
                .arg(dir.0.join("error.log"))
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut nginx = Nginx { child, addr, dir };
            if nginx.ready() {
                return nginx;
            }
            last_log = fs::read_to_string(nginx.dir.0.join("error.log")).unwrap_or_default();
        }
        panic!("nginx did not start; its error log:\n{last_log}");
    }

    /// Whether a greeting comes back through nginx; false if nginx exited.
    fn ready(&mut self) -> bool {
        let sock = socket_on(LOCAL_V4);
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let _ = sock.send_to(b"ready?", self.addr);
            if let Some((reply, _)) = recv_within(&sock, Duration::from_millis(200)) {
                assert_eq!(reply, b"Hello, ready?!");
                return true;
            }
        }
        let log = fs::read_to_string(self.dir.0.join("error.log")).unwrap_or_default();
        panic!("nginx did not answer within {PATIENCE:?}; its error log:\n{log}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nginx() {
    let servers: Vec<Server> = (0..3)
        .map(|_| Server::bind(config((LOCAL_V4, 0).into())).unwrap())
        .collect();
    let upstreams: Vec<SocketAddr> = servers.iter().map(Server::local_addr).collect();
    let nginx = Nginx::start(&upstreams);

    // Every reply byte-exact, and from nginx's address.
    let clients: Vec<UdpSocket> = (0..32).map(|_| socket_on(LOCAL_V4)).collect();
    for round in 0..3 {
        for (i, sock) in clients.iter().enumerate() {
            let name = format!("client {i} round {round} \u{e9}\0\u{7f}");
            let (reply, from) =
                ask(sock, nginx.addr, name.as_bytes()).expect("a reply through nginx");
            assert_eq!(reply, greeting(name.as_bytes()));
            assert_eq!(from, nginx.addr);
        }
    }

    // The bench client checks every reply against its request too.
    let out = run_bounded(
        Command::new(CLIENT_BIN).args([
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
            "--json",
        ]),
        Duration::from_secs(30),
        "udp-greeter-client bench",
    );
    let json = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "bench failed: {json}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("bench through nginx: {json}");
    let (sent, replies) = (json_u64(&json, "sent"), json_u64(&json, "replies"));
    assert!(replies > 0, "{json}");
    assert_eq!(
        json_u64(&json, "bad"),
        0,
        "replies that were not the greeting: {json}"
    );
    assert_eq!(json_u64(&json, "duplicates"), 0, "{json}");
    assert!(
        json_u64(&json, "lost") * 20 <= sent,
        "more than 5% lost: {json}"
    );

    drop(nginx);
    let stats: Vec<_> = servers.into_iter().map(|s| s.shutdown().unwrap()).collect();
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

// ---------------------------------------------------------------------------
// The systemd unit
// ---------------------------------------------------------------------------

#[test]
fn systemd_unit() {
    let unit = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/udp-greeter.service"),
    )
    .unwrap();
    for needed in [
        "ExecStart=/usr/local/bin/udp-greeter\n",
        "Environment=UDP_GREETER_STATS_INTERVAL=60",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ] {
        assert!(
            unit.contains(needed),
            "contrib/udp-greeter.service lacks {needed:?}"
        );
    }
    let probe = output_within(Command::new("systemd-analyze").arg("--version"), PATIENCE);
    if probe.is_err() {
        eprintln!("skipped: systemd-analyze is not installed; the unit was not verified");
        return;
    }
    // The installed path need not exist here: point at the built binary.
    let dir = TempDir::new("unit");
    let path = dir.0.join("udp-greeter.service");
    fs::write(
        &path,
        unit.replace(
            "ExecStart=/usr/local/bin/udp-greeter\n",
            &format!("ExecStart={SERVER_BIN}\n"),
        ),
    )
    .unwrap();
    let out = run_bounded(
        Command::new("systemd-analyze").arg("verify").arg(&path),
        Duration::from_secs(60),
        "systemd-analyze verify",
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let about_unit: Vec<&str> = text.lines().filter(|l| l.contains("udp-greeter")).collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

// ---------------------------------------------------------------------------
// Settings from the environment
// ---------------------------------------------------------------------------

#[test]
fn env_vars() {
    let help = run_bounded(
        server_command().arg("--help"),
        PATIENCE,
        "udp-greeter --help",
    );
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "UDP_GREETER_BIND",
        "UDP_GREETER_WORKERS",
        "UDP_GREETER_QUEUE",
        "UDP_GREETER_MAX_DATAGRAM",
        "UDP_GREETER_RATE_LIMIT",
        "UDP_GREETER_RATE_BURST",
        "UDP_GREETER_RECV_BUFFER",
        "UDP_GREETER_REUSE_PORT",
        "UDP_GREETER_STATS_INTERVAL",
        "UDP_GREETER_METRICS_ADDR",
        "UDP_GREETER_LOG_LEVEL",
        "UDP_GREETER_LOG_FILE",
    ] {
        assert!(
            help.contains(&format!("[env: {var}=")),
            "--help does not show {var}:\n{help}"
        );
    }

    for (var, value) in [
        ("UDP_GREETER_WORKERS", "0"),
        ("UDP_GREETER_REUSE_PORT", "maybe"),
    ] {
        let out = run_bounded(
            server_command()
                .env(var, value)
                .args(["--bind", "127.0.0.1:0"]),
            PATIENCE,
            "udp-greeter",
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let mut server = Proc::spawn(
        server_command()
            .env("UDP_GREETER_BIND", "127.0.0.1:0")
            .env("UDP_GREETER_WORKERS", "3")
            .env("UDP_GREETER_STATS_INTERVAL", "1")
            .env("UDP_GREETER_METRICS_ADDR", "127.0.0.1:0")
            .env("UDP_GREETER_REUSE_PORT", "true"),
    );
    let port = server.port();
    assert_ne!(port, 9999);
    let sock = socket_on(LOCAL_V4);
    let (reply, _) = ask(&sock, (LOCAL_V4, port).into(), b"env").expect("a reply");
    assert_eq!(reply, b"Hello, env!");

    let line = server.line_with("Serving metrics on http://");
    let url = line[line.find("http://").unwrap()..].to_string();
    let r = curl(&[], &url);
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
    let mut second = Proc::spawn(server_command().args([
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--reuse-port",
    ]));
    assert_eq!(second.port(), port);
    second.terminate();
    let last = server.terminate();
    assert_eq!(stat(&last, "replied"), stat(&last, "received"), "{last}");
}
