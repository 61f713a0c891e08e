//! A shard's offset index in the shared state table (`backend.kinesis.state.type: dynamodb`).
//! Chunk bounds depend only on the shard's records and where the index starts, so every
//! replica reading the shard from the same stored chunks numbers it the same and would write
//! the same chunks: each chunk is written once, by whichever replica gets there first, and the
//! others find it there. Items: `pk` = `index/<stream>/<shard id>/<stream's creation
//! time>` (a stream made again under its old name starts afresh), `sk` = the chunk's first
//! offset, zero-padded so text order is number order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::state::{item, text, StateTable};
use super::tail::Chunk;
use crate::backend::{StorageError, StorageResult};

pub struct SharedIndex {
    table: Arc<StateTable>,
    pk: String,
    writes: mpsc::UnboundedSender<IndexWrite>,
    /// Writes asked for and not yet made (or given up).
    queued: Arc<AtomicUsize>,
}

enum IndexWrite {
    /// A full chunk, in offset order.
    Put(Chunk),
    /// Chunks wholly below this offset are gone from the shard.
    PruneBelow(i64),
    /// The stream is deleted.
    DropAll,
}

impl SharedIndex {
    pub fn new(table: Arc<StateTable>, stream: &str, shard_id: &str, created: &str) -> Self {
        let pk = format!("index/{stream}/{shard_id}/{created}");
        let (writes, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(write_in_order(
            table.clone(),
            stream.to_string(),
            pk.clone(),
            rx,
            queued.clone(),
        ));
        SharedIndex {
            table,
            pk,
            writes,
            queued,
        }
    }

    /// Waits until every write asked for so far is made, or `until` (shutdown: a chunk
    /// left unwritten is only read and numbered again by the next replica to load it).
    pub async fn flush(&self, until: tokio::time::Instant) -> bool {
        while self.queued.load(Ordering::Acquire) > 0 {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    fn send(&self, w: IndexWrite) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.writes.send(w).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The stored chunks, in offset order.
    pub async fn load(&self) -> StorageResult<Vec<Chunk>> {
        let items = self.table.query_prefix(&self.pk, "").await?;
        Ok(items
            .iter()
            .filter_map(|i| Chunk::parse(text(i, "chunk")?))
            .collect())
    }

    /// Stores the index's first chunk now (not queued): whether this one is the index's
    /// start (written here, or the same chunk already stored).
    pub async fn start(&self, chunk: &Chunk) -> StorageResult<bool> {
        let line = chunk.line();
        let line = line.trim_end();
        let sk = sort_key(chunk.base);
        if self
            .table
            .put_new(item(&[("pk", &self.pk), ("sk", &sk), ("chunk", line)]))
            .await?
        {
            return Ok(true);
        }
        let theirs = self.table.get(&self.pk, &sk).await?;
        Ok(theirs.as_ref().and_then(|i| text(i, "chunk")) == Some(line))
    }

    pub fn put(&self, chunk: &Chunk) {
        self.send(IndexWrite::Put(chunk.clone()));
    }

    pub fn prune_below(&self, offset: i64) {
        self.send(IndexWrite::PruneBelow(offset));
    }

    pub fn drop_all(&self) {
        self.send(IndexWrite::DropAll);
    }
}

fn sort_key(base: i64) -> String {
    format!("{base:020}")
}

/// Makes the writes in the order they were asked for, each retried until it lands; ends
/// when the partition's reader is gone and every write is made.
async fn write_in_order(
    table: Arc<StateTable>,
    stream: String,
    pk: String,
    mut writes: mpsc::UnboundedReceiver<IndexWrite>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(w) = writes.recv().await {
        let _made = Made(&queued);
        let mut backoff = Duration::from_millis(100);
        loop {
            let done = match &w {
                IndexWrite::Put(c) => put_chunk(&table, &stream, &pk, c).await,
                IndexWrite::PruneBelow(offset) => prune(&table, &pk, *offset).await,
                IndexWrite::DropAll => prune(&table, &pk, i64::MAX).await,
            };
            match done {
                Ok(()) => break,
                // Access denied, a table gone: asking again cannot help. The chunk is read
                // and numbered again by whoever loads the index after it.
                Err(StorageError::Refused { message, .. }) => {
                    tracing::error!(index = %pk, error = %message, "offset index not written to the state table");
                    break;
                }
                Err(e) => {
                    tracing::warn!(index = %pk, error = %e, "cannot write the offset index to the state table; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Counts a write as made when its attempts end, however they end.
struct Made<'a>(&'a AtomicUsize);

impl Drop for Made<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn put_chunk(table: &StateTable, stream: &str, pk: &str, c: &Chunk) -> StorageResult<()> {
    let line = c.line();
    let line = line.trim_end();
    let sk = sort_key(c.base);
    if table
        .put_new(item(&[("pk", pk), ("sk", &sk), ("chunk", line)]))
        .await?
    {
        return Ok(());
    }
    let theirs = table.get(pk, &sk).await?;
    let theirs = theirs.as_ref().and_then(|i| text(i, "chunk"));
    if theirs != Some(line) {
        // Only when records were trimmed before one replica read them and not before
        // another: the stored chunk is what replicas that start later will use.
        tracing::error!(index = %pk, mine = line, theirs = ?theirs, "another replica indexed this shard differently; restart this replica to take the stored index");
        crate::observe::metrics()
            .kinesis_index_conflicts
            .with_label_values(&[stream])
            .inc();
    }
    Ok(())
}

async fn prune(table: &StateTable, pk: &str, below: i64) -> StorageResult<()> {
    let keys: Vec<String> = table
        .query_below(pk, &sort_key(below))
        .await?
        .iter()
        .filter_map(|i| text(i, "sk").map(str::to_string))
        .collect();
    table.delete_many(pk, &keys).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_as_offsets_do() {
        let mut keys: Vec<String> = [0, 9, 10, 2_000, 123_456_789_012].map(sort_key).to_vec();
        let sorted = keys.clone();
        keys.sort();
        assert_eq!(keys, sorted);
        assert_eq!(sort_key(42), "00000000000000000042");
    }
}
