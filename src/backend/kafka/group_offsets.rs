//! Consumer-group offsets in the Kafka cluster, set and read as Kafka's admin tools do
//! (`kafka-consumer-groups --reset-offsets`): FindCoordinator, then OffsetCommit with no
//! generation or member, which the coordinator takes only while the group has no members;
//! OffsetFetch to read them back. Topics carry `backend.kafka.topic_prefix`; group ids do
//! not (the pass-through leaves them as clients name them).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::Cluster;
use crate::backend::GroupOffsets;

/// All served by Kafka 3.0 and later, and by 4.x (which dropped OffsetCommit below v2).
const FIND_COORDINATOR_V: i16 = 4;
const OFFSET_COMMIT_V: i16 = 8;
const OFFSET_FETCH_V: i16 = 8;
const GROUP_KEY_TYPE: i8 = 0;
/// A coordinator loading its groups, or moving, answers with a retriable error for a while.
const ATTEMPTS: u32 = 10;
const BACKOFF: Duration = Duration::from_millis(500);

pub struct ClusterGroupOffsets {
    cluster: Arc<Cluster>,
    topic_prefix: String,
}

impl ClusterGroupOffsets {
    pub fn new(cluster: Arc<Cluster>, topic_prefix: &str) -> ClusterGroupOffsets {
        ClusterGroupOffsets {
            cluster,
            topic_prefix: topic_prefix.to_string(),
        }
    }

    /// The broker coordinating `group`.
    async fn coordinator(&self, group: &str) -> Result<String, String> {
        let any = self.cluster.any_broker().ok_or("no broker known")?;
        let r: FindCoordinatorResponse = self
            .cluster
            .request(
                &any,
                ApiKey::FindCoordinator,
                FIND_COORDINATOR_V,
                &FindCoordinatorRequest::default()
                    .with_key_type(GROUP_KEY_TYPE)
                    .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]),
            )
            .await?;
        let c = r
            .coordinators
            .first()
            .ok_or("FindCoordinator answered no coordinator")?;
        if c.error_code != 0 {
            return Err(error_text("FindCoordinator", c.error_code));
        }
        if let Some(addr) = self.cluster.node(c.node_id.0) {
            return Ok(addr);
        }
        Ok(super::cluster::join_host_port(&c.host, c.port))
    }

    /// Runs `call` until it answers something other than a retriable error.
    async fn retrying<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, (i16, String)>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call().await {
                Ok(v) => return Ok(v),
                Err((code, text)) => {
                    let retriable = code == TRANSPORT
                        || ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable());
                    if !retriable || attempt >= ATTEMPTS {
                        return Err(format!("{what}: {text}"));
                    }
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
    }
}

/// Transport failures are retried like retriable error codes.
const TRANSPORT: i16 = -2;

fn error_text(api: &str, code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{api}: {e:?} ({e})"),
        None => format!("{api}: error code {code}"),
    }
}

#[async_trait]
impl GroupOffsets for ClusterGroupOffsets {
    async fn commit(&self, group: &str, topic: &str, offsets: &[(u32, i64)]) -> Result<(), String> {
        let name = format!("{}{topic}", self.topic_prefix);
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(*p as i32)
                                .with_committed_offset(*o)
                                .with_committed_leader_epoch(-1)
                                .with_committed_metadata(Some(StrBytes::from_static_str(
                                    "strait migrate checkpoints",
                                )))
                        })
                        .collect(),
                )]);
        self.retrying(&format!("committing offsets of group {group}"), || async {
            let addr = self.coordinator(group).await.map_err(|e| (TRANSPORT, e))?;
            let r: OffsetCommitResponse = self
                .cluster
                .request(&addr, ApiKey::OffsetCommit, OFFSET_COMMIT_V, &request)
                .await
                .map_err(|e| (TRANSPORT, e))?;
            for t in &r.topics {
                for p in &t.partitions {
                    if p.error_code != 0 {
                        let mut text = error_text("OffsetCommit", p.error_code);
                        if p.error_code == ResponseError::UnknownMemberId.code() {
                            text.push_str(": the group has members; stop its consumers first");
                        }
                        return Err((p.error_code, text));
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn committed(&self, group: &str, topic: &str) -> Result<Vec<(u32, i64)>, String> {
        let name = format!("{}{topic}", self.topic_prefix);
        let request =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                // No topic list: every partition the group committed.
                .with_topics(None)]);
        self.retrying(&format!("reading offsets of group {group}"), || async {
            let addr = self.coordinator(group).await.map_err(|e| (TRANSPORT, e))?;
            let r: OffsetFetchResponse = self
                .cluster
                .request(&addr, ApiKey::OffsetFetch, OFFSET_FETCH_V, &request)
                .await
                .map_err(|e| (TRANSPORT, e))?;
            let mut out = Vec::new();
            for g in &r.groups {
                if g.error_code != 0 {
                    return Err((g.error_code, error_text("OffsetFetch", g.error_code)));
                }
                for t in g.topics.iter().filter(|t| t.name.0.as_str() == name) {
                    for p in &t.partitions {
                        if p.error_code != 0 {
                            return Err((p.error_code, error_text("OffsetFetch", p.error_code)));
                        }
                        if p.committed_offset >= 0 {
                            out.push((p.partition_index as u32, p.committed_offset));
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}
