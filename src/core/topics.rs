//! Streams seen as Kafka topics: creation with the Kafka key hash, stable topic ids, raw
//! batch appends with idempotent-producer checks, raw batch reads with offset bounds, and the
//! wake-up that long-polling readers wait on.

use md5::{Digest, Md5};
use std::collections::BTreeMap;

use super::catalog::{shard_id, KeyHash, Stream, StreamMode};
use super::error::{CoreError, CoreResult};
use super::hashing::md5_hash_key;
use super::producers::{BatchIdentity, SequenceCheck};
use super::service::{Core, CreateStreamRequest};
use crate::backend::{PartitionOffsets, ReadBatches};
use crate::config::KeyCheck;
use crate::protocol::kafka::record_batch::{CheckedBatch, ParsedBatch};
use crate::protocol::kafka::records::decode_batch;
use crate::protocol::kafka::validate::{validate, Limits, Refusal, Stop};

/// Kafka's `message.timestamp.after.max.ms` default since 4.0: how far ahead of strait's clock
/// a producer's CreateTime timestamp may be.
const MAX_TIMESTAMP_AHEAD_MS: i64 = 3_600_000;

/// What one produced batch may inflate to: a reader decodes a stored batch whole.
fn max_decompressed_bytes(max_record_bytes: usize) -> usize {
    (64 << 20).max(8 * max_record_bytes)
}

/// Where a produced batch landed.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    pub log_start: i64,
}

/// Keyed records of one batch outside the partition's hash range: how many, and one key.
#[derive(Default)]
struct OutsideRange {
    count: u64,
    example: Vec<u8>,
}

/// A stable topic id: derived from the stream's name and creation time, so a recreated
/// topic gets a new one and no table is needed.
pub fn topic_id(s: &Stream) -> uuid::Uuid {
    let mut h = Md5::new();
    h.update(s.name.as_bytes());
    h.update(s.created_ms.to_be_bytes());
    uuid::Builder::from_md5_bytes(h.finalize().into()).into_uuid()
}

impl Core {
    /// Creates a topic through Kafka, with the Kafka key hash: provisioned unless a
    /// CreateTopics config asked for ON_DEMAND.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        mode: StreamMode,
    ) -> CoreResult<()> {
        self.create_stream(CreateStreamRequest {
            name: name.to_string(),
            shard_count: Some(partitions),
            mode,
            max_record_kib: None,
            tags: BTreeMap::new(),
            key_hash: self.streams_config.default_key_hash_kafka,
        })
        .await
    }

    /// Appends a producer's batch to a partition once it is known to take writes, as Kafka
    /// would: its CRC checked, then every record decoded once and validated (keys checked
    /// against the partition's hash range in the same pass), then idempotent retries
    /// deduplicated. A refused batch appends nothing.
    pub async fn produce(
        &self,
        stream: &str,
        partition: u32,
        batch: ParsedBatch,
    ) -> CoreResult<Appended> {
        let entry = self.entry(stream)?;
        let _gate = entry.gate.read().await;
        let s = entry.snapshot();
        let shard = self.shard_of(&s, partition)?;
        self.check_write_hold(stream)?;
        if !shard.is_open() {
            return Err(CoreError::ShardClosed {
                stream: stream.to_string(),
                shard: shard_id(partition),
                account: self.account_id.clone(),
            });
        }
        let batch = batch
            .check()
            .map_err(|e| CoreError::CorruptBatch(format!("{e:?}")))?;
        if batch.header().is_transactional() {
            return Err(CoreError::BatchRefused(Refusal::InvalidRecord(
                "a transactional batch outside a transaction (strait has no transactions)".into(),
            )));
        }
        let max_record_bytes = s.max_record_kib as usize * 1024;
        let limits = Limits {
            max_record_bytes,
            max_decompressed_bytes: max_decompressed_bytes(max_record_bytes),
            now_ms: super::now_ms(),
            max_future_ms: MAX_TIMESTAMP_AHEAD_MS,
        };
        // Keys are checked against the shard's MD5 range on every stream that routes by it:
        // refused with `key_check: reject`, otherwise counted (and logged once per producer).
        let reject = self.streams_config.key_check == KeyCheck::Reject;
        let key_range =
            (s.key_hash == KeyHash::KinesisMd5).then_some((shard.start_hash, shard.end_hash));
        let name = s.name.clone();
        let run = move |batch: CheckedBatch| {
            let mut outside = OutsideRange::default();
            let validated = validate(&batch, &limits, |r| match (r.key, key_range) {
                (Some(key), Some((low, high))) if !(low..=high).contains(&md5_hash_key(key)) => {
                    if reject {
                        return Err(CoreError::KeyOutsideRange {
                            stream: name.clone(),
                            partition,
                            key: String::from_utf8_lossy(key).into_owned(),
                        });
                    }
                    if outside.count == 0 {
                        outside.example = key.to_vec();
                    }
                    outside.count += 1;
                    Ok(())
                }
                _ => Ok(()),
            });
            (batch, validated, outside)
        };
        // Inflating a compressed batch is CPU work that must not hold up the workers serving
        // every connection; an uncompressed one is walked in place, cheaply.
        let (mut batch, validated, outside) = if batch.compression() == 0 {
            run(batch)
        } else {
            tokio::task::spawn_blocking(move || run(batch))
                .await
                .map_err(|e| CoreError::Internal(format!("the validation task failed: {e}")))?
        };
        let validated = validated.map_err(|stop| match stop {
            Stop::Refused(r) => CoreError::BatchRefused(r),
            Stop::Visitor(e) => e,
        })?;

        // A client's LogAppendTime bit, or a max timestamp its records do not hold, would
        // become every record's arrival time and the time index's: rewritten as Kafka does.
        let h = batch.header();
        if h.attributes & (1 << 3) != 0 || validated.max_timestamp != h.max_timestamp {
            batch.set_create_time(validated.max_timestamp);
        }
        let header = *batch.header();
        let mut log_start = None;
        let appended = if header.producer_id >= 0 && !header.is_control() {
            let id = BatchIdentity {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
                first_sequence: header.base_sequence,
                last_sequence: header.last_sequence(),
            };
            let state = self.producers.partition(id.producer_id, stream, partition);
            let mut state = state.lock().await;
            if !state.is_loaded() {
                let known = self
                    .log
                    .producer_batches(stream, partition, id.producer_id)
                    .await?;
                state.load(&known);
            }
            match state.check(&id) {
                SequenceCheck::Duplicate(base) => base,
                SequenceCheck::Fenced => {
                    return Err(CoreError::ProducerFenced {
                        producer_id: id.producer_id,
                    })
                }
                SequenceCheck::OutOfOrder { expected } => {
                    return Err(CoreError::OutOfOrderSequence {
                        producer_id: id.producer_id,
                        got: id.first_sequence,
                        expected,
                    })
                }
                SequenceCheck::Fresh => {
                    let at = self.log.append(stream, partition, batch).await?;
                    state.record(&id, at.base_offset);
                    log_start = Some(at.log_start);
                    at.base_offset
                }
            }
        } else {
            let at = self.log.append(stream, partition, batch).await?;
            log_start = Some(at.log_start);
            at.base_offset
        };
        self.appended.notify_waiters();
        if outside.count > 0 {
            self.key_mismatches.record(
                stream,
                header.producer_id,
                partition,
                outside.count,
                &outside.example,
            );
        }
        Ok(Appended {
            base_offset: appended,
            // A duplicate appended nothing, so the log is asked.
            log_start: match log_start {
                Some(start) => start,
                None => self.log.offsets(stream, partition).await?.log_start,
            },
        })
    }

    /// Stored batches from `offset` on. An offset outside `[log start, high watermark]` is
    /// OffsetOutOfRange, as Kafka answers it; the read itself reports both bounds, so a
    /// Fetch costs one call into the log.
    pub async fn fetch(
        &self,
        stream: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> CoreResult<ReadBatches> {
        let s = self.stream(stream)?;
        self.shard_of(&s, partition)?;
        let read = self.log.read(stream, partition, offset, max_bytes).await?;
        let offsets = read.offsets;
        if offset < offsets.log_start || offset > offsets.high_watermark {
            return Err(CoreError::OffsetOutOfRange {
                stream: stream.to_string(),
                partition,
                offset,
                log_start: offsets.log_start,
                high_watermark: offsets.high_watermark,
            });
        }
        Ok(read)
    }

    /// Offsets of a partition that must exist.
    pub async fn partition_offsets_checked(
        &self,
        stream: &str,
        partition: u32,
    ) -> CoreResult<PartitionOffsets> {
        let s = self.stream(stream)?;
        self.shard_of(&s, partition)?;
        Ok(self.log.offsets(stream, partition).await?)
    }

    /// The first record at or after `timestamp_ms`: its offset and timestamp, or None when
    /// there is none (Kafka's ListOffsets answer).
    pub async fn record_for_timestamp(
        &self,
        stream: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> CoreResult<Option<(i64, i64)>> {
        self.partition_offsets_checked(stream, partition).await?;
        let (offset, ts) = self.record_at_time(stream, partition, timestamp_ms).await?;
        Ok(ts.map(|t| (offset, t)))
    }

    /// The first record carrying the partition's largest timestamp (ListOffsets −3). Producers
    /// stamp their own records, so this is not simply the newest one.
    pub async fn record_with_max_timestamp(
        &self,
        stream: &str,
        partition: u32,
    ) -> CoreResult<Option<(i64, i64)>> {
        self.partition_offsets_checked(stream, partition).await?;
        let Some((base, max_ts)) = self.log.max_timestamp_batch(stream, partition).await? else {
            return Ok(None);
        };
        let read = self.log.read(stream, partition, base, 1).await?;
        for batch in read.batches {
            let records = decode_batch(batch).map_err(CoreError::undecodable)?;
            if let Some(r) = records
                .iter()
                .find(|r| r.offset >= base && r.timestamp_ms == max_ts)
            {
                return Ok(Some((r.offset, r.timestamp_ms)));
            }
        }
        Ok(None)
    }

    /// Woken after every append anywhere. Long polls arm `notified()` before they read, so
    /// an append between their read and their wait is not missed.
    pub fn append_signal(&self) -> &tokio::sync::Notify {
        &self.appended
    }

    pub fn allocate_producer_id(&self) -> i64 {
        self.producers.allocate()
    }
}
