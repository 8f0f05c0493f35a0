//! # berth-kube
//!
//! The live side of Berth, around the same engine the simulator drives.
//! This first slice holds the metrics (kube-scheduler's names and buckets)
//! and the HTTP endpoints; the watchers, binder, events and leader election
//! of `berth run` build on it.

pub mod controller;
pub mod http;
pub mod metrics;
