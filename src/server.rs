//! The server: binds the socket, starts the receiver and the workers, and
//! joins them on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::Config;
use crate::control::reporter::Reporter;
use crate::control::shutdown::Shutdown;
use crate::control::stats::{Counters, Snapshot, Stats};
use crate::error::{Error, Result};
use crate::handler::{Greeter, Handler};
use crate::pipeline::buffer::BufferPool;
use crate::pipeline::context::ServerContext;
use crate::pipeline::loopguard::LoopGuard;
use crate::pipeline::{spawn, Pipeline};
use crate::sys::{self, BATCH};

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

#[derive(Debug)]
struct Threads {
    pipeline: Pipeline,
    reporter: Option<JoinHandle<()>>,
    metrics: Option<JoinHandle<()>>,
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
        let socket = sys::bind(&config)?;
        let local_addr = socket
            .local_addr()
            .map_err(|e| Error::bind("UDP", config.bind, e))?;
        #[cfg(feature = "metrics")]
        let endpoint = config
            .metrics_addr
            .map(crate::control::metrics::Endpoint::bind)
            .transpose()?;
        log::info!("Bind UDP on {}...", local_addr.port());
        if !local_addr.ip().is_loopback() && config.rate_limit.is_none() {
            // A reply is 8 bytes more than its request: reflected off a
            // forged source, it lands on a victim slightly amplified.
            log::warn!(
                "{local_addr} is reachable from other hosts and no rate limit is set: \
                 a forged source address can aim replies at a victim; \
                 set a per-source rate limit (--rate-limit) where sources can be forged"
            );
        }

        let stats = Arc::new(Stats::default());
        // Room for every buffer that can be out at once: the queue, the
        // receiver's batch and each worker's (see `BufferPool`).
        let keep = config.queue + (config.workers + 1) * BATCH;
        let ctx = Arc::new(ServerContext {
            handler,
            stats: stats.clone(),
            shutdown: shutdown.clone(),
            pool: BufferPool::new(config.max_datagram + 1, keep),
            warnings: Arc::default(),
            local: local_addr,
            max_datagram: config.max_datagram,
            loop_guard: config.loop_guard.then(|| LoopGuard::new(local_addr)),
            pace: Default::default(),
        });
        let pipeline = Pipeline::start(&config, socket, ctx)?;
        let mut server = Server {
            local_addr,
            metrics_addr: None,
            workers: config.workers,
            shutdown,
            stats,
            threads: Threads {
                pipeline,
                reporter: None,
                metrics: None,
            },
        };
        // If a control thread cannot start, the server stops and joins what
        // started before the error is returned.
        let started = (|| -> Result<()> {
            #[cfg(feature = "metrics")]
            if let Some(endpoint) = endpoint {
                use crate::control::metrics::{Exporter, Sources};
                server.metrics_addr = Some(endpoint.local_addr());
                log::info!(
                    "Serving metrics on http://{}/metrics",
                    endpoint.local_addr()
                );
                let exporter = Exporter {
                    endpoint,
                    sources: Sources {
                        stats: server.stats.clone(),
                        depth: Box::new(server.threads.pipeline.depth()),
                        capacity: config.queue,
                        workers: config.workers,
                    },
                    shutdown: server.shutdown.clone(),
                };
                server.threads.metrics = Some(spawn("metrics", move || exporter.run())?);
            }
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

    /// A handle that reads the counters from any thread, after the server
    /// itself has been moved into [`Server::join`].
    pub fn counters(&self) -> Counters {
        Counters(self.stats.clone())
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
    /// final `stats:` line (at `warn` when any datagram was dropped or
    /// failed, at `info` otherwise), and an error if the counters do not
    /// balance.
    /// Returns the final counters, or the first error that stopped a thread.
    pub fn join(mut self) -> Result<Snapshot> {
        // The receiver returns first, dropping the queue's sender: each
        // worker then drains what is left and stops.
        let mut first_error = self.threads.pipeline.join();
        self.shutdown.trigger();
        for (name, handle) in [
            ("stats", self.threads.reporter.take()),
            ("metrics", self.threads.metrics.take()),
        ] {
            if let Some(handle) = handle {
                if handle.join().is_err() && first_error.is_none() {
                    first_error = Some(Error::thread_panicked(name));
                }
            }
        }
        let stats = self.stats.snapshot();
        // A line an operator must see at any log level when something was
        // lost; a quiet receipt otherwise.
        if stats.has_trouble() {
            log::warn!("{stats}");
        } else {
            log::info!("{stats}");
        }
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
