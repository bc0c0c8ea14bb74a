//! A key-value store over UDP, shared by every worker: `SET key value`
//! answers `OK`, `GET key` answers `VALUE value` or `NOT FOUND`, and
//! `COUNT` says which worker answered it and how many requests that worker
//! has taken. Anything else gets no reply (counted as `declined`).
//!
//! Each worker gets a clone of the handler, so the handler holds two kinds
//! of state:
//!
//! - **Shared by all workers:** the store, an `Arc<RwLock<HashMap>>`. A
//!   clone of an `Arc` points to the same map, so a `SET` that one worker
//!   takes is seen by a `GET` that any other takes.
//! - **Each worker's own:** its count of requests, a plain number. The
//!   clone is a copy that no other thread touches, so it needs no lock.
//!
//! A `HashMap` captured by value would be per-worker state too: each worker
//! would get a store of its own, and a `GET` would find a `SET` only when
//! the same worker took both.
//!
//! It says `Bind UDP on PORT...` on stderr, as the server binary does, and
//! runs until killed.
//!
//! ```text
//! cargo run --example kv_store -- [ADDR [WORKERS]]
//! printf 'SET lang Rust' | nc -u -w1 127.0.0.1 9999
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, PoisonError, RwLock};
use std::thread;

use udp_greeter::{Answer, Config, Request, Server, DEFAULT_BIND};

/// The store: one map behind one lock, for every worker.
type Store = Arc<RwLock<HashMap<Vec<u8>, Vec<u8>>>>;

/// Answers one request of the store's protocol into `reply`.
fn answer(store: &Store, request: &[u8], reply: &mut Vec<u8>) -> Answer {
    let mut words = request.splitn(3, |&b| b == b' ');
    match (words.next(), words.next(), words.next()) {
        (Some(b"SET"), Some(key), Some(value)) => {
            // A worker that panicked while holding the lock left the map
            // whole: an insert happens entirely or not at all.
            let mut map = store.write().unwrap_or_else(PoisonError::into_inner);
            map.insert(key.to_vec(), value.to_vec());
            reply.extend_from_slice(b"OK");
        }
        (Some(b"GET"), Some(key), None) => {
            let map = store.read().unwrap_or_else(PoisonError::into_inner);
            match map.get(key) {
                Some(value) => {
                    reply.extend_from_slice(b"VALUE ");
                    reply.extend_from_slice(value);
                }
                None => reply.extend_from_slice(b"NOT FOUND"),
            }
        }
        _ => return Answer::Decline,
    }
    Answer::Reply
}

fn main() -> ExitCode {
    let config = match config(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(why) => {
            eprintln!("error: {why} (usage: kv_store [ADDR [WORKERS]])");
            return ExitCode::from(2);
        }
    };
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_config() { 2 } else { 1 })
        }
    }
}

/// The configuration the arguments ask for: the address, then the number
/// of workers.
fn config(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let bind = args.next().unwrap_or_else(|| DEFAULT_BIND.to_string());
    let mut config = Config::new(
        bind.parse()
            .map_err(|e| format!("bad address {bind:?}: {e}"))?,
    );
    if let Some(workers) = args.next() {
        config.workers = workers
            .parse()
            .map_err(|e| format!("bad number of workers {workers:?}: {e}"))?;
    }
    Ok(config)
}

/// Serves the store until the process is killed.
fn serve(config: Config) -> udp_greeter::Result<()> {
    let store = Store::default();
    let mut answered = 0u64;
    // Each worker gets a clone of this closure: of `store` a clone of the
    // `Arc`, the same map for all; of `answered` a copy of its own.
    let handler = move |request: &Request<'_>, reply: &mut Vec<u8>| {
        answered += 1;
        if request.payload == b"COUNT" {
            let worker = thread::current().name().unwrap_or("?").to_string();
            let _ = write!(reply, "{worker} answered {answered}");
            return Answer::Reply;
        }
        answer(&store, request.payload, reply)
    };
    let server = Server::builder(config).handler(handler).start()?;
    // On stderr, where the server binary logs it: nothing here prints the
    // library's log.
    eprintln!("Bind UDP on {}...", server.local_addr().port());
    server.join().map(|_| ())
}
