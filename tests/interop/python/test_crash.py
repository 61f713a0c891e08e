"""Durability: kill -9 under PutRecords load (fsync: always) and clean SIGTERM restarts.

Each test runs its own strait on a private data dir (the fresh_server fixture); with
STRAIT_ENDPOINT set (an external server) they are skipped.
"""

import os
import threading
import time

import pytest

from helpers import all_shards, create_stream, expect_error, is_open, read_shard, stream_arn, unique, wait_active

pytestmark = pytest.mark.slow

WRITERS = 4
BATCH = 100
PAYLOAD = 200


def writer(srv, name, tag, out, errors, stop):
    """PutRecords in a loop until the server goes away; record every acknowledged record."""
    client = srv.client(fresh=True, read_timeout=15)
    b = 0
    while not stop.is_set():
        entries = []
        for i in range(BATCH):
            pk = f"{tag}-k{(b * BATCH + i) % 32}"
            head = f"{tag}-b{b:05d}-r{i:03d}|".encode()
            entries.append((pk, head + b"." * (PAYLOAD - len(head))))
        try:
            resp = client.put_records(StreamName=name, Records=[{"PartitionKey": p, "Data": d} for p, d in entries])
        except Exception as e:  # the server was killed under us
            errors.append(repr(e))
            return
        assert len(resp["Records"]) == len(entries)
        for (pk, d), r in zip(entries, resp["Records"]):
            if "ErrorCode" not in r:
                out.append((r["ShardId"], r["SequenceNumber"], pk, d))
        b += 1


def load_then_kill(srv, name, cycle, min_acked=4000, max_wait=8.0):
    """Run WRITERS threads; kill -9 once min_acked records are acknowledged (or max_wait passes)."""
    stop = threading.Event()
    acked = [[] for _ in range(WRITERS)]
    errors = []
    threads = [
        threading.Thread(target=writer, args=(srv, name, f"c{cycle}w{t}", acked[t], errors, stop), daemon=True)
        for t in range(WRITERS)
    ]
    for t in threads:
        t.start()
    deadline = time.time() + max_wait
    while time.time() < deadline and sum(map(len, acked)) < min_acked:
        if not any(t.is_alive() for t in threads):
            break
        time.sleep(0.02)
    assert all(t.is_alive() for t in threads), f"a writer stopped before the kill: {errors[:3]}"
    srv.kill9()
    stop.set()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a writer hung after the kill"
    total = sum(map(len, acked))
    print(f"cycle {cycle}: {total} records acknowledged by {WRITERS} writers before kill -9; writer errors: {errors[:2]}")
    assert total > 0, f"nothing was acknowledged before the kill: {errors[:3]}"
    return acked


def read_everything(client, name):
    """{shard: [(seq, pk, data)]} read from TRIM_HORIZON on every shard."""
    out = {}
    for s in all_shards(client, name):
        recs, _ = read_shard(client, name, s["ShardId"], "TRIM_HORIZON")
        out[s["ShardId"]] = [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in recs]
    return out


def check_durable(client, name, acked_lists):
    got = read_everything(client, name)
    where = {}  # data -> (shard, index, seq, pk)
    for shard, recs in got.items():
        seqs = [int(seq) for seq, _, _ in recs]
        assert all(a < b for a, b in zip(seqs, seqs[1:])), f"sequence numbers not strictly increasing on {shard}"
        for i, (seq, pk, data) in enumerate(recs):
            assert data not in where, f"record {data[:24]!r} read twice ({where[data][0]} and {shard})"
            where[data] = (shard, i, seq, pk)
    missing = []
    for acked in acked_lists:
        last_pos = {}
        for shard, seq, pk, data in acked:
            if data not in where:
                missing.append((shard, seq, data[:24]))
                continue
            r_shard, idx, r_seq, r_pk = where[data]
            assert (r_shard, r_seq, r_pk) == (shard, seq, pk), f"acknowledged as {(shard, seq)}, read as {(r_shard, r_seq)}"
            assert idx > last_pos.get(shard, -1), f"acknowledged order broken on {shard} at {data[:24]!r}"
            last_pos[shard] = idx
    n_acked = sum(map(len, acked_lists))
    assert not missing, f"{len(missing)} of {n_acked} acknowledged records lost, e.g. {missing[:5]}"
    return got


def test_kill9_during_put_records_keeps_every_acknowledged_record(fresh_server):
    srv = fresh_server
    c = srv.client()
    name = create_stream(c, unique("crash"), 4)
    all_acked = []
    for cycle in range(2):
        acked = load_then_kill(srv, name, cycle)
        all_acked.extend(acked)
        srv.start()
        c = srv.client(fresh=True)
        assert c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
        got = check_durable(c, name, all_acked)
        # Writes after the restart get sequence numbers above everything already in the shard.
        top = {shard: max((int(s) for s, _, _ in recs), default=-1) for shard, recs in got.items()}
        for i in range(40):
            w = c.put_record(StreamName=name, PartitionKey=f"after-{cycle}-{i}", Data=f"after-{cycle}-{i}".encode())
            assert int(w["SequenceNumber"]) > top[w["ShardId"]], "a sequence number was reused after the crash"
            top[w["ShardId"]] = int(w["SequenceNumber"])
            all_acked.append([(w["ShardId"], w["SequenceNumber"], f"after-{cycle}-{i}", f"after-{cycle}-{i}".encode())])
    check_durable(srv.client(fresh=True), name, all_acked)


def test_kill9_right_after_create_and_reshard(fresh_server):
    """Catalog changes acknowledged before a kill -9 survive it."""
    srv = fresh_server
    c = srv.client()
    name = create_stream(c, unique("cat"), 2)
    c.add_tags_to_stream(StreamName=name, Tags={"k": "v"})
    c.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=36)
    c.split_shard(StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**126))
    wait_active(c, name)
    w = c.put_record(StreamName=name, PartitionKey="p", Data=b"x", ExplicitHashKey="1")
    gone = create_stream(c, unique("gone"), 1)
    c.delete_stream(StreamName=gone)
    c.get_waiter("stream_not_exists").wait(StreamName=gone, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    srv.kill9()
    srv.start()
    c = srv.client(fresh=True)
    s = c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["RetentionPeriodHours"] == 36 and s["OpenShardCount"] == 3
    assert c.list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "k", "Value": "v"}]
    shards = all_shards(c, name)
    assert [x["ShardId"] for x in shards] == [f"shardId-{i:012d}" for i in range(4)]
    assert not is_open(shards[0])
    recs, _ = read_shard(c, name, w["ShardId"])
    assert [(r["SequenceNumber"], r["Data"]) for r in recs] == [(w["SequenceNumber"], b"x")]
    expect_error(c.describe_stream_summary, "ResourceNotFoundException", StreamName=gone)


def snapshot(c, name):
    s = dict(c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"])
    s.pop("ResponseMetadata", None)
    shards = all_shards(c, name)
    tags = c.list_tags_for_stream(StreamName=name)["Tags"]
    records = {}
    for sh in shards:
        recs, _ = read_shard(c, name, sh["ShardId"])
        records[sh["ShardId"]] = [
            (r["SequenceNumber"], r["PartitionKey"], r["Data"], r["ApproximateArrivalTimestamp"]) for r in recs
        ]
    return {"summary": s, "shards": shards, "tags": tags, "records": records}


def test_clean_restart_keeps_streams_tags_retention_and_records(fresh_server):
    srv = fresh_server
    c = srv.client()
    a = create_stream(c, unique("keep-a"), 3, Tags={"team": "strait"})
    c.add_tags_to_stream(StreamName=a, Tags={"env": "test", "empty": ""})
    c.increase_stream_retention_period(StreamName=a, RetentionPeriodHours=72)
    c.start_stream_encryption(StreamName=a, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    c.enable_enhanced_monitoring(StreamName=a, ShardLevelMetrics=["IncomingBytes"])
    c.update_max_record_size(StreamARN=stream_arn(a), MaxRecordSizeInKiB=2048)
    wait_active(c, a)
    for off in range(0, 1500, 500):
        c.put_records(
            StreamName=a, Records=[{"PartitionKey": f"k{i % 50}", "Data": f"a-{i}".encode()} for i in range(off, off + 500)]
        )
    b = create_stream(c, unique("keep-b"), 1)
    c.put_records(StreamName=b, Records=[{"PartitionKey": f"k{i}", "Data": f"b-{i}".encode()} for i in range(100)])
    c.split_shard(StreamName=b, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127))
    wait_active(c, b)
    c.put_records(StreamName=b, Records=[{"PartitionKey": f"k{i}", "Data": f"b2-{i}".encode()} for i in range(100)])
    c.update_stream_mode(StreamARN=stream_arn(b), StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(c, b)
    gone = create_stream(c, unique("keep-gone"), 1)
    c.delete_stream(StreamName=gone)
    c.get_waiter("stream_not_exists").wait(StreamName=gone, WaiterConfig={"Delay": 1, "MaxAttempts": 20})

    before = {n: snapshot(c, n) for n in (a, b)}
    assert sum(len(v) for v in before[a]["records"].values()) == 1500
    assert sum(len(v) for v in before[b]["records"].values()) == 200

    rc = srv.restart()
    assert rc == 0, f"strait exited with {rc} on SIGTERM:\n{srv.log_tail()}"

    c = srv.client(fresh=True)
    names = c.list_streams()["StreamNames"]
    assert a in names and b in names and gone not in names
    for n in (a, b):
        after = snapshot(c, n)
        assert after["summary"] == before[n]["summary"]
        assert after["shards"] == before[n]["shards"]
        assert after["tags"] == before[n]["tags"]
        assert after["records"] == before[n]["records"]
    s = before[a]["summary"]
    assert s["RetentionPeriodHours"] == 72 and s["EncryptionType"] == "KMS" and s["MaxRecordSizeInKiB"] == 2048
    assert before[b]["summary"]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}

    # New writes continue each shard's sequence.
    last = {sh: int(recs[-1][0]) for sh, recs in before[a]["records"].items() if recs}
    for i in range(30):
        w = c.put_record(StreamName=a, PartitionKey=f"k{i}", Data=b"new")
        assert int(w["SequenceNumber"]) > last.get(w["ShardId"], -1)
    # A second clean restart right away is fine too.
    assert srv.restart() == 0
    assert srv.client(fresh=True).describe_stream_summary(StreamName=a)["StreamDescriptionSummary"]["StreamName"] == a


def test_shard_iterator_survives_restart(fresh_server):
    """An iterator handed out before a restart still reads after it (within its 5 minutes)."""
    srv = fresh_server
    c = srv.client()
    name = create_stream(c, unique("iter"), 1)
    c.put_record(StreamName=name, PartitionKey="p", Data=b"one")
    it = c.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    srv.restart()
    r = srv.client(fresh=True).get_records(ShardIterator=it)
    assert [x["Data"] for x in r["Records"]] == [b"one"]


IDEMPOTENT_KILL_CYCLES = int(os.environ.get("STRAIT_IDEMPOTENT_KILL_CYCLES", "5"))


def test_kill9_with_idempotent_producers_appends_nothing_twice(fresh_server):
    """Idempotent producers (librdkafka) keep producing while strait is killed with -9 and
    started again, cycle after cycle. A batch appended just before a kill is retried after the
    restart; strait must recognise the retry from the log's batch headers. At the end every
    acknowledged record is there exactly once. (The long form sets
    STRAIT_IDEMPOTENT_KILL_CYCLES=20; docs/operations.md has its last result.)"""
    from collections import Counter

    from confluent_kafka import Producer

    from kafka_helpers import create_topic, read_topic_values, restart_tolerant_conf

    srv = fresh_server
    bootstrap = srv.kafka_bootstrap
    partitions = 3
    topic = create_topic(bootstrap, unique("idem-crash"), partitions)
    acked, failed = [], []

    def delivered(err, msg):
        (failed if err is not None else acked).append((err, msg.value()))

    stop = threading.Event()
    producers = [Producer(restart_tolerant_conf(bootstrap, **{"enable.idempotence": True})) for _ in range(2)]

    def produce_until_stopped(p, tag):
        n = 0
        while not stop.is_set():
            try:
                p.produce(topic, key=f"{tag}-{n % 17}".encode(), value=f"{tag}-{n}".encode(), on_delivery=delivered)
                n += 1
            except BufferError:
                p.poll(0.05)
            p.poll(0)
            if n % 200 == 0:
                time.sleep(0.005)
        p.flush(120)

    threads = [threading.Thread(target=produce_until_stopped, args=(p, f"p{i}"), daemon=True) for i, p in enumerate(producers)]
    for t in threads:
        t.start()
    try:
        for cycle in range(IDEMPOTENT_KILL_CYCLES):
            target = len(acked) + 1500
            deadline = time.time() + 60
            while len(acked) < target and time.time() < deadline:
                time.sleep(0.01)
            assert len(acked) >= target, f"cycle {cycle}: producers stalled at {len(acked)} acknowledged"
            srv.kill9()
            time.sleep(0.2)
            srv.start()
    finally:
        stop.set()
        for t in threads:
            t.join(150)
    assert not failed, f"{len(failed)} deliveries failed, first: {failed[0]}"
    sent = [v for _, v in acked]
    got, end = read_topic_values(bootstrap, topic, partitions)
    dups = {v: n for v, n in Counter(got).items() if n > 1}
    missing = set(sent) - set(got)
    print(
        f"{IDEMPOTENT_KILL_CYCLES} kill -9 cycles: {len(sent)} records acknowledged, {len(got)} read, "
        f"{len(dups)} duplicated, {len(missing)} missing"
    )
    assert not dups, f"{len(dups)} records appended twice, e.g. {list(dups.items())[:3]}"
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:3]}"
    assert len(got) == end
