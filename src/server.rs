//! The server: binds the socket, starts the receiver and the workers, and
//! joins them on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::buffer::BufferPool;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::handler::{Greeter, Handler};
use crate::metrics::{Endpoint, Exporter, Sources};
use crate::ratelimit::{RateLimiter, DEFAULT_SLOTS};
use crate::receiver::{Receiver, BATCH};
use crate::reporter::Reporter;
use crate::shutdown::Shutdown;
use crate::stats::{Snapshot, Stats};
use crate::transport;
use crate::worker::{Worker, WorkerLogs};

/// A running server.
///
/// [`Server::bind`] starts it; [`Shutdown::trigger`] (from any thread, via
/// [`Server::shutdown_handle`]) asks it to stop; [`Server::join`] waits for
/// it to finish and returns the final counters. Dropping a server without
/// joining it triggers its shutdown and lets its threads finish on their
/// own: drop never blocks.
///
/// ```
/// use udp_greeter::{Config, Server};
///
/// let server = Server::bind(Config::new("127.0.0.1:0".parse()?))?;
/// // ... traffic ...
/// let stats = server.shutdown()?;
/// assert!(stats.is_balanced());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    workers: usize,
    shutdown: Shutdown,
    stats: Arc<Stats>,
    threads: Threads,
}

#[derive(Debug, Default)]
struct Threads {
    receiver: Option<JoinHandle<Result<()>>>,
    workers: Vec<JoinHandle<()>>,
    reporter: Option<JoinHandle<()>>,
    metrics: Option<JoinHandle<()>>,
    logs: Option<Arc<WorkerLogs>>,
}

impl Server {
    /// Binds `config.bind` and starts answering with the greeting.
    ///
    /// Logs `Bind UDP on PORT...` with the port really bound.
    pub fn bind(config: Config) -> Result<Server> {
        Server::with_handler(config, Greeter)
    }

    /// Binds `config.bind` and starts answering with `handler`.
    pub fn with_handler<H: Handler>(config: Config, handler: H) -> Result<Server> {
        Server::with_shutdown(config, handler, Shutdown::new())
    }

    /// Binds `config.bind` and starts answering with `handler`, stopping
    /// when `shutdown` is triggered.
    ///
    /// Lets a caller wire signals to the handle before the socket is bound,
    /// so a signal that arrives as soon as `Bind UDP on PORT...` is logged
    /// still stops the server gracefully. A handle triggered already stops
    /// it at once.
    pub fn with_shutdown<H: Handler>(
        config: Config,
        handler: H,
        shutdown: Shutdown,
    ) -> Result<Server> {
        config.validate()?;
        let socket = transport::bind(&config)?;
        let local_addr = socket.local_addr()?;
        let metrics = config.metrics_addr.map(Endpoint::bind).transpose()?;
        log::info!("Bind UDP on {}...", local_addr.port());

        let mut server = Server {
            local_addr,
            metrics_addr: metrics.as_ref().map(Endpoint::local_addr),
            workers: config.workers,
            shutdown,
            stats: Arc::new(Stats::default()),
            threads: Threads::default(),
        };
        let (tx, rx) = crossbeam_channel::bounded(config.queue);
        // Room for every buffer that can be out at once, so that none needs
        // making again in the steady state (see `BufferPool`).
        let keep = config.queue + (config.workers + 1) * BATCH;
        let pool = BufferPool::new(config.max_datagram + 1, keep);
        let handler = Arc::new(handler);
        let logs = Arc::new(WorkerLogs::new());
        server.threads.logs = Some(logs.clone());

        // If any thread cannot start, the ones already started are stopped
        // and joined before the error is returned.
        let started = (|| -> Result<()> {
            for i in 0..config.workers {
                let worker = Worker {
                    socket: socket.try_clone()?,
                    queue: rx.clone(),
                    pool: pool.clone(),
                    stats: server.stats.clone(),
                    handler: handler.clone(),
                    logs: logs.clone(),
                };
                let name = format!("worker-{i}");
                let handle = spawn(&name, move || worker.run())?;
                server.threads.workers.push(handle);
            }
            if let Some(endpoint) = metrics {
                log::info!(
                    "Serving metrics on http://{}/metrics",
                    endpoint.local_addr()
                );
                let exporter = Exporter {
                    endpoint,
                    sources: Sources {
                        stats: server.stats.clone(),
                        queue: tx.clone(),
                        workers: config.workers,
                    },
                    shutdown: server.shutdown.clone(),
                };
                server.threads.metrics = Some(spawn("metrics", move || exporter.run())?);
            }
            let receiver = Receiver {
                socket,
                queue: tx,
                pool,
                stats: server.stats.clone(),
                shutdown: server.shutdown.clone(),
                limiter: (config.rate_limit > 0).then(|| {
                    let burst = if config.rate_burst == 0 {
                        config.rate_limit
                    } else {
                        config.rate_burst
                    };
                    RateLimiter::new(config.rate_limit, burst, DEFAULT_SLOTS)
                }),
                max_datagram: config.max_datagram,
            };
            server.threads.receiver = Some(spawn("receiver", move || receiver.run())?);
            if let Some(every) = config.stats_interval {
                let reporter = Reporter {
                    stats: server.stats.clone(),
                    shutdown: server.shutdown.clone(),
                    every,
                };
                server.threads.reporter = Some(spawn("stats", move || reporter.run())?);
            }
            Ok(())
        })();
        match started {
            Ok(()) => Ok(server),
            Err(e) => {
                // The closure owned the queue's sender and dropped it on
                // return, so the workers already started see the queue close.
                let _ = server.shutdown();
                Err(e)
            }
        }
    }

    /// The address really bound (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the metrics endpoint really bound, if
    /// [`Config::metrics_addr`] asked for one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// How many worker threads answer requests.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// A handle that stops this server from any thread.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The counters as they stand now.
    pub fn stats(&self) -> Snapshot {
        self.stats.snapshot()
    }

    /// Triggers shutdown and waits for it: see [`Server::join`].
    pub fn shutdown(self) -> Result<Snapshot> {
        self.shutdown.trigger();
        self.join()
    }

    /// Waits until the server has stopped, after its shutdown was triggered
    /// or its socket failed for good.
    ///
    /// By then the receiver has stopped reading, every datagram it had
    /// queued has been answered, and every thread has been joined. Logs the
    /// final `stats:` line, and an error if the counters do not balance.
    /// Returns the final counters, or the first error that stopped a thread.
    pub fn join(mut self) -> Result<Snapshot> {
        let mut first_error = None;
        if let Some(handle) = self.threads.receiver.take() {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_error = Some(e),
                Err(_) => first_error = Some(Error::thread_panicked("receiver")),
            }
        }
        // The receiver has returned, so the queue's sender is gone (the
        // metrics thread drops its clone once shutdown is triggered): each
        // worker drains what is left and stops.
        for (i, handle) in self.threads.workers.drain(..).enumerate() {
            if handle.join().is_err() && first_error.is_none() {
                first_error = Some(Error::thread_panicked(&format!("worker-{i}")));
            }
        }
        self.shutdown.trigger();
        if let Some(handle) = self.threads.reporter.take() {
            if handle.join().is_err() && first_error.is_none() {
                first_error = Some(Error::thread_panicked("stats"));
            }
        }
        if let Some(handle) = self.threads.metrics.take() {
            if handle.join().is_err() && first_error.is_none() {
                first_error = Some(Error::thread_panicked("metrics"));
            }
        }
        if let Some(logs) = self.threads.logs.take() {
            logs.flush();
        }
        let stats = self.stats.snapshot();
        log::info!("{stats}");
        if !stats.is_balanced() {
            log::error!(
                "counters do not balance: received={} but the fates add up to {}",
                stats.received,
                stats.settled()
            );
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Never blocks: the threads notice the flag and finish by themselves.
        self.shutdown.trigger();
    }
}

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::spawn(name, e))
}
