//! The process's signals, for the server binary, whose module this is
//! (`#[path]` in src/bin/server/mod.rs): the library installs no signal
//! handler. These let a binary keep a SIGHUP that its parent asked it to
//! ignore (as `nohup` does) ignored once it wires its own handler, and
//! receive SIGUSR2 without a handler at all: blocked in every thread and
//! taken by one that waits for it (sigwait), so that a process may use a
//! handler library that allows one handler for other signals.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Whether SIGHUP is ignored now (as `nohup` leaves it).
pub fn hangup_ignored() -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action sigaction(2) only writes the current
    // one into `old`, a valid, writable sigaction; nothing is changed.
    let rc = unsafe { libc::sigaction(libc::SIGHUP, std::ptr::null(), old.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: sigaction returned 0, so it filled `old` in (and all-zero is a
    // valid sigaction anyway).
    let old = unsafe { old.assume_init() };
    old.sa_sigaction == libc::SIG_IGN
}

/// Ignores SIGHUP from now on. A failure leaves whatever handler was
/// there, which for the server's binary shuts down gracefully.
pub fn ignore_hangup() {
    // SAFETY: SIG_IGN installs no code; signal(2) touches no memory of the
    // program.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

/// The set holding SIGUSR2 alone.
fn sigusr2_set() -> libc::sigset_t {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `set` is valid, writable memory for a sigset_t; sigemptyset
    // and sigaddset only write into it, and cannot fail for a valid signal.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGUSR2);
        set.assume_init()
    }
}

/// Blocks SIGUSR2 in the calling thread, and so in every thread it starts
/// from now on (a thread inherits its creator's mask): called before any
/// thread starts, a SIGUSR2 then waits, pending, until
/// [`wait_sigusr2`] takes it, whichever thread the kernel picks.
///
/// # Errors
///
/// The mask could not be changed (never, for a valid signal).
pub fn block_sigusr2() -> io::Result<()> {
    let set = sigusr2_set();
    // SAFETY: `set` is a valid sigset_t for the call; a null old set asks
    // for nothing back. Only the calling thread's mask changes.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits until a SIGUSR2 is pending and takes it. SIGUSR2 must be blocked
/// in every thread ([`block_sigusr2`]), or the kernel may deliver it to
/// one that does not wait for it, which its default action terminates.
///
/// # Errors
///
/// sigwait(3) failed (never, for a valid signal).
pub fn wait_sigusr2() -> io::Result<()> {
    let set = sigusr2_set();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` and `sig` are valid for the call; sigwait only reads
    // the one and writes the other.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Takes a SIGUSR2 that is pending, without waiting: whether there was one.
/// SIGUSR2 must be blocked, as for [`wait_sigusr2`].
pub fn take_pending_sigusr2() -> bool {
    let set = sigusr2_set();
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `set` and `now` are valid for the call; a null info asks for
    // nothing back. A zero timeout makes it return at once.
    let rc = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &now) };
    rc == libc::SIGUSR2
}

/// Makes the child `cmd` spawns start with SIGUSR2 blocked, so that one
/// sent before the new program blocks it itself waits, pending, instead of
/// killing it. The standard library empties a child's mask before exec;
/// this runs after that.
pub fn block_sigusr2_in_child(cmd: &mut Command) {
    let set = sigusr2_set();
    let hook = move || -> io::Result<()> {
        // SAFETY: `set` is a valid sigset_t, copied into the hook; a null
        // old set asks for nothing back.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    };
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it calls pthread_sigmask (the
    // sigprocmask of the one thread a forked child has), allocates nothing
    // (an OS error is stored inline in io::Error) and takes no lock.
    unsafe {
        cmd.pre_exec(hook);
    }
}
