//! Kafka records in and out of RecordBatch v2 (through the kafka-protocol crate): what a
//! record is to strait (key, value, timestamp, and the `kinesis.ehk` header that carries a
//! Kinesis ExplicitHashKey, reference §4h). Does not know streams or shards; the core maps
//! partition key ⇄ key, Data ⇄ value and arrival time ⇄ timestamp.

use bytes::{Bytes, BytesMut};

use super::record_batch::CheckedBatch;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// The header that carries a Kinesis ExplicitHashKey through Kafka.
pub const EHK_HEADER: &str = "kinesis.ehk";
/// A record mirrored from a Kinesis source (`migrate/`): its sequence number there.
pub const ORIGIN_SEQ_HEADER: &str = "kinesis.seq";
/// A user record a mirrored KPL aggregate held: its sub-sequence number there.
pub const ORIGIN_SUBSEQ_HEADER: &str = "kinesis.subseq";
/// A record mirrored from a Kinesis source: its arrival time there (ms, decimal), which a
/// topic stamped with the broker's LogAppendTime does not keep as the record's timestamp.
pub const ORIGIN_ARRIVAL_HEADER: &str = "kinesis.arrival";

/// A record to append.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub timestamp_ms: i64,
    pub explicit_hash_key: Option<String>,
}

/// A record read back from the log.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// The `kinesis.seq` header, when the record has one.
    pub origin_sequence: Option<Bytes>,
    /// The `kinesis.subseq` header, when the record has one that reads as a number.
    pub origin_subsequence: Option<u64>,
    /// The `kinesis.ehk` header (a decimal ExplicitHashKey), when the record has one.
    pub explicit_hash_key: Option<Bytes>,
    /// The `kinesis.arrival` header, when the record has one that reads as a number.
    pub origin_arrival_ms: Option<i64>,
}

/// Encodes records as one uncompressed RecordBatch v2 with base offset 0; the log assigns
/// the real base offset.
pub fn encode_batch(records: &[NewRecord]) -> CheckedBatch {
    encode_batch_with_headers(records, &[])
}

/// `encode_batch`, record `i` also carrying the headers `extra[i]` (where there is one).
pub fn encode_batch_with_headers(
    records: &[NewRecord],
    extra: &[Vec<(&'static str, Bytes)>],
) -> CheckedBatch {
    let kafka: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut headers = IndexMap::new();
            for (name, value) in extra.get(i).into_iter().flatten() {
                headers.insert(StrBytes::from_static_str(name), Some(value.clone()));
            }
            if let Some(ehk) = &r.explicit_hash_key {
                headers.insert(
                    StrBytes::from_static_str(EHK_HEADER),
                    Some(Bytes::copy_from_slice(ehk.as_bytes())),
                );
            }
            Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::LogAppend,
                offset: i as i64,
                // Equal offset and sequence keep every record in one batch (tooling.md).
                sequence: i as i32,
                timestamp: r.timestamp_ms,
                key: r.key.clone(),
                value: Some(r.value.clone()),
                headers,
                delete_horizon: false,
            }
        })
        .collect();
    let size: usize = records
        .iter()
        .map(|r| r.value.len() + r.key.as_ref().map_or(0, |k| k.len()) + 32)
        .sum();
    let mut buf = BytesMut::with_capacity(size + 64);
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &kafka, &options)
        .expect("encoding uncompressed records into memory cannot fail");
    CheckedBatch::encoded(buf)
}

/// Decodes one stored batch (already CRC-checked by the log) into records.
pub fn decode_batch(batch: Bytes) -> Result<Vec<StoredRecord>, String> {
    // With `LogAppendTime` the broker stamps only the header's max timestamp; that is
    // every record's arrival time.
    let append_time = crate::protocol::kafka::record_batch::parse_stored_header(&batch)
        .ok()
        .filter(|h| h.attributes & (1 << 3) != 0)
        .map(|h| h.max_timestamp);
    let mut buf = batch;
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| format!("{e:#}"))?;
    Ok(set
        .records
        .into_iter()
        .filter(|r| !r.control)
        .map(|r| {
            let header = |name: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| k.as_str() == name)
                    .and_then(|(_, v)| v.clone())
            };
            StoredRecord {
                offset: r.offset,
                timestamp_ms: append_time.unwrap_or(r.timestamp),
                origin_sequence: header(ORIGIN_SEQ_HEADER),
                origin_subsequence: header(ORIGIN_SUBSEQ_HEADER)
                    .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()),
                explicit_hash_key: header(EHK_HEADER),
                origin_arrival_ms: header(ORIGIN_ARRIVAL_HEADER)
                    .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()),
                key: r.key,
                value: r.value,
            }
        })
        .collect())
}

/// A record's headers, a header without a value read as empty.
pub type Headers = Vec<(String, Bytes)>;

/// The last record of stored batches (in offset order): its offset and headers. `None`
/// when they hold no record.
pub fn last_record_headers(batches: &[Bytes]) -> Result<Option<(i64, Headers)>, String> {
    for batch in batches.iter().rev() {
        let mut buf = batch.clone();
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| format!("{e:#}"))?;
        if let Some(r) = set.records.into_iter().rev().find(|r| !r.control) {
            let headers = r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.unwrap_or_default()))
                .collect();
            return Ok(Some((r.offset, headers)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kafka::record_batch;

    /// An uncompressed batch of one record (no key, value "v"), as bytes to tamper with.
    fn one_record_batch() -> Vec<u8> {
        encode_batch(&[NewRecord {
            key: None,
            value: Bytes::from_static(b"v"),
            timestamp_ms: 1_700_000_000_000,
            explicit_hash_key: None,
        }])
        .into_bytes()
        .to_vec()
    }

    /// Found by the fuzz target `segment_recovery`: a stored record declaring 2^30 headers
    /// made the decoder reserve gigabytes before reading one (the vendored kafka-protocol now
    /// caps the map at the bytes present). A reader gets an error instead of an abort.
    #[test]
    fn a_record_declaring_more_headers_than_bytes_is_an_error_not_an_allocation() {
        let mut buf = one_record_batch();
        // The record ends with its header count (zigzag varint 0); claim 2^30 instead, keeping
        // the record's length, then fix the CRC.
        assert_eq!(buf.pop(), Some(0), "no headers");
        buf.extend([0x80, 0x80, 0x80, 0x80, 0x08]);
        buf[record_batch::HEADER_LEN] += 8; // the record grew by 4 bytes; zigzag doubles
        let batch_len = (buf.len() - 12) as i32;
        buf[8..12].copy_from_slice(&batch_len.to_be_bytes());
        record_batch::reseal(&mut buf);
        assert!(decode_batch(Bytes::from(buf)).is_err());
    }

    /// Found by the fuzz target `segment_recovery`: a stored snappy batch whose raw snappy
    /// header declares 3 GB made the decoder allocate it before decompressing (the vendored
    /// kafka-protocol now refuses a length beyond what the block can hold).
    #[test]
    fn a_snappy_block_declaring_gigabytes_is_an_error_not_an_allocation() {
        let mut b = one_record_batch();
        b.truncate(record_batch::HEADER_LEN);
        b[21..23].copy_from_slice(&2i16.to_be_bytes()); // attributes: snappy
        b.extend([0x80, 0x80, 0x80, 0x80, 0x0b, 0x00, 0x01, 0x02]); // 3 GB, then junk
        let batch_len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&batch_len.to_be_bytes());
        record_batch::reseal(&mut b);
        // Refused by the length check, before any buffer: a lazily mapped 3 GB buffer would
        // not fail here, but does under a strict overcommit policy or a sanitizer's limit.
        let err = decode_batch(Bytes::from(b)).unwrap_err();
        assert!(err.contains("declares 2952790016"), "{err}");
    }

    /// A stored zstd batch of 2.6 KB that inflates to 150 MiB (RLE blocks of 128 KiB, four
    /// bytes each), as a producer writing straight to the Kafka backend's cluster could store.
    /// Readers decode a batch whole, so the vendored decoders stop at `MAX_INFLATED_BATCH`
    /// instead of holding what the batch claims.
    #[test]
    fn a_batch_inflating_past_the_limit_is_an_error_not_an_allocation() {
        let mut b = one_record_batch();
        b.truncate(record_batch::HEADER_LEN);
        // Attributes: zstd. Then a frame: magic, descriptor (no content size), window 128 KiB,
        // and RLE blocks.
        b[21..23].copy_from_slice(&4i16.to_be_bytes());
        b.extend([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]);
        let blocks = 1200;
        for i in 0..blocks {
            let last = u32::from(i == blocks - 1);
            let header = (131_072u32 << 3) | (1 << 1) | last;
            b.extend(&header.to_le_bytes()[..3]);
            b.push(0);
        }
        let batch_len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&batch_len.to_be_bytes());
        record_batch::reseal(&mut b);
        assert!(b.len() < 5_000);
        let err = decode_batch(Bytes::from(b)).unwrap_err();
        assert!(err.contains("inflates past"), "{err}");
    }

    /// Found by the fuzz target `segment_recovery`: a stored batch whose base timestamp plus a
    /// record's delta overflows i64 panicked the decoder in builds with overflow checks (the
    /// tests' debug build); release builds wrapped. Both now wrap, as Kafka's Java does.
    #[test]
    fn a_stored_timestamp_that_overflows_wraps_instead_of_panicking() {
        let recs: Vec<NewRecord> = (0..2)
            .map(|i| NewRecord {
                key: None,
                value: Bytes::from_static(b"v"),
                timestamp_ms: 1_700_000_000_000 + 5 * i,
                explicit_hash_key: None,
            })
            .collect();
        let mut b = encode_batch(&recs).into_bytes().to_vec();
        b[27..35].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
        record_batch::reseal(&mut b);
        let out = decode_batch(Bytes::from(b)).unwrap();
        assert_eq!(out[1].timestamp_ms, (i64::MAX - 1).wrapping_add(5));
    }

    #[test]
    fn the_last_record_carries_its_extra_headers() {
        let recs: Vec<NewRecord> = (0..3)
            .map(|i| NewRecord {
                key: None,
                value: Bytes::from(vec![i as u8]),
                timestamp_ms: 1,
                explicit_hash_key: (i == 2).then(|| "7".to_string()),
            })
            .collect();
        let extra: Vec<Vec<(&'static str, Bytes)>> = (0..3)
            .map(|i| vec![("origin", Bytes::from(format!("o{i}")))])
            .collect();
        let mut b = encode_batch_with_headers(&recs, &extra).into_bytes();
        record_batch::set_base_offset(&mut b, 10);
        let (offset, headers) = last_record_headers(&[b.freeze()]).unwrap().unwrap();
        assert_eq!(offset, 12);
        assert_eq!(
            headers,
            vec![
                ("origin".to_string(), Bytes::from_static(b"o2")),
                (EHK_HEADER.to_string(), Bytes::from_static(b"7")),
            ]
        );
        assert_eq!(last_record_headers(&[]).unwrap(), None);
    }

    #[test]
    fn round_trip_keeps_fields_and_offsets() {
        let recs: Vec<NewRecord> = (0..3)
            .map(|i| NewRecord {
                key: Some(Bytes::from(format!("pk{i}"))),
                value: Bytes::from(vec![i as u8; 100]),
                timestamp_ms: 1_700_000_000_000 + i,
                explicit_hash_key: (i == 1).then(|| "42".to_string()),
            })
            .collect();
        let mut b = encode_batch(&recs).into_bytes();
        record_batch::set_base_offset(&mut b, 500);
        let out = decode_batch(b.freeze()).unwrap();
        assert_eq!(out.len(), 3);
        for (i, r) in out.iter().enumerate() {
            assert_eq!(r.offset, 500 + i as i64);
            assert_eq!(r.key.as_deref(), Some(format!("pk{i}").as_bytes()));
            assert_eq!(r.value.as_deref(), Some(&vec![i as u8; 100][..]));
            assert_eq!(r.timestamp_ms, 1_700_000_000_000 + i as i64);
        }
    }
}
