"""Produce round-trip latency, one record at a time (acks=all, linger.ms=0, idempotent), against
a Kafka broker directly and through strait's pass-through, interleaved in blocks so both see the
same machine load. EndToEndLatency reports whole milliseconds; this reports microseconds.

  passthrough_latency.py DIRECT_BOOTSTRAP STRAIT_BOOTSTRAP [--records N] [--out FILE.md] [--json FILE]
"""

import argparse
import statistics
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def producer(bootstrap):
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                     "enable.idempotence": True, "log_level": 3})


def one(p, topic, value):
    done = []
    t0 = time.perf_counter_ns()
    p.produce(topic, value=value, on_delivery=lambda err, msg: done.append(err))
    while not done:
        p.poll(0.0005)
    if done[0] is not None:
        raise RuntimeError(str(done[0]))
    return (time.perf_counter_ns() - t0) / 1000.0


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("direct")
    ap.add_argument("strait")
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--block", type=int, default=250)
    ap.add_argument("--out")
    ap.add_argument("--json", help="the percentiles as JSON too (bench/report.py reads it)")
    a = ap.parse_args()
    topic = f"lat-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": a.direct})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    sides = {"direct": producer(a.direct), "strait": producer(a.strait)}
    value = b"x" * 100
    for p in sides.values():   # connections, metadata, producer id
        for _ in range(200):
            one(p, topic, value)
    lat = {k: [] for k in sides}
    while len(lat["direct"]) < a.records:
        for k, p in sides.items():
            lat[k].extend(one(p, topic, value) for _ in range(a.block))
    rows = []
    for k in sides:
        xs = lat[k]
        rows.append((k, statistics.mean(xs), pct(xs, 0.5), pct(xs, 0.99), pct(xs, 0.999)))
    d, s = rows
    lines = [
        f"Produce round trip, one 100-byte record at a time (acks=all, linger.ms=0, idempotent, confluent-kafka), "
        f"{a.records:,} per side in interleaved blocks of {a.block}, after 200 warm-up sends; microseconds.",
        "",
        "| path | avg µs | p50 µs | p99 µs | p99.9 µs |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, avg, p50, p99, p999 in rows:
        lines.append(f"| {'broker directly' if k == 'direct' else 'through strait'} | {avg:.0f} | {p50:.0f} | {p99:.0f} | {p999:.0f} |")
    lines.append(f"| **added by strait** | **{s[1] - d[1]:+.0f}** | **{s[2] - d[2]:+.0f}** | **{s[3] - d[3]:+.0f}** | "
                 f"**{s[4] - d[4]:+.0f}** |")
    md = "\n".join(lines) + "\n"
    print(md)
    if a.out:
        with open(a.out, "a") as f:
            f.write("\n" + md)
    if a.json:
        import json

        with open(a.json, "w") as f:
            json.dump({k: {"avg": avg, "p50": p50, "p99": p99, "p999": p999, "records": a.records}
                       for k, avg, p50, p99, p999 in rows}, f, indent=1)


if __name__ == "__main__":
    main()
