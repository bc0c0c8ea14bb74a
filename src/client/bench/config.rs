//! What a run sends, how hard, and for how long.

use std::net::SocketAddr;
use std::time::Duration;

use super::table::MAX_SLOTS;
use super::{BATCH, ID_BYTES, MAX_LAG, TURN};
use crate::error::{Error, Result};
use crate::protocol::{MAX_DATAGRAM, MAX_GREETABLE};

/// The most client sockets one run may use: 1,024.
///
/// Each socket has a source port of its own, and so stands for one more
/// client: `SO_REUSEPORT` and load balancers spread traffic by source
/// address and port, and many sockets are how one generator looks like
/// many clients to them. Each is also one more file descriptor that the
/// generator's single thread sends on, reads and polls; the cap bounds
/// that work. In a closed loop each socket needs a request in flight, so
/// there may be no more sockets than the window.
pub const MAX_SOCKETS: usize = 1024;

/// How the generator hands its requests to the kernel: what the server
/// then sees on the wire and how much the generator spends per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sending {
    /// One `sendmmsg` of separate datagrams per batch: each request its own
    /// datagram, as on a real network, for one system call per batch.
    Batched,
    /// One `send` per request, as most clients do: the dearest for the
    /// generator.
    Single,
    /// Runs of requests to the server as one `UDP_SEGMENT` send, split by
    /// the kernel: the cheapest for the generator, but the server reads
    /// whole runs at once, a shape few real clients make.
    Segmented,
}

impl Sending {
    /// Its name, as reports show it.
    pub fn name(self) -> &'static str {
        match self {
            Sending::Batched => "batched",
            Sending::Single => "single",
            Sending::Segmented => "segmented",
        }
    }
}

/// Open loop: how the sends are spread over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pacing {
    /// Each request at its own due time, datagram by datagram.
    Even,
    /// A tenth of a millisecond's worth at a time (at most one batch).
    Bursts,
}

impl Pacing {
    /// Its name, as reports show it.
    pub fn name(self) -> &'static str {
        match self {
            Pacing::Even => "even",
            Pacing::Bursts => "bursts",
        }
    }
}

/// What a reply must be for the request it answers, and so how a reply
/// finds its request: by the id it brings back, or by order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expect {
    /// `Hello, ` + the request + `!`, as udp-greeter answers.
    Greeting,
    /// The request itself, byte for byte, as any UDP echo service answers.
    Echo,
    /// Any datagram from the server, whatever its bytes and length: for a
    /// service whose replies carry nothing of the request (a key lookup, a
    /// time service).
    ///
    /// With no id to match, replies are matched to requests in order, per
    /// socket: a reply answers the oldest request in flight on the socket
    /// it came to. With one request in flight per socket (a window of one
    /// per socket) the match is exact, as long as no reply comes after its
    /// request's timeout. With more, the round-trip times are only as good
    /// as the service's order: a reply to a later request, should the
    /// service reorder replies or drop one, is timed against the oldest;
    /// a lost request's place is taken by the next reply, so with losses
    /// round trips can be understated, and a reply that comes after its
    /// timeout is taken for the next request's.
    ///
    /// The counts: `replies` and `lost` add up to `sent` as ever, and with
    /// losses the right number of requests is lost, if not always the
    /// right requests. `late` counts datagrams from the server that came
    /// while no request was in flight on their socket (most likely replies
    /// to requests already counted lost). `duplicates` stays 0: a second
    /// reply cannot be told from the reply to the next request, and counts
    /// as that. `bad` stays 0 as well, since the sockets are connected and
    /// the kernel drops datagrams from any other address.
    Any,
}

impl Expect {
    /// Its name, as reports show it.
    pub fn name(self) -> &'static str {
        match self {
            Expect::Greeting => "greeting",
            Expect::Echo => "echo",
            Expect::Any => "any",
        }
    }
}

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
    /// Bytes per request, at least [`ID_BYTES`]. Ignored when `requests`
    /// are given.
    pub payload: usize,
    /// The caller's own requests, sent in turn (the first again after the
    /// last), each byte for byte; empty: requests of `payload` bytes that
    /// carry their id. With no id to come back, each reply is taken for
    /// the oldest request in flight on its socket that it answers
    /// (`Expect::Greeting`: whose greeting it is; `Echo`: which it
    /// repeats; `Any`: whichever). A reply that answers none of the
    /// requests is `bad`; one that answers only requests no longer in
    /// flight is `late`; `duplicates` stays 0, as with [`Expect::Any`].
    pub requests: Vec<Vec<u8>>,
    /// How many client sockets (source ports) share the load.
    pub sockets: usize,
    /// How long a request waits for its reply before it counts as lost (and,
    /// in a closed loop, its slot is refilled).
    pub timeout: Duration,
    /// Stops sending after this many requests while measuring, even if
    /// `duration` has not passed.
    pub count: Option<u64>,
    /// How requests are handed to the kernel.
    pub sending: Sending,
    /// Open loop: how sends are spread over time.
    pub pacing: Pacing,
    /// What the service under test answers: anything else is `bad`. With
    /// [`Expect::Any`], replies are matched to requests in order.
    pub expect: Expect,
}

impl BenchConfig {
    /// The defaults against `server`: a closed loop of 64 requests in
    /// flight, 16-byte payloads, one socket, 5 s after a 1 s warm-up, 1 s
    /// timeout; requests sent as separate datagrams in batches, paced
    /// evenly in an open loop; greetings expected back.
    pub fn new(server: SocketAddr) -> BenchConfig {
        BenchConfig {
            server,
            window: 64,
            rate: None,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            payload: 16,
            requests: Vec::new(),
            sockets: 1,
            timeout: Duration::from_secs(1),
            count: None,
            sending: Sending::Batched,
            pacing: Pacing::Even,
            expect: Expect::Greeting,
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
        self.validate_requests()?;
        if self.rate.is_none() && self.sockets > self.window {
            return Err(Error::config(
                "a closed loop needs at least one request in flight per socket: \
                 sockets must be at most the window",
            ));
        }
        if !(1..=MAX_SOCKETS).contains(&self.sockets) {
            return Err(Error::config(format!(
                "sockets must be from 1 to {MAX_SOCKETS}"
            )));
        }
        if self.duration.is_zero() {
            return Err(Error::config("duration must be more than 0"));
        }
        if self.count == Some(0) {
            return Err(Error::config("count must be at least 1"));
        }
        if self.server.port() == 0 {
            return Err(Error::config("the server's port cannot be 0"));
        }
        if self.timeout < Duration::from_millis(1) {
            return Err(Error::config("timeout must be at least 1 ms"));
        }
        Ok(())
    }

    /// Checks that each of the caller's requests, and what it asks for,
    /// fits a datagram.
    fn validate_requests(&self) -> Result<()> {
        let (most, why) = match self.expect {
            Expect::Greeting => (MAX_GREETABLE, ", so that its greeting fits a datagram"),
            Expect::Echo | Expect::Any => (MAX_DATAGRAM, ", what a datagram carries"),
        };
        let n = self.requests.len();
        match self.requests.iter().position(|r| r.len() > most) {
            Some(i) => Err(Error::config(format!(
                "request {} of {n} is {} bytes: at most {most}{why}",
                i + 1,
                self.requests[i].len()
            ))),
            None => Ok(()),
        }
    }

    /// How many requests can be in flight at once.
    pub(super) fn slots(&self) -> usize {
        match self.rate {
            None => self.window,
            // Everything sent within one timeout may still be out; a
            // generator catching up sends up to MAX_LAG's worth on top, and
            // expiry may wait a turn of sending. A quarter more for margin.
            Some(rate) => {
                let span = self.timeout.saturating_add(MAX_LAG + TURN);
                let within = rate as f64 * span.as_secs_f64() * 1.25;
                (within as usize + BATCH * self.sockets).min(MAX_SLOTS)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        c.count = Some(0);
        assert!(c.validate().is_err());
        let c = BenchConfig::new("127.0.0.1:0".parse().unwrap());
        assert!(c.validate().unwrap_err().is_config());
        let mut c = BenchConfig::new(addr);
        c.requests = vec![b"a".to_vec(), vec![0; MAX_GREETABLE + 1]];
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("request 2 of 2 is 65500 bytes"), "{err}");
        c.expect = Expect::Echo;
        assert!(c.validate().is_ok());
        c.requests.push(vec![0; MAX_DATAGRAM + 1]);
        assert!(c.validate().is_err());
    }
}
