//! The simplest fast server, as a baseline for `benches/compare.sh`: one
//! thread, one `recv_from`/`send_to` loop, buffers reused.
//!
//! ```text
//! cargo run --release -p udp-greeter-baselines --bin baseline_std -- --bind 127.0.0.1:0
//! ```

use std::net::UdpSocket;
use std::process::ExitCode;

fn main() -> ExitCode {
    let bind = match udp_greeter_baselines::bind_arg("baseline_std") {
        Ok(addr) => addr,
        Err(code) => return code,
    };
    let socket = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot bind {bind}: {e}");
            return ExitCode::from(1);
        }
    };
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("Bind UDP on {port}...");
    let mut buf = vec![0u8; 65_536];
    let mut reply = Vec::with_capacity(65_536);
    loop {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("receive error: {e}");
                continue;
            }
        };
        udp_greeter::greet_into(&buf[..n], &mut reply);
        if let Err(e) = socket.send_to(&reply, peer) {
            eprintln!("send error: {e}");
        }
    }
}
