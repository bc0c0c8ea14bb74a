//! Blocking threads on one socket, as a baseline for `benches/compare.sh`:
//! `--threads N` threads (default 1) each loop `recv_from`, the request's
//! `--block-us`/`--spin-us` work, then `send_to`, all on one shared socket.
//! The kernel hands each datagram to a thread already waiting in
//! `recv_from`, so up to N requests are worked on at once with no queue and
//! no hand-off between threads: the plainest answer to a handler that
//! blocks, and what a pool of workers is measured against.
//!
//! ```text
//! cargo run --release -p udp-greeter-baselines --bin baseline_threads -- --bind 127.0.0.1:0 [--threads N] [--block-us U] [--spin-us U]
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use udp_greeter_baselines::{serve, Args, Flags};

fn main() -> ExitCode {
    let Args {
        bind,
        work,
        threads,
        ..
    } = match Args::from_env("baseline_threads", Flags::Threads) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let socket = match udp_greeter_baselines::bind(bind) {
        Ok(s) => Arc::new(s),
        Err(code) => return code,
    };
    // The main thread is the first of them, so `--threads 1` is the plain
    // one-thread loop.
    for i in 1..threads {
        let socket = socket.clone();
        let spawned = thread::Builder::new()
            .name(format!("serve-{i}"))
            .spawn(move || serve(&socket, work));
        if let Err(e) = spawned {
            eprintln!("error: cannot start thread {i} of {threads}: {e}");
            return ExitCode::from(1);
        }
    }
    serve(&socket, work)
}
