//! Per-cycle scratch space shared by a profile's plugins.
//!
//! PreFilter/PreScore compute once per pod and store here; Filter/Score read
//! it for every node (in parallel, hence read-only there). Preemption clones
//! the whole state per candidate node, so every value must be cloneable.

use std::any::Any;

pub trait StateData: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn StateData>;
    fn as_any(&self) -> &dyn Any;
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

/// A handful of entries per cycle: a vector scanned by key beats hashing.
#[derive(Default)]
pub struct CycleState {
    data: Vec<(&'static str, Box<dyn StateData>)>,
    /// Plugins whose PreFilter returned Skip: their Filter is not run.
    pub skip_filter: Vec<&'static str>,
    /// Plugins whose PreScore returned Skip: their Score is not run.
    pub skip_score: Vec<&'static str>,
    /// Bit i set: the profile's i-th Filter plugin is skipped (per-node fast path).
    pub skip_filter_mask: u64,
    /// Bit i set: the profile's i-th Score plugin is skipped.
    pub skip_score_mask: u64,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            data: self.data.iter().map(|(k, v)| (*k, (**v).clone_box())).collect(),
            skip_filter: self.skip_filter.clone(),
            skip_score: self.skip_score.clone(),
            skip_filter_mask: self.skip_filter_mask,
            skip_score_mask: self.skip_score_mask,
        }
    }
}

impl CycleState {
    pub fn new() -> CycleState {
        CycleState::default()
    }

    fn position(&self, key: &str) -> Option<usize> {
        // Keys are `&'static str` constants: the pointer usually matches.
        self.data
            .iter()
            .position(|(k, _)| std::ptr::eq(k.as_ptr(), key.as_ptr()) && k.len() == key.len())
            .or_else(|| self.data.iter().position(|(k, _)| *k == key))
    }

    pub fn write<T: StateData>(&mut self, key: &'static str, value: T) {
        match self.position(key) {
            Some(i) => self.data[i].1 = Box::new(value),
            None => self.data.push((key, Box::new(value))),
        }
    }

    pub fn read<T: 'static>(&self, key: &'static str) -> Option<&T> {
        let i = self.position(key)?;
        (*self.data[i].1).as_any().downcast_ref::<T>()
    }

    pub fn read_mut<T: 'static>(&mut self, key: &'static str) -> Option<&mut T> {
        let i = self.position(key)?;
        (*self.data[i].1).as_any_mut().downcast_mut::<T>()
    }

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
}
