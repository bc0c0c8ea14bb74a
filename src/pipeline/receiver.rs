//! The receiver thread: reads datagrams, settles those it will not queue,
//! and hands the rest to the workers, never blocking on them unless told
//! to wait for room in the queue ([`QueueFull::Wait`]).

use std::io;
use std::mem;
use std::net::UdpSocket;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use log::Level;

use super::context::{ServerContext, Warning};
use super::queue::{Datagram, Job, Queue};
use super::ratelimit::RateLimiter;
use super::shown;
use crate::config::QueueFull;
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
    queue: Queue,
    /// What to do with a datagram the queue has no room for.
    queue_full: QueueFull,
    limiter: Option<RateLimiter>,
}

impl ReceiverThread {
    pub(crate) fn new(
        ctx: Arc<ServerContext>,
        socket: UdpSocket,
        wake: Arc<Wake>,
        queue: Queue,
        queue_full: QueueFull,
        limiter: Option<RateLimiter>,
    ) -> ReceiverThread {
        ReceiverThread {
            ctx,
            socket,
            wake,
            queue,
            queue_full,
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
        let mut looks = 0;
        // A read sleeps until a datagram comes or the shutdown wakes it.
        while !self.ctx.shutdown.is_triggered() {
            if self.ctx.probe.is_requested() {
                self.send_probe();
            }
            match self.read(&mut reader, &mut slots, &mut metas, &mut looks) {
                Ok(Readiness::Socket) => {
                    looks = self.queue.looks_after_read(metas.len());
                    self.dispatch(&mut slots, &metas);
                }
                Ok(Readiness::Woken) => break,
                Ok(Readiness::Nudged) => {}
                // Elsewhere than Linux a read ends at the socket's read
                // timeout, so that the loop looks at the shutdown.
                Err(e) if sys::is_timeout(&e) => {}
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

    /// Reads what the socket holds: with `looks` left, a look that yields
    /// the CPU if it finds nothing; else a sleep until something comes or
    /// the receiver is woken.
    fn read(
        &self,
        reader: &mut Reader,
        slots: &mut [Vec<u8>],
        metas: &mut Vec<Meta>,
        looks: &mut u32,
    ) -> io::Result<Readiness> {
        if *looks == 0 {
            return reader.read_or_wake(&self.socket, slots, metas, &self.wake);
        }
        *looks -= 1;
        let read = reader.try_read(&self.socket, slots, metas);
        if matches!(&read, Err(e) if sys::is_timeout(e)) {
            thread::yield_now();
        }
        read.map(|()| Readiness::Socket)
    }

    /// Queues the watchdog's probe; while the queue is full it stays asked
    /// for, and goes once a worker has made room.
    fn send_probe(&self) {
        if !self.ctx.probe.take_request() {
            return;
        }
        if self.queue.try_send(Job::Probe).is_err() {
            self.ctx.probe.request();
        } else {
            self.queue.notify();
        }
    }

    /// Settles or queues each datagram of one read, and counts them.
    fn dispatch(&mut self, slots: &mut [Vec<u8>], metas: &[Meta]) {
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
        self.queue.notify();
    }

    /// The fate of the datagram `meta` describes if the receiver drops it,
    /// or `None` to queue it.
    fn settle(
        &mut self,
        meta: &Meta,
        now: Option<Instant>,
        pending: &mut Pending,
    ) -> Option<Count> {
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
                    shown(meta.peer)
                ),
            );
        }
        // The loop guard before the rate limit: a refused turn of a loop
        // spends no token of the source it claims.
        self.oversize(meta)
            .or_else(|| self.looping(meta))
            .or_else(|| self.limited(meta, now))
    }

    fn oversize(&self, meta: &Meta) -> Option<Count> {
        if !meta.truncated && meta.len <= self.ctx.max_datagram {
            return None;
        }
        self.ctx.warnings.log(
            Warning::Oversize,
            Level::Warn,
            format_args!(
                "dropped a datagram from {} over {} bytes",
                shown(meta.peer),
                self.ctx.max_datagram
            ),
        );
        Some(Count::DroppedOversize)
    }

    fn looping(&self, meta: &Meta) -> Option<Count> {
        let guard = self.ctx.loop_guard.as_ref()?;
        let rule = guard.check(meta.peer, meta.local)?;
        self.ctx.warnings.log(
            Warning::Loop,
            Level::Warn,
            format_args!("loop guard: no reply to {}: {rule}", shown(meta.peer)),
        );
        Some(Count::DroppedLoop)
    }

    fn limited(&mut self, meta: &Meta, now: Option<Instant>) -> Option<Count> {
        let (limiter, now) = (self.limiter.as_mut()?, now?);
        if limiter.check_at(meta.peer.ip(), now) {
            return None;
        }
        self.ctx.warnings.log(
            Warning::RateLimited,
            Level::Warn,
            format_args!(
                "rate limit: dropping datagrams from {}",
                shown(meta.peer).ip()
            ),
        );
        Some(Count::DroppedRateLimited)
    }

    /// Hands the datagram in `slot` to the workers, refilling the slot; the
    /// fate of the datagram if no worker can take it.
    fn enqueue(&mut self, slot: &mut Vec<u8>, meta: &Meta) -> Option<Count> {
        let datagram = Datagram {
            buf: mem::replace(slot, self.ctx.pool.take()),
            peer: meta.peer,
            local: meta.local,
        };
        let job = Job::Datagram(datagram);
        let sent = match self.queue_full {
            QueueFull::Drop => self.queue.try_send(job),
            // Nothing more is read until a worker makes room: what comes
            // meanwhile waits in the socket's buffer.
            QueueFull::Wait => self.queue.send_waiting(job),
        };
        let Err(refused) = sent else {
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
        let (queue, _rx, _idle) = crate::pipeline::queue::queue(4, 1, false);
        let shutdown = Shutdown::new();
        let stats = Arc::new(Stats::default());
        let wake = Arc::new(Wake::new().unwrap());
        let ctx = context(&shutdown, &stats);
        let receiver = ReceiverThread::new(ctx, socket, wake, queue, QueueFull::Drop, None);
        let err = receiver.run().unwrap_err();
        assert!(shutdown.is_triggered());
        assert!(err.to_string().starts_with("receiving stopped"), "{err}");
        let io = err.io_error().unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::ENOTSOCK));
        assert_eq!(stats.snapshot().received, 0);
    }
}
