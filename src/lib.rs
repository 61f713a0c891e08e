//! strait: one gateway for the Amazon Kinesis Data Streams API (and, next, the Kafka wire
//! protocol) over one routing core and a choice of backends. This file wires configuration,
//! backend, core and listeners together.

pub mod backend;
pub mod config;
pub mod core;
pub mod kinesis;

use std::future::Future;
use std::sync::Arc;

use backend::embedded::{EmbeddedLog, FileMetaStore};
use config::Config;

/// Opens the backend and core, binds the listeners, and serves until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", config.data_dir.display()))?;
    let log = EmbeddedLog::open(&config.data_dir, config.backend.embedded.clone())
        .map_err(|e| format!("cannot open the log in {}: {e}", config.data_dir.display()))?;
    log.spawn_background();
    let meta = FileMetaStore::open(config.data_dir.join("meta"))
        .map_err(|e| format!("cannot open metadata in {}: {e}", config.data_dir.display()))?;
    let core = core::Core::open(
        config.account_id.clone(),
        config.streams.clone(),
        log,
        Arc::new(meta),
    )
    .map_err(|e| format!("cannot load the catalog: {e}"))?;
    let ctx = Arc::new(kinesis::ops::Ctx {
        core: Arc::new(core),
        region: config.region.clone(),
    });
    let addr = config.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (kinesis.listen): {e}"))?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "Kinesis API listening");
    kinesis::server::serve(listener, ctx, config.kinesis.max_body_bytes, shutdown).await;
    tracing::info!("stopped");
    Ok(())
}
