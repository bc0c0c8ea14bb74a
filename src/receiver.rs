//! The receiver thread: reads datagrams, settles those it will not queue,
//! and hands the rest to the workers without ever blocking on them.

use std::mem;
use std::net::UdpSocket;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Sender, TrySendError};

use crate::buffer::{BufferPool, Datagram};
use crate::error::{Error, Result};
use crate::ratelimit::RateLimiter;
use crate::shutdown::Shutdown;
use crate::spin::{Spin, LONE_LOOKS};
use crate::stats::Stats;
use crate::throttle::Throttle;
use crate::transport::{self, Meta, Reader};

/// How many datagrams one system call may read, and a worker may take at once.
pub(crate) const BATCH: usize = 32;

/// How many warnings of one kind are logged per second.
const WARNINGS_PER_SECOND: u64 = 1;

pub(crate) struct Receiver {
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
}

impl Receiver {
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
        };
        // The socket's read timeout bounds each wait, so the flag is seen
        // within one poll interval even when no traffic arrives.
        let mut spin = Spin::with_lone_looks(LONE_LOOKS);
        while !self.shutdown.is_triggered() {
            // Right after a read, look again without sleeping (yielding the
            // CPU between looks) as long as the policy in `spin` says that
            // is cheaper than a sleep and a wake-up; otherwise sleep in the
            // kernel until a datagram or the timeout comes.
            let awake = spin.awake();
            let read = if awake {
                reader.try_read(&self.socket, &mut slots, &mut metas)
            } else {
                reader.read(&self.socket, &mut slots, &mut metas)
            };
            match read {
                Ok(()) => {
                    spin.record(metas.len());
                    self.dispatch(&mut slots, &metas, &warnings)?
                }
                Err(e) if transport::is_timeout(&e) => {
                    if awake {
                        thread::yield_now();
                    }
                }
                Err(e) if transport::is_transient(&e) => {
                    let a = warnings.receive_error.admit();
                    if a.admitted {
                        log::warn!("receive error, carrying on: {e}{}", more(a.held_back));
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
        self.stats.received(metas.len() as u64);
        let now = self.limiter.as_ref().map(|_| Instant::now());
        let (mut oversize, mut limited, mut full, mut unanswerable) = (0, 0, 0, 0);
        let mut result = Ok(());
        for (slot, meta) in slots.iter_mut().zip(metas) {
            let Some(peer) = meta.peer else {
                // No address to answer: only a non-IP socket could say so.
                unanswerable += 1;
                continue;
            };
            if meta.truncated || meta.len > self.max_datagram {
                oversize += 1;
                let a = warnings.oversize.admit();
                if a.admitted {
                    log::warn!(
                        "dropped a datagram from {peer} over {} bytes{}",
                        self.max_datagram,
                        more(a.held_back)
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
                            peer.ip(),
                            more(a.held_back)
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
                            "queue full: dropped a datagram from {peer}{}",
                            more(a.held_back)
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
        self.stats.dropped_truncated(oversize);
        self.stats.dropped_rate_limited(limited);
        self.stats.dropped_queue_full(full);
        self.stats.send_errors(unanswerable);
        result
    }
}

/// The tail of a rate-limited warning: how many like it were not shown.
pub(crate) fn more(held_back: u64) -> String {
    if held_back == 0 {
        String::new()
    } else {
        format!(" ({held_back} more like this not shown)")
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::error::Error as _;
    use std::os::fd::AsRawFd;

    #[test]
    fn fatal_error() {
        // A descriptor that is no longer a socket: every read fails with
        // ENOTSOCK, which no retry mends, so the receiver must stop, say
        // why, and trigger the shutdown the workers and join wait on.
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: both descriptors are open and owned here; dup2 only makes
        // the socket's number refer to /dev/null.
        assert!(unsafe { libc::dup2(null.as_raw_fd(), socket.as_raw_fd()) } >= 0);
        let (queue, _rx) = crossbeam_channel::bounded(4);
        let shutdown = Shutdown::new();
        let stats = Arc::new(Stats::default());
        let receiver = Receiver {
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
        let io = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::ENOTSOCK));
        assert_eq!(stats.snapshot().received, 0);
    }
}
