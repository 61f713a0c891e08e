//! strait: one gateway for the Amazon Kinesis Data Streams API and the Kafka wire protocol
//! over one routing core and a choice of backends (strait's embedded log, an Apache Kafka or
//! Amazon MSK cluster, Amazon Kinesis). This file wires configuration, backend, core and
//! listeners together.

pub mod backend;
pub mod clock;
pub mod config;
pub mod core;
pub mod kafka;
pub mod kinesis;
mod listener;
pub mod migrate;
pub mod observe;
pub mod protocol;

use std::future::Future;
use std::sync::Arc;

use backend::embedded::{EmbeddedLog, FileMetaStore};
use config::Config;

/// Opens the backend and core, binds the listeners, and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data_dir {}: {e}", config.data_dir.display()))?;
    // Everything that stops at shutdown watches this.
    let (close, closing) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; in-flight work finishes");
        let _ = close.send(true);
    });
    observe::metrics().set_per_stream(config.admin.per_stream_metrics);
    observe::disk::watch_data_dir(config.data_dir.clone());
    // A Kafka connection through the pass-through holds two descriptors (the client's and
    // the broker's), so it counts twice against the open-file limit.
    let kafka_weight = if config.backend.kind == config::BackendType::Kafka {
        2
    } else {
        1
    };
    let listeners = 1
        + kafka_weight * usize::from(!config.kafka.listen.is_empty())
        + usize::from(!config.admin.listen.is_empty());
    let nofile = listener::open_file_limit();
    let mut config = config;
    let files = match config.backend.kind {
        config::BackendType::Embedded => {
            let e = &mut config.backend.embedded;
            e.max_open_files = listener::fit_open_files(e.max_open_files, nofile);
            e.max_open_files
        }
        _ => 0,
    };
    listener::set_limits(&config.limits, listeners, files, nofile);
    let ready = Arc::new(observe::admin::Readiness::default());
    let migration: observe::admin::MigrationSlot = Default::default();
    // The admin listener comes up first, so probes answer (not ready) while the catalog loads.
    let admin = if config.admin.listen.is_empty() {
        None
    } else {
        let aaddr = &config.admin.listen;
        let alistener = tokio::net::TcpListener::bind(aaddr)
            .await
            .map_err(|e| format!("cannot listen on {aaddr} (admin.listen): {e}"))?;
        let bound = alistener
            .local_addr()
            .map_err(|e| format!("admin listener: {e}"))?;
        observe::logging::listening("admin", &bound);
        Some(tokio::spawn(observe::admin::serve(
            alistener,
            ready.clone(),
            migration.clone(),
            closing.clone(),
        )))
    };
    let conns = Arc::new(listener::Connections::default());
    let routes = config
        .migration
        .enabled()
        .then(|| Arc::new(migrate::routes::Routes::new(&config.migration.streams)));
    // `groups`: a coordinator whose group leases are given up at the very end.
    // `offsets`: where Kafka groups commit, for `strait migrate checkpoints`.
    let (kinesis, kafka, core, groups, offsets) = match config.backend.kind {
        config::BackendType::Embedded => {
            let (kinesis, kafka, core, offsets) =
                start_embedded(&config, &routes, conns.clone(), closing.clone()).await?;
            (Some(kinesis), kafka, Some(core), None, Some(offsets))
        }
        config::BackendType::Kafka => {
            let (kinesis, kafka, core, offsets) =
                start_kafka_backend(&config, &ready, &routes, conns.clone(), closing.clone())
                    .await?;
            (kinesis, Some(kafka), core, None, Some(offsets))
        }
        config::BackendType::Kinesis => {
            let (kinesis, kafka, core) =
                start_kinesis_backend(&config, conns.clone(), closing.clone()).await?;
            let groups = core.as_ref().map(|(_, g)| g.clone());
            let offsets = groups.clone().map(|g| g as Arc<dyn backend::GroupOffsets>);
            (Some(kinesis), kafka, core.map(|(c, _)| c), groups, offsets)
        }
    };
    // Without a core, shutdown came before the backend answered.
    if let (true, Some(core), Some(offsets)) = (config.migration.enabled(), &core, offsets) {
        let routes = routes
            .clone()
            .expect("routes are made when migration is on");
        let m = migrate::Migration::start(
            &config.migration,
            core.clone(),
            routes,
            offsets,
            closing.clone(),
        )
        .await?;
        let _ = migration.set(m);
    }
    ready.set(true);
    {
        // Not ready from the moment shutdown begins, so load balancers stop sending.
        let (ready, closing) = (ready.clone(), closing.clone());
        tokio::spawn(async move {
            listener::closed(closing).await;
            ready.set(false);
        });
    }
    for task in kinesis.into_iter().chain(kafka) {
        let _ = task.await;
    }
    // The listeners have stopped accepting; let in-flight requests finish.
    let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
    if !conns.drained(grace).await {
        tracing::warn!(
            connections = conns.live(),
            "shutdown grace period over; closing the remaining connections"
        );
    }
    if let Some(core) = core {
        core.flush_all().await;
    }
    if let Some(groups) = groups {
        groups.leave_replicas().await;
    }
    if let Some(a) = admin {
        let _ = a.await;
    }
    tracing::info!("stopped");
    Ok(())
}

type Task = tokio::task::JoinHandle<()>;

/// The embedded backend: the log and metadata in `data_dir`, the core, and both front ends.
async fn start_embedded(
    config: &Config,
    routes: &Option<Arc<migrate::routes::Routes>>,
    conns: Arc<listener::Connections>,
    closing: listener::Closing,
) -> Result<
    (
        Task,
        Option<Task>,
        Arc<core::Core>,
        Arc<dyn backend::GroupOffsets>,
    ),
    String,
> {
    backend::embedded::format::check_and_stamp(&config.data_dir)?;
    let log = EmbeddedLog::open(&config.data_dir, config.backend.embedded.clone())
        .map_err(|e| format!("cannot open the log in {}: {e}", config.data_dir.display()))?;
    log.spawn_background();
    backend::embedded::gauges::watch_disk_usage(log.clone());
    let unmetered: Arc<dyn backend::Log> = log.clone();
    let meta = Arc::new(
        FileMetaStore::open(config.data_dir.join("meta"))
            .map_err(|e| format!("cannot open metadata in {}: {e}", config.data_dir.display()))?,
    );
    let core = core::Core::open(
        config.account_id.clone(),
        config.streams.clone(),
        backend::metered::MeteredLog::wrap("embedded", log),
        meta.clone(),
        core::ForeignTopics::Delete,
    )
    .await
    .map_err(|e| format!("cannot load the catalog: {e}"))?;
    migrate::hold_writes(&config.migration, &core);
    let core = Arc::new(core);
    // Kafka groups, and the shadow groups that show enhanced fan-out positions to Kafka tools.
    let groups = core::groups::GroupCoordinator::open(
        meta,
        std::time::Duration::from_millis(config.kafka.group_initial_rebalance_delay_ms),
    )
    .map_err(|e| format!("cannot load consumer groups: {e}"))?;
    core::groups::watch_group_lag(groups.clone(), core.clone(), unmetered);
    let kinesis = start_kinesis(
        config,
        routes,
        core.clone(),
        Some(groups.clone()),
        conns.clone(),
        closing.clone(),
    )
    .await?;
    let offsets: Arc<dyn backend::GroupOffsets> = groups.clone();
    let kafka = start_kafka_front(config, core.clone(), groups, conns, closing).await?;
    Ok((kinesis, kafka, core, offsets))
}

/// The Kafka listener over `core` and its group coordinator, unless `kafka.listen` is empty.
async fn start_kafka_front(
    config: &Config,
    core: Arc<core::Core>,
    groups: Arc<core::groups::GroupCoordinator>,
    conns: Arc<listener::Connections>,
    closing: listener::Closing,
) -> Result<Option<Task>, String> {
    if config.kafka.listen.is_empty() {
        return Ok(None);
    }
    let binding = bind_kafka(config).await?;
    Ok(Some(serve_kafka_front(
        config, binding, core, groups, conns, closing,
    )))
}

/// Serves the Kafka API on a bound listener.
fn serve_kafka_front(
    config: &Config,
    binding: KafkaBinding,
    core: Arc<core::Core>,
    groups: Arc<core::groups::GroupCoordinator>,
    conns: Arc<listener::Connections>,
    closing: listener::Closing,
) -> Task {
    let KafkaBinding {
        listener: klistener,
        bound,
        advertised_host,
        advertised_port,
    } = binding;
    let kctx = Arc::new(kafka::KafkaCtx {
        core,
        groups,
        advertised_host,
        advertised_port: i32::from(advertised_port),
        cluster_id: format!("strait-{}", config.account_id),
        max_frame_bytes: config.kafka.max_frame_bytes,
        default_partitions: config.streams.default_shard_count,
        auto_create_topics: config.streams.auto_create_topics,
        holds: Default::default(),
        unread_parent_wait: std::time::Duration::from_millis(config.kafka.unread_parent_wait_ms),
    });
    kafka::handlers::reshard_order::spawn_sweep(kctx.clone(), closing.clone());
    observe::logging::listening("kafka", &bound);
    tokio::spawn(kafka::server::serve(klistener, kctx, conns, closing))
}

/// Binds the Kinesis listener and serves it over `core`.
async fn start_kinesis(
    config: &Config,
    routes: &Option<Arc<migrate::routes::Routes>>,
    core: Arc<core::Core>,
    groups: Option<Arc<core::groups::GroupCoordinator>>,
    conns: Arc<listener::Connections>,
    closing: listener::Closing,
) -> Result<Task, String> {
    let ctx = Arc::new(kinesis::ops::Ctx::new(
        core,
        groups,
        config,
        closing.clone(),
    ));
    let Some(routes) = routes else {
        return serve_kinesis(config, kinesis::server::Api::Local(ctx), conns, closing).await;
    };
    // Until a stream is cut over, its source serves it (`kinesis/split.rs`).
    let m = &config.migration;
    let upstream = Arc::new(backend::kinesis::upstream::Upstream::new(
        &m.source.client_config(),
    )?);
    let forwarder = Arc::new(kinesis::passthrough::Forwarder::new(upstream));
    let iterators = forwarder.clone();
    let split = kinesis::split::Split {
        source_iterators: Arc::new(move |it: &str| iterators.iterator_stream(it)),
        local: ctx,
        source: Arc::new(move |parts, body| {
            Box::pin(kinesis::passthrough::handle_parts(
                forwarder.clone(),
                parts,
                body,
            ))
        }),
        routes: Arc::new(routes.clone()),
    };
    serve_kinesis(
        config,
        kinesis::server::Api::Split(Arc::new(split)),
        conns,
        closing,
    )
    .await
}

/// Binds the Kinesis listener (TLS when a certificate is configured) and serves `api` on it.
async fn serve_kinesis(
    config: &Config,
    api: kinesis::server::Api,
    conns: Arc<listener::Connections>,
    closing: listener::Closing,
) -> Result<Task, String> {
    let tls = match (&config.kinesis.tls.cert, &config.kinesis.tls.key) {
        (Some(cert), Some(key)) => Some(kinesis::tls::server_config(cert, key)?),
        _ => None,
    };
    let addr = config.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (kinesis.listen): {e}"))?;
    let addr = listener.local_addr().unwrap_or(addr);
    observe::logging::listening("kinesis", &addr);
    Ok(tokio::spawn(kinesis::server::serve(
        listener,
        api,
        config.kinesis.max_body_bytes,
        tls,
        conns,
        closing,
    )))
}

/// The Kinesis backend: Kinesis clients pass through to the upstream Kinesis, re-signed with
/// strait's credentials; Kafka clients reach its streams through the core, over the `Log`
/// that reads and writes them, with offsets and groups kept in `data_dir`.
async fn start_kinesis_backend(
    config: &Config,
    conns: Arc<listener::Connections>,
    closing: listener::Closing,
) -> Result<(Task, Option<Task>, Option<CoreAndGroups>), String> {
    let upstream = Arc::new(backend::kinesis::upstream::Upstream::new(
        &config.backend.kinesis,
    )?);
    upstream.credentials_ready().await?;
    let endpoint = upstream.endpoint();
    let forwarder = Arc::new(kinesis::passthrough::Forwarder::new(upstream.clone()));
    let forward: kinesis::server::Forward = Arc::new(move |max_body, req| {
        Box::pin(kinesis::passthrough::handle(
            forwarder.clone(),
            max_body,
            req,
        ))
    });
    tracing::info!(%endpoint, "the Kinesis API forwards to the upstream");
    if !config.listen_addr().ip().is_loopback() {
        // Client authentication is not there yet (the security issue): whoever reaches this
        // port acts on the upstream with strait's credentials.
        tracing::warn!(addr = %config.listen_addr(), "the Kinesis pass-through listens beyond loopback and does not check who calls: every client acts with strait's AWS credentials");
    }
    // The pass-through serves at once; Kafka clients wait until the upstream has answered.
    let kinesis = serve_kinesis(
        config,
        kinesis::server::Api::Forward(forward),
        conns.clone(),
        closing.clone(),
    )
    .await?;
    if config.kafka.listen.is_empty() {
        return Ok((kinesis, None, None));
    }
    // Bound first: replicas sharing state register the address clients reach them at.
    let binding = bind_kafka(config).await?;
    let advertised = (
        binding.advertised_host.clone(),
        i32::from(binding.advertised_port),
    );
    let Some((core, groups)) =
        open_kinesis_core(config, upstream, advertised, closing.clone()).await?
    else {
        return Ok((kinesis, None, None));
    };
    let kafka = serve_kafka_front(
        config,
        binding,
        core.clone(),
        groups.clone(),
        conns,
        closing,
    );
    groups.serving().await;
    Ok((kinesis, Some(kafka), Some((core, groups))))
}

type CoreAndGroups = (Arc<core::Core>, Arc<core::groups::GroupCoordinator>);

/// The core over Kinesis streams, for Kafka clients: the catalog adopts every stream, and
/// groups, the catalog's documents and offset indexes are files in `data_dir`
/// (`state.type: local`) or items of the DynamoDB state table (`dynamodb`). Retries until
/// the upstream answers; `None` when shutdown comes first.
async fn open_kinesis_core(
    config: &Config,
    upstream: Arc<backend::kinesis::upstream::Upstream>,
    (host, port): (String, i32),
    closing: listener::Closing,
) -> Result<Option<CoreAndGroups>, String> {
    let k = &config.backend.kinesis;
    let wire = match k.wire {
        config::KinesisWire::Auto => backend::kinesis::client::Wire::CborOrJson,
        config::KinesisWire::Cbor => backend::kinesis::client::Wire::Cbor,
        config::KinesisWire::Json => backend::kinesis::client::Wire::Json,
    };
    let client = Arc::new(backend::kinesis::client::KinesisClient::new(
        upstream.clone(),
        wire,
    ));
    let dynamodb = || -> Result<backend::kinesis::client::AwsClient, String> {
        let dynamodb = upstream.sibling(
            "backend.kinesis.state.endpoint",
            &k.dynamodb_url(),
            "dynamodb",
        )?;
        Ok(backend::kinesis::client::AwsClient::dynamodb(Arc::new(
            dynamodb,
        )))
    };
    let state = match k.state.kind {
        config::KinesisStateType::Local => None,
        config::KinesisStateType::Dynamodb => {
            let table = Arc::new(backend::kinesis::state::StateTable::new(
                dynamodb()?,
                k.state.table.clone(),
            ));
            if retry_until_closed("the state table", &closing, || table.ensure())
                .await
                .is_none()
            {
                return Ok(None);
            }
            tracing::info!(table = %table.name(), "Kinesis backend state in DynamoDB");
            Some(table)
        }
    };
    let mut replicas = None;
    let (meta, group_meta): (Arc<dyn backend::MetaStore>, Arc<dyn backend::SyncMetaStore>) =
        match &state {
            Some(table) => {
                let open = || backend::kinesis::shared_meta::SharedMetaStore::open(table.clone());
                let Some(m) = retry_until_closed("the state table", &closing, open).await else {
                    return Ok(None);
                };
                let join = || {
                    backend::kinesis::replicas::SharedReplicas::join(
                        table.clone(),
                        m.clone(),
                        config.kafka.node_id,
                        host.clone(),
                        port,
                    )
                };
                let Some(r) = retry_until_closed("the state table", &closing, join).await else {
                    return Ok(None);
                };
                replicas = Some(r);
                (m.clone(), m)
            }
            None => {
                let m = Arc::new(FileMetaStore::open(config.data_dir.join("meta")).map_err(
                    |e| format!("cannot open metadata in {}: {e}", config.data_dir.display()),
                )?);
                (m.clone(), m)
            }
        };
    // A stream consumer has one subscription per shard at a time: replicas sharing state
    // each register their own, named after their node id.
    let consumer_name = match &replicas {
        Some(r) => format!(
            "{}-{}",
            k.consumer_name,
            backend::Replicas::node_id(r.as_ref())
        ),
        None => k.consumer_name.clone(),
    };
    let log = backend::kinesis::log::KinesisLog::new(
        client,
        backend::kinesis::log::KinesisLogSettings {
            dir: config.data_dir.join("kinesis-offsets"),
            poll: std::time::Duration::from_millis(k.poll_interval_ms),
            max_reads_per_sec: k.max_reads_per_sec,
            cache_bytes: k.cache_bytes,
            fan_out_consumer: (k.read == config::KinesisRead::FanOut).then_some(consumer_name),
            fan_out_sweep: match (&replicas, &state) {
                (Some(_), Some(table)) => Some(backend::kinesis::consumer_sweep::ConsumerSweep {
                    base: k.consumer_name.clone(),
                    table: table.clone(),
                }),
                _ => None,
            },
            streams: backend::kinesis::filter::StreamFilter::new(&k.streams),
            state: state.clone(),
        },
    );
    let open = || {
        core::Core::open(
            config.account_id.clone(),
            config.streams.clone(),
            backend::metered::MeteredLog::wrap("kinesis", log.clone()),
            meta.clone(),
            core::ForeignTopics::Adopt,
        )
    };
    let Some(core) = retry_until_closed("the upstream's streams", &closing, open).await else {
        return Ok(None);
    };
    let core = Arc::new(core);
    core.spawn_catalog_refresh(CATALOG_REFRESH, closing.clone());
    spawn_reader_wake(&core, closing);
    let groups = core::groups::GroupCoordinator::open(
        group_meta,
        std::time::Duration::from_millis(config.kafka.group_initial_rebalance_delay_ms),
    )
    .map_err(|e| format!("cannot load consumer groups: {e}"))?;
    let tables: std::collections::HashMap<String, backend::kinesis::kcl_leases::LeaseTable> = k
        .groups
        .iter()
        .filter_map(|(g, c)| {
            let table = backend::kinesis::kcl_leases::LeaseTable {
                table: c.kcl_lease_table.clone()?,
                stream: c.stream.clone(),
            };
            Some((g.clone(), table))
        })
        .collect();
    if !tables.is_empty() {
        tracing::info!(groups = tables.len(), endpoint = %k.dynamodb_url(), "Kafka groups tied to KCL lease tables");
        groups.set_external(Arc::new(backend::kinesis::kcl_leases::KclLeaseTables::new(
            dynamodb()?,
            log,
            tables,
        )));
    }
    if let Some(r) = replicas {
        groups.set_replicas(r);
    }
    Ok(Some((core, groups)))
}

/// Runs `attempt` until it succeeds (every 2 s, warning each time); `None` when shutdown
/// comes first.
async fn retry_until_closed<T, E, F, Fut>(
    what: &str,
    closing: &listener::Closing,
    mut attempt: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        let error = tokio::select! {
            r = attempt() => match r {
                Ok(v) => return Some(v),
                Err(e) => e,
            },
            _ = listener::closed(closing.clone()) => return None,
        };
        tracing::warn!(error = %error, "cannot reach {what}; retrying");
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            _ = listener::closed(closing.clone()) => return None,
        }
    }
}

/// The Kafka backend: Kafka clients pass through to the cluster; Kinesis clients reach it
/// through the core, with the catalog in the metadata topic.
async fn start_kafka_backend(
    config: &Config,
    ready: &Arc<observe::admin::Readiness>,
    routes: &Option<Arc<migrate::routes::Routes>>,
    conns: Arc<listener::Connections>,
    closing: listener::Closing,
) -> Result<
    (
        Option<Task>,
        Task,
        Option<Arc<core::Core>>,
        Arc<dyn backend::GroupOffsets>,
    ),
    String,
> {
    let k = &config.backend.kafka;
    let connector = backend::kafka::connect::Connector::from_config(k, &config.region)?;
    connector.credentials_ready().await?;
    let cluster = backend::kafka::cluster::Cluster::new(k.bootstrap.clone(), connector);
    match cluster.refresh().await {
        Ok(()) => tracing::info!(brokers = ?cluster.nodes(), "Kafka cluster reachable"),
        // Start anyway: clients are refused until it answers, and /readyz says not ready.
        Err(e) => tracing::warn!(error = %e, "Kafka cluster unreachable at start-up"),
    }
    {
        let ready = ready.clone();
        cluster.spawn_probe(
            std::time::Duration::from_secs(5),
            move |ok| ready.set_backend(ok),
            closing.clone(),
        );
    }
    // The cluster keeps Kafka groups on this backend; their lag is read from it on scrape.
    backend::kafka::group_lag::watch(cluster.clone(), config.backend.kafka.topic_prefix.clone());
    let offsets: Arc<dyn backend::GroupOffsets> = Arc::new(
        backend::kafka::group_offsets::ClusterGroupOffsets::new(cluster.clone(), &k.topic_prefix),
    );
    let KafkaBinding {
        listener: klistener,
        bound,
        advertised_host,
        advertised_port,
    } = bind_kafka(config).await?;
    let settings = kafka::passthrough::Settings {
        // The configured address, not the bound one: its port 0 means "ephemeral broker
        // ports too".
        listen: config
            .kafka
            .listen
            .parse()
            .map_err(|e| format!("kafka.listen: {e}"))?,
        advertised_host,
        advertised_port,
        max_frame_bytes: config.kafka.max_frame_bytes,
        topic_prefix: config.backend.kafka.topic_prefix.clone(),
    };
    let (pt, task) = kafka::passthrough::Passthrough::start(
        klistener,
        settings,
        cluster.clone(),
        conns.clone(),
        closing.clone(),
    );
    observe::logging::listening("kafka", &bound);
    let Some(core) = open_kafka_core(config, cluster, closing.clone()).await else {
        // Shut down before the cluster ever answered.
        return Ok((None, task, None, offsets));
    };
    // Kafka CreatePartitions would add partitions outside a kinesis-md5 stream's hash ranges.
    let guard = core.clone();
    pt.guard_create_partitions(Arc::new(move |topic: &str| guard.partitions_fixed(topic)));
    if config.migration.enabled() {
        // Until cut over, a migrated stream's only writer is its source.
        let guard = core.clone();
        pt.guard_produce(Arc::new(move |topic: &str| guard.write_hold(topic)));
    }
    let kinesis = start_kinesis(config, routes, core.clone(), None, conns, closing).await?;
    Ok((Some(kinesis), task, Some(core), offsets))
}

/// How often the catalog looks for topics made outside strait, and how often readers
/// waiting at the end of a shard look again (appends may come from other replicas or
/// straight from Kafka producers, which this replica does not see).
const CATALOG_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);
const READER_WAKE: std::time::Duration = std::time::Duration::from_millis(200);

/// The core over the Kafka cluster. Retries until the metadata topic is readable, since a
/// sidecar may start before the cluster does; `None` when shutdown comes first.
async fn open_kafka_core(
    config: &Config,
    cluster: Arc<backend::kafka::cluster::Cluster>,
    closing: listener::Closing,
) -> Option<Arc<core::Core>> {
    let k = &config.backend.kafka;
    let log = backend::kafka::log::KafkaLog::new(cluster, vec![k.metadata_topic.clone()]);
    let open = || async {
        let meta =
            backend::kafka::meta::KafkaMetaStore::open(log.clone(), &k.metadata_topic).await?;
        core::Core::open(
            config.account_id.clone(),
            config.streams.clone(),
            backend::prefixed::PrefixedLog::wrap(
                &k.topic_prefix,
                backend::metered::MeteredLog::wrap("kafka", log.clone()),
            ),
            meta,
            core::ForeignTopics::Adopt,
        )
        .await
    };
    let core =
        Arc::new(retry_until_closed("the catalog in the Kafka cluster", &closing, open).await?);
    migrate::hold_writes(&config.migration, &core);
    core.spawn_catalog_refresh(CATALOG_REFRESH, closing.clone());
    spawn_reader_wake(&core, closing);
    Some(core)
}

/// Wakes waiting readers every `READER_WAKE`: appends by other writers (other replicas,
/// clients of the cluster or stream itself) are not seen here as they happen.
fn spawn_reader_wake(core: &Arc<core::Core>, closing: listener::Closing) {
    let waker = Arc::clone(core);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(READER_WAKE);
        loop {
            tokio::select! {
                _ = tick.tick() => waker.append_signal().notify_waiters(),
                _ = listener::closed(closing.clone()) => return,
            }
        }
    });
}

/// The Kafka listener, bound, and the address it is advertised at.
struct KafkaBinding {
    listener: tokio::net::TcpListener,
    bound: std::net::SocketAddr,
    advertised_host: String,
    advertised_port: u16,
}

async fn bind_kafka(config: &Config) -> Result<KafkaBinding, String> {
    let kaddr = &config.kafka.listen;
    let listener = tokio::net::TcpListener::bind(kaddr)
        .await
        .map_err(|e| format!("cannot listen on {kaddr} (kafka.listen): {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("kafka listener: {e}"))?;
    let (host, port) = config
        .kafka
        .advertised_address
        .rsplit_once(':')
        .expect("validated host:port");
    let port: u16 = port.parse().expect("validated port");
    Ok(KafkaBinding {
        listener,
        bound,
        advertised_host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
        // Port 0 in the advertised address means "the port the listener got".
        advertised_port: if port == 0 { bound.port() } else { port },
    })
}
