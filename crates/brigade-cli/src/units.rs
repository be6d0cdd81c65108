//! Parsing the units people type: durations (`500ms`, `2s`, `1.5m`) and rates (`10/s`).

use std::time::Duration;

/// Parses a duration: a number with a unit of `ms`, `s`, `m` or `h` (`250ms`,
/// `2s`, `1.5m`, `1h`). A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (try 500ms, 2s, 1.5m or 1h)"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{text}' is out of range"))
}

/// Parses a rate: jobs per second as `N`, `N/s`, `N/m` or `N/h`; must be positive.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, p)) => (n, p.trim()),
        None => (t, "s"),
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a rate (try 10/s, 600/m)"))?;
    let per_second = match per {
        "s" | "sec" => value,
        "m" | "min" => value / 60.0,
        "h" => value / 3600.0,
        other => {
            return Err(format!(
                "'{text}': unknown rate unit '/{other}' (use /s, /m or /h)"
            ))
        }
    };
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(format!("'{text}': a rate must be a positive number"));
    }
    Ok(per_second)
}

/// Parses a size in bytes: `4096`, `512KiB`, `16MiB`, `1GB` (KB, MB, GB count in
/// 1000s, KiB, MiB, GiB in 1024s; case does not matter).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size (try 16MiB, 512KiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (use KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{text}' is out of range"))
}

/// Formats a duration for people: `850µs`, `12.3ms`, `2.05s`, `3m12s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0}µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1}ms", s * 1e3)
    } else if s < 60.0 {
        format!("{s:.2}s")
    } else {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("fast").unwrap_err().contains("'fast'"));
        assert!(parse_duration("2 weeks")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10/s"), Ok(10.0));
        assert_eq!(parse_rate("10"), Ok(10.0));
        assert_eq!(parse_rate("120/m"), Ok(2.0));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("5/day").unwrap_err().contains("/day"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("10MiB"), Ok(10 << 20));
        assert_eq!(parse_bytes("512kib"), Ok(512 << 10));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("2KB"), Ok(2000));
        assert!(parse_bytes("lots").unwrap_err().contains("'lots'"));
        assert!(parse_bytes("5 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_micros(850)), "850µs");
        assert_eq!(human(Duration::from_millis(12)), "12.0ms");
        assert_eq!(human(Duration::from_millis(2050)), "2.05s");
        assert_eq!(human(Duration::from_secs(192)), "3m12s");
    }
}
