//! The routing core: streams as topics, shards as partitions, sequence numbers and iterators
//! as views over offsets. No HTTP or Kafka-frame type enters here.

mod aggregates;
pub mod catalog;
mod data;
pub mod error;
pub mod fanout;
pub mod groups;
pub mod hashing;
pub mod iterator;
pub mod kcl_checkpoints;
mod key_mismatch;
mod late_writes;
pub mod mirror_layout;
pub mod origin;
mod producers;
mod reshard;
pub mod seqno;
mod service;
mod shared_catalog;
mod topics;
mod write_holds;

#[cfg(test)]
mod tests;

pub use data::{
    IteratorStart, PutInput, PutOutcome, PutReport, ReadRecord, RecordsPage, Span, UserRecord,
};
pub use reshard::HeldBack;
pub use service::{
    retention_ms, Core, CreateStreamRequest, ForeignTopics, Limits, MAX_RETENTION_HOURS,
    MIN_RETENTION_HOURS,
};
pub use topics::{topic_id, Appended};

pub use crate::clock::now_ms;
