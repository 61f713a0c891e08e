//! One delegation for every `Log` decorator. A `LogLayer` says what it does around the log it
//! wraps (rename topics on the way in and out, wrap each call); `Layered` implements `Log`
//! once for all of them, so a new `Log` method is forwarded in one place.

use std::borrow::Cow;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    AppendInfo, CheckedBatch, Log, NewTopic, PartitionLineage, PartitionOffsets, ProducerBatch,
    ReadBatches, StorageResult,
};

/// What a decorator does around a `Log`. Every hook defaults to passing through.
pub trait LogLayer: Send + Sync + 'static {
    /// The wrapped log's name for a topic.
    fn inward<'a>(&self, topic: &'a str) -> Cow<'a, str> {
        Cow::Borrowed(topic)
    }

    /// The name to show for a topic of the wrapped log, or `None` to hide it.
    fn outward(&self, topic: String) -> Option<String> {
        Some(topic)
    }

    /// Runs one call into the wrapped log; `operation` names the `Log` method.
    fn around<T: Send, F: Future<Output = StorageResult<T>> + Send>(
        &self,
        operation: Operation,
        call: F,
    ) -> impl Future<Output = StorageResult<T>> + Send {
        let _ = operation;
        call
    }
}

/// The `Log` methods, for layers that tell them apart (metrics labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreatePartitions,
    DeleteTopic,
    Topics,
    Flush,
    RetentionMs,
    OnDemand,
    SetRetention,
    Append,
    Read,
    Offsets,
    MaxTimestampBatch,
    OffsetForTimestamp,
    ProducerBatches,
    Lineage,
}

impl Operation {
    pub const ALL: [Operation; 14] = [
        Operation::CreatePartitions,
        Operation::DeleteTopic,
        Operation::Topics,
        Operation::Flush,
        Operation::RetentionMs,
        Operation::OnDemand,
        Operation::SetRetention,
        Operation::Append,
        Operation::Read,
        Operation::Offsets,
        Operation::MaxTimestampBatch,
        Operation::OffsetForTimestamp,
        Operation::ProducerBatches,
        Operation::Lineage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreatePartitions => "create_partitions",
            Operation::DeleteTopic => "delete_topic",
            Operation::Topics => "topics",
            Operation::Flush => "flush",
            Operation::RetentionMs => "retention_ms",
            Operation::OnDemand => "on_demand",
            Operation::SetRetention => "set_retention",
            Operation::Append => "append",
            Operation::Read => "read",
            Operation::Offsets => "offsets",
            Operation::MaxTimestampBatch => "max_timestamp_batch",
            Operation::OffsetForTimestamp => "offset_for_timestamp",
            Operation::ProducerBatches => "producer_batches",
            Operation::Lineage => "lineage",
        }
    }
}

/// A `Log` seen through a `LogLayer`.
pub struct Layered<L> {
    pub(super) layer: L,
    pub(super) inner: Arc<dyn Log>,
}

impl<L: LogLayer> Layered<L> {
    pub fn wrap(layer: L, inner: Arc<dyn Log>) -> Arc<dyn Log> {
        Arc::new(Layered { layer, inner })
    }

    /// A topic listing from the inner log, through the layer, with only the topics the
    /// layer shows, under their outward names.
    async fn outward_topics(
        &self,
        listing: impl std::future::Future<Output = StorageResult<Vec<(String, u32)>>> + Send,
    ) -> StorageResult<Vec<(String, u32)>> {
        let all = self.layer.around(Operation::Topics, listing).await?;
        Ok(all
            .into_iter()
            .filter_map(|(t, n)| Some((self.layer.outward(t)?, n)))
            .collect())
    }
}

#[async_trait]
impl<L: LogLayer> Log for Layered<L> {
    async fn create_partitions(
        &self,
        topic: &str,
        partitions: Range<u32>,
        new: NewTopic,
    ) -> StorageResult<()> {
        let topic = self.layer.inward(topic);
        let call = self.inner.create_partitions(&topic, partitions, new);
        self.layer.around(Operation::CreatePartitions, call).await
    }
    async fn delete_topic(&self, topic: &str) -> StorageResult<()> {
        let topic = self.layer.inward(topic);
        let call = self.inner.delete_topic(&topic);
        self.layer.around(Operation::DeleteTopic, call).await
    }
    async fn topics(&self) -> StorageResult<Vec<(String, u32)>> {
        self.outward_topics(self.inner.topics()).await
    }
    async fn topics_since(&self, since: std::time::Instant) -> StorageResult<Vec<(String, u32)>> {
        self.outward_topics(self.inner.topics_since(since)).await
    }
    async fn flush(&self, topic: &str, partition: u32) -> StorageResult<()> {
        let topic = self.layer.inward(topic);
        let call = self.inner.flush(&topic, partition);
        self.layer.around(Operation::Flush, call).await
    }
    async fn retention_ms(&self, topic: &str) -> StorageResult<Option<i64>> {
        let topic = self.layer.inward(topic);
        let call = self.inner.retention_ms(&topic);
        self.layer.around(Operation::RetentionMs, call).await
    }
    async fn on_demand(&self, topic: &str) -> StorageResult<Option<bool>> {
        let topic = self.layer.inward(topic);
        let call = self.inner.on_demand(&topic);
        self.layer.around(Operation::OnDemand, call).await
    }
    async fn set_retention(&self, topic: &str, retention_ms: Option<i64>) -> StorageResult<()> {
        let topic = self.layer.inward(topic);
        let call = self.inner.set_retention(&topic, retention_ms);
        self.layer.around(Operation::SetRetention, call).await
    }
    async fn append(
        &self,
        topic: &str,
        partition: u32,
        batch: CheckedBatch,
    ) -> StorageResult<AppendInfo> {
        let topic = self.layer.inward(topic);
        let call = self.inner.append(&topic, partition, batch);
        self.layer.around(Operation::Append, call).await
    }
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> StorageResult<ReadBatches> {
        let topic = self.layer.inward(topic);
        let call = self.inner.read(&topic, partition, offset, max_bytes);
        self.layer.around(Operation::Read, call).await
    }
    async fn offsets(&self, topic: &str, partition: u32) -> StorageResult<PartitionOffsets> {
        let topic = self.layer.inward(topic);
        let call = self.inner.offsets(&topic, partition);
        self.layer.around(Operation::Offsets, call).await
    }
    async fn append_end(&self, topic: &str, partition: u32) -> StorageResult<i64> {
        let topic = self.layer.inward(topic);
        let call = self.inner.append_end(&topic, partition);
        self.layer.around(Operation::Offsets, call).await
    }
    async fn max_timestamp_batch(
        &self,
        topic: &str,
        partition: u32,
    ) -> StorageResult<Option<(i64, i64)>> {
        let topic = self.layer.inward(topic);
        let call = self.inner.max_timestamp_batch(&topic, partition);
        self.layer.around(Operation::MaxTimestampBatch, call).await
    }
    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> StorageResult<i64> {
        let topic = self.layer.inward(topic);
        let call = self
            .inner
            .offset_for_timestamp(&topic, partition, timestamp_ms);
        self.layer.around(Operation::OffsetForTimestamp, call).await
    }
    async fn producer_batches(
        &self,
        topic: &str,
        partition: u32,
        producer_id: i64,
    ) -> StorageResult<Vec<ProducerBatch>> {
        let topic = self.layer.inward(topic);
        let call = self.inner.producer_batches(&topic, partition, producer_id);
        self.layer.around(Operation::ProducerBatches, call).await
    }
    async fn created_ms(&self, topic: &str) -> StorageResult<Option<i64>> {
        let topic = self.layer.inward(topic);
        self.inner.created_ms(&topic).await
    }
    async fn lineage(&self, topic: &str) -> StorageResult<Option<Vec<PartitionLineage>>> {
        let topic = self.layer.inward(topic);
        let call = self.inner.lineage(&topic);
        self.layer.around(Operation::Lineage, call).await
    }
}

#[cfg(test)]
mod tests {
    use super::Operation;

    /// Layers index per-operation tables by `Operation as usize`.
    #[test]
    fn all_is_in_declaration_order() {
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{}", op.as_str());
        }
    }
}
