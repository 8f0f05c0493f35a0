//! Preemption victims on their way out: shown as terminating until their
//! deletion is observed, and their preemptors held until the evictions are
//! under way.

use std::sync::Arc;

use super::Engine;
use crate::framework::PodInfo;
use crate::model::Pod;

pub(super) fn marked_evicting(mut pod: Pod) -> Pod {
    pod.terminating = true;
    pod.terminating_by_preemption = true;
    pod
}

pub(super) struct Evicting {
    pub(super) observed: Arc<Pod>,
    pub(super) preemptor: String,
}

impl Engine {
    /// Shows a chosen victim as terminating by preemption until its deletion
    /// is observed, so later cycles neither preempt again for the same room
    /// nor count on pods that are leaving. Returns whether an eviction is
    /// needed (a victim already terminating needs none, as upstream).
    pub(super) fn mark_evicting(&mut self, victim: &PodInfo, preemptor: &str) -> bool {
        let key = victim.pod.key();
        if victim.pod.terminating || self.cache.is_assumed(&key) || self.evicting.contains_key(&key) {
            return false;
        }
        if self.cache.update_pod(Arc::new(marked_evicting((*victim.pod).clone()))).is_err() {
            return false;
        }
        self.evicting.insert(key, Evicting { observed: victim.pod.clone(), preemptor: preemptor.to_string() });
        true
    }

    /// The eviction of `victim` is under way (or the victim is gone): its
    /// preemptor is retried once all of its victims are.
    pub fn eviction_done(&mut self, victim: &str, now_ms: i64) {
        let Some(e) = self.evicting.get_mut(victim) else { return };
        let preemptor = std::mem::take(&mut e.preemptor);
        if let Some(n) = self.preempting.get_mut(&preemptor) {
            *n -= 1;
            if *n == 0 {
                self.preempting.remove(&preemptor);
                self.queue.release(&preemptor, now_ms);
            }
        }
    }

    /// The API refused to evict `victim` (other than "already gone"): the
    /// pod stays, as last observed, and counts again.
    pub fn eviction_failed(&mut self, victim: &str, now_ms: i64) {
        self.eviction_done(victim, now_ms);
        if let Some(e) = self.evicting.remove(victim) {
            if self.cache.pod_info(victim).is_some() {
                let r = self.cache.update_pod(e.observed);
                self.noted("update_pod (eviction refused)", r);
            }
        }
    }

    /// Victims chosen whose deletion has not been observed yet.
    pub fn evicting(&self) -> usize {
        self.evicting.len()
    }
}
