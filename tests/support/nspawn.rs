//! A real systemd for the tests of the shipped units: booted with
//! systemd-nspawn in a container of the test's own, on a Debian root built
//! once with debootstrap and cached, and driven with `nsenter`.
//!
//! systemd is never booted on this machine's own root: as PID 1 it would
//! clean the shared /tmp and take over the host. The container shares the
//! host's network, so a unit's socket inside it is on the host's loopback,
//! and keeps `CAP_NET_ADMIN` there, as a host's systemd has it, so that a
//! socket unit's `ReceiveBuffer=` is granted as on a host.
//!
//! The container runs with `--volatile=overlay`: the cached root is its
//! read-only lower layer and every change goes to a tmpfs that vanishes
//! with it. No test changes the cache, none pays for a copy of it, and any
//! number boot from it at once (nspawn takes only a shared lock on it).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::AtomicU32;

use super::*;

pub const DEBOOTSTRAP: Tool = ("debootstrap", "--version", "debootstrap");
pub const NSPAWN: Tool = ("systemd-nspawn", "--version", "systemd-container");
pub const NSENTER: Tool = ("nsenter", "--version", "util-linux");

/// The cached root: present only once debootstrap has finished with it.
pub const ROOT: &str = "/var/lib/machines/udp-greeter-bookworm";
/// Held (flock) while the root is built, so tests build it one at a time.
const LOCK: &str = "/var/lib/machines/.udp-greeter-bookworm.lock";
/// What a root being built is called, before it is renamed to [`ROOT`].
const BUILDING: &str = "/var/lib/machines/.udp-greeter-bookworm.building";

/// debootstrap fetches about 240 MB from Debian's mirror: about 40 s here,
/// far more on a slow link.
pub const BUILD_PATIENCE: Duration = Duration::from_secs(900);
/// From nspawn's start to `running` (about a second here, when idle).
pub const BOOT_PATIENCE: Duration = Duration::from_secs(60);
/// A `systemctl` verb: a stop may take the unit's `TimeoutStopSec=` (10 s)
/// and a restart that and a start.
pub const SYSTEMCTL_PATIENCE: Duration = Duration::from_secs(30);
/// From `systemctl poweroff` to nspawn's exit; then it is killed.
pub const POWEROFF_PATIENCE: Duration = Duration::from_secs(30);

/// A booted container: its systemd is `running` (or `degraded`). Dropping
/// it powers it off, and kills it if that takes too long, however the
/// test ends.
pub struct Container {
    /// The machine's name, unique to this test (nspawn's `--machine=`).
    pub machine: String,
    /// The container's init, PID 1 inside, as the host numbers it.
    pub leader: i32,
    nspawn: Proc,
}

impl Container {
    /// Builds the cached root if it is missing (see [`cached_root`]),
    /// boots a container of it named after `test`, and waits until its
    /// systemd is up. Fails the test, saying what is missing, unless it
    /// runs as root with debootstrap, systemd-nspawn and nsenter (the
    /// message names tests/systemd_live.rs, where such tests live).
    pub fn boot(test: &str) -> Container {
        super::netns::require(
            "systemd_live",
            "systemd-nspawn and nsenter",
            &[DEBOOTSTRAP, NSPAWN, NSENTER],
        );
        let root = cached_root();
        let machine = machine_name(test);
        let started = Instant::now();
        let nspawn = Proc::spawn(command("systemd-nspawn").args([
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--settings=no",
            // As on a host, the container's systemd may then force a socket
            // unit's ReceiveBuffer= beyond net.core.rmem_max (nspawn drops
            // the capability unless told): the units are tested as shipped.
            "--capability=CAP_NET_ADMIN",
            "--link-journal=no",
            "--volatile=overlay",
            "--console=passive",
            &format!("--machine={machine}"),
            "-D",
            root,
            "--boot",
        ]));
        let (nspawn, leader) = find_leader(nspawn);
        let container = Container {
            machine,
            leader,
            nspawn,
        };
        container.wait_running();
        eprintln!("{}: booted in {:?}", container.machine, started.elapsed());
        container
    }

    /// Runs `args` inside the container (every namespace of its init) to
    /// the end, within [`PATIENCE`].
    pub fn exec(&self, args: &[&str]) -> Outcome {
        self.exec_within(args, PATIENCE)
    }

    /// As [`Container::exec`], within `limit`.
    pub fn exec_within(&self, args: &[&str], limit: Duration) -> Outcome {
        run_with(&mut self.nsenter(args), limit)
    }

    /// `systemctl --no-pager ARGS` inside, within [`SYSTEMCTL_PATIENCE`];
    /// whatever it exits with.
    pub fn systemctl(&self, args: &[&str]) -> Outcome {
        let mut all = vec!["systemctl", "--no-pager"];
        all.extend_from_slice(args);
        self.exec_within(&all, SYSTEMCTL_PATIENCE)
    }

    /// As [`Container::systemctl`], failing the test, with the end of the
    /// container's journal, unless it exits 0.
    pub fn systemctl_ok(&self, args: &[&str]) -> Outcome {
        let out = self.systemctl(args);
        if out.code() != Some(0) {
            let journal = self.exec(&["journalctl", "--no-pager", "-n", "60"]);
            panic!(
                "systemctl {}: {out:?}\nthe journal's end:\n{}",
                args.join(" "),
                journal.stdout_text()
            );
        }
        out
    }

    /// A property of `unit` (`systemctl show -p PROPERTY --value`).
    pub fn property(&self, unit: &str, property: &str) -> String {
        let out = self.systemctl_ok(&["show", "-p", property, "--value", unit]);
        out.stdout_text().trim().to_string()
    }

    /// Copies the host's file `host_path` to `container_path` inside,
    /// making its folders, with permissions `mode` (e.g. `0o755`).
    pub fn install(&self, host_path: &Path, container_path: &str, mode: u32) {
        let bytes =
            fs::read(host_path).unwrap_or_else(|e| panic!("read {}: {e}", host_path.display()));
        self.write(container_path, bytes, mode);
    }

    /// Writes `contents` to `container_path` inside, making its folders,
    /// with permissions `mode`.
    ///
    /// The bytes go through `cat` inside rather than through
    /// /proc/LEADER/root, where an absolute symbolic link in the path
    /// would lead out of the container onto the host.
    pub fn write(&self, container_path: &str, contents: impl Into<Vec<u8>>, mode: u32) {
        let script =
            format!("mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\" && chmod {mode:o} \"$1\"");
        let mut cmd = self.nsenter(&["sh", "-c", &script, "sh", container_path]);
        cmd.stdin(Stdio::piped());
        let mut p = Proc::spawn(&mut cmd);
        let mut stdin = p.take_stdin().expect("stdin");
        let contents = contents.into();
        let sent = within(PATIENCE, "write into the container", move || {
            stdin.write_all(&contents)
        });
        let status = p.finish(PATIENCE);
        assert!(
            sent.is_ok() && status.success(),
            "writing {container_path} in {}: {sent:?}, {status}: {}",
            self.machine,
            p.stderr_text()
        );
    }

    /// What the journal holds for `unit` (`journalctl -u UNIT --no-pager`).
    pub fn journal(&self, unit: &str) -> String {
        ok(
            self.exec(&["journalctl", "-u", unit, "--no-pager"]),
            "journalctl",
        )
        .stdout_text()
    }

    /// [`Container::journal`] once `done` says it holds what the test
    /// wants: journald writes a unit's output a moment after the unit
    /// wrote it, and a `systemctl stop` does not wait for that. Fails the
    /// test after [`PATIENCE`].
    pub fn wait_journal(&self, unit: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let journal = self.journal(unit);
            if done(&journal) {
                return journal;
            }
            assert!(
                Instant::now() < deadline,
                "the journal of {unit}, not as wanted within {PATIENCE:?}:\n{journal}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command that runs `args` in every namespace of the container's
    /// init: its mounts, processes, cgroups, hostname and IPC.
    fn nsenter(&self, args: &[&str]) -> Command {
        let mut c = command("nsenter");
        c.args(["-t", &self.leader.to_string(), "-a", "--"]);
        c.args(args);
        c
    }

    /// Waits until `systemctl is-system-running` says `running` or
    /// `degraded` (a unit of the base system failed; the units under test
    /// may still work, and the test says whether they do).
    fn wait_running(&self) {
        let deadline = Instant::now() + BOOT_PATIENCE;
        loop {
            let out = self.exec(&["systemctl", "is-system-running"]);
            let state = out.stdout_text().trim().to_string();
            if state == "degraded" {
                let failed = self.systemctl(&["--failed"]);
                eprintln!("{}: degraded:\n{}", self.machine, failed.stdout_text());
            }
            if state == "running" || state == "degraded" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not running within {BOOT_PATIENCE:?}: {out:?}; nspawn said:\n{}",
                self.machine,
                self.nspawn.stderr_text()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.nspawn.alive() {
            // It ended on its own (its init died): nothing to stop.
            return;
        }
        let leader = self.leader.to_string();
        let poweroff = quietly(Command::new("nsenter").args(["-t", &leader, "-a"]).args([
            "systemctl",
            "poweroff",
            "--no-block",
        ]));
        if poweroff.is_ok() && self.nspawn.wait_exit(POWEROFF_PATIENCE).is_some() {
            return;
        }
        eprintln!(
            "{}: not powered off within {POWEROFF_PATIENCE:?} ({poweroff:?}): killed",
            self.machine
        );
        // SIGKILL to a PID namespace's init ends every process in it. The
        // check keeps a pid reused since from being killed.
        if is_init(self.leader) {
            // SAFETY: kill(2) on the init of the container this guard
            // started; no memory involved.
            unsafe { libc::kill(self.leader, libc::SIGKILL) };
        }
        // The Proc's own guard then kills nspawn, if it is still there.
    }
}

/// A machine name for `test`: a valid hostname, unique to this process and
/// call, at most 64 characters.
fn machine_name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let tag: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!(
        "udpg-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// nspawn, and the container's init: the child of nspawn that is PID 1 in
/// a PID namespace of its own (nspawn's first child, which sets the
/// container up, exits once init is forked). If there is none within
/// [`BOOT_PATIENCE`], nspawn is asked to stop (SIGTERM powers the
/// container off) and the test fails.
fn find_leader(mut nspawn: Proc) -> (Proc, i32) {
    let deadline = Instant::now() + BOOT_PATIENCE;
    loop {
        if let Some(leader) = children(nspawn.pid()).into_iter().find(|&c| is_init(c)) {
            return (nspawn, leader);
        }
        if !nspawn.alive() || Instant::now() >= deadline {
            if nspawn.alive() {
                nspawn.signal(libc::SIGTERM);
                nspawn.wait_exit(POWEROFF_PATIENCE);
            }
            panic!(
                "systemd-nspawn started no init within {BOOT_PATIENCE:?}; it said:\n{}",
                nspawn.stderr_text()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The children of process `pid`, from /proc/PID/task/*/children.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Whether process `pid` is PID 1 in its own PID namespace: the last
/// number of its `NSpid:` line in /proc/PID/status.
fn is_init(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
            let numbers: Vec<&str> = line.split_whitespace().collect();
            Some(numbers.len() > 1 && numbers.last() == Some(&"1"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// The cached root

/// The cached Debian bookworm root ([`ROOT`]), built with debootstrap if
/// it is missing. It is built under another name and renamed once
/// complete, so a half-built root is never used, and under a lock, so
/// tests running at once build it once.
pub fn cached_root() -> &'static str {
    let lock = lock_within(LOCK, BUILD_PATIENCE);
    if !Path::new(ROOT).is_dir() {
        build_root();
    }
    drop(lock);
    ROOT
}

/// Builds the root at [`BUILDING`] and renames it to [`ROOT`]. Runs under
/// the lock: anything already at [`BUILDING`] was left by a build that
/// was killed.
fn build_root() {
    let building = Path::new(BUILDING);
    if building.exists() {
        fs::remove_dir_all(building).expect("remove a half-built root");
    }
    let started = Instant::now();
    let out = run(
        "debootstrap",
        &[
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus",
            "bookworm",
            BUILDING,
        ],
        BUILD_PATIENCE,
    );
    if out.code() != Some(0) {
        let _ = fs::remove_dir_all(building);
        panic!("debootstrap failed: {out:?}");
    }
    fs::rename(building, ROOT).expect("rename the root built");
    eprintln!("built {ROOT} in {:?}", started.elapsed());
}

/// `path`, opened and locked exclusively (flock); the lock goes with the
/// file. Fails the test if it is not had within `limit`.
fn lock_within(path: &str, limit: Duration) -> File {
    fs::create_dir_all(Path::new(path).parent().expect("a folder")).expect("create the folder");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        // SAFETY: flock(2) on a descriptor this function owns; no memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return file;
        }
        let e = io::Error::last_os_error();
        assert!(
            e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline,
            "flock {path} within {limit:?}: {e}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}
