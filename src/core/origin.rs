//! Positions on a stream mirrored from a Kinesis source and cut over (`migrate/`): its
//! records below a shard's `origin_end` carry the source's sequence numbers (their
//! `kinesis.seq` header), so a checkpoint or iterator holding one resolves to the same record
//! here. Origin numbers rise along the shard, so the offset is found by bisection over the
//! mirrored records, a few reads each, with no index to keep.

use std::cmp::Ordering;

use super::catalog::Shard;
use super::error::{CoreError, CoreResult};
use super::service::Core;
use crate::protocol::kafka::records::decode_batch;
use crate::protocol::kinesis::sequence::cmp_sequence_numbers;
use crate::protocol::kinesis::shard_ids::shard_id;

impl Core {
    /// The offset of the first mirrored record whose origin number is at or after `seq`
    /// (`after`: strictly after); `origin_end` when there is none.
    pub(super) async fn origin_offset(
        &self,
        stream: &str,
        shard: &Shard,
        seq: &str,
        after: bool,
    ) -> CoreResult<i64> {
        let Some(end) = shard.origin_end else {
            return Err(CoreError::InvalidArgument(format!(
                "StartingSequenceNumber {seq} is not a sequence number of {} of stream {stream}.",
                shard_id(shard.partition)
            )));
        };
        self.origin_offset_below(stream, shard.partition, end, seq, after)
            .await
    }

    /// `origin_offset` over the mirrored records below `end`.
    pub(super) async fn origin_offset_below(
        &self,
        stream: &str,
        partition: u32,
        end: i64,
        seq: &str,
        after: bool,
    ) -> CoreResult<i64> {
        let start = self.log.offsets(stream, partition).await?.log_start;
        // Invariant: every offset below `lo` holds a record before the position, and every
        // offset from `hi` on one at or past it.
        let (mut lo, mut hi) = (start, end.max(start));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some(found) = self.origin_at(stream, partition, mid, hi).await? else {
                hi = mid;
                continue;
            };
            let past = match cmp_sequence_numbers(&found.sequence, seq) {
                Ordering::Less => false,
                Ordering::Equal => !after,
                Ordering::Greater => true,
            };
            if past {
                hi = mid;
            } else {
                lo = found.offset + 1;
            }
        }
        Ok(lo)
    }

    /// The first mirrored record at or after `offset` and before `end`.
    pub(super) async fn origin_at(
        &self,
        stream: &str,
        partition: u32,
        offset: i64,
        end: i64,
    ) -> CoreResult<Option<OriginRecord>> {
        let read = self.log.read(stream, partition, offset, 64 * 1024).await?;
        for batch in read.batches {
            let records = decode_batch(batch).map_err(CoreError::Internal)?;
            for r in records {
                if r.offset < offset {
                    continue;
                }
                if r.offset >= end {
                    return Ok(None);
                }
                if let Some(o) = r.origin_sequence {
                    return Ok(Some(OriginRecord {
                        offset: r.offset,
                        sequence: String::from_utf8_lossy(&o).into_owned(),
                        sub: r.origin_subsequence,
                    }));
                }
            }
        }
        Ok(None)
    }
}

/// A mirrored record's place here and its number at the source.
pub(super) struct OriginRecord {
    pub offset: i64,
    pub sequence: String,
    /// Its sub-sequence number in the KPL aggregate it came in, when it came in one.
    pub sub: Option<u64>,
}

/// Where one mirrored shard's source records end, for `Core::cut_over`.
#[derive(Debug, Clone, Copy)]
pub struct OriginEnd {
    pub partition: u32,
    /// One past the last mirrored record.
    pub end: i64,
    /// The shard creation time (s) the source's numbers carry, when they are v2-shaped:
    /// strait's numbers from the cutover on must sort above them.
    pub origin_created_secs: Option<u64>,
}

impl Core {
    /// Records that a mirrored stream is served here from now on: each shard's source
    /// records end where `ends` says, and strait numbers the records after them with a shard
    /// creation time later than the source's, so every number written after the cutover is
    /// greater than every number the source gave on that shard (KCL refuses to checkpoint
    /// backwards).
    pub async fn cut_over(&self, stream: &str, ends: &[OriginEnd]) -> CoreResult<()> {
        let now = crate::clock::now_ms();
        self.update_stream(stream, |s| -> CoreResult<()> {
            for e in ends {
                let shard = s
                    .shards
                    .iter_mut()
                    .find(|sh| sh.partition == e.partition)
                    .ok_or_else(|| {
                        CoreError::Internal(format!("{stream} has no partition {}", e.partition))
                    })?;
                let secs = ((now / 1000) as u64).max(e.origin_created_secs.map_or(0, |c| c + 1));
                shard.origin_end = Some(e.end);
                shard.created_secs = secs;
                shard.created_ms = shard.created_ms.max(secs as i64 * 1000);
            }
            s.cut_over_ms = Some(now);
            Ok(())
        })
        .await
    }
}
