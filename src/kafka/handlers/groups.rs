//! Consumer-group APIs over the core's coordinator: FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups
//! and OffsetDelete.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};

use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, topic_name, Conn};
use crate::core::groups::{Committed, GroupError, JoinRequest};
use crate::kafka::error::{self, group_code, NONE};
use crate::kafka::KafkaCtx;

const GROUP_KEY: i8 = 0;

/// Names the replica coordinating each group (this one when it is alone, or when it takes a
/// group nobody holds). Transactional ids are refused: Kinesis has no transactions.
pub async fn find_coordinator(
    ctx: &KafkaCtx,
    r: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if version >= 4 {
        r.coordinator_keys
    } else {
        vec![r.key]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let found = Coordinator::default().with_key(key.clone());
        let found = if r.key_type != GROUP_KEY {
            found.with_error_code(error::of(ResponseError::TransactionalIdAuthorizationFailed))
        } else {
            match ctx.groups.coordinator(&key).await {
                Ok(None) => found
                    .with_node_id(BrokerId(ctx.groups.node_id()))
                    .with_host(str_bytes(&ctx.advertised_host))
                    .with_port(ctx.advertised_port),
                Ok(Some(at)) => found
                    .with_node_id(BrokerId(at.node_id))
                    .with_host(str_bytes(&at.host))
                    .with_port(at.port),
                Err(e) => {
                    tracing::warn!(group = %key, error = %e, "cannot find the group's coordinator");
                    found
                        .with_error_code(error::of(ResponseError::CoordinatorNotAvailable))
                        .with_error_message(Some(str_bytes(&e.to_string())))
                }
            }
        };
        coordinators.push(found);
    }
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.pop().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        // v0 has no message.
        .with_error_message(c.error_message.filter(|_| version >= 1))
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}

pub async fn join_group(
    ctx: &KafkaCtx,
    conn: &Conn,
    r: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let req = JoinRequest {
        group: r.group_id.0.to_string(),
        member_id: r.member_id.to_string(),
        instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: conn.client_id.clone(),
        client_host: format!("/{}", conn.client_host),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let base = JoinGroupResponse::default().with_generation_id(-1);
    match ctx.groups.join(req).await {
        Ok(j) => base
            .with_error_code(NONE)
            .with_generation_id(j.generation)
            .with_protocol_type(j.protocol_type.map(|p| str_bytes(&p)))
            .with_protocol_name(j.protocol.map(|p| str_bytes(&p)))
            .with_leader(str_bytes(&j.leader))
            // The field exists from v9; older leaders recompute and SyncGroup keeps the
            // stored assignment anyway.
            .with_skip_assignment(j.skip_assignment && version >= 9)
            .with_member_id(str_bytes(&j.member_id))
            .with_members(
                j.members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_group_instance_id(m.instance_id.map(|i| str_bytes(&i)))
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            ),
        Err(GroupError::MemberIdRequired(id)) => base
            .with_error_code(group_code(&GroupError::MemberIdRequired(String::new())))
            .with_member_id(str_bytes(&id)),
        Err(e) => base
            .with_error_code(group_code(&e))
            .with_member_id(r.member_id),
    }
}

pub async fn sync_group(ctx: &KafkaCtx, r: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = r
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    match ctx
        .groups
        .sync(&r.group_id.0, r.generation_id, &r.member_id, assignments)
        .await
    {
        Ok(s) => {
            let assignment = if s.protocol_type.as_deref() == Some("consumer") {
                super::reshard_order::withhold_children(
                    ctx,
                    &r.group_id.0,
                    r.generation_id,
                    &r.member_id,
                    s.protocol.as_deref(),
                    s.assignment,
                )
                .await
            } else {
                s.assignment
            };
            SyncGroupResponse::default()
                .with_error_code(NONE)
                .with_protocol_type(s.protocol_type.map(|p| str_bytes(&p)))
                .with_protocol_name(s.protocol.map(|p| str_bytes(&p)))
                .with_assignment(assignment)
        }
        Err(e) => SyncGroupResponse::default().with_error_code(group_code(&e)),
    }
}

pub fn heartbeat(ctx: &KafkaCtx, r: HeartbeatRequest) -> HeartbeatResponse {
    let code = match ctx
        .groups
        .heartbeat(&r.group_id.0, r.generation_id, &r.member_id)
    {
        Ok(()) => NONE,
        Err(e) => group_code(&e),
    };
    HeartbeatResponse::default().with_error_code(code)
}

pub fn leave_group(ctx: &KafkaCtx, r: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    let results = ctx.groups.leave(&r.group_id.0, members.clone());
    if version < 3 {
        let code = results
            .first()
            .map_or(NONE, |r| r.as_ref().err().map_or(NONE, group_code));
        return LeaveGroupResponse::default().with_error_code(code);
    }
    LeaveGroupResponse::default()
        .with_error_code(NONE)
        .with_members(
            members
                .into_iter()
                .zip(results)
                .map(|((id, instance), res)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&id))
                        .with_group_instance_id(instance.map(|i| str_bytes(&i)))
                        .with_error_code(res.err().map_or(NONE, |e| group_code(&e)))
                })
                .collect(),
        )
}

pub async fn offset_commit(ctx: &KafkaCtx, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = r.group_id.0.to_string();
    // Partitions of unknown topics fail on their own; the rest commit together.
    let mut offsets = Vec::new();
    let mut unknown = std::collections::HashSet::new();
    for t in &r.topics {
        let name = t.name.0.to_string();
        let stream = ctx.core.stream(&name).ok();
        for p in &t.partitions {
            let exists = stream.as_ref().is_some_and(|s| {
                p.partition_index >= 0 && s.shard(p.partition_index as u32).is_some()
            });
            if exists {
                offsets.push((
                    name.clone(),
                    p.partition_index,
                    Committed {
                        offset: p.committed_offset,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        leader_epoch: p.committed_leader_epoch,
                    },
                ));
            } else {
                unknown.insert((name.clone(), p.partition_index));
            }
        }
    }
    let written: Vec<(String, i32, i64)> = offsets
        .iter()
        .map(|(t, p, c)| (t.clone(), *p, c.offset))
        .collect();
    let mut result = ctx.groups.commit(
        &group,
        r.generation_id_or_member_epoch,
        &r.member_id,
        offsets,
    );
    // A group tied to a KCL lease table: the commit counts once it is a checkpoint there too;
    // until then the client retries it.
    if result.is_ok() && ctx.groups.is_external(&group) {
        if let Err(e) = ctx.groups.store_external(&group, &written).await {
            tracing::warn!(%group, error = %e, "commit not written to the group's lease table");
            result = Err(GroupError::External);
        }
    }
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if unknown.contains(&(name.clone(), p.partition_index)) {
                        error::of(ResponseError::UnknownTopicOrPartition)
                    } else {
                        result.as_ref().err().map_or(NONE, group_code)
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// A topic's committed offsets: (partition, offset if any).
type TopicOffsets = (String, Vec<(i32, Option<Committed>)>);

/// Committed offsets of one group, grouped by topic, for either OffsetFetch shape.
fn fetch_group(
    ctx: &KafkaCtx,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<TopicOffsets> {
    let rows = ctx.groups.committed(group, topics.as_deref());
    let mut out: Vec<TopicOffsets> = Vec::new();
    for (t, p, c) in rows {
        match out.iter_mut().find(|(n, _)| *n == t) {
            Some((_, ps)) => ps.push((p, c)),
            None => out.push((t, vec![(p, c)])),
        }
    }
    out
}

/// A group tied to a KCL lease table takes the checkpoints there as its offsets first; the
/// error code (retriable) when they cannot be read.
async fn load_external(
    ctx: &KafkaCtx,
    group: &str,
    wanted: Option<&Vec<(String, Vec<i32>)>>,
) -> Option<i16> {
    if !ctx.groups.is_external(group) {
        return None;
    }
    let topics: Vec<String> = match wanted {
        Some(ts) => ts.iter().map(|(t, _)| t.clone()).collect(),
        None => {
            let mut ts: Vec<String> = ctx
                .groups
                .committed(group, None)
                .into_iter()
                .map(|(t, _, _)| t)
                .collect();
            ts.dedup();
            ts
        }
    };
    match ctx.groups.load_external(group, &topics).await {
        Ok(()) => None,
        Err(e) => {
            tracing::warn!(%group, error = %e, "cannot read the group's lease table");
            Some(error::of(ResponseError::CoordinatorLoadInProgress))
        }
    }
}

/// Why a group's offsets cannot be fetched here: another replica coordinates it, or its
/// KCL lease table cannot be read.
async fn refusal(
    ctx: &KafkaCtx,
    group: &str,
    wanted: Option<&Vec<(String, Vec<i32>)>>,
) -> Option<i16> {
    if !ctx.groups.coordinates(group) {
        return Some(group_code(&GroupError::NotCoordinator));
    }
    load_external(ctx, group, wanted).await
}

pub async fn offset_fetch(
    ctx: &KafkaCtx,
    r: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(r.groups.len());
        for g in r.groups {
            let wanted: Option<Vec<(String, Vec<i32>)>> = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            if let Some(code) = refusal(ctx, &g.group_id.0, wanted.as_ref()).await {
                groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code),
                );
                continue;
            }
            groups.push({
                let topics = fetch_group(ctx, &g.group_id.0, wanted)
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(&t))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|(p, c)| {
                                        let (o, m, e) = committed_fields(c);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o)
                                            .with_metadata(m)
                                            .with_committed_leader_epoch(e)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    if let Some(code) = refusal(ctx, &r.group_id.0, wanted.as_ref()).await {
        // v0 and v1 carry errors per partition only.
        if version < 2 {
            return OffsetFetchResponse::default().with_topics(
                wanted
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(topic_name(&t))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        }
        return OffsetFetchResponse::default().with_error_code(code);
    }
    let topics = fetch_group(ctx, &r.group_id.0, wanted)
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&t))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, c)| {
                            let (o, m, e) = committed_fields(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_metadata(m)
                                .with_committed_leader_epoch(e)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default()
        .with_error_code(NONE)
        .with_topics(topics)
}

fn committed_fields(
    c: Option<Committed>,
) -> (i64, Option<kafka_protocol::protocol::StrBytes>, i32) {
    match c {
        Some(c) => (
            c.offset,
            Some(str_bytes(c.metadata.as_deref().unwrap_or(""))),
            c.leader_epoch,
        ),
        None => (-1, Some(str_bytes("")), -1),
    }
}

pub fn describe_groups(ctx: &KafkaCtx, r: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = r
        .groups
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if !ctx.groups.coordinates(&id.0) {
                return base.with_error_code(group_code(&GroupError::NotCoordinator));
            }
            match ctx.groups.describe(&id.0) {
                None => base
                    .with_error_code(NONE)
                    .with_group_state(str_bytes("Dead")),
                Some(v) => base
                    .with_error_code(NONE)
                    .with_group_state(str_bytes(v.state.as_str()))
                    .with_protocol_type(str_bytes(&v.protocol_type))
                    .with_protocol_data(str_bytes(&v.protocol))
                    .with_members(
                        v.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(&m.member_id))
                                    .with_group_instance_id(m.instance_id.map(|i| str_bytes(&i)))
                                    .with_client_id(str_bytes(&m.client_id))
                                    .with_client_host(str_bytes(&m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn list_groups(ctx: &KafkaCtx, r: ListGroupsRequest) -> ListGroupsResponse {
    // v4+: only groups in one of the requested states (case-insensitive, as Kafka).
    let wanted = |state: &str| {
        r.states_filter.is_empty()
            || r.states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
    };
    // The groups held here stay listed when the store cannot be read for the rest.
    let (error, groups) = match ctx.groups.list_all().await {
        Ok(groups) => (NONE, groups),
        Err(e) => {
            tracing::warn!(error = %e, "ListGroups: cannot read the groups no replica holds");
            (
                error::of(ResponseError::CoordinatorNotAvailable),
                ctx.groups.list(),
            )
        }
    };
    ListGroupsResponse::default()
        .with_error_code(error)
        .with_groups(
            groups
                .into_iter()
                .filter(|(_, _, state)| wanted(state.as_str()))
                .map(|(name, protocol_type, state)| {
                    ListedGroup::default()
                        .with_group_id(GroupId(str_bytes(&name)))
                        .with_protocol_type(str_bytes(&protocol_type))
                        .with_group_state(str_bytes(state.as_str()))
                        .with_group_type(str_bytes("classic"))
                })
                .collect(),
        )
}

pub fn delete_groups(ctx: &KafkaCtx, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default().with_results(
        r.groups_names
            .into_iter()
            .map(|g| {
                let code = ctx
                    .groups
                    .delete(&g.0)
                    .err()
                    .map_or(NONE, |e| group_code(&e));
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(code)
            })
            .collect(),
    )
}

pub fn offset_delete(ctx: &KafkaCtx, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    match ctx.groups.delete_offsets(&r.group_id.0, &partitions) {
        Err(GroupError::GroupIdNotFound) => OffsetDeleteResponse::default()
            .with_error_code(group_code(&GroupError::GroupIdNotFound)),
        res => {
            let code = res.err().map_or(NONE, |e| group_code(&e));
            OffsetDeleteResponse::default()
                .with_error_code(NONE)
                .with_topics(
                    r.topics
                        .into_iter()
                        .map(|t| {
                            OffsetDeleteResponseTopic::default()
                                .with_name(t.name)
                                .with_partitions(
                                    t.partitions
                                        .into_iter()
                                        .map(|p| {
                                            OffsetDeleteResponsePartition::default()
                                                .with_partition_index(p.partition_index)
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        }
    }
}
