//! What the harnesses write into fuzzed bytes so the fuzzer gets past checksums it cannot
//! guess: the CRC-32C of each RecordBatch v2 (bytes 17..21, over 21 to the batch's end).
//! The CRC comes from the crc32c crate, not from strait, whose checks are what is fuzzed.

const LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
/// Base offset and length: the bytes a batch's declared length does not count.
const LOG_OVERHEAD: usize = 12;

/// Writes the CRC of each batch, one after another, while a batch's declared length fits.
pub fn batch_crcs(data: &mut [u8]) {
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
        let crc = crc32c::crc32c(&batch[CRC_FROM..]);
        batch[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        at += total;
    }
}
