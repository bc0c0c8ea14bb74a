//! The greeting server with a cost per request, as `benches/compare.sh`
//! runs "ours" for the shapes a worker pool is for: each request first
//! sleeps `--block-us` microseconds (as a handler waiting on a database
//! would) and then computes for `--spin-us` microseconds, and only then is
//! greeted. The library's workers absorb the sleeps: with `--workers N`, N
//! requests wait at a time.
//!
//! It says `Bind UDP on PORT...` on stderr as the server binary does (it has
//! no logger of its own), and runs until killed: no signal is handled, so SIGTERM or Ctrl-C ends it
//! at once, without the final counters (what a benchmark needs, no more).
//! It needs none of the crate's features.
//!
//! ```text
//! cargo run --release --example slow_greeter -- [--bind ADDR] [--workers N] [--block-us U] [--spin-us U] [--queue-full drop|wait]
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use udp_greeter::{
    greet_into, is_greeting, Answer, Config, Handler, QueueFull, Request, Server, DEFAULT_BIND,
    MAX_WORKERS,
};

const USAGE: &str =
    "slow_greeter [--bind ADDR] [--workers N] [--block-us U] [--spin-us U] [--queue-full drop|wait]";

/// The greeting, after the work a real request would cost. Each worker
/// gets a clone.
#[derive(Clone)]
struct SlowGreeter {
    block: Duration,
    spin: Duration,
}

impl Handler for SlowGreeter {
    // Blocking here is the point: a worker that sleeps holds only its own
    // thread, and the pool's other workers go on answering.
    fn respond(&mut self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
        self.work();
        greet_into(request.payload, reply);
        Answer::Reply
    }

    // A greeter's own rule against loops, as `Greeter` has it.
    fn is_reply(&self, payload: &[u8]) -> bool {
        is_greeting(payload)
    }
}

impl SlowGreeter {
    fn work(&self) {
        if !self.block.is_zero() {
            std::thread::sleep(self.block);
        }
        // Busy by the clock: a count of iterations would take a different
        // time on every machine.
        let start = Instant::now();
        while start.elapsed() < self.spin {
            std::hint::spin_loop();
        }
    }
}

struct Args {
    bind: SocketAddr,
    workers: Option<usize>,
    queue_full: QueueFull,
    greeter: SlowGreeter,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        bind: DEFAULT_BIND.parse().map_err(|e| format!("{e}"))?,
        workers: None,
        queue_full: QueueFull::Drop,
        greeter: SlowGreeter {
            block: Duration::ZERO,
            spin: Duration::ZERO,
        },
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => {
                let v = value()?;
                parsed.bind = v.parse().map_err(|e| format!("bad address {v:?}: {e}"))?;
            }
            "--workers" => {
                let v = value()?;
                match v.parse() {
                    Ok(n) if (1..=MAX_WORKERS).contains(&n) => parsed.workers = Some(n),
                    _ => return Err(format!("--workers takes 1 to {MAX_WORKERS}, not {v:?}")),
                }
            }
            "--block-us" => parsed.greeter.block = micros(&arg, &value()?)?,
            "--spin-us" => parsed.greeter.spin = micros(&arg, &value()?)?,
            "--queue-full" => {
                let v = value()?;
                parsed.queue_full = [QueueFull::Drop, QueueFull::Wait]
                    .into_iter()
                    .find(|q| q.name() == v)
                    .ok_or_else(|| format!("--queue-full takes drop or wait, not {v:?}"))?;
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(parsed)
}

fn micros(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse()
        .map(Duration::from_micros)
        .map_err(|_| format!("{flag} takes whole microseconds, not {v:?}"))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            // One line, so that a script's log shows the whole refusal.
            eprintln!("error: {msg} (usage: {USAGE})");
            return ExitCode::from(2);
        }
    };
    let mut config = Config::new(args.bind);
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    config.queue_full = args.queue_full;
    let server = match Server::builder(config).handler(args.greeter).start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    // The library logs this line through `log`, which nothing here prints.
    // On stderr, where the server binary logs it.
    eprintln!("Bind UDP on {}...", server.local_addr().port());
    // Nothing triggers the shutdown: this returns only if the socket fails.
    match server.join() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
