//! Observability: the one metrics registry (`metrics.rs`), the admin listener that serves
//! it with liveness and readiness (`admin.rs`) and the log subscriber (`logging.rs`). Gauges read on scrape are registered as hooks
//! by the layer that can answer them (the embedded backend, the group coordinators).

pub mod admin;
pub mod disk;
pub mod logging;
pub mod metrics;

pub use metrics::{metrics, Metrics};
