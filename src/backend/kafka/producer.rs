//! strait's idempotent producer identity on the cluster: one producer id for the whole
//! replica, and a sequence number per partition. The broker drops a batch it already has
//! (a retry after a lost answer) and refuses one out of order, so no retry writes twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::cluster::Cluster;
use super::errors::{self, Failure};

const INIT_PRODUCER_ID_V: i16 = 4;

/// Codes that say the broker refused a batch for its producer identity, so the batch was
/// not written and may go again under a new identity.
pub const IDENTITY_REFUSED: [i16; 4] = [
    45, // OUT_OF_ORDER_SEQUENCE_NUMBER
    47, // INVALID_PRODUCER_EPOCH
    59, // UNKNOWN_PRODUCER_ID (expired after producer.id.expiration.ms idle)
    90, // PRODUCER_FENCED
];

/// A partition's sequence; holding its lock keeps one batch in flight.
pub type SequenceSlot = Arc<tokio::sync::Mutex<Sequence>>;

#[derive(Debug, Clone, Copy)]
struct Identity {
    id: i64,
    epoch: i16,
    generation: u64,
}

pub struct Producer {
    cluster: Arc<Cluster>,
    identity: tokio::sync::Mutex<Option<Identity>>,
    /// Bumped when the identity must be replaced.
    generation: AtomicU64,
    slots: parking_lot::Mutex<HashMap<(String, u32), SequenceSlot>>,
}

/// A partition's next sequence number under one identity generation.
#[derive(Debug, Default)]
pub struct Sequence {
    pub next: i32,
    generation: u64,
}

impl Sequence {
    /// The identity to stamp the next batch with; the sequence restarts under a new one.
    pub async fn stamp(&mut self, producer: &Producer) -> Result<(i64, i16), Failure> {
        let id = producer.identity().await?;
        if self.generation != id.generation {
            self.generation = id.generation;
            self.next = 0;
        }
        Ok((id.id, id.epoch))
    }

    /// After an acknowledged batch of `records`; sequences wrap at i32::MAX as Kafka's do.
    pub fn advance(&mut self, records: i32) {
        self.next = ((self.next as i64 + records.max(0) as i64) % (i32::MAX as i64 + 1)) as i32;
    }

    /// Gives up the current identity (see `Producer::reset`).
    pub fn reset(&mut self, producer: &Producer) {
        producer.reset(self.generation);
    }
}

impl Producer {
    pub fn new(cluster: Arc<Cluster>) -> Producer {
        Producer {
            cluster,
            identity: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(1),
            slots: parking_lot::Mutex::default(),
        }
    }

    /// The sequence slot of a partition; holding its lock keeps one batch in flight.
    pub fn slot(&self, topic: &str, partition: u32) -> SequenceSlot {
        self.slots
            .lock()
            .entry((topic.to_string(), partition))
            .or_default()
            .clone()
    }

    pub fn forget_topic(&self, topic: &str) {
        self.slots.lock().retain(|(t, _), _| t != topic);
    }

    /// Replaces the identity used by `generation` (once, however many partitions ask).
    pub fn reset(&self, generation: u64) {
        let _ = self.generation.compare_exchange(
            generation,
            generation + 1,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    async fn identity(&self) -> Result<Identity, Failure> {
        let mut current = self.identity.lock().await;
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(id) = *current {
            if id.generation == generation {
                return Ok(id);
            }
        }
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let mut backoff = Duration::from_millis(50);
        let mut tries = 0;
        let response = loop {
            let addr = self.cluster.any_broker();
            let result = match addr {
                Some(addr) => self
                    .cluster
                    .request::<_, InitProducerIdResponse>(
                        &addr,
                        ApiKey::InitProducerId,
                        INIT_PRODUCER_ID_V,
                        &request,
                    )
                    .await
                    .map_err(Failure::Retriable)
                    .and_then(|r| errors::check(r.error_code, "InitProducerId", "-").map(|()| r)),
                None => Err(Failure::Retriable("no Kafka broker known".into())),
            };
            match result {
                Ok(r) => break r,
                Err(Failure::Retriable(_)) if tries < 8 => {
                    tries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    let _ = self.cluster.refresh().await;
                }
                Err(f) => return Err(f),
            }
        };
        let id = Identity {
            id: response.producer_id.0,
            epoch: response.producer_epoch,
            generation,
        };
        tracing::info!(
            producer_id = id.id,
            epoch = id.epoch,
            "idempotent producer identity"
        );
        *current = Some(id);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_like_kafkas() {
        let mut s = Sequence {
            next: i32::MAX - 1,
            generation: 1,
        };
        s.advance(3);
        assert_eq!(s.next, 1);
        s.advance(5);
        assert_eq!(s.next, 6);
    }
}
