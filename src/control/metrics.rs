//! The optional `metrics` thread: serves `GET /metrics` in the Prometheus
//! text exposition format (version 0.0.4).
//!
//! The values are read from the live counters when a scrape arrives, so the
//! UDP path does nothing for the endpoint: no extra atomics, no locks. The
//! format is written by the official `prometheus-client` encoder and the
//! HTTP by `tiny_http`; nothing here parses HTTP.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tiny_http::{Header, Method, Request, Response};

use super::shutdown::Shutdown;
use super::stats::{Role, Stats, TABLE};
use crate::error::{Error, Result};

/// The only path served.
const PATH: &str = "/metrics";

/// A bound, not yet serving, metrics endpoint.
pub(crate) struct Endpoint {
    http: tiny_http::Server,
    local_addr: SocketAddr,
}

impl Endpoint {
    /// Binds the TCP listener, so that a bad or busy address is an error of
    /// [`Server::bind`](crate::Server::bind), not of a thread later.
    ///
    /// With `SO_REUSEPORT` where there is one: a server upgraded in place
    /// binds the same address while the old one still listens there, and
    /// for that moment the kernel shares the connections between the two.
    /// A listener of anyone else that lacks the option still makes the
    /// address busy.
    pub(crate) fn bind(addr: SocketAddr) -> Result<Endpoint> {
        let fail = |e| Error::bind("metrics", addr, e);
        let listener = listen(addr).map_err(fail)?;
        let local_addr = listener.local_addr().map_err(fail)?;
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| fail(io::Error::other(e.to_string())))?;
        Ok(Endpoint { http, local_addr })
    }

    /// The address really bound (with the port the OS chose for port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// A TCP listener on `addr` that another process may share for a moment.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// How many datagrams wait for a worker, read at each scrape.
pub(crate) type DepthProbe = Box<dyn Fn() -> usize + Send + Sync>;

/// What one scrape reads.
pub(crate) struct Sources {
    pub stats: Arc<Stats>,
    /// The queue's depth: a probe, not a sender, which would keep the
    /// workers waiting for a queue that can no longer fill.
    pub depth: DepthProbe,
    pub capacity: usize,
    pub workers: usize,
    /// What every metric's name starts with.
    pub namespace: String,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("capacity", &self.capacity)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// What a service built on the engine adds to its endpoint: metrics of its
/// own, and the name and version its `build_info` shows.
#[derive(Debug)]
pub(crate) struct Additions {
    pub registry: Registry,
    pub service: String,
    pub version: String,
}

impl Default for Additions {
    /// Nothing of its own; the engine's name and version.
    fn default() -> Additions {
        Additions {
            registry: Registry::default(),
            service: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The `metrics` thread.
pub(crate) struct Exporter {
    pub endpoint: Endpoint,
    pub sources: Sources,
    pub additions: Additions,
    pub shutdown: Shutdown,
}

impl Exporter {
    /// Serves until shutdown is triggered, sleeping until a scrape comes:
    /// the trigger unblocks the wait.
    pub(crate) fn run(self) {
        let Exporter {
            endpoint,
            sources,
            additions,
            shutdown,
        } = self;
        let registry = registry(sources, additions);
        let http = Arc::new(endpoint.http);
        let waker = Arc::downgrade(&http);
        shutdown.on_trigger(move || {
            if let Some(http) = waker.upgrade() {
                http.unblock();
            }
        });
        loop {
            match http.recv() {
                Ok(request) => answer(request, &registry),
                Err(_) if shutdown.is_triggered() => return,
                Err(e) => {
                    // The accept thread has stopped: nothing more will come.
                    log::error!("metrics endpoint stopped: {e}");
                    return;
                }
            }
        }
    }
}

/// Every metric: the service's own, the build, then the live counters.
fn registry(sources: Sources, additions: Additions) -> Registry {
    let Additions {
        mut registry,
        service,
        version,
    } = additions;
    registry.register(
        format!("{}_build", sources.namespace),
        "Build information: the service, its version, the engine's version",
        Info::new(vec![
            ("service", service),
            ("version", version),
            ("engine_version", env!("CARGO_PKG_VERSION").to_string()),
        ]),
    );
    registry.register_collector(Box::new(Live(sources)));
    registry
}

fn answer(request: Request, registry: &Registry) {
    let path = request.url().split('?').next().unwrap_or_default();
    let response = if path != PATH {
        plain(404, "not found: only GET /metrics is served\n")
    } else if !matches!(request.method(), Method::Get | Method::Head) {
        with_header(
            plain(405, "method not allowed: use GET\n"),
            "Allow",
            "GET, HEAD",
        )
    } else {
        let mut body = String::with_capacity(2048);
        match prometheus_text::encode(&mut body, registry) {
            Ok(()) => with_header(
                Response::from_string(body),
                "Content-Type",
                prometheus_text::CONTENT_TYPE,
            ),
            Err(_) => plain(500, "cannot encode the metrics\n"),
        }
    };
    if let Err(e) = request.respond(response) {
        // The scraper went away; its next scrape will do.
        log::debug!("cannot answer a metrics request: {e}");
    }
}

fn plain(status: u16, text: &str) -> Response<io::Cursor<Vec<u8>>> {
    with_header(
        Response::from_string(text).with_status_code(status),
        "Content-Type",
        "text/plain; charset=utf-8",
    )
}

fn with_header<R: io::Read>(response: Response<R>, name: &str, value: &str) -> Response<R> {
    match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(h) => response.with_header(h),
        // Only this file's constants come here, and they are valid ASCII.
        Err(()) => response,
    }
}

/// Reads the live counters on every scrape.
#[derive(Debug)]
struct Live(Sources);

impl Collector for Live {
    /// The table of counts gives every metric: `received` and each side
    /// count a counter of its own, the fates one counter labelled by fate.
    fn encode(
        &self,
        mut encoder: DescriptorEncoder<'_>,
    ) -> std::result::Result<(), std::fmt::Error> {
        super::process::encode(&mut encoder)?;
        let s = self.0.stats.snapshot();
        let ns = &self.0.namespace;
        let counts: Vec<_> = TABLE.iter().zip(s.counts()).collect();
        // `received` and the side counts: a counter each.
        for (entry, (name, n)) in counts.iter().filter(|(e, _)| e.role != Role::Fate) {
            let help = format!("{}.", entry.help);
            counter(&mut encoder, &format!("{ns}_{name}"), &help, *n)?;
        }
        let help = format!(
            "Received datagrams by fate; once the queue is empty they add up to {ns}_received_total."
        );
        let name = format!("{ns}_datagrams");
        let mut family = encoder.encode_descriptor(&name, &help, None, MetricType::Counter)?;
        for (_, (fate, n)) in counts.iter().filter(|(e, _)| e.role == Role::Fate) {
            let labels = [("fate", *fate)];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        gauge(
            &mut encoder,
            &format!("{ns}_queue_depth"),
            "Datagrams waiting for a worker.",
            (self.0.depth)() as i64,
        )?;
        gauge(
            &mut encoder,
            &format!("{ns}_queue_capacity"),
            "Datagrams that may wait for a worker.",
            self.0.capacity as i64,
        )?;
        gauge(
            &mut encoder,
            &format!("{ns}_workers"),
            "Worker threads configured.",
            self.0.workers as i64,
        )
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> std::result::Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> std::result::Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::stats::Count;

    #[test]
    fn exposition() {
        let stats = Arc::new(Stats::default());
        stats.receiver().add(Count::Received, 7);
        stats.workers().add(Count::Replied, 4);
        stats.receiver().add(Count::DroppedQueueFull, 1);
        stats.receiver().add(Count::DroppedRateLimited, 2);
        let registry = registry(
            Sources {
                stats,
                depth: Box::new(|| 5),
                capacity: 16,
                workers: 3,
                namespace: "udp_greeter".to_string(),
            },
            Additions::default(),
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "# TYPE udp_greeter_received_total counter",
            "udp_greeter_received_total 7",
            "# TYPE udp_greeter_datagrams_total counter",
            "udp_greeter_datagrams_total{fate=\"replied\"} 4",
            "udp_greeter_datagrams_total{fate=\"dropped_queue_full\"} 1",
            "udp_greeter_datagrams_total{fate=\"send_failed\"} 0",
            "udp_greeter_datagrams_total{fate=\"handler_failed\"} 0",
            "udp_greeter_datagrams_total{fate=\"declined\"} 0",
            "udp_greeter_datagrams_total{fate=\"dropped_oversize\"} 0",
            "udp_greeter_datagrams_total{fate=\"dropped_rate_limited\"} 2",
            "udp_greeter_worker_panics_total 0",
            "udp_greeter_control_truncated_total 0",
            "# TYPE udp_greeter_queue_depth gauge",
            "udp_greeter_queue_depth 5",
            "udp_greeter_queue_capacity 16",
            "udp_greeter_workers 3",
            concat!(
                "udp_greeter_build_info{service=\"udp-greeter\",version=\"",
                env!("CARGO_PKG_VERSION"),
                "\",engine_version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn namespaced() {
        let registry = registry(
            Sources {
                stats: Arc::new(Stats::default()),
                depth: Box::new(|| 0),
                capacity: 1,
                workers: 1,
                namespace: "lookup".to_string(),
            },
            Additions::default(),
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("\nlookup_received_total 0\n"), "{text}");
        assert!(text.contains("lookup_build_info{"), "{text}");
        let ours: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("process_"))
            .filter(|l| !l.starts_with("lookup_"))
            .collect();
        assert!(ours.is_empty(), "metrics outside the namespace: {ours:?}");
    }
}
