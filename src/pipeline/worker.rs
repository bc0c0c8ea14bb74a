//! A worker thread: takes datagrams off the queue, asks the handler for each
//! reply, and sends the replies on its own clone of the socket.

use std::net::UdpSocket;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, TryRecvError};

use super::buffer::BufferPool;
use super::wait::WaitPolicy;
use super::{shown, Datagram, BATCH};
use crate::control::stats::{Count, Stats};
use crate::control::throttle::Throttle;
use crate::handler::Handler;
use crate::protocol::MAX_DATAGRAM;
use crate::sys::{Outgoing, Writer};

/// How many `Received from` lines all workers together log per second.
pub(crate) const RECEIVED_LINES_PER_SECOND: u64 = 100;

/// The log target of the `Received from` lines, so that a logger can keep
/// them apart from everything else (a service's journal may want the rest
/// without one line per datagram).
pub const RECEIVED_TARGET: &str = "udp_greeter::received";

/// How many bytes of a payload a trace line shows.
const TRACE_BYTES: usize = 64;

/// Throttles shared by every worker of one server.
#[derive(Debug)]
pub(crate) struct WorkerLogs {
    pub received: Throttle,
    pub send_error: Throttle,
    pub panic: Throttle,
    pub oversize: Throttle,
}

impl WorkerLogs {
    pub(crate) fn new() -> WorkerLogs {
        WorkerLogs {
            received: Throttle::new(RECEIVED_LINES_PER_SECOND),
            send_error: Throttle::new(1),
            panic: Throttle::new(1),
            oversize: Throttle::new(1),
        }
    }

    /// Reports what was held back and not yet reported, at shutdown.
    pub(crate) fn flush(&self) {
        let n = self.received.take_held_back();
        if n > 0 {
            log::info!(target: RECEIVED_TARGET, "{n} more `Received from` lines not shown");
        }
        for (what, t) in [
            ("send errors", &self.send_error),
            ("handler panics", &self.panic),
            ("oversize replies", &self.oversize),
        ] {
            let n = t.take_held_back();
            if n > 0 {
                log::warn!("{n} more {what} not shown");
            }
        }
    }
}

pub(crate) struct Worker<H> {
    pub socket: UdpSocket,
    pub queue: Receiver<Datagram>,
    pub pool: BufferPool,
    pub stats: Arc<Stats>,
    pub handler: Arc<H>,
    pub logs: Arc<WorkerLogs>,
}

/// What became of one datagram within a batch, before the batch is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Send,
    Oversize,
    Panicked,
}

impl<H: Handler> Worker<H> {
    /// Serves until the queue is empty and the receiver has hung up.
    pub(crate) fn run(self) {
        let mut batch: Vec<Datagram> = Vec::with_capacity(BATCH);
        let mut replies: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::new()).collect();
        let mut fates: Vec<Outcome> = Vec::with_capacity(BATCH);
        let mut writer = Writer::new(BATCH);
        let mut wait = WaitPolicy::new();
        while let Some(first) = self.next(&mut wait) {
            batch.push(first);
            // Take what else is already queued, without waiting for more: a
            // lone request is answered at once.
            while batch.len() < BATCH {
                match self.queue.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
            wait.record(batch.len());
            let served = panic::catch_unwind(AssertUnwindSafe(|| {
                self.serve(&batch, &mut replies, &mut fates, &mut writer)
            }));
            if served.is_err() {
                // A bug outside the handler; the batch was not counted yet,
                // so it is counted once, here, and the worker goes on.
                let tally = self.stats.workers();
                tally.add(Count::WorkerPanics, 1);
                tally.add(Count::SendErrors, batch.len() as u64);
                log::error!(
                    "worker recovered from a panic; {} datagrams not answered",
                    batch.len()
                );
            }
            for d in batch.drain(..) {
                self.pool.give(d.buf);
            }
        }
    }

    /// The next datagram, or `None` once the queue is empty and the
    /// receiver has hung up. Right after a batch it looks without sleeping,
    /// yielding the CPU between looks, as long as the wait policy says that
    /// is the cheaper wait; otherwise it sleeps until one comes.
    fn next(&self, wait: &mut WaitPolicy) -> Option<Datagram> {
        while wait.awake() {
            match self.queue.try_recv() {
                Ok(d) => return Some(d),
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(TryRecvError::Disconnected) => return None,
            }
        }
        self.queue.recv().ok()
    }

    /// Answers one batch and counts the fate of each of its datagrams.
    fn serve(
        &self,
        batch: &[Datagram],
        replies: &mut [Vec<u8>],
        fates: &mut Vec<Outcome>,
        writer: &mut Writer,
    ) {
        self.log_received(batch);
        fates.clear();
        let (mut oversize, mut panicked) = (0, 0);
        for (d, reply) in batch.iter().zip(replies.iter_mut()) {
            reply.clear();
            let handled =
                panic::catch_unwind(AssertUnwindSafe(|| self.handler.respond(&d.buf, reply)));
            let fate = match handled {
                Ok(()) if reply.len() <= MAX_DATAGRAM => Outcome::Send,
                Ok(()) => {
                    oversize += 1;
                    let a = self.logs.oversize.admit();
                    if a.admitted {
                        log::warn!(
                            "dropped the reply to {}: {} bytes is over the UDP limit{}",
                            shown(d.peer),
                            reply.len(),
                            a.more()
                        );
                    }
                    Outcome::Oversize
                }
                Err(_) => {
                    panicked += 1;
                    let a = self.logs.panic.admit();
                    if a.admitted {
                        log::error!(
                            "handler panicked on a datagram from {}{}",
                            shown(d.peer),
                            a.more()
                        );
                    }
                    Outcome::Panicked
                }
            };
            fates.push(fate);
        }
        let outgoing = batch
            .iter()
            .zip(replies.iter())
            .zip(fates.iter())
            .filter(|(_, fate)| **fate == Outcome::Send)
            .map(|((d, reply), _)| Outgoing {
                payload: reply,
                peer: d.peer,
                local: d.local,
            });
        let mut failed = 0;
        let sent = writer.write(&self.socket, outgoing, |_, e| {
            failed += 1;
            let a = self.logs.send_error.admit();
            if a.admitted {
                log::warn!("cannot send a reply: {e}{}", a.more());
            }
        });
        let tally = self.stats.workers();
        tally.add(Count::Replied, sent as u64);
        tally.add(Count::SendErrors, failed + panicked);
        tally.add(Count::DroppedOversize, oversize);
        tally.add(Count::WorkerPanics, panicked);
    }

    fn log_received(&self, batch: &[Datagram]) {
        if !log::log_enabled!(target: RECEIVED_TARGET, log::Level::Info) {
            return;
        }
        for d in batch {
            let a = self.logs.received.admit();
            if a.held_back > 0 {
                log::info!(
                    target: RECEIVED_TARGET,
                    "{} more `Received from` lines not shown",
                    a.held_back
                );
            }
            if !a.admitted {
                continue;
            }
            log::info!(target: RECEIVED_TARGET, "Received from {}.", shown(d.peer));
            if log::log_enabled!(log::Level::Trace) {
                // Escaped, so a payload can neither forge log lines nor drive
                // the terminal that shows them.
                let bytes = &d.buf[..d.buf.len().min(TRACE_BYTES)];
                let cut = if d.buf.len() > TRACE_BYTES { "..." } else { "" };
                log::trace!(
                    "{} bytes from {}: \"{}\"{cut}",
                    d.buf.len(),
                    shown(d.peer),
                    bytes.escape_ascii()
                );
            }
        }
    }
}
