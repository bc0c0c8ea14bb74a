//! Serving a `Handler` of one's own: the server's threads, queue, counters
//! and shutdown stay as they are; only the reply changes.
//!
//! This one answers `ping` with `pong` and any other request with its bytes
//! reversed. It binds a free port on 127.0.0.1, asks itself twice, and
//! stops.
//!
//! ```text
//! cargo run --example custom_handler
//! ```

use std::error::Error;
use std::net::UdpSocket;
use std::time::Duration;

use udp_greeter::{Config, Handler, Server};

/// The reply to one request. A handler must not block: the worker around it
/// does the I/O.
struct Reverser;

impl Handler for Reverser {
    fn respond(&self, request: &[u8], reply: &mut Vec<u8>) {
        if request == b"ping" {
            reply.extend_from_slice(b"pong");
        } else {
            reply.extend(request.iter().rev());
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    // A closure `Fn(&[u8], &mut Vec<u8>)` is a handler too.
    let server = Server::with_handler(Config::new("127.0.0.1:0".parse()?), Reverser)?;

    let client = UdpSocket::bind("127.0.0.1:0")?;
    client.connect(server.local_addr())?;
    client.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buf = [0u8; 64];
    for request in ["ping", "stressed"] {
        client.send(request.as_bytes())?;
        let n = client.recv(&mut buf)?;
        println!("{request} -> {}", String::from_utf8_lossy(&buf[..n]));
    }

    let stats = server.shutdown()?;
    println!("{stats}");
    Ok(())
}
