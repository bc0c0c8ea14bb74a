//! Sockets, payloads that say who sent them, and floods.

use super::*;

/// A UDP socket on `ip`, port 0.
pub fn socket_on(ip: IpAddr) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddr::new(ip, 0)).expect("bind a test socket");
    s.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    s
}

/// A UDP socket on the loopback address of `server`'s family.
pub fn socket_for(server: SocketAddr) -> UdpSocket {
    socket_on(if server.is_ipv4() { V4 } else { V6 })
}

/// A UDP port on 127.0.0.1 on which nothing listens: bound a moment ago,
/// then closed again.
pub fn free_udp_port() -> u16 {
    socket_on(V4).local_addr().unwrap().port()
}

/// The next datagram on `sock`, or `None` after `timeout`.
pub fn recv_within(sock: &UdpSocket, timeout: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65_536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).expect("read timeout");
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => panic!("recv_from: {e}"),
        }
    }
}

/// Sends `payload` to `server` and returns the first datagram that comes
/// back from it, trying three times; fails the test if none does.
pub fn ask(sock: &UdpSocket, server: SocketAddr, payload: &[u8]) -> Vec<u8> {
    for _ in 0..3 {
        sock.send_to(payload, server).expect("send_to");
        let deadline = Instant::now() + Duration::from_secs(3);
        while let Some((reply, from)) =
            recv_within(sock, deadline.saturating_duration_since(Instant::now()))
        {
            if from == server {
                return reply;
            }
        }
    }
    panic!("no reply from {server} to a {}-byte request", payload.len());
}

/// Sends `payload` to `to` and returns the first datagram that comes back,
/// from whatever address, with that address, trying three times; fails the
/// test if none does. For tests about where replies come from, which
/// [`ask`] would hide by waiting for one from `to` only.
pub fn first_reply(sock: &UdpSocket, to: SocketAddr, payload: &[u8]) -> (Vec<u8>, SocketAddr) {
    for _ in 0..3 {
        sock.send_to(payload, to).expect("send_to");
        if let Some(got) = recv_within(sock, Duration::from_secs(3)) {
            return got;
        }
    }
    panic!("no reply to a {}-byte request to {to}", payload.len());
}

/// Sends `payload`, then a unique sentinel, and returns every datagram that
/// arrived from `server` before the sentinel's greeting.
///
/// With one worker the server answers in the order it receives, and
/// loopback keeps that order; so whatever the payload got back (nothing,
/// or a reply, whole or truncated) arrives before the sentinel's greeting.
pub fn replies_before_sentinel(
    sock: &UdpSocket,
    server: SocketAddr,
    payload: &[u8],
) -> Vec<Vec<u8>> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let sentinel = format!("sentinel-{}", NEXT.fetch_add(1, Ordering::Relaxed)).into_bytes();
    let expected = udp_greeter::greet(&sentinel);
    sock.send_to(payload, server).expect("send_to");
    sock.send_to(&sentinel, server).expect("send_to");
    let mut before = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some((reply, from)) = recv_within(sock, left) else {
            panic!("no greeting for the sentinel within {PATIENCE:?}");
        };
        if from != server {
            continue;
        }
        if reply == expected {
            return before;
        }
        before.push(reply);
    }
}

// ---------------------------------------------------------------------------
// Payloads that say who sent them

/// A payload unique to (`tag`, `seq`), with a length (12 to 75 bytes) and
/// binary tail that vary with them, so a reply can be traced back to its
/// request and checked byte for byte.
pub fn tagged(tag: u32, seq: u32) -> Vec<u8> {
    let mut p = format!("{tag:03}:{seq:07}:").into_bytes();
    let mut x = (u64::from(tag) << 32 | u64::from(seq)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = (x >> 58) as usize;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.push(x as u8);
    }
    p
}

/// The (tag, seq) a greeting of a [`tagged`] payload was made for, if it
/// looks like one. The caller still compares the whole reply.
pub fn tag_of(reply: &[u8]) -> Option<(u32, u32)> {
    let inner = reply.strip_prefix(b"Hello, ")?;
    let head = inner.get(..12)?;
    let text = std::str::from_utf8(head).ok()?;
    let (tag, rest) = text.split_once(':')?;
    let seq = rest.strip_suffix(':')?;
    Some((tag.parse().ok()?, seq.parse().ok()?))
}

// ---------------------------------------------------------------------------
// Floods

/// Threads sending datagrams as fast as they can until stopped, or until
/// their count or time runs out. Dropping it stops them.
pub struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl Flood {
    /// `threads` senders on `from`, each sending `payload` to `target` at
    /// most `max_each` times and for at most `limit`.
    pub fn start(
        target: SocketAddr,
        from: IpAddr,
        threads: usize,
        payload: &[u8],
        max_each: u64,
        limit: Duration,
    ) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + limit;
        let threads = (0..threads)
            .map(|i| {
                let stop = stop.clone();
                let payload = payload.to_vec();
                let sock = socket_on(from);
                thread::Builder::new()
                    .name(format!("flood-{i}"))
                    .spawn(move || {
                        let mut sent = 0;
                        while sent < max_each
                            && !stop.load(Ordering::Relaxed)
                            && Instant::now() < deadline
                        {
                            if sock.send_to(&payload, target).is_ok() {
                                sent += 1;
                            }
                        }
                        sent
                    })
                    .expect("spawn")
            })
            .collect();
        Flood { stop, threads }
    }

    /// Stops every thread and returns how many datagrams they sent.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .drain(..)
            .map(|t| join_within(t, PATIENCE, "flood thread"))
            .sum()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Joins `handle`, failing the test if the thread has not finished within
/// `limit`; re-raises its panic.
pub fn join_within<T>(handle: JoinHandle<T>, limit: Duration, what: &str) -> T {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} did not finish within {limit:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    match handle.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Sets a flag when dropped, so helper threads stop even when the test
/// fails half-way.
pub struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
