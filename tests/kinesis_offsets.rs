//! The Kinesis backend's offset ⇄ sequence number mapping (what KCL checkpoints and Kafka
//! offsets are translated through), against a real upstream: strait's embedded backend run as
//! the binary. 25,000 records in one shard, so the oldest ones have left the recent positions
//! each partition keeps (20,000) and are found by reading their index chunk again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::Server;
use serde_json::json;
use strait::backend::kinesis::client::KinesisClient;
use strait::backend::kinesis::filter::StreamFilter;
use strait::backend::kinesis::log::{KinesisLog, KinesisLogSettings};
use strait::backend::kinesis::upstream::Upstream;
use strait::backend::Log;
use strait::config::KinesisBackendConfig;

const RECORDS: usize = 25_000;

/// A Kinesis-backend log over `up`, polling, its offset indexes in `dir`.
fn open_log(up: &Server, dir: &std::path::Path) -> Arc<KinesisLog> {
    let cfg = KinesisBackendConfig {
        endpoint: Some(format!("http://127.0.0.1:{}", up.port)),
        ..Default::default()
    };
    KinesisLog::new(
        Arc::new(KinesisClient::new(
            Arc::new(Upstream::new(&cfg).unwrap()),
            strait::backend::kinesis::client::Wire::CborOrJson,
        )),
        KinesisLogSettings {
            dir: dir.to_path_buf(),
            poll: Duration::from_millis(200),
            max_reads_per_sec: 5,
            cache_bytes: 1 << 20,
            fan_out_consumer: None,
            fan_out_sweep: None,
            streams: StreamFilter::new(&[]),
            state: None,
        },
    )
}

#[test]
fn checkpoints_old_and_recent_map_to_offsets_and_back() {
    let up = Server::start();
    up.ok("CreateStream", json!({"StreamName": "w", "ShardCount": 1}));
    let mut seqs = Vec::with_capacity(RECORDS);
    for batch in 0..RECORDS / 500 {
        let records: Vec<_> = (0..500)
            .map(|i| {
                let data = format!("r{}", batch * 500 + i);
                json!({"PartitionKey": "k", "Data": base64::engine::general_purpose::STANDARD.encode(data)})
            })
            .collect();
        let out = up.ok("PutRecords", json!({"StreamName": "w", "Records": records}));
        assert_eq!(out["FailedRecordCount"], 0, "{out}");
        for r in out["Records"].as_array().unwrap() {
            seqs.push(r["SequenceNumber"].as_str().unwrap().to_string());
        }
    }
    // strait's own Kinesis client signs with these; the embedded upstream does not check.
    std::env::set_var("AWS_ACCESS_KEY_ID", "strait-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "strait-test-secret");
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let log = open_log(&up, dir.path());
        // Read to the shard's end: the first records leave the recent positions.
        let offsets = log.offsets("w", 0).await.unwrap();
        assert_eq!(offsets.high_watermark, RECORDS as i64);
        for n in [10usize, 4_000, RECORDS - 10] {
            let after = log
                .offset_after_checkpoint("w", 0, &seqs[n], 0)
                .await
                .unwrap();
            assert_eq!(after, Some(n as i64 + 1), "checkpoint at record {n}");
            let back = log.checkpoint_before("w", 0, n as i64 + 1).await.unwrap();
            assert_eq!(
                back,
                (seqs[n].clone(), 0),
                "offset {} back to a checkpoint",
                n + 1
            );
        }
        assert_eq!(
            log.offset_after_checkpoint("w", 0, "TRIM_HORIZON", 0)
                .await
                .unwrap(),
            Some(0)
        );
        assert_eq!(
            log.offset_after_checkpoint("w", 0, "LATEST", 0)
                .await
                .unwrap(),
            None
        );
        assert!(log
            .offset_after_checkpoint("w", 0, "not-a-checkpoint", 0)
            .await
            .is_err());
        assert_eq!(
            log.checkpoint_before("w", 0, 0).await.unwrap(),
            ("TRIM_HORIZON".to_string(), 0)
        );
    });
}

/// Index lines (base, count) in `dir`'s index files.
fn index_lines(dir: &std::path::Path) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "idx") {
                for line in std::fs::read_to_string(&p).unwrap().lines() {
                    let mut f = line.split(' ');
                    let base = f.next().unwrap().parse().unwrap();
                    let count = f.next().unwrap().parse().unwrap();
                    out.push((base, count));
                }
            }
        }
    }
    out.sort();
    out
}

/// A quiet shard's last records sit in the chunk still growing, which the index file did not
/// hold: after a restart they were read again and numbered the same, unless they had been
/// trimmed meanwhile (records older than the retention), and then the next records took their
/// offsets again. The growing chunk is now written at shutdown (and after ten quiet minutes),
/// so the next start numbers on after it whatever the shard still holds.
#[test]
fn the_growing_chunk_is_written_at_shutdown() {
    let up = Server::start();
    up.ok("CreateStream", json!({"StreamName": "q", "ShardCount": 1}));
    let put = |n: usize| {
        for i in 0..n {
            up.ok(
                "PutRecord",
                json!({"StreamName": "q", "PartitionKey": format!("k{i}"), "Data": "eA=="}),
            );
        }
    };
    std::env::set_var("AWS_ACCESS_KEY_ID", "strait-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "strait-test-secret");
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let open = || open_log(&up, dir.path());
    put(5);
    rt.block_on(async {
        let log = open();
        assert_eq!(log.offsets("q", 0).await.unwrap().high_watermark, 5);
        assert_eq!(
            index_lines(dir.path()),
            [],
            "a growing chunk is in the file"
        );
        log.flush("q", 0).await.unwrap();
        assert_eq!(index_lines(dir.path()), [(0, 5)]);
    });
    put(3);
    rt.block_on(async {
        let log = open();
        assert_eq!(log.offsets("q", 0).await.unwrap().high_watermark, 8);
        log.flush("q", 0).await.unwrap();
        assert_eq!(index_lines(dir.path()), [(0, 5), (5, 3)]);
        let read = log.read("q", 0, 5, 1 << 20).await.unwrap();
        let first = read.batches.first().expect("a batch from offset 5");
        assert_eq!(i64::from_be_bytes(first[..8].try_into().unwrap()), 5);
    });
}
