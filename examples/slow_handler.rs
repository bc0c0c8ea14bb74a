//! A handler that takes its time, and what a pool of workers changes
//! (docs/tutorial.md, step 4): a request `slow` holds its worker for half a
//! second, and Michael, who asks right after, waits for it only when there
//! is no other worker. The number of workers is the first argument.
//!
//! ```text
//! cargo run --example slow_handler -- 1
//! cargo run --example slow_handler -- 4
//! ```

use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use udp_greeter::{greet_into, Client, Config, Request, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::new("127.0.0.1:0".parse()?);
    config.workers = std::env::args().nth(1).unwrap_or("4".into()).parse()?;
    let server = Server::builder(config)
        .handler(|request: &Request<'_>, reply: &mut Vec<u8>| {
            if request.payload == b"slow" {
                // Stands for a lookup in a database that takes its time.
                thread::sleep(Duration::from_millis(500));
            }
            greet_into(request.payload, reply);
        })
        .start()?;

    // Someone asks first, and a worker starts on it.
    let someone = UdpSocket::bind("127.0.0.1:0")?;
    someone.send_to(b"slow", server.local_addr())?;
    thread::sleep(Duration::from_millis(10));

    let start = Instant::now();
    let client = Client::new(server.local_addr())?;
    client.greet(b"Michael")?;
    println!(
        "{} workers: Michael waited {:?}",
        server.workers(),
        start.elapsed()
    );

    println!("{}", server.shutdown()?);
    Ok(())
}
