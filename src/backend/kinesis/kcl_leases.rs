//! Kafka consumer groups tied to a KCL application's DynamoDB lease table
//! (`backend.kinesis.groups.<group>.kcl_lease_table`): the group starts from the checkpoints
//! the KCL application left, and its commits are written back as KCL checkpoints, so a KCL
//! application and a Kafka group can hand a stream to each other.
//!
//! A lease's key is its shard id (a single-stream application) or
//! `account:stream:creationEpoch:shardId` (multi-stream). strait updates only the checkpoint
//! of leases the KCL application made, never their owner or counter: a KCL worker still holding
//! a lease keeps it, and one that takes it over reads the checkpoint strait wrote.
//!
//! The table is scanned when a group loads its positions (the KCL application may have moved
//! them), not on every commit: a commit writes through the lease keys the last scan found and
//! skips checkpoints unchanged since, scanning again only for a partition with no known lease,
//! at most every `RESCAN_AFTER`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{storage_error, AwsClient};
use super::log::KinesisLog;
use crate::backend::{ExternalOffsets, ExternalPosition, StorageError, StorageResult};
use crate::protocol::kinesis::shard_ids::parse_shard_id;

/// How long a commit for a partition with no known lease waits before scanning again (a KCL
/// application makes a shard's lease when it first takes the shard).
const RESCAN_AFTER: Duration = Duration::from_secs(10);

pub struct KclLeaseTables {
    dynamodb: AwsClient,
    log: Arc<KinesisLog>,
    /// group → its lease table
    tables: HashMap<String, LeaseTable>,
    /// (table, stream) → what the last scan found.
    known: Mutex<HashMap<(String, String), Known>>,
}

/// A table's leases on one stream as last seen: each partition's lease key and checkpoint
/// (as scanned, or as strait last wrote it).
struct Known {
    scanned: Instant,
    leases: HashMap<u32, (String, String, u64)>,
}

/// A KCL application's lease table and, for a single-stream application, its stream.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    pub table: String,
    pub stream: Option<String>,
}

/// One lease as strait reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    /// The stream a multi-stream lease names; `None` for a single-stream application's.
    pub stream: Option<String>,
    pub partition: u32,
    pub checkpoint: String,
    pub sub: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ScanInput<'a> {
    table_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exclusive_start_key: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ScanOutput {
    items: Vec<BTreeMap<String, Value>>,
    last_evaluated_key: Option<Value>,
}

impl KclLeaseTables {
    pub fn new(
        dynamodb: AwsClient,
        log: Arc<KinesisLog>,
        tables: HashMap<String, LeaseTable>,
    ) -> KclLeaseTables {
        KclLeaseTables {
            dynamodb,
            log,
            tables,
            known: Mutex::default(),
        }
    }

    fn table(&self, group: &str) -> StorageResult<&LeaseTable> {
        self.tables
            .get(group)
            .ok_or_else(|| StorageError::Unavailable(format!("group {group} has no lease table")))
    }

    /// Every lease of `t` on `stream` (`scan_leases`), remembered for commits.
    pub async fn leases(&self, t: &LeaseTable, stream: &str) -> StorageResult<Vec<Lease>> {
        let out = scan_leases(&self.dynamodb, t, stream).await?;
        let leases = out
            .iter()
            .map(|l| (l.partition, (l.key.clone(), l.checkpoint.clone(), l.sub)))
            .collect();
        self.known.lock().insert(
            (t.table.clone(), stream.to_string()),
            Known {
                scanned: Instant::now(),
                leases,
            },
        );
        Ok(out)
    }

    /// `partition`'s lease key and checkpoint as last seen, scanning first when the
    /// partition has none known and the last scan is older than `RESCAN_AFTER`.
    async fn known_lease(
        &self,
        t: &LeaseTable,
        stream: &str,
        partition: u32,
    ) -> StorageResult<Option<(String, String, u64)>> {
        let id = (t.table.clone(), stream.to_string());
        let stale = {
            let known = self.known.lock();
            match known.get(&id) {
                Some(k) => match k.leases.get(&partition) {
                    Some(lease) => return Ok(Some(lease.clone())),
                    None => k.scanned.elapsed() >= RESCAN_AFTER,
                },
                None => true,
            }
        };
        if stale {
            self.leases(t, stream).await?;
        }
        Ok(self
            .known
            .lock()
            .get(&id)
            .and_then(|k| k.leases.get(&partition).cloned()))
    }

    fn remember(&self, t: &LeaseTable, stream: &str, partition: u32, checkpoint: &str, sub: u64) {
        if let Some(lease) = self
            .known
            .lock()
            .get_mut(&(t.table.clone(), stream.to_string()))
            .and_then(|k| k.leases.get_mut(&partition))
        {
            (lease.1, lease.2) = (checkpoint.to_string(), sub);
        }
    }
}

/// Every lease of `t` on `stream`: multi-stream leases name theirs; single-stream ones
/// belong to the stream configured for the table, and to no other.
pub async fn scan_leases(
    dynamodb: &AwsClient,
    t: &LeaseTable,
    stream: &str,
) -> StorageResult<Vec<Lease>> {
    let table = t.table.as_str();
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page: ScanOutput = dynamodb
            .call(
                "Scan",
                &ScanInput {
                    table_name: table,
                    exclusive_start_key: start.take(),
                },
            )
            .await
            .map_err(storage_error)?;
        out.extend(
            page.items
                .iter()
                .filter_map(lease_of)
                .filter(|l| l.stream.as_deref().or(t.stream.as_deref()) == Some(stream)),
        );
        match page.last_evaluated_key {
            Some(k) if !k.is_null() => start = Some(k),
            _ => break,
        }
    }
    Ok(out)
}

/// Writes a checkpoint into a lease the KCL application made, unless the lease is gone or
/// (`keep_shard_end`) at SHARD_END: KCL never moves a finished shard's checkpoint back, so a
/// group that went back to re-read it keeps strait's own commit only. Says whether it was
/// written.
pub async fn write_checkpoint(
    dynamodb: &AwsClient,
    table: &str,
    lease: &str,
    checkpoint: &str,
    sub: u64,
    keep_shard_end: bool,
) -> StorageResult<bool> {
    let condition = if keep_shard_end {
        "attribute_exists(#k) AND #c <> :end"
    } else {
        "attribute_exists(#k)"
    };
    let input = json!({
        "TableName": table,
        "Key": {"leaseKey": {"S": lease}},
        "UpdateExpression": "SET #c = :c, #s = :s",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {
            "#c": "checkpoint",
            "#s": "checkpointSubSequenceNumber",
            "#k": "leaseKey",
        },
        "ExpressionAttributeValues": if keep_shard_end { json!({
            ":c": {"S": checkpoint},
            ":s": {"N": sub.to_string()},
            ":end": {"S": "SHARD_END"},
        }) } else { json!({
            ":c": {"S": checkpoint},
            ":s": {"N": sub.to_string()},
        }) },
    });
    let out: Result<Value, _> = dynamodb.call("UpdateItem", &input).await;
    match out {
        Ok(_) => Ok(true),
        Err(e) if e.is("ConditionalCheckFailedException") => {
            tracing::debug!(%table, %lease, "lease gone or at SHARD_END; checkpoint not written");
            Ok(false)
        }
        Err(e) => Err(storage_error(e)),
    }
}

/// A lease to make for a shard no KCL worker has taken yet.
pub struct NewLease<'a> {
    pub key: &'a str,
    pub checkpoint: &'a str,
    pub sub: u64,
    /// Its parents' shard ids: KCL starts a child only once they are done.
    pub parents: &'a [String],
    pub hash_key_range: Option<&'a (String, String)>,
}

/// Makes a lease, at its checkpoint and owned by nobody, in the fields KCL 3 keeps
/// (`leaseKey`, `leaseCounter`, `ownerSwitchesSinceCheckpoint`, `checkpoint`,
/// `checkpointSubSequenceNumber`, `parentShardId`, `startingHashKey`, `endingHashKey`), so the
/// first worker to take it starts there (KCL makes leases only for shards that have none).
/// Says whether it was made: false when the lease exists.
pub async fn create_lease(
    dynamodb: &AwsClient,
    table: &str,
    lease: &NewLease<'_>,
) -> StorageResult<bool> {
    let mut item = json!({
        "leaseKey": {"S": lease.key},
        "checkpoint": {"S": lease.checkpoint},
        "checkpointSubSequenceNumber": {"N": lease.sub.to_string()},
        "leaseCounter": {"N": "0"},
        "ownerSwitchesSinceCheckpoint": {"N": "0"},
    });
    if !lease.parents.is_empty() {
        item["parentShardId"] = json!({"SS": lease.parents});
    }
    if let Some((start, end)) = lease.hash_key_range {
        item["startingHashKey"] = json!({"S": start});
        item["endingHashKey"] = json!({"S": end});
    }
    let input = json!({
        "TableName": table,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(leaseKey)",
    });
    let out: Result<Value, _> = dynamodb.call("PutItem", &input).await;
    match out {
        Ok(_) => Ok(true),
        Err(e) if e.is("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(storage_error(e)),
    }
}

/// A lease item's shard, checkpoint and sub-sequence number; `None` for items that are not
/// shard leases (KCL 3 keeps other rows in separate tables, but be lenient).
fn lease_of(item: &BTreeMap<String, Value>) -> Option<Lease> {
    let text = |name: &str| item.get(name)?.get("S")?.as_str().map(str::to_string);
    let key = text("leaseKey")?;
    let (stream, shard) = match key.split(':').collect::<Vec<_>>()[..] {
        [_, stream, _, shard] => (Some(stream.to_string()), shard.to_string()),
        _ => (None, key.clone()),
    };
    let partition = parse_shard_id(&shard)?;
    let checkpoint = text("checkpoint")?;
    let sub = item
        .get("checkpointSubSequenceNumber")
        .and_then(|v| v.get("N")?.as_str()?.parse().ok())
        .unwrap_or(0);
    Some(Lease {
        key,
        stream,
        partition,
        checkpoint,
        sub,
    })
}

#[async_trait]
impl ExternalOffsets for KclLeaseTables {
    fn holds(&self, group: &str) -> bool {
        self.tables.contains_key(group)
    }

    async fn load(&self, group: &str, topic: &str) -> StorageResult<Vec<ExternalPosition>> {
        let table = self.table(group)?;
        let mut out = Vec::new();
        for lease in self.leases(table, topic).await? {
            let at = self
                .log
                .offset_after_checkpoint(topic, lease.partition, &lease.checkpoint, lease.sub)
                .await?;
            if let Some(offset) = at {
                out.push(ExternalPosition {
                    partition: lease.partition,
                    offset,
                    finished: lease.checkpoint == "SHARD_END",
                });
            }
        }
        Ok(out)
    }

    async fn store(&self, group: &str, topic: &str, offsets: &[(u32, i64)]) -> StorageResult<()> {
        let t = self.table(group)?;
        for (partition, offset) in offsets {
            let Some((key, seen, seen_sub)) = self.known_lease(t, topic, *partition).await? else {
                // No KCL worker has made a lease for this shard yet; strait's own commit holds.
                continue;
            };
            let (checkpoint, sub) = self
                .log
                .checkpoint_before(topic, *partition, *offset)
                .await?;
            if (checkpoint.as_str(), sub) == (seen.as_str(), seen_sub) || seen == "SHARD_END" {
                continue;
            }
            let written =
                write_checkpoint(&self.dynamodb, &t.table, &key, &checkpoint, sub, true).await?;
            if written {
                self.remember(t, topic, *partition, &checkpoint, sub);
            } else {
                // Gone or finished: either way nothing more to write until a scan says else.
                self.remember(t, topic, *partition, "SHARD_END", 0);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn lease_items_name_their_shard_and_checkpoint() {
        let single = item(&[
            ("leaseKey", json!({"S": "shardId-000000000003"})),
            (
                "checkpoint",
                json!({"S": "49590338271490256608559692538361571095921575989136588850"}),
            ),
            ("checkpointSubSequenceNumber", json!({"N": "2"})),
            ("leaseOwner", json!({"S": "worker-1"})),
        ]);
        assert_eq!(
            lease_of(&single),
            Some(Lease {
                key: "shardId-000000000003".into(),
                stream: None,
                partition: 3,
                checkpoint: "49590338271490256608559692538361571095921575989136588850".into(),
                sub: 2,
            })
        );
        let multi = item(&[
            (
                "leaseKey",
                json!({"S": "123456789012:orders:1700000000:shardId-000000000001"}),
            ),
            ("checkpoint", json!({"S": "TRIM_HORIZON"})),
        ]);
        let l = lease_of(&multi).unwrap();
        assert_eq!(
            (l.stream.as_deref(), l.partition, l.sub),
            (Some("orders"), 1, 0)
        );
        // Not a shard lease.
        assert_eq!(
            lease_of(&item(&[("leaseKey", json!({"S": "worker-1"}))])),
            None
        );
        assert_eq!(
            lease_of(&item(&[("leaseKey", json!({"S": "shardId-000000000001"}))])),
            None,
            "no checkpoint yet"
        );
    }
}
