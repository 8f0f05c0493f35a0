//! The bytes that cross into and out of a guest (`docs/wasm-abi.md`):
//! pods and nodes as JSON, bulk arrays little-endian, statuses as a code
//! byte and a message.

use std::fmt::Write as _;

use berth_core::framework::{Code, Reason, Status};
use berth_core::model::{Node, Pod};
use serde::Serialize;

/// The operations of `berth_call`.
pub mod op {
    /// Once per instance: name, args; answers the metadata.
    pub const INIT: u32 = 1;
    /// Node table changes.
    pub const SYNC: u32 = 2;
    /// Starts an attempt: the cycle and its pod.
    pub const PRE_FILTER: u32 = 3;
    /// Verdicts for a list of slots.
    pub const FILTER: u32 = 4;
    /// Final scores for a list of slots.
    pub const SCORE: u32 = 5;
    /// The pod was assumed on a node.
    pub const RESERVE: u32 = 6;
    /// Undo of reserve.
    pub const UNRESERVE: u32 = 7;
    /// Allow, reject or hold the pod.
    pub const PERMIT: u32 = 8;
    /// Before the binding.
    pub const PRE_BIND: u32 = 9;
}

/// A pod as a guest sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WirePod<'a> {
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
    labels: &'a berth_core::model::Labels,
    annotations: &'a berth_core::model::Labels,
    priority: i32,
    scheduler_name: &'a str,
    node_selector: &'a std::collections::BTreeMap<String, String>,
}

/// `pod` as the JSON of the ABI, appended to `out`.
pub fn write_pod(out: &mut Vec<u8>, pod: &Pod) {
    let w = WirePod {
        name: &pod.name,
        namespace: &pod.namespace,
        uid: &pod.uid,
        labels: &pod.labels,
        annotations: &pod.annotations,
        priority: pod.priority,
        scheduler_name: &pod.scheduler_name,
        node_selector: &pod.node_selector,
    };
    // Maps of strings and numbers: serialization cannot fail.
    serde_json::to_writer(out, &w).expect("a pod serializes");
}

#[derive(Serialize)]
struct WireTaint<'a> {
    key: &'a str,
    value: &'a str,
    effect: &'static str,
}

#[derive(Serialize)]
struct WireNode<'a> {
    name: &'a str,
    labels: &'a berth_core::model::Labels,
    annotations: &'a berth_core::model::Labels,
    unschedulable: bool,
    taints: Vec<WireTaint<'a>>,
    allocatable: serde_json::Map<String, serde_json::Value>,
}

/// `node` as the JSON of the ABI.
pub fn node_json(node: &Node) -> serde_json::Value {
    let a = &node.allocatable;
    let mut allocatable = serde_json::Map::new();
    for (k, v) in [("cpu", a.milli_cpu), ("memory", a.memory), ("ephemeral-storage", a.ephemeral_storage), ("pods", a.allowed_pod_number)] {
        allocatable.insert(k.into(), v.into());
    }
    for (k, v) in &a.scalar {
        allocatable.insert(k.to_string(), (*v).into());
    }
    let w = WireNode {
        name: &node.name,
        labels: &node.labels,
        annotations: &node.annotations,
        unschedulable: node.unschedulable,
        taints: node.taints.iter().map(|t| WireTaint { key: &t.key, value: &t.value, effect: t.effect.as_str() }).collect(),
        allocatable,
    };
    serde_json::to_value(w).expect("a node serializes")
}

/// The input of reserve, unreserve, permit and preBind.
pub fn pod_on_node(pod: &Pod, node: &str) -> Vec<u8> {
    let mut out = b"{\"pod\":".to_vec();
    write_pod(&mut out, pod);
    out.extend_from_slice(b",\"node\":");
    serde_json::to_writer(&mut out, node).expect("a string serializes");
    out.push(b'}');
    out
}

/// The input of filter and the head of score's: the cycle, then the slots.
pub fn cycle_and_slots(cycle: u64, slots: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + 4 * slots.len());
    out.extend_from_slice(&cycle.to_le_bytes());
    out.extend_from_slice(&(slots.len() as u32).to_le_bytes());
    for s in slots {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// What is wrong with a guest's output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than its layout says.
    #[error("{0} bytes are too few")]
    Short(usize),
    /// A code outside 0..=6.
    #[error("status code {0} is not one of 0-6")]
    Code(u8),
    /// A message that is not UTF-8.
    #[error("a message is not UTF-8")]
    Utf8,
    /// A verdict points past the message table.
    #[error("message index {0} is past the {1} messages")]
    Index(u32, u32),
    /// Bytes left over after the layout.
    #[error("{0} bytes left over")]
    Trailing(usize),
}

fn code(b: u8) -> Result<Code, Malformed> {
    Ok(match b {
        0 => Code::Success,
        1 => Code::Error,
        2 => Code::Unschedulable,
        3 => Code::UnschedulableAndUnresolvable,
        4 => Code::Wait,
        5 => Code::Skip,
        6 => Code::Pending,
        other => return Err(Malformed::Code(other)),
    })
}

/// A status of `code` with `reason`, or none when it is empty.
fn make(code: Code, reason: Option<&Reason>) -> Status {
    match reason {
        Some(r) if !r.is_empty() => Status::new(code, r.clone()),
        _ => Status::code_only(code),
    }
}

/// A status as the ABI encodes it: nothing is Success.
pub fn status(bytes: &[u8]) -> Result<Status, Malformed> {
    let Some((&c, msg)) = bytes.split_first() else {
        return Ok(Status::success());
    };
    let msg = std::str::from_utf8(msg).map_err(|_| Malformed::Utf8)?;
    Ok(make(code(c)?, Some(&Reason::Owned(msg.to_string()))))
}

/// A little-endian reader over a guest's output.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or(Malformed::Short(self.bytes.len()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn end(&self) -> Result<(), Malformed> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            n => Err(Malformed::Trailing(n)),
        }
    }
}

/// Filter's verdicts for `n` slots: codes, message indexes, messages.
/// Nothing at all: every node passed. Each message of the table becomes a
/// reason once, by `intern`, and is shared by the nodes that name it.
pub fn verdicts(bytes: &[u8], n: usize, intern: &mut dyn FnMut(&str) -> Reason) -> Result<Vec<Status>, Malformed> {
    if bytes.is_empty() {
        return Ok(vec![Status::success(); n]);
    }
    let mut r = Reader { bytes, at: 0 };
    let codes = r.take(n)?;
    let indexes = r.take(n.checked_mul(4).ok_or(Malformed::Short(bytes.len()))?)?;
    let m = r.u32()?;
    let mut messages = Vec::with_capacity((m as usize).min(4096));
    for _ in 0..m {
        let len = r.u32()? as usize;
        messages.push(intern(std::str::from_utf8(r.take(len)?).map_err(|_| Malformed::Utf8)?));
    }
    r.end()?;
    let mut out = Vec::with_capacity(n);
    for (i, &c) in codes.iter().enumerate() {
        let idx = u32::from_le_bytes(indexes[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        let reason = match idx {
            u32::MAX => None,
            i if (i as usize) < messages.len() => Some(&messages[i as usize]),
            i => return Err(Malformed::Index(i, m)),
        };
        out.push(make(code(c)?, reason));
    }
    Ok(out)
}

/// Score's output: its status and, when that is Success, `n` scores.
pub fn scores(bytes: &[u8], n: usize) -> Result<(Status, Vec<i64>), Malformed> {
    let mut r = Reader { bytes, at: 0 };
    let len = r.u32()? as usize;
    let s = status(r.take(len)?)?;
    if !s.is_success() {
        return Ok((s, Vec::new()));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.u64()? as i64);
    }
    r.end()?;
    Ok((s, out))
}

/// Permit's output: nothing (Success), or how long to wait and the status.
pub fn permit(bytes: &[u8]) -> Result<(Status, std::time::Duration), Malformed> {
    if bytes.is_empty() {
        return Ok((Status::success(), std::time::Duration::ZERO));
    }
    let mut r = Reader { bytes, at: 0 };
    let ms = r.u64()?;
    Ok((status(&bytes[8..])?, std::time::Duration::from_millis(ms)))
}

/// A duration as Go prints it, for messages (`200ms`, `1.5s`).
pub fn show_duration(d: std::time::Duration) -> String {
    let mut s = String::new();
    if d.as_millis() < 1000 {
        let _ = write!(s, "{}ms", d.as_millis());
    } else {
        let _ = write!(s, "{}s", d.as_secs_f64());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_share_messages_and_refuse_bad_tables() {
        let mut b = vec![0u8, 3, 3];
        for i in [u32::MAX, 0, 0] {
            b.extend_from_slice(&i.to_le_bytes());
        }
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(b"gold");
        let mut own = |m: &str| Reason::Owned(m.to_string());
        let v = verdicts(&b, 3, &mut own).unwrap();
        assert!(v[0].is_success());
        assert_eq!((v[1].code, v[2].message().as_str()), (Code::UnschedulableAndUnresolvable, "gold"));
        assert_eq!(verdicts(&b, 4, &mut own).unwrap_err(), Malformed::Short(b.len()));
        assert_eq!(verdicts(&b[..b.len() - 1], 3, &mut own).unwrap_err(), Malformed::Short(b.len() - 1));
        let mut extra = b.clone();
        extra.push(0);
        assert_eq!(verdicts(&extra, 3, &mut own).unwrap_err(), Malformed::Trailing(1));
        let mut bad_index = b.clone();
        bad_index[3..7].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(verdicts(&bad_index, 3, &mut own).unwrap_err(), Malformed::Index(7, 1));
        let mut bad_code = b;
        bad_code[0] = 9;
        assert_eq!(verdicts(&bad_code, 3, &mut own).unwrap_err(), Malformed::Code(9));
        assert_eq!(verdicts(&[], 2, &mut own).unwrap().len(), 2);
    }

    #[test]
    fn scores_and_statuses() {
        let mut b = 0u32.to_le_bytes().to_vec();
        b.extend_from_slice(&100i64.to_le_bytes());
        b.extend_from_slice(&0i64.to_le_bytes());
        assert_eq!(scores(&b, 2).unwrap().1, vec![100, 0]);
        assert_eq!(scores(&b, 3).unwrap_err(), Malformed::Short(b.len()));
        let mut failed = 5u32.to_le_bytes().to_vec();
        failed.extend_from_slice(b"\x01oops");
        let (s, v) = scores(&failed, 2).unwrap();
        assert_eq!((s.code, s.message().as_str(), v.len()), (Code::Error, "oops", 0));
        assert_eq!(status(b"\x02full").unwrap().message(), "full");
        assert_eq!(status(b"\x02\xff").unwrap_err(), Malformed::Utf8);
        let mut p = 1500u64.to_le_bytes().to_vec();
        p.push(4);
        assert_eq!(permit(&p).unwrap(), (Status::code_only(Code::Wait), std::time::Duration::from_millis(1500)));
        assert_eq!(show_duration(std::time::Duration::from_millis(200)), "200ms");
    }
}
