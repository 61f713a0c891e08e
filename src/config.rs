//! Typed configuration: one `Config` read from YAML, overridden by `STRAIT_*` environment
//! variables (`__` between levels) and validated once at start-up. Errors name the key.
//! `config/strait.yaml` documents every key with its default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod effective;
mod migration;

pub use effective::{effective_yaml, Override};
pub use migration::{MigrationConfig, MigrationSource};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub region: String,
    pub account_id: String,
    pub kinesis: KinesisConfig,
    pub kafka: KafkaConfig,
    pub backend: BackendConfig,
    pub streams: StreamsConfig,
    pub admin: AdminConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    /// Kinesis streams mirrored into the backend and cut over to it (`docs/migration.md`).
    pub migration: MigrationConfig,
    /// At SIGTERM, how long in-flight requests may take before connections are closed.
    pub shutdown_grace_secs: u64,
}

/// What strait logs and how (to standard error).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter (`info`, `warn,strait=debug`); `RUST_LOG`, when set, wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event; colour only when standard error is a terminal.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// What one client may hold of strait: connections, and time spent idle or sending a request.
/// Applies to the Kinesis, Kafka and admin listeners.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Per listener; a connection beyond it is closed at once. Clamped at start so all
    /// listeners together stay below the process's open-file limit.
    pub max_connections: usize,
    /// A connection with no request in flight for this long is closed (Kafka's
    /// connections.max.idle.ms default); an enhanced fan-out stream is a request in flight.
    pub idle_timeout_secs: u64,
    /// An HTTP request's head and body, or a whole Kafka frame, must arrive within this.
    pub request_read_timeout_secs: u64,
    /// Request bytes all connections may hold at once; beyond it, reading requests pauses.
    pub max_inflight_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 10_000,
            idle_timeout_secs: 600,
            request_read_timeout_secs: 30,
            max_inflight_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KinesisConfig {
    pub listen: String,
    /// Largest request body accepted; PutRecords carries up to 10 MiB of data, base64-encoded.
    pub max_body_bytes: usize,
    pub tls: TlsConfig,
    /// How long one SubscribeToShard stream lasts before the client must resubscribe.
    pub subscription_lifetime_secs: u64,
    /// Enhanced fan-out consumers one stream may have registered.
    pub max_consumers_per_stream: u32,
    /// `aws`: enforce Kinesis's per-shard limits (5 GetRecords calls and 1,000 records or
    /// 1 MiB written a second), for testing clients against them; `off` (default): none.
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Throttling {
    #[default]
    Off,
    Aws,
}

/// PEM files for TLS on the Kinesis port. With both set, the port also accepts TLS.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The admin listener: /metrics, /healthz, /readyz.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Empty turns it off.
    pub listen: String,
    /// Label record and byte counters with the stream name. Turn off for deployments with
    /// very many streams, to keep the number of series bounded.
    pub per_stream_metrics: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9180".into(),
            per_stream_metrics: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// The Kafka protocol listener; empty turns it off.
    pub listen: String,
    /// This replica's Kafka node id when replicas share state (Kinesis backend,
    /// `state.type: dynamodb`); the first free id from 1 when unset. Alone, strait is node 0.
    pub node_id: Option<i32>,
    /// host:port written into Metadata and FindCoordinator responses.
    pub advertised_address: String,
    /// Largest request frame accepted; larger ones close the connection, as Kafka does.
    pub max_frame_bytes: usize,
    /// How long the first JoinGroup of an empty group waits for others before the rebalance
    /// completes (Kafka's group.initial.rebalance.delay.ms).
    pub group_initial_rebalance_delay_ms: u64,
    /// How long the children of a reshard wait for a group that commits nothing on their
    /// parents before it is given them anyway (it started at the latest offset and will not
    /// read the parents).
    pub unread_parent_wait_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            listen: "127.0.0.1:9092".into(),
            node_id: None,
            advertised_address: "127.0.0.1:9092".into(),
            max_frame_bytes: 100 << 20,
            group_initial_rebalance_delay_ms: 3000,
            unread_parent_wait_ms: 30_000,
        }
    }
}

/// How Kafka producers' keyed records are checked against a `kinesis-md5` stream's ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyCheck {
    Off,
    Warn,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendType {
    Embedded,
    Kafka,
    Kinesis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    #[serde(rename = "type")]
    pub kind: BackendType,
    pub embedded: EmbeddedConfig,
    pub kafka: KafkaBackendConfig,
    pub kinesis: KinesisBackendConfig,
}

/// Amazon Kinesis behind `backend.type: kinesis`: Kinesis clients are forwarded to it (the
/// pass-through); Kafka clients reach its streams as topics through the core.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KinesisBackendConfig {
    pub region: String,
    /// `https://kinesis.<region>.amazonaws.com` when unset; an emulator's URL in tests.
    pub endpoint: Option<String>,
    /// `default`: the environment's keys, then a web identity (IRSA), then the ECS / EKS Pod
    /// Identity agent, then the EC2 instance profile; any other name: that profile of the
    /// shared credentials file.
    pub credentials: String,
    /// CA bundle (PEM) the endpoint's certificate is checked against; the system bundle
    /// when unset.
    pub ca_bundle: Option<PathBuf>,
    /// Where Kafka offsets, the offset index and consumer groups are kept.
    pub state: KinesisStateConfig,
    /// How often a partition whose reader has caught up asks its shard for new records
    /// (Kinesis allows every reader of a shard five GetRecords calls a second between them).
    pub poll_interval_ms: u64,
    /// The most GetRecords calls a second strait makes on one shard (of the 5 Kinesis allows
    /// all its readers together), even when a producer waits for its records' offsets.
    pub max_reads_per_sec: u32,
    /// Records read from Kinesis are kept for Kafka consumers up to this many bytes.
    pub cache_bytes: u64,
    /// How strait reads shards for Kafka clients: `polling` (GetRecords, sharing the shard's
    /// 5 calls a second with its other readers) or `fan-out` (a registered stream consumer
    /// named `consumer_name`, pushed records, its own 2 MiB/s per shard; billed by AWS).
    pub read: KinesisRead,
    pub consumer_name: String,
    /// The encoding of strait's own Kinesis calls: `auto` (CBOR, as the AWS SDK for Java
    /// sends it, falling back to JSON for good when the upstream does not answer in CBOR),
    /// `cbor` or `json`. CBOR carries record data as bytes, where JSON needs base64.
    pub wire: KinesisWire,
    /// The streams Kafka clients see as topics: every one when empty, else these names and
    /// `prefix*` entries.
    #[serde(deserialize_with = "list_or_commas")]
    pub streams: Vec<String>,
    /// Per Kafka consumer group.
    pub groups: BTreeMap<String, KinesisGroupConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KinesisWire {
    #[default]
    Auto,
    Cbor,
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KinesisRead {
    #[default]
    Polling,
    FanOut,
}

impl Default for KinesisBackendConfig {
    fn default() -> Self {
        KinesisBackendConfig {
            region: "us-east-1".into(),
            endpoint: None,
            credentials: "default".into(),
            ca_bundle: None,
            state: KinesisStateConfig::default(),
            poll_interval_ms: 1000,
            max_reads_per_sec: 2,
            cache_bytes: 256 << 20,
            read: KinesisRead::Polling,
            consumer_name: "strait".into(),
            wire: KinesisWire::Auto,
            streams: Vec::new(),
            groups: BTreeMap::new(),
        }
    }
}

/// The Kinesis backend's state store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KinesisStateConfig {
    #[serde(rename = "type")]
    pub kind: KinesisStateType,
    /// The DynamoDB table of `type: dynamodb` (made when missing).
    pub table: String,
    /// The DynamoDB endpoint (the state table, KCL lease tables);
    /// `https://dynamodb.<region>.amazonaws.com` when unset.
    pub endpoint: Option<String>,
}

impl Default for KinesisStateConfig {
    fn default() -> Self {
        KinesisStateConfig {
            kind: KinesisStateType::Local,
            table: "strait-state".into(),
            endpoint: None,
        }
    }
}

/// An `http://` or `https://` URL with something after the scheme.
fn endpoint_url_ok(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty())
        && url.parse::<http::Uri>().is_ok()
}

/// Kinesis stream and consumer names: 1 to 128 of letters, digits, `_`, `.` and `-`.
fn kinesis_name_ok(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// DynamoDB's table names: 3 to 255 of letters, digits, `_`, `.` and `-`.
fn table_name_ok(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A Kafka consumer group's settings on the Kinesis backend.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KinesisGroupConfig {
    /// The DynamoDB lease table of a KCL application: the group's committed offsets are its
    /// checkpoints, read from and written to it.
    pub kcl_lease_table: Option<String>,
    /// The stream a single-stream KCL application reads (its lease keys are bare shard
    /// ids). Without it only multi-stream leases, which name their stream, are used.
    pub stream: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KinesisStateType {
    /// Files under `data_dir`: one strait replica.
    #[default]
    Local,
    /// A DynamoDB table: the offset index and metadata documents outlive `data_dir`, and
    /// replicas reading the same shards agree on every offset.
    Dynamodb,
}

impl KinesisBackendConfig {
    /// The DynamoDB endpoint lease tables are reached at.
    pub fn dynamodb_url(&self) -> String {
        self.state.endpoint.clone().unwrap_or_else(|| {
            let domain = if self.region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            format!("https://dynamodb.{}.{domain}", self.region)
        })
    }

    /// The endpoint requests go to.
    pub fn endpoint_url(&self) -> String {
        self.endpoint.clone().unwrap_or_else(|| {
            let domain = if self.region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            format!("https://kinesis.{}.{domain}", self.region)
        })
    }
}

/// The cluster behind `backend.type: kafka`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaBackendConfig {
    /// host:port of one or more brokers; strait learns the rest from Metadata. A
    /// comma-separated string also works (for the environment override).
    #[serde(deserialize_with = "list_or_commas")]
    pub bootstrap: Vec<String>,
    /// The client id on strait's own requests to the cluster.
    pub client_id: String,
    pub tls: KafkaBackendTls,
    pub sasl: KafkaBackendSasl,
    /// Stream "x" is topic "<prefix>x".
    pub topic_prefix: String,
    /// The compacted topic holding stream attributes and consumer registrations.
    pub metadata_topic: String,
}

impl Default for KafkaBackendConfig {
    fn default() -> Self {
        KafkaBackendConfig {
            bootstrap: vec!["127.0.0.1:19092".into()],
            client_id: "strait".into(),
            tls: KafkaBackendTls::default(),
            sasl: KafkaBackendSasl::default(),
            topic_prefix: String::new(),
            metadata_topic: "__strait_meta".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaBackendTls {
    pub enabled: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaBackendSasl {
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM.
    pub mechanism: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The password never shows in logs or error messages.
impl std::fmt::Debug for KafkaBackendSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBackendSasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field(
                "password",
                &self.password.as_ref().map(|_| effective::REDACTED),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Always,
    Interval,
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    pub fsync: FsyncPolicy,
    pub fsync_interval_ms: u64,
    pub segment_bytes: u64,
    pub retention_check_secs: u64,
    /// Segment files held open at once, across every partition; the least recently used are
    /// closed past it and opened again on use. Lowered at start to a quarter of the
    /// process's open-file limit.
    pub max_open_files: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamsConfig {
    pub default_shard_count: u32,
    /// Key hash of streams created through the Kinesis API.
    pub default_key_hash_kinesis: KeyHash,
    /// Key hash of topics created through Kafka (CreateTopics or auto-create).
    pub default_key_hash_kafka: KeyHash,
    /// Create a topic when a Kafka client names an unknown one in Metadata or Produce.
    pub auto_create_topics: bool,
    pub key_check: KeyCheck,
    /// The account's shard limit reported by DescribeLimits and enforced by CreateStream.
    pub shard_limit: u32,
    pub on_demand_stream_count_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            kinesis: KinesisConfig::default(),
            kafka: KafkaConfig::default(),
            backend: BackendConfig::default(),
            streams: StreamsConfig::default(),
            admin: AdminConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            migration: MigrationConfig::default(),
            shutdown_grace_secs: 30,
        }
    }
}

impl Default for KinesisConfig {
    fn default() -> Self {
        KinesisConfig {
            listen: "127.0.0.1:4567".into(),
            max_body_bytes: 20 << 20,
            tls: TlsConfig::default(),
            subscription_lifetime_secs: 300,
            max_consumers_per_stream: 20,
            throttling: Throttling::Off,
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: BackendType::Embedded,
            embedded: EmbeddedConfig::default(),
            kafka: KafkaBackendConfig::default(),
            kinesis: KinesisBackendConfig::default(),
        }
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 1000,
            segment_bytes: 128 << 20,
            retention_check_secs: 60,
            max_open_files: 1024,
        }
    }
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            default_shard_count: 4,
            default_key_hash_kinesis: KeyHash::KinesisMd5,
            default_key_hash_kafka: KeyHash::KafkaMurmur2,
            auto_create_topics: true,
            key_check: KeyCheck::Off,
            shard_limit: 10_000,
            on_demand_stream_count_limit: 50,
        }
    }
}

/// The sections environment overrides may address.
const TOP_LEVEL_KEYS: &[&str] = &[
    "data_dir",
    "region",
    "account_id",
    "kinesis",
    "kafka",
    "backend",
    "limits",
    "streams",
    "admin",
    "log",
    "migration",
    "shutdown_grace_secs",
];

/// The top-level keys that hold a section rather than a value.
const SECTIONS: &[&str] = &[
    "kinesis",
    "kafka",
    "backend",
    "streams",
    "admin",
    "limits",
    "log",
    "migration",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path` (a missing file means all defaults only when `path` is None), applies
    /// `STRAIT_*` overrides from `env`, and validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Self::load_with_overrides(path, env).map(|(config, _)| config)
    }

    /// `load`, also naming each key an environment variable set.
    pub fn load_with_overrides(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<Override>), ConfigError> {
        let mut overrides = Vec::new();
        let mut tree = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                serde_yaml::from_str::<serde_yaml::Value>(&text)
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", p.display())))?
            }
            None => serde_yaml::Value::Mapping(Default::default()),
        };
        if tree.is_null() {
            tree = serde_yaml::Value::Mapping(Default::default());
        }
        for (k, v) in env {
            if let Some(path) = k.strip_prefix("STRAIT_") {
                let keys: Vec<String> = path.split("__").map(|s| s.to_lowercase()).collect();
                // Other tools' STRAIT_* variables (STRAIT_BIN, STRAIT_ENDPOINT) are not ours;
                // a typo below a known section still fails.
                if !TOP_LEVEL_KEYS.contains(&keys[0].as_str()) {
                    continue;
                }
                // A whole section cannot come from one variable: STRAIT_KAFKA is the test
                // suites' name for strait's Kafka address, not a config override.
                if keys.len() == 1 && SECTIONS.contains(&keys[0].as_str()) {
                    continue;
                }
                set_path(&mut tree, &keys, scalar(&v))
                    .map_err(|e| ConfigError::Invalid(format!("{k}: {e}")))?;
                overrides.push(Override { keys, var: k });
            }
        }
        let config: Config =
            serde_yaml::from_value(tree).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok((config, overrides))
    }

    /// What the Kafka backend can do in this version is checked here, so a setting it would
    /// ignore fails at start-up instead.
    fn validate_kafka_backend(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError::Invalid(format!("{key}: {why}")));
        let k = &self.backend.kafka;
        if k.bootstrap.is_empty() {
            return bad(
                "backend.kafka.bootstrap",
                "needs at least one host:port".into(),
            );
        }
        for addr in &k.bootstrap {
            let ok = addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return bad(
                    "backend.kafka.bootstrap",
                    format!("{addr:?} is not host:port"),
                );
            }
        }
        if self.kafka.listen.is_empty() {
            return bad(
                "kafka.listen",
                "the Kafka backend serves Kafka clients; kafka.listen must be set".into(),
            );
        }
        if k.tls.enabled && k.tls.ca.is_none() {
            return bad(
                "backend.kafka.tls.ca",
                "required when TLS is enabled (a PEM bundle; /etc/ssl/certs/ca-certificates.crt holds the public CAs MSK uses)".into(),
            );
        }
        if k.tls.cert.is_some() != k.tls.key.is_some() {
            return bad(
                "backend.kafka.tls.cert",
                "cert and key go together (TLS client authentication)".into(),
            );
        }
        if let Some(m) = &k.sasl.mechanism {
            match m.as_str() {
                "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
                    if k.sasl.username.as_deref().unwrap_or("").is_empty()
                        || k.sasl.password.is_none()
                    {
                        return bad(
                            "backend.kafka.sasl.username",
                            format!("{m} needs a username and a password"),
                        );
                    }
                }
                "AWS_MSK_IAM" => {
                    if !k.tls.enabled {
                        return bad(
                            "backend.kafka.tls.enabled",
                            "AWS_MSK_IAM needs TLS (MSK serves IAM on its TLS listener, port 9098)"
                                .into(),
                        );
                    }
                }
                other => {
                    let known = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, AWS_MSK_IAM";
                    let why = format!("{other:?} is not one of {known}");
                    return bad("backend.kafka.sasl.mechanism", why);
                }
            }
        }
        if let Some(why) = topic_prefix_problem(&k.topic_prefix, &k.metadata_topic) {
            return bad("backend.kafka.topic_prefix", why);
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if self.region.is_empty() {
            return bad("region", "must not be empty".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return bad(
                "log.level",
                format!("{:?} is not a log filter: {e}", self.log.level),
            );
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return bad(
                "account_id",
                format!("{:?} is not 12 digits", self.account_id),
            );
        }
        if let Err(e) = self.kinesis.listen.parse::<SocketAddr>() {
            return bad("kinesis.listen", format!("{:?}: {e}", self.kinesis.listen));
        }
        if !self.kafka.listen.is_empty() {
            if let Err(e) = self.kafka.listen.parse::<SocketAddr>() {
                return bad("kafka.listen", format!("{:?}: {e}", self.kafka.listen));
            }
            let ok = self
                .kafka
                .advertised_address
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return bad(
                    "kafka.advertised_address",
                    format!("{:?} is not host:port", self.kafka.advertised_address),
                );
            }
        }
        if self.shutdown_grace_secs > 3600 {
            return bad(
                "shutdown_grace_secs",
                format!("{} is above 3600", self.shutdown_grace_secs),
            );
        }
        if !self.admin.listen.is_empty() {
            if let Err(e) = self.admin.listen.parse::<SocketAddr>() {
                return bad("admin.listen", format!("{:?}: {e}", self.admin.listen));
            }
        }
        if self.kafka.node_id.is_some_and(|id| id < 0) {
            return bad(
                "kafka.node_id",
                format!(
                    "{} is negative: Kafka node ids are 0 or more",
                    self.kafka.node_id.unwrap_or_default()
                ),
            );
        }
        if self.kafka.max_frame_bytes < 1 << 20 {
            return bad(
                "kafka.max_frame_bytes",
                format!("{} is below 1 MiB", self.kafka.max_frame_bytes),
            );
        }
        if self.backend.kind == BackendType::Kafka {
            self.validate_kafka_backend()?;
        }
        if self.migration.enabled() {
            self.migration.validate(self.backend.kind)?;
        }
        if self.backend.kind == BackendType::Kinesis {
            let k = &self.backend.kinesis;
            if k.region.is_empty() {
                return bad("backend.kinesis.region", "is empty".into());
            }
            let url = k.endpoint_url();
            if !endpoint_url_ok(&url) {
                return bad(
                    "backend.kinesis.endpoint",
                    format!("{url:?} is not an http:// or https:// URL"),
                );
            }
            if k.credentials.trim().is_empty() {
                return bad(
                    "backend.kinesis.credentials",
                    "is empty: `default` or a profile name".into(),
                );
            }
            if k.state.kind == KinesisStateType::Dynamodb && !table_name_ok(&k.state.table) {
                return bad(
                    "backend.kinesis.state.table",
                    format!(
                        "{:?} is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)",
                        k.state.table
                    ),
                );
            }
            if !kinesis_name_ok(&k.consumer_name) {
                return bad(
                    "backend.kinesis.consumer_name",
                    format!(
                        "{:?} is not a Kinesis consumer name (1 to 128 of [a-zA-Z0-9_.-])",
                        k.consumer_name
                    ),
                );
            }
            if !(1..=5).contains(&k.max_reads_per_sec) {
                return bad(
                    "backend.kinesis.max_reads_per_sec",
                    format!(
                        "{} is not in 1..=5 (Kinesis allows 5 GetRecords calls a second per shard)",
                        k.max_reads_per_sec
                    ),
                );
            }
            if let Some(why) = k.streams.iter().find_map(|e| stream_filter_entry_error(e)) {
                return bad("backend.kinesis.streams", why);
            }
            for (group, g) in &k.groups {
                let table = g.kcl_lease_table.as_deref().unwrap_or("table");
                let table_ok = (3..=255).contains(&table.len())
                    && table
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                if group.is_empty() || !table_ok {
                    return bad(
                        &format!("backend.kinesis.groups.{group}.kcl_lease_table"),
                        format!(
                            "{table:?} is not a DynamoDB table name (3 to 255 of [a-zA-Z0-9_.-])"
                        ),
                    );
                }
            }
            if !(200..=60_000).contains(&k.poll_interval_ms) {
                return bad(
                    "backend.kinesis.poll_interval_ms",
                    format!(
                        "{} is not in 200..=60000 (Kinesis allows 5 GetRecords calls a second per shard)",
                        k.poll_interval_ms
                    ),
                );
            }
        }
        let l = &self.limits;
        if l.max_connections == 0 {
            return bad("limits.max_connections", "must be at least 1".into());
        }
        if l.max_inflight_bytes < 1 << 20 || l.max_inflight_bytes > u32::MAX as usize {
            return bad(
                "limits.max_inflight_bytes",
                format!("{} is not in 1 MiB..=4 GiB", l.max_inflight_bytes),
            );
        }
        if l.idle_timeout_secs == 0 || l.request_read_timeout_secs == 0 {
            return bad(
                "limits.idle_timeout_secs, limits.request_read_timeout_secs",
                "must be at least 1 second".into(),
            );
        }
        if !(1..=10_000).contains(&self.streams.default_shard_count) {
            return bad(
                "streams.default_shard_count",
                format!("{} is not in 1..=10000", self.streams.default_shard_count),
            );
        }
        if self.backend.embedded.segment_bytes < 1 << 20 {
            return bad(
                "backend.embedded.segment_bytes",
                format!("{} is below 1 MiB", self.backend.embedded.segment_bytes),
            );
        }
        if self.kinesis.tls.cert.is_some() != self.kinesis.tls.key.is_some() {
            return bad(
                "kinesis.tls",
                "set both `cert` and `key`, or neither".into(),
            );
        }
        if !(1..=86_400).contains(&self.kinesis.subscription_lifetime_secs) {
            return bad(
                "kinesis.subscription_lifetime_secs",
                format!(
                    "{} is not in 1..=86400",
                    self.kinesis.subscription_lifetime_secs
                ),
            );
        }
        if !(1..=10_000).contains(&self.kinesis.max_consumers_per_stream) {
            return bad(
                "kinesis.max_consumers_per_stream",
                format!(
                    "{} is not in 1..=10000",
                    self.kinesis.max_consumers_per_stream
                ),
            );
        }
        if self.kinesis.max_body_bytes < 1 << 20 {
            return bad(
                "kinesis.max_body_bytes",
                format!("{} is below 1 MiB", self.kinesis.max_body_bytes),
            );
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.kinesis.listen.parse().expect("validated")
    }
}

/// The longest prefix that still leaves room for a 128-character stream name in Kafka's
/// 249-character topic names.
const MAX_TOPIC_PREFIX: usize = 249 - 128;

/// Why `backend.kafka.topic_prefix` cannot be used, if it cannot.
fn topic_prefix_problem(prefix: &str, metadata_topic: &str) -> Option<String> {
    if prefix.is_empty() {
        return None;
    }
    if prefix.len() > MAX_TOPIC_PREFIX {
        return Some(format!(
            "{} characters; at most {MAX_TOPIC_PREFIX}, so that a 128-character stream name still makes a legal topic name",
            prefix.len()
        ));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "{prefix:?} holds {c:?}; Kafka topic names allow only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    // Two deployments with different prefixes must not share one catalog, and a principal
    // allowed only the prefix (a PREFIXED ACL) must still reach the metadata topic.
    if !metadata_topic.starts_with(prefix) {
        return Some(format!(
            "the metadata topic {metadata_topic:?} must start with the prefix too (set backend.kafka.metadata_topic to, for example, \"{prefix}__strait_meta\")"
        ));
    }
    None
}

/// Why an entry of `backend.kinesis.streams` is not a stream name or prefix.
fn stream_filter_entry_error(entry: &str) -> Option<String> {
    let body = entry.strip_suffix('*').unwrap_or(entry);
    if body.contains('*') {
        return Some(format!("{entry:?}: '*' may only end an entry (a prefix)"));
    }
    if entry.is_empty() || body.len() > 128 {
        return Some(format!(
            "{entry:?}: a stream name or prefix has 1 to 128 characters"
        ));
    }
    if !body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Some(format!(
            "{entry:?}: stream names are made of [a-zA-Z0-9_.-]"
        ));
    }
    None
}

/// A YAML list, or one comma-separated string (as an environment override gives).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(v) => v,
        ListOrString::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// Environment values: integers and booleans become YAML scalars; anything else, including
/// numbers with leading zeros such as account ids, stays a string.
fn scalar(v: &str) -> serde_yaml::Value {
    match v {
        "true" => return serde_yaml::Value::Bool(true),
        "false" => return serde_yaml::Value::Bool(false),
        _ => {}
    }
    let leading_zero = v.len() > 1 && v.starts_with('0');
    match v.parse::<i64>() {
        Ok(n) if !leading_zero => serde_yaml::Value::Number(n.into()),
        _ => serde_yaml::Value::String(v.to_string()),
    }
}

fn set_path(
    tree: &mut serde_yaml::Value,
    keys: &[String],
    value: serde_yaml::Value,
) -> Result<(), String> {
    let (first, rest) = keys.split_first().ok_or("empty key")?;
    let map = match tree {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => {
            *tree = serde_yaml::Value::Mapping(Default::default());
            match tree {
                serde_yaml::Value::Mapping(m) => m,
                _ => unreachable!(),
            }
        }
        _ => return Err(format!("`{first}` is below a scalar")),
    };
    let key = serde_yaml::Value::String(first.clone());
    if rest.is_empty() {
        map.insert(key, value);
        return Ok(());
    }
    let child = map.entry(key).or_insert(serde_yaml::Value::Null);
    set_path(child, rest, value)
}

/// How keys find partitions, fixed when the stream is created (reference §4a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyHash {
    KinesisMd5,
    KafkaMurmur2,
    Auto,
}

impl KeyHash {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyHash::KinesisMd5 => "kinesis-md5",
            KeyHash::KafkaMurmur2 => "kafka-murmur2",
            KeyHash::Auto => "auto",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stream_filter_entries_are_names_or_prefixes() {
        assert_eq!(stream_filter_entry_error("orders"), None);
        assert_eq!(stream_filter_entry_error("team-a.*"), None);
        assert!(stream_filter_entry_error("").is_some());
        assert!(stream_filter_entry_error("a*b").is_some());
        assert!(stream_filter_entry_error("a**").is_some());
        assert!(stream_filter_entry_error("a/b").is_some());
        let c = Config::load(
            None,
            env(&[("STRAIT_BACKEND__KINESIS__STREAMS", "orders, team-a.*")]),
        )
        .unwrap();
        assert_eq!(c.backend.kinesis.streams, vec!["orders", "team-a.*"]);
        // Checked when the Kinesis backend is the one in use.
        let bad = env(&[
            ("STRAIT_BACKEND__TYPE", "kinesis"),
            ("STRAIT_BACKEND__KINESIS__STREAMS", "a*b"),
        ]);
        let e = Config::load(None, bad).unwrap_err().to_string();
        assert!(e.contains("backend.kinesis.streams"), "{e}");
        let bad = env(&[
            ("STRAIT_BACKEND__TYPE", "kinesis"),
            ("STRAIT_BACKEND__KINESIS__GROUPS__G1__KCL_LEASE_TABLE", "x"),
        ]);
        let e = Config::load(None, bad).unwrap_err().to_string();
        assert!(
            e.contains("backend.kinesis.groups.g1.kcl_lease_table"),
            "{e}"
        );
    }

    #[test]
    fn shipped_config_is_the_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/strait.yaml");
        let c = Config::load(Some(&shipped), vec![]).unwrap();
        let d = Config::default();
        assert_eq!(c.kinesis.listen, d.kinesis.listen);
        assert_eq!(c.backend.embedded.fsync, FsyncPolicy::Always);
        assert_eq!(c.streams.default_shard_count, d.streams.default_shard_count);
        assert_eq!(c.account_id, "000000000000");
        assert_eq!(
            c.kinesis.subscription_lifetime_secs,
            d.kinesis.subscription_lifetime_secs
        );
        assert_eq!(
            c.kinesis.max_consumers_per_stream,
            d.kinesis.max_consumers_per_stream
        );
        assert!(c.kinesis.tls.cert.is_none() && c.kinesis.tls.key.is_none());
        assert_eq!(c.admin.listen, d.admin.listen);
        assert_eq!(c.shutdown_grace_secs, d.shutdown_grace_secs);
        assert_eq!(c.admin.per_stream_metrics, d.admin.per_stream_metrics);
    }

    /// docs/configuration.md lists every key of the shipped file with its environment name.
    #[test]
    fn configuration_doc_lists_every_key() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
        let shipped: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(root.join("config/strait.yaml")).unwrap(),
        )
        .unwrap();
        fn leaves(v: &serde_yaml::Value, path: &str, out: &mut Vec<String>) {
            match v.as_mapping() {
                Some(m) => {
                    for (k, v) in m {
                        let k = k.as_str().unwrap();
                        let p = if path.is_empty() {
                            k.to_string()
                        } else {
                            format!("{path}.{k}")
                        };
                        leaves(v, &p, out);
                    }
                }
                None => out.push(path.to_string()),
            }
        }
        let mut keys = Vec::new();
        leaves(&shipped, "", &mut keys);
        assert!(keys.len() > 20);
        for k in keys {
            let env = format!("STRAIT_{}", k.to_uppercase().replace('.', "__"));
            assert!(
                doc.contains(&format!("| `{k}` |")),
                "docs/configuration.md lacks `{k}`"
            );
            assert!(
                doc.contains(&format!("`{env}`")),
                "docs/configuration.md lacks `{env}`"
            );
        }
    }

    #[test]
    fn env_overrides_nested_keys() {
        let c = Config::load(
            None,
            env(&[
                ("STRAIT_KINESIS__LISTEN", "127.0.0.1:9999"),
                ("STRAIT_BACKEND__EMBEDDED__FSYNC", "never"),
                ("STRAIT_ACCOUNT_ID", "012345678901"),
                ("STRAIT_STREAMS__DEFAULT_SHARD_COUNT", "8"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.kinesis.listen, "127.0.0.1:9999");
        assert_eq!(c.backend.embedded.fsync, FsyncPolicy::Never);
        assert_eq!(c.account_id, "012345678901");
        assert_eq!(c.streams.default_shard_count, 8);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::load(None, env(&[("STRAIT_KINESIS__LISTEN", "nope")])).unwrap_err();
        assert!(e.to_string().contains("kinesis.listen"), "{e}");
        let e = Config::load(
            None,
            env(&[("STRAIT_BACKEND__EMBEDDED__FSYNC", "sometimes")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("sometimes"), "{e}");
        let e = Config::load(None, env(&[("STRAIT_KINESIS__LISTN", "1")])).unwrap_err();
        assert!(e.to_string().contains("listn"), "{e}");
    }

    #[test]
    fn other_tools_variables_are_ignored() {
        let c = Config::load(
            None,
            env(&[
                ("STRAIT_BIN", "/x"),
                ("STRAIT_ENDPOINT", "http://h"),
                ("STRAIT_KAFKA", "127.0.0.1:9092"),
                ("STRAIT_ADMIN", "127.0.0.1:9180"),
            ]),
        );
        assert!(c.is_ok(), "{:?}", c.err());
    }

    #[test]
    fn kafka_backend_settings_are_checked() {
        let kafka = |extra: &[(&str, &str)]| {
            let mut vars = vec![("STRAIT_BACKEND__TYPE", "kafka")];
            vars.extend_from_slice(extra);
            Config::load(None, env(&vars))
        };
        let c = kafka(&[("STRAIT_BACKEND__KAFKA__BOOTSTRAP", "a:9092, b:9093")]).unwrap();
        assert_eq!(c.backend.kafka.bootstrap, vec!["a:9092", "b:9093"]);
        for (key, value, named) in [
            ("STRAIT_BACKEND__KAFKA__BOOTSTRAP", "nohost", "bootstrap"),
            ("STRAIT_BACKEND__KAFKA__TLS__ENABLED", "true", "tls.ca"),
            ("STRAIT_BACKEND__KAFKA__TLS__CERT", "/c.pem", "cert and key"),
            (
                "STRAIT_BACKEND__KAFKA__SASL__MECHANISM",
                "PLAIN",
                "username",
            ),
            (
                "STRAIT_BACKEND__KAFKA__SASL__MECHANISM",
                "AWS_MSK_IAM",
                "needs TLS",
            ),
            (
                "STRAIT_BACKEND__KAFKA__SASL__MECHANISM",
                "GSSAPI",
                "not one of",
            ),
            (
                "STRAIT_BACKEND__KAFKA__TOPIC_PREFIX",
                "p.",
                "p.__strait_meta",
            ),
            ("STRAIT_BACKEND__KAFKA__TOPIC_PREFIX", "team/a", "'/'"),
            ("STRAIT_KAFKA__LISTEN", "", "kafka.listen"),
        ] {
            let e = kafka(&[(key, value)]).unwrap_err().to_string();
            assert!(e.contains(named), "{key}={value}: {e}");
        }
        let long = "p".repeat(122);
        let meta = format!("{long}m");
        let e = kafka(&[
            ("STRAIT_BACKEND__KAFKA__TOPIC_PREFIX", &long),
            ("STRAIT_BACKEND__KAFKA__METADATA_TOPIC", &meta),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("at most 121"), "{e}");
        let c = kafka(&[
            ("STRAIT_BACKEND__KAFKA__TOPIC_PREFIX", "team-a."),
            (
                "STRAIT_BACKEND__KAFKA__METADATA_TOPIC",
                "team-a.__strait_meta",
            ),
        ])
        .unwrap();
        assert_eq!(c.backend.kafka.topic_prefix, "team-a.");
    }
}
