//! One partition's writes to its shard, combined: appends queue their PutRecords entries, and
//! whichever append holds the partition's turn sends everything queued in as few PutRecords
//! calls as the limits allow (500 entries, 5 MiB), then hands each append its results. Calls
//! for one partition never overlap, so records keep the order in which appends queued them,
//! and a burst of small Kafka batches costs a few large calls instead of many small ones.

use std::collections::VecDeque;
use std::future::Future;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::backend::{StorageError, StorageResult};
use crate::protocol::kinesis::shapes::PutRecordsRequestEntry;

/// Each entry's (sequence number, shard id).
pub type Placed = Vec<(String, String)>;

/// What one call takes at most (PutRecords's limits).
pub const MAX_ENTRIES: usize = 500;
pub const MAX_BYTES: usize = 5 << 20;

struct Pending {
    entries: Vec<PutRecordsRequestEntry>,
    done: oneshot::Sender<StorageResult<Placed>>,
}

#[derive(Default)]
pub struct Appends {
    queue: Mutex<VecDeque<Pending>>,
    turn: tokio::sync::Mutex<()>,
}

pub fn entry_size(e: &PutRecordsRequestEntry) -> usize {
    e.data.as_ref().map_or(0, |d| d.0.len()) + e.partition_key.as_ref().map_or(0, String::len)
}

impl Appends {
    /// Writes `entries` with the others queued beside them; `put` sends a run of entries
    /// (already within the limits, or one append's own larger run) and places each.
    pub async fn submit<F, Fut>(
        &self,
        entries: Vec<PutRecordsRequestEntry>,
        put: F,
    ) -> StorageResult<Placed>
    where
        F: Fn(Vec<PutRecordsRequestEntry>) -> Fut,
        Fut: Future<Output = StorageResult<Placed>>,
    {
        let (done, mut result) = oneshot::channel();
        self.queue.lock().push_back(Pending { entries, done });
        loop {
            let _turn = self.turn.lock().await;
            match result.try_recv() {
                Ok(r) => return r,
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err(StorageError::Unavailable(
                        "the write was interrupted before the upstream answered".into(),
                    ))
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let group = self.take();
            let sizes: Vec<usize> = group.iter().map(|p| p.entries.len()).collect();
            let mut all = Vec::with_capacity(sizes.iter().sum());
            let mut dones = Vec::with_capacity(group.len());
            for p in group {
                all.extend(p.entries);
                dones.push(p.done);
            }
            match put(all).await {
                Ok(placed) => {
                    let mut rest = placed.into_iter();
                    for (done, n) in dones.into_iter().zip(sizes) {
                        let _ = done.send(Ok(rest.by_ref().take(n).collect()));
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    let mut dones = dones.into_iter();
                    if let Some(first) = dones.next() {
                        let _ = first.send(Err(e));
                    }
                    for done in dones {
                        let _ = done.send(Err(StorageError::Unavailable(why.clone())));
                    }
                }
            }
        }
    }

    /// The queued appends that fit one call together (at least one, whatever its size).
    fn take(&self) -> Vec<Pending> {
        let mut queue = self.queue.lock();
        let mut group = Vec::new();
        let (mut n, mut bytes) = (0, 0);
        while let Some(next) = queue.front() {
            let size: usize = next.entries.iter().map(entry_size).sum();
            if !group.is_empty()
                && (n + next.entries.len() > MAX_ENTRIES || bytes + size > MAX_BYTES)
            {
                break;
            }
            n += next.entries.len();
            bytes += size;
            group.push(queue.pop_front().expect("front exists"));
        }
        group
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn entries(tag: &str, n: usize) -> Vec<PutRecordsRequestEntry> {
        (0..n)
            .map(|i| PutRecordsRequestEntry {
                partition_key: Some(format!("{tag}-{i}")),
                ..Default::default()
            })
            .collect()
    }

    /// Appends queued while a call is out go together in the next one, each gets its own
    /// entries' results back, in order.
    #[tokio::test]
    async fn queued_appends_share_a_call_and_get_their_own_results() {
        let appends = Arc::new(Appends::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let put = {
            let calls = calls.clone();
            move |es: Vec<PutRecordsRequestEntry>| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok(es
                        .into_iter()
                        .map(|e| (e.partition_key.unwrap(), "shardId-000000000000".to_string()))
                        .collect())
                }
            }
        };
        let mut tasks = Vec::new();
        for t in 0..10 {
            let (a, put) = (appends.clone(), put.clone());
            tasks.push(tokio::spawn(async move {
                a.submit(entries(&format!("a{t}"), 30), put).await
            }));
        }
        for (t, task) in tasks.into_iter().enumerate() {
            let placed = task.await.unwrap().unwrap();
            let keys: Vec<String> = placed.into_iter().map(|(k, _)| k).collect();
            assert_eq!(
                keys,
                (0..30).map(|i| format!("a{t}-{i}")).collect::<Vec<_>>()
            );
        }
        assert!(
            calls.load(Ordering::SeqCst) < 10,
            "{} calls",
            calls.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_append_in_it() {
        let appends = Appends::default();
        let r = appends
            .submit(entries("x", 3), |_| async {
                Err::<Placed, _>(StorageError::Unavailable("down".into()))
            })
            .await;
        assert!(matches!(r, Err(StorageError::Unavailable(m)) if m == "down"));
    }
}
