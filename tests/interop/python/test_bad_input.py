"""Bad input for every operation: AWS's exception names, HTTP 400, a message, and no panic.

botocore's own parameter validation is switched off (raw_client) so the bad values reach the server.
Exception names follow AWS: model constraint violations (pattern, length, range, enum, required)
are ValidationException; semantic checks are InvalidArgumentException. Where AWS's own sources
disagree, a test accepts the documented alternatives and says so.
"""

import base64
import datetime
import http.client
import json
import types
import uuid

import pytest
from botocore.exceptions import ClientError

from helpers import MAX_HASH, create_stream, expect_error, read_shard, stream_arn, unique, uniform_ranges, wait_active

V = "ValidationException"
IA = "InvalidArgumentException"
RNF = "ResourceNotFoundException"
RIU = "ResourceInUseException"
LE = "LimitExceededException"
# Sources disagree on these (AWS docs vs the model vs recorded behaviour): accept either.
IA_OR_V = {IA, V}


@pytest.fixture(autouse=True)
def server_stays_alive(server):
    """After every bad request the server still runs, answers, and has logged no panic."""
    server.new_panics()
    yield
    server.assert_alive()


@pytest.fixture(scope="module")
def ctx(server):
    """A 3-shard stream with records on shards 0 and 1, and a stream whose shard 0 is closed."""
    c = server.client()
    name = create_stream(c, unique("bad"), 3)
    r = uniform_ranges(3)
    seq0 = c.put_record(StreamName=name, PartitionKey="p", Data=b"a", ExplicitHashKey=str(r[0][0]))
    seq1 = c.put_record(StreamName=name, PartitionKey="p", Data=b"b", ExplicitHashKey=str(r[1][0]))
    assert seq0["ShardId"] == "shardId-000000000000" and seq1["ShardId"] == "shardId-000000000001"
    closed = create_stream(c, unique("closed"), 1)
    c.split_shard(StreamName=closed, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127))
    wait_active(c, closed)
    return types.SimpleNamespace(
        name=name,
        arn=stream_arn(name),
        seq0=seq0["SequenceNumber"],
        seq1=seq1["SequenceNumber"],
        closed=closed,
        missing=f"does-not-exist-{uuid.uuid4().hex[:8]}",
    )


def call(client, op, kwargs, codes, status=400):
    return expect_error(getattr(client, op), codes, status=status, **kwargs)


# ---------------------------------------------------------------------------------------------
# Stream names (pattern [a-zA-Z0-9_.-]{1,128}) on every operation that takes one
# ---------------------------------------------------------------------------------------------

BAD_NAMES = {
    "empty": "",
    "space": "has space",
    "too-long": "a" * 129,
    "slash": "bad/slash",
    "colon": "arn:aws:x",
    "unicode": "naïve",
}

NAME_OPS = {
    "CreateStream": ("create_stream", {"ShardCount": 1}),
    "DeleteStream": ("delete_stream", {}),
    "DescribeStream": ("describe_stream", {}),
    "DescribeStreamSummary": ("describe_stream_summary", {}),
    "ListShards": ("list_shards", {}),
    "PutRecord": ("put_record", {"PartitionKey": "p", "Data": b"x"}),
    "PutRecords": ("put_records", {"Records": [{"PartitionKey": "p", "Data": b"x"}]}),
    "GetShardIterator": (
        "get_shard_iterator",
        {"ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"},
    ),
    "IncreaseStreamRetentionPeriod": ("increase_stream_retention_period", {"RetentionPeriodHours": 48}),
    "DecreaseStreamRetentionPeriod": ("decrease_stream_retention_period", {"RetentionPeriodHours": 24}),
    "AddTagsToStream": ("add_tags_to_stream", {"Tags": {"k": "v"}}),
    "RemoveTagsFromStream": ("remove_tags_from_stream", {"TagKeys": ["k"]}),
    "ListTagsForStream": ("list_tags_for_stream", {}),
    "StartStreamEncryption": ("start_stream_encryption", {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
    "StopStreamEncryption": ("stop_stream_encryption", {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
    "EnableEnhancedMonitoring": ("enable_enhanced_monitoring", {"ShardLevelMetrics": ["IncomingBytes"]}),
    "DisableEnhancedMonitoring": ("disable_enhanced_monitoring", {"ShardLevelMetrics": ["IncomingBytes"]}),
    "SplitShard": ("split_shard", {"ShardToSplit": "shardId-000000000000", "NewStartingHashKey": str(2**127)}),
    "MergeShards": (
        "merge_shards",
        {"ShardToMerge": "shardId-000000000000", "AdjacentShardToMerge": "shardId-000000000001"},
    ),
    "UpdateShardCount": ("update_shard_count", {"TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING"}),
}

ARN_ONLY_OPS = {
    "UpdateStreamMode": ("update_stream_mode", "StreamARN", {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
    "UpdateMaxRecordSize": ("update_max_record_size", "StreamARN", {"MaxRecordSizeInKiB": 2048}),
    "TagResource": ("tag_resource", "ResourceARN", {"Tags": {"k": "v"}}),
    "UntagResource": ("untag_resource", "ResourceARN", {"TagKeys": ["k"]}),
    "ListTagsForResource": ("list_tags_for_resource", "ResourceARN", {}),
}


@pytest.mark.parametrize("bad", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@pytest.mark.parametrize("op", list(NAME_OPS))
def test_invalid_stream_name(raw_client, op, bad):
    method, extra = NAME_OPS[op]
    call(raw_client, method, {"StreamName": bad, **extra}, V)


@pytest.mark.parametrize("op", [op for op in NAME_OPS if op != "CreateStream"])
def test_unknown_stream(raw_client, ctx, op):
    method, extra = NAME_OPS[op]
    call(raw_client, method, {"StreamName": ctx.missing, **extra}, RNF)


@pytest.mark.parametrize("op", [op for op in NAME_OPS if op != "CreateStream"])
def test_unknown_stream_by_arn(raw_client, ctx, op):
    method, extra = NAME_OPS[op]
    call(raw_client, method, {"StreamARN": stream_arn(ctx.missing), **extra}, RNF)


@pytest.mark.parametrize("op", list(ARN_ONLY_OPS))
def test_unknown_stream_arn_only_ops(raw_client, ctx, op):
    method, field, extra = ARN_ONLY_OPS[op]
    call(raw_client, method, {field: stream_arn(ctx.missing), **extra}, RNF)


@pytest.mark.parametrize(
    "arn",
    ["not-an-arn", "arn:aws:kinesis:us-east-1:123:stream/x", "arn:aws:s3:::bucket", ""],
    ids=["garbage", "short-account", "other-service", "empty"],
)
@pytest.mark.parametrize("op", ["DescribeStreamSummary", "PutRecord", "UpdateStreamMode", "TagResource"])
def test_malformed_arn(raw_client, op, arn):
    if op in ARN_ONLY_OPS:
        method, field, extra = ARN_ONLY_OPS[op]
    else:
        (method, extra), field = NAME_OPS[op], "StreamARN"
    call(raw_client, method, {field: arn, **extra}, V)


@pytest.mark.parametrize("op", ["DescribeStream", "DescribeStreamSummary", "DeleteStream", "PutRecord", "GetShardIterator"])
def test_neither_name_nor_arn(raw_client, op):
    method, extra = NAME_OPS[op]
    # The model makes both optional; AWS answers InvalidArgument or Validation depending on the op.
    call(raw_client, method, dict(extra), IA_OR_V)


def test_create_stream_missing_name(raw_client):
    call(raw_client, "create_stream", {"ShardCount": 1}, V)


# ---------------------------------------------------------------------------------------------
# CreateStream
# ---------------------------------------------------------------------------------------------


def test_create_stream_duplicate(raw_client, ctx):
    call(raw_client, "create_stream", {"StreamName": ctx.name, "ShardCount": 1}, RIU)
    # ... and the existing stream is untouched.
    d = raw_client.describe_stream_summary(StreamName=ctx.name)["StreamDescriptionSummary"]
    assert d["OpenShardCount"] == 3


@pytest.mark.parametrize("count", [0, -1, -1000])
def test_create_stream_shard_count_below_one(raw_client, count):
    name = unique("sc")
    call(raw_client, "create_stream", {"StreamName": name, "ShardCount": count}, V)
    call(raw_client, "describe_stream_summary", {"StreamName": name}, RNF)


def test_create_stream_shard_count_over_limit(raw_client):
    try:
        limit = raw_client.describe_limits()["ShardLimit"]
    except Exception:  # servers without DescribeLimits (kinesalite)
        limit = 100000
    name = unique("sc")
    call(raw_client, "create_stream", {"StreamName": name, "ShardCount": limit + 1}, {LE, V})
    call(raw_client, "describe_stream_summary", {"StreamName": name}, RNF)


@pytest.mark.parametrize(
    "extra,codes",
    [
        ({"ShardCount": 1, "StreamModeDetails": {"StreamMode": "FOO"}}, V),
        ({"ShardCount": 1, "MaxRecordSizeInKiB": 1023}, V),
        ({"ShardCount": 1, "MaxRecordSizeInKiB": 10241}, V),
        ({"ShardCount": 1, "Tags": {"": "v"}}, V),
        ({"ShardCount": 1, "Tags": {"k" * 129: "v"}}, V),
        ({"ShardCount": 1, "Tags": {"k": "v" * 257}}, V),
        # PROVISIONED needs a shard count.
        ({}, IA_OR_V),
        ({"StreamModeDetails": {"StreamMode": "PROVISIONED"}}, IA_OR_V),
    ],
    ids=["mode", "maxrec-low", "maxrec-high", "tag-empty-key", "tag-long-key", "tag-long-value", "no-count", "prov-no-count"],
)
def test_create_stream_bad_options(raw_client, extra, codes):
    name = unique("cs")
    call(raw_client, "create_stream", {"StreamName": name, **extra}, codes)
    call(raw_client, "describe_stream_summary", {"StreamName": name}, RNF)


# ---------------------------------------------------------------------------------------------
# PutRecord / PutRecords
# ---------------------------------------------------------------------------------------------

TOO_BIG = b"x" * (1024 * 1024 + 1)


@pytest.mark.parametrize(
    "extra,codes",
    [
        ({"PartitionKey": "", "Data": b"x"}, V),
        ({"PartitionKey": "k" * 257, "Data": b"x"}, V),
        ({"Data": b"x"}, V),
        ({"PartitionKey": "p"}, V),
        ({"PartitionKey": "p", "Data": TOO_BIG}, IA_OR_V),
        ({"PartitionKey": "p", "Data": b"x", "ExplicitHashKey": "abc"}, V),
        ({"PartitionKey": "p", "Data": b"x", "ExplicitHashKey": "-1"}, V),
        ({"PartitionKey": "p", "Data": b"x", "ExplicitHashKey": "0123"}, V),
        ({"PartitionKey": "p", "Data": b"x", "ExplicitHashKey": "1" * 40}, V),
        ({"PartitionKey": "p", "Data": b"x", "ExplicitHashKey": str(MAX_HASH + 1)}, IA),
        ({"PartitionKey": "p", "Data": b"x", "ExplicitHashKey": str(10**38 * 9)}, IA),
        ({"PartitionKey": "p", "Data": b"x", "SequenceNumberForOrdering": "abc"}, V),
    ],
    ids=[
        "pk-empty",
        "pk-257",
        "pk-missing",
        "data-missing",
        "data-too-big",
        "ehk-alpha",
        "ehk-negative",
        "ehk-leading-zero",
        "ehk-40-digits",
        "ehk-2^128",
        "ehk-9e38",
        "sfo-alpha",
    ],
)
def test_put_record_bad(raw_client, extra, codes):
    c = raw_client
    name = create_stream(c, unique("pr"), 1)
    call(c, "put_record", {"StreamName": name, **extra}, codes)
    recs, _ = read_shard(c, name, "shardId-000000000000")
    assert recs == [], "a rejected PutRecord must write nothing"


def test_put_record_bad_partition_key_of_max_len_plus_unicode(raw_client):
    # 256 characters is the limit, counted in characters: 256 two-byte characters are fine ...
    name = create_stream(raw_client, unique("pku"), 1)
    raw_client.put_record(StreamName=name, PartitionKey="é" * 256, Data=b"x")
    # ... and 257 are not.
    call(raw_client, "put_record", {"StreamName": name, "PartitionKey": "é" * 257, "Data": b"x"}, V)


def ok(i):
    return {"PartitionKey": f"p{i}", "Data": b"ok"}


@pytest.mark.parametrize(
    "records,codes",
    [
        ([ok(i) for i in range(501)], V),
        ([], V),
        (None, V),
        ([ok(0), {"PartitionKey": "", "Data": b"x"}, ok(2)], V),
        ([ok(0), {"PartitionKey": "k" * 257, "Data": b"x"}], V),
        ([ok(0), {"Data": b"x"}], V),
        ([ok(0), {"PartitionKey": "p"}], V),
        ([ok(0), {"PartitionKey": "p", "Data": b"x", "ExplicitHashKey": "x1"}], V),
        ([ok(0), {"PartitionKey": "p", "Data": b"x", "ExplicitHashKey": str(MAX_HASH + 1)}], IA),
        ([ok(0), {"PartitionKey": "p", "Data": TOO_BIG}], IA_OR_V),
    ],
    ids=["501", "zero", "missing", "pk-empty", "pk-257", "pk-missing", "data-missing", "ehk-alpha", "ehk-2^128", "too-big"],
)
def test_put_records_bad(raw_client, records, codes):
    c = raw_client
    name = create_stream(c, unique("prs"), 1)
    kw = {"StreamName": name}
    if records is not None:
        kw["Records"] = records
    call(c, "put_records", kw, codes)
    recs, _ = read_shard(c, name, "shardId-000000000000")
    assert recs == [], "a rejected PutRecords must write none of its records"


def test_put_records_request_too_large(raw_client):
    """11 records of 1 MiB: over the 10 MiB request limit (and AWS's older 5 MiB one).

    An AWS-shaped 400 (InvalidArgument or Validation) or a bare 413 are both what AWS-like servers do.
    """
    c = raw_client
    name = create_stream(c, unique("prbig"), 1)
    big = b"y" * (1024 * 1024 - 16)
    with pytest.raises(ClientError) as ei:
        c.put_records(StreamName=name, Records=[{"PartitionKey": "p", "Data": big}] * 11)
    status = ei.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status in (400, 413), status
    if status == 400:
        assert ei.value.response["Error"]["Code"] in IA_OR_V, ei.value.response["Error"]
    recs, _ = read_shard(c, name, "shardId-000000000000")
    assert recs == []


# ---------------------------------------------------------------------------------------------
# GetShardIterator
# ---------------------------------------------------------------------------------------------


def future():
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)


GSI_CASES = [
    ("type-bogus", {"ShardIteratorType": "FOO"}, V),
    ("type-lowercase", {"ShardIteratorType": "latest"}, V),
    ("type-missing", {}, V),
    ("shard-missing", {"ShardId": None, "ShardIteratorType": "LATEST"}, V),
    ("shard-bad-chars", {"ShardId": "shard id!", "ShardIteratorType": "LATEST"}, V),
    ("shard-unknown", {"ShardId": "shardId-000000000099", "ShardIteratorType": "LATEST"}, RNF),
    ("at-seq-without-seq", {"ShardIteratorType": "AT_SEQUENCE_NUMBER"}, IA),
    ("after-seq-without-seq", {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER"}, IA),
    ("trim-with-seq", {"ShardIteratorType": "TRIM_HORIZON", "StartingSequenceNumber": "SEQ0"}, IA),
    ("latest-with-seq", {"ShardIteratorType": "LATEST", "StartingSequenceNumber": "SEQ0"}, IA),
    ("at-timestamp-without-ts", {"ShardIteratorType": "AT_TIMESTAMP"}, IA),
    ("at-timestamp-future", {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "FUTURE"}, IA),
    ("seq-alpha", {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "abc"}, V),
    ("seq-negative", {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "-5"}, V),
    ("seq-made-up", {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "12345"}, IA),
    ("seq-of-other-shard", {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "SEQ1"}, IA),
    ("after-seq-of-other-shard", {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": "SEQ1"}, IA),
    ("seq-huge", {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "9" * 129}, IA),
]


@pytest.mark.parametrize("extra,codes", [c[1:] for c in GSI_CASES], ids=[c[0] for c in GSI_CASES])
def test_get_shard_iterator_bad(raw_client, ctx, extra, codes):
    kw = {"StreamName": ctx.name, "ShardId": "shardId-000000000000", **extra}
    kw = {k: v for k, v in kw.items() if v is not None}
    for k, v in list(kw.items()):
        if v == "SEQ0":
            kw[k] = ctx.seq0
        elif v == "SEQ1":
            kw[k] = ctx.seq1
        elif v == "FUTURE":
            kw[k] = future()
    call(raw_client, "get_shard_iterator", kw, codes)


# ---------------------------------------------------------------------------------------------
# GetRecords
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_iterator(server, ctx):
    c = server.client()
    return c.get_shard_iterator(StreamName=ctx.name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]


def tamper(it, pos):
    ch = it[pos]
    repl = "A" if ch != "A" else "B"
    return it[:pos] + repl + it[pos + 1 :]


@pytest.mark.parametrize(
    "how",
    ["garbage", "middle", "start", "end-1", "truncated", "doubled", "base64-junk"],
)
def test_get_records_bad_iterator(raw_client, good_iterator, how):
    it = good_iterator
    bad = {
        "garbage": "not-an-iterator",
        "middle": tamper(it, len(it) // 2),
        "start": tamper(it, 3),
        "end-1": tamper(it, len(it) - 2),
        "truncated": it[: len(it) // 2],
        "doubled": (it + it)[:512],
        "base64-junk": base64.b64encode(b"\x00" * 96).decode(),
    }[how]
    assert bad != it
    call(raw_client, "get_records", {"ShardIterator": bad}, IA)


@pytest.mark.parametrize(
    "kw,codes",
    [
        ({"ShardIterator": ""}, V),
        ({"ShardIterator": "a" * 513}, V),
        ({}, V),
        ({"ShardIterator": "GOOD", "Limit": 0}, IA_OR_V),
        ({"ShardIterator": "GOOD", "Limit": -1}, IA_OR_V),
        ({"ShardIterator": "GOOD", "Limit": 10001}, IA_OR_V),
    ],
    ids=["empty", "513-chars", "missing", "limit-0", "limit-negative", "limit-10001"],
)
def test_get_records_bad_params(raw_client, good_iterator, kw, codes):
    kw = {k: (good_iterator if v == "GOOD" else v) for k, v in kw.items()}
    call(raw_client, "get_records", kw, codes)


def test_get_records_iterator_of_deleted_stream(raw_client):
    c = raw_client
    name = create_stream(c, unique("gone"), 1)
    it = c.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    c.delete_stream(StreamName=name)
    c.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    call(c, "get_records", {"ShardIterator": it}, RNF)


def test_get_records_iterator_of_recreated_stream(raw_client):
    """An iterator issued for a deleted stream does not read a new stream of the same name."""
    c = raw_client
    name = create_stream(c, unique("again"), 1)
    c.put_record(StreamName=name, PartitionKey="p", Data=b"old")
    it = c.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    c.delete_stream(StreamName=name)
    c.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    create_stream(c, name, 1)
    c.put_record(StreamName=name, PartitionKey="p", Data=b"new")
    try:
        r = c.get_records(ShardIterator=it)
    except Exception as e:  # an error is the right answer
        assert getattr(e, "response", {}).get("Error", {}).get("Code") in {RNF, IA, "ExpiredIteratorException"}, e
    else:
        assert [x["Data"] for x in r["Records"]] in ([], [b"new"]), r["Records"]


# ---------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op,hours,codes",
    [
        ("increase_stream_retention_period", 23, IA),
        ("increase_stream_retention_period", 8761, IA),
        ("increase_stream_retention_period", 100000, IA),
        ("increase_stream_retention_period", 30, IA),  # below the current 48
        ("decrease_stream_retention_period", 72, IA),  # above the current 48
        ("decrease_stream_retention_period", 23, IA),
        ("decrease_stream_retention_period", 0, IA_OR_V),
        ("decrease_stream_retention_period", -5, IA_OR_V),
        ("increase_stream_retention_period", None, V),
        ("decrease_stream_retention_period", None, V),
    ],
    ids=["inc-23", "inc-8761", "inc-100000", "inc-below-current", "dec-above-current", "dec-23", "dec-0", "dec-neg", "inc-missing", "dec-missing"],
)
def test_retention_bad(raw_client, op, hours, codes):
    c = raw_client
    name = create_stream(c, unique("ret"), 1)
    c.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    kw = {"StreamName": name}
    if hours is not None:
        kw["RetentionPeriodHours"] = hours
    call(c, op, kw, codes)
    assert c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48


# ---------------------------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags,codes",
    [
        ({}, V),
        ({"": "v"}, V),
        ({"k" * 129: "v"}, V),
        ({"k": "v" * 257}, V),
        ({"bad#key": "v"}, IA),
        ({"bad*key": "v"}, IA),
        ({"k": "bad!value"}, IA),
        ({"aws:reserved": "v"}, IA),
        ({f"t{i}": "v" for i in range(51)}, {IA, LE}),
        ({f"t{i}": "v" for i in range(201)}, V),
    ],
    ids=["empty-map", "empty-key", "key-129", "value-257", "key-hash", "key-star", "value-bang", "aws-prefix", "51-tags", "201-tags"],
)
@pytest.mark.parametrize("flavour", ["AddTagsToStream", "TagResource"])
def test_add_tags_bad(raw_client, flavour, tags, codes):
    c = raw_client
    name = create_stream(c, unique("tg"), 1)
    if flavour == "AddTagsToStream":
        call(c, "add_tags_to_stream", {"StreamName": name, "Tags": tags}, codes)
    else:
        call(c, "tag_resource", {"ResourceARN": stream_arn(name), "Tags": tags}, codes)
    assert c.list_tags_for_stream(StreamName=name)["Tags"] == [], "a rejected tag request must add no tag"


def test_too_many_tags_in_total(raw_client):
    c = raw_client
    name = create_stream(c, unique("tg50"), 1)
    c.add_tags_to_stream(StreamName=name, Tags={f"a{i:02d}": "v" for i in range(45)})
    call(c, "add_tags_to_stream", {"StreamName": name, "Tags": {f"b{i}": "v" for i in range(6)}}, {IA, LE})
    call(c, "tag_resource", {"ResourceARN": stream_arn(name), "Tags": {f"c{i}": "v" for i in range(6)}}, {IA, LE})
    keys = [t["Key"] for t in c.list_tags_for_stream(StreamName=name, Limit=50)["Tags"]]
    assert len(keys) == 45
    # Overwriting existing keys does not count as new tags.
    c.add_tags_to_stream(StreamName=name, Tags={f"a{i:02d}": "w" for i in range(45)})


@pytest.mark.parametrize(
    "keys,codes",
    [([], V), ([""], V), (["k" * 129], V), ([f"k{i}" for i in range(51)], V), (None, V)],
    ids=["empty-list", "empty-key", "key-129", "51-keys", "missing"],
)
@pytest.mark.parametrize("flavour", ["RemoveTagsFromStream", "UntagResource"])
def test_remove_tags_bad(raw_client, ctx, flavour, keys, codes):
    if flavour == "RemoveTagsFromStream":
        kw = {"StreamName": ctx.name}
        method = "remove_tags_from_stream"
    else:
        kw = {"ResourceARN": ctx.arn}
        method = "untag_resource"
    if keys is not None:
        kw["TagKeys"] = keys
    call(raw_client, method, kw, codes)


@pytest.mark.parametrize(
    "kw,codes",
    [({"Limit": 0}, V), ({"Limit": 51}, V), ({"Limit": -1}, V), ({"ExclusiveStartTagKey": ""}, V)],
    ids=["limit-0", "limit-51", "limit-neg", "start-empty"],
)
def test_list_tags_for_stream_bad(raw_client, ctx, kw, codes):
    call(raw_client, "list_tags_for_stream", {"StreamName": ctx.name, **kw}, codes)


def test_list_tags_for_resource_missing_arn(raw_client):
    call(raw_client, "list_tags_for_resource", {}, V)


# ---------------------------------------------------------------------------------------------
# Describe / List paging parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,codes",
    [({"Limit": 0}, V), ({"Limit": 10001}, V), ({"ExclusiveStartShardId": "bad id"}, V), ({"ExclusiveStartShardId": ""}, V)],
    ids=["limit-0", "limit-10001", "start-bad", "start-empty"],
)
def test_describe_stream_bad(raw_client, ctx, kw, codes):
    call(raw_client, "describe_stream", {"StreamName": ctx.name, **kw}, codes)


@pytest.mark.parametrize(
    "kw,codes",
    [
        ({"Limit": 0}, V),
        ({"Limit": 10001}, V),
        ({"ExclusiveStartStreamName": "bad name"}, V),
        ({"NextToken": "not-a-token"}, {IA, "ExpiredNextTokenException"}),
        ({"NextToken": ""}, V),
    ],
    ids=["limit-0", "limit-10001", "start-bad", "token-garbage", "token-empty"],
)
def test_list_streams_bad(raw_client, kw, codes):
    call(raw_client, "list_streams", kw, codes)


@pytest.mark.parametrize(
    "case", ["neither-name-nor-token", "name-and-token", "token-and-exclusive-start", "token-garbage"]
)
def test_list_shards_name_and_token_rules(raw_client, ctx, case):
    c = raw_client
    token = c.list_shards(StreamName=ctx.name, MaxResults=1)["NextToken"]
    kw, codes = {
        "neither-name-nor-token": ({}, IA),
        "name-and-token": ({"StreamName": ctx.name, "NextToken": token}, IA),
        "token-and-exclusive-start": ({"NextToken": token, "ExclusiveStartShardId": "shardId-000000000000"}, IA),
        "token-garbage": ({"NextToken": "garbage-token"}, {IA, "ExpiredNextTokenException"}),
    }[case]
    call(c, "list_shards", kw, codes)


@pytest.mark.parametrize(
    "kw,codes",
    [
        ({"MaxResults": 0}, V),
        ({"MaxResults": 10001}, V),
        ({"ExclusiveStartShardId": "bad id"}, V),
        ({"ShardFilter": {"Type": "FOO"}}, V),
        ({"ShardFilter": {}}, V),
        ({"ShardFilter": {"Type": "AFTER_SHARD_ID"}}, IA),
        ({"ShardFilter": {"Type": "AT_TIMESTAMP"}}, IA),
        ({"ShardFilter": {"Type": "FROM_TIMESTAMP"}}, IA),
    ],
    ids=["max-0", "max-10001", "start-bad", "filter-type-bogus", "filter-no-type", "after-no-shard", "at-ts-no-ts", "from-ts-no-ts"],
)
def test_list_shards_bad(raw_client, ctx, kw, codes):
    call(raw_client, "list_shards", {"StreamName": ctx.name, **kw}, codes)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,codes",
    [
        ({"StreamModeDetails": {"StreamMode": "FOO"}}, V),
        ({"StreamModeDetails": {}}, V),
        ({}, V),
    ],
    ids=["mode-bogus", "mode-missing", "details-missing"],
)
def test_update_stream_mode_bad(raw_client, ctx, kw, codes):
    call(raw_client, "update_stream_mode", {"StreamARN": ctx.arn, **kw}, codes)


def test_update_stream_mode_needs_arn(raw_client, ctx):
    call(raw_client, "update_stream_mode", {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}}, V)


@pytest.mark.parametrize("size", [0, 1023, 10241, -1, None], ids=["0", "1023", "10241", "neg", "missing"])
def test_update_max_record_size_bad(raw_client, ctx, size):
    kw = {"StreamARN": ctx.arn}
    if size is not None:
        kw["MaxRecordSizeInKiB"] = size
    call(raw_client, "update_max_record_size", kw, V)


@pytest.mark.parametrize(
    "kw,codes",
    [
        ({"EncryptionType": "FOO", "KeyId": "alias/aws/kinesis"}, V),
        ({"EncryptionType": "KMS", "KeyId": ""}, V),
        ({"EncryptionType": "KMS"}, V),
        ({"KeyId": "alias/aws/kinesis"}, V),
        ({"EncryptionType": "NONE", "KeyId": "alias/aws/kinesis"}, IA_OR_V),
    ],
    ids=["type-bogus", "key-empty", "key-missing", "type-missing", "type-none"],
)
def test_start_stream_encryption_bad(raw_client, ctx, kw, codes):
    call(raw_client, "start_stream_encryption", {"StreamName": ctx.name, **kw}, codes)


@pytest.mark.parametrize(
    "kw", [{"EncryptionType": "FOO", "KeyId": "k"}, {"EncryptionType": "KMS", "KeyId": ""}], ids=["type-bogus", "key-empty"]
)
def test_stop_stream_encryption_bad(raw_client, ctx, kw):
    call(raw_client, "stop_stream_encryption", {"StreamName": ctx.name, **kw}, V)


@pytest.mark.parametrize(
    "metrics", [["Bogus"], [], None, ["IncomingBytes"] * 8], ids=["bogus", "empty", "missing", "eight"]
)
@pytest.mark.parametrize("op", ["enable_enhanced_monitoring", "disable_enhanced_monitoring"])
def test_enhanced_monitoring_bad(raw_client, ctx, op, metrics):
    kw = {"StreamName": ctx.name}
    if metrics is not None:
        kw["ShardLevelMetrics"] = metrics
    call(raw_client, op, kw, V)


# ---------------------------------------------------------------------------------------------
# Resharding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shard,key,codes",
    [
        ("shardId-000000000000", "0", IA),  # the shard's own StartingHashKey
        ("shardId-000000000000", "1", IA),  # StartingHashKey + 1
        ("shardId-000000000000", "END_OF_0", IA),  # the shard's own EndingHashKey
        ("shardId-000000000000", "LAST_OF_0", IA),  # EndingHashKey + 1, in shard 1
        ("shardId-000000000000", "MID_OF_1", IA),  # inside another shard's range
        ("shardId-000000000001", "0", IA),  # below the shard's range
        ("shardId-000000000000", str(MAX_HASH + 1), IA),
        ("shardId-000000000000", "abc", V),
        ("shardId-000000000000", "-1", V),
        ("shardId-000000000000", None, V),
        ("shardId-000000000099", str(2**60), RNF),
        ("bad shard", str(2**60), V),
        (None, str(2**60), V),
    ],
    ids=["at-start", "start+1", "at-end", "past-end", "other-shard", "below-range", "2^128", "alpha", "negative", "key-missing", "unknown-shard", "shard-bad", "shard-missing"],
)
def test_split_shard_bad(raw_client, shard, key, codes):
    c = raw_client
    name = create_stream(c, unique("sp"), 2)
    r = uniform_ranges(2)
    key = {"END_OF_0": str(r[0][1]), "LAST_OF_0": str(r[0][1] + 1), "MID_OF_1": str((r[1][0] + r[1][1]) // 2)}.get(key, key)
    kw = {"StreamName": name}
    if shard is not None:
        kw["ShardToSplit"] = shard
    if key is not None:
        kw["NewStartingHashKey"] = key
    call(c, "split_shard", kw, codes)
    assert len(c.list_shards(StreamName=name)["Shards"]) == 2, "a rejected split must not change the shards"


def test_split_closed_shard(raw_client, ctx):
    call(
        raw_client,
        "split_shard",
        {"StreamName": ctx.closed, "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": str(2**126)},
        {IA, RIU},
    )


@pytest.mark.parametrize(
    "a,b,codes",
    [
        ("shardId-000000000000", "shardId-000000000002", IA),  # not adjacent
        ("shardId-000000000002", "shardId-000000000000", IA),
        ("shardId-000000000001", "shardId-000000000001", IA),  # itself
        ("shardId-000000000000", "shardId-000000000099", RNF),
        ("shardId-000000000099", "shardId-000000000000", RNF),
        ("bad shard", "shardId-000000000000", V),
        ("shardId-000000000000", None, V),
    ],
    ids=["non-adjacent", "non-adjacent-rev", "self", "unknown-adjacent", "unknown-first", "bad-id", "missing"],
)
def test_merge_shards_bad(raw_client, a, b, codes):
    c = raw_client
    name = create_stream(c, unique("mg"), 3)
    kw = {"StreamName": name, "ShardToMerge": a}
    if b is not None:
        kw["AdjacentShardToMerge"] = b
    call(c, "merge_shards", kw, codes)
    assert len(c.list_shards(StreamName=name)["Shards"]) == 3, "a rejected merge must not change the shards"


def test_merge_closed_shards(raw_client, ctx):
    # shard 0 is closed; 1 and 2 are its children (adjacent, open).
    call(
        raw_client,
        "merge_shards",
        {"StreamName": ctx.closed, "ShardToMerge": "shardId-000000000000", "AdjacentShardToMerge": "shardId-000000000001"},
        {IA, RIU},
    )


@pytest.mark.parametrize(
    "kw,codes",
    [
        ({"TargetShardCount": 0, "ScalingType": "UNIFORM_SCALING"}, V),
        ({"TargetShardCount": -2, "ScalingType": "UNIFORM_SCALING"}, V),
        ({"TargetShardCount": 9, "ScalingType": "UNIFORM_SCALING"}, {IA, LE}),  # more than double 4
        ({"TargetShardCount": 1, "ScalingType": "UNIFORM_SCALING"}, {IA, LE}),  # less than half of 4
        ({"TargetShardCount": 4, "ScalingType": "FOO"}, V),
        ({"TargetShardCount": 4}, V),
        ({"ScalingType": "UNIFORM_SCALING"}, V),
    ],
    ids=["zero", "negative", "more-than-double", "less-than-half", "type-bogus", "type-missing", "target-missing"],
)
def test_update_shard_count_bad(raw_client, kw, codes):
    c = raw_client
    name = create_stream(c, unique("usc"), 4)
    call(c, "update_shard_count", {"StreamName": name, **kw}, codes)
    assert c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 4


def test_put_to_closed_shard_goes_to_child(raw_client, ctx):
    """Not an error: a write whose hash key belonged to a closed shard lands on the open child."""
    r = raw_client.put_record(StreamName=ctx.closed, PartitionKey="p", Data=b"x", ExplicitHashKey="5")
    assert r["ShardId"] == "shardId-000000000001"


# ---------------------------------------------------------------------------------------------
# Raw HTTP: bodies, targets and content types that no SDK would send
# ---------------------------------------------------------------------------------------------

JSON_CT = "application/x-amz-json-1.1"


def raw(server, target, body, content_type=JSON_CT, method="POST", extra_headers=None):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    headers = {
        "Host": f"{server.host}:{server.port}",
        "X-Amz-Date": "20260101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDSTRAITTEST/20260101/us-east-1/kinesis/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + "0" * 64,
    }
    if content_type is not None:
        headers["Content-Type"] = content_type
    if target is not None:
        headers["X-Amz-Target"] = target
    headers.update(extra_headers or {})
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        conn.request(method, "/", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def error_type(data):
    doc = json.loads(data)
    t = doc.get("__type", "")
    return t.split("#")[-1], doc.get("message") or doc.get("Message")


def expect_raw_error(server, target, body, want, status=400, **kw):
    st, headers, data = raw(server, target, body, **kw)
    assert st == status, (st, data[:300])
    want = {want} if isinstance(want, str) else want
    if "cbor" in headers.get("content-type", ""):
        # No CBOR decoder here: look for the exception name in the CBOR map's text.
        assert any(w.encode() in data for w in want), (want, data[:300])
        return
    t, msg = error_type(data)
    assert t in want, (t, msg)
    assert msg, f"{t} without a message"
    return t, msg


@pytest.mark.parametrize(
    "body",
    ['{"StreamName": ', "not json at all", "{'StreamName': 'single-quotes'}", '{"a":1}}', "\x00\x01\x02", "[]", '"a string"', "42", "null"],
    ids=["truncated", "text", "single-quotes", "trailing", "binary", "array", "string", "number", "null"],
)
def test_raw_malformed_json(server, body):
    expect_raw_error(server, "Kinesis_20131202.CreateStream", body, "SerializationException")


@pytest.mark.parametrize(
    "op,body",
    [
        ("CreateStream", {"StreamName": "x-type", "ShardCount": "abc"}),
        ("CreateStream", {"StreamName": 123, "ShardCount": 1}),
        ("CreateStream", {"StreamName": ["x"], "ShardCount": 1}),
        ("CreateStream", {"StreamName": "x-type", "ShardCount": True}),
        ("ListStreams", {"Limit": "ten"}),
        ("PutRecord", {"StreamName": "x", "PartitionKey": "p", "Data": "not base64!"}),
        ("PutRecord", {"StreamName": "x", "PartitionKey": "p", "Data": "abc"}),
        ("PutRecord", {"StreamName": "x", "PartitionKey": "p", "Data": 5}),
        ("PutRecords", {"StreamName": "x", "Records": {"PartitionKey": "p", "Data": "AA=="}}),
        ("AddTagsToStream", {"StreamName": "x", "Tags": ["a", "b"]}),
        ("GetShardIterator", {"StreamName": "x", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "yesterday"}),
    ],
    ids=["count-string", "name-number", "name-list", "count-bool", "limit-string", "data-bad-b64", "data-b64-len", "data-number", "records-object", "tags-list", "timestamp-string"],
)
def test_raw_wrong_types(server, op, body):
    expect_raw_error(server, f"Kinesis_20131202.{op}", body, "SerializationException")


@pytest.mark.parametrize(
    "target",
    ["Kinesis_20131202.FooBar", "Kinesis_20131202.", "Kinesis_20131202.createStream", "DynamoDB_20120810.ListTables", "Kinesis_20990101.ListStreams", "garbage", None],
    ids=["unknown-op", "empty-op", "wrong-case", "other-service", "other-version", "garbage", "missing"],
)
def test_raw_unknown_target(server, target):
    expect_raw_error(server, target, {}, "UnknownOperationException")


def test_raw_empty_body(server):
    # No body at all: AWS answers SerializationException; reading it as {} would give ValidationException.
    expect_raw_error(server, "Kinesis_20131202.CreateStream", b"", {"SerializationException", V})


@pytest.mark.parametrize("ct", ["text/plain", "application/xml", "application/x-www-form-urlencoded"], ids=["text", "xml", "form"])
def test_raw_wrong_content_type(server, ct):
    st, _, data = raw(server, "Kinesis_20131202.ListStreams", {}, content_type=ct)
    assert 400 <= st < 500, (st, data[:300])


def test_raw_missing_content_type(server):
    """AWS refuses it; reading the body as JSON is a harmless leniency. Either way no 5xx."""
    st, _, data = raw(server, "Kinesis_20131202.ListStreams", {}, content_type=None)
    assert st < 500, (st, data[:300])
    if st == 200:
        assert "StreamNames" in json.loads(data)


def test_raw_cbor_content_type_with_json_body(server):
    expect_raw_error(
        server, "Kinesis_20131202.CreateStream", {"StreamName": "cbor-json", "ShardCount": 1}, "SerializationException",
        content_type="application/x-amz-cbor-1.1",
    )


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_raw_other_methods(server, method):
    st, _, data = raw(server, "Kinesis_20131202.ListStreams", b"" if method != "PUT" else b"{}", method=method)
    assert 400 <= st < 500, (st, data[:300])


@pytest.mark.parametrize("mib", [9, 24], ids=["12MiB-body", "32MiB-body"])
def test_raw_oversized_body(server, mib):
    """A body over the Kinesis request limits (and over the server's body cap) is refused without harm.

    The server may answer before reading it all and close the connection; that is fine too.
    """
    big = base64.b64encode(b"z" * (mib * 1024 * 1024)).decode()
    body = json.dumps({"StreamName": "huge", "Records": [{"PartitionKey": "p", "Data": big}]})
    try:
        st, _, data = raw(server, "Kinesis_20131202.PutRecords", body)
    except (ConnectionError, http.client.HTTPException):
        return
    assert 400 <= st < 500, (st, data[:300])


def test_raw_missing_required_member(server):
    expect_raw_error(server, "Kinesis_20131202.PutRecord", {"PartitionKey": "p", "Data": "AA=="}, IA_OR_V)
    expect_raw_error(server, "Kinesis_20131202.GetRecords", {}, V)


def test_raw_lenient_cases_succeed(server, ctx):
    """What AWS accepts: unknown members are ignored, null optional members count as absent."""
    st, headers, data = raw(server, "Kinesis_20131202.DescribeStreamSummary", {"StreamName": ctx.name, "Bogus": 1})
    assert st == 200, data[:300]
    assert headers.get("content-type", "").startswith(JSON_CT)
    assert json.loads(data)["StreamDescriptionSummary"]["StreamName"] == ctx.name
    st, _, data = raw(server, "Kinesis_20131202.ListStreams", {"Limit": None, "ExclusiveStartStreamName": None})
    assert st == 200, data[:300]
    assert "StreamNames" in json.loads(data)


def test_raw_error_response_shape(server, ctx):
    st, headers, data = raw(server, "Kinesis_20131202.DescribeStreamSummary", {"StreamName": ctx.missing})
    assert st == 400
    assert headers.get("content-type", "").startswith(JSON_CT)
    t, msg = error_type(data)
    assert t == RNF and msg
    assert ctx.missing in msg, "the message names the stream"
