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
use crate::core::groups::ReplicaAddress;
use crate::core::topic_id;
use crate::kafka::error::{self, NONE};
use crate::kafka::KafkaCtx;
use crate::protocol::kafka::versions::api_versions_list;

pub fn api_versions(_r: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_versions_list())
}

/// Leader epochs are not tracked: -1 tells clients to skip epoch validation.
const NO_EPOCH: i32 = -1;
const UNKNOWN_OPERATIONS: i32 = i32::MIN;

/// A topic as Metadata shows it: this replica (`node`) leads every partition.
pub fn topic_metadata(s: &Stream, node: i32) -> MetadataResponseTopic {
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
                        .with_leader_id(BrokerId(node))
                        .with_leader_epoch(NO_EPOCH)
                        .with_replica_nodes(vec![BrokerId(node)])
                        .with_isr_nodes(vec![BrokerId(node)])
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
    let node = ctx.groups.node_id();
    let all = match &r.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut topics = Vec::new();
    if all {
        topics.extend(ctx.core.streams().iter().map(|s| topic_metadata(s, node)));
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
                        Some(s) => topics.push(topic_metadata(s, node)),
                        None => topics.push(
                            missing(None, error::of(ResponseError::UnknownTopicId))
                                .with_topic_id(t.topic_id),
                        ),
                    }
                    continue;
                }
            };
            // A valid name unknown here is looked for on the cluster: a replica must not call
            // a topic another replica lists unknown (`Core::discover`).
            let found = match ctx.core.stream(&name) {
                Err(_) if valid_topic_name(&name) => ctx.core.found_stream(&name).await,
                known => known,
            };
            match found {
                Ok(s) => topics.push(topic_metadata(&s, node)),
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
                                Ok(s) => topics.push(topic_metadata(&s, node)),
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
        .with_brokers(
            brokers(ctx)
                .into_iter()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.node_id))
                        .with_host(str_bytes(&b.host))
                        .with_port(b.port)
                })
                .collect(),
        )
        .with_cluster_id(Some(str_bytes(&ctx.cluster_id)))
        .with_controller_id(BrokerId(node))
        .with_cluster_authorized_operations(UNKNOWN_OPERATIONS)
        .with_topics(topics)
        .with_error_code(NONE)
}

pub fn describe_cluster(ctx: &KafkaCtx, _r: DescribeClusterRequest) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&ctx.cluster_id))
        .with_controller_id(BrokerId(ctx.groups.node_id()))
        .with_cluster_authorized_operations(UNKNOWN_OPERATIONS)
        .with_brokers(
            brokers(ctx)
                .into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.node_id))
                        .with_host(str_bytes(&b.host))
                        .with_port(b.port)
                })
                .collect(),
        )
}

/// The brokers strait shows: this replica, and the others sharing its state (so a group
/// coordinator on another replica is a broker clients know).
fn brokers(ctx: &KafkaCtx) -> Vec<ReplicaAddress> {
    ctx.groups.replicas().unwrap_or_else(|| {
        vec![ReplicaAddress {
            node_id: ctx.groups.node_id(),
            host: ctx.advertised_host.clone(),
            port: ctx.advertised_port,
        }]
    })
}
