//! The embedded backend: a segment log per partition on local disk, and metadata files.
//! Owns topic directories, the fsync-interval timer and retention; `partition.rs` owns the
//! per-partition log itself.

mod files;
pub mod format;
pub mod gauges;
mod meta;
mod partition;
mod producers;
mod segment;

use std::collections::HashMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::RwLock;

pub use meta::FileMetaStore;
use partition::PartitionLog;

use crate::backend::{
    AppendInfo, CheckedBatch, Log, NewTopic, PartitionOffsets, ProducerBatch, ReadBatches,
};
use crate::backend::{StorageError, StorageResult};
use crate::config::{EmbeddedConfig, FsyncPolicy};

/// Topic directories are `t-<name>`: a name such as `.` or `..` never becomes a path of
/// its own, and trash (`.deleted-*`) cannot collide with a topic.
const TOPIC_DIR_PREFIX: &str = "t-";

fn topic_dir(root: &Path, topic: &str) -> PathBuf {
    root.join(format!("{TOPIC_DIR_PREFIX}{topic}"))
}

struct Topic {
    partitions: RwLock<HashMap<u32, Arc<PartitionLog>>>,
    /// −1 keeps records forever.
    retention_ms: AtomicI64,
}

pub struct EmbeddedLog {
    root: PathBuf,
    config: EmbeddedConfig,
    /// Every partition's segment files, open at most `max_open_files` at a time.
    files: Arc<files::FilePool>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
}

impl EmbeddedLog {
    /// Opens `<data_dir>/log`, recovering every partition found there.
    pub fn open(data_dir: &Path, config: EmbeddedConfig) -> std::io::Result<Arc<EmbeddedLog>> {
        let root = data_dir.join("log");
        fs::create_dir_all(&root)?;
        let files = files::FilePool::new(config.max_open_files);
        let mut topics = HashMap::new();
        for t in fs::read_dir(&root)?.flatten() {
            let dir_name = t.file_name().to_string_lossy().to_string();
            let Some(name) = dir_name.strip_prefix(TOPIC_DIR_PREFIX).map(str::to_string) else {
                // Trash of an interrupted delete, or something that is not ours.
                if dir_name.starts_with(".deleted-") {
                    let _ = fs::remove_dir_all(t.path());
                }
                continue;
            };
            let mut parts = HashMap::new();
            for p in fs::read_dir(t.path())?.flatten() {
                let Ok(idx) = p.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let log =
                    PartitionLog::open(&p.path(), config.fsync, config.segment_bytes, &files)?;
                parts.insert(idx, Arc::new(log));
            }
            topics.insert(
                name,
                Arc::new(Topic {
                    partitions: RwLock::new(parts),
                    retention_ms: AtomicI64::new(-1),
                }),
            );
        }
        Ok(Arc::new(EmbeddedLog {
            root,
            config,
            files,
            topics: RwLock::new(topics),
        }))
    }

    /// Segment files held open now.
    pub fn open_files(&self) -> u64 {
        self.files.open_files()
    }

    /// Starts the fsync-interval and retention timers.
    pub fn spawn_background(self: &Arc<Self>) {
        if self.config.fsync == FsyncPolicy::Interval {
            let log = Arc::clone(self);
            let every = Duration::from_millis(self.config.fsync_interval_ms.max(1));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let log = Arc::clone(&log);
                    let _ = tokio::task::spawn_blocking(move || {
                        for p in log.all_partitions() {
                            if let Err(e) = p.sync_now() {
                                tracing::error!(dir = %p.dir().display(), error = %e, "interval fsync failed");
                            }
                        }
                    })
                    .await;
                }
            });
        }
        let log = Arc::clone(self);
        let every = Duration::from_secs(self.config.retention_check_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let log = Arc::clone(&log);
                let _ = tokio::task::spawn_blocking(move || log.enforce_retention()).await;
            }
        });
    }

    /// (topic, bytes in segment files, segment files) of every topic.
    pub fn disk_usage(&self) -> Vec<(String, u64, u64)> {
        let topics: Vec<(String, Arc<Topic>)> = self
            .topics
            .read()
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        topics
            .into_iter()
            .map(|(name, t)| {
                // Copied out first: a partition's state lock can be held through an fsync,
                // and a reshard must not wait behind a scrape for the topic's lock.
                let parts: Vec<Arc<PartitionLog>> = t.partitions.read().values().cloned().collect();
                let (bytes, segments) = parts
                    .iter()
                    .map(|p| p.usage())
                    .fold((0, 0), |(b, s), (pb, ps)| (b + pb, s + ps));
                (name, bytes, segments)
            })
            .collect()
    }

    fn all_partitions(&self) -> Vec<Arc<PartitionLog>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.read().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    fn enforce_retention(&self) {
        let now = crate::clock::now_ms();
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        for t in topics {
            for p in t.partitions.read().values() {
                p.expire_producers(now);
            }
            let retention = t.retention_ms.load(Ordering::Relaxed);
            if retention < 0 {
                continue;
            }
            let cutoff = now - retention;
            for p in t.partitions.read().values() {
                let res = p
                    .roll_if_expired(cutoff)
                    .and_then(|_| p.enforce_retention(cutoff));
                match res {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(dir = %p.dir().display(), segments = n, "retention deleted segments")
                    }
                    Err(e) => {
                        tracing::error!(dir = %p.dir().display(), error = %e, "retention failed")
                    }
                }
            }
        }
    }

    fn partition(&self, topic: &str, partition: u32) -> StorageResult<Arc<PartitionLog>> {
        self.topics
            .read()
            .get(topic)
            .and_then(|t| t.partitions.read().get(&partition).cloned())
            .ok_or_else(|| {
                StorageError::Unavailable(format!(
                    "no partition {partition} of topic {topic} in the log"
                ))
            })
    }
}

#[async_trait]
impl Log for EmbeddedLog {
    async fn create_partitions(
        &self,
        topic: &str,
        partitions: Range<u32>,
        new: NewTopic,
    ) -> StorageResult<()> {
        let retention_ms = new.retention_ms;
        let t = {
            let mut topics = self.topics.write();
            topics
                .entry(topic.to_string())
                .or_insert_with(|| {
                    Arc::new(Topic {
                        partitions: RwLock::new(HashMap::new()),
                        retention_ms: AtomicI64::new(retention_ms.unwrap_or(-1)),
                    })
                })
                .clone()
        };
        let mut parts = t.partitions.write();
        for p in partitions {
            if parts.contains_key(&p) {
                continue;
            }
            let dir = topic_dir(&self.root, topic).join(p.to_string());
            let log = PartitionLog::open(
                &dir,
                self.config.fsync,
                self.config.segment_bytes,
                &self.files,
            )?;
            parts.insert(p, Arc::new(log));
        }
        partition::sync_dir(&topic_dir(&self.root, topic))?;
        partition::sync_dir(&self.root)?;
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> StorageResult<()> {
        if self.topics.write().remove(topic).is_none() {
            return Ok(());
        }
        let dir = topic_dir(&self.root, topic);
        let trash = self
            .root
            .join(format!(".deleted-{}", uuid::Uuid::new_v4().simple()));
        fs::rename(&dir, &trash)?;
        partition::sync_dir(&self.root)?;
        fs::remove_dir_all(&trash)?;
        Ok(())
    }

    async fn topics(&self) -> StorageResult<Vec<(String, u32)>> {
        Ok(self
            .topics
            .read()
            .iter()
            .map(|(name, t)| (name.clone(), t.partitions.read().len() as u32))
            .collect())
    }

    async fn flush(&self, topic: &str, partition: u32) -> StorageResult<()> {
        Ok(self.partition(topic, partition)?.sync_now()?)
    }

    async fn set_retention(&self, topic: &str, retention_ms: Option<i64>) -> StorageResult<()> {
        if let Some(t) = self.topics.read().get(topic) {
            t.retention_ms
                .store(retention_ms.unwrap_or(-1), Ordering::Relaxed);
        }
        Ok(())
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        batch: CheckedBatch,
    ) -> StorageResult<AppendInfo> {
        let (base_offset, log_start) = self.partition(topic, partition)?.append(batch).await?;
        Ok(AppendInfo {
            base_offset,
            log_append_time_ms: None,
            log_start,
        })
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> StorageResult<ReadBatches> {
        self.partition(topic, partition)?.read(offset, max_bytes)
    }

    async fn offsets(&self, topic: &str, partition: u32) -> StorageResult<PartitionOffsets> {
        Ok(self.partition(topic, partition)?.offsets())
    }

    async fn max_timestamp_batch(
        &self,
        topic: &str,
        partition: u32,
    ) -> StorageResult<Option<(i64, i64)>> {
        self.partition(topic, partition)?.max_timestamp_batch()
    }

    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: u32,
        ts: i64,
    ) -> StorageResult<i64> {
        self.partition(topic, partition)?.offset_for_timestamp(ts)
    }

    async fn producer_batches(
        &self,
        topic: &str,
        partition: u32,
        producer_id: i64,
    ) -> StorageResult<Vec<ProducerBatch>> {
        Ok(self
            .partition(topic, partition)?
            .producer_batches(producer_id))
    }
}

/// Start-up recovery of one partition directory from whatever bytes its segments hold, then
/// every batch a reader can see, read back from the log start as Fetch reads it. The fuzz
/// target `segment_recovery` drives this with arbitrary segment bytes; the server does not
/// call it.
pub fn recover_partition(dir: &Path) -> StorageResult<Vec<bytes::Bytes>> {
    let log = PartitionLog::open(dir, FsyncPolicy::Never, 1 << 20, &files::FilePool::new(16))
        .map_err(|e| StorageError::io(format!("recover {}", dir.display()), e))?;
    let mut offset = log.offsets().log_start;
    let mut out = Vec::new();
    loop {
        let read = log.read(offset, 1 << 20)?;
        let Some(next) = read
            .batches
            .last()
            .and_then(|b| crate::protocol::kafka::record_batch::parse_header(b).ok())
            .map(|h| h.next_offset())
        else {
            return Ok(out);
        };
        if next <= offset {
            return Err(StorageError::io(
                format!("recover {}", dir.display()),
                std::io::Error::other(format!("a read at {offset} ended at {next}")),
            ));
        }
        offset = next;
        out.extend(read.batches);
    }
}
