//! Which replica coordinates each group, when several share the state store (`Replicas`,
//! the Kinesis backend with its state in DynamoDB): FindCoordinator names the holder of the
//! group's lease, taking it for this replica when nobody holds it; every other group request
//! is answered only by the holder (others say NOT_COORDINATOR, and the client asks again).
//! A replica that takes a group reloads its document, and writes it only while it holds it.
//! With one replica all of this is a no-op.

use std::sync::Arc;

use tokio::time::Instant;

use super::membership::Group;
use super::persistence::GroupDoc;
use super::{GroupCoordinator, GroupError, GroupState, GROUP_PREFIX};
pub use crate::backend::ReplicaAddress;
use crate::backend::{GroupHolder, Replicas, StorageResult};

/// The node id of a replica that shares its state with none.
pub const LOCAL_NODE_ID: i32 = 0;

impl GroupCoordinator {
    /// Set once at start-up when replicas share the state store.
    pub fn set_replicas(&self, replicas: Arc<dyn Replicas>) {
        let _ = self.replicas.set(replicas);
    }

    pub fn node_id(&self) -> i32 {
        self.replicas.get().map_or(LOCAL_NODE_ID, |r| r.node_id())
    }

    /// Every live replica; `None` when this one is alone.
    pub fn replicas(&self) -> Option<Vec<ReplicaAddress>> {
        self.replicas.get().map(|r| r.live())
    }

    /// Where `group` is coordinated: `None` here, else the replica that holds it.
    pub async fn coordinator(&self, group: &str) -> StorageResult<Option<ReplicaAddress>> {
        let Some(replicas) = self.replicas.get() else {
            return Ok(None);
        };
        let reload = || self.reload(group);
        match replicas
            .coordinator(group, &format!("{GROUP_PREFIX}{group}"), &reload)
            .await?
        {
            GroupHolder::This => Ok(None),
            GroupHolder::Other(at) => Ok(Some(at)),
        }
    }

    /// Tells the other replicas this one's Kafka listener serves, so they list it.
    pub async fn serving(&self) {
        if let Some(r) = self.replicas.get() {
            r.serving().await;
        }
    }

    /// Gives up this replica's groups and registration (at shutdown), so others take over
    /// at once.
    pub async fn leave_replicas(&self) {
        if let Some(r) = self.replicas.get() {
            r.leave().await;
        }
    }

    /// (group, protocol type, state) of the groups this replica coordinates and, with
    /// replicas, of those nobody coordinates now (stored documents no live replica holds a
    /// lease on, listed by one replica only), as they would reload.
    pub async fn list_all(&self) -> StorageResult<Vec<(String, String, GroupState)>> {
        let mut out = self.list();
        let Some(replicas) = self.replicas.get() else {
            return Ok(out);
        };
        for (key, bytes) in replicas.unheld_groups(GROUP_PREFIX).await? {
            let Some(name) = key.strip_prefix(GROUP_PREFIX) else {
                continue;
            };
            if out.iter().any(|(n, _, _)| n == name) {
                continue;
            }
            if let Some((protocol_type, state)) = GroupDoc::listing(&bytes) {
                out.push((name.to_string(), protocol_type, state));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// This replica answers for `group`.
    pub fn coordinates(&self, group: &str) -> bool {
        self.replicas.get().is_none_or(|r| r.holds(group))
    }

    /// `NotCoordinator` unless this replica answers for `group`.
    pub(super) fn here(&self, group: &str) -> Result<(), GroupError> {
        if self.coordinates(group) {
            Ok(())
        } else {
            Err(GroupError::NotCoordinator)
        }
    }

    /// Replaces what memory holds of `group` with its stored document (or nothing).
    fn reload(&self, group: &str) {
        let doc = match self.meta.get(&format!("{GROUP_PREFIX}{group}")) {
            Ok(Some(bytes)) => serde_json::from_slice::<GroupDoc>(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(group, error = %e, "cannot read the group's document");
                None
            }
        };
        let mut groups = self.groups.lock();
        match doc {
            Some(doc) => {
                groups.insert(group.to_string(), Group::restore(doc, Instant::now()));
            }
            None => {
                groups.remove(group);
            }
        }
    }
}
