//! Live migration (issue 16), the mirror: strait's embedded backend run as the Kinesis
//! source, a second strait mirroring a stream of it into its own log. Every source record
//! arrives once, in shard order, across a `kill -9` of the mirroring strait; client writes to
//! the stream being migrated are refused with the protocol's error; `GET /migration` and
//! `strait migrate status` report state and lag.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

const STREAM: &str = "orders";

fn source() -> Server {
    let s = Server::start();
    s.ok(
        "CreateStream",
        json!({"StreamName": STREAM, "ShardCount": 2}),
    );
    s
}

fn target(source: &Server) -> Server {
    let endpoint = format!("http://127.0.0.1:{}", source.port);
    Server::start_with(&[
        ("STRAIT_MIGRATION__STREAMS", STREAM),
        ("STRAIT_MIGRATION__SOURCE__ENDPOINT", &endpoint),
        ("STRAIT_MIGRATION__SOURCE__POLL_INTERVAL_MS", "50"),
        ("AWS_ACCESS_KEY_ID", "strait-test"),
        ("AWS_SECRET_ACCESS_KEY", "strait-test-secret"),
    ])
}

/// Writes `n` records (500 per call) with keys over 97 partition keys; data names the record.
fn put(s: &Server, from: usize, n: usize) {
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(500) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let data = format!("record-{i:06}-{}", "x".repeat(i % 300));
                json!({"Data": b64(data.as_bytes()), "PartitionKey": format!("key-{}", i % 97)})
            })
            .collect();
        let out = s.ok(
            "PutRecords",
            json!({"StreamName": STREAM, "Records": records}),
        );
        assert_eq!(out["FailedRecordCount"], 0, "{out}");
    }
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Every record of every shard of the stream on `s`: shard id → [(partition key, data)].
fn read_all(s: &Server) -> BTreeMap<String, Vec<(String, String)>> {
    let shards = s.ok("ListShards", json!({"StreamName": STREAM}));
    let mut out = BTreeMap::new();
    for sh in shards["Shards"].as_array().unwrap() {
        let id = sh["ShardId"].as_str().unwrap().to_string();
        let mut it = s.ok(
            "GetShardIterator",
            json!({"StreamName": STREAM, "ShardId": id, "ShardIteratorType": "TRIM_HORIZON"}),
        )["ShardIterator"]
            .as_str()
            .unwrap()
            .to_string();
        let mut records = Vec::new();
        loop {
            let page = s.ok("GetRecords", json!({"ShardIterator": it, "Limit": 10000}));
            let got = page["Records"].as_array().unwrap();
            for r in got {
                use base64::Engine;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(r["Data"].as_str().unwrap())
                    .unwrap();
                records.push((
                    r["PartitionKey"].as_str().unwrap().to_string(),
                    String::from_utf8(data).unwrap(),
                ));
            }
            if got.is_empty() || page["MillisBehindLatest"] == 0 && got.len() < 10000 {
                break;
            }
            it = page["NextShardIterator"].as_str().unwrap().to_string();
        }
        out.insert(id, records);
    }
    out
}

/// `strait migrate status --json` against the replica's admin port. The replica answers
/// 404 until its backend has opened and the mirror started, which these tests wait out.
fn migration_status(s: &Server) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
            .args(["migrate", "status", "--json", "--admin"])
            .arg(format!("http://127.0.0.1:{}", s.admin_port))
            .output()
            .unwrap();
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not open yet") && Instant::now() < deadline,
            "{err}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the stream's mirror reports caught-up with `want` records copied in all.
fn wait_caught_up(s: &Server, copied_before: u64, want: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = migration_status(s);
        let m = &st["streams"][0];
        let copied = m["mirrored_records"].as_u64().unwrap() + copied_before;
        if m["state"] == "caught-up" && copied >= want {
            return st;
        }
        assert!(Instant::now() < deadline, "mirror did not catch up: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_mirror_copies_every_record_once_in_order_across_a_kill() {
    let src = source();
    put(&src, 0, 3_000);
    let mut dst = target(&src);
    let st = wait_caught_up(&dst, 0, 3_000);
    let m = &st["streams"][0];
    assert_eq!(m["name"], STREAM);
    assert_eq!(m["lag_records"], 0, "{st}");
    assert_eq!(m["shards"].as_array().unwrap().len(), 2, "{st}");
    assert_eq!(read_all(&dst), read_all(&src));

    // Records written while the mirror runs arrive too.
    put(&src, 3_000, 1_000);
    wait_caught_up(&dst, 0, 4_000);
    assert_eq!(read_all(&dst), read_all(&src));

    // Killed in the middle of a large backlog, then started again on the same data: it
    // resumes after the newest mirrored record of each shard.
    dst.kill9();
    put(&src, 4_000, 30_000);
    dst.spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while migration_status(&dst)["streams"][0]["mirrored_records"] == 0 {
        assert!(Instant::now() < deadline, "the mirror did not start again");
        std::thread::sleep(Duration::from_millis(5));
    }
    dst.kill9();
    dst.spawn();
    // Copied before this start: what the log holds already.
    let before: u64 = read_all(&dst).values().map(|v| v.len() as u64).sum();
    assert!(before >= 4_000, "{before}");
    wait_caught_up(&dst, before, 34_000);
    let (mirrored, origin) = (read_all(&dst), read_all(&src));
    for (shard, records) in &origin {
        let got = &mirrored[shard];
        assert_eq!(got.len(), records.len(), "{shard}: count");
        assert!(got == records, "{shard}: records differ");
    }
}

#[test]
fn client_writes_to_a_stream_being_migrated_are_refused() {
    let src = source();
    put(&src, 0, 10);
    let dst = target(&src);
    wait_caught_up(&dst, 0, 10);
    let (code, body) = dst.json(
        "PutRecord",
        json!({"StreamName": STREAM, "Data": b64(b"x"), "PartitionKey": "k"}),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["__type"], "ResourceInUseException", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("being migrated"),
        "{body}"
    );
    // The table form names the stream and its state.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["migrate", "status", "--admin"])
        .arg(format!("http://127.0.0.1:{}", dst.admin_port))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("orders") && table.contains("caught-up"),
        "{table}"
    );
}

#[test]
fn a_source_that_cannot_be_reached_is_reported_not_fatal() {
    // Nothing listens on the source port: strait serves, and the status says why the mirror
    // does not advance.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let endpoint = format!("http://127.0.0.1:{port}");
    let dst = Server::start_with(&[
        ("STRAIT_MIGRATION__STREAMS", STREAM),
        ("STRAIT_MIGRATION__SOURCE__ENDPOINT", &endpoint),
        ("AWS_ACCESS_KEY_ID", "strait-test"),
        ("AWS_SECRET_ACCESS_KEY", "strait-test-secret"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = migration_status(&dst);
        let m = &st["streams"][0];
        if m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("ListShards") || e.contains("listing"))
        {
            assert_eq!(m["state"], "mirroring", "{st}");
            break;
        }
        assert!(Instant::now() < deadline, "no error reported: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
