//! Replicas sharing the state table (`backend.kinesis.state.type: dynamodb`): each registers
//! its Kafka node id and advertised address, and coordinates the consumer groups whose lease
//! it holds. Items, all renewed every `RENEW` while their holder lives and dropped when it
//! stops:
//! - `pk = replica`, `sk = <node id>`: host, port, `expires` (ms), the holder's `instance`,
//!   and `serving` (false from registration until its Kafka listener serves: others do not
//!   list it before);
//! - `pk = lease`, `sk = group/<group>`: the holder's node id, instance, host and port,
//!   `expires`, and an `epoch` that grows with each new holder, so a holder that lost the
//!   lease can neither renew it nor (`shared_meta.rs`) write the group's document.
//!
//! A group is taken by whichever replica is first asked for its coordinator while nobody
//! holds it, and kept until that replica stops or stops renewing (a lease runs `LEASE`). Taking
//! is serialised on each replica, and a group counts as held only once its document is
//! reloaded.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use serde_json::json;

use futures_util::StreamExt;

use super::shared_meta::{SharedMetaStore, Verdict};
use super::state::{attrs, number, text, Item, StateTable};
use crate::backend::{GroupHolder, ReplicaAddress, Replicas, StorageError, StorageResult};
use crate::clock::now_ms;

/// How long a registration or a group lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(10);
/// How often they are renewed (and the list of replicas read again).
const RENEW: Duration = Duration::from_secs(2);
/// A lease closer than this to its end no longer counts as held: a holder whose renewals
/// fail stops coordinating before anyone else may take over (clocks a little apart too).
const MARGIN: Duration = Duration::from_secs(3);
/// Lease renewals in flight at once.
const RENEWALS_AT_ONCE: usize = 32;
/// Node ids tried when none is configured.
const MAX_DERIVED_ID: i32 = 1_000;
/// A derived node id is not taken while its last holder's registration ended less than this
/// long ago: clients still know that id at the old address (librdkafka does not follow a
/// known id to a new port reliably). A configured id is taken as soon as it lapses.
const DERIVED_REUSE_AFTER: Duration = Duration::from_secs(600);

/// A lease this replica holds.
#[derive(Debug, Clone)]
struct Held {
    epoch: i64,
    /// Its end, in ms.
    until: i64,
    /// The group's document, written only under this lease.
    doc_key: String,
}

#[derive(Default)]
struct Leases {
    held: HashMap<String, Held>,
    /// Documents of groups this replica held and lost: not written any more.
    lost: HashSet<String>,
}

pub struct SharedReplicas {
    table: Arc<StateTable>,
    meta: Arc<SharedMetaStore>,
    me: ReplicaAddress,
    /// Tells this process from an earlier one under the same node id.
    instance: String,
    leases: Arc<Mutex<Leases>>,
    /// One group taken at a time.
    taking: tokio::sync::Mutex<()>,
    live: RwLock<Vec<ReplicaAddress>>,
    /// Shutting down: nothing is renewed any more.
    left: AtomicBool,
    /// The Kafka listener serves (`Replicas::serving`).
    serving: AtomicBool,
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
        let reuse_after = match node_id {
            Some(_) => Duration::ZERO,
            None => DERIVED_REUSE_AFTER,
        };
        loop {
            if register(&table, &me, &instance, reuse_after, false).await? {
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
        let leases = Arc::new(Mutex::new(Leases::default()));
        meta.set_fence(fence(leases.clone()));
        let this = Arc::new(SharedReplicas {
            table,
            meta,
            live: RwLock::new(vec![me.clone()]),
            me,
            instance,
            leases,
            taking: tokio::sync::Mutex::new(()),
            left: AtomicBool::new(false),
            serving: AtomicBool::new(false),
        });
        this.read_live().await?;
        tokio::spawn(renew(Arc::downgrade(&this)));
        tokio::spawn(renew_leases(Arc::downgrade(&this)));
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
            .filter(|i| serving(i))
            .filter_map(address_of)
            .collect();
        if !live.iter().any(|r| r.node_id == self.me.node_id) {
            live.push(self.me.clone());
        }
        live.sort_by_key(|r| r.node_id);
        *self.live.write() = live;
        Ok(())
    }

    /// Lets go of the groups deleted here (DeleteGroups) once their deletion is written:
    /// nobody coordinates a group that is gone, and the next to ask takes it afresh.
    async fn release_deleted(&self) {
        let deleted: Vec<(String, i64)> = {
            let mut leases = self.leases.lock();
            let groups: Vec<(String, i64)> = leases
                .held
                .iter()
                .filter(|(_, h)| self.meta.deleted(&h.doc_key))
                .map(|(g, h)| (g.clone(), h.epoch))
                .collect();
            for (g, _) in &groups {
                if let Some(h) = leases.held.get(g) {
                    self.meta.forget_deleted(&h.doc_key);
                }
                self.lose(&mut leases, g);
            }
            groups
        };
        for (group, epoch) in deleted {
            tracing::info!(%group, "group deleted; its lease is given up");
            self.release(&group, epoch).await;
        }
    }

    async fn renew_registration(&self) -> StorageResult<bool> {
        let serving = self.serving.load(Ordering::Acquire);
        register(
            &self.table,
            &self.me,
            &self.instance,
            Duration::ZERO,
            serving,
        )
        .await
    }

    /// Renews every lease held, all at once; one another replica took is dropped.
    async fn renew_leases(&self) {
        self.release_deleted().await;
        let held: Vec<(String, i64)> = self
            .leases
            .lock()
            .held
            .iter()
            .map(|(g, h)| (g.clone(), h.epoch))
            .collect();
        let renewals = held.into_iter().map(|(group, epoch)| async move {
            let until = now_ms() + ms(LEASE);
            let key = lease_key(&group);
            let renewal = self.table.update_if(
                "lease",
                &key,
                "SET #x = :until",
                "#h = :me AND #i = :instance AND #e = :epoch",
                json!({"#x": "expires", "#h": "holder", "#i": "instance", "#e": "epoch"}),
                json!({
                    ":until": {"N": until.to_string()},
                    ":me": {"N": self.me.node_id.to_string()},
                    ":instance": {"S": self.instance},
                    ":epoch": {"N": epoch.to_string()},
                }),
            );
            // One slow call must not hold up the next round.
            let renewed = match tokio::time::timeout(RENEW, renewal).await {
                Ok(r) => r,
                Err(_) => Err(StorageError::Unavailable("lease renewal timed out".into())),
            };
            (group, epoch, until, renewed)
        });
        let done: Vec<_> = futures_util::stream::iter(renewals)
            .buffer_unordered(RENEWALS_AT_ONCE)
            .collect()
            .await;
        for (group, epoch, until, renewed) in done {
            let mut leases = self.leases.lock();
            // Taken again meanwhile, under a new epoch: that one stands.
            if leases.held.get(&group).is_none_or(|h| h.epoch != epoch) {
                continue;
            }
            match renewed {
                Ok(true) => {
                    if let Some(h) = leases.held.get_mut(&group) {
                        h.until = until;
                    }
                }
                Ok(false) => {
                    tracing::warn!(%group, "another replica took the group's lease");
                    self.lose(&mut leases, &group);
                }
                // Kept until its end comes; `holds` stops counting it a little before.
                Err(e) => tracing::warn!(%group, error = %e, "cannot renew a group lease"),
            }
        }
    }

    fn lose(&self, leases: &mut Leases, group: &str) {
        if let Some(h) = leases.held.remove(group) {
            self.meta.drop_pending(&h.doc_key);
            leases.lost.insert(h.doc_key);
        }
    }

    /// The lease of `group` as stored: (epoch, holder while live).
    async fn lease(
        &self,
        group: &str,
    ) -> StorageResult<(Option<i64>, Option<(ReplicaAddress, String)>)> {
        let now = now_ms();
        let item = self.table.get("lease", &lease_key(group)).await?;
        let epoch = item.as_ref().and_then(|i| number(i, "epoch"));
        let holder = item
            .as_ref()
            .filter(|i| number(i, "expires").is_some_and(|x| x > now))
            .and_then(|i| Some((holder_of(i)?, text(i, "instance")?.to_string())));
        Ok((epoch, holder))
    }

    /// Takes `group` when its lease is free (never held, or lapsed) or this process's own;
    /// the holder otherwise. Returns the epoch taken under and the lease's end.
    async fn take(&self, group: &str) -> StorageResult<Result<(i64, i64), ReplicaAddress>> {
        let (epoch, holder) = self.lease(group).await?;
        if let Some((other, instance)) = holder {
            if instance != self.instance {
                return Ok(Err(other));
            }
        }
        let stored = epoch.unwrap_or(0);
        let until = now_ms() + ms(LEASE);
        let lease = attrs([
            ("pk", json!({"S": "lease"})),
            ("sk", json!({ "S": lease_key(group) })),
            ("holder", json!({"N": self.me.node_id.to_string()})),
            ("instance", json!({ "S": self.instance })),
            ("host", json!({"S": self.me.host})),
            ("port", json!({"N": self.me.port.to_string()})),
            ("expires", json!({"N": until.to_string()})),
            ("epoch", json!({"N": (stored + 1).to_string()})),
        ]);
        // Only if nobody took it since it was read.
        let (condition, values) = match epoch {
            Some(e) => ("#e = :epoch", json!({":epoch": {"N": e.to_string()}})),
            None => ("attribute_not_exists(#e)", json!({})),
        };
        let taken = self
            .table
            .put_if(lease, condition, json!({"#e": "epoch"}), values)
            .await?;
        if taken {
            return Ok(Ok((stored + 1, until)));
        }
        // Someone else was quicker: ask again who.
        match self.lease(group).await?.1 {
            Some((h, instance)) if instance != self.instance => Ok(Err(h)),
            _ => Err(StorageError::Unavailable(format!(
                "the lease of group {group} changed hands; ask again"
            ))),
        }
    }

    /// Lets a lease lapse at once (the group could not be taken after all).
    async fn release(&self, group: &str, epoch: i64) {
        let _ = self
            .table
            .update_if(
                "lease",
                &lease_key(group),
                "SET #x = :zero",
                "#i = :instance AND #e = :epoch",
                json!({"#x": "expires", "#i": "instance", "#e": "epoch"}),
                json!({
                    ":zero": {"N": "0"},
                    ":instance": {"S": self.instance},
                    ":epoch": {"N": epoch.to_string()},
                }),
            )
            .await;
    }
}

/// Which lease epoch a document is written under (`shared_meta::Fence`): a held group's
/// (later, while its renewal is overdue), none for a group lost, 0 for documents no lease
/// covers.
fn fence(leases: Arc<Mutex<Leases>>) -> super::shared_meta::Fence {
    Arc::new(move |key: &str| {
        let leases = leases.lock();
        if let Some(h) = leases.held.values().find(|h| h.doc_key == key) {
            return if h.until > now_ms() {
                Verdict::Write(h.epoch)
            } else {
                Verdict::Later
            };
        }
        if leases.lost.contains(key) {
            Verdict::Drop
        } else {
            Verdict::Write(0)
        }
    })
}

/// Registers `me` unless another instance has its node id, live or ended less than
/// `reuse_after` ago.
async fn register(
    table: &StateTable,
    me: &ReplicaAddress,
    instance: &str,
    reuse_after: Duration,
    serving: bool,
) -> StorageResult<bool> {
    let item = attrs([
        ("pk", json!({"S": "replica"})),
        ("sk", json!({ "S": node_key(me.node_id) })),
        ("host", json!({"S": me.host})),
        ("port", json!({"N": me.port.to_string()})),
        ("expires", json!({"N": (now_ms() + ms(LEASE)).to_string()})),
        ("instance", json!({ "S": instance })),
        ("serving", json!({ "BOOL": serving })),
    ]);
    table
        .put_if(
            item,
            "attribute_not_exists(#i) OR #i = :instance OR #x < :now",
            json!({"#i": "instance", "#x": "expires"}),
            json!({
                ":instance": {"S": instance},
                ":now": {"N": (now_ms() - ms(reuse_after)).to_string()},
            }),
        )
        .await
}

/// Node ids whose registration ended more than `ago` ago (and was not taken again since).
pub async fn gone_for_good(table: &StateTable, ago: Duration) -> StorageResult<HashSet<i32>> {
    let before = now_ms() - ms(ago);
    Ok(table
        .query_prefix("replica", "")
        .await?
        .iter()
        .filter(|i| number(i, "expires").is_some_and(|x| x < before))
        .filter_map(|i| text(i, "sk")?.parse().ok())
        .collect())
}

/// A registration without the attribute (written before it existed) serves.
fn serving(item: &Item) -> bool {
    item.get("serving")
        .and_then(|v| v.get("BOOL"))
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
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

/// Every `RENEW`: the group leases. A loop of their own, so a slow registration write or
/// replica-list read (a state table answers in up to a minute) cannot let a lease lapse,
/// which would send every member of its group back to FindCoordinator.
async fn renew_leases(this: Weak<SharedReplicas>) {
    loop {
        tokio::time::sleep(RENEW).await;
        let Some(this) = this.upgrade() else { return };
        if this.left.load(Ordering::Acquire) {
            return;
        }
        this.renew_leases().await;
    }
}

/// Every `RENEW`: the registration and the list of live replicas.
async fn renew(this: Weak<SharedReplicas>) {
    loop {
        tokio::time::sleep(RENEW).await;
        let Some(this) = this.upgrade() else { return };
        if this.left.load(Ordering::Acquire) {
            return;
        }
        match this.renew_registration().await {
            Ok(true) => {}
            Ok(false) => {
                // Another process has this node id now: nothing held is ours any more.
                tracing::error!(
                    node_id = this.me.node_id,
                    "another replica registered under this node id; giving up every group"
                );
                let mut leases = this.leases.lock();
                let groups: Vec<String> = leases.held.keys().cloned().collect();
                for g in groups {
                    this.lose(&mut leases, &g);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew this replica's registration"),
        }
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

    async fn coordinator(
        &self,
        group: &str,
        doc_key: &str,
        reload: &(dyn Fn() + Send + Sync),
    ) -> StorageResult<GroupHolder> {
        if self.holds(group) {
            return Ok(GroupHolder::This);
        }
        let _one = self.taking.lock().await;
        if self.holds(group) {
            return Ok(GroupHolder::This);
        }
        if self.left.load(Ordering::Acquire) {
            return Err(StorageError::Unavailable("this replica is stopping".into()));
        }
        let (epoch, until) = match self.take(group).await? {
            Ok(taken) => taken,
            Err(other) => return Ok(GroupHolder::Other(other)),
        };
        // The document as the last holder left it, before any request here sees the group.
        if let Err(e) = self.meta.take_fresh(doc_key).await {
            self.release(group, epoch).await;
            return Err(e);
        }
        // Not held yet: every request for the group is refused until it is reloaded.
        reload();
        let mut leases = self.leases.lock();
        // Reading it took so long the lease is nearly over, or shutdown began meanwhile.
        if until - now_ms() < ms(MARGIN) || self.left.load(Ordering::Acquire) {
            drop(leases);
            self.release(group, epoch).await;
            return Err(StorageError::Unavailable(format!(
                "group {group} could not be taken in time; ask again"
            )));
        }
        leases.lost.remove(doc_key);
        // A group deleted under an earlier lease and taken again is not deleted any more.
        self.meta.forget_deleted(doc_key);
        leases.held.insert(
            group.to_string(),
            Held {
                epoch,
                until,
                doc_key: doc_key.to_string(),
            },
        );
        tracing::info!(%group, epoch, "took the group's lease");
        Ok(GroupHolder::This)
    }

    fn holds(&self, group: &str) -> bool {
        self.leases
            .lock()
            .held
            .get(group)
            .is_some_and(|h| h.until - now_ms() > ms(MARGIN))
    }

    async fn unheld_groups(&self, doc_prefix: &str) -> StorageResult<Vec<(String, Vec<u8>)>> {
        if self.live.read().first().map(|r| r.node_id) != Some(self.me.node_id) {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let held: HashSet<String> = self
            .table
            .query_prefix("lease", &lease_key(""))
            .await?
            .iter()
            .filter(|i| number(i, "expires").is_some_and(|x| x > now))
            .filter_map(|i| Some(text(i, "sk")?.strip_prefix(&lease_key(""))?.to_string()))
            .collect();
        let docs = self.meta.read_prefix(doc_prefix).await?;
        Ok(docs
            .into_iter()
            .filter(|(key, _)| {
                key.strip_prefix(doc_prefix)
                    .is_some_and(|group| !held.contains(group))
            })
            .collect())
    }

    async fn serving(&self) {
        self.serving.store(true, Ordering::Release);
        if let Err(e) = self.renew_registration().await {
            // The next renewal says it again.
            tracing::warn!(error = %e, "cannot mark this replica as serving in the state table");
        }
        if let Err(e) = self.read_live().await {
            tracing::warn!(error = %e, "cannot read the list of replicas");
        }
    }

    async fn leave(&self) {
        self.left.store(true, Ordering::Release);
        let held: Vec<(String, i64)> = {
            let mut leases = self.leases.lock();
            let groups: Vec<String> = leases.held.keys().cloned().collect();
            groups
                .into_iter()
                .filter_map(|g| {
                    let epoch = leases.held.get(&g)?.epoch;
                    self.lose(&mut leases, &g);
                    Some((g, epoch))
                })
                .collect()
        };
        for (group, epoch) in held {
            self.release(&group, epoch).await;
        }
        // Ended now (not at 0), so a derived id is not handed to another replica at once.
        let _ = self
            .table
            .update_if(
                "replica",
                &node_key(self.me.node_id),
                "SET #x = :now",
                "#i = :instance",
                json!({"#x": "expires", "#i": "instance"}),
                json!({":now": {"N": now_ms().to_string()}, ":instance": {"S": self.instance}}),
            )
            .await;
    }
}
