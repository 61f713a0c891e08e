//! Group documents in the `SyncMetaStore`: what a group persists (committed offsets, and its
//! membership while stable), restoring it at start, and writing snapshots in state order.

use std::time::Duration;

use bytes::Bytes;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use super::membership::{Group, Member};
use super::{Committed, GroupCoordinator, GroupState, GROUP_PREFIX};

/// What a group persists: committed offsets, and its membership while it is stable, so that
/// after a restart members keep their ids and generation (as Kafka reloads its groups).
#[derive(Serialize, Deserialize, Default)]
pub(super) struct GroupDoc {
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

impl GroupDoc {
    /// A stored document's protocol type and the state its group reloads in, for listing a
    /// group no replica holds; `None` for one that does not parse.
    pub(super) fn listing(bytes: &[u8]) -> Option<(String, GroupState)> {
        let doc: GroupDoc = serde_json::from_slice(bytes).ok()?;
        let state = if doc.stable.is_some() {
            GroupState::Stable
        } else {
            GroupState::Empty
        };
        Some((doc.protocol_type.unwrap_or_default(), state))
    }
}

impl Group {
    pub(super) fn doc(&self) -> GroupDoc {
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

    pub(super) fn restore(doc: GroupDoc, now: Instant) -> Group {
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

impl GroupCoordinator {
    /// A group's document with a sequence number. Taken under the groups lock, so sequence
    /// order is state order.
    pub(super) fn snapshot(&self, g: &Group) -> (u64, GroupDoc) {
        (self.doc_seq.fetch_add(1, Ordering::Relaxed), g.doc())
    }

    /// Writes a snapshot unless a newer one of the same group is already written: two
    /// commits racing to disk must not leave the older offsets there.
    pub(super) fn persist(&self, group: &str, (seq, doc): &(u64, GroupDoc)) {
        // Only the replica coordinating a group writes its document.
        if !self.coordinates(group) {
            tracing::warn!(group, "not written: another replica coordinates the group");
            return;
        }
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
}
