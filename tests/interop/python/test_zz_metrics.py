"""The admin listener's /metrics on the session server, scraped after the other suites in this
directory ran against it (the file sorts last): both protocols' counters are non-zero, and the
gauges set on scrape (log size, consumer-group lag, EFO MillisBehindLatest) follow what clients do.
"""

import os
import time
import uuid

import pytest

from efo_helpers import Subscriber, register_consumer
from metrics_helpers import has, scrape, total
from kafka_helpers import confluent_conf, create_topic


def test_both_protocols_counted_after_the_suites(server, client, strait_kafka):
    # Both protocols' traffic on this server, even when this file runs alone.
    name = f"m-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=1)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    client.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    from confluent_kafka import Producer

    p = Producer(confluent_conf(strait_kafka))
    p.produce(name, b"y", key=b"k")
    assert p.flush(15) == 0
    shard = client.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = client.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    assert len(client.get_records(ShardIterator=it["ShardIterator"])["Records"]) == 2
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(confluent_conf(strait_kafka, **{"group.id": f"g-{name}", "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(name, 0, 0)])
        got = c.consume(2, timeout=15)
        assert len([m for m in got if m.error() is None]) == 2
    finally:
        c.close()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_stream(StreamName=f"{name}-missing")
    s = scrape(server)
    for proto in ("kinesis", "kafka"):
        assert total(s, "strait_requests_total", protocol=proto) > 0, proto
        assert total(s, "strait_records_in_total", protocol=proto) > 0, proto
        assert total(s, "strait_request_duration_seconds_count", protocol=proto) > 0, proto
    assert total(s, "strait_records_out_total", protocol="kinesis") > 0
    assert total(s, "strait_records_out_total", protocol="kafka") > 0
    assert total(s, "strait_request_errors_total", protocol="kinesis", error="ResourceNotFoundException") > 0
    assert total(s, "strait_backend_request_duration_seconds_count", backend="embedded", operation="append") > 0
    assert total(s, "strait_log_size_bytes", stream=name) > 0
    assert total(s, "strait_log_segments", stream=name) >= 1


def test_consumer_group_lag_follows_commits_and_writes(server, strait_kafka):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = create_topic(strait_kafka, f"lag-{uuid.uuid4().hex[:8]}", 2)
    group = f"lag-g-{uuid.uuid4().hex[:8]}"
    p = Producer(confluent_conf(strait_kafka))
    for i in range(10):
        p.produce(topic, b"v%d" % i, partition=i % 2)
    assert p.flush(15) == 0
    c = Consumer(confluent_conf(strait_kafka, **{"group.id": group, "enable.auto.commit": False}))
    try:
        res = c.commit(offsets=[TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 5)], asynchronous=False)
        assert all(tp.error is None for tp in res), res
        # Partition 0: 5 records, committed 2 -> 3 behind; partition 1: 5 records, all read.
        assert total(scrape(server), "strait_consumer_group_lag_records", group=group) == 3
        for i in range(4):
            p.produce(topic, b"w%d" % i, partition=1)
        assert p.flush(15) == 0
        assert total(scrape(server), "strait_consumer_group_lag_records", group=group) == 7
        res = c.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 9)], asynchronous=False)
        assert all(tp.error is None for tp in res), res
        assert total(scrape(server), "strait_consumer_group_lag_records", group=group) == 0
    finally:
        c.close()


def test_efo_consumer_lag_is_reported_while_subscribed(server, client):
    name = f"efo-m-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=1)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    client.put_records(
        StreamName=name, Records=[{"Data": b"r%d" % i, "PartitionKey": "k"} for i in range(20)]
    )
    consumer_arn = register_consumer(client, name, "watcher")
    shard = client.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    sub = Subscriber(client, consumer_arn, shard, {"Type": "TRIM_HORIZON"})
    try:
        assert len(sub.records_until(20)) == 20
        s = scrape(server)
        assert has(s, "strait_efo_consumer_millis_behind_latest", stream=name, consumer="watcher"), s
        assert total(s, "strait_efo_subscriptions") >= 1
    finally:
        sub.close()
    # The subscription's series goes once it ends.
    deadline = time.time() + 10
    while has(scrape(server), "strait_efo_consumer_millis_behind_latest", stream=name) and time.time() < deadline:
        time.sleep(0.2)
    assert not has(scrape(server), "strait_efo_consumer_millis_behind_latest", stream=name)


def test_every_metric_the_dashboard_and_alerts_name_exists(server, client, strait_kafka, tls_server):
    """helm/strait's dashboard and PrometheusRule name only metrics strait exports: after a
    workload that touches each (an error, a group with a commit, an open EFO subscription, a
    Kafka key on another shard than its MD5 range), every name they use is a series here."""
    import sys

    from confluent_kafka import Consumer, Producer, TopicPartition

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "helm"))
    import named_metrics

    name = f"dash-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    client.put_records(StreamName=name, Records=[{"Data": b"r%d" % i, "PartitionKey": f"k{i}"} for i in range(20)])
    client.put_record(StreamName=name, Data=b"first", PartitionKey="p", ExplicitHashKey="0")  # shard 0
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_stream_summary(StreamName=f"{name}-missing")
    p = Producer(confluent_conf(strait_kafka))
    for i in range(20):  # both partitions: some keys land outside their MD5 range
        p.produce(name, b"v", key=b"key-%d" % i, partition=i % 2)
    assert p.flush(15) == 0
    c = Consumer(confluent_conf(strait_kafka, **{"group.id": f"{name}-g", "enable.auto.commit": False}))
    try:
        c.commit(offsets=[TopicPartition(name, 0, 1)], asynchronous=False)
    finally:
        c.close()
    arn = register_consumer(client, name, "dash")
    shard = client.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    sub = Subscriber(client, arn, shard, {"Type": "TRIM_HORIZON"})
    try:
        sub.records_until(1)
        have = {n for n, _ in scrape(server)}
    finally:
        sub.close()
    missing = [n for n in named_metrics.expected("embedded") if n not in have]
    assert not missing, f"named by the dashboard or alerts, not exported: {missing}"
    tls_have = {n for n, _ in scrape(tls_server)}
    missing = [n for n in named_metrics.expected("tls") if n not in tls_have]
    assert not missing, f"not exported by a strait with a certificate: {missing}"
