//! Serving a `Handler` of one's own: the server's threads, queue, counters
//! and shutdown stay as they are; only the answer changes.
//!
//! This one answers `ping` with `pong`, tells a client its own address when
//! it asks `who am i`, says how many requests its worker has answered when
//! asked `count`, and answers any other request with its bytes reversed.
//! It declines empty requests: they get no reply at all, and are counted as
//! `declined`. Each worker owns its handler, made by a factory, so the
//! count is the worker's own and needs no lock. It binds a free port on
//! 127.0.0.1, asks itself, and stops.
//!
//! ```text
//! cargo run --example custom_handler
//! ```

use std::error::Error;
use std::io::Write;
use std::net::UdpSocket;
use std::time::Duration;

use udp_greeter::{Answer, Config, Handler, Request, Server};

/// The answer to one request. It may block (on a database, another
/// service): the pool of workers keeps the server answering meanwhile.
struct Reverser {
    /// Which worker owns this handler, and how much it answered: state of
    /// its own, which no other thread touches.
    worker: usize,
    answered: u64,
}

impl Handler for Reverser {
    fn respond(&mut self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
        match request.payload {
            b"" => return Answer::Decline,
            b"ping" => reply.extend_from_slice(b"pong"),
            // The peer is where the reply goes; `local` is the address the
            // request reached.
            b"who am i" => {
                let _ = write!(reply, "{} (you asked {})", request.peer, request.local);
            }
            b"count" => {
                let _ = write!(
                    reply,
                    "worker-{} answered {} before",
                    self.worker, self.answered
                );
            }
            other => reply.extend(other.iter().rev()),
        }
        self.answered += 1;
        Answer::Reply
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    // One handler per worker, made at once; `handler_factory` takes one
    // that can fail (a database that cannot be opened, say), failing `start`.
    let server = Server::builder(Config::new("127.0.0.1:0".parse()?))
        .handler_per_worker(|worker| Reverser {
            worker,
            answered: 0,
        })
        .start()?;

    let client = UdpSocket::bind("127.0.0.1:0")?;
    client.connect(server.local_addr())?;
    client.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut buf = [0u8; 128];
    for request in ["ping", "stressed", "who am i", "count", ""] {
        client.send(request.as_bytes())?;
        match client.recv(&mut buf) {
            Ok(n) => println!("{request:?} -> {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(_) => println!("{request:?} -> no reply"),
        }
    }

    let stats = server.shutdown()?;
    println!("{stats}");
    Ok(())
}
