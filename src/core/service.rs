//! The `Core`: the catalog in memory, its persistence through the `MetaStore`, and the stream
//! administration operations (create, delete, describe, attributes). Reads and writes of
//! records are in `data.rs`, resharding in `reshard.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use parking_lot::RwLock;
use rand::RngCore;

use super::catalog::{KeyHash, Shard, Stream, StreamMode, StreamStatus};
use super::error::{CoreError, CoreResult};
use super::hashing::{uniform_ranges, MAX_HASH_KEY};
use super::iterator::IteratorSigner;
use super::now_ms;
use crate::backend::{Log, MetaStore, NewTopic, Refusal, StorageError};
use crate::config::StreamsConfig;

/// The catalog's documents in the `MetaStore`: one per stream, under this prefix.
pub(super) const STREAM_PREFIX: &str = "streams/";
const ITERATOR_KEY: &str = "secrets/iterator-key";
pub const MIN_RETENTION_HOURS: u32 = 24;
pub const MAX_RETENTION_HOURS: u32 = 8760;
/// Shards of a new on-demand stream, as AWS creates them.
const ON_DEMAND_SHARDS: u32 = 4;

/// A stream's current attributes, and the gate that keeps reshards and writes apart.
pub(super) struct StreamEntry {
    pub(super) state: RwLock<Arc<Stream>>,
    /// Writes hold it shared; a reshard holds it exclusively while it closes shards.
    pub(super) gate: tokio::sync::RwLock<()>,
}

impl StreamEntry {
    pub(super) fn new(stream: Stream) -> Arc<StreamEntry> {
        Arc::new(StreamEntry {
            state: RwLock::new(Arc::new(stream)),
            gate: tokio::sync::RwLock::new(()),
        })
    }

    pub(super) fn snapshot(&self) -> Arc<Stream> {
        self.state.read().clone()
    }
}

pub struct Core {
    pub(super) account_id: String,
    pub(super) streams_config: StreamsConfig,
    pub(super) log: Arc<dyn Log>,
    pub(super) meta: Arc<dyn MetaStore>,
    pub(super) signer: IteratorSigner,
    pub(super) catalog: RwLock<BTreeMap<String, Arc<StreamEntry>>>,
    /// Serialises catalog changes, so each is read-modify-persist without races.
    pub(super) admin: tokio::sync::Mutex<()>,
    pub(super) spread: AtomicUsize,
    /// Woken after every append, for long-polling readers.
    pub(super) appended: tokio::sync::Notify,
    pub(super) producers: super::producers::Producers,
    pub(super) key_mismatches: super::key_mismatch::KeyMismatches,
    pub(super) subscriptions: super::fanout::Subscriptions,
    pub(super) foreign_topics: ForeignTopics,
    /// Adopt mode: streams whose topic is not listed, since when.
    pub(super) missing_topics:
        parking_lot::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Adopt mode: streams deleted here lately, not to be adopted back from a topic list
    /// taken before the delete (or from a broker that has not heard of it yet).
    pub(super) recently_deleted:
        parking_lot::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Adopt mode: when a request for an unknown stream last refreshed the catalog.
    pub(super) discovered: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// The `MetaStore::change_count` the last catalog refresh took in.
    pub(super) refreshed: std::sync::atomic::AtomicU64,
    /// Closed parents to seal, and when (`late_writes.rs`).
    pub(super) seals:
        parking_lot::Mutex<std::collections::HashMap<(String, u32), std::time::Instant>>,
    /// Streams that take no writes from clients here, and why (`write_holds.rs`).
    pub(super) write_holds: parking_lot::RwLock<std::collections::HashMap<String, String>>,
}

/// What the catalog does with topics in the log that no stream document names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignTopics {
    /// The embedded log: a crash between deleting a stream's document and its log leaves
    /// an orphan, which must not come back as the data of a new stream of the same name.
    Delete,
    /// A Kafka cluster: topics made by Kafka clients or before strait are streams too,
    /// with the Kafka key hash.
    Adopt,
}

#[derive(Debug, Clone)]
pub struct CreateStreamRequest {
    pub name: String,
    pub shard_count: Option<u32>,
    pub mode: StreamMode,
    pub max_record_kib: Option<u32>,
    pub tags: BTreeMap<String, String>,
    pub key_hash: KeyHash,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub shard_limit: u32,
    pub open_shard_count: u32,
    pub on_demand_stream_count: u32,
    pub on_demand_stream_count_limit: u32,
}

impl Core {
    /// Loads the catalog and the iterator key, and makes sure every shard has its partition.
    pub async fn open(
        account_id: String,
        streams_config: StreamsConfig,
        log: Arc<dyn Log>,
        meta: Arc<dyn MetaStore>,
        foreign_topics: ForeignTopics,
    ) -> CoreResult<Core> {
        let key = iterator_key(meta.as_ref()).await?;
        let core = Core {
            account_id,
            streams_config,
            log,
            meta,
            signer: IteratorSigner::new(key),
            catalog: RwLock::new(BTreeMap::new()),
            admin: tokio::sync::Mutex::new(()),
            spread: AtomicUsize::new(0),
            appended: tokio::sync::Notify::new(),
            producers: super::producers::Producers::default(),
            key_mismatches: Default::default(),
            subscriptions: super::fanout::Subscriptions::default(),
            foreign_topics,
            missing_topics: Default::default(),
            discovered: Default::default(),
            refreshed: Default::default(),
            seals: Default::default(),
            recently_deleted: Default::default(),
            write_holds: Default::default(),
        };
        for stream in core.stored_streams().await? {
            if foreign_topics == ForeignTopics::Delete {
                let top = stream.next_partition();
                let retention = Some(retention_ms(stream.retention_hours));
                core.log
                    .create_partitions(&stream.name, 0..top, NewTopic::retention(retention))
                    .await?;
                core.log.set_retention(&stream.name, retention).await?;
            }
            core.catalog
                .write()
                .insert(stream.name.clone(), StreamEntry::new(stream));
        }
        core.reconcile_topics(None).await?;
        tracing::info!(streams = core.catalog.read().len(), "catalog loaded");
        Ok(core)
    }

    /// Every stream document in the `MetaStore`.
    pub(super) async fn stored_streams(&self) -> CoreResult<Vec<Stream>> {
        let mut out = Vec::new();
        for (key, doc) in self.meta.list(STREAM_PREFIX).await? {
            out.push(stream_doc(&key, &doc)?);
        }
        Ok(out)
    }

    pub(super) fn refreshed_changes(&self) -> u64 {
        self.refreshed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    pub fn streams_config(&self) -> &StreamsConfig {
        &self.streams_config
    }

    pub fn signer(&self) -> &IteratorSigner {
        &self.signer
    }

    pub(super) fn not_found(&self, stream: &str) -> CoreError {
        CoreError::StreamNotFound {
            stream: stream.to_string(),
            account: self.account_id.clone(),
        }
    }

    pub(super) fn entry(&self, stream: &str) -> CoreResult<Arc<StreamEntry>> {
        self.catalog
            .read()
            .get(stream)
            .cloned()
            .ok_or_else(|| self.not_found(stream))
    }

    /// The stream's current attributes.
    pub fn stream(&self, name: &str) -> CoreResult<Arc<Stream>> {
        Ok(self.entry(name)?.snapshot())
    }

    /// Every stream, in name order.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.catalog.read().values().map(|e| e.snapshot()).collect()
    }

    pub(super) async fn persist(&self, stream: &Stream) -> CoreResult<()> {
        let doc = serde_json::to_vec(stream).expect("catalog entries serialise");
        self.meta
            .put(&format!("{STREAM_PREFIX}{}", stream.name), &doc)
            .await?;
        Ok(())
    }

    /// Starts a catalog change: one at a time on this replica and, on a shared catalog, the
    /// fence that keeps every other replica from writing until this change is written (a
    /// change another replica is making fails instead, so nobody's change is overwritten).
    pub(super) async fn catalog_change(&self) -> CoreResult<tokio::sync::MutexGuard<'_, ()>> {
        let admin = self.admin.lock().await;
        // A no-op where this replica is the catalog's only writer.
        self.meta.fence().await?;
        Ok(admin)
    }

    pub async fn create_stream(&self, req: CreateStreamRequest) -> CoreResult<()> {
        let _admin = self.catalog_change().await?;
        // Another replica's stream of this name may not have reached this one yet.
        let shared = self.shared_tail();
        if shared {
            self.meta.sync().await?;
        }
        if self.catalog.read().contains_key(&req.name)
            || (shared && self.stored_stream(&req.name).await?.is_some())
        {
            return Err(CoreError::StreamExists {
                stream: req.name,
                account: self.account_id.clone(),
            });
        }
        let shards = match req.mode {
            StreamMode::OnDemand => req.shard_count.unwrap_or(ON_DEMAND_SHARDS),
            StreamMode::Provisioned => req
                .shard_count
                .unwrap_or(self.streams_config.default_shard_count),
        };
        let open = self.limits().open_shard_count;
        if open + shards > self.streams_config.shard_limit {
            return Err(CoreError::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {}. Current shard count for the account: {open}. Limit: {}. Number of additional shards that would have resulted from this request: {shards}.",
                self.account_id, self.streams_config.shard_limit
            )));
        }
        let mut stream = new_stream(&req, shards, now_ms());
        let new = NewTopic {
            retention_ms: Some(retention_ms(stream.retention_hours)),
            on_demand: req.mode == StreamMode::OnDemand,
        };
        if self.foreign_topics == ForeignTopics::Adopt {
            // The document first: another replica seeing the topic without one would adopt
            // it as a kafka-murmur2 stream of its own.
            self.persist(&stream).await?;
            let created = self
                .log
                .create_partitions(&stream.name, 0..shards, new)
                .await;
            if let Ok(()) = created {
                // The backend's own creation time, which a replica adopting the topic takes
                // too: the same Kafka topic id on every replica.
                if let Ok(Some(at)) = self.log.created_ms(&stream.name).await {
                    if at != stream.created_ms {
                        stream.created_ms = at;
                        self.persist(&stream).await?;
                    }
                }
            }
            if let Err(e) = created {
                let _ = self
                    .meta
                    .delete(&format!("{STREAM_PREFIX}{}", req.name))
                    .await;
                // Made outside strait and not adopted yet (the next catalog refresh will).
                if let StorageError::Refused {
                    class: Refusal::Exists,
                    ..
                } = e
                {
                    return Err(CoreError::StreamExists {
                        stream: req.name,
                        account: self.account_id.clone(),
                    });
                }
                return Err(e.into());
            }
        } else {
            self.log
                .create_partitions(&stream.name, 0..shards, new)
                .await?;
            self.persist(&stream).await?;
        }
        self.catalog
            .write()
            .insert(stream.name.clone(), StreamEntry::new(stream));
        tracing::info!(stream = %req.name, shards, "stream created");
        Ok(())
    }

    /// Deletes a stream with its data and consumers. `keep_if_consumers` refuses when
    /// consumers are registered (Kinesis DeleteStream without EnforceConsumerDeletion).
    pub async fn delete_stream(&self, name: &str, keep_if_consumers: bool) -> CoreResult<()> {
        self.discover(name).await;
        let _admin = self.catalog_change().await?;
        let entry = self.entry(name)?;
        let now = now_ms();
        if keep_if_consumers
            && entry
                .snapshot()
                .consumers
                .iter()
                .any(|c| c.status(now).is_some())
        {
            return Err(CoreError::HasConsumers {
                stream: name.to_string(),
                account: self.account_id.clone(),
            });
        }
        self.revoke_stream_leases(name);
        let _gate = entry.gate.write().await;
        if self.foreign_topics == ForeignTopics::Adopt {
            // Data first: a replica that saw the topic without a document would adopt it
            // back as a new stream.
            self.log.delete_topic(name).await?;
        }
        self.meta.delete(&format!("{STREAM_PREFIX}{name}")).await?;
        self.catalog.write().remove(name);
        self.recently_deleted
            .lock()
            .insert(name.to_string(), std::time::Instant::now());
        // Again: a subscription may have started while the gate was awaited.
        self.revoke_stream_leases(name);
        if self.foreign_topics == ForeignTopics::Delete {
            self.log.delete_topic(name).await?;
        }
        self.producers.forget_stream(name);
        tracing::info!(stream = %name, "stream deleted");
        Ok(())
    }

    /// Applies a change to a stream's attributes and persists it. `change` validates first
    /// and leaves the stream untouched when it fails; it answers in its caller's error type,
    /// so a front end refuses a change with its own protocol's error.
    pub async fn update_stream<T, E: From<CoreError>>(
        &self,
        name: &str,
        change: impl FnOnce(&mut Stream) -> Result<T, E>,
    ) -> Result<T, E> {
        let _admin = self.catalog_change().await?;
        let entry = self.entry(name)?;
        let mut next = (*self.latest(name, &entry).await?).clone();
        // On a cluster or on Kinesis others may have changed the retention: the change starts
        // from theirs, so only a change that sets another retention calls set_retention (and
        // setting strait's old value back is not skipped).
        if self.foreign_topics == ForeignTopics::Adopt {
            if let Some(ms) = self.log.retention_ms(name).await.map_err(CoreError::from)? {
                next.retention_hours = retention_hours(ms);
            }
        }
        let before = next.retention_hours;
        let out = change(&mut next)?;
        if next.retention_hours != before {
            self.log
                .set_retention(name, Some(retention_ms(next.retention_hours)))
                .await
                .map_err(CoreError::from)?;
        }
        self.persist(&next).await?;
        *entry.state.write() = Arc::new(next);
        Ok(out)
    }

    /// Flushes every partition to disk (shutdown; with `fsync: always` there is nothing
    /// left to flush, with `interval` or `never` this is the last chance).
    pub async fn flush_all(&self) {
        for s in self.streams() {
            for shard in &s.shards {
                if let Err(e) = self.log.flush(&s.name, shard.partition).await {
                    tracing::error!(stream = %s.name, partition = shard.partition, error = %e, "flush at shutdown failed");
                }
            }
        }
        self.meta.flush().await;
    }

    pub fn limits(&self) -> Limits {
        let streams = self.streams();
        Limits {
            shard_limit: self.streams_config.shard_limit,
            open_shard_count: streams.iter().map(|s| s.open_shard_count() as u32).sum(),
            on_demand_stream_count: streams
                .iter()
                .filter(|s| s.mode == StreamMode::OnDemand)
                .count() as u32,
            on_demand_stream_count_limit: self.streams_config.on_demand_stream_count_limit,
        }
    }

    /// Offsets of one shard's partition (for sequence-number ranges and iterator starts).
    pub async fn partition_offsets(
        &self,
        stream: &str,
        partition: u32,
    ) -> CoreResult<crate::backend::PartitionOffsets> {
        Ok(self.log.offsets(stream, partition).await?)
    }
}

/// The key iterators are signed with, made by the first replica to start. Replicas
/// starting together race to make it; under the fence exactly one write wins and the
/// others read the winner's.
async fn iterator_key(meta: &dyn MetaStore) -> CoreResult<Vec<u8>> {
    async fn stored(meta: &dyn MetaStore) -> CoreResult<Option<Vec<u8>>> {
        meta.sync().await?;
        Ok(meta.get(ITERATOR_KEY).await?.filter(|k| k.len() >= 32))
    }
    if let Some(k) = stored(meta).await? {
        return Ok(k);
    }
    // Only the first start takes the fence (taking it fails a change another replica is
    // making), and looks once more under it.
    let mut tries = 0;
    loop {
        meta.fence().await?;
        if let Some(k) = stored(meta).await? {
            return Ok(k);
        }
        let mut k = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        match meta.put(ITERATOR_KEY, &k).await {
            // Read back: a store without a fence keeps the last of racing writes.
            Ok(()) => return Ok(meta.get(ITERATOR_KEY).await?.unwrap_or(k)),
            Err(StorageError::Fenced(_)) if tries < 5 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A stored stream document, read.
pub(super) fn stream_doc(key: &str, doc: &[u8]) -> CoreResult<Stream> {
    serde_json::from_slice(doc)
        .map_err(|e| CoreError::Internal(format!("corrupt catalog entry {key}: {e}")))
}

/// A new stream's document: `shards` open shards tiling the hash space.
pub(super) fn new_stream(req: &CreateStreamRequest, shards: u32, created_ms: i64) -> Stream {
    Stream {
        name: req.name.clone(),
        created_ms,
        status: StreamStatus::Active,
        mode: req.mode,
        retention_hours: MIN_RETENTION_HOURS,
        tags: req.tags.clone(),
        encryption_key: None,
        shard_level_metrics: BTreeSet::new(),
        max_record_kib: req.max_record_kib.unwrap_or(1024),
        key_hash: req.key_hash,
        consumers: Vec::new(),
        cut_over_ms: None,
        shards: uniform_ranges(0, MAX_HASH_KEY, shards)
            .into_iter()
            .enumerate()
            .map(|(i, range)| Shard::open(i as u32, Vec::new(), range, created_ms))
            .collect(),
    }
}

pub fn retention_ms(hours: u32) -> i64 {
    hours as i64 * 3_600_000
}

/// A backend's retention (−1: forever) in the whole hours a stream reports.
pub fn retention_hours(ms: i64) -> u32 {
    if ms < 0 {
        MAX_RETENTION_HOURS
    } else {
        (ms / 3_600_000).max(1) as u32
    }
}
