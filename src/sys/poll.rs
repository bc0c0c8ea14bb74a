//! Sleeping until a socket has something to read.

use std::io;
use std::net::UdpSocket;
use std::time::Duration;

/// Sleeps until one of `sockets` has something to read or `wait` has
/// passed.
#[cfg(unix)]
pub(crate) fn wait_readable(sockets: &[UdpSocket], wait: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    #[cfg(target_os = "linux")]
    let rc = {
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `fds` and `ts` outlive the call; the length is `fds`'s own.
        unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        }
    };
    #[cfg(not(target_os = "linux"))]
    let rc = {
        let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` outlives the call; the length is its own.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) }
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Elsewhere, a short sleep stands in for the wait.
#[cfg(not(unix))]
pub(crate) fn wait_readable(_sockets: &[UdpSocket], wait: Duration) -> io::Result<()> {
    std::thread::sleep(wait.min(Duration::from_millis(1)));
    Ok(())
}
