//! One produced RecordBatch through the checks a Produce runs (header, CRC-32C, every record
//! through its codec) and, when accepted, through the decoder readers use on stored batches.
//! The harness writes the CRC the bytes need, so the fuzzer explores the records behind it
//! rather than stopping at a checksum it cannot guess.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strait::protocol::kafka::record_batch::CheckedBatch;
use strait::protocol::kafka::{records, validate};

mod fixups;

fuzz_target!(|data: &[u8]| {
    let mut bytes = BytesMut::from(data);
    fixups::batch_crcs(&mut bytes);
    let Ok(mut batch) = CheckedBatch::check(bytes) else {
        return;
    };
    let mut seen = 0usize;
    let accepted = validate::validate::<()>(&batch, &LIMITS, |r| {
        assert_eq!(r.index, seen, "records are shown in order, once each");
        seen += 1;
        Ok(())
    });
    if accepted.is_ok() {
        let count = batch.header().record_count as usize;
        assert_eq!(
            seen, count,
            "an accepted batch has the records its header counts"
        );
        // Stored as the log stores it: at an offset strait assigns, not the client's.
        batch.place_at(0);
        let stored = records::decode_batch(batch.freeze());
        assert!(
            stored.is_ok(),
            "a batch the validator accepted must be readable: {stored:?}"
        );
        assert_eq!(stored.unwrap().len(), count);
    }
});

const LIMITS: validate::Limits = validate::Limits {
    max_record_bytes: 1 << 20,
    max_decompressed_bytes: 64 << 20,
    now_ms: 1_800_000_000_000,
    max_future_ms: 3_600_000,
};
