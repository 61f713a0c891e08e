"""The AWS CLI against strait: every stream, record, tag, retention and reshard command.

Two CLIs: v1 from PyPI (in the venv), and v2 from Debian's `awscli` package (/usr/bin/aws, 2.9),
which tests/run.sh installs. v1 sends --data (and Data inside --records) as raw text; v2 is told
to do the same with `--cli-binary-format raw-in-base64-out`. Both print blobs as base64.
"""

import base64
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import DUMMY_ENV
from helpers import MAX_HASH, stream_arn, unique


V2 = "/usr/bin/aws"


class Cli:
    def __init__(self, endpoint, version):
        self.endpoint = endpoint
        self.version = version
        self.env = dict(os.environ)
        self.env.update(DUMMY_ENV)
        self.env.pop("AWS_PROFILE", None)

    def run(self, *args):
        if self.version == "v1":
            base = [sys.executable, "-m", "awscli"]
            extra = []
        else:
            base = [V2]
            extra = ["--cli-binary-format", "raw-in-base64-out"]
        cmd = [*base, "kinesis", *args, "--endpoint-url", self.endpoint, "--output", "json", *extra]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120)

    def __call__(self, *args):
        p = self.run(*args)
        assert p.returncode == 0, f"aws kinesis {' '.join(args)} failed ({p.returncode}):\n{p.stderr}"
        return json.loads(p.stdout) if p.stdout.strip() else None

    def fails(self, code, *args):
        p = self.run(*args)
        assert p.returncode != 0, f"aws kinesis {' '.join(args)} unexpectedly succeeded:\n{p.stdout}"
        assert code in p.stderr, f"expected {code} in:\n{p.stderr}"
        return p.stderr


@pytest.fixture(scope="module", params=["v1", "v2"])
def aws(server, request):
    if request.param == "v2":
        if not os.path.exists(V2):
            pytest.fail(f"AWS CLI v2 missing at {V2}: tests/run.sh installs Debian's awscli package")
        out = subprocess.run([V2, "--version"], capture_output=True, text=True).stdout
        assert out.startswith("aws-cli/2."), out
    return Cli(server.endpoint, request.param)


def datas(records):
    return [base64.b64decode(r["Data"]).decode() for r in records]


def wait_exists(aws, name):
    aws("wait", "stream-exists", "--stream-name", name)


def test_cli_stream_lifecycle(aws):
    name = unique("cli")
    assert aws("create-stream", "--stream-name", name, "--shard-count", "2") is None
    wait_exists(aws, name)

    s = aws("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert s["StreamName"] == name and s["StreamStatus"] == "ACTIVE"
    assert s["StreamARN"] == stream_arn(name)
    assert s["OpenShardCount"] == 2 and s["RetentionPeriodHours"] == 24

    d = aws("describe-stream", "--stream-name", name)["StreamDescription"]
    assert [x["ShardId"] for x in d["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]

    names = aws("list-streams")["StreamNames"]
    assert name in names

    shards = aws("list-shards", "--stream-name", name)["Shards"]
    assert len(shards) == 2
    assert shards[0]["HashKeyRange"]["StartingHashKey"] == "0"
    assert shards[1]["HashKeyRange"]["EndingHashKey"] == str(MAX_HASH)
    shards = aws("list-shards", "--stream-name", name, "--shard-filter", "Type=AT_LATEST")["Shards"]
    assert len(shards) == 2

    aws.fails("ResourceInUseException", "create-stream", "--stream-name", name, "--shard-count", "1")

    assert aws("delete-stream", "--stream-name", name) is None
    aws("wait", "stream-not-exists", "--stream-name", name)
    aws.fails("ResourceNotFoundException", "describe-stream-summary", "--stream-name", name)


def test_cli_put_and_get_records(aws):
    name = unique("clirec")
    aws("create-stream", "--stream-name", name, "--shard-count", "1")
    wait_exists(aws, name)
    shard = "shardId-000000000000"

    t_before = time.time() - 2
    r1 = aws("put-record", "--stream-name", name, "--partition-key", "k", "--data", "first")
    assert r1["ShardId"] == shard and r1["SequenceNumber"].isdigit()
    r2 = aws(
        "put-record", "--stream-name", name, "--partition-key", "k", "--data", "second",
        "--sequence-number-for-ordering", r1["SequenceNumber"],
    )
    assert int(r2["SequenceNumber"]) > int(r1["SequenceNumber"])
    recs = json.dumps([{"Data": "third", "PartitionKey": "k"}, {"Data": "fourth", "PartitionKey": "k2"}])
    rr = aws("put-records", "--stream-name", name, "--records", recs)
    assert rr["FailedRecordCount"] == 0 and len(rr["Records"]) == 2
    # CLI v1 sends --timestamp as whole epoch seconds: cut at the next second boundary.
    t_mid = int(time.time()) + 1
    time.sleep(t_mid - time.time() + 0.05)
    aws("put-record", "--stream-name", name, "--partition-key", "k", "--data", "fifth", "--explicit-hash-key", "0")

    def read(*it_args, limit=None):
        it = aws("get-shard-iterator", "--stream-name", name, "--shard-id", shard, *it_args)["ShardIterator"]
        args = ["get-records", "--shard-iterator", it]
        if limit:
            args += ["--limit", str(limit)]
        return aws(*args)

    out = read("--shard-iterator-type", "TRIM_HORIZON")
    assert datas(out["Records"]) == ["first", "second", "third", "fourth", "fifth"]
    assert out["MillisBehindLatest"] == 0 and out["NextShardIterator"]
    assert [r["PartitionKey"] for r in out["Records"]] == ["k", "k", "k", "k2", "k"]
    # v1 prints epoch seconds; v2 prints ISO 8601 (its cli_timestamp_format default).
    for r in out["Records"]:
        ts = r["ApproximateArrivalTimestamp"]
        if aws.version == "v2":
            ts = __import__("datetime").datetime.fromisoformat(ts).timestamp()
        assert abs(ts - time.time()) < 120, r

    out = read("--shard-iterator-type", "TRIM_HORIZON", limit=2)
    assert datas(out["Records"]) == ["first", "second"]
    out = read("--shard-iterator-type", "AT_SEQUENCE_NUMBER", "--starting-sequence-number", r2["SequenceNumber"])
    assert datas(out["Records"])[0] == "second"
    out = read("--shard-iterator-type", "AFTER_SEQUENCE_NUMBER", "--starting-sequence-number", r2["SequenceNumber"])
    assert datas(out["Records"]) == ["third", "fourth", "fifth"]
    out = read("--shard-iterator-type", "AT_TIMESTAMP", "--timestamp", str(t_mid))
    assert datas(out["Records"]) == ["fifth"]
    out = read("--shard-iterator-type", "AT_TIMESTAMP", "--timestamp", str(int(t_before)))
    assert len(out["Records"]) == 5
    out = read("--shard-iterator-type", "LATEST")
    assert out["Records"] == []

    aws("delete-stream", "--stream-name", name)


def test_cli_tags_and_retention(aws):
    name = unique("clitag")
    aws("create-stream", "--stream-name", name, "--shard-count", "1")
    wait_exists(aws, name)
    aws("add-tags-to-stream", "--stream-name", name, "--tags", "team=data,env=test")
    tags = aws("list-tags-for-stream", "--stream-name", name)
    assert sorted((t["Key"], t["Value"]) for t in tags["Tags"]) == [("env", "test"), ("team", "data")]
    assert tags["HasMoreTags"] is False
    aws("remove-tags-from-stream", "--stream-name", name, "--tag-keys", "env")
    assert aws("list-tags-for-stream", "--stream-name", name)["Tags"] == [{"Key": "team", "Value": "data"}]

    aws("increase-stream-retention-period", "--stream-name", name, "--retention-period-hours", "48")
    s = aws("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert s["RetentionPeriodHours"] == 48
    aws("decrease-stream-retention-period", "--stream-name", name, "--retention-period-hours", "24")
    s = aws("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert s["RetentionPeriodHours"] == 24
    aws.fails(
        "InvalidArgumentException", "decrease-stream-retention-period", "--stream-name", name,
        "--retention-period-hours", "12",
    )
    aws("delete-stream", "--stream-name", name)


def test_cli_resharding(aws):
    name = unique("clishard")
    aws("create-stream", "--stream-name", name, "--shard-count", "1")
    wait_exists(aws, name)
    aws("put-record", "--stream-name", name, "--partition-key", "k", "--data", "before")

    aws(
        "split-shard", "--stream-name", name, "--shard-to-split", "shardId-000000000000",
        "--new-starting-hash-key", str(2**127),
    )
    wait_exists(aws, name)
    shards = aws("list-shards", "--stream-name", name)["Shards"]
    assert [s["ShardId"] for s in shards] == [f"shardId-{i:012d}" for i in range(3)]
    assert "EndingSequenceNumber" in shards[0]["SequenceNumberRange"]
    assert shards[1]["ParentShardId"] == shards[2]["ParentShardId"] == "shardId-000000000000"

    # The closed parent reads to its end with its children named.
    it = aws(
        "get-shard-iterator", "--stream-name", name, "--shard-id", "shardId-000000000000",
        "--shard-iterator-type", "TRIM_HORIZON",
    )["ShardIterator"]
    out = aws("get-records", "--shard-iterator", it)
    while out.get("NextShardIterator") and not out.get("ChildShards"):
        out = aws("get-records", "--shard-iterator", out["NextShardIterator"])
    assert "NextShardIterator" not in out or out["NextShardIterator"] is None
    assert sorted(c["ShardId"] for c in out["ChildShards"]) == ["shardId-000000000001", "shardId-000000000002"]

    aws(
        "merge-shards", "--stream-name", name, "--shard-to-merge", "shardId-000000000001",
        "--adjacent-shard-to-merge", "shardId-000000000002",
    )
    wait_exists(aws, name)
    shards = aws("list-shards", "--stream-name", name, "--shard-filter", "Type=AT_LATEST")["Shards"]
    assert [s["ShardId"] for s in shards] == ["shardId-000000000003"]
    assert shards[0]["ParentShardId"] == "shardId-000000000001"
    assert shards[0]["AdjacentParentShardId"] == "shardId-000000000002"

    r = aws("update-shard-count", "--stream-name", name, "--target-shard-count", "2", "--scaling-type", "UNIFORM_SCALING")
    assert r["CurrentShardCount"] == 1 and r["TargetShardCount"] == 2
    wait_exists(aws, name)
    s = aws("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert s["OpenShardCount"] == 2
    w = aws("put-record", "--stream-name", name, "--partition-key", "k", "--data", "after")
    assert w["ShardId"] in {x["ShardId"] for x in aws("list-shards", "--stream-name", name, "--shard-filter", "Type=AT_LATEST")["Shards"]}
    aws("delete-stream", "--stream-name", name)


def has_command(aws, command):
    """Whether this CLI's bundled API model knows `command` (Debian's v2.9 predates some)."""
    p = aws.run(command, "help")
    return "Invalid choice" not in p.stderr and "Invalid choice" not in p.stdout


def test_cli_settings_and_limits(aws):
    name = unique("cliset")
    arn = stream_arn(name)
    aws("create-stream", "--stream-name", name, "--shard-count", "1")
    wait_exists(aws, name)

    limits = aws("describe-limits")
    assert limits["ShardLimit"] >= 1 and limits["OpenShardCount"] >= 1

    aws("start-stream-encryption", "--stream-name", name, "--encryption-type", "KMS", "--key-id", "alias/aws/kinesis")
    s = aws("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert s["EncryptionType"] == "KMS" and s["KeyId"] == "alias/aws/kinesis"
    aws("stop-stream-encryption", "--stream-name", name, "--encryption-type", "KMS", "--key-id", "alias/aws/kinesis")
    s = aws("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert s["EncryptionType"] == "NONE"

    on = aws("enable-enhanced-monitoring", "--stream-name", name, "--shard-level-metrics", "IncomingBytes", "OutgoingRecords")
    assert sorted(on["DesiredShardLevelMetrics"]) == ["IncomingBytes", "OutgoingRecords"]
    off = aws("disable-enhanced-monitoring", "--stream-name", name, "--shard-level-metrics", "IncomingBytes")
    assert off["DesiredShardLevelMetrics"] == ["OutgoingRecords"]

    aws("update-stream-mode", "--stream-arn", arn, "--stream-mode-details", "StreamMode=ON_DEMAND")
    s = aws("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert s["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"

    if has_command(aws, "update-max-record-size"):
        aws("update-max-record-size", "--stream-arn", arn, "--max-record-size-in-ki-b", "2048")
        s = aws("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
        assert s["MaxRecordSizeInKiB"] == 2048
    if has_command(aws, "tag-resource"):
        aws("tag-resource", "--resource-arn", arn, "--tags", "env=test")
        assert aws("list-tags-for-resource", "--resource-arn", arn)["Tags"] == [{"Key": "env", "Value": "test"}]
        aws("untag-resource", "--resource-arn", arn, "--tag-keys", "env")
        assert aws("list-tags-for-resource", "--resource-arn", arn)["Tags"] == []
    aws("delete-stream", "--stream-arn", arn) if has_command(aws, "tag-resource") else aws("delete-stream", "--stream-name", name)
    aws("wait", "stream-not-exists", "--stream-name", name)
