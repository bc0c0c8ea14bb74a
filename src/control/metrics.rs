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

use crossbeam_channel::Sender;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tiny_http::{Header, Method, Request, Response};

use super::shutdown::{Shutdown, POLL_INTERVAL};
use super::stats::Stats;
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
    pub(crate) fn bind(addr: SocketAddr) -> Result<Endpoint> {
        let fail = |e| Error::bind("metrics", addr, e);
        let listener = TcpListener::bind(addr).map_err(fail)?;
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

/// What one scrape reads; `T` is what the queue carries.
#[derive(Debug)]
pub(crate) struct Sources<T> {
    pub stats: Arc<Stats>,
    /// Only for its length. A sender, not a receiver: holding a receiver
    /// would hide from the receiver thread that every worker is gone. The
    /// exporter drops it as soon as shutdown is triggered, so the workers
    /// still see the queue close once the receiver has returned.
    pub queue: Sender<T>,
    pub workers: usize,
}

/// The `metrics` thread.
pub(crate) struct Exporter<T> {
    pub endpoint: Endpoint,
    pub sources: Sources<T>,
    pub shutdown: Shutdown,
}

impl<T: Send + std::fmt::Debug + 'static> Exporter<T> {
    /// Serves until shutdown is triggered.
    pub(crate) fn run(self) {
        let Exporter {
            endpoint,
            sources,
            shutdown,
        } = self;
        let registry = registry(sources);
        // A short wait, so shutdown is noticed within one poll interval
        // even when nobody scrapes.
        while !shutdown.is_triggered() {
            match endpoint.http.recv_timeout(POLL_INTERVAL) {
                Ok(Some(request)) => answer(request, &registry),
                Ok(None) => {}
                Err(e) => {
                    // The accept thread has stopped: nothing more will come.
                    log::error!("metrics endpoint stopped: {e}");
                    break;
                }
            }
        }
    }
}

/// Every metric: the build, then the live counters.
fn registry<T: Send + std::fmt::Debug + 'static>(sources: Sources<T>) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "udp_greeter_build",
        "Build information",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
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
struct Live<T>(Sources<T>);

impl<T: Send + std::fmt::Debug + 'static> Collector for Live<T> {
    fn encode(
        &self,
        mut encoder: DescriptorEncoder<'_>,
    ) -> std::result::Result<(), std::fmt::Error> {
        super::process::encode(&mut encoder)?;
        let s = self.0.stats.snapshot();
        counter(
            &mut encoder,
            "udp_greeter_received",
            "Datagrams read from the socket.",
            s.received,
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "udp_greeter_datagrams",
                "Received datagrams by fate; once the queue is empty they add up to udp_greeter_received_total.",
                None,
                MetricType::Counter,
            )?;
            for (fate, n) in [
                ("replied", s.replied),
                ("dropped_queue_full", s.dropped_queue_full),
                ("send_errors", s.send_errors),
                ("dropped_oversize", s.dropped_oversize),
                ("dropped_rate_limited", s.dropped_rate_limited),
            ] {
                let labels = [("fate", fate)];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut encoder,
            "udp_greeter_worker_panics",
            "Panics caught in worker threads.",
            s.worker_panics,
        )?;
        counter(
            &mut encoder,
            "udp_greeter_control_truncated",
            "Datagrams whose control messages the kernel cut short.",
            s.control_truncated,
        )?;
        gauge(
            &mut encoder,
            "udp_greeter_queue_depth",
            "Datagrams waiting for a worker.",
            self.0.queue.len() as i64,
        )?;
        gauge(
            &mut encoder,
            "udp_greeter_queue_capacity",
            "Datagrams that may wait for a worker (--queue).",
            self.0.queue.capacity().unwrap_or_default() as i64,
        )?;
        gauge(
            &mut encoder,
            "udp_greeter_workers",
            "Worker threads configured (--workers).",
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
        let (tx, _rx) = crossbeam_channel::bounded::<u8>(16);
        let registry = registry(Sources {
            stats,
            queue: tx,
            workers: 3,
        });
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "# TYPE udp_greeter_received_total counter",
            "udp_greeter_received_total 7",
            "# TYPE udp_greeter_datagrams_total counter",
            "udp_greeter_datagrams_total{fate=\"replied\"} 4",
            "udp_greeter_datagrams_total{fate=\"dropped_queue_full\"} 1",
            "udp_greeter_datagrams_total{fate=\"send_errors\"} 0",
            "udp_greeter_datagrams_total{fate=\"dropped_oversize\"} 0",
            "udp_greeter_datagrams_total{fate=\"dropped_rate_limited\"} 2",
            "udp_greeter_worker_panics_total 0",
            "udp_greeter_control_truncated_total 0",
            "# TYPE udp_greeter_queue_depth gauge",
            "udp_greeter_queue_depth 0",
            "udp_greeter_queue_capacity 16",
            "udp_greeter_workers 3",
            concat!(
                "udp_greeter_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
        }
    }
}
