//! Kinesis shard ids as strait numbers them: `shardId-<partition, 12 digits>`, the form
//! Kinesis itself gives shards, so partition N of a stream is shard N on either side.

/// The shard id of a partition.
pub fn shard_id(partition: u32) -> String {
    format!("shardId-{partition:012}")
}

/// Parses `shardId-000000000003` (or any `prefix-<number>`, as the KPL does) to a partition.
pub fn parse_shard_id(id: &str) -> Option<u32> {
    let (_, n) = id.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}
