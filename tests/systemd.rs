//! The shipped systemd unit, contrib/udp-greeter.service: the settings it
//! must keep, that it leaves the rest to the environment, and what
//! `systemd-analyze verify` says of it.

use std::time::Duration;

use crate::support::{command, find_program, run_with, shipped, TempDir, SERVER_BIN};

#[test]
fn systemd_unit() {
    let unit = shipped("contrib/udp-greeter.service");
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
    ] {
        let at = unit.find(default).unwrap_or_else(|| panic!("no {default}"));
        assert!(at < file, "{default} after EnvironmentFile=");
    }
}

#[test]
#[ignore = "needs systemd-analyze (Debian's systemd package; .ci/run installs it): cargo test --test tests systemd_unit_verifies -- --include-ignored"]
fn systemd_unit_verifies() {
    let unit = shipped("contrib/udp-greeter.service");
    let analyze = find_program("systemd-analyze")
        .expect("systemd-analyze is not installed: apt-get install systemd");
    // The installed path need not exist here: point at the built binary.
    let dir = TempDir::new("unit");
    let path = dir.path().join("udp-greeter.service");
    std::fs::write(
        &path,
        unit.replace(
            "ExecStart=/usr/local/bin/udp-greeter\n",
            &format!("ExecStart={SERVER_BIN}\n"),
        ),
    )
    .unwrap();
    let out = run_with(
        command(&analyze).arg("verify").arg(&path),
        Duration::from_secs(60),
    );
    let text = format!("{}{}", out.stdout_text(), out.stderr);
    let about_unit: Vec<&str> = text.lines().filter(|l| l.contains("udp-greeter")).collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}
