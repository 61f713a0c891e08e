//! Live migration (issue 16), the mirror: strait's embedded backend run as the Kinesis
//! source, a second strait mirroring a stream of it into its own log, read back through its
//! Kafka port. Every source record arrives once, in shard order, with its origin sequence
//! number, across `kill -9`s of the mirroring strait; Kinesis clients of the second strait are
//! served by the source until the stream is cut over; Kafka producers are refused with
//! POLICY_VIOLATION; `GET /migration` and `strait migrate status` report state and lag.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::kafka::{batch, produce, Conn};
use common::Server;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use serde_json::{json, Value};
use strait::protocol::kinesis::sequence::cmp_sequence_numbers;

/// A record as both sides show it: (sequence number, partition key, data).
type Rec = (String, String, String);

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
    target_with(source, &[])
}

fn target_with(source: &Server, more: &[(&str, &str)]) -> Server {
    let endpoint = format!("http://127.0.0.1:{}", source.port);
    let mut env = vec![
        ("STRAIT_MIGRATION__STREAMS", STREAM),
        ("STRAIT_MIGRATION__SOURCE__ENDPOINT", &endpoint),
        ("STRAIT_MIGRATION__SOURCE__POLL_INTERVAL_MS", "50"),
        ("AWS_ACCESS_KEY_ID", "strait-test"),
        ("AWS_SECRET_ACCESS_KEY", "strait-test-secret"),
    ];
    env.extend_from_slice(more);
    Server::start_with(&env)
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

/// Every record of every shard of the stream, through `s`'s Kinesis port: shard id → records.
fn read_all(s: &Server) -> BTreeMap<String, Vec<Rec>> {
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
                    r["SequenceNumber"].as_str().unwrap().to_string(),
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

/// Every record of each partition of the mirror, through `s`'s Kafka port: shard id →
/// records, the sequence number read from the `kinesis.seq` header.
fn read_mirror(s: &Server, partitions: i32) -> BTreeMap<String, Vec<Rec>> {
    let mut c = Conn::open(s.kafka_port);
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let mut records = Vec::new();
        let mut offset = 0i64;
        loop {
            let req = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(8 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str(STREAM)))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(8 << 20)])]);
            let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &req);
            let part = &resp.responses[0].partitions[0];
            assert_eq!(part.error_code, 0, "fetch of partition {p}");
            let mut bytes = part.records.clone().unwrap_or_default();
            let mut got = 0;
            while !bytes.is_empty() {
                let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
                for r in set.records {
                    if r.offset < offset {
                        continue;
                    }
                    let header = |name: &str| {
                        let v = r
                            .headers
                            .iter()
                            .find(|(k, _)| k.as_str() == name)
                            .and_then(|(_, v)| v.clone())
                            .unwrap_or_default();
                        String::from_utf8(v.to_vec()).unwrap()
                    };
                    records.push((
                        header("kinesis.seq"),
                        String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                        String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                    ));
                    offset = r.offset + 1;
                    got += 1;
                }
            }
            if got == 0 || offset >= part.high_watermark {
                break;
            }
        }
        out.insert(format!("shardId-{p:012}"), records);
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

/// A source stream of `n` records and a strait that has mirrored them: (source, mirroring
/// strait, its status once caught up).
fn mirrored(n: usize) -> (Server, Server, Value) {
    let src = source();
    put(&src, 0, n);
    let dst = target(&src);
    let st = wait_caught_up(&dst, 0, n as u64);
    (src, dst, st)
}

#[test]
fn the_mirror_copies_every_record_once_in_order_across_a_kill() {
    let (src, mut dst, st) = mirrored(3_000);
    let m = &st["streams"][0];
    assert_eq!(m["name"], STREAM);
    assert_eq!(m["lag_records"], 0, "{st}");
    assert_eq!(m["shards"].as_array().unwrap().len(), 2, "{st}");
    assert_eq!(read_mirror(&dst, 2), read_all(&src));

    // Records written while the mirror runs arrive too, those written through strait's
    // Kinesis port included (they go to the source).
    put(&src, 3_000, 1_000);
    put(&dst, 4_000, 1_000);
    wait_caught_up(&dst, 0, 5_000);
    assert_eq!(read_mirror(&dst, 2), read_all(&src));

    // Killed twice in the middle of a large backlog, each time started again on the same
    // data: it resumes after the newest mirrored record of each shard.
    dst.kill9();
    put(&src, 5_000, 30_000);
    for _ in 0..2 {
        dst.spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        while migration_status(&dst)["streams"][0]["mirrored_records"] == 0 {
            assert!(Instant::now() < deadline, "the mirror did not start again");
            std::thread::sleep(Duration::from_millis(5));
        }
        dst.kill9();
    }
    dst.spawn();
    // Copied before this start: what the log holds already.
    let before: u64 = read_mirror(&dst, 2).values().map(|v| v.len() as u64).sum();
    assert!(before >= 5_000, "{before}");
    eprintln!("mirrored before the last start: {before}");
    wait_caught_up(&dst, before, 35_000);
    let (mirrored, origin) = (read_mirror(&dst, 2), read_all(&src));
    assert_eq!(origin.values().map(Vec::len).sum::<usize>(), 35_000);
    for (shard, records) in &origin {
        let got = &mirrored[shard];
        assert_eq!(got.len(), records.len(), "{shard}: count");
        assert!(got == records, "{shard}: records differ");
    }
}

#[test]
fn clients_of_a_stream_being_migrated_reach_the_source() {
    let (src, dst, _) = mirrored(10);
    // Kinesis clients of strait see the source: its records, its sequence numbers, and their
    // writes land there.
    let out = dst.ok(
        "PutRecord",
        json!({"StreamName": STREAM, "Data": b64(b"through-strait"), "PartitionKey": "k"}),
    );
    let seq = out["SequenceNumber"].as_str().unwrap().to_string();
    let on_source = read_all(&src);
    assert!(on_source
        .values()
        .flatten()
        .any(|(s, k, d)| *s == seq && k == "k" && d == "through-strait"));
    assert_eq!(read_all(&dst), on_source);
    let desc = dst.ok("DescribeStreamSummary", json!({"StreamName": STREAM}));
    assert_eq!(desc["StreamDescriptionSummary"]["OpenShardCount"], 2);
    // A source iterator's continuation goes to the source too, after strait restarts or
    // not: strait did not sign it.
    wait_caught_up(&dst, 0, 11);
    // Resharding through strait goes to the source (the mirror follows it): a bad split
    // gets the source's own answer.
    let (code, body) = dst.json(
        "SplitShard",
        json!({"StreamName": STREAM, "ShardToSplit": "shardId-000000000000",
               "NewStartingHashKey": "0"}),
    );
    assert_eq!(
        (code, body["__type"].as_str()),
        (400, Some("InvalidArgumentException")),
        "{body}"
    );
    // Kafka producers are refused: the source is the stream's only writer until cutover.
    let mut c = Conn::open(dst.kafka_port);
    let (code, _) = produce(&mut c, STREAM, 0, batch(&[("k", "v")], None));
    assert_eq!(code, 44, "POLICY_VIOLATION");
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
    // And the metrics, per shard.
    let metrics = admin_get(&dst, "/metrics");
    assert!(
        metrics.contains(r#"strait_migration_state{state="caught-up",stream="orders"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"strait_migration_lag_records{shard="shardId-000000000001",stream="orders"} 0"#
        ),
        "{metrics}"
    );
}

/// A GET on the admin port: the body.
fn admin_get(s: &Server, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.admin_port)).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
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
    // A mirror that has not read the source cannot be cut over.
    let (ok, _, err) = cutover(&dst, STREAM);
    assert!(!ok && err.contains("has not started"), "{err}");
    let (ok, _, err) = cutover(&dst, "unknown");
    assert!(!ok && err.contains("not among migration.streams"), "{err}");
}

/// `strait migrate cutover`: exit status, standard output and error.
fn cutover(s: &Server, stream: &str) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["migrate", "cutover", "--timeout", "30", "--admin"])
        .arg(format!("http://127.0.0.1:{}", s.admin_port))
        .arg(stream)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cutover_while_writes_continue_keeps_every_record_order_and_positions() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let (src, mut dst, _) = mirrored(2_000);
    let checkpoint = read_all(&src)["shardId-000000000000"][499].0.clone();

    // A producer writing through strait all along: before the cutover its writes go to the
    // source, during it they wait, after it they land in strait's log.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let port = dst.port;
    let writer = {
        let (stop, acked, slowest) = (stop.clone(), acked.clone(), slowest.clone());
        std::thread::spawn(move || {
            let mut i = 100_000usize;
            while !stop.load(Ordering::Relaxed) {
                let records: Vec<Value> = (i..i + 20)
                    .map(|j| json!({"Data": b64(format!("record-{j:06}").as_bytes()), "PartitionKey": format!("key-{}", j % 97)}))
                    .collect();
                let t0 = Instant::now();
                let (code, _, body) = common::raw_request(
                    port,
                    "POST",
                    &[
                        ("X-Amz-Target", "Kinesis_20131202.PutRecords"),
                        ("Content-Type", "application/x-amz-json-1.1"),
                    ],
                    json!({"StreamName": STREAM, "Records": records})
                        .to_string()
                        .as_bytes(),
                );
                let took = t0.elapsed();
                assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
                let out: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(out["FailedRecordCount"], 0, "{out}");
                let mut slow = slowest.lock().unwrap();
                *slow = (*slow).max(took);
                acked
                    .lock()
                    .unwrap()
                    .extend((i..i + 20).map(|j| format!("record-{j:06}")));
                i += 20;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // A poller on the source, through strait.
    let source_iterator = dst.ok(
        "GetShardIterator",
        json!({"StreamName": STREAM, "ShardId": "shardId-000000000001", "ShardIteratorType": "LATEST"}),
    )["ShardIterator"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out, err) = cutover(&dst, STREAM);
    assert!(ok, "cutover failed: {err}");
    assert!(out.contains("cut-over"), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let st = migration_status(&dst);
    let m = &st["streams"][0];
    assert_eq!(m["state"], "cut-over", "{st}");
    let hold_ms = m["last_cutover_hold_ms"].as_u64().unwrap();
    // The poller still on the source is told its iterator expired, so it asks again here.
    let (code, body) = dst.json("GetRecords", json!({"ShardIterator": source_iterator}));
    assert_eq!(
        (code, body["__type"].as_str()),
        (400, Some("ExpiredIteratorException")),
        "{body}"
    );
    eprintln!(
        "cutover: writes held {hold_ms} ms; slowest PutRecords {:?}",
        *slowest.lock().unwrap()
    );

    // Every acknowledged record once, per-key order kept, sequence numbers rising on each
    // shard across the cutover, and the source's records keep the source's numbers.
    let origin = read_all(&src);
    let served = read_all(&dst);
    let mut seen = std::collections::HashSet::new();
    for (shard, records) in &served {
        let from_source = &origin[shard];
        assert!(records.len() >= from_source.len(), "{shard}");
        assert_eq!(
            &records[..from_source.len()],
            &from_source[..],
            "{shard}: origin numbers"
        );
        for w in records.windows(2) {
            assert_eq!(
                cmp_sequence_numbers(&w[0].0, &w[1].0),
                std::cmp::Ordering::Less,
                "{shard}: {} then {}",
                w[0].0,
                w[1].0
            );
        }
        let mut last_by_key: BTreeMap<&str, &str> = BTreeMap::new();
        for (_, key, data) in records {
            assert!(seen.insert(data.clone()), "{data} twice");
            if data.starts_with("record-1") {
                if let Some(prev) = last_by_key.insert(key, data) {
                    assert!(prev < data.as_str(), "{key}: {prev} before {data}");
                }
            }
        }
    }
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 100, "{} writes", acked.len());
    for d in acked.iter() {
        assert!(seen.contains(d), "{d} acknowledged but not in the stream");
    }
    // Written after the cutover: not on the source.
    let on_source: usize = origin.values().map(Vec::len).sum();
    let served_n: usize = served.values().map(Vec::len).sum();
    assert!(
        served_n > on_source,
        "{served_n} served, {on_source} on the source"
    );

    // A position held from the source resolves to the same place here, before and after a
    // restart; Kafka producers may write now.
    let after = |s: &Server| {
        let it = s.ok(
            "GetShardIterator",
            json!({"StreamName": STREAM, "ShardId": "shardId-000000000000",
                   "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": checkpoint}),
        )["ShardIterator"]
            .as_str()
            .unwrap()
            .to_string();
        let page = s.ok("GetRecords", json!({"ShardIterator": it, "Limit": 1}));
        page["Records"][0]["SequenceNumber"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let next = origin["shardId-000000000000"][500].0.clone();
    assert_eq!(after(&dst), next);
    dst.kill9();
    dst.spawn();
    assert_eq!(migration_status(&dst)["streams"][0]["state"], "cut-over");
    assert_eq!(after(&dst), next);
    let mut c = Conn::open(dst.kafka_port);
    let (code, _) = produce(&mut c, STREAM, 0, batch(&[("k", "v")], None));
    assert_eq!(code, 0, "produce after the cutover");
    let out = dst.ok(
        "PutRecord",
        json!({"StreamName": STREAM, "Data": b64(b"after-restart"), "PartitionKey": "k"}),
    );
    let on_source_after: usize = read_all(&src).values().map(Vec::len).sum();
    assert_eq!(
        on_source_after, on_source,
        "written to the source after the cutover"
    );
    assert!(out["SequenceNumber"].as_str().unwrap().len() >= 56);
}

/// The stream's shards as `s` lists them: (id, parents, hash range, closed).
fn shard_layout(s: &Server) -> Vec<(String, Vec<String>, String, String, bool)> {
    let shards = s.ok("ListShards", json!({"StreamName": STREAM}));
    shards["Shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sh| {
            let text = |v: &Value| v.as_str().map(str::to_string);
            let parents = [&sh["ParentShardId"], &sh["AdjacentParentShardId"]]
                .into_iter()
                .filter_map(text)
                .collect();
            (
                text(&sh["ShardId"]).unwrap(),
                parents,
                text(&sh["HashKeyRange"]["StartingHashKey"]).unwrap(),
                text(&sh["HashKeyRange"]["EndingHashKey"]).unwrap(),
                sh["SequenceNumberRange"]["EndingSequenceNumber"].is_string(),
            )
        })
        .collect()
}

#[test]
fn a_source_resharded_under_the_mirror_is_followed_and_cut_over() {
    let (src, mut dst, _) = mirrored(1_000);
    // Split through strait (forwarded to the source while the stream is mirrored), then a
    // merge of the children on the source itself, with writes between, and a kill -9 of the
    // mirroring strait after the split.
    dst.ok(
        "SplitShard",
        json!({"StreamName": STREAM, "ShardToSplit": "shardId-000000000000",
               "NewStartingHashKey": "85070591730234615865843651857942052864"}),
    );
    put(&src, 1_000, 1_000);
    dst.kill9();
    dst.spawn();
    src.ok(
        "MergeShards",
        json!({"StreamName": STREAM, "ShardToMerge": "shardId-000000000002",
               "AdjacentShardToMerge": "shardId-000000000003"}),
    );
    put(&src, 2_000, 1_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = migration_status(&dst);
        let m = &st["streams"][0];
        let copied = || read_mirror(&dst, 5).values().map(Vec::len).sum::<usize>();
        if m["state"] == "caught-up"
            && m["shards"].as_array().unwrap().len() == 5
            && copied() == 3_000
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reshard was not followed: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Once every shard is followed, the finished parents are not read again: the mirror asks
    // the source for no new iterators while nothing changes.
    let iterators = || {
        let metrics = admin_get(&src, "/metrics");
        metrics
            .lines()
            .find(|l| {
                l.starts_with("strait_requests_total")
                    && l.contains(r#"operation="GetShardIterator""#)
                    && l.contains(r#"protocol="kinesis""#)
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = iterators();
    assert!(before > 0.0, "no GetShardIterator counted on the source");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(iterators(), before, "the mirror keeps asking for iterators");
    let origin = read_all(&src);
    assert_eq!(origin.len(), 5, "{:?}", origin.keys());
    assert_eq!(origin.values().map(Vec::len).sum::<usize>(), 3_000);
    assert_eq!(
        read_mirror(&dst, 5),
        origin,
        "the mirror differs from the source"
    );

    let (ok, _, err) = cutover(&dst, STREAM);
    assert!(ok, "cutover refused: {err}");
    // The same shards, lineage and ranges, the closed ones closed; the same records.
    assert_eq!(shard_layout(&dst), shard_layout(&src));
    assert_eq!(read_all(&dst), origin);
    // New writes land on the open shards (1, and the merged child 4), numbered above the
    // source's; the closed ones take none.
    put(&dst, 10_000, 200);
    let served = read_all(&dst);
    for (id, recs) in &served {
        let open = id == "shardId-000000000001" || id == "shardId-000000000004";
        assert_eq!(open, recs.len() > origin[id].len(), "{id}");
        assert!(
            recs.windows(2)
                .all(|w| cmp_sequence_numbers(&w[0].0, &w[1].0).is_lt()),
            "{id}: numbers do not rise"
        );
    }
    assert_eq!(
        served.values().map(Vec::len).sum::<usize>(),
        3_200,
        "writes after the cutover went elsewhere"
    );
}

#[test]
fn a_fan_out_mirror_copies_once_across_a_kill_and_cuts_over() {
    let src = source();
    put(&src, 0, 2_000);
    let fan_out = [("STRAIT_MIGRATION__SOURCE__READ", "fan-out")];
    let mut dst = target_with(&src, &fan_out);
    wait_caught_up(&dst, 0, 2_000);
    // The mirror reads by SubscribeToShard under its own consumer.
    let arn = src.ok("DescribeStreamSummary", json!({"StreamName": STREAM}))
        ["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .unwrap()
        .to_string();
    let consumers = || {
        src.ok("ListStreamConsumers", json!({"StreamARN": arn}))["Consumers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["ConsumerName"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(consumers(), vec!["strait-migration".to_string()]);
    // Pushed while it runs, then a backlog across a kill -9.
    put(&src, 2_000, 1_000);
    dst.kill9();
    put(&src, 3_000, 5_000);
    dst.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_mirror(&dst, 2).values().map(Vec::len).sum::<usize>() < 8_000 {
        assert!(
            Instant::now() < deadline,
            "the mirror did not catch up after the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let origin = read_all(&src);
    assert_eq!(
        read_mirror(&dst, 2),
        origin,
        "records differ from the source's"
    );
    wait_caught_up(&dst, 8_000, 8_000);
    // The drain probes rather than waits for an empty push: the hold stays short.
    let (ok, _, err) = cutover(&dst, STREAM);
    assert!(ok, "cutover refused: {err}");
    let hold = migration_status(&dst)["streams"][0]["last_cutover_hold_ms"]
        .as_u64()
        .unwrap();
    eprintln!("fan-out cutover held writes {hold} ms");
    assert!(hold < 3_000, "writes held {hold} ms");
    assert_eq!(read_all(&dst), origin);
    // And the consumer is deregistered from the source once the stream is cut over.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !consumers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "consumer left on the source: {:?}",
            consumers()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
