//! Resource vectors: the scheduler's view of requests, allocatable and usage.
//!
//! The four built-in resources are plain fields because every filter touches
//! them; anything else (`nvidia.com/gpu`, `hugepages-2Mi`, …) is a "scalar"
//! resource kept in a short sorted list, since most pods and nodes have none.

use std::sync::Arc;

/// CPU, counted in milli-CPU.
pub const CPU: &str = "cpu";
/// Memory, in bytes.
pub const MEMORY: &str = "memory";
/// Local ephemeral storage, in bytes.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// How many pods a node takes (`allocatable.pods`).
pub const PODS: &str = "pods";

/// Upstream's defaults for a container that does not request CPU/memory, used
/// only for spreading scores (`NonZeroRequested`), never for fit.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory counterpart of [`DEFAULT_MILLI_CPU_REQUEST`]: 200 MiB, in bytes.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Interned-enough resource name: cheap to clone, compared by content.
pub type ResourceName = Arc<str>;

/// Whether `name` is counted as a scalar (extended, hugepages, prefixed
/// native such as `deviceclass.resource.kubernetes.io/gpu`, attachable
/// volume) resource rather than one of cpu/memory/ephemeral-storage/pods
/// (upstream's `IsScalarResourceName`).
pub fn is_scalar_resource_name(name: &str) -> bool {
    is_extended_resource_name(name)
        || name.starts_with("hugepages-")
        || name.contains("kubernetes.io/")
        || name.starts_with("attachable-volumes-")
}

/// Extended resources: fully qualified names outside the `kubernetes.io/` domain
/// (and not `requests.` prefixed quota names).
pub fn is_extended_resource_name(name: &str) -> bool {
    if is_native_resource(name) || name.starts_with("requests.") {
        return false;
    }
    name.contains('/')
}

fn is_native_resource(name: &str) -> bool {
    match name.split_once('/') {
        None => true,
        Some((domain, _)) => domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"),
    }
}

/// An amount of each resource: a pod's requests, a node's allocatable, or the total its pods
/// request (upstream `framework.Resource`). Integers in each resource's base unit, rounded up
/// from the quantities: milli-CPU, bytes, counts.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Resource {
    /// CPU in thousandths of a core (`500m` is 500, `2` is 2000).
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// `pods`: in a node's allocatable, how many pods it takes. NodeResourcesFit compares it with
    /// the number of pods on the node, not with requests.
    pub allowed_pod_number: i64,
    /// Sorted by name, no duplicates.
    pub scalar: Vec<(ResourceName, i64)>,
}

impl Resource {
    /// Milli-CPU and bytes of memory; everything else 0.
    pub fn new(milli_cpu: i64, memory: i64) -> Resource {
        Resource { milli_cpu, memory, ..Default::default() }
    }

    /// Whether every amount is 0.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.allowed_pod_number == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }

    /// One amount by its Kubernetes name (`cpu` in milli-CPU); 0 when absent.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.milli_cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.allowed_pod_number,
            _ => self.scalar(name),
        }
    }

    /// A scalar resource by name, e.g. `nvidia.com/gpu`; 0 when absent.
    pub fn scalar(&self, name: &str) -> i64 {
        match self.scalar.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => self.scalar[i].1,
            Err(_) => 0,
        }
    }

    /// Sets one resource by its Kubernetes name; `value` is milli for cpu.
    pub fn set(&mut self, name: &str, value: i64) {
        match name {
            CPU => self.milli_cpu = value,
            MEMORY => self.memory = value,
            EPHEMERAL_STORAGE => self.ephemeral_storage = value,
            PODS => self.allowed_pod_number = value,
            _ => self.set_scalar(name, value),
        }
    }

    /// Sets a scalar resource, adding it if absent.
    pub fn set_scalar(&mut self, name: &str, value: i64) {
        match self.scalar.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => self.scalar[i].1 = value,
            Err(i) => self.scalar.insert(i, (Arc::from(name), value)),
        }
    }

    fn add_scalar(&mut self, name: &ResourceName, value: i64) {
        match self.scalar.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => self.scalar[i].1 = self.scalar[i].1.saturating_add(value),
            Err(i) => self.scalar.insert(i, (name.clone(), value)),
        }
    }

    /// `self += other`, saturating: huge requests must never wrap around.
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(other.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.saturating_add(other.allowed_pod_number);
        for (n, v) in &other.scalar {
            self.add_scalar(n, *v);
        }
    }

    /// `self -= other`, saturating.
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(other.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.saturating_sub(other.allowed_pod_number);
        for (n, v) in &other.scalar {
            self.add_scalar(n, v.saturating_neg());
        }
    }

    /// Element-wise maximum, in place.
    pub fn max_with(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(other.allowed_pod_number);
        for (n, v) in &other.scalar {
            let cur = self.scalar(n);
            if *v > cur {
                self.set_scalar(n, *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_names() {
        assert!(is_scalar_resource_name("nvidia.com/gpu"));
        assert!(is_scalar_resource_name("hugepages-2Mi"));
        assert!(is_scalar_resource_name("attachable-volumes-aws-ebs"));
        assert!(!is_scalar_resource_name("cpu"));
        // Upstream's IsPrefixedNativeResource: any name containing `kubernetes.io/`.
        assert!(is_scalar_resource_name("kubernetes.io/foo"));
        assert!(is_scalar_resource_name("deviceclass.resource.kubernetes.io/gpu"));
        assert!(!is_scalar_resource_name("requests.example.com/foo"));
    }

    #[test]
    fn arithmetic_saturates_and_keeps_scalars_sorted() {
        let mut a = Resource::new(i64::MAX - 1, 10);
        let mut b = Resource::new(5, 5);
        b.set_scalar("z.io/b", 1);
        b.set_scalar("a.io/a", 2);
        a.add(&b);
        assert_eq!(a.milli_cpu, i64::MAX);
        assert_eq!(a.memory, 15);
        assert_eq!(a.scalar.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(), ["a.io/a", "z.io/b"]);
        a.sub(&b);
        assert_eq!(a.get("a.io/a"), 0);
        let mut m = Resource::new(1, 100);
        m.max_with(&Resource::new(3, 50));
        assert_eq!((m.milli_cpu, m.memory), (3, 100));
    }
}
