//! The process's disposition of SIGHUP. The library installs no signal
//! handler; these only let a binary keep a SIGHUP that its parent asked it
//! to ignore (as `nohup` does) ignored once it wires its own handler.

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
