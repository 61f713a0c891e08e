//! A `Log` wrapper that times every call into the backend and counts failures, so both
//! backends report `strait_backend_request_duration_seconds` the same way.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use super::CheckedBatch;
use async_trait::async_trait;

use super::{AppendInfo, Log, PartitionOffsets, ReadBatches};
use crate::backend::StorageResult;

pub struct MeteredLog {
    backend: &'static str,
    inner: Arc<dyn Log>,
}

impl MeteredLog {
    pub fn wrap(backend: &'static str, inner: Arc<dyn Log>) -> Arc<dyn Log> {
        Arc::new(MeteredLog { backend, inner })
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = StorageResult<T>>,
    ) -> StorageResult<T> {
        let started = Instant::now();
        let out = call.await;
        let m = crate::observe::metrics();
        m.backend_seconds
            .with_label_values(&[self.backend, operation])
            .observe(started.elapsed().as_secs_f64());
        if out.is_err() {
            m.backend_errors
                .with_label_values(&[self.backend, operation])
                .inc();
        }
        out
    }
}

#[async_trait]
impl Log for MeteredLog {
    async fn create_partitions(
        &self,
        topic: &str,
        partitions: Range<u32>,
        retention_ms: Option<i64>,
    ) -> StorageResult<()> {
        self.timed(
            "create_partitions",
            self.inner
                .create_partitions(topic, partitions, retention_ms),
        )
        .await
    }
    async fn delete_topic(&self, topic: &str) -> StorageResult<()> {
        self.timed("delete_topic", self.inner.delete_topic(topic))
            .await
    }
    async fn topics(&self) -> StorageResult<Vec<(String, u32)>> {
        self.timed("topics", self.inner.topics()).await
    }
    async fn flush(&self, topic: &str, partition: u32) -> StorageResult<()> {
        self.timed("flush", self.inner.flush(topic, partition))
            .await
    }
    async fn retention_ms(&self, topic: &str) -> StorageResult<Option<i64>> {
        self.timed("retention_ms", self.inner.retention_ms(topic))
            .await
    }
    async fn set_retention(&self, topic: &str, retention_ms: Option<i64>) -> StorageResult<()> {
        self.timed(
            "set_retention",
            self.inner.set_retention(topic, retention_ms),
        )
        .await
    }
    async fn append(
        &self,
        topic: &str,
        partition: u32,
        batch: CheckedBatch,
    ) -> StorageResult<AppendInfo> {
        self.timed("append", self.inner.append(topic, partition, batch))
            .await
    }
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> StorageResult<ReadBatches> {
        self.timed("read", self.inner.read(topic, partition, offset, max_bytes))
            .await
    }
    async fn offsets(&self, topic: &str, partition: u32) -> StorageResult<PartitionOffsets> {
        self.timed("offsets", self.inner.offsets(topic, partition))
            .await
    }
    async fn max_timestamp_batch(
        &self,
        topic: &str,
        partition: u32,
    ) -> StorageResult<Option<(i64, i64)>> {
        self.timed(
            "max_timestamp_batch",
            self.inner.max_timestamp_batch(topic, partition),
        )
        .await
    }
    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> StorageResult<i64> {
        self.timed(
            "offset_for_timestamp",
            self.inner
                .offset_for_timestamp(topic, partition, timestamp_ms),
        )
        .await
    }
}
