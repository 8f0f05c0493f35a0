//! Kubernetes `resource.Quantity`: parsing, and the exact arithmetic DRA's CEL
//! selectors need.
//!
//! The scheduler mostly needs the integer value (bytes, pods, devices) or the
//! milli-value (CPU), both rounded up exactly as upstream's `Value()` /
//! `MilliValue()` do. Parsing goes straight from text to an exact decimal
//! (`±digits × 10^exp`) with integer arithmetic, so `0.1` CPU is `100`
//! milli-CPU, not `99.999…`.
//!
//! Values that do not fit an `i64` saturate at `i64::MAX` (or `i64::MIN`) in
//! `value()` / `milli_value()`: a pod asking for `1e100` bytes is a legal object
//! that simply fits nowhere, and the scheduler must report it as `Insufficient
//! memory` rather than fail.
//!
//! CEL selectors (`device.capacity[...]`, `quantity("1Gi")`) see more of the
//! value: `isInteger()` and `asInteger()` depend on whether upstream holds the
//! quantity as a small `int64Amount` or as an arbitrary-precision `inf.Dec`,
//! and on the scale it was written with (`1.0` is not an integer there, `1k`
//! is). So the parser follows upstream's `ParseQuantity` step by step (its fast
//! path, its rounding up to nano units, its cap of binary-suffixed values at
//! `2^63-1`) and remembers which representation upstream would have chosen.
//!
//! The one limit: where upstream's `inf.Dec` keeps any number of digits, we keep
//! 38 significant ones (a `u128`). A longer number is kept rounded up and marked
//! inexact: `value()` is still right (it rounds up anyway), comparisons treat
//! the dropped digits as a tiny excess, and arithmetic on it refuses
//! ([`Quantity::checked_add`] returns `None`).

use std::cmp::Ordering;
use std::fmt;

/// Which of upstream's three parse errors a quantity string hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityErrorKind {
    /// The text does not have the shape `[sign]digits[.digits][suffix]`.
    Format,
    /// The suffix is none of the known ones (`Ki`…`Ei`, `n`…`E`, `e<int>`).
    Suffix,
    /// The number part could not be read.
    Numeric,
}

impl QuantityErrorKind {
    /// Upstream's message for this error (`resource.ErrFormatWrong` and friends).
    pub fn message(self) -> &'static str {
        match self {
            QuantityErrorKind::Format => "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            QuantityErrorKind::Suffix => "unable to parse quantity's suffix",
            QuantityErrorKind::Numeric => "unable to parse numeric part of quantity",
        }
    }
}

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {input:?}", kind.message())]
pub struct QuantityError {
    /// The text that failed to parse.
    pub input: String,
    /// Which check it failed.
    pub kind: QuantityErrorKind,
}

/// A parsed quantity: exactly `±unscaled × 10^exp`, in the representation
/// upstream would hold it in.
///
/// `PartialEq` compares representations (`1000m` and `1` differ, as upstream's
/// `DeepEqual` would say); [`Quantity::compare`] compares values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    /// Magnitude digits. For an `int64Amount` it fits an `i64`.
    unscaled: u128,
    /// Decimal exponent: upstream's `int64Amount.scale`, or `-inf.Dec.Scale()`.
    exp: i32,
    /// Upstream holds this value as an `inf.Dec` (its slow path, or arithmetic
    /// that overflowed `int64Amount`), not as an `int64Amount`.
    dec: bool,
    /// Digits beyond the 38 we keep were dropped: the true magnitude is a little
    /// larger than `unscaled × 10^exp`.
    inexact: bool,
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        let approx = if self.inexact { "+" } else { "" };
        let form = if self.dec { "dec" } else { "int64" };
        write!(f, "Quantity({sign}{}{approx}e{} {form})", self.unscaled, self.exp)
    }
}

/// `2^63 - 1`, the cap upstream puts on binary-suffixed quantities.
const MAX_INT64: u128 = i64::MAX as u128;

impl Quantity {
    /// Parses a Kubernetes quantity such as `500m`, `1.5`, `1Gi`, `1G`, `1e3`, `0.5Gi`.
    ///
    /// Berth's own entry point: surrounding whitespace is ignored (as upstream's
    /// JSON decoding does) and a number without any digit (`m`, `Gi`, which
    /// upstream reads as zero) is rejected. [`Quantity::parse_upstream`] is the
    /// exact `resource.ParseQuantity`.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let t = s.trim();
        let has_digit = t.bytes().take_while(|b| matches!(b, b'0'..=b'9' | b'.' | b'+' | b'-')).any(|b| b.is_ascii_digit());
        if !has_digit {
            return Err(QuantityError { input: s.to_string(), kind: QuantityErrorKind::Format });
        }
        Self::parse_upstream(t).map_err(|e| QuantityError { input: s.to_string(), ..e })
    }

    /// Parses exactly as upstream's `resource.ParseQuantity`: no whitespace
    /// allowed, `m` alone is zero milli-units, values rounded up to nano units,
    /// binary-suffixed values capped at `2^63-1`.
    pub fn parse_upstream(s: &str) -> Result<Quantity, QuantityError> {
        let err = |kind| QuantityError { input: s.to_string(), kind };
        if s.is_empty() {
            return Err(err(QuantityErrorKind::Format));
        }
        if s == "0" {
            return Ok(Quantity::from_i64(0));
        }
        let parts = scan(s).ok_or_else(|| err(QuantityErrorKind::Format))?;
        let (binary, exponent) = interpret_suffix(parts.suffix).ok_or_else(|| err(QuantityErrorKind::Suffix))?;

        // Upstream's fast path: small numbers become an int64Amount.
        let digits = parts.num.len() as i32 + parts.denom.len() as i32;
        let (precision, mut scale, multiplier) = if binary {
            if parts.denom.is_empty() {
                // float32(exponent)*3/10, truncated, as upstream estimates the digits 2^exponent adds.
                let extra = ((exponent as f32) * 3.0 / 10.0) as i32;
                (15 - parts.num.len() as i32 - extra - 1, 0i32, 1i64 << exponent)
            } else {
                (-1, 0, 1)
            }
        } else {
            (18 - digits, exponent, 1)
        };
        if precision >= 0 {
            scale = scale.wrapping_sub(parts.denom.len() as i32);
            if scale >= -9 {
                // At most 18 digits here (precision >= 0): no overflow, but stay checked.
                let mut value: i64 = 0;
                for b in parts.num.bytes().chain(parts.denom.bytes()) {
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add((b - b'0') as i64))
                        .ok_or_else(|| err(QuantityErrorKind::Numeric))?;
                }
                if let Some(result) = value.checked_mul(multiplier) {
                    let result = if parts.positive { result } else { -result };
                    return Ok(Quantity::from_int64_amount(result, scale));
                }
            }
        }

        // The slow path: an exact decimal, rounded up to nano units.
        let all_digits = format!("{}{}", parts.int_digits, parts.denom);
        if all_digits.is_empty() {
            return Err(err(QuantityErrorKind::Numeric));
        }
        let (mut unscaled, dropped, mut inexact) = digits_to_u128(&all_digits);
        let mut exp = (dropped as i32).wrapping_sub(parts.denom.len() as i32);
        if binary {
            // unscaled × 2^exponent; if that overflows, drop low digits first.
            let factor = 1u128 << exponent;
            loop {
                match unscaled.checked_mul(factor) {
                    Some(v) => {
                        unscaled = v;
                        break;
                    }
                    None => {
                        inexact |= unscaled % 10 != 0;
                        unscaled /= 10;
                        exp = exp.wrapping_add(1);
                    }
                }
            }
        } else {
            exp = exp.wrapping_add(exponent);
        }
        let mut q = Quantity { negative: false, unscaled, exp, dec: true, inexact };
        if unscaled != 0 || inexact {
            q = q.rounded_up_to_nano();
        }
        if binary
            && q.magnitude_cmp(&Quantity { negative: false, unscaled: MAX_INT64, exp: 0, dec: true, inexact: false }) == Ordering::Greater
        {
            q = Quantity { negative: false, unscaled: MAX_INT64, exp: 0, dec: true, inexact: false };
        }
        q.negative = !parts.positive && (q.unscaled != 0 || q.inexact);
        Ok(q)
    }

    /// `resource.NewQuantity(v, DecimalExponent)`: the integer `v`.
    pub fn from_i64(v: i64) -> Quantity {
        Quantity::from_int64_amount(v, 0)
    }

    fn from_int64_amount(value: i64, scale: i32) -> Quantity {
        Quantity { negative: value < 0, unscaled: value.unsigned_abs() as u128, exp: scale, dec: false, inexact: false }
    }

    /// Rounds the magnitude up to a multiple of 10^-9 and sets the exponent to
    /// -9, as `inf.Dec.Round(.., 9, RoundUp)` does. A value too large to hold
    /// at that scale keeps its exponent (the value is the same).
    fn rounded_up_to_nano(self) -> Quantity {
        let mut q = self;
        if q.exp < -9 {
            let shift = (-9i64 - q.exp as i64) as u32;
            let (quotient, remainder_nonzero) = if shift > 38 {
                (0, q.unscaled != 0)
            } else {
                let den = 10u128.pow(shift);
                (q.unscaled / den, q.unscaled % den != 0)
            };
            q.unscaled = if remainder_nonzero || q.inexact { quotient + 1 } else { quotient };
            q.exp = -9;
            q.inexact = false;
        } else if q.exp > -9 && !q.inexact {
            let shift = (q.exp as i64 + 9) as u32;
            if let Some(v) = 10u128.checked_pow(shift).and_then(|p| q.unscaled.checked_mul(p)) {
                q.unscaled = v;
                q.exp = -9;
            }
        }
        q
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
        if self.unscaled == 0 && !self.inexact {
            return 0;
        }
        let e10 = self.exp as i64 + extra10 as i64;
        let mag = ceil_mul(self.unscaled, e10, self.inexact);
        let clamped = if mag > i64::MAX as u128 { i64::MAX } else { mag as i64 };
        if self.negative {
            // Upstream rounds towards +inf; negative requests are rejected by
            // validation anyway, so truncation towards zero is what matters.
            -clamped
        } else {
            clamped
        }
    }

    /// -1, 0 or 1, as upstream's `Sign()`.
    pub fn sign(&self) -> i32 {
        if self.unscaled == 0 && !self.inexact {
            0
        } else if self.negative {
            -1
        } else {
            1
        }
    }

    /// Compares values (`1Ki` equals `1024`), as upstream's `Cmp`. Exact, except
    /// that an inexact quantity counts as a hair above its kept digits.
    pub fn compare(&self, other: &Quantity) -> Ordering {
        match (self.sign(), other.sign()) {
            (a, b) if a != b => a.cmp(&b),
            (0, _) => Ordering::Equal,
            (s, _) => {
                let mag = self.magnitude_cmp(other);
                if s < 0 {
                    mag.reverse()
                } else {
                    mag
                }
            }
        }
    }

    fn magnitude_cmp(&self, other: &Quantity) -> Ordering {
        let (a, b) = (self, other);
        match (a.unscaled == 0, b.unscaled == 0) {
            (true, true) => return a.inexact.cmp(&b.inexact),
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // Order of magnitude first: digits + exponent.
        let mag_a = digit_count(a.unscaled) as i64 + a.exp as i64;
        let mag_b = digit_count(b.unscaled) as i64 + b.exp as i64;
        if mag_a != mag_b {
            return mag_a.cmp(&mag_b);
        }
        // Same order of magnitude: the exponents differ by less than 39, so
        // scaling the one with the larger exponent down to the other fits, or
        // overflowing proves it larger.
        let ord = match a.exp.cmp(&b.exp) {
            Ordering::Equal => a.unscaled.cmp(&b.unscaled),
            Ordering::Greater => match scale_up(a.unscaled, (a.exp as i64 - b.exp as i64) as u32) {
                Some(x) => x.cmp(&b.unscaled),
                None => Ordering::Greater,
            },
            Ordering::Less => match scale_up(b.unscaled, (b.exp as i64 - a.exp as i64) as u32) {
                Some(y) => a.unscaled.cmp(&y),
                None => Ordering::Less,
            },
        };
        ord.then(a.inexact.cmp(&b.inexact))
    }

    /// `self + other` as upstream's `Quantity.Add`: two `int64Amount`s add as
    /// one when the sum fits, otherwise the exact decimal sum. `None` when the
    /// exact sum needs more than the 38 digits Berth keeps.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        if !self.dec && !other.dec {
            if let Some(q) = int64_amount_add(self.int64_amount(), other.int64_amount()) {
                return Some(q);
            }
        }
        self.dec_add(other)
    }

    /// `self - other` as upstream's `Quantity.Sub`; see [`Quantity::checked_add`].
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        if !self.dec && !other.dec {
            let (v, s) = other.int64_amount();
            if let Some(q) = int64_amount_add(self.int64_amount(), (v.wrapping_neg(), s)) {
                return Some(q);
            }
        }
        self.dec_add(&other.negated())
    }

    fn negated(&self) -> Quantity {
        let mut q = *self;
        q.negative = !q.negative && q.sign() != 0;
        q
    }

    fn int64_amount(&self) -> (i64, i32) {
        let v = self.unscaled as i64;
        (if self.negative { v.wrapping_neg() } else { v }, self.exp)
    }

    fn dec_add(&self, other: &Quantity) -> Option<Quantity> {
        if self.inexact || other.inexact {
            return None;
        }
        let exp = self.exp.min(other.exp);
        let a = scale_up(self.unscaled, (self.exp as i64 - exp as i64) as u32)?;
        let b = scale_up(other.unscaled, (other.exp as i64 - exp as i64) as u32)?;
        let (negative, unscaled) = match (self.negative, other.negative) {
            (x, y) if x == y => (x, a.checked_add(b)?),
            (x, _) => {
                if a >= b {
                    (x, a - b)
                } else {
                    (!x, b - a)
                }
            }
        };
        Some(Quantity { negative: negative && unscaled != 0, unscaled, exp, dec: true, inexact: false })
    }

    /// The value as an `i64`, as upstream's `AsInt64`: only for an
    /// `int64Amount` whose scale is not negative and whose value fits.
    /// (So `1.0`, `1000m` and any `inf.Dec` answer `None`.)
    pub fn as_i64(&self) -> Option<i64> {
        if self.dec || self.exp < 0 {
            return None;
        }
        let (v, s) = self.int64_amount();
        positive_scale_i64(v, s)
    }

    /// A float approximation, computed as upstream's `AsApproximateFloat64`
    /// (the digits as a float, times Go's `math.Pow10` of the exponent), so
    /// both give the same bits.
    pub fn as_approximate_f64(&self) -> f64 {
        let base = if self.dec {
            let b = self.unscaled as f64;
            if self.negative {
                -b
            } else {
                b
            }
        } else {
            self.int64_amount().0 as f64
        };
        if self.exp == 0 {
            base
        } else {
            base * go_pow10(self.exp)
        }
    }
}

/// The pieces of a quantity string, as upstream's `parseQuantityString` splits it.
struct Parts<'a> {
    positive: bool,
    /// The integer digits without leading zeros ("0" if there were none).
    num: &'a str,
    /// The integer digits as written (may be empty or all zeros).
    int_digits: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

fn scan(s: &str) -> Option<Parts<'_>> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let int_start = pos;
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some(Parts { positive, num: "0", int_digits: &s[int_start..], denom: "", suffix: "" });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == num_start { "0" } else { &s[num_start..pos] };
    let int_digits = &s[int_start..pos];
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let d = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[d..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return None;
    }
    Some(Parts { positive, num, int_digits, denom, suffix: &s[suffix_start..] })
}

/// (binary?, exponent) of a suffix, as upstream's `suffixHandler.interpret`.
fn interpret_suffix(suffix: &str) -> Option<(bool, i32)> {
    let dec = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = dec {
        return Some((false, e));
    }
    let bin = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(e) = bin {
        return Some((true, e));
    }
    let rest = suffix.strip_prefix('e').or_else(|| suffix.strip_prefix('E'))?;
    if rest.is_empty() {
        return None;
    }
    // Upstream parses 64 bits and keeps the low 32.
    rest.parse::<i64>().ok().map(|e| (false, e as i32))
}

/// The digits as a u128, keeping at most 38 significant ones: returns the
/// kept value, how many trailing digits were dropped, and whether any of the
/// dropped ones was non-zero.
fn digits_to_u128(digits: &str) -> (u128, usize, bool) {
    let mut v: u128 = 0;
    let mut significant = 0usize;
    let mut dropped = 0usize;
    let mut inexact = false;
    for c in digits.bytes() {
        let d = (c - b'0') as u128;
        if significant < 38 {
            if v != 0 || d != 0 {
                significant += 1;
            }
            v = v * 10 + d;
        } else {
            dropped += 1;
            inexact |= d != 0;
        }
    }
    (v, dropped, inexact)
}

fn digit_count(mut v: u128) -> u32 {
    let mut n = 0;
    while v > 0 {
        n += 1;
        v /= 10;
    }
    n
}

fn scale_up(v: u128, by: u32) -> Option<u128> {
    if v == 0 {
        return Some(0);
    }
    10u128.checked_pow(by).and_then(|p| v.checked_mul(p))
}

/// Upstream's `int64Amount.Add`: `None` where it would fall back to `inf.Dec`.
fn int64_amount_add(a: (i64, i32), b: (i64, i32)) -> Option<Quantity> {
    let ((av, as_), (bv, bs)) = (a, b);
    let (value, scale) = if bv == 0 {
        (av, as_)
    } else if av == 0 {
        (bv, bs)
    } else if as_ == bs {
        (av.checked_add(bv)?, as_)
    } else if as_ > bs {
        (positive_scale_i64(av, as_ - bs)?.checked_add(bv)?, bs)
    } else {
        (av.checked_add(positive_scale_i64(bv, bs - as_)?)?, as_)
    };
    Some(Quantity::from_int64_amount(value, scale))
}

/// `base × 10^scale` for a non-negative scale, `None` on overflow.
fn positive_scale_i64(base: i64, scale: i32) -> Option<i64> {
    if base == 0 {
        return Some(0);
    }
    let mut v = base;
    for _ in 0..scale {
        v = v.checked_mul(10)?;
    }
    Some(v)
}

/// Go's `math.Pow10`: a product of two table entries, so the result matches
/// Go's to the bit.
fn go_pow10(n: i32) -> f64 {
    const TAB: [f64; 32] = [
        1e00, 1e01, 1e02, 1e03, 1e04, 1e05, 1e06, 1e07, 1e08, 1e09, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21,
        1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
    ];
    const POS32: [f64; 10] = [1e00, 1e32, 1e64, 1e96, 1e128, 1e160, 1e192, 1e224, 1e256, 1e288];
    const NEG32: [f64; 11] = [1e-00, 1e-32, 1e-64, 1e-96, 1e-128, 1e-160, 1e-192, 1e-224, 1e-256, 1e-288, 1e-320];
    if (0..=308).contains(&n) {
        return POS32[n as usize / 32] * TAB[n as usize % 32];
    }
    if (-323..=0).contains(&n) {
        let m = (-n) as usize;
        return NEG32[m / 32] / TAB[m % 32];
    }
    if n > 0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// ceil(m * 10^e10), saturating at u128::MAX.
fn ceil_mul(m: u128, e10: i64, inexact: bool) -> u128 {
    let mut num = m;
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

    #[test]
    fn upstream_parse_errors_keep_their_kind() {
        let kind = |s: &str| Quantity::parse_upstream(s).unwrap_err().kind;
        assert_eq!(kind("10Mo"), QuantityErrorKind::Format);
        assert_eq!(kind("10Mm"), QuantityErrorKind::Suffix);
        assert_eq!(kind("1ee3"), QuantityErrorKind::Suffix);
        assert_eq!(kind(" 1"), QuantityErrorKind::Format, "upstream allows no whitespace");
        assert_eq!(kind(""), QuantityErrorKind::Format);
        // Upstream reads a number without digits as zero; Berth's own parse does not.
        assert_eq!(Quantity::parse_upstream("m").unwrap().sign(), 0);
    }

    fn q(s: &str) -> Quantity {
        Quantity::parse_upstream(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn compares_values_not_representations() {
        assert_eq!(q("1Ki").compare(&q("1024")), Ordering::Equal);
        assert_eq!(q("200M").compare(&q("0.2G")), Ordering::Equal);
        assert_eq!(q("50M").compare(&q("50Mi")), Ordering::Less);
        assert_eq!(q("50Mi").compare(&q("50M")), Ordering::Greater);
        assert_eq!(q("-1").compare(&q("1m")), Ordering::Less);
        assert_eq!(q("-2").compare(&q("-1")), Ordering::Less);
        assert_eq!(q("0").compare(&q("0m")), Ordering::Equal);
        assert_eq!(q("1e30").compare(&q("999999999999999999999999999999")), Ordering::Greater);
        assert_eq!(q("9999999999999999999999999999999999999G").compare(&q("1e45")), Ordering::Greater);
        // 40 significant digits: kept rounded up, a hair above the 38 we hold.
        let long = q("1000000000000000000000000000000000000001");
        assert_eq!(long.compare(&q("1e39")), Ordering::Greater);
    }

    #[test]
    fn as_i64_follows_upstream_representations() {
        assert_eq!(q("50k").as_i64(), Some(50_000));
        assert_eq!(q("1.5k").as_i64(), Some(1_500));
        assert_eq!(q("1Ki").as_i64(), Some(1024));
        assert_eq!(q("50").as_i64(), Some(50));
        assert_eq!(q("1.0").as_i64(), None, "upstream holds 1.0 as 10e-1");
        assert_eq!(q("1000m").as_i64(), None);
        assert_eq!(q("1.5Gi").as_i64(), None, "a fractional binary value takes upstream's slow path");
        assert_eq!(q("9999999999999999999999999999999999999G").as_i64(), None);
        assert_eq!(q("1e19").as_i64(), None, "overflows int64");
        assert_eq!(q("8Ei").as_i64(), None, "capped, but an inf.Dec");
    }

    #[test]
    fn adds_and_subtracts_like_upstream() {
        let add = |a: &str, b: &str| q(a).checked_add(&q(b)).unwrap();
        let sub = |a: &str, b: &str| q(a).checked_sub(&q(b)).unwrap();
        assert_eq!(add("50k", "20").compare(&q("50.02k")), Ordering::Equal);
        assert_eq!(add("50k", "20").as_i64(), Some(50_020));
        assert_eq!(sub("50k", "100k").as_i64(), Some(-50_000));
        assert_eq!(q("50k").checked_add(&Quantity::from_i64(20)).unwrap().checked_sub(&q("100k")).unwrap().as_i64(), Some(-49_980));
        let big = q("9999999999999999999999999999999999999");
        let plus1 = big.checked_add(&q("1")).unwrap();
        let plus2 = big.checked_add(&q("2")).unwrap();
        assert_eq!(plus1.compare(&plus2), Ordering::Less);
        assert_eq!(plus1.as_i64(), None, "the sum is an inf.Dec");
        // Beyond 38 digits Berth refuses rather than round.
        assert!(q("1e30").checked_add(&q("1n")).is_none());
        assert_eq!(add("1.5Gi", "512Mi").compare(&q("2Gi")), Ordering::Equal);
    }

    #[test]
    fn approximate_float_and_sign() {
        assert_eq!(q("50.703k").as_approximate_f64(), 50703.0);
        assert_eq!(q("1Ki").as_approximate_f64(), 1024.0);
        assert_eq!(q("-1.5").as_approximate_f64(), -1.5);
        assert_eq!(q("-1.5").sign(), -1);
        assert_eq!(q("0").sign(), 0);
        assert_eq!(q("1n").sign(), 1);
        assert_eq!(q("1e400").as_approximate_f64(), f64::INFINITY);
    }

    #[test]
    fn rounds_to_nano_and_caps_binary_values() {
        assert_eq!(q("0.0000000001").compare(&q("1n")), Ordering::Equal, "rounded up to one nano unit");
        assert_eq!(q("-0.0000000001").compare(&q("-1n")), Ordering::Equal, "away from zero");
        assert_eq!(q("16Ei").compare(&Quantity::from_i64(i64::MAX)), Ordering::Equal);
        assert_eq!(q("16E").compare(&q("16000000000000000000")), Ordering::Equal, "decimal values are not capped");
    }
}
