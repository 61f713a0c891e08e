//! Live migration from Kinesis (issue 16, `docs/migration.md`): each stream named in
//! `migration.streams` is mirrored shard by shard from the source into the backend's log,
//! every record keeping its origin sequence number and arrival time. Owns the per-stream
//! mirror tasks and the status `GET /migration` and `strait migrate status` report.
//!
//! Until a stream is cut over its only writer is the source: client writes to it here are
//! held (`Core::hold_writes`), so the mirror's partitions hold nothing but the source's
//! records, in the source's order, and the last one says where to resume.

pub mod cli;
mod mirror;
mod records;
mod status;

use std::sync::Arc;

use crate::backend::kinesis::client::{KinesisClient, Wire};
use crate::backend::kinesis::upstream::Upstream;
use crate::config::{KinesisWire, MigrationConfig};
use crate::core::Core;
use crate::listener::Closing;

pub use status::{MigrationStatus, ShardStatus, StreamState, StreamStatus};

/// Holds client writes to every stream being mirrored; called as the core opens, before
/// any front end serves.
pub fn hold_writes(cfg: &MigrationConfig, core: &Core) {
    let source = cfg.source.client_config().endpoint_url();
    for name in &cfg.streams {
        core.hold_writes(
            name,
            format!("Stream {name} is being migrated: its source ({source}) takes its writes until it is cut over."),
        );
    }
}

/// The running migration: one mirror per stream.
pub struct Migration {
    streams: Vec<Arc<mirror::StreamMirror>>,
    caught_up_lag_records: u64,
}

impl Migration {
    /// Starts mirroring every configured stream into `core`'s log.
    pub async fn start(
        cfg: &MigrationConfig,
        core: Arc<Core>,
        closing: Closing,
    ) -> Result<Arc<Migration>, String> {
        let upstream = Arc::new(Upstream::new(&cfg.source.client_config())?);
        upstream.credentials_ready().await?;
        let wire = match cfg.source.wire {
            KinesisWire::Auto => Wire::CborOrJson,
            KinesisWire::Cbor => Wire::Cbor,
            KinesisWire::Json => Wire::Json,
        };
        let client = Arc::new(KinesisClient::new(upstream.clone(), wire));
        tracing::info!(source = %upstream.endpoint(), streams = ?cfg.streams, "mirroring streams from the Kinesis source");
        let poll = std::time::Duration::from_millis(cfg.source.poll_interval_ms);
        let mut streams = Vec::new();
        for name in &cfg.streams {
            let m = Arc::new(mirror::StreamMirror::new(name.clone()));
            tokio::spawn(mirror::run(
                m.clone(),
                client.clone(),
                core.clone(),
                poll,
                closing.clone(),
            ));
            streams.push(m);
        }
        Ok(Arc::new(Migration {
            streams,
            caught_up_lag_records: cfg.caught_up_lag_records,
        }))
    }

    /// Every stream's state and lag.
    pub fn status(&self) -> MigrationStatus {
        MigrationStatus {
            streams: self
                .streams
                .iter()
                .map(|m| m.status(self.caught_up_lag_records))
                .collect(),
        }
    }
}
