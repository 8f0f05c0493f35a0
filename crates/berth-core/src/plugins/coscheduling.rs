//! Coscheduling: scheduler-plugins' gangs (`scheduling.x-k8s.io/v1alpha1`
//! PodGroup, joined by the pod label `scheduling.x-k8s.io/pod-group`), which
//! Kubeflow's training operator, Spark and others create.
//!
//! Configured as scheduler-plugins documents it (QueueSort and multiPoint):
//!
//! ```yaml
//! profiles:
//! - schedulerName: default-scheduler
//!   plugins:
//!     multiPoint: {enabled: [{name: Coscheduling}]}
//!     queueSort: {enabled: [{name: Coscheduling}], disabled: [{name: "*"}]}
//! ```
//!
//! Berth places a group's members in one cycle, all of at least `minMember`
//! or none (see [`framework::group`](crate::framework::group)), where
//! scheduler-plugins holds members at Permit until enough arrive. So no
//! member ever waits at Permit for its siblings, and `scheduleTimeoutSeconds`
//! and `permitWaitingTimeSeconds` (the longest such wait) always hold; they
//! are accepted and checked. PreFilter's checks and messages are upstream's:
//! too few members, and `minResources` that the cluster's free capacity
//! cannot cover. A labelled pod whose PodGroup does not exist waits for it
//! (upstream schedules it alone).

use std::sync::Arc;

use serde::Deserialize;

use crate::cache::Snapshot;
use crate::framework::*;
use crate::model::{Pod, Resource};
use crate::plugins::gang_scheduling::{about_the_group, group_events, POD_GROUP_LABEL};

/// The plugin's name in a profile.
pub const NAME: &str = "Coscheduling";

/// scheduler-plugins' PodGroup (the CRD is `deploy/crd-podgroups.scheduling.x-k8s.io.yaml`).
pub const POD_GROUP: ObjectKind = ObjectKind::namespaced("scheduling.x-k8s.io", "v1alpha1", "PodGroup", "podgroups");

/// The fields of a scheduler-plugins PodGroup that Berth reads.
#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodGroup {
    /// `creationTimestamp` orders groups in the queue.
    pub metadata: Meta,
    /// `minMember`, `minResources`, `scheduleTimeoutSeconds`.
    pub spec: PodGroupSpec,
}

/// The metadata Berth reads.
#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    /// RFC 3339.
    pub creation_timestamp: Option<String>,
}

/// `spec` of a scheduler-plugins PodGroup.
#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PodGroupSpec {
    /// How many members must be placed at once (at least 1).
    pub min_member: i32,
    /// Free capacity the cluster must have for the group, e.g. `{cpu: "8"}`.
    pub min_resources: Option<std::collections::BTreeMap<String, String>>,
    /// How long placed members may wait for the rest (always met: see the module docs).
    pub schedule_timeout_seconds: Option<i32>,
}

/// `pluginConfig` args, with upstream's defaults.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CoschedulingArgs {
    /// Longest wait at Permit (default 60).
    #[serde(default = "default_permit_wait")]
    pub permit_waiting_time_seconds: i64,
    /// Back-off of a failed group (default 0: none beyond the queue's).
    #[serde(default)]
    pub pod_group_backoff_seconds: i64,
    /// Share of a group that may be missing before PostFilter rejects it (default 10).
    #[serde(default = "default_reject_percentage")]
    pub pod_group_reject_percentage: i64,
}

fn default_permit_wait() -> i64 {
    60
}

fn default_reject_percentage() -> i64 {
    10
}

impl Default for CoschedulingArgs {
    fn default() -> Self {
        CoschedulingArgs { permit_waiting_time_seconds: 60, pod_group_backoff_seconds: 0, pod_group_reject_percentage: 10 }
    }
}

/// The plugin.
pub struct Coscheduling {
    handle: Handle,
    groups: Store<PodGroup>,
}

impl Coscheduling {
    /// The plugin, with its args checked as upstream's validation does.
    pub fn new(args: Option<&serde_json::Value>, handle: &Handle) -> Result<Coscheduling, String> {
        let a: CoschedulingArgs = super::decode_args(NAME, args)?;
        if a.permit_waiting_time_seconds < 0 {
            return Err("CoschedulingArgs.permitWaitingTimeSeconds: must be greater than 0".into());
        }
        if a.pod_group_backoff_seconds < 0 {
            return Err("CoschedulingArgs.podGroupBackoffSeconds: must be greater than 0".into());
        }
        if !(0..=100).contains(&a.pod_group_reject_percentage) {
            return Err("CoschedulingArgs.podGroupRejectPercentage: must be between 0 and 100".into());
        }
        Ok(Coscheduling { handle: handle.clone(), groups: handle.objects(POD_GROUP) })
    }

    fn group_of<'p>(&self, pod: &'p Pod) -> Option<(&'p str, Option<Arc<PodGroup>>)> {
        let name = pod.labels.get(POD_GROUP_LABEL).filter(|l| !l.is_empty())?;
        Some((name.as_str(), self.groups.get(&pod.namespace, name)))
    }

    /// The time that orders a pod in the queue: its group's creation (so a
    /// group's members stay together), else its own first attempt.
    fn queue_time(&self, q: &QueuedPodInfo) -> (i64, String) {
        let pod = &q.pod_info.pod;
        match self.group_of(pod) {
            Some((name, Some(g))) => {
                let created = g.metadata.creation_timestamp.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
                let at = created.map_or(q.initial_attempt_timestamp, |t| t.as_millisecond());
                (at, format!("{}/{name}", pod.namespace))
            }
            _ => (q.initial_attempt_timestamp, String::new()),
        }
    }
}

fn group_key(namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", POD_GROUP.group)
}

/// Whether the event's pod carries the same group label as `pod`.
fn same_group(pod: &Pod, obj: &EventObject) -> QueueingHint {
    let group = pod.labels.get(POD_GROUP_LABEL).map(String::as_str).unwrap_or_default();
    about_the_group(obj, &pod.namespace, group, |other| other.labels.get(POD_GROUP_LABEL).map(String::as_str) == Some(group))
}

/// Free capacity summed over all nodes, for the resources `wanted` names;
/// `None` if it covers them, else upstream's `resource gap` message.
fn resource_gap(snapshot: &Snapshot, wanted: &Resource, names: &[&str]) -> Option<String> {
    let mut gaps = Vec::new();
    for &name in names {
        let free: i64 = snapshot
            .nodes()
            .iter()
            .map(|n| {
                if name == crate::model::resource::PODS {
                    n.allocatable().allowed_pod_number - n.pods.len() as i64
                } else {
                    n.allocatable().get(name) - n.requested.get(name)
                }
            })
            .map(|f| f.max(0))
            .fold(0i64, i64::saturating_add);
        let want = wanted.get(name);
        if free < want {
            let unit = if name == crate::model::resource::CPU { "m" } else { "" };
            gaps.push(format!("{name}:{}{unit}", want - free));
        }
    }
    (!gaps.is_empty()).then(|| format!("resource gap: map[{}]", gaps.join(" ")))
}

#[crate::plugin]
impl Plugin for Coscheduling {
    fn name(&self) -> &'static str {
        NAME
    }

    /// A member rejected for want of siblings or of its group is retried
    /// when a pod of its group arrives or a PodGroup changes.
    fn events_to_register(&self) -> Vec<ClusterEventWithHint> {
        group_events(POD_GROUP, same_group)
    }

    fn pre_enqueue(&self, pod: &Pod) -> Status {
        match self.group_of(pod) {
            Some((name, None)) => Status::unresolvable(format!("waiting for PodGroup {name:?} ({}) to appear", POD_GROUP.api_version())),
            _ => Status::success(),
        }
    }

    /// Priority first; then the group's creation time, so that members of
    /// one group are tried together; then namespace/name.
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        let (pa, pb) = (a.pod_info.pod.priority, b.pod_info.pod.priority);
        if pa != pb {
            return pa > pb;
        }
        let (ta, tb) = (self.queue_time(a), self.queue_time(b));
        if ta != tb {
            return ta < tb;
        }
        a.key() < b.key()
    }

    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> (Option<PreFilterResult>, Status) {
        let p = &pod.pod;
        let Some((name, Some(group))) = self.group_of(p) else { return (None, Status::skip()) };
        let min = group.spec.min_member.max(1);
        let known = self.handle.pod_group_counts(&group_key(&p.namespace, name)).all;
        if (known as i64) < min as i64 {
            let msg = format!(
                "pre-filter pod {} cannot find enough sibling pods, current pods number: {known}, minMember of group: {min}",
                p.name
            );
            return (None, Status::unresolvable(msg));
        }
        if let Some(min_resources) = &group.spec.min_resources {
            let mut wanted = Resource::default();
            let mut names: Vec<&str> = Vec::new();
            for (k, v) in min_resources {
                let q = match crate::model::quantity::parse_field(&format!("PodGroup {name} spec.minResources.{k}"), v) {
                    Ok(q) => q,
                    Err(e) => return (None, Status::unresolvable(e)),
                };
                let amount = if k == crate::model::resource::CPU { q.milli_value() } else { q.value() };
                wanted.set(k, amount);
                names.push(k);
            }
            if !names.contains(&crate::model::resource::PODS) {
                wanted.set(crate::model::resource::PODS, min as i64);
                names.push(crate::model::resource::PODS);
            }
            if let Some(gap) = resource_gap(snapshot, &wanted, &names) {
                return (None, Status::unresolvable(gap));
            }
        }
        (None, Status::success())
    }

    fn pod_group(&self, pod: &Pod) -> Option<GroupMembership> {
        let (name, group) = self.group_of(pod)?;
        Some(GroupMembership::new(
            group_key(&pod.namespace, name),
            format!("{}/{name}", pod.namespace),
            group.map(|g| g.spec.min_member.max(1) as u32),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod, node_info};
    use serde_json::json;

    #[test]
    fn args_are_checked_as_upstream() {
        let h = Handle::default();
        assert!(Coscheduling::new(None, &h).is_ok());
        let e = Coscheduling::new(Some(&json!({"podGroupRejectPercentage": 101})), &h).err().unwrap();
        assert!(e.contains("must be between 0 and 100"), "{e}");
        let e = Coscheduling::new(Some(&json!({"permitWaitingTimeSeconds": -1})), &h).err().unwrap();
        assert!(e.contains("must be greater than 0"), "{e}");
        assert!(Coscheduling::new(Some(&json!({"unknown": 1})), &h).is_err());
    }

    #[test]
    fn too_few_members_and_a_resource_gap_are_reported_as_upstream() {
        let host = PluginHost::default();
        let p = Coscheduling::new(None, &host.handle("default-scheduler")).unwrap();
        let pod = make_pod("w0").label(POD_GROUP_LABEL, "job").obj();
        assert_eq!(p.pre_enqueue(&pod).message(), "waiting for PodGroup \"job\" (scheduling.x-k8s.io/v1alpha1) to appear");
        host.apply_object(
            &POD_GROUP,
            &json!({"metadata": {"name": "job", "namespace": "default"}, "spec": {"minMember": 2, "minResources": {"cpu": "3"}}}),
        )
        .unwrap();
        assert!(p.pre_enqueue(&pod).is_success());
        let snap = Snapshot::from_node_infos(vec![node_info(make_node("n0").capacity(2000, 1 << 30, 110).obj(), vec![])]);
        let info = PodInfo::new(pod.clone());
        host.pod_groups().set("default/w0", &group_key("default", "job"), false);
        let (_, s) = p.pre_filter(&mut CycleState::default(), &info, &snap);
        assert_eq!(s.message(), "pre-filter pod w0 cannot find enough sibling pods, current pods number: 1, minMember of group: 2");
        host.pod_groups().set("default/w1", &group_key("default", "job"), false);
        let (_, s) = p.pre_filter(&mut CycleState::default(), &info, &snap);
        assert_eq!(s.message(), "resource gap: map[cpu:1000m]");
        let m = p.pod_group(&pod).unwrap();
        assert_eq!((m.key.as_str(), m.min_count), ("scheduling.x-k8s.io/default/job", Some(2)));
    }
}
