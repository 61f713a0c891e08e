//! A `Log` wrapper that keeps a backend's streams in one namespace of its topics
//! (`backend.kafka.topic_prefix`): stream "x" is topic "<prefix>x", and topics without the
//! prefix are not streams at all.

use std::ops::Range;
use std::sync::Arc;

use super::CheckedBatch;
use async_trait::async_trait;

use super::{AppendInfo, Log, PartitionOffsets, ReadBatches};
use crate::backend::StorageResult;

pub struct PrefixedLog {
    prefix: String,
    inner: Arc<dyn Log>,
}

impl PrefixedLog {
    /// `inner` itself when the prefix is empty, so the common case adds nothing.
    pub fn wrap(prefix: &str, inner: Arc<dyn Log>) -> Arc<dyn Log> {
        if prefix.is_empty() {
            return inner;
        }
        Arc::new(PrefixedLog {
            prefix: prefix.to_string(),
            inner,
        })
    }

    fn topic(&self, stream: &str) -> String {
        format!("{}{stream}", self.prefix)
    }
}

#[async_trait]
impl Log for PrefixedLog {
    async fn create_partitions(
        &self,
        topic: &str,
        partitions: Range<u32>,
        retention_ms: Option<i64>,
    ) -> StorageResult<()> {
        let topic = self.topic(topic);
        self.inner
            .create_partitions(&topic, partitions, retention_ms)
            .await
    }
    async fn delete_topic(&self, topic: &str) -> StorageResult<()> {
        self.inner.delete_topic(&self.topic(topic)).await
    }
    async fn topics(&self) -> StorageResult<Vec<(String, u32)>> {
        let all = self.inner.topics().await?;
        Ok(all
            .into_iter()
            .filter_map(|(t, n)| {
                let stream = t.strip_prefix(&self.prefix)?;
                (!stream.is_empty()).then(|| (stream.to_string(), n))
            })
            .collect())
    }
    async fn flush(&self, topic: &str, partition: u32) -> StorageResult<()> {
        self.inner.flush(&self.topic(topic), partition).await
    }
    async fn retention_ms(&self, topic: &str) -> StorageResult<Option<i64>> {
        self.inner.retention_ms(&self.topic(topic)).await
    }
    async fn set_retention(&self, topic: &str, retention_ms: Option<i64>) -> StorageResult<()> {
        self.inner
            .set_retention(&self.topic(topic), retention_ms)
            .await
    }
    async fn append(
        &self,
        topic: &str,
        partition: u32,
        batch: CheckedBatch,
    ) -> StorageResult<AppendInfo> {
        self.inner
            .append(&self.topic(topic), partition, batch)
            .await
    }
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> StorageResult<ReadBatches> {
        self.inner
            .read(&self.topic(topic), partition, offset, max_bytes)
            .await
    }
    async fn offsets(&self, topic: &str, partition: u32) -> StorageResult<PartitionOffsets> {
        self.inner.offsets(&self.topic(topic), partition).await
    }
    async fn max_timestamp_batch(
        &self,
        topic: &str,
        partition: u32,
    ) -> StorageResult<Option<(i64, i64)>> {
        self.inner
            .max_timestamp_batch(&self.topic(topic), partition)
            .await
    }
    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> StorageResult<i64> {
        self.inner
            .offset_for_timestamp(&self.topic(topic), partition, timestamp_ms)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::EmbeddedLog;

    #[tokio::test]
    async fn streams_live_under_the_prefix_and_other_topics_are_not_streams() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Arc<dyn Log> = EmbeddedLog::open(dir.path(), Default::default()).unwrap();
        raw.create_partitions("other", 0..1, None).await.unwrap();
        raw.create_partitions("team-a.", 0..1, None).await.unwrap();
        let log = PrefixedLog::wrap("team-a.", raw.clone());
        log.create_partitions("orders", 0..3, None).await.unwrap();
        let mut raw_topics = raw.topics().await.unwrap();
        raw_topics.sort();
        assert!(raw_topics.contains(&("team-a.orders".to_string(), 3)));
        // Neither a topic outside the namespace nor the bare prefix is a stream.
        assert_eq!(log.topics().await.unwrap(), vec![("orders".to_string(), 3)]);
        log.delete_topic("orders").await.unwrap();
        assert!(log.topics().await.unwrap().is_empty());
        assert!(raw
            .topics()
            .await
            .unwrap()
            .iter()
            .any(|(t, _)| t == "other"));
    }

    #[test]
    fn an_empty_prefix_is_the_log_itself() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Arc<dyn Log> = EmbeddedLog::open(dir.path(), Default::default()).unwrap();
        assert!(Arc::ptr_eq(&PrefixedLog::wrap("", raw.clone()), &raw));
    }
}
