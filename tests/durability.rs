//! Restarts: a clean stop and a SIGKILL keep streams and every acknowledged record, and a torn
//! tail in a segment is cut off at start-up.

mod common;

use common::Server;
use serde_json::json;

fn read_all(s: &Server, stream: &str, shard: &str) -> Vec<(String, String)> {
    let it = s.ok(
        "GetShardIterator",
        json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    );
    let mut it = it["ShardIterator"].as_str().unwrap().to_string();
    let mut out = Vec::new();
    loop {
        let got = s.ok("GetRecords", json!({"ShardIterator": it, "Limit": 1000}));
        let recs = got["Records"].as_array().unwrap();
        for r in recs {
            out.push((
                r["SequenceNumber"].as_str().unwrap().to_string(),
                r["Data"].as_str().unwrap().to_string(),
            ));
        }
        if recs.is_empty() {
            return out;
        }
        it = got["NextShardIterator"].as_str().unwrap().to_string();
    }
}

fn put_batch(s: &Server, stream: &str, n: usize, tag: &str) -> Vec<(String, String)> {
    use base64::Engine;
    let records: Vec<_> = (0..n)
        .map(|i| {
            let data = base64::engine::general_purpose::STANDARD.encode(format!("{tag}-{i}"));
            json!({"Data": data, "PartitionKey": "one-key"})
        })
        .collect();
    let out = s.ok(
        "PutRecords",
        json!({"StreamName": stream, "Records": records}),
    );
    assert_eq!(out["FailedRecordCount"], 0);
    out["Records"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&records)
        .map(|(r, req)| {
            (
                r["SequenceNumber"].as_str().unwrap().to_string(),
                req["Data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn sigterm_and_sigkill_keep_streams_and_records() {
    let mut s = Server::start();
    s.ok("CreateStream", json!({"StreamName": "d", "ShardCount": 1}));
    s.ok(
        "AddTagsToStream",
        json!({"StreamName": "d", "Tags": {"team": "a"}}),
    );
    s.ok(
        "IncreaseStreamRetentionPeriod",
        json!({"StreamName": "d", "RetentionPeriodHours": 48}),
    );
    let mut acked = put_batch(&s, "d", 100, "a");
    s.stop();
    s.spawn();
    acked.extend(put_batch(&s, "d", 100, "b"));
    s.kill9();
    s.spawn();
    assert_eq!(read_all(&s, "d", "shardId-000000000000"), acked);
    let sum = s.ok("DescribeStreamSummary", json!({"StreamName": "d"}));
    assert_eq!(sum["StreamDescriptionSummary"]["RetentionPeriodHours"], 48);
    let tags = s.ok("ListTagsForStream", json!({"StreamName": "d"}));
    assert_eq!(tags["Tags"], json!([{"Key": "team", "Value": "a"}]));
    // Iterators signed before a restart still work after it.
    let it = s.ok(
        "GetShardIterator",
        json!({"StreamName": "d", "ShardId": "shardId-000000000000", "ShardIteratorType": "LATEST"}),
    );
    s.stop();
    s.spawn();
    let got = s.ok("GetRecords", json!({"ShardIterator": it["ShardIterator"]}));
    assert_eq!(got["Records"], json!([]));
}

#[test]
fn torn_tail_is_truncated_and_writes_continue() {
    let mut s = Server::start();
    s.ok("CreateStream", json!({"StreamName": "t", "ShardCount": 1}));
    let mut acked = put_batch(&s, "t", 10, "a");
    s.kill9();
    let seg = s.data_dir.join("log/t-t/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    let good = bytes.len();
    // Half a batch header and some garbage, as a crash mid-write leaves it.
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1, 0, 0, 0, 0, 0, 2, 9, 9]);
    std::fs::write(&seg, &bytes).unwrap();
    s.spawn();
    assert_eq!(std::fs::metadata(&seg).unwrap().len() as usize, good);
    acked.extend(put_batch(&s, "t", 10, "b"));
    assert_eq!(read_all(&s, "t", "shardId-000000000000"), acked);
}

#[test]
fn corrupt_batch_in_the_middle_cuts_the_log_there() {
    let mut s = Server::start();
    s.ok("CreateStream", json!({"StreamName": "m", "ShardCount": 1}));
    let first = put_batch(&s, "m", 5, "a");
    let seg = s.data_dir.join("log/t-m/0/00000000000000000000.log");
    let cut = std::fs::metadata(&seg).unwrap().len() as usize;
    put_batch(&s, "m", 5, "b");
    s.kill9();
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // flips a bit inside the second batch: its CRC no longer matches
    std::fs::write(&seg, &bytes).unwrap();
    s.spawn();
    assert!(s.alive());
    assert_eq!(std::fs::metadata(&seg).unwrap().len() as usize, cut);
    assert_eq!(read_all(&s, "m", "shardId-000000000000"), first);
}

#[test]
fn odd_stream_names_survive_restarts_and_stay_apart() {
    let mut s = Server::start();
    let names = [".", "..", ".hidden", "x.tmp", "0"];
    for n in names {
        s.ok("CreateStream", json!({"StreamName": n, "ShardCount": 1}));
        put_batch(&s, n, 3, n);
    }
    s.ok("DeleteStream", json!({"StreamName": "0"}));
    s.kill9();
    s.spawn();
    let listed = s.ok("ListStreams", json!({}));
    assert_eq!(
        listed["StreamNames"],
        json!([".", "..", ".hidden", "x.tmp"])
    );
    for n in &names[..4] {
        assert_eq!(read_all(&s, n, "shardId-000000000000").len(), 3, "{n}");
    }
    // A recreated stream starts empty: the deleted one's records do not come back.
    s.ok("CreateStream", json!({"StreamName": "0", "ShardCount": 1}));
    assert!(read_all(&s, "0", "shardId-000000000000").is_empty());
    // Nothing was written outside the log directory.
    let stray: Vec<_> = std::fs::read_dir(&s.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let mut stray = stray;
    stray.sort();
    assert_eq!(stray, ["log", "meta"]);
}
