//! The shipped unit under a real systemd: booted with systemd-nspawn in a
//! container of the test's own (tests/support/nspawn.rs), never on this
//! machine's root. Started, restarted and stopped there with its hardening
//! as shipped, it answers from the host; and the socket
//! `systemd-socket-activate` passes the server binary.
//!
//! Needs root, debootstrap and systemd-nspawn (Debian's debootstrap and
//! systemd-container), so the tests are ignored by a plain `cargo test`;
//! run them with `cargo test --test tests systemd_live -- --include-ignored`.
//! The first run builds a Debian root under /var/lib/machines, which needs
//! Debian's package mirror. Without what they need they fail, saying what
//! is missing: they never pass without having run.

use std::net::SocketAddr;
use std::path::Path;

use crate::support::{
    ask, command, find_program, free_udp_port, parse_stats, shipped, socket_for, Container, Proc,
    PATIENCE, SERVER_BIN, V4,
};

const UNIT: &str = "udp-greeter.service";

/// A container with the shipped unit and the binary the tests built
/// installed, the unit bound to `port` on the loopback by a drop-in (it
/// binds 0.0.0.0:9999 as shipped), and systemd told of them.
fn with_unit(test: &str, port: u16) -> Container {
    let c = Container::boot(test);
    c.install(Path::new(SERVER_BIN), "/usr/local/bin/udp-greeter", 0o755);
    c.write(
        "/etc/systemd/system/udp-greeter.service",
        shipped("contrib/udp-greeter.service"),
        0o644,
    );
    c.write(
        "/etc/systemd/system/udp-greeter.service.d/test.conf",
        format!("[Service]\nEnvironment=UDP_GREETER_BIND=127.0.0.1:{port}\n"),
        0o644,
    );
    c.systemctl_ok(&["daemon-reload"]);
    c
}

/// The unit's main process, as the container numbers it, once it has
/// bound its port (which it logs); fails the test unless there is one.
fn bound_pid(c: &Container) -> u32 {
    let pid: u32 = c.property(UNIT, "MainPID").parse().expect("a MainPID");
    assert_ne!(pid, 0, "{UNIT} has no main process:\n{}", c.journal(UNIT));
    let tag = format!("udp-greeter[{pid}]: ");
    c.wait_journal(UNIT, |j| {
        j.lines()
            .any(|l| l.contains(&tag) && l.contains("Bind UDP on"))
    });
    pid
}

/// The first word of field `name` (`Uid:`, `Seccomp:`...) of
/// /proc/PID/status inside the container.
fn status_field(c: &Container, pid: u32, name: &str) -> String {
    let status = c.exec(&["cat", &format!("/proc/{pid}/status")]);
    let text = status.stdout_text();
    let field = text.lines().find_map(|l| l.strip_prefix(name));
    field
        .and_then(|f| f.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status: {status:?}"))
        .to_string()
}

/// Start, restart and stop: the shipped hardening works under systemd, a
/// restart puts a new process on the port, and a stop logs the counters.
#[test]
#[ignore = "needs root, debootstrap and systemd-nspawn: boots systemd in a container"]
fn unit_starts_restarts_and_stops() {
    let port = free_udp_port();
    let c = with_unit("systemd_live", port);
    let server = SocketAddr::new(V4, port);
    let sock = socket_for(server);

    c.systemctl_ok(&["start", UNIT]);
    let first = bound_pid(&c);
    assert_eq!(ask(&sock, server, b"Michael"), b"Hello, Michael!");
    // The hardening took inside the container: DynamicUser= (not root),
    // NoNewPrivileges= and seccomp filters (SystemCallFilter= and others).
    assert_ne!(status_field(&c, first, "Uid:"), "0", "{UNIT} runs as root");
    assert_eq!(status_field(&c, first, "NoNewPrivs:"), "1");
    assert_eq!(status_field(&c, first, "Seccomp:"), "2");

    c.systemctl_ok(&["restart", UNIT]);
    let second = bound_pid(&c);
    assert_eq!(ask(&sock, server, b"Michael"), b"Hello, Michael!");
    assert_ne!(first, second, "the restart left process {first} in place");

    c.systemctl_ok(&["stop", UNIT]);
    assert_eq!(c.property(UNIT, "ActiveState"), "inactive");
    assert_eq!(c.property(UNIT, "Result"), "success");
    // Each stop, the restart's too, ends with that process's counters.
    let stats_of = |journal: &str, pid: u32| {
        let tag = format!("udp-greeter[{pid}]: ");
        journal
            .lines()
            .any(|l| l.contains(&tag) && l.contains("stats: received="))
    };
    let journal = c.wait_journal(UNIT, |j| stats_of(j, first) && stats_of(j, second));
    let last = parse_stats(&journal).expect("the stats line parses");
    assert!(
        last.received >= 1 && last.replied == last.received,
        "{last}"
    );
}

/// `systemd-socket-activate --datagram` holds the socket, waits for the
/// first datagram, then execs the server with it as descriptor 3
/// (`LISTEN_FDS=1`).
///
/// Today the server binary ignores `LISTEN_FDS` and binds its `--bind`
/// itself, which the passed socket holds: it exits 1, "Address already in
/// use". Once the binary takes an inherited socket this test fails, and
/// becomes: the first datagram, `Michael`, gets `Hello, Michael!` from that
/// port, and so do the ones after it.
#[test]
#[ignore = "needs systemd-socket-activate (Debian's systemd package)"]
fn socket_activate_today() {
    let tool = find_program("systemd-socket-activate")
        .expect("systemd-socket-activate, from Debian's systemd package (apt-get install systemd)");
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut p =
        Proc::spawn(command(tool).args(["--datagram", "-l", &addr, SERVER_BIN, "--bind", &addr]));
    assert!(
        p.wait_stderr(&format!("Listening on {addr} as 3."), PATIENCE),
        "{}",
        p.stderr_text()
    );
    let server: SocketAddr = addr.parse().unwrap();
    socket_for(server).send_to(b"Michael", server).unwrap();
    let status = p.finish(PATIENCE);
    let log = p.stderr_text();
    assert!(log.contains("Execing "), "{log}");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("cannot bind UDP {addr}: Address already in use")),
        "{log}"
    );
}
