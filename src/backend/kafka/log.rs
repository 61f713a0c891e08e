//! The `Log` on a Kafka cluster: streams are topics, appends are idempotent acks=all
//! Produce requests to the partition leader, reads are Fetch and ListOffsets requests.
//! Leader moves and broker restarts are retried with backoff (`on_leader`); the producer
//! identity and sequence numbers are in `producer.rs`, the merging of concurrent appends
//! into one Produce in `appender.rs`.

use std::ops::Range;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, FetchRequest, FetchResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest,
    ProduceResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::appender::Appender;
use super::cluster::Cluster;
use super::errors::{self, Failure};
use super::producer::{Producer, IDENTITY_REFUSED};
use crate::backend::{
    AppendInfo, CheckedBatch, Log, NewTopic, PartitionOffsets, ProducerBatch, ReadBatches,
};
use crate::backend::{StorageError, StorageResult};
use crate::protocol::kafka::record_batch;

/// Versions of strait's own requests: all served by Kafka 3.0 and later (ListOffsets v7
/// brought the max-timestamp lookup).
const PRODUCE_V: i16 = 9;
/// Produce names topics by id from this version on (KIP-516).
const PRODUCE_BY_ID_V: i16 = 13;
const FETCH_V: i16 = 12;
pub(super) const LIST_OFFSETS_V: i16 = 7;
const CREATE_TOPICS_V: i16 = 5;
const DELETE_TOPICS_V: i16 = 4;
const CREATE_PARTITIONS_V: i16 = 2;
const ALTER_CONFIGS_V: i16 = 1;
const DESCRIBE_CONFIGS_V: i16 = 1;
/// The broker's own deadline for acks=all and topic changes; below the connection timeout.
const BROKER_WAIT_MS: i32 = 5_000;
/// The largest batch strait writes to a topic it creates: 10 MiB of records plus overhead.
const MAX_BATCH_BYTES: usize = 10 * 1024 * 1024 + 512 * 1024;
/// How long a request keeps being retried through leader moves and broker restarts.
const RETRY_FOR: Duration = Duration::from_secs(30);

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

pub(super) fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub struct KafkaLog {
    me: Weak<KafkaLog>,
    cluster: Arc<Cluster>,
    producer: Producer,
    appender: Appender,
    /// Topics strait keeps for itself (the metadata topic): never a stream.
    hidden: Vec<String>,
}

impl KafkaLog {
    pub fn new(cluster: Arc<Cluster>, hidden: Vec<String>) -> Arc<KafkaLog> {
        Arc::new_cyclic(|me| KafkaLog {
            me: me.clone(),
            producer: Producer::new(cluster.clone()),
            appender: Appender::default(),
            cluster,
            hidden,
        })
    }

    pub(super) fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// A topic's id, looked up on the cluster when this replica has not seen it yet.
    async fn topic_id(&self, topic: &str) -> Option<Uuid> {
        if let Some(id) = self.cluster.topic_id(topic) {
            return Some(id);
        }
        let _ = self.cluster.refresh().await;
        self.cluster.topic_id(topic)
    }

    /// Runs `attempt` against the partition's leader until it succeeds, fails for good, or
    /// `RETRY_FOR` runs out; metadata is refreshed between tries.
    async fn on_leader<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        attempt: F,
    ) -> Result<T, Failure>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = match self.cluster.leader(topic, partition) {
                Some(addr) => attempt(addr).await,
                None => Err(Failure::Retriable(format!(
                    "no leader known for {topic}-{partition}"
                ))),
            };
            match result {
                Err(Failure::Retriable(why))
                    if tokio::time::Instant::now() + backoff < deadline =>
                {
                    tracing::debug!(topic, partition, %why, "retrying on the leader");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    let _ = self.cluster.refresh().await;
                }
                other => return other,
            }
        }
    }

    /// Sends one batch as an idempotent acks=all Produce to the partition's leader. Callers
    /// serialise per partition (`appender.rs`), so sequence numbers go out in order.
    pub(super) async fn produce(
        &self,
        topic: &str,
        partition: u32,
        mut batch: Bytes,
    ) -> Result<AppendInfo, Failure> {
        let header = record_batch::parse_header(&batch).map_err(|e| Failure::Fatal {
            code: -1,
            message: format!("corrupt batch: {e:?}"),
        })?;
        // The topic this write is for: retries must not land in a topic made again under
        // the same name meanwhile (the stream deleted and re-created).
        let pinned = self.topic_id(topic).await;
        let slot = self.producer.slot(topic, partition);
        // One Produce in flight per partition: sequence numbers stay in send order.
        let mut seq = slot.lock().await;
        let mut identity_refused = false;
        loop {
            let (id, epoch) = seq.stamp(&self.producer).await?;
            // No copy: the last request holding the bytes is gone by now.
            let mut stamped = BytesMut::from(batch);
            record_batch::set_producer(&mut stamped, id, epoch, seq.next);
            batch = stamped.freeze();
            let result = self
                .send_produce(topic, partition, batch.clone(), None, pinned)
                .await;
            match result {
                Ok(info) => {
                    seq.advance(header.record_count);
                    return Ok(info);
                }
                // Refused for its identity (an idle producer id expired, say): not written, so
                // it may go once more under a new one.
                Err(Failure::Fatal { code, .. })
                    if !identity_refused && IDENTITY_REFUSED.contains(&code) =>
                {
                    identity_refused = true;
                    seq.reset(&self.producer);
                }
                // A refusal: the batch was not written and its sequence number not used.
                Err(f @ Failure::Fatal { .. }) => return Err(f),
                Err(f) => {
                    // Whether the broker kept the batch is unknown: a new producer identity
                    // keeps the next batch from being taken for this one's retry.
                    seq.reset(&self.producer);
                    return Err(f);
                }
            }
        }
    }

    /// Sends one batch, stamped already, as an acks=all Produce to the partition's leader,
    /// retrying through leader moves.
    async fn send_produce(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
        transactional_id: Option<&str>,
        pinned: Option<Uuid>,
    ) -> Result<AppendInfo, Failure> {
        // By topic id where the cluster takes it (Kafka 4.1 and later), so even a retry sent
        // as the topic is made again cannot land in the new one.
        let version = match (pinned, self.cluster.versions(ApiKey::Produce as i16)) {
            (Some(_), Some((_, max))) if max >= PRODUCE_BY_ID_V => PRODUCE_BY_ID_V,
            _ => PRODUCE_V,
        };
        let request = ProduceRequest::default()
            .with_transactional_id(transactional_id.map(|t| TransactionalId(text(t))))
            .with_acks(-1)
            .with_timeout_ms(BROKER_WAIT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_topic_id(pinned.unwrap_or_default())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition as i32)
                    .with_records(Some(batch))])]);
        self.on_leader(topic, partition, |addr| {
            let request = &request;
            async move {
                if let (Some(pin), Some(now)) = (pinned, self.cluster.topic_id(topic)) {
                    if pin != now {
                        return Err(Failure::Fatal {
                            code: errors::UNKNOWN_TOPIC_ID,
                            message: format!("{topic} was deleted and made again while this write was retried; it was not written to the new topic"),
                        });
                    }
                }
                let r: ProduceResponse = self
                    .cluster
                    .request(&addr, ApiKey::Produce, version, request)
                    .await
                    .map_err(Failure::Retriable)?;
                let p = r
                    .responses
                    .first()
                    .and_then(|t| t.partition_responses.first())
                    .ok_or_else(|| Failure::Retriable("empty Produce response".into()))?;
                errors::check(p.error_code, "Produce", topic)?;
                Ok(AppendInfo {
                    base_offset: p.base_offset,
                    log_append_time_ms: (p.log_append_time_ms >= 0)
                        .then_some(p.log_append_time_ms),
                    log_start: p.log_start_offset,
                })
            }
        })
        .await
    }

    /// Sends a batch of a transaction (the catalog's, `fence.rs`), stamped by its caller.
    pub(super) async fn produce_transactional(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
        transactional_id: &str,
    ) -> Result<AppendInfo, Failure> {
        let pinned = self.topic_id(topic).await;
        self.send_produce(topic, partition, batch, Some(transactional_id), pinned)
            .await
    }

    /// Fetches from `offset`, waiting up to `max_wait_ms` for at least one byte. An offset
    /// the partition does not hold is an error (the metadata tailer backs off on it).
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
        max_wait_ms: i32,
    ) -> StorageResult<ReadBatches> {
        self.fetch_at(topic, partition, offset, max_bytes, max_wait_ms)
            .await
            .map_err(|f| f.into_storage(topic))
    }

    /// `Log::read`: a Fetch that returns at once. An offset the partition no longer (or not
    /// yet) holds reads from the log start, or nothing, with the partition's offsets.
    async fn read_once(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> StorageResult<ReadBatches> {
        match self.fetch_at(topic, partition, offset, max_bytes, 0).await {
            Err(Failure::Fatal { code, .. }) if code == errors::OFFSET_OUT_OF_RANGE => {
                // Rare (a reader behind retention, or ahead of a truncated log): one lookup.
                let offsets = self.offsets(topic, partition).await?;
                if offset < offsets.log_start {
                    self.fetch_at(topic, partition, offsets.log_start, max_bytes, 0)
                        .await
                        .map_err(|f| f.into_storage(topic))
                } else {
                    Ok(ReadBatches {
                        batches: Vec::new(),
                        offsets,
                        skipped_to: None,
                    })
                }
            }
            other => other.map_err(|f| f.into_storage(topic)),
        }
    }

    async fn fetch_at(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
        max_wait_ms: i32,
    ) -> Result<ReadBatches, Failure> {
        let max_bytes = max_bytes.clamp(1, i32::MAX as usize) as i32;
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            // Kinesis readers must not see records of aborted Kafka transactions.
            .with_isolation_level(1)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition as i32)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(max_bytes)])]);
        let response: FetchResponse = self
            .on_leader(topic, partition, |addr| {
                let request = &request;
                async move {
                    let r: FetchResponse = self
                        .cluster
                        .request(&addr, ApiKey::Fetch, FETCH_V, request)
                        .await
                        .map_err(Failure::Retriable)?;
                    errors::check(r.error_code, "Fetch", topic)?;
                    let p = r
                        .responses
                        .first()
                        .and_then(|t| t.partitions.first())
                        .ok_or_else(|| Failure::Retriable("empty Fetch response".into()))?;
                    errors::check(p.error_code, "Fetch", topic)?;
                    Ok(r)
                }
            })
            .await?;
        let p = &response.responses[0].partitions[0];
        let aborted: Vec<(i64, i64)> = p
            .aborted_transactions
            .iter()
            .flatten()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect();
        let (batches, skipped_to) = committed_only(
            split_batches(p.records.clone().unwrap_or_default()),
            aborted,
        );
        Ok(ReadBatches {
            batches,
            offsets: PartitionOffsets {
                log_start: p.log_start_offset,
                // read_committed: readers see up to the last stable offset.
                high_watermark: if p.last_stable_offset >= 0 {
                    p.last_stable_offset
                } else {
                    p.high_watermark
                },
                last_timestamp_ms: None,
            },
            skipped_to,
        })
    }

    /// ListOffsets for one partition: (offset, timestamp), offset −1 when none matches.
    /// Latest is the last stable offset (Kinesis readers read committed records only).
    pub async fn list_offset(
        &self,
        topic: &str,
        partition: u32,
        timestamp: i64,
    ) -> StorageResult<(i64, i64)> {
        self.list_offset_as(topic, partition, timestamp, 1).await
    }

    async fn list_offset_as(
        &self,
        topic: &str,
        partition: u32,
        timestamp: i64,
        isolation_level: i8,
    ) -> StorageResult<(i64, i64)> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation_level)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition as i32)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        self.on_leader(topic, partition, |addr| {
            let request = &request;
            async move {
                let r: ListOffsetsResponse = self
                    .cluster
                    .request(&addr, ApiKey::ListOffsets, LIST_OFFSETS_V, request)
                    .await
                    .map_err(Failure::Retriable)?;
                let p = r
                    .topics
                    .first()
                    .and_then(|t| t.partitions.first())
                    .ok_or_else(|| Failure::Retriable("empty ListOffsets response".into()))?;
                errors::check(p.error_code, "ListOffsets", topic)?;
                Ok((p.offset, p.timestamp))
            }
        })
        .await
        .map_err(|f| f.into_storage(topic))
    }

    /// Waits until the cluster's metadata shows every partition below `count` with a leader.
    pub async fn await_leaders(&self, topic: &str, count: u32) -> StorageResult<()> {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        loop {
            let _ = self.cluster.refresh().await;
            if (0..count).all(|p| self.cluster.leader(topic, p).is_some()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "topic {topic} has partitions without a leader"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn admin<Req, Resp>(
        &self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> StorageResult<Resp>
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        let addr = self
            .cluster
            .any_broker()
            .ok_or_else(|| StorageError::Unavailable("no Kafka broker known".into()))?;
        self.cluster
            .request(&addr, key, version, request)
            .await
            .map_err(|e| StorageError::Unavailable(format!("Kafka cluster: {e}")))
    }

    /// Creates a topic with the given configs; false when it already existed.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
        configs: &[(&str, String)],
    ) -> StorageResult<bool> {
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(text(k))
                    .with_value(Some(text(v)))
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(BROKER_WAIT_MS)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions as i32)
                .with_replication_factor(-1)
                .with_configs(configs)]);
        let r: CreateTopicsResponse = self
            .admin(ApiKey::CreateTopics, CREATE_TOPICS_V, &request)
            .await?;
        let t = r
            .topics
            .first()
            .ok_or_else(|| StorageError::Unavailable("empty CreateTopics response".into()))?;
        match t.error_code {
            0 => Ok(true),
            errors::TOPIC_ALREADY_EXISTS => Ok(false),
            code => Err(errors::refusal(
                code,
                t.error_message.as_deref(),
                "CreateTopics",
                topic,
            )),
        }
    }

    async fn grow_topic(&self, topic: &str, count: u32) -> StorageResult<()> {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(BROKER_WAIT_MS)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(count as i32)
                // Null, not empty: the broker places the new partitions itself.
                .with_assignments(None)]);
        let r: CreatePartitionsResponse = self
            .admin(ApiKey::CreatePartitions, CREATE_PARTITIONS_V, &request)
            .await?;
        let t = r
            .results
            .first()
            .ok_or_else(|| StorageError::Unavailable("empty CreatePartitions response".into()))?;
        if t.error_code == errors::INVALID_PARTITIONS {
            // Another replica may have grown it a moment ago (a change it then could not
            // write, say): the metadata this replica holds may not show that yet.
            let _ = self.cluster.refresh().await;
        }
        match t.error_code {
            0 => Ok(()),
            // Already at least that many: what was asked for is there.
            errors::INVALID_PARTITIONS
                if self
                    .cluster
                    .topics()
                    .iter()
                    .any(|(n, c)| n == topic && *c >= count) =>
            {
                Ok(())
            }
            code => Err(errors::refusal(
                code,
                t.error_message.as_deref(),
                "CreatePartitions",
                topic,
            )),
        }
    }
}

/// Drops the batches of aborted transactions from a read_committed Fetch answer, as Kafka's
/// consumer does: a producer's transactional batches from an aborted transaction's first
/// offset up to its abort marker go, and so do the markers. Returns the kept batches and,
/// when any were dropped, the offset after the last batch of the answer.
fn committed_only(batches: Vec<Bytes>, mut aborted: Vec<(i64, i64)>) -> (Vec<Bytes>, Option<i64>) {
    if aborted.is_empty() {
        return (batches, None);
    }
    aborted.sort_by_key(|&(_, first)| std::cmp::Reverse(first));
    let mut open = std::collections::HashSet::new();
    let (mut kept, mut end, mut dropped) = (Vec::with_capacity(batches.len()), None, false);
    for b in batches {
        let Ok(h) = record_batch::parse_stored_header(&b) else {
            kept.push(b);
            continue;
        };
        end = Some(h.next_offset());
        while aborted
            .last()
            .is_some_and(|&(_, first)| first <= h.last_offset())
        {
            open.insert(aborted.pop().expect("checked").0);
        }
        if h.is_control() {
            // The abort marker closes the aborted transaction; markers carry no records.
            open.remove(&h.producer_id);
            dropped = true;
        } else if h.is_transactional() && open.contains(&h.producer_id) {
            dropped = true;
        } else {
            kept.push(b);
        }
    }
    (kept, end.filter(|_| dropped))
}

/// Whole batches of a Fetch answer; a batch cut off by the size limit is dropped, as
/// Kafka consumers do.
fn split_batches(mut records: Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    while records.len() >= record_batch::LOG_OVERHEAD {
        let len = i32::from_be_bytes(records[8..12].try_into().expect("4 bytes"));
        let total = record_batch::LOG_OVERHEAD + len.max(0) as usize;
        if len <= 0 || records.len() < total {
            break;
        }
        out.push(records.split_to(total));
    }
    out
}

#[async_trait]
impl Log for KafkaLog {
    async fn create_partitions(
        &self,
        topic: &str,
        partitions: Range<u32>,
        new: NewTopic,
    ) -> StorageResult<()> {
        let retention_ms = new.retention_ms;
        if partitions.is_empty() {
            return Ok(());
        }
        // Arrival time is the broker's, as Kinesis's ApproximateArrivalTimestamp is AWS's.
        let mut configs = vec![
            ("message.timestamp.type", "LogAppendTime".to_string()),
            // A PutRecords batch for one shard may reach 10 MiB (records of up to 10 MiB
            // with UpdateMaxRecordSize); Kafka's default cap is 1 MiB.
            ("max.message.bytes", MAX_BATCH_BYTES.to_string()),
        ];
        if let Some(ms) = retention_ms {
            configs.push(("retention.ms", ms.to_string()));
        }
        let created =
            partitions.start == 0 && self.create_topic(topic, partitions.end, &configs).await?;
        if !created {
            let _ = self.cluster.refresh().await;
            let have = self
                .cluster
                .topics()
                .into_iter()
                .find(|(n, _)| n == topic)
                .map_or(0, |(_, c)| c);
            if have < partitions.end {
                self.grow_topic(topic, partitions.end).await?;
            }
        }
        self.await_leaders(topic, partitions.end).await
    }

    async fn delete_topic(&self, topic: &str) -> StorageResult<()> {
        let request = DeleteTopicsRequest::default()
            .with_timeout_ms(BROKER_WAIT_MS)
            .with_topic_names(vec![name(topic)]);
        let r: DeleteTopicsResponse = self
            .admin(ApiKey::DeleteTopics, DELETE_TOPICS_V, &request)
            .await?;
        self.producer.forget_topic(topic);
        self.appender.forget_topic(topic);
        match r
            .responses
            .first()
            .map(|t| (t.error_code, t.error_message.clone()))
        {
            Some((0 | errors::UNKNOWN_TOPIC_OR_PARTITION, _)) => Ok(()),
            Some((code, message)) => Err(errors::refusal(
                code,
                message.as_deref(),
                "DeleteTopics",
                topic,
            )),
            None => Err(StorageError::Unavailable(
                "empty DeleteTopics response".into(),
            )),
        }
    }

    async fn topics(&self) -> StorageResult<Vec<(String, u32)>> {
        self.cluster
            .refresh()
            .await
            .map_err(|e| StorageError::Unavailable(format!("Kafka cluster unreachable: {e}")))?;
        Ok(self
            .cluster
            .topics()
            .into_iter()
            .filter(|(n, _)| !n.starts_with("__") && !self.hidden.contains(n))
            .collect())
    }

    async fn flush(&self, _topic: &str, _partition: u32) -> StorageResult<()> {
        // Every append was acknowledged by all in-sync replicas.
        Ok(())
    }

    async fn retention_ms(&self, topic: &str) -> StorageResult<Option<i64>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text(topic))
                .with_configuration_keys(Some(vec![text("retention.ms")])),
        ]);
        let r: DescribeConfigsResponse = self
            .admin(ApiKey::DescribeConfigs, DESCRIBE_CONFIGS_V, &request)
            .await?;
        let Some(result) = r.results.first() else {
            return Ok(None);
        };
        if result.error_code != 0 {
            return Err(errors::refusal(
                result.error_code,
                result.error_message.as_deref(),
                "DescribeConfigs",
                topic,
            ));
        }
        Ok(result
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .and_then(|c| c.value.as_deref()?.parse().ok()))
    }

    async fn set_retention(&self, topic: &str, retention_ms: Option<i64>) -> StorageResult<()> {
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text(topic))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(text(&retention_ms.unwrap_or(-1).to_string())))]),
        ]);
        let r: IncrementalAlterConfigsResponse = self
            .admin(ApiKey::IncrementalAlterConfigs, ALTER_CONFIGS_V, &request)
            .await?;
        match r.responses.first() {
            Some(t) if t.error_code == 0 => Ok(()),
            Some(t) => Err(errors::refusal(
                t.error_code,
                t.error_message.as_deref(),
                "IncrementalAlterConfigs",
                topic,
            )),
            None => Err(StorageError::Unavailable(
                "empty IncrementalAlterConfigs response".into(),
            )),
        }
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        batch: CheckedBatch,
    ) -> StorageResult<AppendInfo> {
        let records = batch.header().record_count as i64;
        self.appender
            .append(
                self.me.clone(),
                topic,
                partition,
                batch.into_bytes(),
                records,
            )
            .await
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> StorageResult<ReadBatches> {
        self.read_once(topic, partition, offset, max_bytes).await
    }

    async fn offsets(&self, topic: &str, partition: u32) -> StorageResult<PartitionOffsets> {
        let (start, end) = tokio::join!(
            self.list_offset(topic, partition, -2),
            self.list_offset(topic, partition, -1),
        );
        Ok(PartitionOffsets {
            log_start: start?.0,
            high_watermark: end?.0,
            // A third lookup; the core asks `max_timestamp_batch` only when it needs it.
            last_timestamp_ms: None,
        })
    }

    /// The high watermark: a Kafka transaction open on the partition holds the last stable
    /// offset below records strait acknowledged after it.
    async fn append_end(&self, topic: &str, partition: u32) -> StorageResult<i64> {
        Ok(self.list_offset_as(topic, partition, -1, 0).await?.0)
    }

    async fn max_timestamp_batch(
        &self,
        topic: &str,
        partition: u32,
    ) -> StorageResult<Option<(i64, i64)>> {
        let (offset, ts) = self.list_offset(topic, partition, -3).await?;
        Ok((offset >= 0).then_some((offset, ts)))
    }

    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        ts: i64,
    ) -> StorageResult<i64> {
        match self.list_offset(topic, partition, ts.max(0)).await? {
            (offset, _) if offset >= 0 => Ok(offset),
            _ => Ok(self.list_offset(topic, partition, -1).await?.0),
        }
    }

    async fn producer_batches(
        &self,
        _topic: &str,
        _partition: u32,
        _producer_id: i64,
    ) -> StorageResult<Vec<ProducerBatch>> {
        // Kafka clients reach the cluster through the pass-through, and the cluster keeps
        // their producer state; the only producer appending through this log is strait's own,
        // whose identity the appender manages.
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kafka::records::{encode_batch, NewRecord};

    /// A batch of `n` records at `base`, from `pid`, with the given attribute bits.
    fn batch_at(base: i64, n: usize, pid: i64, attributes: i16) -> Bytes {
        let recs: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                key: None,
                value: Bytes::from(vec![i as u8; 4]),
                timestamp_ms: 1,
                explicit_hash_key: None,
            })
            .collect();
        let mut b = encode_batch(&recs).into_bytes();
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        record_batch::set_producer(&mut b, pid, 0, 0);
        record_batch::set_base_offset(&mut b, base);
        b.freeze()
    }

    #[test]
    fn aborted_transactions_are_dropped_and_skipped_over() {
        const TXN: i16 = 1 << 4;
        const CONTROL: i16 = 1 << 5 | TXN;
        let batches = vec![
            batch_at(0, 2, 7, TXN),     // producer 7, aborted
            batch_at(2, 3, 8, TXN),     // producer 8, committed
            batch_at(5, 1, 7, CONTROL), // abort marker of 7
            batch_at(6, 1, 8, CONTROL), // commit marker of 8
            batch_at(7, 2, -1, 0),      // not transactional
            batch_at(9, 2, 7, TXN),     // producer 7 again, a later transaction that commits
        ];
        let (kept, next) = committed_only(batches.clone(), vec![(7, 0)]);
        let bases: Vec<i64> = kept
            .iter()
            .map(|b| record_batch::parse_header(b).unwrap().base_offset)
            .collect();
        assert_eq!(bases, vec![2, 7, 9]);
        assert_eq!(next, Some(11));
        // Nothing aborted: everything is kept, markers included (the core skips them).
        let (kept, next) = committed_only(batches, Vec::new());
        assert_eq!((kept.len(), next), (6, None));
        // Only an aborted batch: nothing kept, the reader moves past it.
        let (kept, next) = committed_only(vec![batch_at(40, 3, 9, TXN)], vec![(9, 40)]);
        assert_eq!((kept.len(), next), (0, Some(43)));
    }

    #[test]
    fn fetch_answers_split_into_whole_batches() {
        let one = |v: u8| {
            encode_batch(&[NewRecord {
                key: None,
                value: Bytes::from(vec![v; 10]),
                timestamp_ms: 1,
                explicit_hash_key: None,
            }])
        };
        let (a, b) = (one(1), one(2));
        let mut joined = BytesMut::new();
        joined.extend_from_slice(&a);
        joined.extend_from_slice(&b);
        // A third batch cut off by the size limit.
        joined.extend_from_slice(&a[..a.len() - 3]);
        let parts = split_batches(joined.freeze());
        assert_eq!(parts.len(), 2);
        assert_eq!(&parts[0][..], &a[..]);
        assert_eq!(&parts[1][..], &b[..]);
        assert!(split_batches(Bytes::from_static(&[0; 5])).is_empty());
    }
}
