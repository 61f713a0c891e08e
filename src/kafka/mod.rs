//! The Kafka wire-protocol front end: a TCP listener whose connections decode frames with the
//! kafka-protocol crate, call the core, and encode responses. Versions come from one table.

pub mod error;
pub mod handlers;
pub mod passthrough;
pub mod server;

use std::sync::{Arc, OnceLock};

use kafka_protocol::messages::ApiKey;

use crate::core::groups::GroupCoordinator;
use crate::core::Core;
use crate::observe::metrics::RequestMetric;
use crate::protocol::kafka::versions;

/// What every handler may use.
pub struct KafkaCtx {
    pub core: Arc<Core>,
    pub groups: Arc<GroupCoordinator>,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub cluster_id: String,
    pub max_frame_bytes: usize,
    pub default_partitions: u32,
    pub auto_create_topics: bool,
    /// Child partitions each group was last not given (`handlers::reshard_order`).
    pub holds: handlers::reshard_order::Holds,
    /// How long children wait for a group that commits nothing on their parents.
    pub unread_parent_wait: std::time::Duration,
}

/// Each API's request metrics (served or forwarded), resolved on its first request and kept,
/// so a series appears once its API is used.
fn request_metric(key: ApiKey) -> &'static RequestMetric {
    static BY_KEY: OnceLock<Vec<OnceLock<RequestMetric>>> = OnceLock::new();
    let by_key = BY_KEY.get_or_init(|| {
        let last = ApiKey::iter().map(|k| k as usize).max().unwrap_or(0);
        (0..=last).map(|_| OnceLock::new()).collect()
    });
    by_key[key as usize].get_or_init(|| {
        crate::observe::metrics().request_metric("kafka", versions::api_name(key as i16))
    })
}
