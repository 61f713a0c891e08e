//! KCL checkpoints on a stream mirrored from a Kinesis source (`strait migrate checkpoints`):
//! a lease's (sequence number, sub-sequence number) as the offset a Kafka consumer group
//! resumes at, and a group's committed offset as the checkpoint a KCL worker resumes after.
//! Until a stream is cut over every record in it is the source's; after, the records below a
//! shard's `origin_end` are (`origin.rs`) and the rest carry strait's own numbers.

use std::cmp::Ordering;

use super::catalog::{Shard, Stream};
use super::error::{CoreError, CoreResult};
use super::seqno::{is_decimal_sequence, SeqNo};
use super::service::Core;
use crate::protocol::kafka::records::{decode_batch, StoredRecord};
use crate::protocol::kinesis::sequence::cmp_sequence_numbers;
use crate::protocol::kinesis::shard_ids::shard_id;

/// A KCL checkpoint: a sequence number (with the sub-sequence number of a KPL user record)
/// or one of KCL's sentinels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KclCheckpoint {
    pub checkpoint: String,
    pub sub: u64,
}

impl Core {
    /// The offset a consumer resumes at after `checkpoint` on `partition`: the record after
    /// the one it names (after the user record `sub` names, for a KPL aggregate the mirror
    /// split), the first kept record when that one is gone. `None` for LATEST and
    /// AT_TIMESTAMP, which name no record.
    pub async fn offset_after_checkpoint(
        &self,
        stream: &str,
        partition: u32,
        checkpoint: &KclCheckpoint,
    ) -> CoreResult<Option<i64>> {
        let s = self.stream(stream)?;
        let shard = shard_of(&s, partition)?;
        let offsets = self.log.offsets(stream, partition).await?;
        let seq = checkpoint.checkpoint.as_str();
        match seq {
            "TRIM_HORIZON" => return Ok(Some(offsets.log_start)),
            "LATEST" | "AT_TIMESTAMP" => return Ok(None),
            "SHARD_END" => return Ok(Some(shard.end_offset.unwrap_or(offsets.high_watermark))),
            _ if !is_decimal_sequence(seq) => {
                return Err(CoreError::InvalidArgument(format!(
                    "{seq:?} is not a KCL checkpoint: a sequence number, TRIM_HORIZON, LATEST, AT_TIMESTAMP or SHARD_END"
                )))
            }
            _ => {}
        }
        if let Some(q) = own_number(&s, shard, seq) {
            return match i64::try_from(q.after_offset()) {
                Ok(o) if o <= offsets.high_watermark => Ok(Some(o)),
                _ => Err(CoreError::InvalidArgument(format!(
                    "{seq} is past the last record of {} of stream {stream}",
                    shard_id(partition)
                ))),
            };
        }
        let Some(end) = origin_bound(&s, shard, offsets.high_watermark) else {
            return Err(not_of_shard(stream, partition, seq));
        };
        let at = self
            .origin_offset_below(stream, partition, end, seq, false)
            .await?;
        let Some(found) = self.origin_at(stream, partition, at, end).await? else {
            // After every record copied: the mirror has not reached it, or it is not this
            // shard's.
            return Err(CoreError::InvalidArgument(format!(
                "{seq} is after every record copied from {} of stream {stream}: the mirror has not reached it yet, or it is another shard's",
                shard_id(partition)
            )));
        };
        if cmp_sequence_numbers(&found.sequence, seq) != Ordering::Equal {
            // Trimmed, or never copied: resume at the next record there is.
            return Ok(Some(found.offset));
        }
        if found.sub.is_none() {
            return Ok(Some(found.offset + 1));
        }
        self.after_user_record(stream, partition, found.offset, end, seq, checkpoint.sub)
            .await
            .map(Some)
    }

    /// The offset after the user records of aggregate `seq` up to sub-sequence number `sub`:
    /// the mirror wrote an aggregate's user records one after another from `from`.
    async fn after_user_record(
        &self,
        stream: &str,
        partition: u32,
        from: i64,
        end: i64,
        seq: &str,
        sub: u64,
    ) -> CoreResult<i64> {
        let mut next = from;
        loop {
            let read = self.log.read(stream, partition, next, 256 * 1024).await?;
            let before = next;
            for batch in read.batches {
                for r in decode_batch(batch).map_err(CoreError::Internal)? {
                    if r.offset < next {
                        continue;
                    }
                    let same_part_or_before = r.offset < end
                        && r.origin_sequence.as_deref() == Some(seq.as_bytes())
                        && r.origin_subsequence.unwrap_or(0) <= sub;
                    if !same_part_or_before {
                        return Ok(next);
                    }
                    next = r.offset + 1;
                }
            }
            if next == before {
                return Ok(next);
            }
        }
    }

    /// The checkpoint a KCL worker resumes after for a committed `offset` (the next record
    /// to read): the record before it, TRIM_HORIZON before the first kept record, SHARD_END
    /// past a closed shard's last.
    pub async fn checkpoint_before(
        &self,
        stream: &str,
        partition: u32,
        offset: i64,
    ) -> CoreResult<KclCheckpoint> {
        let s = self.stream(stream)?;
        let shard = shard_of(&s, partition)?;
        let offsets = self.log.offsets(stream, partition).await?;
        let sentinel = |name: &str| KclCheckpoint {
            checkpoint: name.into(),
            sub: 0,
        };
        if shard.end_offset.is_some_and(|e| offset >= e) {
            return Ok(sentinel("SHARD_END"));
        }
        if offset <= offsets.log_start {
            return Ok(sentinel("TRIM_HORIZON"));
        }
        if offset > offsets.high_watermark {
            return Err(CoreError::InvalidArgument(format!(
                "offset {offset} of {stream}/{partition} is past its last record ({})",
                offsets.high_watermark
            )));
        }
        let Some(r) = self
            .record_before(stream, partition, offset, offsets.log_start)
            .await?
        else {
            return Ok(sentinel("TRIM_HORIZON"));
        };
        let mirrored =
            origin_bound(&s, shard, offsets.high_watermark).is_some_and(|e| r.offset < e);
        Ok(match r.origin_sequence {
            Some(origin) if mirrored => KclCheckpoint {
                checkpoint: String::from_utf8_lossy(&origin).into_owned(),
                sub: r.origin_subsequence.unwrap_or(0),
            },
            _ => KclCheckpoint {
                checkpoint: SeqNo::record(
                    partition,
                    r.offset as u64,
                    shard.created_secs,
                    (r.timestamp_ms.max(0) / 1000) as u64,
                )
                .to_string(),
                sub: 0,
            },
        })
    }

    /// The last record before `offset`, looking back past transaction markers (which hold
    /// no record); `None` when there is none from `log_start` on.
    async fn record_before(
        &self,
        stream: &str,
        partition: u32,
        offset: i64,
        log_start: i64,
    ) -> CoreResult<Option<StoredRecord>> {
        let mut back = 1;
        loop {
            let from = (offset - back).max(log_start);
            // Read forward from `from` to `offset`, keeping the last record seen.
            let (mut at, mut last) = (from, None);
            while at < offset {
                let read = self.log.read(stream, partition, at, 256 * 1024).await?;
                let before = at;
                for batch in read.batches {
                    let end = crate::protocol::kafka::record_batch::parse_stored_header(&batch)
                        .map(|h| h.next_offset())
                        .unwrap_or(at);
                    for r in decode_batch(batch).map_err(CoreError::Internal)? {
                        if r.offset >= from && r.offset < offset {
                            last = Some(r);
                        }
                    }
                    at = at.max(end);
                }
                if at == before {
                    break;
                }
            }
            if last.is_some() || from == log_start {
                return Ok(last);
            }
            back *= 4;
        }
    }
}

fn shard_of(s: &Stream, partition: u32) -> CoreResult<&Shard> {
    s.shard(partition).ok_or_else(|| {
        CoreError::InvalidArgument(format!(
            "stream {} has no shard {}",
            s.name,
            shard_id(partition)
        ))
    })
}

/// One past the shard's last record that carries the source's number: every record until
/// the stream is cut over, those below `origin_end` after; `None` for a shard that holds
/// none (made here after the cutover).
fn origin_bound(s: &Stream, shard: &Shard, high_watermark: i64) -> Option<i64> {
    match (s.cut_over_ms, shard.origin_end) {
        (_, Some(end)) => Some(end),
        (None, None) => Some(high_watermark),
        (Some(_), None) => None,
    }
}

/// `seq` as a number strait gave on `shard` after the cutover.
fn own_number(s: &Stream, shard: &Shard, seq: &str) -> Option<SeqNo> {
    s.cut_over_ms?;
    SeqNo::parse(seq)
        .filter(|q| q.partition == shard.partition && q.shard_create_secs == shard.created_secs)
}

fn not_of_shard(stream: &str, partition: u32, seq: &str) -> CoreError {
    CoreError::InvalidArgument(format!(
        "{seq} is not a sequence number of {} of stream {stream}",
        shard_id(partition)
    ))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::KclCheckpoint;
    use crate::backend::Log;
    use crate::core::origin::OriginEnd;
    use crate::core::tests::{core, create};
    use crate::protocol::kafka::records::{
        encode_batch_with_headers, NewRecord, ORIGIN_SEQ_HEADER, ORIGIN_SUBSEQ_HEADER,
    };

    const A: &str = "49590338271490256608559692538361571095921575989136588850";
    const B: &str = "49590338271490256608559692540000000000000000000000000000";
    const C: &str = "49590338271490256608559692550000000000000000000000000000";

    fn cp(checkpoint: &str, sub: u64) -> KclCheckpoint {
        KclCheckpoint {
            checkpoint: checkpoint.into(),
            sub,
        }
    }

    /// Source record A (plain), B (a KPL aggregate of three user records), C (plain), as
    /// the mirror writes them: offsets 0, 1..=3, 4.
    async fn mirrored() -> (
        crate::core::Core,
        std::sync::Arc<crate::backend::memory::MemoryLog>,
    ) {
        let (core, log) = core().await;
        create(&core, "m", 1).await;
        let parts: [(&str, Option<u64>); 5] = [
            (A, None),
            (B, Some(0)),
            (B, Some(1)),
            (B, Some(2)),
            (C, None),
        ];
        let records: Vec<NewRecord> = (0..5)
            .map(|i| NewRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Bytes::from(format!("v{i}")),
                timestamp_ms: 1_700_000_000_000,
                explicit_hash_key: None,
            })
            .collect();
        let headers: Vec<Vec<(&'static str, Bytes)>> = parts
            .iter()
            .map(|(seq, sub)| {
                let mut h = vec![(ORIGIN_SEQ_HEADER, Bytes::from(seq.to_string()))];
                if let Some(s) = sub {
                    h.push((ORIGIN_SUBSEQ_HEADER, Bytes::from(s.to_string())));
                }
                h
            })
            .collect();
        log.append("m", 0, encode_batch_with_headers(&records, &headers))
            .await
            .unwrap();
        (core, log)
    }

    #[tokio::test]
    async fn checkpoints_resolve_to_the_offset_after_their_record_or_user_record() {
        let (core, _log) = mirrored().await;
        let after = |c: KclCheckpoint| {
            let core = &core;
            async move { core.offset_after_checkpoint("m", 0, &c).await.unwrap() }
        };
        assert_eq!(after(cp("TRIM_HORIZON", 0)).await, Some(0));
        assert_eq!(after(cp("LATEST", 0)).await, None);
        assert_eq!(after(cp(A, 0)).await, Some(1));
        // KPL checkpoints: after the user record the sub-sequence number names.
        assert_eq!(after(cp(B, 0)).await, Some(2));
        assert_eq!(after(cp(B, 1)).await, Some(3));
        assert_eq!(after(cp(B, 2)).await, Some(4));
        assert_eq!(after(cp(C, 0)).await, Some(5));
        // A number between two records (its record trimmed or never copied): the next one.
        let between = "49590338271490256608559692539000000000000000000000000000";
        assert_eq!(after(cp(between, 0)).await, Some(1));
        // Past every copied record: not resolved to the end, refused.
        let beyond = "49590338271490256608559692560000000000000000000000000000";
        let err = core.offset_after_checkpoint("m", 0, &cp(beyond, 0)).await;
        assert!(err.unwrap_err().to_string().contains("has not reached it"));
        let bad = core
            .offset_after_checkpoint("m", 0, &cp("SHARD_BEGIN", 0))
            .await;
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("not a KCL checkpoint"));
        let none = core.offset_after_checkpoint("m", 7, &cp(A, 0)).await;
        assert!(none.unwrap_err().to_string().contains("no shard"));
    }

    #[tokio::test]
    async fn committed_offsets_read_back_as_the_checkpoint_of_the_record_before() {
        let (core, _log) = mirrored().await;
        let before = |o: i64| {
            let core = &core;
            async move { core.checkpoint_before("m", 0, o).await.unwrap() }
        };
        assert_eq!(before(0).await, cp("TRIM_HORIZON", 0));
        assert_eq!(before(1).await, cp(A, 0));
        assert_eq!(before(3).await, cp(B, 1));
        assert_eq!(before(5).await, cp(C, 0));
        assert!(
            core.checkpoint_before("m", 0, 6).await.is_err(),
            "past the end"
        );
        // Round trip: every offset's checkpoint resolves to that offset.
        for o in 0..=5 {
            let c = before(o).await;
            assert_eq!(
                core.offset_after_checkpoint("m", 0, &c).await.unwrap(),
                Some(o),
                "{c:?}"
            );
        }
    }

    #[tokio::test]
    async fn after_the_cutover_strait_numbers_resolve_too() {
        let (core, log) = mirrored().await;
        core.cut_over(
            "m",
            &[OriginEnd {
                partition: 0,
                end: 5,
                origin_created_secs: Some(1_600_000_000),
            }],
        )
        .await
        .unwrap();
        let rec = NewRecord {
            key: Some(Bytes::from_static(b"k")),
            value: Bytes::from_static(b"new"),
            timestamp_ms: crate::clock::now_ms(),
            explicit_hash_key: None,
        };
        log.append("m", 0, encode_batch_with_headers(&[rec], &[]))
            .await
            .unwrap();
        let own = core.checkpoint_before("m", 0, 6).await.unwrap();
        assert_ne!(own.checkpoint, C);
        assert!(
            crate::protocol::kinesis::sequence::cmp_sequence_numbers(&own.checkpoint, C).is_gt(),
            "strait's numbers sort above the source's"
        );
        assert_eq!(
            core.offset_after_checkpoint("m", 0, &own).await.unwrap(),
            Some(6)
        );
        assert_eq!(
            core.offset_after_checkpoint("m", 0, &cp(B, 1))
                .await
                .unwrap(),
            Some(3)
        );
        assert_eq!(core.checkpoint_before("m", 0, 5).await.unwrap(), cp(C, 0));
        // One of strait's numbers past the last record is refused, not taken as an offset.
        let created = core.stream("m").unwrap().shard(0).unwrap().created_secs;
        let far = crate::core::seqno::SeqNo::record(0, 1_000, created, 0).to_string();
        assert!(core
            .offset_after_checkpoint("m", 0, &cp(&far, 0))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_closed_shard_read_to_its_end_is_at_shard_end() {
        let (core, _log) = mirrored().await;
        core.close_mirrored_shard("m", 0).await.unwrap();
        assert_eq!(
            core.checkpoint_before("m", 0, 5).await.unwrap(),
            cp("SHARD_END", 0)
        );
        assert_eq!(
            core.offset_after_checkpoint("m", 0, &cp("SHARD_END", 0))
                .await
                .unwrap(),
            Some(5)
        );
        assert_eq!(core.checkpoint_before("m", 0, 4).await.unwrap(), cp(B, 2));
    }
}
