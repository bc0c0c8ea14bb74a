//! A per-source rate limit with a fixed memory footprint.
//!
//! Token buckets live in a fixed-size table indexed by a keyed hash of the
//! source IP address, the way BIND's response rate limiting and Unbound's
//! `ip-ratelimit` keep theirs: a flood from any number of spoofed addresses
//! can only share buckets, never add them. Sources that collide share one
//! bucket, which can only make the limit stricter for them, never looser.
//!
//! The buckets are exact: credit is earned by the nanosecond in billionths
//! of a reply, so no refill is rounded, and a source that sends faster than
//! the rate gets the rate, however its datagrams are spaced.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Instant;

/// How many slots the server's table holds: 65,536 buckets, about 1.5 MiB
/// whatever arrives; with N sources active, a source shares its slot (and
/// so its allowance) with odds of about N in 65,536.
pub(crate) const DEFAULT_SLOTS: usize = 1 << 16;

/// One whole reply's worth of credit: credit is kept in billionths of a
/// reply, so that a refill of `rate` × nanoseconds is always whole and none
/// of it is rounded away.
const REPLY: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Credit left, in billionths of a reply ([`REPLY`] is one).
    credit: u64,
    /// When the bucket was last refilled, in nanoseconds since the epoch.
    last_ns: u64,
    /// Whether the bucket has been used; an unused one starts full.
    used: bool,
}

impl Bucket {
    /// Adds what `elapsed_ns` earns at `rate` replies a second, keeping at
    /// most `burst` whole replies. The part of a reply still being earned is
    /// kept even in a full bucket: dropping it would cost a flooding source
    /// up to the time between two of its datagrams on every reply, so a
    /// limit of 7,000/s would give a source flooding at 50,000/s with burst
    /// 1 only 6,250.
    fn refill(&mut self, rate: u64, burst: u64, elapsed_ns: u64) {
        let earned = u128::from(rate) * u128::from(elapsed_ns);
        let credit = u128::from(self.credit) + earned;
        self.credit = match u64::try_from(credit) {
            Ok(c) if c / REPLY <= burst => c,
            Ok(c) => burst * REPLY + c % REPLY,
            // Only after hours idle at a high rate: full whichever way.
            Err(_) => burst * REPLY + (credit % u128::from(REPLY)) as u64,
        };
    }
}

/// Token buckets per source IP address, in a table that never grows.
///
/// A source gets `burst` replies back to back, and one that keeps sending
/// gets `rate` a second after that, exactly. A full bucket keeps the part
/// of a reply it is still earning, so over any stretch of t seconds a
/// source gets fewer than `burst` + 1 + `rate` × t replies.
///
/// Not shared: the receiver thread owns it, so it needs no lock.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: u64,
    burst: u64,
    buckets: Box<[Bucket]>,
    hasher: RandomState,
    epoch: Instant,
}

impl RateLimiter {
    /// A limiter allowing `rate` replies per second to each source, with
    /// bursts of up to `burst` (at least 1), in a table of `slots` buckets
    /// (at least 1).
    pub(crate) fn new(rate: u32, burst: u32, slots: usize) -> RateLimiter {
        RateLimiter {
            rate: u64::from(rate),
            burst: u64::from(burst.max(1)),
            buckets: vec![Bucket::default(); slots.max(1)].into_boxed_slice(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Whether a datagram from `ip` may be answered at `now` (one clock
    /// read for a whole batch); takes a token if so.
    pub(crate) fn check_at(&mut self, ip: IpAddr, now: Instant) -> bool {
        // Whole nanoseconds: 584 years from the epoch fit.
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let slot = self.slot(ip);
        let (rate, burst) = (self.rate, self.burst);
        let b = &mut self.buckets[slot];
        if !b.used {
            *b = Bucket {
                credit: burst * REPLY,
                last_ns: now_ns,
                used: true,
            };
        }
        // A time before the last refill (an older clock read) earns nothing
        // and moves nothing back.
        b.refill(rate, burst, now_ns.saturating_sub(b.last_ns));
        b.last_ns = b.last_ns.max(now_ns);
        if b.credit >= REPLY {
            b.credit -= REPLY;
            true
        } else {
            false
        }
    }

    /// Bytes of memory the table holds: fixed when it is made.
    #[cfg(test)]
    pub(crate) fn memory(&self) -> usize {
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
    use proptest::collection::vec;
    use proptest::prelude::*;
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

    /// A flood from 100,000 different addresses leaves the fixed table
    /// working: a second later any source gets its whole burst, and no more.
    #[test]
    fn flood_leaves_the_table_working() {
        let mut limiter = RateLimiter::new(5, 5, DEFAULT_SLOTS);
        let now = Instant::now();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for i in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ip = if i % 2 == 0 {
                IpAddr::V4(Ipv4Addr::from(x as u32))
            } else {
                IpAddr::V6(std::net::Ipv6Addr::from(
                    u128::from(x) << 64 | u128::from(i),
                ))
            };
            limiter.check_at(ip, now);
        }
        let later = now + Duration::from_secs(1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed = (0..10).filter(|_| limiter.check_at(ip, later)).count();
        assert_eq!(allowed, 5);
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

    /// The token bucket in exact integers, as plainly as it can be said:
    /// credit in billionths of a reply (exact, since time is in whole
    /// nanoseconds), `rate` × elapsed added, whole replies beyond the burst
    /// dropped but the part of one still being earned kept.
    struct Model {
        rate: u128,
        burst: u128,
        /// Credit and the time of the last check, once there was one.
        state: Option<(u128, u128)>,
    }

    impl Model {
        fn check(&mut self, t_ns: u128) -> bool {
            const ONE: u128 = 1_000_000_000;
            let (mut credit, last) = self.state.unwrap_or((self.burst * ONE, t_ns));
            credit += self.rate * (t_ns - last);
            if credit / ONE > self.burst {
                credit = self.burst * ONE + credit % ONE;
            }
            let admit = credit >= ONE;
            if admit {
                credit -= ONE;
            }
            self.state = Some((credit, t_ns));
            admit
        }
    }

    /// Gaps between checks: the same instant, a few nanoseconds, the
    /// microseconds of a flood, the milliseconds of a trickle, and days.
    fn gap() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            1..=1_000u64,
            1..=100_000u64,
            1..=2_000_000_000u64,
            1..=400_000_000_000_000u64,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn decides_as_the_exact_bucket(
            rate in prop_oneof![1..=1_000_000u32, 1..=u32::MAX],
            burst in prop_oneof![1..=10u32, 1..=u32::MAX],
            gaps in vec(gap(), 1..300),
        ) {
            // One slot: every source shares it, so the address is moot.
            let mut limiter = RateLimiter::new(rate, burst, 1);
            let mut model = Model { rate: rate.into(), burst: burst.into(), state: None };
            let start = Instant::now();
            let ip: IpAddr = "192.0.2.9".parse().unwrap();
            let mut t = 0u64;
            for (i, gap) in gaps.into_iter().enumerate() {
                t += gap;
                let got = limiter.check_at(ip, start + Duration::from_nanos(t));
                prop_assert_eq!(got, model.check(t.into()), "check {} at {} ns", i, t);
            }
        }
    }

    /// Admitted of a flood at `flood` datagrams a second from one source,
    /// `secs` simulated seconds long, its gaps spread evenly from half to
    /// one and a half times their mean, as a real flood's are uneven.
    fn flood(rate: u32, burst: u32, flood: u64, secs: u64) -> u64 {
        let mut limiter = RateLimiter::new(rate, burst, 64);
        let ip: IpAddr = "198.51.100.4".parse().unwrap();
        let start = Instant::now();
        let mean = 1_000_000_000 / flood;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let (mut t, mut admitted) = (0, 0);
        while t < secs * 1_000_000_000 {
            admitted += u64::from(limiter.check_at(ip, start + Duration::from_nanos(t)));
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += mean / 2 + x % mean;
        }
        admitted
    }

    /// A source flooding faster than its limit gets the limit, within 3 %:
    /// its burst, then `rate` a second.
    #[test]
    fn flood_gets_its_rate() {
        let mut wrong = Vec::new();
        for (flood_rate, secs) in [(50_000, 2), (1_000_000, 1)] {
            for rate in [100, 300, 1_000, 7_000, 100_000] {
                for burst in [1, 20] {
                    let got = flood(rate, burst, flood_rate, secs);
                    let want = u64::from(burst) + u64::from(rate).min(flood_rate) * secs;
                    let ratio = got as f64 / want as f64;
                    if !(0.97..=1.03).contains(&ratio) {
                        wrong.push(format!(
                            "rate {rate}/s burst {burst} under {flood_rate}/s: \
                             {got} of {want} ({ratio:.3}x)"
                        ));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn mapped_is_v4() {
        let mut l = RateLimiter::new(1, 1, 1 << 16);
        let t = Instant::now();
        assert!(l.check_at("192.0.2.7".parse().unwrap(), t));
        assert!(!l.check_at("::ffff:192.0.2.7".parse().unwrap(), t));
    }
}
