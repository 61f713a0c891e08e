//! One partition's view of its Kinesis shard: the one upstream reader this replica keeps for
//! it, and the offset index that reader builds. Offsets are dense and assigned in shard order
//! as records are first read (a KPL aggregate counts one offset per user record), so the same
//! shard always gives the same offsets. The index is sparse: a chunk per run of records
//! (first offset, record count, first and last sequence number, newest arrival time), kept
//! in memory and in its store (a file under `data_dir`, or the shared state table); the
//! records themselves stay in Kinesis and, once read, in the byte-bounded batch cache.
//! Chunk bounds depend only on the records and on where the index starts, not on how
//! GetRecords pages fell, so replicas sharing a store agree on them.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::watch;

use super::client::{storage_error, KinesisClient};
use super::shared_index::SharedIndex;
use crate::backend::{PartitionOffsets, ReadBatches, StorageError, StorageResult};
use crate::protocol::kafka::records::{encode_batch, NewRecord};
use crate::protocol::kinesis::aggregation;
use crate::protocol::kinesis::cbor_records::records_page;
use crate::protocol::kinesis::sequence::cmp_sequence_numbers;
use crate::protocol::kinesis::shapes::{
    GetRecordsInput, GetRecordsOutput, GetShardIteratorInput, GetShardIteratorOutput, Record,
};

/// Whole batches read from the upstream, by (stream, partition, first offset).
pub type BatchCache = moka::sync::Cache<(Arc<str>, u32, i64), Bytes>;

/// Records per GetRecords call (Kinesis's maximum).
const PAGE: i64 = 10_000;
/// A chunk holds at most this many records and bytes, so one GetRecords call (10,000 records,
/// 10 MiB) always reads it whole again.
const MERGE_MAX_RECORDS: i64 = 2_000;
const MERGE_MAX_BYTES: u64 = 2 << 20;
/// How long an urgent reader waits for a subscription to push more.
const PUSH_WAIT: Duration = Duration::from_millis(100);
/// Recently indexed records' sequence numbers, so a producer finds the offset its record got.
const RECENT_KEPT: usize = 20_000;
/// How long a read past the index's end may spend reading the shard to its newest record.
const BEYOND_WAIT: Duration = Duration::from_secs(10);
/// The index file is rewritten without trimmed chunks once this many are gone.
const PRUNE_LINES: usize = 1_000;
/// A local index writes its growing chunk once the shard has had no new record for this
/// long, or the chunk has grown for `GROWING_MAX` (`seal_if_due`).
const QUIET_SEAL: Duration = Duration::from_secs(600);
const GROWING_MAX: Duration = Duration::from_secs(3_600);

/// A run of records read from the shard in one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub base: i64,
    pub count: i64,
    pub first_seq: String,
    pub last_seq: String,
    pub max_ts: i64,
    /// Data and partition-key bytes of its Kinesis records.
    pub bytes: u64,
}

impl Chunk {
    pub(super) fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            self.base, self.count, self.first_seq, self.last_seq, self.max_ts, self.bytes
        )
    }

    pub(super) fn parse(line: &str) -> Option<Chunk> {
        let mut f = line.split(' ');
        let c = Chunk {
            base: f.next()?.parse().ok()?,
            count: f.next()?.parse().ok()?,
            first_seq: f.next()?.to_string(),
            last_seq: f.next()?.to_string(),
            max_ts: f.next()?.parse().ok()?,
            bytes: f.next()?.parse().ok()?,
        };
        (f.next().is_none() && c.count > 0).then_some(c)
    }

    fn end(&self) -> i64 {
        self.base + self.count
    }

    /// A chunk of one Kinesis record (of `count` user records).
    fn of(r: &Record, base: i64, count: i64) -> Chunk {
        Chunk {
            base,
            count,
            first_seq: r.sequence_number.clone(),
            last_seq: r.sequence_number.clone(),
            max_ts: r.approximate_arrival_timestamp.0,
            bytes: record_bytes(r),
        }
    }

    /// Takes the next Kinesis record if the chunk stays within what one GetRecords call
    /// reads again whole. The caller sets `last_seq` once it is done taking.
    fn take(&mut self, r: &Record, count: i64) -> bool {
        let bytes = record_bytes(r);
        if self.count + count > MERGE_MAX_RECORDS || self.bytes + bytes > MERGE_MAX_BYTES {
            return false;
        }
        self.count += count;
        self.max_ts = self.max_ts.max(r.approximate_arrival_timestamp.0);
        self.bytes += bytes;
        true
    }
}

/// What a Kinesis record weighs in a chunk: its data and partition key.
fn record_bytes(r: &Record) -> u64 {
    (r.data.0.len() + r.partition_key.len()) as u64
}

/// The chunks a page of records makes, starting at offset `base`: the growing chunk (if
/// any) takes records while it can, then new chunks follow. `firsts` holds each record's
/// first offset and `end` the offset after the page. All but the last chunk are full.
fn chunks_after(
    growing: Option<Chunk>,
    records: &[Record],
    firsts: &[i64],
    end: i64,
) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = growing.into_iter().collect();
    // The index of each chunk's last record in `records`, once it took one.
    let mut lasts: Vec<Option<usize>> = vec![None; out.len()];
    for (n, r) in records.iter().enumerate() {
        let count = firsts.get(n + 1).copied().unwrap_or(end) - firsts[n];
        if out.last_mut().is_some_and(|c| c.take(r, count)) {
            if let Some(last) = lasts.last_mut() {
                *last = Some(n);
            }
        } else {
            out.push(Chunk::of(r, firsts[n], count));
            lasts.push(Some(n));
        }
    }
    for (c, last) in out.iter_mut().zip(lasts) {
        if let Some(n) = last {
            c.last_seq.clone_from(&records[n].sequence_number);
        }
    }
    out
}

#[derive(Debug, Default)]
struct Index {
    chunks: BTreeMap<i64, Chunk>,
    next_offset: i64,
    log_start: i64,
    /// The shard is closed and read to its end.
    ended: bool,
    /// (sequence number, first offset) of recent records, in shard order.
    recent: VecDeque<(String, i64)>,
    /// The end of the chunks written to the index file. The chunk after it is still growing;
    /// after a crash its records are read again and numbered the same.
    persisted_end: i64,
    /// Chunks dropped below the trim horizon since the file was last rewritten.
    pruned: usize,
    /// The growing chunk's base, and since when this process has seen it grow.
    growing_since: Option<(i64, Instant)>,
}

impl Index {
    /// The index an index file holds, and how many of its bytes are whole lines that follow
    /// on. Lines are only ever appended, so the first line that is cut short (a crash
    /// mid-write) or does not follow on ends the index; the file is cut there, and what those
    /// lines indexed is read again and numbered the same. The first line may start past 0:
    /// chunks below the trim horizon are pruned from the file.
    fn load(text: &str) -> (Index, usize) {
        let mut index = Index::default();
        let mut kept = 0;
        for line in text.split_inclusive('\n') {
            match line.strip_suffix('\n').and_then(Chunk::parse) {
                Some(chunk) if index.follow_on(chunk.clone()) => kept += line.len(),
                _ => break,
            }
        }
        index.loaded();
        (index, kept)
    }

    /// The index stored chunks make: the run that ends at the newest, each following on
    /// from the one before (pruning deletes the oldest, perhaps out of order).
    fn of_chunks(mut chunks: Vec<Chunk>) -> Index {
        chunks.sort_by_key(|c| c.base);
        let mut from = chunks.len();
        while from > 0 && (from == chunks.len() || chunks[from - 1].end() == chunks[from].base) {
            from -= 1;
        }
        let mut index = Index::default();
        for chunk in chunks.drain(from..) {
            index.follow_on(chunk);
        }
        index.loaded();
        index
    }

    /// Adds a stored chunk if it starts where the index ends (or is the first).
    fn follow_on(&mut self, chunk: Chunk) -> bool {
        if chunk.base != self.next_offset && !self.chunks.is_empty() {
            return false;
        }
        self.next_offset = chunk.end();
        self.chunks.insert(chunk.base, chunk);
        true
    }

    fn loaded(&mut self) {
        self.log_start = self.chunks.keys().next().copied().unwrap_or(0);
        self.persisted_end = self.next_offset;
    }

    /// Forgets the chunks wholly below `start` except the newest, and the newest written to
    /// the file (a restart resumes reading after it); returns how many went.
    fn prune_below(&mut self, start: i64) -> usize {
        let persisted_end = self.persisted_end;
        let newest = self.chunks.keys().next_back().copied();
        let newest_written = self
            .chunks
            .values()
            .rev()
            .find(|c| c.end() <= persisted_end)
            .map(|c| c.base);
        let gone: Vec<i64> = self
            .chunks
            .values()
            .filter(|c| {
                c.end() <= start && Some(c.base) != newest && Some(c.base) != newest_written
            })
            .map(|c| c.base)
            .collect();
        for base in &gone {
            self.chunks.remove(base);
        }
        gone.len()
    }

    /// The file's text for the chunks held that were written to it.
    fn file_text(&self) -> String {
        self.chunks
            .values()
            .filter(|c| c.end() <= self.persisted_end)
            .map(Chunk::line)
            .collect()
    }

    fn last_seq(&self) -> Option<&str> {
        self.chunks
            .values()
            .next_back()
            .map(|c| c.last_seq.as_str())
    }
}

#[derive(Debug, Default)]
struct Reader {
    /// An iterator just past the newest indexed record.
    iterator: Option<String>,
    last_call: Option<Instant>,
    /// The last call found nothing new.
    caught_up: bool,
}

/// How every partition of the log reads its shard.
#[derive(Clone)]
pub struct Reading {
    pub client: Arc<KinesisClient>,
    pub cache: BatchCache,
    /// How long a caught-up reader waits before asking the shard again.
    pub poll: Duration,
    /// The shortest time between two GetRecords calls on one shard: Kinesis allows five a
    /// second, shared by every reader of the shard, and strait leaves the others theirs.
    pub min_gap: Duration,
    /// Records are pushed by a subscription (`fanout.rs`) instead of polled.
    pub push: bool,
}

/// Where a partition's offset index is kept.
pub enum IndexStore {
    /// A file under `data_dir`, lines appended (`state.type: local`, one replica).
    File(PathBuf),
    /// The shared state table (`state.type: dynamodb`).
    Shared(SharedIndex),
}

/// The index in `file`, cut after its last whole line when a crash left half of one.
fn load_file(file: &Path) -> StorageResult<Index> {
    let context = || format!("offset index {}", file.display());
    match std::fs::read_to_string(file) {
        Ok(text) => {
            let (index, kept) = Index::load(&text);
            if kept < text.len() {
                tracing::warn!(file = %file.display(), kept, len = text.len(), "offset index cut after its last whole line");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(file)
                    .and_then(|f| f.set_len(kept as u64))
                    .map_err(|e| StorageError::io(context(), e))?;
            }
            Ok(index)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
        Err(e) => Err(StorageError::io(context(), e)),
    }
}

pub struct Tail {
    stream: Arc<str>,
    partition: u32,
    shard_id: String,
    client: Arc<KinesisClient>,
    cache: BatchCache,
    store: IndexStore,
    poll: Duration,
    min_gap: Duration,
    push: bool,
    /// The pushed records have reached the shard's newest.
    push_at_tip: AtomicBool,
    index: RwLock<Index>,
    /// The index's end offset, for those waiting for it to grow.
    grown: watch::Sender<i64>,
    reader: tokio::sync::Mutex<Reader>,
    /// Held while a page is numbered into the index or the growing chunk is written: the
    /// shutdown's `seal` must not cut a chunk a page is extending.
    indexing: parking_lot::Mutex<()>,
}

impl Tail {
    /// The partition's reader, with the index a previous run (or another replica) left in
    /// `store`.
    pub async fn open(
        stream: &str,
        partition: u32,
        shard_id: String,
        store: IndexStore,
        reading: Reading,
    ) -> StorageResult<Tail> {
        let Reading {
            client,
            cache,
            poll,
            min_gap,
            push,
        } = reading;
        let index = match &store {
            IndexStore::File(file) => load_file(file)?,
            IndexStore::Shared(shared) => Index::of_chunks(shared.load().await?),
        };
        let (grown, _) = watch::channel(index.next_offset);
        Ok(Tail {
            stream: Arc::from(stream),
            partition,
            shard_id,
            client,
            cache,
            store,
            poll,
            min_gap,
            push,
            push_at_tip: AtomicBool::new(false),
            index: RwLock::new(index),
            grown,
            reader: tokio::sync::Mutex::new(Reader::default()),
            indexing: parking_lot::Mutex::new(()),
        })
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// The shard is closed and every record of it indexed.
    pub fn ended(&self) -> bool {
        self.index.read().ended
    }

    pub fn last_seq(&self) -> Option<String> {
        self.index.read().last_seq().map(str::to_string)
    }

    /// A shared index nobody has started yet: its first record must be agreed first.
    pub fn needs_start(&self) -> bool {
        matches!(self.store, IndexStore::Shared(_)) && self.index.read().chunks.is_empty()
    }

    /// Makes `first` offset 0 of a shared index, as a chunk of its own stored before any
    /// offset is given out. When another replica started the index at another record (the
    /// trim horizon moves), this one takes the stored index instead and returns false: the
    /// caller reads on after its end.
    pub async fn claim_start(&self, first: &Record) -> StorageResult<bool> {
        let IndexStore::Shared(shared) = &self.store else {
            return Ok(true);
        };
        // Other replicas may have gone far since this reader opened (its chunk 0 even
        // pruned): what is stored wins.
        let mut stored = shared.load().await?;
        if stored.is_empty() {
            let (users, _) = kafka_records(std::slice::from_ref(first));
            let chunk = Chunk::of(first, 0, users.len() as i64);
            if shared.start(&chunk).await? {
                let mut batch = encode_batch(&users);
                batch.place_at(0);
                self.cache
                    .insert((self.stream.clone(), self.partition, 0), batch.freeze());
                let mut i = self.index.write();
                if !i.chunks.is_empty() {
                    return Ok(false);
                }
                i.persisted_end = chunk.end();
                i.next_offset = chunk.end();
                i.recent.push_back((first.sequence_number.clone(), 0));
                i.chunks.insert(0, chunk);
                let _ = self.grown.send(i.next_offset);
                return Ok(true);
            }
            stored = shared.load().await?;
        }
        let stored = Index::of_chunks(stored);
        tracing::info!(stream = %self.stream, partition = self.partition, next_offset = stored.next_offset, "another replica started this shard's index; reading on from it");
        *self.index.write() = stored;
        self.push_at_tip.store(false, Ordering::Release);
        self.grown.send_modify(|_| {});
        Ok(false)
    }

    /// Records a subscription pushed, in shard order, right after the newest indexed one.
    pub fn pushed(&self, records: Vec<Record>, at_tip: bool, ended: bool) -> StorageResult<()> {
        self.push_at_tip.store(at_tip, Ordering::Release);
        self.index_page(records)?;
        if ended {
            self.seal()?;
            self.index.write().ended = true;
        }
        // Waiters for the tip or the end look again, also after an event without records.
        self.grown.send_modify(|_| {});
        Ok(())
    }

    /// The stream is gone: nothing more will be read.
    pub fn stop(&self) {
        self.index.write().ended = true;
        self.grown.send_modify(|_| {});
    }

    /// Waits until the index grows or `deadline` comes.
    async fn grown_or(&self, mut seen: watch::Receiver<i64>, deadline: Instant) {
        let _ = tokio::time::timeout_at(deadline.into(), seen.changed()).await;
    }

    pub fn offsets(&self) -> PartitionOffsets {
        let i = self.index.read();
        PartitionOffsets {
            log_start: i.log_start,
            high_watermark: i.next_offset,
            last_timestamp_ms: i.chunks.values().next_back().map(|c| c.max_ts),
        }
    }

    /// Asks the shard for records past the index's end, unless it was asked less than the
    /// poll interval ago and had nothing (or, when `urgent`, less than the per-call gap
    /// ago, which is then waited out). Returns once the index holds what that call read:
    /// whether the index has reached the shard's end as far as this replica knows.
    pub async fn advance(&self, urgent: bool) -> StorageResult<bool> {
        if self.index.read().ended {
            return Ok(true);
        }
        if self.push {
            if urgent {
                let seen = self.grown.subscribe();
                self.grown_or(seen, Instant::now() + PUSH_WAIT).await;
            }
            return Ok(self.push_at_tip.load(Ordering::Acquire));
        }
        let started = Instant::now();
        let mut reader = self.reader.lock().await;
        if let Some(last) = reader.last_call {
            // Someone else called while this one waited for the lock.
            if last >= started && !urgent {
                return Ok(reader.caught_up);
            }
            let gap = if reader.caught_up && !urgent {
                self.poll.max(self.min_gap)
            } else {
                self.min_gap
            };
            let since = last.elapsed();
            if since < gap {
                if !urgent {
                    return Ok(reader.caught_up);
                }
                tokio::time::sleep(gap - since).await;
            }
        }
        let iterator = match reader.iterator.take() {
            Some(it) => it,
            None => self.tip_iterator().await?,
        };
        reader.last_call = Some(Instant::now());
        let page: GetRecordsOutput = match self
            .client
            .call_fast(
                "GetRecords",
                &GetRecordsInput {
                    shard_iterator: Some(iterator),
                    limit: Some(PAGE),
                    stream_arn: None,
                },
                |b| records_page(b).map(GetRecordsOutput::from),
            )
            .await
        {
            Ok(page) => page,
            // A fresh iterator next time.
            Err(e) if e.is("ExpiredIteratorException") => return Ok(false),
            Err(e) if e.is_transient() => {
                if e.is("ProvisionedThroughputExceededException") {
                    crate::observe::metrics()
                        .upstream_throttled
                        .with_label_values(&["GetRecords"])
                        .inc();
                }
                tracing::debug!(stream = %self.stream, partition = self.partition, error = %e, "GetRecords deferred");
                return Ok(false);
            }
            Err(e) => return Err(storage_error(e)),
        };
        reader.caught_up = page.records.is_empty()
            || (page.millis_behind_latest == 0 && (page.records.len() as i64) < PAGE);
        let ended = page.next_shard_iterator.is_none();
        let mut records = page.records;
        if !records.is_empty() && self.needs_start() {
            if !self.claim_start(&records[0]).await? {
                // A fresh iterator after the stored index's end.
                reader.caught_up = false;
                return Ok(false);
            }
            records.remove(0);
        }
        // Only once the page is numbered does the reader move past it.
        self.index_page(records)?;
        reader.iterator = page.next_shard_iterator;
        if ended {
            self.seal()?;
            self.index.write().ended = true;
            return Ok(true);
        }
        Ok(reader.caught_up)
    }

    /// Reads on until the index has the shard's newest records, or `deadline` comes: what
    /// "the high watermark" means to a client asking for it.
    pub async fn catch_up(&self, deadline: Instant) -> StorageResult<()> {
        if self.push {
            loop {
                let seen = self.grown.subscribe();
                if self.push_at_tip.load(Ordering::Acquire)
                    || self.ended()
                    || Instant::now() >= deadline
                {
                    return Ok(());
                }
                self.grown_or(seen, deadline).await;
            }
        }
        let mut at_tip = self.advance(false).await?;
        while !at_tip && Instant::now() < deadline {
            at_tip = self.advance(true).await?;
        }
        Ok(())
    }

    async fn tip_iterator(&self) -> StorageResult<String> {
        let after = self.index.read().last_seq().map(str::to_string);
        let input = GetShardIteratorInput {
            stream_name: Some(self.stream.to_string()),
            shard_id: Some(self.shard_id.clone()),
            shard_iterator_type: Some(
                if after.is_some() {
                    "AFTER_SEQUENCE_NUMBER"
                } else {
                    "TRIM_HORIZON"
                }
                .into(),
            ),
            starting_sequence_number: after,
            ..Default::default()
        };
        let out: GetShardIteratorOutput = self
            .client
            .call("GetShardIterator", &input)
            .await
            .map_err(storage_error)?;
        Ok(out.shard_iterator)
    }

    /// Gives the page's records the next offsets and adds them to the index: the growing
    /// chunk takes records while it can, then new chunks follow, each full one written to
    /// the store. The page is cached as a batch per chunk it touches, under the batch's
    /// first offset, before the index shows the new offsets.
    fn index_page(&self, records: Vec<Record>) -> StorageResult<()> {
        let _indexing = self.indexing.lock();
        self.seal_if_due()?;
        if records.is_empty() {
            return Ok(());
        }
        let (base, growing) = {
            let i = self.index.read();
            let growing = i
                .chunks
                .values()
                .next_back()
                .filter(|c| c.base >= i.persisted_end)
                .cloned();
            (i.next_offset, growing)
        };
        let (users, starts) = kafka_records(&records);
        let end = base + users.len() as i64;
        let firsts: Vec<i64> = starts.iter().map(|s| base + *s as i64).collect();
        let had_growing = growing.is_some();
        let chunks = chunks_after(growing, &records, &firsts, end);
        // Records from `at` on belong to the chunk at hand.
        let mut at = 0;
        for c in &chunks {
            let upto = firsts.partition_point(|f| *f < c.end());
            if upto > at {
                let mut batch = encode_batch(
                    &users[starts[at]..starts.get(upto).copied().unwrap_or(users.len())],
                );
                batch.place_at(firsts[at]);
                self.cache.insert(
                    (self.stream.clone(), self.partition, firsts[at]),
                    batch.freeze(),
                );
            }
            at = upto;
        }
        let mut i = self.index.write();
        if had_growing {
            i.chunks.remove(&chunks[0].base);
        }
        let last = chunks.len() - 1;
        for (n, c) in chunks.into_iter().enumerate() {
            if n < last {
                self.persist(&c)?;
                i.persisted_end = c.end();
            }
            i.chunks.insert(c.base, c);
        }
        i.next_offset = end;
        for (r, first) in records.iter().zip(firsts) {
            i.recent.push_back((r.sequence_number.clone(), first));
        }
        while i.recent.len() > RECENT_KEPT {
            i.recent.pop_front();
        }
        let growing = i
            .chunks
            .values()
            .next_back()
            .filter(|c| c.base >= i.persisted_end)
            .map(|c| c.base);
        if growing.is_some() && i.growing_since.map(|(b, _)| b) != growing {
            i.growing_since = growing.map(|b| (b, Instant::now()));
        }
        let _ = self.grown.send(i.next_offset);
        Ok(())
    }

    /// A local index (`state.type: local`, one replica) writes its growing chunk to the file
    /// once the shard has been quiet for `QUIET_SEAL`, or the chunk has grown for
    /// `GROWING_MAX`. Otherwise a crash, then a restart after the chunk's records had been
    /// trimmed (a quiet stream, records older than its retention), would number the next
    /// records from the chunk's start and hand out its offsets again. A chunk cut by time is
    /// shorter than one cut by records, which one replica may do; replicas sharing an index
    /// must cut it alike, so a shared index does not (`docs/operations.md`).
    fn seal_if_due(&self) -> StorageResult<()> {
        if !matches!(self.store, IndexStore::File(_)) {
            return Ok(());
        }
        let due = {
            let i = self.index.read();
            i.chunks
                .values()
                .next_back()
                .filter(|c| c.base >= i.persisted_end)
                .is_some_and(|c| {
                    let quiet = crate::clock::now_ms() - c.max_ts > QUIET_SEAL.as_millis() as i64;
                    let long = i
                        .growing_since
                        .is_some_and(|(b, t)| b == c.base && t.elapsed() > GROWING_MAX);
                    quiet || long
                })
        };
        if due {
            self.seal_growing()?;
        }
        Ok(())
    }

    /// Writes the growing chunk to the index file (the shard ended: nothing will join it;
    /// or shutdown).
    fn seal(&self) -> StorageResult<()> {
        let _indexing = self.indexing.lock();
        self.seal_growing()
    }

    /// `seal`, with `indexing` held.
    fn seal_growing(&self) -> StorageResult<()> {
        let mut i = self.index.write();
        let persisted_end = i.persisted_end;
        if let Some(last) = i
            .chunks
            .values()
            .next_back()
            .filter(|c| c.base >= persisted_end)
        {
            let full = last.clone();
            self.persist(&full)?;
            i.persisted_end = full.end();
        }
        Ok(())
    }

    /// Shutdown: a local index writes its growing chunk (the next start numbers on after it
    /// even if its records are trimmed by then); a shared one waits for the chunks queued
    /// for the state table, until `until`.
    pub async fn flush_index(&self, until: tokio::time::Instant) {
        if matches!(self.store, IndexStore::File(_)) {
            if let Err(e) = self.seal() {
                tracing::warn!(stream = %self.stream, partition = self.partition, error = %e, "cannot write the growing offset-index chunk at shutdown");
            }
        }
        if let IndexStore::Shared(shared) = &self.store {
            if !shared.flush(until).await {
                tracing::warn!(stream = %self.stream, partition = self.partition, "offset-index chunks still unwritten at shutdown; the next replica to load the index reads them again");
            }
        }
    }

    fn persist(&self, chunk: &Chunk) -> StorageResult<()> {
        let file = match &self.store {
            IndexStore::File(file) => file,
            IndexStore::Shared(shared) => {
                shared.put(chunk);
                return Ok(());
            }
        };
        let context = || format!("offset index {}", file.display());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| StorageError::io(context(), e))?;
        f.write_all(chunk.line().as_bytes())
            .map_err(|e| StorageError::io(context(), e))
    }

    /// The stream is deleted: its shared index goes too (a file index goes with its
    /// directory).
    pub fn discard_index(&self) {
        if let IndexStore::Shared(shared) = &self.store {
            shared.drop_all();
        }
    }

    /// The offset a record got, once this reader has read it: reads on until the index has
    /// passed `seq` or `deadline` comes.
    pub async fn offset_of(&self, seq: &str, deadline: Instant) -> StorageResult<i64> {
        loop {
            let seen = self.grown.subscribe();
            // Some(Ok(offset)) from the recent records; Some(Err(chunk)) read longer ago.
            let found: Option<Result<i64, Option<Chunk>>> = {
                let i = self.index.read();
                if i.last_seq()
                    .is_some_and(|last| cmp_sequence_numbers(last, seq).is_ge())
                {
                    Some(
                        match i
                            .recent
                            .binary_search_by(|(s, _)| cmp_sequence_numbers(s, seq))
                        {
                            Ok(at) => Ok(i.recent[at].1),
                            Err(_) => Err(i
                                .chunks
                                .values()
                                .find(|c| cmp_sequence_numbers(&c.last_seq, seq).is_ge())
                                .cloned()),
                        },
                    )
                } else if i.ended {
                    return Err(StorageError::Unavailable(format!(
                        "record {seq} is not in the closed shard {}/{}",
                        self.stream, self.shard_id
                    )));
                } else {
                    None
                }
            };
            match found {
                Some(Ok(offset)) => return Ok(offset),
                // Read longer ago than the recent records kept: from its chunk.
                Some(Err(chunk)) => {
                    let positions = match chunk {
                        Some(c) => self.chunk_positions(&c).await?,
                        None => Vec::new(),
                    };
                    return positions
                        .iter()
                        .find(|(s, _)| s == seq)
                        .map(|(_, first)| *first)
                        .ok_or_else(|| {
                            StorageError::Unavailable(format!(
                                "record {seq} is not in {}/{} where the index places it",
                                self.stream, self.shard_id
                            ))
                        });
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "the records written to {}/{} were not readable back in time",
                    self.stream, self.shard_id
                )));
            }
            if self.push {
                self.grown_or(seen, deadline).await;
            } else {
                self.advance(true).await?;
            }
        }
    }

    /// The offset to read next after the user record `sub` of record `seq` (a KCL
    /// checkpoint): reads on until the index has passed `seq`; a record no longer kept (trimmed
    /// or pruned) leaves the first record still kept after it.
    pub async fn offset_after(&self, seq: &str, sub: u64, deadline: Instant) -> StorageResult<i64> {
        loop {
            let seen = self.grown.subscribe();
            // Some(Ok(offset)) answered at once; Some(Err(chunk)) its chunk is to be read.
            let found: Option<Result<i64, Chunk>> = {
                let i = self.index.read();
                if i.last_seq()
                    .is_some_and(|last| cmp_sequence_numbers(last, seq).is_ge())
                {
                    let kept = i
                        .chunks
                        .values()
                        .find(|c| cmp_sequence_numbers(&c.last_seq, seq).is_ge());
                    Some(
                        match (
                            i.recent
                                .binary_search_by(|(s, _)| cmp_sequence_numbers(s, seq)),
                            kept,
                        ) {
                            (Ok(at), _) => Ok(i.recent[at].1 + sub as i64 + 1),
                            (Err(_), Some(c))
                                if cmp_sequence_numbers(&c.first_seq, seq).is_gt() =>
                            {
                                Ok(c.base.max(i.log_start))
                            }
                            (Err(_), Some(c)) => Err(c.clone()),
                            (Err(_), None) => Ok(i.next_offset),
                        },
                    )
                } else if i.ended {
                    Some(Ok(i.next_offset))
                } else {
                    None
                }
            };
            match found {
                Some(Ok(offset)) => return Ok(offset),
                Some(Err(chunk)) => {
                    let positions = self.chunk_positions(&chunk).await?;
                    if positions.is_empty() {
                        // Trimmed since: what follows the chunk is what is left.
                        return Ok(chunk.end().max(self.offsets().log_start));
                    }
                    return positions
                        .iter()
                        .find(|(s, _)| s == seq)
                        .map(|(_, first)| first + sub as i64 + 1)
                        .ok_or_else(|| {
                            StorageError::Unavailable(format!(
                                "record {seq} is not in {}/{} where the index places it",
                                self.stream, self.shard_id
                            ))
                        });
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "{}/{} was not read as far as {seq} in time",
                    self.stream, self.shard_id
                )));
            }
            if self.push {
                self.grown_or(seen, deadline).await;
            } else {
                self.advance(true).await?;
            }
        }
    }

    /// The record at `offset` as (sequence number, its index among a KPL aggregate's user
    /// records): from the recent records this reader keeps, else by reading its chunk again.
    pub async fn record_at(&self, offset: i64) -> StorageResult<Option<(String, u64)>> {
        let recent = {
            let i = self.index.read();
            if offset < i.log_start || offset >= i.next_offset {
                return Ok(None);
            }
            // The recent records cover offsets from their first one's on.
            match i.recent.front() {
                Some((_, from)) if *from <= offset => {
                    let at = i.recent.partition_point(|(_, first)| *first <= offset);
                    let (seq, first) = &i.recent[at - 1];
                    Some((seq.clone(), (offset - first) as u64))
                }
                _ => None,
            }
        };
        if recent.is_some() {
            return Ok(recent);
        }
        let Some(chunk) = self.chunk_holding(offset) else {
            return Ok(None);
        };
        let positions = self.chunk_positions(&chunk).await?;
        let at = positions.partition_point(|(_, first)| *first <= offset);
        Ok(at
            .checked_sub(1)
            .map(|a| (positions[a].0.clone(), (offset - positions[a].1) as u64)))
    }

    /// Each record of `chunk` as (sequence number, first offset), read from the shard again
    /// (within the reader's call budget); empty when Kinesis no longer keeps all of it.
    async fn chunk_positions(&self, chunk: &Chunk) -> StorageResult<Vec<(String, i64)>> {
        let mut reader = self.reader.lock().await;
        let Some(page) = self.page_from(&mut reader, &chunk.first_seq).await? else {
            return Ok(Vec::new());
        };
        let short = || {
            StorageError::Unavailable(format!(
                "re-reading {}/{} from {} returned less than the index holds; try again",
                self.stream, self.shard_id, chunk.first_seq
            ))
        };
        // Kinesis may answer a page with no records while more follow.
        let first = page.records.first().ok_or_else(short)?;
        if first.sequence_number != chunk.first_seq {
            // Its first records are trimmed: the chunk is not whole any more.
            return Ok(Vec::new());
        }
        let end = page
            .records
            .iter()
            .position(|r| r.sequence_number == chunk.last_seq)
            .ok_or_else(short)?
            + 1;
        let records = &page.records[..end];
        let (_, firsts) = to_batch(records, chunk.base);
        Ok(records
            .iter()
            .zip(firsts)
            .map(|(r, first)| (r.sequence_number.clone(), first))
            .collect())
    }

    /// Whole batches from `offset` on, up to about `max_bytes`: from the cache, or read again
    /// from the shard at the chunk's first sequence number.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> StorageResult<ReadBatches> {
        let high_watermark = self.offsets().high_watermark;
        if offset > high_watermark {
            // Past what this replica has read: another replica sharing the index may have
            // given that offset out, so read on until the index reaches it before calling it
            // out of range.
            let deadline = Instant::now() + BEYOND_WAIT;
            loop {
                let seen = self.grown.subscribe();
                if self.offsets().high_watermark >= offset
                    || self.ended()
                    || Instant::now() >= deadline
                {
                    break;
                }
                if self.push {
                    self.grown_or(seen, deadline).await;
                } else {
                    self.advance(true).await?;
                }
            }
        } else if offset == high_watermark {
            self.advance(false).await?;
        }
        let offsets = self.offsets();
        let mut out = ReadBatches {
            offsets,
            ..Default::default()
        };
        let mut at = offset.max(offsets.log_start);
        let mut bytes = 0usize;
        while at < offsets.high_watermark && (out.batches.is_empty() || bytes < max_bytes) {
            let Some(chunk) = self.chunk_holding(at) else {
                break;
            };
            let batch = match self.cached_holding(&chunk, at) {
                Some(b) => b,
                None => match self.refill(&chunk, at).await? {
                    Some(b) => b,
                    // Trimmed: the log start moved past it.
                    None => {
                        at = self.offsets().log_start.max(chunk.end());
                        continue;
                    }
                },
            };
            at = batch_end(&batch).unwrap_or(chunk.end());
            bytes += batch.len();
            out.batches.push(batch);
        }
        // A re-read may have found the shard trimmed.
        out.offsets.log_start = self.offsets().log_start;
        Ok(out)
    }

    /// A cached batch of `chunk` holding `offset`: the chunk's pages as first read (each
    /// cached under its first offset) or the whole chunk as read again.
    fn cached_holding(&self, chunk: &Chunk, offset: i64) -> Option<Bytes> {
        let mut at = chunk.base;
        while at < chunk.end() {
            let b = self.cache.get(&(self.stream.clone(), self.partition, at))?;
            let end = batch_end(&b)?;
            if offset < end {
                return Some(b);
            }
            at = end;
        }
        None
    }

    fn chunk_holding(&self, offset: i64) -> Option<Chunk> {
        let i = self.index.read();
        let (_, c) = i.chunks.range(..=offset).next_back()?;
        (offset < c.end()).then(|| c.clone())
    }

    /// One page of the shard from `first_seq` on, within the reader's call budget (the
    /// caller holds `reader`); `None` when Kinesis no longer has that record.
    async fn page_from(
        &self,
        reader: &mut Reader,
        first_seq: &str,
    ) -> StorageResult<Option<GetRecordsOutput>> {
        // The same budget of calls as reading at the tip.
        if let Some(since) = reader.last_call.map(|t| t.elapsed()) {
            if since < self.min_gap {
                tokio::time::sleep(self.min_gap - since).await;
            }
        }
        reader.last_call = Some(Instant::now());
        let it: GetShardIteratorOutput = match self
            .client
            .call(
                "GetShardIterator",
                &GetShardIteratorInput {
                    stream_name: Some(self.stream.to_string()),
                    shard_id: Some(self.shard_id.clone()),
                    shard_iterator_type: Some("AT_SEQUENCE_NUMBER".into()),
                    starting_sequence_number: Some(first_seq.to_string()),
                    ..Default::default()
                },
            )
            .await
        {
            Ok(it) => it,
            Err(e) if e.is("InvalidArgumentException") => return Ok(None),
            Err(e) => return Err(storage_error(e)),
        };
        let page = self
            .client
            .call_fast(
                "GetRecords",
                &GetRecordsInput {
                    shard_iterator: Some(it.shard_iterator),
                    limit: Some(PAGE),
                    stream_arn: None,
                },
                |b| records_page(b).map(GetRecordsOutput::from),
            )
            .await
            .map_err(storage_error)?;
        Ok(Some(page))
    }

    /// Reads the shard again from `chunk`'s first record, caching every whole chunk the page
    /// covers; a batch of `chunk` holding `offset` (or its part Kinesis still keeps), or
    /// `None` when Kinesis no longer has any of it.
    async fn refill(&self, chunk: &Chunk, offset: i64) -> StorageResult<Option<Bytes>> {
        let mut reader = self.reader.lock().await;
        if let Some(b) = self.cached_holding(chunk, offset) {
            return Ok(Some(b));
        }
        let Some(page) = self.page_from(&mut reader, &chunk.first_seq).await? else {
            // A sequence number past the trim horizon: this chunk at least is gone.
            self.trimmed_from(chunk.end());
            return Ok(None);
        };
        let short = || {
            StorageError::Unavailable(format!(
                "re-reading {}/{} from {} returned less than the index holds; try again",
                self.stream, self.shard_id, chunk.first_seq
            ))
        };
        // Kinesis may answer a page with no records while more follow.
        let first = page.records.first().ok_or_else(short)?;
        if first.sequence_number != chunk.first_seq {
            if cmp_sequence_numbers(&first.sequence_number, &chunk.last_seq).is_gt() {
                self.trimmed_to(&first.sequence_number);
                return Ok(None);
            }
            // The chunk's first records are gone; the rest end where the chunk ends.
            let end = page
                .records
                .iter()
                .position(|r| r.sequence_number == chunk.last_seq)
                .ok_or_else(short)?;
            let (mut batch, _) = to_batch(&page.records[..=end], 0);
            let base = chunk.end() - (batch.header().last_offset_delta as i64 + 1);
            batch.place_at(base);
            self.trimmed_from(base);
            return Ok(Some(batch.freeze()));
        }
        // Cut the page at the chunks the index has for it, so each cached batch is exactly a
        // chunk and offsets match the first read.
        let chunks: Vec<Chunk> = {
            let i = self.index.read();
            i.chunks
                .range(chunk.base..)
                .map(|(_, c)| c.clone())
                .collect()
        };
        let mut rest = &page.records[..];
        let mut wanted = None;
        for c in chunks {
            let Some(end) = rest.iter().position(|r| r.sequence_number == c.last_seq) else {
                break;
            };
            if rest[0].sequence_number != c.first_seq {
                break;
            }
            let (batch, _) = to_batch(&rest[..=end], c.base);
            let batch = batch.freeze();
            self.cache
                .insert((self.stream.clone(), self.partition, c.base), batch.clone());
            if c.base == chunk.base {
                wanted = Some(batch);
            }
            rest = &rest[end + 1..];
        }
        wanted.map(Some).ok_or_else(short)
    }

    /// Records below `offset` have left the shard: the log start moves up, and the index
    /// forgets the chunks wholly below it (all but the newest, which says where reading goes
    /// on), in memory at once and in its file once `PRUNE_LINES` of them are gone.
    fn trimmed_from(&self, offset: i64) {
        let mut i = self.index.write();
        let start = offset.min(i.next_offset);
        if start <= i.log_start {
            return;
        }
        tracing::info!(stream = %self.stream, partition = self.partition, log_start = start, "records past the stream's retention are gone");
        i.log_start = start;
        i.pruned += i.prune_below(start);
        if i.pruned >= PRUNE_LINES {
            match self.rewrite(&i) {
                Ok(()) => i.pruned = 0,
                Err(e) => {
                    tracing::warn!(stream = %self.stream, partition = self.partition, error = %e, "cannot rewrite the offset index without its trimmed chunks")
                }
            }
        }
    }

    /// Writes the index file again with the chunks still held that were written to it
    /// (a new file renamed over the old, so a crash leaves one or the other); a shared index
    /// deletes the chunks below the first held.
    fn rewrite(&self, i: &Index) -> StorageResult<()> {
        let file = match &self.store {
            IndexStore::File(file) => file,
            IndexStore::Shared(shared) => {
                if let Some(first) = i.chunks.keys().next() {
                    shared.prune_below(*first);
                }
                return Ok(());
            }
        };
        let context = || format!("offset index {}", file.display());
        let tmp = file.with_extension("idx.tmp");
        let text = i.file_text();
        let mut f = std::fs::File::create(&tmp).map_err(|e| StorageError::io(context(), e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| StorageError::io(context(), e))?;
        std::fs::rename(&tmp, file).map_err(|e| StorageError::io(context(), e))
    }

    /// Records before `first_kept` have left the shard: the log start moves to the first
    /// chunk that begins at or after it.
    fn trimmed_to(&self, first_kept: &str) {
        let start = {
            let i = self.index.read();
            i.chunks
                .values()
                .find(|c| cmp_sequence_numbers(&c.first_seq, first_kept).is_ge())
                .map_or(i.next_offset, |c| c.base)
        };
        self.trimmed_from(start);
    }

    /// The first chunk holding a record that arrived at or after `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> i64 {
        let i = self.index.read();
        i.chunks
            .range(i.log_start..)
            .find(|(_, c)| c.max_ts >= ts)
            .map_or(i.next_offset, |(b, _)| *b)
    }

    /// The first chunk holding the newest arrival time: (its first offset, that time).
    pub fn max_timestamp_chunk(&self) -> Option<(i64, i64)> {
        let i = self.index.read();
        let mut best: Option<(i64, i64)> = None;
        for (b, c) in i.chunks.range(i.log_start..) {
            if best.is_none_or(|(_, t)| c.max_ts > t) {
                best = Some((*b, c.max_ts));
            }
        }
        best
    }
}

/// One past the last offset of a batch strait built.
fn batch_end(batch: &[u8]) -> Option<i64> {
    crate::protocol::kafka::record_batch::parse_stored_header(batch)
        .ok()
        .map(|h| h.next_offset())
}

/// Kafka records from Kinesis records: key = partition key, value = data, timestamp =
/// arrival time; a KPL aggregate gives one record per user record. Returns them and each
/// Kinesis record's first index among them.
fn kafka_records(records: &[Record]) -> (Vec<NewRecord>, Vec<usize>) {
    let mut out = Vec::with_capacity(records.len());
    let mut starts = Vec::with_capacity(records.len());
    for r in records {
        starts.push(out.len());
        let ts = r.approximate_arrival_timestamp.0;
        match aggregation::split(&r.data.0) {
            Some(users) if !users.is_empty() => out.extend(users.into_iter().map(|u| NewRecord {
                key: Some(Bytes::from(u.partition_key.into_bytes())),
                value: u.data,
                timestamp_ms: ts,
                explicit_hash_key: u.explicit_hash_key.map(|h| h.to_string()),
            })),
            _ => out.push(NewRecord {
                key: Some(Bytes::from(r.partition_key.clone().into_bytes())),
                value: r.data.0.clone(),
                timestamp_ms: ts,
                explicit_hash_key: None,
            }),
        }
    }
    (out, starts)
}

/// The Kafka batch of Kinesis records (base offset placed), and each Kinesis record's first
/// offset.
fn to_batch(records: &[Record], base: i64) -> (crate::backend::CheckedBatch, Vec<i64>) {
    let (users, starts) = kafka_records(records);
    let mut batch = encode_batch(&users);
    batch.place_at(base);
    (batch, starts.into_iter().map(|s| base + s as i64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lines_round_trip() {
        let c = Chunk {
            base: 42,
            count: 7,
            first_seq: "4959033827149025660855969253836157109592157598913658".into(),
            last_seq: "4959033827149025660855969253836157109592157598913699".into(),
            max_ts: 1_700_000_000_123,
            bytes: 4096,
        };
        assert_eq!(Chunk::parse(c.line().trim_end()), Some(c));
        assert_eq!(Chunk::parse("1 0 5 5 0 1"), None);
        assert_eq!(Chunk::parse("1 2 5"), None);
    }

    #[test]
    fn trimmed_chunks_leave_the_index_and_a_pruned_file_loads_again() {
        let chunk = |base: i64| Chunk {
            base,
            count: 10,
            first_seq: format!("{}", 1000 + base),
            last_seq: format!("{}", 1000 + base + 9),
            max_ts: base,
            bytes: 100,
        };
        let text: String = (0..5).map(|n| chunk(n * 10).line()).collect();
        let (mut index, kept) = Index::load(&text);
        assert_eq!(
            (kept, index.next_offset, index.log_start),
            (text.len(), 50, 0)
        );
        // Trimmed up to 35: chunks 0, 10 and 20 go; 30 holds the start.
        assert_eq!(index.prune_below(35), 3);
        assert_eq!(
            index.chunks.keys().copied().collect::<Vec<_>>(),
            vec![30, 40]
        );
        let (again, kept) = Index::load(&index.file_text());
        assert_eq!(kept, index.file_text().len());
        assert_eq!((again.next_offset, again.log_start), (50, 30));
        assert_eq!(again.last_seq(), Some("1049"));
        // Everything trimmed: the newest chunk stays, so reading goes on after it.
        let (mut all, _) = Index::load(&text);
        assert_eq!(all.prune_below(50), 4);
        assert_eq!(all.chunks.keys().copied().collect::<Vec<_>>(), vec![40]);
        // A line that does not follow on still ends the index.
        let gap = format!("{}{}", chunk(30).line(), chunk(50).line());
        let (cut, kept) = Index::load(&gap);
        assert_eq!((cut.next_offset, kept), (40, chunk(30).line().len()));
    }

    fn record(seq: u64, bytes: usize) -> Record {
        Record {
            sequence_number: seq.to_string(),
            approximate_arrival_timestamp: crate::protocol::kinesis::codec::Timestamp(seq as i64),
            data: crate::protocol::kinesis::codec::Blob(Bytes::from(vec![b'x'; bytes])),
            partition_key: "k".into(),
            encryption_type: None,
        }
    }

    /// Chunks from records read in pages of `page` records.
    fn chunks_by_pages(records: &[Record], page: usize) -> Vec<Chunk> {
        let mut done: Vec<Chunk> = Vec::new();
        let mut growing: Option<Chunk> = None;
        let mut next = 0;
        for p in records.chunks(page) {
            let firsts: Vec<i64> = (next..next + p.len() as i64).collect();
            next += p.len() as i64;
            let mut made = chunks_after(growing.take(), p, &firsts, next);
            growing = made.pop();
            done.extend(made);
        }
        done.extend(growing);
        done
    }

    #[test]
    fn chunk_bounds_do_not_depend_on_how_pages_fell() {
        let records: Vec<Record> = (1..=5_000)
            .map(|n| record(1000 + n, if n % 7 == 0 { 4_000 } else { 100 }))
            .collect();
        let whole = chunks_by_pages(&records, 10_000);
        for page in [1, 3, 250, 1_999, 2_001, 4_999] {
            assert_eq!(chunks_by_pages(&records, page), whole, "pages of {page}");
        }
        assert!(whole.len() > 2);
        for c in &whole[..whole.len() - 1] {
            assert!(c.count <= MERGE_MAX_RECORDS && c.bytes <= MERGE_MAX_BYTES);
        }
        // Bytes cut a chunk before records do.
        let big: Vec<Record> = (1..=10).map(|n| record(n, 1 << 20)).collect();
        let chunks = chunks_by_pages(&big, 3);
        assert_eq!(
            chunks.iter().map(|c| c.count).collect::<Vec<_>>(),
            vec![1; 10]
        );
    }

    #[test]
    fn a_stored_index_is_the_run_ending_at_its_newest_chunk() {
        let chunk = |base: i64| Chunk {
            base,
            count: 10,
            first_seq: format!("{}", 1000 + base),
            last_seq: format!("{}", 1000 + base + 9),
            max_ts: base,
            bytes: 100,
        };
        // 20..30 is being pruned while the index loads; what is older does not count.
        let index = Index::of_chunks(vec![chunk(40), chunk(0), chunk(10), chunk(30)]);
        assert_eq!(
            index.chunks.keys().copied().collect::<Vec<_>>(),
            vec![30, 40]
        );
        assert_eq!((index.log_start, index.next_offset), (30, 50));
        assert_eq!(Index::of_chunks(Vec::new()).next_offset, 0);
    }

    #[test]
    fn a_chunk_takes_records_up_to_a_page_of_room() {
        let mut c = Chunk::of(&record(100, 10), 0, 10);
        assert!(c.take(&record(101, 10), 5));
        assert_eq!((c.count, c.max_ts, c.bytes), (15, 101, 22));
        assert!(!c.take(&record(102, 1), MERGE_MAX_RECORDS));
        assert!(!c.take(&record(102, MERGE_MAX_BYTES as usize), 1));
        assert_eq!(c.count, 15);
    }
}
