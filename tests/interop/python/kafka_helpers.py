"""Shared helpers for the Kafka-protocol suites (confluent-kafka, kafka-python, raw frames)."""

import hashlib
import time
import uuid

MAX_HASH = 2**128 - 1


def unique(prefix="kt"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- partitioners --------------------------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Java's org.apache.kafka.common.utils.Utils.murmur2 (signed 32-bit result)."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(length // 4):
        k = int.from_bytes(data[i * 4 : i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = length & ~3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_default_partition(key: bytes, partitions: int) -> int:
    """The partition Java's default partitioner picks for a keyed record: toPositive(murmur2) % n."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def md5_hash_key(key: str) -> int:
    return int.from_bytes(hashlib.md5(key.encode("utf-8")).digest(), "big")


def even_ranges(n):
    """[0, 2^128-1] split evenly over n partitions, as CreateStream does."""
    step = 2**128 // n
    return [(i * step, MAX_HASH if i == n - 1 else (i + 1) * step - 1) for i in range(n)]


class Md5RangePartitioner:
    """A Kafka partitioner for streams in kinesis-md5 mode: the partition whose Kinesis
    HashKeyRange contains md5(utf8(key)) read as an unsigned 128-bit big-endian integer.

    ranges: [(start, end)] indexed by partition (from ListShards, or even_ranges(n)).
    """

    def __init__(self, ranges):
        self.ranges = list(ranges)

    @classmethod
    def from_list_shards(cls, shards):
        open_shards = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
        by_index = sorted(open_shards, key=lambda s: int(s["ShardId"].rsplit("-", 1)[1]))
        return cls(
            (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in by_index
        )

    def partition(self, key):
        if isinstance(key, bytes):
            key = key.decode("utf-8")
        h = md5_hash_key(key)
        for i, (start, end) in enumerate(self.ranges):
            if start <= h <= end:
                return i
        raise AssertionError(f"hash {h} of key {key!r} in no range")


# -- confluent-kafka -------------------------------------------------------------------------


def confluent_conf(bootstrap, **extra):
    conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v4", "log_level": 3}
    conf.update(extra)
    return conf


def restart_tolerant_conf(bootstrap, **extra):
    """A librdkafka producer that rides through strait being killed and started again: quiet
    (every kill refuses connections for a moment), quick to reconnect and retry, and two
    minutes before it gives a record up."""
    conf = {
        "log_level": 0,
        "linger.ms": 2,
        "message.timeout.ms": 120000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 300,
        "retry.backoff.ms": 50,
    }
    conf.update(extra)
    return confluent_conf(bootstrap, **conf)


def read_topic_values(bootstrap, topic, partitions, timeout=60.0):
    """Every record value from offset 0 to the high watermarks ListOffsets gives now, and the
    sum of those watermarks (what a complete read returns)."""
    from confluent_kafka import Consumer, TopicPartition

    end = sum(high_watermarks(bootstrap, topic, partitions))
    c = Consumer(confluent_conf(bootstrap, **{"group.id": unique("read"), "enable.auto.commit": False}))
    got = []
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.time() + timeout
        while len(got) < end and time.time() < deadline:
            got += [m.value() for m in c.consume(1000, 0.5) if not m.error()]
    finally:
        c.close()
    return got, end


def confluent_admin(bootstrap):
    from confluent_kafka.admin import AdminClient

    return AdminClient(confluent_conf(bootstrap))


def create_topic(bootstrap, name, partitions, config=None):
    """CreateTopics through confluent-kafka's AdminClient; waits until Metadata shows it."""
    from confluent_kafka.admin import NewTopic

    admin = confluent_admin(bootstrap)
    fs = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})], operation_timeout=10)
    fs[name].result(timeout=15)
    wait_topic(admin, name, partitions)
    wait_leaders(bootstrap, name, partitions)
    return name


def wait_leaders(bootstrap, topic, partitions, timeout=15.0):
    """Until ListOffsets answers for every partition: Kafka may list a new topic in Metadata a
    moment before its leader takes requests (NOT_LEADER_OR_FOLLOWER meanwhile)."""
    from confluent_kafka import KafkaException

    deadline = time.time() + timeout
    while True:
        try:
            return watermarks(bootstrap, topic, partitions)
        except KafkaException:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def wait_topic(admin, name, partitions, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        md = admin.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} with {partitions} partitions not in metadata after {timeout}s")


def watermarks(bootstrap, topic, partitions):
    """[(low, high)] per partition, through ListOffsets (confluent-kafka)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(confluent_conf(bootstrap, **{"group.id": unique("wm"), "enable.auto.commit": False}))
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) for p in range(partitions)]
    finally:
        c.close()


def high_watermarks(bootstrap, topic, partitions):
    return [hw for _, hw in watermarks(bootstrap, topic, partitions)]


class Delivery:
    """Collects confluent-kafka delivery reports."""

    def __init__(self):
        self.ok = []
        self.errors = []

    def __call__(self, err, msg):
        if err is not None:
            self.errors.append((err, msg.key(), msg.value()))
        else:
            self.ok.append((msg.partition(), msg.offset(), msg.key(), msg.value()))


def confluent_produce(producer, topic, records, partition_of=None, timeout=60):
    """Produce [(key, value[, headers])], flush, assert every record was delivered.
    Returns the delivery reports [(partition, offset, key, value)]."""
    dr = Delivery()
    for rec in records:
        key, value = rec[0], rec[1]
        kw = {"key": key, "value": value, "on_delivery": dr}
        if len(rec) > 2 and rec[2]:
            kw["headers"] = rec[2]
        if partition_of is not None:
            kw["partition"] = partition_of(key)
        while True:
            try:
                producer.produce(topic, **kw)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(timeout)
    assert left == 0, f"{left} records still queued after {timeout}s"
    assert not dr.errors, f"{len(dr.errors)} delivery errors, first: {dr.errors[0]}"
    assert len(dr.ok) == len(records)
    return dr.ok


def confluent_consume(consumer, want, timeout=30.0, batch=500, on_batch=None):
    """consume() until `want` messages arrived (or timeout). Returns the messages.
    on_batch(msgs) is called after each non-empty batch (e.g. to commit them)."""
    got = []
    deadline = time.time() + timeout
    while len(got) < want and time.time() < deadline:
        msgs = consumer.consume(num_messages=batch, timeout=0.5)
        good = []
        for m in msgs:
            if m.error():
                raise AssertionError(f"consumer error: {m.error()}")
            good.append(m)
        if good:
            got.extend(good)
            if on_batch:
                on_batch(good)
    return got


def next_offsets(msgs):
    """The offsets to commit after processing msgs: {(topic, partition): last offset + 1}."""
    out = {}
    for m in msgs:
        k = (m.topic(), m.partition())
        out[k] = max(out.get(k, 0), m.offset() + 1)
    return out


def commit_sync(consumer, msgs):
    """Commit exactly the processed messages' next offsets, synchronously; raise on any error."""
    from confluent_kafka import TopicPartition

    offs = [TopicPartition(t, p, o) for (t, p), o in next_offsets(msgs).items()]
    res = consumer.commit(offsets=offs, asynchronous=False)
    bad = [tp for tp in res if tp.error is not None]
    assert not bad, f"commit failed: {bad}"
    return res


# -- record bookkeeping ----------------------------------------------------------------------


def make_records(tag, keys, per_key, payload=b""):
    """[(key bytes, value bytes)] round-robin over keys; value = b'tag|key|seq|' + payload."""
    out = []
    for seq in range(per_key):
        for k in keys:
            out.append((k.encode(), f"{tag}|{k}|{seq}|".encode() + payload))
    return out


def parse_value(value):
    tag, key, seq, _ = value.split(b"|", 3)
    return tag.decode(), key.decode(), int(seq)


def check_exactly_once(seen_values, produced_values):
    """seen_values: list of values read; produced_values: iterable of values written."""
    from collections import Counter

    counts = Counter(seen_values)
    dups = {v: c for v, c in counts.items() if c > 1}
    produced = set(produced_values)
    missing = produced - set(counts)
    extra = set(counts) - produced
    assert not dups, f"{len(dups)} records read more than once, e.g. {list(dups.items())[:3]}"
    assert not missing, f"{len(missing)} records never read, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} unexpected records, e.g. {sorted(extra)[:3]}"


def check_key_order(rows):
    """rows: [(partition, offset, key, value)] with value from make_records.
    Every key lives in one partition, and within it each producer's records are in seq order."""
    part_of = {}
    last = {}
    for p, off, key, value in sorted(rows, key=lambda r: (r[0], r[1])):
        tag, k, seq = parse_value(value)
        assert part_of.setdefault(k, p) == p, f"key {k} in partitions {part_of[k]} and {p}"
        prev = last.get((tag, k), -1)
        assert seq == prev + 1, f"key {k} from {tag}: seq {seq} after {prev} (partition {p} offset {off})"
        last[(tag, k)] = seq
    return part_of
