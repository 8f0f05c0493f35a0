//! Extended resources backed by DRA (upstream's `DRAExtendedResource`, GA
//! in Kubernetes 1.37): a pod that asks for `example.com/gpu: 2` gets two
//! devices of the DeviceClass whose `spec.extendedResourceName` is
//! `example.com/gpu` (or of class `gpu` for
//! `deviceclass.resource.kubernetes.io/gpu`), on nodes whose allocatable does
//! not have the resource. The scheduler makes one claim for all such
//! requests of the pod, owned by the pod, in PreBind.
//!
//! This module holds the pure parts: which class backs a resource name
//! ([`Resolver`]), and the claim's requests and the containers' mappings
//! made from the pod's containers ([`requests_and_mappings`]), named and
//! ordered as upstream names and orders them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::objects::{DeviceClass, DeviceRequest, ExactRequest};
use crate::model::resource::is_extended_resource_name;
use crate::model::{Container, Pod};

/// The implicit extended resource name of every DeviceClass:
/// `deviceclass.resource.kubernetes.io/<class name>`.
pub const IMPLICIT_PREFIX: &str = "deviceclass.resource.kubernetes.io/";

/// The name of the claim while it exists only in the scheduler's memory
/// (upstream's `<extended-resources>`: not a valid object name on purpose).
pub const IN_MEMORY_NAME: &str = "<extended-resources>";

/// Whether a pod may get `name` from DRA: an extended resource name, or a
/// class's implicit name (upstream's `IsDRAExtendedResourceName`).
pub fn is_dra_extended_resource_name(name: &str) -> bool {
    is_extended_resource_name(name) || name.starts_with(IMPLICIT_PREFIX)
}

/// Whether a request of `quantity` of `name` asks for a resource DRA may
/// back: a non-zero request of a DRA extended resource name.
pub fn asks_extended(name: &str, quantity: i64) -> bool {
    quantity != 0 && is_dra_extended_resource_name(name)
}

/// Whether any of `pod`'s containers, init containers included, asks for a
/// resource DRA may back ([`asks_extended`]).
pub fn pod_asks_extended(pod: &Pod) -> bool {
    pod.containers.iter().chain(&pod.init_containers).any(|c| c.requests.scalar.iter().any(|(n, q)| asks_extended(n, *q)))
}

/// The cycle-state key of [`Delegated`].
pub const DELEGATED_KEY: &str = "DynamicResources/delegated";

/// What DynamicResources' PreFilter leaves for NodeResourcesFit: the pod's
/// extended resources that a DeviceClass backs. NodeResourcesFit does not
/// count them on a node whose allocatable has none of them (upstream's
/// `shouldDelegateResourceToDRA`); DynamicResources allocates devices there.
/// Without DynamicResources in the profile there is no such state, and
/// NodeResourcesFit checks every resource itself.
#[derive(Clone, Debug, Default)]
pub struct Delegated(pub Vec<String>);

/// Which DeviceClass backs an extended resource name (upstream's
/// `DeviceClassResolver`): every class under its implicit name, and under
/// its `extendedResourceName`; when two classes name the same resource, the
/// one created later wins, then the one whose name sorts first.
///
/// Upstream's cache is fed event by event, and a class that loses to an
/// earlier one is not registered under its implicit name either; Berth
/// registers every implicit name, whatever the order the classes came in.
#[derive(Default)]
pub struct Resolver {
    by_name: HashMap<String, Arc<DeviceClass>>,
}

fn created(c: &DeviceClass) -> Option<jiff::Timestamp> {
    c.metadata.creation_timestamp.as_deref().and_then(|t| t.parse().ok())
}

impl Resolver {
    /// The resolver for these classes.
    pub fn new(classes: &[Arc<DeviceClass>]) -> Resolver {
        let mut by_name: HashMap<String, Arc<DeviceClass>> = HashMap::new();
        for c in classes {
            by_name.insert(format!("{IMPLICIT_PREFIX}{}", c.metadata.name), c.clone());
        }
        for c in classes {
            let Some(name) = c.spec.extended_resource_name.as_deref().filter(|n| !n.is_empty()) else { continue };
            let wins = match by_name.get(name) {
                None => true,
                Some(have) => match created(c).cmp(&created(have)) {
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Less => false,
                    std::cmp::Ordering::Equal => c.metadata.name < have.metadata.name,
                },
            };
            if wins {
                by_name.insert(name.to_string(), c.clone());
            }
        }
        Resolver { by_name }
    }

    /// The class backing `resource`, if any.
    pub fn class(&self, resource: &str) -> Option<&Arc<DeviceClass>> {
        self.by_name.get(resource)
    }

    /// Whether no class backs any resource.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Which request of the claim serves a container's extended resource
/// (`status.extendedResourceClaimStatus.requestMappings[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMapping {
    /// The container.
    pub container_name: String,
    /// The extended resource it asked for.
    pub resource_name: String,
    /// The claim's request that provides it.
    pub request_name: String,
}

/// The names in a container's `resources.requests`, sorted: upstream names a
/// request after the resource's position among them. Requests of zero
/// ephemeral storage cannot be told from none here and are not counted.
fn request_keys(c: &Container) -> Vec<&str> {
    let mut keys: Vec<&str> = c.requests.scalar.iter().map(|(n, _)| &**n).collect();
    if c.has_cpu_request {
        keys.push("cpu");
    }
    if c.has_memory_request {
        keys.push("memory");
    }
    if c.requests.ephemeral_storage != 0 {
        keys.push("ephemeral-storage");
    }
    keys.sort_unstable();
    keys
}

/// One container's request for `resource` and its mappings: the devices
/// of `reusable` requests (of containers still running while this one runs)
/// are used first, and a request of its own asks for the rest.
fn container_request(
    index: usize,
    c: &Container,
    resource: &str,
    class: &str,
    reusable: &[Option<DeviceRequest>],
) -> (Option<DeviceRequest>, Vec<RequestMapping>) {
    let wanted = c.requests.scalar(resource);
    if wanted <= 0 {
        return (None, Vec::new());
    }
    let mapping = |request: &str| RequestMapping {
        container_name: c.name.clone(),
        resource_name: resource.to_string(),
        request_name: request.to_string(),
    };
    let mut mappings = Vec::new();
    let mut sum = 0;
    for r in reusable.iter().flatten() {
        sum += r.exactly.as_ref().map_or(0, |e| e.count);
        mappings.push(mapping(&r.name));
        if sum >= wanted {
            return (None, mappings);
        }
    }
    let position = request_keys(c).iter().position(|k| *k == resource).unwrap_or(0);
    let name = format!("container-{index}-request-{position}");
    mappings.push(mapping(&name));
    let request = DeviceRequest {
        name,
        exactly: Some(ExactRequest {
            device_class_name: class.to_string(),
            allocation_mode: "ExactCount".into(),
            count: wanted - sum,
            ..ExactRequest::default()
        }),
        first_available: Vec::new(),
    };
    (Some(request), mappings)
}

/// The claim's device requests and the containers' mappings for the
/// resources `needed` from DRA on a node (upstream's
/// `createRequestsAndMappings`). Containers are numbered init containers
/// first; regular containers and sidecars get a request each; of the other
/// init containers, which run one at a time, only the largest request is
/// kept, after the devices of later long-lived containers are reused.
/// Requests are sorted by name (as strings: `container-10-…` before
/// `container-2-…`).
pub fn requests_and_mappings(pod: &Pod, needed: &BTreeMap<String, i64>, resolver: &Resolver) -> (Vec<DeviceRequest>, Vec<RequestMapping>) {
    let containers: Vec<&Container> = pod.init_containers.iter().chain(&pod.containers).collect();
    let inits = pod.init_containers.len();
    let short_lived = |i: usize| i < inits && !containers[i].restartable;
    let mut requests = Vec::new();
    let mut mappings = Vec::new();
    for resource in needed.keys() {
        let Some(class) = resolver.class(resource) else { continue };
        let class = class.metadata.name.as_str();
        let mut long: Vec<Option<DeviceRequest>> = vec![None; containers.len()];
        let mut long_mappings = Vec::new();
        for (i, c) in containers.iter().enumerate().filter(|(i, _)| !short_lived(*i)) {
            let (r, m) = container_request(i, c, resource, class, &[]);
            long[i] = r;
            long_mappings.extend(m);
        }
        let mut largest: Option<DeviceRequest> = None;
        let mut short_names: Vec<String> = Vec::new();
        let mut short_mappings: Vec<RequestMapping> = Vec::new();
        for (i, c) in containers.iter().enumerate().filter(|(i, _)| short_lived(*i)) {
            let (r, m) = container_request(i, c, resource, class, &long[i..]);
            if let Some(r) = r {
                short_names.push(r.name.clone());
                let count = |r: &DeviceRequest| r.exactly.as_ref().map_or(0, |e| e.count);
                if largest.as_ref().is_none_or(|l| count(l) < count(&r)) {
                    largest = Some(r);
                }
            }
            short_mappings.extend(m);
        }
        if let Some(l) = &largest {
            if short_names.len() > 1 {
                for m in &mut short_mappings {
                    if m.request_name != l.name && short_names.contains(&m.request_name) {
                        m.request_name = l.name.clone();
                    }
                }
            }
        }
        requests.extend(largest);
        requests.extend(long.into_iter().flatten());
        mappings.extend(long_mappings);
        mappings.extend(short_mappings);
    }
    requests.sort_by(|a, b| a.name.cmp(&b.name));
    (requests, mappings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::resource::Resource;

    fn class(name: &str, ext: Option<&str>, created: &str) -> Arc<DeviceClass> {
        let mut c = DeviceClass::default();
        c.metadata.name = name.into();
        c.metadata.creation_timestamp = Some(created.into());
        c.spec.extended_resource_name = ext.map(str::to_string);
        Arc::new(c)
    }

    fn container(name: &str, reqs: &[(&str, i64)], restartable: bool) -> Container {
        let mut r = Resource::default();
        let mut c = Container { name: name.into(), restartable, ..Container::default() };
        for (n, v) in reqs {
            match *n {
                "cpu" => c.has_cpu_request = true,
                "memory" => c.has_memory_request = true,
                _ => {}
            }
            r.set(n, *v);
        }
        c.requests = r;
        c
    }

    #[test]
    fn the_later_class_wins_an_extended_name_then_the_smaller_name() {
        let r = Resolver::new(&[
            class("b", Some("example.com/gpu"), "2026-01-01T00:00:00Z"),
            class("a", Some("example.com/gpu"), "2026-01-01T00:00:00Z"),
            class("old", Some("example.com/gpu"), "2025-01-01T00:00:00Z"),
            class("new", Some("example.com/nic"), "2026-01-01T00:00:00Z"),
        ]);
        assert_eq!(r.class("example.com/gpu").unwrap().metadata.name, "a");
        assert_eq!(r.class("example.com/nic").unwrap().metadata.name, "new");
        assert_eq!(r.class("deviceclass.resource.kubernetes.io/old").unwrap().metadata.name, "old");
        assert!(r.class("example.com/other").is_none());
        assert!(is_dra_extended_resource_name("deviceclass.resource.kubernetes.io/old"));
        assert!(is_dra_extended_resource_name("example.com/gpu"));
        assert!(!is_dra_extended_resource_name("cpu"));
    }

    fn names(reqs: &[DeviceRequest]) -> Vec<(String, i64)> {
        reqs.iter().map(|r| (r.name.clone(), r.exactly.as_ref().unwrap().count)).collect()
    }

    fn maps(m: &[RequestMapping]) -> Vec<(&str, &str)> {
        m.iter().map(|m| (m.container_name.as_str(), m.request_name.as_str())).collect()
    }

    #[test]
    fn requests_are_named_by_container_and_resource_position_and_sorted_as_strings() {
        let r = Resolver::new(&[class("gpu", Some("example.com/gpu"), "2026-01-01T00:00:00Z")]);
        let pod = Pod {
            containers: (0..11).map(|i| container(&format!("c{i}"), &[("cpu", 100), ("example.com/gpu", 1)], false)).collect(),
            ..Pod::default()
        };
        let needed = BTreeMap::from([("example.com/gpu".to_string(), 11)]);
        let (reqs, mappings) = requests_and_mappings(&pod, &needed, &r);
        // "cpu" < "example.com/gpu": the resource is request 1 of each container.
        assert_eq!(reqs[0].name, "container-0-request-1");
        assert_eq!(reqs[1].name, "container-1-request-1");
        assert_eq!(reqs[2].name, "container-10-request-1");
        assert_eq!(reqs[3].name, "container-2-request-1");
        assert_eq!(reqs[0].exactly.as_ref().unwrap().device_class_name, "gpu");
        assert_eq!(mappings.len(), 11);
        assert_eq!(maps(&mappings)[10], ("c10", "container-10-request-1"));
    }

    #[test]
    fn init_containers_reuse_later_devices_and_only_the_largest_init_request_is_kept() {
        let r = Resolver::new(&[class("gpu", Some("example.com/gpu"), "2026-01-01T00:00:00Z")]);
        let pod = Pod {
            init_containers: vec![
                container("init-a", &[("example.com/gpu", 3)], false),
                container("sidecar", &[("example.com/gpu", 1)], true),
                container("init-b", &[("example.com/gpu", 4)], false),
            ],
            containers: vec![container("main", &[("example.com/gpu", 2)], false)],
            ..Pod::default()
        };
        let needed = BTreeMap::from([("example.com/gpu".to_string(), 3)]);
        let (reqs, mappings) = requests_and_mappings(&pod, &needed, &r);
        // init-a (index 0) reuses the sidecar's 1 and main's 2: no request of its own.
        // init-b (index 2) reuses main's 2 and asks for 2 more.
        assert_eq!(
            names(&reqs),
            vec![("container-1-request-0".into(), 1), ("container-2-request-0".into(), 2), ("container-3-request-0".into(), 2)]
        );
        assert_eq!(
            maps(&mappings),
            vec![
                ("sidecar", "container-1-request-0"),
                ("main", "container-3-request-0"),
                ("init-a", "container-1-request-0"),
                ("init-a", "container-3-request-0"),
                ("init-b", "container-3-request-0"),
                ("init-b", "container-2-request-0"),
            ]
        );
    }

    #[test]
    fn init_requests_that_are_not_the_largest_are_mapped_to_it() {
        let r = Resolver::new(&[class("gpu", Some("example.com/gpu"), "2026-01-01T00:00:00Z")]);
        let pod = Pod {
            init_containers: vec![container("small", &[("example.com/gpu", 1)], false), container("big", &[("example.com/gpu", 2)], false)],
            containers: vec![container("main", &[("cpu", 100)], false)],
            ..Pod::default()
        };
        let needed = BTreeMap::from([("example.com/gpu".to_string(), 2)]);
        let (reqs, mappings) = requests_and_mappings(&pod, &needed, &r);
        assert_eq!(names(&reqs), vec![("container-1-request-0".into(), 2)]);
        assert_eq!(maps(&mappings), vec![("small", "container-1-request-0"), ("big", "container-1-request-0")]);
    }
}
