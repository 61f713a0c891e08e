"""Issue 3 item 7: one stream, written and read through both protocols at once.

On a 4-partition topic created through Kafka (key hash kafka-murmur2): boto3 PutRecords writes
10,000 records over 100 keys while a Kafka producer writes 10,000 with the same keys (confluent-kafka
with partitioner=murmur2_random, which is Java's default; or kafka-python, whose default partitioner
is murmur2). A Kafka consumer group and boto3 GetRecords then each read all 20,000: every key's
records from both producers are in one partition, in per-producer order, and both protocols see the
same log in the same order.

Then again on a stream created through Kinesis (key hash kinesis-md5): there the Kafka producer picks
partitions itself with an MD5-range partitioner (kafka_helpers.Md5RangePartitioner, the example for
Kafka users: md5(utf8(key)) as an unsigned 128-bit big-endian integer, then the partition whose
HashKeyRange contains it) and passes partition= on each record.
"""

import threading
import time
from collections import defaultdict

import pytest

from helpers import all_shards, create_stream, read_shard
from kafka_helpers import (
    Md5RangePartitioner,
    check_exactly_once,
    check_key_order,
    confluent_admin,
    confluent_conf,
    confluent_produce,
    create_topic,
    even_ranges,
    java_default_partition,
    make_records,
    parse_value,
    unique,
    wait_topic,
)

PARTITIONS = 4
KEYS = [f"xkey-{i:03d}" for i in range(100)]
PER_KEY = 100  # 100 keys x 100 = 10,000 records per producer


def shard_index(shard_id):
    return int(shard_id.rsplit("-", 1)[1])


def kinesis_put_all(client, name, records, out):
    """PutRecords of 500 in order; out collects (key, value, shard index) per record."""
    for i in range(0, len(records), 500):
        chunk = records[i : i + 500]
        resp = client.put_records(
            StreamName=name, Records=[{"PartitionKey": k.decode(), "Data": v} for k, v in chunk]
        )
        assert resp["FailedRecordCount"] == 0, [r for r in resp["Records"] if "ErrorCode" in r][:3]
        for (k, v), r in zip(chunk, resp["Records"]):
            out.append((k, v, shard_index(r["ShardId"])))


def kafka_produce(family, bootstrap, topic, records, explicit_partition):
    """Returns [(key, value, partition)] from the producer's acknowledgements."""
    if family == "confluent":
        from confluent_kafka import Producer

        p = Producer(
            confluent_conf(
                bootstrap, **{"enable.idempotence": True, "partitioner": "murmur2_random", "linger.ms": 5}
            )
        )
        delivered = confluent_produce(p, topic, records, partition_of=explicit_partition)
        return [(k, v, part) for part, _, k, v in delivered]
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)  # idempotent, acks=all, murmur2
    try:
        futures = []
        for k, v in records:
            kw = {"partition": explicit_partition(k)} if explicit_partition else {}
            futures.append(p.send(topic, key=k, value=v, **kw))
        p.flush(timeout=60)
        return [(k, v, f.get(timeout=30).partition) for (k, v), f in zip(records, futures)]
    finally:
        p.close(timeout=10)


def kafka_consume_group(family, bootstrap, topic, want, timeout=60):
    """A consumer group reads `want` records from earliest and commits. Returns
    [(partition, offset, key, value, timestamp_ms)] and the committed offsets."""
    group = unique("g-cross")
    rows = []
    if family == "confluent":
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer(
            confluent_conf(
                bootstrap, **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
            )
        )
        try:
            c.subscribe([topic])
            deadline = time.time() + timeout
            while len(rows) < want and time.time() < deadline:
                for m in c.consume(num_messages=1000, timeout=0.5):
                    assert not m.error(), m.error()
                    rows.append((m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1]))
            c.commit(asynchronous=False)
            committed = {
                tp.partition: tp.offset
                for tp in c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
            }
        finally:
            c.close()
        return rows, committed
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        c.subscribe([topic])
        deadline = time.time() + timeout
        while len(rows) < want and time.time() < deadline:
            for recs in c.poll(timeout_ms=500, max_records=2000).values():
                rows.extend((r.partition, r.offset, r.key, r.value, r.timestamp) for r in recs)
        c.commit()
        committed = {p: c.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        c.close(autocommit=False)
    return rows, committed


@pytest.mark.slow
@pytest.mark.parametrize("family", ["confluent", "kafka-python"])
@pytest.mark.parametrize("origin", ["kafka-topic", "kinesis-stream"])
def test_cross_protocol_20k(server, strait_kafka, origin, family):
    kafka_bootstrap = strait_kafka
    client = server.client()
    name = unique(f"cross-{origin[:5]}-{family[:5]}")
    if origin == "kafka-topic":
        create_topic(kafka_bootstrap, name, PARTITIONS)
        part_of = lambda key: java_default_partition(key if isinstance(key, bytes) else key.encode(), PARTITIONS)
        explicit = None  # the producer's own murmur2 partitioner
    else:
        create_stream(client, name, PARTITIONS)
        wait_topic(confluent_admin(kafka_bootstrap), name, PARTITIONS)  # a Kinesis stream is a Kafka topic
        md5 = Md5RangePartitioner.from_list_shards(all_shards(client, name))
        assert md5.ranges == even_ranges(PARTITIONS)
        part_of = md5.partition
        explicit = md5.partition

    # The topic as Kinesis sees it: 4 open shards with hash ranges.
    shards = all_shards(client, name)
    assert [s["ShardId"] for s in shards] == [f"shardId-{i:012d}" for i in range(PARTITIONS)]

    kin_records = make_records("kinesis", KEYS, PER_KEY)
    kaf_records = make_records("kafka", KEYS, PER_KEY)
    # Both producers write at the same time, so their records interleave in every partition.
    kin_out = []
    kin_err = []

    def kinesis_writer():
        try:
            kinesis_put_all(server.client(fresh=True), name, kin_records, kin_out)
        except Exception as e:  # reported below
            kin_err.append(e)

    t0 = time.time()
    th = threading.Thread(target=kinesis_writer)
    th.start()
    kaf_out = kafka_produce(family, kafka_bootstrap, name, kaf_records, explicit)
    th.join(120)
    t1 = time.time()
    assert not th.is_alive() and not kin_err, kin_err
    assert len(kin_out) == len(kaf_out) == len(KEYS) * PER_KEY

    # Both producers put each key on the partition the stream's key hash gives it.
    for k, _, p in kin_out:
        assert p == part_of(k), f"Kinesis put key {k} on shard {p}, expected {part_of(k)}"
    for k, _, p in kaf_out:
        assert p == part_of(k), f"Kafka producer put key {k} on partition {p}, expected {part_of(k)}"

    produced = [v for _, v in kin_records] + [v for _, v in kaf_records]
    total = len(produced)

    # 1. A Kafka consumer group reads all 20,000.
    rows, committed = kafka_consume_group(family, kafka_bootstrap, name, total)
    assert len(rows) == total, f"Kafka group read {len(rows)} of {total}"
    check_exactly_once([r[3] for r in rows], produced)
    parts = check_key_order([r[:4] for r in rows])
    assert parts == {k: part_of(k) for k in KEYS}
    per_partition = defaultdict(list)
    for p, off, key, value, ts in sorted(rows, key=lambda r: (r[0], r[1])):
        per_partition[p].append(value)
        tag, k, _ = parse_value(value)
        assert key == k.encode(), f"Kafka key {key!r} for a record put with key {k}"
        assert t0 - 5 <= ts / 1000 <= t1 + 5, f"timestamp {ts} outside the write window"
    assert committed == {p: len(per_partition[p]) for p in range(PARTITIONS)}, committed

    # 2. boto3 GetRecords reads all 20,000, in the same order as the Kafka consumer.
    kin_rows = []
    for s in shards:
        recs, _ = read_shard(client, name, s["ShardId"], limit=10000)
        p = shard_index(s["ShardId"])
        assert [r["Data"] for r in recs] == per_partition[p], f"shard {p}: GetRecords order != Fetch order"
        for i, r in enumerate(recs):
            tag, k, _ = parse_value(r["Data"])
            assert r["PartitionKey"] == k, f"PartitionKey {r['PartitionKey']!r} for key {k} ({tag})"
            assert t0 - 5 <= r["ApproximateArrivalTimestamp"].timestamp() <= t1 + 5
            kin_rows.append((p, i, r["PartitionKey"].encode(), r["Data"]))
        seqs = [int(r["SequenceNumber"]) for r in recs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len(kin_rows) == total
    check_exactly_once([r[3] for r in kin_rows], produced)
    check_key_order(kin_rows)
    server.assert_alive()


def test_cross_protocol_field_mapping(server, strait_kafka):
    kafka_bootstrap = strait_kafka
    """Kinesis -> Kafka: key = PartitionKey, value = Data, ExplicitHashKey in header kinesis.ehk.
    Kafka -> Kinesis: PartitionKey = key; a null key reads as the partition number."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    client = server.client()
    name = unique("cross-map")
    create_topic(kafka_bootstrap, name, 2)
    ehk = str(2**127 + 12345)  # upper half: partition 1 of 2 by hash range
    client.put_record(StreamName=name, PartitionKey="pk-ehk", Data=b"with-ehk", ExplicitHashKey=ehk)
    r = client.put_record(StreamName=name, PartitionKey="pk-plain", Data=b"plain")
    p = Producer(confluent_conf(kafka_bootstrap))
    confluent_produce(p, name, [(None, b"null-key-0")], partition_of=lambda k: 0)
    confluent_produce(p, name, [(None, b"null-key-1")], partition_of=lambda k: 1)

    c = Consumer(confluent_conf(kafka_bootstrap, **{"group.id": unique("g"), "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(name, 0, 0), TopicPartition(name, 1, 0)])
        msgs = []
        deadline = time.time() + 15
        while len(msgs) < 4 and time.time() < deadline:
            msgs += [m for m in c.consume(10, 0.5) if not m.error()]
    finally:
        c.close()
    by_value = {m.value(): m for m in msgs}
    assert set(by_value) == {b"with-ehk", b"plain", b"null-key-0", b"null-key-1"}
    m = by_value[b"with-ehk"]
    assert m.key() == b"pk-ehk"
    assert dict(m.headers() or []).get("kinesis.ehk") == ehk.encode()
    m = by_value[b"plain"]
    assert m.key() == b"pk-plain" and not m.headers()
    assert m.partition() == shard_index(r["ShardId"])

    seen = {}
    for s in all_shards(client, name):
        recs, _ = read_shard(client, name, s["ShardId"])
        for rec in recs:
            seen[rec["Data"]] = (shard_index(s["ShardId"]), rec["PartitionKey"])
    assert seen[b"null-key-0"] == (0, "0")
    assert seen[b"null-key-1"] == (1, "1")
    assert seen[b"with-ehk"] == (1, "pk-ehk")
