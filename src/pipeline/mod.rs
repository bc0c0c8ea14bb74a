//! The datagram's path, in data-flow order: the receiver reads datagrams
//! into recycled buffers and queues them; the workers answer each on their
//! own clone of the socket and hand the buffers back.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::control::shutdown::Shutdown;
use crate::control::stats::Stats;
use crate::error::{Error, Result};
use crate::handler::Handler;

mod buffer;
pub(crate) mod ratelimit;
mod receiver;
mod wait;
pub(crate) mod worker;

use buffer::BufferPool;
use ratelimit::{RateLimiter, DEFAULT_SLOTS};
use receiver::ReceiverThread;
use worker::{Worker, WorkerLogs};

/// How many datagrams one system call may read, and a worker may take at
/// once.
pub(crate) const BATCH: usize = 32;

/// One received datagram on its way from the receiver to a worker.
#[derive(Debug)]
pub(crate) struct Datagram {
    /// The payload: exactly the datagram's bytes.
    pub buf: Vec<u8>,
    pub peer: SocketAddr,
    /// The address the datagram was sent to, when known (wildcard binds).
    pub local: Option<IpAddr>,
}

/// A peer's address as logs show it: an IPv4 client of a dual-stack socket
/// in its IPv4 form (`127.0.0.1:46736`, not `[::ffff:127.0.0.1]:46736`).
pub(crate) fn shown(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => peer,
        },
        SocketAddr::V4(_) => peer,
    }
}

/// The queue between the receiver and the workers.
pub(crate) fn queue(config: &Config) -> (Sender<Datagram>, Receiver<Datagram>) {
    crossbeam_channel::bounded(config.queue)
}

/// The pipeline's threads, once started.
#[derive(Debug, Default)]
pub(crate) struct Pipeline {
    receiver: Option<JoinHandle<Result<()>>>,
    workers: Vec<JoinHandle<()>>,
    logs: Option<Arc<WorkerLogs>>,
}

impl Pipeline {
    /// Starts the workers, then the receiver, on `socket` and the queue.
    ///
    /// If a thread cannot start, those already started stay in `self` for
    /// [`Pipeline::join`]: the queue's sender is dropped on return, so the
    /// workers see it close once every other clone of it is gone too.
    pub(crate) fn start<H: Handler>(
        &mut self,
        config: &Config,
        socket: UdpSocket,
        (tx, rx): (Sender<Datagram>, Receiver<Datagram>),
        handler: H,
        stats: &Arc<Stats>,
        shutdown: &Shutdown,
    ) -> Result<()> {
        // Room for every buffer that can be out at once, so that none needs
        // making again in the steady state (see `BufferPool`).
        let keep = config.queue + (config.workers + 1) * BATCH;
        let pool = BufferPool::new(config.max_datagram + 1, keep);
        let handler = Arc::new(handler);
        let logs = Arc::new(WorkerLogs::new());
        self.logs = Some(logs.clone());
        for i in 0..config.workers {
            let worker = Worker {
                socket: socket
                    .try_clone()
                    .map_err(|e| Error::io("clone the server's socket", e))?,
                queue: rx.clone(),
                pool: pool.clone(),
                stats: stats.clone(),
                handler: handler.clone(),
                logs: logs.clone(),
            };
            self.workers
                .push(spawn(&format!("worker-{i}"), move || worker.run())?);
        }
        let receiver = ReceiverThread {
            socket,
            queue: tx,
            pool,
            stats: stats.clone(),
            shutdown: shutdown.clone(),
            limiter: config.rate_limit.map(|rate| {
                RateLimiter::new(rate, config.rate_burst.unwrap_or(rate), DEFAULT_SLOTS)
            }),
            max_datagram: config.max_datagram,
        };
        self.receiver = Some(spawn("receiver", move || receiver.run())?);
        Ok(())
    }

    /// Waits for the receiver, then for every worker, which drain what is
    /// queued once the receiver has hung up. Returns the first error that
    /// stopped a thread.
    pub(crate) fn join(&mut self) -> Option<Error> {
        let mut first = None;
        if let Some(handle) = self.receiver.take() {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first = Some(e),
                Err(_) => first = Some(Error::thread_panicked("receiver")),
            }
        }
        for (i, handle) in self.workers.drain(..).enumerate() {
            if handle.join().is_err() && first.is_none() {
                first = Some(Error::thread_panicked(&format!("worker-{i}")));
            }
        }
        if let Some(logs) = self.logs.take() {
            logs.flush();
        }
        first
    }
}

/// Starts a named thread.
pub(crate) fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| Error::spawn(name, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_shown_as_v4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:46736".parse().unwrap();
        assert_eq!(shown(mapped).to_string(), "127.0.0.1:46736");
        let v6: SocketAddr = "[::1]:7".parse().unwrap();
        assert_eq!(shown(v6), v6);
    }
}
