//! The catalog as several strait replicas share it: stream documents written by one replica
//! reach the others through the `MetaStore`'s change ticks, and topics that no document
//! names are adopted as `kafka-murmur2` streams (or removed, on the embedded log).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::catalog::StreamMode;
use super::error::CoreResult;
use super::now_ms;
use super::service::{new_stream, Core, CreateStreamRequest, ForeignTopics, StreamEntry};

impl Core {
    /// Brings the in-memory catalog up to the stored documents, then to the log's topics.
    pub async fn refresh_catalog(&self) -> CoreResult<()> {
        {
            let _admin = self.admin.lock().await;
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
        }
        self.reconcile_topics().await
    }

    /// Topics without a stream document: removed or adopted (see `ForeignTopics`). An
    /// adopted topic that gained partitions outside strait gains shards too.
    pub(super) async fn reconcile_topics(&self) -> CoreResult<()> {
        for (topic, partitions) in self.log.topics().await? {
            let known = self.catalog.read().get(&topic).map(|e| e.snapshot());
            match (known, self.foreign_topics) {
                (None, ForeignTopics::Delete) => {
                    tracing::warn!(%topic, "removing log data of a deleted stream");
                    self.log.delete_topic(&topic).await?;
                }
                (None, ForeignTopics::Adopt) => self.adopt_topic(&topic, partitions).await?,
                (Some(s), ForeignTopics::Adopt)
                    if partitions > s.next_partition()
                        && s.key_hash != super::catalog::KeyHash::KinesisMd5 =>
                {
                    self.add_partitions(&topic, partitions).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn adopt_topic(&self, topic: &str, partitions: u32) -> CoreResult<()> {
        let _admin = self.admin.lock().await;
        if self.catalog.read().contains_key(topic) || partitions == 0 {
            return Ok(());
        }
        let req = CreateStreamRequest {
            name: topic.to_string(),
            shard_count: Some(partitions),
            mode: StreamMode::Provisioned,
            max_record_kib: None,
            tags: BTreeMap::new(),
            key_hash: super::catalog::KeyHash::KafkaMurmur2,
        };
        let stream = new_stream(&req, partitions, now_ms());
        self.persist(&stream).await?;
        self.catalog
            .write()
            .insert(stream.name.clone(), StreamEntry::new(stream));
        tracing::info!(%topic, partitions, "existing topic adopted as a kafka-murmur2 stream");
        Ok(())
    }

    /// Refreshes the catalog whenever the `MetaStore` reports another writer's change, and
    /// every `every` for topics made outside strait, until `closing`.
    pub fn spawn_catalog_refresh(
        self: &Arc<Self>,
        every: Duration,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) {
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
