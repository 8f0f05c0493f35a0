//! DeviceReport: once a pod is bound, an event on it names the devices its
//! resource claims were allocated (`kubectl describe pod` shows it), e.g.
//! `gpu: gpu.example.com/node-1/gpu-0`. It reads the claims as written,
//! through the handle (live from the API server, in `simulate` from the
//! manifests), so it sees the allocation DynamicResources' PreBind wrote.

use berth::prelude::*;

pub const NAME: &str = "DeviceReport";

pub struct DeviceReport {
    handle: Handle,
}

impl DeviceReport {
    pub fn new(_args: &PluginArgs, handle: &Handle) -> Result<DeviceReport, PluginError> {
        Ok(DeviceReport { handle: handle.clone() })
    }
}

#[berth::plugin]
impl Plugin for DeviceReport {
    fn name(&self) -> &'static str {
        NAME
    }

    /// PostBind runs after the pod is bound, off the scheduling thread.
    fn post_bind(&self, _state: &CycleState, pod: &PodInfo, _node: &str) {
        let note = match berth::dra::allocated_devices(&self.handle, &pod.pod) {
            // No claim, and no extended resource backed by devices.
            Ok(claims) if claims.is_empty() => return,
            Ok(claims) => claims
                .iter()
                .map(|(claim, devices)| {
                    let names: Vec<String> = devices.iter().map(|d| format!("{}/{}/{}", d.driver, d.pool, d.device)).collect();
                    format!("{claim}: {}", names.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => format!("devices unknown: {e}"),
        };
        self.handle.record_event(&*pod.pod, EventType::Normal, "DevicesAllocated", "Binding", note);
    }
}
