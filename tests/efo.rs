//! Enhanced fan-out over the real binary, on the wire: SubscribeToShard over HTTP/1.1
//! (chunked), decoded with strait's event-stream decoder: initial-response first, records
//! pushed as they arrive, the lifetime, takeover, closed shards and CBOR payloads.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::efo::{dechunk, events, read_messages, setup, sub_body, subscribe};
use common::Server;
use serde_json::json;
use strait::protocol::kinesis::eventstream::decode;

const JSON: &str = "application/x-amz-json-1.1";

#[test]
fn records_are_pushed_and_the_stream_ends_at_its_lifetime() {
    let s = Server::start_with(&[("STRAIT_KINESIS__SUBSCRIPTION_LIFETIME_SECS", "2")]);
    let carn = setup(&s, "efo", 1, "app");
    for i in 0..3 {
        s.ok(
            "PutRecord",
            json!({"StreamName": "efo", "Data": "aGk=", "PartitionKey": format!("k{i}")}),
        );
    }
    let started = Instant::now();
    let (status, c, head) = subscribe(
        &s,
        JSON,
        &sub_body(&carn, "shardId-000000000000", "TRIM_HORIZON"),
    );
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&head).contains("application/vnd.amazon.eventstream"));
    let port = s.port;
    let putter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        common::raw_request(
            port,
            "POST",
            &[
                ("X-Amz-Target", "Kinesis_20131202.PutRecord"),
                ("Content-Type", JSON),
            ],
            json!({"StreamName": "efo", "Data": "bGF0ZQ==", "PartitionKey": "late"})
                .to_string()
                .as_bytes(),
        )
    });
    let messages = read_messages(c);
    let elapsed = started.elapsed();
    assert_eq!(putter.join().unwrap().0, 200);
    assert_eq!(messages[0].header(":event-type"), Some("initial-response"));
    assert_eq!(messages[0].header(":message-type"), Some("event"));
    let evs = events(&messages);
    let keys: Vec<String> = evs
        .iter()
        .flat_map(|e| e["Records"].as_array().unwrap().clone())
        .map(|r| r["PartitionKey"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["k0", "k1", "k2", "late"]);
    // Every event of an open shard carries a continuation: the last record read.
    let last = evs.last().unwrap();
    assert!(last["ContinuationSequenceNumber"].is_string());
    assert!(last.get("ChildShards").is_none());
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(8),
        "ended after {elapsed:?}"
    );
}

#[test]
fn a_second_subscriber_is_refused_then_takes_over() {
    let s = Server::start();
    let carn = setup(&s, "take", 1, "app");
    let body = sub_body(&carn, "shardId-000000000000", "LATEST");
    let (status, first, _) = subscribe(&s, JSON, &body);
    assert_eq!(status, 200);
    let (status, mut refused, _) = subscribe(&s, JSON, &body);
    assert_eq!(status, 400);
    let mut text = String::new();
    let _ = refused.read_to_string(&mut text);
    assert!(text.contains("ResourceInUseException"), "{text}");
    std::thread::sleep(Duration::from_millis(5_100));
    let (status, _second, _) = subscribe(&s, JSON, &body);
    assert_eq!(status, 200);
    let messages = read_messages(first);
    let last = messages.last().unwrap();
    assert_eq!(last.header(":message-type"), Some("exception"));
    assert_eq!(
        last.header(":exception-type"),
        Some("ResourceInUseException")
    );
}

#[test]
fn a_closed_shard_ends_with_its_children() {
    let s = Server::start();
    let carn = setup(&s, "split", 1, "app");
    s.ok(
        "PutRecord",
        json!({"StreamName": "split", "Data": "aGk=", "PartitionKey": "k"}),
    );
    s.ok(
        "SplitShard",
        json!({"StreamName": "split", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "170141183460469231731687303715884105728"}),
    );
    let (status, c, _) = subscribe(
        &s,
        JSON,
        &sub_body(&carn, "shardId-000000000000", "TRIM_HORIZON"),
    );
    assert_eq!(status, 200);
    let evs = events(&read_messages(c));
    let last = evs.last().unwrap();
    assert!(last.get("ContinuationSequenceNumber").is_none(), "{last}");
    let children: Vec<&str> = last["ChildShards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ShardId"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
    let records: usize = evs
        .iter()
        .map(|e| e["Records"].as_array().unwrap().len())
        .sum();
    assert_eq!(records, 1);
}

#[test]
fn cbor_requests_get_cbor_events_and_bad_requests_get_errors() {
    let s = Server::start_with(&[("STRAIT_KINESIS__SUBSCRIPTION_LIFETIME_SECS", "1")]);
    let carn = setup(&s, "cbor", 1, "app");
    s.ok(
        "PutRecord",
        json!({"StreamName": "cbor", "Data": "AAEC", "PartitionKey": "k"}),
    );
    let mut body = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Map(vec![
            ("ConsumerARN".into(), carn.as_str().into()),
            ("ShardId".into(), "shardId-000000000000".into()),
            (
                "StartingPosition".into(),
                ciborium::Value::Map(vec![("Type".into(), "TRIM_HORIZON".into())]),
            ),
        ]),
        &mut body,
    )
    .unwrap();
    let (status, c, _) = subscribe(&s, "application/x-amz-cbor-1.1", &body);
    assert_eq!(status, 200);
    let messages = read_messages(c);
    let ev = messages
        .iter()
        .find(|m| m.header(":event-type") == Some("SubscribeToShardEvent"))
        .unwrap();
    assert_eq!(ev.header(":content-type"), Some("application/cbor"));
    let v: ciborium::Value = ciborium::from_reader(&ev.payload[..]).unwrap();
    let text = format!("{v:?}");
    assert!(text.contains("Bytes([0, 1, 2])"), "{text}");

    // Errors before the stream starts are plain HTTP errors in the request's encoding.
    for (body, code) in [
        (
            sub_body(&carn, "shardId-000000000009", "LATEST"),
            "ResourceNotFoundException",
        ),
        (
            sub_body(&carn, "shardId-000000000000", "SIDEWAYS"),
            "ValidationException",
        ),
        (
            sub_body("arn:aws:kinesis:x", "shardId-000000000000", "LATEST"),
            "ValidationException",
        ),
        (
            sub_body(&format!("{}9", carn), "shardId-000000000000", "LATEST"),
            "ResourceNotFoundException",
        ),
        (
            json!({"ShardId": "shardId-000000000000"})
                .to_string()
                .into_bytes(),
            "ValidationException",
        ),
    ] {
        let (status, mut c, _) = subscribe(&s, JSON, &body);
        let mut text = String::new();
        let _ = c.read_to_string(&mut text);
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(code), "want {code}: {text}");
    }
}

/// SIGTERM: an open subscription ends with a clean end of stream (the chunked terminator,
/// no exception), idle connections do not hold the process, and it exits well within the
/// grace period.
#[test]
fn sigterm_ends_subscriptions_cleanly() {
    let mut s = Server::start();
    let carn = setup(&s, "bye", 1, "app");
    let (status, c, _) = subscribe(&s, JSON, &sub_body(&carn, "shardId-000000000000", "LATEST"));
    assert_eq!(status, 200);
    // An idle keep-alive HTTP/1.1 connection and an idle Kafka connection.
    let _idle_http = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let _idle_kafka = TcpStream::connect(("127.0.0.1", s.kafka_port)).unwrap();
    let reader = std::thread::spawn(move || {
        let mut c = c;
        let mut raw = Vec::new();
        c.read_to_end(&mut raw).unwrap();
        raw
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    s.stop();
    let stopped = started.elapsed();
    let raw = reader.join().unwrap();
    assert!(stopped < Duration::from_secs(5), "took {stopped:?} to stop");
    assert!(raw.ends_with(b"0\r\n\r\n"), "no clean end of stream");
    // Re-read the bytes as messages: initial-response, and no exception.
    let body = dechunk(&raw);
    let (first, _) = decode(&body).unwrap();
    assert_eq!(first.header(":event-type"), Some("initial-response"));
    let mut at = 0;
    while at < body.len() {
        let (m, used) = decode(&body[at..]).unwrap();
        assert_ne!(m.header(":message-type"), Some("exception"));
        at += used;
    }
}
