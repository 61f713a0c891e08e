"""Enhanced fan-out through boto3: SubscribeToShard event streams (botocore speaks HTTP/1.1, so these
are chunked HTTP/1.1 responses), consumer takeover, subscription lifetime, closed shards with
ChildShards, and a Kafka producer feeding a Kinesis subscriber.

Consumer registration operations and their bad inputs are in test_efo_consumers.py; the slow-reader
memory test is in test_efo_backpressure.py.
"""

import threading
import time
from collections import defaultdict

import pytest
from botocore.exceptions import ClientError, EventStreamError

from efo_helpers import Subscriber, check_event_shape, register_consumer
from helpers import all_shards, create_stream, expect_error, md5_hash_key, owning_shard, put_records, unique
from kafka_helpers import Md5RangePartitioner, confluent_conf, confluent_produce, wait_topic, confluent_admin

SHARD0 = "shardId-000000000000"


def new_stream(client, shards=1, prefix="efo"):
    return create_stream(client, unique(prefix), shards)


def seqs_increasing(records):
    s = [int(r["SequenceNumber"]) for r in records]
    return all(a < b for a, b in zip(s, s[1:]))


# -- item 1: records before and after subscribing, continuation, MillisBehindLatest ---------------


def test_subscribe_records_before_and_after(server):
    c = server.client()
    name = new_stream(c)
    before = [(f"k{i % 3}", f"before-{i}".encode()) for i in range(5)]
    put_before = put_records(c, name, before)
    arn = register_consumer(c, name, "c-before-after")

    sub = Subscriber(server.client(fresh=True), arn, SHARD0, {"Type": "TRIM_HORIZON"})
    try:
        # botocore consumed the initial-response: the call returned an event stream over chunked HTTP/1.1.
        hdrs = sub.resp["ResponseMetadata"]["HTTPHeaders"]
        assert hdrs.get("content-type") == "application/vnd.amazon.eventstream", hdrs
        assert hdrs.get("transfer-encoding") == "chunked", hdrs
        got = sub.records_until(len(before), timeout=10)
        assert [(r["PartitionKey"], r["Data"]) for r in got] == before
        assert [r["SequenceNumber"] for r in got] == [p["SequenceNumber"] for p in put_before]

        after = [(f"k{i % 3}", f"after-{i}".encode()) for i in range(7)]
        t_put = time.time()
        put_after = put_records(c, name, after)
        got = sub.records_until(len(before) + len(after), timeout=10)
        t_got = time.time()
        assert [(r["PartitionKey"], r["Data"]) for r in got] == before + after
        assert [r["SequenceNumber"] for r in got] == [p["SequenceNumber"] for p in put_before + put_after]
        assert seqs_increasing(got)
        assert t_got - t_put < 2.0, f"records put after subscribing took {t_got - t_put:.2f}s to arrive"
        for ev, _ in sub.events:
            assert not check_event_shape(ev), (check_event_shape(ev), ev)
        # Caught up: the last event is not behind.
        assert sub.events[-1][0]["MillisBehindLatest"] == 0
        assert sub.ended is None, f"subscription ended early: {sub.ended}"
    finally:
        sub.close()
    server.assert_alive()


def test_millis_behind_latest_on_a_backlog(server):
    """A backlog larger than one event (1 MiB): the first event is behind by about the time between
    the backlog and the newest record; the event that delivers the newest record is at 0."""
    c = server.client()
    name = new_stream(c)
    big = [(f"b{i}", bytes([65 + i]) * 400_000) for i in range(4)]  # 1.6 MB: at least two events
    for i in range(0, len(big), 2):
        put_records(c, name, big[i : i + 2])
    gap = 1.5
    time.sleep(gap)
    put_records(c, name, [("tip", b"newest")])
    arn = register_consumer(c, name, "c-mbl")
    sub = Subscriber(server.client(fresh=True), arn, SHARD0, {"Type": "TRIM_HORIZON"})
    try:
        got = sub.records_until(len(big) + 1, timeout=15)
        assert [r["PartitionKey"] for r in got] == [k for k, _ in big] + ["tip"]
        with_records = [ev for ev, _ in sub.events if ev["Records"]]
        assert len(with_records) >= 2, f"1.6 MB came in {len(with_records)} event(s)"
        first = with_records[0]
        assert first["Records"][0]["PartitionKey"] == "b0"
        assert first["MillisBehindLatest"] >= (gap - 0.3) * 1000, first["MillisBehindLatest"]
        last = with_records[-1]
        assert last["Records"][-1]["PartitionKey"] == "tip"
        assert last["MillisBehindLatest"] == 0, last["MillisBehindLatest"]
        for ev in with_records:
            assert not check_event_shape(ev), check_event_shape(ev)
    finally:
        sub.close()


def test_backlog_of_many_events_arrives_without_pauses(server):
    """30 x 256 KiB put within a moment (so MillisBehindLatest may round to 0 although more is
    pending) take about eight 1 MiB events; they must follow each other without waiting for the
    5 s idle heartbeat."""
    c = server.client()
    name = new_stream(c)
    recs = [(f"k{i % 4}", bytes([i]) * (256 * 1024)) for i in range(30)]
    placed = put_records(c, name, recs[:15]) + put_records(c, name, recs[15:])
    arn = register_consumer(c, name, "c-backlog")
    sub = Subscriber(server.client(fresh=True), arn, SHARD0, {"Type": "TRIM_HORIZON"})
    try:
        got = sub.records_until(len(recs), timeout=40)
        times = [sub.t_subscribed] + [t for ev, t in sub.events]
        gaps = [(round(b - a, 3), len(ev["Records"]), ev["MillisBehindLatest"]) for a, b, (ev, _) in zip(times, times[1:], sub.events)]
        assert len(got) == len(recs) and max(g for g, _, _ in gaps) < 2.0, (
            f"{len(got)} of {len(recs)} records; (seconds since the previous event, records, "
            f"MillisBehindLatest) per event: {gaps}"
        )
        assert [r["SequenceNumber"] for r in got] == [p["SequenceNumber"] for p in placed]
    finally:
        sub.close()


def check_mbl_against_tip(events, tip_ms, slack_ms=300):
    """Each event with records is behind the tip by at least the tip's arrival minus its last
    record's arrival (both from ApproximateArrivalTimestamp)."""
    probs = []
    for ev, _ in events:
        if not ev["Records"]:
            continue
        last_ms = ev["Records"][-1]["ApproximateArrivalTimestamp"].timestamp() * 1000
        least = tip_ms - last_ms - slack_ms
        if ev["MillisBehindLatest"] < least:
            probs.append(
                f"event ending with {ev['Records'][-1]['PartitionKey']}: MillisBehindLatest "
                f"{ev['MillisBehindLatest']}, but the newest record arrived {tip_ms - last_ms:.0f} ms later"
            )
    return probs


def test_late_consumers_share_the_shard(server):
    """Consumer A reads live while records arrive in small batches over ~2 s; consumers B and C
    subscribe afterwards from TRIM_HORIZON and AT_SEQUENCE_NUMBER. Each sees exactly the shard's
    records in order, and a late consumer's MillisBehindLatest reflects how far behind the tip it
    is (not the value A saw when it read the same records live)."""
    c = server.client()
    name = new_stream(c)
    a_arn = register_consumer(c, name, "c-a")
    b_arn = register_consumer(c, name, "c-b")
    c_arn = register_consumer(c, name, "c-c")
    a = Subscriber(server.client(fresh=True), a_arn, SHARD0, {"Type": "LATEST"})
    subs = [a]
    try:
        assert (a.next(timeout=8) or ("timeout",))[0] == "event", "no event within 8 s"
        placed = []
        for i in range(10):
            placed += put_records(c, name, [(f"k{j % 3}", f"b{i}-r{j}".encode()) for j in range(5)])
            a.records_until(len(placed), timeout=5)  # A reads each batch live
            time.sleep(0.2)
        assert [r["SequenceNumber"] for r in a.all_records()] == [p["SequenceNumber"] for p in placed]
        assert all(ev["MillisBehindLatest"] == 0 for ev, _ in a.events if ev["Records"]), [
            ev["MillisBehindLatest"] for ev, _ in a.events
        ]
        b = Subscriber(server.client(fresh=True), b_arn, SHARD0, {"Type": "TRIM_HORIZON"})
        subs.append(b)
        cc = Subscriber(
            server.client(fresh=True),
            c_arn,
            SHARD0,
            {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": placed[17]["SequenceNumber"]},
        )
        subs.append(cc)
        for sub, want in ((b, placed), (cc, placed[17:])):
            sub.records_until(len(want), timeout=10)
            sub.next(timeout=0.3)
            assert [r["SequenceNumber"] for r in sub.all_records()] == [w["SequenceNumber"] for w in want]
            for ev, _ in sub.events:
                assert not check_event_shape(ev), check_event_shape(ev)
        tip_ms = b.all_records()[-1]["ApproximateArrivalTimestamp"].timestamp() * 1000
        probs = check_mbl_against_tip(b.events, tip_ms) + check_mbl_against_tip(cc.events, tip_ms)
        assert not probs, probs
    finally:
        for sub in subs:
            sub.close()


@pytest.mark.parametrize("history", [False, True], ids=["empty-shard", "with-history"])
def test_idle_continuation_resumes_without_gap_or_duplicate(server, history):
    """The first event of an idle subscription carries a ContinuationSequenceNumber; a second
    consumer starting AFTER_SEQUENCE_NUMBER it reads exactly the records put later."""
    c = server.client()
    name = new_stream(c)
    old = []
    if history:
        old = put_records(c, name, [(f"o{i}", f"old-{i}".encode()) for i in range(3)])
    a = register_consumer(c, name, "c-a")
    b = register_consumer(c, name, "c-b")
    sub = Subscriber(server.client(fresh=True), a, SHARD0, {"Type": "LATEST"})
    sub2 = None
    try:
        item = sub.next(timeout=8)
        assert item is not None and item[0] == "event", f"no event on an idle shard within 8 s: {item}"
        ev = item[1]
        assert ev["Records"] == []
        assert ev["MillisBehindLatest"] == 0
        cont = ev.get("ContinuationSequenceNumber")
        assert cont and cont.isdigit(), ev
        if history:
            # Nothing is skipped or repeated between the old records and the continuation point.
            assert int(cont) >= int(old[-1]["SequenceNumber"])
        new = [(f"n{i % 2}", f"new-{i}".encode()) for i in range(6)]
        put_new = put_records(c, name, new)
        got = sub.records_until(len(new), timeout=10)
        assert [(r["PartitionKey"], r["Data"]) for r in got] == new
        assert int(cont) < int(put_new[0]["SequenceNumber"])

        sub2 = Subscriber(
            server.client(fresh=True),
            b,
            SHARD0,
            {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": cont},
        )
        got2 = sub2.records_until(len(new), timeout=10)
        # Give a duplicate or an old record time to show up.
        sub2.next(timeout=0.5)
        got2 = sub2.all_records()
        assert [(r["PartitionKey"], r["Data"]) for r in got2] == new
        assert [r["SequenceNumber"] for r in got2] == [p["SequenceNumber"] for p in put_new]

        # AFTER the last record's continuation from an event with records: nothing again.
        last_cont = [e for e, _ in sub.events if e["Records"]][-1]["ContinuationSequenceNumber"]
        assert last_cont == put_new[-1]["SequenceNumber"]
    finally:
        sub.close()
        if sub2:
            sub2.close()


@pytest.mark.parametrize("ptype", ["TRIM_HORIZON", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "AT_TIMESTAMP", "LATEST"])
def test_starting_positions(server, ptype):
    c = server.client()
    name = new_stream(c)
    first = put_records(c, name, [(f"k{i}", f"first-{i}".encode()) for i in range(5)])
    time.sleep(1.1)
    ts = time.time()
    time.sleep(0.1)
    second = put_records(c, name, [(f"k{i}", f"second-{i}".encode()) for i in range(3)])
    allrecs = first + second
    pos = {"Type": ptype}
    if ptype == "AT_SEQUENCE_NUMBER":
        pos["SequenceNumber"], want = allrecs[2]["SequenceNumber"], allrecs[2:]
    elif ptype == "AFTER_SEQUENCE_NUMBER":
        pos["SequenceNumber"], want = allrecs[2]["SequenceNumber"], allrecs[3:]
    elif ptype == "AT_TIMESTAMP":
        pos["Timestamp"], want = ts, second
    elif ptype == "TRIM_HORIZON":
        want = allrecs
    else:
        want = []
    arn = register_consumer(c, name, "c-pos")
    sub = Subscriber(server.client(fresh=True), arn, SHARD0, pos)
    try:
        if want:
            sub.records_until(len(want), timeout=10)
        else:
            assert (sub.next(timeout=8) or ("timeout",))[0] == "event", "no event within 8 s"
        sub.next(timeout=0.3)  # anything extra would be here now
        assert [r["SequenceNumber"] for r in sub.all_records()] == [w["SequenceNumber"] for w in want]
        if ptype == "LATEST":
            later = put_records(c, name, [("z", b"later")])
            assert [r["SequenceNumber"] for r in sub.records_until(1, timeout=5)] == [later[0]["SequenceNumber"]]
    finally:
        sub.close()


def test_per_key_order_two_shards_2000(server):
    """2,000 records over 40 keys on 2 shards, half put before and half while subscribed: each
    shard's subscriber sees exactly the records PutRecords placed there, once, in order."""
    c = server.client()
    name = new_stream(c, shards=2)
    shards = all_shards(c, name)
    keys = [f"key-{i:02d}" for i in range(40)]
    records = [(keys[i % len(keys)], f"{keys[i % len(keys)]}|{i:05d}".encode()) for i in range(2000)]
    placed = []

    def put_all(chunk):
        for i in range(0, len(chunk), 250):
            part = chunk[i : i + 250]
            for (pk, d), r in zip(part, put_records(c, name, part)):
                placed.append((r["ShardId"], r["SequenceNumber"], pk, d))

    put_all(records[:1000])
    arn = register_consumer(c, name, "c-2000")
    subs = {s["ShardId"]: Subscriber(server.client(fresh=True), arn, s["ShardId"], {"Type": "TRIM_HORIZON"}) for s in shards}
    try:
        put_all(records[1000:])
        want = defaultdict(list)
        for shard, seq, pk, d in placed:
            want[shard].append((seq, pk, d))
        for shard, sub in subs.items():
            got = sub.records_until(len(want[shard]), timeout=20)
            sub.next(timeout=0.3)  # a duplicate would arrive now
            got = sub.all_records()
            assert len(got) == len(want[shard]), f"{shard}: {len(got)} of {len(want[shard])}"
            assert [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in got] == want[shard]
            for r in got:
                assert owning_shard(shards, md5_hash_key(r["PartitionKey"])) == shard
            prev = None
            for ev, _ in sub.events:
                assert not check_event_shape(ev), check_event_shape(ev)
                if prev is not None:
                    assert int(ev["ContinuationSequenceNumber"]) >= int(prev)
                prev = ev["ContinuationSequenceNumber"]
        per_key = defaultdict(list)
        for sub in subs.values():
            for r in sub.all_records():
                per_key[r["PartitionKey"]].append(int(r["Data"].split(b"|")[1]))
        for k in keys:
            assert per_key[k] == sorted(per_key[k]) and len(per_key[k]) == 50, (k, per_key[k][:5])
        assert sum(map(len, per_key.values())) == 2000
    finally:
        for sub in subs.values():
            sub.close()


def test_kafka_producer_reaches_kinesis_subscriber(server, strait_kafka):
    from confluent_kafka import Producer

    c = server.client()
    name = new_stream(c, shards=2, prefix="efo-kafka")
    wait_topic(confluent_admin(strait_kafka), name, 2)
    md5 = Md5RangePartitioner.from_list_shards(all_shards(c, name))
    arn = register_consumer(c, name, "c-kafka")
    subs = [
        Subscriber(server.client(fresh=True), arn, f"shardId-{i:012d}", {"Type": "LATEST"}) for i in range(2)
    ]
    try:
        for s in subs:  # subscribed before producing: LATEST must not skip them
            assert (s.next(timeout=8) or ("timeout",))[0] == "event", "no event within 8 s"
        records = [(f"kk-{i}".encode(), f"from-kafka-{i}".encode()) for i in range(20)]
        p = Producer(confluent_conf(strait_kafka, **{"linger.ms": 5}))
        delivered = confluent_produce(p, name, records, partition_of=md5.partition)
        want = defaultdict(list)
        for part, _, k, v in sorted(delivered, key=lambda d: (d[0], d[1])):
            want[part].append((k.decode(), v))
        for i, s in enumerate(subs):
            got = s.records_until(len(want[i]), timeout=10)
            assert [(r["PartitionKey"], r["Data"]) for r in got] == want[i], f"shard {i}"
        assert sum(len(v) for v in want.values()) == len(records)
    finally:
        for s in subs:
            s.close()


# -- item 2: takeover ------------------------------------------------------------------------------


def test_second_subscription_within_5s_refused_then_takes_over(server):
    c = server.client()
    name = new_stream(c)
    arn = register_consumer(c, name, "c-takeover")
    first = Subscriber(server.client(fresh=True), arn, SHARD0, {"Type": "LATEST"})
    second = None
    try:
        assert (first.next(timeout=8) or ("timeout",))[0] == "event", "no event within 8 s"
        err = expect_error(
            server.client(fresh=True).subscribe_to_shard,
            "ResourceInUseException",
            ConsumerARN=arn,
            ShardId=SHARD0,
            StartingPosition={"Type": "LATEST"},
        )
        assert time.time() - first.t_subscribed < 5.0, "the refusal check came too late to mean anything"
        # The refused attempt did not disturb the first subscription.
        put_records(c, name, [("p", b"still-first")])
        assert [r["Data"] for r in first.records_until(1, timeout=5)] == [b"still-first"]

        wait = first.t_subscribed + 5.5 - time.time()
        if wait > 0:
            time.sleep(wait)
        second = Subscriber(server.client(fresh=True), arn, SHARD0, {"Type": "LATEST"})
        t_take = time.time()
        end = first.until_end(timeout=10)
        assert end is not None, "the old subscription did not end within 10 s of the takeover"
        kind, exc, t_end = end
        assert kind == "error", f"old subscription ended without an exception event: {end}"
        assert isinstance(exc, EventStreamError), repr(exc)
        assert exc.response["Error"]["Code"] == "ResourceInUseException", exc.response
        assert exc.response["Error"].get("Message"), exc.response
        assert t_end - t_take < 5.0

        put_records(c, name, [("p", b"to-second")])
        assert [r["Data"] for r in second.records_until(1, timeout=5)] == [b"to-second"]
        assert b"to-second" not in [r["Data"] for r in first.all_records()]
    finally:
        first.close()
        if second:
            second.close()
    server.assert_alive()


# -- item 3: lifetime --------------------------------------------------------------------------------


def test_subscription_ends_cleanly_after_lifetime(tls_server):
    """tls_server runs with kinesis.subscription_lifetime_secs = 4."""
    c = tls_server.client()
    name = new_stream(c)
    arn = register_consumer(c, name, "c-life")
    sub = Subscriber(tls_server.client(fresh=True), arn, SHARD0, {"Type": "TRIM_HORIZON"})
    try:
        time.sleep(1)
        put_records(c, name, [("k", b"during")])
        end = sub.until_end(timeout=12)
        assert end is not None, "subscription with a 4 s lifetime still open after 12 s"
        kind, value, t_end = end
        assert kind == "end", f"lifetime end raised {value!r}"
        elapsed = t_end - sub.t_subscribed
        assert 3.5 <= elapsed <= 6.0, f"ended after {elapsed:.2f}s, lifetime is 4 s"
        assert [r["Data"] for r in sub.all_records()] == [b"during"]
    finally:
        sub.close()
    # The consumer can subscribe again (5 s after the first call, so the AWS rule against a second
    # call within 5 s does not apply either way) and the new subscription delivers.
    wait = sub.t_subscribed + 5.5 - time.time()
    if wait > 0:
        time.sleep(wait)
    again = Subscriber(tls_server.client(fresh=True), arn, SHARD0, {"Type": "LATEST"})
    try:
        assert (again.next(timeout=5) or ("timeout",))[0] == "event", "no event within 5 s"
        put_records(c, name, [("k", b"again")])
        assert [r["Data"] for r in again.records_until(1, timeout=5)] == [b"again"]
    finally:
        again.close()


# -- item 5: closed shards ------------------------------------------------------------------------


def check_child_shards(ev, parent, children):
    assert "ContinuationSequenceNumber" not in ev, f"closed shard end carries a continuation: {ev}"
    got = sorted(ev.get("ChildShards") or [], key=lambda s: s["ShardId"])
    assert [s["ShardId"] for s in got] == [s["ShardId"] for s in children], got
    for g, ch in zip(got, children):
        assert g["ParentShards"] == [parent], g
        assert g["HashKeyRange"] == ch["HashKeyRange"], (g, ch)


@pytest.mark.parametrize("when", ["subscribe-after-split", "split-while-subscribed"])
def test_closed_parent_ends_with_child_shards(server, when):
    c = server.client()
    name = new_stream(c, prefix="efo-split")
    arn = register_consumer(c, name, "c-split")
    before = [(f"k{i}", f"pre-split-{i}".encode()) for i in range(5)]
    put_records(c, name, before)
    sub = None
    try:
        if when == "split-while-subscribed":
            sub = Subscriber(server.client(fresh=True), arn, SHARD0, {"Type": "TRIM_HORIZON"})
            assert [r["Data"] for r in sub.records_until(5, timeout=10)] == [d for _, d in before]
        c.split_shard(StreamName=name, ShardToSplit=SHARD0, NewStartingHashKey=str(2**127))
        deadline = time.time() + 10
        while c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
            assert time.time() < deadline
            time.sleep(0.05)
        shards = all_shards(c, name)
        children = sorted([s for s in shards if s.get("ParentShardId") == SHARD0], key=lambda s: s["ShardId"])
        assert len(children) == 2
        if sub is None:
            sub = Subscriber(server.client(fresh=True), arn, SHARD0, {"Type": "TRIM_HORIZON"})
        end = sub.until_end(timeout=10)
        assert end is not None and end[0] == "end", f"subscription to a closed shard did not end cleanly: {end}"
        assert [(r["PartitionKey"], r["Data"]) for r in sub.all_records()] == before
        last = sub.events[-1][0]
        check_child_shards(last, SHARD0, children)
        for ev, _ in sub.events[:-1]:
            assert "ChildShards" not in ev, ev
            assert not check_event_shape(ev), check_event_shape(ev)
        # Records put now go to the children, and a subscription to a child gets them.
        put_records(c, name, [("after", b"after-split")])
        child = owning_shard(shards, md5_hash_key("after"))
        csub = Subscriber(server.client(fresh=True), arn, child, {"Type": "TRIM_HORIZON"})
        try:
            assert [r["Data"] for r in csub.records_until(1, timeout=5)] == [b"after-split"]
        finally:
            csub.close()
    finally:
        if sub:
            sub.close()
