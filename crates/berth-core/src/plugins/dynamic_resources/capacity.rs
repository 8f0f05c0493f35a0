//! Consumable capacity (`DRAConsumableCapacity`, beta and on in 1.37, with
//! `DRAFractionalCapacityRange`): how much of a shared device's capacity a
//! request consumes, and whether that still fits, as upstream's
//! `consumable_capacity.go`.

use std::collections::BTreeMap;

use super::inventory::Capacity;
use super::qty::Qty;

/// Capacity consumed per capacity name.
pub type Consumed = BTreeMap<String, Qty>;

/// Adds `b` into `a`.
pub fn add_into(a: &mut Consumed, b: &Consumed) {
    for (k, v) in b {
        let e = a.entry(k.clone()).or_insert(Qty { milli: 0, binary: v.binary });
        *e = e.add(v);
    }
}

/// Subtracts `b` from `a`.
pub fn sub_from(a: &mut Consumed, b: &Consumed) {
    for (k, v) in b {
        if let Some(e) = a.get_mut(k) {
            *e = e.sub(v);
        }
    }
}

/// Upstream's `CmpRequestOverCapacity`: whether `requests` fit the device's
/// `capacity` on top of what allocations (`allocated`) and the allocation
/// in progress (`allocating`) already consume.
pub fn fits(
    allocated: Option<&Consumed>,
    requests: Option<&BTreeMap<String, Qty>>,
    capacity: &BTreeMap<String, Capacity>,
    allocating: Option<&Consumed>,
) -> Result<bool, String> {
    if let Some(r) = requests {
        if r.keys().any(|name| !capacity.contains_key(name)) {
            return Ok(false);
        }
    }
    // The common case, a device used whole: it consumes exactly its
    // capacity, which always fits and breaks no policy it does not have.
    if requests.is_none() && allocated.is_none() && allocating.is_none() && capacity.values().all(|c| !c.has_policy && c.value.sign() >= 0)
    {
        return Ok(true);
    }
    let mut consumed = BTreeMap::new();
    for (name, cap) in capacity {
        let c = consumed_amount(requests.and_then(|r| r.get(name)), cap).map_err(|e| format!("capacity {name:?}: {e}"))?;
        if c.sign() < 0 {
            return Err(format!("capacity {name:?}: capacity value is negative"));
        }
        consumed.insert(name.clone(), c);
    }
    for (name, cap) in capacity {
        let c = consumed[name];
        if violates_policy(&c, cap) {
            return Ok(false);
        }
        let mut total = allocated.and_then(|a| a.get(name)).map_or(c, |a| a.add(&c));
        if let Some(x) = allocating.and_then(|a| a.get(name)) {
            total = total.add(x);
        }
        if total.cmp_amount(&cap.value).is_gt() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Upstream's `GetConsumedCapacityFromRequest`.
pub fn consumed_by(requests: Option<&BTreeMap<String, Qty>>, capacity: &BTreeMap<String, Capacity>) -> Result<Consumed, String> {
    capacity
        .iter()
        .map(|(name, cap)| {
            Ok((name.clone(), consumed_amount(requests.and_then(|r| r.get(name)), cap).map_err(|e| format!("capacity {name:?}: {e}"))?))
        })
        .collect()
}

/// Upstream's `calculateConsumedCapacity`.
fn consumed_amount(requested: Option<&Qty>, cap: &Capacity) -> Result<Qty, String> {
    let Some(req) = requested else {
        return Ok(cap.default.unwrap_or(cap.value));
    };
    if !cap.has_policy {
        return Ok(*req);
    }
    match &cap.valid_range {
        Some((Some(min), max, step)) => round_up_range(req, min, max.as_ref(), step.as_ref()),
        _ if !cap.valid_values.is_empty() => Ok(*cap.valid_values.iter().find(|v| req.cmp_amount(v).is_le()).unwrap_or(req)),
        _ => Ok(*req),
    }
}

const NOT_REPRESENTABLE: &str = "capacity request cannot be represented in the device's range arithmetic";

/// Upstream's `roundUpRange`, with fractional ranges (`DRAFractionalCapacityRange`).
fn round_up_range(req: &Qty, min: &Qty, max: Option<&Qty>, step: Option<&Qty>) -> Result<Qty, String> {
    if req.cmp_amount(min).is_lt() {
        return Ok(*min);
    }
    let Some(step) = step else { return Ok(*req) };
    let format = step.binary;
    if use_milli(min, max, step) {
        // Amounts are milli-exact here by construction.
        let (r, s, m) = (req.milli, step.milli, min.milli);
        let added = r - m;
        let mut n = added / s;
        if added % s != 0 {
            n += 1;
        }
        if n > (i64::MAX as i128 - m) / s {
            return Err(format!("{NOT_REPRESENTABLE}: rounding request {req} up to the next step passes the milli-value range"));
        }
        return Ok(Qty { milli: m + s * n, binary: format });
    }
    if req.value() > i64::MAX as i128 {
        return Err(format!("{NOT_REPRESENTABLE}: request {req} exceeds MaxInt64"));
    }
    let (r, s, m) = (req.value(), step.value(), min.value());
    if s == 0 {
        return Ok(*req);
    }
    let added = r - m;
    let mut n = added / s;
    if added % s != 0 {
        n += 1;
    }
    if m >= 0 && n > (i64::MAX as i128 - m) / s {
        return Err(format!("{NOT_REPRESENTABLE}: rounding request {req} up to the next step passes MaxInt64"));
    }
    Ok(Qty::units(m + s * n, format))
}

/// Whether a range's bounds all are whole thousandths and its step at
/// least one thousandth (Berth's amounts always are; a zero step is not).
fn use_milli(_min: &Qty, _max: Option<&Qty>, step: &Qty) -> bool {
    step.milli >= 1
}

/// Upstream's `violatesPolicy`.
fn violates_policy(v: &Qty, cap: &Capacity) -> bool {
    if !cap.has_policy {
        return false;
    }
    if cap.default.is_some_and(|d| d.cmp_amount(v).is_eq()) {
        return false;
    }
    if let Some((min, max, step)) = &cap.valid_range {
        if max.is_some_and(|m| v.cmp_amount(&m).is_gt()) {
            return true;
        }
        if let Some(step) = step {
            let min = min.unwrap_or_default();
            if step.milli != 0 && (v.milli - min.milli) % step.milli != 0 {
                return true;
            }
        }
        return false;
    }
    if !cap.valid_values.is_empty() {
        return !cap.valid_values.iter().any(|x| x.cmp_amount(v).is_eq());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(value: &str, default: Option<&str>, valid: &[&str], range: Option<(&str, Option<&str>, Option<&str>)>) -> Capacity {
        let q = |s: &str| Qty::parse(s).unwrap();
        Capacity {
            value: q(value),
            default: default.map(q),
            valid_values: valid.iter().map(|s| q(s)).collect(),
            valid_range: range.map(|(m, x, s)| (Some(q(m)), x.map(q), s.map(q))),
            has_policy: default.is_some() || !valid.is_empty() || range.is_some(),
        }
    }

    fn req(name: &str, v: &str) -> BTreeMap<String, Qty> {
        BTreeMap::from([(name.to_string(), Qty::parse(v).unwrap())])
    }

    #[test]
    fn requests_round_up_to_the_policy_and_must_fit() {
        let mut c = BTreeMap::new();
        c.insert("memory".to_string(), cap("10Gi", Some("1Gi"), &[], Some(("1Gi", Some("8Gi"), Some("1Gi")))));
        // Rounded from 1.5Gi up to 2Gi.
        let got = consumed_by(Some(&req("memory", "1536Mi")), &c).unwrap();
        assert_eq!(got["memory"].to_string(), "2Gi");
        // No request: the default.
        assert_eq!(consumed_by(None, &c).unwrap()["memory"].to_string(), "1Gi");
        assert!(fits(None, Some(&req("memory", "8Gi")), &c, None).unwrap());
        assert!(!fits(None, Some(&req("memory", "9Gi")), &c, None).unwrap(), "above validRange.max");
        let used = consumed_by(Some(&req("memory", "8Gi")), &c).unwrap();
        assert!(!fits(Some(&used), Some(&req("memory", "3Gi")), &c, None).unwrap(), "8Gi + 3Gi > 10Gi");
        assert!(fits(Some(&used), Some(&req("memory", "2Gi")), &c, None).unwrap());
        // A capacity the device does not have never fits.
        assert!(!fits(None, Some(&req("bandwidth", "1")), &c, None).unwrap());
    }

    #[test]
    fn valid_values_round_up_to_the_next_value() {
        let mut c = BTreeMap::new();
        c.insert("slots".to_string(), cap("8", None, &["1", "2", "4"], None));
        assert_eq!(consumed_by(Some(&req("slots", "3")), &c).unwrap()["slots"].to_string(), "4");
        assert!(!fits(None, Some(&req("slots", "5")), &c, None).unwrap(), "5 is above every valid value");
    }
}
