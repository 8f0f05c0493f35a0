//! GangScheduling (Kubernetes 1.37, gate GenericWorkload): the pods of a
//! native PodGroup (`scheduling.k8s.io/v1beta1`, joined by
//! `spec.schedulingGroup.podGroupName`) are placed together: a `gang` group
//! only when at least `minCount` of its pods fit at once, a `basic` group
//! pod by pod.
//!
//! - PreEnqueue holds a member until its PodGroup exists and, for a gang,
//!   until at least `minCount` members exist, with upstream's messages.
//! - `pod_group` makes the members one group (see
//!   [`framework::group`](crate::framework::group)): Berth tries them in one
//!   cycle and keeps all or nothing.
//! - After each cycle the PodGroup's `PodGroupInitiallyScheduled`
//!   condition is written as upstream writes it (and never set back to
//!   False once True).
//! - PreFilter keeps pending, with a reason, the members of groups that use
//!   what Berth does not model (topology constraints, workload resource
//!   claims, composite groups), and pods labelled for scheduler-plugins'
//!   PodGroup when no plugin of the profile (Coscheduling) groups them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::cache::Snapshot;
use crate::framework::*;
use crate::model::Pod;

/// The plugin's name in a profile.
pub const NAME: &str = "GangScheduling";

/// The label by which a pod joins a scheduler-plugins (Coscheduling) PodGroup,
/// `scheduling.x-k8s.io/v1alpha1`, in its namespace.
pub const POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";

/// The native PodGroup.
pub const POD_GROUP: ObjectKind = ObjectKind::namespaced("scheduling.k8s.io", "v1beta1", "PodGroup", "podgroups");

/// The condition the scheduler writes on a PodGroup after its cycles.
pub const CONDITION: &str = "PodGroupInitiallyScheduled";

/// The fields of a native PodGroup that Berth reads.
#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodGroup {
    /// Name, namespace, generation.
    pub metadata: Meta,
    /// The policy and constraints.
    pub spec: PodGroupSpec,
    /// The conditions written so far.
    pub status: PodGroupStatus,
}

/// The metadata Berth reads.
#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Generation (the condition's `observedGeneration`).
    pub generation: Option<i64>,
}

/// `spec` of a native PodGroup.
#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodGroupSpec {
    /// `basic: {}` or `gang: {minCount}`.
    pub scheduling_policy: SchedulingPolicy,
    /// Topology constraints (gate TopologyAwareWorkloadScheduling): not modelled.
    pub scheduling_constraints: Option<serde_json::Value>,
    /// Workload resource claims (DRA): not modelled.
    pub resource_claims: Option<Vec<serde_json::Value>>,
    /// A composite group's child (gate CompositePodGroup): not modelled.
    pub parent_composite_pod_group_name: Option<String>,
    /// `single: {}` (the default) or `all: {}`: how preemption may evict the group.
    pub disruption_mode: Option<serde_json::Value>,
}

/// Exactly one of `basic` and `gang`.
#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct SchedulingPolicy {
    /// Members are placed one by one.
    pub basic: Option<serde_json::Value>,
    /// Members are placed all together.
    pub gang: Option<GangPolicy>,
}

/// `gang` policy.
#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct GangPolicy {
    /// How many members must fit at once.
    pub min_count: i32,
}

/// `status` of a native PodGroup.
#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodGroupStatus {
    /// `metav1.Condition`s, kept as they are.
    pub conditions: Vec<serde_json::Value>,
}

impl PodGroup {
    /// `minCount` for a gang, 1 for a basic group.
    pub fn min_count(&self) -> u32 {
        self.spec.scheduling_policy.gang.as_ref().map_or(1, |g| g.min_count.max(1) as u32)
    }

    /// `disruptionMode: all`: evicted whole or not at all.
    pub fn evicted_together(&self) -> bool {
        self.spec.disruption_mode.as_ref().is_some_and(|m| m.get("all").is_some())
    }

    fn is_gang(&self) -> bool {
        self.spec.scheduling_policy.gang.is_some()
    }

    /// What this group asks for that Berth does not model.
    fn unmodelled(&self) -> Option<&'static str> {
        let s = &self.spec;
        if s.scheduling_constraints.as_ref().is_some_and(|c| !c.is_null() && c != &serde_json::json!({})) {
            Some("topology constraints (schedulingConstraints)")
        } else if s.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
            Some("workload resource claims (resourceClaims)")
        } else if s.parent_composite_pod_group_name.is_some() {
            Some("composite pod groups (parentCompositePodGroupName)")
        } else {
            None
        }
    }
}

/// The plugin.
pub struct GangScheduling {
    handle: Handle,
    groups: Store<PodGroup>,
    status: Arc<conditions::Writer>,
}

/// The group key of a native PodGroup.
fn group_key(namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", POD_GROUP.group)
}

impl GangScheduling {
    /// The plugin, reading PodGroups through `handle`; it takes no args.
    pub fn new(handle: &Handle) -> GangScheduling {
        let groups = handle.objects(POD_GROUP);
        GangScheduling { handle: handle.clone(), groups: groups.clone(), status: Arc::new(conditions::Writer::new(handle.clone(), groups)) }
    }

    fn group_of<'p>(&self, pod: &'p Pod) -> Option<(&'p str, Option<Arc<PodGroup>>)> {
        let name = pod.scheduling_group.as_deref()?;
        Some((name, self.groups.get(&pod.namespace, name)))
    }
}

/// Whether the event is about `pod`'s native group: another member, or its PodGroup.
fn same_group(pod: &Pod, obj: &EventObject) -> QueueingHint {
    let group = pod.scheduling_group.as_deref().unwrap_or_default();
    about_the_group(obj, &pod.namespace, group, |other| other.scheduling_group.as_deref() == Some(group))
}

/// Queue when the event is about the group `namespace/group`: a pod of
/// that namespace that `member` says belongs to it, or the group's own
/// object. Other pods and other objects cannot complete the group.
pub(crate) fn about_the_group(obj: &EventObject, namespace: &str, group: &str, member: impl Fn(&Pod) -> bool) -> QueueingHint {
    let yes = match obj {
        EventObject::Pod { new: Some(other), .. } => other.namespace == namespace && member(other),
        EventObject::Pod { .. } => false,
        EventObject::Object(key) => key.namespace == namespace && key.name == group,
        _ => true,
    };
    if yes {
        QueueingHint::Queue
    } else {
        QueueingHint::Skip
    }
}

/// The events that may complete a group, with `same_group` as their hint:
/// a member arriving (pending or bound), and its PodGroup (of `kind`)
/// added or changed.
pub(crate) fn group_events(kind: ObjectKind, same_group: fn(&Pod, &EventObject) -> QueueingHint) -> Vec<ClusterEventWithHint> {
    vec![
        ClusterEventWithHint::with_hint(ClusterEvent::new(EventResource::UnscheduledPod, action::ADD, "UnscheduledPodAdd"), same_group),
        ClusterEventWithHint::with_hint(ClusterEvent::new(EventResource::AssignedPod, action::ADD, "AssignedPodAdd"), same_group),
        ClusterEventWithHint::with_hint(
            ClusterEvent::new(EventResource::Object(kind), action::ADD | action::UPDATE, "PodGroupChange"),
            same_group,
        ),
    ]
}

#[crate::plugin]
impl Plugin for GangScheduling {
    fn name(&self) -> &'static str {
        NAME
    }

    /// A member waits for its PodGroup and for enough company: another
    /// member arriving (pending or bound), or a PodGroup added or changed
    /// (minCount may drop), lets it try again.
    /// (An update of a rejected pod retries it too: its PreFilter refusals
    /// depend on the pod.)
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        let mut events = group_events(POD_GROUP, same_group);
        events.push(ClusterEventWithHint::new(ClusterEvent::new(EventResource::UnscheduledPod, action::UPDATE, "UnscheduledPodUpdate")));
        events
    }

    fn pre_enqueue(&self, pod: &Pod) -> Status {
        let Some((name, group)) = self.group_of(pod) else { return Status::success() };
        let Some(group) = group else {
            // Upstream's wording, typo included.
            return Status::unresolvable(format!("waiting for pods's pod group {name:?} to appear in scheduling queue"));
        };
        if group.is_gang() && self.handle.pod_group_counts(&group_key(&pod.namespace, name)).all < group.min_count() as usize {
            return Status::unresolvable("waiting for minCount pods from a gang to appear in scheduling queue");
        }
        Status::success()
    }

    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        let pod = &pod.pod;
        if let Some((name, Some(group))) = self.group_of(pod) {
            if let Some(what) = group.unmodelled() {
                let msg = format!("pod's PodGroup {name:?} (spec.schedulingGroup) uses {what}: Berth does not model it yet");
                return (None, Status::unresolvable(msg));
            }
        } else if let Some(label) = pod.labels.get(POD_GROUP_LABEL).filter(|l| !l.is_empty()) {
            if self.handle.pod_group_of(&pod.key()).is_none() {
                let msg = format!(
                    "pod is a member of PodGroup {label:?} (label {POD_GROUP_LABEL}): enable the Coscheduling plugin in this profile to place it with its group"
                );
                return (None, Status::unresolvable(msg));
            }
        }
        (None, Status::skip())
    }

    fn pod_group(&self, pod: &Pod) -> Option<GroupMembership> {
        let (name, group) = self.group_of(pod)?;
        let together = group.as_ref().is_some_and(|g| g.evicted_together());
        let m = GroupMembership::new(group_key(&pod.namespace, name), format!("{}/{name}", pod.namespace), group.map(|g| g.min_count()));
        Some(m.evicted_together(together))
    }

    fn pod_group_result(&self, result: &GroupResult) {
        let Some((namespace, name)) = result.group.name.split_once('/') else { return };
        self.status.record(namespace, name, result);
    }
}

/// Writing the `PodGroupInitiallyScheduled` condition.
pub mod conditions {
    use super::*;

    /// What the condition should say.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Wanted {
        status: &'static str,
        reason: &'static str,
        message: String,
    }

    /// Writes each group's latest outcome, in the background, skipping
    /// writes that change nothing.
    pub struct Writer {
        handle: Handle,
        groups: Store<PodGroup>,
        /// Per `namespace/name`: the outcome to write, while a write is queued.
        wanted: Mutex<HashMap<(String, String), Wanted>>,
        /// One write at a time, so the last outcome is the one that stays.
        writing: Mutex<()>,
    }

    impl Writer {
        /// A writer through `handle`'s writer, reading groups from `groups`.
        pub fn new(handle: Handle, groups: Store<PodGroup>) -> Writer {
            Writer { handle, groups, wanted: Mutex::default(), writing: Mutex::default() }
        }

        /// A group's cycle ended: make its condition say so.
        pub fn record(self: &Arc<Self>, namespace: &str, name: &str, result: &GroupResult) {
            if self.handle.writer().is_none() {
                return;
            }
            // A cycle that only tried extra members of a group placed before
            // leaves its condition alone: once True, never back to False.
            let min = result.group.min_count.unwrap_or(1) as usize;
            if result.reason != "Scheduled" && result.placed_before >= min {
                return;
            }
            let (status, reason) = match result.reason {
                "Scheduled" => ("True", "Scheduled"),
                "SchedulerError" => ("False", "SchedulerError"),
                _ => ("False", "Unschedulable"),
            };
            let want = Wanted { status, reason, message: result.message.clone() };
            let key = (namespace.to_string(), name.to_string());
            {
                let mut w = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
                // A write is queued: it will take this, the latest outcome.
                if w.insert(key.clone(), want).is_some() {
                    return;
                }
            }
            let me = self.clone();
            self.handle.in_background(move || me.flush(&key));
        }

        /// Writes the latest outcome of `key`, if one is still wanted. Writes
        /// take turns, and each takes the outcome when its turn comes, so
        /// the last one written is the last one recorded.
        fn flush(&self, key: &(String, String)) {
            let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            let Some(want) = self.wanted.lock().unwrap_or_else(|e| e.into_inner()).remove(key) else { return };
            let Some(group) = self.groups.get(&key.0, &key.1) else { return };
            let Some(patch) = condition_patch(&group, want.status, want.reason, &want.message, &jiff::Timestamp::now().to_string()) else {
                return;
            };
            if let Some(writer) = self.handle.writer() {
                // A failed write is made again after the group's next cycle:
                // the patch is computed from the PodGroup as last observed.
                let _ = writer.merge_patch_status(&POD_GROUP, &key.0, &key.1, &patch);
            }
        }
    }

    /// The merge patch that sets the condition, or `None` if it already
    /// says so (or says True, which is never undone).
    pub(super) fn condition_patch(group: &PodGroup, status: &str, reason: &str, message: &str, now: &str) -> Option<serde_json::Value> {
        let mut conditions = group.status.conditions.clone();
        let old = conditions.iter().position(|c| c.get("type").and_then(|t| t.as_str()) == Some(CONDITION));
        let mut transition = now.to_string();
        if let Some(i) = old {
            let c = &conditions[i];
            let field = |f: &str| c.get(f).and_then(|v| v.as_str()).unwrap_or("").to_string();
            if field("status") == "True" && status == "False" {
                return None;
            }
            if field("status") == status && field("reason") == reason && field("message") == message {
                return None;
            }
            if field("status") == status {
                transition = field("lastTransitionTime");
            }
            conditions.remove(i);
        }
        let mut c = serde_json::json!({
            "type": CONDITION,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": transition,
        });
        if let Some(g) = group.metadata.generation {
            c["observedGeneration"] = serde_json::json!(g);
        }
        conditions.push(c);
        Some(serde_json::json!({"status": {"conditions": conditions}}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::make_pod;
    use serde_json::json;

    fn plugin() -> (PluginHost, GangScheduling) {
        let host = PluginHost::default();
        let p = GangScheduling::new(&host.handle("default-scheduler"));
        (host, p)
    }

    #[test]
    fn members_wait_for_their_group_and_for_min_count() {
        let (host, p) = plugin();
        let mut member = make_pod("worker-0").obj();
        member.scheduling_group = Some("training".into());
        let s = p.pre_enqueue(&member);
        assert_eq!(s.message(), "waiting for pods's pod group \"training\" to appear in scheduling queue");
        host.apply_object(
            &POD_GROUP,
            &json!({"metadata": {"name": "training", "namespace": "default"}, "spec": {"schedulingPolicy": {"gang": {"minCount": 2}}}}),
        )
        .unwrap();
        assert_eq!(p.pre_enqueue(&member).message(), "waiting for minCount pods from a gang to appear in scheduling queue");
        host.pod_groups().set("default/worker-0", &group_key("default", "training"), false);
        host.pod_groups().set("default/worker-1", &group_key("default", "training"), false);
        assert!(p.pre_enqueue(&member).is_success());
        let m = p.pod_group(&member).unwrap();
        assert_eq!((m.name.as_str(), m.min_count), ("default/training", Some(2)));
        assert!(p.pre_enqueue(&make_pod("alone").obj()).is_success());
        assert!(p.pod_group(&make_pod("alone").obj()).is_none());
    }

    #[test]
    fn unmodelled_groups_and_unclaimed_labelled_pods_stay_pending_with_a_reason() {
        let (host, p) = plugin();
        host.apply_object(
            &POD_GROUP,
            &json!({"metadata": {"name": "tas"}, "spec": {"schedulingPolicy": {"basic": {}}, "schedulingConstraints": {"topology": [{"key": "rack"}]}}}),
        )
        .unwrap();
        let mut member = make_pod("w").obj();
        member.scheduling_group = Some("tas".into());
        let (_, s) = p.pre_filter(&mut CycleState::default(), &PodInfo::new(member), &Snapshot::default());
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert!(s.message().contains("topology constraints"), "{}", s.message());
        let labelled = make_pod("worker-1").label(POD_GROUP_LABEL, "pytorch-job").obj();
        let (_, s) = p.pre_filter(&mut CycleState::default(), &PodInfo::new(labelled), &Snapshot::default());
        assert!(s.message().contains("enable the Coscheduling plugin"), "{}", s.message());
        let (_, s) = p.pre_filter(&mut CycleState::default(), &PodInfo::new(make_pod("alone").obj()), &Snapshot::default());
        assert_eq!(s.code, Code::Skip);
    }

    /// Only events about the member's own group bring it back: a member of
    /// it arriving, or its PodGroup changing (not every PodGroup's status write).
    #[test]
    fn a_member_is_retried_on_its_own_groups_events_only() {
        let mut member = make_pod("w0").obj();
        member.scheduling_group = Some("train".into());
        let mut sibling = make_pod("w1").obj();
        sibling.scheduling_group = Some("train".into());
        let stranger = make_pod("x").obj();
        let pod_event = |p: &Pod| EventObject::Pod { old: None, new: Some(Arc::new(p.clone())) };
        assert_eq!(same_group(&member, &pod_event(&sibling)), QueueingHint::Queue);
        assert_eq!(same_group(&member, &pod_event(&stranger)), QueueingHint::Skip);
        let group = |ns: &str, name: &str| EventObject::Object(ObjectKey::new(&POD_GROUP, ns, name));
        assert_eq!(same_group(&member, &group("default", "train")), QueueingHint::Queue);
        assert_eq!(same_group(&member, &group("default", "other")), QueueingHint::Skip);
        assert_eq!(same_group(&member, &group("elsewhere", "train")), QueueingHint::Skip);
    }

    #[test]
    fn the_condition_is_set_changed_and_never_undone() {
        let g: PodGroup = serde_json::from_value(json!({"metadata": {"name": "g", "generation": 3}})).unwrap();
        let p = conditions::condition_patch(&g, "False", "Unschedulable", "pod group is unschedulable", "T1").unwrap();
        let c = &p["status"]["conditions"][0];
        assert_eq!((c["type"].as_str(), c["observedGeneration"].as_i64()), (Some(CONDITION), Some(3)));
        let g: PodGroup = serde_json::from_value(json!({"metadata": {"name": "g"}, "status": {"conditions": [c]}})).unwrap();
        assert!(conditions::condition_patch(&g, "False", "Unschedulable", "pod group is unschedulable", "T2").is_none(), "no change");
        let p = conditions::condition_patch(&g, "False", "Unschedulable", "other", "T2").unwrap();
        assert_eq!(p["status"]["conditions"][0]["lastTransitionTime"], "T1", "same status keeps its transition time");
        let p = conditions::condition_patch(&g, "True", "Scheduled", "", "T3").unwrap();
        let c = &p["status"]["conditions"][0];
        assert_eq!((c["status"].as_str(), c["lastTransitionTime"].as_str()), (Some("True"), Some("T3")));
        let g: PodGroup = serde_json::from_value(json!({"metadata": {"name": "g"}, "status": {"conditions": [c]}})).unwrap();
        assert!(conditions::condition_patch(&g, "False", "Unschedulable", "x", "T4").is_none(), "True stays");
    }
}
