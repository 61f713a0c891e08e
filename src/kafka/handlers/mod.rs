//! Dispatch from a decoded request to its handler. One arm per API; the handlers live in the
//! sibling modules, grouped by what they touch.

mod fetch;
mod groups;
mod metadata;
mod produce;
pub mod reshard_order;
mod topics;

use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::KafkaCtx;

/// The connection a request came on.
pub struct Conn {
    pub client_id: String,
    pub client_host: String,
}

/// Answers one request; `None` when Kafka sends no response (Produce with acks=0).
pub async fn handle(
    ctx: &KafkaCtx,
    conn: &Conn,
    request: RequestKind,
    version: i16,
) -> Option<ResponseKind> {
    use RequestKind as R;
    use ResponseKind as S;
    Some(match request {
        R::ApiVersions(r) => S::ApiVersions(metadata::api_versions(r, version)),
        R::Metadata(r) => S::Metadata(metadata::metadata(ctx, r, version).await),
        R::DescribeCluster(r) => S::DescribeCluster(metadata::describe_cluster(ctx, r)),
        R::Produce(r) => return produce::produce(ctx, r, version).await.map(S::Produce),
        R::InitProducerId(r) => S::InitProducerId(produce::init_producer_id(ctx, r)),
        R::Fetch(r) => S::Fetch(fetch::fetch(ctx, r, version).await),
        R::ListOffsets(r) => S::ListOffsets(fetch::list_offsets(ctx, r).await),
        R::CreateTopics(r) => S::CreateTopics(topics::create_topics(ctx, r).await),
        R::DeleteTopics(r) => S::DeleteTopics(topics::delete_topics(ctx, r, version).await),
        R::CreatePartitions(r) => S::CreatePartitions(topics::create_partitions(ctx, r).await),
        R::DescribeConfigs(r) => S::DescribeConfigs(topics::describe_configs(ctx, r).await),
        R::IncrementalAlterConfigs(r) => {
            S::IncrementalAlterConfigs(topics::incremental_alter_configs(ctx, r).await)
        }
        R::FindCoordinator(r) => {
            S::FindCoordinator(groups::find_coordinator(ctx, r, version).await)
        }
        R::JoinGroup(r) => S::JoinGroup(groups::join_group(ctx, conn, r, version).await),
        R::SyncGroup(r) => S::SyncGroup(groups::sync_group(ctx, r).await),
        R::Heartbeat(r) => S::Heartbeat(groups::heartbeat(ctx, r)),
        R::LeaveGroup(r) => S::LeaveGroup(groups::leave_group(ctx, r, version)),
        R::OffsetCommit(r) => S::OffsetCommit(groups::offset_commit(ctx, r).await),
        R::OffsetFetch(r) => S::OffsetFetch(groups::offset_fetch(ctx, r, version).await),
        R::DescribeGroups(r) => S::DescribeGroups(groups::describe_groups(ctx, r)),
        R::ListGroups(r) => S::ListGroups(groups::list_groups(ctx, r).await),
        R::DeleteGroups(r) => S::DeleteGroups(groups::delete_groups(ctx, r)),
        R::OffsetDelete(r) => S::OffsetDelete(groups::offset_delete(ctx, r)),
        other => {
            // The version table admits only the APIs above; reaching here is a table bug.
            tracing::error!(request = ?std::mem::discriminant(&other), "request admitted but not handled");
            return None;
        }
    })
}

pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Kafka's topic-name rule, narrowed to Kinesis's 128 characters so every topic is a stream.
pub(crate) fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
