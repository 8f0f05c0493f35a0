//! Kubernetes `resource.Quantity` parsing.
//!
//! We never keep the decimal form around: the scheduler only ever needs the
//! integer value (bytes, pods, devices) or the milli-value (CPU), both rounded
//! up exactly as upstream's `Value()` / `MilliValue()` do. Parsing goes straight
//! from text to those integers with exact integer arithmetic, so `0.1` CPU is
//! `100` milli-CPU, not `99.999…`.
//!
//! Values that do not fit an `i64` saturate at `i64::MAX` (or `i64::MIN`): a pod
//! asking for `1e100` bytes is a legal object that simply fits nowhere, and the
//! scheduler must report it as `Insufficient memory` rather than fail.

use std::fmt;

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {input:?}")]
pub struct QuantityError {
    /// The text that failed to parse.
    pub input: String,
}

/// A parsed quantity, kept as an exact rational `mantissa * 10^exp10 * 2^exp2`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    /// Significant decimal digits (at most 38 kept; see `inexact`).
    mantissa: u128,
    exp10: i32,
    exp2: u32,
    /// Digits beyond what `mantissa` holds were non-zero: round up.
    inexact: bool,
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quantity(milli={})", self.milli_value())
    }
}

impl Quantity {
    /// Parses a Kubernetes quantity such as `500m`, `1.5`, `1Gi`, `1G`, `1e3`, `0.5Gi`.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let err = || QuantityError { input: s.to_string() };
        let t = s.trim();
        if t.is_empty() {
            return Err(err());
        }
        let bytes = t.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if bytes[0] == b'+' || bytes[0] == b'-' {
            negative = bytes[0] == b'-';
            i = 1;
        }
        // number: digits [. digits]
        let num_start = i;
        let mut mantissa: u128 = 0;
        let mut exp10: i64 = 0;
        let mut digits = 0usize;
        let mut inexact = false;
        let mut seen_dot = false;
        let mut any_digit = false;
        while i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_digit() {
                any_digit = true;
                let d = (c - b'0') as u128;
                if digits < 38 {
                    if mantissa != 0 || d != 0 {
                        digits += 1;
                    }
                    mantissa = mantissa * 10 + d;
                    if seen_dot {
                        exp10 -= 1;
                    }
                } else {
                    // Digit dropped: remember whether it mattered.
                    if d != 0 {
                        inexact = true;
                    }
                    if !seen_dot {
                        exp10 += 1;
                    }
                }
                i += 1;
            } else if c == b'.' && !seen_dot {
                seen_dot = true;
                i += 1;
            } else {
                break;
            }
        }
        if !any_digit || i == num_start {
            return Err(err());
        }
        let suffix = &t[i..];
        let mut exp2: u32 = 0;
        match suffix {
            "" => {}
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            _ => {
                let rest = suffix.strip_prefix('e').or_else(|| suffix.strip_prefix('E')).ok_or_else(err)?;
                let (sign, digits) = match rest.as_bytes().first() {
                    Some(b'+') => (1i64, &rest[1..]),
                    Some(b'-') => (-1i64, &rest[1..]),
                    _ => (1i64, rest),
                };
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                // Exponents this large can only saturate or round to the smallest unit.
                let e: i64 = digits.parse::<i64>().unwrap_or(i64::MAX / 4).min(10_000);
                exp10 += sign * e;
            }
        }
        Ok(Quantity { negative, mantissa, exp10: exp10.clamp(-100_000, 100_000) as i32, exp2, inexact })
    }

    /// Whole units, rounded up (away from zero for positive values), saturating.
    pub fn value(&self) -> i64 {
        self.scaled(0)
    }

    /// Thousandths of a unit, rounded up, saturating. Used for CPU.
    pub fn milli_value(&self) -> i64 {
        self.scaled(3)
    }

    fn scaled(&self, extra10: i32) -> i64 {
        if self.mantissa == 0 && !self.inexact {
            return 0;
        }
        let e10 = self.exp10 as i64 + extra10 as i64;
        let mag = ceil_mul(self.mantissa, e10, self.exp2, self.inexact);
        let clamped = if mag > i64::MAX as u128 { i64::MAX } else { mag as i64 };
        if self.negative {
            // Upstream rounds towards +inf; negative requests are rejected by
            // validation anyway, so truncation towards zero is what matters.
            -clamped
        } else {
            clamped
        }
    }
}

/// ceil(m * 10^e10 * 2^e2), saturating at u128::MAX.
fn ceil_mul(m: u128, e10: i64, e2: u32, inexact: bool) -> u128 {
    let mut num = m;
    // Apply the binary factor first; it is always a multiplication.
    for _ in 0..e2 {
        num = match num.checked_mul(2) {
            Some(v) => v,
            None => return u128::MAX,
        };
    }
    if e10 >= 0 {
        for _ in 0..e10 {
            num = match num.checked_mul(10) {
                Some(v) => v,
                None => return u128::MAX,
            };
        }
        if inexact {
            num = num.saturating_add(1);
        }
        num
    } else {
        let neg = (-e10) as u64;
        if neg > 38 {
            // Any positive amount this small rounds up to one unit.
            return if num > 0 || inexact { 1 } else { 0 };
        }
        let den = 10u128.pow(neg as u32);
        let q = num / den;
        if num % den != 0 || inexact {
            q + 1
        } else {
            q
        }
    }
}

/// Parses a quantity and reports errors with the field path that held it.
pub fn parse_field(field: &str, s: &str) -> Result<Quantity, String> {
    Quantity::parse(s).map_err(|e| format!("{field}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_examples() {
        let cases: &[(&str, i64, i64)] = &[
            // input, value, milli
            ("0", 0, 0),
            ("1", 1, 1000),
            ("500m", 1, 500),
            ("1.5", 2, 1500),
            ("0.1", 1, 100),
            ("100m", 1, 100),
            ("1Ki", 1024, 1_024_000),
            ("1Gi", 1 << 30, (1i64 << 30) * 1000),
            ("0.5Gi", 1 << 29, (1i64 << 29) * 1000),
            ("1G", 1_000_000_000, 1_000_000_000_000),
            ("1e3", 1000, 1_000_000),
            ("1E3", 1000, 1_000_000),
            ("1e-3", 1, 1),
            ("32Gi", 32 << 30, (32i64 << 30) * 1000),
            ("500Mi", 500 << 20, (500i64 << 20) * 1000),
            ("1k", 1000, 1_000_000),
            ("1n", 1, 1),
            ("1u", 1, 1),
            ("+2", 2, 2000),
            (".5", 1, 500),
            ("5.", 5, 5000),
            ("1.0001m", 1, 2),
            ("12345678901234567890123456789012345678901234567890", i64::MAX, i64::MAX),
            ("1e100", i64::MAX, i64::MAX),
            ("8Ei", i64::MAX, i64::MAX),
            ("1e-100", 1, 1),
        ];
        for (input, value, milli) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.value(), *value, "value of {input}");
            assert_eq!(q.milli_value(), *milli, "milli of {input}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "abc", "1.2.3", "1Qi", "m", "1e", "1e+", "--1", "1 Gi", "Gi", "1ee3", "0x10"] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse_field("spec.containers[0].resources.requests.cpu", "lots").unwrap_err();
        assert!(e.starts_with("spec.containers[0].resources.requests.cpu: quantities must match"), "{e}");
    }

    #[test]
    fn negative_values() {
        assert_eq!(Quantity::parse("-1").unwrap().value(), -1);
        assert_eq!(Quantity::parse("-500m").unwrap().milli_value(), -500);
    }
}
