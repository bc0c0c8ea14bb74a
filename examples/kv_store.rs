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
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| DEFAULT_BIND.to_string());
    let workers = args.next();
    let mut config = match bind.parse() {
        Ok(addr) => Config::new(addr),
        Err(e) => return refuse(format_args!("bad address {bind:?}: {e}")),
    };
    match workers.map(|w| w.parse()) {
        None => {}
        Some(Ok(n)) => config.workers = n,
        Some(Err(e)) => return refuse(format_args!("bad number of workers: {e}")),
    }

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
    let server = match Server::builder(config).handler(handler).start() {
        Ok(server) => server,
        Err(e) if e.is_config() => return refuse(format_args!("{e}")),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("Bind UDP on {}...", server.local_addr().port());
    match server.join() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Refuses a bad argument: one line, exit code 2.
fn refuse(why: std::fmt::Arguments<'_>) -> ExitCode {
    eprintln!("error: {why} (usage: kv_store [ADDR [WORKERS]])");
    ExitCode::from(2)
}
