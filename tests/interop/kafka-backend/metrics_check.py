"""/metrics of the Kafka-backend strait after every suite above ran through it: both protocols'
requests and records are counted, and the backend series show strait's own calls to the cluster
(the Kinesis side's log calls and its requests to brokers), a GetRecords asks the cluster once
(plus one ListOffsets when behind), and a Kafka group's lag is read from the cluster. STRAIT_ADMIN is host:port of the admin listener, STRAIT_KAFKA strait's Kafka
port (tests/interop/lib/strait.sh exports both), KAFKA_BOOTSTRAP the broker.
"""

import os
import re
import time
import urllib.request
import uuid

from checks import consume_all
from harness import check, finish, require

SERIES = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def scrape():
    with urllib.request.urlopen(f"http://{os.environ['STRAIT_ADMIN']}/metrics", timeout=10) as r:
        text = r.read().decode()
    return [(m.group(1), m.group(2) or "", float(m.group(3))) for m in map(SERIES.match, text.splitlines()) if m]


def total(series, name, **labels):
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for n, lab, v in series if n == name and all(w in lab for w in want))


def both_protocols_counted():
    s = scrape()
    for proto in ("kinesis", "kafka"):
        require(total(s, "strait_requests_total", protocol=proto) > 0, f"no {proto} requests counted")
        require(any(n == "strait_connections" and f'protocol="{proto}"' in lab for n, lab, _ in s),
                f"no {proto} connection gauge")
    for op in ("PutRecords", "GetRecords", "SubscribeToShard"):
        require(total(s, "strait_requests_total", protocol="kinesis", operation=op) > 0, f"no {op} counted")
    for api in ("Produce", "Fetch", "Metadata"):
        require(total(s, "strait_requests_total", protocol="kafka", operation=api) > 0, f"no {api} counted")
    require(total(s, "strait_records_in_total", protocol="kinesis") > 0, "no Kinesis records in")
    require(total(s, "strait_records_out_total", protocol="kinesis") > 0, "no Kinesis records out")


def backend_calls_counted():
    s = scrape()
    for op in ("append", "read", "offsets"):
        n = total(s, "strait_backend_request_duration_seconds_count", backend="kafka", operation=op)
        require(n > 0, f"no backend {op} timed")
    for api in ("Produce", "Fetch", "ListOffsets", "CreateTopics"):
        n = total(s, "strait_kafka_broker_request_duration_seconds_count", api=api)
        require(n > 0, f"no {api} to the brokers timed")
    # The broker restart in kinesis_checks.py (run before this in run.sh) made some fail.
    require(total(s, "strait_kafka_broker_request_errors_total") > 0, "no broker request failure counted")


def backend_calls(operation):
    return total(scrape(), "strait_backend_request_duration_seconds_count", backend="kafka",
                 operation=operation)


def get_records_asks_the_cluster_once():
    """A GetRecords that is behind costs one log read (one Fetch, whose answer carries the log
    start and high watermark) and one newest-timestamp lookup (one ListOffsets), and no offsets
    lookup; one that catches up costs the read alone. Counted with the backend call metrics,
    which only the core's calls move (the metadata tailer and scrapes use the log unmetered)."""
    import boto3
    from botocore.config import Config
    k = boto3.client("kinesis", endpoint_url=os.environ["STRAIT_ENDPOINT"], region_name="us-east-1",
                     aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                     config=Config(retries={"max_attempts": 1}))
    name = f"calls-{uuid.uuid4().hex[:8]}"
    k.create_stream(StreamName=name, ShardCount=1)
    deadline = time.time() + 30
    while k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        require(time.time() < deadline, f"{name} not ACTIVE")
        time.sleep(0.2)
    k.put_records(StreamName=name, Records=[{"Data": b"x%d" % i, "PartitionKey": "k"} for i in range(20)])
    it = k.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    ops = ("read", "offsets", "max_timestamp_batch")
    before = [backend_calls(op) for op in ops]
    behind = k.get_records(ShardIterator=it, Limit=5)
    after = [backend_calls(op) for op in ops]
    require(len(behind["Records"]) == 5 and behind["MillisBehindLatest"] >= 0, f"{behind}")
    got = [a - b for a, b in zip(after, before)]
    require(got == [1, 0, 1], f"(read, offsets, max_timestamp_batch) for a reader behind: {got}")
    before = after
    rest = k.get_records(ShardIterator=behind["NextShardIterator"], Limit=100)
    after = [backend_calls(op) for op in ops]
    require(len(rest["Records"]) == 15 and rest["MillisBehindLatest"] == 0, f"{rest}")
    got = [a - b for a, b in zip(after, before)]
    require(got == [1, 0, 0], f"(read, offsets, max_timestamp_batch) for a reader catching up: {got}")
    k.delete_stream(StreamName=name)


def group_lag_read_from_the_cluster():
    """A group committed through strait; its lag comes from the cluster (ListGroups, OffsetFetch,
    ListOffsets), refreshed at most every 15 s, so this waits up to 20 s for the exact value."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    via = os.environ["STRAIT_KAFKA"]
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"lag-g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"]})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    p = Producer({"bootstrap.servers": via})
    for i in range(15):
        p.produce(topic, b"v", partition=0 if i < 10 else 1)
    require(p.flush(30) == 0, "undelivered")
    c = Consumer({"bootstrap.servers": via, "group.id": group, "enable.auto.commit": False})
    try:
        res = c.commit(offsets=[TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 5)], asynchronous=False)
        require(all(tp.error is None for tp in res), f"commit: {res}")
    finally:
        c.close()
    deadline, got = time.time() + 20, None
    while time.time() < deadline:
        got = total(scrape(), "strait_consumer_group_lag_records", group=group)
        if got == 8:
            return
        time.sleep(1)
    require(False, f"lag of {group}: {got}, expected 8 (10 - 2 on partition 0, 5 - 5 on 1)")


def pass_through_traffic_counted():
    """Kafka clients' Produce and Fetch through the pass-through count like the embedded
    backend's: records and bytes per topic (from the batch headers), and each failed
    partition's error code under its API."""
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    via = os.environ["STRAIT_KAFKA"]
    topic = f"counted-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"]})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    p = Producer({"bootstrap.servers": via, "linger.ms": 5})
    for i in range(30):
        p.produce(topic, b"value-%d" % i, key=b"k%d" % i)
    require(p.flush(30) == 0, "undelivered")
    deadline = time.time() + 20
    while total(scrape(), "strait_records_in_total", protocol="kafka", stream=topic) < 30:
        require(time.time() < deadline, f"records in for {topic}: {total(scrape(), 'strait_records_in_total', protocol='kafka', stream=topic)}")
        time.sleep(0.2)
    s = scrape()
    require(total(s, "strait_records_in_total", protocol="kafka", stream=topic) == 30, "produced twice?")
    require(total(s, "strait_bytes_in_total", protocol="kafka", stream=topic) > 30 * len(b"value-00"),
            "bytes in")
    got = len(consume_all(via, topic, 2, 30))
    require(got == 30, f"consumed {got} of 30")
    s = scrape()
    out = total(s, "strait_records_out_total", protocol="kafka", stream=topic)
    require(30 <= out <= 60, f"records out for {topic}: {out}")
    require(total(s, "strait_bytes_out_total", protocol="kafka", stream=topic) > 0, "bytes out")
    # A fetch past the end: the broker answers OFFSET_OUT_OF_RANGE (1) for the partition.
    before = total(s, "strait_request_errors_total", protocol="kafka", operation="Fetch", error="1")
    c = Consumer({"bootstrap.servers": via, "group.id": f"counted-e-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "error", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 10_000)])
        deadline, seen = time.time() + 20, None
        while time.time() < deadline and seen is None:
            m = c.poll(0.5)
            if m is not None and m.error() and m.error().code() == KafkaError._AUTO_OFFSET_RESET:
                seen = m.error()
        require(seen is not None, "no offset-out-of-range error from the consumer")
    finally:
        c.close()
    after = total(scrape(), "strait_request_errors_total", protocol="kafka", operation="Fetch", error="1")
    require(after > before, f"Fetch OFFSET_OUT_OF_RANGE not counted ({before} -> {after})")


def dashboard_and_alert_metrics_exist():
    """The Kafka-backend series helm/strait's dashboard and alerts name (tests/helm/named_metrics.py;
    the embedded backend's are checked by the Python suite) exist after the suites above."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helm"))
    import named_metrics
    have = {n for n, _, _ in scrape()}
    want = named_metrics.expected("kafka")
    require(want, "no Kafka-backend metric named: the check proves nothing")
    missing = [n for n in want if n not in have]
    require(not missing, f"named by the dashboard or alerts, not exported: {missing}")


check("the metrics the dashboard and alerts name for the Kafka backend exist",
      dashboard_and_alert_metrics_exist)
check("the pass-through counts Produce and Fetch records per topic, and their errors per API",
      pass_through_traffic_counted)
check("consumer-group lag is read from the cluster", group_lag_read_from_the_cluster)
check("/metrics counts both protocols after the suites", both_protocols_counted)
check("/metrics times strait's own calls to the Kafka cluster", backend_calls_counted)
check("a GetRecords behind costs one Fetch and one ListOffsets", get_records_asks_the_cluster_once)
finish()
