//! # berth-core
//!
//! Berth's scheduling engine. Everything here is plain data and pure logic: no
//! network, no files, no async runtime. The live scheduler (`berth-kube`), the
//! simulator and the benchmarks all drive this same engine.
//!
//! Data flows one way:
//! `model` (converted objects) → `cache` (NodeInfo, snapshot) / `queue` →
//! `scheduler` (one cycle: PreFilter → Filter → PostFilter → Score → select →
//! Reserve → Permit) → binding, done by the caller.

#[deny(missing_docs)]
pub mod cache;
/// Derives which extension points a plugin implements: put it on `impl Plugin for ...`.
pub use berth_macros::plugin;
#[deny(missing_docs)]
pub mod cel;
pub mod config;
pub mod driver;
pub mod engine;
#[deny(missing_docs)]
pub mod framework;
#[deny(missing_docs)]
pub mod model;
pub mod plugins;
pub mod queue;
pub mod scheduler;
#[deny(missing_docs)]
pub mod testing;
#[deny(missing_docs)]
pub mod why;
