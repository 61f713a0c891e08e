//! A mirrored stream's shards follow its Kinesis source's (`migrate/`): when the source is
//! resharded, its children are added here with the same shard ids, hash ranges and parents,
//! and a parent closes here once its last record is copied. The mirror is the stream's only
//! writer until the cutover (`write_holds.rs`), so a parent's end is its high watermark and
//! no replica's late write can land behind it: it is sealed as it closes.

use std::sync::Arc;

use super::catalog::Shard;
use super::error::{CoreError, CoreResult};
use super::now_ms;
use super::service::Core;
use crate::backend::NewTopic;
use crate::protocol::kinesis::shard_ids::shard_id;

/// A source shard as the mirror lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceShard {
    pub partition: u32,
    pub parents: Vec<u32>,
    pub start_hash: u128,
    pub end_hash: u128,
}

impl Core {
    /// Adds the source's shards this stream does not have yet. Source shard ids are dense
    /// (Kinesis numbers a stream's shards 0, 1, 2, … in the order it makes them), so each new
    /// one is the next partition here; a gap is refused rather than papered over.
    pub async fn add_mirrored_shards(
        &self,
        stream: &str,
        shards: &[SourceShard],
    ) -> CoreResult<()> {
        let mut new: Vec<&SourceShard> = {
            let s = self.stream(stream)?;
            shards
                .iter()
                .filter(|w| s.shard(w.partition).is_none())
                .collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        new.sort_by_key(|w| w.partition);
        let _admin = self.catalog_change().await?;
        let entry = self.entry(stream)?;
        let _gate = entry.gate.write().await;
        let current = self.latest(stream, &entry).await?;
        let mut next = (*current).clone();
        let first = next.next_partition();
        let created_ms = now_ms();
        for w in new {
            if next.shard(w.partition).is_some() {
                continue;
            }
            if w.partition != next.next_partition() {
                return Err(CoreError::InvalidArgument(format!(
                    "the source's {} follows {} here: its shard ids skip some, which strait cannot mirror",
                    shard_id(w.partition),
                    shard_id(next.next_partition().saturating_sub(1))
                )));
            }
            next.shards.push(Shard::open(
                w.partition,
                w.parents.clone(),
                (w.start_hash, w.end_hash),
                created_ms,
            ));
        }
        let end = next.next_partition();
        if end == first {
            return Ok(());
        }
        self.log
            .create_partitions(stream, first..end, NewTopic::default())
            .await?;
        self.persist(&next).await?;
        *entry.state.write() = Arc::new(next);
        tracing::info!(stream, partitions = ?(first..end), "mirrored the source's new shards");
        Ok(())
    }

    /// Closes a mirrored shard whose source shard ended and whose every record is copied:
    /// readers stop at its high watermark, and its children are read after it.
    pub async fn close_mirrored_shard(&self, stream: &str, partition: u32) -> CoreResult<()> {
        let open = self
            .stream(stream)?
            .shard(partition)
            .is_some_and(Shard::is_open);
        if !open {
            return Ok(());
        }
        let _admin = self.catalog_change().await?;
        let entry = self.entry(stream)?;
        let _gate = entry.gate.write().await;
        let current = self.latest(stream, &entry).await?;
        let mut next = (*current).clone();
        // The end is persisted, so it must not count records an OS crash could take back.
        self.log.flush(stream, partition).await?;
        let end = self.log.offsets(stream, partition).await?.high_watermark;
        let Some(shard) = next.shards.iter_mut().find(|s| s.partition == partition) else {
            return Err(CoreError::Internal(format!(
                "{stream} has no partition {partition}"
            )));
        };
        if !shard.is_open() {
            return Ok(());
        }
        shard.end_offset = Some(end);
        shard.closed_ms = Some(now_ms());
        shard.sealed_end = Some(end);
        self.persist(&next).await?;
        *entry.state.write() = Arc::new(next);
        self.appended.notify_waiters();
        tracing::info!(
            stream,
            partition,
            end,
            "mirrored shard closed as its source's did"
        );
        Ok(())
    }
}
