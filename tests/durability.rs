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

/// A data directory written by a newer strait is refused at start, with both versions named.
#[test]
fn a_data_dir_from_a_newer_strait_is_refused() {
    let mut s = Server::start();
    s.stop();
    let stamp = s.data_dir.join("FORMAT_VERSION");
    assert_eq!(std::fs::read_to_string(&stamp).unwrap(), "1\n");
    std::fs::write(&stamp, "99\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["serve", "--config"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/strait.yaml"))
        .env("STRAIT_DATA_DIR", &s.data_dir)
        .env("STRAIT_KINESIS__LISTEN", "127.0.0.1:0")
        .env("STRAIT_KAFKA__LISTEN", "127.0.0.1:0")
        .env("STRAIT_ADMIN__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("format version 99") && err.contains("format version 1 "),
        "{err}"
    );
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
    // Nothing was written outside the log and metadata directories but the format stamp.
    let stray: Vec<_> = std::fs::read_dir(&s.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let mut stray = stray;
    stray.sort();
    assert_eq!(stray, ["FORMAT_VERSION", "log", "meta"]);
}

/// SIGTERM while writers are busy: every PutRecords that was acknowledged before the
/// connection closed is there after a restart, in order, and nothing else.
#[test]
fn sigterm_during_load_keeps_every_acknowledged_record() {
    use base64::Engine;
    let mut s = Server::start();
    s.ok(
        "CreateStream",
        json!({"StreamName": "busy", "ShardCount": 1}),
    );
    let port = s.port;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for batch in 0.. {
                    let records: Vec<_> = (0..50)
                        .map(|i| {
                            let data = base64::engine::general_purpose::STANDARD
                                .encode(format!("w{w}-b{batch}-{i}"));
                            json!({"Data": data, "PartitionKey": format!("k{w}")})
                        })
                        .collect();
                    let body = json!({"StreamName": "busy", "Records": records}).to_string();
                    let sent = std::panic::catch_unwind(|| {
                        common::raw_request(
                            port,
                            "POST",
                            &[
                                ("X-Amz-Target", "Kinesis_20131202.PutRecords"),
                                ("Content-Type", "application/x-amz-json-1.1"),
                            ],
                            body.as_bytes(),
                        )
                    });
                    match sent {
                        Ok((200, _, out)) => {
                            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                            assert_eq!(v["FailedRecordCount"], 0);
                            for (r, req) in v["Records"].as_array().unwrap().iter().zip(&records) {
                                acked.push((
                                    r["SequenceNumber"].as_str().unwrap().to_string(),
                                    req["Data"].as_str().unwrap().to_string(),
                                ));
                            }
                        }
                        // Refused or cut off by the shutdown: not acknowledged.
                        _ => return acked,
                    }
                }
                unreachable!()
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    s.stop();
    let acked: Vec<(String, String)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(acked.len() >= 50, "the writers never got going");
    s.spawn();
    let got = read_all(&s, "busy", "shardId-000000000000");
    // Everything acknowledged is there; anything else was in flight at the signal.
    let stored: std::collections::HashMap<&str, &str> =
        got.iter().map(|(q, d)| (q.as_str(), d.as_str())).collect();
    for (seq, data) in &acked {
        assert_eq!(stored.get(seq.as_str()), Some(&data.as_str()), "lost {seq}");
    }
    let mut seqs: Vec<&String> = got.iter().map(|(q, _)| q).collect();
    let sorted = {
        let mut v = seqs.clone();
        v.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
        v
    };
    assert_eq!(seqs, sorted, "sequence numbers out of order after restart");
    seqs.dedup();
    assert_eq!(seqs.len(), got.len(), "duplicates after restart");
}
