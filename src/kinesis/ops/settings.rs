//! Stream settings: retention, mode, encryption, enhanced monitoring, max record size, and
//! the account limits.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::shapes::{Empty, StreamModeDetails};
use super::Ctx;
use crate::core::{MAX_RETENTION_HOURS, MIN_RETENTION_HOURS};
use crate::kinesis::error::ApiError;
use crate::kinesis::validate::{int_range, required, resolve_stream, stream_name_from_arn};

const MIN_RETENTION: i64 = MIN_RETENTION_HOURS as i64;
const MAX_RETENTION: i64 = MAX_RETENTION_HOURS as i64;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetentionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    retention_period_hours: Option<i64>,
}

fn retention_hours(i: &RetentionInput) -> Result<(String, u32), ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let hours = required(i.retention_period_hours, "retentionPeriodHours")?;
    if hours < MIN_RETENTION {
        return Err(ApiError::invalid_argument(format!(
            "Minimum allowed retention period is {MIN_RETENTION} hours. Requested retention period ({hours} hours) is too short."
        )));
    }
    if hours > MAX_RETENTION {
        return Err(ApiError::invalid_argument(format!(
            "Maximum allowed retention period is {MAX_RETENTION} hours. Requested retention period ({hours} hours) is too long."
        )));
    }
    Ok((name, hours as u32))
}

pub async fn increase_retention(ctx: Arc<Ctx>, i: RetentionInput) -> Result<Empty, ApiError> {
    let (name, hours) = retention_hours(&i)?;
    ctx.core
        .update_stream::<_, ApiError>(&name, |s| {
            if hours < s.retention_hours {
                return Err(ApiError::invalid_argument(format!(
                    "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({} hours). Use DecreaseRetentionPeriod API.",
                    s.name, s.retention_hours
                )));
            }
            s.retention_hours = hours;
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

pub async fn decrease_retention(ctx: Arc<Ctx>, i: RetentionInput) -> Result<Empty, ApiError> {
    let (name, hours) = retention_hours(&i)?;
    ctx.core
        .update_stream::<_, ApiError>(&name, |s| {
            if hours > s.retention_hours {
                return Err(ApiError::invalid_argument(format!(
                    "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({} hours). Use IncreaseRetentionPeriod API.",
                    s.name, s.retention_hours
                )));
            }
            s.retention_hours = hours;
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
pub struct DescribeLimitsInput {}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLimitsOutput {
    shard_limit: u32,
    open_shard_count: u32,
    on_demand_stream_count: u32,
    on_demand_stream_count_limit: u32,
}

pub async fn describe_limits(
    ctx: Arc<Ctx>,
    _i: DescribeLimitsInput,
) -> Result<DescribeLimitsOutput, ApiError> {
    let l = ctx.core.limits();
    Ok(DescribeLimitsOutput {
        shard_limit: l.shard_limit,
        open_shard_count: l.open_shard_count,
        on_demand_stream_count: l.on_demand_stream_count,
        on_demand_stream_count_limit: l.on_demand_stream_count_limit,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamModeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    stream_mode_details: Option<StreamModeDetails>,
}

pub async fn update_stream_mode(
    ctx: Arc<Ctx>,
    i: UpdateStreamModeInput,
) -> Result<Empty, ApiError> {
    let name = stream_name_from_arn(&required(i.stream_arn, "streamARN")?)?;
    let mode = required(i.stream_mode_details, "streamModeDetails")?.parse()?;
    ctx.core
        .update_stream::<_, ApiError>(&name, |s| {
            if s.mode == mode {
                return Err(ApiError::invalid_argument(format!(
                    "Stream {} is already in {} mode.",
                    s.name,
                    mode.as_str()
                )));
            }
            s.mode = mode;
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    encryption_type: Option<String>,
    key_id: Option<String>,
}

fn encryption_args(i: EncryptionInput) -> Result<(String, String), ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let kind = required(i.encryption_type, "encryptionType")?;
    match kind.as_str() {
        "KMS" => {}
        "NONE" => {
            return Err(ApiError::invalid_argument(
                "EncryptionType NONE is not valid here; use KMS.",
            ))
        }
        other => {
            return Err(ApiError::constraint(
                other,
                "encryptionType",
                "Member must satisfy enum value set: [KMS, NONE]",
            ))
        }
    }
    let key = required(i.key_id, "keyId")?;
    if key.is_empty() || key.len() > 2048 {
        return Err(ApiError::constraint(
            &key,
            "keyId",
            "Member must have length between 1 and 2048",
        ));
    }
    Ok((name, key))
}

pub async fn start_encryption(ctx: Arc<Ctx>, i: EncryptionInput) -> Result<Empty, ApiError> {
    let (name, key) = encryption_args(i)?;
    ctx.core
        .update_stream::<_, ApiError>(&name, |s| {
            s.encryption_key = Some(key);
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

pub async fn stop_encryption(ctx: Arc<Ctx>, i: EncryptionInput) -> Result<Empty, ApiError> {
    let (name, _) = encryption_args(i)?;
    ctx.core
        .update_stream::<_, ApiError>(&name, |s| {
            s.encryption_key = None;
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

const METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_level_metrics: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringOutput {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    current_shard_level_metrics: Vec<String>,
    desired_shard_level_metrics: Vec<String>,
}

async fn set_monitoring(
    ctx: Arc<Ctx>,
    i: MonitoringInput,
    enable: bool,
) -> Result<MonitoringOutput, ApiError> {
    let name = resolve_stream(i.stream_name.as_deref(), i.stream_arn.as_deref())?;
    let metrics = required(i.shard_level_metrics, "shardLevelMetrics")?;
    if metrics.is_empty() || metrics.len() > 7 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'shardLevelMetrics' failed to satisfy constraint: Member must have length between 1 and 7 (got {})",
            metrics.len()
        )));
    }
    let mut wanted = BTreeSet::new();
    for m in &metrics {
        if m == "ALL" {
            wanted.extend(METRICS.iter().map(|s| s.to_string()));
        } else if METRICS.contains(&m.as_str()) {
            wanted.insert(m.clone());
        } else {
            return Err(ApiError::constraint(
                m,
                "shardLevelMetrics",
                "Member must satisfy enum value set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]",
            ));
        }
    }
    let (current, desired) = ctx
        .core
        .update_stream::<_, ApiError>(&name, |s| {
            let current: Vec<String> = s.shard_level_metrics.iter().cloned().collect();
            if enable {
                s.shard_level_metrics.extend(wanted);
            } else {
                s.shard_level_metrics.retain(|m| !wanted.contains(m));
            }
            Ok((current, s.shard_level_metrics.iter().cloned().collect()))
        })
        .await?;
    Ok(MonitoringOutput {
        stream_arn: ctx.stream_arn(&name),
        stream_name: name,
        current_shard_level_metrics: current,
        desired_shard_level_metrics: desired,
    })
}

pub async fn enable_monitoring(
    ctx: Arc<Ctx>,
    i: MonitoringInput,
) -> Result<MonitoringOutput, ApiError> {
    set_monitoring(ctx, i, true).await
}

pub async fn disable_monitoring(
    ctx: Arc<Ctx>,
    i: MonitoringInput,
) -> Result<MonitoringOutput, ApiError> {
    set_monitoring(ctx, i, false).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateMaxRecordSizeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: Option<i64>,
}

pub async fn update_max_record_size(
    ctx: Arc<Ctx>,
    i: UpdateMaxRecordSizeInput,
) -> Result<Empty, ApiError> {
    let name = stream_name_from_arn(&required(i.stream_arn, "streamARN")?)?;
    let kib = int_range(
        required(i.max_record_size_in_kib, "maxRecordSizeInKiB")?,
        "maxRecordSizeInKiB",
        1024,
        10240,
    )? as u32;
    ctx.core
        .update_stream::<_, ApiError>(&name, |s| {
            s.max_record_kib = kib;
            Ok(())
        })
        .await?;
    Ok(Empty {})
}
