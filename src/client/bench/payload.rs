//! The bytes of a request, and what a reply must be to answer it: the
//! id at the start of each request, the filler after it, and the reply
//! each `Expect` asks for.

use super::config::Expect;
use super::ID_BYTES;
use crate::protocol::{MAX_DATAGRAM, PREFIX, SUFFIX};

/// A request of `payload` bytes: the id (written at each send), then the
/// filler.
pub(super) fn request(payload: usize) -> Vec<u8> {
    let mut request = vec![0u8; payload];
    for (i, b) in request.iter_mut().enumerate().skip(ID_BYTES) {
        *b = filler(i);
    }
    request
}

/// The length of the reply expected to a request of `payload` bytes: with
/// `Expect::Any`, the largest a datagram can be.
pub(super) fn reply_len(expect: Expect, payload: usize) -> usize {
    match expect {
        Expect::Greeting => PREFIX.len() + payload + SUFFIX.len(),
        Expect::Echo => payload,
        Expect::Any => MAX_DATAGRAM,
    }
}

/// The filler byte at position `i` of every request.
fn filler(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

/// The id of `reply` if it is exactly what `expect` makes of a request of
/// `payload` bytes.
pub(super) fn parse(reply: &[u8], payload: usize, expect: Expect) -> Option<u64> {
    if reply.len() != reply_len(expect, payload) {
        return None;
    }
    let body = match expect {
        Expect::Greeting => reply.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?,
        Expect::Echo => reply,
        // Nothing of the request comes back: no id to read.
        Expect::Any => return None,
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::greet;

    fn request(id: u64, len: usize) -> Vec<u8> {
        let mut req = vec![0u8; len];
        req[..8].copy_from_slice(&id.to_le_bytes());
        for (i, b) in req.iter_mut().enumerate().skip(8) {
            *b = filler(i);
        }
        req
    }

    #[test]
    fn parse_exact() {
        let req = request(42, 16);
        let reply = greet(&req);
        assert_eq!(parse(&reply, 16, Expect::Greeting), Some(42));
        assert_eq!(parse(&reply, 15, Expect::Greeting), None);
        assert_eq!(
            parse(&reply, 16, Expect::Echo),
            None,
            "a greeting is no echo"
        );
        let mut wrong = reply.clone();
        wrong[20] ^= 1;
        assert_eq!(parse(&wrong, 16, Expect::Greeting), None);
        let mut longer = reply.clone();
        longer.push(b'!');
        assert_eq!(parse(&longer, 16, Expect::Greeting), None);
    }

    #[test]
    fn parse_echo() {
        let req = request(7, 12);
        assert_eq!(parse(&req, 12, Expect::Echo), Some(7));
        assert_eq!(
            parse(&req, 12, Expect::Greeting),
            None,
            "an echo is no greeting"
        );
        assert_eq!(parse(&req[..11], 12, Expect::Echo), None);
        let mut wrong = req.clone();
        wrong[11] ^= 1;
        assert_eq!(parse(&wrong, 12, Expect::Echo), None);
        assert_eq!(reply_len(Expect::Echo, 65_499), 65_499);
        assert_eq!(reply_len(Expect::Greeting, 65_499), 65_507);
    }
}
