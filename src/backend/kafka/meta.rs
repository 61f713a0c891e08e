//! The `MetaStore` on a Kafka cluster: documents are records of one compacted topic
//! (`backend.kafka.metadata_topic`), keyed by document key, a tombstone for a delete. Every
//! replica tails the topic into memory, so reads are local, a write returns once this
//! replica has read it back, and writes by other replicas are reported as changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::RwLock;
use tokio::sync::watch;

use super::fence::CatalogFence;
use super::log::KafkaLog;
use crate::backend::MetaStore;
use crate::backend::{StorageError, StorageResult};

/// The header naming the replica that wrote a document.
const WRITER_HEADER: &str = "strait.replica";
/// How long a write waits to be read back.
const READ_BACK: Duration = Duration::from_secs(30);
/// A tailer's long poll.
const TAIL_WAIT_MS: i32 = 500;

pub struct KafkaMetaStore {
    log: Arc<KafkaLog>,
    /// Every write is a transaction under the catalog fence (`fence.rs`).
    fence: CatalogFence,
    topic: String,
    replica: Bytes,
    docs: RwLock<BTreeMap<String, Vec<u8>>>,
    /// The next offset to apply.
    applied: watch::Sender<i64>,
    changes: watch::Sender<u64>,
    /// When the last fetch that found nothing more to read was sent.
    caught_up: parking_lot::Mutex<std::time::Instant>,
}

impl KafkaMetaStore {
    /// Creates the topic if needed and reads it to its end before answering anything.
    pub async fn open(log: Arc<KafkaLog>, topic: &str) -> StorageResult<Arc<KafkaMetaStore>> {
        let configs = [
            ("cleanup.policy", "compact".to_string()),
            ("message.timestamp.type", "LogAppendTime".to_string()),
        ];
        log.create_topic(topic, 1, &configs).await?;
        log.await_leaders(topic, 1).await?;
        let (start, _) = log.list_offset(topic, 0, -2).await?;
        let (end, _) = log.list_offset(topic, 0, -1).await?;
        let store = Arc::new(KafkaMetaStore {
            fence: CatalogFence::new(log.cluster().clone(), topic),
            log,
            topic: topic.to_string(),
            replica: Bytes::from(uuid::Uuid::new_v4().to_string()),
            docs: RwLock::default(),
            applied: watch::Sender::new(start),
            changes: watch::Sender::new(0),
            caught_up: parking_lot::Mutex::new(std::time::Instant::now()),
        });
        let mut stalled = 0;
        while *store.applied.borrow() < end {
            let before = *store.applied.borrow();
            store.poll(0).await?;
            stalled = if *store.applied.borrow() == before {
                stalled + 1
            } else {
                0
            };
            if stalled > 20 {
                return Err(StorageError::Unavailable(format!(
                    "the metadata topic {topic} makes no progress at offset {before} (end {end})"
                )));
            }
        }
        tracing::info!(
            topic,
            documents = store.docs.read().len(),
            "metadata topic read"
        );
        let tailer = Arc::downgrade(&store);
        tokio::spawn(tail(tailer));
        Ok(store)
    }

    /// Reads what follows the applied offset and applies it.
    async fn poll(&self, wait_ms: i32) -> StorageResult<()> {
        let from = *self.applied.borrow();
        let sent = std::time::Instant::now();
        let read = self
            .log
            .fetch(&self.topic, 0, from, 1 << 20, wait_ms)
            .await?;
        let mut next = from;
        let mut foreign = false;
        let end = read.offsets.high_watermark;
        for batch in read.batches {
            // Compaction can leave empty batches; the offset still moves past them.
            let batch_end = crate::protocol::kafka::record_batch::parse_stored_header(&batch)
                .map(|h| h.next_offset())
                .unwrap_or(next);
            let mut buf = batch;
            let set = match RecordBatchDecoder::decode(&mut buf) {
                Ok(set) => set,
                // Not strait's writing (a header that is not UTF-8, say): skipped, so one bad
                // batch cannot stop every replica's catalog.
                Err(e) if batch_end > next => {
                    tracing::warn!(offset = next, error = %e, "skipping an unreadable metadata batch");
                    next = batch_end;
                    continue;
                }
                Err(e) => return Err(StorageError::Unavailable(format!("metadata topic: {e}"))),
            };
            let mut docs = self.docs.write();
            for r in set.records {
                if r.offset < next {
                    continue;
                }
                next = r.offset + 1;
                if r.control {
                    continue;
                }
                let Some(key) = r.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                let writer = r
                    .headers
                    .iter()
                    .find(|(k, _)| k.as_str() == WRITER_HEADER)
                    .and_then(|(_, v)| v.clone());
                foreign |= writer.as_ref() != Some(&self.replica);
                match r.value {
                    Some(v) => docs.insert(key.to_string(), v.to_vec()),
                    None => docs.remove(key),
                };
            }
            next = next.max(batch_end);
        }
        // Batches of aborted transactions were dropped from the answer.
        next = next.max(read.skipped_to.unwrap_or(next));
        if next > from {
            self.applied.send_replace(next);
            if foreign {
                self.changes.send_modify(|n| *n += 1);
            }
        }
        if next >= end {
            *self.caught_up.lock() = sent;
        }
        Ok(())
    }

    async fn write(&self, key: &str, value: Option<&[u8]>) -> StorageResult<()> {
        let mut headers = IndexMap::new();
        headers.insert(
            StrBytes::from_static_str(WRITER_HEADER),
            Some(self.replica.clone()),
        );
        let encode = |producer_id: i64, producer_epoch: i16, sequence: i32| {
            let record = Record {
                transactional: true,
                control: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence,
                timestamp: crate::clock::now_ms(),
                key: Some(Bytes::copy_from_slice(key.as_bytes())),
                value: value.map(Bytes::copy_from_slice),
                headers: headers.clone(),
                delete_horizon: false,
            };
            let mut batch = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            RecordBatchEncoder::encode(&mut batch, [&record], &options)
                .map_err(|e| StorageError::Unavailable(format!("encode a metadata record: {e}")))?;
            Ok(batch.freeze())
        };
        let at = self.fence.write(&self.log, &self.topic, encode).await?;
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(READ_BACK, applied.wait_for(|n| *n > at.base_offset))
            .await
            .map_err(|_| {
                StorageError::Unavailable("a metadata write was not read back in time".into())
            })?
            .map_err(|_| StorageError::Unavailable("the metadata tailer stopped".into()))?;
        Ok(())
    }
}

async fn tail(store: Weak<KafkaMetaStore>) {
    loop {
        let Some(s) = store.upgrade() else { return };
        if let Err(e) = s.poll(TAIL_WAIT_MS).await {
            tracing::warn!(error = %e, "reading the metadata topic failed; retrying");
            drop(s);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[async_trait]
impl MetaStore for KafkaMetaStore {
    async fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.docs.read().get(key).cloned())
    }

    async fn put(&self, key: &str, value: &[u8]) -> StorageResult<()> {
        self.write(key, Some(value)).await
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.write(key, None).await
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>> {
        Ok(self
            .docs
            .read()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn sync(&self) -> StorageResult<()> {
        let (end, _) = self.log.list_offset(&self.topic, 0, -1).await?;
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(READ_BACK, applied.wait_for(|n| *n >= end))
            .await
            .map_err(|_| {
                StorageError::Unavailable(
                    "the metadata topic was not read to its end in time".into(),
                )
            })?
            .map_err(|_| StorageError::Unavailable("the metadata tailer stopped".into()))?;
        Ok(())
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.subscribe())
    }

    fn current_as_of(&self) -> Option<std::time::Instant> {
        Some(*self.caught_up.lock())
    }

    fn change_count(&self) -> u64 {
        *self.changes.borrow()
    }

    async fn fence(&self) -> StorageResult<()> {
        self.fence.take().await
    }
}
