//! What a worker does with one request: the [`Handler`] trait, the
//! [`Request`] it sees, the [`Answer`] it gives, and the [`Greeter`] that
//! the server runs by default.

use std::net::SocketAddr;

use crate::protocol::{greet_into, is_greeting};

/// One datagram as a handler sees it: its bytes, who sent it, and the
/// address it reached.
///
/// More fields may come; it is built only by the server (and by
/// [`Request::new`], for a handler's own tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request<'a> {
    /// The datagram's bytes, exactly as received.
    pub payload: &'a [u8],
    /// Who sent it, where the reply goes. An IPv4 client of a dual-stack
    /// socket shows in its IPv4 form (`127.0.0.1:46736`).
    pub peer: SocketAddr,
    /// The server's address it reached. On a wildcard bind this is the
    /// request's destination address where the platform tells it (Linux),
    /// and the wildcard address otherwise.
    pub local: SocketAddr,
}

impl<'a> Request<'a> {
    /// A request of `payload` from `peer` to `local`.
    pub fn new(payload: &'a [u8], peer: SocketAddr, local: SocketAddr) -> Request<'a> {
        Request {
            payload,
            peer,
            local,
        }
    }
}

/// What a worker does with the reply a handler wrote.
///
/// More answers may come, so a `match` on one needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// Send the reply, even an empty one: a 0-byte datagram is a reply.
    /// Counted as `replied` once the kernel has it.
    Reply,
    /// Send nothing, by choice: counted as `declined`, logged nowhere.
    Decline,
    /// Send nothing: the handler could not answer (its database failed,
    /// say). Counted as `handler_failed`, with a warning at most once a
    /// second. What the handler wrote into the reply is never sent: it is
    /// the reason the warning shows (escaped, its first 200 bytes).
    ///
    /// ```
    /// use std::io::Write;
    /// use udp_greeter::{Answer, Request};
    ///
    /// fn respond(_: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
    ///     let _ = write!(reply, "database locked");
    ///     Answer::Fail
    /// }
    /// # let _ = respond;
    /// ```
    Fail,
}

/// A handler that returns nothing replies.
impl From<()> for Answer {
    fn from((): ()) -> Answer {
        Answer::Reply
    }
}

/// Turns one request into one reply, or into none.
///
/// Each worker owns a handler of its own (see
/// [`Builder`](crate::Builder)), so `respond` takes `&mut self` and a
/// handler may hold state no other thread touches. It must be `Send`, to
/// move to its worker's thread, not `Sync`.
///
/// A handler may block (on a database, another service): the other
/// workers keep answering, as many requests at once as there are
/// [`workers`](crate::Config::workers). A panic is caught, counted
/// (`worker_panics`, the datagram as `send_failed`), and the worker goes
/// on with the same handler. Datagrams the receiver drops or the loop
/// guard refuses never reach it.
///
/// A closure taking `(&Request, &mut Vec<u8>)` is a handler too, returning
/// an [`Answer`] or nothing (always reply):
///
/// ```
/// use udp_greeter::{Answer, Config, Request, Server};
///
/// let server = Server::builder(Config::new("127.0.0.1:0".parse()?))
///     .handler(|request: &Request<'_>, reply: &mut Vec<u8>| {
///         if request.payload.is_empty() {
///             return Answer::Decline;
///         }
///         reply.extend(request.payload.iter().rev());
///         Answer::Reply
///     })
///     .start()?;
/// server.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Handler: Send + 'static {
    /// Writes the reply to `request` into `reply`, which arrives empty,
    /// and says whether to send it.
    ///
    /// A reply longer than [`MAX_DATAGRAM`](crate::MAX_DATAGRAM) is not sent:
    /// it is counted as `dropped_oversize`.
    fn respond(&mut self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer;

    /// Whether `payload` has the shape of one of this service's own
    /// replies: most likely another instance's, aimed here by a forged
    /// source to start a loop. Such a datagram is refused before
    /// [`respond`] and counted as `dropped_loop` (unless
    /// [`Config::loop_guard`] is off). `false` by default: a service whose
    /// replies look like any request relies on the rate limit instead
    /// (`docs/protocol.md`, "Loops"). Called for every request: keep it to
    /// a comparison of a few bytes.
    ///
    /// [`respond`]: Handler::respond
    /// [`Config::loop_guard`]: crate::Config::loop_guard
    fn is_reply(&self, payload: &[u8]) -> bool {
        let _ = payload;
        false
    }

    /// Whether every call of [`respond`] returns at once: it computes from
    /// the request alone, in a few microseconds, and never waits on a lock,
    /// a file or the network. While every worker is busy, a worker then
    /// answers a few queued requests in a row and sends their replies in
    /// one system call. The default, `false`, answers one request at a
    /// time, each reply sent as its handler returns, so that a request
    /// that waits holds up no other. [`Greeter`] is quick.
    ///
    /// [`respond`]: Handler::respond
    fn is_quick(&self) -> bool {
        false
    }
}

/// The tutorial's greeting: `Hello, ` + request + `!`.
///
/// It recognises its own replies: a request shaped `Hello, ...!` gets no
/// reply (see [`Handler::is_reply`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Greeter;

impl Handler for Greeter {
    fn respond(&mut self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
        greet_into(request.payload, reply);
        Answer::Reply
    }

    fn is_reply(&self, payload: &[u8]) -> bool {
        is_greeting(payload)
    }

    fn is_quick(&self) -> bool {
        true
    }
}

impl<F, A> Handler for F
where
    F: FnMut(&Request<'_>, &mut Vec<u8>) -> A + Send + 'static,
    A: Into<Answer>,
{
    fn respond(&mut self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
        self(request, reply).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(payload: &[u8]) -> Request<'_> {
        let peer = "127.0.0.1:5".parse().unwrap();
        let local = "127.0.0.1:9999".parse().unwrap();
        Request::new(payload, peer, local)
    }

    #[test]
    fn greeter() {
        let mut reply = Vec::new();
        assert_eq!(Greeter.respond(&request(b"Bo"), &mut reply), Answer::Reply);
        assert_eq!(reply, b"Hello, Bo!");
        assert!(Greeter.is_reply(b"Hello, Bo!"));
        assert!(!Greeter.is_reply(b"Bo"));
    }

    #[test]
    fn closures() {
        let mut always = |r: &Request<'_>, reply: &mut Vec<u8>| reply.extend_from_slice(r.payload);
        let mut reply = Vec::new();
        assert_eq!(always.respond(&request(b"x"), &mut reply), Answer::Reply);
        assert_eq!(reply, b"x");
        assert!(
            !always.is_reply(b"Hello, x!"),
            "a closure recognises no reply"
        );
        let mut choosy = |r: &Request<'_>, _: &mut Vec<u8>| {
            if r.peer.port() == 5 {
                Answer::Decline
            } else {
                Answer::Reply
            }
        };
        assert_eq!(choosy.respond(&request(b""), &mut reply), Answer::Decline);
    }
}
