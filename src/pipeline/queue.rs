//! What travels from the receiver to the workers, and the receiver's end
//! of the queue it travels on.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::policy::Idle;

/// What the queue carries to the workers.
#[derive(Debug)]
pub(crate) enum Job {
    /// A datagram to answer.
    Datagram(Datagram),
    /// The watchdog's probe: a worker that takes it proves the queue moves.
    Probe,
}

/// One received datagram on its way from the receiver to a worker.
#[derive(Debug)]
pub(crate) struct Datagram {
    /// The payload: exactly the datagram's bytes.
    pub buf: Vec<u8>,
    pub peer: SocketAddr,
    /// The address the datagram was sent to, when known (wildcard binds).
    pub local: Option<IpAddr>,
}

/// The receiver's end of the queue. Work sent is announced to the pool's
/// policy, which wakes a worker if none is looking; dropping it closes
/// the queue and wakes every sleeping worker to see that.
#[derive(Debug)]
pub(crate) struct Queue {
    sender: Option<Sender<Job>>,
    idle: Arc<Idle>,
}

/// A bounded queue of `capacity` jobs for a pool of `workers` whose
/// handlers are all `quick` or not: its two ends, and the policy by which
/// the workers wait on it.
pub(crate) fn queue(
    capacity: usize,
    workers: usize,
    quick: bool,
) -> (Queue, Receiver<Job>, Arc<Idle>) {
    let (sender, receiver) = crossbeam_channel::bounded(capacity);
    let idle = Arc::new(Idle::new(workers, quick));
    let queue = Queue {
        sender: Some(sender),
        idle: idle.clone(),
    };
    (queue, receiver, idle)
}

impl Queue {
    /// Queues `job` unless the queue is full; no worker is woken until
    /// [`notify`](Queue::notify).
    pub(crate) fn try_send(&self, job: Job) -> Result<(), TrySendError<Job>> {
        match &self.sender {
            Some(sender) => sender.try_send(job),
            None => Err(TrySendError::Disconnected(job)),
        }
    }

    /// Queues `job`, waiting while the queue is full for a worker to make
    /// room. A worker is woken first: one asleep would make none.
    pub(crate) fn send_waiting(&self, job: Job) -> Result<(), TrySendError<Job>> {
        let job = match self.try_send(job) {
            Err(TrySendError::Full(job)) => job,
            done => return done,
        };
        self.notify();
        match &self.sender {
            Some(sender) => sender
                .send(job)
                .map_err(|e| TrySendError::Disconnected(e.into_inner())),
            None => Err(TrySendError::Disconnected(job)),
        }
    }

    /// How many jobs wait.
    pub(crate) fn len(&self) -> usize {
        self.sender.as_ref().map_or(0, Sender::len)
    }

    /// How many looks the receiver takes after a read of `read` datagrams,
    /// as the pool's policy says.
    pub(crate) fn looks_after_read(&self, read: usize) -> u32 {
        self.idle.looks_after_read(read)
    }

    /// Wakes a worker for what was queued since the last call, if the
    /// pool's policy says one is needed.
    pub(crate) fn notify(&self) {
        self.idle.notify(self.len());
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Closed first, so that every worker woken sees it closed.
        drop(self.sender.take());
        self.idle.close();
    }
}
