//! # berth-kube
//!
//! The live side of Berth, around the same engine the simulator drives:
//! `controller` turns engine outcomes into API actions without I/O; `api`,
//! `client`, `leader` and `run` do the talking to the API server; `metrics`
//! and `http` serve kube-scheduler's metric names and health endpoints.

pub mod api;
pub mod calls;
pub mod client;
pub mod controller;
pub mod extender;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod secure;
pub mod snapshot;
