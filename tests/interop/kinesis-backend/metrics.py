"""The pass-through's per-stream counters: records and bytes (data + partition key) written by
PutRecords and PutRecord, and read by GetRecords and by a SubscribeToShard event stream, counted
from the bodies strait forwards unchanged. Only accepted entries count as written.

    PT_ENDPOINT=http://HOST:PORT PT_ADMIN=HOST:PORT python metrics.py   (run.sh sets them)
"""

import os
import re
import sys
import time
import urllib.request

import boto3
from botocore.config import Config

PT = os.environ["PT_ENDPOINT"]
ADMIN = os.environ["PT_ADMIN"]
STREAM = f"pt-metrics-{int(time.time())}"


def counter(name, stream):
    text = urllib.request.urlopen(f"http://{ADMIN}/metrics", timeout=5).read().decode()
    m = re.search(rf'^{name}\{{protocol="kinesis",stream="{re.escape(stream)}"\}} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


def main():
    c = boto3.client("kinesis", endpoint_url=PT, region_name="us-east-1", aws_access_key_id="any",
                     aws_secret_access_key="any", config=Config(retries={"max_attempts": 3}))
    c.create_stream(StreamName=STREAM, ShardCount=1)
    deadline = time.time() + 30
    while c.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.time() < deadline, "stream not ACTIVE"
        time.sleep(0.2)
    sent = [(f"k{i}", os.urandom(10 + i)) for i in range(20)]
    r = c.put_records(StreamName=STREAM, Records=[{"PartitionKey": k, "Data": d} for k, d in sent])
    assert r["FailedRecordCount"] == 0, r
    c.put_record(StreamName=STREAM, PartitionKey="solo", Data=b"solo")
    sent.append(("solo", b"solo"))
    size = sum(len(k) + len(d) for k, d in sent)
    failures = []

    def expect(what, got, want):
        print(f"{'PASS' if got == want else 'FAIL'}  {what}: {got} (expected {want})")
        if got != want:
            failures.append(what)

    expect("records in", counter("strait_records_in_total", STREAM), len(sent))
    expect("bytes in", counter("strait_bytes_in_total", STREAM), size)
    # A PutRecords the upstream refuses (no such stream) counts nothing.
    try:
        c.put_records(StreamName=STREAM + "-missing", Records=[{"PartitionKey": "k", "Data": b"x"}])
    except c.exceptions.ResourceNotFoundException:
        pass
    expect("records in for a refused PutRecords", counter("strait_records_in_total", STREAM + "-missing"), 0)

    shard = c.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    it = c.get_shard_iterator(StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = 0
    while got < len(sent):
        page = c.get_records(ShardIterator=it)
        got += len(page["Records"])
        it = page["NextShardIterator"]
    # One more page, empty, through the iterator the last answer handed out.
    c.get_records(ShardIterator=it)
    expect("records out after GetRecords", counter("strait_records_out_total", STREAM), len(sent))
    expect("bytes out after GetRecords", counter("strait_bytes_out_total", STREAM), size)

    arn = c.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    consumer = c.register_stream_consumer(StreamARN=arn, ConsumerName="metrics")["Consumer"]["ConsumerARN"]
    deadline = time.time() + 30
    while c.describe_stream_consumer(ConsumerARN=consumer)["ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
        assert time.time() < deadline, "consumer not ACTIVE"
        time.sleep(0.2)
    events = c.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard,
                                  StartingPosition={"Type": "TRIM_HORIZON"})["EventStream"]
    got = 0
    for e in events:
        got += len(e.get("SubscribeToShardEvent", {}).get("Records", []))
        if got >= len(sent):
            break
    events.close()
    expect("records out after SubscribeToShard", counter("strait_records_out_total", STREAM), 2 * len(sent))
    expect("bytes out after SubscribeToShard", counter("strait_bytes_out_total", STREAM), 2 * size)
    c.deregister_stream_consumer(ConsumerARN=consumer)
    c.delete_stream(StreamName=STREAM, EnforceConsumerDeletion=True)
    if failures:
        print(f"FAILED: {failures}")
        sys.exit(1)


if __name__ == "__main__":
    main()
