//! Pod groups: who belongs to which group, and the group's scheduling
//! cycle (all members tried on one snapshot; at least `min_count` placed,
//! or nothing kept). See [`framework::group`](crate::framework::group).

use std::sync::Arc;

use super::cycle::Placed;
use super::*;
use crate::scheduler::ScheduleError;

/// Upstream's `errPodGroupUnschedulable`: the first reason of a group's status.
pub const ERR_POD_GROUP_UNSCHEDULABLE: &str = "pod group is unschedulable";

/// A member tried in a group cycle that did not fit (or failed).
struct Tried {
    qpi: QueuedPodInfo,
    error: ScheduleError,
}

impl Engine {
    /// The pod group `pod` belongs to, if a plugin of its profile groups it.
    pub fn pod_group(&self, pod: &Pod) -> Option<GroupMembership> {
        self.membership(pod).map(|(_, m)| m)
    }

    /// How many members of the group `key` are known, and placed.
    pub fn pod_group_counts(&self, key: &str) -> GroupCounts {
        self.groups.counts(key)
    }

    /// How the last cycle of the group `key` ended, if it had one.
    pub fn last_group_result(&self, key: &str) -> Option<&GroupResult> {
        self.group_results.get(key)
    }

    /// The group `pod` belongs to under its profile (or the first profile,
    /// for pods of other schedulers), with the plugin that says so.
    pub(super) fn membership(&self, pod: &Pod) -> Option<(Arc<dyn Plugin>, GroupMembership)> {
        let i = profile_index(&self.profiles, &pod.scheduler_name, self.adopt_all_pods).unwrap_or(0);
        self.group_plugins[i].iter().find_map(|p| p.pod_group(pod).map(|m| (p.clone(), m)))
    }

    /// Counts `pod` in its group, if it has one; returns whether it has.
    pub(super) fn track_group(&mut self, pod: &Pod, placed: bool) -> bool {
        if self.group_plugins.iter().all(Vec::is_empty) {
            return false;
        }
        let key = pod.key();
        match self.membership(pod) {
            Some((_, m)) => {
                self.groups.set(&key, &m.key, placed);
                true
            }
            None => {
                self.groups.remove(&key);
                false
            }
        }
    }

    /// One scheduling cycle for the group of `first` (just popped): every
    /// member waiting in the queue is tried, in order, on one snapshot in
    /// which the earlier members are assumed. If at least `min_count` are
    /// then placed (with those placed before), the placed ones go on to
    /// Permit and binding; otherwise every assumption is undone and every
    /// member goes back to the queue with the reason.
    pub(super) fn schedule_group(&mut self, plugin: Arc<dyn Plugin>, group: GroupMembership, first: QueuedPodInfo, now_ms: i64) -> Outcome {
        let first_key = first.key();
        let others: Vec<String> = self.groups.members(&group.key).into_iter().filter(|k| *k != first_key).collect();
        let mut members = vec![first];
        members.extend(self.queue.take(&others));
        let mut outcomes = Vec::new();
        members.retain(|q| {
            let key = q.key();
            let gone = q.pod_info.pod.terminating || self.cache.pod_info(&key).is_some() || !self.owns(&q.pod_info.pod.scheduler_name);
            if gone {
                self.queue.done(&key);
                outcomes.push(Outcome::Skipped(key));
            }
            !gone
        });
        // Upstream's order of a group's pods: priority, then attempts (most
        // first), then time in the queue, then name.
        members.sort_by(|a, b| {
            (b.pod_info.pod.priority, b.attempts, a.timestamp, &a.pod_info.pod.name).cmp(&(
                a.pod_info.pod.priority,
                a.attempts,
                b.timestamp,
                &b.pod_info.pod.name,
            ))
        });
        // As upstream's validation: one group, one profile and one priority;
        // Berth would not know which to place it by.
        if let Some(reason) = inconsistent(&members) {
            let s = Status::error(reason).with_plugin(plugin.name());
            for q in members {
                outcomes.push(Outcome::Failed(Box::new(self.fail_with_status(q, s.clone(), now_ms))));
            }
            return Outcome::Group(GroupAttempt::Error, outcomes);
        }
        let Some(min) = group.min_count.map(|m| m as usize) else {
            // The group's object went away after its members were queued.
            let s = Status::unresolvable(format!("waiting for pod group {:?} to appear", group.name)).with_plugin(plugin.name());
            for q in members {
                outcomes.push(Outcome::Failed(Box::new(self.fail_with_status(q, s.clone(), now_ms))));
            }
            return Outcome::Group(GroupAttempt::Unschedulable, outcomes);
        };

        let fwk_of = |e: &Engine, q: &QueuedPodInfo| e.profile_for(&q.pod_info.pod.scheduler_name).cloned().expect("retained: ours");
        // The group's profile, for its preemption: the first member's (`first`
        // is never dropped above, and every member may fail before the end).
        let group_fwk = fwk_of(self, &members[0]);
        let placed_before = self.groups.counts(&group.key).placed;
        let mut placed_count = placed_before;
        let mut remaining = members.len();
        let members_len = members.len();
        let mut placed: Vec<(Arc<Framework>, Placed)> = Vec::new();
        let mut tried: Vec<Tried> = Vec::new();
        let mut not_tried: Vec<QueuedPodInfo> = Vec::new();
        let mut errored = false;
        let mut reserve_failures = Vec::new();
        for q in members {
            // Cut short once the group cannot reach min_count, but try at
            // least one member: its own reasons (a PreFilter's "not enough
            // siblings") say more than the count does.
            let tried_one = remaining < members_len;
            if errored || (tried_one && remaining + placed_count < min) {
                not_tried.push(q);
                continue;
            }
            let fwk = fwk_of(self, &q);
            self.refresh_snapshot(&fwk);
            let mut state = self.new_cycle_state(&fwk);
            let pod = q.pod_info.clone();
            remaining -= 1;
            match self.runner.schedule_pod(&fwk, &mut state, &pod, &self.snapshot, &self.queue.nominator) {
                Ok(result) => match self.assume_and_reserve(&fwk, q, state, result, now_ms) {
                    Ok(p) => {
                        placed_count += 1;
                        placed.push((fwk, p));
                    }
                    // Already requeued with its reason by `assume_and_reserve`.
                    Err(f) => {
                        errored |= f.reason == "SchedulerError";
                        reserve_failures.push(Outcome::Failed(f));
                    }
                },
                Err(error) => {
                    errored |= matches!(error, ScheduleError::Internal(_));
                    tried.push(Tried { qpi: q, error });
                }
            }
        }
        let placed_now = placed.len();
        let scheduled = !errored && placed_count >= min && placed_now > 0;
        outcomes.extend(reserve_failures);

        // The group's status, as upstream words it.
        let mut message = if scheduled {
            String::new()
        } else if placed_count >= min {
            ERR_POD_GROUP_UNSCHEDULABLE.to_string()
        } else {
            format!("{ERR_POD_GROUP_UNSCHEDULABLE}, minCount ({min}) cannot be satisfied: {placed_count} scheduled, {remaining} remaining")
        };
        // Members not tried carry the status as it was before preemption (upstream).
        let cut_message = message.clone();
        let mut result = GroupResult {
            group: group.clone(),
            reason: if errored {
                "SchedulerError"
            } else if scheduled {
                "Scheduled"
            } else {
                "Unschedulable"
            },
            message: String::new(),
            placed_before,
            placed: Vec::new(),
            failed: Vec::new(),
        };

        if scheduled {
            // Members that did not fit report their own reasons (no
            // PostFilter for a group's pods, as upstream).
            for t in tried {
                let key = t.qpi.key();
                let f = self.group_member_failed(t, now_ms, None);
                result.failed.push((key, f.message.clone()));
                outcomes.push(Outcome::Failed(Box::new(f)));
            }
            for (fwk, p) in placed {
                result.placed.push(p.qpi.key());
                outcomes.push(self.permit(p, fwk, now_ms));
            }
            plugin.pod_group_result(&result);
            self.group_results.insert(group.key.clone(), result);
            return Outcome::Group(GroupAttempt::Scheduled, outcomes);
        }

        // Not placed: undo every assumption, then see whether preemption helps.
        let mut fitted = Vec::new();
        for (fwk, mut p) in placed.into_iter().rev() {
            self.unreserve(&fwk, &mut p);
            fitted.push(p.qpi);
        }
        fitted.reverse();
        let mut in_order: Vec<Arc<PodInfo>> = fitted.iter().map(|q| q.pod_info.clone()).collect();
        in_order.extend(tried.iter().map(|t| t.qpi.pod_info.clone()));
        in_order.extend(not_tried.iter().map(|q| q.pod_info.clone()));
        let preemption =
            (!errored && group_fwk.group_preemption).then(|| self.preempt_for_group(&group_fwk, &in_order, min, placed_before));
        let mut nominations: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        let mut victims_on: std::collections::HashMap<String, Vec<Arc<PodInfo>>> = std::collections::HashMap::new();
        match &preemption {
            Some(Ok(p)) => {
                message =
                    format!("{message}, pod group preemption: found a placement for podgroup, preempting {} victims", p.victims.len());
                let preemptor = in_order[0].key();
                for v in &p.victims {
                    self.mark_evicting(v, &preemptor);
                    let node = v.pod.node_name.clone().unwrap_or_default();
                    let holder = p.nodes.iter().find(|(_, n)| *n == node).map_or(preemptor.clone(), |(k, _)| k.clone());
                    victims_on.entry(holder).or_default().push(v.clone());
                }
                nominations = p.nodes.iter().cloned().collect();
            }
            Some(Err(reason)) => message = format!("{message}, pod group preemption: {reason}"),
            None => {}
        }
        result.message = message.clone();
        let status = if errored { Status::error(message.clone()) } else { Status::unschedulable(message.clone()) };

        // What requeues the group: whatever could help the members that did
        // not fit, and the grouping plugin's own events.
        let mut helpers: std::collections::BTreeSet<&'static str> = std::collections::BTreeSet::new();
        let mut pending: std::collections::BTreeSet<&'static str> = std::collections::BTreeSet::new();
        helpers.insert(plugin.name());
        for t in &tried {
            if let ScheduleError::Fit(fit) = &t.error {
                helpers.extend(fit.diagnosis.unschedulable_plugins.iter().copied());
                pending.extend(fit.diagnosis.pending_plugins.iter().copied());
            }
        }
        let waiting_on_preemption = !nominations.is_empty();
        let mut failures: Vec<Failure> = Vec::new();
        for t in tried {
            let key = t.qpi.key();
            let f = if waiting_on_preemption {
                let mut q = t.qpi;
                q.unschedulable_plugins = helpers.clone();
                q.pending_plugins = pending.clone();
                self.requeue_nominated(q, &status, nominations.get(&key), now_ms)
            } else {
                self.group_member_failed(t, now_ms, Some((&helpers, &pending)))
            };
            failures.push(f);
        }
        let cut_status = if waiting_on_preemption || errored { status.clone() } else { Status::unschedulable(cut_message) };
        let fitted = fitted.into_iter().map(|q| (q, &status));
        for (mut q, s) in fitted.chain(not_tried.into_iter().map(|q| (q, &cut_status))) {
            let key = q.key();
            q.unschedulable_plugins = if errored { Default::default() } else { helpers.clone() };
            q.pending_plugins = pending.clone();
            failures.push(self.requeue_nominated(q, s, nominations.get(&key), now_ms));
        }
        for mut f in failures {
            let key = f.pod.key();
            if let Some(v) = victims_on.remove(&key) {
                f.victims = v;
            }
            result.failed.push((key, f.message.clone()));
            outcomes.push(Outcome::Failed(Box::new(f)));
        }
        plugin.pod_group_result(&result);
        self.group_results.insert(group.key.clone(), result);
        let attempt = if errored {
            GroupAttempt::Error
        } else if waiting_on_preemption {
            GroupAttempt::WaitingOnPreemption
        } else {
            GroupAttempt::Unschedulable
        };
        Outcome::Group(attempt, outcomes)
    }

    /// Requeues a member that was not placed, nominated to `node` if
    /// preemption found it one (other pods then leave that room to it).
    fn requeue_nominated(&mut self, mut q: QueuedPodInfo, status: &Status, node: Option<&String>, now_ms: i64) -> Failure {
        if let Some(node) = node {
            self.nominate(&mut q, node);
        }
        let mut f = self.requeue_failed(q, status, now_ms);
        f.nominated_node = node.cloned();
        f
    }

    /// A member that did not fit: requeued with its own reasons; in a group
    /// that was not placed, it waits for what could help any member.
    fn group_member_failed(
        &mut self,
        t: Tried,
        now_ms: i64,
        group_helpers: Option<(&std::collections::BTreeSet<&'static str>, &std::collections::BTreeSet<&'static str>)>,
    ) -> Failure {
        let Tried { mut qpi, error } = t;
        let (status, fit) = match error {
            ScheduleError::Fit(fit) => {
                qpi.unschedulable_plugins = fit.diagnosis.unschedulable_plugins.clone();
                qpi.pending_plugins = fit.diagnosis.pending_plugins.clone();
                (Status::unschedulable(fit.message()), Some(fit))
            }
            ScheduleError::NoNodes => {
                qpi.unschedulable_plugins.clear();
                qpi.pending_plugins.clear();
                (Status::unschedulable(crate::scheduler::ERR_NO_NODES_AVAILABLE), None)
            }
            ScheduleError::Internal(s) => {
                qpi.unschedulable_plugins.clear();
                qpi.pending_plugins.clear();
                (s, None)
            }
        };
        if let Some((helpers, pending)) = group_helpers.filter(|_| status.is_rejected() && fit.is_some()) {
            qpi.unschedulable_plugins.extend(helpers.iter().copied());
            qpi.pending_plugins.extend(pending.iter().copied());
        }
        let mut f = self.requeue_failed(qpi, &status, now_ms);
        f.fit = fit;
        f
    }
}

/// Why a group's members cannot be scheduled as one group: they name
/// different profiles or have different priorities (upstream's wording;
/// upstream compares priorities with the PodGroup's, Berth among members).
fn inconsistent(members: &[QueuedPodInfo]) -> Option<String> {
    let first = &members.first()?.pod_info.pod;
    for q in &members[1..] {
        let p = &q.pod_info.pod;
        if p.scheduler_name != first.scheduler_name {
            return Some(format!(
                "all pods in a single pod group should have the same .spec.schedulerName set, got: {:?} and {:?}",
                first.scheduler_name, p.scheduler_name
            ));
        }
        if p.priority != first.priority {
            return Some(format!(
                "all pods in a single pod group should have the same priority, got {} and {}",
                first.priority, p.priority
            ));
        }
    }
    None
}

/// Pods preemption evicts together (one pod, or a group evicted whole).
type Unit = Vec<Arc<PodInfo>>;

/// What workload-aware preemption found for a group: where each member
/// goes once the victims are gone.
pub(super) struct GroupPreemption {
    /// Member key -> node.
    pub nodes: Vec<(String, String)>,
    /// The pods to evict.
    pub victims: Vec<Arc<PodInfo>>,
}

impl Engine {
    /// Workload-aware preemption (upstream DefaultPreemption's
    /// PodGroupPostFilter) for a group that did not fit: the candidates are
    /// every bound pod of lower priority than the group's; with all of them
    /// gone, the group must place at least `min` members, or nothing is
    /// preempted. Then each candidate, most important first, is kept if
    /// every member still fits where it was placed. The cache is left as
    /// it was found. `Err` is the reason, as upstream words it.
    pub(super) fn preempt_for_group(
        &mut self,
        fwk: &Arc<Framework>,
        members: &[Arc<PodInfo>],
        min: usize,
        placed_before: usize,
    ) -> Result<GroupPreemption, String> {
        let Some(first) = members.first() else { return Err("no member to place".into()) };
        let priority = first.pod.priority;
        if members.iter().any(|m| m.pod.preemption_policy == crate::model::PreemptionPolicy::Never) {
            return Err("not eligible due to preemptionPolicy=Never.".into());
        }
        // A member's nominated node still holds a lower-priority pod on its
        // way out: an earlier preemption is under way; choose no more victims.
        let ongoing = members.iter().filter_map(|m| m.pod.nominated_node_name.as_deref()).any(|n| {
            self.cache.node(n).is_some_and(|ni| ni.pods.iter().any(|p| p.pod.terminating_by_preemption && p.pod.priority < priority))
        });
        if ongoing {
            return Err("ongoing preemption on nominated nodes".into());
        }
        let units = self.victim_units(priority);
        if units.is_empty() {
            return Err("No preemption victims found for incoming preemptor".into());
        }
        let candidates: Vec<&Arc<PodInfo>> = units.iter().flatten().collect();
        for v in &candidates {
            let r = self.cache.remove_pod(&v.pod);
            self.noted("remove_pod (group preemption dry run)", r);
        }
        let proposal = self.place_members(fwk, members);
        let placed = proposal.len();
        let result = if placed_before + placed < min {
            Err(format!(
                "{ERR_POD_GROUP_UNSCHEDULABLE}, minCount ({min}) cannot be satisfied: {} scheduled, {} remaining",
                placed_before + placed,
                members.len() - placed
            ))
        } else {
            // Spare the victims whose return leaves every placement valid:
            // first, in one go, those on nodes no member goes to (checked
            // once); then the others one by one, most important first.
            let target: std::collections::BTreeSet<&str> = proposal.iter().map(|(_, n)| n.as_str()).collect();
            let near_target = |u: &&Unit| u.iter().any(|v| v.pod.node_name.as_deref().is_some_and(|n| target.contains(n)));
            let (near, far): (Vec<&Unit>, Vec<&Unit>) = units.iter().partition(near_target);
            let add = |e: &mut Engine, u: &[Arc<PodInfo>]| {
                for v in u {
                    let r = e.cache.add_pod(v.pod.clone());
                    e.noted("add_pod (group preemption dry run)", r);
                }
            };
            let remove = |e: &mut Engine, u: &[Arc<PodInfo>]| {
                for v in u {
                    let r = e.cache.remove_pod(&v.pod);
                    e.noted("remove_pod (group preemption dry run)", r);
                }
            };
            far.iter().for_each(|u| add(self, u));
            let one_by_one: Vec<&Unit> = if self.placements_hold(fwk, members, &proposal) {
                near
            } else {
                far.iter().for_each(|u| remove(self, u));
                units.iter().collect()
            };
            let mut victims = Vec::new();
            for u in one_by_one {
                add(self, u);
                if !self.placements_hold(fwk, members, &proposal) {
                    remove(self, u);
                    victims.extend(u.iter().cloned());
                }
            }
            Ok(GroupPreemption { nodes: proposal.clone(), victims })
        };
        // Back as it was: members not assumed, every candidate present.
        for (key, _) in &proposal {
            let r = self.cache.forget_pod(key);
            self.noted("forget_pod (group preemption dry run)", r);
        }
        for v in &candidates {
            if self.cache.pod_info(&v.key()).is_none() {
                let r = self.cache.add_pod(v.pod.clone());
                self.noted("add_pod (group preemption dry run)", r);
            }
        }
        result
    }

    /// What preemption may evict for a preemptor of `priority`, as units
    /// evicted together, most important first: each bound pod of lower
    /// priority alone, except the placed members of a group that is
    /// evicted whole (`disruptionMode: all`), which form one unit, and
    /// only if every one of them is of lower priority.
    fn victim_units(&self, priority: i32) -> Vec<Unit> {
        let mut units: Vec<Unit> = Vec::new();
        let mut whole: std::collections::BTreeMap<String, (bool, Unit)> = std::collections::BTreeMap::new();
        for p in self.cache.bound_pods() {
            if p.pod.terminating {
                continue;
            }
            match self.membership(&p.pod).filter(|(_, m)| m.evict_together) {
                Some((_, m)) => {
                    let u = whole.entry(m.key).or_insert((true, Vec::new()));
                    u.0 &= p.pod.priority < priority;
                    u.1.push(p.clone());
                }
                None if p.pod.priority < priority => units.push(vec![p.clone()]),
                None => {}
            }
        }
        units.extend(whole.into_values().filter(|(eligible, _)| *eligible).map(|(_, mut u)| {
            u.sort_by_key(|p| p.key());
            u
        }));
        // Most important first: highest priority, then the one that started first.
        let rank = |u: &Unit| {
            let prio = u.iter().map(|p| p.pod.priority).max().unwrap_or(0);
            let start = u.iter().filter_map(|p| p.pod.start_ms).min().unwrap_or(i64::MAX);
            (std::cmp::Reverse(prio), start, u[0].key())
        };
        units.sort_by_cached_key(rank);
        units
    }

    /// Tries the members in order, each seeing the earlier ones assumed
    /// (in the cache, without Reserve); returns where each placed one went,
    /// left assumed.
    fn place_members(&mut self, fwk: &Arc<Framework>, members: &[Arc<PodInfo>]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for m in members {
            self.refresh_snapshot(fwk);
            let mut state = CycleState::new();
            if let Ok(r) = self.runner.schedule_pod(fwk, &mut state, m, &self.snapshot, &crate::framework::NoNominations) {
                if self.cache.assume_pod(Arc::new(m.on_node(&r.node)), &r.node).is_ok() {
                    out.push((m.key(), r.node));
                }
            }
        }
        out
    }

    /// Whether each placed member still passes Filter on its node, with the
    /// members before it assumed (they all are, in the cache, on entry and exit).
    fn placements_hold(&mut self, fwk: &Arc<Framework>, members: &[Arc<PodInfo>], proposal: &[(String, String)]) -> bool {
        let mut ok = true;
        for (key, node) in proposal {
            let Some(m) = members.iter().find(|m| &m.key() == key) else { continue };
            let r = self.cache.forget_pod(key);
            self.noted("forget_pod (group placement check)", r);
            self.refresh_snapshot(fwk);
            let mut state = CycleState::new();
            let (_, s, _) = fwk.run_pre_filter(&mut state, m, &self.snapshot);
            let fits =
                (s.is_success() || s.is_skip()) && self.snapshot.get(node).is_some_and(|ni| fwk.run_filter(&state, m, ni).is_success());
            let r = self.cache.assume_pod(Arc::new(m.on_node(node)), node);
            self.noted("assume_pod (group placement check)", r);
            if !fits {
                ok = false;
                break;
            }
        }
        ok
    }
}
