//! The send/receive loop: one thread drives every socket, sends requests in
//! batches, reads replies in batches, and sleeps in `poll` when there is
//! nothing to do, so on a small machine it leaves the cores to the server
//! under test instead of spinning.

use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::config::{BenchConfig, Expect, Pacing, Sending};
use super::payload::{answers, parse, reply_room, request, turn, write_request};
use super::report::{BenchReport, Phase, Progress, Rtt};
use super::table::{Answer, Table};
use super::{BATCH, MAX_LAG, TURN};
use crate::error::{Error, Result};
use crate::sys::{self, Meta, Outgoing, Reader, Writer};

/// The longest single sleep, so progress and phase changes are never late.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Socket buffers asked for: room for a burst in either direction.
const SOCKET_BUFFER: usize = 4 << 20;

/// Counts of one phase: the warm-up's, or the measurement's.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    sent: u64,
    replies: u64,
    lost: u64,
}

pub(super) struct Generator {
    config: BenchConfig,
    sockets: Vec<UdpSocket>,
    reader: Reader,
    writer: Writer,
    /// One request buffer per batch entry; only the id bytes change, or
    /// the whole request when the caller's own are sent.
    requests: Vec<Vec<u8>>,
    replies: Vec<Vec<u8>>,
    metas: Vec<Meta>,
    failed: Vec<bool>,
    /// The ids of the batch being sent.
    staged: Vec<u64>,
    table: Table,
    /// Each socket's share of the window.
    share: Vec<usize>,
    /// The socket the next turn of sending starts with, so that a turn cut
    /// short does not always leave the same sockets out.
    next_socket: usize,
    /// Open loop: requests settled so far (sent, failed or skipped), by
    /// their place in the schedule; request `k` is due `(k + 1) / rate`
    /// seconds after the start.
    issued: u64,
    /// Open loop: the first request of the measurement.
    warm_due: u64,
    /// Open loop: one past the last request of the measurement.
    end_due: u64,
    start: Instant,
    warm_end_ns: u64,
    /// When sending stops at the latest: the end of `duration`.
    end_ns: u64,
    /// When sending stopped, once it has.
    send_end_ns: Option<u64>,
    ended_by_count: bool,
    /// Whether a measured reply came back before sending stopped.
    turned_over: bool,
    /// When the last request measured was answered or counted lost.
    run_end_ns: u64,
    timeout_ns: u64,
    /// Whether anything valid came back yet: until then, a refusal means
    /// that nothing is listening.
    answered: bool,
    warmup: Counts,
    measured: Counts,
    bad: u64,
    duplicates: u64,
    late: u64,
    unsent: u64,
    /// The kernel's drop count of each socket when measuring began.
    drops_at_start: Option<Vec<u32>>,
    /// Datagrams the kernel dropped at the sockets while measuring.
    client_dropped: u64,
    hist: Histogram<u64>,
}

impl Generator {
    pub(super) fn new(config: &BenchConfig) -> Result<Generator> {
        let k = config.sockets;
        let sockets = open_sockets(config)?;
        let expect = reply_room(config);
        let slots = config.slots();
        let hist = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| Error::config(format!("histogram: {e}")))?;
        let warm_end_ns = nanos(config.warmup);
        let end_ns = nanos(config.warmup.saturating_add(config.duration));
        let (warm_due, end_due, ended_by_count) = schedule(config, warm_end_ns, end_ns);
        Ok(Generator {
            config: config.clone(),
            sockets,
            reader: Reader::new(BATCH),
            writer: Writer::connected(BATCH, config.sending == Sending::Segmented),
            requests: vec![request(config.payload); BATCH],
            // One byte over the expected length, so a longer reply shows.
            replies: (0..BATCH).map(|_| Vec::with_capacity(expect + 1)).collect(),
            metas: Vec::with_capacity(BATCH),
            failed: vec![false; BATCH],
            staged: Vec::with_capacity(BATCH),
            table: Table::new(slots, k, in_order(config)),
            share: shares(config),
            next_socket: 0,
            issued: 0,
            warm_due,
            end_due,
            start: Instant::now(),
            warm_end_ns,
            end_ns,
            send_end_ns: None,
            ended_by_count,
            turned_over: false,
            run_end_ns: 0,
            timeout_ns: nanos(config.timeout),
            answered: false,
            warmup: Counts::default(),
            measured: Counts::default(),
            bad: 0,
            duplicates: 0,
            late: 0,
            unsent: 0,
            drops_at_start: None,
            client_dropped: 0,
            hist,
        })
    }

    fn now_ns(&self) -> u64 {
        nanos(self.start.elapsed())
    }

    pub(super) fn run(&mut self, mut progress: impl FnMut(&Progress)) -> Result<()> {
        // Even pacing sleeps for gaps of microseconds: the kernel's default
        // 50 us of timer slack would turn them into bursts.
        let _slack = (self.config.rate.is_some() && self.config.pacing == Pacing::Even)
            .then(sys::TimerSlack::finest);
        self.start = Instant::now();
        let mut next_progress = nanos(PROGRESS_EVERY);
        let mut phase = Progress::start(&self.config).phase;
        loop {
            let now = self.now_ns();
            self.expire(now);
            if self.drops_at_start.is_none() && now >= self.warm_end_ns {
                self.drops_at_start = Some(self.socket_drops());
            }
            if self.send_end_ns.is_some() && self.table.measured_in_flight() == 0 {
                self.run_end_ns = now;
                self.client_dropped = self.dropped_while_measuring();
                return Ok(());
            }
            // About once a second, and at once when the warm-up ends.
            if now >= next_progress || (phase == Phase::Warmup && now >= self.warm_end_ns) {
                let p = self.progress(now);
                phase = p.phase;
                progress(&p);
                next_progress = now + nanos(PROGRESS_EVERY);
            }
            let sent = if self.send_end_ns.is_none() {
                match self.config.rate {
                    None => self.send_closed()?,
                    Some(rate) => self.send_open(rate)?,
                }
            } else {
                0
            };
            let read = self.receive()?;
            if sent == 0 && read == 0 {
                let wake = self.next_wake(now).min(next_progress);
                let wait = Duration::from_nanos(wake.saturating_sub(self.now_ns()));
                if !wait.is_zero() {
                    sys::wait_readable(&self.sockets, wait.min(MAX_WAIT))
                        .map_err(|e| Error::io("wait for replies", e))?;
                }
            }
        }
    }

    /// The kernel's drop count of each socket (0 where it gives none): read
    /// at the start and the end of the measurement only.
    fn socket_drops(&self) -> Vec<u32> {
        let count = |s: &UdpSocket| sys::socket_drops(s).unwrap_or(0);
        self.sockets.iter().map(count).collect()
    }

    /// What the kernel dropped at the sockets since measuring began.
    fn dropped_while_measuring(&self) -> u64 {
        let Some(start) = &self.drops_at_start else {
            return 0;
        };
        let now = self.socket_drops();
        let moved = |(now, start): (&u32, &u32)| u64::from(now.wrapping_sub(*start));
        now.iter().zip(start).map(moved).sum()
    }

    /// When there is next something to do besides reading replies.
    fn next_wake(&self, now: u64) -> u64 {
        let sending = self.send_end_ns.is_none();
        let mut wake = if sending { self.end_ns } else { u64::MAX };
        if now < self.warm_end_ns {
            wake = wake.min(self.warm_end_ns);
        }
        if let Some(sent_ns) = self.table.oldest_sent() {
            wake = wake.min(sent_ns.saturating_add(self.timeout_ns));
        }
        if let (Some(rate), true) = (self.config.rate, sending) {
            let quantum = match self.config.pacing {
                Pacing::Even => 1,
                // A tenth of a millisecond's worth at a time.
                Pacing::Bursts => (rate / 10_000).clamp(1, BATCH as u64),
            };
            wake = wake.min(due_at(self.issued + quantum, rate));
        }
        wake
    }

    /// Counts as lost every request whose time is up.
    fn expire(&mut self, now: u64) {
        if let Some(cutoff) = now.checked_sub(self.timeout_ns) {
            let (lost, warmup_lost) = self.table.expire(cutoff);
            self.measured.lost += lost;
            self.warmup.lost += warmup_lost;
        }
    }

    /// Stops sending: nothing more leaves after `at`.
    fn close(&mut self, at: u64) {
        self.send_end_ns = Some(at.max(self.warm_end_ns));
    }

    /// Closed loop: refills the window, socket by socket, for at most a
    /// turn; returns how many requests left.
    fn send_closed(&mut self) -> Result<usize> {
        let k = self.sockets.len();
        let turn_start = self.now_ns();
        let mut total = 0;
        for _ in 0..k {
            let i = self.next_socket;
            self.next_socket = (i + 1) % k;
            loop {
                let now = self.now_ns();
                if now >= self.end_ns {
                    self.close(self.end_ns);
                    return Ok(total);
                }
                let measured = now >= self.warm_end_ns;
                let left = match (self.config.count, measured) {
                    (Some(c), true) => c.saturating_sub(self.measured.sent),
                    _ => u64::MAX,
                };
                let room = self.share[i] - self.table.in_flight(i);
                let want = room.min(BATCH).min(left.min(BATCH as u64) as usize);
                if want == 0 {
                    break;
                }
                let n = self.send_batch(i, want, now, measured)?;
                total += n;
                if measured && self.config.count.is_some_and(|c| self.measured.sent >= c) {
                    self.ended_by_count = true;
                    self.close(now);
                    return Ok(total);
                }
                if n < want {
                    break;
                }
                if now.saturating_sub(turn_start) >= nanos(TURN) {
                    return Ok(total);
                }
            }
        }
        Ok(total)
    }

    /// Open loop: sends what is due, batch by batch, each stamped with the
    /// clock read just before it, for at most a turn. What is more than
    /// `MAX_LAG` overdue is skipped. Returns how many requests left.
    fn send_open(&mut self, rate: u64) -> Result<usize> {
        let k = self.sockets.len();
        let turn_start = self.now_ns();
        let mut total = 0;
        let mut now = turn_start;
        loop {
            let too_late = due_count(now.saturating_sub(nanos(MAX_LAG)), rate).min(self.end_due);
            self.skip_to(too_late);
            let due = due_count(now, rate).min(self.end_due);
            if self.issued >= due || now.saturating_sub(turn_start) >= nanos(TURN) {
                break;
            }
            let measured = self.issued >= self.warm_due;
            let mut want = (due - self.issued).min(BATCH as u64);
            if !measured {
                // A batch is all warm-up or all measured.
                want = want.min(self.warm_due - self.issued);
            }
            let want = want as usize;
            let i = self.next_socket;
            self.next_socket = (i + 1) % k;
            let n = self.send_batch(i, want, now, measured)?;
            self.issued += want as u64;
            if measured {
                self.unsent += (want - n) as u64;
            }
            total += n;
            now = self.now_ns();
        }
        if self.issued >= self.end_due && self.ended_by_count {
            self.close(now);
        } else if now >= self.end_ns {
            // What is still due now will never leave: time, not the count,
            // ended the sending.
            self.skip_to(self.end_due);
            self.ended_by_count = false;
            self.close(self.end_ns);
        }
        Ok(total)
    }

    /// Open loop: gives up on every request before number `to`; those of
    /// the measurement count as unsent.
    fn skip_to(&mut self, to: u64) {
        if to > self.issued {
            let from = self.issued.max(self.warm_due);
            self.unsent += to.saturating_sub(from);
            self.issued = to;
        }
    }

    /// Sends up to `want` new requests on socket `i` at `now`; returns how
    /// many left.
    fn send_batch(&mut self, i: usize, want: usize, now: u64, measured: bool) -> Result<usize> {
        let n = self.stage(i, want, now, measured);
        if n == 0 {
            return Ok(0);
        }
        let (hard_error, refused) = self.transmit(i, n);
        let sent = self.settle(n, measured);
        let server = self.config.server;
        if refused && !self.answered {
            return Err(Error::refused(server));
        }
        if let Some(e) = hard_error {
            return Err(Error::io(format!("send to {server}"), e));
        }
        Ok(sent)
    }

    /// Takes a slot for each of up to `want` requests on socket `i` and
    /// writes their ids into the request buffers; returns how many.
    fn stage(&mut self, i: usize, want: usize, now: u64, measured: bool) -> usize {
        self.staged.clear();
        while self.staged.len() < want {
            let Some(id) = self.table.take(i, now, measured) else {
                break;
            };
            let buf = &mut self.requests[self.staged.len()];
            write_request(buf, id, &self.config.requests);
            self.staged.push(id);
        }
        self.staged.len()
    }

    /// Hands the first `n` request buffers to the kernel on socket `i`,
    /// marking in `failed` each that did not leave; returns the first error
    /// no retry mends, and whether any send was refused.
    fn transmit(&mut self, i: usize, n: usize) -> (Option<io::Error>, bool) {
        self.failed[..n].fill(false);
        let server = self.config.server;
        let failed = &mut self.failed;
        let mut hard_error = None;
        let mut refused = false;
        let msgs = self.requests[..n].iter().map(|r| Outgoing {
            payload: r,
            peer: server,
            local: None,
        });
        let mut fail = |j: usize, e: io::Error| {
            failed[j] = true;
            refused |= e.kind() == io::ErrorKind::ConnectionRefused;
            if !sys::is_transient(&e) && hard_error.is_none() {
                hard_error = Some(e);
            }
        };
        if self.config.sending == Sending::Single {
            for (j, m) in msgs.enumerate() {
                if let Err(e) = sys::retry_if_interrupted(|| self.sockets[i].send(m.payload)) {
                    fail(j, e);
                }
            }
        } else {
            self.writer.write(&self.sockets[i], msgs, fail);
        }
        (hard_error, refused)
    }

    /// Puts in flight the first `n` staged requests that left, and frees
    /// the slots of those that did not; returns how many left.
    fn settle(&mut self, n: usize, measured: bool) -> usize {
        let mut sent = 0;
        for j in 0..n {
            let id = self.staged[j];
            if self.failed[j] {
                // Never left: the slot is free again and nothing is counted.
                self.table.unsent(id);
                continue;
            }
            sent += 1;
            self.table.sent(id);
            if measured {
                self.measured.sent += 1;
            } else {
                self.warmup.sent += 1;
            }
        }
        sent
    }

    /// Reads every reply waiting on every socket; returns how many.
    fn receive(&mut self) -> Result<usize> {
        let mut total = 0;
        for i in 0..self.sockets.len() {
            loop {
                match self
                    .reader
                    .read(&self.sockets[i], &mut self.replies, &mut self.metas)
                {
                    Ok(()) => {}
                    // The port unreachable of an earlier datagram, before
                    // anything answered: nothing is there to measure.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && !self.answered => {
                        return Err(Error::refused(self.config.server))
                    }
                    // Nothing more to read (WouldBlock), or an ICMP report
                    // of an earlier datagram to a server that did answer,
                    // which may be back: go on with the next socket.
                    Err(e) if sys::is_transient(&e) => break,
                    Err(e) => {
                        return Err(Error::io(format!("receive from {}", self.config.server), e))
                    }
                }
                let n = self.metas.len();
                if n == 0 {
                    break;
                }
                total += n;
                let now = self.now_ns();
                // A reply read after its request's time was up is late,
                // however long it waited in the socket's buffer: no round
                // trip over the timeout is counted.
                self.expire(now);
                for j in 0..n {
                    let meta = self.metas[j];
                    self.check(i, j, meta, now);
                }
                if n < self.replies.len() {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Matches reply `j`, read on socket `i`, to its request and counts it.
    fn check(&mut self, i: usize, j: usize, meta: Meta, now: u64) {
        let counting = now >= self.warm_end_ns;
        match self.answer(i, j, meta, now) {
            Answer::Measured { rtt_ns } => {
                self.answered = true;
                self.measured.replies += 1;
                self.turned_over |= self.send_end_ns.is_none();
                self.hist.saturating_record(rtt_ns);
            }
            Answer::Warmup => {
                self.answered = true;
                self.warmup.replies += 1;
            }
            Answer::Duplicate { measured: true } => self.duplicates += 1,
            Answer::Late { measured: true } => self.late += 1,
            // Extras of warm-up requests are no more counted than they.
            Answer::Duplicate { .. } | Answer::Late { .. } => {}
            Answer::Unknown if counting => self.bad += 1,
            Answer::Unknown => {}
        }
    }

    /// Which request reply `j`, read on socket `i`, answers: the one its id
    /// names, or, when replies are matched in order, the oldest in flight
    /// on the socket that it answers.
    fn answer(&mut self, i: usize, j: usize, meta: Meta, now: u64) -> Answer {
        let expect = self.config.expect;
        if meta.peer != self.config.server {
            return Answer::Unknown;
        }
        if in_order(&self.config) {
            return self.answer_in_order(i, j, meta.truncated, now);
        }
        let id = (!meta.truncated)
            .then(|| parse(&self.replies[j], self.config.payload, expect))
            .flatten();
        match id {
            Some(id) => self.table.answer(id, now),
            None => Answer::Unknown,
        }
    }

    /// With no id in the reply: with `Expect::Any` the oldest request in
    /// flight on socket `i`, whatever the reply's bytes (cut short or
    /// not); with the caller's own requests, the oldest whose reply it is.
    /// A reply to none of them is `Unknown`, one to none in flight `Late`.
    fn answer_in_order(&mut self, i: usize, j: usize, truncated: bool, now: u64) -> Answer {
        let (expect, given) = (self.config.expect, &self.config.requests);
        if expect == Expect::Any {
            return self.table.answer_first(i, now, |_| true);
        }
        let reply = &self.replies[j];
        if truncated {
            return Answer::Unknown;
        }
        let found = self.table.answer_first(i, now, |id| {
            turn(id, given).is_some_and(|request| answers(reply, request, expect))
        });
        let late = matches!(found, Answer::Late { .. });
        if late && !given.iter().any(|request| answers(reply, request, expect)) {
            return Answer::Unknown;
        }
        found
    }

    fn progress(&self, now: u64) -> Progress {
        let (phase, counts, since) = if now < self.warm_end_ns {
            (Phase::Warmup, self.warmup, 0)
        } else {
            (Phase::Measuring, self.measured, self.warm_end_ns)
        };
        Progress {
            phase,
            elapsed: Duration::from_nanos(now.saturating_sub(since)),
            sent: counts.sent,
            replies: counts.replies,
            lost: counts.lost,
        }
    }

    /// The report once the run is over.
    pub(super) fn report(&self) -> BenchReport {
        let send_end = self.send_end_ns.unwrap_or(self.run_end_ns);
        let run_end = self.run_end_ns.max(send_end);
        let q = |q: f64| Duration::from_nanos(self.hist.value_at_quantile(q));
        let rtt = (!self.hist.is_empty()).then(|| Rtt {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: Duration::from_nanos(self.hist.max()),
        });
        // The unanswered requests whose replies may have been dropped here
        // are not the path's loss.
        let unanswered = self.measured.lost;
        BenchReport {
            config: self.config.clone(),
            sent: self.measured.sent,
            replies: self.measured.replies,
            lost: unanswered - unanswered.min(self.client_dropped),
            client_dropped: self.client_dropped,
            bad: self.bad,
            duplicates: self.duplicates,
            late: self.late,
            unsent: self.unsent,
            sending: Duration::from_nanos(send_end - self.warm_end_ns),
            tail: Duration::from_nanos(run_end - send_end),
            elapsed: Duration::from_nanos(run_end - self.warm_end_ns),
            ended_by_count: self.ended_by_count,
            turned_over: self.config.rate.is_some() || self.turned_over,
            rtt,
        }
    }
}

/// Whether replies carry no id and find their requests by order: with
/// `Expect::Any`, or the caller's own requests.
fn in_order(config: &BenchConfig) -> bool {
    config.expect == Expect::Any || !config.requests.is_empty()
}

/// One client socket per `config.sockets`, each connected to the server.
fn open_sockets(config: &BenchConfig) -> Result<Vec<UdpSocket>> {
    (0..config.sockets)
        .map(|_| sys::client_socket(config.server, SOCKET_BUFFER))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| Error::io(format!("open a socket to {}", config.server), e))
}

/// Each socket's share of the window (in an open loop, of the slots),
/// split as evenly as it goes.
fn shares(config: &BenchConfig) -> Vec<usize> {
    let k = config.sockets;
    let window = if config.rate.is_some() {
        config.slots()
    } else {
        config.window
    };
    (0..k)
        .map(|i| window / k + usize::from(i < window % k))
        .collect()
}

/// Open loop: the first request of the measurement, one past its last, and
/// whether the count (rather than the time) ends it; zeros in a closed
/// loop.
fn schedule(config: &BenchConfig, warm_end_ns: u64, end_ns: u64) -> (u64, u64, bool) {
    let Some(rate) = config.rate else {
        return (0, 0, false);
    };
    let warm_due = due_count(warm_end_ns, rate);
    let by_time = due_count(end_ns, rate);
    match config.count {
        Some(c) if warm_due.saturating_add(c) < by_time => (warm_due, warm_due + c, true),
        _ => (warm_due, by_time, false),
    }
}

/// Open loop: how many requests are due by `ns` after the start.
fn due_count(ns: u64, rate: u64) -> u64 {
    (ns as u128 * rate as u128 / 1_000_000_000).min(u64::MAX as u128) as u64
}

/// Open loop: when the first `n` requests are all due, rounded up: a wake a
/// nanosecond early finds nothing due.
fn due_at(n: u64, rate: u64) -> u64 {
    (n as u128 * 1_000_000_000)
        .div_ceil(rate as u128)
        .min(u64::MAX as u128) as u64
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        // Request k is due (k + 1) / rate after the start.
        assert_eq!(due_count(0, 1000), 0);
        assert_eq!(due_count(999_999, 1000), 0);
        assert_eq!(due_count(1_000_000, 1000), 1);
        assert_eq!(due_at(1, 1000), 1_000_000);
        assert_eq!(due_count(due_at(7, 3), 3), 7);
        assert_eq!(due_count(due_at(7, 3) - 1, 3), 6);
        // Ten seconds at the highest rate the command line takes.
        assert_eq!(due_count(10_000_000_000, 100_000_000), 1_000_000_000);
    }
}
