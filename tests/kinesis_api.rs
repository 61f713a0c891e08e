//! The real binary over HTTP: JSON and CBOR encodings, request framing errors, and the
//! shapes clients depend on.

mod common;

use common::{raw_request, Server};
use serde_json::json;

fn create(s: &Server, name: &str, shards: u32) {
    s.ok(
        "CreateStream",
        json!({"StreamName": name, "ShardCount": shards}),
    );
}

#[test]
fn json_put_and_get_round_trip() {
    let s = Server::start();
    create(&s, "orders", 2);
    let put = s.ok(
        "PutRecord",
        json!({"StreamName": "orders", "Data": "aGVsbG8=", "PartitionKey": "k1"}),
    );
    let shard = put["ShardId"].as_str().unwrap().to_string();
    let seq = put["SequenceNumber"].as_str().unwrap().to_string();
    assert_eq!(seq.len(), 56);
    let it = s.ok(
        "GetShardIterator",
        json!({"StreamName": "orders", "ShardId": shard, "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": seq}),
    );
    let got = s.ok("GetRecords", json!({"ShardIterator": it["ShardIterator"]}));
    let rec = &got["Records"][0];
    assert_eq!(rec["Data"], "aGVsbG8=");
    assert_eq!(rec["PartitionKey"], "k1");
    assert_eq!(rec["SequenceNumber"], seq.as_str());
    // JSON timestamps are epoch seconds with a fraction.
    let ts = rec["ApproximateArrivalTimestamp"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ts).abs() < 60.0, "{ts} vs {now}");
    assert_eq!(got["MillisBehindLatest"], 0);
    assert!(got["NextShardIterator"].is_string());
}

fn cbor(v: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn cbor_map(pairs: Vec<(&str, ciborium::Value)>) -> ciborium::Value {
    ciborium::Value::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (ciborium::Value::Text(k.into()), v))
            .collect(),
    )
}

fn get<'a>(v: &'a ciborium::Value, key: &str) -> &'a ciborium::Value {
    v.as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in {v:?}"))
}

#[test]
fn cbor_uses_byte_strings_and_tag1_millis() {
    use ciborium::Value as V;
    let s = Server::start();
    create(&s, "c", 1);
    let ct = "application/x-amz-cbor-1.1";
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let body = cbor(&cbor_map(vec![
        ("StreamName", V::Text("c".into())),
        ("Data", V::Bytes(vec![0, 1, 2, 255])),
        ("PartitionKey", V::Text("pk".into())),
    ]));
    let (status, rct, _) = s.call("PutRecord", ct, &body);
    assert_eq!((status, rct.as_str()), (200, ct));
    // AT_TIMESTAMP with tag 1 + integer milliseconds, as the Java SDK sends it.
    let body = cbor(&cbor_map(vec![
        ("StreamName", V::Text("c".into())),
        ("ShardId", V::Text("shardId-000000000000".into())),
        ("ShardIteratorType", V::Text("AT_TIMESTAMP".into())),
        (
            "Timestamp",
            V::Tag(1, Box::new(V::Integer((before_ms - 1000).into()))),
        ),
    ]));
    let (status, _, out) = s.call("GetShardIterator", ct, &body);
    assert_eq!(status, 200);
    let out: V = ciborium::from_reader(&out[..]).unwrap();
    let it = get(&out, "ShardIterator").clone();
    let (status, _, out) = s.call(
        "GetRecords",
        ct,
        &cbor(&cbor_map(vec![("ShardIterator", it)])),
    );
    assert_eq!(status, 200);
    let out: V = ciborium::from_reader(&out[..]).unwrap();
    let records = get(&out, "Records").as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(get(&records[0], "Data"), &V::Bytes(vec![0, 1, 2, 255]));
    match get(&records[0], "ApproximateArrivalTimestamp") {
        V::Tag(1, inner) => {
            let ms = i128::from(inner.as_integer().unwrap()) as i64;
            assert!((ms - before_ms).abs() < 60_000, "{ms} vs {before_ms}");
        }
        other => panic!("expected tag 1, got {other:?}"),
    }
    // Errors come back in CBOR too.
    let (status, rct, out) = s.call(
        "DescribeStream",
        ct,
        &cbor(&cbor_map(vec![("StreamName", V::Text("nope".into()))])),
    );
    assert_eq!((status, rct.as_str()), (400, ct));
    let out: V = ciborium::from_reader(&out[..]).unwrap();
    assert_eq!(
        get(&out, "__type"),
        &V::Text("ResourceNotFoundException".into())
    );
}

#[test]
fn framing_errors_are_aws_shaped() {
    let s = Server::start();
    let (status, v) = {
        let (st, _, b) = s.call("ListStreams", "application/x-amz-json-1.1", b"{not json");
        (st, serde_json::from_slice::<serde_json::Value>(&b).unwrap())
    };
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (st, _, b) = s.call("NoSuchOp", "application/x-amz-json-1.1", b"{}");
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    let (st, _, b) = s.call("PutResourcePolicy", "application/x-amz-json-1.1", b"{}");
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    // SubscribeToShard without its members: a plain error, not an event stream.
    let (st, ct, b) = s.call("SubscribeToShard", "application/x-amz-json-1.1", b"{}");
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("ValidationException"))
    );
    assert_eq!(ct, "application/x-amz-json-1.1");
    let (st, _, b) = s.call("ListStreams", "text/plain", b"{}");
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (st, _, _) = raw_request(s.port, "GET", &[], b"");
    assert_eq!(st, 400);
    // Type mismatches are serialization errors; range violations are validation errors.
    let (st, v) = s.json(
        "CreateStream",
        json!({"StreamName": "x", "ShardCount": "two"}),
    );
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (st, v) = s.json("CreateStream", json!({"StreamName": "x", "ShardCount": 0}));
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("ValidationException"))
    );
    assert!(v["message"].as_str().unwrap().contains("shardCount"));
}

/// Sends a raw HTTP/1.1 request head and body; returns (status, body).
fn raw(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    c.write_all(head.as_bytes()).unwrap();
    // strait may answer (and close) before the body is all sent.
    let _ = c.write_all(body);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn heads_strait_cannot_take_at_face_value_are_refused() {
    let s = Server::start();
    // Two targets: which one was meant is not strait's to guess.
    let (st, text) = raw(
        s.port,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nX-Amz-Target: Kinesis_20131202.DeleteStream\r\nContent-Length: 2\r\n\r\n",
        b"{}",
    );
    assert_eq!(st, 400, "{text}");
    assert!(text.contains("SerializationException"), "{text}");
    // A gzip transfer coding under chunked is not ignored.
    let (st, text) = raw(
        s.port,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"2\r\n{}\r\n0\r\n\r\n",
    );
    assert_eq!(st, 501, "{text}");
    assert!(text.contains("NotImplemented"), "{text}");
    // Plain chunked is fine.
    let (st, text) = raw(
        s.port,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"2\r\n{}\r\n0\r\n\r\n",
    );
    assert_eq!(st, 200, "{text}");
    // Broken CBOR is explained without Rust's names for its errors.
    let (st, _, b) = s.call("ListStreams", "application/x-amz-cbor-1.1", b"\xa1\x64Da");
    let text = String::from_utf8_lossy(&b);
    assert_eq!(st, 400);
    assert!(
        !text.contains("Semantic") && !text.contains("Syntax") && !text.contains("Io("),
        "{text}"
    );
}

#[test]
fn oversized_bodies_are_refused_without_harm() {
    let s = Server::start();
    create(&s, "big", 1);
    // Declared over kinesis.max_body_bytes (20 MiB): refused from the head, before the body.
    let (st, text) = raw(
        s.port,
        &format!(
            "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: {}\r\n\r\n",
            21 << 20
        ),
        b"{}",
    );
    assert_eq!(st, 400, "{text}");
    assert!(text.contains("SerializationException"), "{text}");
    // Chunked, so no length is declared: refused once the limit is passed.
    let mut chunked = Vec::new();
    for _ in 0..21 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 1 << 20));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (st, text) = raw(
        s.port,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nTransfer-Encoding: chunked\r\n\r\n",
        &chunked,
    );
    assert_eq!(st, 400, "{text}");
    assert!(text.contains("SerializationException"), "{text}");
    s.ok("ListStreams", json!({}));
}

#[test]
fn list_shards_pages_with_next_token() {
    let s = Server::start();
    create(&s, "many", 5);
    let first = s.ok("ListShards", json!({"StreamName": "many", "MaxResults": 2}));
    assert_eq!(first["Shards"].as_array().unwrap().len(), 2);
    let mut token = first["NextToken"].as_str().unwrap().to_string();
    let mut seen = 2;
    loop {
        let page = s.ok("ListShards", json!({"NextToken": token, "MaxResults": 2}));
        seen += page["Shards"].as_array().unwrap().len();
        match page["NextToken"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, 5);
    let (st, v) = s.json(
        "ListShards",
        json!({"StreamName": "many", "NextToken": token}),
    );
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("InvalidArgumentException"))
    );
    let (st, v) = s.json("ListShards", json!({"NextToken": "forged"}));
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("InvalidArgumentException"))
    );
}
