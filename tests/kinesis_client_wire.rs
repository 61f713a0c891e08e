//! strait's own Kinesis client (`backend.kinesis.wire`): CBOR to an upstream that speaks it
//! (strait's embedded backend run as the binary), the same records as through JSON; and JSON
//! for good once an upstream answers CBOR with something else, as moto answers it with an
//! HTML 500 (a stand-in server here that answers as moto does).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Server;
use serde_json::json;
use strait::backend::kinesis::client::{CallError, KinesisClient, ListStreamsOutput, Wire};
use strait::backend::kinesis::upstream::Upstream;
use strait::config::KinesisBackendConfig;
use strait::protocol::kinesis::cbor_records::{self, records_page};
use strait::protocol::kinesis::codec::{self, Blob, Protocol};
use strait::protocol::kinesis::shapes::{
    GetRecordsInput, GetRecordsOutput, GetShardIteratorInput, GetShardIteratorOutput,
    PutRecordsInput, PutRecordsOutput, PutRecordsRequestEntry,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client(port: u16, wire: Wire) -> KinesisClient {
    // strait signs with these; neither upstream here checks them.
    std::env::set_var("AWS_ACCESS_KEY_ID", "strait-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "strait-test-secret");
    let cfg = KinesisBackendConfig {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..Default::default()
    };
    KinesisClient::new(Arc::new(Upstream::new(&cfg).unwrap()), wire)
}

/// Every record of shard 0 of `w`, read through `c`.
async fn read_all(c: &KinesisClient) -> GetRecordsOutput {
    let it: GetShardIteratorOutput = c
        .call(
            "GetShardIterator",
            &GetShardIteratorInput {
                stream_name: Some("w".into()),
                shard_id: Some("shardId-000000000000".into()),
                shard_iterator_type: Some("TRIM_HORIZON".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    c.call_fast(
        "GetRecords",
        &GetRecordsInput {
            shard_iterator: Some(it.shard_iterator),
            limit: Some(1000),
            stream_arn: None,
        },
        |b| records_page(b).map(GetRecordsOutput::from),
    )
    .await
    .unwrap()
}

#[test]
fn cbor_and_json_put_and_read_the_same_records() {
    let up = Server::start();
    up.ok("CreateStream", json!({"StreamName": "w", "ShardCount": 1}));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (cbor, plain) = (
            client(up.port, Wire::CborOrJson),
            client(up.port, Wire::Json),
        );
        let mut sent = Vec::new();
        for (c, tag) in [(&cbor, 0u8), (&plain, 1u8)] {
            let entries: Vec<PutRecordsRequestEntry> = (0..50u8)
                .map(|i| PutRecordsRequestEntry {
                    // Bytes JSON would need base64 for, and an empty record.
                    data: Some(Blob([tag, i, 0xff, 0x00].repeat(i as usize % 3).into())),
                    partition_key: Some(format!("k{i}")),
                    explicit_hash_key: None,
                })
                .collect();
            // As the Kinesis log writes PutRecords: directly in CBOR, through serde in JSON.
            let refs: Vec<&PutRecordsRequestEntry> = entries.iter().collect();
            let input = PutRecordsInput {
                stream_name: Some("w".into()),
                records: Some(entries.clone()),
                ..Default::default()
            };
            let out: PutRecordsOutput = c
                .call_encoded(
                    "PutRecords",
                    |p| match p {
                        Protocol::Cbor => cbor_records::put_records_input("w", &refs),
                        Protocol::Json => codec::encode(p, &input),
                    },
                    |b| cbor_records::put_records_output(b),
                )
                .await
                .unwrap();
            assert_eq!(out.failed_record_count, 0);
            assert_eq!(out.records.len(), 50);
            sent.extend(entries);
        }
        let (through_cbor, through_json) = (read_all(&cbor).await, read_all(&plain).await);
        assert_eq!(through_cbor.records.len(), 100);
        for (read, sent) in through_cbor.records.iter().zip(&sent) {
            assert_eq!(Some(&read.data), sent.data.as_ref());
            assert_eq!(Some(&read.partition_key), sent.partition_key.as_ref());
        }
        assert_eq!(through_cbor.records, through_json.records);
        assert!(through_cbor.records[0].approximate_arrival_timestamp.0 > 1_600_000_000_000);
        assert_eq!(cbor.protocol(), Protocol::Cbor, "no fallback to JSON");
        // The same answer body, as CBOR, read directly and through serde.
        let (status, _, body) = up.call(
            "GetRecords",
            "application/x-amz-cbor-1.1",
            &codec::encode(
                Protocol::Cbor,
                &GetRecordsInput {
                    shard_iterator: Some(iterator(&up)),
                    limit: Some(1000),
                    stream_arn: None,
                },
            ),
        );
        assert_eq!(status, 200);
        let body = bytes::Bytes::from(body);
        let serde: GetRecordsOutput = codec::decode(Protocol::Cbor, &body).unwrap();
        let direct = records_page(&body).expect("the shape");
        assert_eq!(direct.records, serde.records);
        assert_eq!(direct.records, through_json.records);
    });
}

fn iterator(up: &Server) -> String {
    up.ok(
        "GetShardIterator",
        json!({"StreamName": "w", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )["ShardIterator"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Answers as moto does: CBOR with an HTML 500, JSON ListStreams with an empty list.
/// Counts the CBOR requests it was sent. With `cbor_once`, it answers the first CBOR request
/// in CBOR and the others as AWS's front end answers a temporary failure: 503, in JSON.
async fn moto_like(cbor_once: bool) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cbor_seen = Arc::new(AtomicUsize::new(0));
    let seen = cbor_seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: its head, then Content-Length bytes.
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + len);
                    let cbor = head.contains("content-type: application/x-amz-cbor-1.1");
                    let answer = if cbor && cbor_once && seen.fetch_add(1, Ordering::SeqCst) == 0 {
                        // {"StreamNames": [], "HasMoreStreams": false}
                        let body = b"\xa2\x6bStreamNames\x80\x6eHasMoreStreams\xf4";
                        let mut a = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-cbor-1.1\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        a.extend_from_slice(body);
                        a
                    } else if cbor && cbor_once {
                        let body = r#"{"code":"ServiceUnavailable","message":"The request has failed due to a temporary failure of the server."}"#;
                        format!(
                            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    } else if cbor {
                        seen.fetch_add(1, Ordering::SeqCst);
                        let page = "<!doctype html><title>500 Internal Server Error</title>";
                        format!(
                            "HTTP/1.1 500 INTERNAL SERVER ERROR\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\r\n{page}",
                            page.len()
                        )
                        .into_bytes()
                    } else {
                        let body = r#"{"StreamNames": [], "HasMoreStreams": false}"#;
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    };
                    if conn.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, cbor_seen)
}

#[test]
fn an_upstream_without_cbor_is_called_in_json_from_then_on() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (port, cbor_seen) = moto_like(false).await;
        let auto = client(port, Wire::CborOrJson);
        for _ in 0..3 {
            let out: ListStreamsOutput = auto
                .call("ListStreams", &serde_json::Map::new())
                .await
                .unwrap();
            assert!(out.stream_names.is_empty());
        }
        assert_eq!(auto.protocol(), Protocol::Json);
        assert_eq!(cbor_seen.load(Ordering::SeqCst), 1, "CBOR tried once");
        // Told to speak CBOR only, strait reports what the upstream answered.
        let cbor_only = client(port, Wire::Cbor);
        let e = auto_err(&cbor_only).await;
        assert!(e.is("HTTP 500"), "{e}");
        assert_eq!(cbor_only.protocol(), Protocol::Cbor);
    });
}

/// Once the upstream has answered in CBOR, an error in JSON is a temporary failure (AWS's
/// front end answers a 503 in JSON whatever was sent), not an upstream without CBOR.
#[test]
fn a_json_error_after_a_cbor_answer_does_not_turn_cbor_off() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (port, cbor_seen) = moto_like(true).await;
        let auto = client(port, Wire::CborOrJson);
        let out: ListStreamsOutput = auto
            .call("ListStreams", &serde_json::Map::new())
            .await
            .unwrap();
        assert!(out.stream_names.is_empty());
        let e = auto_err(&auto).await;
        assert_eq!(e.code(), Some("HTTP 503"), "{e}");
        assert!(e.to_string().contains("temporary failure"), "{e}");
        assert!(e.is_transient());
        assert_eq!(auto.protocol(), Protocol::Cbor);
        assert_eq!(cbor_seen.load(Ordering::SeqCst), 2);
    });
}

async fn auto_err(c: &KinesisClient) -> CallError {
    c.call::<_, ListStreamsOutput>("ListStreams", &serde_json::Map::new())
        .await
        .unwrap_err()
}
