"""Stream consumers (Register/Describe/List/DeregisterStreamConsumer) and SubscribeToShard's bad
inputs: the limit per stream, duplicate names, unknown and malformed ARNs, a consumer still
CREATING, a stale ARN after re-registering, bad starting positions, DeleteStream with consumers
(EnforceConsumerDeletion), and consumers surviving a restart.
"""

import re
import time

import pytest

from efo_helpers import Subscriber, register_consumer, stream_arn_of, wait_consumer_active
from helpers import ACCOUNT, REGION, create_stream, expect_error, put_records, stream_arn, unique

SHARD0 = "shardId-000000000000"
V, IA, RNF, RIU = "ValidationException", "InvalidArgumentException", "ResourceNotFoundException", "ResourceInUseException"
ARN_RE = re.compile(
    rf"^arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/(?P<stream>[a-zA-Z0-9_.-]+)/consumer/(?P<name>[a-zA-Z0-9_.-]+):(?P<epoch>\d+)$"
)


def wait_consumer_gone(client, sarn, name, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        names = [x["ConsumerName"] for x in list_all_consumers(client, sarn)]
        if name not in names:
            return
        time.sleep(0.05)
    raise AssertionError(f"consumer {name} still listed {timeout}s after DeregisterStreamConsumer")


def list_all_consumers(client, sarn, page=None):
    kw = {"StreamARN": sarn}
    if page:
        kw["MaxResults"] = page
    resp = client.list_stream_consumers(**kw)
    out = list(resp["Consumers"])
    pages = [len(resp["Consumers"])]
    while resp.get("NextToken"):
        kw2 = {"StreamARN": sarn, "NextToken": resp["NextToken"]}
        if page:
            kw2["MaxResults"] = page
        resp = client.list_stream_consumers(**kw2)
        out.extend(resp["Consumers"])
        pages.append(len(resp["Consumers"]))
    if page:
        list_all_consumers.pages = pages
    return out


def test_register_describe_list_deregister(client):
    name = create_stream(client, unique("cons"))
    sarn = stream_arn_of(client, name)
    t0 = time.time()
    resp = client.register_stream_consumer(StreamARN=sarn, ConsumerName="app.one_1-x")
    cons = resp["Consumer"]
    assert cons["ConsumerName"] == "app.one_1-x"
    assert cons["ConsumerStatus"] == "CREATING"
    m = ARN_RE.match(cons["ConsumerARN"])
    assert m, cons["ConsumerARN"]
    assert m["stream"] == name and m["name"] == "app.one_1-x"
    assert abs(int(m["epoch"]) - t0) <= 2, (m["epoch"], t0)
    assert abs(cons["ConsumerCreationTimestamp"].timestamp() - t0) <= 2
    wait_consumer_active(client, cons["ConsumerARN"])
    t_active = time.time() - t0
    assert t_active < 3, f"CREATING for {t_active:.2f}s"

    by_arn = client.describe_stream_consumer(ConsumerARN=cons["ConsumerARN"])["ConsumerDescription"]
    by_name = client.describe_stream_consumer(StreamARN=sarn, ConsumerName="app.one_1-x")["ConsumerDescription"]
    assert by_arn == by_name
    assert by_arn["StreamARN"] == sarn and by_arn["ConsumerARN"] == cons["ConsumerARN"]
    assert by_arn["ConsumerStatus"] == "ACTIVE"
    assert by_arn["ConsumerCreationTimestamp"] == cons["ConsumerCreationTimestamp"]

    arn2 = register_consumer(client, name, "two")
    listed = {x["ConsumerName"]: x for x in list_all_consumers(client, sarn)}
    assert set(listed) == {"app.one_1-x", "two"}
    assert listed["two"]["ConsumerARN"] == arn2 and listed["two"]["ConsumerStatus"] == "ACTIVE"

    # Deregister by ARN, and by stream ARN + name.
    client.deregister_stream_consumer(ConsumerARN=cons["ConsumerARN"])
    st = client.describe_stream_consumer(StreamARN=sarn, ConsumerName="two")["ConsumerDescription"]["ConsumerStatus"]
    assert st == "ACTIVE"
    client.deregister_stream_consumer(StreamARN=sarn, ConsumerName="two")
    for n in ("app.one_1-x", "two"):
        wait_consumer_gone(client, sarn, n)
    expect_error(client.describe_stream_consumer, RNF, ConsumerARN=cons["ConsumerARN"])
    expect_error(client.describe_stream_consumer, RNF, StreamARN=sarn, ConsumerName="two")
    assert list_all_consumers(client, sarn) == []


def test_limit_per_stream_and_paging(client):
    """Default kinesis.max_consumers_per_stream is 20: the 21st registration is refused; a slot
    freed by deregistering can be used again. ListStreamConsumers pages with MaxResults."""
    name = create_stream(client, unique("cons-limit"))
    sarn = stream_arn_of(client, name)
    arns = [client.register_stream_consumer(StreamARN=sarn, ConsumerName=f"c{i:02d}")["Consumer"]["ConsumerARN"] for i in range(20)]
    expect_error(client.register_stream_consumer, "LimitExceededException", StreamARN=sarn, ConsumerName="c20")
    assert len(list_all_consumers(client, sarn)) == 20

    listed = list_all_consumers(client, sarn, page=7)
    assert list_all_consumers.pages == [7, 7, 6], list_all_consumers.pages
    assert sorted(x["ConsumerARN"] for x in listed) == sorted(arns)
    # The token alone (no StreamARN; botocore's model requires it, so validation is off) also pages.
    from conftest import make_client

    rc = make_client(client.meta.endpoint_url, validate=False)
    first = rc.list_stream_consumers(StreamARN=sarn, MaxResults=7)
    second = rc.list_stream_consumers(NextToken=first["NextToken"], MaxResults=7)
    assert [x["ConsumerARN"] for x in second["Consumers"]] == [x["ConsumerARN"] for x in listed[7:14]]

    # Another stream has its own limit.
    other = create_stream(client, unique("cons-limit2"))
    register_consumer(client, other, "c00", wait=False)

    wait_consumer_active(client, arns[0])
    client.deregister_stream_consumer(ConsumerARN=arns[0])
    wait_consumer_gone(client, sarn, "c00")
    client.register_stream_consumer(StreamARN=sarn, ConsumerName="c20")
    expect_error(client.register_stream_consumer, "LimitExceededException", StreamARN=sarn, ConsumerName="c21")


def test_duplicate_name(client):
    name = create_stream(client, unique("cons-dup"))
    arn = register_consumer(client, name, "dup", wait=False)
    expect_error(client.register_stream_consumer, RIU, StreamARN=stream_arn(name), ConsumerName="dup")
    wait_consumer_active(client, arn)
    expect_error(client.register_stream_consumer, RIU, StreamARN=stream_arn(name), ConsumerName="dup")
    assert [x["ConsumerName"] for x in client.list_stream_consumers(StreamARN=stream_arn(name))["Consumers"]] == ["dup"]


@pytest.mark.parametrize(
    "op,kw",
    [
        ("register_stream_consumer", {"StreamARN": stream_arn("no-such-stream-efo"), "ConsumerName": "c"}),
        ("list_stream_consumers", {"StreamARN": stream_arn("no-such-stream-efo")}),
        ("describe_stream_consumer", {"StreamARN": stream_arn("no-such-stream-efo"), "ConsumerName": "c"}),
        ("describe_stream_consumer", {"ConsumerARN": stream_arn("no-such-stream-efo") + "/consumer/c:1700000000"}),
        ("deregister_stream_consumer", {"ConsumerARN": stream_arn("no-such-stream-efo") + "/consumer/c:1700000000"}),
        ("deregister_stream_consumer", {"StreamARN": stream_arn("no-such-stream-efo"), "ConsumerName": "c"}),
    ],
)
def test_unknown_stream(raw_client, op, kw):
    expect_error(getattr(raw_client, op), RNF, **kw)


def test_unknown_consumer(raw_client):
    name = create_stream(raw_client, unique("cons-unk"))
    sarn = stream_arn(name)
    expect_error(raw_client.describe_stream_consumer, RNF, StreamARN=sarn, ConsumerName="ghost")
    expect_error(raw_client.describe_stream_consumer, RNF, ConsumerARN=f"{sarn}/consumer/ghost:1700000000")
    expect_error(raw_client.deregister_stream_consumer, RNF, ConsumerARN=f"{sarn}/consumer/ghost:1700000000")
    expect_error(raw_client.deregister_stream_consumer, RNF, StreamARN=sarn, ConsumerName="ghost")
    expect_error(
        raw_client.subscribe_to_shard,
        RNF,
        ConsumerARN=f"{sarn}/consumer/ghost:1700000000",
        ShardId=SHARD0,
        StartingPosition={"Type": "LATEST"},
    )


MALFORMED_CONSUMER_ARNS = [
    "not-an-arn",
    "arn:aws:kinesis:us-east-1:000000000000:stream/s",  # a stream ARN
    "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c",  # no epoch
    "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:abc",  # epoch not a number
    "arn:aws:kinesis:us-east-1:12345:stream/s/consumer/c:1700000000",  # account not 12 digits
    "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/bad name:1700000000",
]


@pytest.mark.parametrize("arn", MALFORMED_CONSUMER_ARNS)
@pytest.mark.parametrize("op", ["describe_stream_consumer", "deregister_stream_consumer", "subscribe_to_shard"])
def test_malformed_consumer_arn(raw_client, op, arn):
    kw = {"ConsumerARN": arn}
    if op == "subscribe_to_shard":
        kw.update(ShardId=SHARD0, StartingPosition={"Type": "LATEST"})
    expect_error(getattr(raw_client, op), V, **kw)


@pytest.mark.parametrize(
    "kw",
    [
        {"StreamARN": "not-an-arn", "ConsumerName": "c"},
        {"StreamARN": stream_arn("s"), "ConsumerName": "bad name!"},
        {"StreamARN": stream_arn("s"), "ConsumerName": ""},
        {"StreamARN": stream_arn("s"), "ConsumerName": "c" * 129},
        {"StreamARN": stream_arn("s")},
        {"ConsumerName": "c"},
    ],
    ids=["stream-arn", "name-chars", "name-empty", "name-too-long", "name-missing", "arn-missing"],
)
def test_register_bad_input(raw_client, kw):
    expect_error(raw_client.register_stream_consumer, V, **kw)


def test_describe_without_arn_or_name(raw_client):
    expect_error(raw_client.describe_stream_consumer, {V, IA})
    expect_error(raw_client.describe_stream_consumer, {V, IA}, ConsumerName="c")
    expect_error(raw_client.deregister_stream_consumer, {V, IA})


def test_subscribe_while_creating(client):
    name = create_stream(client, unique("cons-creating"))
    resp = client.register_stream_consumer(StreamARN=stream_arn(name), ConsumerName="early")
    arn = resp["Consumer"]["ConsumerARN"]
    assert resp["Consumer"]["ConsumerStatus"] == "CREATING"
    expect_error(client.subscribe_to_shard, RIU, ConsumerARN=arn, ShardId=SHARD0, StartingPosition={"Type": "LATEST"})
    wait_consumer_active(client, arn)
    sub = Subscriber(client, arn, SHARD0, {"Type": "LATEST"})
    sub.close()


def test_stale_arn_after_reregister(client):
    name = create_stream(client, unique("cons-stale"))
    sarn = stream_arn(name)
    old = register_consumer(client, name, "same")
    client.deregister_stream_consumer(ConsumerARN=old)
    wait_consumer_gone(client, sarn, "same")
    time.sleep(1.1)  # the ARN's creation epoch is in seconds
    new = register_consumer(client, name, "same")
    assert new != old and ARN_RE.match(new)["epoch"] != ARN_RE.match(old)["epoch"]
    expect_error(client.describe_stream_consumer, RNF, ConsumerARN=old)
    expect_error(client.subscribe_to_shard, RNF, ConsumerARN=old, ShardId=SHARD0, StartingPosition={"Type": "LATEST"})
    expect_error(client.deregister_stream_consumer, RNF, ConsumerARN=old)
    assert client.describe_stream_consumer(ConsumerARN=new)["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE"
    sub = Subscriber(client, new, SHARD0, {"Type": "LATEST"})
    sub.close()


def test_subscribe_deregistering_consumer(client):
    """After DeregisterStreamConsumer the consumer (DELETING, then gone) cannot subscribe."""
    name = create_stream(client, unique("cons-dereg"))
    arn = register_consumer(client, name, "bye")
    client.deregister_stream_consumer(ConsumerARN=arn)
    st = None
    try:
        st = client.describe_stream_consumer(ConsumerARN=arn)["ConsumerDescription"]["ConsumerStatus"]
    except Exception:
        pass
    assert st in (None, "DELETING"), st
    expect_error(client.subscribe_to_shard, {RIU, RNF}, ConsumerARN=arn, ShardId=SHARD0, StartingPosition={"Type": "LATEST"})


@pytest.fixture(scope="module")
def sub_ctx(server):
    """A 2-shard stream with a record in each shard."""
    c = server.client()
    name = create_stream(c, unique("cons-pos"), 2)
    recs = {}
    i = 0
    while len(recs) < 2:
        r = c.put_record(StreamName=name, PartitionKey=f"pk{i}", Data=b"x")
        recs.setdefault(r["ShardId"], r["SequenceNumber"])
        i += 1
    return name, recs["shardId-000000000000"], recs["shardId-000000000001"]


FUTURE = 4102444800  # 2100-01-01


@pytest.mark.parametrize(
    "shard,pos,codes",
    [
        (SHARD0, {"Type": "FOO"}, V),
        (SHARD0, {"Type": "latest"}, V),
        (SHARD0, {}, V),
        (SHARD0, {"Type": "AT_SEQUENCE_NUMBER"}, IA),
        (SHARD0, {"Type": "AFTER_SEQUENCE_NUMBER"}, IA),
        (SHARD0, {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "abc"}, V),
        (SHARD0, {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "-5"}, V),
        (SHARD0, {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "12345"}, IA),
        (SHARD0, {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "SEQ1"}, IA),
        (SHARD0, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "SEQ1"}, IA),
        (SHARD0, {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "9" * 129}, IA),
        (SHARD0, {"Type": "TRIM_HORIZON", "SequenceNumber": "SEQ0"}, IA),
        (SHARD0, {"Type": "AT_TIMESTAMP"}, IA),
        (SHARD0, {"Type": "AT_TIMESTAMP", "Timestamp": FUTURE}, IA),
        ("shardId-000000000099", {"Type": "LATEST"}, RNF),
        ("shard id!", {"Type": "LATEST"}, V),
        ("", {"Type": "LATEST"}, V),
    ],
    ids=[
        "type-bogus", "type-lowercase", "type-missing", "at-seq-without-seq", "after-seq-without-seq",
        "seq-alpha", "seq-negative", "seq-made-up", "seq-of-other-shard", "after-seq-of-other-shard",
        "seq-huge", "trim-with-seq", "at-timestamp-without-ts", "at-timestamp-future", "shard-unknown",
        "shard-bad-chars", "shard-empty",
    ],
)
def test_subscribe_bad_starting_position(server, sub_ctx, shard, pos, codes):
    name, seq0, seq1 = sub_ctx
    c = server.client(validate=False)
    arn = register_consumer(c, name, unique("p"))
    pos = {k: {"SEQ0": seq0, "SEQ1": seq1}.get(v, v) if isinstance(v, str) else v for k, v in pos.items()}
    try:
        expect_error(c.subscribe_to_shard, codes, ConsumerARN=arn, ShardId=shard, StartingPosition=pos)
        # Nothing was leased: a good subscription right away is accepted.
        Subscriber(server.client(fresh=True), arn, SHARD0, {"Type": "LATEST"}).close()
    finally:
        c.deregister_stream_consumer(ConsumerARN=arn)
    server.assert_alive()


def test_delete_stream_with_consumers(client):
    name = create_stream(client, unique("cons-del"))
    sarn = stream_arn(name)
    arn = register_consumer(client, name, "keep")
    expect_error(client.delete_stream, RIU, StreamName=name)
    expect_error(client.delete_stream, RIU, StreamName=name, EnforceConsumerDeletion=False)
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    assert client.describe_stream_consumer(ConsumerARN=arn)["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE"
    client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    deadline = time.time() + 10
    while name in client.list_streams()["StreamNames"]:
        assert time.time() < deadline, "stream still listed 10 s after DeleteStream"
        time.sleep(0.05)
    expect_error(client.describe_stream_consumer, RNF, ConsumerARN=arn)
    # A stream created again under the name starts without consumers; the old ARN stays dead.
    create_stream(client, name)
    assert client.list_stream_consumers(StreamARN=sarn)["Consumers"] == []
    expect_error(client.describe_stream_consumer, RNF, ConsumerARN=arn)
    # Without consumers (all deregistered), a plain DeleteStream works again.
    arn2 = register_consumer(client, name, "temp")
    client.deregister_stream_consumer(ConsumerARN=arn2)
    wait_consumer_gone(client, sarn, "temp")
    client.delete_stream(StreamName=name)


def test_delete_stream_ends_subscription(server):
    c = server.client()
    name = create_stream(c, unique("cons-del-sub"))
    arn = register_consumer(c, name, "live")
    sub = Subscriber(server.client(fresh=True), arn, SHARD0, {"Type": "LATEST"})
    try:
        assert (sub.next(timeout=8) or ("timeout",))[0] == "event", "no event within 8 s"
        c.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        end = sub.until_end(timeout=10)
        assert end is not None, "subscription still open 10 s after its stream was deleted"
    finally:
        sub.close()
    server.assert_alive()


@pytest.mark.slow
def test_consumers_survive_restart(fresh_server):
    c = fresh_server.client()
    name = create_stream(c, unique("cons-restart"))
    sarn = stream_arn(name)
    keep = register_consumer(c, name, "keep")
    gone = register_consumer(c, name, "gone")
    c.deregister_stream_consumer(ConsumerARN=gone)
    wait_consumer_gone(c, sarn, "gone")
    before = {x["ConsumerName"]: x for x in c.list_stream_consumers(StreamARN=sarn)["Consumers"]}
    put_records(c, name, [("k", b"before-restart")])
    rc = fresh_server.restart()
    assert rc == 0, f"SIGTERM exit code {rc}"
    c = fresh_server.client(fresh=True)
    after = {x["ConsumerName"]: x for x in c.list_stream_consumers(StreamARN=sarn)["Consumers"]}
    assert after == before, (before, after)
    assert after["keep"]["ConsumerARN"] == keep and after["keep"]["ConsumerStatus"] == "ACTIVE"
    expect_error(c.describe_stream_consumer, RNF, ConsumerARN=gone)
    sub = Subscriber(c, keep, SHARD0, {"Type": "TRIM_HORIZON"})
    try:
        assert [r["Data"] for r in sub.records_until(1, timeout=5)] == [b"before-restart"]
    finally:
        sub.close()
    expect_error(c.register_stream_consumer, RIU, StreamARN=sarn, ConsumerName="keep")
    expect_error(c.delete_stream, RIU, StreamName=name)
    fresh_server.assert_alive()
