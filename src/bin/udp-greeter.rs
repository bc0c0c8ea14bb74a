//! The greeting server: parses arguments, sets up logging and signals, and
//! runs the library's server until Ctrl-C or SIGTERM.

use std::fs::File;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use log::LevelFilter;
use simplelog::{ColorChoice, CombinedLogger, SharedLogger, TermLogger, TerminalMode, WriteLogger};
use udp_greeter::{Config, Greeter, Server, Shutdown, DEFAULT_BIND, DEFAULT_QUEUE, MAX_DATAGRAM};

/// Answers every UDP datagram `data` with `Hello, data!`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to bind, IPv4 or IPv6 (port 0: the OS chooses)
    #[arg(long, env = "UDP_GREETER_BIND", default_value = DEFAULT_BIND, value_name = "ADDR")]
    bind: SocketAddr,

    /// Worker threads [default: one per CPU but one, at least 1]
    #[arg(long, env = "UDP_GREETER_WORKERS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,

    /// Datagrams that may wait for a worker; more are dropped and counted
    #[arg(long, env = "UDP_GREETER_QUEUE", value_name = "N", default_value_t = DEFAULT_QUEUE as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    queue: u32,

    /// Largest datagram accepted, in bytes; larger ones are dropped and counted
    #[arg(long, env = "UDP_GREETER_MAX_DATAGRAM", value_name = "BYTES",
          default_value_t = MAX_DATAGRAM as u32,
          value_parser = clap::value_parser!(u32).range(1..=MAX_DATAGRAM as i64))]
    max_datagram: u32,

    /// Replies per second allowed to each source IP (0: no limit)
    #[arg(
        long,
        env = "UDP_GREETER_RATE_LIMIT",
        value_name = "R",
        default_value_t = 0
    )]
    rate_limit: u32,

    /// Replies a source may get at once above its rate [default: the rate]
    #[arg(
        long,
        env = "UDP_GREETER_RATE_BURST",
        value_name = "B",
        default_value_t = 0
    )]
    rate_burst: u32,

    /// Socket receive buffer to ask the kernel for, in bytes (0: system default)
    #[arg(long, env = "UDP_GREETER_RECV_BUFFER", value_name = "BYTES",
          default_value_t = udp_greeter::DEFAULT_RECV_BUFFER as u64)]
    recv_buffer: u64,

    /// Set SO_REUSEPORT, so several processes can share the port
    #[arg(long, env = "UDP_GREETER_REUSE_PORT",
          value_parser = clap::builder::BoolishValueParser::new())]
    reuse_port: bool,

    /// Log the counters and rates every SECS seconds (0: never)
    #[arg(
        long,
        env = "UDP_GREETER_STATS_INTERVAL",
        value_name = "SECS",
        default_value_t = 0
    )]
    stats_interval: u64,

    /// Serve Prometheus metrics over HTTP at ADDR, on /metrics [default: off]
    #[arg(long, env = "UDP_GREETER_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// Least severe messages logged
    #[arg(long, env = "UDP_GREETER_LOG_LEVEL", value_enum, default_value_t = Level::Info)]
    log_level: Level,

    /// Also append the log to this file
    #[arg(long, env = "UDP_GREETER_LOG_FILE", value_name = "PATH")]
    log_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<Level> for LevelFilter {
    fn from(level: Level) -> LevelFilter {
        match level {
            Level::Error => LevelFilter::Error,
            Level::Warn => LevelFilter::Warn,
            Level::Info => LevelFilter::Info,
            Level::Debug => LevelFilter::Debug,
            Level::Trace => LevelFilter::Trace,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(msg) = init_logging(&args) {
        // A log file we cannot open is a bad command-line value.
        eprintln!("error: {msg}");
        return ExitCode::from(2);
    }

    let mut config = Config::new(args.bind);
    if let Some(n) = args.workers {
        config.workers = usize::from(n);
    }
    config.queue = args.queue as usize;
    config.max_datagram = args.max_datagram as usize;
    config.rate_limit = (args.rate_limit > 0).then_some(args.rate_limit);
    config.rate_burst = (args.rate_burst > 0).then_some(args.rate_burst);
    config.recv_buffer = (args.recv_buffer > 0).then_some(args.recv_buffer as usize);
    config.reuse_port = args.reuse_port;
    config.stats_interval =
        (args.stats_interval > 0).then(|| Duration::from_secs(args.stats_interval));
    config.metrics_addr = args.metrics_addr;

    // Signals are wired before the socket is bound: a signal that arrives
    // right after `Bind UDP on` must still stop the server gracefully.
    let shutdown = Shutdown::new();
    let on_signal = shutdown.clone();
    let wired = ctrlc::set_handler(move || {
        if on_signal.trigger() {
            // The second signal: the user does not want to wait.
            std::process::exit(130);
        }
        log::info!("shutting down: answering what is queued (signal again to exit at once)");
    });
    if let Err(e) = wired {
        eprintln!("error: cannot install the signal handler: {e}");
        return ExitCode::from(1);
    }

    let server = match Server::with_shutdown(config, Greeter, shutdown) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if e.is_config() { 2 } else { 1 });
        }
    };

    match server.join() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(args: &Args) -> Result<(), String> {
    let level = LevelFilter::from(args.log_level);
    let config = simplelog::ConfigBuilder::new()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    // Colour only for a person at a terminal, never in a pipe or a file.
    let color = if std::io::stderr().is_terminal() {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    };
    let mut loggers: Vec<Box<dyn SharedLogger>> = vec![TermLogger::new(
        level,
        config.clone(),
        TerminalMode::Stderr,
        color,
    )];
    if let Some(path) = &args.log_file {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
        loggers.push(WriteLogger::new(level, config, file));
    }
    CombinedLogger::init(loggers).map_err(|e| format!("cannot set up logging: {e}"))
}
