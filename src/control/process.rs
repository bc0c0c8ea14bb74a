//! The `process_*` metrics that every Prometheus client library exports,
//! with the names, types and help of the official ones, so dashboards and
//! alerts written for any process work here too. The values are read by
//! `sys::process` when a scrape arrives; a value that cannot be read (any
//! system but Linux) is left out, not shown as 0.
//!
//! Every help text of the endpoint ends with a period: prometheus-client's
//! `Registry::register` adds one to the help of what it registers
//! (`udp_greeter_build_info`), while a collector's help is written as it is
//! given, so the collectors' texts carry their own.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::sys::process::usage;

/// Writes every `process_*` metric that could be read.
pub(crate) fn encode(encoder: &mut DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
    let u = usage();
    if let Some(v) = u.cpu_seconds {
        let metric = ConstCounter::new(v);
        metric.encode(encoder.encode_descriptor(
            // The encoder adds `_total` to a counter's name.
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            metric.metric_type(),
        )?)?;
    }
    for (name, help, value) in [
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            u.start_time_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            u.resident_bytes.map(|b| b as f64),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            u.virtual_bytes.map(|b| b as f64),
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            u.open_fds.map(|n| n as f64),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            u.max_fds.map(|n| n as f64),
        ),
    ] {
        if let Some(v) = value {
            let metric = ConstGauge::new(v);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::collections::HashMap;
    use std::time::{SystemTime, UNIX_EPOCH};

    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::prometheus_text;
    use prometheus_client::registry::Registry;

    use super::*;

    #[derive(Debug)]
    struct Process;

    impl Collector for Process {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
            super::encode(&mut encoder)
        }
    }

    #[test]
    fn values_present_and_plausible() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Process));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        let values: HashMap<&str, f64> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name, value.parse().ok()?))
            })
            .collect();
        let get = |name: &str| -> f64 {
            *values
                .get(name)
                .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = get("process_start_time_seconds");
        // In the past, and less than a day ago: this test's own process.
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
        assert!(get("process_cpu_seconds_total") >= 0.0);
        let rss = get("process_resident_memory_bytes");
        assert!(rss > 0.0, "{text}");
        assert!(get("process_virtual_memory_bytes") >= rss, "{text}");
        let open = get("process_open_fds");
        assert!(open >= 3.0, "stdin, stdout and stderr at least: {text}");
        assert!(get("process_max_fds") >= open, "{text}");
        for (kind, name) in [
            ("counter", "process_cpu_seconds_total"),
            ("gauge", "process_start_time_seconds"),
            ("gauge", "process_open_fds"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}: {text}"
            );
        }
        for help in text.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(help.ends_with('.'), "{help}");
        }
    }
}
