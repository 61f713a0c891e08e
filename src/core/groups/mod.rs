//! The Kafka classic-protocol group coordinator, for backends without native groups
//! (reference §4d): membership, generations, rebalances, session expiry and committed
//! offsets. Committed offsets, and the membership of stable groups, are persisted through the
//! `MetaStore`, so after a restart members keep their ids and generation, as Kafka reloads its
//! groups. This file holds the public shapes and the timer; `membership.rs` joins, syncs and
//! rebalances, `offsets.rs` commits and reads offsets, `persistence.rs` writes and restores
//! group documents, `lag.rs` reports consumer lag on scrape, `external.rs` reads and writes
//! positions kept outside strait (KCL lease tables), `placement.rs` says which replica
//! coordinates a group when several share the state.

mod external;
mod lag;
mod membership;
mod offsets;
mod persistence;
mod placement;
#[cfg(test)]
mod tests;

pub use lag::watch_group_lag;
pub use placement::{ReplicaAddress, LOCAL_NODE_ID};

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::error::CoreResult;
use crate::backend::SyncMetaStore as MetaStore;
use membership::Group;
use persistence::GroupDoc;

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
    /// The group's positions also live outside strait (a KCL lease table) and could not be
    /// written there; the client should try again.
    External,
    /// Another replica coordinates the group (or none does yet): FindCoordinator again.
    NotCoordinator,
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

pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    doc_seq: AtomicU64,
    /// The newest snapshot written per group; held while writing.
    written: Mutex<HashMap<String, u64>>,
    meta: Arc<dyn MetaStore>,
    initial_delay: Duration,
    /// Where some groups' positions also live (KCL lease tables).
    external: std::sync::OnceLock<Arc<dyn crate::backend::ExternalOffsets>>,
    /// The replicas sharing the state store, when there are several.
    replicas: std::sync::OnceLock<Arc<dyn crate::backend::Replicas>>,
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
            external: std::sync::OnceLock::new(),
            replicas: std::sync::OnceLock::new(),
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
        // Another replica's groups are left as they are: it runs their timers.
        for (_, g) in groups.iter_mut().filter(|(name, _)| self.coordinates(name)) {
            g.expire_sessions(now, self.initial_delay);
            // A leader that never sends SyncGroup must not strand its followers.
            if g.state == GroupState::CompletingRebalance && now >= g.deadline {
                tracing::info!("group sync timed out; rebalancing");
                g.start_rebalance(now, Duration::ZERO);
            }
            g.maybe_complete_join(now);
        }
    }
}
