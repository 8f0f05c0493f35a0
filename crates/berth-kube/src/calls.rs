//! API calls waiting for their turn under the client's rate limit.
//!
//! Under a tight QPS the scheduler decides faster than it may write, so
//! calls queue up. A write that a newer one makes pointless is not sent:
//! a pod's pending `PodScheduled=False` patch gives way to a newer one (the
//! pending nomination is kept), and to the pod's binding, after which a
//! stale "unschedulable" write would be wrong. This is upstream's API call
//! dispatcher's rule (SchedulerAsyncAPICalls): one pending status call per
//! pod, and binding outranks it. Events wait in their own line, capped as
//! client-go's broadcaster caps its queue (newest dropped when full).

use std::collections::{HashMap, VecDeque};

use crate::controller::ApiAction;

/// client-go's `maxQueuedEvents`.
pub const MAX_QUEUED_EVENTS: usize = 1000;

#[derive(Default)]
pub struct PendingCalls {
    /// FIFO; `None` is a call taken back.
    slots: VecDeque<Option<ApiAction>>,
    /// Absolute index of `slots[0]`.
    first: u64,
    /// Pod key -> absolute index of its pending status write, per kind.
    status: HashMap<String, u64>,
    nominate: HashMap<String, u64>,
    live: usize,
    events: VecDeque<ApiAction>,
    pub dropped_events: u64,
}

fn pod_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl PendingCalls {
    /// Calls (not events) waiting.
    pub fn calls(&self) -> usize {
        self.live
    }

    pub fn events(&self) -> usize {
        self.events.len()
    }

    fn slot(&mut self, abs: u64) -> Option<&mut Option<ApiAction>> {
        let i = abs.checked_sub(self.first)?;
        self.slots.get_mut(i as usize)
    }

    fn append(&mut self, a: ApiAction) -> u64 {
        let abs = self.first + self.slots.len() as u64;
        self.slots.push_back(Some(a));
        self.live += 1;
        abs
    }

    /// Queues a call, merging it with or dropping what it supersedes.
    pub fn push(&mut self, a: ApiAction) {
        match a {
            ApiAction::Event { .. } | ApiAction::EventSeries { .. } => {
                if self.events.len() >= MAX_QUEUED_EVENTS {
                    self.dropped_events += 1;
                } else {
                    self.events.push_back(a);
                }
            }
            ApiAction::MarkUnschedulable { ref namespace, ref name, .. } => {
                let key = pod_key(namespace, name);
                if let Some(&abs) = self.status.get(&key) {
                    if let Some(slot @ Some(_)) = self.slot(abs) {
                        let Some(ApiAction::MarkUnschedulable { nominated_node: old, .. }) = slot.take() else { unreachable!() };
                        let ApiAction::MarkUnschedulable { namespace, name, reason, message, nominated_node } = a else { unreachable!() };
                        // The older nomination was never written: keep it
                        // unless the newer write brings its own.
                        *slot =
                            Some(ApiAction::MarkUnschedulable { namespace, name, reason, message, nominated_node: nominated_node.or(old) });
                        return;
                    }
                }
                let abs = self.append(a);
                self.status.insert(key, abs);
            }
            ApiAction::Nominate { ref namespace, ref name, .. } => {
                let key = pod_key(namespace, name);
                if let Some(&abs) = self.nominate.get(&key) {
                    if let Some(slot @ Some(_)) = self.slot(abs) {
                        *slot = Some(a);
                        return;
                    }
                }
                let abs = self.append(a);
                self.nominate.insert(key, abs);
            }
            ApiAction::Evict { .. } => {
                self.append(a);
            }
        }
    }

    /// A pod's binding cycle starts: a pending "unschedulable" write for it
    /// is stale now (it would even be wrong once the pod is bound).
    pub fn binding_started(&mut self, namespace: &str, name: &str) {
        if let Some(abs) = self.status.remove(&pod_key(namespace, name)) {
            if let Some(slot) = self.slot(abs) {
                if slot.take().is_some() {
                    self.live -= 1;
                }
            }
        }
    }

    /// The next call in line.
    pub fn pop_call(&mut self) -> Option<ApiAction> {
        while let Some(slot) = self.slots.pop_front() {
            let abs = self.first;
            self.first += 1;
            let Some(a) = slot else { continue };
            self.live -= 1;
            let index = match &a {
                ApiAction::MarkUnschedulable { namespace, name, .. } => Some((&mut self.status, pod_key(namespace, name))),
                ApiAction::Nominate { namespace, name, .. } => Some((&mut self.nominate, pod_key(namespace, name))),
                _ => None,
            };
            if let Some((map, key)) = index {
                if map.get(&key) == Some(&abs) {
                    map.remove(&key);
                }
            }
            return Some(a);
        }
        None
    }

    pub fn pop_event(&mut self) -> Option<ApiAction> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unschedulable(name: &str, message: &str, nominated: Option<&str>) -> ApiAction {
        ApiAction::MarkUnschedulable {
            namespace: "ns".into(),
            name: name.into(),
            reason: "Unschedulable".into(),
            message: message.into(),
            nominated_node: nominated.map(Into::into),
        }
    }

    fn nominate(name: &str) -> ApiAction {
        ApiAction::Nominate { namespace: "ns".into(), name: name.into(), node: Some("n1".into()) }
    }

    fn drain(q: &mut PendingCalls) -> Vec<ApiAction> {
        std::iter::from_fn(|| q.pop_call()).collect()
    }

    #[test]
    fn a_newer_status_write_replaces_the_pending_one_and_keeps_its_nomination() {
        let mut q = PendingCalls::default();
        q.push(unschedulable("a", "first", Some("n1")));
        q.push(unschedulable("b", "other pod", None));
        q.push(unschedulable("a", "second", None));
        assert_eq!(q.calls(), 2);
        assert_eq!(drain(&mut q), vec![unschedulable("a", "second", Some("n1")), unschedulable("b", "other pod", None)]);
        // Once sent, a new write queues again.
        q.push(unschedulable("a", "third", None));
        assert_eq!(drain(&mut q), vec![unschedulable("a", "third", None)]);
    }

    #[test]
    fn binding_drops_the_pending_unschedulable_write() {
        let mut q = PendingCalls::default();
        q.push(unschedulable("a", "no room", None));
        q.push(nominate("b"));
        q.binding_started("ns", "b");
        q.binding_started("ns", "a");
        assert_eq!(q.calls(), 1);
        assert_eq!(drain(&mut q), vec![nominate("b")]);
        assert_eq!(q.calls(), 0);
    }

    #[test]
    fn nominations_coalesce_and_events_are_capped() {
        let mut q = PendingCalls::default();
        let nominate = |node: Option<&str>| ApiAction::Nominate { namespace: "ns".into(), name: "a".into(), node: node.map(Into::into) };
        q.push(nominate(Some("n1")));
        q.push(nominate(None));
        assert_eq!(drain(&mut q), vec![nominate(None)]);
        let record = berth_core::framework::EventRecord {
            regarding: berth_core::framework::ObjectRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: "ns".into(),
                name: "a".into(),
                uid: String::new(),
            },
            reporting_controller: "berth".into(),
            event_type: berth_core::framework::EventType::Warning,
            reason: "FailedScheduling".into(),
            action: "Scheduling".into(),
            note: "n".into(),
        };
        let event = ApiAction::EventSeries {
            namespace: "ns".into(),
            event_name: "e".into(),
            count: 2,
            last_observed_ms: 0,
            record: Box::new(record),
        };
        for _ in 0..MAX_QUEUED_EVENTS + 5 {
            q.push(event.clone());
        }
        assert_eq!((q.events(), q.dropped_events, q.calls()), (MAX_QUEUED_EVENTS, 5, 0));
        assert_eq!(q.pop_event(), Some(event));
    }
}
