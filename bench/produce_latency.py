#!/usr/bin/env python3
"""Sequential produce latency against any Kafka endpoint: one 100-byte record with acks=all,
wait for its acknowledgement, repeat; prints p50, p99 and max in milliseconds. No queueing
in the client, so it is the server's own produce latency (for strait's Kinesis backend: the
PutRecords call and the read-back that gives the record its offset).

    bench/produce_latency.py HOST:PORT [COUNT]      (confluent-kafka: .cache/venv/bin/python)

docs/benchmarks.md ("Kafka on Kinesis") quotes it against strait with backend.type kinesis in
front of strait's embedded backend, started as tests/interop/kafka-on-kinesis does.
"""

import sys
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    topic = "latency-" + uuid.uuid4().hex[:8]
    AdminClient({"bootstrap.servers": bootstrap}).create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1)]
    )[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    lat = []
    for _ in range(count):
        t = time.perf_counter()
        p.produce(topic, key=b"k", value=b"x" * 100)
        if p.flush(10) != 0:
            sys.exit("a record was not acknowledged within 10 s")
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    print(
        f"{count} sequential produces: p50 {lat[len(lat) // 2]:.1f} ms, "
        f"p99 {lat[int(len(lat) * 0.99)]:.1f} ms, max {lat[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
