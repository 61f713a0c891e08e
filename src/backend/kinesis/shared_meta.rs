//! Metadata documents (the catalog's, consumer groups') in the state table, for
//! `backend.kinesis.state.type: dynamodb`: read whole at start-up, answered from memory (the
//! group coordinator writes under its lock and cannot wait), and written behind. Writes to
//! one key are coalesced, newest wins, and a failed write is retried until it lands or a newer
//! one replaces it. A crash can lose the writes of its last moments: for committed offsets
//! that means a group reads a few records again, never that it skips any.
//!
//! A group's document is written only under the lease of the replica coordinating it
//! (`Fence`): the item carries the lease's epoch, and a write with an older epoch than the
//! stored one is refused by DynamoDB, so a replica that lost a group cannot overwrite what the
//! next holder wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Notify;

use super::state::{attrs, text, Item, StateTable};
use crate::backend::{StorageError, StorageResult, SyncMetaStore};

const PK: &str = "meta";

/// Whether a document may be written now.
pub type Fence = Arc<dyn Fn(&str) -> Verdict + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Under the lease of this epoch (0: the key needs none).
    Write(i64),
    /// Its lease is not renewed yet: try again soon.
    Later,
    /// Its lease went to another replica: the write is dropped.
    Drop,
}

pub struct SharedMetaStore {
    table: Arc<StateTable>,
    docs: Mutex<BTreeMap<String, Vec<u8>>>,
    writes: Arc<Writes>,
}

#[derive(Default)]
struct Writes {
    state: Mutex<WriteState>,
    wake: Notify,
    fence: OnceLock<Fence>,
}

/// Writes not yet made: key → new value (`None`: delete); and the keys being written now.
#[derive(Default)]
struct WriteState {
    pending: BTreeMap<String, Option<Vec<u8>>>,
    writing: BTreeSet<String>,
    /// Keys whose deletion was written (and not queued again since).
    deleted: BTreeSet<String>,
}

impl SharedMetaStore {
    pub async fn open(table: Arc<StateTable>) -> StorageResult<Arc<SharedMetaStore>> {
        let mut docs = BTreeMap::new();
        for item in table.query_prefix(PK, "").await? {
            // Deleted documents stay as their epoch alone.
            let (Some(key), true) = (text(&item, "sk"), item.contains_key("doc")) else {
                continue;
            };
            match doc_of(&item) {
                Some(doc) => {
                    docs.insert(key.to_string(), doc);
                }
                None => tracing::warn!(%key, "skipping an unreadable metadata document"),
            }
        }
        let writes = Arc::new(Writes::default());
        tokio::spawn(write_behind(Arc::downgrade(&writes), table.clone()));
        Ok(Arc::new(SharedMetaStore {
            table,
            docs: Mutex::new(docs),
            writes,
        }))
    }

    /// Set once, when replicas hold leases on some keys.
    pub fn set_fence(&self, fence: Fence) {
        let _ = self.writes.fence.set(fence);
    }

    /// Reads `key` afresh from the table as this replica takes the lease covering it:
    /// another replica may have written it since, and what this one still had to write
    /// dates from an earlier lease, so it is dropped.
    pub async fn take_fresh(&self, key: &str) -> StorageResult<()> {
        self.drop_pending(key);
        for _ in 0..100 {
            if !self.writes.state.lock().writing.contains(key) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let item = self.table.get(PK, key).await?;
        let mut docs = self.docs.lock();
        match item.as_ref().and_then(doc_of) {
            Some(doc) => docs.insert(key.to_string(), doc),
            None => docs.remove(key),
        };
        Ok(())
    }

    /// The documents under `prefix` as the table holds them now (written by any replica).
    pub async fn read_prefix(&self, prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>> {
        Ok(self
            .table
            .query_prefix(PK, prefix)
            .await?
            .iter()
            .filter_map(|item| Some((text(item, "sk")?.to_string(), doc_of(item)?)))
            .collect())
    }

    /// `key`'s deletion is written, and nothing was queued for it since.
    pub fn deleted(&self, key: &str) -> bool {
        let s = self.writes.state.lock();
        s.deleted.contains(key) && !s.pending.contains_key(key) && !s.writing.contains(key)
    }

    /// Forgets that `key` was deleted (its lease was given up, or taken afresh).
    pub fn forget_deleted(&self, key: &str) {
        self.writes.state.lock().deleted.remove(key);
    }

    /// Forgets writes of `key` not yet made (its lease is gone).
    pub fn drop_pending(&self, key: &str) {
        self.writes.state.lock().pending.remove(key);
    }

    /// Queues a write; called with `docs` locked, so `refresh` never sees the new document
    /// without its write.
    fn queue(&self, key: &str, value: Option<Vec<u8>>) {
        let mut s = self.writes.state.lock();
        s.deleted.remove(key);
        s.pending.insert(key.to_string(), value);
        drop(s);
        self.writes.wake.notify_one();
    }
}

fn doc_of(item: &Item) -> Option<Vec<u8>> {
    let b = item.get("doc")?.get("B")?.as_str()?;
    STANDARD.decode(b).ok()
}

/// Makes the queued writes until the store is dropped and nothing is left.
async fn write_behind(writes: Weak<Writes>, table: Arc<StateTable>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(w) = writes.upgrade() else { return };
        let batch = {
            let mut s = w.state.lock();
            let batch = std::mem::take(&mut s.pending);
            s.writing = batch.keys().cloned().collect();
            batch
        };
        if batch.is_empty() {
            // Woken by a write, or now and then to notice the store is gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), w.wake.notified()).await;
            continue;
        }
        let mut failed = false;
        for (key, value) in batch {
            let verdict = w.fence.get().map_or(Verdict::Write(0), |fence| fence(&key));
            let epoch = match verdict {
                Verdict::Write(epoch) => epoch,
                Verdict::Later => {
                    failed = true;
                    w.state.lock().pending.entry(key).or_insert(value);
                    continue;
                }
                Verdict::Drop => {
                    tracing::warn!(%key, "not written: another replica holds its lease now");
                    continue;
                }
            };
            match write(&table, &key, value.as_deref(), epoch).await {
                Ok(()) => {
                    let mut s = w.state.lock();
                    if value.is_none() && !s.pending.contains_key(&key) {
                        s.deleted.insert(key);
                    }
                }
                Err(StorageError::Refused { message, .. }) => {
                    // Too large, or written under a newer lease: trying again cannot help.
                    tracing::error!(%key, error = %message, "metadata document not written");
                }
                Err(e) => {
                    tracing::warn!(%key, error = %e, "cannot write a metadata document to the state table; retrying");
                    failed = true;
                    // Unless a newer write of the key came meanwhile.
                    w.state.lock().pending.entry(key).or_insert(value);
                }
            }
        }
        w.state.lock().writing.clear();
        if failed {
            drop(w);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        } else {
            backoff = Duration::from_millis(100);
        }
    }
}

/// One write, refused when the stored item carries a newer lease epoch than `epoch`. A
/// deletion leaves the item with its epoch and no document, so a replica that lost the lease
/// cannot bring the document back.
async fn write(
    table: &StateTable,
    key: &str,
    value: Option<&[u8]>,
    epoch: i64,
) -> StorageResult<()> {
    let mut item = attrs([
        ("pk", json!({ "S": PK })),
        ("sk", json!({ "S": key })),
        ("epoch", json!({"N": epoch.to_string()})),
    ]);
    if let Some(v) = value {
        item.insert("doc".into(), json!({ "B": STANDARD.encode(v) }));
    }
    let written = table
        .put_if(
            item,
            "attribute_not_exists(#e) OR #e <= :e",
            json!({"#e": "epoch"}),
            json!({":e": {"N": epoch.to_string()}}),
        )
        .await?;
    if written {
        Ok(())
    } else {
        Err(StorageError::Refused {
            code: -1,
            class: crate::backend::Refusal::Failed,
            message: format!("{key} was written under a newer lease (epoch > {epoch})"),
        })
    }
}

impl SyncMetaStore for SharedMetaStore {
    fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.docs.lock().get(key).cloned())
    }

    fn put(&self, key: &str, value: &[u8]) -> StorageResult<()> {
        let mut docs = self.docs.lock();
        docs.insert(key.to_string(), value.to_vec());
        self.queue(key, Some(value.to_vec()));
        Ok(())
    }

    fn delete(&self, key: &str) -> StorageResult<()> {
        let mut docs = self.docs.lock();
        docs.remove(key);
        self.queue(key, None);
        Ok(())
    }

    fn list(&self, prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>> {
        Ok(self
            .docs
            .lock()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn unwritten(&self) -> bool {
        let s = self.writes.state.lock();
        !s.pending.is_empty() || !s.writing.is_empty()
    }
}
