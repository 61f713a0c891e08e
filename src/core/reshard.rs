//! Resharding for `kinesis-md5` streams (reference §4e): parents close, children are appended
//! as new partitions. Closing happens under the stream's write gate, so no write lands in a
//! parent after its end offset is fixed.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::catalog::{shard_id, KeyHash, Shard, Stream, StreamMode};
use super::error::{CoreError, CoreResult};
use super::hashing::uniform_ranges;
use super::now_ms;
use super::service::Core;
use crate::backend::{NewTopic, PartitionLineage};

/// A change of shards: which open shards close, and the ranges (with parents) that open.
struct Plan {
    close: Vec<u32>,
    open: Vec<(u128, u128, Vec<u32>)>,
}

impl Core {
    fn reshardable(&self, s: &Stream, op: &str) -> CoreResult<()> {
        if s.key_hash != KeyHash::KinesisMd5 {
            return Err(CoreError::Validation(format!(
                "{op} is not supported for stream {} because its key hash mode is {}; add partitions through Kafka CreatePartitions instead.",
                s.name,
                s.key_hash.as_str()
            )));
        }
        if op != "UpdateShardCount" && s.mode == StreamMode::OnDemand {
            return Err(CoreError::Validation(format!(
                "{op} is not supported for stream {} in ON_DEMAND mode.",
                s.name
            )));
        }
        Ok(())
    }

    fn open_shard<'a>(&self, s: &'a Stream, partition: u32) -> CoreResult<&'a Shard> {
        let shard = self.shard_of(s, partition)?;
        if !shard.is_open() {
            return Err(CoreError::InvalidArgument(format!(
                "Shard {} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                shard_id(partition),
                s.name,
                self.account_id
            )));
        }
        Ok(shard)
    }

    pub async fn split_shard(
        &self,
        stream: &str,
        partition: u32,
        new_start: u128,
    ) -> CoreResult<()> {
        self.reshard(stream, |s| {
            self.reshardable(s, "SplitShard")?;
            let parent = self.open_shard(s, partition)?;
            // AWS: greater than one plus the starting key, and less than the ending key.
            if new_start <= parent.start_hash.saturating_add(1) || new_start >= parent.end_hash {
                return Err(CoreError::InvalidArgument(format!(
                    "NewStartingHashKey {new_start} used in SplitShard() on shard {} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                    shard_id(partition), s.name, self.account_id, parent.start_hash, parent.end_hash
                )));
            }
            Ok(Plan {
                close: vec![partition],
                open: vec![
                    (parent.start_hash, new_start - 1, vec![partition]),
                    (new_start, parent.end_hash, vec![partition]),
                ],
            })
        })
        .await
    }

    pub async fn merge_shards(&self, stream: &str, first: u32, adjacent: u32) -> CoreResult<()> {
        self.reshard(stream, |s| {
            self.reshardable(s, "MergeShards")?;
            let a = self.open_shard(s, first)?;
            let b = self.open_shard(s, adjacent)?;
            let touching = a.end_hash.checked_add(1) == Some(b.start_hash)
                || b.end_hash.checked_add(1) == Some(a.start_hash);
            if first == adjacent || !touching {
                return Err(CoreError::InvalidArgument(format!(
                    "Shards {} and {} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                    shard_id(first), shard_id(adjacent), s.name, self.account_id
                )));
            }
            Ok(Plan {
                close: vec![first, adjacent],
                open: vec![(
                    a.start_hash.min(b.start_hash),
                    a.end_hash.max(b.end_hash),
                    vec![first, adjacent],
                )],
            })
        })
        .await
    }

    /// UNIFORM_SCALING in one step, the way Kinesis builds it from splits and merges: scaling
    /// up splits the widest open shards at their midpoints, scaling down merges adjacent
    /// pairs. Every child therefore has one or two parents, which is all the Kinesis shard
    /// shape (ParentShardId, AdjacentParentShardId) and KCL's lineage can express. Returns
    /// the previous count.
    pub async fn update_shard_count(&self, stream: &str, target: u32) -> CoreResult<u32> {
        let mut previous = 0;
        self.reshard(stream, |s| {
            self.reshardable(s, "UpdateShardCount")?;
            let mut open: Vec<&Shard> = s.open_shards().collect();
            open.sort_by_key(|s| s.start_hash);
            let current = open.len() as u32;
            previous = current;
            if target > current * 2 || target * 2 < current {
                return Err(CoreError::LimitExceeded(format!(
                    "UpdateShardCount to {target} for stream {} is outside the allowed range: the target must be at most double and at least half of the current open shard count {current}.",
                    s.name
                )));
            }
            let mut plan = Plan { close: vec![], open: vec![] };
            if target > current {
                let mut widest = open.clone();
                widest.sort_by_key(|s| (std::cmp::Reverse(s.end_hash - s.start_hash), s.partition));
                let split: Vec<u32> = widest
                    .iter()
                    .take((target - current) as usize)
                    .map(|s| s.partition)
                    .collect();
                for sh in open.iter().filter(|s| split.contains(&s.partition)) {
                    if sh.end_hash - sh.start_hash < 3 {
                        return Err(CoreError::LimitExceeded(format!(
                            "{} of stream {} is too narrow to split.",
                            shard_id(sh.partition),
                            s.name
                        )));
                    }
                    let mid = sh.start_hash + (sh.end_hash - sh.start_hash) / 2 + 1;
                    plan.close.push(sh.partition);
                    plan.open.push((sh.start_hash, mid - 1, vec![sh.partition]));
                    plan.open.push((mid, sh.end_hash, vec![sh.partition]));
                }
            } else if target < current {
                for pair in open.chunks(2).take((current - target) as usize) {
                    let (a, b) = (pair[0], pair[1]);
                    plan.close.extend([a.partition, b.partition]);
                    plan.open.push((a.start_hash, b.end_hash, vec![a.partition, b.partition]));
                }
            }
            Ok(plan)
        })
        .await?;
        Ok(previous)
    }

    /// Why Kafka's CreatePartitions must not grow `stream`, if it must not (the Kafka
    /// backend's pass-through asks before forwarding one).
    pub fn partitions_fixed(&self, stream: &str) -> Option<String> {
        partitions_fixed(&*self.stream(stream).ok()?)
    }

    /// Grows a `kafka-murmur2` (or `auto`) stream to `total` partitions, as Kafka's
    /// CreatePartitions does; the nominal hash ranges are re-tiled uniformly over all open
    /// shards. `kinesis-md5` streams reshard through the Kinesis API instead (reference §4e).
    pub async fn add_partitions(&self, stream: &str, total: u32) -> CoreResult<()> {
        // Refusals this replica can see are given without the fence (the catalog refresh
        // calls this for topics grown outside strait, and a fence taken for nothing fails
        // another replica's change).
        {
            let s = self.stream(stream)?;
            if let Some(why) = partitions_fixed(&s) {
                return Err(CoreError::Policy(why));
            }
            let limits = self.limits();
            if total > s.next_partition()
                && limits.open_shard_count + (total - s.next_partition()) > limits.shard_limit
            {
                return Err(CoreError::LimitExceeded(format!(
                    "Adding {} partitions would exceed the shard limit of {}.",
                    total - s.next_partition(),
                    limits.shard_limit
                )));
            }
        }
        let _admin = self.catalog_change().await?;
        let entry = self.entry(stream)?;
        let _gate = entry.gate.write().await;
        let current = self.latest(stream, &entry).await?;
        if let Some(why) = partitions_fixed(&current) {
            return Err(CoreError::Policy(why));
        }
        let have = current.next_partition();
        if total <= have {
            return Err(CoreError::InvalidArgument(format!(
                "Topic {stream} already has {have} partitions; the new count {total} must be larger."
            )));
        }
        let limits = self.limits();
        if limits.open_shard_count + (total - have) > limits.shard_limit {
            return Err(CoreError::LimitExceeded(format!(
                "Adding {} partitions would exceed the shard limit of {}.",
                total - have,
                limits.shard_limit
            )));
        }
        let created_ms = now_ms();
        let mut next = (*current).clone();
        for partition in have..total {
            // Hash ranges are re-tiled over every open shard below.
            next.shards
                .push(Shard::open(partition, Vec::new(), (0, 0), created_ms));
        }
        let open: Vec<u32> = next.open_shards().map(|s| s.partition).collect();
        let ranges = uniform_ranges(0, u128::MAX, open.len() as u32);
        for (p, (start, end)) in open.iter().zip(ranges) {
            if let Some(s) = next.shards.iter_mut().find(|s| s.partition == *p) {
                s.start_hash = start;
                s.end_hash = end;
            }
        }
        self.log
            .create_partitions(stream, have..total, NewTopic::default())
            .await?;
        self.persist(&next).await?;
        *entry.state.write() = Arc::new(next);
        Ok(())
    }

    /// Applies a plan: closes parents at their current end, opens children, persists.
    async fn reshard(
        &self,
        stream: &str,
        plan: impl FnOnce(&Stream) -> CoreResult<Plan>,
    ) -> CoreResult<()> {
        let _admin = self.catalog_change().await?;
        let entry = self.entry(stream)?;
        let _gate = entry.gate.write().await;
        let current = self.latest(stream, &entry).await?;
        let plan = plan(&current)?;
        if plan.open.is_empty() {
            return Ok(());
        }
        let added = plan.open.len() as u32 - plan.close.len().min(plan.open.len()) as u32;
        let limits = self.limits();
        if limits.open_shard_count + added > limits.shard_limit {
            return Err(CoreError::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {}. Current shard count for the account: {}. Limit: {}.",
                self.account_id, limits.open_shard_count, limits.shard_limit
            )));
        }
        let created_ms = now_ms();
        let mut next = (*current).clone();
        for p in &plan.close {
            // The end offset is persisted, so it must not count records an OS crash could
            // still take back (fsync: interval or never).
            self.log.flush(stream, *p).await?;
            let end = self.log.offsets(stream, *p).await?.high_watermark;
            if let Some(shard) = next.shards.iter_mut().find(|s| s.partition == *p) {
                shard.end_offset = Some(end);
                shard.closed_ms = Some(created_ms);
            }
        }
        let first = next.next_partition();
        for (i, (start, end, parents)) in plan.open.into_iter().enumerate() {
            next.shards.push(Shard::open(
                first + i as u32,
                parents,
                (start, end),
                created_ms,
            ));
        }
        self.log
            .create_partitions(stream, first..next.next_partition(), NewTopic::default())
            .await?;
        self.persist(&next).await?;
        *entry.state.write() = Arc::new(next);
        self.seal_later(stream, &plan.close);
        // Subscribers at the end of a parent learn it closed.
        self.appended.notify_waiters();
        Ok(())
    }
}

/// `kinesis-md5` streams route keys by hash ranges, which new partitions would not have;
/// they reshard through the Kinesis API instead (reference §4e).
fn partitions_fixed(s: &Stream) -> Option<String> {
    (s.key_hash == KeyHash::KinesisMd5).then(|| {
        format!(
            "Stream {} routes keys by MD5 hash ranges; add shards with SplitShard or UpdateShardCount instead of CreatePartitions.",
            s.name
        )
    })
}

/// A partition a consumer group must not be handed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBack {
    pub partition: u32,
    /// Its first offset: where the group starts it once it is handed out.
    pub start: i64,
    /// The group has committed nothing on the parents it waits for (it may never read
    /// them: a consumer that started at the latest offset commits nothing there).
    pub parents_untouched: bool,
}

impl Core {
    /// Partitions of `stream` a consumer group must not be handed yet: children of a reshard
    /// whose parents the group has not read to their end, as KCL holds a child shard back
    /// until its parents are done, so records of one key keep their order across splits and
    /// merges. `committed(p)` is the group's committed offset on partition p. A parent the
    /// stream no longer lists (gone with retention) or that holds nothing counts as done; one
    /// whose end is not known for certain yet does not. Asks the backend nothing slow.
    pub async fn withheld_partitions(
        &self,
        stream: &str,
        committed: &(dyn Fn(u32) -> Option<i64> + Sync),
    ) -> CoreResult<Vec<HeldBack>> {
        let lineage = self.lineage(stream).await?;
        let by_partition: BTreeMap<u32, &PartitionLineage> =
            lineage.iter().map(|l| (l.partition, l)).collect();
        let done = |parent: &u32| match by_partition.get(parent) {
            None => true,
            Some(p) => p
                .end
                .is_some_and(|end| p.start >= end || committed(*parent).is_some_and(|c| c >= end)),
        };
        Ok(lineage
            .iter()
            .filter(|l| !l.parents.iter().all(done))
            .map(|l| HeldBack {
                partition: l.partition,
                start: l.start,
                parents_untouched: l
                    .parents
                    .iter()
                    .filter(|p| !done(p))
                    .all(|p| committed(*p).is_none()),
            })
            .collect())
    }

    /// Reads the closed partitions of `stream` whose end is not known yet up to their end
    /// (as far as `Log::offsets` goes), so held-back children can be released. For a
    /// background task: on a Kinesis backend this reads the shard.
    pub async fn settle_closed_partitions(&self, stream: &str) -> CoreResult<()> {
        for l in self.lineage(stream).await? {
            if l.closed && l.end.is_none() {
                self.log.offsets(stream, l.partition).await?;
            }
        }
        Ok(())
    }

    /// The stream's reshard history: the backend's own (a Kinesis upstream), or the catalog's.
    async fn lineage(&self, stream: &str) -> CoreResult<Vec<PartitionLineage>> {
        if let Some(l) = self.log.lineage(stream).await? {
            return Ok(l);
        }
        let s = self.stream(stream)?;
        let mut out = Vec::with_capacity(s.shards.len());
        for shard in &s.shards {
            // Only closed parents matter, and asking the log is cheap where the catalog
            // keeps the lineage (the embedded log, a Kafka cluster).
            let start = if shard.is_open() {
                0
            } else {
                self.log.offsets(stream, shard.partition).await?.log_start
            };
            out.push(PartitionLineage {
                partition: shard.partition,
                closed: !shard.is_open(),
                parents: shard.parents.clone(),
                start,
                end: shard.end_offset,
            });
        }
        Ok(out)
    }
}
