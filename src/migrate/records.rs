//! How source records become mirrored records: key = partition key, value = data,
//! timestamp = the source's arrival time, and headers naming the origin (sequence number,
//! and for a KPL user record its index in the aggregate). A KPL aggregate is split as at
//! ingress (DESIGN): one mirrored record per user record, all in one batch, so a batch
//! always ends on a whole source record and the newest mirrored record says where to resume.

use bytes::Bytes;

use crate::protocol::kafka::record_batch::CheckedBatch;
use crate::protocol::kafka::records::{encode_batch_with_headers, NewRecord};
use crate::protocol::kinesis::aggregation;
use crate::protocol::kinesis::shapes::Record;

pub use crate::protocol::kafka::records::ORIGIN_ARRIVAL_HEADER;
pub use crate::protocol::kafka::records::ORIGIN_SEQ_HEADER;
pub use crate::protocol::kafka::records::ORIGIN_SUBSEQ_HEADER;

/// Batches are cut at about this size, under Kafka's default `max.message.bytes` (1 MiB)
/// for the records of several source records; one larger source record is a batch alone.
pub const BATCH_BYTES: usize = 900 * 1024;

/// Source records encoded for one append.
pub struct MirrorBatch {
    pub batch: CheckedBatch,
    /// Source records in it (an aggregate counts once).
    pub source_records: usize,
    /// The sequence number of its last source record.
    pub last_sequence_number: String,
}

/// One page of source records as batches, in order.
pub fn batches(records: &[Record]) -> Vec<MirrorBatch> {
    let mut out = Vec::new();
    let mut pending: Vec<NewRecord> = Vec::new();
    let mut headers: Vec<Vec<(&'static str, Bytes)>> = Vec::new();
    let (mut bytes, mut sources) = (0usize, 0usize);
    let mut flush = |pending: &mut Vec<NewRecord>,
                     headers: &mut Vec<Vec<(&'static str, Bytes)>>,
                     sources: &mut usize,
                     bytes: &mut usize,
                     last: &str| {
        if pending.is_empty() {
            return;
        }
        out.push(MirrorBatch {
            batch: encode_batch_with_headers(pending, headers),
            source_records: *sources,
            last_sequence_number: last.to_string(),
        });
        pending.clear();
        headers.clear();
        (*sources, *bytes) = (0, 0);
    };
    let mut last = "";
    for r in records {
        let size = r.data.0.len() + r.partition_key.len();
        if bytes > 0 && bytes + size > BATCH_BYTES {
            flush(&mut pending, &mut headers, &mut sources, &mut bytes, last);
        }
        let seq = Bytes::from(r.sequence_number.clone());
        let arrival = Bytes::from(r.approximate_arrival_timestamp.0.to_string());
        let origin = |sub: Option<usize>| {
            let mut h = vec![(ORIGIN_SEQ_HEADER, seq.clone())];
            if let Some(i) = sub {
                h.push((ORIGIN_SUBSEQ_HEADER, Bytes::from(i.to_string())));
            }
            h.push((ORIGIN_ARRIVAL_HEADER, arrival.clone()));
            h
        };
        match aggregation::split(&r.data.0) {
            Some(users) => {
                for (i, u) in users.into_iter().enumerate() {
                    pending.push(NewRecord {
                        key: Some(Bytes::from(u.partition_key.into_bytes())),
                        value: u.data,
                        timestamp_ms: r.approximate_arrival_timestamp.0,
                        explicit_hash_key: u.explicit_hash_key.map(|h| h.to_string()),
                    });
                    headers.push(origin(Some(i)));
                }
            }
            None => {
                pending.push(NewRecord {
                    key: Some(Bytes::from(r.partition_key.clone().into_bytes())),
                    value: r.data.0.clone(),
                    timestamp_ms: r.approximate_arrival_timestamp.0,
                    explicit_hash_key: None,
                });
                headers.push(origin(None));
            }
        }
        bytes += size;
        sources += 1;
        last = &r.sequence_number;
    }
    flush(&mut pending, &mut headers, &mut sources, &mut bytes, last);
    out
}

/// Where the mirror of a partition resumes: the origin sequence number its newest record
/// carries. An error when that record did not come from the mirror.
pub fn resume_after(headers: &[(String, Bytes)]) -> Result<String, String> {
    let seq = headers
        .iter()
        .find(|(k, _)| k == ORIGIN_SEQ_HEADER)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("its newest record has no {ORIGIN_SEQ_HEADER} header: something other than the mirror wrote to it"))?;
    let seq = std::str::from_utf8(seq)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!("its newest record's {ORIGIN_SEQ_HEADER} header is not a sequence number")
        })?;
    Ok(seq.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kafka::record_batch::set_base_offset;
    use crate::protocol::kafka::records::{decode_batch, last_record_headers};
    use crate::protocol::kinesis::codec::{Blob, Timestamp};

    fn record(seq: &str, key: &str, data: &[u8]) -> Record {
        Record {
            sequence_number: seq.into(),
            approximate_arrival_timestamp: Timestamp(1_700_000_000_123),
            data: Blob(Bytes::copy_from_slice(data)),
            partition_key: key.into(),
            encryption_type: None,
        }
    }

    #[test]
    fn plain_records_keep_key_data_arrival_and_origin() {
        let page = [record("11", "a", b"x"), record("12", "b", b"")];
        let out = batches(&page);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source_records, 2);
        assert_eq!(out[0].last_sequence_number, "12");
        let mut b = out[0].batch.clone().into_bytes();
        set_base_offset(&mut b, 0);
        let b = b.freeze();
        let stored = decode_batch(b.clone()).unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].key.as_deref(), Some(&b"a"[..]));
        assert_eq!(stored[0].value.as_deref(), Some(&b"x"[..]));
        assert_eq!(stored[1].value.as_deref(), Some(&b""[..]));
        assert_eq!(stored[0].timestamp_ms, 1_700_000_000_123);
        let (_, h) = last_record_headers(&[b]).unwrap().unwrap();
        assert_eq!(resume_after(&h).unwrap(), "12");
        assert!(h
            .iter()
            .any(|(k, v)| k == ORIGIN_ARRIVAL_HEADER && v == "1700000000123"));
    }

    #[test]
    fn a_kpl_aggregate_becomes_its_user_records_in_one_batch() {
        let agg = aggregation::tests::aggregate_by_hand(
            &["k1", "k2"],
            &["99"],
            &[(0, None, b"u0"), (1, Some(0), b"u1"), (0, None, b"u2")],
        );
        let page = [record("5", "outer", &agg)];
        let out = batches(&page);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source_records, 1);
        let mut b = out[0].batch.clone().into_bytes();
        set_base_offset(&mut b, 0);
        let b = b.freeze();
        let stored = decode_batch(b.clone()).unwrap();
        let values: Vec<_> = stored.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(values, ["u0", "u1", "u2"]);
        assert_eq!(stored[1].key.as_deref(), Some(&b"k2"[..]));
        let (_, h) = last_record_headers(&[b]).unwrap().unwrap();
        assert!(h.iter().any(|(k, v)| k == ORIGIN_SUBSEQ_HEADER && v == "2"));
        assert_eq!(resume_after(&h).unwrap(), "5");
    }

    #[test]
    fn large_pages_are_cut_between_source_records() {
        let data = vec![7u8; 290 * 1024];
        let page: Vec<Record> = (0..7)
            .map(|i| record(&format!("{}", 100 + i), "k", &data))
            .collect();
        let out = batches(&page);
        assert_eq!(out.iter().map(|b| b.source_records).sum::<usize>(), 7);
        assert!(out.len() >= 3, "{} batches", out.len());
        assert_eq!(out.last().unwrap().last_sequence_number, "106");
        assert_eq!(out[0].last_sequence_number, "102");
    }

    #[test]
    fn a_record_the_mirror_did_not_write_stops_the_resume() {
        assert!(resume_after(&[]).unwrap_err().contains("no kinesis.seq"));
        let bad = vec![(ORIGIN_SEQ_HEADER.to_string(), Bytes::from_static(b"12x"))];
        assert!(resume_after(&bad).is_err());
    }
}
