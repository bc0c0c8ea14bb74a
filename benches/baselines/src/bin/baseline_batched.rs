//! The practical limit, as a baseline for `benches/compare.sh`: one thread
//! reading up to 64 datagrams per `recvmmsg` and answering them with one
//! `sendmmsg`, the shape of the single-threaded C server taken as this
//! machine's limit. No segmentation offload, no threads.
//! Linux only. The `--block-us`/`--spin-us` work runs for each request of a
//! batch in turn, as in any one-thread loop.
//!
//! ```text
//! cargo run --release -p udp-greeter-baselines --bin baseline_batched -- --bind 127.0.0.1:0 [--block-us U] [--spin-us U]
//! ```

use std::net::UdpSocket;
use std::process::ExitCode;

use udp_greeter_baselines::{Args, Flags, Work};

fn main() -> ExitCode {
    let Args { bind, work, .. } = match Args::from_env("baseline_batched", Flags::Common) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let socket = match udp_greeter_baselines::bind(bind) {
        Ok(s) => s,
        Err(code) => return code,
    };
    serve(&socket, work)
}

#[cfg(target_os = "linux")]
fn serve(socket: &UdpSocket, work: Work) -> ExitCode {
    use std::os::fd::AsRawFd;
    use std::{mem, ptr};

    const BATCH: usize = 64;
    // Room for any UDP payload, so no request is cut short.
    const ROOM: usize = 65_536;

    let fd = socket.as_raw_fd();
    let mut inbox = vec![vec![0u8; ROOM]; BATCH];
    let mut outbox: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(ROOM)).collect();
    // SAFETY (all three): plain C structs for which all-zero is valid.
    let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { mem::zeroed() }; BATCH];
    let mut iovs: Vec<libc::iovec> = vec![unsafe { mem::zeroed() }; BATCH];
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { mem::zeroed() }; BATCH];
    loop {
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: inbox[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: ROOM,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points into buffers that outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        let n = n as usize;
        for i in 0..n {
            let len = (hdrs[i].msg_len as usize).min(ROOM);
            work.run();
            udp_greeter::greet_into(&inbox[i][..len], &mut outbox[i]);
            iovs[i] = libc::iovec {
                iov_base: outbox[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: outbox[i].len(),
            };
            // The address the kernel wrote stays in place as the reply's.
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: headers `sent..n` point at replies that outlive the call.
            let rc = unsafe { libc::sendmmsg(fd, hdrs[sent..].as_mut_ptr(), (n - sent) as u32, 0) };
            if rc <= 0 {
                // Skip the datagram that failed; the rest are tried again.
                sent += 1;
            } else {
                sent += rc as usize;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn serve(_socket: &UdpSocket, _work: Work) -> ExitCode {
    eprintln!("error: baseline_batched needs recvmmsg/sendmmsg (Linux)");
    ExitCode::from(1)
}
