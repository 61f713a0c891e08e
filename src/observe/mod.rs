//! Observability: the one metrics registry (`metrics.rs`) and the admin listener that serves
//! it with liveness and readiness (`admin.rs`).

pub mod admin;
pub mod metrics;

pub use metrics::{metrics, Metrics};
