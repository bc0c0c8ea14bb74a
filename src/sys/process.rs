//! What the process itself uses: its start time, CPU time, memory and file
//! descriptors, for the `process_*` metrics. Read from `/proc/self`,
//! `getrusage(2)`, `getrlimit(2)` and `sysconf(3)` on Linux; elsewhere
//! nothing is read and every value is `None`.

/// The process's use of the machine now; `None` where a value cannot be
/// read.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    /// When the process started, in seconds since the Unix epoch.
    pub(crate) start_time_seconds: Option<f64>,
    /// User and system CPU time spent, in seconds.
    pub(crate) cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub(crate) resident_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub(crate) virtual_bytes: Option<u64>,
    /// File descriptors open.
    pub(crate) open_fds: Option<u64>,
    /// The soft limit on open file descriptors (`ulimit -n`).
    pub(crate) max_fds: Option<u64>,
}

/// Reads every value anew.
pub(crate) fn usage() -> Usage {
    #[cfg(target_os = "linux")]
    {
        let (virtual_bytes, resident_bytes) = linux::memory().unzip();
        Usage {
            start_time_seconds: linux::start_time_seconds(),
            cpu_seconds: linux::cpu_seconds(),
            resident_bytes,
            virtual_bytes,
            open_fds: linux::open_fds(),
            max_fds: linux::max_fds(),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Usage::default()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;
    use std::mem::MaybeUninit;

    /// A `sysconf(3)` value, if the system has one.
    fn sysconf(name: libc::c_int) -> Option<u64> {
        // SAFETY: sysconf reads a configuration value; it touches no memory
        // of the program.
        let value = unsafe { libc::sysconf(name) };
        u64::try_from(value).ok().filter(|&v| v > 0)
    }

    /// Field `n` (counted from 1, as proc(5) does) of `/proc/self/stat`.
    /// The second field, the command name in parentheses, may hold spaces
    /// and parentheses itself: the fields after it are counted from the
    /// last `)`.
    fn stat_field(stat: &str, n: usize) -> Option<&str> {
        let after_name = &stat[stat.rfind(')')? + 1..];
        after_name.split_whitespace().nth(n.checked_sub(3)?)
    }

    pub(super) fn start_time_seconds() -> Option<f64> {
        // Field 22: the start, in clock ticks after boot; `btime`: the
        // boot, in seconds since the epoch.
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        let ticks: u64 = stat_field(&stat, 22)?.parse().ok()?;
        let boot: u64 = fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let per_second = sysconf(libc::_SC_CLK_TCK)?;
        Some(boot as f64 + ticks as f64 / per_second as f64)
    }

    pub(super) fn cpu_seconds() -> Option<f64> {
        let mut usage = MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes one rusage into the pointer it is given,
        // which points to a writable rusage.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: getrusage returned 0, so it filled the rusage in (and
        // all-zero bytes are a valid rusage anyway).
        let usage = unsafe { usage.assume_init() };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
    }

    /// Virtual and resident size, in bytes, from the pages in
    /// `/proc/self/statm`.
    pub(super) fn memory() -> Option<(u64, u64)> {
        let statm = fs::read_to_string("/proc/self/statm").ok()?;
        let mut pages = statm.split_whitespace().map(|p| p.parse::<u64>().ok());
        let (size, resident) = (pages.next()??, pages.next()??);
        let page = sysconf(libc::_SC_PAGESIZE)?;
        Some((size.saturating_mul(page), resident.saturating_mul(page)))
    }

    pub(super) fn open_fds() -> Option<u64> {
        // As the other Prometheus clients count: the entries of
        // /proc/self/fd, the one that reads them included.
        Some(fs::read_dir("/proc/self/fd").ok()?.count() as u64)
    }

    pub(super) fn max_fds() -> Option<u64> {
        let mut limit = MaybeUninit::<libc::rlimit>::zeroed();
        // SAFETY: getrlimit writes one rlimit into the pointer it is given,
        // which points to a writable rlimit.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: getrlimit returned 0, so it filled the rlimit in (and
        // all-zero bytes are a valid rlimit anyway).
        let limit = unsafe { limit.assume_init() };
        Some(limit.rlim_cur)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn fields_after_a_name_with_spaces() {
            let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 999 20";
            assert_eq!(stat_field(stat, 3), Some("S"));
            assert_eq!(stat_field(stat, 4), Some("1"));
            assert_eq!(stat_field(stat, 22), Some("999"));
            assert_eq!(stat_field(stat, 2), None);
        }
    }
}
