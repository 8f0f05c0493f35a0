//! Upstream's volume plugins, by name: VolumeRestrictions,
//! NodeVolumeLimits, VolumeBinding and VolumeZone (and the constructor of
//! DynamicResources, which reads objects the same way: see
//! [`dynamic_resources`](crate::plugins::dynamic_resources)).
//!
//! The first four read PersistentVolumeClaims, PersistentVolumes,
//! StorageClasses, CSINodes and CSIDrivers through the handle (`berth run`
//! watches them; `berth simulate` reads them from its manifests) and decide
//! as upstream's do; each module says what it does not model. What Berth
//! does not model is never guessed at: a pod that needs it stays pending,
//! in PreFilter, with a message that says what is missing.

pub mod binding;
pub mod limits;
pub mod objects;
pub mod restrictions;
pub mod zone;

use std::sync::Arc;

use crate::framework::*;
use crate::model::Pod;

/// The five names, in upstream's default order.
pub const NAMES: [&str; 5] = [restrictions::NAME, limits::NAME, binding::NAME, zone::NAME, DYNAMIC_RESOURCES];

/// DynamicResources (see [`dynamic_resources`](crate::plugins::dynamic_resources)).
pub const DYNAMIC_RESOURCES: &str = crate::plugins::dynamic_resources::NAME;

/// The reason `pod` stays pending if a volume is one of the in-tree `kinds`
/// whose `what` Berth does not model.
fn in_tree(pod: &Pod, kinds: &[&str], what: &str) -> Option<String> {
    pod.volumes.iter().find_map(|v| match &v.source {
        crate::model::VolumeSource::Other(kind) if kinds.contains(&kind.as_str()) => {
            Some(format!("pod's volume {:?} ({kind}): Berth does not model {what} yet", v.name))
        }
        _ => None,
    })
}

/// A built-in plugin that reads objects through the handle.
pub(crate) type WithHandle = fn(args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String>;

/// The five, with their constructors.
pub(crate) fn constructors() -> [(&'static str, WithHandle); 5] {
    [
        (NAMES[0], |_, h| Ok(Arc::new(restrictions::VolumeRestrictions::new(h)))),
        (NAMES[1], |_, h| Ok(Arc::new(limits::NodeVolumeLimits::new(h)))),
        (NAMES[2], |args, h| Ok(Arc::new(binding::VolumeBinding::new(args, h)?))),
        (NAMES[3], |_, h| Ok(Arc::new(zone::VolumeZone::new(h)))),
        (NAMES[4], |args, h| Ok(Arc::new(crate::plugins::dynamic_resources::DynamicResources::new(args, h)?))),
    ]
}

#[cfg(test)]
mod tests;
