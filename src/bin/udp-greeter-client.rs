//! The greeting client: sends each name to the server and prints the reply;
//! `bench` measures a server instead.

#![deny(unsafe_code)]

// Shared with the server binary, which uses other parts of it.
#[allow(dead_code, unused_imports)]
mod cli;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cli::{Addr, DAY, HOUR, MILLISECOND};
use udp_greeter::client::bench::{
    self, BenchConfig, BenchReport, Expect, Pacing, Phase, Progress, Sending,
};
use udp_greeter::client::DEFAULT_RETRIES;
use udp_greeter::{Client, Greeter, Handler, DEFAULT_BIND, MAX_DATAGRAM};

/// Sends each NAME to a udp-greeter server and prints its greeting.
#[derive(Debug, Parser)]
#[command(name = "udp-greeter-client", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Server address, HOST:PORT; an IP address or a host name
    #[arg(long, global = true, env = "UDP_GREETER_SERVER", default_value = DEFAULT_BIND,
          value_name = "ADDR", value_parser = cli::peer_addr)]
    server: Addr,

    /// How long a request waits for its reply (bench: before it counts as
    /// lost), like 1.5, 1.5s or 500ms; from 1 ms to 1 h
    #[arg(long, global = true, default_value = "1s", value_name = "DURATION",
          allow_hyphen_values = true, value_parser = cli::duration(MILLISECOND, HOUR))]
    timeout: Duration,

    /// How many times a request is sent again after a try times out [default: 2]
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = cli::whole::<u32>(0, None))]
    retries: Option<u32>,

    /// Names to greet, any bytes (a name that is also a subcommand goes after `--`)
    #[arg(value_name = "NAME", default_values = ["Michael", "Tracy", "Sarah"])]
    names: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measures a server, or probes any UDP echo service: replies per
    /// second, loss and round-trip times
    #[command(after_help = report_help())]
    Bench(BenchArgs),
}

/// What each figure of the report means, after `bench --help`.
fn report_help() -> String {
    format!(
        "\
The report (a table, or one line of JSON with --json; JSON field names in brackets):
  sent        requests sent while measuring (after the warm-up)
  replies     requests answered with exactly the reply expected, within --timeout
              (--expect any: any datagram, taken for the oldest request in
              flight on its socket)
  lost        requests not answered within --timeout that the client's own drops
              do not account for: lost on the way or at the server
  client drops
              datagrams the kernel dropped at the bench's own sockets while
              measuring, their buffers full (Linux) [client_dropped]; sent =
              replies + lost + the unanswered requests these account for
  late        replies that came after their request's --timeout: the request is
              one of the lost ones and the reply is in no round-trip time
              (--expect any: datagrams while no request of their socket was
              in flight)
  duplicates  further replies to a request already answered (or late); never
              with --expect any, where a second reply answers the next request
  bad         datagrams that are not the reply expected to any request
  unsent      open loop: requests the rate asked for that did not leave on time
              (more than {} ms late, socket buffer full); sent + unsent is
              every request asked for, rate x seconds (or --count)
  on time     open loop: sent / (sent + unsent) [on_time_pct]; under 100 % the
              generator fell behind, and the figures measure it, not the server
  sending     how long requests were sent: --seconds, or less when --count was
              reached first [seconds]
  sent/s      requests sent per second of sending [sent_per_s]
  replies/s   replies per second of sending, the wait for the last ones left
              out [replies_per_s]; neither rate for a closed loop whose
              requests all left before the first reply (one burst)
  tail        the wait for the last replies after sending stopped, at most about
              --timeout [tail_s]; sending + tail [elapsed_s]
  rtt         round-trip percentiles (p50 to p99.9) and maximum of the replies,
              never over --timeout [rtt_p50_us ... rtt_max_us, microseconds]
With --request or --request-file, no id comes back: a reply is taken for the
oldest request in flight on its socket that it answers, as with --expect any;
bad counts datagrams that answer none of the requests, late those that answer
none in flight, and duplicates stays 0.
Exit code 1 when no valid reply came, or nothing listens at the address.",
        bench::MAX_LAG.as_millis()
    )
}

/// Load: a closed loop of WINDOW requests in flight, or an open loop at RATE.
#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Closed loop: requests in flight at once
    #[arg(long, default_value_t = 64, value_name = "W", conflicts_with = "rate",
          allow_hyphen_values = true, value_parser = cli::whole::<u32>(1, Some(1 << 24)))]
    window: u32,

    /// Open loop: requests per second, whatever the replies do
    #[arg(long, value_name = "R", allow_hyphen_values = true,
          value_parser = cli::whole::<u64>(1, Some(100_000_000)))]
    rate: Option<u64>,

    /// How long to measure, like 5, 1.5s or 500ms; from 1 ms to 24 h
    #[arg(long, default_value = "5", value_name = "DURATION", allow_hyphen_values = true,
          value_parser = cli::duration(MILLISECOND, DAY))]
    seconds: Duration,

    /// How long to send before measuring; from 0 to 24 h
    #[arg(long, default_value = "1", value_name = "DURATION", allow_hyphen_values = true,
          value_parser = cli::duration(Duration::ZERO, DAY))]
    warmup: Duration,

    /// Bytes per request: at least 8 (the request id), at most 65,499 (its
    /// greeting then fills the largest UDP datagram)
    #[arg(long, default_value_t = 16, value_name = "BYTES", allow_hyphen_values = true,
          value_parser = cli::whole::<u32>(bench::ID_BYTES as u32, Some(udp_greeter::MAX_GREETABLE as u32)))]
    payload: u32,

    /// A request of your own instead of generated ones: these bytes, as
    /// given; repeated, the requests go in turn. Each reply is taken for
    /// the oldest request in flight on its socket that it answers as
    /// --expect says
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true,
          conflicts_with_all = ["payload", "request_file"])]
    request: Vec<OsString>,

    /// As --request, with the bytes of the file at PATH, whole, as one
    /// request; repeated, the files go in turn
    #[arg(long, value_name = "PATH", conflicts_with = "payload")]
    request_file: Vec<PathBuf>,

    /// Client sockets (source ports) sharing the load, the window split
    /// evenly between them: `--sockets 64 --window 64` is 64 clients with
    /// one request in flight each
    #[arg(long, default_value_t = 1, value_name = "K", allow_hyphen_values = true,
          value_parser = cli::whole::<u16>(1, Some(bench::MAX_SOCKETS as u16)))]
    sockets: u16,

    /// How requests leave: `batched`, separate datagrams with one sendmmsg
    /// per batch; `single`, one send per request, as most clients do;
    /// `segmented`, runs as one UDP_SEGMENT send (cheapest for the
    /// generator, but the server reads whole runs at once)
    #[arg(long, value_enum, default_value_t = Sending::Batched, value_name = "HOW")]
    send: Sending,

    /// Open loop: `even`, each request at its own due time; `bursts`, a
    /// tenth of a millisecond's worth at a time
    #[arg(long, value_enum, default_value_t = Pacing::Even, value_name = "HOW",
          requires = "rate")]
    pacing: Pacing,

    /// Stop after sending N requests while measuring, even before --seconds
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = cli::whole::<u64>(1, None))]
    count: Option<u64>,

    /// What the server answers: `greeting`, `Hello, ` + the request + `!`;
    /// `echo`, the request itself, as any UDP echo service does; `any`, any
    /// datagram, for a service whose replies carry nothing of the request.
    /// With `any` replies are matched to requests in order, per socket: a
    /// reply answers the oldest request in flight on its socket. That is
    /// exact with one request in flight per socket (--window equal to
    /// --sockets) while no reply comes after --timeout; with more, a reply
    /// to a later request (the service reorders or drops one) is timed
    /// against the oldest, and a lost request's place is taken by the next
    /// reply, so with losses round-trip times can be understated and late
    /// replies taken for the next request's
    #[arg(long, value_enum, default_value_t = Expect::Greeting, value_name = "HOW")]
    expect: Expect,

    /// Print the result as one JSON object instead of a table
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args: Args = cli::parse();
    if let Some(Command::Bench(b)) = args.command {
        if args.retries.is_some() {
            // Bench never sends a request twice: the flag would do nothing.
            cli::fail("--retries is for greeting, not for bench");
        }
        return run_bench(b, args.server.addr, args.timeout);
    }
    let retries = args.retries.unwrap_or(DEFAULT_RETRIES);
    let client = match Client::new(args.server.addr) {
        Ok(c) => c.timeout(args.timeout).retries(retries),
        Err(e) => {
            cli::error(e);
            return ExitCode::from(1);
        }
    };
    greet_all(&client, &args.names)
}

/// Greets each of `names` in turn and prints the greetings. A name that is
/// itself a greeting is warned about first, since the server's loop guard
/// refuses it, and its missing reply does not stop the names after it.
fn greet_all(client: &Client, names: &[OsString]) -> ExitCode {
    // A person's terminal gets the reply escaped, since its bytes can be
    // escape sequences that drive the terminal; a pipe gets them exactly.
    let terminal = io::stdout().is_terminal();
    let mut out = io::stdout().lock();
    let mut code = ExitCode::SUCCESS;
    for name in names {
        let bytes = bytes_of(name);
        let shown = shown_name(&name.to_string_lossy());
        // The rule the server's loop guard applies to the greeter.
        let refused = Greeter.is_reply(&bytes);
        if refused {
            cli::say(format_args!(
                "warning: {shown} is itself a greeting, which the server refuses \
                 (unless started with --loop-guard=false): expect no reply"
            ));
        }
        match client.greet(&bytes) {
            Ok(reply) => {
                let written = if terminal {
                    writeln!(out, "{}", for_terminal(&reply))
                } else {
                    out.write_all(&reply).and_then(|()| out.write_all(b"\n"))
                };
                if let Err(e) = written {
                    return cli::stdout_failed(&e);
                }
            }
            Err(e) if refused && e.is_no_reply() => {
                cli::error(format_args!("{e} (greeting {shown}, itself a greeting)"));
                code = ExitCode::from(1);
            }
            Err(e) => {
                cli::error(format_args!("{e} (greeting {shown})"));
                return ExitCode::from(1);
            }
        }
    }
    match out.flush() {
        Ok(()) => code,
        Err(e) => cli::stdout_failed(&e),
    }
}

fn run_bench(args: BenchArgs, server: SocketAddr, timeout: Duration) -> ExitCode {
    let json = args.json;
    let config = bench_config(args, server, timeout);
    let report = match measure(&config) {
        Ok(report) => report,
        Err(e) => {
            cli::error(&e);
            return ExitCode::from(if e.is_config() { 2 } else { 1 });
        }
    };
    let written = print_report(&report, json);
    if report.replies == 0 {
        // A run that measured nothing measured no server: say so, and let
        // a script see it in the exit code.
        say_no_reply(&report);
        return ExitCode::from(1);
    }
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::stdout_failed(&e),
    }
}

/// The run the arguments describe.
fn bench_config(args: BenchArgs, server: SocketAddr, timeout: Duration) -> BenchConfig {
    let mut config = BenchConfig::new(server);
    config.requests = own_requests(&args);
    config.window = args.window as usize;
    config.rate = args.rate;
    config.duration = args.seconds;
    config.warmup = args.warmup;
    config.payload = args.payload as usize;
    config.sockets = usize::from(args.sockets);
    config.timeout = timeout;
    config.count = args.count;
    config.sending = args.send;
    config.pacing = args.pacing;
    config.expect = args.expect;
    config
}

/// Runs the bench, with a live progress line on a terminal's stderr
/// (erased at the end); a pipe gets the result alone.
fn measure(config: &BenchConfig) -> udp_greeter::Result<BenchReport> {
    let live = io::stderr().is_terminal();
    let show = |line: String| {
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{line}   ");
        let _ = err.flush();
    };
    let result = if live {
        show(progress_line(&Progress::start(config), config.warmup));
        bench::run_with(config, |p| show(progress_line(p, config.warmup)))
    } else {
        bench::run(config)
    };
    if live {
        let _ = write!(io::stderr(), "\r\x1b[K");
    }
    result
}

/// Writes the report to stdout: one line of JSON, or the table.
fn print_report(report: &BenchReport, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let written = if json {
        writeln!(out, "{}", report.to_json())
    } else {
        write!(out, "{report}")
    };
    written.and_then(|()| out.flush())
}

/// The requests of your own: each --request's bytes, or each
/// --request-file's; none when neither is given.
fn own_requests(args: &BenchArgs) -> Vec<Vec<u8>> {
    if !args.request.is_empty() {
        return args.request.iter().map(|r| bytes_of(r)).collect();
    }
    args.request_file.iter().map(|p| read_request(p)).collect()
}

/// The bytes of the file at `path`, whole; a file that cannot be read, or
/// that no datagram can carry, ends the process with exit code 2.
fn read_request(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    // One byte more than a datagram carries is enough to refuse the file.
    let read = File::open(path)
        .and_then(|file| file.take(MAX_DATAGRAM as u64 + 1).read_to_end(&mut bytes));
    let shown = path.display();
    match read {
        Err(e) => cli::fail(&format!("cannot read --request-file {shown}: {e}")),
        Ok(n) if n > MAX_DATAGRAM => cli::fail(&format!(
            "--request-file {shown} is larger than a UDP datagram carries ({MAX_DATAGRAM} bytes)"
        )),
        Ok(_) => bytes,
    }
}

/// Says on stderr that no valid reply came, and what came instead; when
/// nothing came back at all, what that can mean.
fn say_no_reply(report: &BenchReport) {
    let (server, sent, lost) = (report.config.server, report.sent, report.lost);
    if report.nothing_came_back() {
        let which = match report.config.requests.len() {
            0 => "the requests bench makes (--request sends your own)",
            1 => "this request",
            _ => "these requests",
        };
        return cli::error(format_args!(
            "no reply from {server}: {sent} sent, {lost} lost, nothing came back: \
             the service declines or fails {which}, or nothing listens there"
        ));
    }
    match report.config.expect {
        Expect::Any => cli::error(format_args!(
            "no reply from {server}: {sent} sent, {lost} lost, {} late",
            report.late
        )),
        expect => cli::error(format_args!(
            "no valid reply from {server}: {sent} sent, {lost} lost, {} not the {} expected",
            report.bad,
            expect.name()
        )),
    }
}

/// The bytes of a name as given on the command line.
#[cfg(unix)]
fn bytes_of(name: &OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes().to_vec()
}

/// The bytes of a name as given on the command line (UTF-8 elsewhere than
/// on Unix, where arguments are not bytes).
#[cfg(not(unix))]
fn bytes_of(name: &OsStr) -> Vec<u8> {
    name.to_string_lossy().into_owned().into_bytes()
}

/// `bytes` as a terminal may show them: printable text as it is, in any
/// script; control characters (ESC, BEL, C1 controls such as U+009B, the
/// one-character CSI), the marks that reorder text (bidirectional
/// overrides) and bytes that are not UTF-8 escaped as `\x1b`, `\u{9b}`,
/// `\xff`; a backslash doubled, so an escape is never ambiguous.
fn for_terminal(bytes: &[u8]) -> String {
    let mut shown = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                shown.push_str("\\\\");
            } else if c.is_ascii_control() {
                shown.extend(std::ascii::escape_default(c as u8).map(char::from));
            } else if c.is_control() || reorders(c) {
                shown.extend(c.escape_unicode());
            } else {
                shown.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(shown, "\\x{b:02x}");
        }
    }
    shown
}

/// Whether `c` changes the direction text is shown in, so that what a
/// terminal shows is not what the bytes say.
fn reorders(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A name as an error message shows it: quoted, and cut after
/// `SHOWN_CHARS` characters so that a long one does not bury the message.
fn shown_name(name: &str) -> String {
    const SHOWN_CHARS: usize = 40;
    match name.char_indices().nth(SHOWN_CHARS) {
        None => format!("{name:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &name[..cut], name.len()),
    }
}

/// The live line: the phase, its time so far, and its counts.
fn progress_line(p: &Progress, warmup: Duration) -> String {
    let counts = format!(
        "sent {}  replies {}  lost {}  {:.0} replies/s",
        p.sent,
        p.replies,
        p.lost,
        p.replies_per_sec()
    );
    match p.phase {
        Phase::Warmup => format!(
            "warm-up {:5.1} s of {:.1} s  {counts}",
            p.elapsed.as_secs_f64(),
            warmup.as_secs_f64()
        ),
        _ => format!("measuring {:5.1} s  {counts}", p.elapsed.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(phase: Phase, ms: u64, sent: u64, replies: u64) -> Progress {
        let mut p = Progress::start(&BenchConfig::new("127.0.0.1:9".parse().unwrap()));
        p.phase = phase;
        p.elapsed = Duration::from_millis(ms);
        p.sent = sent;
        p.replies = replies;
        p
    }

    #[test]
    fn terminal_sees_escapes() {
        assert_eq!(for_terminal(b"Hello, Michael!"), "Hello, Michael!");
        assert_eq!(
            for_terminal("Hello, Zoë 名前 \"q\" 'a'!".as_bytes()),
            "Hello, Zoë 名前 \"q\" 'a'!"
        );
        assert_eq!(
            for_terminal(b"Hello, \x1b[31mred\x1b]0;title\x07!"),
            "Hello, \\x1b[31mred\\x1b]0;title\\x07!"
        );
        assert_eq!(for_terminal(b"a\tb\nc\rd\x7f"), "a\\tb\\nc\\rd\\x7f");
        assert_eq!(for_terminal("\u{9b}31m".as_bytes()), "\\u{9b}31m");
        assert_eq!(for_terminal("x\u{202e}y".as_bytes()), "x\\u{202e}y");
        assert_eq!(for_terminal(b"\xff\xfe ok"), "\\xff\\xfe ok");
        assert_eq!(for_terminal(b"a\\x1b"), "a\\\\x1b");
    }

    #[test]
    fn long_names_cut() {
        assert_eq!(shown_name("Michael"), "\"Michael\"");
        let long = "é".repeat(1100);
        let shown = shown_name(&long);
        assert!(
            shown.starts_with(&format!("\"{}\"...", "é".repeat(40))),
            "{shown}"
        );
        assert!(shown.ends_with("(2200 bytes)"), "{shown}");
    }

    #[test]
    fn warm_up_moves() {
        let warmup = Duration::from_secs(3);
        assert_eq!(
            progress_line(&progress(Phase::Warmup, 0, 0, 0), warmup),
            "warm-up   0.0 s of 3.0 s  sent 0  replies 0  lost 0  0 replies/s"
        );
        assert_eq!(
            progress_line(&progress(Phase::Warmup, 2000, 40, 38), warmup),
            "warm-up   2.0 s of 3.0 s  sent 40  replies 38  lost 0  19 replies/s"
        );
    }

    #[test]
    fn measuring() {
        let mut p = progress(Phase::Measuring, 1500, 30, 29);
        p.lost = 1;
        assert_eq!(
            progress_line(&p, Duration::from_secs(1)),
            "measuring   1.5 s  sent 30  replies 29  lost 1  19 replies/s"
        );
    }
}
