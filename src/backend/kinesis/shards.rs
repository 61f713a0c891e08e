//! A Kinesis stream's shards as Kafka partitions: partition N is `shardId-<N padded>`, every
//! shard the stream ever had (closed ones stay readable to their end), each with the hash
//! range a PutRecords entry must name to land in it. Sequence numbers are compared as the
//! decimal integers they are.

use super::client::{CallError, KinesisClient};
use crate::protocol::kinesis::shapes::{ListShardsInput, ListShardsOutput, Shard};
use crate::protocol::kinesis::shard_ids::parse_shard_id;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub partition: u32,
    pub shard_id: String,
    pub start_hash: u128,
    pub end_hash: u128,
    /// Closed by a reshard: no record is written to it any more.
    pub closed: bool,
    /// The partitions of the shards it was made from.
    pub parents: Vec<u32>,
}

/// Partitions from ListShards's answer, indexed by partition number. Shards whose id is not
/// `shardId-<number>` cannot be named as partitions and are left out.
/// Every shard of `stream`, open and closed, following ListShards's pages.
pub async fn list_shards(client: &KinesisClient, stream: &str) -> Result<Vec<Shard>, CallError> {
    let mut all = Vec::new();
    let mut input = ListShardsInput {
        stream_name: Some(stream.to_string()),
        ..Default::default()
    };
    loop {
        let out: ListShardsOutput = client.call("ListShards", &input).await?;
        all.extend(out.shards);
        match out.next_token {
            // With a token, the stream is not named again.
            Some(token) => {
                input = ListShardsInput {
                    next_token: Some(token),
                    ..Default::default()
                }
            }
            None => return Ok(all),
        }
    }
}

pub fn partitions_of(shards: &[Shard]) -> Vec<ShardInfo> {
    let mut out: Vec<ShardInfo> = shards
        .iter()
        .filter_map(|s| {
            Some(ShardInfo {
                partition: parse_shard_id(&s.shard_id)?,
                shard_id: s.shard_id.clone(),
                start_hash: s.hash_key_range.starting_hash_key.parse().ok()?,
                end_hash: s.hash_key_range.ending_hash_key.parse().ok()?,
                closed: s.sequence_number_range.ending_sequence_number.is_some(),
                parents: [&s.parent_shard_id, &s.adjacent_parent_shard_id]
                    .into_iter()
                    .flatten()
                    .filter_map(|p| parse_shard_id(p))
                    .collect(),
            })
        })
        .collect();
    out.sort_by_key(|s| s.partition);
    out
}

/// How many partitions the shards make: one past the highest shard number, so a gap (a shard
/// id Kinesis skipped) is a partition with no shard behind it.
pub fn partition_count(shards: &[ShardInfo]) -> u32 {
    shards.last().map_or(0, |s| s.partition + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kinesis::shapes::{HashKeyRange, SequenceNumberRange};

    fn shard(id: &str, start: &str, end: &str, closed: bool) -> Shard {
        Shard {
            shard_id: id.into(),
            parent_shard_id: (id == "shardId-000000000002").then(|| "shardId-000000000000".into()),
            hash_key_range: HashKeyRange {
                starting_hash_key: start.into(),
                ending_hash_key: end.into(),
            },
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: "1".into(),
                ending_sequence_number: closed.then(|| "9".into()),
            },
            ..Default::default()
        }
    }

    #[test]
    fn shards_become_partitions_by_number() {
        let max = u128::MAX.to_string();
        let half = (u128::MAX / 2).to_string();
        let above = (u128::MAX / 2 + 1).to_string();
        let got = partitions_of(&[
            shard("shardId-000000000002", &above, &max, false),
            shard("shardId-000000000000", "0", &max, true),
            shard("shardId-000000000001", "0", &half, false),
            shard("not-a-shard", "0", &max, false),
        ]);
        assert_eq!(
            got.iter().map(|s| s.partition).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(got[0].closed && !got[1].closed);
        assert_eq!(
            (got[0].parents.clone(), got[2].parents.clone()),
            (vec![], vec![0])
        );
        assert_eq!(got[2].start_hash, u128::MAX / 2 + 1);
        assert_eq!(partition_count(&got), 3);
    }
}
