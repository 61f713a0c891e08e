#!/usr/bin/env python3
"""Kafka side of the EFO latency benchmark (run by bench/run_efo.py with <repo>/.cache/venv's python).

Produces --count records at --rate records/s to partition 0 of --topic with confluent-kafka
(librdkafka), acks=all, linger.ms=0. Each value is `efo <unix-nanos:020> <index:010> ` padded to
--size bytes with the send time taken just before produce(), the same format bench/efogen reads
back through SubscribeToShard. Prints one JSON line: delivered count, errors and delivery-report
latency percentiles (produce() to the broker's acknowledgement, as seen by librdkafka).
"""

import argparse
import json
import sys
import time

from confluent_kafka import Producer


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))], 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--size", type=int, default=100)
    a = ap.parse_args()
    if not a.bootstrap.startswith(("127.0.0.1:", "localhost:")):
        sys.exit("loopback bootstrap only")

    p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 0,
                  "enable.idempotence": False, "client.id": "efo-bench"})
    md = p.list_topics(a.topic, timeout=15)   # connect and fetch metadata before the clock starts
    t = md.topics.get(a.topic)
    if t is None or t.error is not None or 0 not in t.partitions:
        sys.exit(f"topic {a.topic}: no partition 0 in metadata ({t and t.error})")

    sent_at = {}
    acked_ms, errors = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        i = int(msg.value()[25:35])
        acked_ms.append((time.time_ns() - sent_at[i]) / 1e6)

    start = time.monotonic()
    period = 1.0 / a.rate
    for i in range(a.count):
        delay = start + i * period - time.monotonic()
        if delay > 0:
            # poll while waiting so delivery reports are handled promptly
            p.poll(delay)
        ts = time.time_ns()
        v = f"efo {ts:020d} {i:010d} ".encode().ljust(a.size, b"x")
        sent_at[i] = ts
        p.produce(a.topic, value=v, partition=0, on_delivery=on_delivery)
        p.poll(0)
    elapsed = time.monotonic() - start
    left = p.flush(30)
    print(json.dumps({"kind": "producer", "sent": a.count, "delivered": len(acked_ms), "errors": len(errors),
                      "first_errors": errors[:3], "unflushed": left, "elapsed_s": round(elapsed, 3),
                      "ack_ms_p50": pct(acked_ms, 50), "ack_ms_p99": pct(acked_ms, 99)}), flush=True)
    sys.exit(0 if not errors and left == 0 and len(acked_ms) == a.count else 1)


if __name__ == "__main__":
    main()
