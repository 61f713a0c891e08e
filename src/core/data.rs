//! Record traffic through the core: routing and appending writes, resolving iterator starts
//! to offsets, and reading records back with their sequence numbers.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::catalog::{shard_id, KeyHash, Shard, Stream, StreamStatus};
use super::error::{CoreError, CoreResult};
use super::hashing::md5_hash_key;
use super::iterator::{IteratorError, IteratorPosition};
use super::now_ms;
use super::seqno::SeqNo;
use super::service::Core;
use crate::backend::PartitionOffsets;
use crate::protocol::kafka::records::{decode_batch, encode_batch, NewRecord, StoredRecord};

/// One record of a PutRecord(s) call, validated by the front end. When `data` is a KPL
/// aggregate, `user_records` holds what it splits into, and those are written in its place
/// (reference §4g); Kinesis limits still apply to the record as sent.
#[derive(Debug, Clone)]
pub struct PutInput {
    pub partition_key: String,
    pub data: Bytes,
    pub explicit_hash_key: Option<u128>,
    pub user_records: Option<Vec<UserRecord>>,
}

/// One user record of a KPL aggregate.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub partition_key: String,
    pub data: Bytes,
    pub explicit_hash_key: Option<u128>,
}

/// Where one request record landed: the shard to report (for an aggregate, the one the KPL
/// predicted) and its first record's sequence number.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub partition: u32,
    pub sequence_number: String,
}

/// The answer to a PutRecord(s) call.
#[derive(Debug, Default)]
pub struct PutReport {
    /// Per request record, in input order; a record fails if any of its parts failed.
    pub outcomes: Vec<CoreResult<PutOutcome>>,
    /// The stream encrypts its records (EncryptionType KMS).
    pub encrypted: bool,
    /// Records written (user records for aggregates) and their bytes, key included.
    pub written_records: u64,
    pub written_bytes: u64,
}

/// One record to write: a request record, or one user record of an aggregate.
#[derive(Clone)]
struct Part {
    request: usize,
    key: Bytes,
    value: Bytes,
    explicit_hash_key: Option<u128>,
    /// The hash it was routed by, where not its own key's (an aggregate kept together).
    route_hash: Option<u128>,
    partition: u32,
}

/// Where a new iterator starts.
#[derive(Debug, Clone)]
pub enum IteratorStart {
    TrimHorizon,
    Latest,
    AtSequence(SeqNo),
    AfterSequence(SeqNo),
    /// A Kinesis source's sequence number, on a stream mirrored from it and cut over.
    AtOrigin(String),
    AfterOrigin(String),
    AtTimestamp(i64),
}

#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub sequence_number: String,
    pub arrival_ms: i64,
    pub partition_key: String,
    pub data: Bytes,
}

/// What one read of a partition found.
#[derive(Debug, Clone)]
pub struct Span {
    pub records: Vec<ReadRecord>,
    /// Where the next read starts.
    pub next_offset: i64,
    pub millis_behind_latest: i64,
    /// The shard is closed and has been read to its end.
    pub shard_ended: bool,
    /// The read reached the high watermark (or the end of a closed shard): nothing more to
    /// read right now.
    pub caught_up: bool,
    /// Arrival time of the last record read.
    pub last_arrival_ms: Option<i64>,
    /// Set with `shard_ended`: the shards that replaced this one.
    pub child_shards: Vec<Shard>,
    pub shard_created_secs: u64,
}

impl Span {
    /// A sequence number to resume after: the last record read, or the position just before
    /// `next_offset` when nothing was read (SubscribeToShard's ContinuationSequenceNumber).
    pub fn continuation(&self, partition: u32) -> String {
        match self.records.last() {
            Some(r) => r.sequence_number.clone(),
            None => SeqNo::position(partition, self.next_offset as u64, self.shard_created_secs)
                .to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RecordsPage {
    pub records: Vec<ReadRecord>,
    /// `None` once a closed shard has been read to its end.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: i64,
    /// Set with `next_iterator == None`: the shards that replaced this one.
    pub child_shards: Vec<Shard>,
    pub stream: Arc<Stream>,
    pub partition: u32,
}

/// Kinesis caps a GetRecords response at 10 MiB.
const MAX_READ_BYTES: usize = 10 << 20;
/// The largest step of one log read; GetRecords reads in steps sized to its Limit.
const READ_STEP: usize = 1 << 20;

impl Core {
    /// Where readers of a closed shard stop (`None` while it is open). On a shared catalog
    /// another replica may append to a parent in the moments before it learns of the split,
    /// past the recorded end: readers read it as open until it is sealed (`late_writes.rs`).
    fn reader_end(&self, shard: &Shard) -> Option<i64> {
        let end = shard.end_offset?;
        if !self.shared_tail() {
            return Some(end);
        }
        shard.sealed_end.map(|sealed| sealed.max(end))
    }

    /// Arrival time of a partition's newest record (for MillisBehindLatest): from `offsets`
    /// when the backend put it there, else looked up.
    pub async fn newest_arrival(
        &self,
        stream: &str,
        partition: u32,
        offsets: &PartitionOffsets,
    ) -> CoreResult<Option<i64>> {
        if offsets.last_timestamp_ms.is_some() {
            return Ok(offsets.last_timestamp_ms);
        }
        Ok(self
            .log
            .max_timestamp_batch(stream, partition)
            .await?
            .map(|(_, ts)| ts))
    }

    fn require_writable(&self, s: &Stream) -> CoreResult<()> {
        match s.status {
            StreamStatus::Active | StreamStatus::Updating => Ok(()),
            other => Err(CoreError::StreamNotActive {
                stream: s.name.clone(),
                account: self.account_id.clone(),
                status: other.as_str(),
            }),
        }
    }

    /// Appends records, grouped into one batch per partition: the stream is looked up once
    /// (discovering it on a shared catalog), each record's size checked once, and each record
    /// routed once (an aggregate kept together is routed once for all its user records).
    /// The outer error is for the whole call; outcomes are per record (PutRecords semantics).
    pub async fn put_records(&self, stream: &str, inputs: Vec<PutInput>) -> CoreResult<PutReport> {
        let entry = self.found_entry(stream).await?;
        let gate = entry.gate.read().await;
        let routed = self.routed_at();
        let s = entry.snapshot();
        // Kinesis limits apply to the records as sent, before an aggregate is split (§4g).
        let limit = s.max_record_kib as usize * 1024;
        for r in &inputs {
            let size = r.data.len() + r.partition_key.len();
            if size > limit {
                return Err(CoreError::InvalidArgument(format!(
                    "Record size {size} bytes (data plus partition key) exceeds the maximum record size of {} KiB for stream {stream}.",
                    s.max_record_kib
                )));
            }
        }
        self.require_writable(&s)?;
        self.check_write_hold(stream)?;
        let pick = self.spread.fetch_add(1, Ordering::Relaxed);
        let no_shard = || CoreError::Internal(format!("stream {stream} has no open shard"));
        let mut parts: Vec<Part> = Vec::with_capacity(inputs.len());
        // Per request record: the shard to report when it differs from its first part's.
        let mut reported: Vec<Option<u32>> = Vec::with_capacity(inputs.len());
        for (request, input) in inputs.into_iter().enumerate() {
            let Some(users) = input.user_records else {
                let shard = s
                    .route(&input.partition_key, input.explicit_hash_key, pick)
                    .ok_or_else(no_shard)?;
                parts.push(Part {
                    request,
                    key: Bytes::from(input.partition_key.into_bytes()),
                    value: input.data,
                    explicit_hash_key: input.explicit_hash_key,
                    route_hash: input.explicit_hash_key,
                    partition: shard.partition,
                });
                reported.push(None);
                continue;
            };
            let outer_hash = input
                .explicit_hash_key
                .unwrap_or_else(|| md5_hash_key(input.partition_key.as_bytes()));
            // On kinesis-md5 streams an aggregate's user records stay together on the shard
            // the KPL predicted; on kafka-murmur2 streams each goes where its own key hashes,
            // and the record reports the shard whose advertised range the KPL predicted.
            let together = if s.key_hash == KeyHash::KafkaMurmur2 {
                None
            } else {
                let shard = s.route(&input.partition_key, Some(outer_hash), pick);
                Some(shard.ok_or_else(no_shard)?.partition)
            };
            reported.push(match together {
                Some(_) => None,
                None => s.shard_for_hash(outer_hash).map(|sh| sh.partition),
            });
            for u in users {
                let partition = match together {
                    Some(p) => p,
                    None => {
                        s.route(&u.partition_key, u.explicit_hash_key, pick)
                            .ok_or_else(no_shard)?
                            .partition
                    }
                };
                parts.push(Part {
                    request,
                    key: Bytes::from(u.partition_key.into_bytes()),
                    value: u.data,
                    explicit_hash_key: u.explicit_hash_key,
                    route_hash: if together.is_some() {
                        Some(outer_hash)
                    } else {
                        u.explicit_hash_key
                    },
                    partition,
                });
            }
        }
        let placed = self.append_parts(stream, &s, &parts).await;
        // Not held while a late write is looked for: that may wait for another replica's seal,
        // and this replica's reshards and deletes of the stream must not wait with it.
        drop(gate);
        let placed = self
            .rewrite_late(stream, &entry, routed, &mut parts, placed, pick)
            .await;
        let (mut written_records, mut written_bytes) = (0u64, 0u64);
        let mut outcomes: Vec<Option<CoreResult<PutOutcome>>> =
            (0..reported.len()).map(|_| None).collect();
        for (part, result) in parts.iter().zip(placed) {
            if result.is_ok() {
                written_records += 1;
                written_bytes += (part.key.len() + part.value.len()) as u64;
            }
            let slot = &mut outcomes[part.request];
            match (result, &slot) {
                (Ok(seq), None) => {
                    *slot = Some(Ok(PutOutcome {
                        partition: reported[part.request].unwrap_or(part.partition),
                        sequence_number: seq,
                    }))
                }
                (Err(e), None | Some(Ok(_))) => *slot = Some(Err(e)),
                _ => {}
            }
        }
        Ok(PutReport {
            outcomes: outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| Err(CoreError::Internal("an empty aggregate".into()))))
                .collect(),
            encrypted: s.encryption_key.is_some(),
            written_records,
            written_bytes,
        })
    }

    /// Writes again, to the open shards now covering them, the parts that landed in a parent
    /// after its seal (`late_writes.rs`); their outcomes replace the first ones.
    async fn rewrite_late(
        &self,
        stream: &str,
        entry: &super::service::StreamEntry,
        routed: super::late_writes::RoutedAt,
        parts: &mut [Part],
        mut placed: Vec<CoreResult<String>>,
        pick: usize,
    ) -> Vec<CoreResult<String>> {
        if routed.settled() {
            return placed;
        }
        let mut written: BTreeMap<u32, i64> = BTreeMap::new();
        for (part, result) in parts.iter().zip(&placed) {
            if let Some(seq) = result.as_ref().ok().and_then(|s| SeqNo::parse(s)) {
                let last = written.entry(part.partition).or_insert(0);
                *last = (*last).max(seq.offset as i64);
            }
        }
        let late = match self.late_partitions(stream, routed, &written).await {
            Ok(late) if late.is_empty() => return placed,
            Ok(late) => late,
            Err(e) => {
                // The records were acknowledged by the log; most likely they are read.
                tracing::warn!(stream, error = %e, "could not check appends for a split they may have missed");
                return placed;
            }
        };
        let fresh = match self.stored_stream(stream).await {
            Ok(Some(s)) => s,
            _ => return placed,
        };
        let mut again: Vec<usize> = Vec::new();
        let mut moved: Vec<Part> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if !late.contains(&part.partition) || placed[i].is_err() {
                continue;
            }
            let key = std::str::from_utf8(&part.key).unwrap_or_default();
            let Some(shard) = fresh.route(key, part.route_hash, pick) else {
                continue;
            };
            let mut m = part.clone();
            m.partition = shard.partition;
            again.push(i);
            moved.push(m);
        }
        let _gate = entry.gate.read().await;
        let results = self.append_parts(stream, &fresh, &moved).await;
        for ((i, m), result) in again.into_iter().zip(moved).zip(results) {
            parts[i].partition = m.partition;
            placed[i] = result;
        }
        placed
    }

    /// Writes routed parts as one batch per partition; each part's sequence number or error.
    async fn append_parts(
        &self,
        stream: &str,
        s: &Stream,
        parts: &[Part],
    ) -> Vec<CoreResult<String>> {
        let now = now_ms();
        let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, p) in parts.iter().enumerate() {
            groups.entry(p.partition).or_default().push(i);
        }
        let appends = groups.iter().map(|(&partition, idxs)| {
            let records: Vec<NewRecord> = idxs
                .iter()
                .map(|&i| NewRecord {
                    key: Some(parts[i].key.clone()),
                    value: parts[i].value.clone(),
                    timestamp_ms: now,
                    explicit_hash_key: parts[i].explicit_hash_key.map(|h| h.to_string()),
                })
                .collect();
            let batch = encode_batch(&records);
            async move { (partition, self.log.append(stream, partition, batch).await) }
        });
        let results = futures_util::future::join_all(appends).await;
        self.appended.notify_waiters();
        let mut out: Vec<CoreResult<String>> = (0..parts.len())
            .map(|_| Err(CoreError::Internal("unwritten".into())))
            .collect();
        for (partition, result) in results {
            let idxs = &groups[&partition];
            let shard = s.shard(partition).expect("routed to a known shard");
            match result {
                Ok(at) => {
                    // A backend that stamps its own arrival time decides the sequence
                    // number's time part, so GetRecords later shows the same number.
                    let arrival = at.log_append_time_ms.unwrap_or(now);
                    for (n, &i) in idxs.iter().enumerate() {
                        out[i] = Ok(SeqNo::record(
                            partition,
                            (at.base_offset + n as i64) as u64,
                            shard.created_secs,
                            (arrival.max(0) / 1000) as u64,
                        )
                        .to_string());
                    }
                }
                Err(e) => {
                    tracing::error!(stream, partition, error = %e, "append failed");
                    // Per record, any append failure is InternalFailure (PutRecords semantics).
                    let e = CoreError::Storage(Arc::new(e));
                    for &i in idxs {
                        out[i] = Err(e.clone());
                    }
                }
            }
        }
        out
    }

    /// A shard of the stream, or ShardNotFound naming it.
    pub(super) fn shard_of<'a>(&self, s: &'a Stream, partition: u32) -> CoreResult<&'a Shard> {
        s.shard(partition).ok_or_else(|| CoreError::ShardNotFound {
            stream: s.name.clone(),
            shard: shard_id(partition),
            account: self.account_id.clone(),
        })
    }

    /// Resolves an iterator start to an offset and signs the iterator.
    pub async fn get_shard_iterator(
        &self,
        stream: &str,
        partition: u32,
        start: IteratorStart,
    ) -> CoreResult<String> {
        let s = self.found_stream(stream).await?;
        let shard = self.shard_of(&s, partition)?;
        let offsets = self.log.offsets(stream, partition).await?;
        let end = self.reader_end(shard).unwrap_or(offsets.high_watermark);
        let check_seq = |seq: &SeqNo, kind: &str| {
            if seq.offset >= i64::MAX as u64 {
                return Err(CoreError::InvalidArgument(format!(
                    "StartingSequenceNumber {seq} used in {kind} is beyond the end of {} of stream {stream}.",
                    shard_id(partition)
                )));
            }
            if seq.partition != partition {
                return Err(CoreError::InvalidArgument(format!(
                    "Invalid StartingSequenceNumber for {kind}: sequence number {seq} belongs to {}, not {} of stream {stream}.",
                    shard_id(seq.partition),
                    shard_id(partition)
                )));
            }
            Ok(())
        };
        let offset = match &start {
            IteratorStart::TrimHorizon => offsets.log_start,
            IteratorStart::Latest => end,
            IteratorStart::AtSequence(seq) => {
                check_seq(seq, "AT_SEQUENCE_NUMBER")?;
                seq.at_offset() as i64
            }
            IteratorStart::AfterSequence(seq) => {
                check_seq(seq, "AFTER_SEQUENCE_NUMBER")?;
                seq.after_offset() as i64
            }
            IteratorStart::AtTimestamp(ts) => self.offset_at_time(stream, partition, *ts).await?,
            IteratorStart::AtOrigin(seq) => self.origin_offset(stream, shard, seq, false).await?,
            IteratorStart::AfterOrigin(seq) => self.origin_offset(stream, shard, seq, true).await?,
        };
        let offset = offset.clamp(offsets.log_start, end.max(offsets.log_start));
        Ok(self.signer.sign(&IteratorPosition {
            stream: stream.to_string(),
            stream_created_ms: s.created_ms,
            partition,
            offset: offset as u64,
            issued_ms: now_ms(),
        }))
    }

    /// The first offset whose record arrived at or after `ts`.
    pub(super) async fn offset_at_time(
        &self,
        stream: &str,
        partition: u32,
        ts: i64,
    ) -> CoreResult<i64> {
        Ok(self.record_at_time(stream, partition, ts).await?.0)
    }

    /// The first record at or after `ts`: (offset, its timestamp), or (high watermark, None).
    pub(super) async fn record_at_time(
        &self,
        stream: &str,
        partition: u32,
        ts: i64,
    ) -> CoreResult<(i64, Option<i64>)> {
        let base = self.log.offset_for_timestamp(stream, partition, ts).await?;
        let read = self.log.read(stream, partition, base, READ_STEP).await?;
        for batch in read.batches {
            let Some(records) = decoded_or_skipped(stream, partition, batch) else {
                continue;
            };
            if let Some(r) = records
                .iter()
                .find(|r| r.offset >= base && r.timestamp_ms >= ts)
            {
                return Ok((r.offset, Some(r.timestamp_ms)));
            }
        }
        Ok((read.offsets.high_watermark.max(base), None))
    }

    pub async fn get_records(&self, iterator: &str, limit: usize) -> CoreResult<RecordsPage> {
        let now = now_ms();
        let pos = self.signer.verify(iterator, now).map_err(|e| match e {
            IteratorError::Invalid => CoreError::InvalidArgument("Invalid ShardIterator.".into()),
            IteratorError::Expired { age_ms } => CoreError::IteratorExpired { age_ms },
        })?;
        let s = self.stream(&pos.stream)?;
        if s.created_ms != pos.stream_created_ms {
            return Err(self.not_found(&pos.stream));
        }
        let span = self
            .read_span(&s, pos.partition, pos.offset as i64, limit, MAX_READ_BYTES)
            .await?;
        let next_iterator = (!span.shard_ended).then(|| {
            self.signer.sign(&IteratorPosition {
                offset: span.next_offset as u64,
                issued_ms: now,
                ..pos
            })
        });
        Ok(RecordsPage {
            records: span.records,
            next_iterator,
            millis_behind_latest: span.millis_behind_latest,
            child_shards: span.child_shards,
            stream: s,
            partition: pos.partition,
        })
    }

    /// Reads one partition from `offset`: at most `limit` records and about `max_bytes` of
    /// data (never fewer than one record). Shared by GetRecords and SubscribeToShard. The log
    /// start and high watermark come with each read, so a reader that is behind costs one
    /// read plus, for MillisBehindLatest, one newest-timestamp lookup (on the Kafka backend, a
    /// Fetch and a ListOffsets); one that is caught up costs the read alone.
    pub async fn read_span(
        &self,
        s: &Stream,
        partition: u32,
        offset: i64,
        limit: usize,
        max_bytes: usize,
    ) -> CoreResult<Span> {
        let now = now_ms();
        let shard = self.shard_of(s, partition)?.clone();
        let mut offset = offset;
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut offsets: Option<PartitionOffsets> = None;
        // Known before the first read: a closed shard's end is fixed once it is known.
        let end = self.reader_end(&shard).unwrap_or(i64::MAX);
        let mut last_ts = None;
        // Small Limits read small steps, so Limit=1 does not decode a megabyte.
        let step_for = |bytes: usize| {
            (limit.saturating_mul(256))
                .clamp(64 * 1024, READ_STEP)
                .min(max_bytes.saturating_sub(bytes))
                .max(64 * 1024)
        };
        'read: while records.len() < limit && offset < end {
            let before = (offset, records.len());
            let read = self
                .log
                .read(&s.name, partition, offset, step_for(bytes))
                .await?;
            // Below the trim horizon, read from it; past the end (a log truncated under the
            // reader), go on from the end rather than wait for offsets to be reused.
            offset = offset
                .max(read.offsets.log_start)
                .min(read.offsets.high_watermark.max(read.offsets.log_start));
            offsets = Some(read.offsets);
            if read.batches.is_empty() {
                match read.skipped_to {
                    Some(next) if next > offset => {
                        offset = next;
                        continue;
                    }
                    _ => break,
                }
            }
            let skipped_to = read.skipped_to;
            for batch in read.batches {
                // Control batches decode to no records; the offset still moves past them.
                let batch_end = crate::protocol::kafka::record_batch::parse_stored_header(&batch)
                    .map(|h| h.next_offset())
                    .unwrap_or(offset);
                let Some(mut decoded) = decoded_or_skipped(&s.name, partition, batch) else {
                    offset = offset.max(batch_end);
                    continue;
                };
                if let Some(origin_end) = shard.origin_end {
                    decoded = super::aggregates::regroup(decoded, offset, origin_end);
                }
                for r in decoded {
                    if r.offset < offset {
                        continue;
                    }
                    let data = r.value.unwrap_or_default();
                    // A null Kafka key reads as the partition number, as awslabs' connector
                    // does (reference §4h).
                    let key = r.key.unwrap_or_else(|| Bytes::from(partition.to_string()));
                    let size = data.len() + key.len();
                    if !records.is_empty() && bytes + size > max_bytes {
                        break 'read;
                    }
                    bytes += size;
                    offset = r.offset + 1;
                    // A mirrored record keeps its source's number and arrival time
                    // (`origin.rs`).
                    let mirrored = shard.origin_end.is_some_and(|end| r.offset < end);
                    let arrival_ms = match r.origin_arrival_ms {
                        Some(ms) if mirrored => ms,
                        _ => r.timestamp_ms,
                    };
                    last_ts = Some(arrival_ms);
                    let sequence_number = match &r.origin_sequence {
                        Some(origin) if mirrored => String::from_utf8_lossy(origin).into_owned(),
                        _ => SeqNo::record(
                            partition,
                            r.offset as u64,
                            shard.created_secs,
                            (r.timestamp_ms.max(0) / 1000) as u64,
                        )
                        .to_string(),
                    };
                    records.push(ReadRecord {
                        sequence_number,
                        arrival_ms,
                        partition_key: String::from_utf8_lossy(&key).into_owned(),
                        data,
                    });
                    if records.len() >= limit || offset >= end {
                        break 'read;
                    }
                }
                offset = offset.max(batch_end);
            }
            if let Some(next) = skipped_to {
                offset = offset.max(next);
            }
            let caught_up = offsets.is_some_and(|o| offset >= o.high_watermark);
            if (offset, records.len()) == before || caught_up {
                // Nothing read and nothing passed over, or the read reached what the log
                // holds: asking again would get the same.
                break;
            }
        }
        // No read at all means a closed shard already read to its end.
        let at_end = offset >= end || offsets.is_some_and(|o| offset >= o.high_watermark);
        let millis_behind_latest = match offsets {
            Some(o) if !at_end => {
                let newest = self.newest_arrival(&s.name, partition, &o).await?;
                match (newest, last_ts) {
                    (Some(latest), Some(seen)) => (latest - seen).max(0),
                    (Some(latest), None) => (now - latest).max(0),
                    _ => 0,
                }
            }
            _ => 0,
        };
        let shard_ended = offset >= end;
        let child_shards = if shard_ended {
            s.children(shard.partition).cloned().collect()
        } else {
            Vec::new()
        };
        Ok(Span {
            records,
            next_offset: offset,
            millis_behind_latest,
            shard_ended,
            caught_up: at_end,
            last_arrival_ms: last_ts,
            child_shards,
            shard_created_secs: shard.created_secs,
        })
    }

    /// Resolves a start position to an offset without signing an iterator (SubscribeToShard).
    pub async fn start_offset(
        &self,
        stream: &str,
        partition: u32,
        start: IteratorStart,
    ) -> CoreResult<i64> {
        let token = self.get_shard_iterator(stream, partition, start).await?;
        let pos = self
            .signer
            .verify(&token, now_ms())
            .map_err(|_| CoreError::Internal("a fresh iterator failed to verify".into()))?;
        Ok(pos.offset as i64)
    }
}

/// A stored batch's records, or `None` when they do not decode: a Kinesis reader passes over
/// such a batch (counted and logged) rather than let one bad batch make the shard unreadable.
fn decoded_or_skipped(stream: &str, partition: u32, batch: Bytes) -> Option<Vec<StoredRecord>> {
    match decode_batch(batch) {
        Ok(records) => Some(records),
        Err(e) => {
            tracing::warn!(stream, partition, error = %e, "skipping a stored record batch that does not decode");
            crate::observe::metrics()
                .undecodable_batches
                .with_label_values(&[crate::observe::metrics().stream_label(stream)])
                .inc();
            None
        }
    }
}
