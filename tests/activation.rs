//! The socket that outlives a process: handed to a child as descriptor 3
//! and read there (by Python, and by the server binary), refused when it
//! is not a UDP socket; sd_notify's datagrams; and why shutting the
//! reading side cannot be how a reader is woken once copies are shared.
//!
//! python3 is required, as for the interop tests: without it these fail.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use udp_greeter::service::{pass_socket, Notifier};

use crate::support::{
    command, recv_within, run_with, server_with, socket_on, Proc, TempDir, PATIENCE, SERVER_BIN, V4,
};

/// Sends `payload` to `server`, served by `p`, and returns the reply;
/// fails the test, with what `p` said, if none comes within [`PATIENCE`].
fn reply_of(p: &Proc, server: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let client = socket_on(V4);
    client.send_to(payload, server).unwrap();
    let Some((reply, from)) = recv_within(&client, PATIENCE) else {
        panic!(
            "no reply; stdout {:?}, stderr {:?}",
            p.stdout_text(),
            p.stderr_text()
        );
    };
    assert_eq!(from, server);
    reply
}

/// Checks, in Python, that descriptor 3 is a UDP socket over IPv4 bound to
/// port argv[1], the only descriptor of that socket; prints the
/// variables; answers one datagram.
const PY_CHILD: &str = r#"
import os, socket, sys
s = socket.socket(fileno=3)
assert (s.family, s.type, s.proto) == (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP), s
assert s.getsockname()[1] == int(sys.argv[1]), s.getsockname()
ino = os.fstat(3).st_ino
copies = []
for fd in os.listdir("/proc/self/fd"):
    try:
        if os.stat("/proc/self/fd/" + fd).st_ino == ino:
            copies.append(fd)
    except FileNotFoundError:  # listdir's own descriptor, closed since
        pass
print("copies", copies)
print("env", os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDNAMES"), flush=True)
s.settimeout(10)
data, peer = s.recvfrom(65536)
s.sendto(b"echo: " + data, peer)
"#;

#[test]
fn python_reads_the_passed_socket() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let mut cmd = command("python3");
    cmd.args(["-c", PY_CHILD, &addr.port().to_string()])
        // A parent's leftovers, which the child must not see.
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDNAMES", "old");
    pass_socket(&mut cmd, &socket, Some("greeter")).unwrap();
    // The copy in `cmd` is what reaches the child.
    drop(socket);
    let mut p = Proc::spawn(&mut cmd);
    assert_eq!(reply_of(&p, addr, b"Michael"), b"echo: Michael");
    let status = p.finish(PATIENCE);
    assert!(status.success(), "{status}: {}", p.stderr_text());
    let out = p.stdout_text();
    assert!(out.contains("copies ['3']\n"), "{out}");
    assert!(out.contains("env 1 None greeter\n"), "{out}");
}

/// The server binary, given `--bind 127.0.0.1:0`.
fn server() -> Command {
    let mut cmd = command(SERVER_BIN);
    cmd.args(["--bind", "127.0.0.1:0"]);
    cmd
}

/// The line of a server that serves the socket passed.
const PASSED: &str = "serving the socket the service manager passed";

#[test]
fn the_server_takes_the_passed_socket() {
    for name in [None, Some("greeter")] {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let mut cmd = server();
        pass_socket(&mut cmd, &socket, name).unwrap();
        let (mut p, port) = server_with(&mut cmd);
        assert_eq!(port, addr.port(), "name {name:?}");
        assert_eq!(reply_of(&p, addr, b"Tracy"), b"Hello, Tracy!");
        assert!(p.line_with(PASSED).contains(&addr.to_string()));
        assert_eq!(p.stop().replied, 1);
    }
}

#[test]
fn listen_pid_of_another_process_passes_nothing() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cmd = server();
    pass_socket(&mut cmd, &socket, None).unwrap();
    // Set after: as a service manager would for a parent of ours.
    cmd.env("LISTEN_PID", "1");
    let (mut p, port) = server_with(&mut cmd);
    // It bound a port of its own.
    assert_ne!(port, socket.local_addr().unwrap().port());
    p.stop();
    assert!(!p.stderr_text().contains(PASSED), "{}", p.stderr_text());
}

/// Puts sockets of the kinds in argv[2] ("tcp", "udp", comma-separated) at
/// descriptors 3, 4, ..., sets LISTEN_FDS and LISTEN_FDNAMES (argv[3],
/// unless empty), prints each UDP socket's port and runs argv[4:]: the way
/// a service manager starts a service.
const PY_LAUNCHER: &str = r#"
import os, socket, sys
kinds, names, argv = sys.argv[1].split(","), sys.argv[2], sys.argv[3:]
socks = []
for kind in kinds:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    if kind == "udp":
        print("udp port", s.getsockname()[1], flush=True)
    socks.append(s)
moved = [os.dup(s.fileno()) for s in socks]
for i, fd in enumerate(moved):
    os.dup2(fd, 3 + i)
    os.set_inheritable(3 + i, True)
os.environ["LISTEN_FDS"] = str(len(kinds))
os.environ.pop("LISTEN_PID", None)
if names:
    os.environ["LISTEN_FDNAMES"] = names
os.execv(argv[0], argv)
"#;

/// The server, started by [`PY_LAUNCHER`] with sockets of `kinds` named
/// `names`.
fn launched(kinds: &str, names: &str) -> Command {
    let mut cmd = command("python3");
    cmd.args(["-c", PY_LAUNCHER, kinds, names, SERVER_BIN])
        .args(["--bind", "127.0.0.1:0"]);
    cmd
}

#[test]
fn stream_socket_is_refused() {
    let out = run_with(&mut launched("tcp", ""), PATIENCE);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert_eq!(
        out.stderr_lines(),
        ["error: cannot use what the service manager passed: \
          inherited fd 3 is a stream socket, not a UDP socket"]
    );
}

#[test]
fn the_one_udp_socket_among_several() {
    let (mut p, port) = server_with(&mut launched("tcp,udp", "metrics:greeter"));
    let out = p.stdout_text();
    assert_eq!(out, format!("udp port {port}\n"));
    let addr = SocketAddr::new(V4, port);
    assert_eq!(reply_of(&p, addr, b"Sarah"), b"Hello, Sarah!");
    assert_eq!(p.stop().replied, 1);
    // Two UDP sockets are one too many: the server takes no name.
    let out = run_with(&mut launched("udp,udp", "a:b"), PATIENCE);
    assert_eq!(out.code(), Some(2), "{out:?}");
    let lines = out.stderr_lines();
    assert!(
        lines.len() == 1 && lines[0].contains("a name is needed"),
        "{lines:?}"
    );
}

/// Why the reader is not woken by `shutdown(SHUT_RD)`: the mark is on the
/// socket, not the descriptor, so another copy of it (the one a service
/// manager keeps, or the next process reads) no longer blocks for
/// datagrams. Whenever none is queued, its reads return at once, empty and
/// from no one, every time: a reader spins instead of sleeping.
#[test]
fn shutting_the_reading_side_breaks_every_copy() {
    let socket = socket_on(V4);
    let copy = socket.try_clone().unwrap();
    // Linux reports ENOTCONN for an unconnected socket, but shuts it.
    let _ = socket2::SockRef::from(&socket).shutdown(std::net::Shutdown::Read);
    drop(socket);
    copy.set_read_timeout(Some(PATIENCE)).unwrap();
    let copy = socket2::SockRef::from(&copy);
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 64];
    let mut read_nothing = || {
        let start = Instant::now();
        // No sender: the address comes back 0 bytes long (std's own
        // recv_from asserts that it never is, so socket2's reads it).
        let (n, from) = copy.recv_from(&mut buf).unwrap();
        assert_eq!((n, from.len()), (0, 0));
        assert!(start.elapsed() < PATIENCE / 2, "{:?}", start.elapsed());
    };
    for _ in 0..3 {
        read_nothing();
    }
    // A datagram queued is still read, and then the empty reads go on.
    let sender = socket_on(V4);
    let to = copy.local_addr().unwrap().as_socket().unwrap();
    sender.send_to(b"late", to).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut raw = [std::mem::MaybeUninit::<u8>::uninit(); 64];
    loop {
        let (n, from) = copy.recv_from(&mut raw).unwrap();
        if n > 0 {
            assert_eq!(from.as_socket(), Some(sender.local_addr().unwrap()));
            break;
        }
        assert!(Instant::now() < deadline, "the datagram never came");
    }
    read_nothing();
}

/// Receives every message `notify` sends on `listener`, byte for byte.
fn notified(listener: &UnixDatagram, notifier: &Notifier) {
    listener.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = listener.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    notifier.ready().unwrap();
    assert_eq!(next(), "READY=1");
    notifier.status("answering\non 0.0.0.0:9999").unwrap();
    assert_eq!(next(), "STATUS=answering on 0.0.0.0:9999");
    notifier.watchdog().unwrap();
    assert_eq!(next(), "WATCHDOG=1");
    notifier.main_pid(4242).unwrap();
    assert_eq!(next(), "MAINPID=4242");
    notifier.notify("STOPPING=1\nSTATUS=bye").unwrap();
    assert_eq!(next(), "STOPPING=1\nSTATUS=bye");
    notifier.stopping().unwrap();
    assert_eq!(next(), "STOPPING=1");
}

#[test]
fn notify_at_a_path() {
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&path).unwrap();
    notified(&listener, &Notifier::new(&path).unwrap());
    drop(listener);
    // Nobody listens any more: the send says so. A process another test
    // forks in the meantime holds a copy of the listener until it execs,
    // so the refusal may take a moment.
    let gone = Notifier::new(&path).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while gone.ready().is_ok() {
        assert!(
            Instant::now() < deadline,
            "a send to nobody kept succeeding"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn notify_at_an_abstract_name() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr as UnixAddr;

    let name = format!("udp-greeter-test-notify-{}", std::process::id());
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixDatagram::bind_addr(&addr).unwrap();
    notified(&listener, &Notifier::new(format!("@{name}")).unwrap());
}
