//! Value parsers with messages in words: durations, whole numbers in a
//! range, yes or no, and addresses.

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

pub const MILLISECOND: Duration = Duration::from_millis(1);
pub const SECOND: Duration = Duration::from_secs(1);
pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(86_400);

/// A duration: a number of seconds (`1.5`), or a number with a unit (`1.5s`,
/// `500ms`, `2m`, `1h`); one syntax for every duration flag.
pub fn parse_duration(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = [("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .into_iter()
        .find_map(|(unit, scale)| Some((s.strip_suffix(unit)?, scale)))
        .unwrap_or((s, 1.0));
    let range = || format!("must be from {} to {}", span(min), span(max));
    let number = num.trim();
    // `f64` would also take `inf`, `NaN` and `1e3`: only plain decimals here.
    let plain = !number.is_empty()
        && number
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
    let value = number
        .parse::<f64>()
        .ok()
        .filter(|_| plain)
        .ok_or_else(|| "expected a duration, like 1.5, 1.5s, 500ms or 2m".to_string())?;
    let secs = value * scale;
    if !(min.as_secs_f64()..=max.as_secs_f64()).contains(&secs) {
        return Err(range());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A value parser for durations from `min` to `max`.
pub fn duration(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| parse_duration(s, min, max)
}

/// A value parser for a duration that may also be `0`, meaning off.
pub fn duration_or_off(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| {
        if s.trim() == "0" {
            return Ok(Duration::ZERO);
        }
        parse_duration(s, min, max).map_err(|e| format!("{e} (or 0 for off)"))
    }
}

/// `d` in words, in the largest unit that shows it whole: `1 ms`, `24 h`.
pub fn span(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0".to_string();
    }
    for (unit, size) in [("h", 3_600_000), ("min", 60_000), ("s", 1000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{} {unit}", ms / size);
        }
    }
    format!("{ms} ms")
}

/// The whole-number types the flags use, with their largest value: a
/// flag without an upper bound of its own still has its type's.
pub trait Whole: Copy + Display + Into<i128> + TryFrom<i128> + Send + Sync + 'static {
    const MAX: Self;
}

impl Whole for u16 {
    const MAX: u16 = u16::MAX;
}

impl Whole for u32 {
    const MAX: u32 = u32::MAX;
}

impl Whole for u64 {
    const MAX: u64 = u64::MAX;
}

/// A value parser for whole numbers from `min` to `max` (`None`: no upper
/// bound but the type's), with the range in words: a value too large says
/// how large it may be, not only how small.
pub fn whole<T: Whole>(
    min: T,
    max: Option<T>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |s| {
        let low = || match max {
            Some(max) => format!("must be from {min} to {max}"),
            None => format!("must be at least {min}"),
        };
        let high = || match max {
            Some(max) => format!("must be from {min} to {max}"),
            None => format!("must be at most {}", T::MAX),
        };
        let s = s.trim();
        let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("expected a whole number; {}", low()));
        }
        // Digits too many even for i128 are out of range on their side.
        let Ok(n) = s.parse::<i128>() else {
            return Err(if s.starts_with('-') { low() } else { high() });
        };
        if n < min.into() {
            return Err(low());
        }
        let top = max.unwrap_or(T::MAX);
        match T::try_from(n) {
            Ok(v) if n <= top.into() => Ok(v),
            _ => Err(high()),
        }
    }
}

/// A value parser for a yes-or-no setting that lists, in `--help` and in
/// its errors, every spelling it takes (any case), where clap's own
/// boolish parser shows only `true, false`.
pub fn boolish() -> impl TypedValueParser<Value = bool> {
    const YES: [&str; 5] = ["true", "yes", "on", "1", "y"];
    const NO: [&str; 5] = ["false", "no", "off", "0", "n"];
    let values = YES
        .iter()
        .zip(NO.iter())
        .flat_map(|(y, n)| [*y, *n])
        .chain(["t", "f"])
        .map(PossibleValue::new);
    PossibleValuesParser::new(values).map(|s: String| {
        let s = s.to_ascii_lowercase();
        YES.contains(&s.as_str()) || s == "t"
    })
}

/// An address given as `HOST:PORT`.
#[derive(Debug, Clone, PartialEq)]
pub struct Addr {
    /// The address: the one given, or the first the name resolves to.
    pub addr: SocketAddr,
    /// What was given, when it was a host name rather than an address.
    pub name: Option<String>,
}

const EXPECTED_HOST_PORT: &str = "expected HOST:PORT, like 127.0.0.1:9999 or [::1]:9999";

/// `HOST:PORT`: an IP address or a host name that resolves (its first
/// address is taken), and a port; port 0 only where `port_zero` allows.
pub fn parse_addr(s: &str, port_zero: bool) -> Result<Addr, String> {
    let (addr, name) = match s.parse::<SocketAddr>() {
        Ok(addr) => (addr, None),
        Err(_) if s.ends_with(']') || s.parse::<IpAddr>().is_ok() => {
            return Err(EXPECTED_HOST_PORT.to_string());
        }
        Err(_) => {
            let (host, port) = s
                .rsplit_once(':')
                // A bare IPv6 address has colons but no port.
                .filter(|(host, _)| !host.contains(':') || host.starts_with('['))
                .filter(|(host, _)| !host.is_empty())
                .ok_or_else(|| EXPECTED_HOST_PORT.to_string())?;
            // Dotted digits are never a host name (no top-level domain is all
            // digits): a bad IPv4 address, which no resolver should be asked.
            if host.contains('.')
                && host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && host.parse::<Ipv4Addr>().is_err()
            {
                return Err(format!(
                    "'{host}' is not an IPv4 address: four numbers from 0 to 255, like 127.0.0.1"
                ));
            }
            if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
                // An address that did not parse with its port: the port is bad.
                return Err(format!("invalid port '{port}'; {EXPECTED_HOST_PORT}"));
            }
            let port: u16 = port
                .parse()
                .map_err(|_| format!("invalid port '{port}'; {EXPECTED_HOST_PORT}"))?;
            let addr = (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host} resolves to no address"))?;
            (addr, Some(s.to_string()))
        }
    };
    if addr.port() == 0 && !port_zero {
        return Err("port 0 cannot be sent to".to_string());
    }
    Ok(Addr { addr, name })
}

/// A value parser for addresses to bind (port 0: the OS chooses).
pub fn bind_addr(s: &str) -> Result<Addr, String> {
    parse_addr(s, true)
}

/// A value parser for addresses to send to.
pub fn peer_addr(s: &str) -> Result<Addr, String> {
    parse_addr(s, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::{Arg, Command};

    const MS: Duration = MILLISECOND;

    #[test]
    fn durations() {
        let p = |s| parse_duration(s, MS, DAY);
        assert_eq!(p("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(p("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(p("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(p("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(p("1h"), Ok(HOUR));
        assert_eq!(p(" 3 s "), Ok(Duration::from_secs(3)));
        assert_eq!(p("24h"), Ok(DAY));
        assert_eq!(p("1ms"), Ok(MS));
    }

    #[test]
    fn durations_out_of_range() {
        let p = |s| parse_duration(s, MS, DAY);
        for bad in ["0", "0s", "-1", "-1s", "0.5ms", "25h", "86401"] {
            assert_eq!(p(bad), Err("must be from 1 ms to 24 h".into()), "{bad}");
        }
        assert_eq!(
            parse_duration("0.05", Duration::from_millis(100), HOUR),
            Err("must be from 100 ms to 1 h".into())
        );
    }

    #[test]
    fn durations_malformed() {
        for bad in [
            "", "s", "ms", "abc", "1x", "1 d", "inf", "NaN", "1e3", "1.5.2", "--1",
        ] {
            let e = parse_duration(bad, MS, DAY).unwrap_err();
            assert!(e.starts_with("expected a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn off() {
        let p = duration_or_off(Duration::from_millis(100), DAY);
        assert_eq!(p("0"), Ok(Duration::ZERO));
        assert_eq!(p("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            p("0s"),
            Err("must be from 100 ms to 24 h (or 0 for off)".into())
        );
    }

    #[test]
    fn spans() {
        assert_eq!(span(MS), "1 ms");
        assert_eq!(span(Duration::from_millis(1500)), "1500 ms");
        assert_eq!(span(SECOND), "1 s");
        assert_eq!(span(Duration::from_secs(120)), "2 min");
        assert_eq!(span(DAY), "24 h");
    }

    #[test]
    fn whole_numbers() {
        let p = whole::<u16>(1, Some(1024));
        assert_eq!(p("1"), Ok(1));
        assert_eq!(p("1024"), Ok(1024));
        assert_eq!(p("0"), Err("must be from 1 to 1024".into()));
        assert_eq!(p("-1"), Err("must be from 1 to 1024".into()));
        assert_eq!(p("70000"), Err("must be from 1 to 1024".into()));
        assert_eq!(
            p("abc"),
            Err("expected a whole number; must be from 1 to 1024".into())
        );
        let p = whole::<u64>(1, None);
        assert_eq!(p("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(p("0"), Err("must be at least 1".into()));
        assert_eq!(
            p("18446744073709551616"),
            Err("must be at most 18446744073709551615".into())
        );
    }

    #[test]
    fn too_large_says_at_most() {
        let p = whole::<u32>(0, None);
        assert_eq!(p("4294967295"), Ok(u32::MAX));
        assert_eq!(p("4294967296"), Err("must be at most 4294967295".into()));
        assert_eq!(p("+4294967296"), Err("must be at most 4294967295".into()));
        let huge = "9".repeat(60);
        assert_eq!(p(&huge), Err("must be at most 4294967295".into()));
        assert_eq!(p(&format!("-{huge}")), Err("must be at least 0".into()));
        let p = whole::<u32>(1, None);
        assert_eq!(p("99999999999"), Err("must be at most 4294967295".into()));
        assert_eq!(p("-3"), Err("must be at least 1".into()));
        assert_eq!(
            p("1.5"),
            Err("expected a whole number; must be at least 1".into())
        );
        assert_eq!(
            p("-"),
            Err("expected a whole number; must be at least 1".into())
        );
    }

    #[test]
    fn yes_or_no() {
        let cmd = Command::new("t").arg(
            Arg::new("b")
                .long("b")
                .ignore_case(true)
                .value_parser(boolish()),
        );
        for (value, want) in [
            ("true", true),
            ("YES", true),
            ("on", true),
            ("1", true),
            ("y", true),
            ("T", true),
            ("false", false),
            ("No", false),
            ("OFF", false),
            ("0", false),
            ("n", false),
            ("f", false),
        ] {
            let m = cmd
                .clone()
                .try_get_matches_from(["t", "--b", value])
                .unwrap();
            assert_eq!(m.get_one::<bool>("b"), Some(&want), "{value}");
        }
        let e = cmd
            .clone()
            .try_get_matches_from(["t", "--b", "maybe"])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) else {
            panic!("no values listed: {e}");
        };
        assert_eq!(
            valid.join(", "),
            "true, false, yes, no, on, off, 1, 0, y, n, t, f"
        );
    }

    #[test]
    fn addresses() {
        let a = |s| parse_addr(s, true).map(|a| a.addr.to_string());
        assert_eq!(a("127.0.0.1:9999"), Ok("127.0.0.1:9999".into()));
        assert_eq!(a("[::1]:0"), Ok("[::1]:0".into()));
        let named = parse_addr("localhost:9999", true).unwrap();
        assert!(named.addr.ip().is_loopback(), "{named:?}");
        assert_eq!(named.addr.port(), 9999);
        assert_eq!(named.name.as_deref(), Some("localhost:9999"));
        assert_eq!(parse_addr("127.0.0.1:1", true).unwrap().name, None);
    }

    #[test]
    fn addresses_without_port() {
        for bad in [
            "127.0.0.1",
            "::1",
            "[::1]",
            "localhost",
            "",
            ":9999",
            "nonsense",
        ] {
            assert_eq!(
                parse_addr(bad, true),
                Err(EXPECTED_HOST_PORT.to_string()),
                "{bad}"
            );
        }
        for bad in ["127.0.0.1:x", "[::1]:99999", "localhost:x", "127.0.0.1:"] {
            let e = parse_addr(bad, true).unwrap_err();
            assert!(e.starts_with("invalid port"), "{bad}: {e}");
            assert!(e.ends_with(EXPECTED_HOST_PORT), "{bad}: {e}");
        }
    }

    #[test]
    fn dotted_digits_are_ipv4_or_nothing() {
        for bad in [
            "256.1.1.1:9999",
            "1.2.3:9999",
            "1.2.3.4.5:80",
            "1..2.3:1",
            "127.0.0.01:1",
        ] {
            let e = parse_addr(bad, true).unwrap_err();
            let host = &bad[..bad.rfind(':').unwrap()];
            assert_eq!(
                e,
                format!(
                    "'{host}' is not an IPv4 address: four numbers from 0 to 255, like 127.0.0.1"
                ),
                "{bad}"
            );
        }
        assert!(parse_addr("255.255.255.255:1", true).is_ok());
    }

    #[test]
    fn port_zero() {
        assert!(parse_addr("127.0.0.1:0", true).is_ok());
        assert_eq!(
            parse_addr("127.0.0.1:0", false),
            Err("port 0 cannot be sent to".into())
        );
        assert_eq!(
            parse_addr("localhost:0", false),
            Err("port 0 cannot be sent to".into())
        );
    }
}
