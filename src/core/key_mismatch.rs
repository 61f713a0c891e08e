//! Kafka writes whose key a Kinesis reader would look for elsewhere: on a stream that routes
//! keys by MD5 hash ranges (created through Kinesis), a Kafka producer with its default
//! partitioner puts a key on murmur2's partition, not on the shard whose range holds the key's
//! MD5. Allowed unless `streams.key_check: reject`, but never silent: each such record counts in
//! `strait_kafka_key_partition_mismatch_total{stream}`, and the first from each producer on
//! each stream is logged.

use std::collections::HashSet;

/// Warned (stream, producer id) pairs kept; beyond this only the metric counts, so a flood of
/// new producer ids cannot grow memory.
const MAX_WARNED: usize = 10_000;

#[derive(Default)]
pub struct KeyMismatches {
    warned: parking_lot::Mutex<HashSet<(String, i64)>>,
}

impl KeyMismatches {
    /// `count` records of one batch from `producer_id` (-1: not idempotent) went to
    /// `partition` of `stream` although their keys hash elsewhere; `key` is one of them.
    pub fn record(&self, stream: &str, producer_id: i64, partition: u32, count: u64, key: &[u8]) {
        let m = crate::observe::metrics();
        m.key_partition_mismatches
            .with_label_values(&[m.stream_label(stream)])
            .inc_by(count);
        let first = {
            let mut warned = self.warned.lock();
            warned.len() < MAX_WARNED && warned.insert((stream.to_string(), producer_id))
        };
        if first {
            tracing::warn!(
                %stream,
                partition,
                producer_id,
                key = %String::from_utf8_lossy(key),
                "a Kafka producer wrote keys to partitions other than the shards whose MD5 hash \
                 ranges hold them (its partitioner is not strait's Md5RangePartitioner), so Kinesis \
                 readers find a key's records on two shards; counted in \
                 strait_kafka_key_partition_mismatch_total. Use the Md5RangePartitioner, or create \
                 the stream with the tag strait:key-hash=kafka-murmur2 (logged once per producer \
                 and stream)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warned_pairs_stay_bounded() {
        let k = KeyMismatches::default();
        for id in 0..(MAX_WARNED as i64 + 50) {
            k.record("key-mismatch-bound", id, 0, 1, b"k");
        }
        assert_eq!(k.warned.lock().len(), MAX_WARNED);
    }
}
