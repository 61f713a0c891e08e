"""backend.kafka.topic_prefix, checked from both sides: a strait whose prefix is TOPIC_PREFIX
(STRAIT_KAFKA, STRAIT_ENDPOINT) and the real broker behind it (KAFKA_BOOTSTRAP). Clients of
strait see topic "x" where the broker holds "<prefix>x", never see topics outside the prefix,
and Kinesis streams are the prefix's topics.

Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero if any failed.
"""

import os
import socket
import struct
import sys
import time
import urllib.request
import uuid

import boto3
from botocore.config import Config
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ResourcePatternType, ResourceType)
from harness import check, finish, require, wait_for
from checks import consume_all, create_topic, header, produce, raw_exchange

STRAIT = os.environ["STRAIT_KAFKA"]
BROKER = os.environ["KAFKA_BOOTSTRAP"]
PREFIX = os.environ["TOPIC_PREFIX"]
RUN = uuid.uuid4().hex[:8]
K = boto3.client("kinesis", endpoint_url=os.environ["STRAIT_ENDPOINT"], region_name="us-east-1",
                 aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                 config=Config(retries={"max_attempts": 1}, read_timeout=60))


def topics(bootstrap):
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15).topics)


def configs(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return {k: v.value for k, v in admin.describe_configs([res])[res].result(30).items()}


def topics_made_through_strait_carry_the_prefix():
    name = f"pc-made-{RUN}"
    create_topic(STRAIT, name, 2)
    direct = topics(BROKER)
    require(PREFIX + name in direct and name not in direct, f"broker holds {sorted(direct)}")
    via = topics(STRAIT)
    require(name in via, f"strait lists {sorted(via)}")
    # Only the prefix's topics, under their short names: no internal topic, nothing outside.
    require(all(PREFIX + t in direct for t in via),
            f"strait lists topics the prefix does not hold: {sorted(t for t in via if PREFIX + t not in direct)}")
    require("__consumer_offsets" not in via, "the cluster's internal topics are visible")
    require(PREFIX + "__strait_meta" in direct, "the metadata topic is not under the prefix")


def topics_outside_the_prefix_are_out_of_reach():
    outside = f"pc-outside-{RUN}"
    create_topic(BROKER, outside, 1)
    produce(BROKER, outside, [(0, b"k", b"outside", [], None)])
    require(outside not in topics(STRAIT), "a topic outside the prefix is listed")
    # Named through strait, it is "<prefix>pc-outside-…", which does not exist.
    admin = AdminClient({"bootstrap.servers": STRAIT})
    res = ConfigResource(ConfigResource.Type.TOPIC, outside)
    try:
        admin.describe_configs([res])[res].result(30)
        raise AssertionError("describing a topic outside the prefix succeeded")
    except KafkaException as e:
        require(e.args[0].name() == "UNKNOWN_TOPIC_OR_PART", f"error {e.args[0]}")
    fs = admin.delete_topics([outside], operation_timeout=10)
    try:
        fs[outside].result(30)
        raise AssertionError("deleting a topic outside the prefix succeeded")
    except KafkaException as e:
        require(e.args[0].name() == "UNKNOWN_TOPIC_OR_PART", f"error {e.args[0]}")
    require(outside in topics(BROKER), "the topic outside the prefix is gone")


def records_cross_the_prefix_both_ways():
    name = f"pc-both-{RUN}"
    create_topic(BROKER, PREFIX + name, 2)
    now = int(time.time() * 1000) - 5000
    via = [(i % 2, f"k{i}".encode(), f"v{i}".encode(), [("h", f"x{i}".encode())], now + i)
           for i in range(100)]
    direct = [(i % 2, f"d{i}".encode(), f"w{i}".encode(), [("h", b"direct")], now + 500 + i)
              for i in range(50)]
    produce(STRAIT, name, via)
    produce(BROKER, PREFIX + name, direct)
    want = {(p, k, v, tuple(h), ts) for p, k, v, h, ts in via + direct}
    for side, bootstrap, topic in (("the broker", BROKER, PREFIX + name), ("strait", STRAIT, name)):
        got = consume_all(bootstrap, topic, 2, len(want))
        seen = {(m.partition(), m.key(), m.value(), tuple(m.headers() or []), m.timestamp()[1])
                for m in got}
        require(seen == want, f"reading {side}: {len(seen)} of {len(want)} match")
        require({m.topic() for m in got} == {topic}, f"{side} named {({m.topic() for m in got})}")
    # strait counted what passed through it under the client's name, never the cluster's.
    metrics = urllib.request.urlopen(f"http://{os.environ['STRAIT_ADMIN']}/metrics", timeout=10).read().decode()
    def count(series):
        return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith(series + "{") and f'stream="{name}"' in line and 'protocol="kafka"' in line)
    require(count("strait_records_in_total") == len(via), f"records in: {count('strait_records_in_total')}")
    require(count("strait_records_out_total") >= len(want), f"records out: {count('strait_records_out_total')}")
    require(f'stream="{PREFIX}{name}"' not in metrics, "a series under the cluster's name")


def group_offsets_are_the_cluster_s():
    name, group = f"pc-group-{RUN}", f"pc-g-{RUN}"
    create_topic(STRAIT, name, 2)
    produce(STRAIT, name, [(i % 2, None, f"r{i}".encode(), [], None) for i in range(10)])
    c = Consumer({"bootstrap.servers": STRAIT, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.subscribe([name])
    got, deadline = 0, time.time() + 30
    while got < 10 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    require(got == 10, f"consumed {got} of 10 through strait")
    c.commit(asynchronous=False)

    # The classic group's subscription and assignment as each side sees them (the broker
    # keeps its own names: it reads subscriptions to decide which offsets a group still needs).
    def assigned(bootstrap):
        admin = AdminClient({"bootstrap.servers": bootstrap})
        d = admin.describe_consumer_groups([group])[group].result(30)
        return {tp.topic for m in d.members for tp in m.assignment.topic_partitions}
    require(assigned(BROKER) == {PREFIX + name}, f"the broker's view: {assigned(BROKER)}")
    require(assigned(STRAIT) == {name}, f"strait's view: {assigned(STRAIT)}")
    c.close()

    def offsets(bootstrap):
        from confluent_kafka import ConsumerGroupTopicPartitions
        admin = AdminClient({"bootstrap.servers": bootstrap})
        f = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
        return {(tp.topic, tp.partition): tp.offset for tp in f.result(30).topic_partitions}
    direct = offsets(BROKER)
    require(set(t for t, _ in direct) == {PREFIX + name} and sum(direct.values()) == 10,
            f"the broker holds {direct}")
    via = offsets(STRAIT)
    require(via == {(name, p): o for (_, p), o in direct.items()}, f"strait shows {via}")


def kinesis_streams_are_the_prefix_s_topics():
    stream = f"pc-kin-{RUN}"
    K.create_stream(StreamName=stream, ShardCount=2)
    wait_for(lambda: K.describe_stream_summary(StreamName=stream)
             ["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", 20, "ACTIVE")
    md = AdminClient({"bootstrap.servers": BROKER}).list_topics(PREFIX + stream, timeout=15)
    require(len(md.topics[PREFIX + stream].partitions) == 2, "the topic is not <prefix><stream>")
    require(stream not in topics(BROKER), "a topic without the prefix was made")
    K.put_records(StreamName=stream, Records=[
        {"Data": f"rec{i}".encode(), "PartitionKey": f"pk{i}"} for i in range(20)])
    for bootstrap, topic in ((BROKER, PREFIX + stream), (STRAIT, stream)):
        got = consume_all(bootstrap, topic, 2, 20)
        require(sorted(m.value() for m in got) == sorted(f"rec{i}".encode() for i in range(20)),
                f"read {len(got)} from {topic}")
    # Kafka-made topics in the prefix are streams under their short names (adopted within the
    # catalog's 5 s refresh); others are not.
    def names():
        return set(K.list_streams(Limit=1000)["StreamNames"])
    wait_for(lambda: {stream, f"pc-made-{RUN}"} <= names(), 15, "the Kafka-made topic adopted")
    names = names()
    require(f"pc-outside-{RUN}" not in names and "__strait_meta" not in names,
            f"ListStreams shows topics it must not: {sorted(names)}")
    K.delete_stream(StreamName=stream)
    wait_for(lambda: PREFIX + stream not in topics(BROKER), 20, "the topic deleted")


def configs_are_read_and_changed_by_short_name():
    name = f"pc-made-{RUN}"
    admin = AdminClient({"bootstrap.servers": STRAIT})
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "7200000",
                    incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(30)
    require(configs(BROKER, PREFIX + name)["retention.ms"] == "7200000", "not changed on the broker")
    require(configs(STRAIT, name)["retention.ms"] == "7200000", "not read back through strait")
    # Broker resources are not topics and keep their names.
    bres = ConfigResource(ConfigResource.Type.BROKER, "1")
    require("log.dirs" in admin.describe_configs([bres])[bres].result(30), "broker configs")
    # Changing the broker's configs would change the cluster for everyone: refused.
    bset = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    try:
        admin.incremental_alter_configs([bset])[bset].result(30)
        raise AssertionError("a broker config change went through a prefixed strait")
    except KafkaException as e:
        require(e.args[0].name() == "POLICY_VIOLATION", f"error {e.args[0]}")


def regex_subscriptions_stay_inside_the_prefix():
    # KIP-848: the broker matches the regex, against the prefix's topics only. A topic outside
    # the prefix whose bare name matches must not be assigned.
    # Two regexes: librdkafka sends "(^a…)|(^b…)", anchors and all.
    base = f"pc-rx-{RUN}"
    for t in (PREFIX + base + "-a", PREFIX + base + "-b", base + "-a2"):
        create_topic(BROKER, t, 1)
        produce(BROKER, t, [(0, None, t.encode(), [], None)])
    c = Consumer({"bootstrap.servers": STRAIT, "group.id": f"pc-rx-{RUN}",
                  "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    c.subscribe([f"^{base}-a.*", f"^{base}-b.*"])
    seen, deadline = set(), time.time() + 45
    while time.time() < deadline and len(seen) < 2:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.add((m.topic(), m.value().decode()))
    time.sleep(2)  # anything from the outside topic would have come by now
    while (m := c.poll(0.2)) is not None:
        if not m.error():
            seen.add((m.topic(), m.value().decode()))
    c.close()
    want = {(base + "-a", PREFIX + base + "-a"), (base + "-b", PREFIX + base + "-b")}
    require(seen == want, f"got {sorted(seen)}")


def operator_apis_are_not_offered():
    frame = header(18, 0, 11)
    got = raw_exchange(struct.pack(">i", len(frame)) + frame)
    _, err, n = struct.unpack(">ihi", got[4:14])
    keys = {struct.unpack(">h", got[14 + 6 * i:16 + 6 * i])[0] for i in range(n)}
    require(err == 0 and {0, 1, 3, 8, 9, 11, 19, 22, 68}.issubset(keys), f"client APIs {sorted(keys)}")
    for k, what in ((29, "DescribeAcls"), (30, "CreateAcls"), (43, "ElectLeaders"),
                    (45, "AlterPartitionReassignments"), (48, "DescribeClientQuotas"),
                    (35, "DescribeLogDirs")):
        require(k not in keys, f"{what} is offered under a prefix")
    admin = AdminClient({"bootstrap.servers": STRAIT})
    acl = AclBinding(ResourceType.TOPIC, "x", ResourcePatternType.LITERAL, "User:a", "*",
                     AclOperation.READ, AclPermissionType.ALLOW)
    try:
        admin.create_acls([acl])[acl].result(30)
        raise AssertionError("CreateAcls succeeded through a prefixed strait")
    except KafkaException as e:
        require("not supported" in str(e).lower() or e.args[0].name() == "UNSUPPORTED_VERSION",
                f"error {e}")


def undecodable_requests_close_the_connection():
    # Under a prefix strait decodes requests that name topics. One it cannot decode closes the
    # connection after answering what came before it, and strait keeps serving; the broker
    # never sees it.
    good = header(3, 1, 41) + struct.pack(">i", 0)  # Metadata v1, no topics
    bad = header(3, 1, 42) + struct.pack(">i", 5) + b"\xff"  # Metadata v1: 5 topics, 1 byte
    s = socket.create_connection((STRAIT.rsplit(":", 1)[0], int(STRAIT.rsplit(":", 1)[1])), timeout=5)
    s.sendall(struct.pack(">i", len(good)) + good + struct.pack(">i", len(bad)) + bad)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except socket.timeout:
        raise AssertionError(f"the connection stayed open after {len(got)} bytes (a hang)")
    finally:
        s.close()
    require(len(got) >= 8 and struct.unpack(">i", got[4:8])[0] == 41,
            f"Metadata before a garbled one: answered {got[:16]!r}")
    require(len(got) == 4 + struct.unpack(">i", got[:4])[0], "more than one answer")
    # A version strait cannot re-encode is not offered, and is refused like an unknown one.
    frame = header(9, 10, 43) + b"\x00" * 16  # OffsetFetch v10
    require(raw_exchange(struct.pack(">i", len(frame)) + frame) == b"", "OffsetFetch v10 answered")
    md = AdminClient({"bootstrap.servers": STRAIT}).list_topics(timeout=10)
    require(len(md.brokers) >= 1, "strait stopped serving")


CHECKS = [
    ("topics made through strait are <prefix><name> on the broker; strait lists only the "
     "prefix's topics, by their short names", topics_made_through_strait_carry_the_prefix),
    ("a topic outside the prefix is not listed, described or deleted through strait",
     topics_outside_the_prefix_are_out_of_reach),
    ("records produced through strait and directly read the same from both sides, each under its "
     "own name", records_cross_the_prefix_both_ways),
    ("a group's offsets committed through strait are the broker's offsets on <prefix><name>; "
     "its classic subscription and assignment are in the broker's names there",
     group_offsets_are_the_cluster_s),
    ("a Kinesis stream is the topic <prefix><stream>; ListStreams shows the prefix's topics only",
     kinesis_streams_are_the_prefix_s_topics),
    ("topic configs are described and changed by the short name; broker configs are read but "
     "not changed (POLICY_VIOLATION)",
     configs_are_read_and_changed_by_short_name),
    ("KIP-848 regex subscriptions (two, as librdkafka sends them) match only topics inside the "
     "prefix",
     regex_subscriptions_stay_inside_the_prefix),
    ("operator APIs (ACLs, quotas, reassignments, log dirs) are not offered under a prefix",
     operator_apis_are_not_offered),
    ("a request strait cannot decode closes the connection after answering the one before it; "
     "OffsetFetch v10 (not decodable) is refused", undecodable_requests_close_the_connection),
]

if __name__ == "__main__":
    import faulthandler
    faulthandler.dump_traceback_later(300, exit=True)
    only = set(sys.argv[1:])
    for name, fn in CHECKS:
        if not only or fn.__name__ in only:
            check(name, fn)
    finish()
