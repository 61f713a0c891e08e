//! SplitShard, MergeShards and UpdateShardCount.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::shapes::Empty;
use super::Ctx;
use crate::kinesis::error::ApiError;
use crate::kinesis::validate::{self, int_range, required, resolve_stream};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SplitShardInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_split: Option<String>,
    new_starting_hash_key: Option<String>,
}

pub async fn split_shard(ctx: Arc<Ctx>, i: SplitShardInput) -> Result<Empty, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let shard = validate::shard_id(&required(i.shard_to_split, "shardToSplit")?, "shardToSplit")?;
    let key = validate::hash_key(
        &required(i.new_starting_hash_key, "newStartingHashKey")?,
        "newStartingHashKey",
    )?;
    ctx.core.split_shard(&name, shard, key).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MergeShardsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_merge: Option<String>,
    adjacent_shard_to_merge: Option<String>,
}

pub async fn merge_shards(ctx: Arc<Ctx>, i: MergeShardsInput) -> Result<Empty, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let a = validate::shard_id(&required(i.shard_to_merge, "shardToMerge")?, "shardToMerge")?;
    let b = validate::shard_id(
        &required(i.adjacent_shard_to_merge, "adjacentShardToMerge")?,
        "adjacentShardToMerge",
    )?;
    ctx.core.merge_shards(&name, a, b).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    target_shard_count: Option<i64>,
    scaling_type: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountOutput {
    stream_name: String,
    current_shard_count: u32,
    target_shard_count: u32,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

pub async fn update_shard_count(
    ctx: Arc<Ctx>,
    i: UpdateShardCountInput,
) -> Result<UpdateShardCountOutput, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let target = int_range(
        required(i.target_shard_count, "targetShardCount")?,
        "targetShardCount",
        1,
        1_000_000,
    )? as u32;
    match required(i.scaling_type, "scalingType")?.as_str() {
        "UNIFORM_SCALING" => {}
        other => {
            return Err(ApiError::constraint(
                other,
                "scalingType",
                "Member must satisfy enum value set: [UNIFORM_SCALING]",
            ))
        }
    }
    ctx.throttle.may_scale(&name)?;
    let current = ctx
        .core
        .update_shard_count(&name, target)
        .await
        .inspect_err(|_| ctx.throttle.unscaled(&name))?;
    Ok(UpdateShardCountOutput {
        stream_arn: ctx.stream_arn(&name),
        stream_name: name,
        current_shard_count: current,
        target_shard_count: target,
    })
}
