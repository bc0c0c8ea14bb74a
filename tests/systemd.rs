//! The shipped systemd units, contrib/udp-greeter.service and its
//! udp-greeter.socket: the settings they must keep, the check
//! docs/operations.md gives for them before installing, and what
//! `systemd-analyze verify` says of them.

use std::path::Path;
use std::time::Duration;

use crate::support::{command, find_program, run_with, shipped, Outcome, TempDir, SERVER_BIN};

#[test]
fn systemd_unit() {
    let unit = shipped("contrib/udp-greeter.service");
    for needed in [
        "ExecStart=/usr/local/bin/udp-greeter\n",
        "Environment=UDP_GREETER_STATS_INTERVAL=60",
        // The journal gets no line per request (docs/operations.md).
        "Environment=UDP_GREETER_LOG_REQUESTS=false",
        // A restart's backlog waits in the socket, not dropped at the queue.
        "Environment=UDP_GREETER_QUEUE_FULL=wait",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        // Restarts and upgrades that keep the socket (docs/operations.md).
        "Type=notify\n",
        "NotifyAccess=all\n",
        "WatchdogSec=",
        "ExecReload=/bin/sh -c 'kill -s USR2 \"$$MAINPID\"'\n",
        "ExecStop=/bin/sh -c 'kill -s TERM \"$$MAINPID\" && while kill -0 \"$$MAINPID\"",
        "Sockets=udp-greeter.socket\n",
        "Requires=udp-greeter.socket\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n",
    ] {
        assert!(
            unit.contains(needed),
            "contrib/udp-greeter.service lacks {needed:?}"
        );
    }
    // The server's own stop deadline comes before systemd's SIGKILL.
    let seconds = |key: &str| -> u64 {
        let line = unit
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("contrib/udp-greeter.service lacks {key}"));
        line.trim_end_matches('s').parse().unwrap()
    };
    let (ours, systemds) = (
        seconds("Environment=UDP_GREETER_STOP_TIMEOUT="),
        seconds("TimeoutStopSec="),
    );
    assert!(
        ours < systemds,
        "stop timeout {ours} s, TimeoutStopSec {systemds} s"
    );
    let socket = shipped("contrib/udp-greeter.socket");
    for needed in [
        // The service's own default address.
        "ListenDatagram=0.0.0.0:9999\n",
        "ReceiveBuffer=",
        "WantedBy=sockets.target",
    ] {
        assert!(
            socket.contains(needed),
            "contrib/udp-greeter.socket lacks {needed:?}"
        );
    }
}

/// The block of docs/operations.md that checks the unit before installing.
fn documented_check() -> String {
    let doc = shipped("docs/operations.md");
    let section = "### Check the unit before installing";
    let rest = &doc[doc
        .find(section)
        .unwrap_or_else(|| panic!("docs/operations.md has no {section:?}"))..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let len = rest[start..].find("```").expect("its end");
    rest[start..start + len].to_string()
}

/// Runs the documented check with `bin=` set to the binary the tests
/// built and its last line (`systemd-analyze verify`) replaced by `last`,
/// in the repository's folder, its temporary files in a folder of its own.
fn run_documented_check(last: &str) -> Outcome {
    let block = documented_check();
    let mut lines: Vec<String> = block.lines().map(str::to_string).collect();
    let bin = lines
        .iter_mut()
        .find(|l| l.starts_with("bin="))
        .expect("a `bin=` line in the documented check");
    *bin = format!("bin='{SERVER_BIN}'");
    let verify = lines.last_mut().expect("a last line");
    assert!(
        verify.starts_with("systemd-analyze verify "),
        "the documented check does not end with systemd-analyze verify:\n{block}"
    );
    *verify = last.to_string();
    let tmp = TempDir::new("unit-check");
    run_with(
        command("sh")
            .args(["-ec", &lines.join("\n")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("TMPDIR", tmp.path()),
        Duration::from_secs(60),
    )
}

/// The documented copy is the shipped unit with `ExecStart` pointing at the
/// built binary, and nothing else changed: the check checks this unit.
#[test]
fn documented_check_copies_the_unit() {
    let out = run_documented_check(r#"cat "$unit""#);
    assert!(out.status.success(), "{out:?}");
    let copy = out.stdout_text();
    let unit = shipped("contrib/udp-greeter.service");
    let expected = unit.replace(
        "ExecStart=/usr/local/bin/udp-greeter\n",
        &format!("ExecStart={SERVER_BIN}\n"),
    );
    assert_ne!(
        expected, unit,
        "the unit's ExecStart is not the installed path"
    );
    assert_eq!(copy, expected);
    assert!(Path::new(SERVER_BIN).is_file());
}

/// The unit leaves every setting to the environment file: flags on
/// `ExecStart` would override the file's variables.
#[test]
fn systemd_unit_settings_come_from_the_environment() {
    let unit = shipped("contrib/udp-greeter.service");
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    assert!(!exec.contains("--"), "{exec}");
    let file = unit
        .find("EnvironmentFile=-/etc/default/udp-greeter")
        .expect("EnvironmentFile");
    for default in [
        "Environment=UDP_GREETER_BIND=0.0.0.0:9999",
        "Environment=UDP_GREETER_STATS_INTERVAL=60",
        "Environment=UDP_GREETER_QUEUE_FULL=wait",
    ] {
        let at = unit.find(default).unwrap_or_else(|| panic!("no {default}"));
        assert!(at < file, "{default} after EnvironmentFile=");
    }
}

#[test]
#[ignore = "needs systemd-analyze (Debian's systemd package; .ci/run installs it): cargo test --test tests systemd_unit_verifies -- --include-ignored"]
fn systemd_unit_verifies() {
    let analyze = find_program("systemd-analyze")
        .expect("systemd-analyze is not installed: apt-get install systemd");
    // The installed path need not exist here: the documented check points
    // a copy at the built binary.
    let out = run_documented_check(&format!(
        r#"'{}' verify "$unit" "$socket""#,
        analyze.display()
    ));
    let text = format!("{}{}", out.stdout_text(), out.stderr);
    // About either unit; the socket is checked for its own sake too.
    let about_unit: Vec<&str> = text.lines().filter(|l| l.contains("udp-greeter")).collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}
