//! Stopping a server from another thread (docs/tutorial.md, step 5): a
//! `Shutdown` handle, cheap to clone, that any thread may trigger; the
//! server answers what it has queued, joins its threads and returns its
//! counters.
//!
//! ```text
//! cargo run --example stop_handle
//! ```

use std::thread;
use std::time::Duration;

use udp_greeter::{Client, Config, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind(Config::new("127.0.0.1:0".parse()?))?;
    let client = Client::new(server.local_addr())?;

    // Any thread may stop the server: here, one that waits a second.
    let stop = server.shutdown_handle();
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(1));
        stop.trigger();
    });

    client.greet(b"Michael")?;
    // Returns once the handle is triggered and every thread has been joined.
    let stats = server.join()?;
    println!("{stats}");
    assert!(stats.is_balanced());
    Ok(())
}
