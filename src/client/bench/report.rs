//! What a run measured, as a table for a person or one JSON object for a
//! script.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::config::{BenchConfig, Expect};

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
/// Every request sent while measuring is in `replies`, in `lost`, or among
/// the unanswered ones that the drops at the client's own sockets account
/// for, once the run is over: `sent == replies + lost +
/// min(client_dropped, sent - replies)`. `bad`, `duplicates` and `late`
/// count datagrams on top of that: a `late` reply came after its
/// request's timeout, so that request is unanswered and the reply is in no
/// round-trip time. In an open loop, `sent + unsent` is
/// every request the rate asked for while measuring. With
/// [`Expect::Any`] replies are matched by order, not by id: its docs say
/// what the counts and round-trip times then mean.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BenchReport {
    /// The configuration that ran.
    pub config: BenchConfig,
    /// Requests sent while measuring.
    pub sent: u64,
    /// Requests answered with exactly the reply expected, within the
    /// timeout.
    pub replies: u64,
    /// Requests not answered within the timeout (answered late, or never)
    /// that the drops at the client do not account for: lost on the way,
    /// or at the server.
    pub lost: u64,
    /// Datagrams the kernel dropped at the bench's own sockets while
    /// measuring, their receive buffers full (Linux; 0 elsewhere): replies,
    /// mostly, that reached this host while the generator fell behind in
    /// reading. The kernel counts datagrams, whatever they were, so some
    /// may have been late replies or copies.
    pub client_dropped: u64,
    /// Datagrams that were not the reply expected to any request sent
    /// (wrong bytes, wrong length, unknown id). The sockets are connected,
    /// so the kernel drops datagrams from any other address before they
    /// count.
    pub bad: u64,
    /// Replies to a request already answered, or already late.
    pub duplicates: u64,
    /// Replies that came after their request's timeout: the request counts
    /// as lost, the reply in no round-trip time. At most one per lost
    /// request, except for copies of a reply so old that its request can
    /// no longer be told apart.
    pub late: u64,
    /// Open loop: requests due while measuring that did not leave on time:
    /// more than [`MAX_LAG`](super::MAX_LAG) late (the generator fell
    /// behind), refused by a full socket buffer, or without a free slot.
    /// Closed loop: 0, since a request that cannot leave waits its turn.
    pub unsent: u64,
    /// How long requests were sent while measuring: `duration`, or less
    /// when `count` was reached first.
    pub sending: Duration,
    /// From the end of sending until every request measured was answered
    /// or counted lost: at most about the timeout.
    pub tail: Duration,
    /// The measurement, end to end: `sending + tail`.
    pub elapsed: Duration,
    /// Whether `count` ended the sending before `duration` did.
    pub ended_by_count: bool,
    /// Whether the load had a rate: always in an open loop; in a closed
    /// loop, once a reply came back while sending, so that the window
    /// turned over. A closed loop whose requests all left before the first
    /// reply (a `count` within the window, a server slower than
    /// `duration`) sent one burst, and its rates describe nothing.
    pub turned_over: bool,
    /// Round-trip times of the replies counted, none over the timeout;
    /// `None` when no reply was counted.
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

/// The report as the JSON object [`BenchReport::to_json`] writes: only what applies to the
/// run's mode, times in seconds or microseconds. `seconds` is how long the
/// run sent (`BenchReport::sending`), `replies_per_s` the replies over that.
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
    expect: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<usize>,
    /// How many requests of the caller's own go in turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<usize>,
    sockets: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    seconds: f64,
    warmup: f64,
    timeout: f64,
    sent: u64,
    replies: u64,
    lost: u64,
    client_dropped: u64,
    bad: u64,
    duplicates: u64,
    late: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_time_pct: Option<f64>,
    tail_s: f64,
    elapsed_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_per_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replies_per_s: Option<u64>,
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

/// Seconds, to the microsecond.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

/// A share as a percentage, rounded down to a tenth: 100.0 only when
/// nothing is missing.
fn percent(share: f64) -> f64 {
    (share * 1000.0).floor() / 10.0
}

/// A duration in the unit that fits it, to three significant digits:
/// `5.65 s`, `1.23 ms`, `85.1 us`.
fn human(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns == 0.0 {
        return "0 s".to_string();
    }
    let (value, unit) = [(1e9, "s"), (1e6, "ms"), (1e3, "us")]
        .into_iter()
        // Whatever rounds to 1000 of a unit is shown in the next.
        .find(|&(scale, _)| ns >= scale * 0.9995)
        .map_or((ns / 1e3, "us"), |(scale, unit)| (ns / scale, unit));
    let decimals = match value {
        v if v >= 99.95 => 0,
        v if v >= 9.995 => 1,
        _ => 2,
    };
    format!("{value:.decimals$} {unit}")
}

/// A rate per second, whole from 100 up.
fn rate(per_sec: f64) -> String {
    if per_sec >= 99.95 {
        format!("{per_sec:.0}")
    } else {
        format!("{per_sec:.1}")
    }
}

/// What a run sends, in words: `16-byte payload`, `1 request of 5 bytes`,
/// `3 requests of 0 to 9 bytes in turn`.
fn requests(c: &BenchConfig) -> String {
    let lengths = || c.requests.iter().map(Vec::len);
    let (Some(least), Some(most)) = (lengths().min(), lengths().max()) else {
        return format!("{}-byte payload", c.payload);
    };
    let bytes = |n: usize| format!("{n} byte{}", if n == 1 { "" } else { "s" });
    match c.requests.len() {
        1 => format!("1 request of {}", bytes(least)),
        k if least == most => format!("{k} requests of {} in turn", bytes(least)),
        k => format!("{k} requests of {least} to {} in turn", bytes(most)),
    }
}

impl BenchReport {
    /// Replies counted per second of sending: the rate at which requests
    /// got answered, the wait for the last replies (`tail`) left out. Says
    /// something only when the load `turned_over`.
    pub fn replies_per_sec(&self) -> f64 {
        per_sec(self.replies, self.sending)
    }

    /// Requests sent per second of sending.
    pub fn sent_per_sec(&self) -> f64 {
        per_sec(self.sent, self.sending)
    }

    /// Open loop: the share of the requests asked for that left on time,
    /// from 0 to 1; `None` in a closed loop.
    pub fn on_time(&self) -> Option<f64> {
        self.config.rate?;
        let asked = self.sent + self.unsent;
        Some(if asked == 0 {
            1.0
        } else {
            self.sent as f64 / asked as f64
        })
    }

    /// Open loop: whether some request did not leave on time. The figures
    /// then describe the load the generator managed, not the one asked for.
    pub fn fell_behind(&self) -> bool {
        self.config.rate.is_some() && self.unsent > 0
    }

    /// Whether nothing at all came back while measuring: no reply, and no
    /// datagram that was not one. The service declined or failed every
    /// request, dropped them, or nothing listens at its address.
    pub fn nothing_came_back(&self) -> bool {
        self.replies == 0 && self.bad == 0 && self.late == 0 && self.duplicates == 0
    }

    /// The report as one JSON object on one line. Closed loop has `window`,
    /// open loop `rate`, `unsent` and `on_time_pct`, a run of the caller's
    /// own requests `requests` (how many) instead of `payload`; the `rtt_*_us` fields
    /// are there only when some reply was measured, the rates only when
    /// the load had one (`turned_over`). `seconds` is how long
    /// the run sent, `replies_per_s` the replies per second of that.
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
            expect: c.expect.name(),
            payload: c.requests.is_empty().then_some(c.payload),
            requests: (!c.requests.is_empty()).then_some(c.requests.len()),
            sockets: c.sockets,
            count: c.count,
            seconds: secs(self.sending),
            warmup: c.warmup.as_secs_f64(),
            timeout: c.timeout.as_secs_f64(),
            sent: self.sent,
            replies: self.replies,
            lost: self.lost,
            client_dropped: self.client_dropped,
            bad: self.bad,
            duplicates: self.duplicates,
            late: self.late,
            unsent: open.then_some(self.unsent),
            on_time_pct: self.on_time().map(percent),
            tail_s: secs(self.tail),
            elapsed_s: secs(self.elapsed),
            sent_per_s: self.turned_over.then(|| self.sent_per_sec().round() as u64),
            replies_per_s: self
                .turned_over
                .then(|| self.replies_per_sec().round() as u64),
            rtt_p50_us: rtt(|r| r.p50),
            rtt_p90_us: rtt(|r| r.p90),
            rtt_p99_us: rtt(|r| r.p99),
            rtt_p999_us: rtt(|r| r.p999),
            rtt_max_us: rtt(|r| r.max),
        };
        // Numbers, strings and options only: serialising cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// The table's first line: the server, the load, and how long it ran.
    fn header(&self) -> String {
        let c = &self.config;
        let mode = match c.rate {
            Some(r) => format!("open loop at {r} req/s, paced {}", c.pacing.name()),
            None => format!("closed loop, window {}", c.window),
        };
        let expect = match c.expect {
            Expect::Greeting => "",
            Expect::Echo => ", echoes expected",
            Expect::Any => ", any reply taken, in order",
        };
        let ran = match (self.ended_by_count, c.count) {
            (true, Some(n)) => format!("the count of {n} sent in {}", human(self.sending)),
            _ => format!("sent for {}", human(self.sending)),
        };
        let warmup = if c.warmup.is_zero() {
            "no warm-up".to_string()
        } else {
            format!("a {} warm-up", human(c.warmup))
        };
        format!(
            "bench {}: {mode}, sent {}, {}{expect}, {} socket{}; {ran} after {warmup}",
            c.server,
            c.sending.name(),
            requests(c),
            c.sockets,
            if c.sockets == 1 { "" } else { "s" },
        )
    }

    /// The table's rows, name and value: the counts, then the times.
    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("sent", self.sent.to_string()),
            ("replies", self.replies.to_string()),
            ("lost", self.lost.to_string()),
            ("client drops", self.client_dropped.to_string()),
            ("bad", self.bad.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("late", self.late.to_string()),
        ];
        if self.config.rate.is_some() {
            rows.push(("unsent", self.unsent.to_string()));
        }
        if let Some(share) = self.on_time() {
            rows.push(("on time", format!("{:.1} %", percent(share))));
        }
        rows.push(("sending", human(self.sending)));
        if self.turned_over {
            rows.push(("sent/s", rate(self.sent_per_sec())));
            rows.push(("replies/s", rate(self.replies_per_sec())));
        } else {
            rows.push(("rates", "none: one burst".to_string()));
        }
        rows.push(("tail", human(self.tail)));
        match &self.rtt {
            Some(r) => rows.extend([
                ("rtt p50", human(r.p50)),
                ("rtt p90", human(r.p90)),
                ("rtt p99", human(r.p99)),
                ("rtt p99.9", human(r.p999)),
                ("rtt max", human(r.max)),
            ]),
            None => rows.push(("rtt", "no reply measured".to_string())),
        }
        rows.push(("timeout", human(self.config.timeout)));
        rows
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.header())?;
        for (name, value) in self.rows() {
            writeln!(f, "  {name:<12}{value:>18}")?;
        }
        if let (true, Some(share)) = (self.fell_behind(), self.on_time()) {
            writeln!(
                f,
                "the generator fell behind: only {:.1} % of the requests asked left on time, \
                 so these figures measure the generator, not the server",
                percent(share)
            )?;
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
            client_dropped: 0,
            bad: 0,
            duplicates: 0,
            late: 0,
            unsent: 0,
            sending: Duration::from_secs(5),
            tail: Duration::from_millis(300),
            elapsed: Duration::from_millis(5300),
            ended_by_count: false,
            turned_over: true,
            rtt,
        }
    }

    #[test]
    fn own_requests_said() {
        let mut r = report(None, None);
        assert!(r.to_string().contains(", 16-byte payload, "), "{r}");
        assert!(r.nothing_came_back());
        r.config.requests = vec![b"GET a".to_vec()];
        assert!(r.to_string().contains(", 1 request of 5 bytes, "), "{r}");
        r.config.requests.push(b"x".to_vec());
        assert!(r
            .to_string()
            .contains(", 2 requests of 1 to 5 bytes in turn, "));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["requests"], 2);
        assert!(json.get("payload").is_none(), "{json}");
        r.late = 1;
        assert!(!r.nothing_came_back(), "a late reply came back");
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
        assert!(closed.get("on_time_pct").is_none());
        assert_eq!(closed["rtt_p50_us"], 12.3);
        assert_eq!(closed["expect"], "greeting");
        let open: serde_json::Value =
            serde_json::from_str(&report(Some(100), None).to_json()).unwrap();
        assert_eq!(open["mode"], "open");
        assert!(open.get("window").is_none());
        assert_eq!(open["rate"], 100);
        assert_eq!(open["unsent"], 0);
        assert_eq!(open["on_time_pct"], 100.0);
        assert_eq!(
            (open["pacing"].as_str(), open["sending"].as_str()),
            (Some("even"), Some("batched"))
        );
        assert!(closed.get("pacing").is_none());
        assert!(open.get("rtt_p50_us").is_none(), "no percentile unmeasured");
        let table = report(Some(100), None).to_string();
        assert!(table.contains("no reply measured") && !table.contains("p50"));
    }

    /// The rates are over the sending alone; the wait for the last replies
    /// is shown apart.
    #[test]
    fn rates_leave_the_tail_out() {
        let r = report(None, Some(Rtt::default()));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["replies_per_s"], 2);
        assert_eq!(json["sent_per_s"], 2);
        assert_eq!(json["seconds"], 5.0);
        assert_eq!(json["tail_s"], 0.3);
        assert_eq!(json["elapsed_s"], 5.3);
        let table = r.to_string();
        for row in ["sending", "sent/s", "replies/s", "tail"] {
            assert!(
                table.lines().any(|l| l.trim_start().starts_with(row)),
                "no {row} in\n{table}"
            );
        }
        assert!(table.contains("300 ms"), "{table}");
    }

    #[test]
    fn behind_said_plainly() {
        let mut r = report(Some(1_000_000), None);
        r.sent = 397_557;
        r.unsent = 602_443;
        assert!(r.fell_behind());
        let table = r.to_string();
        assert!(
            table.contains("only 39.7 % of the requests asked left on time"),
            "{table}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["on_time_pct"], 39.7);
        // One request short is short: never rounded up to all of them.
        r.sent = 999_999;
        r.unsent = 1;
        assert!(r.to_string().contains("only 99.9 %"));
        r.unsent = 0;
        assert!(!r.fell_behind() && !r.to_string().contains("fell behind"));
    }

    #[test]
    fn count_in_the_header() {
        let mut r = report(None, None);
        r.config.count = Some(10);
        r.ended_by_count = true;
        r.sending = Duration::from_micros(21);
        let head = r.to_string();
        let head = head.lines().next().unwrap();
        assert!(head.contains("the count of 10 sent in 21.0 us"), "{head}");
        assert!(!head.contains("5.00 s"), "{head}");
        // Ten requests that all left before a reply came have no rate.
        r.turned_over = false;
        let table = r.to_string();
        assert!(table.contains("none: one burst") && !table.contains("replies/s"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(json.get("replies_per_s").is_none() && json.get("sent_per_s").is_none());
    }

    #[test]
    fn units_that_fit() {
        for (d, shown) in [
            (Duration::from_nanos(5_649_727_500), "5.65 s"),
            (Duration::from_micros(1_234), "1.23 ms"),
            (Duration::from_nanos(85_123), "85.1 us"),
            (Duration::from_nanos(999_960), "1.00 ms"),
            (Duration::from_nanos(99_960), "100 us"),
            (Duration::from_nanos(500), "0.50 us"),
            (Duration::from_secs(300), "300 s"),
            (Duration::ZERO, "0 s"),
        ] {
            assert_eq!(human(d), shown, "{d:?}");
        }
        assert_eq!(rate(76.9), "76.9");
        assert_eq!(rate(397_557.4), "397557");
    }
}
