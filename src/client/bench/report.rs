//! What a run measured, as a table for a person or one JSON object for a
//! script.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::config::BenchConfig;

/// Round-trip times of the replies counted, from an HdrHistogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rtt {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The slowest.
    pub max: Duration,
}

/// What a run measured.
///
/// Every request sent while measuring is either in `replies` or in `lost`
/// once the run is over (`sent == replies + lost`); `bad`, `duplicates` and
/// `late` count extra datagrams.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BenchReport {
    /// The configuration that ran.
    pub config: BenchConfig,
    /// Requests sent while measuring.
    pub sent: u64,
    /// Requests answered with exactly the expected greeting, within the timeout.
    pub replies: u64,
    /// Requests not answered within the timeout.
    pub lost: u64,
    /// Datagrams that were not the greeting of any request sent (wrong
    /// bytes, wrong length, unknown id). The sockets are connected, so the
    /// kernel drops datagrams from any other address before they count.
    pub bad: u64,
    /// Correct greetings for a request already answered.
    pub duplicates: u64,
    /// Correct greetings for a request no longer in flight that had not
    /// been answered before: counted lost already, or too old to tell.
    pub late: u64,
    /// Open loop: requests due that could not be sent (the socket buffer
    /// was full, or every slot was taken).
    pub unsent: u64,
    /// From the end of the warm-up to the last reply counted; at least the
    /// configured duration, or the time until `count` requests were sent.
    pub elapsed: Duration,
    /// Round-trip times of the replies counted; `None` when no reply was.
    pub rtt: Option<Rtt>,
}

/// Which part of a run is going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sending before measuring: nothing counts.
    Warmup,
    /// Sending and counting.
    Measuring,
}

/// A run so far, handed to the progress callback about once a second.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// The part of the run going on.
    pub phase: Phase,
    /// Time spent in this phase.
    pub elapsed: Duration,
    /// Requests sent in this phase.
    pub sent: u64,
    /// Replies counted in this phase.
    pub replies: u64,
    /// Requests lost in this phase.
    pub lost: u64,
}

impl Progress {
    /// The progress of a run of `config` that has not begun.
    pub fn start(config: &BenchConfig) -> Progress {
        Progress {
            phase: if config.warmup.is_zero() {
                Phase::Measuring
            } else {
                Phase::Warmup
            },
            elapsed: Duration::ZERO,
            sent: 0,
            replies: 0,
            lost: 0,
        }
    }

    /// Replies per second of `elapsed`.
    pub fn replies_per_sec(&self) -> f64 {
        per_sec(self.replies, self.elapsed)
    }
}

fn per_sec(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// The report as the JSON object `--json` prints: only what applies to the
/// run's mode, times in seconds or microseconds.
#[derive(Serialize)]
struct Json {
    server: String,
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pacing: Option<&'static str>,
    sending: &'static str,
    payload: usize,
    sockets: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    seconds: f64,
    warmup: f64,
    timeout: f64,
    sent: u64,
    replies: u64,
    lost: u64,
    bad: u64,
    duplicates: u64,
    late: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsent: Option<u64>,
    elapsed_s: f64,
    replies_per_s: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_p90_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_p99_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_p999_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_max_us: Option<f64>,
}

/// Microseconds, to a tenth.
fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

impl BenchReport {
    /// Replies counted per second of `elapsed`.
    pub fn replies_per_sec(&self) -> f64 {
        per_sec(self.replies, self.elapsed)
    }

    /// The report as one JSON object on one line. Closed loop has `window`,
    /// open loop `rate` and `unsent`; the `rtt_*_us` fields are there only
    /// when some reply was measured.
    pub fn to_json(&self) -> String {
        let c = &self.config;
        let open = c.rate.is_some();
        let rtt = |f: fn(&Rtt) -> Duration| self.rtt.as_ref().map(|r| micros(f(r)));
        let json = Json {
            server: c.server.to_string(),
            mode: if open { "open" } else { "closed" },
            window: (!open).then_some(c.window),
            rate: c.rate,
            pacing: open.then_some(c.pacing.name()),
            sending: c.sending.name(),
            payload: c.payload,
            sockets: c.sockets,
            count: c.count,
            seconds: c.duration.as_secs_f64(),
            warmup: c.warmup.as_secs_f64(),
            timeout: c.timeout.as_secs_f64(),
            sent: self.sent,
            replies: self.replies,
            lost: self.lost,
            bad: self.bad,
            duplicates: self.duplicates,
            late: self.late,
            unsent: open.then_some(self.unsent),
            elapsed_s: (self.elapsed.as_secs_f64() * 1e3).round() / 1e3,
            replies_per_s: self.replies_per_sec().round() as u64,
            rtt_p50_us: rtt(|r| r.p50),
            rtt_p90_us: rtt(|r| r.p90),
            rtt_p99_us: rtt(|r| r.p99),
            rtt_p999_us: rtt(|r| r.p999),
            rtt_max_us: rtt(|r| r.max),
        };
        // Numbers, strings and options only: serialising cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let mode = match c.rate {
            Some(r) => format!("open loop at {r} req/s, paced {}", c.pacing.name()),
            None => format!("closed loop, window {}", c.window),
        };
        let us = |d: Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
        writeln!(
            f,
            "bench {}: {mode}, sent {}, {}-byte payload, {} socket{}, {:.1} s after {:.1} s warm-up",
            c.server,
            c.sending.name(),
            c.payload,
            c.sockets,
            if c.sockets == 1 { "" } else { "s" },
            c.duration.as_secs_f64(),
            c.warmup.as_secs_f64()
        )?;
        let mut rows: Vec<(&str, String)> = vec![
            ("sent", self.sent.to_string()),
            ("replies", self.replies.to_string()),
            ("lost", self.lost.to_string()),
            ("bad", self.bad.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("late", self.late.to_string()),
        ];
        if c.rate.is_some() {
            rows.push(("unsent", self.unsent.to_string()));
        }
        rows.push(("elapsed", format!("{:.3} s", self.elapsed.as_secs_f64())));
        rows.push(("replies/s", format!("{:.0}", self.replies_per_sec())));
        match &self.rtt {
            Some(r) => rows.extend([
                ("rtt p50", us(r.p50)),
                ("rtt p90", us(r.p90)),
                ("rtt p99", us(r.p99)),
                ("rtt p99.9", us(r.p999)),
                ("rtt max", us(r.max)),
            ]),
            None => rows.push(("rtt", "no reply measured".to_string())),
        }
        rows.push(("timeout", format!("{:.3} s", c.timeout.as_secs_f64())));
        for (name, value) in rows {
            writeln!(f, "  {name:<12}{value:>18}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rate: Option<u64>, rtt: Option<Rtt>) -> BenchReport {
        let mut config = BenchConfig::new("127.0.0.1:9".parse().unwrap());
        config.rate = rate;
        BenchReport {
            config,
            sent: 10,
            replies: if rtt.is_some() { 10 } else { 0 },
            lost: if rtt.is_some() { 0 } else { 10 },
            bad: 0,
            duplicates: 0,
            late: 0,
            unsent: 0,
            elapsed: Duration::from_secs(5),
            rtt,
        }
    }

    #[test]
    fn json_says_what_applies() {
        let rtt = Rtt {
            p50: Duration::from_nanos(12_345),
            ..Rtt::default()
        };
        let closed: serde_json::Value =
            serde_json::from_str(&report(None, Some(rtt)).to_json()).unwrap();
        assert_eq!(closed["mode"], "closed");
        assert_eq!(closed["window"], 64);
        assert!(closed.get("rate").is_none() && closed.get("unsent").is_none());
        assert_eq!(closed["rtt_p50_us"], 12.3);
        assert_eq!(closed["replies_per_s"], 2);
        let open: serde_json::Value =
            serde_json::from_str(&report(Some(100), None).to_json()).unwrap();
        assert_eq!(open["mode"], "open");
        assert!(open.get("window").is_none());
        assert_eq!(open["rate"], 100);
        assert_eq!(open["unsent"], 0);
        assert_eq!(
            (open["pacing"].as_str(), open["sending"].as_str()),
            (Some("even"), Some("batched"))
        );
        assert!(closed.get("pacing").is_none());
        assert!(open.get("rtt_p50_us").is_none(), "no percentile unmeasured");
        let table = report(Some(100), None).to_string();
        assert!(table.contains("no reply measured") && !table.contains("p50"));
    }
}
