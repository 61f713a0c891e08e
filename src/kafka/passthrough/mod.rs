//! The Kafka-backend pass-through: Kafka clients talk to the real cluster through strait.
//! strait presents one port per broker (the Kroxylicious "port per broker" scheme): the
//! configured `kafka.listen` port is the bootstrap, and broker `n` is served on
//! `listen port + 1 + n` (or an ephemeral port when `kafka.listen` has port 0). A client
//! connection on a broker's port is paired with one connection to that broker, so requests
//! reach the partition leader or coordinator the client chose from the rewritten metadata.
//! Frames travel as bytes; only responses carrying broker addresses, and ApiVersions, are
//! decoded and re-encoded (see `rewrite`). CreatePartitions on a Kinesis stream's topic is
//! answered here (see `policy`). Under `backend.kafka.topic_prefix`, frames naming topics
//! are rewritten both ways and only client APIs are offered (see `namespace`).

mod namespace;
mod policy;
mod rewrite;
mod traffic;

pub use policy::TopicPolicy;

use namespace::requests::Renamed;
use namespace::Namespace;
use rewrite::Rewritten;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::backend::kafka::cluster::Cluster;
use crate::backend::kafka::connect::BrokerStream;
use crate::listener::{Closing, Connections};
use crate::protocol::kafka::frame;
use crate::protocol::kafka::versions;

/// Requests a client may have in flight on one connection before strait stops reading more.
const MAX_IN_FLIGHT: usize = 1024;

pub struct Passthrough {
    cluster: Arc<Cluster>,
    listen_ip: IpAddr,
    /// The configured bootstrap port; 0 means every broker port is ephemeral too.
    listen_port: u16,
    advertised_host: StrBytes,
    advertised_port: u16,
    max_frame_bytes: usize,
    /// node id → the port strait advertises for it (its listener is running).
    node_ports: Mutex<BTreeMap<i32, u16>>,
    conns: Arc<Connections>,
    /// The connections of the bootstrap and every broker port together: one listener's
    /// worth against limits.max_connections.
    connections: Arc<Connections>,
    closing: Closing,
    /// Set once the Kinesis catalog is loaded; until then CreatePartitions is forwarded.
    create_partitions_policy: OnceLock<TopicPolicy>,
    /// Set when streams are being migrated: Produce naming one is answered by strait.
    produce_policy: OnceLock<TopicPolicy>,
    /// The topics clients may see, when `topic_prefix` is set.
    namespace: Option<Namespace>,
    /// Topic names by id, for counting Produce and Fetch traffic that names topics by id.
    topic_names: traffic::TopicNames,
}

/// Which broker a strait port stands for.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The bootstrap port: any reachable broker.
    Any,
    Node(i32),
}

pub struct Settings {
    pub listen: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
    pub max_frame_bytes: usize,
    /// `backend.kafka.topic_prefix`; empty for none.
    pub topic_prefix: String,
}

impl Passthrough {
    /// Starts serving the bootstrap listener, and a listener for every broker known so far.
    pub fn start(
        bootstrap: TcpListener,
        settings: Settings,
        cluster: Arc<Cluster>,
        conns: Arc<Connections>,
        closing: Closing,
    ) -> (Arc<Passthrough>, tokio::task::JoinHandle<()>) {
        let pt = Arc::new(Passthrough {
            cluster,
            listen_ip: settings.listen.ip(),
            listen_port: settings.listen.port(),
            advertised_host: StrBytes::from_string(settings.advertised_host),
            advertised_port: settings.advertised_port,
            max_frame_bytes: settings.max_frame_bytes,
            node_ports: Mutex::default(),
            conns,
            connections: Arc::default(),
            closing,
            create_partitions_policy: OnceLock::new(),
            produce_policy: OnceLock::new(),
            namespace: Namespace::new(&settings.topic_prefix),
            topic_names: traffic::TopicNames::default(),
        });
        for node in pt.cluster.nodes().keys() {
            pt.node_port(*node);
        }
        let task = tokio::spawn(pt.clone().accept(bootstrap, Target::Any));
        (pt, task)
    }

    /// From now on, CreatePartitions naming a topic `policy` refuses is answered by strait.
    pub fn guard_create_partitions(&self, policy: TopicPolicy) {
        let _ = self.create_partitions_policy.set(policy);
    }

    /// From now on, Produce naming a topic `policy` refuses is answered by strait.
    pub fn guard_produce(&self, policy: TopicPolicy) {
        let _ = self.produce_policy.set(policy);
    }

    /// The port strait advertises for `node`, starting its listener on first use.
    fn node_port(self: &Arc<Self>, node: i32) -> u16 {
        let mut ports = self.node_ports.lock();
        if let Some(p) = ports.get(&node) {
            return *p;
        }
        let fixed = |base: u16| u16::try_from(i64::from(base) + 1 + i64::from(node)).ok();
        let (bind_port, advertised) = if self.listen_port == 0 {
            (Some(0), None)
        } else {
            (fixed(self.listen_port), fixed(self.advertised_port))
        };
        let bind = |p: u16| -> Result<(TcpListener, u16), String> {
            let l = std::net::TcpListener::bind((self.listen_ip, p)).map_err(|e| e.to_string())?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            let port = l.local_addr().map_err(|e| e.to_string())?.port();
            Ok((TcpListener::from_std(l).map_err(|e| e.to_string())?, port))
        };
        let mut advertised = advertised;
        let bound = match bind_port
            .ok_or_else(|| "port out of range".to_string())
            .and_then(bind)
        {
            Ok(b) => Ok(b),
            // Never advertise a port nothing (or something else, such as the admin
            // listener) answers on: an ephemeral port, advertised as bound, still works for
            // clients that reach the advertised host directly.
            Err(e) if bind_port != Some(0) => {
                tracing::warn!(node, error = %e, "broker port taken or out of range; using an ephemeral port");
                advertised = None;
                bind(0)
            }
            Err(e) => Err(e),
        };
        match bound {
            Ok((listener, port)) => {
                let advertised = advertised.unwrap_or(port);
                tracing::info!(node, port, advertised, "serving Kafka broker");
                tokio::spawn(self.clone().accept(listener, Target::Node(node)));
                ports.insert(node, advertised);
                advertised
            }
            Err(e) => {
                // Clients told about this port get a refused connection and ask again.
                tracing::error!(node, error = %e, "cannot serve Kafka broker");
                advertised.unwrap_or(0)
            }
        }
    }

    async fn accept(self: Arc<Self>, listener: TcpListener, target: Target) {
        let shutdown = crate::listener::closed(self.closing.clone());
        let conns = self.conns.clone();
        let family = self.connections.clone();
        crate::listener::accept_counted(
            listener,
            "kafka",
            conns,
            family,
            shutdown,
            move |stream, peer| {
                let pt = self.clone();
                async move {
                    let _open = crate::observe::metrics::ConnectionGuard::new("kafka");
                    if let Err(reason) = pt.proxy(stream, target).await {
                        tracing::debug!(%peer, ?target, %reason, "kafka connection closed");
                    }
                }
            },
        )
        .await;
    }

    async fn upstream(&self, target: Target) -> Result<BrokerStream, String> {
        // Started while the cluster was down: learn its versions before forwarding.
        if self.cluster.versions(ApiKey::ApiVersions as i16).is_none() {
            self.cluster.refresh().await?;
        }
        match target {
            Target::Any => Ok(self.cluster.connect_any().await?.0),
            Target::Node(id) => {
                if self.cluster.node(id).is_none() {
                    self.cluster.refresh().await?;
                }
                let addr = self
                    .cluster
                    .node(id)
                    .ok_or_else(|| format!("the cluster has no broker {id}"))?;
                self.cluster.connect(&addr).await
            }
        }
    }

    async fn proxy(self: Arc<Self>, client: TcpStream, target: Target) -> Result<(), String> {
        let upstream = match self.upstream(target).await {
            Ok(u) => u,
            Err(e) => {
                self.unavailable(client).await;
                return Err(format!("no broker: {e}"));
            }
        };
        let (crd, cwr) = client.into_split();
        let (urd, uwr) = tokio::io::split(upstream);
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        let requests = self.clone().forward_requests(crd, uwr, tx);
        let responses = self.clone().forward_responses(urd, cwr, rx);
        // Requests end at the client's EOF or shutdown; responses then drain what is owed.
        let (req, resp) = tokio::join!(requests, responses);
        resp.and(req)
    }

    async fn forward_requests(
        self: Arc<Self>,
        crd: impl AsyncRead + Unpin,
        uwr: impl AsyncWrite + Unpin,
        owed: mpsc::Sender<Owed>,
    ) -> Result<(), String> {
        let mut rd = BufReader::with_capacity(64 * 1024, crd);
        let mut wr = BufWriter::with_capacity(64 * 1024, uwr);
        let result = self.forward_each_request(&mut rd, &mut wr, &owed).await;
        if result.is_err() {
            // Requests already queued as owed must reach the broker, or their answers are
            // awaited forever: a bad frame right after good ones ends only what follows it.
            let _ = wr.flush().await;
        }
        result
    }

    async fn forward_each_request(
        &self,
        rd: &mut BufReader<impl AsyncRead + Unpin>,
        wr: &mut BufWriter<impl AsyncWrite + Unpin>,
        owed: &mpsc::Sender<Owed>,
    ) -> Result<(), String> {
        let limits = crate::listener::limits();
        loop {
            let len = tokio::select! {
                n = rd.read_i32() => match n {
                    Ok(n) => Some(n),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
                    Err(e) => return Err(e.to_string()),
                },
                _ = crate::listener::closed(self.closing.clone()), if rd.buffer().is_empty() => None,
                // The broker side failed: stop reading requests nobody will answer.
                _ = owed.closed() => None,
                // No request for limits.idle_timeout_secs (a length cut off by the timer is
                // not read on: the connection ends here).
                _ = tokio::time::sleep(limits.idle) => {
                    crate::observe::metrics().connection_closed("kafka", "idle");
                    None
                }
            };
            let Some(len) = len else {
                wr.flush().await.map_err(|e| e.to_string())?;
                return Ok(());
            };
            // Held against limits.max_inflight_bytes until the request is on its way to the
            // broker; the frame must arrive within limits.request_read_timeout_secs.
            let counted = if len > 0 && len as usize <= self.max_frame_bytes {
                len as usize
            } else {
                1
            };
            let _held = crate::listener::hold_bytes(counted).await;
            let read = frame::read_payload(rd, len, 4, self.max_frame_bytes);
            let frame = match tokio::time::timeout(limits.read, read).await {
                Ok(frame) => frame.map_err(|e| e.to_string())?,
                Err(_) => {
                    crate::observe::metrics().connection_closed("kafka", "read_timeout");
                    return Err(format!(
                        "a {len}-byte frame did not arrive within {} s",
                        limits.read.as_secs()
                    ));
                }
            };
            let start =
                frame::request_start(&frame).ok_or_else(|| "frame too short".to_string())?;
            let key = ApiKey::try_from(start.api_key)
                .map_err(|_| format!("unknown API key {}", start.api_key))?;
            // strait's own table, not the cluster's: a probe that reached an older broker
            // during a rolling restart must not cut clients off; the broker refuses what it
            // does not serve.
            let (min, max) = self
                .admitted_versions(key)
                .ok_or_else(|| format!("{key:?} is not forwarded"))?;
            let entry = |kind| Owed {
                key,
                version: start.version,
                correlation_id: start.correlation_id,
                started: Instant::now(),
                kind,
                sent: None,
            };
            if start.version < min || start.version > max {
                if key != ApiKey::ApiVersions {
                    return Err(format!("{key:?} v{} is not forwarded", start.version));
                }
                // Kafka answers an unknown ApiVersions version in v0 with the table, so the
                // client retries at one both sides know.
                let answer = self.unsupported_api_versions(start.correlation_id)?;
                send_owed(owed, wr, entry(OwedKind::Local(answer))).await?;
                flush_when_drained(rd, wr).await?;
                continue;
            }
            if key == ApiKey::CreatePartitions {
                if let Some(policy) = self.create_partitions_policy.get() {
                    let local = policy::refuse_create_partitions(
                        &frame,
                        start.version,
                        start.correlation_id,
                        policy,
                    )?;
                    if let Some(answer) = local {
                        send_owed(owed, wr, entry(OwedKind::Local(answer))).await?;
                        flush_when_drained(rd, wr).await?;
                        continue;
                    }
                }
            }
            if key == ApiKey::Produce {
                if let Some(policy) = self.produce_policy.get() {
                    let name_of = |name: &str, id| self.topic_names.name(name, id);
                    match policy::refuse_produce(
                        &frame,
                        start.version,
                        start.correlation_id,
                        policy,
                        &name_of,
                    )? {
                        None => {}
                        Some(None) => continue,
                        Some(Some(answer)) => {
                            send_owed(owed, wr, entry(OwedKind::Local(answer))).await?;
                            flush_when_drained(rd, wr).await?;
                            continue;
                        }
                    }
                }
            }
            let expects_response = key != ApiKey::Produce
                || frame::produce_expects_response(&frame, start.version)
                    .ok_or_else(|| "unreadable Produce request".to_string())?;
            let ns = self.namespace.as_ref();
            // Renamed before the answer is queued as owed: a request that cannot be decoded
            // ends the connection and must leave no answer awaited.
            let renamed = match ns.filter(|_| namespace::handling(key).is_some_and(|h| h.request)) {
                Some(ns) => {
                    match namespace::requests::to_cluster(key, start.version, &frame, ns)? {
                        Renamed::Forward(bytes) => Some(bytes),
                        Renamed::Answer(answer) => {
                            send_owed(owed, wr, entry(OwedKind::Local(answer))).await?;
                            flush_when_drained(rd, wr).await?;
                            continue;
                        }
                    }
                }
                None => None,
            };
            // Read from the client's frame, in the client's topic names.
            let sent = (key == ApiKey::Produce)
                .then(|| traffic::produce_request(start.version, &frame, &self.topic_names))
                .flatten();
            if expects_response {
                let kind = if rewrite::needs_rewrite(key, start.version, ns) {
                    OwedKind::Rewrite
                } else {
                    OwedKind::Forward
                };
                // Queued before the request leaves, so the answer always finds its entry.
                let owed_entry = Owed {
                    sent,
                    ..entry(kind)
                };
                send_owed(owed, wr, owed_entry).await?;
            } else if let Some(sent) = &sent {
                traffic::unanswered_produce(sent);
            }
            match renamed {
                Some(renamed) => wr.write_all(&renamed).await.map_err(|e| e.to_string())?,
                None => {
                    wr.write_all(&(frame.len() as i32).to_be_bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                    wr.write_all(&frame).await.map_err(|e| e.to_string())?;
                }
            }
            flush_when_drained(rd, wr).await?;
        }
    }

    async fn forward_responses(
        self: Arc<Self>,
        urd: impl AsyncRead + Unpin,
        cwr: impl AsyncWrite + Unpin,
        mut owed: mpsc::Receiver<Owed>,
    ) -> Result<(), String> {
        let mut rd = BufReader::with_capacity(64 * 1024, urd);
        let mut wr = BufWriter::with_capacity(64 * 1024, cwr);
        loop {
            // Flush once nothing more is owed right now.
            let next = match owed.try_recv() {
                Ok(o) => Some(o),
                Err(_) => {
                    wr.flush().await.map_err(|e| e.to_string())?;
                    owed.recv().await
                }
            };
            let Some(o) = next else {
                wr.flush().await.map_err(|e| e.to_string())?;
                return Ok(());
            };
            match o.kind {
                OwedKind::Local(bytes) => wr.write_all(&bytes).await.map_err(|e| e.to_string())?,
                kind => {
                    let frame = frame::read_frame(&mut rd, usize::MAX >> 1)
                        .await
                        .map_err(|e| format!("broker: {e}"))?
                        .ok_or_else(|| "the broker closed the connection".to_string())?;
                    let got = frame
                        .get(..4)
                        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    if got != Some(o.correlation_id) {
                        return Err(format!(
                            "broker answered correlation {got:?}, expected {}",
                            o.correlation_id
                        ));
                    }
                    let out = match kind {
                        OwedKind::Rewrite => rewrite::rewrite(
                            o.key,
                            o.version,
                            frame.clone(),
                            &self,
                            self.namespace.as_ref(),
                        )?,
                        _ => Rewritten::Same,
                    };
                    match out {
                        Rewritten::New(bytes) => {
                            wr.write_all(&bytes).await.map_err(|e| e.to_string())?
                        }
                        // The broker's frame goes on without being copied.
                        Rewritten::Same => {
                            wr.write_all(&(frame.len() as i32).to_be_bytes())
                                .await
                                .map_err(|e| e.to_string())?;
                            wr.write_all(&frame).await.map_err(|e| e.to_string())?;
                        }
                    }
                    // Counted from the broker's frame: partitions, errors and batches are
                    // the same in the rewritten one, names in the cluster's form.
                    let ns = self.namespace.as_ref();
                    match o.key {
                        ApiKey::Produce => traffic::produce_response(
                            o.version,
                            &frame,
                            o.sent.as_deref().unwrap_or_default(),
                            &self.topic_names,
                            ns,
                        ),
                        ApiKey::Fetch => {
                            traffic::fetch_response(o.version, &frame, &self.topic_names, ns)
                        }
                        _ => {}
                    }
                }
            }
            // Pipelined requests keep the queue non-empty, so flush whenever the broker has
            // sent nothing more yet: a response must not wait for the next one.
            if rd.buffer().is_empty() {
                wr.flush().await.map_err(|e| e.to_string())?;
            }
            super::request_metric(o.key).observe(o.started.elapsed());
        }
    }

    /// With the broker unreachable, a client still gets its ApiVersions answered (from what
    /// strait last learned of the cluster) before the connection closes at its next request.
    /// A connection closed during ApiVersions makes librdkafka assume a pre-0.10 broker and
    /// fall back to old request versions, which breaks idempotent producers.
    async fn unavailable(&self, client: TcpStream) {
        let (rd, mut wr) = client.into_split();
        let mut rd = BufReader::new(rd);
        let read = frame::read_frame(&mut rd, self.max_frame_bytes);
        let Ok(Ok(Some(frame))) =
            tokio::time::timeout(std::time::Duration::from_secs(10), read).await
        else {
            return;
        };
        let Some(start) = frame::request_start(&frame) else {
            return;
        };
        if start.api_key != ApiKey::ApiVersions as i16 {
            return;
        }
        let answer = match self.forwarded_versions(start.api_key) {
            Some((min, max)) if (min..=max).contains(&start.version) => frame::encode_response(
                ApiKey::ApiVersions,
                start.version,
                start.correlation_id,
                &ApiVersionsResponse::default().with_api_keys(self.api_version_list()),
            ),
            _ => self.unsupported_api_versions(start.correlation_id),
        };
        if let Ok(bytes) = answer {
            let _ = wr.write_all(&bytes).await;
            let _ = wr.flush().await;
            // Wait for the next request (or the client's close), then close.
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                frame::read_frame(&mut rd, self.max_frame_bytes),
            )
            .await;
        }
    }

    fn api_version_list(&self) -> Vec<ApiVersion> {
        ApiKey::iter()
            .filter_map(|k| {
                let (min, max) = self.forwarded_versions(k as i16)?;
                Some(
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(min)
                        .with_max_version(max),
                )
            })
            .collect()
    }

    fn unsupported_api_versions(&self, correlation_id: i32) -> Result<Bytes, String> {
        let keys = self.api_version_list();
        let response = ApiVersionsResponse::default()
            .with_error_code(35)
            .with_api_keys(keys);
        frame::encode_response(ApiKey::ApiVersions, 0, correlation_id, &response)
    }
}

impl rewrite::Addresses for Arc<Passthrough> {
    fn advertise(&self, node: i32) -> (StrBytes, i32) {
        (
            self.advertised_host.clone(),
            i32::from(self.node_port(node)),
        )
    }

    fn learn(&self, node: i32, real: String) {
        if self.cluster.node(node).as_deref() != Some(real.as_str()) {
            self.cluster.learn([(node, real)]);
        }
    }

    fn forwarded_versions(&self, key: i16) -> Option<(i16, i16)> {
        Passthrough::forwarded_versions(self, key)
    }

    fn learn_topic(&self, id: uuid::Uuid, name: &str) {
        self.topic_names.learn(id, name);
    }
}

impl Passthrough {
    /// The versions strait forwards for `key`, whatever the cluster serves.
    fn admitted_versions(&self, key: ApiKey) -> Option<(i16, i16)> {
        if self.cluster.logs_in() && versions::PASSTHROUGH_DENIED_WHEN_LOGGED_IN.contains(&key) {
            return None;
        }
        if self.namespace.is_some() {
            namespace::handling(key)?;
            let (min, max) = versions::passthrough(key)?;
            let (cmin, cmax) = namespace::offered_versions(key);
            let (lo, hi) = (min.max(cmin), max.min(cmax));
            return (lo <= hi).then_some((lo, hi));
        }
        versions::passthrough(key)
    }

    /// strait's pass-through table ∩ the cluster's versions: what ApiVersions advertises.
    fn forwarded_versions(&self, key: i16) -> Option<(i16, i16)> {
        let (min, max) = self.admitted_versions(ApiKey::try_from(key).ok()?)?;
        let (cmin, cmax) = self.cluster.versions(key)?;
        let (lo, hi) = (min.max(cmin), max.min(cmax));
        (lo <= hi).then_some((lo, hi))
    }
}

/// Sends what is buffered for the broker once the client has nothing more buffered: a
/// request must not wait for the next one, also when the last one was answered locally (its
/// answer is queued behind the broker's answers to the requests before it).
async fn flush_when_drained(
    rd: &BufReader<impl AsyncRead + Unpin>,
    wr: &mut BufWriter<impl AsyncWrite + Unpin>,
) -> Result<(), String> {
    if rd.buffer().is_empty() {
        wr.flush().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Queues what the client is owed; when the queue is full, what is buffered for the broker
/// goes out first, or the answers that would make room could never come.
async fn send_owed(
    owed: &mpsc::Sender<Owed>,
    wr: &mut BufWriter<impl AsyncWrite + Unpin>,
    entry: Owed,
) -> Result<(), String> {
    if owed.capacity() == 0 {
        wr.flush().await.map_err(|e| e.to_string())?;
    }
    owed.send(entry).await.map_err(|_| "closed".to_string())
}

/// A response the client is owed, in request order.
struct Owed {
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    started: Instant,
    kind: OwedKind,
    /// A Produce request's batches, counted as written when the answer says so.
    sent: Option<Vec<traffic::Sent>>,
}

enum OwedKind {
    /// The broker's answer, as bytes.
    Forward,
    /// The broker's answer, rewritten.
    Rewrite,
    /// An answer strait made itself.
    Local(Bytes),
}
