//! The builder: the handler each worker gets, the socket, the shutdown
//! handle, then `start`.

use std::fmt;
use std::net::UdpSocket;

#[cfg(target_os = "linux")]
use std::sync::Arc;
#[cfg(target_os = "linux")]
use std::time::Duration;

#[cfg(target_os = "linux")]
use super::start::Service;
use super::start::{self, Parts};
use super::Server;
#[cfg(feature = "metrics")]
use prometheus_client::registry::Registry;

use crate::config::Config;
#[cfg(feature = "metrics")]
use crate::control::metrics::Additions;
use crate::control::shutdown::Shutdown;
use crate::error::{Error, Result};
use crate::handler::{Greeter, Handler};
#[cfg(target_os = "linux")]
use crate::service::Notifier;

/// How a server is put together before it starts: made by
/// [`Server::builder`], started by [`Builder::start`].
///
/// Each worker owns a handler of its own: a clone of one
/// ([`Builder::handler`]), or one made for it
/// ([`Builder::handler_per_worker`], [`Builder::handler_factory`] if making
/// it can fail), the way to give each worker state that must not be
/// shared, such as a database connection:
///
/// ```
/// use std::collections::HashMap;
/// use udp_greeter::{Answer, Config, Handler, Request, Server};
///
/// /// How often its worker has seen each request: a map of its own, which
/// /// no other thread touches, so it needs no lock.
/// struct Seen {
///     counts: HashMap<Vec<u8>, u64>,
/// }
///
/// impl Handler for Seen {
///     fn respond(&mut self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
///         let n = self.counts.entry(request.payload.to_vec()).or_default();
///         *n += 1;
///         reply.extend_from_slice(n.to_string().as_bytes());
///         Answer::Reply
///     }
/// }
///
/// let server = Server::builder(Config::new("127.0.0.1:0".parse()?))
///     .handler_per_worker(|_worker| Seen { counts: HashMap::new() })
///     .start()?;
/// server.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until `start` is called"]
pub struct Builder<H> {
    config: Config,
    socket: Option<UdpSocket>,
    shutdown: Option<Shutdown>,
    /// One per worker, made as soon as they were given; or why they
    /// could not be, for `start` to return.
    handlers: Result<Vec<H>>,
    #[cfg(target_os = "linux")]
    service: Service,
    #[cfg(feature = "metrics")]
    additions: Additions,
}

impl Builder<Greeter> {
    pub(super) fn new(config: Config) -> Builder<Greeter> {
        Builder {
            handlers: handlers_for(&config, |_| Ok(Greeter)),
            config,
            socket: None,
            shutdown: None,
            #[cfg(target_os = "linux")]
            service: Service::default(),
            #[cfg(feature = "metrics")]
            additions: Additions::default(),
        }
    }
}

impl<H: Handler> Builder<H> {
    /// Answers with `handler`: each worker gets a clone of its own. A
    /// closure that captures nothing, or only `Clone` values, is `Clone`.
    ///
    /// State in an `Arc` is shared by all workers; anything else the
    /// handler holds is a copy each worker owns:
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::sync::{Arc, PoisonError, RwLock};
    /// use udp_greeter::{Config, Request, Server};
    ///
    /// // Shared: every clone of the `Arc` is the same map.
    /// let seen: Arc<RwLock<HashMap<Vec<u8>, u64>>> = Arc::default();
    /// // Per worker: every clone of the closure has a copy of its own.
    /// let mut answered = 0u64;
    /// let server = Server::builder(Config::new("127.0.0.1:0".parse()?))
    ///     .handler(move |request: &Request<'_>, reply: &mut Vec<u8>| {
    ///         answered += 1;
    ///         let mut seen = seen.write().unwrap_or_else(PoisonError::into_inner);
    ///         let times = seen.entry(request.payload.to_vec()).or_default();
    ///         *times += 1;
    ///         let text = format!("seen {times} times; this worker answered {answered}");
    ///         reply.extend_from_slice(text.as_bytes());
    ///     })
    ///     .start()?;
    /// server.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A `HashMap` captured without the `Arc` compiles too, and is then a
    /// copy per worker: each counts only the requests it took.
    /// `examples/kv_store.rs` serves `GET` and `SET` from a store shared
    /// this way.
    pub fn handler<G: Handler + Clone>(self, handler: G) -> Builder<G> {
        let handlers = handlers_for(&self.config, |_| Ok(handler.clone()));
        self.with_handlers(handlers)
    }

    /// Answers with the handlers `make` returns: one per worker, made
    /// here and now, on this thread, by a call with the worker's index
    /// (`0` for `worker-0`, ...). So `make` may borrow what the caller
    /// holds; what it returns is moved to its worker.
    pub fn handler_per_worker<G, F>(self, mut make: F) -> Builder<G>
    where
        G: Handler,
        F: FnMut(usize) -> G,
    {
        let handlers = handlers_for(&self.config, |worker| Ok(make(worker)));
        self.with_handlers(handlers)
    }

    /// As [`handler_per_worker`](Builder::handler_per_worker), for a
    /// factory that can fail: the first error stops it, and
    /// [`start`](Builder::start) fails with its message, binding nothing
    /// and starting nothing. A service that cannot open its database says
    /// so at start, not at its first request.
    pub fn handler_factory<G, E, F>(self, mut factory: F) -> Builder<G>
    where
        G: Handler,
        E: fmt::Display,
        F: FnMut(usize) -> std::result::Result<G, E>,
    {
        let handlers = handlers_for(&self.config, |worker| {
            factory(worker).map_err(|e| Error::handler(worker, e.to_string()))
        });
        self.with_handlers(handlers)
    }

    /// Serves `socket`, bound and configured by the caller (or inherited
    /// from a service manager), instead of binding `config.bind`.
    ///
    /// The server changes only what serving needs: its reads block, a send
    /// timeout of a second is set if it has none, and on a wildcard address
    /// it asks for each datagram's destination address. Its buffers,
    /// `SO_REUSEPORT` and other options stay as they are, and
    /// [`Server::local_addr`] is its address. `start` fails if it is not a
    /// bound datagram socket.
    pub fn socket(mut self, socket: UdpSocket) -> Builder<H> {
        self.socket = Some(socket);
        self
    }

    /// Stops when `shutdown` is triggered: a handle made beforehand, so
    /// that signals can be wired to it before the socket is bound. A handle
    /// triggered already stops the server as soon as it starts.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Builder<H> {
        self.shutdown = Some(shutdown);
        self
    }

    #[cfg(target_os = "linux")]
    /// Tells the service manager behind `notifier` how the server is
    /// doing (sd_notify): `READY=1` once every thread serves, `STOPPING=1`
    /// when the shutdown begins, and a `STATUS=` with the counters at each
    /// periodic report ([`Config::stats_interval`]) and watchdog ping.
    pub fn notify(mut self, notifier: Notifier) -> Builder<H> {
        self.service.notifier = Some(Arc::new(notifier));
        self
    }

    #[cfg(target_os = "linux")]
    /// Pings the service manager's watchdog (`WATCHDOG=1`), whose timeout
    /// is twice `every` ([`watchdog_interval`](crate::service::watchdog_interval)
    /// gives `every`): each ping only once a worker has taken a probe
    /// through the queue since the last, so a pipeline that stopped moving
    /// stops the pings. The watchdog looks twice every `every` and pings as
    /// soon as a probe was answered, so pings are at most one and a half
    /// `every` apart while the pipeline moves. Needs
    /// [`notify`](Builder::notify). Without a watchdog an idle server wakes
    /// no thread; with one, a probe goes through twice every `every`.
    pub fn watchdog(mut self, every: Duration) -> Builder<H> {
        self.service.watchdog = Some(every);
        self
    }

    #[cfg(feature = "metrics")]
    /// Adds metrics of the service's own to the engine's endpoint
    /// ([`Config::metrics_addr`]): `register` is called at once with the
    /// registry the endpoint serves, to register them into, beside the
    /// engine's. Their names are the service's to choose: best under a
    /// prefix of its own (`Registry::sub_registry_with_prefix`). A metric
    /// is a handle that its handlers, made before or after, keep a clone of.
    ///
    /// ```
    /// use udp_greeter::prometheus_client::metrics::counter::Counter;
    /// use udp_greeter::{Config, Request, Server};
    ///
    /// let misses = Counter::<u64>::default();
    /// let counted = misses.clone();
    /// let server = Server::builder(Config::new("127.0.0.1:0".parse()?))
    ///     .metrics(|registry| registry.register("lookup_misses", "Keys not found", misses))
    ///     .build_info("lookup", "1.2.0")
    ///     .handler(move |_: &Request<'_>, _: &mut Vec<u8>| {
    ///         counted.inc();
    ///     })
    ///     .start()?;
    /// server.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`Config::metrics_addr`]: crate::Config::metrics_addr
    pub fn metrics(mut self, register: impl FnOnce(&mut Registry)) -> Builder<H> {
        register(&mut self.additions.registry);
        self
    }

    #[cfg(feature = "metrics")]
    /// The service and version the endpoint's `build_info` names
    /// (`service="udp-greeter"` and this crate's version by default),
    /// beside the engine's version (`engine_version`).
    pub fn build_info(
        mut self,
        service: impl Into<String>,
        version: impl Into<String>,
    ) -> Builder<H> {
        self.additions.service = service.into();
        self.additions.version = version.into();
        self
    }

    /// Binds the socket (or takes the one given) and starts the threads;
    /// returns once they all serve. Fails with what was wrong with the
    /// configuration or the handlers, if anything was.
    ///
    /// Logs no line at `info` when all is well: announcing the addresses
    /// ([`Server::local_addr`], [`Server::metrics_addr`]) is the program's
    /// to do.
    pub fn start(self) -> Result<Server> {
        let handlers = self.handlers?;
        #[cfg(target_os = "linux")]
        if self.service.watchdog.is_some() && self.service.notifier.is_none() {
            return Err(Error::config("a watchdog needs a notifier to ping"));
        }
        let parts = Parts {
            socket: self.socket,
            shutdown: self.shutdown.unwrap_or_default(),
            handlers,
            #[cfg(target_os = "linux")]
            service: self.service,
            #[cfg(feature = "metrics")]
            additions: self.additions,
        };
        start::start(&self.config, parts)
    }

    fn with_handlers<G>(self, handlers: Result<Vec<G>>) -> Builder<G> {
        Builder {
            config: self.config,
            socket: self.socket,
            shutdown: self.shutdown,
            handlers,
            #[cfg(target_os = "linux")]
            service: self.service,
            #[cfg(feature = "metrics")]
            additions: self.additions,
        }
    }
}

impl<H> fmt::Debug for Builder<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("socket", &self.socket)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

/// A handler per worker of `config`, made by `make`: none if `config`
/// cannot run, so that no number of workers it names is ever made.
fn handlers_for<H>(config: &Config, make: impl FnMut(usize) -> Result<H>) -> Result<Vec<H>> {
    config.validate()?;
    (0..config.workers).map(make).collect()
}
