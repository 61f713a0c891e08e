//! One stream's mirror: the source's shards listed, the stream made in the catalog with the
//! same shards, hash ranges and lineage, and one copy loop per shard. A copy loop reads where
//! its partition's newest record says it stopped (AFTER_SEQUENCE_NUMBER its origin sequence
//! number, TRIM_HORIZON when empty) and appends each page as batches, in order, one at a
//! time. Any failure, an append whose outcome is unknown included, restarts the loop from
//! the partition's newest record: what landed is not copied again, and nothing is skipped.
//! A source shard that ends (a reshard) closes here once copied, and its children are added
//! and copied (`core/mirror_layout.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use super::records::{batches, resume_after};
use super::status::{ShardStatus, StreamState, StreamStatus};
use crate::backend::kinesis::client::{CallError, KinesisClient};
use crate::backend::kinesis::fanout::Consumers;
use crate::backend::kinesis::shards::list_shards;
use crate::core::catalog::{KeyHash, StreamMode};
use crate::core::error::CoreError;
use crate::core::mirror_layout::SourceShard;
use crate::core::{Core, CreateStreamRequest};
use crate::listener::Closing;
use crate::protocol::kafka::records::last_record_headers;
use crate::protocol::kinesis::cbor_records::records_page;
use crate::protocol::kinesis::sequence::cmp_sequence_numbers;
use crate::protocol::kinesis::shapes::{
    GetRecordsInput, GetRecordsOutput, GetShardIteratorInput, GetShardIteratorOutput,
};
use crate::protocol::kinesis::shard_ids::{parse_shard_id, shard_id};

/// GetRecords' largest page.
pub(super) const PAGE_LIMIT: i64 = 10_000;
/// Waits after a failure, doubling up to the last.
const BACKOFF: [u64; 6] = [250, 500, 1_000, 2_000, 5_000, 10_000];

/// One stream's mirror and what it has done.
pub struct StreamMirror {
    pub(super) name: String,
    progress: Mutex<Progress>,
    started: Instant,
    pub(super) phase: Mutex<Phase>,
    /// Set to stop the copy loops (a cutover); they end before their next append.
    pub(super) stop: watch::Sender<bool>,
    /// Copy loops (and the task setting them up) still running.
    running: AtomicUsize,
    /// Wakes copy loops waiting for their next poll (a cutover drains at once).
    wake: Notify,
    /// Partitions with a copy loop running, so a shard is never copied by two.
    copying: Mutex<BTreeSet<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Mirroring,
    CuttingOver,
    CutOver,
}

#[derive(Default)]
struct Progress {
    shards: BTreeMap<u32, ShardProgress>,
    last_error: Option<String>,
    /// How long the last cutover held writes (ms).
    last_hold_ms: Option<u64>,
}

#[derive(Default, Clone)]
struct ShardProgress {
    shard_id: String,
    mirrored: u64,
    last_page: u64,
    lag_ms: i64,
    /// Whether the last read returned the newest record.
    at_tip: bool,
    /// A first read has answered since this replica started.
    read_once: bool,
    last_sequence_number: Option<String>,
    finished: bool,
    /// Once finished, its children are in the catalog and being copied.
    followed: bool,
    /// When the newest read that found nothing new (at the source's newest record) began.
    empty_since: Option<Instant>,
}

impl StreamMirror {
    pub fn new(name: String, phase: Phase) -> StreamMirror {
        StreamMirror {
            name,
            progress: Mutex::new(Progress::default()),
            started: Instant::now(),
            phase: Mutex::new(phase),
            stop: watch::channel(false).0,
            running: AtomicUsize::new(0),
            wake: Notify::new(),
            copying: Mutex::default(),
        }
    }

    pub(super) fn failed(&self, what: String) {
        tracing::warn!(stream = %self.name, error = %what, "mirror");
        self.progress.lock().last_error = Some(what);
    }

    fn shard<R>(&self, partition: u32, f: impl FnOnce(&mut ShardProgress) -> R) -> R {
        f(self.progress.lock().shards.entry(partition).or_default())
    }

    pub(super) fn set_hold_ms(&self, ms: u64) {
        self.progress.lock().last_hold_ms = Some(ms);
    }

    /// Whether every shard has copied the sequence numbers in `written` (shard id → the
    /// largest the source gave a write through strait) and then read the source's newest
    /// record, finding nothing new, in a read that began after `since`; and every shard that
    /// ended has its children copied too.
    pub(super) fn drained_since(&self, since: Instant, written: &BTreeMap<String, String>) -> bool {
        let p = self.progress.lock();
        // A write the source put on a shard this mirror does not copy yet (a child of a
        // reshard it has not reached) is not drained.
        let known = |id: &String| p.shards.values().any(|s| &s.shard_id == id);
        !p.shards.is_empty()
            && written.keys().all(known)
            && p.shards.values().all(|s| !s.finished || s.followed)
            && p.shards.values().all(|s| {
                let copied = written.get(&s.shard_id).is_none_or(|w| {
                    s.last_sequence_number.as_deref().is_some_and(|have| {
                        cmp_sequence_numbers(have, w) != std::cmp::Ordering::Less
                    })
                });
                // A shard that ended has nothing more to drain.
                copied && (s.finished || s.empty_since.is_some_and(|t| t >= since))
            })
    }

    /// A batch of `partition`'s source records appended, up to `last`.
    pub(super) fn appended(&self, partition: u32, source_records: u64, last: String) {
        self.shard(partition, |s| {
            s.mirrored += source_records;
            s.last_sequence_number = Some(last);
        });
    }

    /// A read of `partition` (begun at `started`) answered `n` records, `behind_ms` behind
    /// the source's newest; `ended` when the source shard has no more.
    pub(super) fn read(
        &self,
        partition: u32,
        n: u64,
        behind_ms: i64,
        started: Instant,
        ended: bool,
    ) {
        let at_tip = behind_ms == 0 && (n as i64) < PAGE_LIMIT;
        self.shard(partition, |s| {
            s.last_page = n;
            s.lag_ms = behind_ms;
            s.at_tip = at_tip;
            s.read_once = true;
            if n == 0 && behind_ms == 0 {
                s.empty_since = Some(started);
            }
            // Set with the page's progress, so no drain sees it drained but not ended.
            s.finished = ended;
        });
        let mut p = self.progress.lock();
        let ours = p
            .shards
            .get(&partition)
            .map(|s| format!("shard {}:", s.shard_id));
        if ours.is_some_and(|o| p.last_error.as_deref().is_some_and(|e| e.starts_with(&o))) {
            p.last_error = None;
        }
    }

    /// A probe (`fanout.rs`) read nothing after `partition`'s newest copied record, in a
    /// read begun at `started`.
    pub(super) fn probed_empty(&self, partition: u32, started: Instant) {
        self.shard(partition, |s| s.empty_since = Some(started));
    }

    /// Each open shard's id and newest copied sequence number.
    pub(super) fn open_shards(&self) -> Vec<(u32, String, Option<String>)> {
        let p = self.progress.lock();
        p.shards
            .iter()
            .filter(|(_, s)| !s.finished)
            .map(|(&k, s)| (k, s.shard_id.clone(), s.last_sequence_number.clone()))
            .collect()
    }

    /// Whether the mirror copies (or has copied) the source shard `shard_id`.
    pub(super) fn copies(&self, shard_id: &str) -> bool {
        self.progress
            .lock()
            .shards
            .values()
            .any(|s| s.shard_id == shard_id)
    }

    /// The origin sequence number of each shard's newest mirrored record.
    pub(super) fn newest_origins(&self) -> BTreeMap<u32, Option<String>> {
        let p = self.progress.lock();
        p.shards
            .iter()
            .map(|(&k, s)| (k, s.last_sequence_number.clone()))
            .collect()
    }

    /// Copy loops poll now rather than at their next turn.
    pub(super) fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Stops the copy loops and returns once none runs.
    pub(super) async fn stop(&self) {
        self.stop.send_replace(true);
        self.wake.notify_waiters();
        while self.running.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn status(&self, caught_up_lag_records: u64) -> StreamStatus {
        let phase = *self.phase.lock();
        let p = self.progress.lock();
        let secs = self.started.elapsed().as_secs_f64().max(1.0);
        let shards: Vec<ShardStatus> = p
            .shards
            .iter()
            .map(|(&partition, s)| {
                let lag_records = if s.finished || (s.at_tip && s.read_once) {
                    0
                } else {
                    let rate = s.mirrored as f64 / secs;
                    let by_rate = (rate * s.lag_ms.max(0) as f64 / 1000.0) as u64;
                    // Not read yet: unknown, so not caught up.
                    by_rate.max(s.last_page).max(u64::from(!s.read_once))
                };
                ShardStatus {
                    shard_id: s.shard_id.clone(),
                    partition,
                    lag_records,
                    lag_ms: if s.finished { 0 } else { s.lag_ms },
                    mirrored_records: s.mirrored,
                    last_sequence_number: s.last_sequence_number.clone(),
                    finished: s.finished,
                }
            })
            .collect();
        let lag_records = shards.iter().map(|s| s.lag_records).sum();
        // A shard that ended (the source was resharded) is caught up once its children are
        // being copied.
        let caught_up = !shards.is_empty()
            && p.shards.values().all(|s| !s.finished || s.followed)
            && shards
                .iter()
                .all(|s| s.lag_records <= caught_up_lag_records)
            && lag_records <= caught_up_lag_records;
        StreamStatus {
            name: self.name.clone(),
            state: match phase {
                Phase::CutOver => StreamState::CutOver,
                Phase::CuttingOver => StreamState::CuttingOver,
                Phase::Mirroring if caught_up => StreamState::CaughtUp,
                Phase::Mirroring => StreamState::Mirroring,
            },
            lag_records,
            lag_ms: shards.iter().map(|s| s.lag_ms).max().unwrap_or(0),
            mirrored_records: shards.iter().map(|s| s.mirrored_records).sum(),
            last_error: p.last_error.clone(),
            last_cutover_hold_ms: p.last_hold_ms,
            shards,
        }
    }
}

/// What every copy loop of one stream's mirror shares.
#[derive(Clone)]
pub(super) struct Copier {
    pub(super) m: Arc<StreamMirror>,
    pub(super) client: Arc<KinesisClient>,
    pub(super) core: Arc<Core>,
    poll: Duration,
    pub(super) closing: Closing,
    /// Set when the source is read by enhanced fan-out (`migration.source.read: fan-out`).
    pub(super) fanout: Option<Arc<Consumers>>,
}

impl Copier {
    /// Shutdown, a stop, or the catalog showing the stream cut over (by another replica,
    /// whose cutover does not stop this one's loops): the copy ends.
    pub(super) fn done(&self) -> bool {
        *self.closing.borrow()
            || *self.m.stop.borrow()
            || self
                .core
                .stream(&self.m.name)
                .is_ok_and(|s| s.cut_over_ms.is_some())
    }
}

/// Mirrors one stream until shutdown or a cutover stops it: sets the stream up, then
/// copies every shard (and the children of those that end) in tasks of their own.
pub async fn run(
    m: Arc<StreamMirror>,
    client: Arc<KinesisClient>,
    core: Arc<Core>,
    poll: Duration,
    fanout: Option<Arc<Consumers>>,
    closing: Closing,
) {
    m.stop.send_replace(false);
    m.running.fetch_add(1, Ordering::SeqCst);
    let _running = Running(&m.running);
    let mut attempt = 0;
    let shards = loop {
        match prepare(&m, &client, &core).await {
            Ok(shards) => break shards,
            Err(e) => {
                m.failed(e);
                let wait = Duration::from_millis(BACKOFF[attempt.min(BACKOFF.len() - 1)]);
                attempt += 1;
                if sleep_or_stopped(wait, &closing, &m).await {
                    return;
                }
            }
        }
    };
    let copier = Copier {
        m: m.clone(),
        client,
        core,
        poll,
        closing,
        fanout,
    };
    spawn_copies(&copier, shards);
}

/// Starts a copy loop for each shard that is open here and has none. Counted as running
/// before it is spawned, so a stop waiting for the loops to end cannot miss one about to
/// start.
fn spawn_copies(c: &Copier, shards: Vec<(u32, String)>) {
    let open = |p: u32| {
        c.core
            .stream(&c.m.name)
            .is_ok_and(|s| s.shard(p).is_some_and(|sh| sh.is_open()))
    };
    for (partition, shard_id) in shards {
        if *c.m.stop.borrow() || !open(partition) || !c.m.copying.lock().insert(partition) {
            continue;
        }
        c.m.running.fetch_add(1, Ordering::SeqCst);
        c.m.shard(partition, |s| s.shard_id = shard_id.clone());
        let c = c.clone();
        tokio::spawn(async move {
            let _copying = Copying(&c.m, partition);
            copy_shard(&c, partition, shard_id).await;
        });
    }
}

/// The source's shards (id → partition, parents, hash range), sorted by partition.
async fn source_shards(
    client: &KinesisClient,
    stream: &str,
) -> Result<Vec<(SourceShard, String)>, String> {
    let shards = list_shards(client, stream)
        .await
        .map_err(|e| format!("listing the source's shards of {stream}: {e}"))?;
    let id = |v: &str| {
        parse_shard_id(v).ok_or_else(|| format!("source shard id {v:?} is not shardId-<number>"))
    };
    let mut out = Vec::with_capacity(shards.len());
    for s in &shards {
        let range = |v: &str| {
            v.parse::<u128>()
                .map_err(|_| format!("source shard {} has hash key {v:?}", s.shard_id))
        };
        let mut parents = Vec::new();
        for p in [&s.parent_shard_id, &s.adjacent_parent_shard_id]
            .into_iter()
            .flatten()
        {
            parents.push(id(p)?);
        }
        out.push((
            SourceShard {
                partition: id(&s.shard_id)?,
                parents,
                start_hash: range(&s.hash_key_range.starting_hash_key)?,
                end_hash: range(&s.hash_key_range.ending_hash_key)?,
            },
            s.shard_id.clone(),
        ));
    }
    out.sort_by_key(|(w, _)| w.partition);
    Ok(out)
}

/// The source's shards, and the stream in the catalog with the same shards, ranges and
/// lineage: made with the shards the source was made with, then the children of its
/// reshards added in order. Answers the shards to copy: those open here. A shard closed here
/// was copied to its end, and its children added, before it closed.
async fn prepare(
    m: &StreamMirror,
    client: &KinesisClient,
    core: &Core,
) -> Result<Vec<(u32, String)>, String> {
    let listed = source_shards(client, &m.name).await?;
    let made = match core.stream(&m.name) {
        Ok(s) => s,
        Err(CoreError::StreamNotFound { .. }) => {
            let ids: BTreeSet<u32> = listed.iter().map(|(w, _)| w.partition).collect();
            if let Some((w, parent)) = listed
                .iter()
                .find_map(|(w, _)| w.parents.iter().find(|p| !ids.contains(p)).map(|p| (w, *p)))
            {
                return Err(format!(
                    "source shard {} of {} has a parent ({}) the source no longer lists (past its retention); mirroring a stream whose reshard history has expired is not built yet",
                    shard_id(w.partition),
                    m.name,
                    shard_id(parent)
                ));
            }
            let roots = listed.iter().filter(|(w, _)| w.parents.is_empty()).count();
            let req = CreateStreamRequest {
                name: m.name.clone(),
                shard_count: Some(roots as u32),
                mode: StreamMode::Provisioned,
                max_record_kib: None,
                tags: Default::default(),
                key_hash: KeyHash::KinesisMd5,
            };
            match core.create_stream(req).await {
                Ok(()) | Err(CoreError::StreamExists { .. }) => {}
                Err(e) => return Err(format!("cannot make stream {} here: {e}", m.name)),
            }
            core.stream(&m.name).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    // Every shard both have must be the same shard; one the source no longer lists (gone
    // with its retention) must have ended here, and one the source added since must come
    // after every one here (`add_mirrored_shards`).
    for sh in &made.shards {
        let same = listed.iter().find(|(w, _)| w.partition == sh.partition);
        match same {
            Some((w, _))
                if (w.start_hash, w.end_hash, &w.parents)
                    == (sh.start_hash, sh.end_hash, &sh.parents) => {}
            None if !sh.is_open() => {}
            _ => {
                return Err(format!(
                    "stream {} here has {} {:?} (hash range, parents), the source {:?}: they must match",
                    m.name,
                    shard_id(sh.partition),
                    (sh.start_hash, sh.end_hash, &sh.parents),
                    same.map(|(w, _)| (w.start_hash, w.end_hash, &w.parents))
                ))
            }
        }
    }
    let sources: Vec<SourceShard> = listed.iter().map(|(w, _)| w.clone()).collect();
    core.add_mirrored_shards(&m.name, &sources)
        .await
        .map_err(|e| format!("adding the source's shards of {}: {e}", m.name))?;
    let made = core.stream(&m.name).map_err(|e| e.to_string())?;
    let mut copy = Vec::new();
    for (w, id) in listed {
        if made.shard(w.partition).is_some_and(|s| s.is_open()) {
            copy.push((w.partition, id));
        } else {
            m.shard(w.partition, |s| {
                s.shard_id = id;
                (s.finished, s.followed, s.read_once, s.at_tip) = (true, true, true, true);
            });
        }
    }
    Ok(copy)
}

/// The source shard `partition` ended and every record of it is copied: it closes here,
/// and its children are added and copied. Kinesis lists the children by the time the
/// parent's iterator ends; until the listing shows one, the shard is not followed.
async fn follow_end(c: &Copier, partition: u32) -> Result<(), String> {
    let stream = c.m.name.as_str();
    let listed = source_shards(&c.client, stream).await?;
    let children: Vec<(u32, String)> = listed
        .iter()
        .filter(|(w, _)| w.parents.contains(&partition))
        .map(|(w, id)| (w.partition, id.clone()))
        .collect();
    if children.is_empty() {
        return Err(format!(
            "{} ended, and the source lists no shard that continues it yet",
            shard_id(partition)
        ));
    }
    let sources: Vec<SourceShard> = listed.iter().map(|(w, _)| w.clone()).collect();
    c.core
        .add_mirrored_shards(stream, &sources)
        .await
        .map_err(|e| format!("adding the source's new shards: {e}"))?;
    c.core
        .close_mirrored_shard(stream, partition)
        .await
        .map_err(|e| format!("closing partition {partition}: {e}"))?;
    spawn_copies(c, children);
    c.m.shard(partition, |s| s.followed = true);
    Ok(())
}

/// Copies one shard until it is finished or strait shuts down, restarting from the
/// partition's newest record after any failure.
async fn copy_shard(c: &Copier, partition: u32, shard_id: String) {
    let mut attempt = 0usize;
    loop {
        let copied = copy_from_tail(c, partition, &shard_id, &mut attempt).await;
        let done = match copied {
            Ok(Copied::Stopped) => return,
            Ok(Copied::Again) => continue,
            Ok(Copied::Ended) => follow_end(c, partition).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => return,
            Err(e) => {
                c.m.failed(format!("shard {shard_id}: {e}"));
                let wait = Duration::from_millis(BACKOFF[attempt.min(BACKOFF.len() - 1)]);
                attempt += 1;
                if sleep_or_stopped(wait, &c.closing, &c.m).await {
                    return;
                }
            }
        }
    }
}

/// How a copy pass ended without failing.
pub(super) enum Copied {
    /// Shutdown, or a stop (a cutover).
    Stopped,
    /// A subscription ended in the normal course: subscribe again.
    Again,
    /// The source shard ended and every record of it is copied.
    Ended,
}

/// One pass: resume from the partition's newest record, then copy page by page.
async fn copy_from_tail(
    c: &Copier,
    partition: u32,
    shard_id: &str,
    attempt: &mut usize,
) -> Result<Copied, String> {
    let (m, client, core, poll, closing) = (&*c.m, &*c.client, &*c.core, c.poll, &c.closing);
    let log = core.log();
    let stream = m.name.as_str();
    if c.done() {
        return Ok(Copied::Stopped);
    }
    let resume = resume_point(m, core, partition).await?;
    if let Some(fanout) = &c.fanout {
        return super::fanout::copy_pushed(c, fanout, partition, shard_id, resume, attempt).await;
    }
    let (kind, at) = match &resume {
        Some(seq) => ("AFTER_SEQUENCE_NUMBER", Some(seq.clone())),
        None => ("TRIM_HORIZON", None),
    };
    let it: GetShardIteratorOutput = client
        .call(
            "GetShardIterator",
            &GetShardIteratorInput {
                stream_name: Some(stream.to_string()),
                shard_id: Some(shard_id.to_string()),
                shard_iterator_type: Some(kind.into()),
                starting_sequence_number: at,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("GetShardIterator: {e}"))?;
    let mut iterator = it.shard_iterator;
    loop {
        if c.done() {
            return Ok(Copied::Stopped);
        }
        let read_started = Instant::now();
        let input = GetRecordsInput {
            shard_iterator: Some(iterator.clone()),
            limit: Some(PAGE_LIMIT),
            stream_arn: None,
        };
        let read = client.call_fast("GetRecords", &input, |b| {
            records_page(b).map(GetRecordsOutput::from)
        });
        // A stop (a cutover) does not wait for a read: nothing of it has been appended.
        let mut stop = m.stop.subscribe();
        let read = tokio::select! {
            r = read => r,
            _ = stop.wait_for(|s| *s) => return Ok(Copied::Stopped),
        };
        let page: GetRecordsOutput = match read {
            Ok(p) => p,
            Err(e) if throttled(&e) => {
                // The source's read budget is shared with its other readers: wait a turn.
                if sleep_or_stopped(poll.max(Duration::from_millis(200)), closing, m).await {
                    return Ok(Copied::Stopped);
                }
                continue;
            }
            Err(e) => return Err(format!("GetRecords: {e}")),
        };
        for b in batches(&page.records) {
            // A cutover stopped the mirror: it took the log's end as the source's end.
            if *m.stop.borrow() {
                return Ok(Copied::Stopped);
            }
            log.append(stream, partition, b.batch)
                .await
                .map_err(|e| format!("appending to partition {partition}: {e}"))?;
            m.appended(partition, b.source_records as u64, b.last_sequence_number);
        }
        core.append_signal().notify_waiters();
        *attempt = 0;
        let n = page.records.len() as u64;
        let at_tip = page.millis_behind_latest == 0 && (n as i64) < PAGE_LIMIT;
        let ended = page.next_shard_iterator.is_none();
        m.read(partition, n, page.millis_behind_latest, read_started, ended);
        match page.next_shard_iterator {
            Some(next) => iterator = next,
            None => {
                tracing::info!(stream, shard_id, "source shard closed and fully mirrored");
                return Ok(Copied::Ended);
            }
        }
        if n == 0 || at_tip {
            let wake = m.wake.notified();
            tokio::select! {
                closed = sleep_or_stopped(poll, closing, m) => if closed {
                    return Ok(Copied::Stopped);
                },
                _ = wake => {}
            }
        }
    }
}

/// Where `partition`'s copy goes on from: after the origin number of its newest record.
pub(super) async fn resume_point(
    m: &StreamMirror,
    core: &Core,
    partition: u32,
) -> Result<Option<String>, String> {
    let resume = match newest_origin(core, &m.name, partition).await? {
        Tail::Empty => None,
        Tail::After(seq) => Some(seq),
        // Retention emptied the partition: this replica may still know where it stopped.
        Tail::Emptied(why) => match m.shard(partition, |s| s.last_sequence_number.clone()) {
            Some(seq) => Some(seq),
            None => return Err(why),
        },
    };
    // The log is the truth: an append whose answer was lost may have landed past what this
    // replica last noted, and the drain and probes compare against this.
    m.shard(partition, |s| s.last_sequence_number = resume.clone());
    Ok(resume)
}

/// What a partition's newest record says of where its mirror stopped.
enum Tail {
    /// Nothing was ever mirrored to it.
    Empty,
    /// After this origin sequence number.
    After(String),
    /// Records were mirrored, and retention has removed all of them (why, for the error).
    Emptied(String),
}

/// Where the partition's mirror stopped, from its newest record.
async fn newest_origin(core: &Core, stream: &str, partition: u32) -> Result<Tail, String> {
    let log = core.log();
    let offsets = log
        .offsets(stream, partition)
        .await
        .map_err(|e| format!("reading partition {partition}'s offsets: {e}"))?;
    if offsets.high_watermark == 0 {
        return Ok(Tail::Empty);
    }
    if offsets.high_watermark <= offsets.log_start {
        // Retention removed every mirrored record: where the copy stopped is gone with them,
        // and starting again at TRIM_HORIZON would copy the source's records a second time.
        return Ok(Tail::Emptied(format!(
            "partition {partition} is empty at offset {} (retention removed what was mirrored): the mirror cannot tell where it stopped",
            offsets.high_watermark
        )));
    }
    let read = log
        .read(stream, partition, offsets.high_watermark - 1, 1)
        .await
        .map_err(|e| format!("reading partition {partition}'s newest record: {e}"))?;
    match last_record_headers(&read.batches)
        .map_err(|e| format!("decoding partition {partition}'s newest record: {e}"))?
    {
        Some((_, headers)) => resume_after(&headers)
            .map(Tail::After)
            .map_err(|e| format!("partition {partition}: {e}")),
        None => Err(format!(
            "partition {partition} has records up to offset {} but none could be read",
            offsets.high_watermark - 1
        )),
    }
}

/// Counts a running task down when it ends, however it ends.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A copy loop's place in `copying` and `running`, given up when it ends however it ends.
struct Copying<'a>(&'a StreamMirror, u32);

impl Drop for Copying<'_> {
    fn drop(&mut self) {
        self.0.copying.lock().remove(&self.1);
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn throttled(e: &CallError) -> bool {
    e.is("ProvisionedThroughputExceededException") || e.is("LimitExceededException")
}

/// Sleeps for `d`; true when shutdown came first.
async fn sleep_or_closed(d: Duration, closing: &Closing) -> bool {
    let mut c = closing.clone();
    if *c.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = c.changed() => true,
    }
}

/// Sleeps for `d`; true when shutdown or a stop (a cutover) came first.
pub(super) async fn sleep_or_stopped(d: Duration, closing: &Closing, m: &StreamMirror) -> bool {
    let mut stop = m.stop.subscribe();
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        closed = sleep_or_closed(d, closing) => closed,
        _ = stop.changed() => true,
    }
}
