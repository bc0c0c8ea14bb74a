//! The least a hand-off between threads costs, as a baseline for
//! `benches/compare.sh`: one thread reads with `recv_from` into a bounded
//! crossbeam channel, one thread takes each datagram off it and answers with
//! `send_to` on a clone of the socket. Neither ever waits awake: each
//! sleeps in the kernel as soon as it has nothing to do. A lone datagram
//! therefore costs two sleeps and two wake-ups where a one-thread loop pays
//! one: the floor under the CPU per reply of any pipeline of this shape.
//!
//! ```text
//! cargo run --release -p udp-greeter-baselines --bin baseline_handoff -- --bind 127.0.0.1:0
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;

use udp_greeter_baselines::{Args, Flags};

/// How many datagrams may wait between the threads, as in the server.
const QUEUE: usize = 1024;

fn main() -> ExitCode {
    let Args { bind, work, .. } = match Args::from_env("baseline_handoff", Flags::Common) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let socket = match udp_greeter_baselines::bind(bind) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let sender = match socket.try_clone() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot clone the socket: {e}");
            return ExitCode::from(1);
        }
    };
    let (tx, rx) = crossbeam_channel::bounded::<(Vec<u8>, SocketAddr)>(QUEUE);
    let worker = thread::spawn(move || {
        let mut reply = Vec::with_capacity(65_536);
        for (data, peer) in rx {
            work.run();
            udp_greeter::greet_into(&data, &mut reply);
            if let Err(e) = sender.send_to(&reply, peer) {
                eprintln!("send error: {e}");
            }
        }
    });
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("receive error: {e}");
                continue;
            }
        };
        // A copy per datagram, as the simplest pipeline makes it; a full
        // queue drops, as the server's does.
        if tx.try_send((buf[..n].to_vec(), peer)).is_err() && worker.is_finished() {
            return ExitCode::from(1);
        }
    }
}
