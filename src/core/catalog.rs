//! The stream catalog: what a stream is (attributes, shards, hash ranges, lineage) and how a
//! key finds its shard. Streams are topics and shards are partitions; a shard id is a view of
//! its partition number. Persistence goes through the `MetaStore`, one document per stream.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::hashing::{md5_hash_key, murmur2_partition};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Creating,
    Deleting,
    Active,
    Updating,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Deleting => "DELETING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

impl StreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

pub use crate::config::KeyHash;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub partition: u32,
    /// Every shard this one replaced, in Kinesis order (ParentShardId first).
    pub parents: Vec<u32>,
    pub start_hash: u128,
    pub end_hash: u128,
    /// The partition's creation time: the prefix of its sequence numbers.
    pub created_secs: u64,
    /// The first offset at creation (for StartingSequenceNumber).
    pub start_offset: i64,
    /// Set once the shard is closed by a reshard: one past its last offset.
    pub end_offset: Option<i64>,
    /// When a reshard closed it.
    #[serde(default)]
    pub closed_ms: Option<i64>,
    /// On a catalog replicas share (the Kafka backend): where readers of the closed shard
    /// stop. Other replicas may append to it until they hear of the split, so this is the
    /// high watermark read once they have had time to (`late_writes.rs`); until it is set,
    /// readers treat the shard as open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_end: Option<i64>,
    /// Exact creation time; `created_secs` is its whole seconds.
    pub created_ms: i64,
    /// A shard mirrored from a Kinesis source and cut over (`migrate/`): records below this
    /// offset are the source's and keep its sequence numbers (their `kinesis.seq` header);
    /// from it on strait numbers them, with a `created_secs` that sorts above them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_end: Option<i64>,
}

impl Shard {
    /// A shard opened at `created_ms` over a partition new to the log.
    pub fn open(
        partition: u32,
        parents: Vec<u32>,
        (start_hash, end_hash): (u128, u128),
        created_ms: i64,
    ) -> Shard {
        Shard {
            partition,
            parents,
            start_hash,
            end_hash,
            created_secs: (created_ms / 1000) as u64,
            start_offset: 0,
            end_offset: None,
            closed_ms: None,
            sealed_end: None,
            created_ms,
            origin_end: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.end_offset.is_none()
    }
    /// Whether the shard accepted writes at `ms`.
    pub fn open_at(&self, ms: i64) -> bool {
        self.created_ms <= ms && self.closed_ms.is_none_or(|c| c > ms)
    }
    pub fn contains(&self, hash: u128) -> bool {
        self.start_hash <= hash && hash <= self.end_hash
    }
}

pub use crate::protocol::kinesis::shard_ids::{parse_shard_id, shard_id};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stream {
    pub name: String,
    pub created_ms: i64,
    pub status: StreamStatus,
    pub mode: StreamMode,
    pub retention_hours: u32,
    pub tags: BTreeMap<String, String>,
    /// The KMS key id while server-side encryption is on.
    pub encryption_key: Option<String>,
    pub shard_level_metrics: BTreeSet<String>,
    pub max_record_kib: u32,
    pub key_hash: KeyHash,
    pub shards: Vec<Shard>,
    /// Enhanced fan-out registrations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<super::fanout::Consumer>,
    /// When a stream mirrored from a Kinesis source was cut over to this backend (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_over_ms: Option<i64>,
}

impl Stream {
    pub fn shard(&self, partition: u32) -> Option<&Shard> {
        self.shards.iter().find(|s| s.partition == partition)
    }

    pub fn open_shards(&self) -> impl Iterator<Item = &Shard> {
        self.shards.iter().filter(|s| s.is_open())
    }

    pub fn open_shard_count(&self) -> usize {
        self.open_shards().count()
    }

    /// Shards created from `partition` by a reshard.
    pub fn children(&self, partition: u32) -> impl Iterator<Item = &Shard> {
        self.shards
            .iter()
            .filter(move |s| s.parents.contains(&partition))
    }

    /// The open shard whose advertised range holds `hash`.
    pub fn shard_for_hash(&self, hash: u128) -> Option<&Shard> {
        self.open_shards().find(|s| s.contains(hash))
    }

    /// The partition a Kinesis write goes to. `explicit_hash` always picks by range; otherwise
    /// the stream's key-hash mode decides. `auto_pick` spreads `auto` streams.
    pub fn route(
        &self,
        partition_key: &str,
        explicit_hash: Option<u128>,
        auto_pick: usize,
    ) -> Option<&Shard> {
        if let Some(h) = explicit_hash {
            return self.shard_for_hash(h);
        }
        match self.key_hash {
            KeyHash::KinesisMd5 => self.shard_for_hash(md5_hash_key(partition_key.as_bytes())),
            KeyHash::KafkaMurmur2 => {
                let open: Vec<&Shard> = self.open_shards().collect();
                let i = murmur2_partition(partition_key.as_bytes(), open.len() as u32);
                open.get(i as usize).copied()
            }
            KeyHash::Auto => {
                let open: Vec<&Shard> = self.open_shards().collect();
                open.get(auto_pick % open.len().max(1)).copied()
            }
        }
    }

    pub fn next_partition(&self) -> u32 {
        self.shards
            .iter()
            .map(|s| s.partition + 1)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hashing::{uniform_ranges, MAX_HASH_KEY};

    fn stream(n: u32, key_hash: KeyHash) -> Stream {
        Stream {
            name: "s".into(),
            created_ms: 0,
            status: StreamStatus::Active,
            mode: StreamMode::Provisioned,
            retention_hours: 24,
            tags: Default::default(),
            encryption_key: None,
            shard_level_metrics: Default::default(),
            max_record_kib: 1024,
            key_hash,
            consumers: Vec::new(),
            cut_over_ms: None,
            shards: uniform_ranges(0, MAX_HASH_KEY, n)
                .into_iter()
                .enumerate()
                .map(|(i, (s, e))| Shard {
                    partition: i as u32,
                    parents: vec![],
                    start_hash: s,
                    end_hash: e,
                    created_secs: 1,
                    start_offset: 0,
                    end_offset: None,
                    closed_ms: None,
                    sealed_end: None,
                    created_ms: 1000,
                    origin_end: None,
                })
                .collect(),
        }
    }

    #[test]
    fn shard_ids() {
        assert_eq!(shard_id(3), "shardId-000000000003");
        assert_eq!(parse_shard_id("shardId-000000000003"), Some(3));
        assert_eq!(parse_shard_id("shardId-"), None);
        assert_eq!(parse_shard_id("nope"), None);
    }

    #[test]
    fn md5_routing_follows_ranges() {
        let s = stream(4, KeyHash::KinesisMd5);
        for k in ["a", "b", "partition-7", "ü"] {
            let h = md5_hash_key(k.as_bytes());
            let shard = s.route(k, None, 0).unwrap();
            assert!(shard.contains(h));
        }
        // ExplicitHashKey wins over the key.
        assert_eq!(s.route("a", Some(MAX_HASH_KEY), 0).unwrap().partition, 3);
        assert_eq!(s.route("a", Some(0), 0).unwrap().partition, 0);
    }

    #[test]
    fn murmur2_routing_matches_java_default_partitioner() {
        let s = stream(4, KeyHash::KafkaMurmur2);
        for k in ["21", "foobar", "key-1"] {
            let expected = murmur2_partition(k.as_bytes(), 4);
            assert_eq!(s.route(k, None, 0).unwrap().partition, expected);
        }
    }
}
