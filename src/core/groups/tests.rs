//! The coordinator against a real file store: joins, syncs, rebalances, commits, restarts.

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

/// Replicas as a test sets them: which groups this one holds, and who holds the others.
struct FakeReplicas {
    held: parking_lot::Mutex<std::collections::HashSet<String>>,
    other: ReplicaAddress,
    /// What `unheld_groups` answers.
    unheld: Vec<(String, Vec<u8>)>,
}

#[async_trait::async_trait]
impl crate::backend::Replicas for FakeReplicas {
    fn node_id(&self) -> i32 {
        7
    }
    fn live(&self) -> Vec<ReplicaAddress> {
        vec![self.other.clone()]
    }
    async fn coordinator(
        &self,
        group: &str,
        _doc_key: &str,
        reload: &(dyn Fn() + Send + Sync),
    ) -> crate::backend::StorageResult<crate::backend::GroupHolder> {
        if group.starts_with("theirs") {
            return Ok(crate::backend::GroupHolder::Other(self.other.clone()));
        }
        if !self.held.lock().contains(group) {
            reload();
            self.held.lock().insert(group.to_string());
        }
        Ok(crate::backend::GroupHolder::This)
    }
    fn holds(&self, group: &str) -> bool {
        self.held.lock().contains(group)
    }
    async fn unheld_groups(
        &self,
        doc_prefix: &str,
    ) -> crate::backend::StorageResult<Vec<(String, Vec<u8>)>> {
        Ok(self
            .unheld
            .iter()
            .filter(|(k, _)| k.starts_with(doc_prefix))
            .cloned()
            .collect())
    }
    async fn leave(&self) {}
}

/// A shared store in which another replica (`earlier`, returned with the offset it committed)
/// committed offset 42 of `t`/0 for each of `groups`; the directory lives as long as the
/// first element.
fn store_with_commits(
    groups: &[&str],
) -> (
    tempfile::TempDir,
    Arc<FileMetaStore>,
    Arc<GroupCoordinator>,
    Committed,
) {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(FileMetaStore::open(dir.path().join("meta")).unwrap());
    let earlier = GroupCoordinator::open(meta.clone(), Duration::from_millis(50)).unwrap();
    let c = Committed {
        offset: 42,
        metadata: None,
        leader_epoch: -1,
    };
    for group in groups {
        earlier
            .commit(group, -1, "", vec![("t".into(), 0, c.clone())])
            .unwrap();
    }
    (dir, meta, earlier, c)
}

/// ListGroups on a replica: the groups it holds, and those whose documents no replica holds
/// (as they would reload), each once.
#[tokio::test]
async fn with_replicas_list_all_adds_the_groups_nobody_holds() {
    let (_dir, meta, _, _) = store_with_commits(&["idle", "mine"]);
    let docs = crate::backend::SyncMetaStore::list(meta.as_ref(), GROUP_PREFIX).unwrap();
    assert_eq!(docs.len(), 2);
    let g = GroupCoordinator::open(meta.clone(), Duration::from_millis(50)).unwrap();
    g.set_replicas(Arc::new(FakeReplicas {
        held: Default::default(),
        other: ReplicaAddress {
            node_id: 3,
            host: "10.0.0.3".into(),
            port: 9092,
        },
        // "mine" is taken below, so the store would not call it unheld; listed once anyway.
        unheld: docs,
    }));
    assert!(g.list().is_empty(), "nothing held yet");
    assert_eq!(g.coordinator("mine").await.unwrap(), None);
    let listed = g.list_all().await.unwrap();
    assert_eq!(
        listed,
        vec![
            ("idle".to_string(), String::new(), GroupState::Empty),
            ("mine".to_string(), String::new(), GroupState::Empty),
        ]
    );
}

#[tokio::test]
async fn with_replicas_only_the_holder_answers_and_a_taken_group_is_reloaded() {
    // Another replica's commit, already in the shared store.
    let (_dir, meta, earlier, c) = store_with_commits(&["mine"]);
    let g = GroupCoordinator::open(meta.clone(), Duration::from_millis(50)).unwrap();
    let other = ReplicaAddress {
        node_id: 3,
        host: "10.0.0.3".into(),
        port: 9092,
    };
    g.set_replicas(Arc::new(FakeReplicas {
        held: Default::default(),
        other: other.clone(),
        unheld: Vec::new(),
    }));
    assert_eq!(g.node_id(), 7);
    // Not held: every group request is refused, nothing is written.
    assert_eq!(
        g.join(join_req("mine", "")).await.unwrap_err(),
        GroupError::NotCoordinator
    );
    let moved = Committed {
        offset: 1,
        ..c.clone()
    };
    assert_eq!(
        g.commit("mine", -1, "", vec![("t".into(), 0, moved)]),
        Err(GroupError::NotCoordinator)
    );
    assert!(g.list().is_empty());
    // Another replica's group is named, not taken.
    assert_eq!(g.coordinator("theirs").await.unwrap(), Some(other));
    assert!(!g.coordinates("theirs"));
    // Meanwhile the other replica commits again; taking the group reads that.
    let c2 = Committed { offset: 50, ..c };
    earlier
        .commit("mine", -1, "", vec![("t".into(), 0, c2.clone())])
        .unwrap();
    assert_eq!(g.coordinator("mine").await.unwrap(), None);
    assert!(g.coordinates("mine"));
    assert_eq!(
        g.committed("mine", None),
        vec![("t".to_string(), 0, Some(c2))]
    );
    join(&g, "mine").await;
}
