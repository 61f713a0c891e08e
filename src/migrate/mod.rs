//! Live migration from Kinesis (issue 16, `docs/migration.md`): each stream named in
//! `migration.streams` is mirrored shard by shard from the source into the backend's log,
//! every record keeping its origin sequence number and arrival time. Owns the per-stream
//! mirror tasks and the status `GET /migration` and `strait migrate status` report.
//!
//! Until a stream is cut over its only writer is the source: client writes to it here are
//! held (`Core::hold_writes`), so the mirror's partitions hold nothing but the source's
//! records, in the source's order, and the last one says where to resume.

mod checkpoints;
pub mod checkpoints_cli;
pub mod cli;
mod cutover;
mod fanout;
mod mirror;
mod records;
pub mod routes;
mod status;

use std::sync::Arc;
use std::time::Duration;

use crate::backend::kinesis::client::{KinesisClient, Wire};
use crate::backend::kinesis::fanout::Consumers;
use crate::backend::kinesis::upstream::Upstream;
use crate::backend::GroupOffsets;
use crate::config::{KinesisRead, KinesisWire, MigrationConfig};
use crate::core::Core;
use crate::listener::Closing;

pub use checkpoints::{GroupPositions, ShardPosition};
use mirror::Phase;
use routes::Routes;
pub use status::{MigrationStatus, ShardStatus, StreamState, StreamStatus};

/// Holds client writes to every stream being mirrored and not yet cut over; called as the
/// core opens, before any front end serves.
pub fn hold_writes(cfg: &MigrationConfig, core: &Core) {
    let source = cfg.source.client_config().endpoint_url();
    for name in &cfg.streams {
        if core.stream(name).is_ok_and(|s| s.cut_over_ms.is_some()) {
            continue;
        }
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
    max_cutover_lag_records: u64,
    core: Arc<Core>,
    routes: Arc<Routes>,
    /// Where Kafka groups commit (`checkpoints.rs`).
    offsets: Arc<dyn GroupOffsets>,
    client: Arc<KinesisClient>,
    poll: Duration,
    /// The source is read by enhanced fan-out (`fanout.rs`).
    fanout: Option<Arc<Consumers>>,
    closing: Closing,
    /// Itself, for the cutover's own task.
    me: std::sync::OnceLock<std::sync::Weak<Migration>>,
}

impl Migration {
    /// Starts mirroring every configured stream not yet cut over into `core`'s log.
    pub async fn start(
        cfg: &MigrationConfig,
        core: Arc<Core>,
        routes: Arc<Routes>,
        offsets: Arc<dyn GroupOffsets>,
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
        let mut migration = Migration {
            streams: Vec::new(),
            caught_up_lag_records: cfg.caught_up_lag_records,
            max_cutover_lag_records: cfg.max_cutover_lag_records,
            core,
            routes,
            offsets,
            fanout: (cfg.source.read == KinesisRead::FanOut)
                .then(|| Consumers::new(client.clone(), cfg.source.consumer_name.clone(), None)),
            client,
            poll: Duration::from_millis(cfg.source.poll_interval_ms),
            closing,
            me: std::sync::OnceLock::new(),
        };
        let mut streams = Vec::new();
        for name in &cfg.streams {
            let cut_over = migration
                .core
                .stream(name)
                .is_ok_and(|s| s.cut_over_ms.is_some());
            let phase = if cut_over {
                Phase::CutOver
            } else {
                Phase::Mirroring
            };
            let m = Arc::new(mirror::StreamMirror::new(name.clone(), phase));
            if !cut_over {
                migration.spawn_mirror(&m);
            } else if let Some(consumers) = migration.fanout.clone() {
                // Cut over before a restart that came before (or while) its consumer was
                // deregistered: the consumer costs as long as it is registered.
                let stream = name.clone();
                tokio::spawn(async move {
                    if let Err(e) = consumers.deregister(&stream).await {
                        tracing::warn!(%stream, error = %e, "could not deregister the mirror's stream consumer on the source; deregister it by hand");
                    }
                });
            }
            streams.push(m);
        }
        migration.streams = streams;
        let migration = Arc::new(migration);
        let _ = migration.me.set(Arc::downgrade(&migration));
        let weak = Arc::downgrade(&migration);
        crate::observe::metrics().on_scrape(Box::new(move || {
            if let Some(m) = weak.upgrade() {
                m.set_gauges();
            }
            Box::pin(async {})
        }));
        Ok(migration)
    }

    /// Starts `m`'s mirror again (after a cutover that stopped it failed).
    fn spawn_mirror_of(&self, m: &mirror::StreamMirror) {
        if let Some(m) = self.streams.iter().find(|s| s.name == m.name) {
            self.spawn_mirror(m);
        }
    }

    fn spawn_mirror(&self, m: &Arc<mirror::StreamMirror>) {
        tokio::spawn(mirror::run(
            m.clone(),
            self.client.clone(),
            self.core.clone(),
            self.poll,
            self.fanout.clone(),
            self.closing.clone(),
        ));
    }

    fn set_gauges(&self) {
        let metrics = crate::observe::metrics();
        metrics.migration_state.reset();
        for s in self.status().streams {
            metrics
                .migration_state
                .with_label_values(&[&s.name, s.state.as_str()])
                .set(1);
            for sh in &s.shards {
                let labels = [s.name.as_str(), sh.shard_id.as_str()];
                let lag = i64::try_from(sh.lag_records).unwrap_or(i64::MAX);
                metrics
                    .migration_lag_records
                    .with_label_values(&labels)
                    .set(lag);
                metrics
                    .migration_lag_ms
                    .with_label_values(&labels)
                    .set(sh.lag_ms);
            }
        }
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

    /// Cuts `stream` over (`cutover.rs`): its state after, or why it was not done. It runs
    /// in a task of its own, so a caller that goes away (a closed admin connection) does not
    /// stop it half way.
    pub async fn cutover(&self, stream: &str, timeout: Duration) -> Result<StreamStatus, String> {
        let m = self
            .streams
            .iter()
            .find(|m| m.name == stream)
            .cloned()
            .ok_or_else(|| format!("{stream} is not among migration.streams"))?;
        let me = self
            .me
            .get()
            .and_then(std::sync::Weak::upgrade)
            .ok_or("strait is shutting down")?;
        let status = tokio::spawn(async move {
            cutover::run(&me, &m, timeout).await?;
            Ok::<_, String>(m.status(me.caught_up_lag_records))
        });
        status
            .await
            .map_err(|e| format!("the cutover task failed: {e}"))?
    }
}

#[async_trait::async_trait]
impl crate::observe::admin::MigrationAdmin for Migration {
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(Migration::status(self)).expect("status serialises")
    }

    async fn act(
        &self,
        stream: &str,
        action: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let entry = match action {
            "cutover" => self.cutover(stream, timeout).await?,
            _ => return Err(format!(
                "rolling {stream} back to its source is not built yet: strait does not mirror a cut-over stream's new records back to Kinesis"
            )),
        };
        Ok(serde_json::to_value(entry).expect("status serialises"))
    }

    async fn checkpoints(
        &self,
        stream: &str,
        group: &str,
        set: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let positions = match set {
            Some(doc) => {
                let doc: GroupPositions = serde_json::from_value(doc)
                    .map_err(|e| format!("not a checkpoints document: {e}"))?;
                self.adopt_checkpoints(stream, group, doc.shards).await?
            }
            None => self.group_checkpoints(stream, group).await?,
        };
        Ok(serde_json::to_value(positions).expect("positions serialise"))
    }
}

#[async_trait::async_trait]
impl crate::kinesis::split::StreamRoutes for Arc<Routes> {
    fn to_source(&self, stream: &str, core: &Core) -> bool {
        self.route(stream, core) == routes::Route::Source
    }

    fn written(&self, stream: &str, positions: Vec<(String, String)>) {
        self.note_written(stream, positions);
    }

    async fn write(&self, stream: &str, core: &Core) -> (bool, Option<Box<dyn Send>>) {
        let (route, guard) = Routes::write(self, stream, core).await;
        (
            route == routes::Route::Source,
            guard.map(|g| Box::new(g) as Box<dyn Send>),
        )
    }
}
