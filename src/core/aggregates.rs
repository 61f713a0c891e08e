//! KPL aggregates on a stream mirrored from a Kinesis source (`migrate/`). The mirror stores
//! each user record of an aggregate as a record of its own, as strait splits aggregates at
//! ingress, every one carrying the aggregate's sequence number and its index in it
//! (`kinesis.subseq`). Kinesis readers get them back as the aggregate: KCL numbers the user
//! records of an aggregate by their index and, resuming at a checkpoint (sequence number,
//! sub-sequence number), skips those at or below it. Served one by one under one sequence
//! number, every user record would look like the aggregate's first, and a checkpoint inside
//! an aggregate would skip the rest of it.

use crate::protocol::kafka::records::StoredRecord;
use crate::protocol::kinesis::aggregation::{aggregate, UserRecord};

/// Collapses each whole run of one aggregate's user records (from its sub-sequence number 0,
/// at or after `from`, below `mirrored_below`) into one record: the aggregate, at the offset
/// of its last user record, so a reader moves past all of them at once. Anything else is
/// left as it is.
pub(super) fn regroup(
    records: Vec<StoredRecord>,
    from: i64,
    mirrored_below: i64,
) -> Vec<StoredRecord> {
    if !records.iter().any(|r| r.origin_subsequence.is_some()) {
        return records;
    }
    let mut out = Vec::with_capacity(records.len());
    let mut run: Vec<StoredRecord> = Vec::new();
    for r in records {
        let continues = run.last().is_some_and(|last| {
            r.offset == last.offset + 1
                && r.offset < mirrored_below
                && r.origin_sequence == last.origin_sequence
                && r.origin_subsequence == last.origin_subsequence.map(|s| s + 1)
        });
        if continues {
            run.push(r);
            continue;
        }
        flush(&mut run, &mut out);
        let starts = r.origin_subsequence == Some(0)
            && r.origin_sequence.is_some()
            && r.offset >= from
            && r.offset < mirrored_below;
        if starts {
            run.push(r);
        } else {
            out.push(r);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn flush(run: &mut Vec<StoredRecord>, out: &mut Vec<StoredRecord>) {
    let Some(first) = run.first() else {
        return;
    };
    let users: Vec<UserRecord> = run
        .iter()
        .map(|r| UserRecord {
            partition_key: String::from_utf8_lossy(r.key.as_deref().unwrap_or_default())
                .into_owned(),
            explicit_hash_key: r
                .explicit_hash_key
                .as_deref()
                .and_then(|h| std::str::from_utf8(h).ok()?.parse().ok()),
            data: r.value.clone().unwrap_or_default(),
        })
        .collect();
    let last = run.last().expect("a run has a record").offset;
    out.push(StoredRecord {
        offset: last,
        timestamp_ms: first.timestamp_ms,
        // The KPL names an aggregate by its first user record's key.
        key: first.key.clone(),
        value: Some(aggregate(&users)),
        origin_sequence: first.origin_sequence.clone(),
        origin_subsequence: None,
        explicit_hash_key: None,
        origin_arrival_ms: first.origin_arrival_ms,
    });
    run.clear();
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::kinesis::aggregation::split;

    fn rec(offset: i64, seq: &str, sub: Option<u64>, key: &str) -> StoredRecord {
        StoredRecord {
            offset,
            timestamp_ms: 1_700_000_000_000,
            key: Some(Bytes::from(key.to_string())),
            value: Some(Bytes::from(format!("v{offset}"))),
            origin_sequence: Some(Bytes::from(seq.to_string())),
            origin_subsequence: sub,
            explicit_hash_key: (offset == 2).then(|| Bytes::from_static(b"42")),
            origin_arrival_ms: Some(1_600_000_000_000),
        }
    }

    #[test]
    fn whole_runs_of_user_records_read_back_as_their_aggregate() {
        let records = vec![
            rec(0, "100", None, "a"),
            rec(1, "200", Some(0), "b"),
            rec(2, "200", Some(1), "c"),
            rec(3, "200", Some(2), "b"),
            rec(4, "300", Some(0), "d"),
            rec(5, "400", None, "e"),
        ];
        let out = regroup(records, 0, i64::MAX);
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 3, 4, 5]);
        let agg = &out[1];
        assert_eq!(agg.origin_sequence.as_deref(), Some(&b"200"[..]));
        assert_eq!(agg.key.as_deref(), Some(&b"b"[..]));
        let users = split(agg.value.as_ref().unwrap()).expect("a well-formed aggregate");
        let got: Vec<(&str, Option<u128>, &[u8])> = users
            .iter()
            .map(|u| {
                (
                    u.partition_key.as_str(),
                    u.explicit_hash_key,
                    u.data.as_ref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("b", None, &b"v1"[..]),
                ("c", Some(42), b"v2"),
                ("b", None, b"v3")
            ]
        );
        // An aggregate of one user record is still one.
        assert_eq!(split(out[2].value.as_ref().unwrap()).unwrap().len(), 1);
    }

    #[test]
    fn runs_entered_midway_or_past_the_origin_end_stay_as_they_are() {
        let records = vec![
            rec(1, "200", Some(0), "b"),
            rec(2, "200", Some(1), "c"),
            rec(3, "200", Some(2), "b"),
        ];
        // A reader that starts at the second user record gets the rest one by one.
        let out = regroup(records.clone(), 2, i64::MAX);
        assert_eq!(out.len(), 3);
        // Records past the origin end are strait's own, never regrouped.
        let out = regroup(records, 0, 1);
        assert_eq!(
            out.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(out
            .iter()
            .all(|r| r.value.as_ref().unwrap().starts_with(b"v")));
    }
}
