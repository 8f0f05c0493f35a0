//! Plugins of a custom scheduler built on Berth:
//! - [`node_pool`]: pods go to the nodes of their pool, cheapest first (Filter, Score).
//! - [`team_quota`]: at most `spec.maxPods` pods per team, read from a
//!   custom resource (PreFilter), and pods stamped on admission (PreBind).
//! - [`stamped_binder`]: binds pods itself, marking who bound them (Bind).
//! - [`batch`]: pods of a batch wait for each other at Permit, then bind together.
//! - [`device_report`]: an event names the devices a bound pod's claims got (PostBind).

pub mod batch;
pub mod device_report;
pub mod node_pool;
pub mod stamped_binder;
pub mod team_quota;

/// Berth's command line with our plugins registered.
pub fn app() -> berth::cli::App {
    berth::cli::App::new()
        .with_plugin(node_pool::NAME, node_pool::NodePool::new)
        .with_plugin(team_quota::NAME, team_quota::TeamQuota::new)
        .with_plugin(stamped_binder::NAME, stamped_binder::StampedBinder::new)
        .with_plugin(batch::NAME, batch::Batch::new)
        .with_plugin(device_report::NAME, device_report::DeviceReport::new)
}
