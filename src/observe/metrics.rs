//! The metrics registry. Every request is counted and timed where it enters (the Kinesis HTTP
//! service and the Kafka frame loop); names follow Prometheus conventions with a `strait_`
//! prefix. Label values are bounded: operations and API keys come from fixed tables, error
//! names from the protocol's fixed sets, and the per-stream label can be switched off
//! (`admin.per_stream_metrics`), in which case every stream reports as `_all`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Work run before each scrape to set gauges that are cheaper to read than to keep current
/// (log sizes, consumer lag).
pub type ScrapeHook = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

pub struct Metrics {
    pub registry: Registry,
    per_stream: AtomicBool,
    /// Requests by protocol (`kinesis`, `kafka`) and operation or API name.
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    /// Failed requests by protocol, operation and error (Kinesis exception name, or Kafka
    /// error code: one per failed partition of Produce and Fetch).
    pub errors: IntCounterVec,
    /// Records and bytes written and read, by protocol and stream.
    pub records_in: IntCounterVec,
    pub bytes_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub bytes_out: IntCounterVec,
    /// Stored batches a Kinesis reader could not decode and passed over, by stream: the last
    /// line of defence that keeps a shard readable.
    pub undecodable_batches: IntCounterVec,
    pub late_writes: IntCounterVec,
    /// Kafka-produced records whose key's MD5 lies outside the hash range of the shard they
    /// went to, on streams that route keys by MD5, by stream.
    pub key_partition_mismatches: IntCounterVec,
    /// Open client connections by protocol.
    pub connections: IntGaugeVec,
    /// Connections strait closed itself, by listener and why (refused, idle, read_timeout).
    pub connections_closed: IntCounterVec,
    /// Request bytes held against limits.max_inflight_bytes.
    pub inflight_bytes: IntGauge,
    /// 1 while /readyz answers ready.
    pub ready: IntGauge,
    /// Set on scrape: the file system holding data_dir.
    pub data_dir_available_bytes: IntGauge,
    pub data_dir_capacity_bytes: IntGauge,
    /// When each certificate strait presents expires (Unix seconds), by `certificate`
    /// (`kinesis`: the Kinesis listener's; `kafka_backend_client`: strait's own to the cluster).
    pub tls_expiry: IntGaugeVec,
    pub efo_subscriptions: IntGauge,
    /// Group-commit fdatasync calls of the embedded log (`fsync: always`).
    pub fsync_seconds: Histogram,
    /// Calls from the core into the backend's log, by backend and operation.
    pub backend_seconds: HistogramVec,
    pub backend_errors: IntCounterVec,
    /// strait's own requests to Kafka brokers (Kafka backend), by API; failures are
    /// transport failures, timeouts and undecodable answers.
    pub broker_seconds: HistogramVec,
    pub broker_errors: IntCounterVec,
    /// Kinesis backend: strait's own calls (or PutRecords entries) the upstream throttled.
    pub upstream_throttled: IntCounterVec,
    /// Kinesis backend with shared state: chunks of the offset index another replica had
    /// stored differently, by stream.
    pub kinesis_index_conflicts: IntCounterVec,
    /// Set on scrape: the embedded log's bytes and segment files, by stream.
    pub log_bytes: IntGaugeVec,
    pub log_segments: IntGaugeVec,
    /// Set on scrape: segment files held open (at most `backend.embedded.max_open_files`).
    pub log_open_files: IntGauge,
    /// Set on scrape: records between each Kafka group's committed offsets and the high
    /// watermarks (embedded backend; on the Kafka backend the cluster keeps groups).
    pub group_lag: IntGaugeVec,
    /// How far behind each EFO consumer is, the largest over its open subscriptions.
    pub efo_behind: IntGaugeVec,
    /// Set on scrape: each migrated shard's mirror lag, and each stream's state.
    pub migration_lag_records: IntGaugeVec,
    pub migration_lag_ms: IntGaugeVec,
    pub migration_state: IntGaugeVec,
    efo_subscriptions_lag: Mutex<HashMap<u64, Arc<EfoLagState>>>,
    next_efo_id: AtomicU64,
    hooks: Mutex<Vec<Arc<ScrapeHook>>>,
    pub build_info: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn single_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

/// Request-scale buckets, 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let efo_subscriptions = IntGauge::new(
            "strait_efo_subscriptions",
            "Open SubscribeToShard event streams.",
        )
        .expect("valid metric");
        r.register(Box::new(efo_subscriptions.clone()))
            .expect("unique metric");
        let fsync_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "strait_log_fsync_duration_seconds",
                "Embedded log: time of each group-commit fdatasync.",
            )
            .buckets(vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(fsync_seconds.clone()))
            .expect("unique metric");
        let build_info = gauge(
            &r,
            "strait_build_info",
            "Always 1; the version is a label.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let m = Metrics {
            requests: counter(
                &r,
                "strait_requests_total",
                "Requests, by protocol and operation (Kinesis) or API (Kafka).",
                &["protocol", "operation"],
            ),
            request_seconds: histogram(
                &r,
                "strait_request_duration_seconds",
                "Time from a request's arrival to its response, by protocol and operation.",
                &["protocol", "operation"],
            ),
            errors: counter(
                &r,
                "strait_request_errors_total",
                "Requests answered with an error, by protocol, operation (Kinesis operation or Kafka API) and error (exception name or Kafka error code).",
                &["protocol", "operation", "error"],
            ),
            records_in: counter(
                &r,
                "strait_records_in_total",
                "Records written, by protocol and stream.",
                &["protocol", "stream"],
            ),
            bytes_in: counter(
                &r,
                "strait_bytes_in_total",
                "Record bytes written (keys and values), by protocol and stream.",
                &["protocol", "stream"],
            ),
            undecodable_batches: counter(
                &r,
                "strait_undecodable_batches_total",
                "Stored record batches a Kinesis reader could not decode and skipped, by stream.",
                &["stream"],
            ),
            late_writes: counter(
                &r,
                "strait_late_writes_total",
                "Appends that landed in a parent shard after its seal (a replica that had not heard of the split) and were written again to its children, by stream.",
                &["stream"],
            ),
            key_partition_mismatches: counter(
                &r,
                "strait_kafka_key_partition_mismatch_total",
                "Kafka-produced records on a stream that routes keys by MD5 whose key hashes to another shard than the one written, by stream.",
                &["stream"],
            ),
            records_out: counter(
                &r,
                "strait_records_out_total",
                "Records read (GetRecords, SubscribeToShard, Fetch), by protocol and stream.",
                &["protocol", "stream"],
            ),
            bytes_out: counter(
                &r,
                "strait_bytes_out_total",
                "Record bytes read, by protocol and stream.",
                &["protocol", "stream"],
            ),
            inflight_bytes: single_gauge(
                &r,
                "strait_inflight_request_bytes",
                "Request bytes being read or answered, held against limits.max_inflight_bytes.",
            ),
            ready: single_gauge(
                &r,
                "strait_ready",
                "1 while strait is ready (/readyz: catalog loaded, listeners bound, the Kafka backend's cluster reachable), else 0.",
            ),
            data_dir_available_bytes: single_gauge(
                &r,
                "strait_data_dir_available_bytes",
                "Bytes free for strait on the file system of data_dir (set on scrape).",
            ),
            data_dir_capacity_bytes: single_gauge(
                &r,
                "strait_data_dir_capacity_bytes",
                "Size of the file system of data_dir (set on scrape).",
            ),
            tls_expiry: gauge(
                &r,
                "strait_tls_certificate_expiry_timestamp_seconds",
                "When a certificate strait presents expires, in Unix seconds, by certificate (kinesis, kafka_backend_client).",
                &["certificate"],
            ),
            connections_closed: counter(
                &r,
                "strait_connections_closed_total",
                "Connections strait closed itself, by listener and reason: refused (over limits.max_connections), idle (limits.idle_timeout_secs), read_timeout (limits.request_read_timeout_secs).",
                &["listener", "reason"],
            ),
            connections: gauge(
                &r,
                "strait_connections",
                "Open client connections, by protocol.",
                &["protocol"],
            ),
            efo_subscriptions,
            fsync_seconds,
            backend_seconds: histogram(
                &r,
                "strait_backend_request_duration_seconds",
                "Time of each call into the backend's log (append, read, offsets, ...), by backend and operation.",
                &["backend", "operation"],
            ),
            backend_errors: counter(
                &r,
                "strait_backend_request_errors_total",
                "Backend log calls that failed, by backend and operation.",
                &["backend", "operation"],
            ),
            broker_seconds: histogram(
                &r,
                "strait_kafka_broker_request_duration_seconds",
                "Kafka backend: round trip of each request strait itself sends to a broker, by API.",
                &["api"],
            ),
            upstream_throttled: counter(
                &r,
                "strait_kinesis_upstream_throttled_total",
                "Kinesis backend: strait's own calls, or PutRecords entries, the upstream refused with ProvisionedThroughputExceededException (retried), by operation.",
                &["operation"],
            ),
            kinesis_index_conflicts: counter(
                &r,
                "strait_kinesis_index_conflicts_total",
                "Kinesis backend with state in DynamoDB: offset index chunks another replica had stored differently (records trimmed before one replica read them), by stream.",
                &["stream"],
            ),
            broker_errors: counter(
                &r,
                "strait_kafka_broker_request_errors_total",
                "Kafka backend: requests to a broker that got no usable answer (connection, timeout, decoding), by API.",
                &["api"],
            ),
            log_bytes: gauge(
                &r,
                "strait_log_size_bytes",
                "Embedded log: bytes in segment files, by stream.",
                &["stream"],
            ),
            log_segments: gauge(
                &r,
                "strait_log_segments",
                "Embedded log: segment files, by stream.",
                &["stream"],
            ),
            log_open_files: single_gauge(
                &r,
                "strait_log_open_files",
                "Embedded log: segment files held open, at most backend.embedded.max_open_files (set on scrape).",
            ),
            group_lag: gauge(
                &r,
                "strait_consumer_group_lag_records",
                "Records between a Kafka consumer group's committed offsets and the partitions' high watermarks (embedded backend; includes EFO shadow groups).",
                &["group"],
            ),
            efo_behind: gauge(
                &r,
                "strait_efo_consumer_millis_behind_latest",
                "MillisBehindLatest of the newest event sent to an EFO consumer, plus how long the event being sent has waited for the client to take it; the largest over the consumer's open subscriptions.",
                &["stream", "consumer"],
            ),
            migration_lag_records: gauge(
                &r,
                "strait_migration_lag_records",
                "Records on the Kinesis source a shard's mirror has not copied yet (0 once it read the newest; otherwise estimated from MillisBehindLatest and the copy rate).",
                &["stream", "shard"],
            ),
            migration_lag_ms: gauge(
                &r,
                "strait_migration_lag_millis",
                "MillisBehindLatest of a shard mirror's last read of the Kinesis source.",
                &["stream", "shard"],
            ),
            migration_state: gauge(
                &r,
                "strait_migration_state",
                "1 for the state each migrated stream is in (mirroring, caught-up, cutting-over, cut-over).",
                &["stream", "state"],
            ),
            efo_subscriptions_lag: Mutex::new(HashMap::new()),
            next_efo_id: AtomicU64::new(0),
            hooks: Mutex::new(Vec::new()),
            build_info,
            per_stream: AtomicBool::new(true),
            registry: r,
        };
        // Every (listener, reason) from zero, so rate() and alerts see closures from the first.
        for listener in ["kinesis", "kafka", "admin"] {
            for reason in ["refused", "idle", "read_timeout"] {
                m.connections_closed.with_label_values(&[listener, reason]);
            }
        }
        m
    }

    pub fn set_per_stream(&self, on: bool) {
        self.per_stream.store(on, Ordering::Relaxed);
    }

    /// The label value for an unbounded name (a stream, a consumer group): the name, or
    /// `_all` when per-stream labels are off.
    pub fn stream_label<'a>(&self, stream: &'a str) -> &'a str {
        if self.per_stream.load(Ordering::Relaxed) {
            stream
        } else {
            "_all"
        }
    }

    /// The counter and timer of one (protocol, operation), for a front end to resolve once
    /// per entry of its operations table rather than per request.
    pub fn request_metric(&self, protocol: &str, operation: &str) -> RequestMetric {
        RequestMetric {
            count: self.requests.with_label_values(&[protocol, operation]),
            seconds: self
                .request_seconds
                .with_label_values(&[protocol, operation]),
        }
    }

    pub fn connection_closed(&self, listener: &str, reason: &str) {
        self.connections_closed
            .with_label_values(&[listener, reason])
            .inc();
    }

    pub fn error(&self, protocol: &str, operation: &str, error: &str) {
        self.errors
            .with_label_values(&[protocol, operation, error])
            .inc();
    }

    pub fn written(&self, protocol: &str, stream: &str, records: u64, bytes: u64) {
        let s = self.stream_label(stream);
        self.records_in
            .with_label_values(&[protocol, s])
            .inc_by(records);
        self.bytes_in
            .with_label_values(&[protocol, s])
            .inc_by(bytes);
    }

    pub fn read(&self, protocol: &str, stream: &str, records: u64, bytes: u64) {
        let s = self.stream_label(stream);
        self.records_out
            .with_label_values(&[protocol, s])
            .inc_by(records);
        self.bytes_out
            .with_label_values(&[protocol, s])
            .inc_by(bytes);
    }

    /// The expiry of the first certificate of a chain strait presents, as `certificate`.
    pub fn certificate(&self, certificate: &str, chain: &[rustls_pki_types::CertificateDer<'_>]) {
        let expiry = chain
            .first()
            .and_then(|c| crate::protocol::x509::not_after_unix(c));
        match expiry {
            Some(at) => self.tls_expiry.with_label_values(&[certificate]).set(at),
            None => tracing::warn!(certificate, "cannot read the certificate's expiry"),
        }
    }

    /// Runs `hook` before every scrape from now on.
    pub fn on_scrape(&self, hook: ScrapeHook) {
        self.hooks.lock().push(Arc::new(hook));
    }

    /// Registers an open EFO subscription; it counts until the handle is dropped.
    pub fn efo_lag(&'static self, stream: &str, consumer: &str) -> EfoLag {
        let id = self.next_efo_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(EfoLagState {
            stream: stream.to_string(),
            consumer: consumer.to_string(),
            behind_ms: AtomicI64::new(0),
            pending_behind_ms: AtomicI64::new(0),
            pending_since_ms: AtomicI64::new(0),
        });
        self.efo_subscriptions_lag.lock().insert(id, state.clone());
        EfoLag {
            id,
            state,
            metrics: self,
        }
    }

    fn set_efo_gauges(&self) {
        let now = crate::clock::now_ms();
        let subs: Vec<Arc<EfoLagState>> = self
            .efo_subscriptions_lag
            .lock()
            .values()
            .cloned()
            .collect();
        let mut worst: HashMap<(&str, &str), i64> = HashMap::new();
        for s in &subs {
            let key = if self.per_stream.load(Ordering::Relaxed) {
                (s.stream.as_str(), s.consumer.as_str())
            } else {
                ("_all", "_all")
            };
            let w = worst.entry(key).or_insert(0);
            *w = (*w).max(s.behind_at(now));
        }
        self.efo_behind.reset();
        for ((stream, consumer), millis) in worst {
            self.efo_behind
                .with_label_values(&[stream, consumer])
                .set(millis);
        }
    }

    /// Runs the scrape hooks, then renders.
    pub async fn scrape(&self) -> Vec<u8> {
        let hooks: Vec<_> = self.hooks.lock().clone();
        for hook in hooks {
            hook().await;
        }
        self.set_efo_gauges();
        self.render()
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        out
    }

    /// Replaces `strait_consumer_group_lag_records` with `lags` (group, records behind),
    /// summed under `_all` when per-stream labels are off.
    pub fn set_group_lags(&self, lags: impl IntoIterator<Item = (String, i64)>) {
        let mut by_label: HashMap<String, i64> = HashMap::new();
        for (group, lag) in lags {
            *by_label
                .entry(self.stream_label(&group).to_string())
                .or_default() += lag;
        }
        self.group_lag.reset();
        for (group, lag) in by_label {
            self.group_lag.with_label_values(&[&group]).set(lag);
        }
    }
}

/// One EFO subscription's lag: MillisBehindLatest of the last event the client took, or,
/// while an event waits for the client, that event's value plus the wait (a consumer that
/// stopped reading shows a growing lag rather than its last good one).
pub struct EfoLag {
    id: u64,
    state: Arc<EfoLagState>,
    metrics: &'static Metrics,
}

struct EfoLagState {
    stream: String,
    consumer: String,
    behind_ms: AtomicI64,
    pending_behind_ms: AtomicI64,
    /// When the pending event started waiting (ms since the epoch); 0 when none waits.
    pending_since_ms: AtomicI64,
}

impl EfoLagState {
    fn behind_at(&self, now_ms: i64) -> i64 {
        match self.pending_since_ms.load(Ordering::Relaxed) {
            0 => self.behind_ms.load(Ordering::Relaxed),
            since => self.pending_behind_ms.load(Ordering::Relaxed) + (now_ms - since).max(0),
        }
    }
}

impl EfoLag {
    /// An event with MillisBehindLatest `millis` is about to be sent.
    pub fn sending(&self, millis: i64) {
        self.state
            .pending_behind_ms
            .store(millis, Ordering::Relaxed);
        self.state
            .pending_since_ms
            .store(crate::clock::now_ms().max(1), Ordering::Relaxed);
    }

    /// The client took it.
    pub fn sent(&self) {
        let millis = self.state.pending_behind_ms.load(Ordering::Relaxed);
        self.state.behind_ms.store(millis, Ordering::Relaxed);
        self.state.pending_since_ms.store(0, Ordering::Relaxed);
    }
}

impl Drop for EfoLag {
    fn drop(&mut self) {
        self.metrics.efo_subscriptions_lag.lock().remove(&self.id);
    }
}

/// One (protocol, operation)'s request counter and duration histogram.
pub struct RequestMetric {
    count: prometheus::IntCounter,
    seconds: prometheus::Histogram,
}

impl RequestMetric {
    pub fn observe(&self, took: Duration) {
        self.count.inc();
        self.seconds.observe(took.as_secs_f64());
    }
}

/// The process's registry.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Counts a connection for as long as it is held.
pub struct ConnectionGuard(&'static str);

impl ConnectionGuard {
    pub fn new(protocol: &'static str) -> Self {
        metrics().connections.with_label_values(&[protocol]).inc();
        ConnectionGuard(protocol)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        metrics().connections.with_label_values(&[self.0]).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_bounded_stream_labels() {
        let m = Metrics::new();
        m.request_metric("kinesis", "PutRecords")
            .observe(Duration::from_millis(2));
        m.written("kinesis", "orders", 3, 300);
        m.set_per_stream(false);
        m.written("kafka", "orders", 1, 10);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"strait_requests_total{operation="PutRecords",protocol="kinesis"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"strait_records_in_total{protocol="kinesis",stream="orders"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"strait_records_in_total{protocol="kafka",stream="_all"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"strait_build_info{version=""#), "{text}");
    }

    #[tokio::test]
    async fn scrape_runs_hooks_and_reports_the_worst_efo_subscription() {
        let m: &'static Metrics = Box::leak(Box::new(Metrics::new()));
        let gauge = m.log_segments.clone();
        m.on_scrape(Box::new(move || {
            let g = gauge.clone();
            Box::pin(async move { g.with_label_values(&["s"]).set(4) })
        }));
        let (a, b, other) = (
            m.efo_lag("s", "c"),
            m.efo_lag("s", "c"),
            m.efo_lag("s", "other"),
        );
        for (lag, millis) in [(&a, 100), (&b, 2500), (&other, 7)] {
            lag.sending(millis);
            lag.sent();
        }
        let text = String::from_utf8(m.scrape().await).unwrap();
        assert!(
            text.contains(r#"strait_log_segments{stream="s"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"strait_efo_consumer_millis_behind_latest{consumer="c",stream="s"} 2500"#
            ),
            "{text}"
        );
        drop(b);
        drop(other);
        let text = String::from_utf8(m.scrape().await).unwrap();
        assert!(
            text.contains(
                r#"strait_efo_consumer_millis_behind_latest{consumer="c",stream="s"} 100"#
            ),
            "{text}"
        );
        assert!(!text.contains(r#"consumer="other""#), "{text}");
        // An event the client does not take: its lag grows with the wait.
        a.sending(50);
        a.state.pending_since_ms.fetch_sub(3_000, Ordering::Relaxed);
        assert!(a.state.behind_at(crate::clock::now_ms()) >= 3_050);
    }
}
