//! What the baseline servers share: their command line, and the work that
//! stands for what a real request costs besides its I/O.
//!
//! `--block-us U` sleeps U microseconds per request, as a handler waiting on
//! a database would; `--spin-us U` computes for U microseconds per request.
//! Both default to 0, the plain greeting. `--threads N`, for the program
//! that takes it, is how many threads serve the socket (default 1).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The address bound when none is given: the tutorial's.
pub const DEFAULT_BIND: ([u8; 4], u16) = ([127, 0, 0, 1], 9999);

/// The most threads `--threads` takes: as many as the server's workers.
pub const MAX_THREADS: usize = 1024;

/// A baseline's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--bind ADDR`.
    pub bind: SocketAddr,
    /// `--block-us U` and `--spin-us U`.
    pub work: Work,
    /// `--spawn-blocking`: only for the programs that [`Flags`] says take it.
    pub spawn_blocking: bool,
    /// `--threads N`, 1 to [`MAX_THREADS`]: only for the programs that
    /// [`Flags`] says take it; 1 otherwise.
    pub threads: usize,
}

/// Which flags a program takes besides `--bind`, `--block-us` and
/// `--spin-us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flags {
    /// Nothing more.
    Common,
    /// `--spawn-blocking` too.
    SpawnBlocking,
    /// `--threads N` too.
    Threads,
}

impl Args {
    /// The process's command line; a bad one is one line on stderr, and
    /// exit code 2 for the caller to return.
    pub fn from_env(program: &str, flags: Flags) -> Result<Args, ExitCode> {
        let extra = match flags {
            Flags::Common => "",
            Flags::SpawnBlocking => " [--spawn-blocking]",
            Flags::Threads => " [--threads N]",
        };
        let usage = format!("{program} [--bind ADDR] [--block-us U] [--spin-us U]{extra}");
        match Args::parse(std::env::args().skip(1), flags) {
            Ok(Some(args)) => Ok(args),
            Ok(None) => {
                println!("usage: {usage}");
                Err(ExitCode::SUCCESS)
            }
            Err(msg) => {
                // One line, so that a script's log shows the whole refusal.
                eprintln!("error: {msg} (usage: {usage})");
                Err(ExitCode::from(2))
            }
        }
    }

    /// `Ok(None)` when help was asked for.
    fn parse(mut args: impl Iterator<Item = String>, flags: Flags) -> Result<Option<Args>, String> {
        let mut parsed = Args {
            bind: DEFAULT_BIND.into(),
            work: Work::default(),
            spawn_blocking: false,
            threads: 1,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bind" => {
                    let v = args.next().ok_or("--bind needs an address")?;
                    parsed.bind = v.parse().map_err(|e| format!("bad address {v:?}: {e}"))?;
                }
                "--block-us" => parsed.work.block = micros("--block-us", args.next())?,
                "--spin-us" => parsed.work.spin = micros("--spin-us", args.next())?,
                "--spawn-blocking" if flags == Flags::SpawnBlocking => parsed.spawn_blocking = true,
                "--threads" if flags == Flags::Threads => parsed.threads = threads(args.next())?,
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        Ok(Some(parsed))
    }
}

/// Binds `addr` and says so, as the tutorial's server does (`Bind UDP on
/// PORT...`, the port really bound); a failure is one line on stderr, and
/// exit code 1 for the caller to return.
pub fn bind(addr: SocketAddr) -> Result<std::net::UdpSocket, ExitCode> {
    let socket = std::net::UdpSocket::bind(addr).map_err(|e| {
        eprintln!("error: cannot bind {addr}: {e}");
        ExitCode::from(1)
    })?;
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("Bind UDP on {port}...");
    Ok(socket)
}

fn micros(flag: &str, value: Option<String>) -> Result<Duration, String> {
    let v = value.ok_or_else(|| format!("{flag} needs a number of microseconds"))?;
    v.parse()
        .map(Duration::from_micros)
        .map_err(|_| format!("{flag} takes whole microseconds, not {v:?}"))
}

fn threads(value: Option<String>) -> Result<usize, String> {
    let v = value.ok_or("--threads needs a number")?;
    match v.parse() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!("--threads takes 1 to {MAX_THREADS}, not {v:?}")),
    }
}

/// What each request costs besides its I/O.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Asleep, as while waiting on another service: a thread is held but no
    /// CPU is spent.
    pub block: Duration,
    /// Computing: the CPU is busy for this long.
    pub spin: Duration,
}

impl Work {
    /// Sleeps, then computes, for as long as asked.
    pub fn run(&self) {
        if !self.block.is_zero() {
            std::thread::sleep(self.block);
        }
        if !self.spin.is_zero() {
            spin(self.spin);
        }
    }
}

/// Answers the datagrams on `socket` one after another, for ever: a
/// `recv_from`, the request's `work`, its greeting by `send_to`, buffers
/// reused. The loop of `baseline_std`, and of each of `baseline_threads`'
/// threads.
pub fn serve(socket: &std::net::UdpSocket, work: Work) -> ! {
    let mut buf = vec![0u8; 65_536];
    let mut reply = Vec::with_capacity(65_536);
    loop {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("receive error: {e}");
                continue;
            }
        };
        work.run();
        udp_greeter::greet_into(&buf[..n], &mut reply);
        if let Err(e) = socket.send_to(&reply, peer) {
            eprintln!("send error: {e}");
        }
    }
}

/// Busy for `how_long` by the clock: a sleep would free the CPU, and a fixed
/// count of iterations would take a different time on every machine.
pub fn spin(how_long: Duration) {
    let start = Instant::now();
    while start.elapsed() < how_long {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], flags: Flags) -> Result<Option<Args>, String> {
        Args::parse(args.iter().map(|a| a.to_string()), flags)
    }

    #[test]
    fn defaults() {
        let args = parse(&[], Flags::Common).unwrap().unwrap();
        assert_eq!(args.bind, SocketAddr::from(DEFAULT_BIND));
        assert_eq!(args.work, Work::default());
        assert!(!args.spawn_blocking);
        assert_eq!(args.threads, 1);
    }

    #[test]
    fn every_flag() {
        let args = parse(
            &[
                "--bind",
                "127.0.0.1:0",
                "--block-us",
                "1000",
                "--spin-us",
                "50",
                "--spawn-blocking",
            ],
            Flags::SpawnBlocking,
        )
        .unwrap()
        .unwrap();
        assert_eq!(args.bind.port(), 0);
        assert_eq!(args.work.block, Duration::from_micros(1000));
        assert_eq!(args.work.spin, Duration::from_micros(50));
        assert!(args.spawn_blocking);
    }

    #[test]
    fn refusals() {
        for bad in [
            &["--bind"][..],
            &["--bind", "nowhere"],
            &["--block-us"],
            &["--block-us", "-1"],
            &["--spin-us", "1.5"],
            &["--spawn-blocking"],
            &["--threads", "2"],
            &["extra"],
        ] {
            assert!(parse(bad, Flags::Common).is_err(), "{bad:?}");
        }
        for bad in [
            &["--threads"][..],
            &["--threads", "0"],
            &["--threads", "1025"],
            &["--threads", "many"],
            &["--spawn-blocking"],
        ] {
            assert!(parse(bad, Flags::Threads).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn threads() {
        let args = parse(&["--threads", "64", "--block-us", "200"], Flags::Threads)
            .unwrap()
            .unwrap();
        assert_eq!(args.threads, 64);
        assert_eq!(args.work.block, Duration::from_micros(200));
        assert_eq!(
            parse(&["--threads", "1024"], Flags::Threads)
                .unwrap()
                .unwrap()
                .threads,
            1024
        );
    }

    #[test]
    fn spin_takes_its_time() {
        let start = Instant::now();
        spin(Duration::from_millis(2));
        assert!(start.elapsed() >= Duration::from_millis(2));
    }
}
