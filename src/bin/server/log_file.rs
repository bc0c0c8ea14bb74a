//! The `--log-file` writer: whole lines, one write each, and a word on
//! stderr when they cannot be written.
//!
//! simplelog ignores what its writer fails at, so a full disk (or
//! `--log-file /dev/full`) would lose the log without a word. This writer
//! counts the lines lost, says so on stderr at the first and then at most
//! once every [`NOTICE_EVERY`] (a full disk must not flood stderr in turn),
//! and the binary reports the total when it exits.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The least time between two notices on stderr.
pub const NOTICE_EVERY: Duration = Duration::from_secs(60);

/// How many log lines could not be written, readable from any thread.
#[derive(Debug, Clone, Default)]
pub struct Lost(Arc<AtomicU64>);

impl Lost {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The log file, as simplelog's `WriteLogger` writes to it.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    path: PathBuf,
    /// What has come since the last newline: simplelog writes a line in
    /// pieces, and a line is written (and lost) whole.
    pending: Vec<u8>,
    lost: Lost,
    /// Lines lost since the last notice.
    untold: u64,
    last_notice: Option<Instant>,
}

impl LogFile {
    pub fn new(file: File, path: PathBuf) -> LogFile {
        LogFile {
            file,
            path,
            pending: Vec::new(),
            lost: Lost::default(),
            untold: 0,
            last_notice: None,
        }
    }

    /// The count of lost lines, for the report at exit.
    pub fn lost(&self) -> Lost {
        self.lost.clone()
    }

    /// Writes every whole line pending; one write(2), so lines of
    /// processes appending to one file do not interleave.
    fn write_lines(&mut self) {
        let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let result = self.file.write_all(&self.pending[..=end]);
        let lines = self.pending[..=end].iter().filter(|&&b| b == b'\n').count() as u64;
        self.pending.drain(..=end);
        if let Err(e) = result {
            self.failed(lines, &e, Instant::now());
        }
    }

    fn failed(&mut self, lines: u64, e: &io::Error, now: Instant) {
        self.lost.0.fetch_add(lines, Ordering::Relaxed);
        self.untold += lines;
        if self
            .last_notice
            .is_some_and(|t| now.saturating_duration_since(t) < NOTICE_EVERY)
        {
            return;
        }
        let since = if self.last_notice.is_some() {
            "since the last notice"
        } else {
            "so far"
        };
        // Straight to stderr: the log is what is failing, and this runs
        // inside simplelog's lock, which logging from here would take again.
        let _ = writeln!(
            io::stderr().lock(),
            "warning: cannot write to log file {}: {e}; {} {} lost {since} (said at most once a minute)",
            self.path.display(),
            self.untold,
            if self.untold == 1 { "line" } else { "lines" },
        );
        self.untold = 0;
        self.last_notice = Some(now);
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Taken whole: a line that cannot be written is counted and told
        // here, not handed back to a logger that would drop the error.
        self.pending.extend_from_slice(buf);
        if buf.contains(&b'\n') {
            self.write_lines();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.pending.push(b'\n');
            self.write_lines();
        }
        self.file.flush()
    }
}

/// The closing word on lost lines, for stderr; `None` when none was lost.
pub fn report(lost: &Lost, path: &std::path::Path) -> Option<String> {
    let n = lost.count();
    (n > 0).then(|| {
        format!(
            "warning: log writes failed: {n} {} not written to {}",
            if n == 1 { "line" } else { "lines" },
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> LogFile {
        let file = File::options()
            .append(true)
            .open("/dev/full")
            .expect("/dev/full");
        LogFile::new(file, PathBuf::from("/dev/full"))
    }

    #[test]
    fn lines_lost_are_counted_whole() {
        let mut f = full();
        write!(f, "12:00:00 [INFO] ").unwrap();
        write!(f, "one").unwrap();
        assert_eq!(f.lost().count(), 0, "no whole line yet");
        writeln!(f).unwrap();
        assert_eq!(f.lost().count(), 1);
        write!(f, "two\nthree\nfour").unwrap();
        assert_eq!(f.lost().count(), 3);
        f.flush().unwrap_or_default();
        assert_eq!(f.lost().count(), 4);
        assert_eq!(
            report(&f.lost(), std::path::Path::new("/dev/full")).as_deref(),
            Some("warning: log writes failed: 4 lines not written to /dev/full")
        );
    }

    #[test]
    fn notices_at_most_once_a_minute() {
        let mut f = full();
        let e = io::Error::other("full");
        let t0 = Instant::now();
        f.failed(1, &e, t0);
        assert_eq!((f.untold, f.last_notice), (0, Some(t0)));
        f.failed(5, &e, t0 + Duration::from_secs(59));
        assert_eq!((f.untold, f.last_notice), (5, Some(t0)));
        f.failed(1, &e, t0 + NOTICE_EVERY);
        assert_eq!((f.untold, f.last_notice), (0, Some(t0 + NOTICE_EVERY)));
        assert_eq!(f.lost().count(), 7);
    }

    #[test]
    fn nothing_lost_nothing_said() {
        let null = File::options().append(true).open("/dev/null").unwrap();
        let mut f = LogFile::new(null, PathBuf::from("/dev/null"));
        writeln!(f, "fine").unwrap();
        assert_eq!(report(&f.lost(), std::path::Path::new("/dev/null")), None);
    }
}
