//! The shipped units under a real systemd: booted with systemd-nspawn in a
//! container of the test's own (tests/support/nspawn.rs), never on this
//! machine's root. Started, restarted and stopped there with their
//! hardening as shipped, the service answers from the host; restarted and
//! reloaded (upgraded in place) under a paced load, it loses nothing, its
//! watchdog fed. And the socket `systemd-socket-activate` passes the server
//! binary is served.
//!
//! Needs root, debootstrap and systemd-nspawn (Debian's debootstrap and
//! systemd-container), so the tests are ignored by a plain `cargo test`;
//! run them with `cargo test --test tests systemd_live -- --include-ignored`.
//! The first run builds a Debian root under /var/lib/machines, which needs
//! Debian's package mirror. Without what they need they fail, saying what
//! is missing: they never pass without having run.

use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    ask, bench_json, command, find_program, free_udp_port, http, json_count, parse_stats, shipped,
    socket_for, wait_until, Container, Proc, CLIENT_BIN, PATIENCE, SERVER_BIN, V4,
};
use udp_greeter::Snapshot;

const UNIT: &str = "udp-greeter.service";

/// Held by the tests that load a unit: two loads at once on two cores
/// measure the machine, not the restart.
static LOAD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    LOAD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
const SOCKET: &str = "udp-greeter.socket";

/// A container with the shipped units and the binary the tests built
/// installed, the socket on `port` on the loopback by a drop-in (it
/// listens on 0.0.0.0:9999 as shipped) and the service's [`METRICS`] by
/// another, and systemd told of them.
fn with_unit(test: &str, port: u16) -> Container {
    let c = Container::boot(test);
    c.install(Path::new(SERVER_BIN), "/usr/local/bin/udp-greeter", 0o755);
    for unit in [UNIT, SOCKET] {
        c.write(
            &format!("/etc/systemd/system/{unit}"),
            shipped(&format!("contrib/{unit}")),
            0o644,
        );
    }
    // An empty ListenDatagram= clears the shipped one.
    c.write(
        "/etc/systemd/system/udp-greeter.socket.d/test.conf",
        format!("[Socket]\nListenDatagram=\nListenDatagram=127.0.0.1:{port}\n"),
        0o644,
    );
    c.write(
        "/etc/systemd/system/udp-greeter.service.d/test.conf",
        format!("[Service]\n{METRICS}"),
        0o644,
    );
    c.systemctl_ok(&["daemon-reload"]);
    c.systemctl_ok(&["start", SOCKET]);
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

/// What the kernel grants the shipped socket unit's `ReceiveBuffer=`:
/// twice the size asked for (its bookkeeping), which systemd forces past
/// `net.core.rmem_max`.
fn shipped_buffer() -> usize {
    let unit = shipped(&format!("contrib/{SOCKET}"));
    let size = unit
        .lines()
        .find_map(|l| l.strip_prefix("ReceiveBuffer="))
        .expect("ReceiveBuffer= in the socket unit");
    let mib: usize = size
        .strip_suffix('M')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("ReceiveBuffer={size}: not in M"));
    2 * (mib << 20)
}

/// Fails the test unless process `pid` of the unit said it serves a
/// socket with the buffer the shipped unit asks for: a smaller one would
/// hold less of a restart's backlog than a host's does.
fn assert_buffer_as_shipped(c: &Container, pid: u32) {
    let tag = format!("udp-greeter[{pid}]: ");
    let line = format!("receive buffer {} bytes", shipped_buffer());
    let journal = c.wait_journal(UNIT, |j| {
        j.lines()
            .any(|l| l.contains(&tag) && l.contains("serving the socket"))
    });
    assert!(
        journal
            .lines()
            .any(|l| l.contains(&tag) && l.contains(&line)),
        "not served with the shipped {line}:\n{journal}"
    );
}

/// Start, restart and stop: the shipped hardening works under systemd, the
/// server serves the socket systemd passed it, with the buffer the unit
/// asks for, a restart puts a new process on it, and a stop logs the
/// counters.
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
    assert!(
        c.journal(UNIT)
            .contains("serving the socket the service manager passed"),
        "{}",
        c.journal(UNIT)
    );
    // The hardening took inside the container: DynamicUser= (not root),
    // NoNewPrivileges= and seccomp filters (SystemCallFilter= and others).
    assert_ne!(status_field(&c, first, "Uid:"), "0", "{UNIT} runs as root");
    assert_eq!(status_field(&c, first, "NoNewPrivs:"), "1");
    assert_eq!(status_field(&c, first, "Seccomp:"), "2");
    assert_buffer_as_shipped(&c, first);

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

/// The main PID once it is another than `old`, and bound.
fn next_pid(c: &Container, old: u32) -> u32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let pid: u32 = c.property(UNIT, "MainPID").parse().unwrap_or(0);
        if pid != 0 && pid != old {
            return bound_pid(c);
        }
        assert!(
            Instant::now() < deadline,
            "{UNIT} kept process {old}:\n{}",
            c.journal(UNIT)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// What each test's drop-in adds to the service: metrics on a port of
/// their own, where the test sees the load arrive.
const METRICS: &str = "Environment=UDP_GREETER_METRICS_ADDR=127.0.0.1:0\n";

/// Waits until process `pid` of the unit has received more than `n`
/// datagrams, read from the metrics it serves (the drop-in's [`METRICS`]).
fn wait_received(c: &Container, pid: u32, n: u64) {
    let tag = format!("udp-greeter[{pid}]: ");
    let journal = c.wait_journal(UNIT, |j| {
        j.lines()
            .any(|l| l.contains(&tag) && l.contains("Serving metrics on "))
    });
    let url = journal
        .lines()
        .filter(|l| l.contains(&tag))
        .find_map(|l| l.split("Serving metrics on ").nth(1))
        .expect("the metrics address")
        .trim()
        .to_string();
    let received = || {
        let text = http("GET", &url, "").body;
        text.lines()
            .find_map(|l| l.strip_prefix("udp_greeter_received_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_until(PATIENCE, || received() > n),
        "process {pid} did not receive the load: {} at {url}",
        received()
    );
}

/// Every process's final counters in the unit's journal, in order.
fn finals(journal: &str) -> Vec<Snapshot> {
    journal
        .lines()
        .filter(|l| l.contains("stats: received="))
        .map(|l| Snapshot::from_line(l).unwrap_or_else(|| panic!("not a stats line: {l}")))
        .collect()
}

/// Three restarts and two reloads (upgrades in place), 1.2 s apart, while
/// a paced load of 20,000 requests a second runs: every request is
/// answered, and counted exactly (see [`assert_counted_exactly`]). The
/// service is still active afterwards and its watchdog was fed
/// throughout.
///
/// Each action starts once the state it needs is there (the load reaching
/// the server, the previous action's process bound), and the load must
/// outlast the last action by its spacing, or the test fails saying so.
#[test]
#[ignore = "needs root, debootstrap and systemd-nspawn: boots systemd in a container"]
fn restarts_and_reloads_under_load_lose_nothing() {
    let _alone = alone();
    let port = free_udp_port();
    let c = with_unit("systemd_load", port);
    let server = SocketAddr::new(V4, port);
    c.systemctl_ok(&["start", UNIT]);
    let mut pid = bound_pid(&c);
    assert_buffer_as_shipped(&c, pid);
    assert_eq!(
        ask(&socket_for(server), server, b"Michael"),
        b"Hello, Michael!"
    );
    // The load outlasts the five actions, 1.2 s apart, by the time each
    // takes (a stop and a start, under 1 s each even on a busy machine).
    let mut bench = paced_load(server, 20_000, 14);
    wait_received(&c, pid, 1);
    for action in ["restart", "reload", "restart", "reload", "restart"] {
        c.systemctl_ok(&[action, UNIT]);
        pid = next_pid(&c, pid);
        thread::sleep(SPACING);
    }
    assert!(
        bench.alive(),
        "the load ended before the last action's {SPACING:?} did: the figures would not \
         cover it\n{}",
        c.journal(UNIT)
    );
    let status = bench.finish(Duration::from_secs(30));
    assert!(status.success(), "bench: {status}: {}", bench.stderr_text());
    c.systemctl_ok(&["stop", UNIT]);
    assert_eq!(c.property(UNIT, "Result"), "success");
    // Six processes, each stopped in order, the last by the stop above;
    // the request asked before the load.
    assert_counted_exactly(&c, &bench_json(&bench.stdout()), 6, 1);
    let journal = c.journal(UNIT);
    assert!(!journal.contains("Watchdog timeout"), "{journal}");
    assert_eq!(c.property(UNIT, "WatchdogUSec"), "10s");
    // Every process stopped in order: none killed, an upgraded one (which
    // systemd did not start itself) included.
    assert!(!journal.contains("with signal SIGKILL"), "{journal}");
    assert_eq!(journal.matches("upgrade: PID").count(), 2, "{journal}");
}

/// `udp-greeter-client bench` at `rate` requests a second for `seconds`
/// against `server`, no warm-up, so that `sent` is every request sent. A
/// request may wait out a restart's gap and the backlog before it in the
/// socket, whose buffer holds about 2 s of 20,000 a second: one not
/// answered within 3 s was not waiting there.
fn paced_load(server: SocketAddr, rate: u32, seconds: u32) -> Proc {
    Proc::spawn(command(CLIENT_BIN).args([
        "bench",
        "--server",
        &server.to_string(),
        "--rate",
        &rate.to_string(),
        "--seconds",
        &seconds.to_string(),
        "--warmup",
        "0",
        "--timeout",
        "3",
        "--json",
    ]))
}

/// The count Cloudflare's udpgrm holds its handovers to: once the unit's
/// `processes` have stopped, they together received each request the
/// load `report` says it sent (and the `asked` sent before it) exactly
/// once and answered each, every one of them received part of the load,
/// and none was dropped at a queue or at the socket; the load got every
/// reply.
fn assert_counted_exactly(c: &Container, report: &serde_json::Value, processes: usize, asked: u64) {
    let sent = json_count(report, "sent");
    let journal = c.wait_journal(UNIT, |j| finals(j).len() == processes);
    let counts = finals(&journal);
    let lines: Vec<String> = counts.iter().map(ToString::to_string).collect();
    let said = format!("{report}\n{}", lines.join("\n"));
    for s in &counts {
        assert!(s.received > 1, "a process got none of the load: {said}");
        assert_eq!(s.replied, s.received, "{said}");
        assert_eq!(s.socket_dropped, 0, "{said}");
    }
    let received: u64 = counts.iter().map(|s| s.received).sum();
    assert_eq!(received, sent + asked, "{said}");
    assert_eq!(json_count(report, "lost"), 0, "{said}");
    assert_eq!(json_count(report, "replies"), sent, "{said}");
    assert!(!journal.contains("had dropped"), "{journal}");
}

/// How long the load runs between two actions on the service.
const SPACING: Duration = Duration::from_millis(1200);

/// `systemd-socket-activate --datagram` holds the socket, waits for the
/// first datagram, then execs the server with it as descriptor 3
/// (`LISTEN_FDS=1`): the datagram that started it is answered, and so are
/// the ones after it, from that port. `--bind` names the same address,
/// which the passed socket holds: the server does not try to bind it.
#[test]
#[ignore = "needs systemd-socket-activate (Debian's systemd package)"]
fn socket_activate() {
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
    let sock = socket_for(server);
    sock.send_to(b"Michael", server).unwrap();
    let (reply, from) = crate::support::recv_within(&sock, PATIENCE)
        .unwrap_or_else(|| panic!("the first datagram got no reply: {}", p.stderr_text()));
    assert_eq!((reply.as_slice(), from), (&b"Hello, Michael!"[..], server));
    assert_eq!(ask(&sock, server, b"Tracy"), b"Hello, Tracy!");
    assert!(
        p.stderr_text()
            .contains("serving the socket the service manager passed"),
        "{}",
        p.stderr_text()
    );
    p.signal(libc::SIGTERM);
    let status = p.finish(PATIENCE);
    assert!(status.success(), "{status}: {}", p.stderr_text());
}

/// How a unit is installed for [`losses`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Units {
    /// contrib/: the socket unit and the `Type=notify` service.
    Shipped,
    /// The unit as shipped before socket activation: `Type=exec`, binding
    /// its own port (tests/systemd_live/type-exec.service).
    TypeExec,
}

/// What is done to the service while the load runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Restart,
    Reload,
    StopThenStart,
}

/// A container with `units` installed on `port` and the service started.
fn with_units(units: Units, test: &str, port: u16) -> Container {
    match units {
        Units::Shipped => with_unit(test, port),
        Units::TypeExec => {
            let c = Container::boot(test);
            c.install(Path::new(SERVER_BIN), "/usr/local/bin/udp-greeter", 0o755);
            c.write(
                &format!("/etc/systemd/system/{UNIT}"),
                shipped("tests/systemd_live/type-exec.service"),
                0o644,
            );
            c.write(
                "/etc/systemd/system/udp-greeter.service.d/test.conf",
                format!("[Service]\nEnvironment=UDP_GREETER_BIND=127.0.0.1:{port}\n{METRICS}"),
                0o644,
            );
            c.systemctl_ok(&["daemon-reload"]);
            c
        }
    }
}

/// The requests lost when `action` is done once under a load paced at
/// `rate` requests a second, once the load reaches the server, with a
/// second of load before it; the load must outlast the action, or the
/// test fails saying so.
fn lost_across(units: Units, action: Action, rate: u32) -> u64 {
    let port = free_udp_port();
    let c = with_units(units, "systemd_loss", port);
    let server = SocketAddr::new(V4, port);
    c.systemctl_ok(&["start", UNIT]);
    let pid = bound_pid(&c);
    // No warm-up: a request sent before the action counts as any other.
    let mut bench = paced_load(server, rate, 4);
    wait_received(&c, pid, u64::from(rate));
    match action {
        Action::Restart => c.systemctl_ok(&["restart", UNIT]),
        Action::Reload => c.systemctl_ok(&["reload", UNIT]),
        Action::StopThenStart => {
            c.systemctl_ok(&["stop", UNIT]);
            c.systemctl_ok(&["start", UNIT])
        }
    };
    next_pid(&c, pid);
    assert!(
        bench.alive(),
        "the load ended before {action:?} was done: it cannot tell what that lost"
    );
    let status = bench.finish(Duration::from_secs(30));
    assert!(status.success(), "bench: {status}: {}", bench.stderr_text());
    let report = bench_json(&bench.stdout());
    assert!(json_count(&report, "sent") > 0, "{report}");
    json_count(&report, "lost")
}

/// What each action loses under load, for the shipped units and for the
/// unit before them: the shipped ones lose nothing across a restart, a
/// reload or a stop then start at 20,000 requests a second, where the old
/// unit loses across a restart (the load can tell). Prints what each lost
/// (with `--nocapture`); the figures docs/benchmarks.md gives, at 100,000
/// a second too, come from benches/restart.sh with the release build.
#[test]
#[ignore = "needs root, debootstrap and systemd-nspawn: boots systemd in a container"]
fn losses() {
    let _alone = alone();
    let rate = 20_000;
    let mut rows = Vec::new();
    for (units, action) in [
        (Units::Shipped, Action::Restart),
        (Units::Shipped, Action::Reload),
        (Units::Shipped, Action::StopThenStart),
        (Units::TypeExec, Action::Restart),
        (Units::TypeExec, Action::StopThenStart),
    ] {
        let lost = lost_across(units, action, rate);
        eprintln!("losses: {units:?} {action:?} at {rate}/s: {lost} lost");
        rows.push((units, action, lost));
    }
    for &(units, action, lost) in &rows {
        if units == Units::Shipped {
            assert_eq!(lost, 0, "{units:?} {action:?} at {rate}/s");
        }
    }
    let old = rows
        .iter()
        .find(|r| r.0 == Units::TypeExec && r.1 == Action::Restart)
        .map(|r| r.2);
    assert!(
        old > Some(0),
        "the old unit lost nothing across a restart: the load cannot tell"
    );
}
