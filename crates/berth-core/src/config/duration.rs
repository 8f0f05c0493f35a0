//! Go-style durations, as the configuration writes them (`15s`, `1m30s`).

/// Parses a Go-style duration ("15s", "1m30s", "500ms").
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.trim().chars().peekable();
    if s.trim().is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() || n == 'µ' {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        num.clear();
        let mult = match unit.as_str() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
        };
        total += v * mult;
    }
    if !num.is_empty() {
        if num == "0" {
            return Ok(std::time::Duration::ZERO);
        }
        return Err(format!("invalid duration {s:?}: missing unit"));
    }
    // Go's durations are int64 nanoseconds: about 292 years at most.
    if total > MAX_SECONDS {
        return Err(format!("invalid duration {s:?}: longer than {MAX_SECONDS} s, the longest Go allows"));
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

/// The longest duration Go can hold (`math.MaxInt64` nanoseconds), in seconds.
const MAX_SECONDS: f64 = i64::MAX as f64 / 1e9;
