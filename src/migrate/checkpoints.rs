//! KCL checkpoints ⇄ Kafka consumer-group offsets on a migrated stream (`strait migrate
//! checkpoints`): the CLI reads a KCL application's lease table and hands its checkpoints to a
//! replica, which resolves each to the offset after the record it names (`core/
//! kcl_checkpoints.rs`) and commits those as a group's offsets; in reverse the replica reads the
//! group's offsets as the checkpoints the CLI writes into the lease table. The replica does the
//! resolving because it reads the mirrored records; the CLI does the DynamoDB calls, so the
//! replicas need no access to the lease table.

use serde::{Deserialize, Serialize};

use super::Migration;
use crate::core::kcl_checkpoints::KclCheckpoint;
use crate::protocol::kinesis::shard_ids::{parse_shard_id, shard_id};

/// One shard's position, both ways: its KCL checkpoint and the group offset that matches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPosition {
    pub shard_id: String,
    pub checkpoint: String,
    #[serde(default)]
    pub sub_sequence_number: u64,
    /// The group's offset to read next; `None` for a checkpoint that names no record
    /// (LATEST, AT_TIMESTAMP), which leaves the group's offset as it was.
    #[serde(default)]
    pub offset: Option<i64>,
    /// The shard's parents and hash range (answered by the replica), for a lease made anew.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_shard_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key_range: Option<(String, String)>,
}

/// The document `POST/GET /migration/STREAM/checkpoints?group=G` takes and answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupPositions {
    #[serde(default)]
    pub group: String,
    pub shards: Vec<ShardPosition>,
}

impl Migration {
    fn migrated(&self, stream: &str) -> Result<(), String> {
        if self.streams.iter().any(|m| m.name == stream) {
            Ok(())
        } else {
            Err(format!("{stream} is not among migration.streams"))
        }
    }

    /// Commits, as `group`'s offsets on `stream`, the offsets after the records the
    /// checkpoints in `given` name: the group then starts where the KCL application stopped.
    pub async fn adopt_checkpoints(
        &self,
        stream: &str,
        group: &str,
        given: Vec<ShardPosition>,
    ) -> Result<GroupPositions, String> {
        self.migrated(stream)?;
        let mut shards = Vec::with_capacity(given.len());
        for mut p in given {
            let partition = parse_shard_id(&p.shard_id)
                .ok_or_else(|| format!("{:?} is not a shard id", p.shard_id))?;
            if self
                .core
                .stream(stream)
                .is_ok_and(|s| s.shard(partition).is_none())
            {
                return Err(format!(
                    "{} is not mirrored yet (a shard the source added lately): wait for the stream to be caught-up, then run this again",
                    p.shard_id
                ));
            }
            let checkpoint = KclCheckpoint {
                checkpoint: p.checkpoint.clone(),
                sub: p.sub_sequence_number,
            };
            p.offset = self
                .core
                .offset_after_checkpoint(stream, partition, &checkpoint)
                .await
                .map_err(|e| format!("{}: {e}", p.shard_id))?;
            shards.push(p);
        }
        let commit: Vec<(u32, i64)> = shards
            .iter()
            .filter_map(|p| Some((parse_shard_id(&p.shard_id)?, p.offset?)))
            .collect();
        if !commit.is_empty() {
            self.offsets.commit(group, stream, &commit).await?;
        }
        tracing::info!(%stream, %group, partitions = commit.len(), "group offsets set from KCL checkpoints");
        Ok(GroupPositions {
            group: group.to_string(),
            shards,
        })
    }

    /// `group`'s committed offsets on `stream` as KCL checkpoints: the record before each.
    pub async fn group_checkpoints(
        &self,
        stream: &str,
        group: &str,
    ) -> Result<GroupPositions, String> {
        self.migrated(stream)?;
        let mut committed = self.offsets.committed(group, stream).await?;
        committed.sort_unstable();
        let layout = self.core.stream(stream).map_err(|e| e.to_string())?;
        let mut shards = Vec::with_capacity(committed.len());
        for (partition, offset) in committed {
            let c = self
                .core
                .checkpoint_before(stream, partition, offset)
                .await
                .map_err(|e| format!("{}: {e}", shard_id(partition)))?;
            let shard = layout.shard(partition);
            shards.push(ShardPosition {
                shard_id: shard_id(partition),
                checkpoint: c.checkpoint,
                sub_sequence_number: c.sub,
                offset: Some(offset),
                parent_shard_ids: shard
                    .map(|s| s.parents.iter().map(|p| shard_id(*p)).collect())
                    .unwrap_or_default(),
                hash_key_range: shard.map(|s| (s.start_hash.to_string(), s.end_hash.to_string())),
            });
        }
        Ok(GroupPositions {
            group: group.to_string(),
            shards,
        })
    }
}
