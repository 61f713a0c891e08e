"""Classic consumer groups with real clients: partition split, rebalance on leave, static
membership, strait restarted mid-consumption, group admin (Describe/List/DeleteGroups) and lag.

Exactness: every consumer here commits synchronously the offsets of what it has processed after
each poll, and again in its revoke callback (the usual "commit on revoke" pattern), so a partition
that moves to another member resumes exactly after the last processed record: every produced record
is counted exactly once, across all members. Only the restart test leaves records uncommitted on
purpose, and allows exactly those to come back.
"""

import time
from collections import Counter

import pytest
from confluent_kafka import KafkaError

from kafka_helpers import (
    check_exactly_once,
    check_key_order,
    confluent_admin,
    confluent_conf,
    confluent_produce,
    create_topic,
    high_watermarks,
    make_records,
    unique,
)

KEYS = [f"user-{i}" for i in range(40)]


def produce(bootstrap, topic, records):
    from confluent_kafka import Producer

    p = Producer(confluent_conf(bootstrap, **{"enable.idempotence": True, "partitioner": "murmur2_random"}))
    return confluent_produce(p, topic, records)


def group_conf(bootstrap, group, name, **extra):
    conf = confluent_conf(
        bootstrap,
        **{
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "heartbeat.interval.ms": 300,
            "session.timeout.ms": 10000,
            "partition.assignment.strategy": "range",
        },
    )
    conf.update(extra)
    return conf


class Ledger:
    """What a group has read and committed, shared by its members: a record may be read twice only
    if no successful commit had covered it when it was read again."""

    def __init__(self):
        self.frontier = {}  # partition -> offset of the last successful commit
        self.seen = set()
        self.bad_redeliveries = []  # (partition, offset, committed offset then)


class Member:
    """A confluent-kafka group member that records what it reads and commits exactly what it processed."""

    def __init__(self, bootstrap, group, name, topic, ledger=None, **extra):
        from confluent_kafka import Consumer

        self.name = name
        self.topic = topic
        conf = group_conf(bootstrap, group, name, **extra)
        self.cooperative = conf["partition.assignment.strategy"] == "cooperative-sticky"
        self.c = Consumer(conf)
        self.assigned = set()
        self.assign_history = []
        self.revokes = 0
        self.rows = []  # (partition, offset, key, value)
        self.pending = {}  # partition -> next offset to commit
        self.commit_errors = []
        self.ledger = ledger or Ledger()
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer, partitions):
        # Eager protocols hand over the whole new assignment; cooperative ones only what is added.
        new = {tp.partition for tp in partitions}
        self.assigned = self.assigned | new if self.cooperative else new
        self.assign_history.append(set(self.assigned))

    def _on_revoke(self, consumer, partitions):
        self.revokes += 1
        self.commit()
        self.assigned = self.assigned - {tp.partition for tp in partitions} if self.cooperative else set()

    def commit(self):
        from confluent_kafka import KafkaException, TopicPartition

        if not self.pending:
            return
        offs = [TopicPartition(self.topic, p, o) for p, o in sorted(self.pending.items())]
        try:
            res = self.c.commit(offsets=offs, asynchronous=False)
            bad = [tp for tp in res if tp.error is not None]
        except KafkaException as e:
            bad = [e]
        if bad:
            self.commit_errors.append(bad)
        else:
            self.ledger.frontier.update(self.pending)
        # A failed commit is not retried: those records count as uncommitted from now on.
        self.pending.clear()

    def commit_positions(self):
        """Commit the current positions of every assigned partition (explicit offsets)."""
        from confluent_kafka import TopicPartition

        tps = self.c.position([TopicPartition(self.topic, p) for p in sorted(self.assigned)])
        tps = [tp for tp in tps if tp.offset >= 0]
        if tps:
            res = self.c.commit(offsets=tps, asynchronous=False)
            assert all(tp.error is None for tp in res), res

    def step(self, max_msgs=100, timeout=0.05, commit=True):
        """Poll up to max_msgs messages (one poll() each: a message never crosses a revoke), then commit."""
        n = 0
        while n < max_msgs:
            m = self.c.poll(timeout)
            if m is None:
                break
            if m.error():
                raise AssertionError(f"{self.name}: consumer error {m.error()}")
            self.rows.append((m.partition(), m.offset(), m.key(), m.value()))
            led = self.ledger
            if m.value() in led.seen and m.offset() < led.frontier.get(m.partition(), 0):
                led.bad_redeliveries.append((m.partition(), m.offset(), led.frontier[m.partition()]))
            led.seen.add(m.value())
            self.pending[m.partition()] = m.offset() + 1
            n += 1
        if commit:
            self.commit()
        return n

    def close(self):
        self.c.close()


def poll_until(members, cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in members:
            m.step()
        if cond():
            return
    state = {m.name: (sorted(m.assigned), len(m.rows), m.commit_errors[:2]) for m in members}
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {state}")


def committed_offsets(bootstrap, group, topic, partitions):
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    admin = confluent_admin(bootstrap)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = admin.list_consumer_group_offsets([req])[group].result(timeout=10)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


# -- split and rebalance ---------------------------------------------------------------------


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_two_consumers_split_partitions_then_one_leaves(kafka_bootstrap, server, assignor):
    topic = create_topic(kafka_bootstrap, unique("grp-split"), 4)
    records = make_records("split", KEYS, 50)  # 2000
    group = unique("g-split")
    conf = {"partition.assignment.strategy": assignor}
    ledger = Ledger()
    a = Member(kafka_bootstrap, group, "member-a", topic, ledger, **conf)
    b = Member(kafka_bootstrap, group, "member-b", topic, ledger, **conf)
    try:
        # Both join: the range assignor gives each two of the four partitions.
        poll_until(
            [a, b],
            lambda: len(a.assigned) == 2 and len(b.assigned) == 2,
            20,
            "a 2/2 split of 4 partitions",
        )
        assert a.assigned.isdisjoint(b.assigned) and a.assigned | b.assigned == {0, 1, 2, 3}
        a_parts = set(a.assigned)
        # Produced only after the split, so neither member can read them all alone first.
        produce(kafka_bootstrap, topic, records)

        # Read some more with both, then a leaves with records still unread on its partitions.
        a_before = len(a.rows)
        poll_until([a, b], lambda: len(a.rows) >= a_before + 100, 20, "member a to read 100 more")
        rows_a = [r for r in a.rows[a_before:]]
        assert {p for p, *_ in rows_a} <= a_parts, "member a read a partition it does not own"
        hws = high_watermarks(kafka_bootstrap, topic, 4)
        a_read = Counter(p for p, *_ in a.rows)
        assert sum(hws[p] for p in a_parts) > sum(a_read[p] for p in a_parts), "a already read all"
        a.close()  # LeaveGroup: b must take over a's partitions from the group's committed offsets

        poll_until(
            [b],
            lambda: b.assigned == {0, 1, 2, 3} and len(ledger.seen) >= len(records),
            30,
            "b to take over a's partitions and read the rest",
        )
        b.step(timeout=0.3)  # nothing more
        b.commit_positions()  # in case a commit failed on the way

        if assignor == "range":
            # Eager: commits happen before the revoke completes, so none can fail.
            assert not a.commit_errors and not b.commit_errors, (a.commit_errors, b.commit_errors)
        else:
            # Cooperative: members keep committing while a rebalance is on, and a commit sent
            # while the member's JoinGroup is pending carries the old generation; Kafka answers
            # ILLEGAL_GENERATION or REBALANCE_IN_PROGRESS then too. Those records count as uncommitted.
            codes = {e.args[0].code() for errs in a.commit_errors + b.commit_errors for e in errs if hasattr(e, "args")}
            assert codes <= {KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS}, codes
        assert not ledger.bad_redeliveries, f"committed records read again: {ledger.bad_redeliveries[:5]}"
        if not (a.commit_errors or b.commit_errors):
            check_exactly_once([r[3] for r in a.rows + b.rows], [v for _, v in records])
        else:
            assert ledger.seen == {v for _, v in records}, "records lost"
        check_key_order(first_reads(a.rows + b.rows))
        assert committed_offsets(kafka_bootstrap, group, topic, 4) == dict(enumerate(hws))
    finally:
        b.close()
    server.assert_alive()


def first_reads(rows):
    """rows without the second and later reads of a record."""
    seen = set()
    out = []
    for r in rows:
        if r[3] not in seen:
            seen.add(r[3])
            out.append(r)
    return out


def test_kafka_python_two_consumers_split_then_one_leaves(kafka_bootstrap, server):
    """The same with kafka-python's KafkaConsumer (range assignor, commit on revoke). Each member
    polls in its own thread: kafka-python's poll() blocks while its JoinGroup is pending, and the
    coordinator holds that JoinGroup until every member has rejoined."""
    import threading

    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition

    topic = create_topic(kafka_bootstrap, unique("grp-kp"), 4)
    records = make_records("kp", KEYS, 25)  # 1000
    group = unique("g-kp")

    class KpMember(ConsumerRebalanceListener):
        def __init__(self, name, throttle=False):
            self.name = name
            self.throttle = throttle  # read slowly, so records are left when it leaves
            self.rows = []
            self.pending = {}
            self.assigned = set()
            self.errors = []
            self.stop = threading.Event()
            self.c = KafkaConsumer(
                bootstrap_servers=kafka_bootstrap,
                group_id=group,
                client_id=name,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                heartbeat_interval_ms=300,
                session_timeout_ms=10000,
            )
            self.c.subscribe([topic], listener=self)
            self.thread = threading.Thread(target=self.run, name=name, daemon=True)
            self.thread.start()

        def on_partitions_revoked(self, revoked):
            self.commit()
            self.assigned = set()

        def on_partitions_assigned(self, assigned):
            self.assigned = {tp.partition for tp in assigned}

        def commit(self):
            if self.pending:
                self.c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in self.pending.items()})
                self.pending.clear()

        def run(self):
            try:
                while not self.stop.is_set():
                    if self.throttle:
                        time.sleep(0.05)
                    for recs in self.c.poll(timeout_ms=100, max_records=10 if self.throttle else 50).values():
                        for r in recs:
                            self.rows.append((r.partition, r.offset, r.key, r.value))
                            self.pending[r.partition] = r.offset + 1
                    self.commit()
                self.c.close(autocommit=False)
            except Exception as e:  # reported by the test thread
                self.errors.append(e)

        def finish(self, timeout=30):
            self.stop.set()
            self.thread.join(timeout)
            assert not self.thread.is_alive(), f"{self.name} did not stop"
            assert not self.errors, f"{self.name}: {self.errors}"

    def wait(cond, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            for m in (a, b):
                assert not m.errors, f"{m.name}: {m.errors}"
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: a={sorted(a.assigned)}/{len(a.rows)} b={sorted(b.assigned)}/{len(b.rows)}")

    a = KpMember("kp-a", throttle=True)
    b = KpMember("kp-b")
    try:
        wait(lambda: len(a.assigned) == 2 and len(b.assigned) == 2, 30, "a 2/2 split")
        assert a.assigned.isdisjoint(b.assigned)
        # Produced only now: had the records been there first, whichever member joined first
        # could have read and committed all of them before the split, leaving a nothing to read.
        produce(kafka_bootstrap, topic, records)
        a_parts = set(a.assigned)
        a_before = len(a.rows)
        wait(lambda: len(a.rows) >= a_before + 50, 20, "a to read 50 more")
        a.finish()
        assert {r[0] for r in a.rows[a_before:]} <= a_parts, "a read a partition it does not own"
        hws = high_watermarks(kafka_bootstrap, topic, 4)
        a_read = Counter(r[0] for r in a.rows)
        assert sum(hws[p] for p in a_parts) > sum(a_read[p] for p in a_parts), "a already read everything"
        wait(
            lambda: b.assigned == {0, 1, 2, 3} and len(a.rows) + len(b.rows) >= len(records),
            30,
            "b to take over a's partitions and read the rest",
        )
        time.sleep(0.3)
        check_exactly_once([r[3] for r in a.rows + b.rows], [v for _, v in records])
        check_key_order(a.rows + b.rows)
    finally:
        a.stop.set()
        b.stop.set()
        a.thread.join(30)
        b.thread.join(30)
    server.assert_alive()


# -- static membership -----------------------------------------------------------------------


def test_static_member_rejoins_without_rebalance(kafka_bootstrap, server):
    """KIP-345: a static member (group.instance.id) that restarts within the session timeout gets its
    old partitions back without a rebalance; close() sends no LeaveGroup for it."""
    topic = create_topic(kafka_bootstrap, unique("grp-static"), 4)
    first = make_records("s1", KEYS, 10)
    produce(kafka_bootstrap, topic, first)
    group = unique("g-static")
    a = Member(kafka_bootstrap, group, "static-a", topic, **{"group.instance.id": "inst-a"})
    b = Member(kafka_bootstrap, group, "static-b", topic, **{"group.instance.id": "inst-b"})
    a2 = None
    try:
        poll_until(
            [a, b],
            lambda: len(a.assigned) == 2 and len(b.assigned) == 2 and len(a.rows) + len(b.rows) >= len(first),
            20,
            "a split and all of the first records",
        )
        a_parts, b_parts = set(a.assigned), set(b.assigned)
        b_assigns, b_revokes = len(b.assign_history), b.revokes
        a.close()

        admin = confluent_admin(kafka_bootstrap)
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert sorted(m.group_instance_id for m in desc.members) == ["inst-a", "inst-b"], (
            "a static member's close() must not remove it from the group"
        )

        a2 = Member(kafka_bootstrap, group, "static-a2", topic, **{"group.instance.id": "inst-a"})
        poll_until([a2, b], lambda: bool(a2.assigned), 20, "the static member to rejoin")
        assert a2.assigned == a_parts, f"rejoined with {a2.assigned}, had {a_parts}"
        second = make_records("s2", KEYS, 10)
        produce(kafka_bootstrap, topic, second)
        poll_until(
            [a2, b],
            lambda: len(a.rows) + len(b.rows) + len(a2.rows) >= len(first) + len(second),
            20,
            "the second records",
        )
        for m in (a2, b):
            m.step(timeout=0.2)
        assert (len(b.assign_history), b.revokes) == (b_assigns, b_revokes), "b went through a rebalance"
        assert b.assigned == b_parts
        assert {r[0] for r in a2.rows} <= a_parts
        assert not (a.commit_errors or b.commit_errors or a2.commit_errors)
        rows = a.rows + b.rows + a2.rows
        check_exactly_once([r[3] for r in rows], [v for _, v in first + second])
        check_key_order(rows)
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert len(desc.members) == 2
        assert sorted(m.group_instance_id for m in desc.members) == ["inst-a", "inst-b"]
        assert desc.state.name == "STABLE"
    finally:
        b.close()
        if a2:
            a2.close()
    server.assert_alive()


# -- restart -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_group_resumes_from_committed_offsets_after_restart(fresh_server):
    """strait is restarted (SIGTERM) while a member is consuming: committed offsets survive, no record
    is lost, and a record comes back only if it had not been committed (read after the last commit
    that succeeded). A new member then starts exactly at the committed offsets."""
    srv = fresh_server
    bs = srv.kafka_bootstrap
    topic = create_topic(bs, unique("grp-restart"), 4)
    records = make_records("r", KEYS, 50)  # 2000
    produce(bs, topic, records)
    group = unique("g-restart")
    m = Member(bs, group, "restart-a", topic)
    try:
        poll_until([m], lambda: len(m.rows) >= 1000, 20, "half of the records")
        assert not m.commit_errors, m.commit_errors
        # One more batch read but deliberately not committed.
        n = m.step(max_msgs=50, commit=False)
        assert n > 0 and m.pending
        m.pending.clear()
        before = committed_offsets(bs, group, topic, 4)
        assert {p: o for p, o in before.items() if o >= 0} == m.ledger.frontier

        srv.restart()

        assert committed_offsets(bs, group, topic, 4) == before, "committed offsets changed across the restart"
        poll_until(
            [m], lambda: len({r[3] for r in m.rows}) >= len(records), 60, "every record after the restart"
        )
        m.step(timeout=0.5)
        # The member keeps its assignment across the restart (membership is persisted, as in
        # Kafka), so the batch it read without committing is not read again; commit the
        # positions it reached, as an application does before it closes.
        m.commit_positions()
        counts = Counter(r[3] for r in m.rows)
        assert set(counts) == {v for _, v in records}, "records lost across the restart"
        assert not m.ledger.bad_redeliveries, (
            f"committed records read again (partition, offset, committed): {m.ledger.bad_redeliveries[:5]}"
        )
        check_key_order(first_reads(m.rows))
    finally:
        m.close()
    hws = high_watermarks(bs, topic, 4)
    assert committed_offsets(bs, group, topic, 4) == dict(enumerate(hws))

    # A new member of the group starts exactly at the committed offsets, after another restart.
    more = make_records("r2", KEYS, 5)
    produce(bs, topic, more)
    srv.restart()
    m2 = Member(bs, group, "restart-b", topic)
    try:
        poll_until([m2], lambda: len(m2.rows) >= len(more), 30, "the records produced after the commit")
        m2.step(timeout=0.3)
        check_exactly_once([r[3] for r in m2.rows], [v for _, v in more])
        first = {}
        for p, off, _, _ in m2.rows:
            first.setdefault(p, off)
        assert all(first[p] == hws[p] for p in first), f"resumed at {first}, committed {hws}"
    finally:
        m2.close()
    srv.assert_alive()


@pytest.mark.slow
def test_group_membership_survives_restart(fresh_server):
    """Kafka stores group metadata (generation, members, assignment) with the offsets and reloads it
    when the coordinator restarts or moves; a member that keeps heartbeating within its session
    timeout stays in the group: no rebalance, and its commits keep succeeding."""
    srv = fresh_server
    bs = srv.kafka_bootstrap
    topic = create_topic(bs, unique("grp-member-restart"), 2)
    first = make_records("f", KEYS, 5)
    produce(bs, topic, first)
    group = unique("g-member-restart")
    m = Member(bs, group, "survivor", topic)
    try:
        poll_until([m], lambda: len(m.rows) >= len(first), 20, "the first records")
        assert not m.commit_errors
        srv.restart()
        second = make_records("s", KEYS, 5)
        produce(bs, topic, second)
        poll_until([m], lambda: len(m.ledger.seen) >= len(first) + len(second), 30, "the second records")
        m.step(timeout=0.5)
        check_exactly_once([r[3] for r in m.rows], [v for _, v in first + second])
        assert not m.commit_errors, f"commits failed after the restart: {m.commit_errors}"
        assert (m.revokes, len(m.assign_history)) == (0, 1), (
            f"the member was rebalanced after the restart ({m.revokes} revokes, assignments {m.assign_history})"
        )
    finally:
        m.close()


# -- admin: DescribeGroups, ListGroups, DeleteGroups -------------------------------------------


def test_group_admin_confluent_and_kafka_python(kafka_bootstrap, server):
    from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException
    from kafka.admin import KafkaAdminClient

    topic = create_topic(kafka_bootstrap, unique("grp-admin"), 4)
    records = make_records("adm", KEYS, 5)
    produce(kafka_bootstrap, topic, records)
    g1, g2 = unique("g-admin1"), unique("g-admin2")
    m1 = Member(kafka_bootstrap, g1, "admin-m1", topic)
    m2 = Member(kafka_bootstrap, g2, "admin-m2", topic)
    admin = confluent_admin(kafka_bootstrap)
    kp = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="strait-admin")
    try:
        poll_until([m1, m2], lambda: len(m1.rows) >= len(records) and len(m2.rows) >= len(records), 20, "both")

        # confluent-kafka: ListGroups and DescribeGroups of a live group.
        listed = admin.list_consumer_groups().result(timeout=10)
        assert not listed.errors, listed.errors
        states = {g.group_id: g for g in listed.valid}
        assert g1 in states and g2 in states
        assert states[g1].state == ConsumerGroupState.STABLE
        assert states[g1].is_simple_consumer_group is False
        desc = admin.describe_consumer_groups([g1])[g1].result(timeout=10)
        assert desc.group_id == g1 and desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "range"
        assert desc.is_simple_consumer_group is False
        assert len(desc.members) == 1
        member = desc.members[0]
        assert member.client_id == "admin-m1" and member.member_id and member.host
        assert sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions) == [
            (topic, p) for p in range(4)
        ]
        assert desc.coordinator is not None and desc.coordinator.port == int(kafka_bootstrap.rsplit(":", 1)[1])

        # kafka-python: the same through its own protocol code.
        kgroups = {g["group_id"]: g for g in kp.list_groups()}
        assert kgroups[g1]["protocol_type"] == "consumer"
        if "group_state" in kgroups[g1]:
            assert kgroups[g1]["group_state"] == "Stable"
        kdesc = kp.describe_groups([g1])[g1]
        assert kdesc["error"] is None, kdesc
        assert kdesc["group_state"] == "Stable" and kdesc["protocol_type"] == "consumer"
        assert kdesc["protocol_data"] == "range"
        assert len(kdesc["members"]) == 1 and kdesc["members"][0]["client_id"] == "admin-m1"

        # A group with members can't be deleted (GROUP_NOT_EMPTY), by either client.
        with pytest.raises(KafkaException) as ei:
            admin.delete_consumer_groups([g1])[g1].result(timeout=10)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
        assert kp.delete_groups([g2]) == {g2: "NonEmptyGroupError"}

        m1.close()
        m2.close()
        listed = {g.group_id: g for g in admin.list_consumer_groups().result(timeout=10).valid}
        assert listed[g1].state == ConsumerGroupState.EMPTY and listed[g2].state == ConsumerGroupState.EMPTY
        assert committed_offsets(kafka_bootstrap, g1, topic, 4) == dict(
            enumerate(high_watermarks(kafka_bootstrap, topic, 4))
        )

        # Empty groups delete: g1 through confluent-kafka, g2 through kafka-python.
        admin.delete_consumer_groups([g1])[g1].result(timeout=10)
        assert kp.delete_groups([g2]) == {g2: "OK"}
        listed = {g.group_id for g in admin.list_consumer_groups().result(timeout=10).valid}
        assert g1 not in listed and g2 not in listed
        assert g1 not in {g["group_id"] for g in kp.list_groups()}
        # A deleted group has no committed offsets left.
        assert set(committed_offsets(kafka_bootstrap, g1, topic, 4).values()) == {-1001}  # OFFSET_INVALID
        gone = kp.list_group_offsets({g2: None})[g2]
        assert all(o.offset == -1 for o in gone.values()), gone
        # Describing a deleted group: Kafka answers state Dead (DescribeGroups < v6) or GROUP_ID_NOT_FOUND.
        try:
            d = admin.describe_consumer_groups([g1])[g1].result(timeout=10)
            assert d.state in (ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN) and not d.members
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND
        # Deleting a group that does not exist: GROUP_ID_NOT_FOUND.
        assert kp.delete_groups([g2]) == {g2: "GroupIdNotFoundError"}
    finally:
        kp.close()
        for m in (m1, m2):
            try:
                m.close()
            except RuntimeError:
                pass  # already closed
    server.assert_alive()


# -- lag -----------------------------------------------------------------------------------------


def test_lag_from_committed_offsets_and_high_watermarks(kafka_bootstrap, server):
    """What kafka-consumer-groups --describe computes: LAG = LOG-END-OFFSET - CURRENT-OFFSET."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import OffsetSpec
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KpTP
    from kafka.admin import KafkaAdminClient

    topic = create_topic(kafka_bootstrap, unique("grp-lag"), 4)
    records = make_records("lag", KEYS, 20)  # 800
    produce(kafka_bootstrap, topic, records)
    hws = high_watermarks(kafka_bootstrap, topic, 4)
    want_lag = {0: 0, 1: 7, 2: min(40, hws[2]), 3: hws[3]}  # partition 3: nothing committed but 0
    group = unique("g-lag")
    c = Consumer(group_conf(kafka_bootstrap, group, "lag-m"))
    try:
        c.subscribe([topic])
        deadline = time.time() + 20
        while not c.assignment() and time.time() < deadline:
            c.poll(0.1)
        assert len(c.assignment()) == 4
        offs = [TopicPartition(topic, p, hws[p] - want_lag[p]) for p in range(4)]
        res = c.commit(offsets=offs, asynchronous=False)
        assert all(tp.error is None for tp in res)
    finally:
        c.close()

    def lag_confluent():
        admin = confluent_admin(kafka_bootstrap)
        committed = committed_offsets(kafka_bootstrap, group, topic, 4)
        ends = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in range(4)})
        end = {tp.partition: f.result(timeout=10).offset for tp, f in ends.items()}
        return {p: end[p] - committed[p] for p in range(4)}

    def lag_kafka_python():
        kp = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        kc = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
        try:
            committed = kp.list_group_offsets({group: None})[group]
            tps = [KpTP(topic, p) for p in range(4)]
            end = kc.end_offsets(tps)
            return {tp.partition: end[tp] - committed[tp].offset for tp in tps}
        finally:
            kp.close()
            kc.close()

    assert lag_confluent() == want_lag
    assert lag_kafka_python() == want_lag

    # New records on partition 1 grow its lag by as many.
    from confluent_kafka import Producer

    p = Producer(confluent_conf(kafka_bootstrap))
    confluent_produce(p, topic, [(b"extra", b"lag|extra|%d|" % i) for i in range(25)], partition_of=lambda k: 1)
    want_lag[1] += 25
    assert lag_confluent() == want_lag
    assert lag_kafka_python() == want_lag
    server.assert_alive()
