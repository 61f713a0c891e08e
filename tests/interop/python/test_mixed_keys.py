"""Kafka producers on streams created through Kinesis (README, "Keys and partitions"). Such a
stream routes keys by MD5 hash ranges; librdkafka's murmur2 partitioner puts many keys elsewhere.
strait takes those writes (streams.key_check: off) but counts them per stream in
strait_kafka_key_partition_mismatch_total and logs the first from each producer; a stream created
with the tag strait:key-hash=kafka-murmur2 routes Kinesis writes as the Kafka producer does."""

import uuid

import pytest
from botocore.exceptions import ClientError
from confluent_kafka import Producer

from kafka_helpers import confluent_conf, java_default_partition, md5_hash_key
from metrics_helpers import scrape, total

KEYS = [f"customer-{i}" for i in range(40)]
METRIC = "strait_kafka_key_partition_mismatch_total"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(client, name, **extra):
    client.create_stream(StreamName=name, ShardCount=4, **extra)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})


def shard_index(shard_id):
    return int(shard_id.rsplit("-", 1)[1])


def md5_partition(client, name, key):
    for s in client.list_shards(StreamName=name)["Shards"]:
        r = s["HashKeyRange"]
        if int(r["StartingHashKey"]) <= md5_hash_key(key) <= int(r["EndingHashKey"]):
            return shard_index(s["ShardId"])
    raise AssertionError(f"no shard holds {key}")


def produce(bootstrap, topic, keys, partition_of=None):
    """Produces one record per key (librdkafka with Java's murmur2 partitioner unless
    partition_of names the partition); returns {key: partition}."""
    p = Producer(confluent_conf(bootstrap, partitioner="murmur2_random"))
    placed, errors = {}, []

    def done(err, msg):
        if err:
            errors.append(err)
        else:
            placed[msg.key().decode()] = msg.partition()

    for k in keys:
        extra = {} if partition_of is None else {"partition": partition_of(k)}
        p.produce(topic, b"v", key=k.encode(), on_delivery=done, **extra)
    assert p.flush(30) == 0 and not errors, errors
    return placed


def test_default_partitioner_writes_on_an_md5_stream_are_counted_and_logged_once(server, client, strait_kafka):
    if server.external:
        pytest.skip("reads the metrics and the log of a strait the suite started")
    name = unique("mixed-md5")
    create(client, name)
    placed = produce(strait_kafka, name, KEYS)
    assert all(placed[k] == java_default_partition(k.encode(), 4) for k in KEYS), placed
    elsewhere = [k for k in KEYS if placed[k] != md5_partition(client, name, k)]
    assert elsewhere, "every key's murmur2 partition matched its MD5 shard: the check proves nothing"
    assert total(scrape(server), METRIC, stream=name) == len(elsewhere)

    # The MD5-range partition for each key (what the Md5RangePartitioner does) counts nothing.
    produce(strait_kafka, name, KEYS, partition_of=lambda k: md5_partition(client, name, k))
    assert total(scrape(server), METRIC, stream=name) == len(elsewhere)
    # A second run of the murmur2 producer counts again, but is not logged again: librdkafka
    # without idempotence is one producer (id -1) to strait.
    produce(strait_kafka, name, KEYS)
    assert total(scrape(server), METRIC, stream=name) == 2 * len(elsewhere)
    warnings = [line for line in server.log_text().splitlines() if METRIC in line and name in line]
    assert len(warnings) == 1, warnings


def test_the_key_hash_tag_makes_kinesis_and_kafka_writers_agree(server, client, strait_kafka):
    name = unique("mixed-murmur2")
    create(client, name, Tags={"strait:key-hash": "kafka-murmur2"})
    placed = produce(strait_kafka, name, KEYS)
    for k in KEYS:
        shard = client.put_record(StreamName=name, PartitionKey=k, Data=b"k")["ShardId"]
        assert shard_index(shard) == placed[k], (k, shard, placed[k])
    tags = client.list_tags_for_stream(StreamName=name)["Tags"]
    assert {"Key": "strait:key-hash", "Value": "kafka-murmur2"} in tags
    if not server.external:
        assert total(scrape(server), METRIC, stream=name) == 0


@pytest.mark.parametrize(
    "new_stream, call",
    [
        (True, lambda c, n: c.create_stream(StreamName=n, ShardCount=1, Tags={"strait:key-hash": "sha1"})),
        (False, lambda c, n: c.add_tags_to_stream(StreamName=n, Tags={"strait:key-hash": "kafka-murmur2"})),
        (False, lambda c, n: c.remove_tags_from_stream(StreamName=n, TagKeys=["strait:key-hash"])),
    ],
    ids=["unknown-hash", "added-later", "removed-later"],
)
def test_the_key_hash_tag_is_checked_and_fixed_at_creation(server, client, new_stream, call):
    existing = unique("mixed-fixed")
    create(client, existing, Tags={"strait:key-hash": "kinesis-md5"})
    target = unique("mixed-bad") if new_stream else existing
    with pytest.raises(ClientError) as e:
        call(client, target)
    err = e.value.response["Error"]
    assert err["Code"] == "InvalidArgumentException", err
    assert "strait:key-hash" in err["Message"], err
    tags = client.list_tags_for_stream(StreamName=existing)["Tags"]
    assert {"Key": "strait:key-hash", "Value": "kinesis-md5"} in tags
    server.assert_alive()
