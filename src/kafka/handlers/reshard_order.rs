//! Per-key order across a reshard for Kafka consumer groups: a member's SyncGroup assignment
//! leaves out the children of a split or merge whose parents the group has not read to their
//! end (`Core::withheld_partitions`, what KCL does with child shards), and a commit that
//! finishes a parent starts a rebalance, after which the children are handed out.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::{Decodable, Encodable, Message};

use super::super::KafkaCtx;

/// What each group was last not given, by topic.
pub type Withheld = parking_lot::Mutex<BTreeMap<String, BTreeMap<String, BTreeSet<u32>>>>;

/// The group's committed offset on one partition.
fn committed(ctx: &KafkaCtx, group: &str, topic: &str, partition: u32) -> Option<i64> {
    let want = [(topic.to_string(), vec![partition as i32])];
    ctx.groups
        .committed(group, Some(&want))
        .into_iter()
        .next()
        .and_then(|(_, _, c)| c.map(|c| c.offset))
}

/// `assignment` (a ConsumerProtocolAssignment) without the partitions the group may not read
/// yet; the bytes as they are when nothing is withheld or they are not the consumer protocol.
pub async fn withhold_children(ctx: &KafkaCtx, group: &str, assignment: Bytes) -> Bytes {
    let mut b = assignment.clone();
    if b.remaining() < 2 {
        return assignment;
    }
    let version = b.get_i16();
    let versions = ConsumerProtocolAssignment::VERSIONS;
    if !(versions.min..=versions.max).contains(&version) {
        return assignment;
    }
    let Ok(mut a) = ConsumerProtocolAssignment::decode(&mut b, version) else {
        return assignment;
    };
    if !b.is_empty() {
        return assignment;
    }
    let mut withheld = BTreeMap::new();
    for t in a.assigned_partitions.iter_mut() {
        let topic = t.topic.0.to_string();
        let of_group = |p: u32| committed(ctx, group, &topic, p);
        match ctx.core.withheld_partitions(&topic, &of_group).await {
            Ok(w) if !w.is_empty() => {
                t.partitions.retain(|p| !w.contains(&(*p as u32)));
                withheld.insert(topic, w);
            }
            Ok(_) => {}
            // Handed out as assigned: a group that cannot read is worse than one that may
            // read a child early.
            Err(e) => {
                tracing::warn!(%group, %topic, error = %e, "cannot tell which child partitions to hold back")
            }
        }
    }
    let changed = !withheld.is_empty();
    {
        let mut all = ctx.withheld.lock();
        if changed {
            tracing::info!(%group, ?withheld, "child partitions held back until their parents are read to their end");
            all.insert(group.to_string(), withheld);
        } else {
            all.remove(group);
        }
    }
    if !changed {
        return assignment;
    }
    let mut out = BytesMut::new();
    out.put_i16(version);
    match a.encode(&mut out, version) {
        Ok(()) => out.freeze(),
        Err(_) => assignment,
    }
}

/// After a commit: when a partition the group was not given may now be read, the group
/// rebalances so its leader hands it out.
pub async fn after_commit(ctx: &KafkaCtx, group: &str) {
    let Some(held) = ctx.withheld.lock().get(group).cloned() else {
        return;
    };
    for (topic, partitions) in held {
        let of_group = |p: u32| committed(ctx, group, &topic, p);
        match ctx.core.withheld_partitions(&topic, &of_group).await {
            Ok(still) if partitions.iter().any(|p| !still.contains(p)) => {
                tracing::info!(%group, %topic, "parents read to their end; rebalancing to hand out their children");
                ctx.groups.request_rebalance(group);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%group, %topic, error = %e, "cannot tell whether held-back partitions are free")
            }
        }
    }
}
