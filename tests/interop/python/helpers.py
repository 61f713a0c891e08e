"""Shared helpers for the strait Python interop suites (boto3 side)."""

import hashlib
import re
import time
import uuid

import pytest
from botocore.exceptions import ClientError

MAX_HASH = 2**128 - 1
ACCOUNT = "000000000000"
REGION = "us-east-1"
SEQ_RE = re.compile(r"^(0|[1-9]\d{0,128})$")
# A StreamId shaped <20 chars>-<3 chars> makes SDKs ignore the custom endpoint (reference 1.1).
HAZARDOUS_STREAM_ID = re.compile(r"^.{20}-.{3}$")


def unique(prefix="py"):
    """A fresh stream name, unique across tests sharing one server."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def stream_arn(name):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def md5_hash_key(partition_key):
    """Kinesis hash key: MD5(utf8(pk)) as an unsigned 128-bit big-endian integer."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def uniform_ranges(n):
    """The hash ranges CreateStream gives n shards: step = 2^128 // n, the last ends at 2^128-1."""
    step = 2**128 // n
    out = []
    for i in range(n):
        start = i * step
        end = MAX_HASH if i == n - 1 else (i + 1) * step - 1
        out.append((start, end))
    return out


def shard_range(shard):
    r = shard["HashKeyRange"]
    return int(r["StartingHashKey"]), int(r["EndingHashKey"])


def is_open(shard):
    return "EndingSequenceNumber" not in shard["SequenceNumberRange"]


def owning_shard(shards, hash_key):
    """The open shard whose HashKeyRange contains hash_key."""
    found = [s["ShardId"] for s in shards if is_open(s) and shard_range(s)[0] <= hash_key <= shard_range(s)[1]]
    assert len(found) == 1, f"hash key {hash_key} owned by {found}"
    return found[0]


def wait_active(client, name, timeout=20.0):
    """Poll DescribeStreamSummary until the stream is ACTIVE."""
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
        if status == "ACTIVE":
            return
        time.sleep(0.05)
    raise AssertionError(f"stream {name} not ACTIVE after {timeout}s (last status {status})")


def create_stream(client, name, shards=1, **kw):
    client.create_stream(StreamName=name, ShardCount=shards, **kw)
    wait_active(client, name)
    return name


def all_shards(client, name):
    """Every shard of the stream via ListShards (paged)."""
    out = []
    resp = client.list_shards(StreamName=name)
    out.extend(resp["Shards"])
    while resp.get("NextToken"):
        resp = client.list_shards(NextToken=resp["NextToken"])
        out.extend(resp["Shards"])
    return out


def describe_all_shards(client, name):
    """Every shard of the stream via DescribeStream (paged with ExclusiveStartShardId)."""
    desc = client.describe_stream(StreamName=name)["StreamDescription"]
    shards = list(desc["Shards"])
    while desc["HasMoreShards"]:
        desc = client.describe_stream(StreamName=name, ExclusiveStartShardId=shards[-1]["ShardId"])[
            "StreamDescription"
        ]
        shards.extend(desc["Shards"])
    return shards


def read_shard(client, name, shard_id, iterator_type="TRIM_HORIZON", limit=None, max_calls=2000, **it_kw):
    """Read one shard from the given position to its end.

    Stops when GetRecords returns no records and says the reader is caught up (MillisBehindLatest 0
    or absent), or when NextShardIterator is None (closed shard fully read).
    Returns (records, last_response).
    """
    it = client.get_shard_iterator(StreamName=name, ShardId=shard_id, ShardIteratorType=iterator_type, **it_kw)[
        "ShardIterator"
    ]
    records = []
    resp = None
    empty_in_a_row = 0
    for _ in range(max_calls):
        kw = {"ShardIterator": it}
        if limit:
            kw["Limit"] = limit
        resp = client.get_records(**kw)
        records.extend(resp["Records"])
        it = resp.get("NextShardIterator")
        if it is None:
            return records, resp
        if not resp["Records"]:
            empty_in_a_row += 1
            if resp.get("MillisBehindLatest", 0) == 0 or empty_in_a_row >= 5:
                return records, resp
        else:
            empty_in_a_row = 0
    raise AssertionError(f"shard {shard_id} of {name} not read to its end in {max_calls} calls")


def expect_error(fn, codes, status=400, **kwargs):
    """Call fn(**kwargs), expect a ClientError whose code is in codes (str or set).

    Asserts a non-empty message and the HTTP status. Returns the ClientError.
    """
    if isinstance(codes, str):
        codes = {codes}
    with pytest.raises(ClientError) as ei:
        fn(**kwargs)
    err = ei.value.response.get("Error", {})
    meta = ei.value.response.get("ResponseMetadata", {})
    assert err.get("Code") in codes, f"expected one of {sorted(codes)}, got {err.get('Code')!r}: {err.get('Message')!r}"
    assert err.get("Message"), f"{err.get('Code')} carries an empty message"
    if status is not None:
        assert meta.get("HTTPStatusCode") == status, f"HTTP status {meta.get('HTTPStatusCode')} != {status}"
    return ei.value


def put_records(client, name, entries):
    """PutRecords of entries [(pk, data)] (<= 500); asserts full success, returns the result entries."""
    resp = client.put_records(
        StreamName=name, Records=[{"PartitionKey": pk, "Data": data} for pk, data in entries]
    )
    assert resp["FailedRecordCount"] == 0, resp
    assert len(resp["Records"]) == len(entries)
    return resp["Records"]
