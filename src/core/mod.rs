//! The routing core: streams as topics, shards as partitions, sequence numbers and iterators
//! as views over offsets. No HTTP or Kafka-frame type enters here.

pub mod batch;
pub mod catalog;
mod data;
pub mod error;
pub mod fanout;
pub mod groups;
pub mod hashing;
pub mod iterator;
mod producers;
pub mod record;
mod reshard;
pub mod seqno;
mod service;
mod shared_catalog;
mod topics;

pub use data::{IteratorStart, PutInput, PutOutcome, ReadRecord, RecordsPage, Span};
pub use service::{
    retention_ms, Core, CreateStreamRequest, ForeignTopics, Limits, MAX_RETENTION_HOURS,
    MIN_RETENTION_HOURS,
};
pub use topics::{topic_id, Appended};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
