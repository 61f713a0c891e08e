//! `kinesis.throttling: aws` over the real binary: the per-shard read limits (5 GetRecords
//! calls and 2 MiB a second, 5 GetShardIterator calls a second) and the control-plane rates,
//! each refused with the exception AWS sends, and enhanced fan-out paced to 2 MiB a second
//! per consumer and shard. The write limits are in the Kafka-on-Kinesis checks (a write storm
//! against a throttling upstream) and in `throttle.rs`'s unit tests.

mod common;

use std::time::{Duration, Instant};

use common::efo::{events, read_messages, setup, sub_body, subscribe};
use common::Server;
use serde_json::{json, Value};

fn throttled() -> Server {
    Server::start_with(&[("STRAIT_KINESIS__THROTTLING", "aws")])
}

/// Writes `mib` MiB to shard 0 of `stream` in 256 KiB records, sending again what the
/// shard's 1 MiB a second refuses.
fn fill(s: &Server, stream: &str, mib: usize) -> usize {
    let data = base64(&vec![b'x'; 256 << 10]);
    let mut left = mib * 4;
    let mut refused = 0;
    while left > 0 {
        let n = left.min(4);
        let records: Vec<Value> = (0..n)
            .map(|_| json!({"PartitionKey": "k", "ExplicitHashKey": "0", "Data": data}))
            .collect();
        let out = s.ok(
            "PutRecords",
            json!({"StreamName": stream, "Records": records}),
        );
        let failed = out["FailedRecordCount"].as_u64().unwrap() as usize;
        for r in out["Records"].as_array().unwrap() {
            if let Some(code) = r.get("ErrorCode") {
                assert_eq!(code, "ProvisionedThroughputExceededException", "{r}");
            }
        }
        refused += failed;
        left -= n - failed;
        if failed > 0 {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    refused
}

fn base64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn iterator(s: &Server, stream: &str) -> (u16, Value) {
    s.json(
        "GetShardIterator",
        json!({"StreamName": stream, "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    )
}

#[test]
fn reads_are_held_to_five_calls_and_two_mebibytes_a_second_per_shard() {
    let s = throttled();
    s.ok("CreateStream", json!({"StreamName": "r", "ShardCount": 1}));
    let refused = fill(&s, "r", 3);
    assert!(refused > 0, "3 MiB went into one shard without a refusal");
    // Five iterators a second per shard, then ProvisionedThroughputExceededException.
    let mut its = Vec::new();
    for _ in 0..5 {
        let (status, body) = iterator(&s, "r");
        assert_eq!(status, 200, "{body}");
        its.push(body["ShardIterator"].as_str().unwrap().to_string());
    }
    let (status, body) = iterator(&s, "r");
    assert_eq!(status, 400);
    assert_eq!(
        body["__type"], "ProvisionedThroughputExceededException",
        "{body}"
    );
    // One GetRecords reads the 3 MiB: the shard's reads then wait 1.5 s.
    let (status, page) = s.json("GetRecords", json!({"ShardIterator": its[0]}));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["Records"].as_array().unwrap().len(), 12);
    let at = Instant::now();
    let (status, body) = s.json("GetRecords", json!({"ShardIterator": its[1]}));
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "ProvisionedThroughputExceededException");
    assert!(
        body["message"].as_str().unwrap().contains("2 MiB"),
        "{body}"
    );
    std::thread::sleep(Duration::from_millis(1600).saturating_sub(at.elapsed()));
    // Five calls a second: small reads (an iterator at the end reads nothing).
    let next = page["NextShardIterator"].as_str().unwrap().to_string();
    let mut codes = Vec::new();
    for _ in 0..6 {
        let (status, body) = s.json("GetRecords", json!({"ShardIterator": next}));
        codes.push((status, body["__type"].as_str().unwrap_or("").to_string()));
    }
    assert!(codes[..5].iter().all(|(st, _)| *st == 200), "{codes:?}");
    assert_eq!(
        codes[5],
        (400, "ProvisionedThroughputExceededException".to_string())
    );
}

#[test]
fn control_plane_operations_are_held_to_their_rates() {
    let s = throttled();
    let (status, body) = s.json("DescribeLimits", json!({}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.json("DescribeLimits", json!({}));
    assert_eq!(status, 400);
    assert_eq!(body["__type"], "LimitExceededException", "{body}");
    let codes: Vec<u16> = (0..6).map(|_| s.json("ListStreams", json!({})).0).collect();
    assert_eq!(codes, [200, 200, 200, 200, 200, 400]);
    // Data-plane calls are not control-plane: many a second are fine.
    s.ok("CreateStream", json!({"StreamName": "c", "ShardCount": 1}));
    for i in 0..20 {
        s.ok(
            "PutRecord",
            json!({"StreamName": "c", "PartitionKey": format!("k{i}"), "Data": "eA=="}),
        );
    }
    // The same server without throttling takes them all.
    let free = Server::start();
    for _ in 0..10 {
        free.ok("DescribeLimits", json!({}));
    }
}

#[test]
fn per_stream_rates_and_ten_scalings_a_day() {
    let s = throttled();
    for name in ["a", "b"] {
        s.ok("CreateStream", json!({"StreamName": name, "ShardCount": 2}));
    }
    let arn = |name: &str| {
        s.ok("DescribeStreamSummary", json!({"StreamName": name}))["StreamDescriptionSummary"]
            ["StreamARN"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (arn("a"), arn("b"));
    // ListStreamConsumers: 5 a second per stream, so a sixth on one stream is refused while
    // the other stream's first still goes.
    let codes: Vec<u16> = (0..6)
        .map(|_| s.json("ListStreamConsumers", json!({"StreamARN": a})).0)
        .collect();
    assert_eq!(codes, [200, 200, 200, 200, 200, 400]);
    let (status, body) = s.json("ListStreamConsumers", json!({"StreamARN": a}));
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("LimitExceededException"))
    );
    s.ok("ListStreamConsumers", json!({"StreamARN": b}));
    // UpdateShardCount: 10 scalings a rolling day per stream (and 10 calls a second per
    // account, so they are spaced out here).
    let mut count = 2;
    for i in 0..10 {
        count = if i % 2 == 0 { 4 } else { 2 };
        s.ok(
            "UpdateShardCount",
            json!({"StreamName": "a", "TargetShardCount": count, "ScalingType": "UNIFORM_SCALING"}),
        );
        std::thread::sleep(Duration::from_millis(120));
    }
    let (status, body) = s.json(
        "UpdateShardCount",
        json!({"StreamName": "a", "TargetShardCount": count * 2, "ScalingType": "UNIFORM_SCALING"}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["__type"], "LimitExceededException", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("24 hours"),
        "{body}"
    );
    s.ok(
        "UpdateShardCount",
        json!({"StreamName": "b", "TargetShardCount": 4, "ScalingType": "UNIFORM_SCALING"}),
    );
}

/// Records (and their bytes) one subscription of `lifetime` delivers from the start of a
/// shard holding 4 MiB.
fn delivered_in_one_subscription(throttling: &str) -> (usize, usize) {
    let s = Server::start_with(&[
        ("STRAIT_KINESIS__THROTTLING", throttling),
        ("STRAIT_KINESIS__SUBSCRIPTION_LIFETIME_SECS", "1"),
    ]);
    let carn = setup(&s, "e", 1, "app");
    fill(&s, "e", 4);
    let (status, c, _) = subscribe(
        &s,
        "application/x-amz-json-1.1",
        &sub_body(&carn, "shardId-000000000000", "TRIM_HORIZON"),
    );
    assert_eq!(status, 200);
    let records: Vec<Value> = events(&read_messages(c))
        .iter()
        .flat_map(|e| e["Records"].as_array().unwrap().clone())
        .collect();
    let bytes = records
        .iter()
        .map(|r| {
            use base64::Engine;
            let data = r["Data"].as_str().unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap()
                .len()
        })
        .sum();
    (records.len(), bytes)
}

#[test]
fn enhanced_fan_out_is_paced_to_two_mebibytes_a_second_per_consumer_and_shard() {
    // Over a one-second subscription: the first event at once, then 2 MiB a second of event
    // bytes (base64 in JSON), so well under the 4 MiB the shard holds.
    let (records, bytes) = delivered_in_one_subscription("aws");
    assert!(records > 0, "nothing delivered");
    assert!(
        bytes <= 3 << 20,
        "{records} records, {bytes} bytes in one second of a paced subscription"
    );
    // Without throttling the same subscription delivers (nearly) the whole shard.
    let (free, free_bytes) = delivered_in_one_subscription("off");
    assert!(
        free >= 13 && free_bytes > 3 << 20,
        "{free} records, {free_bytes} bytes in one second without throttling"
    );
}

#[test]
fn an_on_demand_stream_takes_what_aws_gives_a_new_one_four_thousand_records_a_second() {
    let s = throttled();
    s.ok(
        "CreateStream",
        json!({"StreamName": "od", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
    );
    let shards = s.ok("ListShards", json!({"StreamName": "od"}))["Shards"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(shards, 4);
    // 5,000 records over many keys within one second (ten PutRecords at once): at most 1,000
    // per shard, 4,000 in all.
    for attempt in 0..5 {
        let started = Instant::now();
        let accepted: u64 = std::thread::scope(|scope| {
            let calls: Vec<_> = (0..10)
                .map(|call| {
                    let s = &s;
                    scope.spawn(move || {
                        let records: Vec<Value> = (0..500)
                            .map(|i| {
                                json!({"PartitionKey": format!("{attempt}-{call}-{i}"), "Data": "eA=="})
                            })
                            .collect();
                        let out = s.ok(
                            "PutRecords",
                            json!({"StreamName": "od", "Records": records}),
                        );
                        500 - out["FailedRecordCount"].as_u64().unwrap()
                    })
                })
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).sum()
        });
        if started.elapsed() >= Duration::from_millis(900) {
            // Spread over two of the shards' one-second windows: not a measure of one.
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        assert!(
            (3_000..=4_000).contains(&accepted),
            "{accepted} of 5,000 records accepted in one second"
        );
        return;
    }
    panic!("5,000 records never fitted in one second on this machine");
}
