//! The Kafka wire-protocol front end: a TCP listener whose connections decode frames with the
//! kafka-protocol crate, call the core, and encode responses. Versions come from one table.

pub mod error;
mod handlers;
pub mod passthrough;
pub mod server;

use std::sync::Arc;

use crate::core::groups::GroupCoordinator;
use crate::core::Core;

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
}

/// The one broker strait presents itself as.
pub const NODE_ID: i32 = 0;
