//! The simplest fast server, as a baseline for `benches/compare.sh`: one
//! thread, one `recv_from`/`send_to` loop, buffers reused.
//!
//! ```text
//! cargo run --release --example baseline_std -- --bind 127.0.0.1:0
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;

fn main() -> ExitCode {
    let bind = match bind_arg() {
        Ok(addr) => addr,
        Err(msg) => {
            eprintln!("error: {msg}\nusage: baseline_std [--bind ADDR]");
            return ExitCode::from(2);
        }
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

fn bind_arg() -> Result<SocketAddr, String> {
    let mut bind: SocketAddr = ([127, 0, 0, 1], 9999).into();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => {
                let v = args.next().ok_or("--bind needs an address")?;
                bind = v.parse().map_err(|e| format!("bad address {v:?}: {e}"))?;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(bind)
}
