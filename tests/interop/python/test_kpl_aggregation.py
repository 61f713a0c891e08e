"""KPL aggregated records written through boto3 (aggregates built by hand in efo_helpers.kpl_aggregate:
magic F3 89 9A C2, protobuf AggregatedRecord, MD5 of the protobuf bytes) are split at ingress:
GetRecords, SubscribeToShard and Kafka consumers see one plain record per user record. The
PutRecords answer has one entry per request record, on the shard whose range holds the aggregate's
hash key. Anything malformed is stored unchanged as one record.
"""

import hashlib
import time
from collections import defaultdict

import pytest

from efo_helpers import KPL_MAGIC, Subscriber, kpl_aggregate, kpl_protobuf, register_consumer
from helpers import all_shards, create_stream, md5_hash_key, owning_shard, read_shard, unique
from kafka_helpers import confluent_admin, confluent_conf, wait_topic


def shard_index(shard_id):
    return int(shard_id.rsplit("-", 1)[1])


def user_records(tag, n, keys):
    return [(keys[i % len(keys)], f"{tag}-user-{i:03d}".encode()) for i in range(n)]


def keys_on_both_shards(shards):
    """Partition keys whose MD5 hash lands on shard 0 and on shard 1 (two of each)."""
    by = defaultdict(list)
    i = 0
    while min(len(by[s["ShardId"]]) for s in shards) < 2:
        k = f"uk-{i}"
        by[owning_shard(shards, md5_hash_key(k))].append(k)
        i += 1
    return [k for s in shards for k in by[s["ShardId"]][:2]]


def read_stream(client, name, shards):
    return {s["ShardId"]: read_shard(client, name, s["ShardId"])[0] for s in shards}


def test_aggregates_split_for_get_records(client):
    name = create_stream(client, unique("kpl"), 2)
    shards = all_shards(client, name)
    keys = keys_on_both_shards(shards)  # user keys hash to both shards; the aggregate decides
    upper = 2**127 + 12345  # in shard 1's range
    a_users = user_records("a", 30, keys)
    b_users = user_records("b", 5, keys[::-1])
    # Aggregate c uses the explicit hash key table for some user records.
    c_users = [(keys[0], b"c-user-0", 0), (keys[1], b"c-user-1"), (keys[2], b"c-user-2", 1)]
    c_ehks = [str(2**127 + 1), "7"]
    agg_a = kpl_aggregate(a_users)
    agg_b = kpl_aggregate(b_users)
    agg_c = kpl_aggregate(c_users, ehk_table=c_ehks)
    bad = kpl_aggregate(user_records("bad", 3, keys), bad_md5=True)
    request = [
        {"PartitionKey": "agg-a", "Data": agg_a, "ExplicitHashKey": str(upper)},
        {"PartitionKey": "plain-1", "Data": b"just a record"},
        {"PartitionKey": "agg-b", "Data": agg_b},  # no ExplicitHashKey: md5("agg-b") decides
        {"PartitionKey": "bad-md5", "Data": bad},
        {"PartitionKey": "agg-c", "Data": agg_c, "ExplicitHashKey": "0"},
    ]
    resp = client.put_records(StreamName=name, Records=request)
    assert resp["FailedRecordCount"] == 0, resp
    out = resp["Records"]
    assert len(out) == len(request)
    expected_shard = [
        owning_shard(shards, upper),
        owning_shard(shards, md5_hash_key("plain-1")),
        owning_shard(shards, md5_hash_key("agg-b")),
        owning_shard(shards, md5_hash_key("bad-md5")),
        owning_shard(shards, 0),
    ]
    assert [r["ShardId"] for r in out] == expected_shard

    got = read_stream(client, name, shards)
    # What each shard should hold, in put order: each aggregate's user records (user keys, no
    # aggregate framing) on the aggregate's shard; the plain record and the malformed aggregate
    # byte-identical under their own keys.
    want = defaultdict(list)
    parts = [
        a_users,
        [("plain-1", b"just a record")],
        b_users,
        [("bad-md5", bad)],
        [(u[0], u[1]) for u in c_users],
    ]
    for shard, part in zip(expected_shard, parts):
        want[shard].extend((pk, d) for pk, d in part)
    for s in shards:
        sid = s["ShardId"]
        assert [(r["PartitionKey"], r["Data"]) for r in got[sid]] == want[sid], sid
        seqs = [int(r["SequenceNumber"]) for r in got[sid]]
        assert seqs == sorted(set(seqs))
    # Each entry's SequenceNumber is its first user record's.
    for entry, part, shard in zip(out, parts, expected_shard):
        first = next(r for r in got[shard] if (r["PartitionKey"], r["Data"]) == part[0][:2])
        assert entry["SequenceNumber"] == first["SequenceNumber"]
    total = sum(len(v) for v in got.values())
    assert total == len(a_users) + 1 + len(b_users) + 1 + len(c_users)
    assert not any(r["Data"].startswith(KPL_MAGIC) for v in got.values() for r in v if r["PartitionKey"] != "bad-md5")


def test_put_record_single_aggregate(client):
    name = create_stream(client, unique("kpl-one"), 2)
    shards = all_shards(client, name)
    users = user_records("one", 4, keys_on_both_shards(shards))
    r = client.put_record(StreamName=name, PartitionKey="outer", Data=kpl_aggregate(users), ExplicitHashKey="1")
    assert r["ShardId"] == owning_shard(shards, 1)
    recs = read_shard(client, name, r["ShardId"])[0]
    assert [(x["PartitionKey"], x["Data"]) for x in recs] == users
    assert recs[0]["SequenceNumber"] == r["SequenceNumber"]
    other = [s["ShardId"] for s in shards if s["ShardId"] != r["ShardId"]][0]
    assert read_shard(client, name, other)[0] == []


def _malformed(kind):
    pb = kpl_protobuf([("k", b"v")])
    if kind == "bad-md5":
        return kpl_aggregate([("k", b"v"), ("k2", b"v2")], bad_md5=True)
    if kind == "bad-protobuf":
        junk = b"\x0a\xff\xff\xff\xff\x0f" + b"zz"  # a length that runs past the end
        return KPL_MAGIC + junk + hashlib.md5(junk).digest()
    if kind == "truncated":
        return (KPL_MAGIC + pb + hashlib.md5(pb).digest())[:-3]
    if kind == "no-records":
        body = b"\x0a\x01k"  # a partition key table and no records
        return KPL_MAGIC + body + hashlib.md5(body).digest()
    if kind == "pk-index-out-of-range":
        body = b"\x0a\x01k" + b"\x1a\x05\x08\x05\x1a\x01v"  # record with partition_key_index 5
        return KPL_MAGIC + body + hashlib.md5(body).digest()
    if kind == "magic-only":
        return KPL_MAGIC
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind", ["bad-md5", "bad-protobuf", "truncated", "no-records", "pk-index-out-of-range", "magic-only"]
)
def test_malformed_aggregate_stored_as_one_record(client, kind):
    name = create_stream(client, unique("kpl-bad"))
    data = _malformed(kind)
    r = client.put_records(StreamName=name, Records=[{"PartitionKey": "outer", "Data": data}])
    assert r["FailedRecordCount"] == 0 and len(r["Records"]) == 1
    recs = read_shard(client, name, "shardId-000000000000")[0]
    assert [(x["PartitionKey"], x["Data"]) for x in recs] == [("outer", data)]
    assert recs[0]["SequenceNumber"] == r["Records"][0]["SequenceNumber"]


def test_kafka_consumer_sees_user_records(server, strait_kafka):
    from confluent_kafka import Consumer, TopicPartition

    c = server.client()
    name = create_stream(c, unique("kpl-kafka"), 2)
    shards = all_shards(c, name)
    wait_topic(confluent_admin(strait_kafka), name, 2)
    keys = keys_on_both_shards(shards)
    aggs = [user_records(f"g{j}", 10 + j, keys) for j in range(3)]
    ehks = ["5", str(2**128 - 2), None]
    req = []
    for j, (users, ehk) in enumerate(zip(aggs, ehks)):
        rec = {"PartitionKey": f"outer-{j}", "Data": kpl_aggregate(users)}
        if ehk:
            rec["ExplicitHashKey"] = ehk
        req.append(rec)
    resp = c.put_records(StreamName=name, Records=req)
    assert resp["FailedRecordCount"] == 0
    want = defaultdict(list)
    for users, entry in zip(aggs, resp["Records"]):
        want[shard_index(entry["ShardId"])].extend((pk.encode(), d) for pk, d in users)
    total = sum(map(len, aggs))

    cons = Consumer(confluent_conf(strait_kafka, **{"group.id": unique("g-kpl"), "enable.auto.commit": False}))
    msgs = []
    try:
        cons.assign([TopicPartition(name, 0, 0), TopicPartition(name, 1, 0)])
        deadline = time.time() + 20
        while len(msgs) < total and time.time() < deadline:
            msgs += [m for m in cons.consume(100, 0.5) if not m.error()]
        msgs += [m for m in cons.consume(100, 0.5) if not m.error()]  # nothing more may come
    finally:
        cons.close()
    assert len(msgs) == total, f"Kafka consumer saw {len(msgs)} messages for {total} user records"
    got = defaultdict(list)
    for m in msgs:
        got[m.partition()].append((m.offset(), m.key(), m.value()))
    for p in (0, 1):
        rows = sorted(got[p])
        assert [o for o, _, _ in rows] == list(range(len(rows)))
        assert [(k, v) for _, k, v in rows] == want[p], f"partition {p}"


def test_subscriber_sees_user_records(server):
    c = server.client()
    name = create_stream(c, unique("kpl-efo"))
    arn = register_consumer(c, name, "kpl")
    sub = Subscriber(server.client(fresh=True), arn, "shardId-000000000000", {"Type": "LATEST"})
    try:
        assert (sub.next(timeout=8) or ("timeout",))[0] == "event", "no event within 8 s"
        users = user_records("s", 25, ["x", "y", "z"])
        c.put_record(StreamName=name, PartitionKey="outer", Data=kpl_aggregate(users))
        got = sub.records_until(len(users), timeout=10)
        sub.next(timeout=0.3)
        assert [(r["PartitionKey"], r["Data"]) for r in sub.all_records()] == users
    finally:
        sub.close()
