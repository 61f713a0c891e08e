"""Issue 2 acceptance, with boto3: 20,000 x 100-byte records over 200 keys on a 4-shard stream."""

from collections import defaultdict

import pytest

from helpers import create_stream, md5_hash_key, read_shard, shard_range, unique, uniform_ranges

pytestmark = pytest.mark.slow

SHARDS = 4
RECORDS = 20_000
KEYS = 200
BATCH = 500
SIZE = 100


def payload(key_ix, n):
    """100 bytes naming the key and the record's position within that key."""
    head = f"k{key_ix:03d}:n{n:06d}:".encode()
    return head + b"x" * (SIZE - len(head))


def test_acceptance_20k_records_4_shards(server):
    client = server.client()
    name = create_stream(client, unique("accept"), SHARDS)

    desc = client.describe_stream(StreamName=name)["StreamDescription"]
    shards = desc["Shards"]
    assert [s["ShardId"] for s in shards] == [f"shardId-{i:012d}" for i in range(SHARDS)]
    assert [shard_range(s) for s in shards] == uniform_ranges(SHARDS)
    ranges = {s["ShardId"]: shard_range(s) for s in shards}

    # Write: record i goes to key i % 200, so every key gets 100 records, in order.
    written = []  # (pk, data) in write order
    per_key_count = defaultdict(int)
    for i in range(RECORDS):
        k = i % KEYS
        written.append((f"pk-{k:03d}", payload(k, per_key_count[k])))
        per_key_count[k] += 1

    acked = {}  # data -> (shard, seq)
    for off in range(0, RECORDS, BATCH):
        batch = written[off : off + BATCH]
        resp = client.put_records(StreamName=name, Records=[{"PartitionKey": pk, "Data": d} for pk, d in batch])
        assert resp["FailedRecordCount"] == 0, resp["Records"][:3]
        assert len(resp["Records"]) == len(batch)
        for (pk, d), r in zip(batch, resp["Records"]):
            assert "ErrorCode" not in r, r
            assert r["ShardId"] in ranges
            assert r["SequenceNumber"].isdigit()
            acked[d] = (r["ShardId"], r["SequenceNumber"])
    assert len(acked) == RECORDS

    # Read every shard back from TRIM_HORIZON.
    read = []  # (shard, record)
    for s in shards:
        recs, last = read_shard(client, name, s["ShardId"], "TRIM_HORIZON")
        assert last["NextShardIterator"], "an open shard must return a NextShardIterator"
        assert last.get("MillisBehindLatest", 0) == 0
        seqs = [int(r["SequenceNumber"]) for r in recs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"sequence numbers not increasing on {s['ShardId']}"
        read.extend((s["ShardId"], r) for r in recs)

    # Count and no duplicates.
    assert len(read) == RECORDS, f"read {len(read)} records, wrote {RECORDS}"
    datas = [r["Data"] for _, r in read]
    assert len(set(datas)) == RECORDS, "duplicate records read back"
    assert set(datas) == set(acked)

    # One shard per key; the shard owns md5(pk); the read position matches the acknowledgement.
    key_shards = defaultdict(set)
    for shard_id, r in read:
        pk = r["PartitionKey"]
        key_shards[pk].add(shard_id)
        lo, hi = ranges[shard_id]
        assert lo <= md5_hash_key(pk) <= hi, f"{pk} landed on {shard_id} whose range does not hold md5(pk)"
        assert acked[r["Data"]] == (shard_id, r["SequenceNumber"])
        assert len(r["Data"]) == SIZE
        assert r["ApproximateArrivalTimestamp"] is not None
    assert len(key_shards) == KEYS
    assert all(len(v) == 1 for v in key_shards.values()), {k: v for k, v in key_shards.items() if len(v) > 1}

    # Order per key: the records of each key come back in the order they were written.
    per_key = defaultdict(list)
    for _, r in read:
        per_key[r["PartitionKey"]].append(r["Data"])
    for pk, datas in per_key.items():
        k = int(pk[3:])
        assert datas == [payload(k, n) for n in range(per_key_count[k])], f"order broken for {pk}"

    # Every shard got some of the 200 keys (uniform ranges, MD5 spreads them).
    assert {sid for sid, _ in read} == set(ranges)
