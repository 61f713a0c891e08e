//! Record traffic: PutRecord, PutRecords, GetShardIterator, GetRecords.

use std::sync::Arc;

use super::shapes::hash_range;
use super::Ctx;

use crate::core::catalog::shard_id;
use crate::core::catalog::Shard;
use crate::core::seqno::{is_decimal_sequence, SeqNo};
use crate::core::{now_ms, IteratorStart, PutInput, PutReport, ReadRecord, UserRecord};
use crate::kinesis::error::ApiError;
use crate::kinesis::validate::{self, int_range, required, resolve_stream};
use crate::protocol::kinesis::aggregation;
use crate::protocol::kinesis::codec::{Blob, Timestamp};
use crate::protocol::kinesis::shapes::{
    ChildShard, GetRecordsInput, GetRecordsOutput, GetShardIteratorInput, GetShardIteratorOutput,
    PutRecordInput, PutRecordOutput, PutRecordsInput, PutRecordsOutput, PutRecordsResultEntry,
    Record,
};

/// The largest PutRecords request, counting data and partition keys.
const MAX_PUT_RECORDS_BYTES: usize = 10 << 20;

/// A request record, with its KPL user records when its data is an aggregate (§4g): a
/// record that fails any aggregate check is stored unchanged, as KCL would pass it through.
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
    let user_records = aggregation::split(&data.0).map(|users| {
        users
            .into_iter()
            .map(|u| UserRecord {
                partition_key: u.partition_key,
                data: u.data,
                explicit_hash_key: u.explicit_hash_key,
            })
            .collect()
    });
    Ok(PutInput {
        partition_key,
        data: data.0,
        explicit_hash_key,
        user_records,
    })
}

/// Writes request records through the core and counts what was written.
async fn put(ctx: &Ctx, name: &str, inputs: Vec<PutInput>) -> Result<PutReport, ApiError> {
    let report = ctx.core.put_records(name, inputs).await?;
    crate::observe::metrics().written(
        "kinesis",
        name,
        report.written_records,
        report.written_bytes,
    );
    Ok(report)
}

fn encryption_type(report: &PutReport) -> &'static str {
    if report.encrypted {
        "KMS"
    } else {
        "NONE"
    }
}

pub async fn put_record(ctx: Arc<Ctx>, i: PutRecordInput) -> Result<PutRecordOutput, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
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
    let routed = if ctx.throttle.is_on() {
        let s = ctx.core.found_stream(&name).await?;
        s.route(&input.partition_key, input.explicit_hash_key, 0)
            .map(|shard| shard.partition)
    } else {
        None
    };
    if let Some(partition) = routed {
        let bytes = input.data.len() + input.partition_key.len();
        if !ctx.throttle.write(&name, partition, bytes) {
            return Err(ApiError::provisioned_throughput_exceeded(format!(
                "Rate exceeded for shard {} in stream {name} under account {}.",
                shard_id(partition),
                ctx.core.account_id()
            )));
        }
    }
    let mut report = put(&ctx, &name, vec![input]).await?;
    let encryption_type = encryption_type(&report);
    let outcome = report.outcomes.pop().expect("one outcome per record")?;
    Ok(PutRecordOutput {
        shard_id: shard_id(outcome.partition),
        sequence_number: outcome.sequence_number,
        encryption_type: encryption_type.into(),
    })
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
    // Entries over their shard's write limit (`kinesis.throttling: aws`) fail alone.
    let throttled: Vec<bool> = if !ctx.throttle.is_on() {
        vec![false; inputs.len()]
    } else {
        let s = ctx.core.found_stream(&name).await?;
        inputs
            .iter()
            .map(
                |r| match s.route(&r.partition_key, r.explicit_hash_key, 0) {
                    Some(shard) => !ctx.throttle.write(
                        &name,
                        shard.partition,
                        r.data.len() + r.partition_key.len(),
                    ),
                    None => false,
                },
            )
            .collect()
    };
    let inputs: Vec<_> = inputs
        .into_iter()
        .zip(&throttled)
        .filter(|(_, t)| !**t)
        .map(|(r, _)| r)
        .collect();
    let report = if inputs.is_empty() {
        PutReport::default()
    } else {
        put(&ctx, &name, inputs).await?
    };
    let encryption_type = encryption_type(&report);
    let mut failed = 0;
    let mut outcomes = report.outcomes.into_iter();
    let records = throttled
        .iter()
        .map(|t| if *t { None } else { outcomes.next() })
        .map(|r| match r {
            None => {
                failed += 1;
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some("ProvisionedThroughputExceededException".into()),
                    error_message: Some("Rate exceeded for shard in stream under account.".into()),
                }
            }
            Some(Ok(o)) => PutRecordsResultEntry {
                sequence_number: Some(o.sequence_number),
                shard_id: Some(shard_id(o.partition)),
                error_code: None,
                error_message: None,
            },
            Some(Err(_)) => {
                failed += 1;
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some("InternalFailure".into()),
                    error_message: Some("Internal Service Failure".into()),
                }
            }
        })
        .collect();
    Ok(PutRecordsOutput {
        failed_record_count: failed,
        records,
        encryption_type: encryption_type.into(),
    })
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
    // On a shard mirrored from a Kinesis source and cut over, a number that is not strait's
    // own for it is the source's (`core/origin.rs`).
    let origin = || -> Option<String> {
        let s = starting_sequence_number?;
        let stream = ctx.core.stream(name).ok()?;
        let sh = stream.shard(crate::core::catalog::parse_shard_id(shard)?)?;
        sh.origin_end?;
        let ours = SeqNo::parse(s).is_some_and(|q| q.shard_create_secs == sh.created_secs);
        (!ours && is_decimal_sequence(s)).then(|| s.to_string())
    };
    let start = match kind {
        "TRIM_HORIZON" => IteratorStart::TrimHorizon,
        "LATEST" => IteratorStart::Latest,
        "AT_SEQUENCE_NUMBER" => match origin() {
            Some(s) => IteratorStart::AtOrigin(s),
            None => IteratorStart::AtSequence(seq("AT_SEQUENCE_NUMBER")?),
        },
        "AFTER_SEQUENCE_NUMBER" => match origin() {
            Some(s) => IteratorStart::AfterOrigin(s),
            None => IteratorStart::AfterSequence(seq("AFTER_SEQUENCE_NUMBER")?),
        },
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
    ctx.throttle.iterator(&name, partition)?;
    let shard_iterator = ctx.core.get_shard_iterator(&name, partition, start).await?;
    Ok(GetShardIteratorOutput { shard_iterator })
}

pub fn record_out(r: ReadRecord, encryption: Option<&'static str>) -> Record {
    Record {
        sequence_number: r.sequence_number,
        approximate_arrival_timestamp: Timestamp(r.arrival_ms),
        data: Blob(r.data),
        partition_key: r.partition_key,
        encryption_type: encryption.map(Into::into),
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
    // Reading has no effect, so a call over the limit may read and then be refused.
    ctx.throttle
        .read(&page.stream.name, page.partition, bytes)?;
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
