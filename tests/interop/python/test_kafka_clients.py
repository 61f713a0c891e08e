"""Each Kafka client family produces, consumes with a group, and commits against strait.

confluent-kafka (librdkafka) and kafka-python: create a topic with the admin client, produce keyed
records (idempotent, acks 0/1/all, every compression codec), consume with a consumer group from
earliest, commit, and check the committed offsets, per-key order and that nothing is duplicated.
"""

import time

import pytest

from kafka_helpers import (
    check_exactly_once,
    check_key_order,
    confluent_conf,
    confluent_consume,
    confluent_produce,
    create_topic,
    high_watermarks,
    java_default_partition,
    make_records,
    unique,
)

PARTITIONS = 3
KEYS = [f"key-{i}" for i in range(30)]
PER_KEY = 20  # 600 records per case
PAYLOAD = b"x" * 200  # compressible, so codecs actually shrink batches

CONFLUENT_CASES = {
    "idempotent": {"enable.idempotence": True},
    "acks0": {"acks": 0},
    "acks1": {"acks": 1},
    "acks-all": {"acks": "all"},
    "gzip": {"enable.idempotence": True, "compression.type": "gzip"},
    "snappy": {"enable.idempotence": True, "compression.type": "snappy"},
    "lz4": {"enable.idempotence": True, "compression.type": "lz4"},
    "zstd": {"enable.idempotence": True, "compression.type": "zstd"},
}

KAFKA_PYTHON_CASES = {
    "default-idempotent": {},
    "acks0": {"acks": 0, "enable_idempotence": False},
    "acks1": {"acks": 1, "enable_idempotence": False},
    "gzip": {"compression_type": "gzip"},
    "snappy": {"compression_type": "snappy"},
    "lz4": {"compression_type": "lz4"},
    "zstd": {"compression_type": "zstd"},
}


def wait_high_watermarks(bootstrap, topic, partitions, total, timeout=10.0):
    """High watermarks once they add up to total. With acks=0 the producer's flush returns once
    the requests are written, before the broker has appended them (as with Kafka)."""
    deadline = time.time() + timeout
    while True:
        hws = high_watermarks(bootstrap, topic, partitions)
        if sum(hws) >= total or time.time() > deadline:
            assert sum(hws) == total, f"high watermarks {hws} != {total} records"
            return hws
        time.sleep(0.1)


def _headers_for(i):
    return [("n", str(i).encode()), ("kind", b"interop")] if i % 7 == 0 else None


# -- confluent-kafka -------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CONFLUENT_CASES))
def test_confluent_produce_consume_commit(kafka_bootstrap, server, case):
    from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = create_topic(kafka_bootstrap, unique(f"cf-{case}"), PARTITIONS)
    records = make_records(case, KEYS, PER_KEY, PAYLOAD)
    records = [(k, v, _headers_for(i)) for i, (k, v) in enumerate(records)]
    before = time.time()
    producer = Producer(confluent_conf(kafka_bootstrap, **{"linger.ms": 5}, **CONFLUENT_CASES[case]))
    delivered = confluent_produce(producer, topic, records)
    after = time.time()

    # librdkafka's default partitioner (consistent_random) is CRC32-based; only check it is stable.
    if CONFLUENT_CASES[case].get("acks") != 0:
        offsets = [(p, o) for p, o, _, _ in delivered]
        assert len(set(offsets)) == len(offsets), "two records acknowledged at the same offset"
        assert all(o >= 0 for _, o in offsets)
    hws = wait_high_watermarks(kafka_bootstrap, topic, PARTITIONS, len(records))

    group = unique(f"g-{case}")
    consumer = Consumer(
        confluent_conf(
            kafka_bootstrap,
            **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False},
        )
    )
    try:
        consumer.subscribe([topic])
        msgs = confluent_consume(consumer, len(records), timeout=30)
        assert len(msgs) == len(records), f"read {len(msgs)} of {len(records)}"
        extra = consumer.consume(num_messages=10, timeout=0.3)
        assert not [m for m in extra if not m.error()], "more records than were produced"

        check_exactly_once([m.value() for m in msgs], [v for _, v, _ in records])
        check_key_order([(m.partition(), m.offset(), m.key(), m.value()) for m in msgs])
        want_headers = {v: h for _, v, h in records}
        for m in msgs:
            assert m.key() == m.value().split(b"|")[1]
            assert (m.headers() or None) == want_headers[m.value()], f"headers of {m.value()[:30]}"
            ts_type, ts = m.timestamp()
            assert ts_type == TIMESTAMP_CREATE_TIME
            assert before - 5 <= ts / 1000 <= after + 5
        if CONFLUENT_CASES[case].get("acks") != 0:
            by_value = {v: (p, o) for p, o, _, v in delivered}
            for m in msgs:
                assert by_value[m.value()] == (m.partition(), m.offset()), "read offset != acknowledged offset"

        committed = consumer.commit(asynchronous=False)
        assert all(tp.error is None for tp in committed), committed
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        got = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        assert got == dict(enumerate(hws)), f"committed {got} != high watermarks {hws}"
        pos = {tp.partition: tp.offset for tp in consumer.position(tps)}
        assert pos == dict(enumerate(hws))
    finally:
        consumer.close()

    # The admin client sees the same committed offsets once the group is empty.
    admin = AdminClient(confluent_conf(kafka_bootstrap))
    from confluent_kafka import ConsumerGroupTopicPartitions

    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=10)
    offs = {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}
    assert offs == dict(enumerate(hws))
    server.assert_alive()


def test_confluent_murmur2_partitioner_matches_java(kafka_bootstrap):
    """partitioner=murmur2_random is Java's default: toPositive(murmur2(key)) % n."""
    from confluent_kafka import Producer

    topic = create_topic(kafka_bootstrap, unique("cf-murmur"), 4)
    records = make_records("m", [f"k{i}" for i in range(200)], 1)
    producer = Producer(confluent_conf(kafka_bootstrap, partitioner="murmur2_random"))
    delivered = confluent_produce(producer, topic, records)
    for p, _, key, _ in delivered:
        assert p == java_default_partition(key, 4), key


def test_confluent_null_key_and_empty_value(kafka_bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = create_topic(kafka_bootstrap, unique("cf-null"), 1)
    producer = Producer(confluent_conf(kafka_bootstrap, **{"enable.idempotence": True}))
    delivered = confluent_produce(producer, topic, [(None, b"no-key"), (b"k", b""), (b"k2", None)])
    assert [o for _, o, _, _ in delivered] == [0, 1, 2]
    c = Consumer(confluent_conf(kafka_bootstrap, **{"group.id": unique("g"), "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        msgs = confluent_consume(c, 3, timeout=15)
        assert [(m.key(), m.value()) for m in msgs] == [(None, b"no-key"), (b"k", b""), (b"k2", None)]
    finally:
        c.close()


# -- kafka-python ----------------------------------------------------------------------------


def _kp_create_topic(bootstrap, name, partitions):
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="strait-interop")
    try:
        res = admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}})
        assert [t["error_code"] for t in res["topics"]] == [0], res
        deadline = time.time() + 15
        while time.time() < deadline:
            desc = admin.describe_topics([name])
            if desc and desc[0]["error_code"] == 0 and len(desc[0]["partitions"]) == partitions:
                return name
            time.sleep(0.1)
        raise AssertionError(f"{name} not in metadata: {desc}")
    finally:
        admin.close()


@pytest.mark.parametrize("case", list(KAFKA_PYTHON_CASES))
def test_kafka_python_produce_consume_commit(kafka_bootstrap, server, case):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = _kp_create_topic(kafka_bootstrap, unique(f"kp-{case}"), PARTITIONS)
    records = make_records(case, KEYS, PER_KEY, PAYLOAD)
    headers = {v: _headers_for(i) for i, (_, v) in enumerate(records)}
    before = time.time()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5, **KAFKA_PYTHON_CASES[case])
    try:
        futures = [producer.send(topic, key=k, value=v, headers=headers[v]) for k, v in records]
        producer.flush(timeout=60)
        metas = [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)
    after = time.time()
    for (k, _), md in zip(records, metas):
        # kafka-python's default partitioner is Java's murmur2.
        assert md.partition == java_default_partition(k, PARTITIONS)
    if KAFKA_PYTHON_CASES[case].get("acks") != 0:
        offs = [(md.partition, md.offset) for md in metas]
        assert len(set(offs)) == len(offs) and all(o >= 0 for _, o in offs)

    group = unique(f"g-{case}")
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        heartbeat_interval_ms=500,
    )
    try:
        consumer.subscribe([topic])
        msgs = []
        deadline = time.time() + 30
        while len(msgs) < len(records) and time.time() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                msgs.extend(recs)
        assert len(msgs) == len(records), f"read {len(msgs)} of {len(records)}"
        assert not any(consumer.poll(timeout_ms=300).values()), "more records than were produced"
        check_exactly_once([m.value for m in msgs], [v for _, v in records])
        check_key_order([(m.partition, m.offset, m.key, m.value) for m in msgs])
        for m in msgs:
            assert (list(m.headers) or None) == headers[m.value]
            assert m.timestamp_type == 0  # CreateTime
            assert before - 5 <= m.timestamp / 1000 <= after + 5
        if KAFKA_PYTHON_CASES[case].get("acks") != 0:
            by_value = {v: (md.partition, md.offset) for (_, v), md in zip(records, metas)}
            for m in msgs:
                assert by_value[m.value] == (m.partition, m.offset)

        consumer.commit()
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(tps)
        assert sum(ends.values()) == len(records)
        for tp in tps:
            assert consumer.committed(tp) == ends[tp], f"{tp}: committed {consumer.committed(tp)} != end {ends[tp]}"
            assert consumer.position(tp) == ends[tp]
    finally:
        consumer.close(autocommit=False)
    server.assert_alive()
