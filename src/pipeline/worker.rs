//! A worker thread: takes datagrams off the queue, asks the handler for each
//! reply, and sends the replies on its own clone of the socket.

use std::net::{SocketAddr, UdpSocket};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use log::Level;

use super::context::{Reason, ServerContext, Warning, RECEIVED_TARGET};
use super::loopguard::Rule;
use super::wait::WaitPolicy;
use super::{shown, Datagram, Job};
use crate::control::shutdown::TriggerOnDrop;
use crate::control::stats::{Count, Pending};
use crate::handler::{Answer, Handler, Request};
use crate::protocol::MAX_DATAGRAM;
use crate::sys::{Outgoing, Segmentation, Writer, BATCH};

/// How many bytes of a payload a trace line shows.
const TRACE_BYTES: usize = 64;

/// The capacity a reply buffer keeps between batches: a larger reply's
/// buffer is shrunk back, so that a burst of large replies leaves each
/// worker holding `BATCH` × this, not `BATCH` × the largest reply.
pub(crate) const REPLY_KEEP: usize = 2048;

pub(crate) struct Worker<H> {
    /// Its index in the pool: `worker-{id}`.
    id: usize,
    ctx: Arc<ServerContext>,
    /// This worker's own: no other thread touches it.
    handler: H,
    socket: UdpSocket,
    queue: Receiver<Job>,
    segmentation: Arc<Segmentation>,
}

/// What became of one datagram within a batch, before the batch is sent.
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
        segmentation: Arc<Segmentation>,
    ) -> Worker<H> {
        Worker {
            id,
            ctx,
            handler,
            socket,
            queue,
            segmentation,
        }
    }

    /// Serves until the queue is empty and the receiver has hung up.
    pub(crate) fn run(mut self) {
        // A panic is caught per batch, so a worker never dies of one; if
        // one ever escapes, the server stops in order rather than run on
        // with a pool one worker short.
        let _stop = TriggerOnDrop::if_panicking(self.ctx.shutdown.clone());
        let mut batch: Vec<Datagram> = Vec::with_capacity(BATCH);
        let mut replies: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::new()).collect();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(BATCH);
        let mut writer = Writer::new(BATCH, self.segmentation.clone());
        let mut wait = WaitPolicy::new();
        while let Some(first) = self.next(&mut wait) {
            batch.push(first);
            self.take_queued(&mut batch);
            wait.record(batch.len());
            let served = panic::catch_unwind(AssertUnwindSafe(|| {
                self.serve(&batch, &mut replies, &mut outcomes, &mut writer)
            }));
            if let Ok(handling) = served {
                self.ctx.pace.record(batch.len(), handling);
            } else {
                // A bug outside the handler; the batch was not counted yet,
                // so it is counted once, here, and the worker goes on.
                let tally = self.ctx.stats.workers();
                tally.add(Count::WorkerPanics, 1);
                tally.add(Count::SendFailed, batch.len() as u64);
                log::error!(
                    "worker recovered from a panic; {} datagrams not answered",
                    batch.len()
                );
            }
            for d in batch.drain(..) {
                self.ctx.pool.give(d.buf);
            }
            for reply in &mut replies {
                reply.shrink_to(REPLY_KEEP);
            }
        }
    }

    /// The next datagram, or `None` once the queue is empty and the
    /// receiver has hung up. Right after a batch it looks without sleeping,
    /// yielding the CPU between looks, as long as the wait policy says that
    /// is the cheaper wait; otherwise it sleeps until one comes.
    fn next(&self, wait: &mut WaitPolicy) -> Option<Datagram> {
        loop {
            let job = self.next_job(wait)?;
            if let Some(d) = self.datagram(job) {
                return Some(d);
            }
        }
    }

    fn next_job(&self, wait: &mut WaitPolicy) -> Option<Job> {
        while wait.awake() {
            match self.queue.try_recv() {
                Ok(job) => return Some(job),
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(TryRecvError::Disconnected) => return None,
            }
        }
        self.queue.recv().ok()
    }

    /// Adds to `batch` what else is already queued, up to what the pace
    /// allows, without waiting for more: a lone request is answered at once.
    fn take_queued(&self, batch: &mut Vec<Datagram>) {
        let take = self.ctx.pace.batch();
        while batch.len() < take {
            match self.queue.try_recv() {
                Ok(job) => batch.extend(self.datagram(job)),
                Err(_) => return,
            }
        }
    }

    /// The datagram a job carries; a probe is answered here, and carries none.
    fn datagram(&self, job: Job) -> Option<Datagram> {
        match job {
            Job::Datagram(d) => Some(d),
            Job::Probe => {
                self.ctx.probe.answer();
                None
            }
        }
    }

    /// Answers one batch and counts the fate of each of its datagrams;
    /// returns how long the handler took over the batch, the pace's sample,
    /// which leaves out logging and sending.
    fn serve(
        &mut self,
        batch: &[Datagram],
        replies: &mut [Vec<u8>],
        outcomes: &mut Vec<Outcome>,
        writer: &mut Writer,
    ) -> Duration {
        self.log_received(batch);
        let mut pending = Pending::default();
        outcomes.clear();
        let handling = Instant::now();
        for (d, reply) in batch.iter().zip(replies.iter_mut()) {
            let outcome = self.answer(d, reply);
            for &count in outcome.counts() {
                pending.add(count, 1);
            }
            outcomes.push(outcome);
        }
        let handling = handling.elapsed();
        let outgoing = batch
            .iter()
            .zip(replies.iter())
            .zip(outcomes.iter())
            .filter(|(_, outcome)| **outcome == Outcome::Send)
            .map(|((d, reply), _)| Outgoing {
                payload: reply,
                peer: d.peer,
                local: d.local,
            });
        let mut failed = 0;
        let sent = writer.write(&self.socket, outgoing, |_, e| {
            failed += 1;
            self.ctx.warnings.log(
                Warning::SendFailed,
                Level::Warn,
                format_args!("cannot send a reply: {e}"),
            );
        });
        pending.add(Count::Replied, sent as u64);
        pending.add(Count::SendFailed, failed);
        self.ctx.stats.workers().add_pending(&pending);
        handling
    }

    /// Asks the handler for the reply to one datagram, catching a panic.
    fn answer(&mut self, d: &Datagram, reply: &mut Vec<u8>) -> Outcome {
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
        self.warn(outcome, d.peer, reply);
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

    fn log_received(&self, batch: &[Datagram]) {
        if !log::log_enabled!(target: RECEIVED_TARGET, Level::Info) {
            return;
        }
        let admitted = self.ctx.warnings.admit_received(batch.len());
        for d in batch.iter().take(admitted) {
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
}
