//! An in-memory `Log`, `MetaStore` and `SyncMetaStore`: the core's unit tests run on it, with
//! paused time, instead of on a log of files or a cluster. It keeps stored batches as bytes,
//! assigns offsets as the embedded log does, and counts the calls made to it so a test can
//! check how often the core asks the backend.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{
    remember_producer_batch, AppendInfo, CheckedBatch, Log, NewTopic, PartitionOffsets,
    ProducerBatch, ReadBatches, StorageError, StorageResult, SyncMetaStore,
};
use crate::protocol::kafka::record_batch::BatchHeader;

#[derive(Default)]
struct Partition {
    /// Whole batches with their headers (base offset assigned), in offset order.
    batches: Vec<(BatchHeader, Bytes)>,
    log_start: i64,
    next_offset: i64,
}

impl Partition {
    fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets {
            log_start: self.log_start,
            high_watermark: self.next_offset,
            last_timestamp_ms: None,
        }
    }
}

/// How many times each `Log` method was called.
#[derive(Debug, Default)]
pub struct LogCalls {
    pub append: AtomicU64,
    pub read: AtomicU64,
    pub offsets: AtomicU64,
    pub max_timestamp_batch: AtomicU64,
    pub offset_for_timestamp: AtomicU64,
}

impl LogCalls {
    /// (read, offsets, max_timestamp_batch, offset_for_timestamp) so far.
    pub fn reads(&self) -> (u64, u64, u64, u64) {
        (
            self.read.load(Ordering::Relaxed),
            self.offsets.load(Ordering::Relaxed),
            self.max_timestamp_batch.load(Ordering::Relaxed),
            self.offset_for_timestamp.load(Ordering::Relaxed),
        )
    }
}

/// A topic's partitions and its retention.
type Topic = (Vec<Partition>, Option<i64>);

#[derive(Default)]
pub struct MemoryLog {
    topics: Mutex<BTreeMap<String, Topic>>,
    pub calls: LogCalls,
}

impl MemoryLog {
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    /// Drops whole batches below `offset`, as retention would.
    pub fn trim(&self, topic: &str, partition: u32, offset: i64) {
        let mut topics = self.topics.lock();
        if let Some(p) = topics
            .get_mut(topic)
            .and_then(|(ps, _)| ps.get_mut(partition as usize))
        {
            p.batches.retain(|(h, _)| h.next_offset() > offset);
            p.log_start = p
                .batches
                .first()
                .map_or(p.next_offset, |(h, _)| h.base_offset);
        }
    }

    fn with_partition<T>(
        &self,
        topic: &str,
        partition: u32,
        f: impl FnOnce(&mut Partition) -> StorageResult<T>,
    ) -> StorageResult<T> {
        let mut topics = self.topics.lock();
        let p = topics
            .get_mut(topic)
            .and_then(|(ps, _)| ps.get_mut(partition as usize))
            .ok_or_else(|| {
                StorageError::Unavailable(format!("no partition {partition} of {topic}"))
            })?;
        f(p)
    }
}

#[async_trait]
impl Log for MemoryLog {
    async fn create_partitions(
        &self,
        topic: &str,
        partitions: Range<u32>,
        new: NewTopic,
    ) -> StorageResult<()> {
        let retention_ms = new.retention_ms;
        let mut topics = self.topics.lock();
        let (ps, _) = topics
            .entry(topic.to_string())
            .or_insert_with(|| (Vec::new(), retention_ms));
        while ps.len() < partitions.end as usize {
            ps.push(Partition::default());
        }
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> StorageResult<()> {
        self.topics.lock().remove(topic);
        Ok(())
    }

    async fn topics(&self) -> StorageResult<Vec<(String, u32)>> {
        Ok(self
            .topics
            .lock()
            .iter()
            .map(|(t, (ps, _))| (t.clone(), ps.len() as u32))
            .collect())
    }

    async fn flush(&self, _topic: &str, _partition: u32) -> StorageResult<()> {
        Ok(())
    }

    async fn set_retention(&self, topic: &str, retention_ms: Option<i64>) -> StorageResult<()> {
        if let Some((_, r)) = self.topics.lock().get_mut(topic) {
            *r = retention_ms;
        }
        Ok(())
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        mut batch: CheckedBatch,
    ) -> StorageResult<AppendInfo> {
        self.calls.append.fetch_add(1, Ordering::Relaxed);
        self.with_partition(topic, partition, |p| {
            let base = p.next_offset;
            batch.place_at(base);
            let header = *batch.header();
            p.next_offset = header.next_offset();
            p.batches.push((header, batch.freeze()));
            Ok(AppendInfo {
                base_offset: base,
                log_append_time_ms: None,
                log_start: p.log_start,
            })
        })
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> StorageResult<ReadBatches> {
        self.calls.read.fetch_add(1, Ordering::Relaxed);
        self.with_partition(topic, partition, |p| {
            let mut batches = Vec::new();
            let mut bytes = 0;
            for (h, b) in &p.batches {
                if h.next_offset() <= offset.max(p.log_start) {
                    continue;
                }
                if !batches.is_empty() && bytes + b.len() > max_bytes {
                    break;
                }
                bytes += b.len();
                batches.push(b.clone());
            }
            Ok(ReadBatches {
                batches,
                offsets: p.offsets(),
                skipped_to: None,
            })
        })
    }

    async fn offsets(&self, topic: &str, partition: u32) -> StorageResult<PartitionOffsets> {
        self.calls.offsets.fetch_add(1, Ordering::Relaxed);
        self.with_partition(topic, partition, |p| Ok(p.offsets()))
    }

    async fn max_timestamp_batch(
        &self,
        topic: &str,
        partition: u32,
    ) -> StorageResult<Option<(i64, i64)>> {
        self.calls
            .max_timestamp_batch
            .fetch_add(1, Ordering::Relaxed);
        self.with_partition(topic, partition, |p| {
            let mut best: Option<(i64, i64)> = None;
            for (h, _) in &p.batches {
                if best.is_none_or(|(_, ts)| h.max_timestamp > ts) {
                    best = Some((h.base_offset, h.max_timestamp));
                }
            }
            Ok(best)
        })
    }

    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> StorageResult<i64> {
        self.calls
            .offset_for_timestamp
            .fetch_add(1, Ordering::Relaxed);
        self.with_partition(topic, partition, |p| {
            for (h, _) in &p.batches {
                if h.max_timestamp >= timestamp_ms {
                    return Ok(h.base_offset);
                }
            }
            Ok(p.next_offset)
        })
    }

    async fn producer_batches(
        &self,
        topic: &str,
        partition: u32,
        producer_id: i64,
    ) -> StorageResult<Vec<ProducerBatch>> {
        // A scan of the headers kept, as the embedded log's recovery does once.
        self.with_partition(topic, partition, |p| {
            let mut recent = std::collections::VecDeque::new();
            for (h, _) in &p.batches {
                match ProducerBatch::of(h) {
                    Some((id, b)) if id == producer_id => remember_producer_batch(&mut recent, b),
                    _ => {}
                }
            }
            Ok(recent.into())
        })
    }
}

/// Documents in a map; nobody else writes, so no changes are reported.
#[derive(Default)]
pub struct MemoryMetaStore {
    docs: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryMetaStore {
    pub fn new() -> MemoryMetaStore {
        MemoryMetaStore::default()
    }
}

impl SyncMetaStore for MemoryMetaStore {
    fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.docs.lock().get(key).cloned())
    }
    fn put(&self, key: &str, value: &[u8]) -> StorageResult<()> {
        self.docs.lock().insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> StorageResult<()> {
        self.docs.lock().remove(key);
        Ok(())
    }
    fn list(&self, prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>> {
        let docs = self.docs.lock();
        let mut out: Vec<(String, Vec<u8>)> = docs
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kafka::records::{decode_batch, encode_batch, NewRecord};

    fn batch(n: usize, ts: i64) -> CheckedBatch {
        let records: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Bytes::from(format!("v{i}")),
                timestamp_ms: ts,
                explicit_hash_key: None,
            })
            .collect();
        encode_batch(&records)
    }

    #[tokio::test]
    async fn offsets_follow_appends_and_trims() {
        let log = MemoryLog::new();
        log.create_partitions("t", 0..2, NewTopic::default())
            .await
            .unwrap();
        assert_eq!(
            log.append("t", 1, batch(3, 10)).await.unwrap().base_offset,
            0
        );
        assert_eq!(
            log.append("t", 1, batch(2, 20)).await.unwrap().base_offset,
            3
        );
        let read = log.read("t", 1, 4, 1 << 20).await.unwrap();
        assert_eq!(read.batches.len(), 1);
        assert_eq!(decode_batch(read.batches[0].clone()).unwrap()[1].offset, 4);
        assert_eq!(read.offsets.high_watermark, 5);
        assert_eq!(
            log.max_timestamp_batch("t", 1).await.unwrap(),
            Some((3, 20))
        );
        assert_eq!(log.offset_for_timestamp("t", 1, 15).await.unwrap(), 3);
        assert_eq!(log.offset_for_timestamp("t", 1, 25).await.unwrap(), 5);
        log.trim("t", 1, 3);
        assert_eq!(log.offsets("t", 1).await.unwrap().log_start, 3);
        assert!(log.offsets("t", 2).await.is_err());
    }
}
