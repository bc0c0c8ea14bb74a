//! The protocol: the greeting and the limits of a UDP datagram. Pure bytes
//! in, bytes out; imports nothing.

/// What every greeting starts with: `Hello, `, with its space.
///
/// Bytes, not text: what stands between [`PREFIX`] and [`SUFFIX`] is the
/// request's bytes as they came, so a greeting is made by copying, never by
/// decoding or formatting. The loop guard reads it too: a request that
/// starts with it and ends with [`SUFFIX`] looks like another greeter's
/// reply, and is not answered.
pub(crate) const PREFIX: &[u8] = b"Hello, ";

/// What every greeting ends with: `!`.
///
/// With [`PREFIX`] it makes every reply 8 bytes longer than its request,
/// which is why the largest request that can be greeted
/// ([`MAX_GREETABLE`]) is 8 bytes short of [`MAX_DATAGRAM`].
pub(crate) const SUFFIX: &[u8] = b"!";

/// The largest payload a UDP datagram can carry over IPv4: 65,507 bytes
/// (65,535 − 8 bytes of UDP header − 20 bytes of IP header).
///
/// The server holds requests and replies to it over IPv6 as well (which
/// would allow 20 bytes more), so its limits do not depend on the address
/// family. A datagram this large does not fit in one packet on most links
/// (1,472 bytes of payload over IPv4 on Ethernet): it travels as IP
/// fragments, and losing any one fragment loses the whole datagram.
pub const MAX_DATAGRAM: usize = 65_507;

/// The largest request whose greeting still fits in one datagram: 65,499
/// bytes, [`MAX_DATAGRAM`] less the 8 bytes of `Hello, ` and `!`.
///
/// A larger request is never answered with a cut greeting (the tutorial's
/// `recvfrom(1024)` cut requests silently): it gets no reply, and is
/// counted as `dropped_oversize`.
pub const MAX_GREETABLE: usize = MAX_DATAGRAM - PREFIX.len() - SUFFIX.len();

/// Writes `Hello, ` + `data` + `!` into `reply`, replacing what it held.
///
/// The bytes are copied as they are: no decoding, trimming or newline, so
/// empty, binary and invalid UTF-8 payloads are greeted like any other.
/// Reusing `reply` keeps the hot path free of allocations once it has grown.
///
/// ```
/// let mut reply = Vec::new();
/// udp_greeter::greet_into(b"Michael", &mut reply);
/// assert_eq!(reply, b"Hello, Michael!");
/// ```
pub fn greet_into(data: &[u8], reply: &mut Vec<u8>) {
    reply.clear();
    reply.reserve(PREFIX.len() + data.len() + SUFFIX.len());
    reply.extend_from_slice(PREFIX);
    reply.extend_from_slice(data);
    reply.extend_from_slice(SUFFIX);
}

/// Returns `Hello, ` + `data` + `!` as a new buffer.
///
/// ```
/// assert_eq!(udp_greeter::greet(b"\xff\x00"), b"Hello, \xff\x00!");
/// ```
pub fn greet(data: &[u8]) -> Vec<u8> {
    let mut reply = Vec::with_capacity(PREFIX.len() + data.len() + SUFFIX.len());
    greet_into(data, &mut reply);
    reply
}

/// Whether `payload` has the shape of a greeting: `Hello, ` ... `!`.
///
/// What [`Greeter`](crate::Greeter) refuses to answer: a greeting that
/// reaches a greeter is most likely another greeter's reply.
pub fn is_greeting(payload: &[u8]) -> bool {
    payload.len() >= PREFIX.len() + SUFFIX.len()
        && payload.starts_with(PREFIX)
        && payload.ends_with(SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_recognised() {
        for yes in [b"Hello, !".as_slice(), b"Hello, Bob!", b"Hello, Hello, x!!"] {
            assert!(is_greeting(yes), "{yes:?}");
        }
        for no in [
            b"Hello".as_slice(),
            b"Hello, Bob",
            b"Hello,!",
            b"hello, Bob!",
            b" Hello, Bob!",
            b"!",
        ] {
            assert!(!is_greeting(no), "{no:?}");
        }
    }

    #[test]
    fn empty() {
        assert_eq!(greet(b""), b"Hello, !");
    }

    #[test]
    fn ascii() {
        assert_eq!(greet(b"Michael"), b"Hello, Michael!");
    }

    #[test]
    fn utf8() {
        assert_eq!(greet("世界".as_bytes()), "Hello, 世界!".as_bytes());
    }

    #[test]
    fn invalid_utf8() {
        assert_eq!(greet(b"\xc3\x28\xff"), b"Hello, \xc3\x28\xff!");
    }

    #[test]
    fn largest() {
        let data = vec![b'x'; MAX_GREETABLE];
        let reply = greet(&data);
        assert_eq!(reply.len(), MAX_DATAGRAM);
        assert_eq!(MAX_GREETABLE, 65_499);
        assert!(reply.starts_with(PREFIX) && reply.ends_with(SUFFIX));
        assert_eq!(&reply[PREFIX.len()..reply.len() - 1], &data[..]);
    }

    #[test]
    fn reuse() {
        let mut reply = Vec::new();
        greet_into(b"a long first name", &mut reply);
        greet_into(b"Bo", &mut reply);
        assert_eq!(reply, b"Hello, Bo!");
    }
}
