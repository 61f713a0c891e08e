//! A view of Kafka RecordBatch v2 headers: the unit of storage and transfer (DESIGN principle 2).
//! Owns the fixed header layout, CRC-32C checks and offset assignment. Record-level encoding
//! lives in `records.rs` (through the kafka-protocol crate).

use bytes::BytesMut;

/// Bytes before the records: base offset … record count.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` ends; `batchLength` counts everything after it.
pub const LOG_OVERHEAD: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Total bytes of the batch, including the 12-byte log overhead.
    pub total_len: usize,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: i32,
    pub attributes: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchHeader {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    /// Control batches (transaction markers) carry no user records.
    pub fn is_control(&self) -> bool {
        self.attributes & (1 << 5) != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & (1 << 4) != 0
    }
    /// Written by an idempotent (or transactional) producer, which numbers its records.
    pub fn has_producer(&self) -> bool {
        self.producer_id >= 0
    }
    /// The sequence number of the batch's last record.
    pub fn last_sequence(&self) -> i32 {
        last_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// The sequence of a batch's last record: sequences wrap from i32::MAX to 0, as Kafka's
/// `DefaultRecordBatch.incrementSequence`.
pub fn last_sequence(base: i32, last_offset_delta: i32) -> i32 {
    if base > i32::MAX - last_offset_delta {
        last_offset_delta - (i32::MAX - base) - 1
    } else {
        base + last_offset_delta
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared length: a torn write, or more to read.
    Incomplete,
    /// Not a magic-2 batch, or impossible lengths.
    Malformed(&'static str),
    CrcMismatch,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Parses the header at the start of `buf` without checking the CRC, as a producer must
/// have written it: one record per offset.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    parse(buf, false)
}

/// Parses the header of a batch read from a Kafka log, where compaction may have removed
/// records (a cleaned batch keeps its last offset delta, and may hold no record at all).
pub fn parse_stored_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    parse(buf, true)
}

fn parse(buf: &[u8], compacted: bool) -> Result<BatchHeader, BatchError> {
    if buf.len() < HEADER_LEN {
        return Err(BatchError::Incomplete);
    }
    let batch_len = be_i32(buf, 8);
    if batch_len < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(BatchError::Malformed("batch length below the header size"));
    }
    if buf[MAGIC_AT] != 2 {
        return Err(BatchError::Malformed("record batch magic is not 2"));
    }
    let header = BatchHeader {
        base_offset: be_i64(buf, 0),
        total_len: batch_len as usize + LOG_OVERHEAD,
        last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
        base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
        max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
        record_count: be_i32(buf, RECORD_COUNT_AT),
        attributes: i16::from_be_bytes([buf[ATTRIBUTES_AT], buf[ATTRIBUTES_AT + 1]]),
        producer_id: be_i64(buf, PRODUCER_ID_AT),
        producer_epoch: i16::from_be_bytes([buf[PRODUCER_EPOCH_AT], buf[PRODUCER_EPOCH_AT + 1]]),
        base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
    };
    if header.last_offset_delta < 0 || header.record_count < 0 {
        return Err(BatchError::Malformed(
            "negative record count or offset delta",
        ));
    }
    // Producers write offset deltas 0..n-1; a count that disagrees (or one too large for the
    // bytes of an uncompressed batch) would make decoders reserve for records that are not
    // there.
    let full = header.last_offset_delta as i64 + 1;
    if (header.record_count as i64 != full && !compacted) || header.record_count as i64 > full {
        return Err(BatchError::Malformed(
            "record count disagrees with the last offset delta",
        ));
    }
    const MIN_RECORD_BYTES: usize = 7;
    let uncompressed = header.attributes & 0x7 == 0;
    let room = header.total_len.saturating_sub(HEADER_LEN) / MIN_RECORD_BYTES;
    if uncompressed && header.record_count as usize > room {
        return Err(BatchError::Malformed(
            "more records than an uncompressed batch can hold",
        ));
    }
    Ok(header)
}

/// Parses and CRC-checks one whole batch at the start of `buf`.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_header(buf)?;
    if buf.len() < header.total_len {
        return Err(BatchError::Incomplete);
    }
    let stored = u32::from_be_bytes(buf[CRC_AT..CRC_AT + 4].try_into().unwrap());
    if crc32c::crc32c(&buf[ATTRIBUTES_AT..header.total_len]) != stored {
        return Err(BatchError::CrcMismatch);
    }
    Ok(header)
}

/// Sets the partition leader epoch (outside the CRC, like the base offset). strait reports
/// leader epoch −1 in Metadata, so stored batches carry −1 too.
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets the base offset. It lies outside the CRC, as Kafka's offset assignment relies on.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Stamps an idempotent producer's identity on a whole batch and recomputes its CRC.
pub fn set_producer(buf: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    buf[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
    buf[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&epoch.to_be_bytes());
    buf[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
    reseal(buf);
}

/// Recomputes the CRC of a whole batch whose covered bytes (attributes onwards) changed.
pub fn reseal(buf: &mut [u8]) {
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A batch whose header is parsed (and whose length fits the buffer) but whose CRC is not yet
/// checked: the Kafka front end splits a Produce's records into these, and the core checks
/// the CRC once it knows the partition takes writes, as Kafka answers an unknown partition
/// before a corrupt batch.
#[derive(Debug, Clone)]
pub struct ParsedBatch {
    bytes: BytesMut,
    header: BatchHeader,
}

impl ParsedBatch {
    /// The first batch of `buf` (a Produce's records may hold several), copied out.
    pub fn split_first(buf: &[u8]) -> Result<ParsedBatch, BatchError> {
        let header = parse_header(buf)?;
        if buf.len() < header.total_len {
            return Err(BatchError::Incomplete);
        }
        Ok(ParsedBatch {
            bytes: BytesMut::from(&buf[..header.total_len]),
            header,
        })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Checks the CRC: the one check of a produced batch's bytes.
    pub fn check(self) -> Result<CheckedBatch, BatchError> {
        let stored = u32::from_be_bytes(self.bytes[CRC_AT..CRC_AT + 4].try_into().unwrap());
        if crc32c::crc32c(&self.bytes[ATTRIBUTES_AT..]) != stored {
            return Err(BatchError::CrcMismatch);
        }
        Ok(CheckedBatch {
            bytes: self.bytes,
            header: self.header,
        })
    }
}

/// A whole RecordBatch v2 whose header is parsed and whose CRC holds: checked once where it
/// entered strait (`ParsedBatch::check`, `check`), or built by strait's encoder, which
/// computed the CRC. Storage takes only these, so no layer checks a batch a second time.
#[derive(Debug, Clone)]
pub struct CheckedBatch {
    bytes: BytesMut,
    header: BatchHeader,
}

impl CheckedBatch {
    /// Checks a buffer holding exactly one batch.
    pub fn check(bytes: BytesMut) -> Result<CheckedBatch, BatchError> {
        let header = check_batch(&bytes)?;
        if header.total_len != bytes.len() {
            return Err(BatchError::Malformed(
                "trailing bytes after the record batch",
            ));
        }
        Ok(CheckedBatch { bytes, header })
    }

    /// A batch the kafka-protocol encoder has just written for strait (`records::encode_batch`,
    /// the Kafka backend's metadata records): the encoder computed the CRC, so it is not
    /// checked again. Never for bytes that came from outside.
    pub fn encoded(bytes: BytesMut) -> CheckedBatch {
        let header = parse_header(&bytes).expect("the encoder writes a valid header");
        CheckedBatch { bytes, header }
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Assigns the base offset (outside the CRC) and the leader epoch strait reports (−1).
    pub fn place_at(&mut self, base_offset: i64) {
        set_base_offset(&mut self.bytes, base_offset);
        set_partition_leader_epoch(&mut self.bytes, -1);
        self.header.base_offset = base_offset;
    }

    /// Makes the batch CreateTime with the max timestamp its records hold, as Kafka rewrites a
    /// produced batch for a CreateTime topic, and recomputes the CRC, which covers both.
    pub fn set_create_time(&mut self, max_timestamp: i64) {
        let attributes = self.header.attributes & !(1 << 3);
        self.bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        self.bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
        reseal(&mut self.bytes);
        self.header.attributes = attributes;
        self.header.max_timestamp = max_timestamp;
    }

    /// The codec bits of the attributes: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.header.attributes & 0x7
    }

    pub fn into_bytes(self) -> BytesMut {
        self.bytes
    }

    pub fn freeze(self) -> bytes::Bytes {
        self.bytes.freeze()
    }
}

impl std::ops::Deref for CheckedBatch {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Two records at timestamps 1000 and 1005, as Kafka's own encoder writes them.
    fn sample() -> Vec<u8> {
        let record = |i: i64, ts: i64| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: ts,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Default::default(),
            delete_horizon: false,
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &[record(0, 1000), record(1, 1005)], &options)
            .unwrap();
        buf.to_vec()
    }

    #[test]
    fn header_fields() {
        let b = sample();
        let h = check_batch(&b).unwrap();
        assert_eq!(h.total_len, b.len());
        assert_eq!(
            (h.base_offset, h.last_offset_delta, h.record_count),
            (0, 1, 2)
        );
        assert_eq!((h.base_timestamp, h.max_timestamp), (1000, 1005));
    }

    #[test]
    fn compacted_batches_parse_only_as_stored() {
        let mut b = sample();
        // A cleaned batch: the last offset delta stays, the records went.
        b[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&0i32.to_be_bytes());
        assert!(parse_header(&b).is_err());
        let h = parse_stored_header(&b).unwrap();
        assert_eq!(
            h.next_offset(),
            h.base_offset + h.last_offset_delta as i64 + 1
        );
        b[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&1000i32.to_be_bytes());
        assert!(parse_stored_header(&b).is_err());
    }

    #[test]
    fn producer_stamp_keeps_the_batch_valid() {
        let mut b = sample();
        set_producer(&mut b, 4242, 3, 17);
        let h = check_batch(&b).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (4242, 3, 17)
        );
    }

    #[test]
    fn last_sequence_wraps_like_kafka() {
        assert_eq!(last_sequence(10, 4), 14);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn base_offset_is_outside_the_crc() {
        let mut b = sample();
        set_base_offset(&mut b, 77);
        assert_eq!(check_batch(&b).unwrap().last_offset(), 78);
    }

    #[test]
    fn corruption_and_truncation_are_detected() {
        let mut b = sample();
        let n = b.len();
        assert_eq!(check_batch(&b[..n - 1]), Err(BatchError::Incomplete));
        assert_eq!(check_batch(&b[..10]), Err(BatchError::Incomplete));
        b[n - 1] ^= 0xff;
        assert_eq!(check_batch(&b), Err(BatchError::CrcMismatch));
        b[MAGIC_AT] = 1;
        assert!(matches!(check_batch(&b), Err(BatchError::Malformed(_))));
    }
}
