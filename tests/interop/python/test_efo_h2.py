"""SubscribeToShard over HTTP/2 (the transport AWS SDKs use for it) with the sans-IO `h2` client:
h2c with prior knowledge on the plain port, and TLS with ALPN h2 on tls_server. Also the raw
HTTP/1.1 framing, to compare: the event-stream messages themselves (initial-response first, with
:content-type application/json; SubscribeToShardEvent payloads), records before and after
subscribing, the takeover exception message, and the end of a subscription at its lifetime
(END_STREAM, no RST_STREAM).
"""

import base64
import os
import time

import pytest

from efo_helpers import H2Subscription, RawSubscription, register_consumer
from helpers import create_stream, put_records, unique

SHARD0 = "shardId-000000000000"


def open_sub(srv, transport, arn, pos):
    if transport == "h2c":
        return H2Subscription(srv.host, srv.port, arn, SHARD0, pos)
    if transport == "h2-tls":
        return H2Subscription("127.0.0.1", srv.port, arn, SHARD0, pos, tls_ca=os.path.join(srv.certs, "ca.pem"))
    return RawSubscription(srv.host, srv.port, arn, SHARD0, pos)


@pytest.mark.parametrize("transport", ["h2c", "h2-tls", "http1.1"])
def test_event_stream_framing(server, tls_server, transport):
    srv = tls_server if transport == "h2-tls" else server
    c = srv.client()
    name = create_stream(c, unique("efo-h2"))
    before = put_records(c, name, [(f"k{i}", f"before-{i}".encode()) for i in range(3)])
    arn = register_consumer(c, name, "h2")
    sub = open_sub(srv, transport, arn, {"Type": "TRIM_HORIZON"})
    try:
        assert sub.read_head() == 200
        assert sub.headers.get("content-type") == "application/vnd.amazon.eventstream", sub.headers
        if transport.startswith("h2"):
            assert "transfer-encoding" not in sub.headers
        else:
            assert sub.headers.get("transfer-encoding") == "chunked", sub.headers
        msgs = sub.messages()
        kind, etype, body, h = next(msgs)
        assert (kind, etype) == ("event", "initial-response"), (kind, etype, body)
        assert body == {}
        assert h.get(":content-type") == "application/json", h
        got = []
        after = None
        for kind, etype, body, h in msgs:
            assert (kind, etype) == ("event", "SubscribeToShardEvent"), (kind, etype, body)
            assert h.get(":content-type") == "application/json", h
            got += body["Records"]
            if body["Records"]:
                assert body["ContinuationSequenceNumber"] == body["Records"][-1]["SequenceNumber"]
            if len(got) == 3 and after is None:
                after = put_records(c, name, [(f"a{i}", f"after-{i}".encode()) for i in range(4)])
            if len(got) >= 7:
                break
        want = before + after
        assert [r["SequenceNumber"] for r in got] == [w["SequenceNumber"] for w in want]
        assert [base64.b64decode(r["Data"]) for r in got] == [f"before-{i}".encode() for i in range(3)] + [
            f"after-{i}".encode() for i in range(4)
        ]
        if transport == "h2-tls":
            # tls_server's lifetime is 4 s: the stream ends with END_STREAM, not a reset.
            t0 = time.time()
            rest = list(msgs)
            assert all(m[1] == "SubscribeToShardEvent" and not m[2]["Records"] for m in rest), rest
            assert sub.ended and sub.reset is None, (sub.ended, sub.reset)
            assert time.time() - t0 < 6
    finally:
        sub.close()


@pytest.mark.parametrize("transport", ["h2c", "http1.1"])
def test_takeover_exception_message(server, transport):
    c = server.client()
    name = create_stream(c, unique("efo-h2-take"))
    arn = register_consumer(c, name, "h2-take")
    first = open_sub(server, transport, arn, {"Type": "LATEST"})
    t0 = time.time()
    second = None
    try:
        assert first.read_head() == 200
        msgs = first.messages()
        assert next(msgs)[1] == "initial-response"
        time.sleep(max(0.0, t0 + 5.5 - time.time()))
        second = open_sub(server, transport, arn, {"Type": "LATEST"})
        assert second.read_head() == 200
        rest = list(msgs)  # until the old stream ends
        exc = [m for m in rest if m[0] == "exception"]
        assert len(exc) == 1 and rest[-1] is exc[0], rest
        kind, etype, body, h = exc[0]
        assert etype == "ResourceInUseException", exc
        assert body.get("message"), body
        assert h.get(":content-type") == "application/json", h
        if transport == "h2c":
            assert first.reset is None, f"old stream reset with error {first.reset} instead of ending"
    finally:
        first.close()
        if second:
            second.close()
