//! Starting a server: the socket, the context, the pipeline, then the
//! control threads beside it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
#[cfg(target_os = "linux")]
use std::time::Duration;

use super::{Server, Threads};
use crate::config::Config;
use crate::control::busy::Busy;
use crate::control::reporter::Reporter;
use crate::control::shutdown::Shutdown;
use crate::control::stats::Stats;
#[cfg(target_os = "linux")]
use crate::control::watchdog::Watchdog;
use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::pipeline::buffer::BufferPool;
use crate::pipeline::context::{ServerContext, Warnings};
use crate::pipeline::loopguard::LoopGuard;
use crate::pipeline::{spawn, Pipeline};
#[cfg(target_os = "linux")]
use crate::service::Notifier;
use crate::sys::{self, BATCH};

/// What the builder gathered beside the configuration.
pub(super) struct Parts<H> {
    /// The socket given, or `None` to bind `config.bind`.
    pub socket: Option<UdpSocket>,
    pub shutdown: Shutdown,
    /// One per worker.
    pub handlers: Vec<H>,
    #[cfg(target_os = "linux")]
    pub service: Service,
    /// The service's own metrics and build.
    #[cfg(feature = "metrics")]
    pub additions: crate::control::metrics::Additions,
}

/// Telling a service manager how the server is doing.
#[cfg(target_os = "linux")]
#[derive(Debug, Default)]
pub(super) struct Service {
    pub notifier: Option<Arc<Notifier>>,
    /// How often the watchdog wants a ping, if it does.
    pub watchdog: Option<Duration>,
}

/// Starts a server of `config` from `parts`.
pub(super) fn start<H: Handler>(config: &Config, parts: Parts<H>) -> Result<Server> {
    let Parts {
        socket,
        shutdown,
        handlers,
        #[cfg(target_os = "linux")]
        service,
        #[cfg(feature = "metrics")]
        additions,
    } = parts;
    let socket = match socket {
        Some(given) => sys::adopt(given)?,
        None => sys::bind(config)?,
    };
    let local_addr = socket
        .local_addr()
        .map_err(|e| Error::bind("UDP", config.bind, e))?;
    #[cfg(feature = "metrics")]
    let endpoint = config
        .metrics_addr
        .map(crate::control::metrics::Endpoint::bind)
        .transpose()?;
    announce(config, local_addr);
    let stats = Arc::new(Stats::watching(&socket));
    let ctx = Arc::new(context(config, local_addr, &stats, &shutdown));
    let pipeline = Pipeline::start(config, socket, ctx.clone(), handlers)?;
    let mut server = Server {
        local_addr,
        metrics_addr: None,
        workers: config.workers,
        shutdown,
        stats,
        busy: ctx.busy.clone(),
        threads: Threads {
            pipeline,
            reporter: None,
            metrics: None,
            watchdog: None,
        },
    };
    // If a control thread cannot start, the server stops and joins what
    // started before the error is returned.
    #[cfg(feature = "metrics")]
    if let Some(endpoint) = endpoint {
        start_metrics(&mut server, config, endpoint, additions)?;
    }
    #[cfg(target_os = "linux")]
    let notifier = service.notifier.clone();
    #[cfg(not(target_os = "linux"))]
    let notifier = None;
    if let Some(every) = config.stats_interval {
        start_reporter(&mut server, every, notifier)?;
    }
    #[cfg(target_os = "linux")]
    notify_service(&mut server, &ctx, service)?;
    Ok(server)
}

/// Starts the thread `stats`, which reports the counters `every` so often.
fn start_reporter(
    server: &mut Server,
    every: Duration,
    notifier: Option<Arc<Notifier>>,
) -> Result<()> {
    let reporter = Reporter {
        stats: server.stats.clone(),
        shutdown: server.shutdown.clone(),
        every,
        notifier,
    };
    server.threads.reporter = Some(spawn("stats", move || reporter.run())?);
    Ok(())
}

/// Tells the service manager the server is ready, and that it stops when
/// it does; starts the watchdog if it wants pings.
#[cfg(target_os = "linux")]
fn notify_service(server: &mut Server, ctx: &ServerContext, service: Service) -> Result<()> {
    let Some(notifier) = service.notifier else {
        return Ok(());
    };
    if let Some(every) = service.watchdog {
        let watchdog = Watchdog {
            probe: ctx.probe.clone(),
            nudge: Box::new(server.threads.pipeline.nudge()),
            notifier: notifier.clone(),
            stats: server.stats.clone(),
            shutdown: server.shutdown.clone(),
            every,
        };
        server.threads.watchdog = Some(spawn("watchdog", move || watchdog.run())?);
    }
    let at_stop = notifier.clone();
    server.shutdown.on_trigger(move || {
        let _ = at_stop.notify("STOPPING=1\nSTATUS=stopping: answering what is queued");
    });
    if server.shutdown.is_triggered() {
        // Stopping already (a handle triggered before the start): ready
        // would come after STOPPING=1.
        return Ok(());
    }
    let ready = format!("READY=1\nSTATUS=serving on {}", server.local_addr);
    if let Err(e) = notifier.notify(&ready) {
        log::warn!("cannot tell the service manager the server is ready: {e}");
    }
    Ok(())
}

/// The start's lines: the address at `debug` (announcing the service is
/// its program's to do), and a warning where replies can be aimed.
fn announce(config: &Config, local_addr: SocketAddr) {
    log::debug!("serving UDP on {local_addr}");
    if !local_addr.ip().is_loopback() && config.rate_limit.is_none() {
        // A reply is often larger than its request: reflected off a forged
        // source, it lands on a victim amplified.
        log::warn!(
            "{local_addr} is reachable from other hosts and no rate limit is set: \
             a forged source address can aim replies at a victim; \
             set a per-source rate limit where sources can be forged"
        );
    }
}

/// What the pipeline's threads share.
fn context(
    config: &Config,
    local: SocketAddr,
    stats: &Arc<Stats>,
    shutdown: &Shutdown,
) -> ServerContext {
    // Room for every buffer that can be out at once: the queue, the
    // receiver's batch and each worker's (see `BufferPool`).
    let keep = config.queue + (config.workers + 1) * BATCH;
    ServerContext {
        stats: stats.clone(),
        shutdown: shutdown.clone(),
        pool: BufferPool::new(config.max_datagram + 1, keep),
        warnings: Arc::new(Warnings::new(config.log_requests)),
        local,
        max_datagram: config.max_datagram,
        loop_guard: config
            .loop_guard
            .then(|| LoopGuard::new(local, &config.service_ports)),
        probe: Default::default(),
        busy: Arc::new(Busy::new(config.workers)),
    }
}

#[cfg(feature = "metrics")]
fn start_metrics(
    server: &mut Server,
    config: &Config,
    endpoint: crate::control::metrics::Endpoint,
    additions: crate::control::metrics::Additions,
) -> Result<()> {
    use crate::control::metrics::{Exporter, Sources};
    let addr = endpoint.local_addr();
    log::debug!("serving metrics on http://{addr}/metrics");
    let exporter = Exporter {
        endpoint,
        sources: Sources {
            stats: server.stats.clone(),
            depth: Box::new(server.threads.pipeline.depth()),
            capacity: config.queue,
            workers: config.workers,
            namespace: config.metrics_namespace.clone(),
        },
        additions,
        shutdown: server.shutdown.clone(),
    };
    server.metrics_addr = Some(addr);
    server.threads.metrics = Some(spawn("metrics", move || exporter.run())?);
    Ok(())
}
