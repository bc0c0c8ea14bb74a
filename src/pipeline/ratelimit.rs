//! A per-source rate limit with a fixed memory footprint.
//!
//! Token buckets live in a fixed-size table indexed by a keyed hash of the
//! source IP address, the way BIND's response rate limiting and Unbound's
//! `ip-ratelimit` keep theirs: a flood from any number of spoofed addresses
//! can only share buckets, never add them. Sources that collide share one
//! bucket, which can only make the limit stricter for them, never looser.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Instant;

/// How many slots the server's rate-limit table holds: 65,536.
///
/// A slot is one token bucket: how many replies a source may still get
/// right now, and when that was last topped up. A source's IP address picks
/// its slot through a hash keyed with a random value per table, so nobody
/// outside can tell which addresses share a slot. The table is fixed
/// because a flood may come from any number of forged addresses: a table
/// that grew per source would let it take all memory, while this one stays
/// about 1.5 MiB whatever arrives. Two sources that land in one slot (a
/// collision) share one bucket, and so one allowance: the limit gets
/// stricter for both, never looser. With N sources active at once, a given
/// source shares its slot with odds of about N in 65,536.
pub const DEFAULT_SLOTS: usize = 1 << 16;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Tokens left, in thousandths of a reply.
    milli_tokens: u64,
    /// When the bucket was last refilled, in microseconds since the epoch.
    last_us: u64,
    /// Whether the bucket has been used; an unused one starts full.
    used: bool,
}

/// Token buckets per source IP address, in a table that never grows.
///
/// Not shared: the receiver thread owns it and checks each datagram before
/// queuing it, so it needs no lock.
///
/// ```
/// use std::time::Instant;
/// use udp_greeter::RateLimiter;
///
/// let mut limiter = RateLimiter::new(10, 2, 1024);
/// let now = Instant::now();
/// let ip = "192.0.2.1".parse()?;
/// assert!(limiter.check_at(ip, now));
/// assert!(limiter.check_at(ip, now));
/// assert!(!limiter.check_at(ip, now)); // burst of 2 spent
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RateLimiter {
    rate: u64,
    burst_milli: u64,
    buckets: Box<[Bucket]>,
    hasher: RandomState,
    epoch: Instant,
}

impl RateLimiter {
    /// A limiter allowing `rate` replies per second to each source, with
    /// bursts of up to `burst` (at least 1), in a table of `slots` buckets
    /// (at least 1).
    pub fn new(rate: u32, burst: u32, slots: usize) -> RateLimiter {
        RateLimiter {
            rate: u64::from(rate),
            burst_milli: u64::from(burst.max(1)) * 1000,
            buckets: vec![Bucket::default(); slots.max(1)].into_boxed_slice(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Whether a datagram from `ip` may be answered now; takes a token if so.
    pub fn check(&mut self, ip: IpAddr) -> bool {
        self.check_at(ip, Instant::now())
    }

    /// As [`check`](RateLimiter::check), at a given time, so that many
    /// datagrams of one batch share one clock read.
    pub fn check_at(&mut self, ip: IpAddr, now: Instant) -> bool {
        let now_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        let slot = self.slot(ip);
        let (rate, burst) = (self.rate, self.burst_milli);
        let b = &mut self.buckets[slot];
        if !b.used {
            *b = Bucket {
                milli_tokens: burst,
                last_us: now_us,
                used: true,
            };
        }
        // rate replies/s = rate thousandths of a token per millisecond =
        // rate/1000 thousandths per microsecond.
        let elapsed_us = now_us.saturating_sub(b.last_us);
        let refill = elapsed_us.saturating_mul(rate) / 1000;
        if refill > 0 {
            b.milli_tokens = b.milli_tokens.saturating_add(refill).min(burst);
            b.last_us = now_us;
        }
        if b.milli_tokens >= 1000 {
            b.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// Bytes of memory the table holds: fixed when it is made.
    pub fn memory(&self) -> usize {
        std::mem::size_of::<Self>() + std::mem::size_of_val(&*self.buckets)
    }

    fn slot(&self, ip: IpAddr) -> usize {
        // An IPv4-mapped IPv6 address is the same source as its IPv4 form.
        let h = self.hasher.hash_one(ip.to_canonical());
        (h % self.buckets.len() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    #[test]
    fn refills() {
        let mut l = RateLimiter::new(100, 1, 64);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t = Instant::now();
        assert!(l.check_at(ip, t));
        assert!(!l.check_at(ip, t));
        assert!(!l.check_at(ip, t + Duration::from_millis(5)));
        assert!(l.check_at(ip, t + Duration::from_millis(11)));
    }

    #[test]
    fn sources_apart() {
        let mut l = RateLimiter::new(1, 1, 1 << 16);
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.check_at(a, t));
        assert!(!l.check_at(a, t));
        // With 65,536 slots two addresses share one with odds of 1 in 65,536;
        // the keyed hash changes per limiter, so this cannot fail twice in a row.
        assert!(l.check_at(b, t) || RateLimiter::new(1, 1, 1 << 16).check_at(b, t));
    }

    #[test]
    fn memory_fixed() {
        let mut l = RateLimiter::new(5, 5, 4096);
        let before = l.memory();
        let t = Instant::now();
        for i in 0..100_000u32 {
            l.check_at(IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(2_654_435_761))), t);
        }
        assert_eq!(l.memory(), before);
    }

    #[test]
    fn mapped_is_v4() {
        let mut l = RateLimiter::new(1, 1, 1 << 16);
        let t = Instant::now();
        assert!(l.check_at("192.0.2.7".parse().unwrap(), t));
        assert!(!l.check_at("::ffff:192.0.2.7".parse().unwrap(), t));
    }
}
