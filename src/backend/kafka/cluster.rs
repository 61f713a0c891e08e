//! What strait knows of the Kafka cluster behind it: the brokers' addresses by node id, the
//! API versions the cluster serves and each topic's partition leaders, refreshed from any
//! reachable broker. Also owns strait's own connections to the brokers (a small idle pool
//! per broker) and the reachability probe that `/readyz` reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncWriteExt, BufReader};
use uuid::Uuid;

use super::connect::{BrokerStream, Connector};
use crate::protocol::kafka::frame;

/// How long strait waits for a broker to answer one of its own requests.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// ApiVersions and Metadata versions strait uses for its own requests; Kafka 2.4 and later
/// serve both.
const API_VERSIONS_VERSION: i16 = 3;
const METADATA_VERSION: i16 = 9;
/// Metadata from this version on names each topic's id (Kafka 2.8 and later).
const METADATA_WITH_IDS: i16 = 10;

pub struct Cluster {
    bootstrap: Vec<String>,
    connector: Connector,
    /// node id → host:port, as the brokers advertise themselves.
    nodes: RwLock<BTreeMap<i32, String>>,
    /// api key → (min, max) the cluster serves: the lowest max across the brokers asked.
    versions: RwLock<BTreeMap<i16, (i16, i16)>>,
    /// topic → leader node id per partition (−1 while it has none).
    topics: RwLock<BTreeMap<String, Vec<i32>>>,
    /// topic → its id, where the cluster names ids: a topic deleted and made again under
    /// the same name has another.
    topic_ids: RwLock<BTreeMap<String, Uuid>>,
    controller: AtomicI32,
    reachable: AtomicBool,
    correlation: AtomicI32,
    /// Idle connections of strait's own, by broker address.
    idle: Mutex<HashMap<String, Vec<(Conn, Instant)>>>,
}

type Conn = BufReader<BrokerStream>;
/// Idle connections kept per broker; more are opened when requests overlap.
const IDLE_PER_BROKER: usize = 16;
/// Idle connections older than this are dropped rather than used: brokers close idle
/// connections after `connections.max.idle.ms` (10 minutes by default).
const MAX_IDLE: Duration = Duration::from_secs(60);

impl Cluster {
    pub fn new(bootstrap: Vec<String>, connector: Connector) -> Arc<Cluster> {
        Arc::new(Cluster {
            bootstrap,
            connector,
            nodes: RwLock::default(),
            versions: RwLock::default(),
            topics: RwLock::default(),
            topic_ids: RwLock::default(),
            controller: AtomicI32::new(-1),
            reachable: AtomicBool::new(false),
            correlation: AtomicI32::new(1),
            idle: Mutex::default(),
        })
    }

    /// The address of a partition's leader, as of the last refresh.
    pub fn leader(&self, topic: &str, partition: u32) -> Option<String> {
        let id = *self.topics.read().get(topic)?.get(partition as usize)?;
        (id >= 0).then(|| self.node(id)).flatten()
    }

    /// A topic's id as of the last refresh, where the cluster names one.
    pub fn topic_id(&self, topic: &str) -> Option<Uuid> {
        self.topic_ids.read().get(topic).copied()
    }

    /// Every topic with its partition count, as of the last refresh.
    pub fn topics(&self) -> Vec<(String, u32)> {
        let topics = self.topics.read();
        topics
            .iter()
            .map(|(name, leaders)| (name.clone(), leaders.len() as u32))
            .collect()
    }

    /// A broker to send cluster-wide requests to: the controller if known (topic changes
    /// on clusters with ZooKeeper must go there), else any broker.
    pub fn any_broker(&self) -> Option<String> {
        let controller = self.controller.load(Ordering::Relaxed);
        self.node(controller)
            .or_else(|| self.nodes.read().values().next().cloned())
            .or_else(|| self.bootstrap.first().cloned())
    }

    /// One request to the broker at `addr`, on an idle connection or a new one.
    pub async fn request<Req: Encodable, Resp: Decodable>(
        &self,
        addr: &str,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String> {
        let started = Instant::now();
        let out = self.request_inner(addr, key, version, request).await;
        let m = crate::observe::metrics();
        let api = crate::protocol::kafka::versions::api_name(key as i16);
        m.broker_seconds
            .with_label_values(&[api])
            .observe(started.elapsed().as_secs_f64());
        if out.is_err() {
            m.broker_errors.with_label_values(&[api]).inc();
        }
        out
    }

    async fn request_inner<Req: Encodable, Resp: Decodable>(
        &self,
        addr: &str,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String> {
        let pooled = loop {
            match self.idle.lock().get_mut(addr).and_then(Vec::pop) {
                Some((c, since)) if since.elapsed() < MAX_IDLE => break Some(c),
                Some(_) => continue,
                None => break None,
            }
        };
        let out = match pooled {
            Some(mut conn) => match self.call(&mut conn, key, version, request).await {
                Ok(r) => Ok((r, conn)),
                // The broker may have closed it (connections.max.idle.ms, a restart, an
                // expired login): once more on a new connection. Requests strait sends are
                // safe to repeat (idempotent Produce, reads, admin requests that report
                // "already done").
                Err(_) => self.call_fresh(addr, key, version, request).await,
            },
            None => self.call_fresh(addr, key, version, request).await,
        };
        let (response, conn) = out.map_err(|e| format!("{addr}: {e}"))?;
        let mut idle = self.idle.lock();
        let conns = idle.entry(addr.to_string()).or_default();
        if conns.len() < IDLE_PER_BROKER {
            conns.push((conn, Instant::now()));
        }
        Ok(response)
    }

    async fn call_fresh<Req: Encodable, Resp: Decodable>(
        &self,
        addr: &str,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<(Resp, Conn), String> {
        let mut conn = BufReader::new(self.connect(addr).await?);
        let r = self.call(&mut conn, key, version, request).await?;
        Ok((r, conn))
    }

    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::SeqCst)
    }

    pub fn node(&self, id: i32) -> Option<String> {
        self.nodes.read().get(&id).cloned()
    }

    pub fn nodes(&self) -> BTreeMap<i32, String> {
        self.nodes.read().clone()
    }

    /// Records broker addresses seen in a response passing through.
    pub fn learn(&self, brokers: impl IntoIterator<Item = (i32, String)>) {
        let mut nodes = self.nodes.write();
        for (id, addr) in brokers {
            nodes.insert(id, addr);
        }
    }

    /// The range of `key` the cluster serves, if it serves it.
    pub fn versions(&self, key: i16) -> Option<(i16, i16)> {
        self.versions.read().get(&key).copied()
    }

    /// Whether strait logs in to the cluster itself.
    pub fn logs_in(&self) -> bool {
        self.connector.logs_in()
    }

    /// A ready (TLS, logged-in) connection to one broker.
    pub async fn connect(&self, addr: &str) -> Result<BrokerStream, String> {
        self.connector.connect(addr).await
    }

    /// Connects to the first reachable bootstrap address, then any known broker.
    pub async fn connect_any(&self) -> Result<(BrokerStream, String), String> {
        let known: Vec<String> = self.nodes.read().values().cloned().collect();
        let mut last = String::from("no bootstrap address");
        for addr in self.bootstrap.iter().chain(known.iter()) {
            match self.connect(addr).await {
                Ok(s) => return Ok((s, addr.clone())),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Asks one broker for the cluster's API versions and brokers.
    pub async fn refresh(&self) -> Result<(), String> {
        let result = self.refresh_once().await;
        self.reachable.store(result.is_ok(), Ordering::SeqCst);
        result
    }

    async fn refresh_once(&self) -> Result<(), String> {
        let (stream, addr) = self.connect_any().await?;
        let mut conn = BufReader::new(stream);
        let versions: ApiVersionsResponse = self
            .call(
                &mut conn,
                ApiKey::ApiVersions,
                API_VERSIONS_VERSION,
                &ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_static_str("strait"))
                    .with_client_software_version(StrBytes::from_static_str(env!(
                        "CARGO_PKG_VERSION"
                    ))),
            )
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        if versions.error_code != 0 {
            return Err(format!("{addr}: ApiVersions error {}", versions.error_code));
        }
        let metadata_version = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Metadata as i16)
            .map_or(METADATA_VERSION, |k| {
                k.max_version.clamp(METADATA_VERSION, METADATA_WITH_IDS)
            });
        let metadata: MetadataResponse = self
            .call(
                &mut conn,
                ApiKey::Metadata,
                metadata_version,
                // No list asks for every topic.
                &MetadataRequest::default().with_topics(None),
            )
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        *self.versions.write() = versions
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        let brokers: BTreeMap<i32, String> = metadata
            .brokers
            .iter()
            .map(|b| (b.node_id.0, join_host_port(&b.host, b.port)))
            .collect();
        if brokers.is_empty() {
            return Err(format!("{addr}: Metadata listed no brokers"));
        }
        *self.nodes.write() = brokers;
        self.controller
            .store(metadata.controller_id.0, Ordering::Relaxed);
        let mut topics = BTreeMap::new();
        let mut ids = BTreeMap::new();
        for t in metadata.topics {
            let Some(name) = t.name else { continue };
            if t.error_code != 0 || t.is_internal {
                continue;
            }
            if !t.topic_id.is_nil() {
                ids.insert(name.0.to_string(), t.topic_id);
            }
            let mut leaders = vec![-1; t.partitions.len()];
            for p in &t.partitions {
                if let Some(slot) = leaders.get_mut(p.partition_index.max(0) as usize) {
                    *slot = if p.error_code == 0 { p.leader_id.0 } else { -1 };
                }
            }
            topics.insert(name.0.to_string(), leaders);
        }
        *self.topics.write() = topics;
        *self.topic_ids.write() = ids;
        Ok(())
    }

    /// One request on a connection of strait's own.
    async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        conn: &mut BufReader<BrokerStream>,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String> {
        let correlation = self.correlation.fetch_add(1, Ordering::Relaxed);
        let frame = frame::encode_request(
            key,
            version,
            correlation,
            self.connector.client_id(),
            request,
        )?;
        let exchange = async {
            let w = conn.get_mut();
            w.write_all(&frame).await.map_err(|e| e.to_string())?;
            w.flush().await.map_err(|e| e.to_string())?;
            frame::read_frame(conn, 100 << 20)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "connection closed".to_string())
        };
        let response = tokio::time::timeout(BROKER_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{key:?} timed out"))??;
        let (got, mut body) = frame::response_body(key, version, response)?;
        if got != correlation {
            return Err(format!(
                "{key:?}: correlation {got}, expected {correlation}"
            ));
        }
        Resp::decode(&mut body, version).map_err(|e| format!("bad {key:?} response: {e}"))
    }

    /// Refreshes every `every` until `closing`, reporting reachability after each try and
    /// logging when it changes. While the cluster is unreachable it tries every second, so
    /// `/readyz` follows a restarted broker within about a second, not a whole period.
    pub fn spawn_probe(
        self: &Arc<Self>,
        every: Duration,
        report: impl Fn(bool) + Send + 'static,
        closing: crate::listener::Closing,
    ) -> tokio::task::JoinHandle<()> {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut was = cluster.reachable();
            report(was);
            loop {
                let pause = if was {
                    every
                } else {
                    every.min(Duration::from_secs(1))
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = crate::listener::closed(closing.clone()) => return,
                }
                let now = cluster.refresh().await;
                report(now.is_ok());
                match (&now, was) {
                    (Err(e), true) => tracing::warn!(error = %e, "Kafka cluster unreachable"),
                    (Ok(()), false) => tracing::info!("Kafka cluster reachable again"),
                    _ => {}
                }
                was = now.is_ok();
            }
        })
    }
}

/// host:port, with IPv6 literals bracketed.
pub fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(join_host_port("::1", 9092), "[::1]:9092");
        assert_eq!(join_host_port("broker-1", 9092), "broker-1:9092");
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_reported() {
        // A bound-then-dropped port refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster::new(vec![format!("127.0.0.1:{port}")], Connector::plain("t"));
        let err = cluster.refresh().await.unwrap_err();
        assert!(err.contains(&port.to_string()), "{err}");
        assert!(!cluster.reachable());
    }
}
