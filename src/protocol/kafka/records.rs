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
}

/// Encodes records as one uncompressed RecordBatch v2 with base offset 0; the log assigns
/// the real base offset.
pub fn encode_batch(records: &[NewRecord]) -> CheckedBatch {
    let kafka: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut headers = IndexMap::new();
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
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| e.to_string())?;
    Ok(set
        .records
        .into_iter()
        .filter(|r| !r.control)
        .map(|r| StoredRecord {
            offset: r.offset,
            timestamp_ms: append_time.unwrap_or(r.timestamp),
            key: r.key,
            value: r.value,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kafka::record_batch;

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
