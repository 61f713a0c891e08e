//! Consumer-group lag on the Kafka backend, where the cluster keeps the groups: ListGroups on
//! every broker, FindCoordinator for all groups at once, OffsetFetch per coordinator, and one
//! ListOffsets (latest, read_uncommitted, as Kafka's own tools measure lag) per partition
//! leader. Run when Prometheus scrapes, at most once per `MIN_INTERVAL`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ListGroupsRequest,
    ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::Cluster;
use super::log::LIST_OFFSETS_V;

/// All served by Kafka 3.0 and later (batched FindCoordinator and OffsetFetch: KIP-699, KIP-709).
const LIST_GROUPS_V: i16 = 4;
const FIND_COORDINATOR_V: i16 = 4;
const OFFSET_FETCH_V: i16 = 8;
const GROUP_KEY_TYPE: i8 = 0;

/// Scrapes closer together than this reuse the last answer: each pass is a few requests per
/// broker, and Prometheus may scrape every few seconds from several servers.
pub const MIN_INTERVAL: Duration = Duration::from_secs(15);

/// (group, records behind) for every group with committed offsets on topics starting with
/// `topic_prefix` (under a prefix, other deployments' groups are not this one's to report).
pub async fn group_lags(
    cluster: &Cluster,
    topic_prefix: &str,
) -> Result<Vec<(String, i64)>, String> {
    let mut groups = Vec::new();
    for addr in cluster.nodes().into_values() {
        let r: ListGroupsResponse = cluster
            .request(
                &addr,
                ApiKey::ListGroups,
                LIST_GROUPS_V,
                &ListGroupsRequest::default(),
            )
            .await?;
        groups.extend(r.groups.into_iter().map(|g| g.group_id.0));
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let any = cluster.any_broker().ok_or("no broker known")?;
    let found: FindCoordinatorResponse = cluster
        .request(
            &any,
            ApiKey::FindCoordinator,
            FIND_COORDINATOR_V,
            &FindCoordinatorRequest::default()
                .with_key_type(GROUP_KEY_TYPE)
                .with_coordinator_keys(groups.clone()),
        )
        .await?;
    let mut by_coordinator: BTreeMap<i32, Vec<StrBytes>> = BTreeMap::new();
    for c in found.coordinators.into_iter().filter(|c| c.error_code == 0) {
        by_coordinator.entry(c.node_id.0).or_default().push(c.key);
    }
    // (group, topic, partition, committed offset)
    let mut committed = Vec::new();
    for (node, ids) in by_coordinator {
        let addr = cluster
            .node(node)
            .ok_or_else(|| format!("coordinator {node} is not a known broker"))?;
        let request = OffsetFetchRequest::default().with_groups(
            ids.into_iter()
                // No topic list (null): every partition the group committed.
                .map(|g| {
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(g))
                        .with_topics(None)
                })
                .collect(),
        );
        let r: OffsetFetchResponse = cluster
            .request(&addr, ApiKey::OffsetFetch, OFFSET_FETCH_V, &request)
            .await?;
        for g in r.groups.into_iter().filter(|g| g.error_code == 0) {
            let ours = g
                .topics
                .into_iter()
                .filter(|t| t.name.starts_with(topic_prefix));
            for t in ours {
                for p in t.partitions {
                    if p.error_code == 0 && p.committed_offset >= 0 {
                        committed.push((
                            g.group_id.0.to_string(),
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                        ));
                    }
                }
            }
        }
    }
    // A topic made since the last metadata refresh has no known leader yet.
    let unknown = committed
        .iter()
        .any(|(_, t, p, _)| u32::try_from(*p).is_ok_and(|p| cluster.leader(t, p).is_none()));
    if unknown {
        let _ = cluster.refresh().await;
    }
    let ends = log_ends(cluster, committed.iter().map(|c| (c.1.clone(), c.2))).await;
    let mut lags: BTreeMap<String, i64> = BTreeMap::new();
    for (group, topic, partition, offset) in committed {
        let lag = lags.entry(group).or_default();
        if let Some(end) = ends.get(&(topic, partition)) {
            *lag += (end - offset).max(0);
        }
    }
    Ok(lags.into_iter().collect())
}

/// Latest offsets, one ListOffsets per partition leader; partitions without a known leader
/// or answered with an error are left out.
async fn log_ends(
    cluster: &Cluster,
    partitions: impl Iterator<Item = (String, i32)>,
) -> HashMap<(String, i32), i64> {
    let mut by_leader: BTreeMap<String, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for (topic, p) in partitions {
        let Some(leader) = u32::try_from(p)
            .ok()
            .and_then(|pu| cluster.leader(&topic, pu))
        else {
            continue;
        };
        let parts = by_leader
            .entry(leader)
            .or_default()
            .entry(topic)
            .or_default();
        if !parts.contains(&p) {
            parts.push(p);
        }
    }
    let mut ends = HashMap::new();
    for (leader, topics) in by_leader {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let Ok(r) = cluster
            .request::<_, ListOffsetsResponse>(
                &leader,
                ApiKey::ListOffsets,
                LIST_OFFSETS_V,
                &request,
            )
            .await
        else {
            continue;
        };
        for t in r.topics {
            for p in t.partitions.into_iter().filter(|p| p.error_code == 0) {
                ends.insert((t.name.0.to_string(), p.partition_index), p.offset);
            }
        }
    }
    ends
}

/// `strait_consumer_group_lag_records` from the cluster, refreshed on scrape at most every
/// `MIN_INTERVAL`; a failed pass keeps the previous values (and logs why).
pub fn watch(cluster: Arc<Cluster>, topic_prefix: String) {
    let last: Arc<tokio::sync::Mutex<Option<Instant>>> = Arc::default();
    crate::observe::metrics().on_scrape(Box::new(move || {
        let (cluster, last, prefix) = (cluster.clone(), last.clone(), topic_prefix.clone());
        Box::pin(async move {
            let mut last = last.lock().await;
            if last.is_some_and(|t| t.elapsed() < MIN_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
            match group_lags(&cluster, &prefix).await {
                Ok(lags) => crate::observe::metrics().set_group_lags(lags),
                Err(e) => {
                    tracing::debug!(error = %e, "consumer-group lag not read from the cluster")
                }
            }
        })
    }));
}
