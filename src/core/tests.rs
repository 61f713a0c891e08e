//! The core on the in-memory backend (`backend::memory`), with paused time where time matters:
//! routing, iterator expiry, reshard lineage, reads and how often they ask the backend, the
//! shared catalog's adoption of foreign topics, and group session expiry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::catalog::{KeyHash, StreamMode};
use super::error::CoreError;
use super::groups::{GroupCoordinator, GroupError, GroupState, JoinRequest};
use super::hashing::{md5_hash_key, MAX_HASH_KEY};
use super::{Core, CreateStreamRequest, ForeignTopics, IteratorStart, PutInput, UserRecord};
use crate::backend::memory::{MemoryLog, MemoryMetaStore};
use crate::backend::{Log, NewTopic};
use crate::config::StreamsConfig;
use crate::protocol::kafka::record_batch::{set_producer, CheckedBatch, ParsedBatch};
use crate::protocol::kafka::records::{encode_batch, NewRecord};

async fn core_with(foreign: ForeignTopics) -> (Core, Arc<MemoryLog>) {
    let log = Arc::new(MemoryLog::new());
    let core = Core::open(
        "000000000000".into(),
        StreamsConfig::default(),
        log.clone(),
        Arc::new(MemoryMetaStore::new()),
        foreign,
    )
    .await
    .unwrap();
    (core, log)
}

pub(super) async fn core() -> (Core, Arc<MemoryLog>) {
    core_with(ForeignTopics::Delete).await
}

pub(super) async fn create(core: &Core, name: &str, shards: u32) {
    core.create_stream(CreateStreamRequest {
        name: name.into(),
        shard_count: Some(shards),
        mode: StreamMode::Provisioned,
        max_record_kib: None,
        tags: BTreeMap::new(),
        key_hash: KeyHash::KinesisMd5,
    })
    .await
    .unwrap();
}

fn record(key: &str, data: &str, explicit: Option<u128>) -> PutInput {
    PutInput {
        partition_key: key.into(),
        data: Bytes::from(data.to_string()),
        explicit_hash_key: explicit,
        user_records: None,
    }
}

#[tokio::test]
async fn explicit_hash_keys_route_to_the_shard_owning_them() {
    let (core, _) = core().await;
    create(&core, "s", 4).await;
    let s = core.stream("s").unwrap();
    let quarter = MAX_HASH_KEY / 4 + 1;
    // The same partition key lands wherever its ExplicitHashKey says.
    let inputs = (0..4u128)
        .map(|i| record("same-key", "d", Some(i * quarter + 7)))
        .collect();
    let placed = core.put_records("s", inputs).await.unwrap();
    let partitions: Vec<u32> = placed
        .outcomes
        .iter()
        .map(|p| p.as_ref().unwrap().partition)
        .collect();
    assert_eq!(partitions, [0, 1, 2, 3]);
    // Without one, the MD5 of the partition key decides.
    for key in ["a", "b", "c", "pk-42"] {
        let want = s
            .shard_for_hash(md5_hash_key(key.as_bytes()))
            .unwrap()
            .partition;
        let got = core
            .put_records("s", vec![record(key, "d", None)])
            .await
            .unwrap();
        assert_eq!(got.outcomes[0].as_ref().unwrap().partition, want, "{key}");
    }
}

fn aggregate(key: &str, users: &[&str]) -> PutInput {
    PutInput {
        user_records: Some(
            users
                .iter()
                .map(|u| UserRecord {
                    partition_key: u.to_string(),
                    data: Bytes::from(format!("data-{u}")),
                    explicit_hash_key: None,
                })
                .collect(),
        ),
        ..record(key, "aggregate bytes", None)
    }
}

/// On a kinesis-md5 stream an aggregate's user records land together on the shard of the
/// aggregate's own key; on a kafka-murmur2 stream each goes where its key hashes, and the
/// record reports the shard the KPL predicted from the aggregate's key.
#[tokio::test]
async fn aggregates_are_routed_once() {
    let (core, log) = core().await;
    create(&core, "md5", 4).await;
    let users = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"];
    let s = core.stream("md5").unwrap();
    let predicted = s.shard_for_hash(md5_hash_key(b"outer")).unwrap().partition;
    let report = core
        .put_records("md5", vec![aggregate("outer", &users)])
        .await
        .unwrap();
    assert_eq!(report.written_records, 8);
    assert_eq!(report.outcomes[0].as_ref().unwrap().partition, predicted);
    assert_eq!(
        log.calls.append.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let hw = log.offsets("md5", predicted).await.unwrap().high_watermark;
    assert_eq!(hw, 8, "all user records on the predicted shard");

    core.create_stream(CreateStreamRequest {
        key_hash: KeyHash::KafkaMurmur2,
        ..CreateStreamRequest {
            name: "murmur".into(),
            shard_count: Some(4),
            mode: StreamMode::Provisioned,
            max_record_kib: None,
            tags: BTreeMap::new(),
            key_hash: KeyHash::Auto,
        }
    })
    .await
    .unwrap();
    let s = core.stream("murmur").unwrap();
    let predicted = s.shard_for_hash(md5_hash_key(b"outer")).unwrap().partition;
    let report = core
        .put_records("murmur", vec![aggregate("outer", &users)])
        .await
        .unwrap();
    assert_eq!(report.outcomes[0].as_ref().unwrap().partition, predicted);
    let mut spread = 0;
    for p in 0..4 {
        if log.offsets("murmur", p).await.unwrap().high_watermark > 0 {
            spread += 1;
        }
    }
    assert!(spread > 1, "user records spread by their own keys");
}

#[tokio::test]
async fn records_larger_than_the_stream_allows_are_refused_whole() {
    let (core, log) = core().await;
    create(&core, "s", 1).await;
    let big = "x".repeat(1024 * 1024);
    let r = core
        .put_records("s", vec![record("k", "ok", None), record("k", &big, None)])
        .await;
    assert!(matches!(r, Err(CoreError::InvalidArgument(m)) if m.contains("1048577 bytes")));
    assert_eq!(log.offsets("s", 0).await.unwrap().high_watermark, 0);
}

#[tokio::test(start_paused = true)]
async fn iterators_expire_after_five_minutes() {
    let (core, _) = core().await;
    create(&core, "s", 1).await;
    core.put_records("s", vec![record("k", "v", None)])
        .await
        .unwrap();
    let it = core
        .get_shard_iterator("s", 0, IteratorStart::TrimHorizon)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(299)).await;
    let page = core.get_records(&it, 10).await.unwrap();
    assert_eq!(page.records.len(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(matches!(
        core.get_records(&it, 10).await,
        Err(CoreError::IteratorExpired { age_ms }) if age_ms >= 300_000
    ));
    // The next iterator a read hands out counts from that read.
    let next = page.next_iterator.unwrap();
    assert!(core.get_records(&next, 10).await.is_ok());
    tokio::time::advance(Duration::from_secs(299)).await;
    assert!(matches!(
        core.get_records(&next, 10).await,
        Err(CoreError::IteratorExpired { .. })
    ));
}

#[tokio::test]
async fn a_split_parent_ends_and_names_its_children() {
    let (core, _) = core().await;
    create(&core, "s", 1).await;
    core.put_records("s", vec![record("k", "before", None)])
        .await
        .unwrap();
    core.split_shard("s", 0, MAX_HASH_KEY / 2).await.unwrap();
    let s = core.stream("s").unwrap();
    let children: Vec<(u32, Vec<u32>)> = s
        .children(0)
        .map(|c| (c.partition, c.parents.clone()))
        .collect();
    assert_eq!(children, [(1, vec![0]), (2, vec![0])]);
    assert!(core
        .put_records("s", vec![record("k", "after", None)])
        .await
        .unwrap()
        .outcomes[0]
        .as_ref()
        .is_ok_and(|p| p.partition != 0));
    let it = core
        .get_shard_iterator("s", 0, IteratorStart::TrimHorizon)
        .await
        .unwrap();
    let page = core.get_records(&it, 10).await.unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(&page.records[0].data[..], b"before");
    assert!(
        page.next_iterator.is_none(),
        "the parent is read to its end"
    );
    let kids: Vec<u32> = page.child_shards.iter().map(|c| c.partition).collect();
    assert_eq!(kids, [1, 2]);
    // Merging the children closes both; the merged shard lists both parents.
    core.merge_shards("s", 1, 2).await.unwrap();
    let s = core.stream("s").unwrap();
    let merged = s.children(1).next().unwrap();
    assert_eq!(merged.parents, [1, 2]);
    assert_eq!(s.open_shards().count(), 1);
}

/// A reader that is behind costs one read and one newest-timestamp lookup; one that is caught
/// up costs the read alone (on the Kafka backend: a Fetch and a ListOffsets, or the Fetch).
#[tokio::test]
async fn reads_ask_the_backend_once() {
    let (core, log) = core().await;
    create(&core, "s", 1).await;
    for i in 0..5 {
        core.put_records("s", vec![record("k", &format!("r{i}"), None)])
            .await
            .unwrap();
    }
    let s = core.stream("s").unwrap();
    let before = log.calls.reads();
    let span = core.read_span(&s, 0, 0, 2, 1 << 20).await.unwrap();
    let after = log.calls.reads();
    assert_eq!(span.records.len(), 2);
    assert!(span.millis_behind_latest >= 0 && !span.caught_up);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (1, 0, 1),
        "(reads, offsets, newest-timestamp lookups) for a reader behind"
    );
    let before = log.calls.reads();
    let span = core.read_span(&s, 0, 2, 100, 1 << 20).await.unwrap();
    let after = log.calls.reads();
    assert_eq!(span.records.len(), 3);
    assert!(span.caught_up);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (1, 0, 0),
        "a reader that catches up"
    );
}

/// A reader below the trim horizon starts at it.
#[tokio::test]
async fn reads_below_the_log_start_start_there() {
    let (core, log) = core().await;
    create(&core, "s", 1).await;
    for i in 0..3 {
        core.put_records("s", vec![record("k", &format!("r{i}"), None)])
            .await
            .unwrap();
    }
    log.trim("s", 0, 2);
    let s = core.stream("s").unwrap();
    let span = core.read_span(&s, 0, 0, 10, 1 << 20).await.unwrap();
    assert_eq!(span.records.len(), 1);
    assert_eq!(&span.records[0].data[..], b"r2");
    assert_eq!(span.next_offset, 3);
}

/// A reader past the end (a log truncated under it) goes on from the end, so records written
/// at the reused offsets are read, not skipped.
#[tokio::test]
async fn reads_past_the_end_go_on_from_the_end() {
    let (core, _) = core().await;
    create(&core, "s", 1).await;
    core.put_records("s", vec![record("k", "r0", None)])
        .await
        .unwrap();
    let s = core.stream("s").unwrap();
    let span = core.read_span(&s, 0, 7, 10, 1 << 20).await.unwrap();
    assert!(span.records.is_empty() && span.caught_up);
    assert_eq!(span.next_offset, 1);
}

/// A stored batch whose CRC holds but whose records do not decode (a record length of 2^28)
/// is passed over by Kinesis readers, counted, and the shard stays readable.
#[tokio::test]
async fn an_undecodable_stored_batch_is_skipped() {
    let (core, log) = core().await;
    create(&core, "poison", 1).await;
    core.put_records("poison", vec![record("k", "before", None)])
        .await
        .unwrap();
    let mut bad = produced(2, -1, -1);
    bad[61..65].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
    set_producer(&mut bad, -1, -1, -1);
    let bad = CheckedBatch::encoded(bytes::BytesMut::from(&bad[..]));
    log.append("poison", 0, bad).await.unwrap();
    core.put_records("poison", vec![record("k", "after", None)])
        .await
        .unwrap();
    let counted = || {
        crate::observe::metrics()
            .undecodable_batches
            .with_label_values(&["poison"])
            .get()
    };
    let skipped_before = counted();
    let it = core
        .get_shard_iterator("poison", 0, IteratorStart::TrimHorizon)
        .await
        .unwrap();
    let page = core.get_records(&it, 10).await.unwrap();
    let data: Vec<&[u8]> = page.records.iter().map(|r| &r.data[..]).collect();
    assert_eq!(data, [&b"before"[..], &b"after"[..]]);
    assert_eq!(page.millis_behind_latest, 0);
    assert!(counted() > skipped_before);
    // AT_TIMESTAMP looks past it too.
    let it = core
        .get_shard_iterator("poison", 0, IteratorStart::AtTimestamp(0))
        .await
        .unwrap();
    assert_eq!(core.get_records(&it, 10).await.unwrap().records.len(), 2);
}

#[tokio::test]
async fn the_shared_catalog_adopts_foreign_topics() {
    let (core, log) = core_with(ForeignTopics::Adopt).await;
    log.create_partitions("orders", 0..3, NewTopic::default())
        .await
        .unwrap();
    assert!(matches!(
        core.stream("orders"),
        Err(CoreError::StreamNotFound { .. })
    ));
    core.discover("orders").await;
    let s = core.stream("orders").unwrap();
    assert_eq!(s.key_hash, KeyHash::KafkaMurmur2);
    assert_eq!(s.shards.len(), 3);
}

/// A name asked for right after a look that missed it waits for the next look rather than
/// being answered "not found" from the older one; questions waiting together share one look.
#[tokio::test]
async fn a_topic_made_just_after_a_look_is_found_by_the_next() {
    let (core, log) = core_with(ForeignTopics::Adopt).await;
    core.discover("missing").await;
    log.create_partitions("late", 0..2, NewTopic::default())
        .await
        .unwrap();
    log.create_partitions("later", 0..1, NewTopic::default())
        .await
        .unwrap();
    let (late, later) = tokio::join!(core.found_stream("late"), core.found_stream("later"));
    assert_eq!(late.unwrap().shards.len(), 2);
    assert_eq!(later.unwrap().shards.len(), 1);
}

/// A Kafka producer's batch of `n` records, stamped with an idempotent identity.
fn produced(n: usize, producer_id: i64, first_sequence: i32) -> Vec<u8> {
    let records: Vec<NewRecord> = (0..n)
        .map(|i| NewRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Bytes::from(format!("v{i}")),
            timestamp_ms: 1,
            explicit_hash_key: None,
        })
        .collect();
    let mut b = encode_batch(&records).into_bytes().to_vec();
    set_producer(&mut b, producer_id, 0, first_sequence);
    b
}

/// A Kafka Produce: the partition is checked before the CRC, an idempotent retry gets its
/// first base offset, and the answer carries the log start from the append itself.
#[tokio::test]
async fn produce_checks_the_partition_then_the_batch_and_deduplicates() {
    let (core, log) = core().await;
    core.create_topic("t", 2, StreamMode::Provisioned)
        .await
        .unwrap();
    let parsed = |b: &[u8]| ParsedBatch::split_first(b).unwrap();
    let mut corrupt = produced(2, -1, -1);
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    assert!(matches!(
        core.produce("t", 5, parsed(&corrupt)).await,
        Err(CoreError::ShardNotFound { .. })
    ));
    assert!(matches!(
        core.produce("t", 0, parsed(&corrupt)).await,
        Err(CoreError::CorruptBatch(m)) if m.contains("CrcMismatch")
    ));
    let first = core
        .produce("t", 0, parsed(&produced(3, 7, 0)))
        .await
        .unwrap();
    assert_eq!((first.base_offset, first.log_start), (0, 0));
    let before = log.calls.reads().1;
    let again = core
        .produce("t", 0, parsed(&produced(3, 7, 0)))
        .await
        .unwrap();
    assert_eq!(again.base_offset, 0, "a retried batch keeps its offset");
    let next = core
        .produce("t", 0, parsed(&produced(2, 7, 3)))
        .await
        .unwrap();
    assert_eq!(next.base_offset, 3);
    assert_eq!(
        log.calls.reads().1 - before,
        1,
        "only the duplicate asks for offsets"
    );
    assert!(matches!(
        core.produce("t", 0, parsed(&produced(1, 7, 9))).await,
        Err(CoreError::OutOfOrderSequence { expected: 5, .. })
    ));
    assert_eq!(log.offsets("t", 0).await.unwrap().high_watermark, 5);
    // The producer marked its batches LogAppendTime (encode_batch does); the topic is
    // CreateTime, so they are stored as such, with the records' own max timestamp.
    let stored = log.read("t", 0, 0, 1 << 20).await.unwrap();
    for b in stored.batches {
        let h = crate::protocol::kafka::record_batch::check_batch(&b).unwrap();
        assert_eq!((h.attributes & (1 << 3), h.max_timestamp), (0, 1));
    }
}

/// A retry that crosses a restart is still recognised: the new core reads the producer's last
/// batches from the log's headers instead of trusting the retry as new.
#[tokio::test]
async fn an_idempotent_retry_after_a_restart_is_not_appended_twice() {
    let log = Arc::new(MemoryLog::new());
    let meta = Arc::new(MemoryMetaStore::new());
    let open = || {
        Core::open(
            "000000000000".into(),
            StreamsConfig::default(),
            log.clone(),
            meta.clone(),
            ForeignTopics::Delete,
        )
    };
    let parsed = |b: &[u8]| ParsedBatch::split_first(b).unwrap();
    let core = open().await.unwrap();
    core.create_topic("t", 1, StreamMode::Provisioned)
        .await
        .unwrap();
    core.produce("t", 0, parsed(&produced(3, 7, 0)))
        .await
        .unwrap();
    core.produce("t", 0, parsed(&produced(2, 7, 3)))
        .await
        .unwrap();
    drop(core);

    let core = open().await.unwrap();
    let retry = core.produce("t", 0, parsed(&produced(2, 7, 3))).await;
    assert_eq!(retry.unwrap().base_offset, 3, "the retry keeps its offset");
    let older = core.produce("t", 0, parsed(&produced(3, 7, 0))).await;
    assert_eq!(older.unwrap().base_offset, 0);
    assert_eq!(log.offsets("t", 0).await.unwrap().high_watermark, 5);
    assert!(matches!(
        core.produce("t", 0, parsed(&produced(1, 7, 9))).await,
        Err(CoreError::OutOfOrderSequence { expected: 5, .. })
    ));
    let next = core.produce("t", 0, parsed(&produced(1, 7, 5))).await;
    assert_eq!(next.unwrap().base_offset, 5);
}

/// A Kafka Fetch costs one log read, which also bounds the offset.
#[tokio::test]
async fn fetch_reads_once_and_checks_the_offset_against_the_read() {
    let (core, log) = core().await;
    core.create_topic("t", 1, StreamMode::Provisioned)
        .await
        .unwrap();
    let parsed = |b: &[u8]| ParsedBatch::split_first(b).unwrap();
    for _ in 0..3 {
        core.produce("t", 0, parsed(&produced(2, -1, -1)))
            .await
            .unwrap();
    }
    log.trim("t", 0, 2);
    let before = log.calls.reads();
    let read = core.fetch("t", 0, 2, 1 << 20).await.unwrap();
    assert_eq!(read.batches.len(), 2);
    assert_eq!(
        (read.offsets.log_start, read.offsets.high_watermark),
        (2, 6)
    );
    let after = log.calls.reads();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 0));
    assert!(core
        .fetch("t", 0, 6, 1 << 20)
        .await
        .unwrap()
        .batches
        .is_empty());
    for offset in [0, 7] {
        assert!(matches!(
            core.fetch("t", 0, offset, 1 << 20).await,
            Err(CoreError::OffsetOutOfRange {
                log_start: 2,
                high_watermark: 6,
                ..
            })
        ));
    }
    assert!(matches!(
        core.fetch("t", 1, 0, 1 << 20).await,
        Err(CoreError::ShardNotFound { .. })
    ));
}

fn join_request(member: &str, session_ms: i32) -> JoinRequest {
    JoinRequest {
        group: "g".into(),
        member_id: member.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: session_ms,
        rebalance_timeout_ms: session_ms,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        require_known_member_id: true,
    }
}

#[tokio::test(start_paused = true)]
async fn group_members_expire_when_their_session_ends() {
    let groups = GroupCoordinator::open(Arc::new(MemoryMetaStore::new()), Duration::ZERO).unwrap();
    let id = match groups.join(join_request("", 6_000)).await {
        Err(GroupError::MemberIdRequired(id)) => id,
        other => panic!("{other:?}"),
    };
    let joined = groups.join(join_request(&id, 6_000)).await.unwrap();
    groups
        .sync(
            "g",
            joined.generation,
            &id,
            vec![(id.clone(), Bytes::new())],
        )
        .await
        .unwrap();
    assert_eq!(groups.describe("g").unwrap().state, GroupState::Stable);
    tokio::time::advance(Duration::from_millis(5_000)).await;
    assert_eq!(groups.heartbeat("g", joined.generation, &id), Ok(()));
    // Just before its session ends the member is there; at the deadline exactly it is gone,
    // whatever the timer's phase (as Kafka: a DeleteGroups then finds the group empty).
    tokio::time::advance(Duration::from_millis(5_999)).await;
    assert_eq!(groups.describe("g").unwrap().members.len(), 1);
    tokio::time::advance(Duration::from_millis(1)).await;
    // A group left with no members and no offsets may already be forgotten by then.
    if let Some(view) = groups.describe("g") {
        assert_eq!(view.state, GroupState::Empty);
        assert!(view.members.is_empty());
    }
    // DeleteGroups at the deadline finds no member left (Kafka has emptied the group too).
    match groups.delete("g") {
        Ok(()) | Err(GroupError::GroupIdNotFound) => {}
        other => panic!("DeleteGroups at the session deadline: {other:?}"),
    }
    assert_eq!(
        groups.heartbeat("g", joined.generation, &id),
        Err(GroupError::UnknownMemberId)
    );
}

/// A stream being migrated takes no client writes (Kinesis PutRecords, Kafka Produce) until
/// its hold is released; reads go on.
#[tokio::test]
async fn held_writes_are_refused_until_released() {
    let (core, _log) = core().await;
    create(&core, "m", 1).await;
    core.hold_writes("m", "Stream m is being migrated".into());
    let put = core.put_records("m", vec![record("k", "v", None)]).await;
    assert!(matches!(put, Err(CoreError::WritesHeld(ref m)) if m.contains("migrated")));
    let batch = ParsedBatch::split_first(&produced(1, -1, -1)).unwrap();
    assert!(matches!(
        core.produce("m", 0, batch).await,
        Err(CoreError::WritesHeld(_))
    ));
    core.release_writes("m");
    let put = core
        .put_records("m", vec![record("k", "v", None)])
        .await
        .unwrap();
    assert!(put.outcomes[0].is_ok());
}
