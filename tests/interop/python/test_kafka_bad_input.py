"""Bad input on the Kafka listener, as raw frames built by hand (kafka_raw.py).

Each case gets what Apache Kafka gives: a closed connection for frames Kafka can't or won't parse
(oversized, negative size, unknown API key, unsupported version of anything but ApiVersions,
undecodable body), an ApiVersions v0 error response for an ApiVersions version it doesn't know, and
per-partition error codes for bad batches and unknown partitions or offsets. After each case the
server must still be up and answering, with no panic in its log.
"""

import struct
import time

import pytest

import kafka_raw as kr
from conftest import StraitServer, _external, external_kafka
from kafka_helpers import create_topic, unique

MAX_FRAME = 1048576

# Kafka error codes
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
UNSUPPORTED_VERSION = 35
INVALID_RECORD = 87


@pytest.fixture(scope="module")
def bad_server():
    """A strait with a 1 MiB frame limit, no topic auto-creation and key_check=reject."""
    if _external():
        pytest.skip("needs a strait started by the suite")
    srv = StraitServer(
        None,
        extra_env={
            "STRAIT_KAFKA__MAX_FRAME_BYTES": str(MAX_FRAME),
            "STRAIT_STREAMS__AUTO_CREATE_TOPICS": "false",
            "STRAIT_STREAMS__KEY_CHECK": "reject",
        },
    )
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture
def bs(bad_server):
    """The bad-input server's Kafka listener. With STRAIT_KAFKA_BOOTSTRAP, that broker instead: it
    must run with socket.request.max.bytes=1048576 and auto.create.topics.enable=false."""
    bootstrap = external_kafka() or bad_server.kafka_bootstrap
    yield bootstrap
    assert_alive(bad_server, bootstrap)


def assert_alive(srv, bootstrap):
    """A new connection gets a well-formed ApiVersions answer, and the process logged no panic."""
    c = kr.RawConn(bootstrap)
    try:
        err, apis = kr.parse_api_versions_v0(c.request(kr.api_versions(7), 7))
        assert err == NONE and apis
    finally:
        c.close()
    srv.assert_alive()


def expect_close(bootstrap, data, what):
    c = kr.RawConn(bootstrap)
    try:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            return  # closed while we were still sending: also a close
        assert c.closed_by_peer(10), f"{what}: connection still open after 10s"
    finally:
        c.close()


def high_watermark(bootstrap, topic, partition, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        c = kr.RawConn(bootstrap)
        try:
            res = kr.parse_list_offsets_v1(c.request(kr.list_offsets_v1(3, topic, [partition]), 3))
        finally:
            c.close()
        p = res[(topic, partition)]
        # A new topic's leaders may not be known yet (Kafka: NOT_LEADER_OR_FOLLOWER for a moment).
        if p["error"] in (5, 6) and time.time() < deadline:
            time.sleep(0.1)
            continue
        assert p["error"] == NONE, p
        return p["offset"]


# -- framing -------------------------------------------------------------------------------------


def test_oversized_frame_closes_connection(bs):
    # Only the size prefix and a few bytes: Kafka closes on the size alone, without reading the body.
    expect_close(bs, struct.pack(">i", MAX_FRAME + 1) + b"\0" * 64, "frame of max+1 bytes")
    expect_close(bs, struct.pack(">i", 0x7FFFFFFF) + b"\0" * 64, "frame of 2 GiB")


def produce_frame_of_size(topic, size, correlation_id):
    """A valid Produce v7 frame (size prefix excluded) of exactly `size` bytes: one record whose
    value fills it."""
    fill = size - 200
    while True:
        data = kr.produce_v7(correlation_id, {topic: {0: kr.record_batch([(b"k", b"x" * fill)])}})
        n = len(data) - 4
        if n == size:
            return data
        fill += size - n


def test_frame_size_limit_is_inclusive(bs):
    """Kafka refuses a request only when its size exceeds socket.request.max.bytes: a Produce of
    exactly the limit is answered, one byte more closes the connection."""
    topic = create_topic(bs, unique("raw-limit"), 1)
    c = kr.RawConn(bs)
    try:
        res = kr.parse_produce_v7(c.request(produce_frame_of_size(topic, MAX_FRAME, 12), 12))
        assert res[(topic, 0)]["error"] == NONE, res
    finally:
        c.close()
    assert high_watermark(bs, topic, 0) == 1
    expect_close(bs, produce_frame_of_size(topic, MAX_FRAME + 1, 13), "valid Produce of max+1 bytes")
    assert high_watermark(bs, topic, 0) == 1


@pytest.mark.parametrize("size", [-1, -(2**31), 0, 3], ids=["minus-1", "int-min", "zero", "shorter-than-header"])
def test_bad_frame_size_closes_connection(bs, size):
    expect_close(bs, struct.pack(">i", size) + b"\0" * max(size, 0) + b"\0" * 16, f"frame size {size}")


def test_truncated_frame_then_disconnect(bs, bad_server):
    c = kr.RawConn(bs)
    c.send(struct.pack(">i", 100) + b"\0\x12\0\0")  # promises 100 bytes, sends 4, hangs up
    c.close()
    time.sleep(0.1)


@pytest.mark.parametrize(
    "api_key,version",
    [(9999, 0), (-1, 0), (32767, 0), (52, 0), (3, 99), (0, 99), (1, 99), (0, 2)],
    ids=[
        "unknown-9999",
        "negative-key",
        "unknown-32767",
        "vote-not-on-broker",
        "metadata-v99",
        "produce-v99",
        "fetch-v99",
        "produce-v2-removed",
    ],
)
def test_unknown_api_or_unsupported_version_closes(bs, api_key, version):
    """Kafka closes the connection for API keys it doesn't know or expose, and for unsupported
    versions of any API but ApiVersions."""
    expect_close(bs, kr.frame(api_key, version, 5, b"\0" * 16), f"api {api_key} v{version}")


_ADVERTISED = {}


def advertised(bootstrap):
    """{api key: (oldest, newest)} as the server under test advertises them (ApiVersions v0)."""
    if bootstrap not in _ADVERTISED:
        c = kr.RawConn(bootstrap)
        try:
            err, apis = kr.parse_api_versions_v0(c.request(kr.api_versions(1), 1))
        finally:
            c.close()
        assert err == NONE
        _ADVERTISED[bootstrap] = {k: (lo, hi) for k, lo, hi in apis}
    return _ADVERTISED[bootstrap]


# Every API key Kafka 4.x defines; each case runs for the APIs the server under test advertises
# (ApiVersions itself answers unknown versions instead, above), so against Apache Kafka the same
# cases cover its APIs.
ALL_API_KEYS = range(0, 93)


@pytest.mark.parametrize("api_key", ALL_API_KEYS)
def test_every_advertised_api_closes_on_a_version_past_its_newest(bs, api_key):
    apis = advertised(bs)
    if api_key not in apis or api_key == 18:
        pytest.skip(f"API {api_key} is not advertised here (or is ApiVersions)")
    newest = apis[api_key][1]
    expect_close(bs, kr.frame(api_key, newest + 1, 7, b"\0" * 16), f"api {api_key} v{newest + 1}")


@pytest.mark.parametrize("api_key", ALL_API_KEYS)
def test_every_advertised_api_closes_on_an_empty_request(bs, api_key):
    """The header and nothing after it, at the newest version: every such request has fields
    (flexible versions at least their tagged-field section), so it cannot be parsed."""
    apis = advertised(bs)
    if api_key not in apis or api_key == 18:
        pytest.skip(f"API {api_key} is not advertised here (or is ApiVersions)")
    newest = apis[api_key][1]
    expect_close(bs, kr.frame(api_key, newest, 8, b""), f"empty api {api_key} v{newest}")


def test_undecodable_body_closes(bs):
    # Metadata v1 whose topic array claims 1000 entries and stops.
    expect_close(bs, kr.frame(3, 1, 9, kr.i32(1000) + kr.i16(5) + b"ab"), "truncated Metadata body")
    # Produce v7 cut off in the middle of its topic array.
    expect_close(bs, kr.frame(0, 7, 10, kr.string(None) + kr.i16(-1) + kr.i32(1000) + kr.i32(3)), "truncated Produce")


# -- ApiVersions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [99, 1000, 32767])
def test_api_versions_unsupported_version_answers_v0_with_error_35(bs, version):
    c = kr.RawConn(bs)
    try:
        err, apis = kr.parse_api_versions_v0(c.request(kr.api_versions(42, version), 42))
        assert err == UNSUPPORTED_VERSION
        assert apis, "the error response must list at least ApiVersions so the client can downgrade"
        by_key = {k: (lo, hi) for k, lo, hi in apis}
        assert 18 in by_key and by_key[18][0] == 0 and by_key[18][1] >= 3
        # The connection stays usable: the client retries at a version both sides know.
        err, apis = kr.parse_api_versions_v0(c.request(kr.api_versions(43, 0), 43))
        assert err == NONE
        keys = {k for k, _, _ in apis}
        assert {0, 1, 2, 3, 18} <= keys
        assert not keys & {71, 72}, "telemetry APIs must not be advertised"
    finally:
        c.close()


def test_pipelined_requests_answered_in_order(bs):
    c = kr.RawConn(bs)
    try:
        c.send(b"".join(kr.api_versions(100 + i, i % 3) for i in range(20)))
        for i in range(20):
            r = c.response(100 + i)
            assert r.i16() == NONE
    finally:
        c.close()


# -- Produce -------------------------------------------------------------------------------------


def produce(bootstrap, topic_partitions, acks=-1):
    c = kr.RawConn(bootstrap)
    try:
        return kr.parse_produce_v7(c.request(kr.produce_v7(21, topic_partitions, acks=acks), 21))
    finally:
        c.close()


def test_hand_built_batch_is_accepted(bs):
    """Sanity check of the hand-built batch: strait takes it, and a consumer reads it back."""
    from confluent_kafka import Consumer, TopicPartition

    from kafka_helpers import confluent_conf

    topic = create_topic(bs, unique("raw-ok"), 1)
    res = produce(bs, {topic: {0: kr.record_batch([(b"k1", b"v1"), (None, b"v2"), (b"k3", None)])}})
    assert res[(topic, 0)]["error"] == NONE and res[(topic, 0)]["base_offset"] == 0
    assert high_watermark(bs, topic, 0) == 3
    c = Consumer(confluent_conf(bs, **{"group.id": unique("g"), "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.time() + 10
        while len(got) < 3 and time.time() < deadline:
            got += [(m.key(), m.value()) for m in c.consume(10, 0.5) if not m.error()]
        assert got == [(b"k1", b"v1"), (None, b"v2"), (b"k3", None)]
    finally:
        c.close()


@pytest.mark.parametrize("where", ["crc-field", "record-byte", "last-byte"])
def test_produce_with_wrong_crc_is_corrupt_message(bs, where):
    topic = create_topic(bs, unique("raw-crc"), 2)
    good = kr.record_batch([(b"a", b"first")])
    assert produce(bs, {topic: {0: good}})[(topic, 0)]["error"] == NONE
    batch = bytearray(kr.record_batch([(b"k%d" % i, b"value-%d" % i) for i in range(5)]))
    at = {"crc-field": kr.CRC_AT + 1, "record-byte": len(batch) - 12, "last-byte": len(batch) - 1}[where]
    batch[at] ^= 0x01
    # Partition 0 gets the corrupt batch; partition 1 a good one in the same request.
    res = produce(bs, {topic: {0: bytes(batch), 1: kr.record_batch([(b"b", b"fine")])}})
    assert res[(topic, 0)]["error"] == CORRUPT_MESSAGE, res
    assert res[(topic, 1)]["error"] == NONE, "a corrupt batch must not fail the other partitions"
    assert high_watermark(bs, topic, 0) == 1, "nothing of the corrupt batch may be appended"
    assert high_watermark(bs, topic, 1) == 1
    # The partition still takes good batches afterwards, at the next offset.
    res = produce(bs, {topic: {0: kr.record_batch([(b"a", b"second")])}})
    assert res[(topic, 0)]["error"] == NONE and res[(topic, 0)]["base_offset"] == 1


def test_produce_truncated_batch_is_corrupt_message(bs):
    """A batch cut short. Kafka 4.4 answers INVALID_RECORD (87) here; CORRUPT_MESSAGE (2) is what
    it gives a batch whose CRC is wrong; either makes clients drop the batch."""
    topic = create_topic(bs, unique("raw-trunc"), 1)
    batch = kr.record_batch([(b"k", b"v" * 100)])
    res = produce(bs, {topic: {0: batch[:-10]}})
    assert res[(topic, 0)]["error"] in (CORRUPT_MESSAGE, INVALID_RECORD), res
    assert high_watermark(bs, topic, 0) == 0


@pytest.mark.parametrize("partition", [99, 4, -1])
def test_produce_to_unknown_partition(bs, partition):
    topic = create_topic(bs, unique("raw-part"), 4)
    res = produce(bs, {topic: {partition: kr.record_batch([(b"k", b"v")])}})
    assert res[(topic, partition)]["error"] == UNKNOWN_TOPIC_OR_PARTITION, res
    assert [high_watermark(bs, topic, p) for p in range(4)] == [0, 0, 0, 0]


def test_produce_to_unknown_topic_without_auto_create(bs, bad_server):
    name = unique("raw-nosuch")
    res = produce(bs, {name: {0: kr.record_batch([(b"k", b"v")])}})
    assert res[(name, 0)]["error"] == UNKNOWN_TOPIC_OR_PARTITION, res
    if not external_kafka():
        assert name not in bad_server.client().list_streams()["StreamNames"]


def test_produce_to_unknown_topic_does_not_create_it(server, kafka_bootstrap):
    """Kafka creates topics automatically only from Metadata requests (auto.create.topics.enable);
    a Produce naming an unknown topic gets UNKNOWN_TOPIC_OR_PARTITION and creates nothing."""
    name = unique("raw-produce-autocreate")
    res = produce(kafka_bootstrap, {name: {0: kr.record_batch([(b"k", b"v")])}})
    assert res[(name, 0)]["error"] == UNKNOWN_TOPIC_OR_PARTITION, res
    if not external_kafka():
        assert name not in server.client().list_streams()["StreamNames"]
    server.assert_alive()


def test_produce_key_outside_partition_range_rejected(bs, bad_server):
    if external_kafka():
        pytest.skip("strait's key_check")
    """kinesis-md5 stream with key_check=reject: a keyed record produced to a partition whose hash
    range doesn't hold md5(key) gets INVALID_RECORD; the right partition takes it."""
    from helpers import create_stream
    from kafka_helpers import Md5RangePartitioner, even_ranges

    name = unique("raw-keycheck")
    create_stream(bad_server.client(), name, 4)
    right = Md5RangePartitioner(even_ranges(4)).partition("some-key")
    wrong = (right + 1) % 4
    res = produce(bs, {name: {wrong: kr.record_batch([(b"some-key", b"v")])}})
    assert res[(name, wrong)]["error"] == INVALID_RECORD, res
    assert high_watermark(bs, name, wrong) == 0
    res = produce(bs, {name: {right: kr.record_batch([(b"some-key", b"v")])}})
    assert res[(name, right)]["error"] == NONE, res


# -- produce validation: what the red team sent (issue 19) ---------------------------------------
# Each batch has a valid CRC; Kafka decodes every record anyway and refuses these. Nothing of a
# refused batch is appended, and the partition keeps taking good batches.

MESSAGE_TOO_LARGE = 10
INVALID_TIMESTAMP = 32
UNSUPPORTED_COMPRESSION_TYPE = 76
GOOD = [(b"k", b"value value value value")]
# Kafka 4.x answers UNKNOWN_SERVER_ERROR (-1) where its own decompression fails; strait says what
# is wrong with the batch.
UNDECODABLE = (INVALID_RECORD, -1) if external_kafka() else (INVALID_RECORD,)


def refused_then_fine(bs, batch, codes):
    """Produces `batch` to a new one-partition topic: refused with one of `codes`, nothing
    appended, and a good batch afterwards lands at offset 0."""
    topic = create_topic(bs, unique("raw-valid"), 1)
    res = produce(bs, {topic: {0: batch}})[(topic, 0)]
    assert res["error"] in codes, res
    assert high_watermark(bs, topic, 0) == 0, "a refused batch appended records"
    res = produce(bs, {topic: {0: kr.record_batch(GOOD)}})[(topic, 0)]
    assert res["error"] == NONE and res["base_offset"] == 0, res
    return topic


def test_garbage_after_a_gzip_flag_is_refused(bs):
    refused_then_fine(bs, kr.batch_of(b"\x1f\x8b not gzip at all" * 4, 1, attributes=1), UNDECODABLE)


def test_truncated_gzip_is_refused(bs):
    import gzip

    body = gzip.compress(kr.record_bytes(GOOD * 3))
    refused_then_fine(bs, kr.batch_of(body[: len(body) // 2], 3, attributes=1), UNDECODABLE)


def test_a_record_length_of_2_to_the_30_is_refused(bs):
    rec = kr.record_bytes(GOOD)
    refused_then_fine(bs, kr.batch_of(kr.varint(1 << 30) + rec[1:], 1), (INVALID_RECORD,))


@pytest.mark.parametrize("declared,actual", [(3, 2), (2, 3)])
def test_a_count_that_disagrees_with_the_records_is_refused(bs, declared, actual):
    refused_then_fine(bs, kr.batch_of(kr.record_bytes(GOOD * actual), declared), (INVALID_RECORD,))


def test_a_count_that_disagrees_inside_gzip_is_refused(bs):
    import gzip

    body = gzip.compress(kr.record_bytes(GOOD * 2))
    refused_then_fine(bs, kr.batch_of(body, 3, attributes=1), (INVALID_RECORD,))


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_an_unknown_codec_is_refused(bs, codec):
    codes = (UNSUPPORTED_COMPRESSION_TYPE, -1) if external_kafka() else (UNSUPPORTED_COMPRESSION_TYPE,)
    refused_then_fine(bs, kr.batch_of(kr.record_bytes(GOOD), 1, attributes=codec), codes)


def test_a_control_batch_from_a_client_is_refused(bs):
    refused_then_fine(bs, kr.batch_of(kr.record_bytes(GOOD), 1, attributes=1 << 5), (INVALID_RECORD,))


def test_offset_deltas_a_producer_would_not_write_are_refused(bs):
    if external_kafka():
        pytest.skip("Kafka rewrites inner offsets it does not like; strait refuses them")
    body = kr.record_bytes(GOOD) + kr.record_bytes(GOOD)  # both at delta 0
    refused_then_fine(bs, kr.batch_of(body, 2), (INVALID_RECORD,))


def test_two_batches_for_one_partition_are_refused_whole(bs):
    """Kafka takes exactly one batch per partition from Produce v3 on: all or nothing."""
    both = kr.record_batch(GOOD) + kr.record_batch(GOOD)
    refused_then_fine(bs, both, (INVALID_RECORD,))


def test_a_timestamp_two_hours_ahead_is_refused(bs):
    """Kafka 4's message.timestamp.after.max.ms is one hour."""
    ahead = int(time.time() * 1000) + 2 * 3600 * 1000
    refused_then_fine(bs, kr.record_batch(GOOD, base_ts=ahead), (INVALID_TIMESTAMP,))


def test_a_gzip_bomb_is_refused(bs, bad_server):
    """16 KB of gzip that inflates to one 16 MiB record: above the stream's 1 MiB record size,
    refused before it is inflated (strait's rule: Kinesis readers cannot take such a record)."""
    if external_kafka():
        pytest.skip("strait's rule: Kafka bounds only the compressed batch")
    import gzip

    body = gzip.compress(kr.record_bytes([(b"k", bytes(16 << 20))]), compresslevel=9)
    assert len(body) < 100_000
    before = bad_server.rss_kib()
    refused_then_fine(bs, kr.batch_of(body, 1, attributes=1), (MESSAGE_TOO_LARGE,))
    grew = bad_server.rss_kib() - before
    assert grew < 8 * 1024, f"resident memory grew by {grew} KiB for a refused 16 KB batch"


def test_a_refused_batch_leaves_the_shard_readable_to_kinesis(bs, bad_server):
    """The poisoned-shard case: after each refused batch, GetRecords reads the good records."""
    if external_kafka():
        pytest.skip("reads the stream through strait's Kinesis API")
    import gzip

    topic = create_topic(bs, unique("raw-poison"), 1)
    bad = [
        kr.batch_of(b"garbage after the gzip flag", 1, attributes=1),
        kr.batch_of(gzip.compress(kr.record_bytes(GOOD * 2)), 3, attributes=1),
        kr.batch_of(kr.record_bytes(GOOD), 1, attributes=1 << 5),
    ]
    for i, batch in enumerate(bad):
        assert produce(bs, {topic: {0: kr.record_batch([(b"k", b"good-%d" % i)])}})[(topic, 0)]["error"] == NONE
        assert produce(bs, {topic: {0: batch}})[(topic, 0)]["error"] != NONE
    c = bad_server.client()
    it = c.get_shard_iterator(StreamName=topic, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")
    got = c.get_records(ShardIterator=it["ShardIterator"])["Records"]
    assert [r["Data"] for r in got] == [b"good-0", b"good-1", b"good-2"]


def test_init_producer_id_without_a_transactional_id_gives_a_new_producer(bs):
    """As Kafka: a presented id and epoch are not bumped (that would let any client fence any
    producer); a new id at epoch 0 is handed out."""
    first = init_producer_id(bs)
    assert first["error"] == NONE, first
    again = init_producer_id(bs, producer=(first["producer_id"], first["producer_epoch"]))
    assert again["error"] == NONE, again
    assert again["producer_id"] != first["producer_id"] and again["producer_epoch"] == 0, (first, again)


# -- Fetch and ListOffsets -----------------------------------------------------------------------


def fetch(bootstrap, topic, partition, offset):
    c = kr.RawConn(bootstrap)
    try:
        return kr.parse_fetch_v4(c.request(kr.fetch_v4(31, topic, partition, offset), 31))[(topic, partition)]
    finally:
        c.close()


def test_fetch_offsets_out_of_range(bs):
    topic = create_topic(bs, unique("raw-fetch"), 1)
    assert produce(bs, {topic: {0: kr.record_batch([(b"k", b"v%d" % i) for i in range(3)])}})[(topic, 0)]["error"] == 0
    p = fetch(bs, topic, 0, 0)
    assert p["error"] == NONE and p["high_watermark"] == 3 and p["records"]
    p = fetch(bs, topic, 0, 3)  # at the end: nothing yet, not an error
    assert p["error"] == NONE and not p["records"]
    for off in (4, 1000, -5):
        p = fetch(bs, topic, 0, off)
        assert p["error"] == OFFSET_OUT_OF_RANGE, (off, p)


def test_fetch_and_list_offsets_unknown_partition(bs):
    topic = create_topic(bs, unique("raw-fetch-part"), 2)
    assert fetch(bs, topic, 99, 0)["error"] == UNKNOWN_TOPIC_OR_PARTITION
    assert fetch(bs, unique("raw-no-topic"), 0, 0)["error"] == UNKNOWN_TOPIC_OR_PARTITION
    c = kr.RawConn(bs)
    try:
        res = kr.parse_list_offsets_v1(c.request(kr.list_offsets_v1(3, topic, [0, 99]), 3))
    finally:
        c.close()
    assert res[(topic, 0)]["error"] == NONE and res[(topic, 0)]["offset"] == 0
    assert res[(topic, 99)]["error"] == UNKNOWN_TOPIC_OR_PARTITION


def test_consumer_with_auto_offset_reset_error_sees_out_of_range(bs):
    """librdkafka with auto.offset.reset=error reports the broker's OFFSET_OUT_OF_RANGE."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from kafka_helpers import confluent_conf

    topic = create_topic(bs, unique("raw-reset"), 1)
    produce(bs, {topic: {0: kr.record_batch([(b"k", b"v")])}})
    c = Consumer(
        confluent_conf(
            bs, **{"group.id": unique("g"), "enable.auto.commit": False, "auto.offset.reset": "error"}
        )
    )
    try:
        c.assign([TopicPartition(topic, 0, 50)])
        err = None
        deadline = time.time() + 15
        while err is None and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error(), f"read a record at offset {m.offset()} beyond the end"
                err = m.error()
        assert err is not None, "no error reported"
        assert err.code() == KafkaError._AUTO_OFFSET_RESET, err
        assert "out of range" in err.str().lower(), err.str()
    finally:
        c.close()


def test_kafka_python_offset_out_of_range(bs):
    """kafka-python with auto_offset_reset='none' raises OffsetOutOfRangeError."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import OffsetOutOfRangeError

    topic = create_topic(bs, unique("raw-kp-reset"), 1)
    produce(bs, {topic: {0: kr.record_batch([(b"k", b"v")])}})
    c = KafkaConsumer(bootstrap_servers=bs, auto_offset_reset="none", enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 50)
        with pytest.raises(OffsetOutOfRangeError):
            deadline = time.time() + 15
            while time.time() < deadline:
                assert not c.poll(timeout_ms=500), "read records beyond the end"
    finally:
        c.close()


# -- idempotent producer state -----------------------------------------------------------------

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


def init_producer_id(bootstrap, transactional_id=None, producer=None):
    """InitProducerId v0, or v3 (flexible) presenting (producer id, epoch). Retried while a real
    Kafka's producer-id block is still loading (COORDINATOR_LOAD_IN_PROGRESS), as clients do."""
    deadline = time.time() + 30
    while True:
        c = kr.RawConn(bootstrap)
        try:
            if producer is None:
                res = kr.parse_init_producer_id_v0(c.request(kr.init_producer_id_v0(41, transactional_id), 41))
            else:
                body = b"\x00" + kr.i32(60000) + kr.i64(producer[0]) + kr.i16(producer[1]) + b"\x00"
                r = c.request(kr.frame_v2(22, 3, 42, body), 42)
                r.i8()  # response header tags
                res = kr.parse_init_producer_id_v0(r)
        finally:
            c.close()
        if res["error"] not in (14, 15) or time.time() > deadline:
            return res
        time.sleep(0.2)


def test_idempotent_retry_gets_original_offset_and_is_not_appended_twice(bs):
    topic = create_topic(bs, unique("raw-idem"), 1)
    pid = init_producer_id(bs)
    assert pid["error"] == NONE and pid["producer_id"] >= 0 and pid["producer_epoch"] >= 0
    P, E = pid["producer_id"], pid["producer_epoch"]
    first = kr.record_batch([(b"k", b"a0"), (b"k", b"a1"), (b"k", b"a2")], producer_id=P, producer_epoch=E, base_sequence=0)
    second = kr.record_batch([(b"k", b"b0"), (b"k", b"b1")], producer_id=P, producer_epoch=E, base_sequence=3)
    r1 = produce(bs, {topic: {0: first}})[(topic, 0)]
    assert r1["error"] == NONE and r1["base_offset"] == 0
    r2 = produce(bs, {topic: {0: second}})[(topic, 0)]
    assert r2["error"] == NONE and r2["base_offset"] == 3
    # Retries of either batch (a lost acknowledgement): the original offsets, nothing appended.
    assert produce(bs, {topic: {0: second}})[(topic, 0)]["base_offset"] == 3
    again = produce(bs, {topic: {0: first}})[(topic, 0)]
    assert again["error"] == NONE and again["base_offset"] == 0, again
    assert high_watermark(bs, topic, 0) == 5
    # A gap in the sequence: OUT_OF_ORDER_SEQUENCE_NUMBER, nothing appended.
    gap = kr.record_batch([(b"k", b"gap")], producer_id=P, producer_epoch=E, base_sequence=7)
    assert produce(bs, {topic: {0: gap}})[(topic, 0)]["error"] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert high_watermark(bs, topic, 0) == 5
    # A newer epoch starts again at sequence 0; the old epoch is then refused.
    newer = kr.record_batch([(b"k", b"e1")], producer_id=P, producer_epoch=E + 1, base_sequence=0)
    assert produce(bs, {topic: {0: newer}})[(topic, 0)]["error"] == NONE
    stale = kr.record_batch([(b"k", b"stale")], producer_id=P, producer_epoch=E, base_sequence=5)
    assert produce(bs, {topic: {0: stale}})[(topic, 0)]["error"] == INVALID_PRODUCER_EPOCH
    assert high_watermark(bs, topic, 0) == 6


def test_transactional_id_is_refused(bs):
    """No transactions: InitProducerId with a transactional id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED."""
    if external_kafka():
        pytest.skip("strait's contract: no transactions")
    res = init_producer_id(bs, "txn-1")
    assert res["error"] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED, res
