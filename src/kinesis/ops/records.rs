//! Record traffic: PutRecord, PutRecords, GetShardIterator, GetRecords.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::shapes::{hash_range, HashKeyRange};
use super::Ctx;
use std::ops::Range;

use crate::core::catalog::Shard;
use crate::core::catalog::{shard_id, KeyHash};
use crate::core::error::CoreError;
use crate::core::hashing::md5_hash_key;
use crate::core::seqno::{is_decimal_sequence, SeqNo};
use crate::core::{now_ms, IteratorStart, PutInput, ReadRecord};
use crate::kinesis::error::ApiError;
use crate::kinesis::validate::{self, int_range, required, resolve_stream};
use crate::protocol::kinesis::aggregation;
use crate::protocol::kinesis::codec::{Blob, Timestamp};

/// The largest PutRecords request, counting data and partition keys.
const MAX_PUT_RECORDS_BYTES: usize = 10 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    sequence_number_for_ordering: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    shard_id: String,
    sequence_number: String,
    encryption_type: &'static str,
}

fn put_input(
    data: Option<Blob>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    at: &str,
) -> Result<PutInput, ApiError> {
    let data = required(data, &format!("{at}data"))?;
    let partition_key = required(partition_key, &format!("{at}partitionKey"))?;
    validate::partition_key(&partition_key)?;
    let explicit_hash_key = explicit_hash_key
        .map(|h| validate::hash_key(&h, &format!("{at}explicitHashKey")))
        .transpose()?;
    Ok(PutInput {
        partition_key,
        data: data.0,
        explicit_hash_key,
        route_hash: None,
    })
}

/// Where one request record landed: its shard and sequence number.
struct Placed {
    shard_id: String,
    sequence_number: String,
}

/// Writes request records, splitting KPL aggregates into their user records first
/// (reference §4g). Each request record answers with its first user record's sequence
/// number and the shard the KPL predicted for it (the one whose range holds the aggregate's
/// hash key), so the KPL's wrong-shard check stays quiet. A record fails if any part fails.
async fn put_split(
    ctx: &Ctx,
    name: &str,
    inputs: Vec<PutInput>,
) -> Result<Vec<Result<Placed, CoreError>>, ApiError> {
    let stream = ctx.core.stream(name)?;
    // Kinesis limits apply to the records as sent, before any aggregate is split (§4g).
    let limit = stream.max_record_kib as usize * 1024;
    for r in &inputs {
        let size = r.data.len() + r.partition_key.len();
        if size > limit {
            return Err(CoreError::InvalidArgument(format!(
                "Record size {size} bytes (data plus partition key) exceeds the maximum record size of {} KiB for stream {name}.",
                stream.max_record_kib
            ))
            .into());
        }
    }
    let mut parts: Vec<PutInput> = Vec::with_capacity(inputs.len());
    // Per request record: its parts, and the predicted shard when it was an aggregate.
    let mut spans: Vec<(Range<usize>, Option<u32>)> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let start = parts.len();
        match aggregation::split(&input.data) {
            Some(users) => {
                let outer_hash = input
                    .explicit_hash_key
                    .unwrap_or_else(|| md5_hash_key(input.partition_key.as_bytes()));
                let keep_together = stream.key_hash != KeyHash::KafkaMurmur2;
                parts.extend(users.into_iter().map(|u| PutInput {
                    partition_key: u.partition_key,
                    data: u.data,
                    explicit_hash_key: u.explicit_hash_key,
                    route_hash: keep_together.then_some(outer_hash),
                }));
                // Kept together, the parts land on the predicted shard by construction and
                // report it from the write itself; spread by murmur2, they report the shard
                // whose advertised range the KPL predicted.
                let predicted = if keep_together {
                    None
                } else {
                    stream.shard_for_hash(outer_hash).map(|s| s.partition)
                };
                spans.push((start..parts.len(), predicted));
            }
            None => {
                parts.push(input);
                spans.push((start..parts.len(), None));
            }
        }
    }
    let written: u64 = parts
        .iter()
        .map(|p| (p.data.len() + p.partition_key.len()) as u64)
        .sum();
    let count = parts.len() as u64;
    let results = ctx.core.put_records(name, parts).await?;
    let failed = results.iter().filter(|r| r.is_err()).count() as u64;
    crate::observe::metrics().written("kinesis", name, count - failed, written);
    let mut results = results.into_iter();
    let mut out = Vec::with_capacity(spans.len());
    for (range, predicted) in spans {
        let mut first: Option<Result<Placed, CoreError>> = None;
        for r in results.by_ref().take(range.len()) {
            match (r, &first) {
                (Ok(o), None) => {
                    first = Some(Ok(Placed {
                        shard_id: shard_id(predicted.unwrap_or(o.partition)),
                        sequence_number: o.sequence_number,
                    }))
                }
                (Err(e), None | Some(Ok(_))) => first = Some(Err(e)),
                _ => {}
            }
        }
        out.push(first.expect("every request record has a part"));
    }
    Ok(out)
}

fn encryption(ctx: &Ctx, stream: &str) -> &'static str {
    match ctx.core.stream(stream) {
        Ok(s) if s.encryption_key.is_some() => "KMS",
        _ => "NONE",
    }
}

pub async fn put_record(ctx: Arc<Ctx>, i: PutRecordInput) -> Result<PutRecordOutput, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    ctx.core.discover(&name).await;
    if let Some(s) = &i.sequence_number_for_ordering {
        if !is_decimal_sequence(s) {
            return Err(ApiError::constraint(
                s,
                "sequenceNumberForOrdering",
                "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})",
            ));
        }
    }
    let input = put_input(i.data, i.partition_key, i.explicit_hash_key, "")?;
    let outcome = put_split(&ctx, &name, vec![input])
        .await?
        .pop()
        .expect("one result per record")?;
    Ok(PutRecordOutput {
        shard_id: outcome.shard_id,
        sequence_number: outcome.sequence_number,
        encryption_type: encryption(&ctx, &name),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsEntry {
    data: Option<Blob>,
    explicit_hash_key: Option<String>,
    partition_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    records: Option<Vec<PutRecordsEntry>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsOutput {
    failed_record_count: usize,
    records: Vec<PutRecordsResultEntry>,
    encryption_type: &'static str,
}

pub async fn put_records(ctx: Arc<Ctx>, i: PutRecordsInput) -> Result<PutRecordsOutput, ApiError> {
    let records = required(i.records, "records")?;
    if records.is_empty() || records.len() > 500 {
        let rule = if records.is_empty() {
            "Member must have length greater than or equal to 1"
        } else {
            "Member must have length less than or equal to 500"
        };
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '[{} records]' at 'records' failed to satisfy constraint: {rule}",
            records.len()
        )));
    }
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    ctx.core.discover(&name).await;
    let inputs = records
        .into_iter()
        .enumerate()
        .map(|(n, r)| {
            put_input(
                r.data,
                r.partition_key,
                r.explicit_hash_key,
                &format!("records.{}.member.", n + 1),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let total: usize = inputs
        .iter()
        .map(|r| r.data.len() + r.partition_key.len())
        .sum();
    if total > MAX_PUT_RECORDS_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "Records size {total} bytes exceeds the limit of {MAX_PUT_RECORDS_BYTES} bytes for a PutRecords request."
        )));
    }
    let results = put_split(&ctx, &name, inputs).await?;
    let mut failed = 0;
    let records = results
        .into_iter()
        .map(|r| match r {
            Ok(o) => PutRecordsResultEntry {
                sequence_number: Some(o.sequence_number),
                shard_id: Some(o.shard_id),
                error_code: None,
                error_message: None,
            },
            Err(_) => {
                failed += 1;
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some("InternalFailure"),
                    error_message: Some("Internal Service Failure".into()),
                }
            }
        })
        .collect();
    Ok(PutRecordsOutput {
        failed_record_count: failed,
        records,
        encryption_type: encryption(&ctx, &name),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    starting_sequence_number: Option<String>,
    timestamp: Option<Timestamp>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorOutput {
    shard_iterator: String,
}

/// An iterator start from its type and the members that go with it (GetShardIterator and
/// SubscribeToShard's StartingPosition).
pub fn iterator_start(
    ctx: &Ctx,
    op: &str,
    name: &str,
    shard: &str,
    kind: &str,
    starting_sequence_number: Option<&str>,
    timestamp: Option<Timestamp>,
) -> Result<IteratorStart, ApiError> {
    let wants_seq = matches!(kind, "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER");
    if !wants_seq && starting_sequence_number.is_some() {
        return Err(ApiError::invalid_argument(format!(
            "Request specified ShardIteratorType {kind} together with a StartingSequenceNumber. Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON, LATEST or AT_TIMESTAMP and no StartingSequenceNumber."
        )));
    }
    let seq = |kind: &str| -> Result<SeqNo, ApiError> {
        let s = starting_sequence_number.ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "StartingSequenceNumber is required for ShardIteratorType {kind}."
            ))
        })?;
        if !is_decimal_sequence(s) {
            return Err(ApiError::constraint(
                s,
                "startingSequenceNumber",
                "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})",
            ));
        }
        SeqNo::parse(s).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "StartingSequenceNumber {s} used in {op} on shard {shard} in stream {name} under account {} is invalid.",
                ctx.core.account_id()
            ))
        })
    };
    let start = match kind {
        "TRIM_HORIZON" => IteratorStart::TrimHorizon,
        "LATEST" => IteratorStart::Latest,
        "AT_SEQUENCE_NUMBER" => IteratorStart::AtSequence(seq("AT_SEQUENCE_NUMBER")?),
        "AFTER_SEQUENCE_NUMBER" => IteratorStart::AfterSequence(seq("AFTER_SEQUENCE_NUMBER")?),
        "AT_TIMESTAMP" => {
            let at = timestamp
                .ok_or_else(|| {
                    ApiError::invalid_argument(
                        "Timestamp is required for ShardIteratorType AT_TIMESTAMP.",
                    )
                })?
                .0;
            let now = now_ms();
            if at > now {
                return Err(ApiError::invalid_argument(format!(
                    "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {at}, currentTimestampInMillis: {now}"
                )));
            }
            IteratorStart::AtTimestamp(at)
        }
        other => {
            return Err(ApiError::constraint(
                other,
                "shardIteratorType",
                "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]",
            ))
        }
    };
    Ok(start)
}

pub async fn get_shard_iterator(
    ctx: Arc<Ctx>,
    i: GetShardIteratorInput,
) -> Result<GetShardIteratorOutput, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    ctx.core.discover(&name).await;
    let shard = required(i.shard_id, "shardId")?;
    let kind = required(i.shard_iterator_type, "shardIteratorType")?;
    validate::name(&shard, "shardId")?;
    let partition = validate::shard_id(&shard, "shardId").map_err(|_| {
        ApiError::resource_not_found(format!(
            "Shard {shard} in stream {name} under account {} does not exist",
            ctx.core.account_id()
        ))
    })?;
    let start = iterator_start(
        &ctx,
        "GetShardIterator",
        &name,
        &shard,
        &kind,
        i.starting_sequence_number.as_deref(),
        i.timestamp,
    )?;
    let shard_iterator = ctx.core.get_shard_iterator(&name, partition, start).await?;
    Ok(GetShardIteratorOutput { shard_iterator })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsInput {
    shard_iterator: Option<String>,
    limit: Option<i64>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordOut {
    sequence_number: String,
    approximate_arrival_timestamp: Timestamp,
    data: Blob,
    partition_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_type: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShard {
    shard_id: String,
    parent_shards: Vec<String>,
    hash_key_range: HashKeyRange,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsOutput {
    records: Vec<RecordOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_shard_iterator: Option<String>,
    millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    child_shards: Vec<ChildShard>,
}

pub fn record_out(r: ReadRecord, encryption: Option<&'static str>) -> RecordOut {
    RecordOut {
        sequence_number: r.sequence_number,
        approximate_arrival_timestamp: Timestamp(r.arrival_ms),
        data: Blob(r.data),
        partition_key: r.partition_key,
        encryption_type: encryption,
    }
}

pub fn child_shard(c: &Shard) -> ChildShard {
    ChildShard {
        shard_id: shard_id(c.partition),
        parent_shards: c.parents.iter().map(|p| shard_id(*p)).collect(),
        hash_key_range: hash_range(c),
    }
}

pub async fn get_records(ctx: Arc<Ctx>, i: GetRecordsInput) -> Result<GetRecordsOutput, ApiError> {
    let iterator = required(i.shard_iterator, "shardIterator")?;
    if iterator.is_empty() || iterator.len() > 512 {
        return Err(ApiError::constraint(
            &iterator,
            "shardIterator",
            "Member must have length between 1 and 512",
        ));
    }
    let limit = int_range(i.limit.unwrap_or(10_000), "limit", 1, 10_000)? as usize;
    if let Some(arn) = &i.stream_arn {
        validate::stream_name_from_arn(arn)?;
    }
    let page = ctx.core.get_records(&iterator, limit).await?;
    let encryption = page.stream.encryption_key.as_ref().map(|_| "KMS");
    let bytes: usize = page
        .records
        .iter()
        .map(|r| r.data.len() + r.partition_key.len())
        .sum();
    crate::observe::metrics().read(
        "kinesis",
        &page.stream.name,
        page.records.len() as u64,
        bytes as u64,
    );
    let child_shards = page.child_shards.iter().map(child_shard).collect();
    Ok(GetRecordsOutput {
        records: page
            .records
            .into_iter()
            .map(|r| record_out(r, encryption))
            .collect(),
        next_shard_iterator: page.next_iterator,
        millis_behind_latest: page.millis_behind_latest,
        child_shards,
    })
}
