//! The `Log` over Amazon Kinesis, for Kafka clients: a stream is a topic, shard N is
//! partition N. An append is a PutRecords whose entries carry an ExplicitHashKey inside the
//! partition's shard, so each lands where the client sent it (a closed shard's range is
//! routed by Kinesis to the child now covering it); it is answered once the partition's
//! reader (`tail.rs`) has read the records back and given them offsets.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::appender::{entry_size, Appends, MAX_BYTES, MAX_ENTRIES};
use super::client::storage_error;
use super::client::{
    CreateStreamInput, CreationTime, DescribeStreamSummaryOutput, Empty, KinesisClient,
    ListStreamsInput, ListStreamsOutput, RetentionInput, StreamModeDetails, StreamNameInput,
};
use super::fanout::{self, Consumers};
use super::filter::StreamFilter;
use super::shards::{list_shards, partition_count, partitions_of, ShardInfo};
use super::shared_index::SharedIndex;
use super::state::StateTable;
use super::tail::{BatchCache, IndexStore, Reading, Tail};
use crate::backend::{
    AppendInfo, CheckedBatch, Log, NewTopic, PartitionLineage, PartitionOffsets, ProducerBatch,
    ReadBatches, Refusal, StorageError, StorageResult,
};
use crate::protocol::kafka::records::decode_batch;
use crate::protocol::kinesis::cbor_records;
use crate::protocol::kinesis::codec::{self, Blob, Protocol};
use crate::protocol::kinesis::sequence::cmp_sequence_numbers;
use crate::protocol::kinesis::shapes::PutRecordsRequestEntry;

/// How long a shard list is trusted.
const SHARDS_FRESH: Duration = Duration::from_secs(5);
/// How long an append may take, retries of throttled entries included (a Kafka producer's
/// default request timeout is 30 s).
const APPEND_BUDGET: Duration = Duration::from_secs(25);
/// How long a question about a partition's end (ListOffsets) may spend reading the shard up
/// to its newest record; past it, the answer is what has been read.
const CATCH_UP: Duration = Duration::from_secs(10);
/// How long a created stream may take to become ACTIVE.
const CREATE_WAIT: Duration = Duration::from_secs(60);
/// Kinesis's record size limit: data and partition key.
const MAX_RECORD_BYTES: usize = 1 << 20;
/// A partition key is 1 to 256 Unicode characters.
const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Kinesis keeps records 24 hours to 365 days.
const MIN_RETENTION_HOURS: u32 = 24;
const MAX_RETENTION_HOURS: u32 = 8760;

pub struct KinesisLogSettings {
    /// Offset indexes live here, a file per partition.
    pub dir: PathBuf,
    /// How often a caught-up partition asks its shard for new records.
    pub poll: Duration,
    /// At most this many GetRecords calls a second per shard.
    pub max_reads_per_sec: u32,
    pub cache_bytes: u64,
    /// Read with enhanced fan-out under this consumer name instead of polling GetRecords.
    pub fan_out_consumer: Option<String>,
    /// With replicas sharing state: each replica's consumer is named after its node id, and
    /// those of replicas gone for good are deregistered.
    pub fan_out_sweep: Option<super::consumer_sweep::ConsumerSweep>,
    /// The streams that are topics.
    pub streams: StreamFilter,
    /// The shared state table (`state.type: dynamodb`); offset indexes are files in `dir`
    /// without it.
    pub state: Option<Arc<StateTable>>,
}

/// A stream's shards and when they were listed.
type ShardList = (Instant, Arc<Vec<ShardInfo>>);
/// Each partition's combined writes.
type PartitionAppends = HashMap<(String, u32), Arc<Appends>>;

pub struct KinesisLog {
    client: Arc<KinesisClient>,
    settings: KinesisLogSettings,
    cache: BatchCache,
    shards: RwLock<HashMap<String, ShardList>>,
    tails: Mutex<HashMap<(String, u32), Arc<Tail>>>,
    /// Each stream's creation time (shared state only: it keys the offset index).
    created: Mutex<HashMap<String, String>>,
    /// One PutRecords call at a time per partition, carrying every append queued for it, so
    /// batches keep their order and a batch's records are consecutive in the shard (as far as
    /// strait's own writes go).
    appends: Mutex<PartitionAppends>,
    fan_out: Option<Arc<Consumers>>,
    /// The last ListStreams answer and when it was asked for. AWS allows 5 ListStreams calls a second
    /// per account, shared by every replica and every other client, so one answer serves
    /// every caller for `LISTED_FOR`, and callers meanwhile wait for the one call in flight.
    listed: tokio::sync::Mutex<Option<(Instant, Vec<String>)>>,
}

/// How long one ListStreams answer is used.
const LISTED_FOR: Duration = Duration::from_millis(500);
/// Pauses before asking again for a ListStreams page the upstream throttled.
const LIST_RETRIES: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1_600),
];

impl KinesisLog {
    pub fn new(client: Arc<KinesisClient>, mut settings: KinesisLogSettings) -> Arc<KinesisLog> {
        let cache = moka::sync::Cache::builder()
            .max_capacity(settings.cache_bytes)
            .weigher(|_, b: &Bytes| u32::try_from(b.len()).unwrap_or(u32::MAX))
            .support_invalidation_closures()
            .build();
        let fan_out = settings
            .fan_out_consumer
            .clone()
            .map(|name| Consumers::new(client.clone(), name, settings.fan_out_sweep.take()));
        Arc::new(KinesisLog {
            fan_out,
            client,
            settings,
            cache,
            shards: RwLock::new(HashMap::new()),
            tails: Mutex::new(HashMap::new()),
            created: Mutex::new(HashMap::new()),
            appends: Mutex::new(HashMap::new()),
            listed: tokio::sync::Mutex::new(None),
        })
    }

    /// The streams that are topics, from one ListStreams answer asked for no earlier than
    /// `since`, shared by the callers it suits; a throttled page is asked for again after a
    /// pause (`LIST_RETRIES`).
    async fn stream_names(&self, since: Instant) -> StorageResult<Vec<String>> {
        let mut listed = self.listed.lock().await;
        if let Some((at, names)) = listed.as_ref() {
            if *at >= since {
                return Ok(names.clone());
            }
        }
        let asked = Instant::now();
        let mut names = Vec::new();
        let mut input = ListStreamsInput::default();
        loop {
            let out = self.list_streams_page(&input).await?;
            let last = out.stream_names.last().cloned();
            names.extend(
                out.stream_names
                    .into_iter()
                    .filter(|n| self.settings.streams.admits(n)),
            );
            match (out.has_more_streams, out.next_token, last) {
                (true, Some(token), _) => {
                    input = ListStreamsInput {
                        next_token: Some(token),
                        ..Default::default()
                    }
                }
                (true, None, Some(last)) => {
                    input = ListStreamsInput {
                        exclusive_start_stream_name: Some(last),
                        ..Default::default()
                    }
                }
                _ => break,
            }
        }
        // Streams deleted outside strait: what this replica knew of them goes, so a stream
        // made again under the name starts at offset 0.
        let known: Vec<String> = self.shards.read().keys().cloned().collect();
        for gone in known.iter().filter(|k| !names.contains(k)) {
            tracing::info!(stream = %gone, "stream deleted upstream; forgetting its offsets");
            self.forget(gone);
            if let Some(consumers) = &self.fan_out {
                consumers.forget(gone).await;
            }
        }
        *listed = Some((asked, names.clone()));
        Ok(names)
    }

    async fn list_streams_page(
        &self,
        input: &ListStreamsInput,
    ) -> StorageResult<ListStreamsOutput> {
        let mut pauses = LIST_RETRIES.iter();
        loop {
            match self.client.call("ListStreams", input).await {
                Ok(out) => return Ok(out),
                Err(e) if e.is_transient() && e.code().is_some() => match pauses.next() {
                    Some(pause) => {
                        tracing::debug!(error = %e, "ListStreams throttled; asking again");
                        tokio::time::sleep(*pause).await;
                    }
                    None => return Err(storage_error(e)),
                },
                Err(e) => return Err(storage_error(e)),
            }
        }
    }

    /// The stream's shards, from ListShards when the last list is older than `SHARDS_FRESH`
    /// or `fresh` is asked for.
    async fn shards(&self, stream: &str, fresh: bool) -> StorageResult<Arc<Vec<ShardInfo>>> {
        if !self.settings.streams.admits(stream) {
            return Err(StorageError::Refused {
                code: 3,
                class: Refusal::Failed,
                message: format!("stream {stream} is not among backend.kinesis.streams"),
            });
        }
        if !fresh {
            if let Some((at, s)) = self.shards.read().get(stream) {
                if at.elapsed() < SHARDS_FRESH {
                    return Ok(s.clone());
                }
            }
        }
        let all = list_shards(&self.client, stream)
            .await
            .map_err(storage_error)?;
        let shards = Arc::new(partitions_of(&all));
        self.shards
            .write()
            .insert(stream.to_string(), (Instant::now(), shards.clone()));
        Ok(shards)
    }

    async fn shard(&self, stream: &str, partition: u32) -> StorageResult<ShardInfo> {
        let find = |s: &[ShardInfo]| s.iter().find(|s| s.partition == partition).cloned();
        if let Some(s) = find(&self.shards(stream, false).await?) {
            return Ok(s);
        }
        find(&self.shards(stream, true).await?).ok_or_else(|| StorageError::Refused {
            code: 3,
            class: Refusal::Failed,
            message: format!("stream {stream} has no shard for partition {partition}"),
        })
    }

    async fn tail(&self, stream: &str, partition: u32) -> StorageResult<Arc<Tail>> {
        let key = (stream.to_string(), partition);
        if let Some(t) = self.tails.lock().get(&key) {
            return Ok(t.clone());
        }
        let shard = self.shard(stream, partition).await?;
        let store = match &self.settings.state {
            Some(table) => IndexStore::Shared(SharedIndex::new(
                table.clone(),
                stream,
                &shard.shard_id,
                &self.created(stream).await?,
            )),
            None => {
                let dir = self.stream_dir(stream);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| StorageError::io(format!("offset index {}", dir.display()), e))?;
                IndexStore::File(dir.join(format!("{partition}.idx")))
            }
        };
        let tail = Arc::new(
            Tail::open(
                stream,
                partition,
                shard.shard_id,
                store,
                Reading {
                    client: self.client.clone(),
                    cache: self.cache.clone(),
                    poll: self.settings.poll,
                    min_gap: Duration::from_millis(
                        1000 / u64::from(self.settings.max_reads_per_sec.max(1)),
                    ),
                    push: self.fan_out.is_some(),
                },
            )
            .await?,
        );
        let (tail, new) = {
            let mut tails = self.tails.lock();
            match tails.get(&key) {
                Some(t) => (t.clone(), false),
                None => {
                    tails.insert(key, tail.clone());
                    (tail, true)
                }
            }
        };
        if let (true, Some(consumers)) = (new, &self.fan_out) {
            fanout::spawn(
                Arc::downgrade(&tail),
                consumers.clone(),
                self.client.clone(),
            );
        }
        Ok(tail)
    }

    /// When the stream was made, as the upstream tells it (asked once per stream).
    async fn created(&self, stream: &str) -> StorageResult<String> {
        if let Some(c) = self.created.lock().get(stream) {
            return Ok(c.clone());
        }
        let at = match self
            .summary(stream)
            .await?
            .stream_description_summary
            .stream_creation_timestamp
        {
            Some(CreationTime(s)) => s,
            None => "0".into(),
        };
        self.created.lock().insert(stream.to_string(), at.clone());
        Ok(at)
    }

    fn stream_dir(&self, stream: &str) -> PathBuf {
        // Stream names may be "." or "..".
        self.settings.dir.join(format!("s-{stream}"))
    }

    async fn summary(&self, stream: &str) -> StorageResult<DescribeStreamSummaryOutput> {
        self.client
            .call(
                "DescribeStreamSummary",
                &StreamNameInput {
                    stream_name: stream,
                },
            )
            .await
            .map_err(storage_error)
    }

    /// Creates a stream of `shards` shards, or an ON_DEMAND one (Kinesis decides how many),
    /// and waits until it is ACTIVE.
    async fn create_stream(&self, stream: &str, shards: u32, on_demand: bool) -> StorageResult<()> {
        let input = if on_demand {
            CreateStreamInput {
                stream_name: stream,
                shard_count: None,
                stream_mode_details: Some(StreamModeDetails {
                    stream_mode: "ON_DEMAND".into(),
                }),
            }
        } else {
            CreateStreamInput {
                stream_name: stream,
                shard_count: Some(shards),
                stream_mode_details: None,
            }
        };
        let created: Result<Empty, _> = self.client.call("CreateStream", &input).await;
        match created {
            Ok(_) => {}
            Err(e) if e.is("ResourceInUseException") => {
                return Err(StorageError::Refused {
                    code: 36,
                    class: Refusal::Exists,
                    message: format!("stream {stream} already exists"),
                })
            }
            Err(e) => return Err(storage_error(e)),
        }
        let deadline = Instant::now() + CREATE_WAIT;
        loop {
            let s = self.summary(stream).await?;
            if s.stream_description_summary.stream_status == "ACTIVE" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "stream {stream} is not ACTIVE {CREATE_WAIT:?} after CreateStream"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// PutRecords entries for a batch's records, all aimed at `shard`.
    fn entries(
        &self,
        batch: CheckedBatch,
        shard: &ShardInfo,
    ) -> StorageResult<Vec<PutRecordsRequestEntry>> {
        let records = decode_batch(batch.freeze()).map_err(StorageError::CorruptBatch)?;
        let ehk = shard.start_hash.to_string();
        records
            .into_iter()
            .map(|r| {
                let e = PutRecordsRequestEntry {
                    partition_key: Some(partition_key(r.key.as_ref(), shard.partition)?),
                    data: Some(Blob(r.value.unwrap_or_default())),
                    explicit_hash_key: Some(ehk.clone()),
                };
                // Checked here, so one record Kinesis refuses cannot fail the other appends
                // its PutRecords call carries.
                if entry_size(&e) > MAX_RECORD_BYTES {
                    return Err(StorageError::Refused {
                        code: -1,
                        class: Refusal::TooLarge,
                        message: format!(
                            "a record of {} bytes (partition key and data) is over Kinesis's {MAX_RECORD_BYTES}",
                            entry_size(&e)
                        ),
                    });
                }
                Ok(e)
            })
            .collect()
    }

    /// Writes entries in PutRecords calls within Kinesis's limits, retrying throttled ones;
    /// returns each entry's (sequence number, shard id).
    async fn put(
        &self,
        stream: &str,
        entries: Vec<PutRecordsRequestEntry>,
    ) -> StorageResult<Vec<(String, String)>> {
        let deadline = Instant::now() + APPEND_BUDGET;
        let mut placed = Vec::with_capacity(entries.len());
        let mut rest = &entries[..];
        while !rest.is_empty() {
            let mut n = 0;
            let mut bytes = 0;
            for e in rest.iter().take(MAX_ENTRIES) {
                let size = entry_size(e);
                if n > 0 && bytes + size > MAX_BYTES {
                    break;
                }
                n += 1;
                bytes += size;
            }
            placed.extend(self.put_call(stream, &rest[..n], deadline).await?);
            rest = &rest[n..];
        }
        Ok(placed)
    }

    async fn put_call(
        &self,
        stream: &str,
        entries: &[PutRecordsRequestEntry],
        deadline: Instant,
    ) -> StorageResult<Vec<(String, String)>> {
        let mut placed: Vec<Option<(String, String)>> = vec![None; entries.len()];
        let mut pause = Duration::from_millis(100);
        loop {
            let todo: Vec<usize> = (0..entries.len())
                .filter(|i| placed[*i].is_none())
                .collect();
            if todo.is_empty() {
                return Ok(placed.into_iter().map(|p| p.expect("all placed")).collect());
            }
            let input = PutRecordsBody {
                stream_name: stream,
                records: todo.iter().map(|i| &entries[*i]).collect(),
            };
            let encode = |p| match p {
                Protocol::Cbor => cbor_records::put_records_input(stream, &input.records),
                Protocol::Json => codec::encode(p, &input),
            };
            let mut last_error = String::new();
            match self
                .client
                .call_encoded("PutRecords", encode, |b| {
                    cbor_records::put_records_output(b)
                })
                .await
            {
                Ok(out) => {
                    for (i, r) in todo.iter().zip(out.records) {
                        match (r.sequence_number, r.shard_id, r.error_code) {
                            (Some(seq), Some(shard), None) => placed[*i] = Some((seq, shard)),
                            (_, _, code) => {
                                let code = code.unwrap_or_default();
                                if !matches!(
                                    code.as_ref(),
                                    "ProvisionedThroughputExceededException" | "InternalFailure"
                                ) {
                                    return Err(StorageError::Unavailable(format!(
                                        "PutRecords to {stream}: {code}: {}",
                                        r.error_message.unwrap_or_default()
                                    )));
                                }
                                if code == "ProvisionedThroughputExceededException" {
                                    crate::observe::metrics()
                                        .upstream_throttled
                                        .with_label_values(&["PutRecords"])
                                        .inc();
                                }
                                last_error =
                                    format!("{code}: {}", r.error_message.unwrap_or_default());
                            }
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(%stream, error = %e, "PutRecords to retry");
                    if e.is("ProvisionedThroughputExceededException") {
                        crate::observe::metrics()
                            .upstream_throttled
                            .with_label_values(&["PutRecords"])
                            .inc();
                    }
                    last_error = e.to_string();
                }
                Err(e) => return Err(storage_error(e)),
            }
            if placed.iter().all(Option::is_some) {
                continue;
            }
            if Instant::now() + pause > deadline {
                return Err(StorageError::Unavailable(format!(
                    "PutRecords to {stream} still refused after {APPEND_BUDGET:?}: {last_error}"
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// KCL checkpoints ⇄ Kafka offsets, for consumer groups tied to a KCL lease table.
impl KinesisLog {
    /// The offset to read next after a KCL checkpoint (a sequence number and its index among
    /// a KPL aggregate's user records, or a sentinel); `None` for a checkpoint that names no
    /// record (LATEST, AT_TIMESTAMP): the group's reset policy decides.
    pub async fn offset_after_checkpoint(
        &self,
        stream: &str,
        partition: u32,
        checkpoint: &str,
        sub: u64,
    ) -> StorageResult<Option<i64>> {
        let tail = self.tail(stream, partition).await?;
        match checkpoint {
            "TRIM_HORIZON" => Ok(Some(tail.offsets().log_start)),
            "SHARD_END" => {
                tail.catch_up(Instant::now() + CATCH_UP).await?;
                Ok(Some(tail.offsets().high_watermark))
            }
            "LATEST" | "AT_TIMESTAMP" => Ok(None),
            seq if !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(
                tail.offset_after(seq, sub, Instant::now() + CATCH_UP)
                    .await?,
            )),
            other => Err(StorageError::Refused {
                code: -1,
                class: Refusal::InvalidArgument,
                message: format!("{other:?} is not a KCL checkpoint"),
            }),
        }
    }

    /// The KCL checkpoint for a committed offset (the next record to read): the record
    /// before it, TRIM_HORIZON before the first, SHARD_END past a closed shard's last.
    pub async fn checkpoint_before(
        &self,
        stream: &str,
        partition: u32,
        offset: i64,
    ) -> StorageResult<(String, u64)> {
        let tail = self.tail(stream, partition).await?;
        let offsets = tail.offsets();
        if offset <= offsets.log_start {
            return Ok(("TRIM_HORIZON".into(), 0));
        }
        if tail.ended() && offset >= offsets.high_watermark {
            return Ok(("SHARD_END".into(), 0));
        }
        tail.record_at(offset - 1).await?.ok_or_else(|| {
            StorageError::Unavailable(format!(
                "offset {} of {stream}/{partition} is not in the index (below the trim horizon?)",
                offset - 1
            ))
        })
    }
}

/// How long shutdown waits for one partition's queued offset-index writes.
const INDEX_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// PutRecords's input, borrowing the entries: a retry sends the same ones again, so they are
/// not cloned for each call.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsBody<'a> {
    stream_name: &'a str,
    records: Vec<&'a PutRecordsRequestEntry>,
}

/// The partition key a Kafka key becomes: the key itself when Kinesis can take it (UTF-8,
/// 1 to 256 characters); a null or empty key becomes the partition number, as the awslabs
/// Kafka connector writes it. Other keys are refused rather than rewritten, since a reader
/// would get back a key the producer never wrote.
fn partition_key(key: Option<&Bytes>, partition: u32) -> StorageResult<String> {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Ok(partition.to_string());
    };
    let refuse = |why: &str| StorageError::Refused {
        code: -1,
        class: Refusal::InvalidRecord,
        message: format!(
            "a record key {why}: Kinesis partition keys are 1 to 256 Unicode characters"
        ),
    };
    let text = std::str::from_utf8(key).map_err(|_| refuse("is not UTF-8"))?;
    if text.chars().count() > MAX_PARTITION_KEY_CHARS {
        return Err(refuse("is longer than 256 characters"));
    }
    Ok(text.to_string())
}

fn retention_hours(ms: Option<i64>) -> u32 {
    match ms {
        Some(ms) if ms >= 0 => {
            let hours = (ms + 3_599_999) / 3_600_000;
            hours.clamp(MIN_RETENTION_HOURS as i64, MAX_RETENTION_HOURS as i64) as u32
        }
        // Forever is the longest Kinesis keeps.
        _ => MAX_RETENTION_HOURS,
    }
}

#[async_trait]
impl Log for KinesisLog {
    async fn create_partitions(
        &self,
        topic: &str,
        partitions: Range<u32>,
        new: NewTopic,
    ) -> StorageResult<()> {
        let retention_ms = new.retention_ms;
        if !self.settings.streams.admits(topic) {
            return Err(StorageError::Refused {
                code: 44,
                class: Refusal::Policy,
                message: format!(
                    "stream {topic} is outside backend.kinesis.streams ({}): strait does not make or show it",
                    self.settings.streams.describe()
                ),
            });
        }
        let have = match self.shards(topic, true).await {
            // A new topic on a stream others made: the core adopts it as it is instead.
            Ok(_) if partitions.start == 0 => {
                return Err(StorageError::Refused {
                    code: 36,
                    class: Refusal::Exists,
                    message: format!("stream {topic} already exists"),
                })
            }
            Ok(s) => partition_count(&s),
            Err(StorageError::Refused { code: 3, .. }) if partitions.start == 0 => {
                self.create_stream(topic, partitions.end, new.on_demand)
                    .await?;
                if retention_ms.is_some() {
                    self.set_retention(topic, retention_ms).await?;
                }
                let made = partition_count(&self.shards(topic, true).await?);
                if made != partitions.end {
                    // Only an ON_DEMAND stream can differ; strait asks for Kinesis's 4.
                    tracing::warn!(stream = %topic, asked = partitions.end, made, "the upstream made another shard count; partitions follow its shards");
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if partitions.end <= have {
            return Ok(());
        }
        Err(StorageError::Refused {
            code: 37,
            class: Refusal::InvalidArgument,
            message: format!(
                "Kinesis stream {topic} has {have} shards; shards are added with UpdateShardCount (which closes every open shard and opens new ones), not by naming a partition count"
            ),
        })
    }

    async fn delete_topic(&self, topic: &str) -> StorageResult<()> {
        let deleted: Result<Empty, _> = self
            .client
            .call("DeleteStream", &StreamNameInput { stream_name: topic })
            .await;
        match deleted {
            Ok(_) => {}
            Err(e) if e.is("ResourceNotFoundException") => {}
            Err(e) => return Err(storage_error(e)),
        }
        self.forget(topic);
        if let Some(consumers) = &self.fan_out {
            consumers.forget(topic).await;
        }
        Ok(())
    }

    async fn topics(&self) -> StorageResult<Vec<(String, u32)>> {
        let since = Instant::now()
            .checked_sub(LISTED_FOR)
            .unwrap_or_else(Instant::now);
        self.topics_since(since).await
    }

    async fn topics_since(&self, since: Instant) -> StorageResult<Vec<(String, u32)>> {
        let names = self.stream_names(since).await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.shards(&name, true).await {
                Ok(s) => out.push((name, partition_count(&s))),
                // Being created or deleted: not a topic yet, or any more.
                Err(StorageError::Refused { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Shutdown: the partition's offset-index chunks still queued for the state table.
    async fn flush(&self, topic: &str, partition: u32) -> StorageResult<()> {
        let tail = self
            .tails
            .lock()
            .get(&(topic.to_string(), partition))
            .cloned();
        if let Some(tail) = tail {
            tail.flush_index(tokio::time::Instant::now() + INDEX_FLUSH_WAIT)
                .await;
        }
        Ok(())
    }

    async fn retention_ms(&self, topic: &str) -> StorageResult<Option<i64>> {
        let s = self.summary(topic).await?;
        Ok(Some(
            i64::from(s.stream_description_summary.retention_period_hours) * 3_600_000,
        ))
    }

    async fn on_demand(&self, topic: &str) -> StorageResult<Option<bool>> {
        let s = self.summary(topic).await?;
        Ok(Some(
            s.stream_description_summary
                .stream_mode_details
                .is_some_and(|m| m.stream_mode == "ON_DEMAND"),
        ))
    }

    async fn set_retention(&self, topic: &str, retention_ms: Option<i64>) -> StorageResult<()> {
        let want = retention_hours(retention_ms);
        let have = self
            .summary(topic)
            .await?
            .stream_description_summary
            .retention_period_hours;
        let op = match want.cmp(&have) {
            std::cmp::Ordering::Equal => return Ok(()),
            std::cmp::Ordering::Greater => "IncreaseStreamRetentionPeriod",
            std::cmp::Ordering::Less => "DecreaseStreamRetentionPeriod",
        };
        let _: Empty = self
            .client
            .call(
                op,
                &RetentionInput {
                    stream_name: topic,
                    retention_period_hours: want,
                },
            )
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        batch: CheckedBatch,
    ) -> StorageResult<AppendInfo> {
        let shard = self.shard(topic, partition).await?;
        let entries = self.entries(batch, &shard)?;
        let appends = self
            .appends
            .lock()
            .entry((topic.to_string(), partition))
            .or_default()
            .clone();
        let started = Instant::now();
        let n = entries.len();
        let placed = appends.submit(entries, |es| self.put(topic, es)).await?;
        let put_took = started.elapsed();
        // Throttled entries are written again after the rest, so the batch spans from its
        // lowest sequence number to its highest.
        let lowest = placed
            .iter()
            .min_by(|a, b| cmp_sequence_numbers(&a.0, &b.0));
        let highest = placed
            .iter()
            .max_by(|a, b| cmp_sequence_numbers(&a.0, &b.0));
        let (Some((first, first_shard)), Some((last, _))) = (lowest, highest) else {
            return Err(StorageError::CorruptBatch("a batch without records".into()));
        };
        // A closed shard's records went to the child now covering its hash range.
        let landed = if *first_shard == shard.shard_id {
            partition
        } else {
            crate::protocol::kinesis::shard_ids::parse_shard_id(first_shard).ok_or_else(|| {
                StorageError::Unavailable(format!("PutRecords answered shard {first_shard}"))
            })?
        };
        let tail = self.tail(topic, landed).await?;
        let deadline = Instant::now() + APPEND_BUDGET;
        tail.offset_of(last, deadline).await?;
        let base_offset = tail.offset_of(first, deadline).await?;
        tracing::debug!(%topic, partition, records = n, ?put_took, read_back = ?(started.elapsed() - put_took), "appended");
        Ok(AppendInfo {
            base_offset,
            log_append_time_ms: None,
            log_start: tail.offsets().log_start,
        })
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> StorageResult<ReadBatches> {
        self.tail(topic, partition)
            .await?
            .read(offset, max_bytes)
            .await
    }

    async fn offsets(&self, topic: &str, partition: u32) -> StorageResult<PartitionOffsets> {
        let tail = self.tail(topic, partition).await?;
        tail.catch_up(Instant::now() + CATCH_UP).await?;
        Ok(tail.offsets())
    }

    async fn max_timestamp_batch(
        &self,
        topic: &str,
        partition: u32,
    ) -> StorageResult<Option<(i64, i64)>> {
        let tail = self.tail(topic, partition).await?;
        tail.catch_up(Instant::now() + CATCH_UP).await?;
        Ok(tail.max_timestamp_chunk())
    }

    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> StorageResult<i64> {
        let tail = self.tail(topic, partition).await?;
        tail.catch_up(Instant::now() + CATCH_UP).await?;
        Ok(tail.offset_for_timestamp(timestamp_ms))
    }

    async fn created_ms(&self, topic: &str) -> StorageResult<Option<i64>> {
        // Seconds with a fraction, as a JSON number or its text.
        let at = self.created(topic).await?;
        Ok(at
            .trim_matches('"')
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0)
            .map(|s| (s * 1000.0).round() as i64))
    }
    async fn lineage(&self, topic: &str) -> StorageResult<Option<Vec<PartitionLineage>>> {
        let shards = self.shards(topic, false).await?;
        let tails = self.tails.lock();
        Ok(Some(
            shards
                .iter()
                .map(|s| {
                    // A closed shard's end is known once its reader has read it to the end
                    // (GetRecords or the subscription said so), not merely caught up.
                    let tail = tails.get(&(topic.to_string(), s.partition));
                    let offsets = tail.map(|t| t.offsets());
                    PartitionLineage {
                        partition: s.partition,
                        closed: s.closed,
                        parents: s.parents.clone(),
                        start: offsets.map_or(0, |o| o.log_start),
                        end: tail
                            .filter(|t| s.closed && t.ended())
                            .and(offsets.map(|o| o.high_watermark)),
                    }
                })
                .collect(),
        ))
    }

    /// Kinesis keeps no producer ids: idempotent retries are recognised while strait runs,
    /// not across a restart.
    async fn producer_batches(
        &self,
        _topic: &str,
        _partition: u32,
        _producer_id: i64,
    ) -> StorageResult<Vec<ProducerBatch>> {
        Ok(Vec::new())
    }
}

impl KinesisLog {
    /// Drops what this replica knew of a deleted stream: its readers, cached records and
    /// offset index, so a stream made again under the name starts at offset 0.
    fn forget(&self, topic: &str) {
        let mut gone = Vec::new();
        self.tails.lock().retain(|(s, _), t| {
            if s == topic {
                gone.push(t.clone());
            }
            s != topic
        });
        for t in gone {
            t.stop();
            t.discard_index();
        }
        self.shards.write().remove(topic);
        self.created.lock().remove(topic);
        let name: Arc<str> = Arc::from(topic);
        let _ = self
            .cache
            .invalidate_entries_if(move |(s, _, _), _| *s == name);
        let dir = self.stream_dir(topic);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a deleted stream's offset index");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_partition_keys_or_are_refused() {
        assert_eq!(partition_key(None, 3).unwrap(), "3");
        assert_eq!(partition_key(Some(&Bytes::new()), 7).unwrap(), "7");
        assert_eq!(
            partition_key(Some(&Bytes::from("ключ")), 0).unwrap(),
            "ключ"
        );
        let long = Bytes::from("é".repeat(256));
        assert_eq!(partition_key(Some(&long), 0).unwrap().chars().count(), 256);
        for bad in [Bytes::from(vec![0xff, 0xfe]), Bytes::from("x".repeat(257))] {
            assert!(matches!(
                partition_key(Some(&bad), 0),
                Err(StorageError::Refused {
                    class: Refusal::InvalidRecord,
                    ..
                })
            ));
        }
    }

    #[test]
    fn retention_is_whole_hours_within_kinesis_bounds() {
        assert_eq!(retention_hours(Some(3_600_000)), 24);
        assert_eq!(retention_hours(Some(7 * 24 * 3_600_000)), 168);
        assert_eq!(retention_hours(Some(168 * 3_600_000 + 1)), 169);
        assert_eq!(retention_hours(None), 8760);
        assert_eq!(retention_hours(Some(-1)), 8760);
        assert_eq!(retention_hours(Some(i64::MAX / 2)), 8760);
    }
}
