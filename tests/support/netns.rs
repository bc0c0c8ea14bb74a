//! Network namespaces of a test's own, for what loopback alone cannot
//! show (injected loss, forged source addresses): made as root with `ip`,
//! removed when the test ends, however it ends.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;

/// A tool a namespace test needs: its name, an argument that makes it
/// print its version, and the Debian package it comes in.
pub type Tool = (&'static str, &'static str, &'static str);

pub const IP: Tool = ("ip", "-V", "iproute2");
pub const NFT: Tool = ("nft", "--version", "nftables");
pub const PYTHON: Tool = ("python3", "--version", "python3");

/// Fails the test, saying what is missing, unless it runs as root (which
/// `root_for` says what for) with `tools` at hand; `module` names the
/// tests, for the command to rerun them.
pub(super) fn require(module: &str, root_for: &str, tools: &[Tool]) {
    let mut missing = Vec::new();
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        missing.push(format!("root ({root_for} need it)"));
    }
    for (tool, arg, package) in tools {
        if let Err(why) = quietly(Command::new(tool).arg(arg)) {
            missing.push(format!("`{tool}` from {package} ({why})"));
        }
    }
    let packages: Vec<&str> = tools.iter().map(|t| t.2).collect();
    assert!(
        missing.is_empty(),
        "tests/{module}.rs cannot run here; it needs {}. As root: \
         `apt-get install {}`, then \
         `cargo test --test tests {module} -- --include-ignored`",
        missing.join(", "),
        packages.join(" ")
    );
}

/// Runs `cmd` with its output discarded, killed after `PATIENCE`; never
/// panics (it also runs while a failed test unwinds).
pub fn quietly(cmd: &mut Command) -> Result<(), String> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let mut p = Proc::adopt(child);
    match p.wait_exit(PATIENCE) {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("it failed: {s}")),
        None => Err(format!("still running after {PATIENCE:?}")),
    }
}

// ---------------------------------------------------------------------------
// A network namespace of the test's own

/// A network namespace with its loopback up; dropping it kills whatever
/// still runs in it and deletes it, however the test ends.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace for the tests of `module`, which fail saying what is
    /// missing unless they run as root with `ip` and `tools` at hand.
    pub fn new(module: &str, tools: &[Tool]) -> Netns {
        let mut needed = vec![IP];
        needed.extend_from_slice(tools);
        require(module, "network namespaces", &needed);
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "udpg-{module}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ok(
            run("ip", &["netns", "add", &name], PATIENCE),
            "ip netns add",
        );
        // From here on the namespace exists: the guard deletes it.
        let ns = Netns { name };
        ok(ns.run(&["ip", "link", "set", "lo", "up"]), "lo up");
        ns
    }

    /// A command that runs `program` inside the namespace. `ip netns exec`
    /// execs it, so the child's pid is the program's own.
    pub fn command(&self, program: &str) -> Command {
        let mut c = command("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `args` inside the namespace to the end, within `PATIENCE`.
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.run_within(args, PATIENCE)
    }

    pub fn run_within(&self, args: &[&str], limit: Duration) -> Outcome {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        run("ip", &all, limit)
    }

    /// The processes whose network namespace this is.
    fn pids(&self) -> Vec<i32> {
        let Ok(ns) = fs::metadata(format!("/run/netns/{}", self.name)) else {
            return Vec::new();
        };
        let Ok(procs) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                fs::metadata(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|m| m.dev() == ns.dev() && m.ino() == ns.ino())
            })
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // SIGKILL whatever is left (the children's own guards have
        // normally done so already), then delete the namespace.
        for pid in self.pids() {
            // SAFETY: kill(2) on a pid that lives in our namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Err(why) = quietly(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("ip netns del {}: {why}", self.name);
        }
    }
}

/// `out`, if it exited 0; fails the test with its output otherwise.
pub fn ok(out: Outcome, what: &str) -> Outcome {
    assert_eq!(out.code(), Some(0), "{what}: {out:?}");
    out
}
