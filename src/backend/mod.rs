//! The storage traits the core runs on, split by concern (STYLE §5): `Log` for partitioned
//! record logs and `MetaStore` for small metadata documents. Backends never see Kinesis or
//! Kafka wire shapes; they store RecordBatch v2 bytes and opaque documents.

pub mod embedded;
pub mod kafka;

use std::ops::Range;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use crate::core::error::CoreResult;

/// Offsets of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The first offset still stored (the trim horizon).
    pub log_start: i64,
    /// One past the last offset a reader may see.
    pub high_watermark: i64,
    /// Timestamp of the newest visible record, if any.
    pub last_timestamp_ms: Option<i64>,
}

/// Stored batches read from one partition.
#[derive(Debug, Clone, Default)]
pub struct ReadBatches {
    /// Whole RecordBatch v2 byte ranges, in offset order. The first may start below the
    /// requested offset; readers skip the records before it.
    pub batches: Vec<Bytes>,
    pub offsets: Option<PartitionOffsets>,
}

/// Topics of partitioned, append-only record logs.
#[async_trait]
pub trait Log: Send + Sync {
    /// Creates the given partitions of a topic; existing ones are left as they are.
    fn create_partitions(&self, topic: &str, partitions: Range<u32>) -> CoreResult<()>;
    /// Removes a topic and all its data.
    fn delete_topic(&self, topic: &str) -> CoreResult<()>;
    /// Every topic the log holds.
    fn topics(&self) -> Vec<String>;
    /// Makes everything appended to a partition durable (a reshard fixes end offsets on it).
    fn flush(&self, topic: &str, partition: u32) -> CoreResult<()>;
    /// Sets how long records are kept; `None` keeps them forever.
    fn set_retention(&self, topic: &str, retention_ms: Option<i64>);
    /// Appends one RecordBatch v2 and returns its assigned base offset once it is as durable
    /// as the backend promises (for the embedded log: fsynced when `fsync: always`).
    async fn append(&self, topic: &str, partition: u32, batch: BytesMut) -> CoreResult<i64>;
    /// Reads whole batches holding offsets from `offset` on, up to about `max_bytes`
    /// (at least one batch when any is visible).
    fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> CoreResult<ReadBatches>;
    fn offsets(&self, topic: &str, partition: u32) -> CoreResult<PartitionOffsets>;
    /// The first visible batch holding the partition's largest record timestamp:
    /// (its base offset, that timestamp).
    fn max_timestamp_batch(&self, topic: &str, partition: u32) -> CoreResult<Option<(i64, i64)>>;
    /// The first offset whose batch holds a record at or after `timestamp_ms` (the high
    /// watermark when there is none). Batch granularity: callers skip earlier records.
    fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> CoreResult<i64>;
}

/// Small documents kept durably by key (stream attributes, secrets, later group state).
pub trait MetaStore: Send + Sync {
    fn get(&self, key: &str) -> CoreResult<Option<Vec<u8>>>;
    /// Replaces the document atomically and durably.
    fn put(&self, key: &str, value: &[u8]) -> CoreResult<()>;
    fn delete(&self, key: &str) -> CoreResult<()>;
    /// Every document whose key starts with `prefix`, in key order.
    fn list(&self, prefix: &str) -> CoreResult<Vec<(String, Vec<u8>)>>;
}
