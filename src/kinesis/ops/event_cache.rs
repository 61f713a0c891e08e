//! Encoded SubscribeToShardEvents shared between the consumers of one shard. The records of
//! a partition below its high watermark never change, so an event built for one consumer
//! starting at offset X is byte-for-byte what the next consumer starting at X would build:
//! it is reused instead of decoding, re-encoding and base64-ing the same records again.
//! Bounded by bytes, oldest first out.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::protocol::kinesis::codec::Protocol;

/// What identifies an event: the stream incarnation, partition, start offset and encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub stream: String,
    pub stream_created_ms: i64,
    pub partition: u32,
    pub offset: i64,
    pub protocol: Protocol,
    /// Records carry EncryptionType, which follows the stream's encryption setting.
    pub encrypted: bool,
}

#[derive(Debug, Clone)]
pub struct CachedEvent {
    /// The encoded SubscribeToShardEvent up to its last member's value, MillisBehindLatest,
    /// which depends on when the event is sent and is appended per send.
    pub payload_prefix: Bytes,
    /// Where the next event starts.
    pub next_offset: i64,
    /// Arrival time of the event's last record, for MillisBehindLatest.
    pub last_arrival_ms: i64,
    /// Records and their key + data bytes, for the read counters.
    pub records: u64,
    pub bytes: u64,
}

pub struct EventCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<EventKey, CachedEvent>,
    order: VecDeque<EventKey>,
    bytes: usize,
}

impl EventCache {
    pub fn new(budget: usize) -> Self {
        EventCache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn get(&self, key: &EventKey) -> Option<CachedEvent> {
        self.inner.lock().entries.get(key).cloned()
    }

    pub fn insert(&self, key: EventKey, event: CachedEvent) {
        let size = event.payload_prefix.len();
        if size > self.budget / 4 {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.entries.contains_key(&key) {
            return;
        }
        while inner.bytes + size > self.budget {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(e) = inner.entries.remove(&old) {
                inner.bytes -= e.payload_prefix.len();
            }
        }
        inner.bytes += size;
        inner.order.push_back(key.clone());
        inner.entries.insert(key, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(offset: i64) -> EventKey {
        EventKey {
            stream: "s".into(),
            stream_created_ms: 1,
            partition: 0,
            offset,
            protocol: Protocol::Json,
            encrypted: false,
        }
    }

    #[test]
    fn evicts_oldest_within_the_budget() {
        let cache = EventCache::new(100);
        for i in 0..10 {
            cache.insert(
                key(i),
                CachedEvent {
                    payload_prefix: Bytes::from(vec![0u8; 20]),
                    next_offset: i + 1,
                    last_arrival_ms: 0,
                    records: 0,
                    bytes: 0,
                },
            );
        }
        assert!(cache.get(&key(0)).is_none());
        assert_eq!(cache.get(&key(9)).unwrap().next_offset, 10);
        assert!(cache.inner.lock().bytes <= 100);
        // Too big for the cache: not kept.
        cache.insert(
            key(50),
            CachedEvent {
                payload_prefix: Bytes::from(vec![0u8; 60]),
                next_offset: 51,
                last_arrival_ms: 0,
                records: 0,
                bytes: 0,
            },
        );
        assert!(cache.get(&key(50)).is_none());
    }
}
