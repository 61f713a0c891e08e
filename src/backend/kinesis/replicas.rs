//! Replicas sharing the state table (`backend.kinesis.state.type: dynamodb`): each registers
//! its Kafka node id and advertised address, and coordinates the consumer groups whose lease
//! it holds. Items, all renewed every `RENEW` while their holder lives and dropped when it
//! stops:
//! - `pk = replica`, `sk = <node id>`: host, port, `expires` (ms), the holder's `instance`;
//! - `pk = lease`, `sk = group/<group>`: the holder's node id, host and port, `expires`, and an
//!   `epoch` that grows with each new holder, so a holder that lost the lease cannot renew it.
//!
//! A group is taken by whichever replica is first asked for its coordinator while nobody
//! holds it, and kept until that replica stops or stops renewing (a lease runs `LEASE`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use serde_json::json;

use super::shared_meta::SharedMetaStore;
use super::state::{number, text, Item, StateTable};
use crate::backend::{GroupHolder, ReplicaAddress, Replicas, StorageError, StorageResult};
use crate::clock::now_ms;

/// How long a registration or a group lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(10);
/// How often they are renewed (and the list of replicas read again).
const RENEW: Duration = Duration::from_secs(2);
/// A lease closer than this to its end no longer counts as held: a holder whose renewals
/// fail stops coordinating before anyone else may take over (clocks a little apart too).
const MARGIN: Duration = Duration::from_secs(3);
/// Node ids tried when none is configured.
const MAX_DERIVED_ID: i32 = 1_000;

pub struct SharedReplicas {
    table: Arc<StateTable>,
    meta: Arc<SharedMetaStore>,
    me: ReplicaAddress,
    /// Tells this process's registration from an earlier one under the same id.
    instance: String,
    /// group → (epoch, lease end in ms)
    held: Mutex<HashMap<String, (i64, i64)>>,
    live: RwLock<Vec<ReplicaAddress>>,
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn lease_key(group: &str) -> String {
    format!("group/{group}")
}

fn node_key(id: i32) -> String {
    format!("{id:010}")
}

impl SharedReplicas {
    /// Registers this replica under `node_id`, or under the first free id from 1 when none
    /// is configured, and starts renewing. A configured id another live replica holds is
    /// waited for (it may be this replica's previous run) up to a lease's length.
    pub async fn join(
        table: Arc<StateTable>,
        meta: Arc<SharedMetaStore>,
        node_id: Option<i32>,
        host: String,
        port: i32,
    ) -> StorageResult<Arc<SharedReplicas>> {
        let instance = uuid::Uuid::new_v4().to_string();
        let mut me = ReplicaAddress {
            node_id: node_id.unwrap_or(1),
            host,
            port,
        };
        let started = std::time::Instant::now();
        loop {
            if register(&table, &me, &instance).await? {
                break;
            }
            match node_id {
                None if me.node_id < MAX_DERIVED_ID => me.node_id += 1,
                None => {
                    return Err(StorageError::Unavailable(format!(
                        "no free Kafka node id from 1 to {MAX_DERIVED_ID} in the state table"
                    )))
                }
                Some(id) if started.elapsed() > LEASE + RENEW => {
                    return Err(StorageError::Unavailable(format!(
                        "kafka.node_id {id} is held by another live replica"
                    )))
                }
                Some(_) => tokio::time::sleep(RENEW).await,
            }
        }
        tracing::info!(node_id = me.node_id, host = %me.host, port = me.port, "registered as a replica in the state table");
        let this = Arc::new(SharedReplicas {
            table,
            meta,
            live: RwLock::new(vec![me.clone()]),
            me,
            instance,
            held: Mutex::new(HashMap::new()),
        });
        this.read_live().await?;
        tokio::spawn(renew(Arc::downgrade(&this)));
        Ok(this)
    }

    async fn read_live(&self) -> StorageResult<()> {
        let now = now_ms();
        let mut live: Vec<ReplicaAddress> = self
            .table
            .query_prefix("replica", "")
            .await?
            .iter()
            .filter(|i| number(i, "expires").is_some_and(|x| x > now))
            .filter_map(address_of)
            .collect();
        if !live.iter().any(|r| r.node_id == self.me.node_id) {
            live.push(self.me.clone());
        }
        live.sort_by_key(|r| r.node_id);
        *self.live.write() = live;
        Ok(())
    }

    /// Renews every lease held; one another replica took is dropped.
    async fn renew_leases(&self) {
        let held: Vec<(String, i64)> = self
            .held
            .lock()
            .iter()
            .map(|(g, (epoch, _))| (g.clone(), *epoch))
            .collect();
        for (group, epoch) in held {
            let until = now_ms() + ms(LEASE);
            let renewed = self
                .table
                .update_if(
                    "lease",
                    &lease_key(&group),
                    "SET #x = :until",
                    "#h = :me AND #e = :epoch",
                    json!({"#x": "expires", "#h": "holder", "#e": "epoch"}),
                    json!({
                        ":until": {"N": until.to_string()},
                        ":me": {"N": self.me.node_id.to_string()},
                        ":epoch": {"N": epoch.to_string()},
                    }),
                )
                .await;
            let mut held = self.held.lock();
            match renewed {
                Ok(true) => {
                    if let Some(h) = held.get_mut(&group) {
                        h.1 = until;
                    }
                }
                Ok(false) => {
                    tracing::warn!(%group, "another replica took the group's lease");
                    held.remove(&group);
                }
                // Kept until its end comes; `holds` stops counting it a little before.
                Err(e) => tracing::warn!(%group, error = %e, "cannot renew a group lease"),
            }
        }
    }

    /// Takes `group` when its lease is free (never held, ended, or this node id's from an
    /// earlier run); the holder otherwise.
    async fn take(&self, group: &str) -> StorageResult<GroupHolder> {
        let key = lease_key(group);
        let now = now_ms();
        let current = self.table.get("lease", &key).await?;
        let epoch = current
            .as_ref()
            .and_then(|i| number(i, "epoch"))
            .unwrap_or(0);
        if let Some(other) = current
            .as_ref()
            .filter(|i| number(i, "expires").is_some_and(|x| x > now))
            .and_then(holder_of)
            .filter(|h| h.node_id != self.me.node_id)
        {
            return Ok(GroupHolder::Other(other));
        }
        let until = now + ms(LEASE);
        let lease: Item = [
            ("pk", json!({"S": "lease"})),
            ("sk", json!({ "S": key })),
            ("holder", json!({"N": self.me.node_id.to_string()})),
            ("host", json!({"S": self.me.host})),
            ("port", json!({"N": self.me.port.to_string()})),
            ("expires", json!({"N": until.to_string()})),
            ("epoch", json!({"N": (epoch + 1).to_string()})),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // Only if nobody took it since it was read.
        let (condition, values) = match current {
            Some(_) => ("#e = :epoch", json!({":epoch": {"N": epoch.to_string()}})),
            None => ("attribute_not_exists(#e)", json!({})),
        };
        let taken = self
            .table
            .put_if(lease, condition, json!({"#e": "epoch"}), values)
            .await?;
        if !taken {
            // Someone else was quicker: ask again who.
            let now = now_ms();
            return match self
                .table
                .get("lease", &key)
                .await?
                .as_ref()
                .filter(|i| number(i, "expires").is_some_and(|x| x > now))
                .and_then(holder_of)
            {
                Some(h) if h.node_id != self.me.node_id => Ok(GroupHolder::Other(h)),
                _ => Err(StorageError::Unavailable(format!(
                    "the lease of group {group} changed hands; ask again"
                ))),
            };
        }
        tracing::info!(%group, epoch = epoch + 1, "took the group's lease");
        self.held
            .lock()
            .insert(group.to_string(), (epoch + 1, until));
        Ok(GroupHolder::This { taken: true })
    }
}

/// Registers `me` unless another live replica (another instance) has its node id.
async fn register(table: &StateTable, me: &ReplicaAddress, instance: &str) -> StorageResult<bool> {
    let item: Item = [
        ("pk", json!({"S": "replica"})),
        ("sk", json!({ "S": node_key(me.node_id) })),
        ("host", json!({"S": me.host})),
        ("port", json!({"N": me.port.to_string()})),
        ("expires", json!({"N": (now_ms() + ms(LEASE)).to_string()})),
        ("instance", json!({ "S": instance })),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    table
        .put_if(
            item,
            "attribute_not_exists(#i) OR #i = :instance OR #x < :now",
            json!({"#i": "instance", "#x": "expires"}),
            json!({":instance": {"S": instance}, ":now": {"N": now_ms().to_string()}}),
        )
        .await
}

fn address_of(item: &Item) -> Option<ReplicaAddress> {
    Some(ReplicaAddress {
        node_id: text(item, "sk")?.parse().ok()?,
        host: text(item, "host")?.to_string(),
        port: number(item, "port")? as i32,
    })
}

fn holder_of(item: &Item) -> Option<ReplicaAddress> {
    Some(ReplicaAddress {
        node_id: number(item, "holder")? as i32,
        host: text(item, "host")?.to_string(),
        port: number(item, "port")? as i32,
    })
}

/// Every `RENEW`: the registration, the leases and the list of live replicas.
async fn renew(this: Weak<SharedReplicas>) {
    loop {
        tokio::time::sleep(RENEW).await;
        let Some(this) = this.upgrade() else { return };
        match register(&this.table, &this.me, &this.instance).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    node_id = this.me.node_id,
                    "another replica registered under this node id"
                )
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew this replica's registration"),
        }
        this.renew_leases().await;
        if let Err(e) = this.read_live().await {
            tracing::warn!(error = %e, "cannot read the list of replicas");
        }
    }
}

#[async_trait]
impl Replicas for SharedReplicas {
    fn node_id(&self) -> i32 {
        self.me.node_id
    }

    fn live(&self) -> Vec<ReplicaAddress> {
        self.live.read().clone()
    }

    async fn coordinator(&self, group: &str, doc_key: &str) -> StorageResult<GroupHolder> {
        if self.holds(group) {
            return Ok(GroupHolder::This { taken: false });
        }
        let holder = self.take(group).await?;
        if holder == (GroupHolder::This { taken: true }) {
            self.meta.refresh(doc_key).await?;
        }
        Ok(holder)
    }

    /// Gives up the registration and every lease, so others take the groups at once.
    async fn leave(&self) {
        let held: Vec<(String, i64)> = self
            .held
            .lock()
            .drain()
            .map(|(g, (epoch, _))| (g, epoch))
            .collect();
        for (group, epoch) in held {
            let _ = self
                .table
                .update_if(
                    "lease",
                    &lease_key(&group),
                    "SET #x = :zero",
                    "#h = :me AND #e = :epoch",
                    json!({"#x": "expires", "#h": "holder", "#e": "epoch"}),
                    json!({
                        ":zero": {"N": "0"},
                        ":me": {"N": self.me.node_id.to_string()},
                        ":epoch": {"N": epoch.to_string()},
                    }),
                )
                .await;
        }
        let _ = self
            .table
            .update_if(
                "replica",
                &node_key(self.me.node_id),
                "SET #x = :zero",
                "#i = :instance",
                json!({"#x": "expires", "#i": "instance"}),
                json!({":zero": {"N": "0"}, ":instance": {"S": self.instance}}),
            )
            .await;
    }

    fn holds(&self, group: &str) -> bool {
        self.held
            .lock()
            .get(group)
            .is_some_and(|(_, until)| *until - now_ms() > ms(MARGIN))
    }
}
