//! The Kafka classic-protocol group coordinator, for backends without native groups
//! (reference §4d): membership, generations, rebalances, session expiry and committed
//! offsets. Committed offsets, and the membership of stable groups, are persisted through the
//! `MetaStore`, so after a restart members keep their ids and generation, as Kafka reloads its
//! groups.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::error::CoreResult;
use crate::backend::SyncMetaStore as MetaStore;

const GROUP_PREFIX: &str = "groups/";
const MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;
/// How long an id handed out with MEMBER_ID_REQUIRED waits for its JoinGroup.
const PENDING_MEMBER_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    UnknownMemberId,
    IllegalGeneration,
    RebalanceInProgress,
    /// Join again with this member id (KIP-394).
    MemberIdRequired(String),
    InconsistentGroupProtocol,
    InvalidSessionTimeout,
    GroupIdNotFound,
    NonEmptyGroup,
    GroupSubscribedToTopic,
    InvalidGroupId,
    FencedInstanceId,
    /// A `kinesis-efo.` shadow group: strait writes it, Kafka clients only read it.
    ReadOnlyGroup,
}

/// Groups that mirror enhanced fan-out positions (reference §4c).
pub const SHADOW_GROUP_PREFIX: &str = "kinesis-efo.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Committed {
    pub offset: i64,
    pub metadata: Option<String>,
    pub leader_epoch: i32,
}

pub struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// Join v4+: a new member first gets MEMBER_ID_REQUIRED with its id.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone)]
pub struct JoinResult {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
    /// A static leader rejoining a stable group keeps the current assignment (KIP-814).
    pub skip_assignment: bool,
}

#[derive(Debug, Clone)]
pub struct SyncResult {
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

/// What DescribeGroups shows of a member.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
}

struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    joined: bool,
    join_tx: Option<oneshot::Sender<Result<JoinResult, GroupError>>>,
    sync_tx: Option<oneshot::Sender<Result<SyncResult, GroupError>>>,
}

impl Member {
    fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| Some(n.as_str()) == protocol)
            .map(|(_, md)| md.clone())
            .unwrap_or_default()
    }
}

struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED and not yet used.
    pending: HashMap<String, Instant>,
    /// When the current rebalance ends regardless of stragglers.
    deadline: Instant,
    /// The initial-delay window of a rebalance that started from Empty.
    settle_until: Instant,
    rebalance_started: Instant,
    offsets: BTreeMap<(String, i32), Committed>,
}

impl Group {
    fn new(now: Instant) -> Group {
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

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    fn start_rebalance(&mut self, now: Instant, initial_delay: Duration) {
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
    fn maybe_complete_join(&mut self, now: Instant) {
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
    fn joined_members(&self) -> Vec<JoinedMember> {
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
    fn choose_protocol(&self) -> Option<String> {
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

    fn check_member(&self, member_id: &str, generation: i32) -> Result<(), GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }
}

/// What a group persists: committed offsets, and its membership while it is stable, so that
/// after a restart members keep their ids and generation (as Kafka reloads its groups).
#[derive(Serialize, Deserialize, Default)]
struct GroupDoc {
    protocol_type: Option<String>,
    offsets: Vec<(String, i32, Committed)>,
    #[serde(default)]
    stable: Option<StableDoc>,
}

#[derive(Serialize, Deserialize)]
struct StableDoc {
    generation: i32,
    protocol: Option<String>,
    leader: Option<String>,
    members: Vec<MemberDoc>,
}

#[derive(Serialize, Deserialize)]
struct MemberDoc {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
}

impl Group {
    fn doc(&self) -> GroupDoc {
        GroupDoc {
            protocol_type: self.protocol_type.clone(),
            offsets: self
                .offsets
                .iter()
                .map(|((t, p), c)| (t.clone(), *p, c.clone()))
                .collect(),
            stable: (self.state == GroupState::Stable).then(|| StableDoc {
                generation: self.generation,
                protocol: self.protocol.clone(),
                leader: self.leader.clone(),
                members: self
                    .members
                    .iter()
                    .map(|(id, m)| MemberDoc {
                        id: id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        session_timeout_ms: m.session_timeout.as_millis() as u64,
                        rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u64,
                        protocols: m
                            .protocols
                            .iter()
                            .map(|(n, md)| (n.clone(), md.to_vec()))
                            .collect(),
                        assignment: m.assignment.to_vec(),
                    })
                    .collect(),
            }),
        }
    }

    fn restore(doc: GroupDoc, now: Instant) -> Group {
        let mut g = Group::new(now);
        g.protocol_type = doc.protocol_type;
        g.offsets = doc
            .offsets
            .into_iter()
            .map(|(t, p, c)| ((t, p), c))
            .collect();
        if let Some(s) = doc.stable {
            g.state = GroupState::Stable;
            g.generation = s.generation;
            g.protocol = s.protocol;
            g.leader = s.leader;
            for m in s.members {
                g.members.insert(
                    m.id,
                    Member {
                        instance_id: m.instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        session_timeout: Duration::from_millis(m.session_timeout_ms),
                        rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms),
                        protocols: m
                            .protocols
                            .into_iter()
                            .map(|(n, md)| (n, Bytes::from(md)))
                            .collect(),
                        assignment: Bytes::from(m.assignment),
                        // A fresh session: members have their full timeout to come back.
                        last_seen: now,
                        joined: false,
                        join_tx: None,
                        sync_tx: None,
                    },
                );
            }
        }
        g
    }
}

pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    doc_seq: AtomicU64,
    /// The newest snapshot written per group; held while writing.
    written: Mutex<HashMap<String, u64>>,
    meta: Arc<dyn MetaStore>,
    initial_delay: Duration,
}

impl GroupCoordinator {
    /// Loads committed offsets and starts the timer that ends rebalances and expires sessions.
    pub fn open(meta: Arc<dyn MetaStore>, initial_delay: Duration) -> CoreResult<Arc<Self>> {
        let now = Instant::now();
        let mut groups = HashMap::new();
        for (key, doc) in meta.list(GROUP_PREFIX)? {
            let Ok(doc) = serde_json::from_slice::<GroupDoc>(&doc) else {
                tracing::warn!(%key, "skipping an unreadable group document");
                continue;
            };
            groups.insert(
                key[GROUP_PREFIX.len()..].to_string(),
                Group::restore(doc, now),
            );
        }
        let this = Arc::new(GroupCoordinator {
            groups: Mutex::new(groups),
            doc_seq: AtomicU64::new(0),
            written: Mutex::new(HashMap::new()),
            meta,
            initial_delay,
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                this.tick(Instant::now());
            }
        });
        Ok(this)
    }

    fn tick(&self, now: Instant) {
        let mut groups = self.groups.lock();
        // Nothing a client sends may grow memory for good: ids handed out with
        // MEMBER_ID_REQUIRED and never used expire, and groups with no members and no
        // offsets (stray JoinGroups, failed joins) are forgotten.
        groups.retain(|_, g| {
            g.pending
                .retain(|_, issued| now.duration_since(*issued) < PENDING_MEMBER_TTL);
            !(g.state == GroupState::Empty
                && g.members.is_empty()
                && g.offsets.is_empty()
                && g.pending.is_empty())
        });
        for g in groups.values_mut() {
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join_tx.is_none()
                        && m.sync_tx.is_none()
                        && m.last_seen + m.session_timeout < now
                })
                .map(|(id, _)| id.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    tracing::info!(member = %id, "group member session expired");
                    if let Some(mut m) = g.members.remove(id) {
                        if let Some(tx) = m.sync_tx.take() {
                            let _ = tx.send(Err(GroupError::UnknownMemberId));
                        }
                    }
                }
                match g.state {
                    GroupState::Stable | GroupState::CompletingRebalance
                        if !g.members.is_empty() =>
                    {
                        g.start_rebalance(now, self.initial_delay)
                    }
                    _ if g.members.is_empty() && g.state != GroupState::PreparingRebalance => {
                        g.state = GroupState::Empty;
                    }
                    _ => {}
                }
            }
            // A leader that never sends SyncGroup must not strand its followers.
            if g.state == GroupState::CompletingRebalance && now >= g.deadline {
                tracing::info!("group sync timed out; rebalancing");
                g.start_rebalance(now, Duration::ZERO);
            }
            g.maybe_complete_join(now);
        }
    }

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
        let mut groups = self.groups.lock();
        let g = groups.get_mut(group).ok_or(GroupError::UnknownMemberId)?;
        let m = g
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        m.last_seen = Instant::now();
        if g.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if generation != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// Removes members (by id, or by static instance id); one result per member.
    pub fn leave(
        &self,
        group: &str,
        members: Vec<(String, Option<String>)>,
    ) -> Vec<Result<(), GroupError>> {
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

    fn commit_unchecked(
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

    /// A group's document with a sequence number. Taken under the groups lock, so sequence
    /// order is state order.
    fn snapshot(&self, g: &Group) -> (u64, GroupDoc) {
        (self.doc_seq.fetch_add(1, Ordering::Relaxed), g.doc())
    }

    /// Writes a snapshot unless a newer one of the same group is already written: two
    /// commits racing to disk must not leave the older offsets there.
    fn persist(&self, group: &str, (seq, doc): &(u64, GroupDoc)) {
        let mut written = self.written.lock();
        if written.get(group).is_some_and(|w| *w > *seq) {
            return;
        }
        let bytes = serde_json::to_vec(doc).expect("group documents serialise");
        match self.meta.put(&format!("{GROUP_PREFIX}{group}"), &bytes) {
            Ok(()) => {
                written.insert(group.to_string(), *seq);
            }
            Err(e) => tracing::error!(group, error = %e, "persisting committed offsets failed"),
        }
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
        let groups = self.groups.lock();
        let g = groups.get(group)?;
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

    /// (group, protocol type, state) of every group.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let groups = self.groups.lock();
        let mut out: Vec<_> = groups
            .iter()
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
        let mut groups = self.groups.lock();
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
        let doc = {
            let mut groups = self.groups.lock();
            let g = groups.get_mut(group).ok_or(GroupError::GroupIdNotFound)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::FileMetaStore;

    fn join_req(group: &str, member: &str) -> JoinRequest {
        JoinRequest {
            group: group.into(),
            member_id: member.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 5_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id: true,
        }
    }

    fn coordinator(dir: &std::path::Path) -> Arc<GroupCoordinator> {
        let meta = Arc::new(FileMetaStore::open(dir.join("meta")).unwrap());
        GroupCoordinator::open(meta, Duration::from_millis(50)).unwrap()
    }

    async fn join(g: &GroupCoordinator, group: &str) -> JoinResult {
        let id = match g.join(join_req(group, "")).await {
            Err(GroupError::MemberIdRequired(id)) => id,
            other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
        };
        g.join(join_req(group, &id)).await.unwrap()
    }

    #[tokio::test]
    async fn two_members_join_sync_and_rebalance_on_leave() {
        let dir = tempfile::tempdir().unwrap();
        let g = coordinator(dir.path());
        let (a, b) = tokio::join!(join(&g, "grp"), join(&g, "grp"));
        assert_eq!(a.generation, b.generation);
        assert_eq!(a.leader, b.leader);
        let (leader, follower) = if a.member_id == a.leader {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        let assignments = vec![
            (leader.member_id.clone(), Bytes::from_static(b"L")),
            (follower.member_id.clone(), Bytes::from_static(b"F")),
        ];
        let gen = leader.generation;
        let (ls, fs) = tokio::join!(
            g.sync("grp", gen, &leader.member_id, assignments),
            g.sync("grp", gen, &follower.member_id, vec![])
        );
        assert_eq!(&ls.unwrap().assignment[..], b"L");
        assert_eq!(&fs.unwrap().assignment[..], b"F");
        assert_eq!(g.heartbeat("grp", gen, &follower.member_id), Ok(()));
        assert_eq!(
            g.heartbeat("grp", gen + 1, &follower.member_id),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("grp", gen, "stranger"),
            Err(GroupError::UnknownMemberId)
        );
        // The follower leaves: the leader is told to rejoin, and rejoins alone.
        assert_eq!(
            g.leave("grp", vec![(follower.member_id.clone(), None)]),
            vec![Ok(())]
        );
        assert_eq!(
            g.heartbeat("grp", gen, &leader.member_id),
            Err(GroupError::RebalanceInProgress)
        );
        let again = g.join(join_req("grp", &leader.member_id)).await.unwrap();
        assert_eq!(again.generation, gen + 1);
        assert_eq!(again.members.len(), 1);
        assert_eq!(
            g.describe("grp").unwrap().state,
            GroupState::CompletingRebalance
        );
    }

    #[tokio::test]
    async fn offsets_persist_and_commits_check_membership() {
        let dir = tempfile::tempdir().unwrap();
        {
            let g = coordinator(dir.path());
            let c = |o| Committed {
                offset: o,
                metadata: Some("m".into()),
                leader_epoch: -1,
            };
            g.commit(
                "solo",
                -1,
                "",
                vec![("t".into(), 0, c(10)), ("t".into(), 1, c(20))],
            )
            .unwrap();
            let j = join(&g, "live").await;
            assert_eq!(
                g.commit(
                    "live",
                    j.generation + 5,
                    &j.member_id,
                    vec![("t".into(), 0, c(1))]
                ),
                Err(GroupError::IllegalGeneration)
            );
            assert_eq!(
                g.commit("live", -1, "", vec![("t".into(), 0, c(1))]),
                Err(GroupError::UnknownMemberId)
            );
            assert_eq!(g.delete("live"), Err(GroupError::NonEmptyGroup));
            assert_eq!(g.delete("nope"), Err(GroupError::GroupIdNotFound));
        }
        let g = coordinator(dir.path());
        let got = g.committed("solo", Some(&[("t".to_string(), vec![0, 1, 2])]));
        assert_eq!(got[0].2.as_ref().unwrap().offset, 10);
        assert_eq!(got[1].2.as_ref().unwrap().metadata.as_deref(), Some("m"));
        assert!(got[2].2.is_none());
        g.delete_offsets("solo", &[("t".to_string(), 0)]).unwrap();
        assert_eq!(g.committed("solo", None).len(), 1);
        g.delete("solo").unwrap();
        assert!(g.committed("solo", None).is_empty());
    }

    #[tokio::test]
    async fn bad_joins() {
        let dir = tempfile::tempdir().unwrap();
        let g = coordinator(dir.path());
        let mut r = join_req("x", "");
        r.session_timeout_ms = 10;
        assert_eq!(
            g.join(r).await.unwrap_err(),
            GroupError::InvalidSessionTimeout
        );
        assert_eq!(
            g.join(join_req("x", "made-up")).await.unwrap_err(),
            GroupError::UnknownMemberId
        );
        assert_eq!(
            g.join(join_req("", "")).await.unwrap_err(),
            GroupError::InvalidGroupId
        );
        let _member = join(&g, "x").await;
        let mut other = join_req("x", "");
        other.require_known_member_id = false;
        other.protocol_type = "connect".into();
        assert_eq!(
            g.join(other).await.unwrap_err(),
            GroupError::InconsistentGroupProtocol
        );
    }
}
