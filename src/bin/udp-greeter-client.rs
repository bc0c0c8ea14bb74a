//! The greeting client: sends each name to the server and prints the reply;
//! `bench` measures a server instead.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use udp_greeter::client::bench::{self, BenchConfig, Phase, Progress};
use udp_greeter::{Client, DEFAULT_BIND, DEFAULT_RETRIES};

/// Sends each NAME to a udp-greeter server and prints its greeting.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Server address, HOST:PORT
    #[arg(long, env = "UDP_GREETER_SERVER", default_value = DEFAULT_BIND, value_name = "ADDR",
          value_parser = parse_addr)]
    server: SocketAddr,

    /// How long each try waits for its reply: seconds, or a number with ms or s
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    timeout: Duration,

    /// How many times a request is sent again after a try times out
    #[arg(long, default_value_t = DEFAULT_RETRIES, value_name = "N")]
    retries: u32,

    /// Names to greet
    #[arg(value_name = "NAME", default_values = ["Michael", "Tracy", "Sarah"])]
    names: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measures a server: replies per second and round-trip times
    Bench(BenchArgs),
}

/// Load: a closed loop of WINDOW requests in flight, or an open loop at RATE.
#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Server address, HOST:PORT
    #[arg(long, env = "UDP_GREETER_SERVER", default_value = DEFAULT_BIND, value_name = "ADDR",
          value_parser = parse_addr)]
    server: SocketAddr,

    /// Closed loop: requests in flight at once
    #[arg(long, default_value_t = 64, value_name = "W", conflicts_with = "rate",
          value_parser = clap::value_parser!(u32).range(1..=1 << 24))]
    window: u32,

    /// Open loop: requests per second, whatever the replies do
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    rate: Option<u64>,

    /// How long to measure, in seconds
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = parse_seconds)]
    seconds: Duration,

    /// How long to send before measuring, in seconds
    #[arg(long, default_value = "1", value_name = "SECS", value_parser = parse_seconds)]
    warmup: Duration,

    /// Bytes per request (at least 8: the request id)
    #[arg(long, default_value_t = 16, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(bench::ID_BYTES as i64..=udp_greeter::MAX_GREETABLE as i64))]
    payload: u32,

    /// Client sockets (source ports) sharing the load
    #[arg(long, default_value_t = 1, value_name = "K",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    sockets: u16,

    /// How long a request waits for its reply before it counts as lost
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    timeout: Duration,

    /// Stop after sending N requests while measuring, even before SECS
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,

    /// Print the result as one JSON object instead of a table
    #[arg(long)]
    json: bool,
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("{e}"))?
        .next()
        .ok_or_else(|| "no address found".to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let secs = num
        .trim()
        .parse::<f64>()
        .map_err(|_| "expected seconds, like 1, 0.5, 1s or 500ms".to_string())?
        * scale;
    if !(0.001..=3600.0).contains(&secs) {
        return Err("must be from 1ms to 3600s".to_string());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs = s
        .trim()
        .parse::<f64>()
        .map_err(|_| "expected seconds, like 5 or 0.5".to_string())?;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err("must be from 0 to 86400 seconds".to_string());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Bench(b)) = args.command {
        return run_bench(b);
    }
    let client = match Client::new(args.server) {
        Ok(c) => c.timeout(args.timeout).retries(args.retries),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    for name in &args.names {
        match client.greet(name.as_bytes()) {
            Ok(reply) => println!("{}", String::from_utf8_lossy(&reply)),
            Err(e) => {
                eprintln!("error: {e} (greeting {name:?})");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

fn run_bench(args: BenchArgs) -> ExitCode {
    let mut config = BenchConfig::new(args.server);
    config.window = args.window as usize;
    config.rate = args.rate;
    config.duration = args.seconds;
    config.warmup = args.warmup;
    config.payload = args.payload as usize;
    config.sockets = usize::from(args.sockets);
    config.timeout = args.timeout;
    config.count = args.count;
    // Live progress only for a person watching; a pipe gets the result alone.
    let live = std::io::stderr().is_terminal();
    let shown = |p: &Progress| {
        let phase = match p.phase {
            Phase::Warmup => "warm-up",
            _ => "measuring",
        };
        eprint!(
            "\r{phase} {:5.1} s  sent {}  replies {}  lost {}  {:.0} replies/s   ",
            p.elapsed.as_secs_f64(),
            p.sent,
            p.replies,
            p.lost,
            p.replies_per_sec()
        );
        let _ = std::io::stderr().flush();
    };
    let result = if live {
        bench::run_with(&config, shown)
    } else {
        bench::run(&config)
    };
    if live {
        eprint!("\r\x1b[K");
    }
    match result {
        Ok(report) if args.json => println!("{}", report.to_json()),
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if e.is_config() { 2 } else { 1 });
        }
    }
    ExitCode::SUCCESS
}
