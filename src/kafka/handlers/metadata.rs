//! ApiVersions, Metadata and DescribeCluster: how strait presents itself as one broker.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, DescribeClusterRequest,
    DescribeClusterResponse, MetadataRequest, MetadataResponse,
};

use super::{str_bytes, topic_name, valid_topic_name};
use crate::core::catalog::{Stream, StreamMode};
use crate::core::topic_id;
use crate::kafka::error::{self, NONE};
use crate::kafka::{KafkaCtx, NODE_ID};
use crate::protocol::kafka::versions::api_versions_list;

pub fn api_versions(_r: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_versions_list())
}

/// Leader epochs are not tracked: -1 tells clients to skip epoch validation.
const NO_EPOCH: i32 = -1;
const UNKNOWN_OPERATIONS: i32 = i32::MIN;

pub fn topic_metadata(s: &Stream) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&s.name)))
        .with_topic_id(topic_id(s))
        .with_topic_authorized_operations(UNKNOWN_OPERATIONS)
        .with_partitions(
            s.shards
                .iter()
                .map(|sh| {
                    MetadataResponsePartition::default()
                        .with_partition_index(sh.partition as i32)
                        .with_leader_id(BrokerId(NODE_ID))
                        .with_leader_epoch(NO_EPOCH)
                        .with_replica_nodes(vec![BrokerId(NODE_ID)])
                        .with_isr_nodes(vec![BrokerId(NODE_ID)])
                })
                .collect(),
        )
}

fn missing(name: Option<kafka_protocol::messages::TopicName>, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_error_code(code)
        .with_topic_authorized_operations(UNKNOWN_OPERATIONS)
}

pub async fn metadata(ctx: &KafkaCtx, r: MetadataRequest, version: i16) -> MetadataResponse {
    let all = match &r.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut topics = Vec::new();
    if all {
        topics.extend(ctx.core.streams().iter().map(|s| topic_metadata(s)));
    } else {
        let auto = ctx.auto_create_topics && (version < 4 || r.allow_auto_topic_creation);
        for t in r.topics.unwrap_or_default() {
            // Kafka looks a topic up by id whenever one is given; the Java client then sends
            // an empty name rather than null.
            let by_id = !t.topic_id.is_nil() || t.name.is_none();
            let name = match &t.name {
                Some(n) if !by_id => n.0.to_string(),
                _ => {
                    // Lookup by topic id (v10+).
                    match ctx
                        .core
                        .streams()
                        .iter()
                        .find(|s| topic_id(s) == t.topic_id)
                    {
                        Some(s) => topics.push(topic_metadata(s)),
                        None => topics.push(
                            missing(None, error::of(ResponseError::UnknownTopicId))
                                .with_topic_id(t.topic_id),
                        ),
                    }
                    continue;
                }
            };
            match ctx.core.stream(&name) {
                Ok(s) => topics.push(topic_metadata(&s)),
                Err(_) if !valid_topic_name(&name) => topics.push(missing(
                    t.name.clone(),
                    error::of(ResponseError::InvalidTopicException),
                )),
                Err(_) if auto => {
                    match ctx
                        .core
                        .create_topic(&name, ctx.default_partitions, StreamMode::Provisioned)
                        .await
                    {
                        Ok(()) | Err(crate::core::error::CoreError::StreamExists { .. }) => {
                            // Made outside strait since the last catalog refresh: adopt it now.
                            if ctx.core.stream(&name).is_err() {
                                if let Err(e) = ctx.core.refresh_catalog().await {
                                    tracing::warn!(error = %e, "catalog refresh failed");
                                }
                            }
                            match ctx.core.stream(&name) {
                                Ok(s) => topics.push(topic_metadata(&s)),
                                Err(e) => topics.push(missing(t.name.clone(), error::code(&e))),
                            }
                        }
                        Err(e) => topics.push(missing(t.name.clone(), error::code(&e))),
                    }
                }
                Err(e) => topics.push(missing(t.name.clone(), error::code(&e))),
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(str_bytes(&ctx.advertised_host))
            .with_port(ctx.advertised_port)])
        .with_cluster_id(Some(str_bytes(&ctx.cluster_id)))
        .with_controller_id(BrokerId(NODE_ID))
        .with_cluster_authorized_operations(UNKNOWN_OPERATIONS)
        .with_topics(topics)
        .with_error_code(NONE)
}

pub fn describe_cluster(ctx: &KafkaCtx, _r: DescribeClusterRequest) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&ctx.cluster_id))
        .with_controller_id(BrokerId(NODE_ID))
        .with_cluster_authorized_operations(UNKNOWN_OPERATIONS)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(NODE_ID))
            .with_host(str_bytes(&ctx.advertised_host))
            .with_port(ctx.advertised_port)])
}
