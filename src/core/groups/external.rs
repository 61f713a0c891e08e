//! Groups whose positions also live outside strait (`ExternalOffsets`: a KCL application's
//! lease table on the Kinesis backend). Their positions are read in before the group's
//! offsets are fetched, so a position the other side left wins, and written out after each
//! commit, so the other side starts where the Kafka group stopped.

use std::sync::Arc;

use super::{Committed, GroupCoordinator, GroupError};
use crate::backend::{ExternalOffsets, StorageResult};

impl GroupCoordinator {
    /// Set once at start-up by a backend that keeps some groups' positions itself.
    pub fn set_external(&self, external: Arc<dyn ExternalOffsets>) {
        let _ = self.external.set(external);
    }

    pub fn is_external(&self, group: &str) -> bool {
        self.external.get().is_some_and(|e| e.holds(group))
    }

    /// Reads `group`'s outside positions on `topics` into its committed offsets.
    pub async fn load_external(&self, group: &str, topics: &[String]) -> StorageResult<()> {
        let Some(external) = self.external.get().filter(|e| e.holds(group)) else {
            return Ok(());
        };
        for topic in topics {
            let positions = external.load(group, topic).await?;
            if positions.is_empty() {
                continue;
            }
            let offsets = positions
                .into_iter()
                .map(|p| {
                    let c = Committed {
                        offset: p.offset,
                        metadata: Some("KCL checkpoint".into()),
                        leader_epoch: -1,
                    };
                    (topic.clone(), p.partition as i32, c, p.finished)
                })
                .collect();
            self.adopt(group, offsets);
        }
        Ok(())
    }

    /// Writes offsets `group` just committed (topic, partition, offset) to where its
    /// positions also live.
    pub async fn store_external(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> StorageResult<()> {
        let Some(external) = self.external.get().filter(|e| e.holds(group)) else {
            return Ok(());
        };
        let mut topics: Vec<&str> = offsets.iter().map(|(t, _, _)| t.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        for topic in topics {
            let mine: Vec<(u32, i64)> = offsets
                .iter()
                .filter(|(t, p, _)| t == topic && *p >= 0)
                .map(|(_, p, o)| (*p as u32, *o))
                .collect();
            external.store(group, topic, &mine).await?;
        }
        Ok(())
    }

    /// Takes positions from outside as the group's committed offsets, whatever its members
    /// are doing; a finished partition's only where the group has no commit of its own.
    fn adopt(&self, group: &str, offsets: Vec<(String, i32, Committed, bool)>) {
        let doc = {
            let mut groups = self.groups.lock();
            let g = groups
                .entry(group.to_string())
                .or_insert_with(|| super::membership::Group::new(tokio::time::Instant::now()));
            for (t, p, c, finished) in offsets {
                let key = (t, p);
                if finished && g.offsets.contains_key(&key) {
                    continue;
                }
                g.offsets.insert(key, c);
            }
            self.snapshot(g)
        };
        self.persist(group, &doc);
    }
}

/// `strait migrate checkpoints` on the embedded backend: a commit from outside the group,
/// as Kafka's admin tools make.
#[async_trait::async_trait]
impl crate::backend::GroupOffsets for GroupCoordinator {
    async fn commit(&self, group: &str, topic: &str, offsets: &[(u32, i64)]) -> Result<(), String> {
        let offsets = offsets
            .iter()
            .map(|(p, o)| {
                let c = Committed {
                    offset: *o,
                    metadata: Some("strait migrate checkpoints".into()),
                    leader_epoch: -1,
                };
                (topic.to_string(), *p as i32, c)
            })
            .collect();
        GroupCoordinator::commit(self, group, -1, "", offsets).map_err(|e| match e {
            GroupError::UnknownMemberId | GroupError::IllegalGeneration => format!(
                "committing offsets of group {group}: the group has members; stop its consumers first"
            ),
            e => format!("committing offsets of group {group}: {e:?}"),
        })
    }

    async fn committed(&self, group: &str, topic: &str) -> Result<Vec<(u32, i64)>, String> {
        Ok(GroupCoordinator::committed(self, group, None)
            .into_iter()
            .filter(|(t, p, _)| t == topic && *p >= 0)
            .filter_map(|(_, p, c)| Some((p as u32, c?.offset)))
            .collect())
    }
}
