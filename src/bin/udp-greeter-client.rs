//! The greeting client: sends each name to the server and prints the reply;
//! `bench` measures a server instead.

mod common;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use common::{Addr, DAY, HOUR, MILLISECOND};
use udp_greeter::bench::{self, BenchConfig, BenchReport};
use udp_greeter::{Client, DEFAULT_BIND, DEFAULT_RETRIES};

/// Sends each NAME to a udp-greeter server and prints its greeting.
#[derive(Debug, Parser)]
#[command(name = "udp-greeter-client", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Server address, HOST:PORT; an IP address or a host name
    #[arg(long, global = true, env = "UDP_GREETER_SERVER", default_value = DEFAULT_BIND,
          value_name = "ADDR", value_parser = common::peer_addr)]
    server: Addr,

    /// How long a request waits for its reply (bench: before it counts as
    /// lost), like 1.5, 1.5s or 500ms; from 1 ms to 1 h
    #[arg(long, global = true, default_value = "1s", value_name = "DURATION",
          allow_hyphen_values = true, value_parser = common::duration(MILLISECOND, HOUR))]
    timeout: Duration,

    /// How many times a request is sent again after a try times out [default: 2]
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = common::whole::<u32>(0, None))]
    retries: Option<u32>,

    /// Names to greet (a name that is also a subcommand goes after `--`)
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
    /// Closed loop: requests in flight at once
    #[arg(long, default_value_t = 64, value_name = "W", conflicts_with = "rate",
          allow_hyphen_values = true, value_parser = common::whole::<u32>(1, Some(1 << 24)))]
    window: u32,

    /// Open loop: requests per second, whatever the replies do
    #[arg(long, value_name = "R", allow_hyphen_values = true,
          value_parser = common::whole::<u64>(1, Some(100_000_000)))]
    rate: Option<u64>,

    /// How long to measure, like 5, 1.5s or 500ms; from 1 ms to 24 h
    #[arg(long, default_value = "5", value_name = "DURATION", allow_hyphen_values = true,
          value_parser = common::duration(MILLISECOND, DAY))]
    seconds: Duration,

    /// How long to send before measuring; from 0 to 24 h
    #[arg(long, default_value = "1", value_name = "DURATION", allow_hyphen_values = true,
          value_parser = common::duration(Duration::ZERO, DAY))]
    warmup: Duration,

    /// Bytes per request (at least 8: the request id)
    #[arg(long, default_value_t = 16, value_name = "BYTES", allow_hyphen_values = true,
          value_parser = common::whole::<u32>(bench::ID_BYTES as u32, Some(udp_greeter::MAX_GREETABLE as u32)))]
    payload: u32,

    /// Client sockets (source ports) sharing the load
    #[arg(long, default_value_t = 1, value_name = "K", allow_hyphen_values = true,
          value_parser = common::whole::<u16>(1, Some(1024)))]
    sockets: u16,

    /// Stop after sending N requests while measuring, even before --seconds
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = common::whole::<u64>(1, None))]
    count: Option<u64>,

    /// Print the result as one JSON object instead of a table
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args: Args = common::parse();
    if let Some(Command::Bench(b)) = args.command {
        if args.retries.is_some() {
            // Bench never sends a request twice: the flag would do nothing.
            common::fail("--retries is for greeting, not for bench");
        }
        return run_bench(b, args.server.addr, args.timeout);
    }
    let retries = args.retries.unwrap_or(DEFAULT_RETRIES);
    let client = match Client::new(args.server.addr) {
        Ok(c) => c.timeout(args.timeout).retries(retries),
        Err(e) => {
            common::error(e);
            return ExitCode::from(1);
        }
    };
    let mut out = io::stdout().lock();
    for name in &args.names {
        match client.greet(name.as_bytes()) {
            Ok(reply) => {
                if let Err(e) = writeln!(out, "{}", String::from_utf8_lossy(&reply)) {
                    return common::stdout_failed(&e);
                }
            }
            Err(e) => {
                common::error(format_args!("{e} (greeting {name:?})"));
                return ExitCode::from(1);
            }
        }
    }
    match out.flush() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => common::stdout_failed(&e),
    }
}

fn run_bench(args: BenchArgs, server: std::net::SocketAddr, timeout: Duration) -> ExitCode {
    let mut config = BenchConfig::new(server);
    config.window = args.window as usize;
    config.rate = args.rate;
    config.duration = args.seconds;
    config.warmup = args.warmup;
    config.payload = args.payload as usize;
    config.sockets = usize::from(args.sockets);
    config.timeout = timeout;
    config.count = args.count;
    // Live progress only for a person watching; a pipe gets the result alone.
    let live = io::stderr().is_terminal();
    let started = Instant::now();
    let show = |line: String| {
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{line}   ");
        let _ = err.flush();
    };
    let result = if live {
        show(progress_line(Duration::ZERO, config.warmup, None));
        bench::run_with(&config, |p| {
            show(progress_line(
                started.elapsed(),
                config.warmup,
                Some(&Counts::from(p)),
            ))
        })
    } else {
        bench::run(&config)
    };
    if live {
        let _ = write!(io::stderr(), "\r\x1b[K");
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            common::error(&e);
            return ExitCode::from(if e.is_config() { 2 } else { 1 });
        }
    };
    let mut out = io::stdout().lock();
    let written = if args.json {
        writeln!(out, "{}", report.to_json())
    } else {
        write!(out, "{report}")
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => common::stdout_failed(&e),
    }
}

/// What the progress line shows of a report.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    elapsed: Duration,
    sent: u64,
    replies: u64,
    lost: u64,
    per_sec: f64,
}

impl From<&BenchReport> for Counts {
    fn from(p: &BenchReport) -> Counts {
        Counts {
            elapsed: p.elapsed,
            sent: p.sent,
            replies: p.replies,
            lost: p.lost,
            per_sec: p.replies_per_sec(),
        }
    }
}

/// The live line, `since_start` into the run. The phase comes from the
/// wall clock: reports count only measured requests, and say nothing of
/// the warm-up but an `elapsed` of zero.
fn progress_line(since_start: Duration, warmup: Duration, counts: Option<&Counts>) -> String {
    if since_start < warmup {
        return format!(
            "warm-up {:5.1} s of {:.1} s",
            since_start.as_secs_f64(),
            warmup.as_secs_f64()
        );
    }
    let c = counts.copied().unwrap_or_default();
    format!(
        "measuring {:5.1} s  sent {}  replies {}  lost {}  {:.0} replies/s",
        c.elapsed.as_secs_f64(),
        c.sent,
        c.replies,
        c.lost,
        c.per_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_moves() {
        let warmup = Duration::from_secs(3);
        let zero = Counts::default();
        assert_eq!(
            progress_line(Duration::ZERO, warmup, None),
            "warm-up   0.0 s of 3.0 s"
        );
        // Reports during the warm-up have zero counts: the clock moves.
        assert_eq!(
            progress_line(Duration::from_millis(1000), warmup, Some(&zero)),
            "warm-up   1.0 s of 3.0 s"
        );
        assert_eq!(
            progress_line(Duration::from_millis(2000), warmup, Some(&zero)),
            "warm-up   2.0 s of 3.0 s"
        );
    }

    #[test]
    fn measuring() {
        let counts = Counts {
            elapsed: Duration::from_millis(1500),
            sent: 30,
            replies: 29,
            lost: 1,
            per_sec: 19.3,
        };
        assert_eq!(
            progress_line(
                Duration::from_millis(2500),
                Duration::from_secs(1),
                Some(&counts)
            ),
            "measuring   1.5 s  sent 30  replies 29  lost 1  19 replies/s"
        );
        // No warm-up: the first line is already the measuring one.
        assert!(progress_line(Duration::ZERO, Duration::ZERO, None).starts_with("measuring"));
    }
}
