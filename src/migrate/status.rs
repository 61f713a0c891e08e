//! What `GET /migration` answers and `strait migrate status --json` prints: per stream its
//! state and mirror lag, per shard the detail.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MigrationStatus {
    pub streams: Vec<StreamStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamState {
    Mirroring,
    CaughtUp,
    CuttingOver,
    CutOver,
    RollingBack,
    RolledBack,
}

impl StreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Mirroring => "mirroring",
            StreamState::CaughtUp => "caught-up",
            StreamState::CuttingOver => "cutting-over",
            StreamState::CutOver => "cut-over",
            StreamState::RollingBack => "rolling-back",
            StreamState::RolledBack => "rolled-back",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamStatus {
    pub name: String,
    pub state: StreamState,
    /// Records on the source not yet in the mirror, summed over shards (see `ShardStatus`).
    pub lag_records: u64,
    /// The largest shard lag behind the source's newest record.
    pub lag_ms: i64,
    /// Records copied since this replica started mirroring.
    pub mirrored_records: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// How long the last cutover held this stream's writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_cutover_hold_ms: Option<u64>,
    pub shards: Vec<ShardStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardStatus {
    pub shard_id: String,
    pub partition: u32,
    /// 0 when the last read reached the newest record; otherwise the records of the last
    /// full page, or more when the copy rate times `lag_ms` says so (Kinesis reports how far
    /// behind a reader is in time, not in records).
    pub lag_records: u64,
    /// `MillisBehindLatest` of the last read.
    pub lag_ms: i64,
    pub mirrored_records: u64,
    /// The origin sequence number of the newest record in the mirror.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sequence_number: Option<String>,
    /// The source closed the shard (a reshard) and every record of it is mirrored.
    pub finished: bool,
}
