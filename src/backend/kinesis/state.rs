//! The Kinesis backend's shared state in one DynamoDB table (`backend.kinesis.state.type:
//! dynamodb`): what every replica must agree on lives here instead of `data_dir`, that is each
//! shard's offset index and the metadata documents (catalog, consumer groups). An item is
//! keyed by `pk` (what it belongs to) and `sk` (its place there); strait makes the table,
//! billed on demand, when it is missing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{storage_error, AwsClient};
use crate::backend::{StorageError, StorageResult};

/// One item, in DynamoDB's JSON form (`{"name": {"S": "..."}}`).
pub type Item = BTreeMap<String, Value>;

/// How long a table strait made may take to become ACTIVE.
const CREATE_WAIT: Duration = Duration::from_secs(60);
/// BatchWriteItem takes at most 25 requests.
const BATCH_WRITE: usize = 25;

pub struct StateTable {
    dynamodb: AwsClient,
    table: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct QueryOutput {
    items: Vec<Item>,
    last_evaluated_key: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct GetItemOutput {
    item: Option<Item>,
}

impl StateTable {
    pub fn new(dynamodb: AwsClient, table: String) -> StateTable {
        StateTable { dynamodb, table }
    }

    pub fn name(&self) -> &str {
        &self.table
    }

    /// Makes the table when it is missing and waits until it is ACTIVE.
    pub async fn ensure(&self) -> StorageResult<()> {
        let started = std::time::Instant::now();
        loop {
            let described: Result<Value, _> = self
                .dynamodb
                .call("DescribeTable", &json!({"TableName": self.table}))
                .await;
            match described {
                Ok(d) if d["Table"]["TableStatus"] == "ACTIVE" => return Ok(()),
                Ok(_) => {}
                Err(e) if e.is("ResourceNotFoundException") => {
                    tracing::info!(table = %self.table, "creating the state table");
                    let created: Result<Value, _> = self
                        .dynamodb
                        .call(
                            "CreateTable",
                            &json!({
                                "TableName": self.table,
                                "BillingMode": "PAY_PER_REQUEST",
                                "AttributeDefinitions": [
                                    {"AttributeName": "pk", "AttributeType": "S"},
                                    {"AttributeName": "sk", "AttributeType": "S"},
                                ],
                                "KeySchema": [
                                    {"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"},
                                ],
                            }),
                        )
                        .await;
                    match created {
                        Ok(_) => {}
                        // Another replica made it first.
                        Err(e) if e.is("ResourceInUseException") => {}
                        Err(e) => return Err(storage_error(e)),
                    }
                }
                Err(e) => return Err(storage_error(e)),
            }
            if started.elapsed() > CREATE_WAIT {
                return Err(StorageError::Unavailable(format!(
                    "state table {} is not ACTIVE after {}s",
                    self.table,
                    CREATE_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Writes `item` unless one with its key exists; whether it was written.
    pub async fn put_new(&self, item: Item) -> StorageResult<bool> {
        self.conditional(
            "PutItem",
            json!({
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }),
        )
        .await
    }

    /// Writes `item` if `condition` holds for the item it replaces (`names` and `values`
    /// as in DynamoDB's expressions); whether it was written.
    pub async fn put_if(
        &self,
        item: Item,
        condition: &str,
        names: Value,
        values: Value,
    ) -> StorageResult<bool> {
        let mut input = json!({
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        });
        // DynamoDB refuses an empty map of values.
        if values.as_object().is_some_and(|v| !v.is_empty()) {
            input["ExpressionAttributeValues"] = values;
        }
        self.conditional("PutItem", input).await
    }

    /// Applies `update` to an item if `condition` holds; whether it did.
    pub async fn update_if(
        &self,
        pk: &str,
        sk: &str,
        update: &str,
        condition: &str,
        names: Value,
        values: Value,
    ) -> StorageResult<bool> {
        self.conditional(
            "UpdateItem",
            json!({
                "TableName": self.table,
                "Key": key(pk, sk),
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }),
        )
        .await
    }

    /// A call with a condition: whether it held (and the call took effect).
    async fn conditional(&self, op: &'static str, input: Value) -> StorageResult<bool> {
        match self.dynamodb.call::<_, Value>(op, &input).await {
            Ok(_) => Ok(true),
            Err(e) if e.is("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    pub async fn put(&self, item: Item) -> StorageResult<()> {
        let _: Value = self
            .dynamodb
            .call("PutItem", &json!({"TableName": self.table, "Item": item}))
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    pub async fn get(&self, pk: &str, sk: &str) -> StorageResult<Option<Item>> {
        let out: GetItemOutput = self
            .dynamodb
            .call(
                "GetItem",
                &json!({
                    "TableName": self.table,
                    "Key": key(pk, sk),
                    "ConsistentRead": true,
                }),
            )
            .await
            .map_err(storage_error)?;
        Ok(out.item)
    }

    /// Every item of `pk` whose sort key starts with `prefix`, in sort-key order.
    pub async fn query_prefix(&self, pk: &str, prefix: &str) -> StorageResult<Vec<Item>> {
        let (condition, values) = if prefix.is_empty() {
            ("pk = :pk", json!({":pk": {"S": pk}}))
        } else {
            (
                "pk = :pk AND begins_with(sk, :p)",
                json!({":pk": {"S": pk}, ":p": {"S": prefix}}),
            )
        };
        self.query(condition, values).await
    }

    /// Every item of `pk` whose sort key is below `below`, in sort-key order.
    pub async fn query_below(&self, pk: &str, below: &str) -> StorageResult<Vec<Item>> {
        self.query(
            "pk = :pk AND sk < :b",
            json!({":pk": {"S": pk}, ":b": {"S": below}}),
        )
        .await
    }

    async fn query(&self, condition: &str, values: Value) -> StorageResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut input = json!({
                "TableName": self.table,
                "KeyConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "ConsistentRead": true,
            });
            if let Some(s) = start.take() {
                input["ExclusiveStartKey"] = s;
            }
            let page: QueryOutput = self
                .dynamodb
                .call("Query", &input)
                .await
                .map_err(storage_error)?;
            out.extend(page.items);
            match page.last_evaluated_key {
                Some(k) if !k.is_null() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    pub async fn delete(&self, pk: &str, sk: &str) -> StorageResult<()> {
        let _: Value = self
            .dynamodb
            .call(
                "DeleteItem",
                &json!({"TableName": self.table, "Key": key(pk, sk)}),
            )
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    /// Deletes the items of `pk` with these sort keys, 25 to a call; what DynamoDB leaves
    /// unprocessed is deleted one by one.
    pub async fn delete_many(&self, pk: &str, sks: &[String]) -> StorageResult<()> {
        for part in sks.chunks(BATCH_WRITE) {
            let requests: Vec<Value> = part
                .iter()
                .map(|sk| json!({"DeleteRequest": {"Key": key(pk, sk)}}))
                .collect();
            let out: Value = self
                .dynamodb
                .call(
                    "BatchWriteItem",
                    &json!({"RequestItems": {self.table.as_str(): requests}}),
                )
                .await
                .map_err(storage_error)?;
            let left = out["UnprocessedItems"][self.table.as_str()]
                .as_array()
                .map_or(0, Vec::len);
            if left > 0 {
                for sk in part {
                    self.delete(pk, sk).await?;
                }
            }
        }
        Ok(())
    }
}

fn key(pk: &str, sk: &str) -> Value {
    json!({"pk": {"S": pk}, "sk": {"S": sk}})
}

/// A string attribute of an item.
pub fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.get("S")?.as_str()
}

/// A number attribute of an item.
pub fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.get("N")?.as_str()?.parse().ok()
}

/// An item of these attributes (DynamoDB's JSON values).
pub fn attrs<const N: usize>(pairs: [(&str, Value); N]) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// An item with these string attributes.
pub fn item(attrs: &[(&str, &str)]) -> Item {
    attrs
        .iter()
        .map(|(k, v)| (k.to_string(), json!({ "S": v })))
        .collect()
}
