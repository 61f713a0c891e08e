//! KPL aggregated records (magic, protobuf, MD5 trailer), as PutRecord(s) data that strait
//! splits into user records for Kafka readers. The harness appends the MD5 the bytes need
//! half the time, so the protobuf behind it is reached.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strait::protocol::kinesis::aggregation;

use aggregation::MAGIC;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = Vec::with_capacity(rest.len() + 20);
    if choice & 1 == 1 {
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(rest);
        let digest = md5(rest);
        bytes.extend_from_slice(&digest);
    } else {
        bytes.extend_from_slice(rest);
    }
    let data = Bytes::from(bytes);
    if let Some(records) = aggregation::split(&data) {
        for r in &records {
            assert!(
                r.data.len() <= data.len(),
                "a user record is inside its aggregate"
            );
        }
    }
});

fn md5(bytes: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(bytes).into()
}
