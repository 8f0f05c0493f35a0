//! Per-domain pod counts, memoized across cycles.
//!
//! PodTopologySpread (like upstream) counts, for every node, the pods
//! matching a selector, and sums them per topology domain. Done from scratch
//! that is O(all pods) per cycle. Consecutive pods of one workload ask the
//! same question, though, and between two cycles only a few nodes change. A
//! memo keyed by the question keeps each node's last contribution together
//! with the node's `generation` (unique per content), and recomputes only
//! nodes whose generation moved; it finds those in the snapshot's journal of
//! replaced entries when it can, and by a pass over every node when not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cache::{NodeInfo, Snapshot};

/// Domain -> (matching pods, eligible nodes in the domain). Fx-hashed: Filter
/// looks domains up for every node, and SipHash was about 5 % of a
/// 100 000-node PodAntiAffinity run.
pub type Totals = rustc_hash::FxHashMap<String, (i64, usize)>;

/// Domain -> matching pods, as [`DomainMemos::counts`] answers. Fx-hashed:
/// Filter looks a domain up for every node.
pub type Counts = rustc_hash::FxHashMap<String, i64>;

/// Memos kept per plugin instance; beyond this the oldest questions are dropped.
const MAX_MEMOS: usize = 64;

/// (node generation, the node's contribution). The generation alone tells
/// contents apart (unique per content, as the cycle's own memos rely on), and
/// it is read from the snapshot's column: a pass over every node then reads
/// no node that did not change.
type NodeEntry = (u64, Vec<(String, i64)>);

#[derive(Default)]
struct Memo {
    /// Per snapshot index: (node generation, contribution).
    per_node: Vec<Option<NodeEntry>>,
    /// Domain -> (matching pods, eligible nodes in it). Shared with the
    /// cycles that asked, so answering costs no copy.
    totals: Arc<Totals>,
    last_used: u64,
    /// The snapshot epoch `per_node` was last brought up to: from there, the
    /// snapshot's journal names the nodes to look at.
    epoch: Option<u64>,
    /// The domains of `totals` with a positive count.
    positives: Positives,
}

/// What is known of the domains with a positive count, kept up as counts
/// change (no pass over the domains).
#[derive(Clone, Debug, Default)]
pub struct Positives {
    /// How many domains have a positive count.
    pub count: usize,
    /// For domains written "key\0value": the keys of every such domain with
    /// a positive count (and perhaps of some that had one before). Domains
    /// without a `\0` (a hostname, a zone) add no key: they would be as many
    /// as the nodes.
    pub keys: Vec<String>,
}

impl Positives {
    /// Notes that `domain`'s count went from positive (`was`) or not to
    /// positive (`now`) or not; a domain removed counts as not positive.
    pub fn change(&mut self, domain: &str, was: bool, now: bool) {
        match (was, now) {
            (false, true) => {
                self.count += 1;
                if let Some((key, _)) = domain.split_once('\0') {
                    if !self.keys.iter().any(|k| k == key) {
                        self.keys.push(key.to_string());
                    }
                }
            }
            (true, false) => self.count -= 1,
            _ => {}
        }
    }
}

/// A question's answer with what is known of it without a pass over it.
pub struct Tally {
    /// Domain -> (matching pods, eligible nodes in it).
    pub totals: Arc<Totals>,
    /// The domains with a positive count.
    pub positives: Positives,
}

impl Memo {
    fn apply(&mut self, c: &[(String, i64)], sign: i64) {
        if c.is_empty() {
            return;
        }
        let totals = Arc::make_mut(&mut self.totals);
        for (domain, n) in c {
            let e = match totals.get_mut(domain.as_str()) {
                Some(e) => e,
                None => totals.entry(domain.clone()).or_default(),
            };
            let was_positive = e.0 > 0;
            e.0 += sign * n;
            if sign > 0 {
                e.1 += 1;
            } else {
                e.1 -= 1;
            }
            let positive = e.1 > 0 && e.0 > 0;
            if e.1 == 0 {
                totals.remove(domain.as_str());
            }
            self.positives.change(domain, was_positive, positive);
        }
    }
}

/// A set of memos, one per distinct question (`signature`).
#[derive(Default)]
pub struct DomainMemos {
    memos: Mutex<(u64, HashMap<String, Memo>)>,
}

impl DomainMemos {
    /// Domain -> matching pods over all eligible nodes of `snap`. `contribution`
    /// says, for one node, its domain and count, or `None` when the node is not
    /// eligible; it must depend only on the node and on what `signature` encodes.
    pub fn counts(&self, signature: &str, snap: &Snapshot, contribution: impl Fn(&NodeInfo) -> Option<(String, i64)>) -> Counts {
        self.counts_multi(signature, snap, |n| contribution(n).into_iter().collect()).iter().map(|(k, (n, _))| (k.clone(), *n)).collect()
    }

    /// As `counts`, for questions where one node adds to several domains.
    /// A domain is present while at least one node lists it, even at count 0.
    pub fn counts_multi(&self, signature: &str, snap: &Snapshot, contribution: impl Fn(&NodeInfo) -> Vec<(String, i64)>) -> Arc<Totals> {
        self.tally(signature, snap, contribution).totals
    }

    /// As `counts_multi`, with how many domains count positive and their
    /// keys, kept up as the counts change (no pass over the domains).
    pub fn tally(&self, signature: &str, snap: &Snapshot, contribution: impl Fn(&NodeInfo) -> Vec<(String, i64)>) -> Tally {
        let mut guard = self.memos.lock().unwrap_or_else(|e| e.into_inner());
        let (clock, memos) = &mut *guard;
        *clock += 1;
        if !memos.contains_key(signature) && memos.len() >= MAX_MEMOS {
            if let Some(oldest) = memos.iter().min_by_key(|(_, m)| m.last_used).map(|(k, _)| k.clone()) {
                memos.remove(&oldest);
            }
        }
        let memo = memos.entry(signature.to_string()).or_default();
        memo.last_used = *clock;
        let nodes = snap.nodes();
        let visit = |memo: &mut Memo, i: usize| {
            let current = snap.generation(i);
            if let Some((generation, _)) = &memo.per_node[i] {
                if *generation == current {
                    return;
                }
            }
            if let Some((_, old)) = memo.per_node[i].take() {
                memo.apply(&old, -1);
            }
            let c = contribution(&nodes[i]);
            memo.apply(&c, 1);
            memo.per_node[i] = Some((current, c));
        };
        // Only the nodes replaced since the memo's last pass, when the
        // snapshot still knows which (a replaced entry keeps its index).
        match memo.epoch.and_then(|e| snap.changed_since(e)).filter(|_| memo.per_node.len() == nodes.len()) {
            Some(changed) => changed.iter().for_each(|&i| visit(memo, i)),
            None => {
                if memo.per_node.len() > nodes.len() {
                    for old in memo.per_node.split_off(nodes.len()).into_iter().flatten() {
                        let c = old.1;
                        memo.apply(&c, -1);
                    }
                }
                memo.per_node.resize_with(nodes.len(), || None);
                (0..nodes.len()).for_each(|i| visit(memo, i));
            }
        }
        memo.epoch = Some(snap.epoch());
        Tally { totals: memo.totals.clone(), positives: memo.positives.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use crate::testing::{make_node, make_pod};

    fn count_app(n: &NodeInfo) -> Option<(String, i64)> {
        let zone = n.node.labels.get("zone")?.clone();
        Some((zone, n.pods.iter().filter(|p| p.pod.labels.get("app").is_some_and(|v| v == "web")).count() as i64))
    }

    /// The positive count and keys kept up through changes agree with a
    /// pass over the totals: domains going to 0, coming back, disappearing.
    #[test]
    fn tally_keeps_positive_domains_and_their_keys() {
        let mut cache = Cache::new();
        for (n, z) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
            cache.add_node(make_node(n).label("zone", z).obj());
        }
        let web = |n: &NodeInfo| n.pods.iter().filter(|p| p.pod.labels.get("app").is_some_and(|v| v == "web")).count() as i64;
        let contribution = |n: &NodeInfo| -> Vec<(String, i64)> {
            let mut out = vec![(format!("host\0{}", n.name()), web(n))];
            if web(n) > 1 {
                out.push((format!("zone\0{}", n.node.labels["zone"]), web(n)));
            }
            out
        };
        let memos = DomainMemos::default();
        let mut snap = Snapshot::default();
        let check = |snap: &Snapshot, want_positive: usize, want_keys: &[&str]| {
            let t = memos.tally("q", snap, contribution);
            let positive: Vec<&String> = t.totals.iter().filter(|(_, e)| e.0 > 0).map(|(d, _)| d).collect();
            let p = &t.positives;
            assert_eq!(p.count, positive.len(), "{:?}", t.totals);
            assert_eq!(p.count, want_positive, "{:?}", t.totals);
            for d in positive {
                assert!(p.keys.iter().any(|k| d.starts_with(&format!("{k}\0"))), "{d:?} not under {:?}", p.keys);
            }
            for k in want_keys {
                assert!(p.keys.iter().any(|x| x == k), "{k} missing from {:?}", p.keys);
            }
        };
        cache.update_snapshot(&mut snap);
        check(&snap, 0, &[]);
        cache.add_pod(Arc::new(make_pod("p1").label("app", "web").node("a1").obj())).unwrap();
        cache.update_snapshot(&mut snap);
        check(&snap, 1, &["host"]);
        cache.add_pod(Arc::new(make_pod("p2").label("app", "web").node("a1").obj())).unwrap();
        cache.add_pod(Arc::new(make_pod("p3").label("app", "web").node("b1").obj())).unwrap();
        cache.update_snapshot(&mut snap);
        check(&snap, 3, &["host", "zone"]);
        cache.remove_pod(&make_pod("p2").label("app", "web").node("a1").obj()).unwrap();
        cache.update_snapshot(&mut snap);
        check(&snap, 2, &["host"]);
        cache.remove_node("b1");
        cache.update_snapshot(&mut snap);
        check(&snap, 1, &["host"]);
        // A memo built from scratch says the same.
        let fresh = DomainMemos::default().tally("q", &snap, contribution);
        assert_eq!((fresh.positives.count, fresh.positives.keys), (1, vec!["host".to_string()]));
        // Plain domains (one per node, say) are counted but add no keys.
        let plain = memos.tally("plain", &snap, |n| vec![(n.name().to_string(), web(n))]);
        assert_eq!((plain.positives.count, plain.positives.keys.len()), (1, 0));
    }

    #[test]
    fn follows_changes() {
        let mut cache = Cache::new();
        for (n, z) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("none", "")] {
            let mut node = make_node(n);
            if !z.is_empty() {
                node = node.label("zone", z);
            }
            cache.add_node(node.obj());
        }
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        let memos = DomainMemos::default();
        let c = memos.counts("q", &snap, count_app);
        assert_eq!(c.get("a"), Some(&0));
        assert_eq!(c.get("b"), Some(&0));
        assert_eq!(c.len(), 2);

        cache.add_pod(Arc::new(make_pod("p1").label("app", "web").node("a2").obj())).unwrap();
        cache.add_pod(Arc::new(make_pod("p2").label("app", "db").node("b1").obj())).unwrap();
        cache.update_snapshot(&mut snap);
        let c = memos.counts("q", &snap, count_app);
        assert_eq!((c["a"], c["b"]), (1, 0));
        // Read through the journal, the same as from scratch.
        assert_eq!(DomainMemos::default().counts("q", &snap, count_app), c);
        cache.add_pod(Arc::new(make_pod("p3").label("app", "web").node("b1").obj())).unwrap();
        cache.update_snapshot(&mut snap);
        let c = memos.counts("q", &snap, count_app);
        assert_eq!((c["a"], c["b"]), (1, 1));

        cache.remove_node("b1");
        cache.update_snapshot(&mut snap);
        let c = memos.counts("q", &snap, count_app);
        assert_eq!(c.get("b"), None, "a domain with no eligible node disappears");
        assert_eq!(c["a"], 1);
        // A fresh memo agrees with the incremental one.
        assert_eq!(DomainMemos::default().counts("q", &snap, count_app), c);
    }
}
