//! Pod groups (gangs): pods that are placed all together or not at all.
//!
//! A plugin makes pods members of a group by answering
//! [`Plugin::pod_group`](super::Plugin::pod_group): the native PodGroup
//! (`spec.schedulingGroup`, the built-in GangScheduling plugin) and
//! scheduler-plugins' PodGroup (its label, the built-in Coscheduling plugin)
//! are two such plugins, and a plugin of your own can define groups its way.
//!
//! What Berth does with a group:
//!
//! - **Counting.** Berth keeps, per group, how many pods it knows (pending
//!   ones of its profiles, and bound or assumed ones) and how many of them
//!   are placed: [`Handle::pod_group_counts`](super::Handle::pod_group_counts)
//!   reads them, e.g. in PreEnqueue to hold members until enough exist.
//! - **One cycle per group.** When a member leaves the queue, every other
//!   member waiting in the queue comes with it, and they are tried one
//!   after another on one snapshot, each seeing the earlier ones placed.
//!   If at least `min_count` members are placed (counting those placed
//!   before), they are all assumed, reserved and sent to Permit and
//!   binding together; otherwise nothing is kept, every member goes back to
//!   the queue, and each reports why (see [`GroupResult`]).
//! - **After the cycle**, the plugin that owns the group hears how it went
//!   ([`Plugin::pod_group_result`](super::Plugin::pod_group_result)), to
//!   write the group's status.
//!
//! Berth never holds part of a group on nodes while it waits for the rest:
//! the decision is made in one synchronous pass, so there is no Permit
//! barrier to time out and no capacity held that would block other pods.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

/// Which group a pod belongs to, and what the group needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMembership {
    /// Names the group among all groups of all plugins, and is the same for
    /// all its members, e.g. `scheduling.k8s.io/<namespace>/<name>`.
    pub key: String,
    /// The group's name as users know it, for messages, e.g. `<namespace>/<name>`.
    pub name: String,
    /// How many members must be placed at once; 1 places members one by
    /// one (still in one cycle). `None` when the group's own object is not
    /// known yet: its members are not scheduled (a PreEnqueue plugin should
    /// hold them, as GangScheduling does).
    pub min_count: Option<u32>,
    /// Whether preemption evicts the group's placed members all together
    /// or not at all (PodGroup `disruptionMode: all`), rather than each on
    /// its own (`single`, the default).
    pub evict_together: bool,
}

impl GroupMembership {
    /// A group whose members are evicted one by one if preemption needs it.
    pub fn new(key: impl Into<String>, name: impl Into<String>, min_count: Option<u32>) -> GroupMembership {
        GroupMembership { key: key.into(), name: name.into(), min_count, evict_together: false }
    }

    /// The same group, evicted whole or not at all.
    pub fn evicted_together(mut self, yes: bool) -> GroupMembership {
        self.evict_together = yes;
        self
    }
}

/// How many pods of a group Berth knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Every known member: pending in a profile's queue, assumed, or bound.
    /// Terminated pods are not counted.
    pub all: usize,
    /// Members on a node: assumed by this scheduler or bound.
    pub placed: usize,
}

/// How a group's scheduling cycle ended, as its plugin hears it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupResult {
    /// The group.
    pub group: GroupMembership,
    /// `Scheduled`: at least `min_count` members are placed and the ones
    /// placed in this cycle go on to binding. `Unschedulable`: nothing was
    /// placed. `SchedulerError`: a plugin failed.
    pub reason: &'static str,
    /// Upstream's group status message, e.g. `pod group is unschedulable,
    /// minCount (3) cannot be satisfied: 1 scheduled, 1 remaining`; empty
    /// when scheduled.
    pub message: String,
    /// Members that were already on nodes before this cycle: when they
    /// reach `min_count`, the group was placed by an earlier cycle and this
    /// one only tried extra members.
    pub placed_before: usize,
    /// Members placed in this cycle (`namespace/name`).
    pub placed: Vec<String>,
    /// Members tried in this cycle that were not placed, with their reasons.
    pub failed: Vec<(String, String)>,
}

#[derive(Default, Debug)]
struct GroupState {
    members: BTreeSet<String>,
    placed: BTreeSet<String>,
}

/// The members Berth knows of every group: kept by the engine, read by
/// plugins through the handle.
#[derive(Default, Debug)]
pub struct PodGroups {
    inner: RwLock<Groups>,
}

#[derive(Default, Debug)]
struct Groups {
    groups: HashMap<String, GroupState>,
    /// Pod key -> its group key.
    of_pod: HashMap<String, String>,
}

impl PodGroups {
    /// The counts of the group `key` (zero if none is known).
    pub fn counts(&self, key: &str) -> GroupCounts {
        let g = self.read();
        g.groups.get(key).map(|s| GroupCounts { all: s.members.len(), placed: s.placed.len() }).unwrap_or_default()
    }

    /// The members of the group `key`, by pod key.
    pub fn members(&self, key: &str) -> Vec<String> {
        self.read().groups.get(key).map(|s| s.members.iter().cloned().collect()).unwrap_or_default()
    }

    /// The group of the pod `pod_key`, if it is a known member.
    pub fn group_of(&self, pod_key: &str) -> Option<String> {
        self.read().of_pod.get(pod_key).cloned()
    }

    /// The pod is a member of `group`; `placed` says whether it is on a node.
    pub(crate) fn set(&self, pod_key: &str, group: &str, placed: bool) {
        let mut g = self.write();
        if let Some(old) = g.of_pod.get(pod_key).filter(|o| o.as_str() != group).cloned() {
            g.remove_from(&old, pod_key);
        }
        g.of_pod.insert(pod_key.to_string(), group.to_string());
        let s = g.groups.entry(group.to_string()).or_default();
        s.members.insert(pod_key.to_string());
        if placed {
            s.placed.insert(pod_key.to_string());
        } else {
            s.placed.remove(pod_key);
        }
    }

    /// The pod is placed (assumed) or no longer placed (forgotten), if it is a member.
    pub(crate) fn set_placed(&self, pod_key: &str, placed: bool) {
        let mut g = self.write();
        let Some(group) = g.of_pod.get(pod_key).cloned() else { return };
        if let Some(s) = g.groups.get_mut(&group) {
            if placed {
                s.placed.insert(pod_key.to_string());
            } else {
                s.placed.remove(pod_key);
            }
        }
    }

    /// The pod is gone (deleted, terminated, or no longer ours).
    pub(crate) fn remove(&self, pod_key: &str) {
        let mut g = self.write();
        if let Some(group) = g.of_pod.remove(pod_key) {
            g.remove_from(&group, pod_key);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Groups> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Groups> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Groups {
    fn remove_from(&mut self, group: &str, pod_key: &str) {
        if let Some(s) = self.groups.get_mut(group) {
            s.members.remove(pod_key);
            s.placed.remove(pod_key);
            if s.members.is_empty() {
                self.groups.remove(group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_counted_once_and_moved_between_states() {
        let g = PodGroups::default();
        g.set("ns/a", "G", false);
        g.set("ns/b", "G", true);
        g.set("ns/b", "G", true);
        assert_eq!(g.counts("G"), GroupCounts { all: 2, placed: 1 });
        g.set_placed("ns/a", true);
        assert_eq!(g.counts("G").placed, 2);
        g.set_placed("ns/a", false);
        g.set_placed("ns/unknown", true);
        assert_eq!(g.counts("G"), GroupCounts { all: 2, placed: 1 });
        g.remove("ns/b");
        assert_eq!(g.counts("G"), GroupCounts { all: 1, placed: 0 });
        assert_eq!(g.group_of("ns/a").as_deref(), Some("G"));
        g.remove("ns/a");
        assert_eq!(g.counts("G"), GroupCounts::default());
        assert!(g.members("G").is_empty());
    }
}
