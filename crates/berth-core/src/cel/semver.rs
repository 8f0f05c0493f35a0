//! Semantic versions as Kubernetes' CEL sees them: the `blang/semver/v4`
//! parser (strict: `1.2.3`, no `v`, no leading zeros) and its ordering, which
//! ignores build metadata.

use std::cmp::Ordering;
use std::fmt::Write as _;

/// One dot-separated prerelease identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pre {
    Num(u64),
    Alpha(String),
}

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) major: u64,
    pub(crate) minor: u64,
    pub(crate) patch: u64,
    pre: Vec<Pre>,
    build: Vec<String>,
}

fn only_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn alphanumeric(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn leading_zero(s: &str) -> bool {
    s.len() > 1 && s.starts_with('0')
}

/// Go's `%q` of a string: quoted, with control characters escaped.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.ParseUint(s, 10, 64)` on a string of digits.
fn parse_u64(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err(format!("strconv.ParseUint: parsing {}: invalid syntax", go_quote(s)));
    }
    s.parse::<u64>().map_err(|_| format!("strconv.ParseUint: parsing {}: value out of range", go_quote(s)))
}

impl Version {
    /// `semver.Parse`: exactly `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, with
    /// upstream's error texts.
    pub(crate) fn parse(s: &str) -> Result<Version, String> {
        if s.is_empty() {
            return Err("Version string empty".to_string());
        }
        let parts: Vec<&str> = s.splitn(3, '.').collect();
        if parts.len() != 3 {
            return Err("No Major.Minor.Patch elements found".to_string());
        }
        let number = |part: &str, what: &str| -> Result<u64, String> {
            if !only_digits(part) {
                return Err(format!("Invalid character(s) found in {what} number {}", go_quote(part)));
            }
            if leading_zero(part) {
                let cap = format!("{}{}", what[..1].to_uppercase(), &what[1..]);
                return Err(format!("{cap} number must not contain leading zeroes {}", go_quote(part)));
            }
            parse_u64(part)
        };
        let major = number(parts[0], "major")?;
        let minor = number(parts[1], "minor")?;
        let mut patch_str = parts[2];
        let mut build = Vec::new();
        let mut prerelease = Vec::new();
        if let Some(i) = patch_str.find('+') {
            build = patch_str[i + 1..].split('.').collect();
            patch_str = &patch_str[..i];
        }
        if let Some(i) = patch_str.find('-') {
            prerelease = patch_str[i + 1..].split('.').collect();
            patch_str = &patch_str[..i];
        }
        let patch = number(patch_str, "patch")?;
        let mut pre = Vec::with_capacity(prerelease.len());
        for p in prerelease {
            if p.is_empty() {
                return Err("Prerelease is empty".to_string());
            }
            if only_digits(p) {
                if leading_zero(p) {
                    return Err(format!("Numeric PreRelease version must not contain leading zeroes {}", go_quote(p)));
                }
                pre.push(Pre::Num(parse_u64(p)?));
            } else if alphanumeric(p) {
                pre.push(Pre::Alpha(p.to_string()));
            } else {
                return Err(format!("Invalid character(s) found in prerelease {}", go_quote(p)));
            }
        }
        let mut builds = Vec::with_capacity(build.len());
        for b in build {
            if b.is_empty() {
                return Err("Build meta data is empty".to_string());
            }
            if !alphanumeric(b) {
                return Err(format!("Invalid character(s) found in build meta data {}", go_quote(b)));
            }
            builds.push(b.to_string());
        }
        Ok(Version { major, minor, patch, pre, build: builds })
    }

    /// Kubernetes' `normalizeAndParse` (`semver(s, true)`): a leading `v`
    /// dropped, leading zeros trimmed, missing minor and patch taken as zero.
    pub(crate) fn parse_normalized(s: &str) -> Result<Version, String> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts: Vec<String> = s
            .splitn(3, '.')
            .map(|p| {
                if p.len() > 1 {
                    let t = p.trim_start_matches('0');
                    if t.is_empty() || !t.as_bytes()[0].is_ascii_digit() {
                        format!("0{t}")
                    } else {
                        t.to_string()
                    }
                } else {
                    p.to_string()
                }
            })
            .collect();
        if parts.len() < 3 {
            if parts.last().is_some_and(|p| p.contains(['+', '-'])) {
                return Err("short version cannot contain PreRelease/Build meta data".to_string());
            }
            while parts.len() < 3 {
                parts.push("0".to_string());
            }
        }
        Version::parse(&parts.join("."))
    }

    /// Precedence as `Version.Compare`: build metadata does not count.
    pub(crate) fn compare(&self, other: &Version) -> Ordering {
        let core = (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        if core != Ordering::Equal {
            return core;
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            _ => {}
        }
        for (a, b) in self.pre.iter().zip(&other.pre) {
            let ord = match (a, b) {
                (Pre::Num(x), Pre::Num(y)) => x.cmp(y),
                (Pre::Num(_), Pre::Alpha(_)) => Ordering::Less,
                (Pre::Alpha(_), Pre::Num(_)) => Ordering::Greater,
                (Pre::Alpha(x), Pre::Alpha(y)) => x.cmp(y),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        self.pre.len().cmp(&other.pre.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly_with_upstream_messages() {
        assert!(Version::parse("1.2.3").is_ok());
        assert!(Version::parse("1.2.3-rc.1+build.5").is_ok());
        assert_eq!(Version::parse("").unwrap_err(), "Version string empty");
        assert_eq!(Version::parse("1.2").unwrap_err(), "No Major.Minor.Patch elements found");
        assert_eq!(Version::parse("v1.2.3").unwrap_err(), "Invalid character(s) found in major number \"v1\"");
        assert_eq!(Version::parse("01.2.3").unwrap_err(), "Major number must not contain leading zeroes \"01\"");
        assert_eq!(Version::parse("1.02.3").unwrap_err(), "Minor number must not contain leading zeroes \"02\"");
        assert_eq!(Version::parse("1..3").unwrap_err(), "strconv.ParseUint: parsing \"\": invalid syntax");
        assert_eq!(Version::parse("1.2.3-").unwrap_err(), "Prerelease is empty");
        assert_eq!(Version::parse("1.2.3-01").unwrap_err(), "Numeric PreRelease version must not contain leading zeroes \"01\"");
        assert_eq!(Version::parse("1.2.3+").unwrap_err(), "Build meta data is empty");
        assert_eq!(
            Version::parse("99999999999999999999.0.0").unwrap_err(),
            "strconv.ParseUint: parsing \"99999999999999999999\": value out of range"
        );
    }

    #[test]
    fn normalizes_like_kubernetes() {
        assert_eq!(Version::parse_normalized("v1.02").unwrap(), Version::parse("1.2.0").unwrap());
        assert_eq!(Version::parse_normalized("v0.0.1").unwrap(), Version::parse("0.0.1").unwrap());
        assert_eq!(Version::parse_normalized("1.00.0").unwrap(), Version::parse("1.0.0").unwrap());
        assert_eq!(Version::parse_normalized("1-rc").unwrap_err(), "short version cannot contain PreRelease/Build meta data");
    }

    #[test]
    fn orders_by_precedence() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(v("1.0.0").compare(&v("0.0.1")), Ordering::Greater);
        assert_eq!(v("1.0.0-alpha").compare(&v("1.0.0")), Ordering::Less);
        assert_eq!(v("1.0.0-alpha").compare(&v("1.0.0-alpha.1")), Ordering::Less);
        assert_eq!(v("1.0.0-2").compare(&v("1.0.0-10")), Ordering::Less, "numeric identifiers compare as numbers");
        assert_eq!(v("1.0.0-1").compare(&v("1.0.0-a")), Ordering::Less);
        assert_eq!(v("1.0.0+a").compare(&v("1.0.0+b")), Ordering::Equal, "build metadata has no precedence");
    }
}
