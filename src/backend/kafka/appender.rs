//! Group commit for appends to a Kafka partition: while one Produce is in flight, concurrent
//! appends to the same partition queue up, and the next Produce carries all of them merged
//! into one record batch (Kafka takes exactly one batch per partition in a Produce). Each
//! caller learns its own base offset inside the merged batch.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::errors::Failure;
use super::log::KafkaLog;
use crate::backend::AppendInfo;
use crate::backend::{StorageError, StorageResult};

/// A merged batch stays below Kafka's default `max.message.bytes` (1 MiB), so merging
/// never makes a batch too large for a topic that took each part alone.
const MERGE_BYTES: usize = 900 * 1024;

struct Pending {
    batch: Bytes,
    records: i64,
    done: oneshot::Sender<StorageResult<AppendInfo>>,
}

#[derive(Default)]
struct Lane {
    queue: VecDeque<Pending>,
    /// A driver task is sending this lane's queue.
    busy: bool,
}

type SharedLane = Arc<Mutex<Lane>>;

#[derive(Default)]
pub struct Appender {
    lanes: Mutex<HashMap<(String, u32), SharedLane>>,
}

impl Appender {
    /// Queues a batch of `records` records and waits for the Produce that carries it.
    pub async fn append(
        &self,
        log: Weak<KafkaLog>,
        topic: &str,
        partition: u32,
        batch: BytesMut,
        records: i64,
    ) -> StorageResult<AppendInfo> {
        let lane = self
            .lanes
            .lock()
            .entry((topic.to_string(), partition))
            .or_default()
            .clone();
        let (done, answer) = oneshot::channel();
        let start = {
            let mut l = lane.lock();
            l.queue.push_back(Pending {
                batch: batch.freeze(),
                records,
                done,
            });
            !std::mem::replace(&mut l.busy, true)
        };
        if start {
            // A task of its own: a caller that goes away must not strand the others.
            tokio::spawn(drive(log, topic.to_string(), partition, lane));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StorageError::Unavailable("the append task stopped".into())))
    }

    pub fn forget_topic(&self, topic: &str) {
        self.lanes.lock().retain(|(t, _), _| t != topic);
    }
}

async fn drive(log: Weak<KafkaLog>, topic: String, partition: u32, lane: SharedLane) {
    loop {
        let mut group = {
            let mut l = lane.lock();
            if l.queue.is_empty() {
                l.busy = false;
                return;
            }
            take_group(&mut l.queue)
        };
        let Some(log) = log.upgrade() else {
            for p in group {
                let _ = p.done.send(Err(StorageError::Unavailable(
                    "the Kafka log is closed".into(),
                )));
            }
            continue;
        };
        let result = match merge(&mut group) {
            Ok(batch) => log.produce(&topic, partition, batch).await,
            Err(e) => Err(Failure::Fatal {
                code: -1,
                message: e.to_string(),
            }),
        };
        match result {
            // Refused as a whole (too large for the topic, say): each part alone may pass.
            Err(Failure::Fatal { .. }) if group.len() > 1 => {
                for Pending { batch, done, .. } in group {
                    let alone = log.produce(&topic, partition, batch).await;
                    let _ = done.send(alone.map_err(|f| f.into_storage(&topic)));
                }
            }
            result => {
                let mut before = 0;
                for p in group {
                    let mine = match &result {
                        Ok(info) => Ok(AppendInfo {
                            base_offset: info.base_offset + before,
                            ..*info
                        }),
                        Err(f) => Err(f.clone().into_storage(&topic)),
                    };
                    before += p.records;
                    let _ = p.done.send(mine);
                }
            }
        }
    }
}

/// The queue's head and whatever follows it within `MERGE_BYTES`.
fn take_group(queue: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut group = Vec::new();
    let mut bytes = 0;
    while let Some(next) = queue.front() {
        if !group.is_empty() && bytes + next.batch.len() > MERGE_BYTES {
            break;
        }
        bytes += next.batch.len();
        group.push(queue.pop_front().expect("peeked"));
    }
    group
}

/// One batch holding every record of the group, in order. A lone batch is handed over as
/// it is (taken, so the producer can stamp it without a copy).
fn merge(group: &mut [Pending]) -> StorageResult<Bytes> {
    if let [one] = group {
        return Ok(std::mem::take(&mut one.batch));
    }
    let mut records: Vec<Record> = Vec::new();
    for p in group.iter() {
        let mut buf = p.batch.clone();
        let set = RecordBatchDecoder::decode(&mut buf)
            .map_err(|e| StorageError::CorruptBatch(format!("merging appends: {e}")))?;
        records.extend(set.records);
    }
    for (i, r) in records.iter_mut().enumerate() {
        // Equal offset and sequence keep every record in one batch.
        r.offset = i as i64;
        r.sequence = i as i32;
    }
    let mut out = BytesMut::with_capacity(group.iter().map(|p| p.batch.len()).sum());
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, records.iter(), &options)
        .map_err(|e| StorageError::Unavailable(format!("merging appends: {e}")))?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kafka::record_batch;
    use crate::protocol::kafka::records::{decode_batch, encode_batch, NewRecord};

    fn pending(values: &[&str]) -> Pending {
        let recs: Vec<NewRecord> = values
            .iter()
            .map(|v| NewRecord {
                key: Some(Bytes::from(format!("k-{v}"))),
                value: Bytes::from(v.to_string()),
                timestamp_ms: 1_700_000_000_000,
                explicit_hash_key: (*v == "b2").then(|| "77".to_string()),
            })
            .collect();
        Pending {
            batch: encode_batch(&recs).freeze(),
            records: values.len() as i64,
            done: oneshot::channel().0,
        }
    }

    #[test]
    fn merged_batches_keep_every_record_in_order() {
        let mut group = vec![
            pending(&["a0", "a1"]),
            pending(&["b0", "b1", "b2"]),
            pending(&["c0"]),
        ];
        let merged = merge(&mut group).unwrap();
        let header = record_batch::check_batch(&merged).unwrap();
        assert_eq!(header.total_len, merged.len(), "one batch");
        assert_eq!(header.record_count, 6);
        let out = decode_batch(merged).unwrap();
        let values: Vec<_> = out.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(
            values,
            ["a0", "a1", "b0", "b1", "b2", "c0"].map(|v| Bytes::from_static(v.as_bytes()))
        );
        assert_eq!(out[3].key.as_deref(), Some(&b"k-b1"[..]));
        assert_eq!(
            out.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (0..6).collect::<Vec<_>>()
        );
    }

    #[test]
    fn groups_stop_at_the_size_limit_but_always_take_one() {
        let big = |n| Pending {
            batch: Bytes::from(vec![0u8; n]),
            records: 1,
            done: oneshot::channel().0,
        };
        let mut q: VecDeque<Pending> = [big(600 << 10), big(400 << 10), big(2 << 20)].into();
        assert_eq!(take_group(&mut q).len(), 1);
        assert_eq!(take_group(&mut q).len(), 1);
        assert_eq!(take_group(&mut q).len(), 1);
        assert!(q.is_empty());
    }
}
