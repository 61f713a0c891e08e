"""Live migration onto the Kafka backend (issue 16), against the suite's real broker: a strait on
its embedded backend plays the Kinesis source, a second strait (Kafka backend, `migration.streams`)
mirrors one of its streams into the cluster. Checked from the cluster itself: every source record
once, in shard order, with its origin sequence number in the `kinesis.seq` header, across a
`kill -9` of the mirroring strait during a backlog; Kinesis clients of the mirroring strait reach
the source; Kafka producers through strait are refused with POLICY_VIOLATION; then the stream is
cut over (`strait migrate cutover`) while a producer writes through strait: every acknowledged
record once, sequence numbers rising across the cutover, a source position resolving to the
same record, Kafka producers accepted after it.

Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero if any failed.
"""

import json
import os
import subprocess
import threading
import time
import urllib.request
import uuid

import boto3
from botocore.config import Config
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from harness import check, finish, require, wait_for
from straits import BIN, Strait

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
            if not r["Records"] and r["MillisBehindLatest"] == 0:
                break
        out[s["ShardId"]] = recs
    return out


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


source = Strait(STRAIT_BACKEND__TYPE="embedded")
SRC_CLIENT = kinesis(source.endpoint)
SRC_CLIENT.create_stream(StreamName=STREAM, ShardCount=2)
target = Strait(STRAIT_BACKEND__TYPE="kafka", STRAIT_BACKEND__KAFKA__BOOTSTRAP=BROKER,
                STRAIT_MIGRATION__STREAMS=STREAM, STRAIT_MIGRATION__SOURCE__ENDPOINT=source.endpoint,
                STRAIT_MIGRATION__SOURCE__POLL_INTERVAL_MS="100",
                AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret")


def dst():
    """A client of the mirroring strait (its ports change when it is restarted)."""
    return kinesis(target.endpoint)


def compare(total):
    origin = source_records(SRC_CLIENT)
    require(sum(len(v) for v in origin.values()) == total, "source count")
    mirrored = mirror_records(2, total)
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
    require(len(mirror_records(2, total)["shardId-000000000000"]) == len(served["shardId-000000000000"]),
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
check("cutover while a producer writes through strait: every record once, numbers rising, positions kept",
      cutover_while_a_producer_writes)
target.stop()
source.stop()
finish()
