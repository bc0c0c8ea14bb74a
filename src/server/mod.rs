//! The server: builds the context from a configuration, a socket and a
//! handler per worker, starts the pipeline and the control threads, and
//! joins them on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use crate::config::Config;
use crate::control::busy::Busy;
use crate::control::shutdown::Shutdown;
use crate::control::stats::{Counters, Snapshot, Stats};
use crate::error::{Error, Result};
use crate::handler::Greeter;
use crate::pipeline::{spawn, Pipeline};

mod builder;
mod start;

pub use builder::Builder;

/// A running server.
///
/// [`Server::bind`] starts the greeter; [`Server::builder`] starts any
/// [`Handler`](crate::Handler), on a socket it binds or one it is given.
/// [`Shutdown::trigger`] (from any thread, via
/// [`Server::shutdown_handle`]) asks it to stop; [`Server::join`] waits for
/// it to finish and returns the final counters.
///
/// Dropping a server stops it as [`Server::shutdown`] does and waits for
/// that: the receiver stops reading, what it had queued is answered, every
/// thread is joined and the socket closed before `drop` returns, so the
/// port can be bound again at once. That takes as long as answering what
/// is queued takes: up to [`Config::queue`](crate::Config::queue) requests
/// shared among the workers, each the handler's time plus at most a second
/// to send.
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
    busy: Arc<Busy>,
    threads: Threads,
}

#[derive(Debug)]
struct Threads {
    pipeline: Pipeline,
    reporter: Option<JoinHandle<()>>,
    metrics: Option<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
}

impl Threads {
    /// Joins every thread, the pipeline's first: its receiver returns,
    /// dropping the queue's sender, and each worker drains what is left.
    /// Returns the first error that stopped a thread; joining again does
    /// nothing.
    fn join(&mut self, shutdown: &Shutdown) -> Option<Error> {
        let mut first_error = self.pipeline.join();
        shutdown.trigger();
        for (name, handle) in [
            ("stats", self.reporter.take()),
            ("metrics", self.metrics.take()),
            ("watchdog", self.watchdog.take()),
        ] {
            if let Some(handle) = handle {
                if handle.join().is_err() && first_error.is_none() {
                    first_error = Some(Error::thread_panicked(name));
                }
            }
        }
        first_error
    }
}

impl Server {
    /// Binds `config.bind` and starts answering with the greeting: the
    /// short way to [`Server::builder`]`(config).start()`.
    ///
    /// Logs no line at `info` when all is well: announcing the port
    /// ([`Server::local_addr`]) is the program's to do.
    pub fn bind(config: Config) -> Result<Server> {
        Server::builder(config).start()
    }

    /// A builder for a server of `config`: the handler (the greeting until
    /// another is given), the socket (bound from `config.bind` unless one
    /// is given) and the shutdown handle.
    ///
    /// ```
    /// use udp_greeter::{Config, Request, Server};
    ///
    /// let server = Server::builder(Config::new("127.0.0.1:0".parse()?))
    ///     .handler(|request: &Request<'_>, reply: &mut Vec<u8>| {
    ///         reply.extend_from_slice(request.payload)
    ///     })
    ///     .start()?;
    /// server.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(config: Config) -> Builder<Greeter> {
        Builder::new(config)
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

    /// Triggers shutdown and waits for it at most `deadline`: the receiver
    /// stops reading at once, and what was queued is answered until then.
    ///
    /// Past the deadline it returns an error
    /// ([`Error::is_overdue`](crate::Error::is_overdue)) naming the workers
    /// still in their handler and how long each has been there, and leaves
    /// the server's threads to finish on their own, or to end with the
    /// process: until they do, the socket stays open (a copy in each of
    /// those workers), so the port may stay bound. [`Server::counters`],
    /// taken beforehand, still reads the counters then.
    ///
    /// ```
    /// use std::time::Duration;
    /// use udp_greeter::{Config, Server};
    ///
    /// let server = Server::bind(Config::new("127.0.0.1:0".parse()?))?;
    /// let stats = server.shutdown_within(Duration::from_secs(60))?;
    /// assert!(stats.is_balanced());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown_within(self, deadline: Duration) -> Result<Snapshot> {
        let until = Instant::now() + deadline;
        self.shutdown.trigger();
        let busy = self.busy.clone();
        let (done, joined) = crossbeam_channel::bounded(1);
        let (hand, server) = crossbeam_channel::bounded::<Server>(1);
        // The join runs on a thread of its own, so that a handler that
        // never returns holds up that thread, not the caller.
        let joiner = spawn("stop", move || {
            if let Ok(server) = server.recv() {
                let _ = done.send(server.join());
            }
        });
        if let Err(e) = joiner {
            // Dropped, the server would wait for its threads without a
            // deadline: they are left to end on their own instead.
            std::mem::forget(self);
            return Err(e);
        }
        // The joiner is waiting for it: a channel of one has room.
        let _ = hand.send(self);
        match joined.recv_deadline(until) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(Error::overdue(deadline, busy.now())),
            Err(RecvTimeoutError::Disconnected) => Err(Error::thread_panicked("stop")),
        }
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
        let first_error = self.threads.join(&self.shutdown);
        self.stats.release_socket();
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
        // Stops in order and waits, so that the socket is closed when drop
        // returns; after `join` there is nothing left to wait for.
        self.shutdown.trigger();
        if let Some(e) = self.threads.join(&self.shutdown) {
            log::error!("{e}");
        }
        self.stats.release_socket();
    }
}
