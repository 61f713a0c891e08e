//! The storage traits the core runs on, split by concern (STYLE §5): `Log` for partitioned
//! record logs and `MetaStore` for small metadata documents. Backends never see Kinesis or
//! Kafka wire shapes; they store RecordBatch v2 bytes and opaque documents.

pub mod embedded;
mod error;
pub mod kafka;
pub mod kinesis;
pub mod layered;
pub mod memory;
pub mod metered;
pub mod prefixed;

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

pub use crate::protocol::kafka::record_batch::CheckedBatch;

pub use error::{Refusal, StorageError, StorageResult};

/// What a new topic is made with; a backend ignores what it has no use for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NewTopic {
    /// How long records are kept; `None` keeps them forever.
    pub retention_ms: Option<i64>,
    /// Kinesis decides the shard count and scales it (ON_DEMAND capacity mode).
    pub on_demand: bool,
}

impl NewTopic {
    pub fn retention(retention_ms: Option<i64>) -> NewTopic {
        NewTopic {
            retention_ms,
            on_demand: false,
        }
    }
}

/// Consumer groups whose positions live outside strait as well (a KCL application's lease
/// table): read before a group's offsets are fetched, written when it commits.
#[async_trait]
pub trait ExternalOffsets: Send + Sync {
    /// Whether `group`'s positions live there.
    fn holds(&self, group: &str) -> bool;
    /// The group's positions on `topic` as offsets to read next; partitions without one are
    /// left out.
    async fn load(&self, group: &str, topic: &str) -> StorageResult<Vec<ExternalPosition>>;
    /// Records committed offsets (the next record to read on each partition).
    async fn store(&self, group: &str, topic: &str, offsets: &[(u32, i64)]) -> StorageResult<()>;
}

/// Where a deployment's Kafka consumer groups commit: strait's own coordinator (embedded
/// backend) or the Kafka cluster (Kafka backend). For `strait migrate checkpoints`, which sets
/// a group's offsets from a KCL application's checkpoints and reads them back.
#[async_trait]
pub trait GroupOffsets: Send + Sync {
    /// Commits the offsets to read next (partition, offset) on `topic` for `group`, as an
    /// admin tool does: refused while the group has members.
    async fn commit(&self, group: &str, topic: &str, offsets: &[(u32, i64)]) -> Result<(), String>;
    /// `group`'s committed offsets on `topic`.
    async fn committed(&self, group: &str, topic: &str) -> Result<Vec<(u32, i64)>, String>;
}

/// A group's position on one partition, kept outside strait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalPosition {
    pub partition: u32,
    /// The offset to read next.
    pub offset: i64,
    /// The partition was read to its end there (a KCL lease at SHARD_END): a commit strait
    /// holds for it stays, so a group that went back to re-read a finished shard keeps its place.
    pub finished: bool,
}

/// strait replicas sharing one state store (the Kinesis backend with its state in DynamoDB):
/// their Kafka node ids and addresses, and which of them coordinates each consumer group (a
/// lease in the store that its holder renews while it lives).
#[async_trait]
pub trait Replicas: Send + Sync {
    /// This replica's Kafka node id.
    fn node_id(&self) -> i32;
    /// Every live replica, this one included.
    fn live(&self) -> Vec<ReplicaAddress>;
    /// Who coordinates `group`. When nobody does, this replica takes the group: it reads the
    /// group's document `doc_key` afresh from the store and calls `reload` before the group
    /// counts as held.
    async fn coordinator(
        &self,
        group: &str,
        doc_key: &str,
        reload: &(dyn Fn() + Send + Sync),
    ) -> StorageResult<GroupHolder>;
    /// This replica holds `group`, with time to spare.
    fn holds(&self, group: &str) -> bool;
    /// The documents (key, bytes) under `doc_prefix` of groups no live replica holds, read
    /// afresh from the store, when this replica is the live one with the lowest node id
    /// (so a ListGroups sent to every replica finds each such group once); empty elsewhere.
    async fn unheld_groups(&self, doc_prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>>;
    /// Gives up every group and the registration (shutdown).
    async fn leave(&self);
    /// This replica's Kafka listener serves now. Until then the others do not list it as a
    /// broker, so no client is sent to a replica still starting.
    async fn serving(&self) {}
}

/// Where a Kafka client reaches a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaAddress {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupHolder {
    This,
    Other(ReplicaAddress),
}

/// Offsets of one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The first offset still stored (the trim horizon).
    pub log_start: i64,
    /// One past the last offset a reader may see.
    pub high_watermark: i64,
    /// Timestamp of the newest visible record, when the backend has it at hand (otherwise
    /// `Log::max_timestamp_batch` finds it).
    pub last_timestamp_ms: Option<i64>,
}

/// Stored batches read from one partition.
#[derive(Debug, Clone, Default)]
pub struct ReadBatches {
    /// Whole RecordBatch v2 byte ranges, in offset order. The first may start below the
    /// requested offset; readers skip the records before it.
    pub batches: Vec<Bytes>,
    /// What the backend knew of the partition when it read (a Fetch answer carries the log
    /// start and high watermark), so readers need not ask again.
    pub offsets: PartitionOffsets,
    /// Set when the read passed over batches no reader may see (records of aborted Kafka
    /// transactions): readers continue from here even if no batch is left.
    pub skipped_to: Option<i64>,
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    /// Set when the backend stamped the batch with its own clock (Kafka's `LogAppendTime`):
    /// the records' arrival time.
    pub log_append_time_ms: Option<i64>,
    /// The partition's first offset as the append left it (a Produce answer carries it).
    pub log_start: i64,
}

/// One batch an idempotent producer appended, as its header records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: i64,
}

/// One partition's place in its stream's reshard history, as a backend that keeps that
/// history itself (a Kinesis upstream) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLineage {
    pub partition: u32,
    /// A reshard closed it: nothing more is written to it.
    pub closed: bool,
    /// The partitions it was made from (one for a split, two for a merge).
    pub parents: Vec<u32>,
    /// Its first offset still stored, as far as the backend knows without asking.
    pub start: i64,
    /// One past its last offset, once it is closed and that is known for certain.
    pub end: Option<i64>,
}

/// Kafka's default `producer.id.expiration.ms`: a producer idle this long is forgotten.
pub const PRODUCER_EXPIRY_MS: i64 = 24 * 3600 * 1000;

/// How many batches per producer and partition are remembered (Kafka keeps five: a producer
/// has at most five requests in flight).
pub const PRODUCER_BATCHES_KEPT: usize = 5;

/// Keeps the last `PRODUCER_BATCHES_KEPT` batches of one producer's newest epoch.
pub fn remember_producer_batch(
    recent: &mut std::collections::VecDeque<ProducerBatch>,
    b: ProducerBatch,
) {
    if recent.back().is_some_and(|last| last.epoch != b.epoch) {
        recent.clear();
    }
    recent.push_back(b);
    while recent.len() > PRODUCER_BATCHES_KEPT {
        recent.pop_front();
    }
}

impl ProducerBatch {
    /// The producer's id and this batch, for a header written by an idempotent producer.
    pub fn of(
        h: &crate::protocol::kafka::record_batch::BatchHeader,
    ) -> Option<(i64, ProducerBatch)> {
        (h.has_producer() && !h.is_control()).then(|| {
            (
                h.producer_id,
                ProducerBatch {
                    epoch: h.producer_epoch,
                    first_sequence: h.base_sequence,
                    last_sequence: h.last_sequence(),
                    base_offset: h.base_offset,
                },
            )
        })
    }
}

/// Topics of partitioned, append-only record logs.
#[async_trait]
pub trait Log: Send + Sync {
    /// Creates the given partitions of a topic; existing ones are left as they are.
    /// `new` applies when the topic is new.
    async fn create_partitions(
        &self,
        topic: &str,
        partitions: Range<u32>,
        new: NewTopic,
    ) -> StorageResult<()>;
    /// Removes a topic and all its data.
    async fn delete_topic(&self, topic: &str) -> StorageResult<()>;
    /// Every topic the log holds, with its partition count.
    async fn topics(&self) -> StorageResult<Vec<(String, u32)>>;
    /// `topics`, from a listing begun no earlier than `since`: a backend that shares one
    /// listing among callers must not answer a caller looking for a topic just made elsewhere
    /// from a listing older than its question.
    async fn topics_since(&self, _since: std::time::Instant) -> StorageResult<Vec<(String, u32)>> {
        self.topics().await
    }
    /// Makes everything appended to a partition durable (a reshard fixes end offsets on it).
    async fn flush(&self, topic: &str, partition: u32) -> StorageResult<()>;
    /// How long the topic keeps records (−1: forever), when the backend keeps that itself
    /// and others may change it; `None` when strait's own record is the truth.
    async fn retention_ms(&self, _topic: &str) -> StorageResult<Option<i64>> {
        Ok(None)
    }
    /// Whether the topic scales itself (a Kinesis ON_DEMAND stream), when the backend keeps
    /// that itself; `None` when strait's own record is the truth.
    async fn on_demand(&self, _topic: &str) -> StorageResult<Option<bool>> {
        Ok(None)
    }
    /// Sets how long records are kept; `None` keeps them forever.
    async fn set_retention(&self, topic: &str, retention_ms: Option<i64>) -> StorageResult<()>;
    /// Appends one RecordBatch v2 and returns where it landed once it is as durable as the
    /// backend promises (embedded: fsynced when `fsync: always`; Kafka: acks=all). The batch
    /// was checked where it entered strait (or built by it): backends do not check it again.
    async fn append(
        &self,
        topic: &str,
        partition: u32,
        batch: CheckedBatch,
    ) -> StorageResult<AppendInfo>;
    /// Reads whole batches holding offsets from `offset` on, up to about `max_bytes`
    /// (at least one batch when any is visible). An offset below the log start reads from
    /// the log start; one at or past the high watermark reads nothing.
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> StorageResult<ReadBatches>;
    async fn offsets(&self, topic: &str, partition: u32) -> StorageResult<PartitionOffsets>;
    /// One past the last record appended, committed or not: where a closed shard is sealed
    /// (`core/late_writes.rs`). The high watermark where the log has no transactions.
    async fn append_end(&self, topic: &str, partition: u32) -> StorageResult<i64> {
        Ok(self.offsets(topic, partition).await?.high_watermark)
    }
    /// The first visible batch holding the partition's largest record timestamp:
    /// (its base offset, that timestamp).
    async fn max_timestamp_batch(
        &self,
        topic: &str,
        partition: u32,
    ) -> StorageResult<Option<(i64, i64)>>;
    /// The first offset whose batch holds a record at or after `timestamp_ms` (the high
    /// watermark when there is none). Batch granularity: callers skip earlier records.
    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> StorageResult<i64>;
    /// The topic's reshard history, when the backend keeps it rather than strait's catalog
    /// (Kinesis streams resharded upstream); `None` otherwise.
    /// When the backend made the topic, in ms, if it records it (Kinesis's
    /// StreamCreationTimestamp): replicas that create or adopt the topic take this as the
    /// stream's creation time, so they give it the same Kafka topic id.
    async fn created_ms(&self, _topic: &str) -> StorageResult<Option<i64>> {
        Ok(None)
    }
    async fn lineage(&self, _topic: &str) -> StorageResult<Option<Vec<PartitionLineage>>> {
        Ok(None)
    }
    /// The last batches (at most `PRODUCER_BATCHES_KEPT`, of its newest epoch, oldest first)
    /// an idempotent producer appended to a partition, from the batch headers the log holds:
    /// how the core's producer state survives a restart, as Kafka rebuilds its own. Empty for
    /// a producer the log does not know.
    async fn producer_batches(
        &self,
        topic: &str,
        partition: u32,
        producer_id: i64,
    ) -> StorageResult<Vec<ProducerBatch>>;
}

/// Small documents kept durably by key (stream attributes, EFO registrations, secrets).
/// A store shared by several strait replicas reports changes made by the others.
#[async_trait]
pub trait MetaStore: Send + Sync {
    async fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>>;
    /// Replaces the document atomically and durably.
    async fn put(&self, key: &str, value: &[u8]) -> StorageResult<()>;
    async fn delete(&self, key: &str) -> StorageResult<()>;
    /// Every document whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>>;
    /// Returns once every document written before the call (by anyone) can be read here.
    async fn sync(&self) -> StorageResult<()> {
        Ok(())
    }
    /// Makes this replica the only one whose writes succeed, until another replica calls
    /// this: a write of a replica fenced since its last call fails with
    /// `StorageError::Fenced`. A change read after the call and written under it therefore
    /// overwrites nobody's change. A no-op where there is one writer.
    async fn fence(&self) -> StorageResult<()> {
        Ok(())
    }
    /// The latest moment as of which every document anyone had written was read here;
    /// `None` where this replica is the only writer or reads the store itself each time.
    fn current_as_of(&self) -> Option<std::time::Instant> {
        None
    }
    /// How many times another writer's change has been read here (what `changes` ticks).
    fn change_count(&self) -> u64 {
        0
    }
    /// Ticks whenever another writer changed a document; `None` when nobody else writes.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// Returns once every write made so far is durable, or after a few seconds (shutdown).
    async fn flush(&self) {}
}

/// A `MetaStore` that answers without waiting. The embedded group coordinator writes
/// snapshots under a lock, in state order, so it needs one; on the Kafka backend the
/// cluster is the group coordinator and this store is not used.
pub trait SyncMetaStore: Send + Sync {
    fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>>;
    fn put(&self, key: &str, value: &[u8]) -> StorageResult<()>;
    fn delete(&self, key: &str) -> StorageResult<()>;
    fn list(&self, prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>>;
    /// Some writes returned before they were durable and are still being made (a store
    /// that writes behind).
    fn unwritten(&self) -> bool {
        false
    }
}

/// How long `MetaStore::flush` waits for a write-behind store at shutdown.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[async_trait]
impl<T: SyncMetaStore> MetaStore for T {
    async fn flush(&self) {
        let until = tokio::time::Instant::now() + FLUSH_WAIT;
        while self.unwritten() && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    async fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        SyncMetaStore::get(self, key)
    }
    async fn put(&self, key: &str, value: &[u8]) -> StorageResult<()> {
        SyncMetaStore::put(self, key, value)
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        SyncMetaStore::delete(self, key)
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>> {
        SyncMetaStore::list(self, prefix)
    }
}
