//! What a worker does with one request: the [`Handler`] trait and the
//! [`Greeter`] that the server runs by default.

use crate::protocol::greet_into;

/// Turns one request into one reply.
///
/// A worker calls it for each datagram it takes off the queue. It must not
/// block: any I/O belongs to the worker around it. A panic is caught by the
/// worker, counted as `worker_panics` and the datagram as `send_errors`, and
/// the worker carries on with the next datagram.
pub trait Handler: Send + Sync + 'static {
    /// Writes the reply to `request` into `reply`, which arrives empty.
    ///
    /// A reply longer than [`MAX_DATAGRAM`](crate::MAX_DATAGRAM) is not sent:
    /// it is counted as `dropped_oversize`.
    fn respond(&self, request: &[u8], reply: &mut Vec<u8>);
}

/// The tutorial's greeting: `Hello, ` + request + `!`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Greeter;

impl Handler for Greeter {
    fn respond(&self, request: &[u8], reply: &mut Vec<u8>) {
        greet_into(request, reply);
    }
}

impl<F> Handler for F
where
    F: Fn(&[u8], &mut Vec<u8>) + Send + Sync + 'static,
{
    fn respond(&self, request: &[u8], reply: &mut Vec<u8>) {
        self(request, reply)
    }
}
