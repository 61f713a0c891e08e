//! Fetch (long poll over the log, stored batches sent as they are) and ListOffsets.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};

use crate::core::topic_id;
use crate::kafka::error::{self, NONE};
use crate::kafka::KafkaCtx;

/// The longest a fetch may wait, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// The most one Fetch answer holds, whatever the client asks: Kafka's broker default
/// `fetch.max.bytes` (55 MiB). A first batch larger than that is still sent, as Kafka does.
const FETCH_MAX_BYTES: usize = 55 << 20;

pub async fn fetch(ctx: &KafkaCtx, r: FetchRequest, version: i16) -> FetchResponse {
    let deadline =
        Instant::now() + Duration::from_millis(r.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let max_bytes = if version >= 3 && r.max_bytes > 0 {
        (r.max_bytes as usize).min(FETCH_MAX_BYTES)
    } else {
        FETCH_MAX_BYTES
    };
    let min_bytes = r.min_bytes.max(0) as usize;
    // Topic ids (v13+) resolve to names once per request.
    let names: Vec<Option<String>> = r
        .topics
        .iter()
        .map(|t| {
            if version >= 13 {
                ctx.core
                    .streams()
                    .iter()
                    .find(|s| topic_id(s) == t.topic_id)
                    .map(|s| s.name.clone())
            } else {
                Some(t.topic.0.to_string())
            }
        })
        .collect();
    loop {
        let signal = ctx.core.append_signal().notified();
        tokio::pin!(signal);
        signal.as_mut().enable();
        let (responses, total, errors) = read_once(ctx, &r, &names, max_bytes, version).await;
        let now = Instant::now();
        if total >= min_bytes.max(1) || errors || now >= deadline {
            return FetchResponse::default()
                .with_error_code(NONE)
                .with_session_id(0)
                .with_responses(responses);
        }
        let _ = tokio::time::timeout(deadline - now, signal).await;
    }
}

async fn read_once(
    ctx: &KafkaCtx,
    r: &FetchRequest,
    names: &[Option<String>],
    max_bytes: usize,
    version: i16,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let mut responses = Vec::with_capacity(r.topics.len());
    for (t, name) in r.topics.iter().zip(names) {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let base = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            let Some(name) = name else {
                errors = true;
                partitions.push(base.with_error_code(error::of(ResponseError::UnknownTopicId)));
                continue;
            };
            if p.partition < 0 {
                errors = true;
                partitions
                    .push(base.with_error_code(error::of(ResponseError::UnknownTopicOrPartition)));
                continue;
            }
            let room = max_bytes.saturating_sub(total);
            if room == 0 {
                // The response is full: later partitions report their offsets, no records.
                match ctx
                    .core
                    .partition_offsets_checked(name, p.partition as u32)
                    .await
                {
                    Ok(o) => partitions.push(
                        base.with_error_code(NONE)
                            .with_high_watermark(o.high_watermark)
                            .with_last_stable_offset(o.high_watermark)
                            .with_log_start_offset(o.log_start)
                            .with_records(Some(Bytes::new())),
                    ),
                    Err(e) => {
                        errors = true;
                        partitions.push(base.with_error_code(error::code(&e)));
                    }
                }
                continue;
            }
            // Only the first batch of a response may exceed the limits (as Kafka), so a
            // consumer can always move past a batch larger than its fetch sizes.
            let want = if total == 0 {
                (p.partition_max_bytes.max(0) as usize).min(room).max(1)
            } else {
                (p.partition_max_bytes.max(0) as usize).min(room)
            };
            match ctx
                .core
                .fetch(name, p.partition as u32, p.fetch_offset, want)
                .await
            {
                Ok(read) => {
                    let offsets = read.offsets;
                    let count: i64 = read
                        .batches
                        .iter()
                        .filter_map(|b| crate::protocol::kafka::record_batch::parse_header(b).ok())
                        .map(|h| h.record_count.max(0) as i64)
                        .sum();
                    let records = concat(read.batches);
                    if count > 0 {
                        crate::observe::metrics().read(
                            "kafka",
                            name,
                            count as u64,
                            records.len() as u64,
                        );
                    }
                    total += records.len();
                    partitions.push(
                        base.with_error_code(NONE)
                            .with_high_watermark(offsets.high_watermark)
                            .with_last_stable_offset(offsets.high_watermark)
                            .with_log_start_offset(offsets.log_start)
                            .with_records(Some(records)),
                    );
                }
                Err(e) => {
                    errors = true;
                    crate::observe::metrics().error("kafka", "Fetch", &error::code(&e).to_string());
                    let offsets = ctx
                        .core
                        .partition_offsets_checked(name, p.partition as u32)
                        .await;
                    let mut out = base.with_error_code(error::code(&e));
                    if let Ok(o) = offsets {
                        out = out
                            .with_high_watermark(o.high_watermark)
                            .with_last_stable_offset(o.high_watermark)
                            .with_log_start_offset(o.log_start);
                    }
                    partitions.push(out);
                }
            }
        }
        let mut topic = FetchableTopicResponse::default().with_partitions(partitions);
        if version >= 13 {
            topic = topic.with_topic_id(t.topic_id);
        } else {
            topic = topic.with_topic(t.topic.clone());
        }
        responses.push(topic);
    }
    (responses, total, errors)
}

/// One buffer for a partition's batches: a single batch is sent without copying.
fn concat(mut batches: Vec<Bytes>) -> Bytes {
    match batches.len() {
        0 => Bytes::new(),
        1 => batches.pop().expect("one batch"),
        _ => {
            let mut out = BytesMut::with_capacity(batches.iter().map(|b| b.len()).sum());
            for b in batches {
                out.extend_from_slice(&b);
            }
            out.freeze()
        }
    }
}

pub async fn list_offsets(ctx: &KafkaCtx, r: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let name = t.name.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            partitions.push(list_partition(ctx, &name, p).await);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

async fn list_partition(
    ctx: &KafkaCtx,
    name: &str,
    p: ListOffsetsPartition,
) -> ListOffsetsPartitionResponse {
    let out = ListOffsetsPartitionResponse::default()
        .with_partition_index(p.partition_index)
        .with_leader_epoch(-1)
        .with_timestamp(-1)
        .with_offset(-1);
    if p.partition_index < 0 {
        return out.with_error_code(error::of(ResponseError::UnknownTopicOrPartition));
    }
    let part = p.partition_index as u32;
    let offsets = match ctx.core.partition_offsets_checked(name, part).await {
        Ok(o) => o,
        Err(e) => return out.with_error_code(error::code(&e)),
    };
    let found = match p.timestamp {
        -1 => Ok((offsets.high_watermark, -1)),
        -2 => Ok((offsets.log_start, -1)),
        -3 => ctx
            .core
            .record_with_max_timestamp(name, part)
            .await
            .map(|found| found.unwrap_or((-1, -1))),
        ts => ctx
            .core
            .record_for_timestamp(name, part, ts)
            .await
            .map(|found| found.unwrap_or((-1, -1))),
    };
    match found {
        Ok((offset, ts)) => out
            .with_error_code(NONE)
            .with_offset(offset)
            .with_timestamp(ts),
        Err(e) => out.with_error_code(error::code(&e)),
    }
}
