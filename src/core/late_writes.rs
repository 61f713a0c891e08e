//! Writes to a parent shard by replicas that have not yet heard of its split (the Kafka
//! backend, where replicas share the catalog through a topic they tail).
//!
//! A closed parent is *sealed* `LATE_WRITES` after its split was written: its high
//! watermark then becomes where Kinesis readers stop (`Shard::sealed_end`); until then they
//! read it as open. A writer that routed to the parent finds out whether its records landed
//! before the seal:
//! - *Fast:* if its catalog was current at some moment T before it routed, and the append
//!   was acknowledged before T + `FRESH`, the split (written after T) is sealed no sooner
//!   than T + `LATE_WRITES`, after the records landed. Nothing to ask.
//! - *Otherwise* it reads the catalog to its end and looks at the parent: still open, or
//!   sealed above its records, they are read; sealed below them, they would never be read,
//!   so they are written again to the open shard covering their hash key (a *late write*),
//!   and that is what the client is told. The records left in the parent past its seal are
//!   seen by Kafka consumers of the topic, not by Kinesis readers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::catalog::Stream;
use super::error::{CoreError, CoreResult};
use super::service::{stream_doc, Core, STREAM_PREFIX};

/// How long after a split is written its parents are sealed.
pub(super) const LATE_WRITES: Duration = Duration::from_secs(5);
/// A replica that did not split the stream seals its parents only this much later, so the
/// one that did goes first (and a dead one is covered).
const SEAL_BY_OTHERS_AFTER: Duration = Duration::from_secs(5);
/// How long a catalog read stays good for the fast path; below `LATE_WRITES` with room
/// for an append's own time on the wire.
const FRESH: Duration = Duration::from_secs(3);
/// How long a writer waits for a closed parent to be sealed before it gives up.
const AWAIT_SEAL: Duration = Duration::from_secs(20);

/// What the catalog a write was routed on says about late writes.
#[derive(Debug, Clone, Copy)]
pub(super) enum RoutedAt {
    /// No replica appends behind this one's catalog: never late.
    Alone,
    /// Current until then: an append acknowledged before it needs no check.
    CurrentUntil(Instant),
    /// Maybe behind: check.
    MaybeStale,
}

impl RoutedAt {
    /// Whether appends acknowledged now are read for sure, without asking.
    pub(super) fn settled(self) -> bool {
        match self {
            RoutedAt::Alone => true,
            RoutedAt::CurrentUntil(until) => Instant::now() < until,
            RoutedAt::MaybeStale => false,
        }
    }
}

impl Core {
    /// Taken before the stream snapshot a write is routed on.
    pub(super) fn routed_at(&self) -> RoutedAt {
        let Some(as_of) = self.meta.current_as_of() else {
            return RoutedAt::Alone;
        };
        if self.meta.change_count() == self.refreshed_changes() {
            RoutedAt::CurrentUntil(as_of + FRESH)
        } else {
            RoutedAt::MaybeStale
        }
    }

    /// Whether other replicas append behind this one's catalog (a store it tails).
    pub(super) fn shared_tail(&self) -> bool {
        self.meta.current_as_of().is_some()
    }

    /// Of the partitions written (with the last offset each got), those whose records
    /// landed past their shard's seal and so must be written again.
    pub(super) async fn late_partitions(
        &self,
        stream: &str,
        routed: RoutedAt,
        written: &BTreeMap<u32, i64>,
    ) -> CoreResult<Vec<u32>> {
        if written.is_empty() || routed.settled() {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + AWAIT_SEAL;
        let mut pending: BTreeMap<u32, i64> = written.clone();
        let mut late = Vec::new();
        loop {
            self.meta.sync().await?;
            // Deleted meanwhile: nobody reads it any more.
            let Some(s) = self.stored_stream(stream).await? else {
                return Ok(late);
            };
            pending.retain(|&p, &mut last| match s.shard(p) {
                Some(shard) if !shard.is_open() => match shard.sealed_end {
                    Some(end) => {
                        if last >= end {
                            late.push(p);
                        }
                        false
                    }
                    None => true,
                },
                _ => false,
            });
            if pending.is_empty() {
                if !late.is_empty() {
                    let m = crate::observe::metrics();
                    m.late_writes
                        .with_label_values(&[m.stream_label(stream)])
                        .inc_by(late.len() as u64);
                    tracing::info!(stream, partitions = ?late, "writes landed in a sealed parent; writing them again to its children");
                }
                return Ok(late);
            }
            if Instant::now() >= deadline {
                return Err(CoreError::Internal(format!(
                    "shards {:?} of {stream} were closed by another replica and not sealed within {} s, so whether these records are readable is unknown",
                    pending.keys().collect::<Vec<_>>(),
                    AWAIT_SEAL.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// One stream's document as stored (not this replica's copy of it).
    pub(super) async fn stored_stream(&self, name: &str) -> CoreResult<Option<Stream>> {
        match self.meta.get(&format!("{STREAM_PREFIX}{name}")).await? {
            Some(doc) => stream_doc(name, &doc).map(Some),
            None => Ok(None),
        }
    }

    /// Notes parents this replica just closed, to seal after `LATE_WRITES`.
    pub(super) fn seal_later(&self, stream: &str, partitions: &[u32]) {
        if !self.shared_tail() {
            return;
        }
        let due = Instant::now() + LATE_WRITES;
        let mut seals = self.seals.lock();
        for p in partitions {
            seals.insert((stream.to_string(), *p), due);
        }
    }

    /// Seals every closed, unsealed parent whose time has come: this replica's own splits
    /// `LATE_WRITES` after they were written, others' once this replica has seen them
    /// unsealed for `LATE_WRITES + SEAL_BY_OTHERS_AFTER`.
    pub(super) async fn seal_due(&self) -> CoreResult<()> {
        let now = Instant::now();
        let mut due_streams = Vec::new();
        {
            let catalog = self.catalog.read();
            let mut seals = self.seals.lock();
            seals.retain(|(name, p), _| {
                catalog
                    .get(name)
                    .and_then(|e| e.snapshot().shard(*p).map(|s| s.sealed_end.is_none()))
                    .unwrap_or(false)
            });
            for (name, entry) in catalog.iter() {
                let s = entry.snapshot();
                for shard in s
                    .shards
                    .iter()
                    .filter(|s| !s.is_open() && s.sealed_end.is_none())
                {
                    let due = *seals
                        .entry((name.clone(), shard.partition))
                        .or_insert(now + LATE_WRITES + SEAL_BY_OTHERS_AFTER);
                    if due <= now && due_streams.last() != Some(name) {
                        due_streams.push(name.clone());
                    }
                }
            }
        }
        for name in due_streams {
            if let Err(e) = self.seal(&name, now).await {
                tracing::debug!(stream = %name, error = %e, "sealing closed parents failed; trying again");
            }
        }
        Ok(())
    }

    async fn seal(&self, name: &str, now: Instant) -> CoreResult<()> {
        let _admin = self.catalog_change().await?;
        let Ok(entry) = self.entry(name) else {
            return Ok(());
        };
        let mut next = (*self.latest(name, &entry).await?).clone();
        let due: Vec<u32> = {
            let seals = self.seals.lock();
            next.shards
                .iter()
                .filter(|s| !s.is_open() && s.sealed_end.is_none())
                .filter(|s| {
                    seals
                        .get(&(name.to_string(), s.partition))
                        .is_some_and(|d| *d <= now)
                })
                .map(|s| s.partition)
                .collect()
        };
        if due.is_empty() {
            return Ok(());
        }
        for p in &due {
            let high = self.log.append_end(name, *p).await?;
            if let Some(shard) = next.shards.iter_mut().find(|s| s.partition == *p) {
                shard.sealed_end = Some(high.max(shard.end_offset.unwrap_or(0)));
            }
        }
        self.persist(&next).await?;
        *entry.state.write() = Arc::new(next);
        tracing::info!(stream = name, partitions = ?due, "closed parents sealed");
        // Readers waiting at a parent's end learn it ended.
        self.appended.notify_waiters();
        Ok(())
    }

    /// Seals parents in the background (every half second), on a shared catalog.
    pub(super) fn spawn_sealer(self: &Arc<Self>, mut closing: tokio::sync::watch::Receiver<bool>) {
        if !self.shared_tail() {
            return;
        }
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = closing.changed() => return,
                }
                if let Err(e) = core.seal_due().await {
                    tracing::debug!(error = %e, "sealing closed parents failed; trying again");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;
    use crate::backend::memory::{MemoryLog, MemoryMetaStore};
    use crate::backend::{Log, MetaStore, NewTopic, StorageResult, SyncMetaStore};
    use crate::config::StreamsConfig;
    use crate::core::{ForeignTopics, PutInput};

    /// The in-memory store, as a store other replicas write behind: its follower last
    /// caught up `behind` ago.
    struct Tailed {
        docs: MemoryMetaStore,
        behind: Duration,
    }

    #[async_trait]
    impl MetaStore for Tailed {
        async fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
            SyncMetaStore::get(&self.docs, key)
        }
        async fn put(&self, key: &str, value: &[u8]) -> StorageResult<()> {
            SyncMetaStore::put(&self.docs, key, value)
        }
        async fn delete(&self, key: &str) -> StorageResult<()> {
            SyncMetaStore::delete(&self.docs, key)
        }
        async fn list(&self, prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>> {
            SyncMetaStore::list(&self.docs, prefix)
        }
        fn current_as_of(&self) -> Option<Instant> {
            Some(Instant::now() - self.behind)
        }
    }

    async fn replica(behind: Duration) -> (Core, Arc<MemoryLog>, Arc<Tailed>) {
        let log = Arc::new(MemoryLog::new());
        let meta = Arc::new(Tailed {
            docs: MemoryMetaStore::new(),
            behind,
        });
        let core = Core::open(
            "000000000000".into(),
            StreamsConfig::default(),
            log.clone(),
            meta.clone(),
            ForeignTopics::Adopt,
        )
        .await
        .unwrap();
        crate::core::tests::create(&core, "s", 1).await;
        (core, log, meta)
    }

    fn put(data: &str) -> PutInput {
        PutInput {
            partition_key: data.into(),
            data: Bytes::from(data.to_string()),
            explicit_hash_key: None,
            user_records: None,
        }
    }

    /// Another replica's split of shard 0, sealed at the partition's end now, written to
    /// the store behind this replica's back (its catalog copy still has shard 0 open).
    async fn split_elsewhere(core: &Core, log: &MemoryLog, meta: &Tailed) {
        let mut s = (*core.stream("s").unwrap()).clone();
        let end = log.offsets("s", 0).await.unwrap().high_watermark;
        let parent = &mut s.shards[0];
        parent.end_offset = Some(end);
        parent.closed_ms = Some(crate::clock::now_ms());
        parent.sealed_end = Some(end);
        let half = u128::MAX / 2;
        let now = crate::clock::now_ms();
        s.shards.push(crate::core::catalog::Shard::open(
            1,
            vec![0],
            (0, half),
            now,
        ));
        s.shards.push(crate::core::catalog::Shard::open(
            2,
            vec![0],
            (half + 1, u128::MAX),
            now,
        ));
        log.create_partitions("s", 1..3, NewTopic::default())
            .await
            .unwrap();
        let doc = serde_json::to_vec(&s).unwrap();
        meta.put(&format!("{STREAM_PREFIX}s"), &doc).await.unwrap();
    }

    #[tokio::test]
    async fn a_write_past_the_seal_by_a_replica_behind_goes_again_to_a_child() {
        let (core, log, meta) = replica(Duration::from_secs(10)).await;
        core.put_records("s", vec![put("before")]).await.unwrap();
        split_elsewhere(&core, &log, &meta).await;
        let report = core.put_records("s", vec![put("late")]).await.unwrap();
        let outcome = report.outcomes[0].as_ref().unwrap();
        assert_ne!(outcome.partition, 0, "written again to a child");
        // The copy in the parent is past the seal: readers of the parent never see it.
        let stored = core.stored_stream("s").await.unwrap().unwrap();
        let span = core.read_span(&stored, 0, 0, 100, 1 << 20).await.unwrap();
        let data: Vec<_> = span.records.iter().map(|r| r.data.clone()).collect();
        assert_eq!(data, [Bytes::from("before")]);
        assert!(span.shard_ended);
        assert_eq!(log.offsets("s", 0).await.unwrap().high_watermark, 2);
        let child = core
            .read_span(&stored, outcome.partition, 0, 100, 1 << 20)
            .await
            .unwrap();
        assert_eq!(child.records[0].data, Bytes::from("late"));
        assert_eq!(child.records[0].sequence_number, outcome.sequence_number);
    }

    #[tokio::test]
    async fn a_replica_current_within_three_seconds_asks_nothing() {
        // Its catalog was current a moment ago, so a split it has not seen was written after
        // that and is sealed only after this write landed: no check, no second copy.
        let (core, log, meta) = replica(Duration::ZERO).await;
        split_elsewhere(&core, &log, &meta).await;
        let report = core.put_records("s", vec![put("x")]).await.unwrap();
        assert_eq!(report.outcomes[0].as_ref().unwrap().partition, 0);
        assert_eq!(log.offsets("s", 1).await.unwrap().high_watermark, 0);
        assert_eq!(log.offsets("s", 2).await.unwrap().high_watermark, 0);
    }
}
