//! One catalog writer at a time across replicas. Catalog documents are written in Kafka
//! transactions under one transactional id that every replica shares. Taking the fence
//! (InitProducerId) bumps that id's epoch: the broker aborts a transaction another replica
//! has open and refuses its later writes with PRODUCER_FENCED. So a replica that read the
//! catalog after taking the fence never writes over a change it has not seen; a replica
//! fenced mid-change fails that change (`StorageError::Fenced`) and its client retries.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProducerId, TopicName, TransactionalId,
};

use super::cluster::{join_host_port, Cluster};
use super::errors::{
    CLUSTER_AUTHORIZATION_FAILED, CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS,
    COORDINATOR_NOT_AVAILABLE, INVALID_PRODUCER_EPOCH, INVALID_PRODUCER_ID_MAPPING,
    INVALID_TXN_STATE, NOT_COORDINATOR, PRODUCER_FENCED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    UNSUPPORTED_VERSION,
};
use super::log::{text, KafkaLog};
use crate::backend::{AppendInfo, StorageError, StorageResult};

const FIND_COORDINATOR_V: i16 = 3;
const INIT_PRODUCER_ID_V: i16 = 4;
const ADD_PARTITIONS_V: i16 = 3;
const END_TXN_V: i16 = 3;

/// A transaction left open by a replica that died is aborted by the broker after this long;
/// until then the metadata topic's last stable offset, and so every replica's catalog,
/// waits. Catalog writes are one record, so a short timeout costs nothing.
const TRANSACTION_TIMEOUT_MS: i32 = 10_000;
/// How long one step keeps retrying answers that say "not yet" (a coordinator loading, a
/// transaction still completing).
const STEP_FOR: Duration = Duration::from_secs(20);

/// Codes that say this replica no longer holds the fence.
fn fenced(code: i16) -> bool {
    code == PRODUCER_FENCED || code == INVALID_PRODUCER_EPOCH
}

/// Codes that no retry changes: the principal may not use the transactional id, or the
/// cluster does not serve this.
fn permanent(code: i16) -> bool {
    matches!(
        code,
        UNSUPPORTED_VERSION
            | INVALID_TXN_STATE
            | INVALID_PRODUCER_ID_MAPPING
            | TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            | CLUSTER_AUTHORIZATION_FAILED
    )
}

/// Codes after which the same step goes again (after finding the coordinator anew).
fn again(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS
            | COORDINATOR_NOT_AVAILABLE
            | NOT_COORDINATOR
            | CONCURRENT_TRANSACTIONS
    )
}

#[derive(Debug, Clone)]
struct Holder {
    producer_id: i64,
    epoch: i16,
    /// The next sequence number on the metadata partition; restarts with every epoch.
    sequence: i32,
}

pub struct CatalogFence {
    cluster: Arc<Cluster>,
    transactional_id: String,
    held: tokio::sync::Mutex<Option<Holder>>,
}

/// What one step's answer says.
enum Step<T> {
    Done(T),
    Again(String),
}

impl CatalogFence {
    pub fn new(cluster: Arc<Cluster>, metadata_topic: &str) -> CatalogFence {
        CatalogFence {
            cluster,
            transactional_id: format!("strait-catalog-{metadata_topic}"),
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// Makes this replica the catalog's writer: writes by whoever held the fence before fail
    /// from now on, and a transaction they left open is aborted before this returns.
    pub async fn take(&self) -> StorageResult<()> {
        let mut held = self.held.lock().await;
        *held = None;
        *held = Some(self.init().await?);
        Ok(())
    }

    /// Writes one batch to partition 0 of `topic` in a transaction of its own and commits
    /// it, taking the fence first if this replica has not. `batch` is encoded for producer
    /// id, epoch and sequence by `encode`.
    pub async fn write(
        &self,
        log: &KafkaLog,
        topic: &str,
        encode: impl Fn(i64, i16, i32) -> StorageResult<Bytes>,
    ) -> StorageResult<AppendInfo> {
        let mut held = self.held.lock().await;
        let h = match held.take() {
            Some(h) => h,
            None => self.init().await?,
        };
        // Whatever fails below, the holder is dropped: the next write takes the fence anew,
        // which also aborts this transaction if it was left open.
        let at = self.transaction(log, topic, &h, encode).await?;
        *held = Some(Holder {
            sequence: h.sequence.wrapping_add(1),
            ..h
        });
        Ok(at)
    }

    async fn transaction(
        &self,
        log: &KafkaLog,
        topic: &str,
        h: &Holder,
        encode: impl Fn(i64, i16, i32) -> StorageResult<Bytes>,
    ) -> StorageResult<AppendInfo> {
        self.add_partition(h, topic).await?;
        let batch = encode(h.producer_id, h.epoch, h.sequence)?;
        let at = match log
            .produce_transactional(topic, 0, batch, &self.transactional_id)
            .await
        {
            Ok(at) => at,
            Err(super::errors::Failure::Fatal { code, message }) if fenced(code) => {
                return Err(StorageError::Fenced(message))
            }
            Err(f) => {
                self.abort(h).await;
                return Err(f.into_storage(topic));
            }
        };
        if let Err(e) = self.end(h, true).await {
            // Not committed, or not known to be: an open transaction holds every replica's
            // catalog at the last stable offset until it times out.
            if !matches!(e, StorageError::Fenced(_)) {
                self.abort(h).await;
            }
            return Err(e);
        }
        Ok(at)
    }

    /// Best effort: a transaction that cannot be aborted now times out on the broker.
    async fn abort(&self, h: &Holder) {
        if let Err(e) = self.end(h, false).await {
            tracing::warn!(error = %e, "aborting a catalog transaction failed");
        }
    }

    async fn init(&self) -> StorageResult<Holder> {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(text(&self.transactional_id))))
            .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = self
            .on_coordinator("InitProducerId", |addr| {
                let request = &request;
                async move {
                    let r: InitProducerIdResponse = self
                        .cluster
                        .request(&addr, ApiKey::InitProducerId, INIT_PRODUCER_ID_V, request)
                        .await
                        .map_err(StorageError::Unavailable)?;
                    match r.error_code {
                        0 => Ok(Step::Done(r)),
                        c if again(c) => Ok(Step::Again(format!("error code {c}"))),
                        c => Err(failed(c, "InitProducerId")),
                    }
                }
            })
            .await?;
        tracing::debug!(
            producer_id = r.producer_id.0,
            epoch = r.producer_epoch,
            "catalog fence taken"
        );
        Ok(Holder {
            producer_id: r.producer_id.0,
            epoch: r.producer_epoch,
            sequence: 0,
        })
    }

    async fn add_partition(&self, h: &Holder, topic: &str) -> StorageResult<()> {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(text(&self.transactional_id)))
            .with_v3_and_below_producer_id(ProducerId(h.producer_id))
            .with_v3_and_below_producer_epoch(h.epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(text(topic)))
                .with_partitions(vec![0])]);
        self.on_coordinator("AddPartitionsToTxn", |addr| {
            let request = &request;
            async move {
                let r: AddPartitionsToTxnResponse = self
                    .cluster
                    .request(&addr, ApiKey::AddPartitionsToTxn, ADD_PARTITIONS_V, request)
                    .await
                    .map_err(StorageError::Unavailable)?;
                let code = r
                    .results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| &t.results_by_partition)
                    .map(|p| p.partition_error_code)
                    .find(|c| *c != 0)
                    .unwrap_or(r.error_code);
                step(code, "AddPartitionsToTxn")
            }
        })
        .await
    }

    async fn end(&self, h: &Holder, commit: bool) -> StorageResult<()> {
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(text(&self.transactional_id)))
            .with_producer_id(ProducerId(h.producer_id))
            .with_producer_epoch(h.epoch)
            .with_committed(commit);
        self.on_coordinator("EndTxn", |addr| {
            let request = &request;
            async move {
                let r: EndTxnResponse = self
                    .cluster
                    .request(&addr, ApiKey::EndTxn, END_TXN_V, request)
                    .await
                    .map_err(StorageError::Unavailable)?;
                step(r.error_code, "EndTxn")
            }
        })
        .await
    }

    /// Runs `attempt` against the transaction coordinator, finding it anew after answers
    /// that say it moved or is not ready, until it is done or `STEP_FOR` runs out.
    async fn on_coordinator<T, F, Fut>(&self, what: &str, attempt: F) -> StorageResult<T>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = StorageResult<Step<T>>>,
    {
        let deadline = tokio::time::Instant::now() + STEP_FOR;
        let mut backoff = Duration::from_millis(20);
        loop {
            let why = match self.coordinator().await {
                Ok(addr) => match attempt(addr.clone()).await {
                    Ok(Step::Done(out)) => return Ok(out),
                    Ok(Step::Again(why)) => why,
                    Err(StorageError::Unavailable(why)) => why,
                    Err(e) => return Err(e),
                },
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() + backoff >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "{what} for the catalog did not succeed in {} s: {why} (does the cluster serve transactions? its transaction.state.log.replication.factor must not exceed the broker count)",
                    STEP_FOR.as_secs()
                )));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    async fn coordinator(&self) -> StorageResult<String> {
        let addr = self
            .cluster
            .any_broker()
            .ok_or_else(|| StorageError::Unavailable("no Kafka broker known".into()))?;
        let r: FindCoordinatorResponse = self
            .cluster
            .request(
                &addr,
                ApiKey::FindCoordinator,
                FIND_COORDINATOR_V,
                &FindCoordinatorRequest::default()
                    .with_key(text(&self.transactional_id))
                    .with_key_type(1),
            )
            .await
            .map_err(StorageError::Unavailable)?;
        if r.error_code != 0 {
            return Err(StorageError::Unavailable(format!(
                "FindCoordinator for the catalog: error code {}",
                r.error_code
            )));
        }
        Ok(join_host_port(&r.host, r.port))
    }
}

/// One step's answer code: done, again, fenced or failed.
fn step(code: i16, what: &str) -> StorageResult<Step<()>> {
    match code {
        0 => Ok(Step::Done(())),
        c if fenced(c) => Err(StorageError::Fenced(format!(
            "{what}: another replica took the catalog fence (error code {c})"
        ))),
        c if again(c) => Ok(Step::Again(format!("{what}: error code {c}"))),
        c => Err(failed(c, what)),
    }
}

/// A refusal that is not "not yet": permanent ones are not retried.
fn failed(code: i16, what: &str) -> StorageError {
    let message = format!(
        "{what} for the catalog's transactional id failed with Kafka error code {code}{}",
        if code == TRANSACTIONAL_ID_AUTHORIZATION_FAILED {
            " (TRANSACTIONAL_ID_AUTHORIZATION_FAILED: strait's principal needs Describe and Write on the transactional id strait-catalog-<metadata_topic>)"
        } else {
            ""
        }
    );
    if permanent(code) {
        StorageError::Refused {
            code,
            class: crate::backend::Refusal::Failed,
            message,
        }
    } else {
        StorageError::Unavailable(message)
    }
}
