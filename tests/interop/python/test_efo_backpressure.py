"""A subscriber that stops reading must not make strait buffer the shard in memory.

A raw SubscribeToShard reads the initial-response and one event, then stalls while ~200 MB of
records go into its shard: over HTTP/1.1 (small SO_RCVBUF) and h2c by not reading the socket at
all; over h2c also by reading the socket but never granting HTTP/2 flow-control window (then at most
the initial 64 KiB window may arrive). strait's RSS (/proc/PID/status VmRSS) is
sampled throughout and may grow by less than 100 MB. Then the subscriber reads everything: every
record once, in order, byte for byte.
"""

import base64
import threading
import time

import pytest

from conftest import StraitServer, _external
from efo_helpers import H2Subscription, RawSubscription, register_consumer, vm_rss_kb
from helpers import create_stream, put_records, unique

pytestmark = pytest.mark.slow

RECORD = 256 * 1024
PER_CALL = 16  # 4 MiB per PutRecords (limit 5 MiB)
TOTAL_MB = 200
N = TOTAL_MB * 1024 * 1024 // RECORD  # 800 records
MAX_GROWTH_MB = 100


def payload(i):
    head = f"rec-{i:06d}|".encode()
    fill = bytes([i % 251]) * (RECORD - len(head))
    return head + fill


@pytest.fixture
def bp_server():
    if _external():
        pytest.skip("needs a strait started by the suite (its RSS is sampled)")
    srv = StraitServer(None)
    srv.start()
    yield srv
    srv.cleanup()


@pytest.mark.parametrize("transport", ["http1.1-stop-reading", "h2c-stop-reading", "h2c-no-window-update"])
def test_slow_subscriber_keeps_memory_bounded(bp_server, transport):
    srv = bp_server
    c = srv.client(fresh=True, read_timeout=60)
    name = create_stream(c, unique("efo-bp"))
    arn = register_consumer(c, name, "slow")
    pid = srv.proc.pid

    # Warm up the put path (allocator pools, buffers) before the baseline.
    for j in range(3):
        put_records(c, name, [(f"w{j}", b"w" * RECORD)] * PER_CALL)

    pos = {"Type": "LATEST"}
    if transport.startswith("http1.1"):
        sub = RawSubscription(srv.host, srv.port, arn, "shardId-000000000000", pos, rcvbuf=64 * 1024, timeout=30)
    else:
        sub = H2Subscription(
            srv.host, srv.port, arn, "shardId-000000000000", pos, grant_window=(transport != "h2c-no-window-update")
        )
    assert sub.read_head() == 200, sub.headers
    msgs = sub.messages()
    first = next(msgs)
    assert first[:2] == ("event", "initial-response"), first
    second = next(msgs)
    assert second[:2] == ("event", "SubscribeToShardEvent") and second[2]["Records"] == [], second
    # From here on nothing is read (or, h2c-no-window-update, no window granted) until everything is written.
    if transport == "h2c-no-window-update":
        at_stall = sub.received
        sub.pump_in_background()

    baseline = vm_rss_kb(pid)
    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            samples.append((time.time(), vm_rss_kb(pid)))
            time.sleep(0.1)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    t0 = time.time()
    try:
        placed = []
        for i in range(0, N, PER_CALL):
            part = [(f"k{j % 7}", payload(j)) for j in range(i, min(N, i + PER_CALL))]
            placed += [r["SequenceNumber"] for r in put_records(c, name, part)]
        time.sleep(1.0)  # let the push loop run into the full pipe
    finally:
        stop.set()
        th.join()
    t_put = time.time() - t0
    if transport == "h2c-no-window-update":
        sub.stop_background()
        assert sub.reset is None and not sub.ended, f"stream reset ({sub.reset}) or ended while stalled"
        stalled = sub.received - at_stall
        assert stalled <= 65535, f"{stalled} bytes of DATA arrived with no window granted"
        sub.open_window()
    peak = max(kb for _, kb in samples)
    growth_mb = (peak - baseline) / 1024
    assert srv.proc.poll() is None, srv.log_tail()
    print(f"\nput {TOTAL_MB} MB in {t_put:.1f}s; RSS baseline {baseline / 1024:.0f} MB, peak {peak / 1024:.0f} MB")
    assert growth_mb < MAX_GROWTH_MB, (
        f"RSS grew by {growth_mb:.0f} MB (baseline {baseline / 1024:.0f} MB, peak {peak / 1024:.0f} MB) "
        f"while a subscriber was not reading {TOTAL_MB} MB"
    )

    # Now read everything: every record once, in order, intact.
    got = []
    last_cont = None
    t1 = time.time()
    for kind, etype, body, _ in msgs:
        assert (kind, etype) == ("event", "SubscribeToShardEvent"), (kind, etype, body)
        for r in body["Records"]:
            got.append((r["SequenceNumber"], base64.b64decode(r["Data"])))
        if body["Records"]:
            assert body["ContinuationSequenceNumber"] == body["Records"][-1]["SequenceNumber"]
        last_cont = body.get("ContinuationSequenceNumber")
        if len(got) >= N:
            break
        assert time.time() - t1 < 60, f"read {len(got)} of {N} records in 60 s"
    sub.close()
    print(f"read {len(got)} records in {time.time() - t1:.1f}s")
    assert len(got) == N, f"{len(got)} of {N} records"
    assert [s for s, _ in got] == placed
    for i, (_, data) in enumerate(got):
        if data != payload(i):
            raise AssertionError(f"record {i} differs: {data[:20]!r}... ({len(data)} bytes)")
    assert last_cont == placed[-1]
    srv.assert_alive()
