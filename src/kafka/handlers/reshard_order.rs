//! Per-key order across a reshard for Kafka consumer groups. A member's SyncGroup assignment
//! leaves out the children of a split or merge whose parents the group has not read to their
//! end (`Core::withheld_partitions`, what KCL does with child shards), and a sweep every
//! `SWEEP` hands them out (a rebalance) once the group's commits reach the parents' ends.
//!
//! - Only the built-in assignors' assignments are filtered: Kafka Streams pairs partitions
//!   with tasks by position, which removing partitions would break.
//! - A held-back child is committed at its start for the group (unless the group has an
//!   offset there), so a consumer whose reset policy is "latest" does not skip what was
//!   written to it meanwhile.
//! - A group that commits nothing on the parents for `kafka.unread_parent_wait_ms` (a
//!   consumer that started at the latest offset and never reads them) is handed the children
//!   anyway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ConsumerProtocolAssignment;

use crate::protocol::kafka::consumer_protocol;

use super::super::KafkaCtx;

/// How often held-back children are looked at again.
const SWEEP: Duration = Duration::from_secs(2);
/// The assignors whose assignments are plain partition lists.
const PLAIN_ASSIGNORS: &[&str] = &["range", "roundrobin", "sticky", "cooperative-sticky"];

/// What one group's members were last not given.
#[derive(Debug, Default)]
pub struct GroupHold {
    generation: i32,
    /// member id → what it was not given.
    members: BTreeMap<String, HeldByTopic>,
    /// topic → when the group first had partitions held back there (kept across rebalances,
    /// for `KafkaCtx::unread_parent_wait`).
    since: BTreeMap<String, Instant>,
}

pub type Holds = parking_lot::Mutex<BTreeMap<String, GroupHold>>;

/// Held-back partitions by topic.
type HeldByTopic = BTreeMap<String, Vec<u32>>;

/// The group's committed offset on one partition.
fn committed(ctx: &KafkaCtx, group: &str, topic: &str, partition: u32) -> Option<i64> {
    let want = [(topic.to_string(), vec![partition as i32])];
    ctx.groups
        .committed(group, Some(&want))
        .into_iter()
        .next()
        .and_then(|(_, _, c)| c.map(|c| c.offset))
}

/// `assignment` without the partitions the group may not read yet; the bytes as they are when
/// nothing is held back or they are not a plain consumer assignment.
pub async fn withhold_children(
    ctx: &KafkaCtx,
    group: &str,
    generation: i32,
    member: &str,
    protocol: Option<&str>,
    assignment: Bytes,
) -> Bytes {
    if !protocol.is_some_and(|p| PLAIN_ASSIGNORS.contains(&p)) {
        return assignment;
    }
    let Some((version, mut a)) =
        consumer_protocol::decode::<ConsumerProtocolAssignment>(&assignment)
    else {
        return assignment;
    };
    let mut held = HeldByTopic::new();
    for t in a.assigned_partitions.iter_mut() {
        let topic = t.topic.0.to_string();
        let of_group = |p: u32| committed(ctx, group, &topic, p);
        let back = match ctx.core.withheld_partitions(&topic, &of_group).await {
            Ok(b) => b,
            // Handed out as assigned: a group that cannot read is worse than one that may
            // read a child early.
            Err(e) => {
                tracing::warn!(%group, %topic, error = %e, "cannot tell which child partitions to hold back");
                continue;
            }
        };
        let gave_up = ctx
            .holds
            .lock()
            .get(group)
            .and_then(|h| h.since.get(&topic))
            .is_some_and(|since| since.elapsed() >= ctx.unread_parent_wait);
        let mut mine = Vec::new();
        t.partitions.retain(|p| {
            let Some(h) = back.iter().find(|h| h.partition as i32 == *p) else {
                return true;
            };
            if gave_up && h.parents_untouched {
                return true;
            }
            ctx.groups
                .commit_if_absent(group, &topic, h.partition as i32, h.start);
            mine.push(h.partition);
            false
        });
        if !mine.is_empty() {
            held.insert(topic, mine);
        }
    }
    let changed = !held.is_empty();
    if changed {
        tracing::info!(%group, %member, ?held, "child partitions held back until their parents are read to their end");
    }
    {
        let mut holds = ctx.holds.lock();
        let h = holds.entry(group.to_string()).or_default();
        if generation > h.generation {
            h.generation = generation;
            h.members.clear();
        }
        for topic in held.keys() {
            h.since.entry(topic.clone()).or_insert_with(Instant::now);
        }
        h.members.insert(member.to_string(), held);
        // The unread-parent clock of a topic nobody in the group waits on any more stops.
        let waiting: Vec<String> = h.members.values().flat_map(|t| t.keys().cloned()).collect();
        h.since.retain(|topic, _| waiting.contains(topic));
    }
    if !changed {
        return assignment;
    }
    consumer_protocol::encode(version, &a).unwrap_or(assignment)
}

/// Every `SWEEP` until `closing`: reads held-back children's parents up to their ends and
/// rebalances a group when something it was not given may now be read.
pub fn spawn_sweep(ctx: Arc<KafkaCtx>, mut closing: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => sweep(&ctx).await,
                _ = closing.changed() => return,
            }
        }
    });
}

async fn sweep(ctx: &KafkaCtx) {
    // (group, generation, what its members were not given, the unread-parent wait over)
    let groups: Vec<(String, i32, HeldByTopic, bool)> = {
        let mut holds = ctx.holds.lock();
        // A group gone: forget it.
        holds.retain(|g, _| ctx.groups.live_generation(g).is_some());
        holds
            .iter()
            .filter(|(_, h)| h.members.values().any(|t| !t.is_empty()))
            .map(|(g, h)| {
                let mut topics = HeldByTopic::new();
                for t in h.members.values() {
                    for (topic, ps) in t {
                        topics.entry(topic.clone()).or_default().extend(ps);
                    }
                }
                let gave_up = h
                    .since
                    .values()
                    .any(|s| s.elapsed() >= ctx.unread_parent_wait);
                (g.clone(), h.generation, topics, gave_up)
            })
            .collect()
    };
    for (group, generation, topics, gave_up) in groups {
        if ctx.groups.live_generation(&group) != Some(generation) {
            // A rebalance is under way; its SyncGroup decides again.
            continue;
        }
        let mut release = gave_up;
        for (topic, partitions) in &topics {
            if let Err(e) = ctx.core.settle_closed_partitions(topic).await {
                tracing::debug!(%group, %topic, error = %e, "cannot read a closed partition to its end yet");
            }
            let of_group = |p: u32| committed(ctx, &group, topic, p);
            match ctx.core.withheld_partitions(topic, &of_group).await {
                Ok(still) => {
                    release |= partitions
                        .iter()
                        .any(|p| !still.iter().any(|h| h.partition == *p));
                }
                Err(e) => {
                    tracing::warn!(%group, %topic, error = %e, "cannot tell whether held-back partitions are free")
                }
            }
        }
        if release {
            tracing::info!(%group, "held-back child partitions may be read; rebalancing to hand them out");
            if let Some(h) = ctx.holds.lock().get_mut(&group) {
                // Until the next SyncGroup says again.
                h.members.clear();
            }
            ctx.groups.request_rebalance(&group);
        }
    }
}
