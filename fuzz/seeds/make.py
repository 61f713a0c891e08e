"""Writes the committed seed corpora (fuzz/seeds/<target>/): a few valid inputs per target, so
the fuzzer starts from the formats' real shapes instead of finding magic numbers and CRCs.
Run with a Python that has kafka-python (tests' venv: .cache/venv/bin/python fuzz/seeds/make.py).
"""
import hashlib
import json
import os
import struct
import zlib

from kafka.record.default_records import DefaultRecordBatchBuilder

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def batch(codec, n=3, producer=-1, key=b"k", headers=()):
    b = DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=False,
        producer_id=producer, producer_epoch=0 if producer >= 0 else -1,
        base_sequence=0 if producer >= 0 else -1, batch_size=1 << 20)
    for i in range(n):
        b.append(i, timestamp=1_700_000_000_000 + i, key=key + bytes([48 + i]),
                 value=b"value-%d" % i, headers=list(headers))
    return bytes(b.build())


# Kafka RecordBatch v2, each codec; an idempotent one; one with headers.
for codec, name in [(0, "none"), (1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")]:
    write("kafka_record_batch", name, batch(codec))
    write("segment_recovery", name, b"\x01" + batch(codec) + batch(codec, n=1))
write("kafka_record_batch", "idempotent", batch(0, producer=7))
write("kafka_record_batch", "headers", batch(0, headers=[("h", b"v"), ("empty", None)]))
write("kafka_record_batch", "null-key", batch(0, key=b""))


def request(key, version, body, header_version=1, correlation=1, client=b"seed"):
    h = struct.pack(">hhi", key, version, correlation)
    h += struct.pack(">h", len(client)) + client
    if header_version == 2:
        h += b"\x00"  # no tagged fields
    return h + body


def s16(b):
    return struct.pack(">h", len(b)) + b


# Produce v3 (non-flexible): transactional_id null, acks -1, timeout, one topic, one partition.
records = batch(0)
produce = (struct.pack(">h", -1) + struct.pack(">hi", -1, 1000) + struct.pack(">i", 1)
           + s16(b"t") + struct.pack(">i", 1) + struct.pack(">i", 0)
           + struct.pack(">i", len(records)) + records)
write("kafka_request", "produce-v3", request(0, 3, produce))
# ApiVersions v0 and v3 (flexible: client software name and version as compact strings).
write("kafka_request", "api-versions-v0", request(18, 0, b""))
write("kafka_request", "api-versions-v3", request(18, 3, b"\x05seed\x021\x00", header_version=2))
# Metadata v1: one topic.
write("kafka_request", "metadata-v1", request(3, 1, struct.pack(">i", 1) + s16(b"t")))
# JoinGroup v1 with a consumer-protocol subscription (v0: topics ["t"], no user data).
subscription = struct.pack(">h", 0) + struct.pack(">i", 1) + s16(b"t") + struct.pack(">i", -1)
join = (s16(b"g") + struct.pack(">ii", 10000, 30000) + s16(b"") + s16(b"consumer")
        + struct.pack(">i", 1) + s16(b"range") + struct.pack(">i", len(subscription)) + subscription)
write("kafka_request", "join-group-v1", request(11, 1, join))

# Event-stream frames: an initial-response and a SubscribeToShardEvent.
def frame(headers, payload):
    hb = b""
    for name, value in headers:
        hb += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + hb + payload
    return body + struct.pack(">I", zlib.crc32(body))


event = json.dumps({"Records": [{"SequenceNumber": "1", "Data": "aGk=", "PartitionKey": "k",
                                 "ApproximateArrivalTimestamp": 1.7e9}],
                    "ContinuationSequenceNumber": "1", "MillisBehindLatest": 0}).encode()
write("event_stream", "initial-and-event",
      frame([(":event-type", "initial-response"), (":content-type", "application/json"),
             (":message-type", "event")], b"{}")
      + frame([(":event-type", "SubscribeToShardEvent"), (":content-type", "application/json"),
               (":message-type", "event")], event))
write("event_stream", "exception",
      frame([(":exception-type", "ResourceNotFoundException"), (":content-type", "application/json"),
             (":message-type", "exception")], b'{"message":"gone"}'))


# KPL aggregate body (protobuf): keys ["k0"], ehks ["1"], one record (key 0, ehk 0, data "hi").
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(num, wire, payload):
    return varint(num << 3 | wire) + (varint(len(payload)) + payload if wire == 2 else payload)


rec = field(1, 0, varint(0)) + field(2, 0, varint(0)) + field(3, 2, b"hi")
agg = field(1, 2, b"k0") + field(2, 2, b"1") + field(3, 2, rec)
write("kpl_aggregate", "one-record", b"\x01" + agg)
write("kpl_aggregate", "plain", b"\x00plain data")

write("sigv4_header", "boto3",
      b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/kinesis/aws4_request, "
      b"SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + b"0" * 64
      + b"\n/\nhost:127.0.0.1:4567\ncontent-type:application/x-amz-json-1.1\n"
      b"x-amz-date:20261206T120000Z\nx-amz-target:Kinesis_20131202.PutRecord")

# Kinesis bodies: byte 0 picks the operation (index among unary operations, modulo), byte 1
# the protocol (even: JSON). The operations' order is OPERATIONS' order, so these are examples
# of shapes more than of particular operations.
for i, body in enumerate([
    {"StreamName": "s", "Data": "aGk=", "PartitionKey": "k"},
    {"StreamName": "s", "Records": [{"Data": "aGk=", "PartitionKey": "k"},
                                    {"Data": "", "PartitionKey": "k2", "ExplicitHashKey": "1"}]},
    {"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"},
    {"StreamName": "s", "ShardCount": 2},
    {"StreamName": "s", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "2"},
    {"StreamName": "s", "ShardFilter": {"Type": "AT_LATEST"}, "MaxResults": 10},
]):
    for op in range(0, 40, 7):
        write("kinesis_request", "json-%d-%d" % (i, op), bytes([op + i, 0]) + json.dumps(body).encode())
