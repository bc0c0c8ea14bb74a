//! An upgrade in place on SIGUSR2: the binary runs itself again, from the
//! path it was started with, hands the new process its socket, waits until
//! that one serves, and only then stops; the socket never closes, so what
//! arrives meanwhile waits in it, and both processes read it for a moment.
//!
//! SIGUSR2 is blocked in every thread (`main` blocks it before any starts)
//! and taken by a thread that waits for it, so no handler is installed:
//! the one the process may have (ctrlc's) serves the other signals.

use std::ffi::{OsStr, OsString};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::UdpSocket;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use udp_greeter::service::{self, Notifier, Silencer};
use udp_greeter::Shutdown;

use super::dispositions as signals;

use super::service::{ready_message, UPGRADE_NOTIFY, UPGRADE_TOKEN};

/// How long the new process may take to serve before the upgrade is given
/// up and it is killed: a start binds nothing and reads no file, so this
/// is far more than it needs, and short enough that a hung one is seen.
pub const READY_WAIT: Duration = Duration::from_secs(30);

/// How often the wait for readiness looks whether the new process exited.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// What an upgrade needs, gathered at start.
#[derive(Debug)]
pub struct Upgrader {
    /// The program to run again: the path this one was started from.
    pub program: Result<PathBuf, String>,
    /// The arguments it was started with, after the program's name.
    pub args: Vec<OsString>,
    /// A copy of the socket the server serves.
    pub socket: Result<UdpSocket, String>,
    /// The server's, triggered once the new process serves.
    pub shutdown: Shutdown,
    /// `NOTIFY_SOCKET`, told the new main PID.
    pub manager: Option<Notifier>,
    /// Silences the server's own notifier once the service is handed on.
    pub silencer: Option<Silencer>,
    /// Upgrades tried so far, to name each one's readiness socket.
    pub attempts: u32,
}

impl Upgrader {
    /// Waits for SIGUSR2 on a thread of its own, for as long as the
    /// process lives.
    pub fn spawn(mut self) -> io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name("upgrade".into())
            .spawn(move || self.run())
    }

    fn run(&mut self) {
        loop {
            if let Err(e) = signals::wait_sigusr2() {
                log::error!("cannot wait for SIGUSR2 any more: {e}");
                return;
            }
            if self.shutdown.is_triggered() {
                log::info!("SIGUSR2 during the shutdown: ignored");
                continue;
            }
            log::info!("upgrade: starting {}", self.program_name());
            match self.attempt() {
                Ok(pid) => {
                    log::info!("upgrade: PID {pid} serves the socket now; stopping");
                    self.shutdown.trigger();
                }
                Err(why) => log::warn!("upgrade failed: {why}; still serving"),
            }
            // One request is one upgrade: a SIGUSR2 sent while it ran asked
            // for what was already under way.
            while signals::take_pending_sigusr2() {
                log::info!("SIGUSR2 during the upgrade: ignored");
            }
        }
    }

    fn program_name(&self) -> String {
        match &self.program {
            Ok(path) => path.display().to_string(),
            Err(_) => "the program".into(),
        }
    }

    /// Starts the new process and waits until it serves; its id then.
    fn attempt(&mut self) -> Result<u32, String> {
        let program = self.program.as_ref().map_err(Clone::clone)?;
        let socket = self.socket.as_ref().map_err(Clone::clone)?;
        self.attempts += 1;
        let name = format!(
            "udp-greeter-upgrade-{}-{}",
            std::process::id(),
            self.attempts
        );
        let listener = SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| UnixDatagram::bind_addr(&addr))
            .map_err(|e| format!("cannot listen at @{name} for the new process: {e}"))?;
        let token = token();
        let mut cmd = Command::new(program);
        cmd.args(&self.args)
            // The new process is to be the main one: the watchdog is its.
            .env_remove("WATCHDOG_PID")
            .env(UPGRADE_NOTIFY, format!("@{name}"))
            .env(UPGRADE_TOKEN, &token);
        service::pass_socket(&mut cmd, socket, None)
            .map_err(|e| format!("cannot pass the socket on: {e}"))?;
        signals::block_sigusr2_in_child(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        // The parent's copy; the child has its own.
        drop(cmd);
        wait_ready(&listener, &mut child, &token, &self.shutdown)?;
        let pid = child.id();
        if let Some(manager) = &self.manager {
            if let Err(e) = manager.main_pid(pid) {
                kill(&mut child);
                return Err(format!(
                    "cannot tell the service manager that PID {pid} is the main process now: {e}; \
                     killed it"
                ));
            }
        }
        // Nothing more to tell the manager: the service is the new one's,
        // and this one's STOPPING=1 would stop it.
        if let Some(silencer) = &self.silencer {
            silencer.silence();
        }
        Ok(pid)
    }
}

/// Waits until `child` says on `listener` that it serves, with `token`;
/// an error if it exits first, or takes longer than [`READY_WAIT`] (it is
/// killed then).
fn wait_ready(
    listener: &UnixDatagram,
    child: &mut Child,
    token: &str,
    shutdown: &Shutdown,
) -> Result<(), String> {
    let expected = ready_message(token);
    let deadline = Instant::now() + READY_WAIT;
    let mut buf = [0u8; 512];
    loop {
        if shutdown.is_triggered() {
            // This process stops: the new one must not go on alone, outside
            // whatever supervises this one.
            kill(child);
            return Err("a shutdown began before the new process was ready; killed it".into());
        }
        if let Some(status) = exited(child)? {
            return Err(format!(
                "the new process {} before it was ready",
                describe(status)
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill(child);
            return Err(format!(
                "the new process was not ready within {} s; killed it",
                READY_WAIT.as_secs()
            ));
        }
        listener
            .set_read_timeout(Some(left.min(EXIT_POLL)))
            .map_err(|e| format!("cannot wait for the new process: {e}"))?;
        match listener.recv(&mut buf) {
            Ok(n) if buf[..n] == *expected.as_bytes() => break,
            // Anyone on the host may send here: what lacks the token is
            // not the new process's.
            Ok(_) => log::debug!("upgrade: a message without the token, ignored"),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                kill(child);
                return Err(format!("cannot wait for the new process: {e}; killed it"));
            }
        }
    }
    // Ready, but gone already: nothing to hand over to.
    match exited(child)? {
        Some(status) => Err(format!(
            "the new process {} right after it was ready",
            describe(status)
        )),
        None => Ok(()),
    }
}

/// `child`'s exit status, if it has exited.
fn exited(child: &mut Child) -> Result<Option<ExitStatus>, String> {
    child
        .try_wait()
        .map_err(|e| format!("cannot see whether the new process runs: {e}"))
}

/// Kills `child` and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// "exited with status 1", "was killed by signal 9".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// 128 bits no one else on the host can guess: the standard library's
/// hasher keys are random for each process.
fn token() -> String {
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

/// The program to run again, from `argv0` as the process was started:
/// an absolute path as it is; a relative one (with a `/`) against `cwd`,
/// the directory at start; a bare name by searching `path` (`PATH`), as
/// the shell that started it did.
///
/// Not `/proc/self/exe`: once a new binary is installed over the old,
/// that names the old file, which is what an upgrade must not run.
pub fn resolve(
    argv0: &OsStr,
    cwd: io::Result<PathBuf>,
    path: Option<&OsStr>,
) -> Result<PathBuf, String> {
    let program = Path::new(argv0);
    if argv0.is_empty() {
        return Err("the process was started without a program name".into());
    }
    if program.is_absolute() {
        return Ok(program.to_path_buf());
    }
    let cwd = cwd.map_err(|e| format!("cannot read the directory at start: {e}"));
    if argv0.as_encoded_bytes().contains(&b'/') {
        return Ok(cwd?.join(program));
    }
    let path = path.unwrap_or_default();
    for dir in std::env::split_paths(path) {
        // An empty entry is the current directory.
        let dir = if dir.as_os_str().is_empty() {
            cwd.clone()?
        } else {
            dir
        };
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            return Ok(if candidate.is_absolute() {
                candidate
            } else {
                cwd.clone()?.join(candidate)
            });
        }
    }
    Err(format!(
        "cannot find {} in PATH to run it again",
        program.display()
    ))
}

/// Whether `path` is a file that someone may execute.
fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_the_program() {
        let cwd = || Ok(PathBuf::from("/srv/start"));
        let at = |argv0: &str, path: Option<&str>| {
            resolve(OsStr::new(argv0), cwd(), path.map(OsStr::new))
        };
        assert_eq!(
            at("/usr/local/bin/udp-greeter", None),
            Ok(PathBuf::from("/usr/local/bin/udp-greeter"))
        );
        assert_eq!(
            at("./bin/udp-greeter", None),
            Ok(PathBuf::from("/srv/start/./bin/udp-greeter"))
        );
        assert_eq!(
            at("bin/udp-greeter", None),
            Ok(PathBuf::from("/srv/start/bin/udp-greeter"))
        );
        // A bare name is looked up in PATH, in order, executables only.
        let sh = find_sh();
        let dir = sh.parent().unwrap().to_str().unwrap();
        assert_eq!(at("sh", Some(&format!("/nonexistent:{dir}"))), Ok(sh));
        assert!(at("sh", Some("/nonexistent"))
            .unwrap_err()
            .contains("cannot find sh"));
        assert!(at("", None).is_err());
        let e = resolve(
            OsStr::new("./udp-greeter"),
            Err(io::Error::from(io::ErrorKind::NotFound)),
            None,
        );
        assert!(e.unwrap_err().starts_with("cannot read the directory"));
    }

    fn find_sh() -> PathBuf {
        ["/bin/sh", "/usr/bin/sh"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| is_executable(p))
            .expect("a shell")
    }

    #[test]
    fn statuses_in_words() {
        assert_eq!(
            describe(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
        assert_eq!(describe(ExitStatus::from_raw(9)), "was killed by signal 9");
    }

    #[test]
    fn tokens_differ() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
