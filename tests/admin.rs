//! The admin listener over the real binary: /healthz, /readyz, and /metrics counting both
//! protocols' requests, records, errors and connections.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Server;
use serde_json::json;

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

/// The value of the series whose line starts with `prefix` (name and labels).
fn value(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no series {prefix} in:\n{metrics}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A Kafka ApiVersions v0 request, raw.
fn kafka_api_versions(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut frame = Vec::new();
    frame.extend_from_slice(&18i16.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    s.write_all(&(frame.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
}

#[test]
fn health_readiness_and_metrics_for_both_protocols() {
    let s = Server::start();
    assert_eq!(get(s.admin_port, "/healthz").0, 200);
    // strait prints its ports as each listener binds, a moment before it turns ready (seen
    // failing on a loaded machine); readiness must follow within seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(s.admin_port, "/readyz").0 != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(s.admin_port, "/readyz"), (200, "ready\n".to_string()));
    assert_eq!(get(s.admin_port, "/nope").0, 404);

    s.ok("CreateStream", json!({"StreamName": "m", "ShardCount": 1}));
    s.ok(
        "PutRecords",
        json!({"StreamName": "m", "Records": [
            {"Data": "aGk=", "PartitionKey": "a"},
            {"Data": "aGk=", "PartitionKey": "b"}
        ]}),
    );
    let (status, _) = s.json("DescribeStream", json!({"StreamName": "missing"}));
    assert_eq!(status, 400);
    kafka_api_versions(s.kafka_port);

    let (status, m) = get(s.admin_port, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        value(
            &m,
            r#"strait_requests_total{operation="PutRecords",protocol="kinesis"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            r#"strait_requests_total{operation="ApiVersions",protocol="kafka"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            r#"strait_records_in_total{protocol="kinesis",stream="m"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            r#"strait_request_errors_total{error="ResourceNotFoundException",operation="DescribeStream",protocol="kinesis"}"#
        ),
        1.0
    );
    assert!(
        value(
            &m,
            r#"strait_request_duration_seconds_count{operation="CreateStream",protocol="kinesis"}"#
        ) >= 1.0
    );
    assert!(m.contains("strait_build_info{version="), "{m}");
    // fsync: always: the PutRecords above waited for at least one group commit.
    assert!(value(&m, "strait_log_fsync_duration_seconds_count") >= 1.0);
    assert!(m.contains("strait_connections{protocol=\"kafka\"}"), "{m}");
    // Set on scrape from the segment files, and timed at the backend boundary.
    assert!(value(&m, r#"strait_log_size_bytes{stream="m"}"#) > 0.0);
    assert_eq!(value(&m, r#"strait_log_segments{stream="m"}"#), 1.0);
    assert!(
        value(
            &m,
            r#"strait_backend_request_duration_seconds_count{backend="embedded",operation="append"}"#
        ) >= 1.0
    );
}
