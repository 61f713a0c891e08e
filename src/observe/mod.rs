//! Observability: the one metrics registry (`metrics.rs`) and the admin listener that serves
//! it with liveness and readiness (`admin.rs`), and the gauges set on each scrape
//! (`gauges.rs`).

pub mod admin;
pub mod gauges;
pub mod metrics;

pub use metrics::{metrics, Metrics};
