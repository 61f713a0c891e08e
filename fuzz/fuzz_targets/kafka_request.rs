//! A Kafka request frame (without its length prefix) through the server's decoder, then the
//! parts strait decodes further: each produced batch through the validator, and the consumer
//! protocol inside JoinGroup and SyncGroup.
#![no_main]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, RequestKind,
};
use libfuzzer_sys::fuzz_target;
use strait::protocol::kafka::frame::decode_request;
use strait::protocol::kafka::record_batch::CheckedBatch;
use strait::protocol::kafka::{consumer_protocol, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = decode_request(Bytes::copy_from_slice(data)) else {
        return;
    };
    match decoded.request {
        RequestKind::Produce(p) => {
            for topic in p.topic_data {
                for partition in topic.partition_data {
                    let Some(records) = partition.records else {
                        continue;
                    };
                    if let Ok(batch) = CheckedBatch::check(BytesMut::from(&records[..])) {
                        let _ = validate::validate::<()>(&batch, &LIMITS, |_| Ok(()));
                    }
                }
            }
        }
        RequestKind::JoinGroup(j) => {
            for p in j.protocols {
                let _ = consumer_protocol::decode::<ConsumerProtocolSubscription>(&p.metadata);
            }
        }
        RequestKind::SyncGroup(s) => {
            for a in s.assignments {
                let _ = consumer_protocol::decode::<ConsumerProtocolAssignment>(&a.assignment);
            }
        }
        _ => {}
    }
});

const LIMITS: validate::Limits = validate::Limits {
    max_record_bytes: 1 << 20,
    max_decompressed_bytes: 64 << 20,
    now_ms: 1_800_000_000_000,
    max_future_ms: 3_600_000,
};
