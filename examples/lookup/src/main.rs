//! `udp-lookup`: answers each key with its value from a SQLite database,
//! one connection per worker; see the README beside this crate.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use simplelog::{ColorChoice, LevelFilter, TermLogger, TerminalMode};
use udp_greeter::{Config, Server, Shutdown, Snapshot};
use udp_greeter_lookup::{create, Lookup};

/// Answers each UDP datagram, a key, with its value from a SQLite table
/// `kv`, or with an empty datagram when the key is not there.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve, IP:PORT
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9998")]
    bind: SocketAddr,
    /// The SQLite database, opened read-only by each worker
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// First create the table (and the file) if need be, and write the
    /// rows `key-0` = `value-0` ... `key-<N-1>`
    #[arg(long, value_name = "N")]
    create: Option<u64>,
    /// Worker threads, each with its own connection [default: one per CPU]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Microseconds each lookup sleeps before its query, to stand for a
    /// database across the network
    #[arg(long, value_name = "U", default_value_t = 0)]
    delay_us: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Warnings only: the engine's (queue full, a handler that failed) and
    // the first failed lookup of each worker.
    let _ = TermLogger::init(
        LevelFilter::Warn,
        simplelog::Config::default(),
        TerminalMode::Stderr,
        ColorChoice::Never,
    );
    match run(&args) {
        Ok(stats) => {
            println!("{stats}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("udp-lookup: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Fills the database if asked, serves it until SIGINT or SIGTERM, and
/// returns the final counters.
fn run(args: &Args) -> Result<Snapshot, Box<dyn Error>> {
    if let Some(rows) = args.create {
        create(&args.db, rows).map_err(|e| format!("cannot create {}: {e}", args.db.display()))?;
    }
    let mut config = Config::new(args.bind);
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    // Wired before the socket is bound, so that a signal that comes right
    // after the start still stops the server gracefully.
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    ctrlc::set_handler(move || {
        trigger.trigger();
    })
    .map_err(|e| format!("cannot install the signal handler: {e}"))?;

    let db = args.db.clone();
    let delay = Duration::from_micros(args.delay_us);
    let server = Server::builder(config)
        .shutdown(shutdown)
        .handler_factory(move |_worker| Lookup::open(&db).map(|lookup| lookup.delay(delay)))
        .start()?;
    eprintln!(
        "udp-lookup: serving {} on {} with {} workers",
        args.db.display(),
        server.local_addr(),
        server.workers()
    );
    Ok(server.join()?)
}
