"""Checks of strait's Kafka backend that need both sides in view: strait's Kafka port
(STRAIT_KAFKA), the real broker behind it (KAFKA_BOOTSTRAP), strait's admin port (STRAIT_ADMIN)
and the broker's start-up files (KAFKA_BROKER_PROPS, KAFKA_BROKER_LOG) for the restart checks.

Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero if any failed.
"""

import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from harness import check, finish, require, wait_for

STRAIT = os.environ["STRAIT_KAFKA"]
BROKER = os.environ["KAFKA_BOOTSTRAP"]
ADMIN = os.environ["STRAIT_ADMIN"]
HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "..", "lib", "kafka-broker.sh")
RUN = uuid.uuid4().hex[:8]


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    fs[name].result(30)


def produce(bootstrap, topic, records, **conf):
    """records: (partition, key, value, headers, timestamp_ms); returns delivered (partition, offset)."""
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, **conf})
    acked, errors = [], []

    def done(err, msg):
        if err:
            errors.append(err)
        else:
            acked.append((msg.partition(), msg.offset()))
    for part, key, value, headers, ts in records:
        p.produce(topic, value=value, key=key, partition=part, headers=headers, timestamp=ts or 0,
                  on_delivery=done)
    left = p.flush(60)
    require(left == 0 and not errors, f"{left} undelivered, errors {errors[:3]}")
    return acked


def consume_all(bootstrap, topic, partitions, expect, timeout=30):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"kb-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, deadline = [], time.time() + timeout
    while len(out) < expect and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        out.append(m)
    c.close()
    return out


def ready_status():
    try:
        with urllib.request.urlopen(f"http://{ADMIN}/readyz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def broker_answers():
    """The broker itself answers Metadata (the moment strait is measured from)."""
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": BROKER, "log_level": 0}).list_topics(timeout=1)
        return True
    except Exception:
        return False


def broker_cmd(fn):
    out = subprocess.run(["bash", "-c", f'source "{LIB}"; {fn}'], capture_output=True, text=True,
                         timeout=120)
    require(out.returncode == 0, f"{fn}: {out.stdout[-500:]} {out.stderr[-500:]}")
    return out.stdout


# ---------------------------------------------------------------------------------------------

def both_directions():
    topic = f"kb-both-{RUN}"
    create_topic(STRAIT, topic, 2)
    now = int(time.time() * 1000) - 5000
    via_strait = [(i % 2, f"k{i}".encode(), f"v{i}".encode(), [("h", f"x{i}".encode())], now + i)
                  for i in range(200)]
    produce(STRAIT, topic, via_strait)
    direct = [(i % 2, f"d{i}".encode(), f"w{i}".encode(), [("h", b"direct")], now + 1000 + i)
              for i in range(100)]
    produce(BROKER, topic, direct)
    want = {(p, k, v, tuple(h), ts) for p, k, v, h, ts in via_strait + direct}
    for side, bootstrap in (("the broker directly", BROKER), ("strait", STRAIT)):
        got = consume_all(bootstrap, topic, 2, len(want))
        seen = {(m.partition(), m.key(), m.value(), tuple(m.headers() or []), m.timestamp()[1])
                for m in got}
        require(seen == want, f"reading {side}: {len(seen)} of {len(want)} match; "
                f"missing {list(want - seen)[:2]}, extra {list(seen - want)[:2]}")


def metadata_hides_the_broker():
    md = AdminClient({"bootstrap.servers": STRAIT}).list_topics(timeout=15)
    brokers = {f"{b.host}:{b.port}" for b in md.brokers.values()}
    require(BROKER not in brokers, f"the real broker {BROKER} leaked: {brokers}")
    host, port = STRAIT.rsplit(":", 1)
    want = {f"{host}:{int(port) + 1 + i}" for i in md.brokers}
    require(brokers == want, f"brokers {brokers}, want {want}")


def raw_exchange(frame, addr=None):
    """Sends one frame; returns the one answer frame (with its length), or b"" when the
    connection is closed without one."""
    s = socket.create_connection(tuple_addr(addr or STRAIT), timeout=10)
    s.sendall(frame)
    data = b""
    try:
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return data


def tuple_addr(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)


def header(api_key, version, correlation, client=b"kb"):
    return struct.pack(">hhih", api_key, version, correlation, len(client)) + client


def bad_requests_close_the_connection():
    # An API key Kafka does not have, a share-group fetch (not forwarded), an oversized length:
    # each closes the connection without an answer, and strait keeps serving.
    for what, frame in (
        ("unknown API key 999", header(999, 0, 1)),
        ("ShareFetch (not forwarded)", header(78, 1, 2) + b"\x00" * 16),
        ("Produce v1 (below the forwarded range)", header(0, 1, 3) + b"\x00" * 16),
    ):
        got = raw_exchange(struct.pack(">i", len(frame)) + frame)
        require(got == b"", f"{what}: answered {got[:40]!r}")
    got = raw_exchange(struct.pack(">i", 0x7FFFFFF0) + b"\x00" * 8)
    require(got == b"", f"oversized frame answered {got[:40]!r}")
    # A good request and a bad one in the same segment: the good one is still answered.
    good = header(3, 1, 41) + struct.pack(">i", 0)  # Metadata v1, no topics
    bad = header(999, 0, 42)
    t0 = time.time()
    got = raw_exchange(struct.pack(">i", len(good)) + good + struct.pack(">i", len(bad)) + bad)
    require(len(got) >= 8 and struct.unpack(">i", got[4:8])[0] == 41,
            f"Metadata before a bad frame: answered {got[:16]!r} after {time.time() - t0:.1f} s")
    # A v0 ApiVersions answer, with UNSUPPORTED_VERSION, to a version from the future.
    frame = header(18, 99, 7)
    got = raw_exchange(struct.pack(">i", len(frame)) + frame)
    require(len(got) >= 10, f"ApiVersions v99: {got!r}")
    corr, err = struct.unpack(">ih", got[4:10])
    require((corr, err) == (7, 35), f"correlation {corr}, error {err}")
    metadata_hides_the_broker()


def api_versions_are_the_intersection():
    # librdkafka's view: every API it lists through strait, the broker lists too, with no
    # higher version; share-group APIs (76-79) are absent.
    def versions(bootstrap):
        frame = header(18, 0, 11)
        got = raw_exchange(struct.pack(">i", len(frame)) + frame, bootstrap)
        _, err, n = struct.unpack(">ihi", got[4:14])
        require(err == 0, f"ApiVersions error {err}")
        out = {}
        for i in range(n):
            k, lo, hi = struct.unpack(">hhh", got[14 + 6 * i:20 + 6 * i])
            out[k] = (lo, hi)
        return out
    via = versions(STRAIT)
    direct = versions(BROKER)
    for k, (lo, hi) in via.items():
        require(k in direct and direct[k][0] <= lo and hi <= direct[k][1],
                f"API {k}: strait {lo}-{hi}, broker {direct.get(k)}")
    for k in (76, 77, 78, 79):
        require(k not in via, f"share-group API {k} advertised")
    require(0 in via and 1 in via and 3 in via, f"Produce/Fetch/Metadata missing: {sorted(via)}")


# kill -9 and restart cycles of the broker under load: 1 in the test command, 10 as the campaign
# (KB_RESTART_CYCLES=10; docs/reliability.md).
RESTART_CYCLES = int(os.environ.get("KB_RESTART_CYCLES", "1"))


def restart_cycles(acked, back):
    """RESTART_CYCLES kill -9 and restart cycles of the broker, while `acked` grows."""
    for cycle in range(RESTART_CYCLES):
        wait_for(lambda: len(acked) > (cycle + 1) * 2000, 60, "2,000 acknowledged records before the outage")
        broker_cmd("kill_kafka_broker")
        wait_for(lambda: ready_status()[0] == 503, 20, "/readyz to report the broker unreachable")
        _, why = ready_status()
        require("unreachable" in why, f"/readyz says {why!r}")
        time.sleep(2)
        before_restart = len(acked)
        broker_cmd("restart_kafka_broker")
        wait_for(broker_answers, 60, "the restarted broker to answer Metadata")
        t0 = time.time()
        wait_for(lambda: ready_status()[0] == 200, 30, "/readyz to be ready again")
        back.append(time.time() - t0)
        wait_for(lambda: len(acked) > before_restart + 2000, 90, "records acknowledged after the restart")
    print(f"  # {RESTART_CYCLES} broker restarts: strait ready {max(back):.2f} s at most after the broker answered "
          f"(each: {', '.join(f'{b:.2f}' for b in back)})", flush=True)
    require(max(back) <= 5, f"strait was ready {max(back):.1f} s after the broker answered (> 5 s)")


def readyz_follows_the_broker_and_restart_loses_nothing():
    topic = f"kb-restart-{RUN}"
    create_topic(STRAIT, topic, 3)
    status, body = ready_status()
    require(status == 200, f"/readyz before: {status} {body}")
    via = os.environ.get("KB_RESTART_VIA", "strait")  # "broker": the same run without strait
    p = Producer({"bootstrap.servers": BROKER if via == "broker" else STRAIT,
                  "enable.idempotence": True, "acks": "all", "log_level": 3,
                  "linger.ms": 2, "message.timeout.ms": 120000, "retry.backoff.ms": 200,
                  "reconnect.backoff.max.ms": 1000})
    acked, errors, sent = [], [], [0]
    stop = threading.Event()

    def done(err, msg):
        if err:
            errors.append(str(err))
        else:
            acked.append(msg.value())

    def load():
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, key=f"k{i % 50}".encode(), value=f"r{i}".encode(), on_delivery=done)
                i += 1
                sent[0] = i
            except BufferError:
                pass
            p.poll(0.001 if i % 100 else 0.01)
        p.flush(150)
    t = threading.Thread(target=load)
    t.start()
    back = []  # seconds from the broker taking connections again to strait's /readyz 200
    try:
        restart_cycles(acked, back)
    finally:
        stop.set()  # a failed cycle must not leave the producer thread running
    t.join(180)
    require(not errors, f"{len(errors)} delivery errors, e.g. {errors[:3]}")
    require(len(acked) == sent[0], f"{sent[0]} sent, {len(acked)} acknowledged")
    got = consume_all(BROKER, topic, 3, len(acked), timeout=60)
    values = [m.value() for m in got]
    missing = set(acked) - set(values)
    require(not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:3]}")
    require(len(values) == len(set(values)), f"{len(values) - len(set(values))} duplicates")
    print(f"  # {len(acked)} acknowledged across {RESTART_CYCLES} kill -9 and restart cycles; all present once", flush=True)


CHECKS = [
    ("a client through strait and a client on the broker see the same records "
     "(partition, key, value, headers, timestamp), both ways", both_directions),
    ("Metadata through strait names strait's ports (bootstrap + 1 + node id), never the broker",
     metadata_hides_the_broker),
    ("ApiVersions through strait is within the broker's, without share-group APIs",
     api_versions_are_the_intersection),
    ("bad frames (unknown API, unforwarded API or version, oversized) close the connection, after "
     "answering good requests sent just before them; "
     "ApiVersions from the future gets v0 UNSUPPORTED_VERSION", bad_requests_close_the_connection),
    ("kill -9 and restart of the broker under idempotent load: /readyz goes 503 and back, "
     "every acknowledged record is stored exactly once", readyz_follows_the_broker_and_restart_loses_nothing),
]

if __name__ == "__main__":
    import faulthandler
    faulthandler.dump_traceback_later(480 + 60 * RESTART_CYCLES, exit=True)  # a hang becomes a failure with a trace
    # Optional arguments: run only the checks with these function names.
    only = set(sys.argv[1:])
    for name, fn in CHECKS:
        if not only or fn.__name__ in only:
            check(name, fn)
    finish()
