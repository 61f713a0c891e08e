"""Every operation of the strait contract from boto3: success paths and response shapes."""

import datetime
import os
import time

import pytest

from helpers import (
    HAZARDOUS_STREAM_ID,
    MAX_HASH,
    SEQ_RE,
    all_shards,
    create_stream,
    describe_all_shards,
    expect_error,
    is_open,
    md5_hash_key,
    owning_shard,
    put_records,
    read_shard,
    shard_range,
    stream_arn,
    unique,
    uniform_ranges,
    wait_active,
)

ALL_METRICS = {
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
}


def sid(i):
    return f"shardId-{i:012d}"


def ts(dt):
    return dt.timestamp() if isinstance(dt, datetime.datetime) else float(dt)


# ---------------------------------------------------------------------------------------------
# Streams: CreateStream, DescribeStream, DescribeStreamSummary, ListStreams, DeleteStream
# ---------------------------------------------------------------------------------------------


def test_create_and_describe_stream_shape(client):
    name = unique("desc")
    before = time.time()
    resp = client.create_stream(StreamName=name, ShardCount=3)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    wait_active(client, name)

    d = client.describe_stream(StreamName=name)["StreamDescription"]
    assert d["StreamName"] == name
    assert d["StreamARN"] == stream_arn(name)
    assert d["StreamStatus"] == "ACTIVE"
    assert d["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert d["HasMoreShards"] is False
    assert d["RetentionPeriodHours"] == 24
    assert isinstance(d["StreamCreationTimestamp"], datetime.datetime)
    assert before - 5 <= ts(d["StreamCreationTimestamp"]) <= time.time() + 5
    assert d["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert d.get("EncryptionType", "NONE") == "NONE"
    assert [s["ShardId"] for s in d["Shards"]] == [sid(0), sid(1), sid(2)]
    assert [shard_range(s) for s in d["Shards"]] == uniform_ranges(3)
    for s in d["Shards"]:
        start = s["SequenceNumberRange"]["StartingSequenceNumber"]
        assert SEQ_RE.match(start)
        assert "EndingSequenceNumber" not in s["SequenceNumberRange"]
        assert "ParentShardId" not in s and "AdjacentParentShardId" not in s


def test_describe_stream_summary_shape(client):
    name = create_stream(client, unique("summ"), 2)
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamName"] == name
    assert s["StreamARN"] == stream_arn(name)
    assert s["StreamStatus"] == "ACTIVE"
    assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert s["RetentionPeriodHours"] == 24
    assert isinstance(s["StreamCreationTimestamp"], datetime.datetime)
    assert s["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert s.get("EncryptionType", "NONE") == "NONE"
    assert s["OpenShardCount"] == 2
    assert s["ConsumerCount"] == 0
    if "StreamId" in s:
        assert not HAZARDOUS_STREAM_ID.match(s["StreamId"]), f"hazardous StreamId {s['StreamId']!r}"


def test_describe_stream_paging(client):
    name = create_stream(client, unique("dpage"), 5)
    d = client.describe_stream(StreamName=name, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == [sid(0), sid(1)]
    assert d["HasMoreShards"] is True
    d = client.describe_stream(StreamName=name, Limit=2, ExclusiveStartShardId=sid(1))["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == [sid(2), sid(3)]
    assert d["HasMoreShards"] is True
    d = client.describe_stream(StreamName=name, Limit=2, ExclusiveStartShardId=sid(3))["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == [sid(4)]
    assert d["HasMoreShards"] is False
    d = client.describe_stream(StreamName=name, ExclusiveStartShardId=sid(4))["StreamDescription"]
    assert d["Shards"] == [] and d["HasMoreShards"] is False
    assert [s["ShardId"] for s in describe_all_shards(client, name)] == [sid(i) for i in range(5)]


def test_list_streams_exclusive_start_and_limit(client):
    prefix = unique("ls")
    names = [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    for n in names:
        create_stream(client, n, 1)
    r = client.list_streams(Limit=2, ExclusiveStartStreamName=prefix)
    assert r["StreamNames"] == names[:2]
    assert r["HasMoreStreams"] is True
    r = client.list_streams(Limit=1, ExclusiveStartStreamName=names[1])
    assert r["StreamNames"] == names[2:]
    r = client.list_streams(ExclusiveStartStreamName=names[2])
    assert all(n > names[2] for n in r["StreamNames"])
    assert r["StreamNames"] == sorted(r["StreamNames"])


def test_list_streams_next_token_and_summaries(client):
    prefix = unique("lt")
    names = [f"{prefix}-{i}" for i in range(3)]
    for n in names:
        create_stream(client, n, 1)
    seen, summaries, pages = [], [], 0
    r = client.list_streams(Limit=1)
    limit = 1
    while True:
        pages += 1
        assert len(r["StreamNames"]) <= limit
        assert len(r["StreamSummaries"]) == len(r["StreamNames"])
        seen.extend(r["StreamNames"])
        summaries.extend(r["StreamSummaries"])
        if not r["HasMoreStreams"]:
            assert not r.get("NextToken")
            break
        assert r.get("NextToken"), "HasMoreStreams without a NextToken"
        # Two pages of one, then bigger pages (a NextToken does not pin the page size).
        limit = 1 if pages < 3 else 100
        r = client.list_streams(NextToken=r["NextToken"], Limit=limit)
        assert pages < 1000
    assert pages >= 3
    assert len(seen) == len(set(seen)), "ListStreams paging returned a stream twice"
    assert set(names) <= set(seen)
    assert seen == sorted(seen)
    by_name = {s["StreamName"]: s for s in summaries}
    for n in names:
        s = by_name[n]
        assert s["StreamARN"] == stream_arn(n)
        assert s["StreamStatus"] == "ACTIVE"
        assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
        assert isinstance(s["StreamCreationTimestamp"], datetime.datetime)


def test_delete_stream_then_not_found(client):
    name = create_stream(client, unique("del"), 1)
    client.put_record(StreamName=name, PartitionKey="a", Data=b"x")
    resp = client.delete_stream(StreamName=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    client.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    expect_error(client.describe_stream_summary, "ResourceNotFoundException", StreamName=name)
    expect_error(client.describe_stream, "ResourceNotFoundException", StreamName=name)
    expect_error(client.put_record, "ResourceNotFoundException", StreamName=name, PartitionKey="a", Data=b"x")
    assert name not in client.list_streams(ExclusiveStartStreamName=name[:-1])["StreamNames"]
    # The name can be used again, for an empty stream.
    create_stream(client, name, 1)
    recs, _ = read_shard(client, name, sid(0))
    assert recs == []


def test_waiters_stream_exists_and_not_exists(client):
    name = unique("wait")
    client.create_stream(StreamName=name, ShardCount=1)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    assert client.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"] == "ACTIVE"
    client.delete_stream(StreamName=name)
    client.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})


def test_create_stream_with_tags_and_on_demand(client):
    name = unique("od")
    client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"}, Tags={"team": "x"})
    wait_active(client, name)
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert s["OpenShardCount"] >= 1
    assert client.list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "team", "Value": "x"}]
    r = client.put_record(StreamName=name, PartitionKey="k", Data=b"on-demand")
    assert SEQ_RE.match(r["SequenceNumber"])


# ---------------------------------------------------------------------------------------------
# StreamARN wherever StreamName is accepted
# ---------------------------------------------------------------------------------------------


def test_stream_arn_instead_of_name(client):
    name = create_stream(client, unique("arn"), 2)
    arn = stream_arn(name)
    s = client.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]
    assert s["StreamName"] == name and s["StreamARN"] == arn
    assert client.describe_stream(StreamARN=arn)["StreamDescription"]["StreamName"] == name
    shards = client.list_shards(StreamARN=arn)["Shards"]
    assert [x["ShardId"] for x in shards] == [sid(0), sid(1)]
    r = client.put_record(StreamARN=arn, PartitionKey="p", Data=b"one")
    rr = client.put_records(StreamARN=arn, Records=[{"PartitionKey": "p", "Data": b"two"}])
    assert rr["FailedRecordCount"] == 0
    it = client.get_shard_iterator(StreamARN=arn, ShardId=r["ShardId"], ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    got = client.get_records(StreamARN=arn, ShardIterator=it)
    assert [x["Data"] for x in got["Records"]] == [b"one", b"two"]
    client.increase_stream_retention_period(StreamARN=arn, RetentionPeriodHours=30)
    client.decrease_stream_retention_period(StreamARN=arn, RetentionPeriodHours=25)
    client.add_tags_to_stream(StreamARN=arn, Tags={"a": "1"})
    assert client.list_tags_for_stream(StreamARN=arn)["Tags"] == [{"Key": "a", "Value": "1"}]
    client.remove_tags_from_stream(StreamARN=arn, TagKeys=["a"])
    client.enable_enhanced_monitoring(StreamARN=arn, ShardLevelMetrics=["IncomingBytes"])
    client.disable_enhanced_monitoring(StreamARN=arn, ShardLevelMetrics=["IncomingBytes"])
    client.start_stream_encryption(StreamARN=arn, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    client.stop_stream_encryption(StreamARN=arn, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    client.split_shard(StreamARN=arn, ShardToSplit=sid(0), NewStartingHashKey=str(2**126))
    wait_active(client, name)
    client.merge_shards(StreamARN=arn, ShardToMerge=sid(2), AdjacentShardToMerge=sid(3))
    wait_active(client, name)
    client.update_shard_count(StreamARN=arn, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    wait_active(client, name)
    # Both given and agreeing is fine too.
    assert client.describe_stream_summary(StreamName=name, StreamARN=arn)["StreamDescriptionSummary"][
        "RetentionPeriodHours"
    ] == 25
    client.delete_stream(StreamARN=arn)
    client.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    expect_error(client.describe_stream_summary, "ResourceNotFoundException", StreamARN=arn)


# ---------------------------------------------------------------------------------------------
# ListShards: filters and NextToken
# ---------------------------------------------------------------------------------------------


def test_list_shards_shape_and_paging(client):
    name = create_stream(client, unique("lsh"), 5)
    r = client.list_shards(StreamName=name)
    assert [s["ShardId"] for s in r["Shards"]] == [sid(i) for i in range(5)]
    assert not r.get("NextToken")
    for s in r["Shards"]:
        assert set(s) >= {"ShardId", "HashKeyRange", "SequenceNumberRange"}
    assert [shard_range(s) for s in r["Shards"]] == uniform_ranges(5)

    # MaxResults paging: NextToken is sent without StreamName.
    r = client.list_shards(StreamName=name, MaxResults=2)
    ids = [s["ShardId"] for s in r["Shards"]]
    assert ids == [sid(0), sid(1)]
    assert r["NextToken"]
    pages = 1
    while r.get("NextToken"):
        r = client.list_shards(NextToken=r["NextToken"], MaxResults=2)
        ids += [s["ShardId"] for s in r["Shards"]]
        pages += 1
        assert pages < 10
    assert ids == [sid(i) for i in range(5)]

    # ExclusiveStartShardId.
    r = client.list_shards(StreamName=name, ExclusiveStartShardId=sid(2))
    assert [s["ShardId"] for s in r["Shards"]] == [sid(3), sid(4)]


def test_list_shards_filters(client):
    name = create_stream(client, unique("lsf"), 2)
    time.sleep(1.2)
    t_mid = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.2)
    lo, hi = shard_range(client.list_shards(StreamName=name)["Shards"][0])
    client.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str((lo + hi + 1) // 2))
    wait_active(client, name)
    time.sleep(1.2)
    t_after = datetime.datetime.now(datetime.timezone.utc)

    def ids(**f):
        r = client.list_shards(StreamName=name, ShardFilter=f)
        return sorted(s["ShardId"] for s in r["Shards"])

    every = [sid(0), sid(1), sid(2), sid(3)]
    assert sorted(s["ShardId"] for s in client.list_shards(StreamName=name)["Shards"]) == every
    assert ids(Type="FROM_TRIM_HORIZON") == every
    assert ids(Type="AT_TRIM_HORIZON") == [sid(0), sid(1)]
    assert ids(Type="AT_LATEST") == [sid(1), sid(2), sid(3)]
    assert ids(Type="AFTER_SHARD_ID", ShardId=sid(1)) == [sid(2), sid(3)]
    assert ids(Type="AT_TIMESTAMP", Timestamp=t_mid) == [sid(0), sid(1)]
    assert ids(Type="AT_TIMESTAMP", Timestamp=t_after) == [sid(1), sid(2), sid(3)]
    assert ids(Type="FROM_TIMESTAMP", Timestamp=t_mid) == every
    assert ids(Type="FROM_TIMESTAMP", Timestamp=t_after) == [sid(1), sid(2), sid(3)]

    # A filter with paging: the NextToken carries the filter.
    r = client.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"}, MaxResults=1)
    got = [s["ShardId"] for s in r["Shards"]]
    while r.get("NextToken"):
        r = client.list_shards(NextToken=r["NextToken"], MaxResults=1)
        got += [s["ShardId"] for s in r["Shards"]]
        assert len(got) < 10
    assert got == [sid(1), sid(2), sid(3)]


# ---------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------


def test_put_record_shape_and_md5_routing(client):
    name = create_stream(client, unique("put"), 4)
    shards = client.list_shards(StreamName=name)["Shards"]
    for i in range(40):
        pk = f"key-{i}"
        r = client.put_record(StreamName=name, PartitionKey=pk, Data=f"d{i}".encode())
        assert SEQ_RE.match(r["SequenceNumber"]) and len(r["SequenceNumber"]) == 56
        assert r["ShardId"] == owning_shard(shards, md5_hash_key(pk))
        assert r.get("EncryptionType", "NONE") == "NONE"


def test_put_records_shape_in_request_order(client):
    name = create_stream(client, unique("puts"), 3)
    shards = client.list_shards(StreamName=name)["Shards"]
    entries = [(f"pk{i}", f"v{i}".encode()) for i in range(500)]
    resp = client.put_records(StreamName=name, Records=[{"PartitionKey": p, "Data": d} for p, d in entries])
    assert resp["FailedRecordCount"] == 0
    assert len(resp["Records"]) == 500
    last = {}
    for (pk, _), r in zip(entries, resp["Records"]):
        assert set(r) >= {"SequenceNumber", "ShardId"} and "ErrorCode" not in r
        assert r["ShardId"] == owning_shard(shards, md5_hash_key(pk))
        seq = int(r["SequenceNumber"])
        assert seq > last.get(r["ShardId"], -1), "sequence numbers must grow in request order per shard"
        last[r["ShardId"]] = seq
    # Read back: per shard, the request order.
    for s in shards:
        recs, _ = read_shard(client, name, s["ShardId"])
        expect = [d for (pk, d), r in zip(entries, resp["Records"]) if r["ShardId"] == s["ShardId"]]
        assert [x["Data"] for x in recs] == expect


def test_put_record_binary_and_empty_data(client):
    name = create_stream(client, unique("bin"), 1)
    blobs = [bytes(range(256)), b"", b"\x00" * 10, "ünïcödé".encode()]
    for b in blobs:
        client.put_record(StreamName=name, PartitionKey="ключ-🔑", Data=b)
    recs, _ = read_shard(client, name, sid(0))
    assert [r["Data"] for r in recs] == blobs
    assert all(r["PartitionKey"] == "ключ-🔑" for r in recs)


def test_put_record_max_partition_key_and_record_size(client):
    name = create_stream(client, unique("max"), 1)
    pk = "k" * 256
    data = b"z" * (1024 * 1024 - 256)  # data + key = 1 MiB exactly
    r = client.put_record(StreamName=name, PartitionKey=pk, Data=data)
    recs, _ = read_shard(client, name, sid(0))
    assert len(recs) == 1 and recs[0]["Data"] == data and recs[0]["PartitionKey"] == pk
    assert recs[0]["SequenceNumber"] == r["SequenceNumber"]


def test_explicit_hash_key_routing(client):
    name = create_stream(client, unique("ehk"), 4)
    ranges = uniform_ranges(4)
    cases = [
        (0, sid(0)),
        (ranges[0][1], sid(0)),
        (ranges[1][0], sid(1)),
        (ranges[2][0] + 12345, sid(2)),
        (ranges[2][1], sid(2)),
        (MAX_HASH, sid(3)),
    ]
    for hk, want in cases:
        # The partition key's own MD5 would go elsewhere for at least some cases; EHK wins.
        r = client.put_record(StreamName=name, PartitionKey="same-key", Data=b"x", ExplicitHashKey=str(hk))
        assert r["ShardId"] == want, f"ExplicitHashKey {hk} went to {r['ShardId']}, want {want}"
    resp = client.put_records(
        StreamName=name,
        Records=[
            {"PartitionKey": "same-key", "Data": b"a", "ExplicitHashKey": str(ranges[3][0])},
            {"PartitionKey": "same-key", "Data": b"b", "ExplicitHashKey": "0"},
        ],
    )
    assert [r["ShardId"] for r in resp["Records"]] == [sid(3), sid(0)]


def test_sequence_number_for_ordering(client):
    name = create_stream(client, unique("sfo"), 1)
    prev = client.put_record(StreamName=name, PartitionKey="a", Data=b"0")["SequenceNumber"]
    for i in range(1, 6):
        cur = client.put_record(
            StreamName=name, PartitionKey="a", Data=str(i).encode(), SequenceNumberForOrdering=prev
        )["SequenceNumber"]
        assert int(cur) > int(prev)
        prev = cur
    recs, _ = read_shard(client, name, sid(0))
    assert [r["Data"] for r in recs] == [str(i).encode() for i in range(6)]


# ---------------------------------------------------------------------------------------------
# Reads: the five iterator types, Limit, MillisBehindLatest
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def ten_records(client):
    name = create_stream(client, unique("it"), 1)
    seqs = [
        client.put_record(StreamName=name, PartitionKey="p", Data=f"r{i}".encode())["SequenceNumber"]
        for i in range(10)
    ]
    return name, seqs


def datas(recs):
    return [r["Data"].decode() for r in recs]


def test_iterator_trim_horizon(client, ten_records):
    name, seqs = ten_records
    recs, last = read_shard(client, name, sid(0), "TRIM_HORIZON")
    assert datas(recs) == [f"r{i}" for i in range(10)]
    assert [r["SequenceNumber"] for r in recs] == seqs
    for r in recs:
        assert set(r) >= {"SequenceNumber", "ApproximateArrivalTimestamp", "Data", "PartitionKey"}
        assert isinstance(r["ApproximateArrivalTimestamp"], datetime.datetime)
        assert abs(ts(r["ApproximateArrivalTimestamp"]) - time.time()) < 60


def test_iterator_at_and_after_sequence_number(client, ten_records):
    name, seqs = ten_records
    recs, _ = read_shard(client, name, sid(0), "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[4])
    assert datas(recs) == [f"r{i}" for i in range(4, 10)]
    recs, _ = read_shard(client, name, sid(0), "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[4])
    assert datas(recs) == [f"r{i}" for i in range(5, 10)]
    recs, _ = read_shard(client, name, sid(0), "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[9])
    assert recs == []
    recs, _ = read_shard(client, name, sid(0), "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[0])
    assert len(recs) == 10


def test_iterator_latest(client, ten_records):
    name, _ = ten_records
    it = client.get_shard_iterator(StreamName=name, ShardId=sid(0), ShardIteratorType="LATEST")["ShardIterator"]
    r = client.get_records(ShardIterator=it)
    assert r["Records"] == []
    assert r["NextShardIterator"]
    client.put_record(StreamName=name, PartitionKey="p", Data=b"new")
    r = client.get_records(ShardIterator=r["NextShardIterator"])
    assert datas(r["Records"]) == ["new"]


def test_iterator_at_timestamp(client):
    name = create_stream(client, unique("ats"), 1)
    t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    put_records(client, name, [("p", f"a{i}".encode()) for i in range(3)])
    time.sleep(0.3)
    t_mid = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(0.3)
    put_records(client, name, [("p", f"b{i}".encode()) for i in range(3)])

    recs, _ = read_shard(client, name, sid(0), "AT_TIMESTAMP", Timestamp=t0)
    assert datas(recs) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    recs, _ = read_shard(client, name, sid(0), "AT_TIMESTAMP", Timestamp=t_mid)
    assert datas(recs) == ["b0", "b1", "b2"]
    # Exactly at a record's arrival time: that record is included.
    all_recs, _ = read_shard(client, name, sid(0))
    at = all_recs[3]["ApproximateArrivalTimestamp"]
    recs, _ = read_shard(client, name, sid(0), "AT_TIMESTAMP", Timestamp=at)
    assert datas(recs)[0] in ("a2", "b0") and datas(recs)[-3:] == ["b0", "b1", "b2"]
    # An epoch-seconds float works as well (the CLI and many apps send that).
    recs, _ = read_shard(client, name, sid(0), "AT_TIMESTAMP", Timestamp=t_mid.timestamp())
    assert datas(recs) == ["b0", "b1", "b2"]
    # After the last record: nothing yet, then the next write shows up.
    it = client.get_shard_iterator(
        StreamName=name, ShardId=sid(0), ShardIteratorType="AT_TIMESTAMP", Timestamp=datetime.datetime.now(datetime.timezone.utc)
    )["ShardIterator"]
    r = client.get_records(ShardIterator=it)
    assert r["Records"] == []
    client.put_record(StreamName=name, PartitionKey="p", Data=b"c0")
    r = client.get_records(ShardIterator=r["NextShardIterator"])
    assert datas(r["Records"]) == ["c0"]


def test_get_records_limit_and_iterator_chain(client, ten_records):
    name, seqs = ten_records
    it = client.get_shard_iterator(StreamName=name, ShardId=sid(0), ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    got = []
    for want in (3, 3, 3, 1, 0):
        r = client.get_records(ShardIterator=it, Limit=3)
        assert len(r["Records"]) == want
        got += r["Records"]
        it = r["NextShardIterator"]
        assert it
    assert [x["SequenceNumber"] for x in got] == seqs
    r = client.get_records(ShardIterator=it, Limit=10000)
    assert r["Records"] == []
    # An iterator can be used again (iterators are positions, not cursors).
    it0 = client.get_shard_iterator(StreamName=name, ShardId=sid(0), ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    a = client.get_records(ShardIterator=it0, Limit=2)
    b = client.get_records(ShardIterator=it0, Limit=2)
    assert datas(a["Records"]) == datas(b["Records"]) == ["r0", "r1"]


def test_millis_behind_latest(client, ten_records):
    name, _ = ten_records
    it = client.get_shard_iterator(StreamName=name, ShardId=sid(0), ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    r = client.get_records(ShardIterator=it, Limit=1)
    assert isinstance(r["MillisBehindLatest"], int) and r["MillisBehindLatest"] >= 0
    r = client.get_records(ShardIterator=r["NextShardIterator"])
    assert len(r["Records"]) == 9
    assert r["MillisBehindLatest"] == 0
    r = client.get_records(ShardIterator=r["NextShardIterator"])
    assert r["Records"] == [] and r["MillisBehindLatest"] == 0
    assert not r.get("ChildShards"), "an open shard has no ChildShards"


# ---------------------------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------------------------


def test_tags_by_stream_name(client):
    name = create_stream(client, unique("tag"), 1)
    r = client.list_tags_for_stream(StreamName=name)
    assert r["Tags"] == [] and r["HasMoreTags"] is False
    client.add_tags_to_stream(StreamName=name, Tags={"b": "2", "a": "1", "c": "", "d": "4"})
    r = client.list_tags_for_stream(StreamName=name)
    assert r["Tags"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "2"},
        {"Key": "c", "Value": ""},
        {"Key": "d", "Value": "4"},
    ]
    assert r["HasMoreTags"] is False
    # Overwrite a value.
    client.add_tags_to_stream(StreamName=name, Tags={"a": "one"})
    # Paging with Limit and ExclusiveStartTagKey.
    r = client.list_tags_for_stream(StreamName=name, Limit=2)
    assert r["Tags"] == [{"Key": "a", "Value": "one"}, {"Key": "b", "Value": "2"}]
    assert r["HasMoreTags"] is True
    r = client.list_tags_for_stream(StreamName=name, ExclusiveStartTagKey="b")
    assert [t["Key"] for t in r["Tags"]] == ["c", "d"]
    assert r["HasMoreTags"] is False
    client.remove_tags_from_stream(StreamName=name, TagKeys=["b", "d", "not-there"])
    r = client.list_tags_for_stream(StreamName=name)
    assert r["Tags"] == [{"Key": "a", "Value": "one"}, {"Key": "c", "Value": ""}]


def test_tags_by_resource_arn(client):
    name = create_stream(client, unique("tagr"), 1)
    arn = stream_arn(name)
    client.tag_resource(ResourceARN=arn, Tags={"env": "test", "owner": "strait"})
    r = client.list_tags_for_resource(ResourceARN=arn)
    assert sorted((t["Key"], t["Value"]) for t in r["Tags"]) == [("env", "test"), ("owner", "strait")]
    # Both flavours see the same tags.
    assert sorted(t["Key"] for t in client.list_tags_for_stream(StreamName=name)["Tags"]) == ["env", "owner"]
    client.untag_resource(ResourceARN=arn, TagKeys=["env"])
    r = client.list_tags_for_resource(ResourceARN=arn)
    assert r["Tags"] == [{"Key": "owner", "Value": "strait"}]
    client.add_tags_to_stream(StreamName=name, Tags={"x": "y"})
    assert sorted(t["Key"] for t in client.list_tags_for_resource(ResourceARN=arn)["Tags"]) == ["owner", "x"]


def test_fifty_tags_allowed(client):
    name = create_stream(client, unique("tag50"), 1)
    client.add_tags_to_stream(StreamName=name, Tags={f"k{i:02d}": str(i) for i in range(50)})
    seen, start = [], None
    while True:
        kw = {"StreamName": name, "Limit": 10}
        if start:
            kw["ExclusiveStartTagKey"] = start
        r = client.list_tags_for_stream(**kw)
        seen += [t["Key"] for t in r["Tags"]]
        if not r["HasMoreTags"]:
            break
        start = seen[-1]
    assert seen == [f"k{i:02d}" for i in range(50)]


# ---------------------------------------------------------------------------------------------
# Settings: retention, mode, encryption, monitoring, max record size, limits
# ---------------------------------------------------------------------------------------------


def test_retention(client):
    name = create_stream(client, unique("ret"), 1)
    client.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48
    client.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=8760)
    assert client.describe_stream(StreamName=name)["StreamDescription"]["RetentionPeriodHours"] == 8760
    client.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 24
    # Same value both ways is accepted.
    client.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    client.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)


def test_update_stream_mode(client):
    name = create_stream(client, unique("mode"), 2)
    arn = stream_arn(name)
    client.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(client, name)
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    client.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    wait_active(client, name)
    assert client.describe_stream(StreamName=name)["StreamDescription"]["StreamModeDetails"] == {
        "StreamMode": "PROVISIONED"
    }
    r = client.list_streams(ExclusiveStartStreamName=name[:-1], Limit=1)
    assert r["StreamSummaries"][0]["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}


def test_stream_encryption(client):
    name = create_stream(client, unique("enc"), 1)
    client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    wait_active(client, name)
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["EncryptionType"] == "KMS" and s["KeyId"] == "alias/aws/kinesis"
    d = client.describe_stream(StreamName=name)["StreamDescription"]
    assert d["EncryptionType"] == "KMS" and d["KeyId"] == "alias/aws/kinesis"
    r = client.put_record(StreamName=name, PartitionKey="p", Data=b"secret")
    assert r["EncryptionType"] == "KMS"
    r = client.put_records(StreamName=name, Records=[{"PartitionKey": "p", "Data": b"s2"}])
    assert r["EncryptionType"] == "KMS"
    recs, _ = read_shard(client, name, sid(0))
    assert [x["Data"] for x in recs] == [b"secret", b"s2"]
    client.stop_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    wait_active(client, name)
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["EncryptionType"] == "NONE"
    assert not s.get("KeyId")


def test_enhanced_monitoring(client):
    name = create_stream(client, unique("mon"), 1)
    r = client.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["IncomingBytes", "OutgoingRecords"])
    assert r["StreamName"] == name
    assert r["CurrentShardLevelMetrics"] == []
    assert set(r["DesiredShardLevelMetrics"]) == {"IncomingBytes", "OutgoingRecords"}
    wait_active(client, name)
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert set(s["EnhancedMonitoring"][0]["ShardLevelMetrics"]) == {"IncomingBytes", "OutgoingRecords"}
    r = client.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["IncomingBytes"])
    assert set(r["CurrentShardLevelMetrics"]) == {"IncomingBytes", "OutgoingRecords"}
    assert set(r["DesiredShardLevelMetrics"]) == {"OutgoingRecords"}
    wait_active(client, name)
    r = client.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
    assert set(r["DesiredShardLevelMetrics"]) == ALL_METRICS
    wait_active(client, name)
    d = client.describe_stream(StreamName=name)["StreamDescription"]
    assert set(d["EnhancedMonitoring"][0]["ShardLevelMetrics"]) == ALL_METRICS
    r = client.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
    assert set(r["DesiredShardLevelMetrics"]) == set()
    wait_active(client, name)
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]


def test_update_max_record_size(client):
    name = create_stream(client, unique("mrs"), 1)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"].get(
        "MaxRecordSizeInKiB", 1024
    ) == 1024
    big = b"b" * (1024 * 1024 + 1)
    expect_error(client.put_record, {"InvalidArgumentException", "ValidationException"}, StreamName=name, PartitionKey="p", Data=big)
    client.update_max_record_size(StreamARN=stream_arn(name), MaxRecordSizeInKiB=2048)
    wait_active(client, name)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["MaxRecordSizeInKiB"] == 2048
    r = client.put_record(StreamName=name, PartitionKey="p", Data=big)
    recs, _ = read_shard(client, name, sid(0))
    assert len(recs) == 1 and recs[0]["Data"] == big and recs[0]["SequenceNumber"] == r["SequenceNumber"]
    # CreateStream can set it too.
    name2 = unique("mrs2")
    client.create_stream(StreamName=name2, ShardCount=1, MaxRecordSizeInKiB=10240)
    wait_active(client, name2)
    assert client.describe_stream_summary(StreamName=name2)["StreamDescriptionSummary"]["MaxRecordSizeInKiB"] == 10240


def test_describe_limits(client):
    before = client.describe_limits()
    for k in ("ShardLimit", "OpenShardCount", "OnDemandStreamCount", "OnDemandStreamCountLimit"):
        assert isinstance(before[k], int) and before[k] >= 0, k
    assert before["ShardLimit"] >= 1
    create_stream(client, unique("lim"), 3)
    after = client.describe_limits()
    assert after["OpenShardCount"] >= before["OpenShardCount"] + 3


# ---------------------------------------------------------------------------------------------
# Resharding
# ---------------------------------------------------------------------------------------------


def read_closed_to_end(client, name, shard_id):
    # STRAIT_CLOSED_SHARD_GRACE_S: strait's Kafka backend ends a closed parent only that long
    # after the split (it waits for writes from replicas that had not yet heard of it); on
    # the embedded backend and on AWS a fully read closed shard ends at once.
    deadline = time.time() + float(os.environ.get("STRAIT_CLOSED_SHARD_GRACE_S", "0")) + 1
    while True:
        recs, last = read_shard(client, name, shard_id, "TRIM_HORIZON")
        if last.get("NextShardIterator") is None or time.time() > deadline:
            break
        time.sleep(0.5)
    assert last.get("NextShardIterator") is None, "a fully read closed shard must end with NextShardIterator None"
    return recs, last


def test_split_shard(client):
    name = create_stream(client, unique("split"), 1)
    put_records(client, name, [(f"k{i}", f"before{i}".encode()) for i in range(20)])
    mid = 2**127
    resp = client.split_shard(StreamName=name, ShardToSplit=sid(0), NewStartingHashKey=str(mid))
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    wait_active(client, name)

    shards = {s["ShardId"]: s for s in describe_all_shards(client, name)}
    assert list(shards) == [sid(0), sid(1), sid(2)]
    parent = shards[sid(0)]
    assert SEQ_RE.match(parent["SequenceNumberRange"]["EndingSequenceNumber"])
    assert int(parent["SequenceNumberRange"]["EndingSequenceNumber"]) >= int(
        parent["SequenceNumberRange"]["StartingSequenceNumber"]
    )
    for c in (sid(1), sid(2)):
        assert shards[c]["ParentShardId"] == sid(0)
        assert "AdjacentParentShardId" not in shards[c]
        assert is_open(shards[c])
    assert shard_range(shards[sid(1)]) == (0, mid - 1)
    assert shard_range(shards[sid(2)]) == (mid, MAX_HASH)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 2

    # Reading the closed parent to its end: all the old records, then ChildShards and no iterator.
    recs, last = read_closed_to_end(client, name, sid(0))
    assert sorted(r["Data"] for r in recs) == sorted(f"before{i}".encode() for i in range(20))
    children = sorted(last["ChildShards"], key=lambda c: c["ShardId"])
    assert [c["ShardId"] for c in children] == [sid(1), sid(2)]
    for c in children:
        assert c["ParentShards"] == [sid(0)]
        assert (int(c["HashKeyRange"]["StartingHashKey"]), int(c["HashKeyRange"]["EndingHashKey"])) == shard_range(
            shards[c["ShardId"]]
        )
    # An iterator for the closed shard's last record also ends with the children.
    last_seq = recs[-1]["SequenceNumber"]
    it = client.get_shard_iterator(
        StreamName=name, ShardId=sid(0), ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=last_seq
    )["ShardIterator"]
    r = client.get_records(ShardIterator=it)
    assert r["Records"] == [] and r.get("NextShardIterator") is None and len(r["ChildShards"]) == 2

    # Writes go to the children by MD5.
    open_shards = [s for s in shards.values() if is_open(s)]
    for i in range(20):
        pk = f"after-{i}"
        w = client.put_record(StreamName=name, PartitionKey=pk, Data=b"after")
        assert w["ShardId"] in (sid(1), sid(2))
        assert w["ShardId"] == owning_shard(open_shards, md5_hash_key(pk))
    w = client.put_record(StreamName=name, PartitionKey="x", Data=b"x", ExplicitHashKey="0")
    assert w["ShardId"] == sid(1)
    recs, _ = read_closed_to_end(client, name, sid(0))
    assert len(recs) == 20, "a closed shard takes no new records"


def test_merge_shards(client):
    name = create_stream(client, unique("merge"), 2)
    put_records(client, name, [(f"k{i}", f"m{i}".encode()) for i in range(20)])
    client.merge_shards(StreamName=name, ShardToMerge=sid(0), AdjacentShardToMerge=sid(1))
    wait_active(client, name)
    shards = {s["ShardId"]: s for s in describe_all_shards(client, name)}
    assert list(shards) == [sid(0), sid(1), sid(2)]
    child = shards[sid(2)]
    assert child["ParentShardId"] == sid(0)
    assert child["AdjacentParentShardId"] == sid(1)
    assert shard_range(child) == (0, MAX_HASH)
    assert is_open(child)
    assert not is_open(shards[sid(0)]) and not is_open(shards[sid(1)])
    total = 0
    for p in (sid(0), sid(1)):
        recs, last = read_closed_to_end(client, name, p)
        total += len(recs)
        assert [c["ShardId"] for c in last["ChildShards"]] == [sid(2)]
        assert sorted(last["ChildShards"][0]["ParentShards"]) == [sid(0), sid(1)]
        assert (
            int(last["ChildShards"][0]["HashKeyRange"]["StartingHashKey"]),
            int(last["ChildShards"][0]["HashKeyRange"]["EndingHashKey"]),
        ) == (0, MAX_HASH)
    assert total == 20
    for i in range(10):
        assert client.put_record(StreamName=name, PartitionKey=f"n{i}", Data=b"x")["ShardId"] == sid(2)
    s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["OpenShardCount"] == 1


def check_open_cover(shards, n):
    opened = sorted((shard_range(s) for s in shards if is_open(s)))
    assert len(opened) == n, opened
    assert opened[0][0] == 0 and opened[-1][1] == MAX_HASH
    for (a_lo, a_hi), (b_lo, b_hi) in zip(opened, opened[1:]):
        assert a_hi + 1 == b_lo, "open shards must cover the hash space without holes or overlap"


def test_update_shard_count_up_and_down(client):
    name = create_stream(client, unique("usc"), 2)
    put_records(client, name, [(f"k{i}", b"v") for i in range(50)])
    r = client.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert r["StreamName"] == name
    assert r["CurrentShardCount"] == 2 and r["TargetShardCount"] == 4
    assert r.get("StreamARN", stream_arn(name)) == stream_arn(name)
    wait_active(client, name)
    shards = all_shards(client, name)
    check_open_cover(shards, 4)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 4
    ids = [s["ShardId"] for s in shards]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for s in shards:
        if not is_open(s):
            continue
        lo, hi = shard_range(s)
        assert abs((hi - lo + 1) - 2**126) <= 2**126 // 100, "UNIFORM_SCALING gives near-equal ranges"
    # The original records are all still readable, and their shards end with children.
    total = 0
    for s in shards:
        if is_open(s):
            recs, last = read_shard(client, name, s["ShardId"])
        else:
            recs, last = read_closed_to_end(client, name, s["ShardId"])
            assert last["ChildShards"]
        total += len(recs)
    assert total == 50
    # Writes land in open shards by MD5.
    for i in range(20):
        pk = f"w{i}"
        w = client.put_record(StreamName=name, PartitionKey=pk, Data=b"w")
        assert w["ShardId"] == owning_shard(shards, md5_hash_key(pk))

    r = client.update_shard_count(StreamName=name, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    assert r["CurrentShardCount"] == 4 and r["TargetShardCount"] == 2
    wait_active(client, name)
    shards = all_shards(client, name)
    check_open_cover(shards, 2)
    r = client.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"})
    assert len(r["Shards"]) == 2


def test_update_shard_count_two_to_three(client):
    name = create_stream(client, unique("usc3"), 2)
    client.update_shard_count(StreamName=name, TargetShardCount=3, ScalingType="UNIFORM_SCALING")
    wait_active(client, name)
    check_open_cover(all_shards(client, name), 3)
