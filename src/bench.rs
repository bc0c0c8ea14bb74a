//! The load generator behind `udp-greeter-client bench`.
//!
//! One thread drives every socket: it sends requests in batches
//! (`sendmmsg`), reads replies in batches (`recvmmsg`), and sleeps in
//! `poll` when there is nothing to do, so on a small machine it leaves the
//! cores to the server under test instead of spinning.
//!
//! Every request carries a unique 8-byte id at the start of its payload,
//! padded to the payload size with fixed filler. A reply is matched to its
//! request by that id and checked byte for byte against the greeting the
//! request asks for. Each request sent while measuring ends in exactly one
//! of `replies` or `lost`; `bad`, `duplicates` and `late` count datagrams
//! that arrived on top of that.
//!
//! ```no_run
//! use udp_greeter::bench::{run, BenchConfig};
//!
//! let mut config = BenchConfig::new("127.0.0.1:9999".parse()?);
//! config.window = 64;
//! let report = run(&config)?;
//! println!("{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};
use crate::greeting::{MAX_GREETABLE, PREFIX, SUFFIX};
use crate::transport::{is_transient, Meta, Outgoing, Reader, Writer};

/// Bytes of a request that carry its id; the smallest payload.
pub const ID_BYTES: usize = 8;

/// How many datagrams one system call sends or reads.
const BATCH: usize = 32;

/// The low bits of an id name the slot that tracks the request; the high
/// bits are a sequence number, so no two requests of a run share an id.
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const MAX_SLOTS: usize = 1 << SLOT_BITS;

/// A slot with no request in flight.
const NONE: u64 = u64::MAX;

/// The longest single sleep, so progress and phase changes are never late.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Socket buffers asked for: room for a burst in either direction.
const SOCKET_BUFFER: usize = 4 << 20;

/// What to send, how hard, and for how long.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BenchConfig {
    /// The server under test.
    pub server: SocketAddr,
    /// Closed loop: how many requests are in flight at once (at least 1).
    /// Ignored when `rate` is set.
    pub window: usize,
    /// Open loop: requests per second, sent whatever the replies do.
    pub rate: Option<u64>,
    /// How long to measure, after the warm-up.
    pub duration: Duration,
    /// How long to send before measuring; nothing sent then is counted.
    pub warmup: Duration,
    /// Bytes per request, at least [`ID_BYTES`].
    pub payload: usize,
    /// How many client sockets (source ports) share the load.
    pub sockets: usize,
    /// How long a request waits for its reply before it counts as lost (and,
    /// in a closed loop, its slot is refilled).
    pub timeout: Duration,
    /// Stops sending after this many requests while measuring, even if
    /// `duration` has not passed.
    pub count: Option<u64>,
}

impl BenchConfig {
    /// The defaults against `server`: a closed loop of 64 requests in
    /// flight, 16-byte payloads, one socket, 5 s after a 1 s warm-up, 1 s
    /// timeout.
    pub fn new(server: SocketAddr) -> BenchConfig {
        BenchConfig {
            server,
            window: 64,
            rate: None,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            payload: 16,
            sockets: 1,
            timeout: Duration::from_secs(1),
            count: None,
        }
    }

    /// Checks every value, naming the first that cannot be run.
    pub fn validate(&self) -> Result<()> {
        if self.rate.is_none() && self.window == 0 {
            return Err(Error::config("window must be at least 1"));
        }
        if self.window > MAX_SLOTS {
            return Err(Error::config(format!("window must be at most {MAX_SLOTS}")));
        }
        if self.rate == Some(0) {
            return Err(Error::config("rate must be at least 1"));
        }
        if !(ID_BYTES..=MAX_GREETABLE).contains(&self.payload) {
            return Err(Error::config(format!(
                "payload must be from {ID_BYTES} to {MAX_GREETABLE} bytes"
            )));
        }
        if !(1..=1024).contains(&self.sockets) {
            return Err(Error::config("sockets must be from 1 to 1024"));
        }
        if self.duration.is_zero() {
            return Err(Error::config("duration must be more than 0"));
        }
        if self.timeout < Duration::from_millis(1) {
            return Err(Error::config("timeout must be at least 1 ms"));
        }
        Ok(())
    }

    /// How many requests can be in flight at once.
    fn slots(&self) -> usize {
        match self.rate {
            None => self.window,
            // Everything sent within one timeout may still be out, plus a
            // margin for bursts when the generator catches up.
            Some(rate) => {
                let within = rate as f64 * self.timeout.as_secs_f64() * 1.25;
                (within as usize + BATCH * self.sockets).min(MAX_SLOTS)
            }
        }
    }
}

/// Round-trip times of the replies counted, from an HdrHistogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rtt {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The slowest.
    pub max: Duration,
}

/// What a run measured.
///
/// Every request sent while measuring is either in `replies` or in `lost`
/// once the run is over (`sent == replies + lost`); `bad`, `duplicates` and
/// `late` count extra datagrams.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BenchReport {
    /// The configuration that ran.
    pub config: BenchConfig,
    /// Requests sent while measuring.
    pub sent: u64,
    /// Requests answered with exactly the expected greeting, within the timeout.
    pub replies: u64,
    /// Requests not answered within the timeout.
    pub lost: u64,
    /// Datagrams that were not the greeting of any request sent (wrong
    /// bytes, wrong length, unknown id). The sockets are connected, so the
    /// kernel drops datagrams from any other address before they count.
    pub bad: u64,
    /// Correct greetings for a request already answered.
    pub duplicates: u64,
    /// Correct greetings that came after their request was counted lost.
    pub late: u64,
    /// Open loop: requests due that could not be sent (the socket buffer
    /// was full, or every slot was taken).
    pub unsent: u64,
    /// From the end of the warm-up to the last reply counted (at least the
    /// configured duration once the run is over).
    pub elapsed: Duration,
    /// Round-trip times of the replies counted.
    pub rtt: Rtt,
}

impl BenchReport {
    /// Replies counted per second of `elapsed`.
    pub fn replies_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.replies as f64 / secs
        } else {
            0.0
        }
    }

    /// The report as one JSON object on one line; times in microseconds.
    pub fn to_json(&self) -> String {
        let c = &self.config;
        let us = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e6);
        format!(
            "{{\"server\":\"{}\",\"mode\":\"{}\",\"window\":{},\"rate\":{},\"payload\":{},\
             \"sockets\":{},\"count\":{},\"seconds\":{},\"warmup\":{},\"timeout\":{},\
             \"sent\":{},\"replies\":{},\"lost\":{},\"bad\":{},\"duplicates\":{},\"late\":{},\
             \"unsent\":{},\"elapsed_s\":{:.3},\"replies_per_s\":{:.0},\
             \"rtt_p50_us\":{},\"rtt_p90_us\":{},\"rtt_p99_us\":{},\"rtt_p999_us\":{},\
             \"rtt_max_us\":{}}}",
            c.server,
            if c.rate.is_some() { "open" } else { "closed" },
            c.window,
            c.rate.map_or("null".to_string(), |r| r.to_string()),
            c.payload,
            c.sockets,
            c.count.map_or("null".to_string(), |n| n.to_string()),
            c.duration.as_secs_f64(),
            c.warmup.as_secs_f64(),
            c.timeout.as_secs_f64(),
            self.sent,
            self.replies,
            self.lost,
            self.bad,
            self.duplicates,
            self.late,
            self.unsent,
            self.elapsed.as_secs_f64(),
            self.replies_per_sec(),
            us(self.rtt.p50),
            us(self.rtt.p90),
            us(self.rtt.p99),
            us(self.rtt.p999),
            us(self.rtt.max),
        )
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let mode = match c.rate {
            Some(r) => format!("open loop at {r} req/s"),
            None => format!("closed loop, window {}", c.window),
        };
        let us = |d: Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
        writeln!(
            f,
            "bench {}: {mode}, {}-byte payload, {} socket{}, {:.1} s after {:.1} s warm-up",
            c.server,
            c.payload,
            c.sockets,
            if c.sockets == 1 { "" } else { "s" },
            c.duration.as_secs_f64(),
            c.warmup.as_secs_f64()
        )?;
        let rows: [(&str, String); 15] = [
            ("sent", self.sent.to_string()),
            ("replies", self.replies.to_string()),
            ("lost", self.lost.to_string()),
            ("bad", self.bad.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("late", self.late.to_string()),
            ("unsent", self.unsent.to_string()),
            ("elapsed", format!("{:.3} s", self.elapsed.as_secs_f64())),
            ("replies/s", format!("{:.0}", self.replies_per_sec())),
            ("rtt p50", us(self.rtt.p50)),
            ("rtt p90", us(self.rtt.p90)),
            ("rtt p99", us(self.rtt.p99)),
            ("rtt p99.9", us(self.rtt.p999)),
            ("rtt max", us(self.rtt.max)),
            ("timeout", format!("{:.3} s", c.timeout.as_secs_f64())),
        ];
        for (name, value) in rows {
            writeln!(f, "  {name:<12}{value:>14}")?;
        }
        Ok(())
    }
}

/// Runs the load described by `config` and reports what it measured.
pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    run_with(config, |_| {})
}

/// Like [`run`], and hands a report of the run so far to `progress` about
/// once a second (`elapsed` is zero during the warm-up).
pub fn run_with(config: &BenchConfig, progress: impl FnMut(&BenchReport)) -> Result<BenchReport> {
    config.validate()?;
    let mut bench = Bench::new(config)?;
    bench.run(progress)?;
    Ok(bench.report(true))
}

/// One request a slot tracks.
#[derive(Clone, Copy)]
struct Slot {
    /// The id in flight, or `NONE`.
    id: u64,
    /// When it was sent, in nanoseconds since the start of the run.
    sent_ns: u64,
    /// The id before, and whether it was answered: tells a duplicate from a
    /// late reply.
    prev: u64,
    prev_answered: bool,
    /// Whether it was sent while measuring.
    measured: bool,
    socket: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        id: NONE,
        sent_ns: 0,
        prev: NONE,
        prev_answered: false,
        measured: false,
        socket: 0,
    };
}

struct Bench {
    config: BenchConfig,
    sockets: Vec<UdpSocket>,
    reader: Reader,
    writer: Writer,
    /// One request buffer per batch entry; only the id bytes change.
    requests: Vec<Vec<u8>>,
    replies: Vec<Vec<u8>>,
    metas: Vec<Meta>,
    failed: Vec<bool>,
    staged: Vec<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Requests in send order, for the timeout; entries whose slot has moved
    /// on are skipped when they reach the front.
    deadlines: VecDeque<(u32, u64, u64)>,
    in_flight: Vec<usize>,
    share: Vec<usize>,
    measured_in_flight: u64,
    seq: u64,
    /// Open loop: requests due so far, sent or not.
    issued: u64,
    start: Instant,
    warm_end_ns: u64,
    end_ns: u64,
    timeout_ns: u64,
    last_reply_ns: u64,
    sent: u64,
    answered: u64,
    lost: u64,
    bad: u64,
    duplicates: u64,
    late: u64,
    unsent: u64,
    hist: Histogram<u64>,
}

impl Bench {
    fn new(config: &BenchConfig) -> Result<Bench> {
        let k = config.sockets;
        let sockets = (0..k)
            .map(|_| client_socket(config.server))
            .collect::<io::Result<Vec<_>>>()?;
        let mut request = vec![0u8; config.payload];
        for (i, b) in request.iter_mut().enumerate().skip(ID_BYTES) {
            *b = filler(i);
        }
        let expect = PREFIX.len() + config.payload + SUFFIX.len();
        let slots = config.slots();
        let window = if config.rate.is_some() {
            slots
        } else {
            config.window
        };
        // The window, split as evenly as it goes between the sockets.
        let share = (0..k)
            .map(|i| window / k + usize::from(i < window % k))
            .collect();
        let hist = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| Error::config(format!("histogram: {e}")))?;
        Ok(Bench {
            config: config.clone(),
            sockets,
            reader: Reader::new(BATCH),
            writer: Writer::connected(BATCH),
            requests: vec![request; BATCH],
            // One byte over the expected length, so a longer reply shows.
            replies: (0..BATCH).map(|_| Vec::with_capacity(expect + 1)).collect(),
            metas: Vec::with_capacity(BATCH),
            failed: vec![false; BATCH],
            staged: Vec::with_capacity(BATCH),
            slots: vec![Slot::EMPTY; slots],
            free: (0..slots as u32).rev().collect(),
            deadlines: VecDeque::with_capacity(slots.min(1 << 20)),
            in_flight: vec![0; k],
            share,
            measured_in_flight: 0,
            seq: 0,
            issued: 0,
            start: Instant::now(),
            warm_end_ns: nanos(config.warmup),
            end_ns: nanos(config.warmup.saturating_add(config.duration)),
            timeout_ns: nanos(config.timeout),
            last_reply_ns: 0,
            sent: 0,
            answered: 0,
            lost: 0,
            bad: 0,
            duplicates: 0,
            late: 0,
            unsent: 0,
            hist,
        })
    }

    fn now_ns(&self) -> u64 {
        nanos(self.start.elapsed())
    }

    fn run(&mut self, mut progress: impl FnMut(&BenchReport)) -> Result<()> {
        self.start = Instant::now();
        let mut next_progress = nanos(PROGRESS_EVERY);
        loop {
            let now = self.now_ns();
            if self.count_reached() && now < self.end_ns {
                // The count is reached: what is left is only the draining.
                self.end_ns = now.max(self.warm_end_ns);
            }
            self.expire(now);
            if now >= self.end_ns && self.measured_in_flight == 0 {
                return Ok(());
            }
            if now >= next_progress {
                progress(&self.report(false));
                next_progress = now + nanos(PROGRESS_EVERY);
            }
            let sent = if now < self.end_ns {
                self.send(now)?
            } else {
                0
            };
            let read = self.receive()?;
            if sent == 0 && read == 0 {
                let wake = self.next_wake(now).min(next_progress);
                let wait = Duration::from_nanos(wake.saturating_sub(self.now_ns()));
                if !wait.is_zero() {
                    wait_readable(&self.sockets, wait.min(MAX_WAIT))?;
                }
            }
        }
    }

    fn count_reached(&self) -> bool {
        self.config.count.is_some_and(|c| self.sent >= c)
    }

    /// When there is next something to do besides reading replies.
    fn next_wake(&self, now: u64) -> u64 {
        let mut wake = if now < self.end_ns {
            self.end_ns
        } else {
            u64::MAX
        };
        if now < self.warm_end_ns {
            wake = wake.min(self.warm_end_ns);
        }
        if let Some(&(_, _, sent_ns)) = self.deadlines.front() {
            wake = wake.min(sent_ns.saturating_add(self.timeout_ns));
        }
        if let (Some(rate), true) = (self.config.rate, now < self.end_ns) {
            // Sends go out in small batches rather than one datagram per
            // wake-up: a tenth of a millisecond's worth at a time.
            let quantum = (rate / 10_000).clamp(1, BATCH as u64);
            let due = (self.issued + quantum) as u128 * 1_000_000_000 / rate as u128;
            wake = wake.min(due.min(u64::MAX as u128) as u64);
        }
        wake
    }

    /// Counts as lost every measured request whose time is up, and frees
    /// its slot.
    fn expire(&mut self, now: u64) {
        while let Some(&(slot, id, sent_ns)) = self.deadlines.front() {
            if sent_ns.saturating_add(self.timeout_ns) > now {
                break;
            }
            self.deadlines.pop_front();
            let s = &mut self.slots[slot as usize];
            if s.id != id {
                continue;
            }
            if s.measured {
                self.lost += 1;
                self.measured_in_flight -= 1;
            }
            s.prev = id;
            s.prev_answered = false;
            s.id = NONE;
            self.in_flight[s.socket as usize] -= 1;
            self.free.push(slot);
        }
    }

    /// Sends what the window or the rate allows now; returns how many.
    fn send(&mut self, now: u64) -> Result<usize> {
        let mut total = 0;
        let k = self.sockets.len();
        match self.config.rate {
            None => {
                for i in 0..k {
                    loop {
                        let room = self.share[i] - self.in_flight[i];
                        if room == 0 {
                            break;
                        }
                        let n = self.send_batch(i, room.min(BATCH), now)?;
                        total += n;
                        if n < room.min(BATCH) {
                            break;
                        }
                    }
                }
            }
            Some(rate) => {
                let due = (now as u128 * rate as u128 / 1_000_000_000) as u64;
                let mut i = (self.issued as usize / BATCH) % k;
                while self.issued < due && !self.count_reached() {
                    let want = (due - self.issued).min(BATCH as u64) as usize;
                    let want = match self.config.count {
                        Some(c) if now >= self.warm_end_ns => want.min((c - self.sent) as usize),
                        _ => want,
                    };
                    let n = self.send_batch(i, want, now)?;
                    total += n;
                    self.issued += want as u64;
                    if now >= self.warm_end_ns {
                        self.unsent += (want - n) as u64;
                    }
                    i = (i + 1) % k;
                }
            }
        }
        Ok(total)
    }

    /// Sends up to `want` new requests on socket `i`; returns how many left.
    fn send_batch(&mut self, i: usize, want: usize, now: u64) -> Result<usize> {
        let measured = now >= self.warm_end_ns;
        let want = match (self.config.count, measured) {
            (Some(c), true) => want.min(c.saturating_sub(self.sent) as usize),
            _ => want,
        };
        self.staged.clear();
        while self.staged.len() < want {
            let Some(slot) = self.free.pop() else { break };
            self.seq += 1;
            let id = (self.seq << SLOT_BITS) | u64::from(slot);
            let s = &mut self.slots[slot as usize];
            s.id = id;
            s.sent_ns = now;
            s.measured = measured;
            s.socket = i as u32;
            self.requests[self.staged.len()][..ID_BYTES].copy_from_slice(&id.to_le_bytes());
            self.staged.push(slot);
        }
        let n = self.staged.len();
        if n == 0 {
            return Ok(0);
        }
        self.failed[..n].fill(false);
        let server = self.config.server;
        let failed = &mut self.failed;
        let mut hard_error = None;
        let msgs = self.requests[..n].iter().map(|r| Outgoing {
            payload: r,
            peer: server,
            local: None,
        });
        self.writer.write(&self.sockets[i], msgs, |j, e| {
            failed[j] = true;
            if !is_transient(&e) && hard_error.is_none() {
                hard_error = Some(e);
            }
        });
        let mut sent = 0;
        for j in 0..n {
            let slot = self.staged[j];
            let s = &mut self.slots[slot as usize];
            if self.failed[j] {
                // Never left: the slot is free again and nothing is counted.
                s.id = NONE;
                self.free.push(slot);
                continue;
            }
            sent += 1;
            self.in_flight[i] += 1;
            if measured {
                self.sent += 1;
                self.measured_in_flight += 1;
            }
            self.deadlines.push_back((slot, s.id, now));
        }
        if let Some(e) = hard_error {
            return Err(e.into());
        }
        Ok(sent)
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
                    // Nothing more to read (WouldBlock), or an ICMP report
                    // of an earlier datagram: go on with the next socket.
                    Err(e) if is_transient(&e) => break,
                    Err(e) => return Err(e.into()),
                }
                let n = self.metas.len();
                if n == 0 {
                    break;
                }
                total += n;
                let now = self.now_ns();
                for j in 0..n {
                    let meta = self.metas[j];
                    self.check(j, meta, now);
                }
                if n < self.replies.len() {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Matches one reply to its request and counts it.
    fn check(&mut self, j: usize, meta: Meta, now: u64) {
        let counting = now >= self.warm_end_ns;
        let reply = &self.replies[j];
        let Some(id) = (meta.peer == Some(self.config.server) && !meta.truncated)
            .then(|| parse(reply, self.config.payload))
            .flatten()
        else {
            if counting {
                self.bad += 1;
            }
            return;
        };
        let slot = (id & SLOT_MASK) as usize;
        let Some(s) = self.slots.get_mut(slot) else {
            if counting {
                self.bad += 1;
            }
            return;
        };
        if s.id == id {
            if s.measured {
                self.answered += 1;
                self.measured_in_flight -= 1;
                self.hist
                    .saturating_record(now.saturating_sub(s.sent_ns).max(1));
                self.last_reply_ns = now;
            }
            s.prev = id;
            s.prev_answered = true;
            s.id = NONE;
            self.in_flight[s.socket as usize] -= 1;
            self.free.push(slot as u32);
            return;
        }
        if !counting {
            return;
        }
        if (id >> SLOT_BITS) == 0 || (id >> SLOT_BITS) > self.seq {
            // Never sent: not a greeting of ours.
            self.bad += 1;
        } else if s.prev == id && s.prev_answered {
            self.duplicates += 1;
        } else {
            // Counted lost already, or too old to tell.
            self.late += 1;
        }
    }

    fn report(&self, done: bool) -> BenchReport {
        let now = if done {
            self.last_reply_ns
        } else {
            self.now_ns()
        };
        let measured = now.saturating_sub(self.warm_end_ns);
        let elapsed = if done {
            measured.max(self.end_ns - self.warm_end_ns)
        } else {
            measured
        };
        let q = |q: f64| Duration::from_nanos(self.hist.value_at_quantile(q));
        let rtt = if self.hist.is_empty() {
            Rtt::default()
        } else {
            Rtt {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: Duration::from_nanos(self.hist.max()),
            }
        };
        BenchReport {
            config: self.config.clone(),
            sent: self.sent,
            replies: self.answered,
            lost: self.lost,
            bad: self.bad,
            duplicates: self.duplicates,
            late: self.late,
            unsent: self.unsent,
            elapsed: Duration::from_nanos(elapsed),
            rtt,
        }
    }
}

/// The filler byte at position `i` of every request.
fn filler(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

/// The id of `reply` if it is exactly the greeting of a request of
/// `payload` bytes.
fn parse(reply: &[u8], payload: usize) -> Option<u64> {
    if reply.len() != PREFIX.len() + payload + SUFFIX.len()
        || !reply.starts_with(PREFIX)
        || !reply.ends_with(SUFFIX)
    {
        return None;
    }
    let body = &reply[PREFIX.len()..PREFIX.len() + payload];
    let (id, pad) = body.split_at(ID_BYTES);
    if pad
        .iter()
        .enumerate()
        .any(|(i, &b)| b != filler(i + ID_BYTES))
    {
        return None;
    }
    let mut bytes = [0u8; ID_BYTES];
    bytes.copy_from_slice(id);
    Some(u64::from_le_bytes(bytes))
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// A non-blocking socket of the server's address family; on the loopback
/// address when the server is there, so test traffic stays on it.
fn client_socket(server: SocketAddr) -> io::Result<UdpSocket> {
    let ip: IpAddr = match server.ip() {
        ip if ip.is_loopback() => ip,
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = Socket::new(
        Domain::for_address(server),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    // Best effort: a smaller buffer only makes bursts likelier to drop.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    // Connected: the kernel looks the route up once, not per datagram, and
    // drops datagrams from any other address before they reach the bench.
    socket.connect(&server.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Sleeps until a socket has something to read or `wait` has passed.
#[cfg(unix)]
fn wait_readable(sockets: &[UdpSocket], wait: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    #[cfg(target_os = "linux")]
    let rc = {
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `fds` and `ts` outlive the call; the length is `fds`'s own.
        unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        }
    };
    #[cfg(not(target_os = "linux"))]
    let rc = {
        let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` outlives the call; the length is its own.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) }
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn wait_readable(_sockets: &[UdpSocket], wait: Duration) -> io::Result<()> {
    std::thread::sleep(wait.min(Duration::from_millis(1)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::greeting::greet;

    #[test]
    fn parse_exact() {
        let mut req = vec![0u8; 16];
        req[..8].copy_from_slice(&42u64.to_le_bytes());
        for (i, b) in req.iter_mut().enumerate().skip(8) {
            *b = filler(i);
        }
        let reply = greet(&req);
        assert_eq!(parse(&reply, 16), Some(42));
        assert_eq!(parse(&reply, 15), None);
        let mut wrong = reply.clone();
        wrong[20] ^= 1;
        assert_eq!(parse(&wrong, 16), None);
        let mut longer = reply.clone();
        longer.push(b'!');
        assert_eq!(parse(&longer, 16), None);
    }

    #[test]
    fn invalid() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut c = BenchConfig::new(addr);
        c.payload = 7;
        assert!(c.validate().is_err());
        let mut c = BenchConfig::new(addr);
        c.window = 0;
        assert!(c.validate().is_err());
        c.rate = Some(10);
        assert!(c.validate().is_ok());
        assert!(c.slots() >= 12);
    }
}
