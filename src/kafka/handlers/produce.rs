//! Produce and InitProducerId. A partition's records go to the core as the producer's own
//! batch (one copy, to assign offsets), which the core validates; idempotent retries are
//! answered from the core's producer state. The Produce-version rules live here: one batch per
//! partition, zstd from v7.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};

use super::str_bytes;
use crate::core::error::CoreError;
use crate::kafka::error::{self, NONE};
use crate::kafka::KafkaCtx;
use crate::protocol::kafka::record_batch::{BatchError, ParsedBatch};

/// Produce batches above this size get MESSAGE_TOO_LARGE unless the stream allows larger
/// records (its MaxRecordSizeInKiB, plus batch overhead).
const MIN_MAX_BATCH: usize = 1 << 20;

fn failed(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    crate::observe::metrics().error("kafka", "Produce", &code.to_string());
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(|m| str_bytes(&m)))
}

pub async fn produce(ctx: &KafkaCtx, r: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = r.acks;
    let is_transactional = transactional(&r.transactional_id);
    let mut names = Vec::with_capacity(r.topic_data.len());
    let mut appends = Vec::new();
    for t in r.topic_data {
        let name = t.name.0.to_string();
        // As Kafka: only Metadata auto-creates; a Produce to an unknown topic is refused.
        let stream = ctx.core.stream(&name);
        for p in t.partition_data {
            let refused = match &stream {
                Err(e) => Some(failed(p.index, error::code(e), None)),
                Ok(_) if is_transactional => Some(failed(
                    p.index,
                    error::of(ResponseError::TransactionalIdAuthorizationFailed),
                    Some("transactions are not supported by strait".into()),
                )),
                Ok(_) if p.records.is_none() => Some(failed(
                    p.index,
                    error::of(ResponseError::CorruptMessage),
                    None,
                )),
                Ok(s) => {
                    let len = p.records.as_ref().map_or(0, |r| r.len());
                    let limit = (s.max_record_kib as usize * 1024 + 64 * 1024).max(MIN_MAX_BATCH);
                    (len > limit).then(|| {
                        failed(
                            p.index,
                            error::of(ResponseError::MessageTooLarge),
                            Some(format!("{len} bytes exceed the limit of {limit}")),
                        )
                    })
                }
            };
            let index = names.len();
            let topic = name.clone();
            appends.push(async move {
                let response = match refused {
                    Some(r) => r,
                    None => {
                        let records = p.records.expect("checked above");
                        append(ctx, &topic, p.index, &records, version).await
                    }
                };
                (index, response)
            });
        }
        names.push(t.name);
    }
    // Partitions append concurrently, so their fsyncs overlap instead of queueing.
    let done = futures_util::future::join_all(appends).await;
    let mut responses: Vec<TopicProduceResponse> = names
        .into_iter()
        .map(|n| TopicProduceResponse::default().with_name(n))
        .collect();
    for (index, partition) in done {
        responses[index].partition_responses.push(partition);
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

fn transactional(id: &Option<kafka_protocol::messages::TransactionalId>) -> bool {
    id.as_ref().is_some_and(|t| !t.0.is_empty())
}

/// Appends a partition's one batch. Kafka takes exactly one per partition from Produce v3 on
/// (the oldest version strait serves), which also makes a partition's part of a request
/// all-or-nothing.
async fn append(
    ctx: &KafkaCtx,
    topic: &str,
    index: i32,
    records: &[u8],
    version: i16,
) -> PartitionProduceResponse {
    if index < 0 {
        return failed(
            index,
            error::of(ResponseError::UnknownTopicOrPartition),
            None,
        );
    }
    if records.is_empty() {
        return failed(
            index,
            error::of(ResponseError::InvalidRecord),
            Some("a Produce needs one record batch per partition".into()),
        );
    }
    // The one place a produced batch's header is parsed; the core checks the rest.
    let batch = match ParsedBatch::split_first(records) {
        Ok(batch) => batch,
        Err(BatchError::Malformed(why)) => {
            return failed(
                index,
                error::of(ResponseError::InvalidRecord),
                Some(why.into()),
            )
        }
        Err(_) => {
            return failed(
                index,
                error::of(ResponseError::CorruptMessage),
                Some("truncated record batch".into()),
            )
        }
    };
    let (len, count) = (batch.len(), batch.header().record_count.max(0));
    if len < records.len() {
        return failed(
            index,
            error::of(ResponseError::InvalidRecord),
            Some(format!(
                "Produce v{version} takes exactly one record batch per partition; {} more bytes follow it",
                records.len() - len
            )),
        );
    }
    if version < 7 && batch.header().attributes & 0x7 == 4 {
        return failed(
            index,
            error::of(ResponseError::UnsupportedCompressionType),
            Some(format!(
                "Produce v{version} cannot carry zstd; it needs v7 or later"
            )),
        );
    }
    match ctx.core.produce(topic, index as u32, batch).await {
        Ok(a) => {
            crate::observe::metrics().written("kafka", topic, count as u64, len as u64);
            PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(NONE)
                .with_base_offset(a.base_offset)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(a.log_start)
        }
        Err(e) => {
            let message = match &e {
                CoreError::Storage(_) | CoreError::Internal(_) => None,
                other => Some(other.to_string()),
            };
            failed(index, error::code(&e), message)
        }
    }
}

pub fn init_producer_id(ctx: &KafkaCtx, r: InitProducerIdRequest) -> InitProducerIdResponse {
    if transactional(&r.transactional_id) {
        return InitProducerIdResponse::default()
            .with_error_code(error::of(ResponseError::TransactionalIdAuthorizationFailed))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    // Without a transactional id Kafka hands out a new id at epoch 0 whatever the client
    // presents (an idempotent producer bumps its epoch itself, KIP-360): bumping a presented
    // epoch unchecked would let any client fence any producer.
    InitProducerIdResponse::default()
        .with_error_code(NONE)
        .with_producer_id(ProducerId(ctx.core.allocate_producer_id()))
        .with_producer_epoch(0)
}
