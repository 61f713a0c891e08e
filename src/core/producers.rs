//! Idempotent-producer state: producer ids, epochs and the last batches of each
//! (producer, stream, partition), so that a retried batch gets its original offset instead of
//! being appended twice (reference §2.4). Kept in memory and loaded from the log's batch
//! headers the first time a producer appears on a partition (`Log::producer_batches`), so a
//! retry that crosses a restart is still recognised.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::backend::{remember_producer_batch, ProducerBatch, PRODUCER_EXPIRY_MS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdentity {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Fresh,
    /// Already appended at this base offset.
    Duplicate(i64),
    /// An older epoch than the producer's current one.
    Fenced,
    OutOfOrder {
        expected: i32,
    },
}

pub(super) struct PartitionProducer {
    last_used: std::time::Instant,
    /// The last batches of the producer's newest epoch, oldest first (what the log keeps too).
    recent: VecDeque<ProducerBatch>,
    /// Whether what the log knows of this producer has been read in.
    loaded: bool,
}

impl Default for PartitionProducer {
    fn default() -> Self {
        PartitionProducer {
            last_used: std::time::Instant::now(),
            recent: VecDeque::new(),
            loaded: false,
        }
    }
}

impl PartitionProducer {
    pub(super) fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Takes in the producer's last batches as the log holds them (oldest first, one epoch).
    pub(super) fn load(&mut self, batches: &[ProducerBatch]) {
        self.loaded = true;
        if !batches.is_empty() {
            self.recent = batches.iter().copied().collect();
        }
    }

    /// The producer's current epoch: its newest batch's.
    fn epoch(&self) -> i16 {
        self.recent.back().map_or(0, |b| b.epoch)
    }

    pub(super) fn check(&self, b: &BatchIdentity) -> SequenceCheck {
        let epoch = self.epoch();
        if b.epoch < epoch {
            return SequenceCheck::Fenced;
        }
        if b.epoch > epoch || self.recent.is_empty() {
            // A new epoch starts at 0; a producer seen for the first time is trusted.
            return if b.epoch > epoch && !self.recent.is_empty() && b.first_sequence != 0 {
                SequenceCheck::OutOfOrder { expected: 0 }
            } else {
                SequenceCheck::Fresh
            };
        }
        if let Some(done) = self
            .recent
            .iter()
            .find(|r| r.first_sequence == b.first_sequence && r.last_sequence == b.last_sequence)
        {
            return SequenceCheck::Duplicate(done.base_offset);
        }
        let last = self.recent.back().map_or(-1, |r| r.last_sequence);
        let expected = if last == i32::MAX { 0 } else { last + 1 };
        if b.first_sequence == expected {
            SequenceCheck::Fresh
        } else {
            SequenceCheck::OutOfOrder { expected }
        }
    }

    pub(super) fn record(&mut self, b: &BatchIdentity, base_offset: i64) {
        self.last_used = std::time::Instant::now();
        remember_producer_batch(
            &mut self.recent,
            ProducerBatch {
                epoch: b.epoch,
                first_sequence: b.first_sequence,
                last_sequence: b.last_sequence,
                base_offset,
            },
        );
    }
}

type Key = (i64, String, u32);

const PRODUCER_EXPIRY: std::time::Duration =
    std::time::Duration::from_millis(PRODUCER_EXPIRY_MS as u64);

pub struct Producers {
    next_id: AtomicI64,
    lookups: std::sync::atomic::AtomicU64,
    /// One lock per (producer, stream, partition): check, append and record happen under it.
    partitions: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<PartitionProducer>>>>,
}

impl Default for Producers {
    fn default() -> Self {
        // Ids start from the clock so that ids handed out before a restart are not reused.
        let start = super::now_ms().max(1) * 1000;
        Producers {
            next_id: AtomicI64::new(start),
            lookups: std::sync::atomic::AtomicU64::new(0),
            partitions: Mutex::new(HashMap::new()),
        }
    }
}

impl Producers {
    pub fn allocate(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn partition(
        &self,
        producer_id: i64,
        stream: &str,
        partition: u32,
    ) -> Arc<tokio::sync::Mutex<PartitionProducer>> {
        let mut map = self.partitions.lock();
        // Forget producers idle longer than Kafka's producer.id.expiration.ms (one day);
        // checked every few thousand lookups so the sweep costs nothing per produce.
        if self.lookups.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            // An entry another task holds a handle to is in use, however long ago it was
            // last used: dropping it would give that producer a second, unlocked state.
            map.retain(|_, p| {
                Arc::strong_count(p) > 1
                    || p.try_lock()
                        .map_or(true, |p| p.last_used.elapsed() < PRODUCER_EXPIRY)
            });
        }
        map.entry((producer_id, stream.to_string(), partition))
            .or_default()
            .clone()
    }

    pub(super) fn forget_stream(&self, stream: &str) {
        self.partitions.lock().retain(|(_, s, _), _| s != stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(epoch: i16, first: i32, last: i32) -> BatchIdentity {
        BatchIdentity {
            producer_id: 7,
            epoch,
            first_sequence: first,
            last_sequence: last,
        }
    }

    #[test]
    fn sequences() {
        let mut p = PartitionProducer::default();
        assert_eq!(p.check(&b(0, 0, 4)), SequenceCheck::Fresh);
        p.record(&b(0, 0, 4), 100);
        assert_eq!(p.check(&b(0, 0, 4)), SequenceCheck::Duplicate(100));
        assert_eq!(p.check(&b(0, 5, 9)), SequenceCheck::Fresh);
        assert_eq!(
            p.check(&b(0, 7, 9)),
            SequenceCheck::OutOfOrder { expected: 5 }
        );
        p.record(&b(0, 5, 9), 105);
        assert_eq!(p.check(&b(0, 0, 4)), SequenceCheck::Duplicate(100));
        // A bumped epoch restarts at 0; the old epoch is fenced.
        assert_eq!(
            p.check(&b(1, 3, 3)),
            SequenceCheck::OutOfOrder { expected: 0 }
        );
        assert_eq!(p.check(&b(1, 0, 0)), SequenceCheck::Fresh);
        p.record(&b(1, 0, 0), 110);
        assert_eq!(p.check(&b(0, 10, 10)), SequenceCheck::Fenced);
    }

    #[test]
    fn loaded_batches_answer_retries_after_a_restart() {
        let mut p = PartitionProducer::default();
        let batch = |first, last, base| ProducerBatch {
            epoch: 2,
            first_sequence: first,
            last_sequence: last,
            base_offset: base,
        };
        p.load(&[batch(0, 4, 100), batch(5, 9, 105)]);
        assert!(p.is_loaded());
        assert_eq!(p.check(&b(2, 5, 9)), SequenceCheck::Duplicate(105));
        assert_eq!(p.check(&b(2, 10, 12)), SequenceCheck::Fresh);
        assert_eq!(p.check(&b(1, 10, 12)), SequenceCheck::Fenced);
    }

    #[test]
    fn sequence_wraps() {
        let mut p = PartitionProducer::default();
        p.record(&b(0, i32::MAX - 1, i32::MAX), 1);
        assert_eq!(p.check(&b(0, 0, 3)), SequenceCheck::Fresh);
    }
}
