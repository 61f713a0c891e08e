//! The metrics registry. Every request is counted and timed where it enters (the Kinesis HTTP
//! service and the Kafka frame loop); names follow Prometheus conventions with a `strait_`
//! prefix. Label values are bounded: operations and API keys come from fixed tables, error
//! names from the protocol's fixed sets, and the per-stream label can be switched off
//! (`admin.per_stream_metrics`), in which case every stream reports as `_all`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    per_stream: AtomicBool,
    /// Requests by protocol (`kinesis`, `kafka`) and operation or API name.
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    /// Failed requests by protocol and error (Kinesis exception name, or Kafka error code).
    pub errors: IntCounterVec,
    /// Records and bytes written and read, by protocol and stream.
    pub records_in: IntCounterVec,
    pub bytes_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub bytes_out: IntCounterVec,
    /// Open client connections by protocol.
    pub connections: IntGaugeVec,
    pub efo_subscriptions: IntGauge,
    /// Group-commit fdatasync calls of the embedded log (`fsync: always`).
    pub fsync_seconds: prometheus::Histogram,
    pub build_info: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "strait_request_duration_seconds",
                "Time from a request's arrival to its response, by protocol and operation.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ]),
            &["protocol", "operation"],
        )
        .expect("valid metric");
        r.register(Box::new(request_seconds.clone()))
            .expect("unique metric");
        let connections = IntGaugeVec::new(
            Opts::new(
                "strait_connections",
                "Open client connections, by protocol.",
            ),
            &["protocol"],
        )
        .expect("valid metric");
        r.register(Box::new(connections.clone()))
            .expect("unique metric");
        let efo_subscriptions = IntGauge::new(
            "strait_efo_subscriptions",
            "Open SubscribeToShard event streams.",
        )
        .expect("valid metric");
        r.register(Box::new(efo_subscriptions.clone()))
            .expect("unique metric");
        let fsync_seconds = prometheus::Histogram::with_opts(
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
        let build_info = IntGaugeVec::new(
            Opts::new("strait_build_info", "Always 1; the version is a label."),
            &["version"],
        )
        .expect("valid metric");
        r.register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            requests: counter(
                &r,
                "strait_requests_total",
                "Requests, by protocol and operation (Kinesis) or API (Kafka).",
                &["protocol", "operation"],
            ),
            errors: counter(
                &r,
                "strait_request_errors_total",
                "Requests answered with an error, by protocol and error (exception name or Kafka error code).",
                &["protocol", "error"],
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
            request_seconds,
            connections,
            efo_subscriptions,
            fsync_seconds,
            build_info,
            per_stream: AtomicBool::new(true),
            registry: r,
        }
    }

    pub fn set_per_stream(&self, on: bool) {
        self.per_stream.store(on, Ordering::Relaxed);
    }

    fn stream_label<'a>(&self, stream: &'a str) -> &'a str {
        if self.per_stream.load(Ordering::Relaxed) {
            stream
        } else {
            "_all"
        }
    }

    pub fn request(&self, protocol: &str, operation: &str, took: Duration) {
        self.requests
            .with_label_values(&[protocol, operation])
            .inc();
        self.request_seconds
            .with_label_values(&[protocol, operation])
            .observe(took.as_secs_f64());
    }

    pub fn error(&self, protocol: &str, error: &str) {
        self.errors.with_label_values(&[protocol, error]).inc();
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

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        out
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
        m.request("kinesis", "PutRecords", Duration::from_millis(2));
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
}
