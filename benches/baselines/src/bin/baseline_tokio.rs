//! The greeting server written the way a tokio user would, as a baseline for
//! `benches/compare.sh`: two tasks share one `Arc<UdpSocket>`, each looping
//! `recv_from` then `send_to` (one of them is the shape of tokio's echo
//! example; two tasks let the multi-threaded runtime use both cores).
//!
//! ```text
//! cargo run --release -p udp-greeter-baselines --bin baseline_tokio -- --bind 127.0.0.1:0
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::UdpSocket;

/// How many tasks serve the one socket.
const TASKS: usize = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let bind = match udp_greeter_baselines::bind_arg("baseline_tokio") {
        Ok(addr) => addr,
        Err(code) => return code,
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: cannot bind {bind}: {e}");
            return ExitCode::from(1);
        }
    };
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("Bind UDP on {port}...");
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let socket = socket.clone();
            tokio::spawn(async move {
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
                    udp_greeter::greet_into(&buf[..n], &mut reply);
                    if let Err(e) = socket.send_to(&reply, peer).await {
                        eprintln!("send error: {e}");
                    }
                }
            })
        })
        .collect();
    let _ = tokio::signal::ctrl_c().await;
    for t in tasks {
        t.abort();
    }
    ExitCode::SUCCESS
}
