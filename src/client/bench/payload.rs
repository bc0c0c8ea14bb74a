//! The bytes of a request, and what a reply must be to answer it: the
//! id at the start of each request, the filler after it, and the reply
//! each `Expect` asks for; or the caller's own requests, in turn, and the
//! reply each asks for.

use super::config::{BenchConfig, Expect};
use super::table::sequence;
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

/// The longest reply a run of `config` expects: one byte more shows that
/// a reply is longer.
pub(super) fn reply_room(config: &BenchConfig) -> usize {
    if config.requests.is_empty() {
        return reply_len(config.expect, config.payload);
    }
    config
        .requests
        .iter()
        .map(|r| reply_len(config.expect, r.len()))
        .max()
        .unwrap_or(0)
}

/// Writes request `id` into `buf`: its id over the filler already there,
/// or the one of the caller's `given` requests whose turn it is.
pub(super) fn write_request(buf: &mut Vec<u8>, id: u64, given: &[Vec<u8>]) {
    match turn(id, given) {
        None => buf[..ID_BYTES].copy_from_slice(&id.to_le_bytes()),
        Some(request) => {
            buf.clear();
            buf.extend_from_slice(request);
        }
    }
}

/// Which of the caller's `given` requests request `id` sends: they go in
/// turn, the first again after the last. `None` when none is given.
pub(super) fn turn(id: u64, given: &[Vec<u8>]) -> Option<&[u8]> {
    let n = given.len() as u64;
    let k = sequence(id).saturating_sub(1).checked_rem(n)?;
    given.get(k as usize).map(Vec::as_slice)
}

/// Whether `reply` is what `expect` makes of `request`, one of the
/// caller's own: its greeting, itself, or (`Expect::Any`) anything.
pub(super) fn answers(reply: &[u8], request: &[u8], expect: Expect) -> bool {
    match expect {
        Expect::Greeting => {
            reply.len() == reply_len(expect, request.len())
                && reply
                    .strip_prefix(PREFIX)
                    .and_then(|r| r.strip_suffix(SUFFIX))
                    == Some(request)
        }
        Expect::Echo => reply == request,
        Expect::Any => true,
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
    fn given_requests() {
        let given = vec![b"GET a".to_vec(), b"".to_vec()];
        let id = |seq: u64| (seq << 24) | 5;
        assert_eq!(turn(id(1), &given), Some(&b"GET a"[..]));
        assert_eq!(turn(id(2), &given), Some(&b""[..]));
        assert_eq!(turn(id(3), &given), Some(&b"GET a"[..]), "in turn");
        assert_eq!(turn(id(3), &[]), None);
        let mut buf = super::request(16);
        write_request(&mut buf, id(2), &given);
        assert!(buf.is_empty());
        write_request(&mut buf, id(3), &given);
        assert_eq!(buf, b"GET a");

        assert!(answers(b"Hello, GET a!", b"GET a", Expect::Greeting));
        assert!(answers(b"Hello, !", b"", Expect::Greeting));
        for wrong in [
            &b"Hello, GET b!"[..],
            b"Hello, GET a!!",
            b"GET a",
            b"Hello, GET a",
        ] {
            assert!(!answers(wrong, b"GET a", Expect::Greeting), "{wrong:?}");
        }
        assert!(answers(b"GET a", b"GET a", Expect::Echo));
        assert!(!answers(b"GET ab", b"GET a", Expect::Echo));
        assert!(answers(b"42", b"GET a", Expect::Any));
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
