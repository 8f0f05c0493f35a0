//! Per-cycle scratch space shared by a profile's plugins.
//!
//! PreFilter/PreScore compute once per pod and store here; Filter/Score read
//! it for every node (in parallel, hence read-only there). Preemption clones
//! the whole state per candidate node, so every value must be cloneable.

use std::any::Any;

/// A value stored in [`CycleState`]. Every `Clone + Send + Sync + 'static` type is one (a
/// blanket impl), so plugins never implement it themselves.
pub trait StateData: Any + Send + Sync {
    /// A deep copy, boxed: cloning a `CycleState` copies every value.
    fn clone_box(&self) -> Box<dyn StateData>;
    /// The value as `Any`, for downcasting.
    fn as_any(&self) -> &dyn Any;
    /// The value as `Any`, mutably, for downcasting.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Clone + Send + Sync> StateData for T {
    fn clone_box(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// One value; `scheduling_only` values go when the scheduling cycle ends.
struct Entry {
    key: &'static str,
    value: Box<dyn StateData>,
    scheduling_only: bool,
}

/// Per-pod scratch space, shared by a profile's plugins from PreFilter to
/// PostBind (see the module documentation). The public fields are the
/// framework's bookkeeping; plugins use the methods.
///
/// A handful of entries per cycle: a vector scanned by key beats hashing.
#[derive(Default)]
pub struct CycleState {
    data: Vec<Entry>,
    /// Plugins whose PreFilter returned Skip: their Filter is not run.
    pub skip_filter: Vec<&'static str>,
    /// Plugins whose PreScore returned Skip: their Score is not run.
    pub skip_score: Vec<&'static str>,
    /// Bit i set: the profile's i-th Filter plugin is skipped (per-node fast path).
    pub skip_filter_mask: u64,
    /// Bit i set: the profile's i-th Score plugin is skipped.
    pub skip_score_mask: u64,
    /// Whether plugin calls of this attempt are timed for
    /// `scheduler_plugin_execution_duration_seconds` (one attempt in ten).
    pub record_plugin_metrics: bool,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            data: self
                .data
                .iter()
                .map(|e| Entry { key: e.key, value: (*e.value).clone_box(), scheduling_only: e.scheduling_only })
                .collect(),
            skip_filter: self.skip_filter.clone(),
            skip_score: self.skip_score.clone(),
            skip_filter_mask: self.skip_filter_mask,
            skip_score_mask: self.skip_score_mask,
            record_plugin_metrics: self.record_plugin_metrics,
        }
    }
}

impl CycleState {
    /// An empty state: each scheduling attempt starts with one.
    pub fn new() -> CycleState {
        CycleState::default()
    }

    fn position(&self, key: &str) -> Option<usize> {
        // Keys are `&'static str` constants: the pointer usually matches.
        self.data
            .iter()
            .position(|e| std::ptr::eq(e.key.as_ptr(), key.as_ptr()) && e.key.len() == key.len())
            .or_else(|| self.data.iter().position(|e| e.key == key))
    }

    fn put(&mut self, key: &'static str, value: Box<dyn StateData>, scheduling_only: bool) {
        let e = Entry { key, value, scheduling_only };
        match self.position(key) {
            Some(i) => self.data[i] = e,
            None => self.data.push(e),
        }
    }

    /// Stores `value` for the rest of the pod's cycles (binding included),
    /// replacing what `key` held. Keys are shared by all plugins of the
    /// profile: put your plugin's name in them.
    pub fn write<T: StateData>(&mut self, key: &'static str, value: T) {
        self.put(key, Box::new(value), false);
    }

    /// Stores `value` until the scheduling cycle ends: for data only
    /// Filter, Score and PostFilter read. A pod waiting for its binding then
    /// holds no copy of it (such data can be large, e.g. per-domain counts).
    pub fn write_scheduling_only<T: StateData>(&mut self, key: &'static str, value: T) {
        self.put(key, Box::new(value), true);
    }

    /// The scheduling cycle is over: drops what `write_scheduling_only` stored.
    pub fn end_scheduling_cycle(&mut self) {
        self.data.retain(|e| !e.scheduling_only);
    }

    /// Whether a value is stored under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// The value under `key`, if there is one of type `T`. `None` also when the writer did not run
    /// for this pod (it returned Skip, or is not in this profile): handle it, do not unwrap.
    pub fn read<T: 'static>(&self, key: &'static str) -> Option<&T> {
        let i = self.position(key)?;
        (*self.data[i].value).as_any().downcast_ref::<T>()
    }

    /// As [`CycleState::read`], mutably: for `add_pod`/`remove_pod` updating PreFilter data, or for
    /// Reserve and Permit.
    pub fn read_mut<T: 'static>(&mut self, key: &'static str) -> Option<&mut T> {
        let i = self.position(key)?;
        (*self.data[i].value).as_any_mut().downcast_mut::<T>()
    }

    /// Removes the value under `key`, if any.
    pub fn delete(&mut self, key: &'static str) {
        if let Some(i) = self.position(key) {
            self.data.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_is_deep() {
        let mut s = CycleState::new();
        s.write("k", vec![1, 2, 3]);
        let mut c = s.clone();
        c.read_mut::<Vec<i32>>("k").unwrap().push(4);
        assert_eq!(s.read::<Vec<i32>>("k").unwrap().len(), 3);
        assert_eq!(c.read::<Vec<i32>>("k").unwrap().len(), 4);
        assert!(s.read::<String>("k").is_none());
    }

    #[test]
    fn scheduling_only_values_end_with_the_cycle() {
        let mut s = CycleState::new();
        s.write("kept", 1u8);
        s.write_scheduling_only("dropped", 2u8);
        assert_eq!(s.clone().read::<u8>("dropped"), Some(&2));
        s.end_scheduling_cycle();
        assert_eq!(s.read::<u8>("kept"), Some(&1));
        assert!(s.read::<u8>("dropped").is_none());
        // Writing again under the same key with `write` keeps it.
        s.write_scheduling_only("k2", 3u8);
        s.write("k2", 4u8);
        s.end_scheduling_cycle();
        assert_eq!(s.read::<u8>("k2"), Some(&4));
    }
}
