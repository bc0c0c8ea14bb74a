//! A clock cheap enough to read around every request: where the system
//! has one, a coarse monotonic clock (Linux: `CLOCK_MONOTONIC_COARSE`, the
//! time of the last scheduler tick, read in user space without touching
//! the hardware clock), a few milliseconds fine; elsewhere `Instant`.

/// Nanoseconds on a monotonic clock, from an arbitrary start; never 0.
pub(crate) fn coarse_nanos() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; clock_gettime(2)
        // writes only into it.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        if rc == 0 {
            let nanos = (ts.tv_sec as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ts.tv_nsec as u64);
            return nanos.max(1);
        }
    }
    since_first_read()
}

/// `Instant` as nanoseconds since the first call, plus one.
fn since_first_read() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward() {
        let a = coarse_nanos();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = coarse_nanos();
        assert!(a > 0 && b > a, "{a} {b}");
        // Coarse: a tick or two off at most, never far.
        let gone = std::time::Duration::from_nanos(b - a);
        assert!(gone >= std::time::Duration::from_millis(20), "{gone:?}");
        assert!(since_first_read() > 0);
    }
}
