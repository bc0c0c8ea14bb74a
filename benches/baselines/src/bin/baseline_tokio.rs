//! The greeting server written the way a tokio user would, as a baseline for
//! `benches/compare.sh`: two tasks share one `Arc<UdpSocket>`, each looping
//! `recv_from` then `send_to` (one of them is the shape of tokio's echo
//! example; two tasks let the multi-threaded runtime use both cores).
//!
//! A request's `--block-us`/`--spin-us` work runs in two ways:
//!
//! - by default in the receiving task itself, blocking a runtime thread
//!   (`std::thread::sleep`, a busy loop), as a naive tokio user would write
//!   it: the two tasks then serve at most two requests at a time;
//! - with `--spawn-blocking`, tokio's own answer: each datagram gets a task
//!   of its own, which runs the work with `tokio::task::spawn_blocking` (on
//!   tokio's pool of blocking threads) and awaits it before sending the
//!   reply, so the receiving tasks go straight back to reading.
//!
//! ```text
//! cargo run --release -p udp-greeter-baselines --bin baseline_tokio -- --bind 127.0.0.1:0 [--block-us U] [--spin-us U] [--spawn-blocking]
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::UdpSocket;
use udp_greeter_baselines::{Args, Flags, Work};

/// How many tasks serve the one socket.
const TASKS: usize = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::from_env("baseline_tokio", Flags::SpawnBlocking) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let socket = match UdpSocket::bind(args.bind).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: cannot bind {}: {e}", args.bind);
            return ExitCode::from(1);
        }
    };
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("Bind UDP on {port}...");
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let socket = socket.clone();
            if args.spawn_blocking {
                tokio::spawn(serve_spawn_blocking(socket, args.work))
            } else {
                tokio::spawn(serve_in_task(socket, args.work))
            }
        })
        .collect();
    let _ = tokio::signal::ctrl_c().await;
    for t in tasks {
        t.abort();
    }
    ExitCode::SUCCESS
}

async fn serve_in_task(socket: Arc<UdpSocket>, work: Work) {
    let mut buf = vec![0u8; 65_536];
    let mut reply = Vec::with_capacity(65_536);
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("receive error: {e}");
                continue;
            }
        };
        work.run();
        udp_greeter::greet_into(&buf[..n], &mut reply);
        if let Err(e) = socket.send_to(&reply, peer).await {
            eprintln!("send error: {e}");
        }
    }
}

async fn serve_spawn_blocking(socket: Arc<UdpSocket>, work: Work) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("receive error: {e}");
                continue;
            }
        };
        // The request leaves the shared buffer: its task outlives this read.
        tokio::spawn(answer(socket.clone(), buf[..n].to_vec(), peer, work));
    }
}

async fn answer(socket: Arc<UdpSocket>, request: Vec<u8>, peer: SocketAddr, work: Work) {
    let reply = tokio::task::spawn_blocking(move || {
        work.run();
        let mut reply = Vec::with_capacity(request.len() + 8);
        udp_greeter::greet_into(&request, &mut reply);
        reply
    })
    .await;
    match reply {
        Ok(reply) => {
            if let Err(e) = socket.send_to(&reply, peer).await {
                eprintln!("send error: {e}");
            }
        }
        Err(e) => eprintln!("request failed: {e}"),
    }
}
