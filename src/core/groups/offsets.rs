//! Committed offsets (commits checked against membership, EFO shadow commits, reads and
//! deletes) and the admin views of groups (describe, list, delete).

use tokio::time::Instant;

use super::membership::Group;
use super::{
    Committed, GroupCoordinator, GroupError, GroupState, GroupView, MemberView, GROUP_PREFIX,
    SHADOW_GROUP_PREFIX,
};

impl GroupCoordinator {
    /// Commits offsets. `generation < 0` is a commit from outside the group (simple consumers
    /// and admin tools), allowed while the group has no members.
    pub fn commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<(), GroupError> {
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if group.starts_with(SHADOW_GROUP_PREFIX) {
            return Err(GroupError::ReadOnlyGroup);
        }
        self.here(group)?;
        self.commit_unchecked(group, generation, member_id, offsets)
    }

    /// Records an enhanced fan-out subscription's position in its shadow group
    /// `kinesis-efo.<consumer>`: the next offset it will push, so Kafka tools show its lag.
    pub fn commit_shadow(&self, consumer: &str, stream: &str, partition: u32, next_offset: i64) {
        let group = format!("{SHADOW_GROUP_PREFIX}{consumer}");
        let offsets = vec![(
            stream.to_string(),
            partition as i32,
            Committed {
                offset: next_offset,
                metadata: Some("enhanced fan-out".into()),
                leader_epoch: -1,
            },
        )];
        if let Err(e) = self.commit_unchecked(&group, -1, "", offsets) {
            tracing::warn!(%group, error = ?e, "shadow group commit failed");
        }
    }

    pub(super) fn commit_unchecked(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<(), GroupError> {
        let doc = {
            let mut groups = self.groups.lock();
            let g = groups
                .entry(group.to_string())
                .or_insert_with(|| Group::new(Instant::now()));
            if generation < 0 {
                if !g.members.is_empty() {
                    return Err(GroupError::UnknownMemberId);
                }
            } else {
                g.check_member(member_id, generation)?;
                if g.state == GroupState::CompletingRebalance {
                    return Err(GroupError::RebalanceInProgress);
                }
                if let Some(m) = g.members.get_mut(member_id) {
                    m.last_seen = Instant::now();
                }
            }
            for (t, p, c) in offsets {
                g.offsets.insert((t, p), c);
            }
            self.snapshot(g)
        };
        self.persist(group, &doc);
        Ok(())
    }

    /// Commits `offset` on a partition the group has no offset for, outside any member's
    /// commit: where a held-back child partition starts once it is handed out (its records
    /// written meanwhile must not be skipped by a consumer whose reset policy is latest).
    pub fn commit_if_absent(&self, group: &str, topic: &str, partition: i32, offset: i64) {
        let doc = {
            let mut groups = self.groups.lock();
            let Some(g) = groups.get_mut(group) else {
                return;
            };
            let key = (topic.to_string(), partition);
            if g.offsets.contains_key(&key) {
                return;
            }
            g.offsets.insert(
                key,
                Committed {
                    offset,
                    metadata: None,
                    leader_epoch: -1,
                },
            );
            self.snapshot(g)
        };
        self.persist(group, &doc);
    }

    /// The group's generation while it has members; `None` once it is gone or empty.
    pub fn live_generation(&self, group: &str) -> Option<i32> {
        let groups = self.groups.lock();
        let g = groups.get(group)?;
        (!g.members.is_empty()).then_some(g.generation)
    }

    /// Committed offsets; `topics` None means every committed partition.
    pub fn committed(
        &self,
        group: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<Committed>)> {
        let groups = self.groups.lock();
        let offsets = groups.get(group).map(|g| &g.offsets);
        match topics {
            None => offsets
                .into_iter()
                .flatten()
                .map(|((t, p), c)| (t.clone(), *p, Some(c.clone())))
                .collect(),
            Some(ts) => ts
                .iter()
                .flat_map(|(t, ps)| {
                    ps.iter().map(move |p| {
                        let c = offsets.and_then(|o| o.get(&(t.clone(), *p))).cloned();
                        (t.clone(), *p, c)
                    })
                })
                .collect(),
        }
    }

    pub fn describe(&self, group: &str) -> Option<GroupView> {
        let mut groups = self.groups.lock();
        let g = groups.get_mut(group)?;
        g.expire_sessions(Instant::now(), self.initial_delay);
        Some(GroupView {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: g.protocol.clone().unwrap_or_default(),
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberView {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(g.protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// (group, protocol type, state) of every group this replica coordinates.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let mut groups = self.groups.lock();
        let now = Instant::now();
        for g in groups.values_mut() {
            g.expire_sessions(now, self.initial_delay);
        }
        let mut out: Vec<_> = groups
            .iter()
            .filter(|(n, _)| self.coordinates(n))
            .map(|(n, g)| {
                (
                    n.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn delete(&self, group: &str) -> Result<(), GroupError> {
        self.here(group)?;
        let mut groups = self.groups.lock();
        if let Some(g) = groups.get_mut(group) {
            g.expire_sessions(Instant::now(), self.initial_delay);
        }
        match groups.get(group) {
            None => return Err(GroupError::GroupIdNotFound),
            Some(g) if !g.members.is_empty() => return Err(GroupError::NonEmptyGroup),
            Some(_) => {}
        }
        groups.remove(group);
        if let Err(e) = self.meta.delete(&format!("{GROUP_PREFIX}{group}")) {
            tracing::error!(group, error = %e, "deleting a group document failed");
        }
        Ok(())
    }

    /// Deletes committed offsets of partitions; refused while members are in the group.
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError> {
        self.here(group)?;
        let doc = {
            let mut groups = self.groups.lock();
            let g = groups.get_mut(group).ok_or(GroupError::GroupIdNotFound)?;
            g.expire_sessions(Instant::now(), self.initial_delay);
            if !g.members.is_empty() {
                return Err(GroupError::GroupSubscribedToTopic);
            }
            for (t, p) in partitions {
                g.offsets.remove(&(t.clone(), *p));
            }
            self.snapshot(g)
        };
        self.persist(group, &doc);
        Ok(())
    }
}
