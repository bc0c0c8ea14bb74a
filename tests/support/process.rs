//! The binaries as child processes: started, read, signalled and stopped
//! within bounded waits.

use super::*;

use std::os::unix::process::CommandExt;

/// A `Command` for one of the binaries (or another program), blind to the
/// caller's `UDP_GREETER_*` variables and to the signals it ignores.
pub fn command(bin: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(bin);
    for var in ENV_VARS.iter().chain(SERVICE_VARS) {
        c.env_remove(var);
    }
    c.stdin(Stdio::null());
    default_signals(&mut c);
    c.process_group(0);
    c
}

/// Makes the child start with SIGINT, SIGTERM and SIGHUP at their default
/// actions, as a terminal or a service manager starts it, whatever the
/// test process got: a shell's background job ignores SIGINT, and an
/// ignored signal stays ignored across exec, so one sent before the server
/// wires its handler would be lost.
#[cfg(unix)]
fn default_signals(cmd: &mut Command) {
    // SAFETY: runs in the child between fork and exec, where only
    // async-signal-safe calls may be made: signal(2) is one, and the hook
    // allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn default_signals(_cmd: &mut Command) {}

/// A running child whose stdout and stderr are collected by threads.
///
/// It leads a process group of its own, which holds whatever it starts
/// (a server under `timeout`, an upgrade's new process) unless they leave
/// it. When the `Proc` is dropped, even while a failed test unwinds, the
/// whole group is killed and the child reaped. The child is reaped only
/// then: until it is, its PID, and so its group's number, cannot be given
/// to another process, so neither a signal nor the kill can reach a
/// stranger.
pub struct Proc {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    /// A message each time more stderr arrives, so waits for a line end
    /// the moment it is written.
    err_ping: Mutex<mpsc::Receiver<()>>,
    status: Option<ExitStatus>,
}

fn collect(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
    ping: mpsc::Sender<()>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name("collect".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        into.lock().unwrap().extend_from_slice(&buf[..n]);
                        let _ = ping.send(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        })
        .expect("spawn")
}

impl Proc {
    /// Spawns `cmd` with its stdout and stderr piped to the test.
    pub fn spawn(cmd: &mut Command) -> Proc {
        cmd.process_group(0);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let (out_ping, _) = mpsc::channel();
        let (err_ping, err_pinged) = mpsc::channel();
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), out.clone(), out_ping),
            collect(child.stderr.take().expect("stderr"), err.clone(), err_ping),
        ];
        Proc {
            child,
            out,
            err,
            readers,
            err_ping: Mutex::new(err_pinged),
            status: None,
        }
    }

    /// Wraps a child whose output the caller handles itself: one made by
    /// [`command`], so that it leads a process group of its own.
    pub fn adopt(child: Child) -> Proc {
        Proc {
            child,
            out: Arc::default(),
            err: Arc::default(),
            readers: Vec::new(),
            err_ping: Mutex::new(mpsc::channel().1),
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.out.lock().unwrap().clone()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        self.err.lock().unwrap().clone()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout()).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr()).into_owned()
    }

    /// Waits until stderr contains `what`; false after `timeout`. Returns
    /// as soon as the text is written.
    pub fn wait_stderr(&self, what: &str, timeout: Duration) -> bool {
        self.wait_stderr_for(timeout, |text| text.contains(what).then_some(()))
            .is_some()
    }

    /// Waits until `found` returns something for the stderr written so far;
    /// `None` after `timeout`.
    pub fn wait_stderr_for<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let pinged = self.err_ping.lock().unwrap();
        loop {
            if let Some(v) = found(&self.stderr_text()) {
                return Some(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Woken by new output; the short cap covers a reader that has
            // finished (stderr closed) and pings no more.
            let _ = pinged.recv_timeout(left.min(Duration::from_millis(20)));
        }
    }

    /// The first line of stderr that contains `what`, waiting for it at most
    /// [`PATIENCE`]; fails the test, showing stderr, if none comes.
    pub fn line_with(&self, what: &str) -> String {
        self.wait_stderr_for(PATIENCE, |text| {
            text.lines().find(|l| l.contains(what)).map(str::to_owned)
        })
        .unwrap_or_else(|| {
            panic!(
                "no line with {what:?} within {PATIENCE:?}; stderr:\n{}",
                self.stderr_text()
            )
        })
    }

    /// Waits until stdout contains `what`; false after `timeout`.
    pub fn wait_stdout(&self, what: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stdout_text().contains(what) {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        self.stdout_text().contains(what)
    }

    /// Its stdin, if it was piped, for the caller to write.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// Whether the process is still running. One that has ended is left
    /// unreaped, a zombie, until the `Proc` is dropped.
    pub fn alive(&mut self) -> bool {
        if self.status.is_none() {
            #[cfg(target_os = "linux")]
            let ended = exit_status(self.pid());
            // Elsewhere it is reaped at once.
            #[cfg(not(target_os = "linux"))]
            let ended = self.child.try_wait().expect("try_wait");
            self.status = ended;
        }
        self.status.is_none()
    }

    /// Its exit status if it has ended, without waiting for anything else
    /// (its output may still be held open by what it started).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.alive();
        self.status
    }

    /// Its exit status, waiting at most `timeout`; `None` if still running.
    /// Once it has exited, the output collected so far is complete.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.alive() {
                // The pipes close with the process: the readers finish.
                for r in self.readers.drain(..) {
                    join_within(r, PATIENCE, "output reader");
                }
                return self.status;
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Its exit status; fails the test if it runs longer than `timeout`.
    pub fn finish(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_exit(timeout) {
            Some(s) => s,
            None => panic!(
                "{:?} still running after {timeout:?}; stderr so far:\n{}",
                self.child.id(),
                self.stderr_text()
            ),
        }
    }

    /// Sends `sig` (e.g. `libc::SIGINT`).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with a pid of our own child; no memory involved.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(
            rc,
            0,
            "kill({}, {sig}): {}",
            self.pid(),
            io::Error::last_os_error()
        );
    }

    /// Stops the process with SIGSTOP and waits until the kernel says it is
    /// stopped (state `T` in /proc/PID/stat): none of its threads runs
    /// until [`resume`](Proc::resume).
    #[cfg(target_os = "linux")]
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.pid());
        let stopped = wait_until(PATIENCE, || {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            let state = text
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state == Some("T")
        });
        assert!(stopped, "{} not stopped within {PATIENCE:?}", self.pid());
    }

    /// Lets a process [`pause`](Proc::pause) stopped run again.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Stops a server binary the way a supervisor does (SIGTERM), expects a
    /// clean exit within [`PATIENCE`] and returns the counters of its final
    /// `stats:` line.
    pub fn stop(&mut self) -> Snapshot {
        wait_signal_handlers(self.pid());
        self.signal(libc::SIGTERM);
        let status = self.finish(PATIENCE);
        let log = self.stderr_text();
        assert!(
            status.success(),
            "exit status {status} after SIGTERM:\n{log}"
        );
        parse_stats(&log).unwrap_or_else(|| panic!("no final stats line:\n{log}"))
    }

    /// Peak resident memory (VmHWM) in bytes, from /proc.
    #[cfg(target_os = "linux")]
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM line");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("VmHWM value");
        kib * 1024
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) takes numbers and touches no memory. The child
        // is not reaped yet, so the group it leads is still its own.
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        // A child that left the group, or never led one.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How process `pid`, a child of this process, ended, if it has: read
/// without reaping it (waitid with WNOWAIT), so that its PID stays its own.
#[cfg(target_os = "linux")]
fn exit_status(pid: i32) -> Option<ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    // SAFETY: all zeros is a valid siginfo_t, and waitid writes only into
    // the one it is given. WNOHANG: it returns at once.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
    // SAFETY: waitid filled `info` in for a child's change of state, or
    // left si_pid 0 when there was none.
    let (code, status, from) = unsafe { (info.si_code, info.si_status(), info.si_pid()) };
    if rc != 0 || from == 0 {
        return None;
    }
    // The wait status the shell's `$?` is made of: code << 8, or the signal.
    Some(ExitStatus::from_raw(match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => status | 0x80,
        _ => status,
    }))
}

/// The port in a `Bind UDP on PORT...` line, if there is one.
pub fn bound_port(log: &str) -> Option<u16> {
    let rest = &log[log.find("Bind UDP on ")? + "Bind UDP on ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    rest[digits.len()..].starts_with("...").then_some(())?;
    digits.parse().ok()
}

/// The source ports of the `Received from HOST:PORT.` lines of `log`.
fn received_from(log: &str, host: &str) -> Vec<u16> {
    let needle = format!("Received from {host}:");
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&needle)? + needle.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (rest[digits.len()..] == *".").then(|| digits.parse().ok())?
        })
        .collect()
}

/// The source ports of the server's `Received from HOST:PORT.` lines for
/// `host`, once it has logged `n` of them; fails the test, showing stderr,
/// if it has not within [`PATIENCE`].
pub fn wait_received(server: &Proc, host: &str, n: usize) -> Vec<u16> {
    server
        .wait_stderr_for(PATIENCE, |log| {
            let ports = received_from(log, host);
            (ports.len() >= n).then_some(ports)
        })
        .unwrap_or_else(|| {
            panic!(
                "wanted {n} `Received from {host}:PORT.` lines; log:\n{}",
                server.stderr_text()
            )
        })
}

/// The UDP port process `pid` has bound, read from its socket descriptors
/// and /proc/net/udp{,6}.
#[cfg(target_os = "linux")]
fn udp_port_of(pid: i32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && inodes.iter().any(|i| i == cols[9]) {
                let port = cols[1].rsplit(':').next()?;
                return u16::from_str_radix(port, 16).ok();
            }
        }
    }
    None
}

/// The UDP port `p` has bound, found through /proc: for a server that
/// cannot log `Bind UDP on` (its log level hides it, or its stderr is not
/// read). Fails the test if `p` exits or binds none within [`PATIENCE`].
#[cfg(target_os = "linux")]
pub fn wait_udp_port(p: &mut Proc) -> u16 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(port) = udp_port_of(p.pid()) {
            return port;
        }
        assert!(
            p.alive() && Instant::now() < deadline,
            "the server bound no UDP port within {PATIENCE:?}; stderr:\n{}",
            p.stderr_text()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Starts the server binary with `args` (which should bind port 0) at a log
/// level that hides `Bind UDP on`, and returns it with the port it bound.
#[cfg(target_os = "linux")]
pub fn quiet_server_proc(args: &[&str]) -> (Proc, u16) {
    let mut p = Proc::spawn(command(SERVER_BIN).args(args));
    let port = wait_udp_port(&mut p);
    (p, port)
}

/// Starts the server binary with `args` (which should bind port 0) and
/// returns it with the port it logged.
pub fn server_proc(args: &[&str]) -> (Proc, u16) {
    server_with(command(SERVER_BIN).args(args))
}

/// As [`server_proc`], but a server that exits instead of binding is an
/// `Err` with its stderr.
pub fn try_server_proc(args: &[&str]) -> Result<(Proc, u16), String> {
    try_server_with(command(SERVER_BIN).args(args))
}

/// As [`try_server_proc`], with the environment variables `env` set.
pub fn try_server_proc_env(env: &[(&str, &str)], args: &[&str]) -> Result<(Proc, u16), String> {
    try_server_with(command(SERVER_BIN).envs(env.iter().copied()).args(args))
}

/// As [`server_proc`], for a [`command`] that runs the server binary
/// (itself, or through a program that execs it) with the arguments and
/// environment the caller has given it.
pub fn server_with(cmd: &mut Command) -> (Proc, u16) {
    try_server_with(cmd).unwrap_or_else(|log| panic!("the server did not start:\n{log}"))
}

/// As [`try_server_proc`], for a [`command`] the caller has set up.
pub fn try_server_with(cmd: &mut Command) -> Result<(Proc, u16), String> {
    let mut p = Proc::spawn(cmd);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(port) = p.wait_stderr_for(left.min(Duration::from_millis(50)), bound_port) {
            return Ok((p, port));
        }
        if !p.alive() {
            p.wait_exit(PATIENCE);
            return Err(p.stderr_text());
        }
        assert!(
            !left.is_zero(),
            "no `Bind UDP on` line within {PATIENCE:?}; stderr:\n{}",
            p.stderr_text()
        );
    }
}

/// Waits until process `pid` catches SIGINT and SIGTERM (SigCgt in
/// /proc/PID/status).
///
/// The server installs its handler before it binds, so the handler is in
/// place once `Bind UDP on` is logged, and `sigterm_at_once` in
/// tests/shutdown.rs holds it to that. Tests about something else check
/// the handler first so that, should that order break, they fail saying so
/// instead of finding their server killed outright by the signal.
#[cfg(target_os = "linux")]
pub fn wait_signal_handlers(pid: i32) {
    let wanted = signal_bit(libc::SIGINT) | signal_bit(libc::SIGTERM);
    wait_signal_masks(pid, "SIGINT and SIGTERM caught", |_, caught| {
        caught & wanted == wanted
    });
}

/// The SigIgn and SigCgt masks of process `pid`, from /proc/PID/status.
#[cfg(target_os = "linux")]
fn signal_masks(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0)
    };
    (mask("SigIgn:"), mask("SigCgt:"))
}

/// The bit of `sig` in a signal mask.
#[cfg(target_os = "linux")]
pub fn signal_bit(sig: libc::c_int) -> u64 {
    1 << (sig - 1)
}

/// Waits until process `pid`'s signal masks, ignored and caught, satisfy
/// `done`; fails the test, saying it wanted `what`, after [`PATIENCE`].
#[cfg(target_os = "linux")]
pub fn wait_signal_masks(pid: i32, what: &str, done: impl Fn(u64, u64) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (ignored, caught) = signal_masks(pid);
        if done(ignored, caught) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid}, not {what} within {PATIENCE:?}: SigIgn {ignored:x}, SigCgt {caught:x}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Elsewhere there is no SigCgt to read: a pause makes the race unlikely.
#[cfg(not(target_os = "linux"))]
pub fn wait_signal_handlers(_pid: i32) {
    thread::sleep(Duration::from_millis(500));
}

/// What a finished child did.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// A bad command-line value: exit 2 and exactly one `error` line, which
    /// holds every one of `words`; the value taken neither for an unexpected
    /// argument nor, on clap's advice, for one to pass after `--`; no
    /// panic, nothing on stdout, nothing bound.
    pub fn refusal(&self, words: &[&str]) {
        assert_eq!(self.code(), Some(2), "{self:?}");
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .collect();
        assert_eq!(errors.len(), 1, "{}", self.stderr);
        for word in words {
            assert!(errors[0].contains(word), "no {word:?} in {}", self.stderr);
        }
        for never in ["panicked", "unexpected argument", "'-- ", "Bind UDP"] {
            assert!(!self.stderr.contains(never), "{}", self.stderr);
        }
        assert!(self.stdout.is_empty(), "{self:?}");
    }
}

/// Runs `bin` with `args` to completion, killing it and failing the test
/// if it takes longer than `timeout`.
pub fn run(bin: &str, args: &[&str], timeout: Duration) -> Outcome {
    run_with(command(bin).args(args), timeout)
}

/// As [`run`] within [`PATIENCE`], with the environment variables `env` set.
pub fn run_env(bin: &str, env: &[(&str, &str)], args: &[&str]) -> Outcome {
    run_with(command(bin).envs(env.iter().copied()).args(args), PATIENCE)
}

/// As [`run`], for a [`command`] the caller has given its arguments and
/// environment.
pub fn run_with(cmd: &mut Command, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let mut p = Proc::spawn(cmd);
    let status = p.finish(timeout);
    Outcome {
        status,
        stdout: p.stdout(),
        stderr: p.stderr_text(),
        elapsed: started.elapsed(),
    }
}

/// The counters of the last `stats:` line in `log`.
pub fn parse_stats(log: &str) -> Option<Snapshot> {
    let line = log.lines().rev().find(|l| l.contains("stats: received="))?;
    Snapshot::from_line(line)
}
