//! Output shapes shared by several operations, and their construction from catalog types.

use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::core::catalog::{shard_id, Shard, Stream, StreamMode};
use crate::core::seqno::SeqNo;
use crate::kinesis::error::ApiError;
pub use crate::protocol::kinesis::shapes::{HashKeyRange, SequenceNumberRange, Shard as ShardOut};

pub fn hash_range(s: &Shard) -> HashKeyRange {
    HashKeyRange {
        starting_hash_key: s.start_hash.to_string(),
        ending_hash_key: s.end_hash.to_string(),
    }
}

pub fn shard_out(s: &Shard) -> ShardOut {
    let start = SeqNo::position(s.partition, s.start_offset as u64, s.created_secs);
    let end = s.end_offset.map(|end| {
        if end > s.start_offset {
            let closed_secs = s.closed_ms.unwrap_or(0).max(0) as u64 / 1000;
            SeqNo::record(s.partition, (end - 1) as u64, s.created_secs, closed_secs)
        } else {
            start
        }
        .to_string()
    });
    ShardOut {
        shard_id: shard_id(s.partition),
        parent_shard_id: s.parents.first().map(|p| shard_id(*p)),
        adjacent_parent_shard_id: s.parents.get(1).map(|p| shard_id(*p)),
        hash_key_range: hash_range(s),
        sequence_number_range: SequenceNumberRange {
            starting_sequence_number: start.to_string(),
            ending_sequence_number: end,
        },
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetails {
    pub stream_mode: Option<String>,
}

impl StreamModeDetails {
    pub fn of(mode: StreamMode) -> Self {
        StreamModeDetails {
            stream_mode: Some(mode.as_str().to_string()),
        }
    }

    pub fn parse(&self) -> Result<StreamMode, ApiError> {
        match self.stream_mode.as_deref() {
            Some("PROVISIONED") => Ok(StreamMode::Provisioned),
            Some("ON_DEMAND") => Ok(StreamMode::OnDemand),
            Some(other) => Err(ApiError::constraint(
                other,
                "streamModeDetails.streamMode",
                "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]",
            )),
            None => Err(ApiError::missing("streamModeDetails.streamMode")),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMetrics {
    pub shard_level_metrics: Vec<String>,
}

pub fn enhanced_monitoring(s: &Stream) -> Vec<EnhancedMetrics> {
    vec![EnhancedMetrics {
        shard_level_metrics: s.shard_level_metrics.iter().cloned().collect(),
    }]
}

pub fn encryption_type(s: &Stream) -> &'static str {
    if s.encryption_key.is_some() {
        "KMS"
    } else {
        "NONE"
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Empty {}

/// The ARN of a stream, for outputs.
pub fn arn(ctx: &Ctx, s: &Stream) -> String {
    ctx.stream_arn(&s.name)
}
