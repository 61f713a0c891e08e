//! Kafka consumer groups tied to a KCL application's DynamoDB lease table
//! (`backend.kinesis.groups.<group>.kcl_lease_table`): the group starts from the checkpoints
//! the KCL application left, and its commits are written back as KCL checkpoints, so a KCL
//! application and a Kafka group can hand a stream to each other.
//!
//! A lease's key is its shard id (a single-stream application) or
//! `account:stream:creationEpoch:shardId` (multi-stream). strait updates only the checkpoint
//! of leases the KCL application made, never their owner or counter: a KCL worker still holding
//! a lease keeps it, and one that takes it over reads the checkpoint strait wrote.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{storage_error, AwsJsonClient};
use super::log::KinesisLog;
use crate::backend::{ExternalOffsets, ExternalPosition, StorageError, StorageResult};
use crate::protocol::kinesis::shard_ids::parse_shard_id;

pub struct KclLeaseTables {
    dynamodb: AwsJsonClient,
    log: Arc<KinesisLog>,
    /// group → its lease table
    tables: HashMap<String, LeaseTable>,
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
        dynamodb: AwsJsonClient,
        log: Arc<KinesisLog>,
        tables: HashMap<String, LeaseTable>,
    ) -> KclLeaseTables {
        KclLeaseTables {
            dynamodb,
            log,
            tables,
        }
    }

    fn table(&self, group: &str) -> StorageResult<&LeaseTable> {
        self.tables
            .get(group)
            .ok_or_else(|| StorageError::Unavailable(format!("group {group} has no lease table")))
    }

    /// Every lease of `t` on `stream`: multi-stream leases name theirs; single-stream ones
    /// belong to the stream configured for the table, and to no other.
    pub async fn leases(&self, t: &LeaseTable, stream: &str) -> StorageResult<Vec<Lease>> {
        let table = t.table.as_str();
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page: ScanOutput = self
                .dynamodb
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
                _ => return Ok(out),
            }
        }
    }

    async fn write_checkpoint(
        &self,
        table: &str,
        lease: &str,
        checkpoint: &str,
        sub: u64,
    ) -> StorageResult<()> {
        let input = json!({
            "TableName": table,
            "Key": {"leaseKey": {"S": lease}},
            "UpdateExpression": "SET #c = :c, #s = :s",
            "ConditionExpression": "attribute_exists(#k)",
            "ExpressionAttributeNames": {
                "#c": "checkpoint",
                "#s": "checkpointSubSequenceNumber",
                "#k": "leaseKey",
            },
            "ExpressionAttributeValues": {
                ":c": {"S": checkpoint},
                ":s": {"N": sub.to_string()},
            },
        });
        let out: Result<Value, _> = self.dynamodb.call("UpdateItem", &input).await;
        match out {
            Ok(_) => Ok(()),
            // The KCL application removed the lease (its shard was finished and cleaned up).
            Err(e) if e.is("ConditionalCheckFailedException") => {
                tracing::debug!(%table, %lease, "lease gone; checkpoint not written");
                Ok(())
            }
            Err(e) => Err(storage_error(e)),
        }
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
        let table = t.table.as_str();
        let leases = self.leases(t, topic).await?;
        for (partition, offset) in offsets {
            let Some(lease) = leases.iter().find(|l| l.partition == *partition) else {
                // No KCL worker has made a lease for this shard yet; strait's own commit holds.
                continue;
            };
            let (checkpoint, sub) = self
                .log
                .checkpoint_before(topic, *partition, *offset)
                .await?;
            if (checkpoint.as_str(), sub) == (lease.checkpoint.as_str(), lease.sub) {
                continue;
            }
            // KCL never moves a finished shard's checkpoint back; a group that went back to
            // re-read it keeps strait's own commit only.
            if lease.checkpoint == "SHARD_END" {
                tracing::debug!(%table, lease = %lease.key, "lease at SHARD_END; checkpoint left");
                continue;
            }
            self.write_checkpoint(table, &lease.key, &checkpoint, sub)
                .await?;
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
