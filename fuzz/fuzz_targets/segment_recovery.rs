//! The embedded log's start-up recovery over arbitrary segment bytes (a torn write, a disk
//! that returned garbage), then a read of everything recovered and the decode readers apply.
//! Recovery must cut a bad tail and never fail or panic; what it keeps must be readable. The
//! harness writes the CRC-32C each batch declares it needs, half the time, so the fuzzer gets
//! past the checksum into batch headers and records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strait::backend::embedded::recover_partition;
use strait::protocol::kafka::records;

mod fixups;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if choice & 1 == 1 {
        fixups::batch_crcs(&mut bytes);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(format!("{:020}.log", 0)), &bytes).expect("write segment");
    let batches = recover_partition(dir.path()).expect("recovery cuts a bad tail; it never fails");
    let mut kept = 0usize;
    for batch in batches {
        kept += batch.len();
        // The log checked each batch's CRC; the records inside may still be undecodable,
        // and a reader must get an error, not a panic.
        let _ = records::decode_batch(batch);
    }
    assert!(
        kept <= bytes.len(),
        "recovery keeps no more than was on disk"
    );
});
