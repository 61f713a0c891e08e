"""Live migration onto the Kafka backend (issue 16), against the suite's real broker: a strait on
its embedded backend plays the Kinesis source, a second strait (Kafka backend, `migration.streams`)
mirrors one of its streams into the cluster. Checked from the cluster itself: every source record
once, in shard order, with its origin sequence number in the `kinesis.seq` header, across a
`kill -9` of the mirroring strait during a backlog; Kinesis clients of the mirroring strait reach
the source; Kafka producers through strait are refused with POLICY_VIOLATION; then the stream is
cut over (`strait migrate cutover`) while a producer writes through strait: every acknowledged
record once, sequence numbers rising across the cutover, a source position resolving to the
same record, Kafka producers accepted after it. KCL checkpoints (a lease table in moto's DynamoDB)
become a Kafka group's offsets with `strait migrate checkpoints`, and a group's offsets become
lease checkpoints with `--reverse`, before the cutover and after it.

Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero if any failed.
"""

import json
import logging
import os
import socket
import subprocess
import threading
import time
import urllib.request
import uuid

import hashlib
import sys

import boto3
from botocore.config import Config
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from harness import check, finish, require, wait_for
from moto.server import ThreadedMotoServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from efo_helpers import KPL_MAGIC, kpl_aggregate  # noqa: E402
from straits import BIN, REPO, Strait

BROKER = os.environ["KAFKA_BOOTSTRAP"]
STREAM = f"mig-{uuid.uuid4().hex[:8]}"


def kinesis(endpoint):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 3}, read_timeout=60))


def put(client, start, n):
    for i in range(start, start + n, 500):
        batch = [{"Data": f"rec-{j:06d}".encode() + b"x" * (j % 200), "PartitionKey": f"key-{j % 211}"}
                 for j in range(i, min(i + 500, start + n))]
        r = client.put_records(StreamName=STREAM, Records=batch)
        require(r["FailedRecordCount"] == 0, f"put failed: {r}")


def source_records(client):
    """shard id -> [(sequence number, key, data)] read from the source."""
    out = {}
    for s in client.list_shards(StreamName=STREAM)["Shards"]:
        it = client.get_shard_iterator(StreamName=STREAM, ShardId=s["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        recs = []
        while True:
            r = client.get_records(ShardIterator=it, Limit=10000)
            recs += [(x["SequenceNumber"], x["PartitionKey"], x["Data"]) for x in r["Records"]]
            it = r.get("NextShardIterator")
            if it is None or not r["Records"] and r["MillisBehindLatest"] == 0:
                break
        out[s["ShardId"]] = recs
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# DynamoDB for the KCL lease tables (its request log kept out of the suite's output).
logging.getLogger("werkzeug").setLevel(logging.ERROR)
MOTO_PORT = free_port()
MOTO = ThreadedMotoServer(ip_address="127.0.0.1", port=MOTO_PORT, verbose=False)
MOTO.start()
DDB_URL = f"http://127.0.0.1:{MOTO_PORT}"
DDB = boto3.client("dynamodb", endpoint_url=DDB_URL, region_name="us-east-1",
                   aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")


def lease_table(name, leases):
    """A KCL application's lease table as KCL 3 keeps it: shard id -> (checkpoint, sub)."""
    DDB.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}])
    for shard, (cp, sub) in leases.items():
        DDB.put_item(TableName=name, Item={
            "leaseKey": {"S": shard}, "checkpoint": {"S": cp}, "checkpointSubSequenceNumber": {"N": str(sub)},
            "leaseOwner": {"S": "worker-1"}, "leaseCounter": {"N": "7"},
            "ownerSwitchesSinceCheckpoint": {"N": "0"}})


def leases(name):
    return {i["leaseKey"]["S"]: (i["checkpoint"]["S"], i["checkpointSubSequenceNumber"]["N"],
                                 i.get("leaseOwner", {}).get("S"))
            for i in DDB.scan(TableName=name)["Items"]}


def migrate_checkpoints(table, group, *extra):
    return subprocess.run([BIN, "migrate", "checkpoints", "--config", os.path.join(REPO, "config", "strait.yaml"),
                           "--admin", target.admin, "--lease-table", table, "--stream", STREAM,
                           "--group", group, "--dynamodb-endpoint", DDB_URL, *extra],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret"))


def committed(group, partitions=(0, 1)):
    """partition -> the group's committed offset, read from the cluster."""
    c = Consumer({"bootstrap.servers": BROKER, "group.id": group, "enable.auto.commit": False})
    got = c.committed([TopicPartition(STREAM, p) for p in partitions], timeout=30)
    c.close()
    return {tp.partition: tp.offset for tp in got if tp.offset >= 0}


def commit(group, offsets):
    c = Consumer({"bootstrap.servers": BROKER, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(STREAM, p, o) for p, o in offsets.items()], asynchronous=False)
    c.close()


def first_read(group, partition):
    """The kinesis.seq header of the first record a member of `group` reads on `partition`."""
    c = Consumer({"bootstrap.servers": BROKER, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "error"})
    c.assign([TopicPartition(STREAM, partition)])
    deadline = time.time() + 30
    try:
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                return m.offset(), dict(m.headers() or []).get("kinesis.seq", b"").decode()
        require(False, f"{group} read nothing on partition {partition}")
    finally:
        c.close()


def kcl_checkpoints_and_group_offsets_while_mirroring():
    origin = source_records(SRC_CLIENT)
    s0, s1 = origin["shardId-000000000000"], origin["shardId-000000000001"]
    lease_table("kcl-app", {"shardId-000000000000": (s0[99][0], 0),
                            "shardId-000000000001": ("TRIM_HORIZON", 0)})
    out = migrate_checkpoints("kcl-app", "from-kcl")
    require(out.returncode == 0, f"checkpoints failed: {out.stderr}")
    require(committed("from-kcl") == {0: 100, 1: 0}, f"offsets {committed('from-kcl')}")
    require(first_read("from-kcl", 0) == (100, s0[100][0]), "the group does not start after the checkpoint")
    # Back: the group's offsets as checkpoints; shard 1 has no lease there yet and gets one.
    split = "shardId-000000000002" in origin  # the split check ran before: 1 -> 2, 3
    commit("to-kcl", {0: 250, 1: 10, **({2: 1} if split else {})})
    lease_table("kcl-back", {"shardId-000000000000": ("TRIM_HORIZON", 0)})
    out = migrate_checkpoints("kcl-back", "to-kcl", "--reverse")
    require(out.returncode == 0, f"--reverse failed: {out.stderr}")
    got = leases("kcl-back")
    require(got["shardId-000000000000"] == (s0[249][0], "0", "worker-1"), f"shard 0: {got}")
    require(got["shardId-000000000001"][:2] == (s1[9][0], "0"), f"shard 1: {got}")
    if split:
        # A lease made for a child names its parent and range, so KCL finishes the parent first.
        item = DDB.get_item(TableName="kcl-back", Key={"leaseKey": {"S": "shardId-000000000002"}})["Item"]
        require(item["parentShardId"]["SS"] == ["shardId-000000000001"], f"child lease {item}")
        require(item["checkpoint"]["S"] == origin["shardId-000000000002"][0][0], f"child lease {item}")
        require(item["startingHashKey"]["S"] == "170141183460469231731687303715884105728", f"{item}")
    # Bad input gets a reason and changes nothing.
    lease_table("kcl-bad", {"shardId-000000000000": ("garbage", 0)})
    out = migrate_checkpoints("kcl-bad", "bad-group")
    require(out.returncode != 0 and "not a KCL checkpoint" in out.stderr, f"{out.returncode} {out.stderr}")
    require(committed("bad-group") == {}, "a refused document committed something")
    out = migrate_checkpoints("no-such-table", "bad-group")
    require(out.returncode != 0 and "ResourceNotFoundException" in out.stderr, out.stderr)
    out = migrate_checkpoints("kcl-app", "nobody", "--reverse")
    require(out.returncode != 0 and "no committed offset" in out.stderr, out.stderr)


def kcl_checkpoints_after_the_cutover():
    served = source_records(dst())["shardId-000000000000"]
    n_origin = len(source_records(SRC_CLIENT)["shardId-000000000000"])
    require(len(served) > n_origin + 5, "too few records written after the cutover")
    own = served[n_origin + 5][0]
    lease_table("kcl-cut", {"shardId-000000000000": (own, 0),
                            "shardId-000000000001": ("TRIM_HORIZON", 0)})
    out = migrate_checkpoints("kcl-cut", "after-cut")
    require(out.returncode == 0, f"checkpoints failed: {out.stderr}")
    require(committed("after-cut")[0] == n_origin + 6, f"offsets {committed('after-cut')}")
    commit("after-cut", {0: n_origin + 6, 1: 0})
    out = migrate_checkpoints("kcl-cut", "after-cut", "--reverse")
    require(out.returncode == 0, f"--reverse failed: {out.stderr}")
    got = leases("kcl-cut")
    require(got["shardId-000000000000"][0] == own, f"strait's number does not come back: {got}")
    require(got["shardId-000000000001"][0] == "TRIM_HORIZON", f"shard 1: {got}")


def mirror_records(partitions, expect, timeout=60):
    """shard id -> [(kinesis.seq header, key, value)] read from the cluster directly."""
    c = Consumer({"bootstrap.servers": BROKER, "group.id": f"mig-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(STREAM, p, 0) for p in range(partitions)])
    out = {f"shardId-{p:012d}": [] for p in range(partitions)}
    n, deadline = 0, time.time() + timeout
    while n < expect and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        headers = dict(m.headers() or [])
        out[f"shardId-{m.partition():012d}"].append(
            (headers.get("kinesis.seq", b"").decode(), m.key().decode(), m.value()))
        n += 1
    # Anything beyond `expect` would be a duplicate: read a little longer to see it.
    end = time.time() + 2
    while time.time() < end:
        m = c.poll(0.2)
        if m is not None and not m.error():
            headers = dict(m.headers() or [])
            out[f"shardId-{m.partition():012d}"].append(
                (headers.get("kinesis.seq", b"").decode(), m.key().decode(), m.value()))
    c.close()
    return out


def status(target):
    with urllib.request.urlopen(target.admin + "/migration", timeout=10) as r:
        return json.loads(r.read())["streams"][0]


def wait_caught_up(target, want_total, timeout=90):
    def done():
        s = status(target)
        return s["state"] == "caught-up" and s["lag_records"] == 0 and \
            sum(len(v) for v in source_records(SRC_CLIENT).values()) >= want_total
    wait_for(done, timeout, f"{STREAM} caught up")


# The Kinesis source: strait's embedded backend, or (MIGRATION_SOURCE=moto) moto's server, so no
# one implementation's quirks become the mirror's behaviour.
SOURCE_KIND = os.environ.get("MIGRATION_SOURCE", "strait")
if SOURCE_KIND == "moto":
    source, SOURCE_URL = None, DDB_URL
elif SOURCE_KIND == "kinesalite":
    # bench/peers/install.sh puts it in .cache/bench-peers.
    port = free_port()
    source = subprocess.Popen(["node", os.path.join(REPO, ".cache", "bench-peers", "kinesalite-server.js"), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    SOURCE_URL = f"http://127.0.0.1:{port}"
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), 0.2).close() is None, 30, "kinesalite")
else:
    source = Strait(STRAIT_BACKEND__TYPE="embedded")
    SOURCE_URL = source.endpoint
print(f"source: {SOURCE_KIND} at {SOURCE_URL} (read by {'fan-out' if SOURCE_KIND == 'strait' else 'GetRecords'})",
      flush=True)
SRC_CLIENT = kinesis(SOURCE_URL)
SRC_CLIENT.create_stream(StreamName=STREAM, ShardCount=2)
wait_for(lambda: SRC_CLIENT.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamStatus"]
         == "ACTIVE", 30, "the source stream to be ACTIVE")
target = Strait(STRAIT_BACKEND__TYPE="kafka", STRAIT_BACKEND__KAFKA__BOOTSTRAP=BROKER,
                STRAIT_MIGRATION__STREAMS=STREAM, STRAIT_MIGRATION__SOURCE__ENDPOINT=SOURCE_URL,
                # moto speaks JSON only (asked in CBOR it fails, and strait falls back).
                STRAIT_MIGRATION__SOURCE__WIRE="json" if SOURCE_KIND == "moto" else "auto",
                # Of the sources only strait serves enhanced fan-out: the mirror reads it so; the
                # others by GetRecords.
                STRAIT_MIGRATION__SOURCE__READ="fan-out" if SOURCE_KIND == "strait" else "polling",
                STRAIT_MIGRATION__SOURCE__POLL_INTERVAL_MS="100",
                AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret")


def dst():
    """A client of the mirroring strait (its ports change when it is restarted)."""
    return kinesis(target.endpoint)


def compare(total):
    origin = source_records(SRC_CLIENT)
    require(sum(len(v) for v in origin.values()) == total, "source count")
    mirrored = mirror_records(len(origin), total)
    for shard, recs in origin.items():
        got = mirrored.get(shard, [])
        require(len(got) == len(recs), f"{shard}: {len(got)} mirrored, {len(recs)} on the source")
        if got != recs:
            first = next((a, b) for a, b in zip(got, recs) if a != b)
            require(False, f"{shard}: records differ (first: {first})")


def mirror_copies_in_order_with_origin_numbers():
    put(SRC_CLIENT, 0, 2000)
    wait_caught_up(target, 2000)
    compare(2000)


def kinesis_clients_reach_the_source():
    r = dst().put_record(StreamName=STREAM, Data=b"through-strait", PartitionKey="k")
    seq = r["SequenceNumber"]
    on_source = [x for v in source_records(SRC_CLIENT).values() for x in v]
    require(any(s == seq and d == b"through-strait" for s, _, d in on_source), "not on the source")
    require(source_records(dst()) == source_records(SRC_CLIENT), "reads through strait differ")
    wait_caught_up(target, 2001)
    compare(2001)


def kafka_producers_are_refused():
    errors = []
    p = Producer({"bootstrap.servers": target.kafka, "acks": "all", "retries": 0})
    p.produce(STREAM, key=b"k", value=b"v", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    require(len(errors) == 1 and errors[0] is not None, f"delivered: {errors}")
    require(errors[0].code() == KafkaError.POLICY_VIOLATION, f"got {errors[0]}")


def a_kill_during_a_backlog_loses_and_repeats_nothing():
    target.kill9()
    put(SRC_CLIENT, 10_000, 20_000)
    target.start()
    wait_for(lambda: status(target)["mirrored_records"] > 0, 60, "the mirror to start again")
    target.kill9()
    target.start()
    wait_caught_up(target, 22_001, timeout=120)
    compare(22_001)


AGGREGATES = []  # [(sequence number, [(key, data)])] put on the source's shard AGG_SHARD[0]
AGG_SHARD = []


def kpl_aggregates_are_split_in_the_cluster():
    upper = str(2 ** 127 + 5)  # shard 1's range, or its first child's once split
    for a in range(3):
        users = [(f"user-key-{a}-{i % 3}", f"agg{a}-user{i}".encode()) for i in range(5)]
        r = SRC_CLIENT.put_record(StreamName=STREAM, PartitionKey=users[0][0], ExplicitHashKey=upper,
                                  Data=kpl_aggregate(users))
        AGG_SHARD[:] = [r["ShardId"]]
        AGGREGATES.append((r["SequenceNumber"], users))
    shard = AGG_SHARD[0]
    partition = int(shard.rsplit("-", 1)[1])
    require(shard != "shardId-000000000000", "the aggregates went to shard 0")
    on_source = {s: d for s, _, d in source_records(SRC_CLIENT)[shard]}
    require(all(on_source[s].startswith(KPL_MAGIC) for s, _ in AGGREGATES), "the source split them")
    # In the cluster: one record per user record, with the aggregate's number and its index.
    want = [(seq, str(i), k, d) for seq, users in AGGREGATES for i, (k, d) in enumerate(users)]
    seqs = {seq for seq, _ in AGGREGATES}
    c = Consumer({"bootstrap.servers": BROKER, "group.id": f"agg-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(STREAM, partition, 0)])
    got, offsets, deadline = [], {}, time.time() + 60
    while len(got) < len(want) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        h = {k: v.decode() for k, v in (m.headers() or [])}
        if h.get("kinesis.seq") in seqs:
            got.append((h["kinesis.seq"], h.get("kinesis.subseq"), m.key().decode(), m.value()))
            offsets[(h["kinesis.seq"], h.get("kinesis.subseq"))] = m.offset()
    c.close()
    require(got == want, f"user records in the cluster: {got[:3]}... want {want[:3]}...")
    # A KCL checkpoint inside an aggregate: the group starts at the next user record.
    seq1 = AGGREGATES[1][0]
    lease_table("kcl-kpl", {shard: (seq1, 2)})
    out = migrate_checkpoints("kcl-kpl", "from-kpl")
    require(out.returncode == 0, f"checkpoints failed: {out.stderr}")
    require(committed("from-kpl", [partition]).get(partition) == offsets[(seq1, "3")],
            f"offsets {committed('from-kpl', [partition])}")


def kpl_aggregates_read_back_whole_after_the_cutover():
    """Through strait the user records come back as their aggregate (the same bytes as the
    source's here: the helper writes them as strait does), at the aggregate's number."""
    shard = AGG_SHARD[0]
    on_source = {s: d for s, _, d in source_records(SRC_CLIENT)[shard]}
    for seq, users in AGGREGATES:
        it = dst().get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                      ShardIteratorType="AT_SEQUENCE_NUMBER",
                                      StartingSequenceNumber=seq)["ShardIterator"]
        r = dst().get_records(ShardIterator=it, Limit=1)["Records"][0]
        require(r["SequenceNumber"] == seq, f"{r['SequenceNumber']} for {seq}")
        require(r["Data"] == on_source[seq], "the aggregate read back differs")
        require(r["PartitionKey"] == users[0][0], r["PartitionKey"])


def layout(client):
    return [(s["ShardId"], s.get("ParentShardId"), s.get("AdjacentParentShardId"), s["HashKeyRange"],
             "EndingSequenceNumber" in s["SequenceNumberRange"])
            for s in client.list_shards(StreamName=STREAM)["Shards"]]


def a_split_of_the_source_is_followed():
    # Through strait: forwarded to the source while the stream is mirrored.
    dst().split_shard(StreamName=STREAM, ShardToSplit="shardId-000000000001",
                      NewStartingHashKey=str(3 * 2 ** 126))
    put(SRC_CLIENT, 40_000, 3_000)
    total = sum(len(v) for v in source_records(SRC_CLIENT).values())
    require(len(source_records(SRC_CLIENT)) == 4, "the source was not split")
    wait_caught_up(target, total)
    wait_for(lambda: len(status(target)["shards"]) == 4, 30, "the children to be mirrored")
    compare(total)


def cutover_while_a_producer_writes():
    total_before = sum(len(v) for v in source_records(SRC_CLIENT).values())
    checkpoint = source_records(SRC_CLIENT)["shardId-000000000000"][99][0]
    stop, acked, slowest = threading.Event(), [], [0.0]

    def produce():
        client = dst()
        i = 500_000
        while not stop.is_set():
            recs = [{"Data": f"rec-{j:06d}".encode(), "PartitionKey": f"key-{j % 211}"} for j in range(i, i + 20)]
            t0 = time.time()
            r = client.put_records(StreamName=STREAM, Records=recs)
            slowest[0] = max(slowest[0], time.time() - t0)
            require(r["FailedRecordCount"] == 0, f"put failed: {r}")
            acked.extend(x["Data"] for x in recs)
            i += 20
            time.sleep(0.005)

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(0.5)
    out = subprocess.run([BIN, "migrate", "cutover", "--admin", target.admin, STREAM],
                         capture_output=True, text=True, timeout=120)
    time.sleep(0.5)
    stop.set()
    t.join(60)
    require(out.returncode == 0, f"cutover failed: {out.stderr}")
    st = status(target)
    require(st["state"] == "cut-over", f"state {st}")
    print(f"  cutover held writes {st.get('last_cutover_hold_ms')} ms; slowest PutRecords "
          f"{slowest[0] * 1000:.0f} ms; {len(acked)} records written through strait", flush=True)
    origin = source_records(SRC_CLIENT)
    served = source_records(dst())
    seen = set()
    for shard, recs in served.items():
        n = len(origin[shard])
        require(recs[:n] == origin[shard], f"{shard}: the source's records and numbers differ")
        seqs = [int(s) for s, _, _ in recs]
        require(all(a < b for a, b in zip(seqs, seqs[1:])), f"{shard}: sequence numbers do not rise")
        for _, _, d in recs:
            require(d not in seen, f"{d} twice")
            seen.add(d)
    missing = [d for d in acked if d not in seen]
    require(not missing, f"{len(missing)} acknowledged records missing, first {missing[:3]}")
    total = sum(len(v) for v in served.values())
    require(total > sum(len(v) for v in origin.values()) >= total_before, "nothing written after the cutover")
    require(layout(dst()) == layout(SRC_CLIENT), f"shards differ: {layout(dst())} vs {layout(SRC_CLIENT)}")
    require(len(mirror_records(len(served), total)["shardId-000000000000"]) == len(served["shardId-000000000000"]),
            "the cluster and the Kinesis view differ")
    it = dst().get_shard_iterator(StreamName=STREAM, ShardId="shardId-000000000000",
                                       ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                       StartingSequenceNumber=checkpoint)["ShardIterator"]
    first = dst().get_records(ShardIterator=it, Limit=1)["Records"][0]["SequenceNumber"]
    require(first == origin["shardId-000000000000"][100][0], "a source position resolves elsewhere")
    # The source's arrival times, not the broker's LogAppendTime of the copy.
    arrivals = {}
    for client in (SRC_CLIENT, dst()):
        it = client.get_shard_iterator(StreamName=STREAM, ShardId="shardId-000000000000",
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        recs = client.get_records(ShardIterator=it, Limit=200)["Records"]
        arrivals[client] = [(r["SequenceNumber"], r["ApproximateArrivalTimestamp"]) for r in recs]
    require(arrivals[SRC_CLIENT] == list(arrivals.values())[1], "arrival times differ from the source's")
    errors = []
    p = Producer({"bootstrap.servers": target.kafka, "acks": "all"})
    p.produce(STREAM, key=b"k", value=b"v", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    require(errors == [None], f"Kafka produce after the cutover: {errors}")


check("the mirror copies every record once, in shard order, with its origin sequence number",
      mirror_copies_in_order_with_origin_numbers)
check("Kinesis clients of a stream being migrated reach the source", kinesis_clients_reach_the_source)
check("Kafka producers through strait are refused with POLICY_VIOLATION", kafka_producers_are_refused)
check("kill -9 during a backlog: every record once after the restart",
      a_kill_during_a_backlog_loses_and_repeats_nothing)
if SOURCE_KIND == "moto":
    # moto re-puts a split shard's records into its children (new sequence numbers, the parent
    # emptied), and never ends a closed shard's iterator; Kinesis keeps them in the parent.
    print("SKIP a split of the source during the mirror (moto moves the parent's records)", flush=True)
else:
    check("a split of the source during the mirror is followed: same shards, lineage and records",
          a_split_of_the_source_is_followed)
if SOURCE_KIND in ("moto", "kinesalite"):
    check("KPL aggregates on the source: one record per user record in the cluster, KPL checkpoints resolve",
          kpl_aggregates_are_split_in_the_cluster)
else:
    print("SKIP KPL aggregates on the source (strait splits them at ingress: its stream holds none)", flush=True)
check("strait migrate checkpoints while mirroring: KCL checkpoints to group offsets and back, bad input refused",
      kcl_checkpoints_and_group_offsets_while_mirroring)
check("cutover while a producer writes through strait: every record once, numbers rising, positions kept",
      cutover_while_a_producer_writes)
check("strait migrate checkpoints after the cutover: strait's own numbers both ways",
      kcl_checkpoints_after_the_cutover)
if AGGREGATES:
    check("KPL aggregates read back whole through strait after the cutover",
          kpl_aggregates_read_back_whole_after_the_cutover)
target.stop()
if isinstance(source, subprocess.Popen):
    source.terminate()
elif source is not None:
    source.stop()
MOTO.stop()
if os.environ.get("MIGRATION_DEBUG"):
    print(target.tail())
finish()
