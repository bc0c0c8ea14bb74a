//! A worker thread: takes datagrams off the queue, asks the handler for each
//! reply, and sends the replies on its own clone of the socket.

use std::net::{SocketAddr, UdpSocket};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, TryRecvError};
use log::Level;

use super::context::{Reason, ServerContext, Warning, RECEIVED_TARGET};
use super::loopguard::Rule;
use super::policy::Idle;
use super::queue::{Datagram, Job};
use super::shown;
use crate::control::shutdown::TriggerOnDrop;
use crate::control::stats::{Count, Pending};
use crate::handler::{Answer, Handler, Request};
use crate::protocol::MAX_DATAGRAM;
use crate::sys::{Outgoing, Segmentation, Writer, BATCH};

/// How many bytes of a payload a trace line shows.
const TRACE_BYTES: usize = 64;

/// The capacity a worker's reply buffer keeps between requests: a larger
/// reply's buffer is shrunk back, so that a burst of large replies leaves
/// each worker holding this, not the largest reply.
pub(crate) const REPLY_KEEP: usize = 2048;

pub(crate) struct Worker<H> {
    /// Its index in the pool (`worker-{id}`), which the pool's policy
    /// knows it by.
    id: usize,
    ctx: Arc<ServerContext>,
    /// This worker's own: no other thread touches it.
    handler: H,
    socket: UdpSocket,
    queue: Receiver<Job>,
    idle: Arc<Idle>,
    /// Whether it was woken to look for work and has not yet found any.
    searching: bool,
    /// Looks left before it sleeps.
    looks: u32,
    /// The datagrams taken at once: one, unless the pool's policy says
    /// more (see [`Idle::take`]).
    batch: Vec<Datagram>,
    replies: Vec<Vec<u8>>,
    outcomes: Vec<Outcome>,
    writer: Writer,
}

/// What became of one datagram, before its reply is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Send,
    Declined,
    Failed,
    Loop,
    Oversize,
    Panicked,
}

impl Outcome {
    /// The fate it settles at once, and any side count beside it; none for
    /// a reply, whose fate the send decides.
    fn counts(self) -> &'static [Count] {
        match self {
            Outcome::Send => &[],
            Outcome::Declined => &[Count::Declined],
            Outcome::Failed => &[Count::HandlerFailed],
            Outcome::Loop => &[Count::DroppedLoop],
            Outcome::Oversize => &[Count::DroppedOversize],
            Outcome::Panicked => &[Count::WorkerPanics, Count::SendFailed],
        }
    }
}

impl<H: Handler> Worker<H> {
    pub(crate) fn new(
        id: usize,
        ctx: Arc<ServerContext>,
        handler: H,
        socket: UdpSocket,
        queue: Receiver<Job>,
        idle: Arc<Idle>,
        segmentation: Arc<Segmentation>,
    ) -> Worker<H> {
        Worker {
            id,
            ctx,
            handler,
            socket,
            queue,
            idle,
            searching: false,
            looks: 0,
            batch: Vec::with_capacity(BATCH),
            replies: (0..BATCH).map(|_| Vec::new()).collect(),
            outcomes: Vec::with_capacity(BATCH),
            writer: Writer::new(BATCH, segmentation),
        }
    }

    /// Serves until the queue is empty and the receiver has hung up.
    pub(crate) fn run(mut self) {
        // A panic in the handler is caught per request, so a worker never
        // dies of one; if one ever escapes, the server stops in order
        // rather than run on with a pool one worker short.
        let _stop = TriggerOnDrop::if_panicking(self.ctx.shutdown.clone());
        while let Some(job) = self.next_job() {
            self.take(job);
            self.serve();
            self.recycle();
        }
    }

    /// The next job, or `None` once the queue is empty and closed; sleeps
    /// while there is none, as the pool's policy says.
    fn next_job(&mut self) -> Option<Job> {
        loop {
            let taken = match self.queue.try_recv() {
                Err(TryRecvError::Empty) => self.wait(),
                taken => taken,
            };
            match taken {
                Ok(job) => {
                    self.looks = 0;
                    let searching = std::mem::take(&mut self.searching);
                    self.idle.found(searching, || self.queue.len());
                    return Some(job);
                }
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
        }
    }

    /// Waits for a job: one of the looks left after a batch, which yields
    /// the CPU and finds nothing, or a sleep.
    fn wait(&mut self) -> Result<Job, TryRecvError> {
        if self.looks == 0 {
            return self.sleep();
        }
        self.looks -= 1;
        thread::yield_now();
        Err(TryRecvError::Empty)
    }

    /// Sleeps until woken to search, unless a last look finds a job.
    fn sleep(&mut self) -> Result<Job, TryRecvError> {
        let queue = &self.queue;
        let (found, searching) =
            self.idle
                .sleep(self.id, self.searching, || match queue.try_recv() {
                    Err(TryRecvError::Empty) => None,
                    found => Some(found),
                });
        self.searching = searching;
        found.unwrap_or(Err(TryRecvError::Empty))
    }

    /// Puts `first` in the batch, and as many more queued jobs as the
    /// pool's policy says; a probe is answered on the spot.
    fn take(&mut self, first: Job) {
        let more = self.idle.take(self.queue.len()) - 1;
        let queued = std::iter::from_fn(|| self.queue.try_recv().ok()).take(more);
        for job in std::iter::once(first).chain(queued) {
            match job {
                Job::Datagram(d) => self.batch.push(d),
                Job::Probe => self.ctx.probe.answer(),
            }
        }
    }

    /// Answers the batch, sends its replies and counts each fate.
    fn serve(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let served = panic::catch_unwind(AssertUnwindSafe(|| self.settle()));
        let pending = served.unwrap_or_else(|_| {
            // A bug outside the handler; nothing was counted yet, so the
            // batch is counted once, here, and the worker goes on.
            let n = self.batch.len() as u64;
            log::error!("worker recovered from a panic; {n} datagrams not answered");
            let mut pending = Pending::default();
            pending.add(Count::WorkerPanics, 1);
            pending.add(Count::SendFailed, n);
            pending
        });
        self.ctx.stats.workers().add_pending(&pending);
        for reply in &mut self.replies[..self.batch.len()] {
            reply.shrink_to(REPLY_KEEP);
        }
    }

    /// Hands the batch's buffers back, and takes the looks the pool's
    /// policy allows after it.
    fn recycle(&mut self) {
        if !self.searching {
            self.looks = self.idle.looks(self.batch.len());
            self.searching = self.looks > 0;
        }
        for d in self.batch.drain(..) {
            self.ctx.pool.give(d.buf);
        }
    }

    /// Asks the handler for each reply, sends those there are in one call,
    /// and says what to count.
    fn settle(&mut self) -> Pending {
        let mut pending = Pending::default();
        self.outcomes.clear();
        for i in 0..self.batch.len() {
            let outcome = self.answer(i);
            for &count in outcome.counts() {
                pending.add(count, 1);
            }
            self.outcomes.push(outcome);
        }
        let outgoing = self
            .batch
            .iter()
            .zip(&self.replies)
            .zip(&self.outcomes)
            .filter(|(_, outcome)| **outcome == Outcome::Send)
            .map(|((d, reply), _)| Outgoing {
                payload: reply,
                peer: d.peer,
                local: d.local,
            });
        let (warnings, mut failed) = (&self.ctx.warnings, 0);
        let sent = self.writer.write(&self.socket, outgoing, |_, e| {
            failed += 1;
            warnings.log(
                Warning::SendFailed,
                Level::Warn,
                format_args!("cannot send a reply: {e}"),
            );
        });
        pending.add(Count::Replied, sent as u64);
        pending.add(Count::SendFailed, failed);
        pending
    }

    /// Asks the handler for the reply to datagram `i` of the batch,
    /// catching a panic.
    fn answer(&mut self, i: usize) -> Outcome {
        let d = &self.batch[i];
        self.log_received(d);
        let reply = &mut self.replies[i];
        reply.clear();
        let local = SocketAddr::new(
            d.local.unwrap_or_else(|| self.ctx.local.ip()),
            self.ctx.local.port(),
        );
        let request = Request::new(&d.buf, shown(d.peer), shown(local));
        let guarded = self.ctx.loop_guard.is_some();
        let handler = &mut self.handler;
        let handled = panic::catch_unwind(AssertUnwindSafe(|| {
            let _in_handler = self.ctx.busy.enter(self.id);
            // The handler's own loop rule: a reply of this service, most
            // likely another instance's, aimed here by a forged source.
            if guarded && handler.is_reply(request.payload) {
                return None;
            }
            Some(handler.respond(&request, reply))
        }));
        let outcome = match handled {
            Ok(None) => Outcome::Loop,
            Ok(Some(Answer::Reply)) if reply.len() > MAX_DATAGRAM => Outcome::Oversize,
            Ok(Some(Answer::Reply)) => Outcome::Send,
            Ok(Some(Answer::Decline)) => Outcome::Declined,
            Ok(Some(Answer::Fail)) => Outcome::Failed,
            Err(_) => Outcome::Panicked,
        };
        self.warn(outcome, d.peer, &self.replies[i]);
        outcome
    }

    /// The warning an outcome gets, if any, throttled by kind.
    fn warn(&self, outcome: Outcome, peer: SocketAddr, reply: &[u8]) {
        let (peer, reply_len) = (shown(peer), reply.len());
        let w = &self.ctx.warnings;
        match outcome {
            Outcome::Send | Outcome::Declined => {}
            Outcome::Loop => w.log(
                Warning::Loop,
                Level::Warn,
                format_args!("loop guard: no reply to {peer}: {}", Rule::Reply),
            ),
            Outcome::Oversize => w.log(
                Warning::ReplyOversize,
                Level::Warn,
                format_args!(
                    "dropped the reply to {peer}: {reply_len} bytes is over the UDP limit"
                ),
            ),
            Outcome::Failed => w.log(
                Warning::HandlerFailed,
                Level::Warn,
                format_args!("handler failed on a datagram from {peer}{}", Reason(reply)),
            ),
            Outcome::Panicked => w.log(
                Warning::HandlerPanic,
                Level::Error,
                format_args!("handler panicked on a datagram from {peer}"),
            ),
        }
    }

    fn log_received(&self, d: &Datagram) {
        if !log::log_enabled!(target: RECEIVED_TARGET, Level::Info)
            || self.ctx.warnings.admit_received(1) == 0
        {
            return;
        }
        log::info!(target: RECEIVED_TARGET, "Received from {}.", shown(d.peer));
        if log::log_enabled!(Level::Trace) {
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
