//! Metadata documents (the catalog's, consumer groups') in the state table, for
//! `backend.kinesis.state.type: dynamodb`: read whole at start-up, answered from memory (the
//! group coordinator writes under its lock and cannot wait), and written behind. Writes to
//! one key are coalesced, newest wins, and a failed write is retried until it lands or a newer
//! one replaces it. A crash can lose the writes of its last moments: for committed offsets
//! that means a group reads a few records again, never that it skips any.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Notify;

use super::state::{text, StateTable};
use crate::backend::{StorageResult, SyncMetaStore};

const PK: &str = "meta";

pub struct SharedMetaStore {
    table: Arc<StateTable>,
    docs: Mutex<BTreeMap<String, Vec<u8>>>,
    writes: Arc<Writes>,
}

/// Writes not yet made: key → new value (`None`: delete).
#[derive(Default)]
struct Writes {
    pending: Mutex<BTreeMap<String, Option<Vec<u8>>>>,
    wake: Notify,
    /// A batch taken from `pending` is being written.
    busy: AtomicBool,
}

impl SharedMetaStore {
    pub async fn open(table: Arc<StateTable>) -> StorageResult<Arc<SharedMetaStore>> {
        let mut docs = BTreeMap::new();
        for item in table.query_prefix(PK, "").await? {
            let (Some(key), Some(doc)) = (
                text(&item, "sk"),
                item.get("doc")
                    .and_then(|d| d.get("B"))
                    .and_then(|b| b.as_str()),
            ) else {
                continue;
            };
            match STANDARD.decode(doc) {
                Ok(doc) => {
                    docs.insert(key.to_string(), doc);
                }
                Err(_) => tracing::warn!(%key, "skipping an unreadable metadata document"),
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

    /// Reads `key` afresh from the table (another replica may have written it since), unless
    /// this replica has a write of it still to make.
    pub async fn refresh(&self, key: &str) -> StorageResult<()> {
        let item = self.table.get(PK, key).await?;
        if self.writes.pending.lock().contains_key(key) {
            return Ok(());
        }
        let doc = item
            .as_ref()
            .and_then(|i| i.get("doc"))
            .and_then(|d| d.get("B"))
            .and_then(|b| b.as_str())
            .and_then(|b| STANDARD.decode(b).ok());
        let mut docs = self.docs.lock();
        match doc {
            Some(doc) => docs.insert(key.to_string(), doc),
            None => docs.remove(key),
        };
        Ok(())
    }

    fn queue(&self, key: &str, value: Option<Vec<u8>>) {
        self.writes.pending.lock().insert(key.to_string(), value);
        self.writes.wake.notify_one();
    }
}

/// Makes the queued writes, oldest key first, until the store is dropped and nothing is left.
async fn write_behind(writes: Weak<Writes>, table: Arc<StateTable>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(w) = writes.upgrade() else { return };
        let batch = {
            let mut pending = w.pending.lock();
            w.busy.store(!pending.is_empty(), Ordering::Release);
            std::mem::take(&mut *pending)
        };
        if batch.is_empty() {
            // Woken by a write, or now and then to notice the store is gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), w.wake.notified()).await;
            continue;
        }
        let mut failed = false;
        for (key, value) in batch {
            let done = match &value {
                Some(v) => {
                    table
                        .put(
                            [
                                ("pk".to_string(), json!({ "S": PK })),
                                ("sk".to_string(), json!({ "S": key })),
                                ("doc".to_string(), json!({ "B": STANDARD.encode(v) })),
                            ]
                            .into_iter()
                            .collect(),
                        )
                        .await
                }
                None => table.delete(PK, &key).await,
            };
            if let Err(e) = done {
                tracing::warn!(%key, error = %e, "cannot write a metadata document to the state table; retrying");
                failed = true;
                // Unless a newer write of the key came meanwhile.
                w.pending.lock().entry(key).or_insert(value);
            }
        }
        w.busy.store(false, Ordering::Release);
        if failed {
            drop(w);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        } else {
            backoff = Duration::from_millis(100);
        }
    }
}

impl SyncMetaStore for SharedMetaStore {
    fn get(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.docs.lock().get(key).cloned())
    }

    fn put(&self, key: &str, value: &[u8]) -> StorageResult<()> {
        self.docs.lock().insert(key.to_string(), value.to_vec());
        self.queue(key, Some(value.to_vec()));
        Ok(())
    }

    fn delete(&self, key: &str) -> StorageResult<()> {
        self.docs.lock().remove(key);
        self.queue(key, None);
        Ok(())
    }

    fn unwritten(&self) -> bool {
        self.writes.busy.load(Ordering::Acquire) || !self.writes.pending.lock().is_empty()
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
}
