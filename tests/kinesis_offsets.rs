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
        let cfg = KinesisBackendConfig {
            endpoint: Some(format!("http://127.0.0.1:{}", up.port)),
            ..Default::default()
        };
        let upstream = Arc::new(Upstream::new(&cfg).unwrap());
        let log = KinesisLog::new(
            Arc::new(KinesisClient::new(upstream)),
            KinesisLogSettings {
                dir: dir.path().to_path_buf(),
                poll: Duration::from_millis(200),
                max_reads_per_sec: 5,
                cache_bytes: 1 << 20,
                fan_out_consumer: None,
                fan_out_sweep: None,
                streams: StreamFilter::new(&[]),
                state: None,
            },
        );
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
