//! The datagram's path, in data-flow order: the receiver reads datagrams
//! into recycled buffers and queues them; the workers answer each on their
//! own clone of the socket and hand the buffers back.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::Receiver;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::sys::{self, Segmentation};

pub(crate) mod buffer;
pub(crate) mod context;
pub(crate) mod loopguard;
mod policy;
mod queue;
pub(crate) mod ratelimit;
mod receiver;
mod worker;

use context::{ServerContext, Warnings};
use policy::Idle;
pub(crate) use queue::Job;
use queue::Queue;
use ratelimit::{RateLimiter, DEFAULT_SLOTS};
use receiver::ReceiverThread;
use worker::Worker;

/// A peer's address as logs and handlers show it: an IPv4 client of a
/// dual-stack socket in its IPv4 form (`127.0.0.1:46736`, not
/// `[::ffff:127.0.0.1]:46736`).
pub(crate) fn shown(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// The pipeline's threads, once started.
#[derive(Debug)]
pub(crate) struct Pipeline {
    receiver: Option<JoinHandle<Result<()>>>,
    workers: Vec<JoinHandle<()>>,
    warnings: Arc<Warnings>,
    /// The receiver's wake, for the watchdog's nudge.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    wake: Arc<sys::Wake>,
    /// The workers' end of the queue, kept only to read its depth: a
    /// receiver of the queue never keeps it open, so the workers still see
    /// it close when the receiver thread ends.
    #[cfg(feature = "metrics")]
    queue: Receiver<Job>,
}

impl Pipeline {
    /// Makes the queue, then starts a worker for each of `handlers` and
    /// the receiver on `socket`, sharing `ctx`.
    ///
    /// If a thread cannot start, those already started are stopped and
    /// joined before the error is returned.
    pub(crate) fn start<H: Handler>(
        config: &Config,
        socket: UdpSocket,
        ctx: Arc<ServerContext>,
        handlers: Vec<H>,
    ) -> Result<Pipeline> {
        // The receiver sleeps on its socket and a wake of its own, which the
        // shutdown wakes: the socket is never shut, so a copy of it held by
        // a service manager or the next process reads on.
        let wake = sys::Wake::new().map_err(|e| Error::io("make the receiver's wake", e))?;
        let wake = Arc::new(wake);
        let quick = handlers.iter().all(Handler::is_quick);
        let (tx, rx, idle) = queue::queue(config.queue, handlers.len(), quick);
        let mut pipeline = Pipeline {
            receiver: None,
            workers: Vec::with_capacity(handlers.len()),
            warnings: ctx.warnings.clone(),
            wake: wake.clone(),
            #[cfg(feature = "metrics")]
            queue: rx.clone(),
        };
        if let Err(e) = pipeline.start_workers(&socket, &ctx, &rx, &idle, handlers) {
            // The sender goes with this frame: the workers started see the
            // queue close, and stop.
            drop(tx);
            pipeline.join();
            return Err(e);
        }
        let waker = wake.clone();
        ctx.shutdown.on_trigger(move || waker.wake());
        if let Err(e) = pipeline.start_receiver(config, socket, &ctx, wake, tx) {
            ctx.shutdown.trigger();
            pipeline.join();
            return Err(e);
        }
        Ok(pipeline)
    }

    /// Starts the thread `receiver` on `socket`, feeding `queue`.
    fn start_receiver(
        &mut self,
        config: &Config,
        socket: UdpSocket,
        ctx: &Arc<ServerContext>,
        wake: Arc<sys::Wake>,
        queue: Queue,
    ) -> Result<()> {
        let limiter = config
            .rate_limit
            .map(|rate| RateLimiter::new(rate, config.rate_burst.unwrap_or(rate), DEFAULT_SLOTS));
        let receiver =
            ReceiverThread::new(ctx.clone(), socket, wake, queue, config.queue_full, limiter);
        self.receiver = Some(spawn("receiver", move || receiver.run())?);
        Ok(())
    }

    /// Starts `worker-0` ... on clones of `socket`, one per handler.
    fn start_workers<H: Handler>(
        &mut self,
        socket: &UdpSocket,
        ctx: &Arc<ServerContext>,
        queue: &Receiver<Job>,
        idle: &Arc<Idle>,
        handlers: Vec<H>,
    ) -> Result<()> {
        // What the kernel can segment is learned once, by the first send,
        // for every clone of the socket.
        let segmentation = Arc::new(Segmentation::default());
        for (i, handler) in handlers.into_iter().enumerate() {
            let clone = socket
                .try_clone()
                .map_err(|e| Error::io("clone the server's socket", e))?;
            let worker = Worker::new(
                i,
                ctx.clone(),
                handler,
                clone,
                queue.clone(),
                idle.clone(),
                segmentation.clone(),
            );
            self.workers
                .push(spawn(&format!("worker-{i}"), move || worker.run())?);
        }
        Ok(())
    }

    /// A probe of how many datagrams wait for a worker.
    #[cfg(feature = "metrics")]
    pub(crate) fn depth(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let queue = self.queue.clone();
        move || queue.len()
    }

    /// What wakes the receiver from its sleep to look at a probe asked for.
    #[cfg(target_os = "linux")]
    pub(crate) fn nudge(&self) -> impl Fn() + Send + 'static {
        let wake = self.wake.clone();
        move || wake.nudge()
    }

    /// Waits for the receiver, then for every worker, which drain what is
    /// queued once the receiver has hung up; then reports the log lines
    /// held back. Returns the first error that stopped a thread.
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
        self.warnings.flush();
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
