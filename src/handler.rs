//! What a worker does with one request: the [`Handler`] trait, the
//! [`Request`] it sees, the [`Answer`] it gives, and the [`Greeter`] that
//! the server runs by default.

use std::net::SocketAddr;

use crate::protocol::greet_into;

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

/// Whether the reply a handler wrote is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Send the reply, even an empty one: a 0-byte datagram is a reply.
    /// Counted as `replied` once the kernel has it.
    Reply,
    /// Send nothing: counted as `declined`, logged nowhere.
    Decline,
}

/// A handler that returns nothing replies.
impl From<()> for Answer {
    fn from((): ()) -> Answer {
        Answer::Reply
    }
}

/// Turns one request into one reply, or into none.
///
/// A worker calls it for each datagram it takes off the queue, and sends
/// the reply on its own clone of the socket. A handler may take its time:
/// it may block on a lookup in a database or a call to another service,
/// and the pool of workers keeps the server answering meanwhile, as many
/// requests at once as there are workers (size `--workers` by requests per
/// second times the time a request takes). What arrives while every worker
/// is busy waits in the queue, and what the full queue cannot hold is
/// dropped and counted.
///
/// A panic is caught by the worker, counted as `worker_panics` and the
/// datagram as `send_failed`, and the worker carries on with the next
/// datagram; to send nothing, return [`Answer::Decline`] instead.
///
/// Some datagrams never reach a handler: those the receiver drops (over
/// the size limit, over the rate limit, on a full queue) and those the loop
/// guard refuses ([`Config::loop_guard`](crate::Config::loop_guard)),
/// among them any request that is itself a greeting (`Hello, ` ... `!`).
///
/// A closure taking `(&Request, &mut Vec<u8>)` is a handler too; it may
/// return an [`Answer`], or nothing to always reply:
///
/// ```
/// use udp_greeter::{greet_into, Answer, Config, Request, Server};
///
/// let server = Server::with_handler(
///     Config::new("127.0.0.1:0".parse()?),
///     |request: &Request<'_>, reply: &mut Vec<u8>| {
///         if request.payload.is_empty() {
///             return Answer::Decline;
///         }
///         greet_into(request.payload, reply);
///         Answer::Reply
///     },
/// )?;
/// server.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Writes the reply to `request` into `reply`, which arrives empty,
    /// and says whether to send it.
    ///
    /// A reply longer than [`MAX_DATAGRAM`](crate::MAX_DATAGRAM) is not sent:
    /// it is counted as `dropped_oversize`.
    fn respond(&self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer;
}

/// The tutorial's greeting: `Hello, ` + request + `!`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Greeter;

impl Handler for Greeter {
    fn respond(&self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
        greet_into(request.payload, reply);
        Answer::Reply
    }
}

impl<F, A> Handler for F
where
    F: Fn(&Request<'_>, &mut Vec<u8>) -> A + Send + Sync + 'static,
    A: Into<Answer>,
{
    fn respond(&self, request: &Request<'_>, reply: &mut Vec<u8>) -> Answer {
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
    }

    #[test]
    fn closures() {
        let always = |r: &Request<'_>, reply: &mut Vec<u8>| reply.extend_from_slice(r.payload);
        let mut reply = Vec::new();
        assert_eq!(always.respond(&request(b"x"), &mut reply), Answer::Reply);
        assert_eq!(reply, b"x");
        let choosy = |r: &Request<'_>, _: &mut Vec<u8>| {
            if r.peer.port() == 5 {
                Answer::Decline
            } else {
                Answer::Reply
            }
        };
        assert_eq!(choosy.respond(&request(b""), &mut reply), Answer::Decline);
    }
}
