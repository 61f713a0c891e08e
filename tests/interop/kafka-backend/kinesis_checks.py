"""Kinesis clients on the Kafka backend, checked from both sides: boto3 through strait
(STRAIT_ENDPOINT) and Kafka clients straight on the broker (KAFKA_BOOTSTRAP). A second strait
replica (started here from STRAIT_BIN) checks that replicas share one catalog, iterators and
EFO registrations; the broker is killed and restarted under PutRecords load at the end
(kafka-broker.sh's functions, with the KAFKA_BROKER_* variables start_kafka_broker exported).

Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero if any failed.
"""

import os
import subprocess
import sys
import threading
import time
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from harness import check, finish, require, wait_for
from straits import Strait

ENDPOINT = os.environ["STRAIT_ENDPOINT"]
BROKER = os.environ["KAFKA_BOOTSTRAP"]
HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "..", "lib", "kafka-broker.sh")
RUN = uuid.uuid4().hex[:8]


def kinesis(endpoint=ENDPOINT, **conf):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 1}, read_timeout=120, **conf))


K = kinesis()


def wait_active(client, name, timeout=15):
    wait_for(lambda: client.describe_stream_summary(StreamName=name)
             ["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", timeout, f"{name} ACTIVE")


def topic_configs(topic):
    admin = AdminClient({"bootstrap.servers": BROKER})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([res])[res].result(30)
    return {k: v.value for k, v in entries.items()}


def partitions_of(topic):
    md = AdminClient({"bootstrap.servers": BROKER}).list_topics(topic, timeout=30)
    return len(md.topics[topic].partitions)


def consume_direct(topic, partitions, expect, timeout=30):
    c = Consumer({"bootstrap.servers": BROKER, "group.id": f"kk-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, deadline = [], time.time() + timeout
    while len(out) < expect and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append(m)
    c.close()
    return out


def read_shard(client, name, shard_id, kind="TRIM_HORIZON", limit=10000):
    it = client.get_shard_iterator(StreamName=name, ShardId=shard_id,
                                   ShardIteratorType=kind)["ShardIterator"]
    out = []
    for _ in range(50):
        r = client.get_records(ShardIterator=it, Limit=limit)
        out.extend(r["Records"])
        it = r.get("NextShardIterator")
        if not r["Records"] and r["MillisBehindLatest"] == 0:
            break
    return out


def read_to_end(client, name, shard_id, timeout=30):
    """A closed shard read from its start until it ends (no NextShardIterator): the data of
    its records and the last answer."""
    it = client.get_shard_iterator(StreamName=name, ShardId=shard_id,
                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        r = client.get_records(ShardIterator=it)
        seen += [x["Data"] for x in r["Records"]]
        it = r.get("NextShardIterator")
        if it is None:
            return seen, r
        time.sleep(0.2)
    require(False, f"{shard_id} of {name} never ended")


def read_stream(client, name):
    out = []
    for s in client.list_shards(StreamName=name)["Shards"]:
        out.extend((s["ShardId"], r) for r in read_shard(client, name, s["ShardId"]))
    return out


class Replica(Strait):
    """A second strait on the same cluster, with its own ports and data dir."""

    def __init__(self, **extra):
        super().__init__(STRAIT_BACKEND__TYPE="kafka", STRAIT_BACKEND__KAFKA__BOOTSTRAP=BROKER, **extra)
        self.client = kinesis(self.endpoint)


# ---------------------------------------------------------------------------------------------

def create_stream_makes_a_topic():
    name = f"kk-create-{RUN}"
    K.create_stream(StreamName=name, ShardCount=3)
    wait_active(K, name)
    require(partitions_of(name) == 3, f"{partitions_of(name)} partitions")
    conf = topic_configs(name)
    require(conf["retention.ms"] == str(24 * 3600 * 1000), f"retention.ms {conf['retention.ms']}")
    require(conf["message.timestamp.type"] == "LogAppendTime", conf["message.timestamp.type"])
    K.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    wait_for(lambda: topic_configs(name)["retention.ms"] == str(48 * 3600 * 1000), 10,
             "retention.ms to follow IncreaseStreamRetentionPeriod")
    K.update_shard_count(StreamName=name, TargetShardCount=6, ScalingType="UNIFORM_SCALING")
    wait_active(K, name)
    open_shards = [s for s in K.list_shards(StreamName=name)["Shards"]
                   if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    require(len(open_shards) == 6, f"{len(open_shards)} open shards")
    require(partitions_of(name) == 9, f"resharding 3 → 6 left {partitions_of(name)} partitions")
    K.delete_stream(StreamName=name)
    wait_for(lambda: name not in AdminClient({"bootstrap.servers": BROKER}).list_topics(timeout=10).topics,
             15, "DeleteStream to delete the topic")


def kinesis_writes_read_directly():
    name = f"kk-direct-{RUN}"
    K.create_stream(StreamName=name, ShardCount=2)
    wait_active(K, name)
    records = [{"Data": f"d{i}".encode(), "PartitionKey": f"pk{i}"} for i in range(100)]
    records[7]["ExplicitHashKey"] = str(2 ** 127 + 5)
    put = K.put_records(StreamName=name, Records=records)
    require(put["FailedRecordCount"] == 0, put)
    by_data = {r["Data"]: (out["ShardId"], out["SequenceNumber"])
               for r, out in zip(records, put["Records"])}
    read = read_stream(K, name)
    require(len(read) == 100, f"GetRecords read {len(read)}")
    arrival = {}
    for shard, r in read:
        require(by_data[r["Data"]] == (shard, r["SequenceNumber"]),
                f"{r['Data']}: read at {shard} {r['SequenceNumber']}, put said {by_data[r['Data']]}")
        arrival[r["Data"]] = int(r["ApproximateArrivalTimestamp"].timestamp() * 1000)
    got = consume_direct(name, 2, 100)
    require(len(got) == 100, f"a Kafka consumer on the broker read {len(got)}")
    for m in got:
        data = m.value()
        require(m.key() == b"pk" + data[1:], f"key {m.key()} for {data}")
        shard = by_data[data][0]
        require(m.partition() == int(shard.split("-")[1]), f"{data} in partition {m.partition()}, shard {shard}")
        ts_type, ts = m.timestamp()
        require(ts_type == 2, f"timestamp type {ts_type} (2 = LogAppendTime)")
        require(ts == arrival[data], f"{data}: Kafka timestamp {ts}, ApproximateArrivalTimestamp {arrival[data]}")
        headers = dict(m.headers() or [])
        if data == b"d7":
            require(headers.get("kinesis.ehk") == str(2 ** 127 + 5).encode(), f"EHK header {headers}")
        else:
            require("kinesis.ehk" not in headers, f"{data}: headers {headers}")


def kafka_topic_is_a_stream():
    name = f"kk-adopt-{RUN}"
    admin = AdminClient({"bootstrap.servers": BROKER})
    admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)])[name].result(30)
    # The Java client's default partitioner: murmur2 of the key.
    p = Producer({"bootstrap.servers": BROKER, "partitioner": "murmur2_random"})
    where = {}

    def done(err, msg):
        require(err is None, err)
        where[msg.key()] = msg.partition()
    for i in range(200):
        p.produce(name, key=f"key-{i}".encode(), value=f"value-{i}".encode(),
                  headers=[("h", b"x")], on_delivery=done)
    require(p.flush(30) == 0, "undelivered")
    wait_for(lambda: name in K.list_streams()["StreamNames"], 15, "the topic to appear as a stream")
    shards = K.list_shards(StreamName=name)["Shards"]
    require(len(shards) == 4, f"{len(shards)} shards")
    read = read_stream(K, name)
    require(len(read) == 200, f"boto3 read {len(read)}")
    for shard, r in read:
        key = r["PartitionKey"].encode()
        require(r["Data"] == b"value-" + key[4:], f"{key}: {r['Data']}")
        require(int(shard.split("-")[1]) == where[key], f"{key} read from {shard}, written to {where[key]}")
    # A Kinesis write with a key routes where the Java producer put that key.
    for key in (b"key-3", b"key-42", b"key-199"):
        out = K.put_record(StreamName=name, Data=b"again", PartitionKey=key.decode())
        require(int(out["ShardId"].split("-")[1]) == where[key], f"{key}: {out['ShardId']} vs {where[key]}")
    # Kafka grows the topic; the stream follows.
    from confluent_kafka.admin import NewPartitions
    admin.create_partitions([NewPartitions(name, 6)])[name].result(30)
    wait_for(lambda: len(K.list_shards(StreamName=name)["Shards"]) == 6, 15,
             "CreatePartitions on the broker to add shards")
    # And deleting the topic there forgets the stream.
    admin.delete_topics([name])[name].result(30)
    wait_for(lambda: name not in K.list_streams()["StreamNames"], 30,
             "a topic deleted on the broker to leave the stream list")


def pipelined_create_partitions_answers(topic):
    """Metadata v0 (forwarded) and CreatePartitions v0 on `topic` (answered by strait) in one
    write to strait's broker port; returns [(correlation id, CreatePartitions error code)]."""
    import socket
    import struct

    def frame(key, corr, body):
        head = struct.pack(">hhih", key, 0, corr, 2) + b"kc"
        return struct.pack(">i", len(head) + len(body)) + head + body
    name = topic.encode()
    metadata = frame(3, 1, struct.pack(">i", 0))
    create = frame(37, 2, struct.pack(">ih", 1, len(name)) + name + struct.pack(">iiib", 4, -1, 5000, 0))
    host, port = os.environ["STRAIT_KAFKA"].rsplit(":", 1)
    # The broker's own port (bootstrap + 1 + node id 1), where admin requests go.
    s = socket.create_connection((host, int(port) + 2), timeout=10)
    try:
        s.sendall(metadata + create)
        f = s.makefile("rb")
        out = []
        for _ in range(2):
            size = struct.unpack(">i", f.read(4))[0]
            body = f.read(size)
            corr = struct.unpack(">i", body[:4])[0]
            code = None
            if corr == 2:  # throttle, results count, name, error code
                n = struct.unpack(">h", body[12:14])[0]
                code = struct.unpack(">h", body[14 + n:16 + n])[0]
            out.append((corr, code))
        return out
    finally:
        s.close()


def create_partitions_through_strait_spares_md5_streams():
    """CreatePartitions from a Kafka client through strait's port: refused with POLICY_VIOLATION on
    a Kinesis stream's topic (its keys route by MD5 hash ranges), forwarded for a murmur2 topic."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewPartitions
    md5 = f"kk-md5-{RUN}"
    K.create_stream(StreamName=md5, ShardCount=2)
    wait_active(K, md5)
    plain = f"kk-plain-{RUN}"
    direct = AdminClient({"bootstrap.servers": BROKER})
    direct.create_topics([NewTopic(plain, num_partitions=2, replication_factor=1)])[plain].result(30)
    wait_for(lambda: plain in K.list_streams()["StreamNames"], 15, "the broker's topic to appear as a stream")
    via = AdminClient({"bootstrap.servers": os.environ["STRAIT_KAFKA"]})
    try:
        via.create_partitions([NewPartitions(md5, 4)])[md5].result(30)
        require(False, "CreatePartitions on a kinesis-md5 stream's topic succeeded")
    except KafkaException as e:
        err = e.args[0]
        require(err.code() == KafkaError.POLICY_VIOLATION, f"got {err}")
        require("UpdateShardCount" in err.str(), f"message: {err.str()}")
    require(partitions_of(md5) == 2, f"{md5} has {partitions_of(md5)} partitions on the broker")
    require(len(K.list_shards(StreamName=md5)["Shards"]) == 2, "the stream's shards changed")
    # Both in one request: neither changes.
    fs = via.create_partitions([NewPartitions(md5, 4), NewPartitions(plain, 4)])
    for name, code in ((md5, KafkaError.POLICY_VIOLATION), (plain, KafkaError.INVALID_REQUEST)):
        try:
            fs[name].result(30)
            require(False, f"{name} changed in a request that also named {md5}")
        except KafkaException as e:
            require(e.args[0].code() == code, f"{name}: {e.args[0]}")
    require(partitions_of(plain) == 2, f"{plain} changed")
    # Pipelined behind a forwarded request in one segment, the local answer still comes, in order
    # (the forwarded request must not wait in strait's buffer for a next one).
    require(pipelined_create_partitions_answers(md5) == [(1, None), (2, 44)], "pipelined answers")
    # A murmur2 topic on its own is forwarded to the broker.
    via.create_partitions([NewPartitions(plain, 3)])[plain].result(30)
    require(partitions_of(plain) == 3, f"{plain} has {partitions_of(plain)} partitions")
    K.delete_stream(StreamName=md5)


def aborted_kafka_transactions_are_invisible():
    name = f"kk-txn-{RUN}"
    admin = AdminClient({"bootstrap.servers": BROKER})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(30)
    p = Producer({"bootstrap.servers": BROKER, "transactional.id": f"kk-txn-{RUN}", "log_level": 3})
    p.init_transactions(30)

    def txn(prefix, n, commit):
        p.begin_transaction()
        for i in range(n):
            p.produce(name, key=b"k", value=f"{prefix}{i}".encode())
        (p.commit_transaction if commit else p.abort_transaction)(30)
    txn("c", 10, True)
    txn("a", 10, False)
    txn("d", 10, True)
    txn("tail", 5, False)  # the newest records belong to an aborted transaction
    wait_for(lambda: name in K.list_streams()["StreamNames"], 15, "the topic to appear as a stream")
    shard = K.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = K.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    seen = []
    for _ in range(20):
        r = K.get_records(ShardIterator=it, Limit=7)
        seen += [x["Data"].decode() for x in r["Records"]]
        it = r["NextShardIterator"]
        if not r["Records"] and r["MillisBehindLatest"] == 0:
            break
    want = [f"c{i}" for i in range(10)] + [f"d{i}" for i in range(10)]
    require(seen == want, f"read {seen}")
    # The iterator is past the aborted tail: the next committed record is the next one read.
    txn("e", 1, True)
    p.flush(10)
    # EndTxn returns once the commit is decided; the broker writes the partition's marker (which
    # moves the last stable offset) just after, so the record may take a moment to be readable.
    got = []
    deadline = time.time() + 10
    while not got and time.time() < deadline:
        r = K.get_records(ShardIterator=it)
        got = [x["Data"] for x in r["Records"]]
        it = r["NextShardIterator"]
        if not got:
            time.sleep(0.2)
    require(got == [b"e0"], f"after the aborted tail: {got}")
    admin.delete_topics([name])[name].result(30)


def a_late_write_to_a_split_parent_is_read():
    # A replica that has not yet heard of a split may still append to the parent; a Kafka
    # producer writing to the parent's partition right after the split stands in for it.
    name = f"kk-late-{RUN}"
    K.create_stream(StreamName=name, ShardCount=1)
    wait_active(K, name)
    K.put_record(StreamName=name, Data=b"before", PartitionKey="k")
    parent = K.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    K.split_shard(StreamName=name, ShardToSplit=parent, NewStartingHashKey=str(2 ** 127))
    wait_active(K, name)
    p = Producer({"bootstrap.servers": BROKER})
    p.produce(name, partition=0, key=b"k", value=b"late")
    require(p.flush(10) == 0, "undelivered")
    seen, last = read_to_end(K, name, parent)
    require(len(last.get("ChildShards", [])) == 2, f"child shards {last.get('ChildShards')}")
    require(seen == [b"before", b"late"], f"parent read {seen}")


def a_stale_replicas_write_after_the_seal_is_read_once():
    # B is stopped (SIGSTOP) while A splits the shard and the parent is sealed and read to its
    # end; B then takes writes before it has heard of the split. Whatever B acknowledges must
    # be read exactly once by a reader that already finished the parent.
    import signal
    b = Replica()
    try:
        name = f"kk-stale-{RUN}"
        K.create_stream(StreamName=name, ShardCount=1)
        wait_active(K, name)
        wait_for(lambda: b.client.describe_stream_summary(StreamName=name), 10, "B to see A's stream")
        b.client.put_record(StreamName=name, Data=b"b-before", PartitionKey="k0")
        parent = K.list_shards(StreamName=name)["Shards"][0]["ShardId"]
        b.proc.send_signal(signal.SIGSTOP)
        try:
            K.split_shard(StreamName=name, ShardToSplit=parent, NewStartingHashKey=str(2 ** 127))
            seen, _ = read_to_end(K, name, parent)
            # Writes sent to B while it cannot yet know of the split.
            acked, threads = [], []

            def put(i):
                try:
                    r = kinesis(b.endpoint).put_record(StreamName=name, Data=f"b-late-{i}".encode(),
                                                       PartitionKey=f"k{i}")
                    acked.append((f"b-late-{i}".encode(), r["ShardId"]))
                except ClientError as e:
                    acked.append((None, e.response["Error"]["Code"]))
            for i in range(8):
                threads.append(threading.Thread(target=put, args=(i,)))
                threads[-1].start()
            time.sleep(0.5)
        finally:
            b.proc.send_signal(signal.SIGCONT)
        for t in threads:
            t.join(60)
        children = [sh["ShardId"] for sh in K.list_shards(StreamName=name)["Shards"] if sh["ShardId"] != parent]
        for child in children:
            seen += [x["Data"] for x in read_shard(K, name, child)]
        wrote = [v for v, _ in acked if v is not None]
        require(len(wrote) == 8, f"B's answers: {acked}")
        missing = [v for v in wrote if v not in seen]
        require(not missing, f"acknowledged by B but never read: {missing} (B answered {acked})")
        dup = [v for v in set(seen) if seen.count(v) > 1]
        require(not dup, f"read twice: {dup}")
        b.log.seek(0)
        moved = b.log.read().count("writes landed in a sealed parent")
        print(f"  # B's shards for its 8 writes: {sorted(sh for _, sh in acked)}; rewrites to children: {moved}", flush=True)
    finally:
        b.proc.send_signal(signal.SIGCONT)
        b.stop()


def two_replicas_share_the_catalog():
    b = Replica()
    try:
        name = f"kk-replicas-{RUN}"
        K.create_stream(StreamName=name, ShardCount=2)
        wait_active(K, name)
        wait_for(lambda: b.client.describe_stream_summary(StreamName=name), 10, "B to see A's stream")
        K.add_tags_to_stream(StreamName=name, Tags={"team": "a"})
        wait_for(lambda: b.client.list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "team", "Value": "a"}],
                 10, "B to see A's tags")
        out = K.put_records(StreamName=name, Records=[{"Data": f"r{i}".encode(), "PartitionKey": "same"} for i in range(10)])
        shard = out["Records"][0]["ShardId"]
        it = K.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got = b.client.get_records(ShardIterator=it)
        require([r["SequenceNumber"] for r in got["Records"]] == [r["SequenceNumber"] for r in out["Records"]],
                "B read different sequence numbers with A's iterator")
        b.client.put_record(StreamName=name, Data=b"from-b", PartitionKey="same")
        more = K.get_records(ShardIterator=got["NextShardIterator"])
        require([r["Data"] for r in more["Records"]] == [b"from-b"], f"A with B's iterator: {more['Records']}")
        arn = K.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        consumer = K.register_stream_consumer(StreamARN=arn, ConsumerName="c1")["Consumer"]["ConsumerARN"]
        wait_for(lambda: b.client.describe_stream_consumer(ConsumerARN=consumer)
                 ["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE", 20, "B to see A's consumer ACTIVE")
        sub = b.client.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard,
                                          StartingPosition={"Type": "TRIM_HORIZON"})
        seen = []
        for ev in sub["EventStream"]:
            seen.extend(r["Data"] for r in ev["SubscribeToShardEvent"]["Records"])
            if len(seen) >= 11:
                break
        require(seen == [f"r{i}".encode() for i in range(10)] + [b"from-b"], f"B's subscription: {seen}")
        # A third replica started now reads the catalog from the metadata topic.
        b.stop()
        c = Replica()
        try:
            summary = c.client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            require(summary["ConsumerCount"] == 1 and summary["OpenShardCount"] == 2, summary)
            require(c.client.list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "team", "Value": "a"}],
                    "tags lost")
            c.client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
            wait_for(lambda: name not in K.list_streams()["StreamNames"], 10, "A to see C's delete")
        finally:
            c.stop()
    finally:
        if b.proc.poll() is None:
            b.stop()


def retried(call, *args, **kw):
    """Runs a Kinesis change, again while another replica's change holds the catalog
    (ResourceInUseException); returns how many times it went again."""
    for again in range(50):
        try:
            call(*args, **kw)
            return again
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceInUseException":
                raise
            time.sleep(0.05)
    raise AssertionError(f"{call.__name__} never got through")


def concurrent_changes_on_two_replicas_are_serialised():
    b = Replica()
    try:
        name = f"kk-race-{RUN}"
        K.create_stream(StreamName=name, ShardCount=2)
        wait_active(K, name)
        wait_for(lambda: b.client.describe_stream_summary(StreamName=name), 10, "B to see A's stream")
        # Tags added at the same moment through both replicas: every acknowledged one stays.
        again = [0, 0]

        def tag(i, client, prefix):
            for n in range(12):
                again[i] += retried(client.add_tags_to_stream, StreamName=name, Tags={f"{prefix}{n}": "x"})
        threads = [threading.Thread(target=tag, args=(0, K, "a")), threading.Thread(target=tag, args=(1, b.client, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        want = {f"{p}{n}" for p in "ab" for n in range(12)}
        for client, who in ((K, "A"), (b.client, "B")):
            wait_for(lambda: {t["Key"] for t in client.list_tags_for_stream(StreamName=name)["Tags"]} == want,
                     10, f"{who} to list all 24 tags (has {sorted(t['Key'] for t in client.list_tags_for_stream(StreamName=name)['Tags'])})")
        # One shard split through both replicas at once: one split happens, the other is refused.
        shard = K.list_shards(StreamName=name)["Shards"][0]["ShardId"]
        results, gate = [None, None], threading.Barrier(2)

        def split(i, client):
            gate.wait()
            try:
                client.split_shard(StreamName=name, ShardToSplit=shard, NewStartingHashKey=str(2 ** 126 + i))
                results[i] = "ok"
            except ClientError as e:
                results[i] = e.response["Error"]["Code"]
        threads = [threading.Thread(target=split, args=(0, K)), threading.Thread(target=split, args=(1, b.client))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        require(sorted(results) in (["InvalidArgumentException", "ok"], ["ResourceInUseException", "ok"]),
                f"two splits of one shard: {results}")
        wait_active(K, name)
        shards = K.list_shards(StreamName=name)["Shards"]
        require(len(shards) == 4, f"shards after one split: {[s['ShardId'] for s in shards]}")
        wait_for(lambda: partitions_of(name) == 4, 10, "4 partitions on the broker")
        # A delete through A while B changes tags: the stream stays deleted.
        stop = threading.Event()

        def keep_tagging():
            n = 0
            while not stop.is_set():
                try:
                    b.client.add_tags_to_stream(StreamName=name, Tags={f"late{n}": "x"})
                except ClientError:
                    pass
                n += 1
        t = threading.Thread(target=keep_tagging)
        t.start()
        time.sleep(0.3)
        retried(K.delete_stream, StreamName=name)
        time.sleep(2)
        stop.set()
        t.join(30)
        time.sleep(2)
        for client, who in ((K, "A"), (b.client, "B")):
            require(name not in client.list_streams()["StreamNames"], f"{who} lists the deleted stream again")
        print(f"  # tag changes that went again after another replica's change: {again}; splits: {results}", flush=True)
    finally:
        b.stop()


def bad_input_gets_kinesis_errors():
    def code_of(fn):
        try:
            fn()
        except ClientError as e:
            return e.response["Error"]["Code"], e.response["Error"]["Message"]
        return None, None
    # Kafka refuses names that collide with an existing one once '.' and '_' are equal.
    first = f"kk.collide-{RUN}"
    K.create_stream(StreamName=first, ShardCount=1)
    code, msg = code_of(lambda: K.create_stream(StreamName=first.replace(".", "_"), ShardCount=1))
    require(code == "InvalidArgumentException" and "InvalidTopicException" in msg, f"{code}: {msg}")
    code, _ = code_of(lambda: K.create_stream(StreamName=first, ShardCount=1))
    require(code == "ResourceInUseException", code)
    code, _ = code_of(lambda: K.put_record(StreamName=f"kk-none-{RUN}", Data=b"x", PartitionKey="k"))
    require(code == "ResourceNotFoundException", code)
    code, msg = code_of(lambda: K.create_stream(StreamName="..", ShardCount=1))
    require(code == "InvalidArgumentException", f"{code}: {msg}")
    K.delete_stream(StreamName=first)


def broker_restart_under_put_load_loses_nothing():
    name = f"kk-restart-{RUN}"
    K.create_stream(StreamName=name, ShardCount=3)
    wait_active(K, name)
    acked, failed, stop, calls = [], [], threading.Event(), [0]

    def load():
        client = kinesis()
        i = 0
        while not stop.is_set():
            batch = [{"Data": f"r{i + j}".encode(), "PartitionKey": f"k{(i + j) % 37}"} for j in range(50)]
            i += 50
            try:
                out = client.put_records(StreamName=name, Records=batch)
            except Exception as e:  # noqa: BLE001 - the whole call failed: nothing acknowledged
                failed.append(str(e))
                continue
            calls[0] += 1
            for rec, res in zip(batch, out["Records"]):
                (acked if "SequenceNumber" in res else failed).append(rec["Data"])
    t = threading.Thread(target=load)
    t.start()
    wait_for(lambda: len(acked) > 2000, 60, "2,000 acknowledged records before the outage")
    broker("kill_kafka_broker")
    time.sleep(3)
    before = len(acked)
    broker("restart_kafka_broker")
    wait_for(lambda: len(acked) > before + 2000, 120, "records acknowledged after the restart")
    stop.set()
    t.join(180)
    read = [r["Data"] for _, r in read_stream(K, name)]
    missing = set(acked) - set(read)
    require(not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:3]}")
    require(len(read) == len(set(read)), f"{len(read) - len(set(read))} duplicates")
    print(f"  # {len(acked)} acknowledged, {len(failed)} refused during the outage; "
          f"every acknowledged record read once", flush=True)


def the_pass_through_caps_its_ports_together():
    """limits.max_connections counts the bootstrap port and every broker port as one listener:
    before, each port had its own cap, so a client could hold (brokers + 1) times the cap, two
    descriptors each (its own and strait's to the broker)."""
    import socket

    r = Replica(STRAIT_LIMITS__MAX_CONNECTIONS="4")
    try:
        admin = AdminClient({"bootstrap.servers": r.kafka})
        brokers = admin.list_topics(timeout=20).brokers
        ports = sorted({b.port for b in brokers.values()})
        require(ports, "no broker in Metadata")
        del admin
        time.sleep(1)  # the admin client's connections close

        def connect(port):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.settimeout(2)
            return s

        def closed(s):
            try:
                return s.recv(1) == b""
            except socket.timeout:
                return False
            except OSError:
                return True

        bootstrap = int(r.kafka.rsplit(":", 1)[1])
        held = [connect(bootstrap), connect(bootstrap), connect(ports[0]), connect(ports[0])]
        time.sleep(0.5)
        require(not any(closed(s) for s in held), "a connection under the cap was closed")
        for port in (ports[0], bootstrap):
            extra = connect(port)
            require(closed(extra), f"a fifth connection (to port {port}) was kept: each port has its own cap")
            extra.close()
        for s in held:
            s.close()
        time.sleep(0.5)
        again = connect(ports[0])
        require(not closed(again), "a connection after the others left was refused")
        again.close()
    finally:
        r.stop()
    print(f"  # broker ports {ports}: 4 held over the bootstrap and a broker port, the fifth refused on either", flush=True)


def broker(fn):
    out = subprocess.run(["bash", "-c", f'source "{LIB}"; {fn}'], capture_output=True, text=True, timeout=120)
    require(out.returncode == 0, f"{fn}: {out.stdout[-500:]} {out.stderr[-500:]}")


CHECKS = [
    ("CreateStream makes a topic (partitions = shards, retention.ms, LogAppendTime); retention and "
     "resharding follow; DeleteStream deletes it", create_stream_makes_a_topic),
    ("Kinesis writes read by a Kafka consumer on the broker: key, value, LogAppendTime = "
     "ApproximateArrivalTimestamp, EHK header; sequence numbers equal on put and get", kinesis_writes_read_directly),
    ("a topic made on the broker is a kafka-murmur2 stream: boto3 reads it, routes keys as the Java "
     "producer does, follows CreatePartitions and deletion", kafka_topic_is_a_stream),
    ("CreatePartitions through strait's Kafka port: refused (POLICY_VIOLATION) on a Kinesis stream's "
     "topic, forwarded for a murmur2 topic", create_partitions_through_strait_spares_md5_streams),
    ("records of aborted Kafka transactions are not read by Kinesis clients, who read on past them",
     aborted_kafka_transactions_are_invisible),
    ("a record written to a parent shard just after its split is read before the parent ends",
     a_late_write_to_a_split_parent_is_read),
    ("a replica that had not heard of a split writes to the sealed parent: its acknowledged records "
     "are read once, after the parent ended", a_stale_replicas_write_after_the_seal_is_read_once),
    ("two replicas share streams, tags, iterators and EFO consumers; a new replica reads the "
     "catalog from the metadata topic", two_replicas_share_the_catalog),
    ("catalog changes through two replicas at once are serialised (tags added on both all stay, one "
     "shard split on both is split once, a delete is not undone)", concurrent_changes_on_two_replicas_are_serialised),
    ("bad input gets Kinesis errors (a name Kafka refuses, an existing and a missing stream)",
     bad_input_gets_kinesis_errors),
    ("kill -9 and restart of the broker under PutRecords load: every acknowledged record "
     "is stored exactly once", broker_restart_under_put_load_loses_nothing),
    ("limits.max_connections caps the pass-through's bootstrap and broker ports together",
     the_pass_through_caps_its_ports_together),
]

if __name__ == "__main__":
    import faulthandler
    faulthandler.dump_traceback_later(600, exit=True)
    only = set(sys.argv[1:])
    for title, fn in CHECKS:
        if not only or fn.__name__ in only:
            check(title, fn)
    finish()
