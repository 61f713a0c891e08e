//! Stream lifecycle and description: CreateStream, DeleteStream, DescribeStream,
//! DescribeStreamSummary, ListStreams.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::paging;
use super::shapes::{
    arn, encryption_type, enhanced_monitoring, shard_out, Empty, EnhancedMetrics, ShardOut,
    StreamModeDetails,
};
use super::tags::{check_tags, key_hash_from_tags};
use super::Ctx;
use crate::core::catalog::{parse_shard_id, KeyHash, Stream, StreamMode};
use crate::core::CreateStreamRequest;
use crate::kinesis::error::ApiError;
use crate::kinesis::validate::{self, int_range, required, resolve_stream};
use crate::protocol::kinesis::codec as ts;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamInput {
    stream_name: Option<String>,
    shard_count: Option<i64>,
    stream_mode_details: Option<StreamModeDetails>,
    tags: Option<BTreeMap<String, String>>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: Option<i64>,
}

pub async fn create_stream(ctx: Arc<Ctx>, i: CreateStreamInput) -> Result<Empty, ApiError> {
    let name = required(i.stream_name, "streamName")?;
    validate::stream_name(&name)?;
    let shard_count = i
        .shard_count
        .map(|n| int_range(n, "shardCount", 1, 1_000_000).map(|n| n as u32))
        .transpose()?;
    let mode = match &i.stream_mode_details {
        Some(d) => d.parse()?,
        None => StreamMode::Provisioned,
    };
    if mode == StreamMode::Provisioned && shard_count.is_none() {
        return Err(ApiError::invalid_argument(format!(
            "ShardCount is required to create stream {name} in PROVISIONED mode."
        )));
    }
    let max_record_kib = i
        .max_record_size_in_kib
        .map(|n| int_range(n, "maxRecordSizeInKiB", 1024, 10240).map(|n| n as u32))
        .transpose()?;
    let tags = i.tags.unwrap_or_default();
    check_tags(&tags, 0)?;
    let key_hash = key_hash_from_tags(&tags, ctx.core.streams_config().default_key_hash_kinesis)?;
    ctx.core
        .create_stream(CreateStreamRequest {
            name,
            shard_count,
            mode,
            max_record_kib,
            tags,
            key_hash,
        })
        .await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    enforce_consumer_deletion: Option<bool>,
}

pub async fn delete_stream(ctx: Arc<Ctx>, i: DeleteStreamInput) -> Result<Empty, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let enforce = i.enforce_consumer_deletion.unwrap_or(false);
    ctx.core.delete_stream(&name, !enforce).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescription {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    shards: Vec<ShardOut>,
    has_more_shards: bool,
    retention_period_hours: u32,
    stream_creation_timestamp: ts::Timestamp,
    enhanced_monitoring: Vec<EnhancedMetrics>,
    encryption_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamOutput {
    stream_description: StreamDescription,
}

pub async fn describe_stream(
    ctx: Arc<Ctx>,
    i: DescribeStreamInput,
) -> Result<DescribeStreamOutput, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let limit = int_range(i.limit.unwrap_or(100), "limit", 1, 10_000)? as usize;
    let after = match &i.exclusive_start_shard_id {
        Some(id) => {
            validate::name(id, "exclusiveStartShardId")?;
            parse_shard_id(id).map(|p| p as i64).unwrap_or(-1)
        }
        None => -1,
    };
    let s = ctx.core.described(&name).await?;
    let mut shards = s.shards.iter().filter(|sh| sh.partition as i64 > after);
    let page: Vec<ShardOut> = shards.by_ref().take(limit).map(shard_out).collect();
    let has_more_shards = shards.next().is_some();
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_name: s.name.clone(),
            stream_arn: arn(&ctx, &s),
            stream_status: s.status.as_str(),
            stream_mode_details: StreamModeDetails::of(s.mode),
            shards: page,
            has_more_shards,
            retention_period_hours: s.retention_hours,
            stream_creation_timestamp: ts::Timestamp(s.created_ms),
            enhanced_monitoring: enhanced_monitoring(&s),
            encryption_type: encryption_type(&s),
            key_id: s.encryption_key.clone(),
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamRefInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescriptionSummary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    retention_period_hours: u32,
    stream_creation_timestamp: ts::Timestamp,
    enhanced_monitoring: Vec<EnhancedMetrics>,
    encryption_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    open_shard_count: usize,
    consumer_count: usize,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: u32,
    /// Read by KPL 1.1: `USER_PARTITION_KEY` lets it aggregate per predicted shard; `AUTO`
    /// makes it send every user record on its own, which is what murmur2 and spread streams
    /// need (their shards are not MD5 ranges).
    record_distribution_strategy: &'static str,
}

/// How a stream places records, in the API's RecordDistributionStrategy terms.
fn record_distribution_strategy(s: &Stream) -> &'static str {
    match s.key_hash {
        KeyHash::KinesisMd5 => "USER_PARTITION_KEY",
        KeyHash::KafkaMurmur2 | KeyHash::Auto => "AUTO",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamSummaryOutput {
    stream_description_summary: StreamDescriptionSummary,
}

pub async fn describe_stream_summary(
    ctx: Arc<Ctx>,
    i: StreamRefInput,
) -> Result<DescribeStreamSummaryOutput, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let s = ctx.core.described(&name).await?;
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            stream_name: s.name.clone(),
            stream_arn: arn(&ctx, &s),
            stream_status: s.status.as_str(),
            stream_mode_details: StreamModeDetails::of(s.mode),
            retention_period_hours: s.retention_hours,
            stream_creation_timestamp: ts::Timestamp(s.created_ms),
            enhanced_monitoring: enhanced_monitoring(&s),
            encryption_type: encryption_type(&s),
            key_id: s.encryption_key.clone(),
            open_shard_count: s.open_shard_count(),
            consumer_count: {
                let now = crate::core::now_ms();
                s.consumers
                    .iter()
                    .filter(|c| c.status(now).is_some())
                    .count()
            },
            max_record_size_in_kib: s.max_record_kib,
            record_distribution_strategy: record_distribution_strategy(&s),
        },
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsInput {
    limit: Option<i64>,
    exclusive_start_stream_name: Option<String>,
    next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSummary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    stream_creation_timestamp: ts::Timestamp,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsOutput {
    stream_names: Vec<String>,
    has_more_streams: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
    stream_summaries: Vec<StreamSummary>,
}

pub async fn list_streams(
    ctx: Arc<Ctx>,
    i: ListStreamsInput,
) -> Result<ListStreamsOutput, ApiError> {
    let limit = int_range(i.limit.unwrap_or(100), "limit", 1, 10_000)? as usize;
    let after = match (&i.next_token, &i.exclusive_start_stream_name) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_argument(
                "NextToken and ExclusiveStartStreamName cannot be provided together.",
            ))
        }
        (Some(t), None) => {
            validate::token(t, "nextToken")?;
            Some(open_list_token(&ctx, t)?)
        }
        (None, Some(n)) => {
            validate::name(n, "exclusiveStartStreamName")?;
            Some(n.clone())
        }
        (None, None) => None,
    };
    let streams = ctx.core.streams();
    let mut rest = streams
        .iter()
        .filter(|s| after.as_deref().is_none_or(|a| s.name.as_str() > a));
    let page: Vec<_> = rest.by_ref().take(limit).collect();
    let has_more_streams = rest.next().is_some();
    let next_token = match page.last() {
        Some(last) if has_more_streams => Some(seal_list_token(&ctx, &last.name)),
        _ => None,
    };
    Ok(ListStreamsOutput {
        stream_names: page.iter().map(|s| s.name.clone()).collect(),
        has_more_streams,
        next_token,
        stream_summaries: page
            .iter()
            .map(|s| StreamSummary {
                stream_name: s.name.clone(),
                stream_arn: arn(&ctx, s),
                stream_status: s.status.as_str(),
                stream_mode_details: StreamModeDetails::of(s.mode),
                stream_creation_timestamp: ts::Timestamp(s.created_ms),
            })
            .collect(),
    })
}

fn seal_list_token(ctx: &Ctx, last: &str) -> String {
    paging::seal(ctx, "streams", &[last])
}

fn open_list_token(ctx: &Ctx, token: &str) -> Result<String, ApiError> {
    Ok(paging::open(ctx, "streams", 1, token)?.remove(0))
}
