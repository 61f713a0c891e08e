//! One partition of the embedded log: its segments, offset assignment, group commit and
//! reads. Owns durability: with `fsync: always` an append returns only after an fsync that
//! covers it, and readers see only what is durable.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::files::FilePool;
use super::producers::ProducerIndex;
use super::segment::{read_batches, Segment};
use crate::backend::{CheckedBatch, PartitionOffsets, ProducerBatch, ReadBatches};
use crate::backend::{StorageError, StorageResult};
use crate::config::FsyncPolicy;
use crate::protocol::kafka::record_batch;

struct State {
    /// In offset order; the last is the active segment.
    segments: Vec<Segment>,
    next_offset: i64,
    last_timestamp: Option<i64>,
    producers: ProducerIndex,
}

impl State {
    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a partition always has a segment")
    }
}

pub struct PartitionLog {
    dir: PathBuf,
    state: Mutex<State>,
    /// One past the last offset known durable (or written, when not fsyncing per write).
    durable: AtomicI64,
    syncing: Mutex<bool>,
    synced: Notify,
    /// Set by a failed fsync. Linux reports a writeback error once and then forgets it, so a
    /// retried fsync could succeed without the data; the partition refuses writes until a
    /// restart re-runs recovery.
    failed: std::sync::atomic::AtomicBool,
    fsync: FsyncPolicy,
    segment_bytes: u64,
    files: Arc<FilePool>,
}

impl PartitionLog {
    /// Opens (recovering) or creates the partition in `dir`.
    pub fn open(
        dir: &Path,
        fsync: FsyncPolicy,
        segment_bytes: u64,
        files: &Arc<FilePool>,
    ) -> io::Result<PartitionLog> {
        fs::create_dir_all(dir)?;
        let mut bases: Vec<(i64, PathBuf)> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                let stem = p.file_name()?.to_str()?.strip_suffix(".log")?.to_string();
                Some((stem.parse::<i64>().ok()?, p))
            })
            .collect();
        bases.sort();
        let mut segments: Vec<Segment> = Vec::new();
        let mut producers = ProducerIndex::default();
        let mut cut = false;
        for (base, path) in bases {
            if cut {
                tracing::warn!(path = %path.display(), "removing segment after a corrupt one");
                fs::remove_file(&path)?;
                continue;
            }
            if let Some(prev) = segments.last() {
                if prev.next_offset != base {
                    tracing::warn!(path = %path.display(), expected = prev.next_offset, "segment does not follow its predecessor; removing it and later ones");
                    cut = true;
                    fs::remove_file(&path)?;
                    continue;
                }
            }
            let (seg, torn) = Segment::recover(files, &path, base, &mut |h| {
                producers.note(h, h.max_timestamp)
            })?;
            if torn {
                tracing::warn!(path = %path.display(), kept_bytes = seg.size, "truncated a torn or corrupt tail");
                cut = true;
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            segments.push(Segment::create(files, dir, 0)?);
            sync_dir(dir)?;
        }
        // What a killed process wrote may still be only in the page cache; make it durable
        // before anyone reads it, so an OS crash cannot take back offsets already served.
        if let Some(last) = segments.last() {
            last.file.get()?.sync_data()?;
        }
        producers.expire(crate::clock::now_ms());
        let next_offset = segments.last().map_or(0, |s| s.next_offset);
        let last_timestamp = segments
            .iter()
            .rev()
            .find(|s| s.max_timestamp != i64::MIN)
            .map(|s| s.max_timestamp);
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                segments,
                next_offset,
                last_timestamp,
                producers,
            }),
            durable: AtomicI64::new(next_offset),
            syncing: Mutex::new(false),
            synced: Notify::new(),
            failed: std::sync::atomic::AtomicBool::new(false),
            fsync,
            segment_bytes,
            files: files.clone(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_healthy(&self) -> StorageResult<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StorageError::Unavailable(format!(
                "an earlier fsync failed in {}; restart to recover the partition",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Appends a batch; (its base offset, the log start).
    pub async fn append(&self, mut batch: CheckedBatch) -> StorageResult<(i64, i64)> {
        self.check_healthy()?;
        let (base, end, log_start) = {
            let mut st = self.state.lock();
            let base = st.next_offset;
            batch.place_at(base);
            let active_size = st.active().size;
            if active_size > 0 && active_size + batch.len() as u64 > self.segment_bytes {
                self.roll(&mut st)?;
            }
            let seg = st.segments.last_mut().expect("active segment");
            let pos = seg.size;
            seg.file.get()?.write_all_at(&batch, pos)?;
            let h = *batch.header();
            seg.note_batch(&h, pos);
            st.producers.note(&h, crate::clock::now_ms());
            st.next_offset = h.next_offset();
            st.last_timestamp = Some(st.last_timestamp.unwrap_or(i64::MIN).max(h.max_timestamp));
            (base, st.next_offset, st.segments[0].base_offset)
        };
        match self.fsync {
            FsyncPolicy::Always => self.wait_durable(end).await?,
            FsyncPolicy::Interval | FsyncPolicy::Never => {
                self.durable.fetch_max(end, Ordering::AcqRel);
            }
        }
        Ok((base, log_start))
    }

    /// Starts a new segment. The old one is synced first, so that a later fsync of the active
    /// file covers every offset below `next_offset`.
    fn roll(&self, st: &mut State) -> io::Result<()> {
        if self.fsync != FsyncPolicy::Never {
            st.active().file.get()?.sync_data()?;
        }
        st.segments
            .push(Segment::create(&self.files, &self.dir, st.next_offset)?);
        sync_dir(&self.dir)
    }

    /// Group commit: one fsync serves every writer waiting when it starts.
    async fn wait_durable(&self, target: i64) -> StorageResult<()> {
        loop {
            if self.durable.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            let notified = self.synced.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.durable.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            self.check_healthy()?;
            let lead = {
                let mut s = self.syncing.lock();
                !std::mem::replace(&mut *s, true)
            };
            if !lead {
                notified.await;
                continue;
            }
            // If this future is dropped mid-fsync (a client went away), the guard hands the
            // leadership back so the writers behind it are not stranded.
            let _guard = LeaderGuard(self);
            let (file, end) = {
                let st = self.state.lock();
                (st.active().file.get(), st.next_offset)
            };
            let file = file?;
            let res = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let r = file.sync_data();
                crate::observe::metrics()
                    .fsync_seconds
                    .observe(started.elapsed().as_secs_f64());
                r
            })
            .await;
            match res {
                Ok(Ok(())) => {
                    self.durable.fetch_max(end, Ordering::AcqRel);
                }
                Ok(Err(e)) => {
                    self.failed.store(true, Ordering::Release);
                    tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed; the partition stops taking writes");
                    return Err(StorageError::Unavailable(format!("fsync failed: {e}")));
                }
                Err(e) => return Err(StorageError::Unavailable(format!("fsync task failed: {e}"))),
            }
        }
    }

    /// Syncs whatever has been written (the `interval` policy's timer, and reshards).
    pub fn sync_now(&self) -> io::Result<()> {
        let (file, end) = {
            let st = self.state.lock();
            (st.active().file.get()?, st.next_offset)
        };
        if let Err(e) = file.sync_data() {
            self.failed.store(true, Ordering::Release);
            return Err(e);
        }
        self.durable.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// (bytes in segment files, segment files).
    pub fn usage(&self) -> (u64, u64) {
        let st = self.state.lock();
        let bytes = st.segments.iter().map(|s| s.size).sum();
        (bytes, st.segments.len() as u64)
    }

    pub fn offsets(&self) -> PartitionOffsets {
        let st = self.state.lock();
        PartitionOffsets {
            log_start: st.segments[0].base_offset,
            high_watermark: self.durable.load(Ordering::Acquire).min(st.next_offset),
            last_timestamp_ms: st.last_timestamp,
        }
    }

    pub fn read(&self, offset: i64, max_bytes: usize) -> StorageResult<ReadBatches> {
        let (file, from, to, offsets) = {
            let st = self.state.lock();
            let visible = self.durable.load(Ordering::Acquire).min(st.next_offset);
            let offsets = PartitionOffsets {
                log_start: st.segments[0].base_offset,
                high_watermark: visible,
                last_timestamp_ms: st.last_timestamp,
            };
            if offset >= visible {
                return Ok(ReadBatches {
                    batches: Vec::new(),
                    offsets,
                    skipped_to: None,
                });
            }
            let offset = offset.max(offsets.log_start);
            let i = st
                .segments
                .partition_point(|s| s.base_offset <= offset)
                .saturating_sub(1);
            let seg = &st.segments[i];
            (
                seg.file.get()?,
                seg.position_for_offset(offset),
                seg.size,
                offsets,
            )
        };
        let batches = read_batches(&file, from, to, offset, offsets.high_watermark, max_bytes)?;
        Ok(ReadBatches {
            batches,
            offsets,
            skipped_to: None,
        })
    }

    /// The last batches of an idempotent producer (`Log::producer_batches`).
    pub fn producer_batches(&self, producer_id: i64) -> Vec<ProducerBatch> {
        self.state.lock().producers.batches(producer_id)
    }

    /// Forgets idle producers (run with retention).
    pub fn expire_producers(&self, now_ms: i64) {
        self.state.lock().producers.expire(now_ms);
    }

    pub fn max_timestamp_batch(&self) -> StorageResult<Option<(i64, i64)>> {
        let (file, size, max_ts, visible) = {
            let st = self.state.lock();
            let visible = self.durable.load(Ordering::Acquire).min(st.next_offset);
            // The first segment with the largest timestamp (strictly larger wins, as Kafka).
            let mut best: Option<&Segment> = None;
            for seg in &st.segments {
                if seg.max_timestamp != i64::MIN
                    && best.is_none_or(|b| seg.max_timestamp > b.max_timestamp)
                {
                    best = Some(seg);
                }
            }
            match best {
                None => return Ok(None),
                Some(seg) => (seg.file.get()?, seg.size, seg.max_timestamp, visible),
            }
        };
        let mut pos = 0u64;
        while pos < size {
            let mut head = [0u8; record_batch::HEADER_LEN];
            file.read_exact_at(&mut head, pos)?;
            let h = record_batch::parse_header(&head)
                .map_err(|e| StorageError::Unavailable(format!("corrupt log at {pos}: {e:?}")))?;
            if h.base_offset >= visible {
                break;
            }
            if h.max_timestamp == max_ts {
                return Ok(Some((h.base_offset, max_ts)));
            }
            pos += h.total_len as u64;
        }
        Ok(None)
    }

    pub fn offset_for_timestamp(&self, ts: i64) -> StorageResult<i64> {
        let (file, from, to, visible) = {
            let st = self.state.lock();
            let visible = self.durable.load(Ordering::Acquire).min(st.next_offset);
            match st.segments.iter().find(|s| s.max_timestamp >= ts) {
                None => return Ok(visible),
                Some(seg) => (
                    seg.file.get()?,
                    seg.position_for_timestamp(ts),
                    seg.size,
                    visible,
                ),
            }
        };
        let mut pos = from;
        while pos < to {
            let mut head = [0u8; record_batch::HEADER_LEN];
            file.read_exact_at(&mut head, pos)?;
            let h = record_batch::parse_header(&head)
                .map_err(|e| StorageError::Unavailable(format!("corrupt log at {pos}: {e:?}")))?;
            if h.base_offset >= visible {
                break;
            }
            if h.max_timestamp >= ts {
                return Ok(h.base_offset);
            }
            pos += h.total_len as u64;
        }
        Ok(visible)
    }

    /// Deletes whole non-active segments whose newest record is older than `cutoff_ms`.
    pub fn enforce_retention(&self, cutoff_ms: i64) -> io::Result<usize> {
        let mut st = self.state.lock();
        let mut removed = 0;
        while st.segments.len() > 1 && st.segments[0].max_timestamp < cutoff_ms {
            let seg = st.segments.remove(0);
            fs::remove_file(&seg.path)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Rolls the active segment when it holds only records older than `cutoff_ms`, so that
    /// retention can delete it.
    pub fn roll_if_expired(&self, cutoff_ms: i64) -> io::Result<()> {
        let mut st = self.state.lock();
        let active = st.active();
        if active.size > 0 && active.max_timestamp < cutoff_ms {
            self.roll(&mut st)?;
        }
        Ok(())
    }
}

/// Releases group-commit leadership and wakes the waiters, however the leader ends.
struct LeaderGuard<'a>(&'a PartitionLog);

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        *self.0.syncing.lock() = false;
        self.0.synced.notify_waiters();
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kafka::records::{decode_batch, encode_batch, NewRecord};
    use bytes::Bytes;
    use std::sync::Arc;

    fn batch(n: usize, ts: i64, tag: &str) -> CheckedBatch {
        let recs: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                key: Some(Bytes::from(format!("{tag}{i}"))),
                value: Bytes::from(vec![b'x'; 100]),
                timestamp_ms: ts + i as i64,
                explicit_hash_key: None,
            })
            .collect();
        encode_batch(&recs)
    }

    fn offsets_of(log: &PartitionLog, from: i64) -> Vec<i64> {
        let read = log.read(from, usize::MAX / 2).unwrap();
        read.batches
            .into_iter()
            .flat_map(|b| decode_batch(b).unwrap())
            .map(|r| r.offset)
            .filter(|o| *o >= from)
            .collect()
    }

    #[tokio::test]
    async fn concurrent_appends_are_dense_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(
            PartitionLog::open(dir.path(), FsyncPolicy::Always, 1 << 20, &FilePool::new(64))
                .unwrap(),
        );
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move { log.append(batch(10, 1000, &t.to_string())).await })
            })
            .collect();
        let mut bases = Vec::new();
        for t in tasks {
            bases.push(t.await.unwrap().unwrap().0);
        }
        bases.sort();
        assert_eq!(bases, (0..16).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(log.offsets().high_watermark, 160);
        assert_eq!(offsets_of(&log, 0), (0..160).collect::<Vec<_>>());
        assert_eq!(offsets_of(&log, 155), (155..160).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn segments_roll_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log =
                PartitionLog::open(dir.path(), FsyncPolicy::Never, 1 << 20, &FilePool::new(64))
                    .unwrap();
            // ~12 KiB per batch, so 200 batches span several 1 MiB segments.
            for i in 0..200 {
                log.append(batch(100, 1000 + i, "k")).await.unwrap();
            }
            assert!(log.state.lock().segments.len() > 2);
        }
        let log = PartitionLog::open(dir.path(), FsyncPolicy::Never, 1 << 20, &FilePool::new(64))
            .unwrap();
        assert_eq!(log.offsets().high_watermark, 20_000);
        assert_eq!(offsets_of(&log, 19_990).len(), 10);
        // A read that starts in an older segment stops at its end; the caller reads on.
        let mut next = 0;
        while next < 20_000 {
            let got = offsets_of(&log, next);
            assert_eq!(got[0], next);
            next = *got.last().unwrap() + 1;
        }
    }

    #[tokio::test]
    async fn producers_are_found_again_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let idempotent = |producer_id: i64, seq: i32| {
            let mut b = batch(3, crate::clock::now_ms(), "p").into_bytes();
            record_batch::set_producer(&mut b, producer_id, 4, seq);
            CheckedBatch::check(b).unwrap()
        };
        {
            // Small segments, so the producer's batches span a roll.
            let log =
                PartitionLog::open(dir.path(), FsyncPolicy::Never, 1 << 20, &FilePool::new(64))
                    .unwrap();
            for i in 0..100 {
                log.append(idempotent(9, i * 3)).await.unwrap();
                log.append(batch(100, 1000, "k")).await.unwrap();
            }
            assert!(log.state.lock().segments.len() > 1);
            assert_eq!(log.producer_batches(9).len(), 5);
        }
        let log = PartitionLog::open(dir.path(), FsyncPolicy::Never, 1 << 20, &FilePool::new(64))
            .unwrap();
        let got = log.producer_batches(9);
        assert_eq!(got.len(), 5);
        let last = got.last().unwrap();
        assert_eq!(
            (last.epoch, last.first_sequence, last.last_sequence),
            (4, 297, 299)
        );
        assert_eq!(last.base_offset, 99 * 103);
        assert!(log.producer_batches(10).is_empty());
    }

    #[tokio::test]
    async fn time_lookup_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), FsyncPolicy::Never, 1 << 20, &FilePool::new(64))
            .unwrap();
        for i in 0..200 {
            log.append(batch(100, i * 1000, "k")).await.unwrap();
        }
        // Batch i holds timestamps i*1000 .. i*1000+99.
        assert_eq!(log.offset_for_timestamp(0).unwrap(), 0);
        assert_eq!(log.offset_for_timestamp(50_050).unwrap(), 5000);
        assert_eq!(log.offset_for_timestamp(50_500).unwrap(), 5100);
        assert_eq!(log.offset_for_timestamp(10_000_000).unwrap(), 20_000);
        let removed = log.enforce_retention(100_000).unwrap();
        assert!(removed > 0);
        let start = log.offsets().log_start;
        assert!(start > 0 && start <= 10_000, "{start}");
        // Reads below the start begin at the trim horizon.
        assert_eq!(offsets_of(&log, 0)[0], start);
        log.roll_if_expired(i64::MAX).unwrap();
        log.enforce_retention(i64::MAX).unwrap();
        assert_eq!(log.offsets().log_start, 20_000);
        assert!(offsets_of(&log, 0).is_empty());
    }

    #[tokio::test]
    async fn a_dropped_commit_leader_does_not_strand_writers() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(
            PartitionLog::open(dir.path(), FsyncPolicy::Always, 1 << 20, &FilePool::new(64))
                .unwrap(),
        );
        {
            let fut = log.append(batch(1, 0, "a"));
            tokio::pin!(fut);
            // Poll once: the write happens and this append becomes the fsync leader.
            let _ = futures_util::poll!(fut.as_mut());
        }
        let next = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            log.append(batch(1, 0, "b")),
        )
        .await
        .expect("the second append must not hang")
        .unwrap();
        assert_eq!(next, (1, 0));
        assert_eq!(log.offsets().high_watermark, 2);
    }

    #[tokio::test]
    async fn rejects_corrupt_batches() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), FsyncPolicy::Never, 1 << 20, &FilePool::new(64))
            .unwrap();
        let mut b = batch(2, 0, "k").into_bytes();
        let n = b.len();
        b[n - 1] ^= 1;
        // A corrupt batch is refused where it enters, so it never reaches the log.
        assert!(CheckedBatch::check(b).is_err());
        assert_eq!(log.offsets().high_watermark, 0);
    }
}
