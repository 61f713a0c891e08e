//! The embedded log's start-up recovery over arbitrary segment bytes (a torn write, a disk
//! that returned garbage), then a read of everything recovered and the decode readers apply.
//! Recovery must cut a bad tail and never fail or panic; what it keeps must be readable. The
//! harness writes the CRC-32C each batch declares it needs, half the time, so the fuzzer gets
//! past the checksum into batch headers and records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strait::backend::embedded::recover_partition;
use strait::protocol::kafka::records;

const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
const LENGTH_AT: usize = 8;
const LOG_OVERHEAD: usize = 12;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if choice & 1 == 1 {
        with_crcs(&mut bytes);
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

/// Writes the CRC-32C of each batch whose declared length fits.
fn with_crcs(data: &mut [u8]) {
    let mut at = 0;
    while data.len() - at > CRC_FROM {
        let declared =
            i32::from_be_bytes(data[at + LENGTH_AT..at + LENGTH_AT + 4].try_into().unwrap());
        let Ok(declared) = usize::try_from(declared) else {
            return;
        };
        let total = LOG_OVERHEAD + declared;
        if total <= CRC_FROM || total > data.len() - at {
            return;
        }
        let batch = &mut data[at..at + total];
        let crc = crc32c(&batch[CRC_FROM..]);
        batch[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        at += total;
    }
}

fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
