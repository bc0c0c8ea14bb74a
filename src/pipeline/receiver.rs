//! The receiver thread: reads datagrams, settles those it will not queue,
//! and hands the rest to the workers without ever blocking on them.

use std::mem;
use std::net::UdpSocket;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::Sender;
use log::Level;

use super::context::{ServerContext, Warning};
use super::ratelimit::RateLimiter;
use super::wait::{read_size, WaitPolicy, LONE_LOOKS};
use super::{shown, Datagram, Job};
use crate::control::shutdown::TriggerOnDrop;
use crate::control::stats::{Count, Pending};
use crate::error::{Error, Result};
use crate::sys::{self, Meta, Reader, Readiness, Wake, BATCH};

/// The receiver thread's state: named apart from the channel's
/// `Receiver`, which is the workers' end of the queue.
pub(crate) struct ReceiverThread {
    ctx: Arc<ServerContext>,
    socket: UdpSocket,
    /// What the shutdown wakes it with while it sleeps on the socket.
    wake: Arc<Wake>,
    queue: Sender<Job>,
    limiter: Option<RateLimiter>,
}

impl ReceiverThread {
    pub(crate) fn new(
        ctx: Arc<ServerContext>,
        socket: UdpSocket,
        wake: Arc<Wake>,
        queue: Sender<Job>,
        limiter: Option<RateLimiter>,
    ) -> ReceiverThread {
        ReceiverThread {
            ctx,
            socket,
            wake,
            queue,
            limiter,
        }
    }

    /// Reads until shutdown is triggered or the socket fails for good.
    ///
    /// However it ends, returning, failing or panicking, it triggers the
    /// shutdown and drops the queue's sender, which tells the workers to
    /// finish what is queued and stop: without a receiver they have
    /// nothing left to do.
    pub(crate) fn run(mut self) -> Result<()> {
        let _stop = TriggerOnDrop::always(self.ctx.shutdown.clone());
        let mut reader = Reader::new(BATCH);
        let mut slots: Vec<Vec<u8>> = (0..BATCH).map(|_| self.ctx.pool.take()).collect();
        let mut metas: Vec<Meta> = Vec::with_capacity(BATCH);
        let mut wait = WaitPolicy::with_lone_looks(LONE_LOOKS);
        // Whether the last read was a look that found nothing.
        let mut looked = false;
        // A read sleeps until a datagram comes or the shutdown wakes it.
        while !self.ctx.shutdown.is_triggered() {
            if self.ctx.probe.is_requested() {
                self.send_probe();
            }
            // Right after a read, look again without sleeping (yielding the
            // CPU between looks) as long as the wait policy says that is
            // cheaper than a sleep and a wake-up.
            let awake = wait.awake();
            let slots = &mut slots[..read_size(self.queue.len())];
            let read = if awake {
                reader
                    .try_read(&self.socket, slots, &mut metas)
                    .map(|()| Readiness::Socket)
            } else {
                reader.read_or_wake(&self.socket, slots, &mut metas, &self.wake, looked)
            };
            looked = awake && matches!(&read, Err(e) if sys::is_timeout(e));
            match read {
                Ok(Readiness::Socket) => {
                    wait.record(metas.len());
                    self.dispatch(slots, &metas)?;
                }
                Ok(Readiness::Woken) => break,
                Ok(Readiness::Nudged) => {}
                Err(e) if sys::is_timeout(&e) => {
                    if awake {
                        thread::yield_now();
                    }
                }
                Err(e) if sys::is_transient(&e) => self.ctx.warnings.log(
                    Warning::ReceiveError,
                    Level::Warn,
                    format_args!("receive error, carrying on: {e}"),
                ),
                Err(e) => {
                    log::error!("receive failed, stopping: {e}");
                    return Err(Error::receive(e));
                }
            }
        }
        Ok(())
    }

    /// Queues the watchdog's probe; while the queue is full it stays asked
    /// for, and goes once a worker has made room.
    fn send_probe(&self) {
        if !self.ctx.probe.take_request() {
            return;
        }
        if self.queue.try_send(Job::Probe).is_err() {
            self.ctx.probe.request();
        }
    }

    /// Settles or queues each datagram of one read, and counts them.
    fn dispatch(&mut self, slots: &mut [Vec<u8>], metas: &[Meta]) -> Result<()> {
        // Counted before any is handed on: a worker may count its fate at
        // once, and no snapshot may show a fate before its datagram.
        self.ctx
            .stats
            .receiver()
            .add(Count::Received, metas.len() as u64);
        let mut pending = Pending::default();
        let now = self.limiter.as_ref().map(|_| Instant::now());
        for (slot, meta) in slots.iter_mut().zip(metas) {
            let fate = match self.settle(meta, now, &mut pending) {
                Some(fate) => Some(fate),
                None => self.enqueue(slot, meta),
            };
            if let Some(fate) = fate {
                pending.add(fate, 1);
            }
        }
        self.ctx.stats.receiver().add_pending(&pending);
        Ok(())
    }

    /// The fate of the datagram `meta` describes if the receiver drops it,
    /// or `None` to queue it.
    fn settle(
        &mut self,
        meta: &Meta,
        now: Option<Instant>,
        pending: &mut Pending,
    ) -> Option<Count> {
        let peer = meta.peer;
        if meta.control_truncated {
            // Still answered, but maybe from another address than the one
            // it reached: the control buffer has room for every message
            // the socket asks for, so this should never happen.
            pending.add(Count::ControlTruncated, 1);
            self.ctx.warnings.log(
                Warning::ControlTruncated,
                Level::Warn,
                format_args!(
                    "the kernel cut the control messages of a datagram from {}",
                    shown(peer)
                ),
            );
        }
        if meta.truncated || meta.len > self.ctx.max_datagram {
            self.ctx.warnings.log(
                Warning::Oversize,
                Level::Warn,
                format_args!(
                    "dropped a datagram from {} over {} bytes",
                    shown(peer),
                    self.ctx.max_datagram
                ),
            );
            return Some(Count::DroppedOversize);
        }
        // Before the rate limit: a refused turn of a loop spends no token
        // of the source it claims.
        if let Some(rule) = self
            .ctx
            .loop_guard
            .as_ref()
            .and_then(|guard| guard.check(peer, meta.local))
        {
            self.ctx.warnings.log(
                Warning::Loop,
                Level::Warn,
                format_args!("loop guard: no reply to {}: {rule}", shown(peer)),
            );
            return Some(Count::DroppedLoop);
        }
        if let (Some(limiter), Some(now)) = (self.limiter.as_mut(), now) {
            if !limiter.check_at(peer.ip(), now) {
                self.ctx.warnings.log(
                    Warning::RateLimited,
                    Level::Warn,
                    format_args!("rate limit: dropping datagrams from {}", shown(peer).ip()),
                );
                return Some(Count::DroppedRateLimited);
            }
        }
        None
    }

    /// Hands the datagram in `slot` to the workers, refilling the slot; the
    /// fate of the datagram if no worker can take it.
    fn enqueue(&mut self, slot: &mut Vec<u8>, meta: &Meta) -> Option<Count> {
        let datagram = Datagram {
            buf: mem::replace(slot, self.ctx.pool.take()),
            peer: meta.peer,
            local: meta.local,
        };
        let Err(refused) = self.queue.try_send(Job::Datagram(datagram)) else {
            return None;
        };
        let full = refused.is_full();
        // The job refused is the datagram just sent: its buffer goes back
        // to the pool and the slot keeps the fresh one.
        if let Job::Datagram(d) = refused.into_inner() {
            if full {
                self.ctx.warnings.log(
                    Warning::QueueFull,
                    Level::Warn,
                    format_args!("queue full: dropped a datagram from {}", shown(d.peer)),
                );
            }
            // Disconnected, no worker is left: a worker that dies triggers
            // the shutdown (see `Worker::run`), so this ends with the
            // receiver's loop.
            self.ctx.pool.give(mem::replace(slot, d.buf));
        }
        Some(Count::DroppedQueueFull)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::control::shutdown::Shutdown;
    use crate::control::stats::Stats;
    use crate::pipeline::buffer::BufferPool;

    fn context(shutdown: &Shutdown, stats: &Arc<Stats>) -> Arc<ServerContext> {
        Arc::new(ServerContext {
            stats: stats.clone(),
            shutdown: shutdown.clone(),
            pool: BufferPool::new(64, 8),
            warnings: Arc::default(),
            local: "127.0.0.1:9".parse().unwrap(),
            max_datagram: 63,
            loop_guard: None,
            pace: Default::default(),
            probe: Default::default(),
            busy: Default::default(),
        })
    }

    #[test]
    fn fatal_error() {
        // A descriptor that is no longer a socket: every read fails with
        // ENOTSOCK, which no retry mends, so the receiver must stop, say
        // why, and trigger the shutdown the workers and join wait on.
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        sys::break_for_test(&socket).unwrap();
        let (queue, _rx) = crossbeam_channel::bounded(4);
        let shutdown = Shutdown::new();
        let stats = Arc::new(Stats::default());
        let wake = Arc::new(Wake::new().unwrap());
        let receiver = ReceiverThread::new(context(&shutdown, &stats), socket, wake, queue, None);
        let err = receiver.run().unwrap_err();
        assert!(shutdown.is_triggered());
        assert!(err.to_string().starts_with("receiving stopped"), "{err}");
        let io = err.io_error().unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::ENOTSOCK));
        assert_eq!(stats.snapshot().received, 0);
    }
}
