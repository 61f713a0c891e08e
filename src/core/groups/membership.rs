//! Group membership: members and their sessions, generations, the join and sync barriers of a
//! rebalance, and protocol choice.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{
    Committed, GroupCoordinator, GroupError, GroupState, JoinRequest, JoinResult, JoinedMember,
    SyncResult, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS, SHADOW_GROUP_PREFIX,
};

pub(super) struct Member {
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) last_seen: Instant,
    pub(super) joined: bool,
    pub(super) join_tx: Option<oneshot::Sender<Result<JoinResult, GroupError>>>,
    pub(super) sync_tx: Option<oneshot::Sender<Result<SyncResult, GroupError>>>,
}

impl Member {
    pub(super) fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| Some(n.as_str()) == protocol)
            .map(|(_, md)| md.clone())
            .unwrap_or_default()
    }
}

pub(super) struct Group {
    pub(super) state: GroupState,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED and not yet used.
    pub(super) pending: HashMap<String, Instant>,
    /// When the current rebalance ends regardless of stragglers.
    pub(super) deadline: Instant,
    /// The initial-delay window of a rebalance that started from Empty.
    pub(super) settle_until: Instant,
    pub(super) rebalance_started: Instant,
    pub(super) offsets: BTreeMap<(String, i32), Committed>,
}

impl Group {
    pub(super) fn new(now: Instant) -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            deadline: now,
            settle_until: now,
            rebalance_started: now,
            offsets: BTreeMap::new(),
        }
    }

    pub(super) fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    pub(super) fn start_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        let from_empty = self.state == GroupState::Empty;
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                if let Some(tx) = m.sync_tx.take() {
                    let _ = tx.send(Err(GroupError::RebalanceInProgress));
                }
            }
        }
        self.state = GroupState::PreparingRebalance;
        self.rebalance_started = now;
        self.deadline = now + self.max_rebalance_timeout();
        self.settle_until = if from_empty {
            (now + initial_delay).min(self.deadline)
        } else {
            now
        };
        for m in self.members.values_mut() {
            if m.join_tx.is_none() {
                m.joined = false;
            }
        }
    }

    /// Completes the join phase when every member has rejoined (after the initial delay), or
    /// at the deadline without the stragglers.
    pub(super) fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.joined);
        if !(all_joined && now >= self.settle_until) && now < self.deadline {
            return;
        }
        self.members.retain(|_, m| m.joined);
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.generation += 1;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.generation += 1;
        self.protocol = self.choose_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        // The sync phase gets as long as a rebalance may take.
        self.deadline = now + self.max_rebalance_timeout();
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone();
        let everyone = self.joined_members();
        for (id, m) in self.members.iter_mut() {
            m.joined = false;
            m.assignment = Bytes::new();
            m.last_seen = now;
            if let Some(tx) = m.join_tx.take() {
                let _ = tx.send(Ok(JoinResult {
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: protocol.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        everyone.clone()
                    } else {
                        Vec::new()
                    },
                    skip_assignment: false,
                }));
            }
        }
    }

    /// Every member with its metadata for the chosen protocol: what the leader assigns from.
    pub(super) fn joined_members(&self) -> Vec<JoinedMember> {
        self.members
            .iter()
            .map(|(id, m)| JoinedMember {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(self.protocol.as_deref()),
            })
            .collect()
    }

    /// The first protocol of the first member that every member supports.
    pub(super) fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .find(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .cloned()
    }

    pub(super) fn check_member(&self, member_id: &str, generation: i32) -> Result<(), GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }
}

impl Group {
    /// Removes the members whose session has ended (at its deadline exactly, as Kafka's
    /// heartbeat timer does) and rebalances or empties the group. Run by the coordinator's
    /// timer, and before any answer that depends on who is in the group, so no answer lags
    /// the timer.
    pub(super) fn expire_sessions(&mut self, now: Instant, initial_delay: Duration) {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.join_tx.is_none() && m.sync_tx.is_none() && m.last_seen + m.session_timeout <= now
            })
            .map(|(id, _)| id.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            tracing::info!(member = %id, "group member session expired");
            if let Some(mut m) = self.members.remove(id) {
                if let Some(tx) = m.sync_tx.take() {
                    let _ = tx.send(Err(GroupError::UnknownMemberId));
                }
            }
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance if !self.members.is_empty() => {
                self.start_rebalance(now, initial_delay)
            }
            _ if self.members.is_empty() && self.state != GroupState::PreparingRebalance => {
                self.state = GroupState::Empty;
            }
            _ => {}
        }
    }
}

impl GroupCoordinator {
    pub async fn join(&self, req: JoinRequest) -> Result<JoinResult, GroupError> {
        if req.group.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if req.group.starts_with(SHADOW_GROUP_PREFIX) {
            return Err(GroupError::ReadOnlyGroup);
        }
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&req.session_timeout_ms) {
            return Err(GroupError::InvalidSessionTimeout);
        }
        self.here(&req.group)?;
        let rx = {
            let now = Instant::now();
            let mut groups = self.groups.lock();
            let g = groups
                .entry(req.group.clone())
                .or_insert_with(|| Group::new(now));
            if !g.members.is_empty() {
                let same_type = g.protocol_type.as_deref() == Some(req.protocol_type.as_str());
                let shared = req.protocols.iter().any(|(n, _)| {
                    g.members
                        .values()
                        .all(|m| m.protocols.iter().any(|(p, _)| p == n))
                });
                if !same_type || !shared {
                    return Err(GroupError::InconsistentGroupProtocol);
                }
            }
            // Set when a static member comes back under a new id to a stable group.
            let mut static_rejoin: Option<(bool, bool)> = None;
            let member_id = if req.member_id.is_empty() {
                let fresh = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
                // A static member rejoining with a new id replaces its old one.
                if let Some(instance) = &req.instance_id {
                    let old = g
                        .members
                        .iter()
                        .find(|(_, m)| m.instance_id.as_ref() == Some(instance))
                        .map(|(id, _)| id.clone());
                    if let Some(old) = old {
                        let mut m = g.members.remove(&old).expect("found above");
                        if let Some(tx) = m.join_tx.take() {
                            let _ = tx.send(Err(GroupError::FencedInstanceId));
                        }
                        let was_leader = g.leader.as_ref() == Some(&old);
                        if was_leader {
                            g.leader = Some(fresh.clone());
                        }
                        // Kafka rebalances only if the group's protocol would change.
                        let keeps_protocol = g
                            .protocol
                            .as_ref()
                            .is_some_and(|p| req.protocols.iter().any(|(n, _)| n == p));
                        static_rejoin = Some((was_leader, keeps_protocol));
                        g.members.insert(fresh.clone(), m);
                    }
                } else if req.require_known_member_id {
                    g.pending.insert(fresh.clone(), now);
                    return Err(GroupError::MemberIdRequired(fresh));
                }
                fresh
            } else {
                let known = g.members.contains_key(&req.member_id);
                if !known && g.pending.remove(&req.member_id).is_none() {
                    return Err(GroupError::UnknownMemberId);
                }
                req.member_id.clone()
            };
            // Kafka: a static member rejoining a stable group without changing its protocol
            // gets the current generation and keeps its assignment; nobody rebalances. A
            // leader also gets the members, with skip_assignment.
            if let (GroupState::Stable, Some((is_leader, true))) = (g.state, static_rejoin) {
                let m = g.members.get_mut(&member_id).expect("inserted above");
                m.protocols = req.protocols;
                m.client_id = req.client_id;
                m.client_host = req.client_host;
                m.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
                m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
                m.last_seen = now;
                let protocol = g.protocol.clone();
                let members = if is_leader {
                    g.joined_members()
                } else {
                    Vec::new()
                };
                let result = JoinResult {
                    generation: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol,
                    leader: g.leader.clone().unwrap_or_default(),
                    member_id,
                    members,
                    skip_assignment: is_leader,
                };
                let doc = self.snapshot(g);
                drop(groups);
                self.persist(&req.group, &doc);
                return Ok(result);
            }
            let (tx, rx) = oneshot::channel();
            let m = g
                .members
                .entry(member_id.clone())
                .or_insert_with(|| Member {
                    instance_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    session_timeout: Duration::ZERO,
                    rebalance_timeout: Duration::ZERO,
                    protocols: Vec::new(),
                    assignment: Bytes::new(),
                    last_seen: now,
                    joined: false,
                    join_tx: None,
                    sync_tx: None,
                });
            m.instance_id = req.instance_id.clone();
            m.client_id = req.client_id;
            m.client_host = req.client_host;
            m.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
            m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
            m.protocols = req.protocols;
            m.last_seen = now;
            m.joined = true;
            if let Some(old) = m.join_tx.replace(tx) {
                let _ = old.send(Err(GroupError::UnknownMemberId));
            }
            g.protocol_type = Some(req.protocol_type);
            match g.state {
                GroupState::PreparingRebalance => {
                    if now < g.settle_until {
                        // Kafka's initial delay grows with each new member, up to the timeout.
                        g.settle_until = (now + self.initial_delay)
                            .min(g.rebalance_started + g.max_rebalance_timeout());
                    }
                }
                _ => g.start_rebalance(now, self.initial_delay),
            }
            g.maybe_complete_join(now);
            rx
        };
        rx.await.unwrap_or(Err(GroupError::RebalanceInProgress))
    }

    pub async fn sync(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<SyncResult, GroupError> {
        self.here(group)?;
        let rx = {
            let mut groups = self.groups.lock();
            let g = groups.get_mut(group).ok_or(GroupError::UnknownMemberId)?;
            g.check_member(member_id, generation)?;
            let result_for = |g: &Group, id: &str| SyncResult {
                protocol_type: g.protocol_type.clone(),
                protocol: g.protocol.clone(),
                assignment: g
                    .members
                    .get(id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default(),
            };
            match g.state {
                GroupState::PreparingRebalance => return Err(GroupError::RebalanceInProgress),
                GroupState::Stable => return Ok(result_for(g, member_id)),
                GroupState::Empty => return Err(GroupError::UnknownMemberId),
                GroupState::CompletingRebalance => {}
            }
            if g.leader.as_deref() == Some(member_id) {
                let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                let now = Instant::now();
                for (id, m) in g.members.iter_mut() {
                    m.assignment = given.remove(id).unwrap_or_default();
                    m.last_seen = now;
                }
                g.state = GroupState::Stable;
                let ids: Vec<String> = g.members.keys().cloned().collect();
                for id in ids {
                    let r = result_for(g, &id);
                    if let Some(tx) = g.members.get_mut(&id).and_then(|m| m.sync_tx.take()) {
                        let _ = tx.send(Ok(r));
                    }
                }
                let mine = result_for(g, member_id);
                let doc = self.snapshot(g);
                drop(groups);
                self.persist(group, &doc);
                return Ok(mine);
            }
            let (tx, rx) = oneshot::channel();
            if let Some(m) = g.members.get_mut(member_id) {
                m.sync_tx = Some(tx);
            }
            rx
        };
        rx.await.unwrap_or(Err(GroupError::RebalanceInProgress))
    }

    pub fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
    ) -> Result<(), GroupError> {
        self.here(group)?;
        let mut groups = self.groups.lock();
        let g = groups.get_mut(group).ok_or(GroupError::UnknownMemberId)?;
        let now = Instant::now();
        g.expire_sessions(now, self.initial_delay);
        let m = g
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        m.last_seen = now;
        if g.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if generation != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// Starts a rebalance of a stable group (its members hear of it at their next
    /// heartbeat): what may be assigned to it has changed.
    pub fn request_rebalance(&self, group: &str) {
        let mut groups = self.groups.lock();
        if let Some(g) = groups.get_mut(group) {
            if g.state == GroupState::Stable {
                g.start_rebalance(Instant::now(), self.initial_delay);
            }
        }
    }

    /// Removes members (by id, or by static instance id); one result per member.
    pub fn leave(
        &self,
        group: &str,
        members: Vec<(String, Option<String>)>,
    ) -> Vec<Result<(), GroupError>> {
        if let Err(e) = self.here(group) {
            return members.iter().map(|_| Err(e.clone())).collect();
        }
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return members
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect();
        };
        let now = Instant::now();
        let mut removed = false;
        let results = members
            .into_iter()
            .map(|(id, instance)| {
                let id = if id.is_empty() {
                    instance.as_ref().and_then(|i| {
                        g.members
                            .iter()
                            .find(|(_, m)| m.instance_id.as_ref() == Some(i))
                            .map(|(id, _)| id.clone())
                    })
                } else {
                    Some(id)
                };
                let Some(mut m) = id.and_then(|id| g.members.remove(&id)) else {
                    return Err(GroupError::UnknownMemberId);
                };
                if let Some(tx) = m.join_tx.take() {
                    let _ = tx.send(Err(GroupError::UnknownMemberId));
                }
                removed = true;
                Ok(())
            })
            .collect();
        if removed {
            if g.members.is_empty() {
                g.state = GroupState::Empty;
                g.generation += 1;
                g.leader = None;
            } else {
                g.start_rebalance(now, Duration::ZERO);
                g.maybe_complete_join(now);
            }
            let doc = self.snapshot(g);
            drop(groups);
            self.persist(group, &doc);
        }
        results
    }
}
