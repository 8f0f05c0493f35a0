//! The quantity arithmetic the allocator needs for counters and consumable
//! capacity: compare, add, subtract, and Kubernetes' canonical text form for
//! the amounts it writes into `consumedCapacity`.
//!
//! Amounts are kept in thousandths (milli-units), exact for every amount
//! the API can hold below 9.2·10¹⁵ units; larger ones saturate (they are
//! more than any device has, and compare as such).

use std::fmt;

use crate::model::Quantity;

/// An amount in milli-units, remembering whether it was written with a
/// binary suffix (`Gi`) so its canonical form keeps that format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Qty {
    /// Thousandths of a unit.
    pub milli: i128,
    /// Written in BinarySI (`Ki`, `Mi`, ...).
    pub binary: bool,
}

impl Qty {
    /// Parses the API's text form.
    pub fn parse(s: &str) -> Result<Qty, String> {
        let q = Quantity::parse(s).map_err(|e| e.to_string())?;
        let t = s.trim();
        let binary = t.ends_with('i');
        Ok(Qty { milli: q.milli_value() as i128, binary })
    }

    /// Whole units (upstream's `Value()`, rounded up).
    pub fn value(&self) -> i128 {
        let v = self.milli.div_euclid(1000);
        if self.milli.rem_euclid(1000) != 0 {
            v + 1
        } else {
            v
        }
    }

    /// `-1`, `0` or `1`.
    pub fn sign(&self) -> i32 {
        self.milli.signum() as i32
    }

    /// `self + other`, in `self`'s format.
    pub fn add(&self, other: &Qty) -> Qty {
        Qty { milli: self.milli.saturating_add(other.milli), binary: self.binary }
    }

    /// `self - other`, in `self`'s format.
    pub fn sub(&self, other: &Qty) -> Qty {
        Qty { milli: self.milli.saturating_sub(other.milli), binary: self.binary }
    }

    /// Compares amounts only (not formats), as `Quantity.Cmp`.
    pub fn cmp_amount(&self, other: &Qty) -> std::cmp::Ordering {
        self.milli.cmp(&other.milli)
    }

    /// An amount of whole units in a format.
    pub fn units(v: i128, binary: bool) -> Qty {
        Qty { milli: v.saturating_mul(1000), binary }
    }
}

impl fmt::Display for Qty {
    /// Kubernetes' canonical form: the largest suffix that divides the
    /// amount exactly (`1536Mi`, `2k`, `1500m`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.milli % 1000 != 0 {
            return write!(f, "{}m", self.milli);
        }
        let v = self.milli / 1000;
        if v == 0 {
            return write!(f, "0");
        }
        if self.binary {
            let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            let mut i = 0;
            let mut n = v;
            while i + 1 < suffixes.len() && n % 1024 == 0 {
                n /= 1024;
                i += 1;
            }
            // Upstream writes a binary amount that is not a multiple of 1024 in decimal.
            if i > 0 {
                return write!(f, "{n}{}", suffixes[i]);
            }
        }
        let suffixes = ["", "k", "M", "G", "T", "P", "E"];
        let mut i = 0;
        let mut n = v;
        while i + 1 < suffixes.len() && n % 1000 == 0 {
            n /= 1000;
            i += 1;
        }
        write!(f, "{n}{}", suffixes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let table = [("1Gi", "1Gi"), ("1536Mi", "1536Mi"), ("1000", "1k"), ("1500m", "1500m"), ("1", "1"), ("0", "0"), ("2048", "2048")];
        for (input, want) in table {
            assert_eq!(Qty::parse(input).unwrap().to_string(), want, "{input}");
        }
    }

    #[test]
    fn arithmetic_and_order() {
        let a = Qty::parse("1Gi").unwrap();
        let b = Qty::parse("512Mi").unwrap();
        assert_eq!(a.sub(&b).to_string(), "512Mi");
        assert_eq!(b.add(&b).cmp_amount(&a), std::cmp::Ordering::Equal);
        assert_eq!(Qty::parse("1.5").unwrap().value(), 2);
        assert!(Qty::parse("x").is_err());
    }
}
