//! The `migration` section: which Kinesis streams strait mirrors into its backend, from where,
//! and when a mirror counts as caught up (issue 16, `docs/migration.md`).

use serde::{Deserialize, Serialize};

use super::{
    endpoint_url_ok, kinesis_name_ok, list_or_commas, BackendType, ConfigError,
    KinesisBackendConfig, KinesisRead, KinesisWire,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationConfig {
    /// The Kinesis side the streams are copied from.
    pub source: MigrationSource,
    /// Streams mirrored into the backend under the same names; empty turns migration off.
    #[serde(deserialize_with = "list_or_commas")]
    pub streams: Vec<String>,
    /// Every shard's mirror lag at or below this many records: the stream is caught up.
    pub caught_up_lag_records: u64,
    /// A cutover is refused while the lag is above this.
    pub max_cutover_lag_records: u64,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            source: MigrationSource::default(),
            streams: Vec::new(),
            caught_up_lag_records: 1_000,
            max_cutover_lag_records: 10_000,
        }
    }
}

impl MigrationConfig {
    pub fn enabled(&self) -> bool {
        !self.streams.is_empty()
    }

    /// The mirror writes into a strait log: the Kafka backend (the migration's target) or the
    /// embedded one; a Kinesis backend would copy Kinesis into itself.
    pub fn validate(&self, backend: BackendType) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError::Invalid(format!("{key}: {why}")));
        if backend == BackendType::Kinesis {
            return bad(
                "migration.streams",
                "the Kinesis backend cannot be a migration's target (use backend.type: kafka)"
                    .into(),
            );
        }
        let src = self.source.client_config();
        let url = src.endpoint_url();
        if !endpoint_url_ok(&url) {
            return bad(
                "migration.source.endpoint",
                format!("{url:?} is not an http:// or https:// URL"),
            );
        }
        if self.source.credentials.trim().is_empty() {
            return bad(
                "migration.source.credentials",
                "is empty: `default` or a profile name".into(),
            );
        }
        for name in &self.streams {
            if !kinesis_name_ok(name) {
                return bad(
                    "migration.streams",
                    format!("{name:?} is not a Kinesis stream name (1 to 128 of [a-zA-Z0-9_.-])"),
                );
            }
        }
        if self.max_cutover_lag_records < self.caught_up_lag_records {
            return bad(
                "migration.max_cutover_lag_records",
                format!(
                    "{} is below caught_up_lag_records ({})",
                    self.max_cutover_lag_records, self.caught_up_lag_records
                ),
            );
        }
        if !kinesis_name_ok(&self.source.consumer_name) {
            return bad(
                "migration.source.consumer_name",
                format!(
                    "{:?} is not a stream consumer name (1 to 128 of [a-zA-Z0-9_.-])",
                    self.source.consumer_name
                ),
            );
        }
        if !(10..=60_000).contains(&self.source.poll_interval_ms) {
            return bad(
                "migration.source.poll_interval_ms",
                format!("{} is not in 10..=60000", self.source.poll_interval_ms),
            );
        }
        Ok(())
    }

    /// Whether `stream` is one of the mirrored streams.
    pub fn mirrors(&self, stream: &str) -> bool {
        self.streams.iter().any(|s| s == stream)
    }
}

/// Where the source streams live: as `backend.kinesis`'s region, endpoint and credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationSource {
    pub region: String,
    /// `https://kinesis.<region>.amazonaws.com` when unset.
    pub endpoint: Option<String>,
    /// `default` (environment, web identity, container, instance profile) or a profile name.
    pub credentials: String,
    /// CA bundle (PEM) for the endpoint's certificate; the system bundle when unset.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// The encoding of the mirror's calls: `auto`, `cbor` or `json`.
    pub wire: KinesisWire,
    /// How often a shard whose mirror has caught up asks for new records (Kinesis allows
    /// five GetRecords calls a second per shard across all its readers).
    pub poll_interval_ms: u64,
    /// `polling` (GetRecords) or `fan-out`: a stream consumer registered on the source under
    /// `consumer_name`, its own 2 MiB/s per shard, pushed records (billed by AWS; deregistered
    /// once the stream is cut over).
    pub read: KinesisRead,
    pub consumer_name: String,
}

impl Default for MigrationSource {
    fn default() -> Self {
        MigrationSource {
            region: "us-east-1".into(),
            endpoint: None,
            credentials: "default".into(),
            ca_bundle: None,
            wire: KinesisWire::Auto,
            poll_interval_ms: 1000,
            read: KinesisRead::Polling,
            consumer_name: "strait-migration".into(),
        }
    }
}

impl MigrationSource {
    /// The settings the Kinesis client takes (it is `backend.kinesis`'s client).
    pub fn client_config(&self) -> KinesisBackendConfig {
        KinesisBackendConfig {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            credentials: self.credentials.clone(),
            ca_bundle: self.ca_bundle.clone(),
            wire: self.wire,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(streams: &[&str], endpoint: Option<&str>) -> MigrationConfig {
        let mut c = MigrationConfig {
            streams: streams.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        c.source.endpoint = endpoint.map(str::to_string);
        c
    }

    #[test]
    fn a_migration_names_its_key_when_refused() {
        let err = |c: MigrationConfig, b| c.validate(b).unwrap_err().to_string();
        assert!(with(&["orders"], None).validate(BackendType::Kafka).is_ok());
        assert!(err(with(&["orders"], None), BackendType::Kinesis).contains("migration.streams"));
        assert!(err(with(&["bad name"], None), BackendType::Kafka).contains("migration.streams"));
        assert!(err(with(&["o"], Some("ftp://x")), BackendType::Kafka)
            .contains("migration.source.endpoint"));
        let mut lags = with(&["o"], None);
        lags.max_cutover_lag_records = lags.caught_up_lag_records - 1;
        assert!(err(lags, BackendType::Embedded).contains("max_cutover_lag_records"));
    }
}
