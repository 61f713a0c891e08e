//! The idempotent producers a partition's batch headers name: the last batches of each,
//! gathered while recovery scans the segments and kept current on append, so the core's
//! producer state survives a restart (Kafka rebuilds its own from the log the same way).
//! Producers idle longer than Kafka's `producer.id.expiration.ms` are forgotten.

use std::collections::{HashMap, VecDeque};

use crate::backend::{remember_producer_batch, ProducerBatch, PRODUCER_EXPIRY_MS};
use crate::protocol::kafka::record_batch::BatchHeader;

#[derive(Default)]
pub struct ProducerIndex {
    producers: HashMap<i64, Producer>,
}

struct Producer {
    /// The wall clock of its last append; during recovery the batch's own max timestamp
    /// (what Kafka also judges expiry by).
    last_seen_ms: i64,
    recent: VecDeque<ProducerBatch>,
}

impl ProducerIndex {
    /// Notes a batch appended (or recovered) at its final base offset.
    pub fn note(&mut self, h: &BatchHeader, seen_ms: i64) {
        let Some((id, batch)) = ProducerBatch::of(h) else {
            return;
        };
        let p = self.producers.entry(id).or_insert_with(|| Producer {
            last_seen_ms: seen_ms,
            recent: VecDeque::new(),
        });
        p.last_seen_ms = p.last_seen_ms.max(seen_ms);
        remember_producer_batch(&mut p.recent, batch);
    }

    pub fn batches(&self, producer_id: i64) -> Vec<ProducerBatch> {
        self.producers
            .get(&producer_id)
            .map(|p| p.recent.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Forgets producers idle for longer than the expiry.
    pub fn expire(&mut self, now_ms: i64) {
        self.producers
            .retain(|_, p| now_ms.saturating_sub(p.last_seen_ms) < PRODUCER_EXPIRY_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            total_len: 100,
            last_offset_delta: 2,
            base_timestamp: 0,
            max_timestamp: 0,
            record_count: 3,
            attributes: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
        }
    }

    #[test]
    fn keeps_the_last_five_batches_of_the_newest_epoch() {
        let mut idx = ProducerIndex::default();
        for i in 0..8 {
            idx.note(&header(7, 0, i * 3, 100 + i as i64 * 3), 1);
        }
        idx.note(&header(-1, -1, -1, 200), 1);
        let got = idx.batches(7);
        assert_eq!(got.len(), 5);
        assert_eq!((got[0].first_sequence, got[0].last_sequence), (9, 11));
        assert_eq!(got[4].base_offset, 121);
        idx.note(&header(7, 1, 0, 300), 1);
        assert_eq!(idx.batches(7).len(), 1, "a new epoch starts over");
        assert_eq!(
            idx.producers.len(),
            1,
            "batches without a producer are not indexed"
        );
    }

    #[test]
    fn idle_producers_expire() {
        let mut idx = ProducerIndex::default();
        idx.note(&header(1, 0, 0, 0), 1_000);
        idx.note(&header(2, 0, 0, 3), 1_000 + PRODUCER_EXPIRY_MS);
        idx.expire(1_000 + PRODUCER_EXPIRY_MS);
        assert!(idx.batches(1).is_empty());
        assert_eq!(idx.batches(2).len(), 1);
    }
}
