//! The catalog as several strait replicas share it: stream documents written by one replica
//! reach the others through the `MetaStore`'s change ticks, and topics that no document
//! names are adopted as `kafka-murmur2` streams (or removed, on the embedded log).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::catalog::{Stream, StreamMode};
use super::error::CoreResult;
use super::now_ms;
use super::service::{
    new_stream, Core, CreateStreamRequest, ForeignTopics, StreamEntry, STREAM_PREFIX,
};

/// The shortest time between two refreshes for unknown stream names.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);
/// How long a stream deleted here is kept from being adopted back.
const KEEP_DELETED: Duration = Duration::from_secs(60);
/// How long a stream's topic must be missing before the stream is forgotten.
const MISSING_FOR: Duration = Duration::from_secs(10);

impl Core {
    /// Brings the in-memory catalog up to the stored documents, then to the log's topics.
    pub async fn refresh_catalog(&self) -> CoreResult<()> {
        self.refresh_catalog_since(None).await
    }

    /// `refresh_catalog`, with the log's topics listed no earlier than `since`.
    async fn refresh_catalog_since(&self, since: Option<Instant>) -> CoreResult<()> {
        {
            let _admin = self.admin.lock().await;
            let count = self.meta.change_count();
            let stored: BTreeMap<String, _> = self
                .stored_streams()
                .await?
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect();
            let gone: Vec<String> = {
                let mut catalog = self.catalog.write();
                for (name, stream) in &stored {
                    match catalog.get(name) {
                        Some(entry) => *entry.state.write() = Arc::new(stream.clone()),
                        None => {
                            catalog.insert(name.clone(), StreamEntry::new(stream.clone()));
                        }
                    }
                }
                let gone = catalog
                    .keys()
                    .filter(|n| !stored.contains_key(*n))
                    .cloned()
                    .collect();
                catalog.retain(|n, _| stored.contains_key(n));
                gone
            };
            for name in gone {
                tracing::info!(stream = %name, "stream deleted by another replica");
                self.revoke_stream_leases(&name);
                self.producers.forget_stream(&name);
            }
            self.refreshed
                .store(count, std::sync::atomic::Ordering::SeqCst);
        }
        self.reconcile_topics(since).await
    }

    /// Topics without a stream document: removed or adopted (see `ForeignTopics`). An
    /// adopted topic that gained partitions outside strait gains shards too.
    pub(super) async fn reconcile_topics(&self, since: Option<Instant>) -> CoreResult<()> {
        let topics = match since {
            Some(since) => self.log.topics_since(since).await?,
            None => self.log.topics().await?,
        };
        if self.foreign_topics == ForeignTopics::Adopt {
            self.forget_deleted_topics(&topics).await?;
        }
        let mut unknown = Vec::new();
        for (topic, partitions) in topics {
            let known = self.catalog.read().get(&topic).map(|e| e.snapshot());
            match (known, self.foreign_topics) {
                (None, ForeignTopics::Delete) => {
                    tracing::warn!(%topic, "removing log data of a deleted stream");
                    self.log.delete_topic(&topic).await?;
                }
                (None, ForeignTopics::Adopt) if partitions > 0 => unknown.push(topic),
                (Some(s), ForeignTopics::Adopt)
                    if partitions > s.next_partition()
                        && s.key_hash != super::catalog::KeyHash::KinesisMd5 =>
                {
                    self.add_partitions(&topic, partitions).await?;
                }
                _ => {}
            }
        }
        if !unknown.is_empty() {
            self.adopt_topics(unknown).await?;
        }
        Ok(())
    }

    /// Streams whose topic was deleted outside strait (by a Kafka client) go too, once the
    /// topic has been missing for `MISSING_FOR`: a broker with stale metadata may not list
    /// a topic another replica has just created.
    async fn forget_deleted_topics(&self, topics: &[(String, u32)]) -> CoreResult<()> {
        let present: BTreeSet<&str> = topics.iter().map(|(n, _)| n.as_str()).collect();
        let now = Instant::now();
        let names: Vec<String> = self.catalog.read().keys().cloned().collect();
        let due: Vec<String> = {
            let mut missing = self.missing_topics.lock();
            missing.retain(|n, _| !present.contains(n.as_str()) && names.contains(n));
            names
                .into_iter()
                .filter(|n| !present.contains(n.as_str()))
                .filter(|n| {
                    now.duration_since(*missing.entry(n.clone()).or_insert(now)) >= MISSING_FOR
                })
                .collect()
        };
        for name in due {
            tracing::info!(stream = %name, "topic deleted outside strait; forgetting its stream");
            let _admin = self.catalog_change().await?;
            self.meta.delete(&format!("{STREAM_PREFIX}{name}")).await?;
            self.catalog.write().remove(&name);
            self.missing_topics.lock().remove(&name);
            self.revoke_stream_leases(&name);
            self.producers.forget_stream(&name);
        }
        Ok(())
    }

    /// The stream as last written by any replica, for a change about to be made: a change
    /// made from a stale copy would undo another replica's (a reshard, say). Called under
    /// the fence (`catalog_change`), so no other replica writes until this change is made.
    pub(super) async fn latest(&self, name: &str, entry: &StreamEntry) -> CoreResult<Arc<Stream>> {
        if self.foreign_topics != ForeignTopics::Adopt {
            return Ok(entry.snapshot());
        }
        self.meta.sync().await?;
        let Some(stream) = self.stored_stream(name).await? else {
            if !self.shared_tail() {
                return Ok(entry.snapshot());
            }
            // Deleted by another replica: a change written now would bring it back.
            return Err(super::error::CoreError::StreamNotFound {
                stream: name.to_string(),
                account: self.account_id.clone(),
            });
        };
        *entry.state.write() = Arc::new(stream);
        Ok(entry.snapshot())
    }

    /// A stream's attributes for Describe*: on a cluster or on Kinesis, with the topic's own
    /// retention and capacity mode, which others may have changed.
    pub async fn described(&self, name: &str) -> CoreResult<Arc<Stream>> {
        let s = self.found_stream(name).await?;
        if self.foreign_topics != ForeignTopics::Adopt {
            return Ok(s);
        }
        let hours = match self.log.retention_ms(name).await? {
            Some(ms) => super::service::retention_hours(ms),
            None => s.retention_hours,
        };
        let mode = match self.log.on_demand(name).await? {
            Some(true) => StreamMode::OnDemand,
            Some(false) => StreamMode::Provisioned,
            None => s.mode,
        };
        if hours == s.retention_hours && mode == s.mode {
            return Ok(s);
        }
        let mut s = (*s).clone();
        s.retention_hours = hours;
        s.mode = mode;
        Ok(Arc::new(s))
    }

    /// A stream this replica has not seen may be a topic just made on the cluster, or a
    /// stream another replica just created: look before answering "not found", with a topic
    /// listing begun after the question. Answered from an older look, a replica told a
    /// client "unknown topic" for a topic another replica listed, and librdkafka's group
    /// leader assigned the topic's 0 partitions and never looked again. Questions waiting
    /// together share one look, and looks are `DISCOVER_EVERY` apart, so unknown names
    /// cannot flood the cluster: a question waits for the next look instead.
    pub(super) async fn discover(&self, name: &str) {
        if self.foreign_topics != ForeignTopics::Adopt || self.catalog.read().contains_key(name) {
            return;
        }
        let asked = Instant::now();
        let mut last = self.discovered.lock().await;
        if self.catalog.read().contains_key(name) || last.is_some_and(|begun| begun >= asked) {
            return;
        }
        if let Some(next) = last.map(|begun| begun + DISCOVER_EVERY) {
            tokio::time::sleep_until(next.into()).await;
        }
        let begun = Instant::now();
        *last = Some(begun);
        if let Err(e) = self.refresh_catalog_since(Some(begun)).await {
            tracing::warn!(error = %e, "catalog refresh for an unknown stream failed");
        }
    }

    /// A stream's entry, looking on the cluster once (`discover`) when this replica does not
    /// know the name.
    pub(super) async fn found_entry(&self, name: &str) -> CoreResult<Arc<StreamEntry>> {
        if let Ok(entry) = self.entry(name) {
            return Ok(entry);
        }
        self.discover(name).await;
        self.entry(name)
    }

    /// A stream's current attributes, discovering it first when this replica does not know it.
    pub async fn found_stream(&self, name: &str) -> CoreResult<Arc<Stream>> {
        Ok(self.found_entry(name).await?.snapshot())
    }

    /// Adopts topics no stream names. The list they came from may predate a delete, or a
    /// create by another replica whose document has arrived since, so they are checked
    /// again under the admin lock against one fresh topic list.
    async fn adopt_topics(&self, candidates: Vec<String>) -> CoreResult<()> {
        let _admin = self.catalog_change().await?;
        self.meta.sync().await?;
        let fresh: BTreeMap<String, u32> = self.log.topics().await?.into_iter().collect();
        self.recently_deleted
            .lock()
            .retain(|_, at| at.elapsed() < KEEP_DELETED);
        for topic in candidates {
            let Some(&partitions) = fresh.get(&topic) else {
                continue;
            };
            if partitions == 0
                || self.catalog.read().contains_key(&topic)
                || self.recently_deleted.lock().contains_key(&topic)
                || self
                    .meta
                    .get(&format!("{STREAM_PREFIX}{topic}"))
                    .await?
                    .is_some()
            {
                continue;
            }
            let req = CreateStreamRequest {
                name: topic.clone(),
                shard_count: Some(partitions),
                mode: StreamMode::Provisioned,
                max_record_kib: None,
                tags: BTreeMap::new(),
                key_hash: super::catalog::KeyHash::KafkaMurmur2,
            };
            // The backend's creation time where it keeps one, so every replica adopting the
            // topic gives it the same Kafka topic id.
            let created = self.log.created_ms(&topic).await?.unwrap_or_else(now_ms);
            let stream = new_stream(&req, partitions, created);
            self.persist(&stream).await?;
            self.catalog
                .write()
                .insert(stream.name.clone(), StreamEntry::new(stream));
            tracing::info!(%topic, partitions, "existing topic adopted as a kafka-murmur2 stream");
        }
        Ok(())
    }

    /// Refreshes the catalog whenever the `MetaStore` reports another writer's change, and
    /// every `every` for topics made outside strait, until `closing`.
    pub fn spawn_catalog_refresh(
        self: &Arc<Self>,
        every: Duration,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) {
        self.spawn_sealer(closing.clone());
        let core = Arc::clone(self);
        let mut changes = self.meta.changes();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let changed = async {
                    match changes.as_mut() {
                        Some(rx) => rx.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tick.tick() => {}
                    ok = changed => if !ok { changes = None; },
                    _ = closing.changed() => return,
                }
                if let Err(e) = core.refresh_catalog().await {
                    tracing::warn!(error = %e, "catalog refresh failed");
                }
            }
        });
    }
}
