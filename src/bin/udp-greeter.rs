//! The greeting server: parses arguments, sets up logging and signals, and
//! runs the library's server until SIGINT, SIGTERM or SIGHUP. On Linux it
//! also serves a socket the service manager passed, tells the manager how
//! it is doing (sd_notify), and upgrades in place on SIGUSR2.

// Its only `unsafe` is the module kept in src/sys/ (server::dispositions).
#![deny(unsafe_code)]

// Shared with the client binary, which uses other parts of it.
#[allow(dead_code, unused_imports)]
mod cli;
mod server;

use std::fs::File;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use cli::{Addr, DAY};
use log::LevelFilter;
use server::dispositions as signals;
use server::log_file::{self, LogFile, Lost};
#[cfg(target_os = "linux")]
use server::service::{Inherited, Passer};
use server::signals::Announced;
#[cfg(target_os = "linux")]
use server::upgrade::{self, Upgrader};
use simplelog::{ColorChoice, CombinedLogger, SharedLogger, TermLogger, TerminalMode, WriteLogger};
use udp_greeter::{
    Config, Counters, QueueFull, Server, Shutdown, Snapshot, DEFAULT_BIND, DEFAULT_QUEUE,
    MAX_DATAGRAM, MAX_QUEUE, MAX_WORKERS,
};

/// Answers every UDP datagram `data` with `Hello, data!`.
#[derive(Debug, Parser)]
#[command(name = "udp-greeter", version)]
struct Args {
    /// Address to bind, HOST:PORT; IPv4, IPv6 or a host name (port 0: the OS chooses)
    #[arg(long, env = "UDP_GREETER_BIND", default_value = DEFAULT_BIND, value_name = "ADDR",
          value_parser = cli::bind_addr)]
    bind: Addr,

    /// Worker threads, 1 to 1024 [default: one per CPU, at least 2]
    #[arg(long, env = "UDP_GREETER_WORKERS", value_name = "N", allow_hyphen_values = true,
          value_parser = cli::whole::<u16>(1, Some(MAX_WORKERS as u16)))]
    workers: Option<u16>,

    /// Datagrams that may wait for a worker; what comes beyond, as --queue-full says
    #[arg(long, env = "UDP_GREETER_QUEUE", value_name = "N", default_value_t = DEFAULT_QUEUE as u32,
          allow_hyphen_values = true, value_parser = cli::whole::<u32>(1, Some(MAX_QUEUE as u32)))]
    queue: u32,

    /// When the queue is full: `drop` the datagram read (counted), or
    /// `wait` for a worker to make room, leaving what arrives meanwhile in
    /// the socket's receive buffer (the kernel counts what overflows it):
    /// a burst is then answered whole but late, and under sustained
    /// overload every reply waits behind the full buffer
    #[arg(
        long,
        env = "UDP_GREETER_QUEUE_FULL",
        value_name = "HOW",
        default_value = "drop"
    )]
    queue_full: QueueFull,

    /// Largest datagram accepted, in bytes; larger ones are dropped and counted
    #[arg(long, env = "UDP_GREETER_MAX_DATAGRAM", value_name = "BYTES",
          default_value_t = MAX_DATAGRAM as u32, allow_hyphen_values = true,
          value_parser = cli::whole::<u32>(1, Some(MAX_DATAGRAM as u32)))]
    max_datagram: u32,

    /// Replies per second allowed to each source IP [default: no limit]
    #[arg(long, env = "UDP_GREETER_RATE_LIMIT", value_name = "R", allow_hyphen_values = true,
          value_parser = cli::whole::<u32>(1, None))]
    rate_limit: Option<u32>,

    /// Replies a source may get back to back, the size of its bucket, which
    /// refills at the rate; needs --rate-limit [default: the rate]
    #[arg(long, env = "UDP_GREETER_RATE_BURST", value_name = "B", allow_hyphen_values = true,
          requires = "rate_limit", value_parser = cli::whole::<u32>(1, None))]
    rate_burst: Option<u32>,

    /// Socket receive buffer to ask the kernel for, in bytes (0: system default)
    #[arg(long, env = "UDP_GREETER_RECV_BUFFER", value_name = "BYTES",
          default_value_t = udp_greeter::DEFAULT_RECV_BUFFER as u64, allow_hyphen_values = true,
          value_parser = cli::whole::<u64>(0, None))]
    recv_buffer: u64,

    /// Set SO_REUSEPORT, so several processes can share the port; BOOL in any case
    // An optional value, so that `--reuse-port=false` can override the variable.
    #[arg(long, env = "UDP_GREETER_REUSE_PORT", value_name = "BOOL", action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, ignore_case = true, value_parser = cli::boolish())]
    reuse_port: bool,

    /// Refuse datagrams that would start or keep a loop with another
    /// responder: from this server's own address or port, from port 0 or a
    /// service port (echo, DNS, NTP, ...), or that are themselves a
    /// greeting. Turning it off is unsafe wherever source addresses can be
    /// forged; BOOL in any case
    #[arg(long, env = "UDP_GREETER_LOOP_GUARD", value_name = "BOOL", action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = true, ignore_case = true, value_parser = cli::boolish())]
    loop_guard: bool,

    /// Log the counters and rates every DURATION, like 60, 1.5s or 500ms (0: never)
    #[arg(long, env = "UDP_GREETER_STATS_INTERVAL", value_name = "DURATION", default_value = "0",
          allow_hyphen_values = true, value_parser = cli::duration_or_off(STATS_MIN, DAY))]
    stats_interval: Duration,

    /// Serve Prometheus metrics over HTTP at ADDR, on /metrics [default: off]
    #[arg(long, env = "UDP_GREETER_METRICS_ADDR", value_name = "ADDR",
          value_parser = cli::bind_addr)]
    metrics_addr: Option<Addr>,

    /// Least severe messages logged
    #[arg(long, env = "UDP_GREETER_LOG_LEVEL", value_name = "LEVEL", value_enum,
          default_value_t = Level::Info)]
    log_level: Level,

    /// Also append the log to this file
    #[arg(long, env = "UDP_GREETER_LOG_FILE", value_name = "PATH")]
    log_file: Option<PathBuf>,

    /// Log a `Received from` line per request (at most 100 a second); false
    /// leaves only those out
    #[arg(long, env = "UDP_GREETER_LOG_REQUESTS", value_name = "BOOL", action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = true, ignore_case = true, value_parser = cli::boolish())]
    log_requests: bool,

    /// Longest a stop may take, like 60, 8s or 500ms: past it, exit 1
    /// naming the workers still in their handler (0: no limit)
    #[arg(long, env = "UDP_GREETER_STOP_TIMEOUT", value_name = "DURATION", default_value = "60",
          allow_hyphen_values = true, value_parser = cli::duration_or_off(STOP_MIN, DAY))]
    stop_timeout: Duration,
}

/// The shortest stats interval: more often would be the log's main content.
const STATS_MIN: Duration = Duration::from_millis(100);

/// The shortest stop timeout: time to answer what is queued, at least.
const STOP_MIN: Duration = Duration::from_millis(100);

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
    // Before any thread starts, so that every thread inherits the mask and
    // a SIGUSR2 waits for the thread that takes it (server::upgrade).
    #[cfg(target_os = "linux")]
    if let Err(e) = signals::block_sigusr2() {
        cli::error(format_args!("cannot block SIGUSR2: {e}"));
        return ExitCode::from(1);
    }
    let args: Args = cli::parse();
    let lost = match init_logging(&args) {
        Ok(lost) => lost,
        Err(msg) => {
            // A log file we cannot open is a bad command-line value.
            cli::error(msg);
            return ExitCode::from(2);
        }
    };
    let code = run(args, lost.clone());
    report_lost(&lost);
    code
}

/// Says on stderr how many lines the log file lost, if any: the last
/// thing the process writes, at any exit.
fn report_lost(lost: &Option<(Lost, PathBuf)>) {
    if let Some(line) = lost
        .as_ref()
        .and_then(|(n, path)| log_file::report(n, path))
    {
        cli::say(line);
    }
}

fn run(args: Args, lost: Option<(Lost, PathBuf)>) -> ExitCode {
    #[cfg(target_os = "linux")]
    let upgrade = Upgrade::at_start();
    #[cfg(target_os = "linux")]
    let inherited = match Inherited::from_env() {
        Ok(inherited) => inherited,
        Err(failure) => {
            cli::error(failure.message);
            return ExitCode::from(failure.code);
        }
    };
    #[cfg(target_os = "linux")]
    log_resolved(&args, inherited.socket.is_none());
    #[cfg(not(target_os = "linux"))]
    log_resolved(&args, true);
    let stop_timeout = args.stop_timeout;
    let config = config_of(args);
    // Signals are wired before the socket is bound: a signal that arrives
    // right after `Bind UDP on` must still stop the server gracefully.
    let shutdown = Shutdown::new();
    let counters = Arc::new(OnceLock::new());
    let announced = match wire_signals(&shutdown, &counters, lost) {
        Ok(announced) => announced,
        Err(e) => {
            cli::error(format_args!("cannot install the signal handler: {e}"));
            return ExitCode::from(1);
        }
    };
    #[cfg(target_os = "linux")]
    let started = start(config, shutdown, inherited, upgrade);
    #[cfg(not(target_os = "linux"))]
    let started = start(config, shutdown);
    let server = match started {
        Ok(server) => server,
        Err(e) => {
            cli::error(&e);
            return ExitCode::from(if e.is_config() { 2 } else { 1 });
        }
    };
    announce(&server);
    // For a forced exit to report; one before this point reports zeros.
    let so_far = server.counters();
    let _ = counters.set(so_far.clone());

    let stopped = stop(server, stop_timeout);
    announced.settle();
    match stopped {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            if e.is_overdue() {
                // Straight to stderr, as the error: the log may be what
                // holds the stop up.
                cli::say(server::signals::cut_short(&so_far.snapshot()));
            }
            cli::error(e);
            ExitCode::from(1)
        }
    }
}

/// The tutorial's line, once every thread serves, and the metrics' address.
fn announce(server: &Server) {
    log::info!("Bind UDP on {}...", server.local_addr().port());
    if let Some(addr) = server.metrics_addr() {
        log::info!("Serving metrics on http://{addr}/metrics");
    }
}

/// Waits until the stop is asked for (a signal, an upgrade, a failed
/// socket), then for the server to stop, at most `limit` (zero: no limit).
fn stop(server: Server, limit: Duration) -> udp_greeter::Result<Snapshot> {
    if limit.is_zero() {
        return server.join();
    }
    server.shutdown_handle().wait();
    server.shutdown_within(limit)
}

/// Logs what each address given as a host name resolved to (`--bind`
/// only if it is `used`).
fn log_resolved(args: &Args, bind_used: bool) {
    for (flag, addr) in [
        ("--bind", Some(&args.bind).filter(|_| bind_used)),
        ("--metrics-addr", args.metrics_addr.as_ref()),
    ] {
        if let Some(Addr {
            addr,
            name: Some(name),
        }) = addr
        {
            log::info!("{flag} {name} resolves to {addr}");
        }
    }
}

/// The server's configuration from the arguments.
fn config_of(args: Args) -> Config {
    let mut config = Config::new(args.bind.addr);
    if let Some(n) = args.workers {
        config.workers = usize::from(n);
    }
    config.queue = args.queue as usize;
    config.queue_full = args.queue_full;
    config.max_datagram = args.max_datagram as usize;
    config.rate_limit = args.rate_limit;
    config.rate_burst = args.rate_burst;
    config.recv_buffer = (args.recv_buffer > 0).then_some(args.recv_buffer as usize);
    config.reuse_port = args.reuse_port;
    config.loop_guard = args.loop_guard;
    config.log_requests = args.log_requests;
    config.stats_interval = (!args.stats_interval.is_zero()).then_some(args.stats_interval);
    config.metrics_addr = args.metrics_addr.map(|a| a.addr);
    config
}

/// Wires SIGINT, SIGTERM and SIGHUP to `shutdown` (a forced exit reports
/// `counters` and the log file's `lost` lines), keeping SIGHUP ignored if
/// the process started so.
fn wire_signals(
    shutdown: &Shutdown,
    counters: &Arc<OnceLock<Counters>>,
    lost: Option<(Lost, PathBuf)>,
) -> Result<Announced, ctrlc::Error> {
    // Started with SIGHUP ignored (nohup), the caller asked to outlive its
    // terminal; ctrlc would catch it all the same.
    let keep_sighup_ignored = signals::hangup_ignored();
    let announced = server::signals::wire(shutdown.clone(), counters.clone(), move || {
        report_lost(&lost)
    })?;
    if keep_sighup_ignored {
        signals::ignore_hangup();
    }
    Ok(announced)
}

/// Binds and starts the server, to stop on `shutdown`.
#[cfg(not(target_os = "linux"))]
fn start(config: Config, shutdown: Shutdown) -> udp_greeter::Result<Server> {
    Server::builder(config).shutdown(shutdown).start()
}

/// What an upgrade needs to know of how the process started: its program
/// and arguments, read before anything else can change the directory.
#[cfg(target_os = "linux")]
struct Upgrade {
    program: Result<PathBuf, String>,
    args: Vec<std::ffi::OsString>,
}

#[cfg(target_os = "linux")]
impl Upgrade {
    fn at_start() -> Upgrade {
        let mut argv = std::env::args_os();
        let argv0 = argv.next().unwrap_or_default();
        let path = std::env::var_os("PATH");
        Upgrade {
            program: upgrade::resolve(&argv0, std::env::current_dir(), path.as_deref()),
            args: argv.collect(),
        }
    }
}

/// Starts the server, to stop on `shutdown`, on the socket `inherited`
/// holds or one it binds; tells the service manager about it if there is
/// one, and the previous process if this is an upgrade; then waits for
/// SIGUSR2 to upgrade.
#[cfg(target_os = "linux")]
fn start(
    config: Config,
    shutdown: Shutdown,
    inherited: Inherited,
    upgrade: Upgrade,
) -> udp_greeter::Result<Server> {
    let socket = match inherited.socket {
        Some((socket, passer)) => {
            announce_inherited(&socket, passer);
            socket
        }
        None => udp_greeter::service::bind(&config)?,
    };
    let kept = socket
        .try_clone()
        .map_err(|e| format!("cannot keep a copy of the socket to pass on: {e}"));
    let mut builder = Server::builder(config)
        .socket(socket)
        .shutdown(shutdown.clone());
    let silencer = inherited.notifier.as_ref().map(|n| n.silencer());
    if let Some(notifier) = inherited.notifier {
        builder = builder.notify(notifier);
    }
    if let Some(every) = inherited.watchdog {
        builder = builder.watchdog(every);
    }
    let server = builder.start()?;
    if let Some(previous) = &inherited.previous {
        previous.ready();
    }
    let upgrader = Upgrader {
        program: upgrade.program,
        args: upgrade.args,
        socket: kept,
        shutdown,
        manager: inherited.manager,
        silencer,
        attempts: 0,
    };
    if let Err(e) = upgrader.spawn() {
        log::warn!("cannot wait for SIGUSR2: {e}; no upgrade in place");
    }
    Ok(server)
}

/// Says that the socket was passed, with its address and the receive
/// buffer it has (what holds a restart's backlog: the kernel may have
/// granted less than the manager asked for), and so that the flags that
/// make a socket are not used.
#[cfg(target_os = "linux")]
fn announce_inherited(socket: &std::net::UdpSocket, passer: Passer) {
    let who = match passer {
        Passer::ServiceManager => "the service manager",
        Passer::PreviousProcess => "the previous process",
    };
    let addr = socket
        .local_addr()
        .map_or_else(|e| format!("address unknown: {e}"), |a| a.to_string());
    let buffer = socket2::SockRef::from(socket)
        .recv_buffer_size()
        .map_or_else(|e| format!("unknown: {e}"), |n| format!("{n} bytes"));
    log::info!(
        "serving the socket {who} passed ({addr}, receive buffer {buffer}); \
         --bind, --reuse-port and --recv-buffer are not used"
    );
}

/// Sets up the log: stderr, and the `--log-file` if given, whose count of
/// lost lines comes back with its path.
fn init_logging(args: &Args) -> Result<Option<(Lost, PathBuf)>, String> {
    let level = LevelFilter::from(args.log_level);
    let mut config = simplelog::ConfigBuilder::new();
    config
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off);
    let config = config.build();
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
    let mut lost = None;
    if let Some(path) = &args.log_file {
        let file = File::options()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
        let file = LogFile::new(file, path.clone());
        lost = Some((file.lost(), path.clone()));
        loggers.push(WriteLogger::new(level, config, file));
    }
    CombinedLogger::init(loggers).map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(lost)
}
