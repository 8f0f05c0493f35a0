//! Names of upstream's volume and DRA plugins, accepted so that existing
//! configurations (which often enable or disable them) load unchanged.
//! Berth does not model PersistentVolumes or ResourceClaims yet, so these
//! plugins implement no extension point and never affect a decision.

use std::sync::Arc;

use crate::framework::Plugin;

pub const NAMES: [&str; 5] = ["VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding", "VolumeZone", "DynamicResources"];

pub struct Inert(&'static str);

#[crate::plugin]
impl Plugin for Inert {
    fn name(&self) -> &'static str {
        self.0
    }
}

pub fn volume_restrictions(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(Inert(NAMES[0])))
}
pub fn node_volume_limits(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(Inert(NAMES[1])))
}
pub fn volume_binding(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(Inert(NAMES[2])))
}
pub fn volume_zone(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(Inert(NAMES[3])))
}
pub fn dynamic_resources(_: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(Inert(NAMES[4])))
}
