//! The greeting client: sends each name to the server and prints the reply.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use udp_greeter::{Client, DEFAULT_BIND, DEFAULT_RETRIES};

/// Sends each NAME to a udp-greeter server and prints its greeting.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
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

fn main() -> ExitCode {
    let args = Args::parse();
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
