//! The receiver thread: reads datagrams, settles those it will not queue,
//! and hands the rest to the workers without ever blocking on them.

use std::mem;
use std::net::UdpSocket;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};

use super::buffer::BufferPool;
use super::ratelimit::RateLimiter;
use super::wait::{WaitPolicy, LONE_LOOKS};
use super::{shown, Datagram, BATCH};
use crate::control::shutdown::Shutdown;
use crate::control::stats::{Count, Stats};
use crate::control::throttle::Throttle;
use crate::error::{Error, Result};
use crate::sys::{self, Meta, Reader};

/// How many warnings of one kind are logged per second.
const WARNINGS_PER_SECOND: u64 = 1;

/// The receiver thread's state: named apart from the channel's
/// `Receiver`, which is the workers' end of the queue.
pub(crate) struct ReceiverThread {
    pub socket: UdpSocket,
    pub queue: Sender<Datagram>,
    pub pool: BufferPool,
    pub stats: Arc<Stats>,
    pub shutdown: Shutdown,
    pub limiter: Option<RateLimiter>,
    pub max_datagram: usize,
}

/// Rate-limited warnings, one throttle per kind so a flood of one kind does
/// not hide another.
struct Warnings {
    oversize: Throttle,
    rate_limited: Throttle,
    queue_full: Throttle,
    receive_error: Throttle,
    control_truncated: Throttle,
}

impl ReceiverThread {
    /// Reads until shutdown is triggered or the socket fails for good.
    ///
    /// Returning drops the queue's sender, which tells the workers to finish
    /// what is queued and stop.
    pub(crate) fn run(mut self) -> Result<()> {
        let mut reader = Reader::new(BATCH);
        let mut slots: Vec<Vec<u8>> = (0..BATCH).map(|_| self.pool.take()).collect();
        let mut metas: Vec<Meta> = Vec::with_capacity(BATCH);
        let warnings = Warnings {
            oversize: Throttle::new(WARNINGS_PER_SECOND),
            rate_limited: Throttle::new(WARNINGS_PER_SECOND),
            queue_full: Throttle::new(WARNINGS_PER_SECOND),
            receive_error: Throttle::new(WARNINGS_PER_SECOND),
            control_truncated: Throttle::new(WARNINGS_PER_SECOND),
        };
        // The socket's read timeout bounds each wait, so the flag is seen
        // within one poll interval even when no traffic arrives.
        let mut wait = WaitPolicy::with_lone_looks(LONE_LOOKS);
        while !self.shutdown.is_triggered() {
            // Right after a read, look again without sleeping (yielding the
            // CPU between looks) as long as the wait policy says that is
            // cheaper than a sleep and a wake-up; otherwise sleep in the
            // kernel until a datagram or the timeout comes.
            let awake = wait.awake();
            let read = if awake {
                reader.try_read(&self.socket, &mut slots, &mut metas)
            } else {
                reader.read(&self.socket, &mut slots, &mut metas)
            };
            match read {
                Ok(()) => {
                    wait.record(metas.len());
                    self.dispatch(&mut slots, &metas, &warnings)?
                }
                Err(e) if sys::is_timeout(&e) => {
                    if awake {
                        thread::yield_now();
                    }
                }
                Err(e) if sys::is_transient(&e) => {
                    let a = warnings.receive_error.admit();
                    if a.admitted {
                        log::warn!("receive error, carrying on: {e}{}", a.more());
                    }
                }
                Err(e) => {
                    log::error!("receive failed, stopping: {e}");
                    self.shutdown.trigger();
                    return Err(Error::receive(e));
                }
            }
        }
        Ok(())
    }

    /// Settles or queues each datagram of one read.
    fn dispatch(
        &mut self,
        slots: &mut [Vec<u8>],
        metas: &[Meta],
        warnings: &Warnings,
    ) -> Result<()> {
        let tally = self.stats.receiver();
        tally.add(Count::Received, metas.len() as u64);
        let now = self.limiter.as_ref().map(|_| Instant::now());
        let (mut oversize, mut limited, mut full, mut unanswerable) = (0, 0, 0, 0);
        let mut cut = 0;
        let mut result = Ok(());
        for (slot, meta) in slots.iter_mut().zip(metas) {
            let Some(peer) = meta.peer else {
                // No address to answer: only a non-IP socket could say so.
                unanswerable += 1;
                continue;
            };
            if meta.control_truncated {
                // Still answered, but maybe from another address than the
                // one it reached: the control buffer is sized for every
                // message the socket asks for, so this should never happen.
                cut += 1;
                let a = warnings.control_truncated.admit();
                if a.admitted {
                    log::warn!(
                        "the kernel cut the control messages of a datagram from {}{}",
                        shown(peer),
                        a.more()
                    );
                }
            }
            if meta.truncated || meta.len > self.max_datagram {
                oversize += 1;
                let a = warnings.oversize.admit();
                if a.admitted {
                    log::warn!(
                        "dropped a datagram from {} over {} bytes{}",
                        shown(peer),
                        self.max_datagram,
                        a.more()
                    );
                }
                continue;
            }
            if let (Some(limiter), Some(now)) = (self.limiter.as_mut(), now) {
                if !limiter.check_at(peer.ip(), now) {
                    limited += 1;
                    let a = warnings.rate_limited.admit();
                    if a.admitted {
                        log::warn!(
                            "rate limit: dropping datagrams from {}{}",
                            shown(peer).ip(),
                            a.more()
                        );
                    }
                    continue;
                }
            }
            let buf = mem::replace(slot, self.pool.take());
            let datagram = Datagram {
                buf,
                peer,
                local: meta.local,
            };
            match self.queue.try_send(datagram) {
                Ok(()) => {}
                Err(TrySendError::Full(d)) => {
                    full += 1;
                    self.pool.give(mem::replace(slot, d.buf));
                    let a = warnings.queue_full.admit();
                    if a.admitted {
                        log::warn!(
                            "queue full: dropped a datagram from {}{}",
                            shown(peer),
                            a.more()
                        );
                    }
                }
                Err(TrySendError::Disconnected(d)) => {
                    // Every worker is gone; nothing can be answered any more.
                    full += 1;
                    self.pool.give(mem::replace(slot, d.buf));
                    if result.is_ok() {
                        log::error!("no worker left to answer, stopping");
                        self.shutdown.trigger();
                        result = Err(Error::thread_panicked("worker"));
                    }
                }
            }
        }
        tally.add(Count::DroppedOversize, oversize);
        tally.add(Count::DroppedRateLimited, limited);
        tally.add(Count::DroppedQueueFull, full);
        tally.add(Count::SendErrors, unanswerable);
        tally.add(Count::ControlTruncated, cut);
        result
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

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
        let receiver = ReceiverThread {
            socket,
            queue,
            pool: BufferPool::new(64, 8),
            stats: Arc::clone(&stats),
            shutdown: shutdown.clone(),
            limiter: None,
            max_datagram: 63,
        };
        let err = receiver.run().unwrap_err();
        assert!(shutdown.is_triggered());
        assert!(err.to_string().starts_with("receiving stopped"), "{err}");
        let io = err.io_error().unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::ENOTSOCK));
        assert_eq!(stats.snapshot().received, 0);
    }
}
