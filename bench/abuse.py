#!/usr/bin/env python3
"""strait under a connection attack, against strait without one, in one run.

Starts strait (release build, config/strait.yaml, the default limits) and measures, first alone
and then while 2,000 connections per listener (Kinesis, Kafka, admin) are held open — half silent,
half trickling a request a byte every few seconds — :
- the sequential produce latency of a Kafka producer (acks=all, one record at a time) and of
  Kinesis PutRecord (boto3), p50 and p99;
- strait's resident memory and its high-water mark (VmHWM).
Prints a table of the attacked run against the quiet one. Targets (issue: bounded under abuse):
RSS ≤ 200 MiB, p99 under attack ≤ 2x the quiet p99.

    .cache/venv/bin/python bench/abuse.py [--per-listener 2000] [--count 1500] [--strait-bin B]
"""

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from proctree import free_port, vm_hwm_kb  # noqa: E402


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def kafka_latencies(bootstrap, count):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = "abuse-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    p.produce(topic, value=b"warm-up")
    p.flush(30)
    lat = []
    for _ in range(count):
        t = time.perf_counter()
        p.produce(topic, value=b"x" * 100)
        p.flush(30)
        lat.append((time.perf_counter() - t) * 1000)
    return lat


def kinesis_latencies(endpoint, count):
    import boto3
    from botocore.config import Config

    c = boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
        aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}),
    )
    name = "abuse-" + uuid.uuid4().hex[:8]
    c.create_stream(StreamName=name, ShardCount=1)
    c.put_record(StreamName=name, PartitionKey="k", Data=b"warm-up")
    lat = []
    for i in range(count):
        t = time.perf_counter()
        c.put_record(StreamName=name, PartitionKey=f"k{i}", Data=b"x" * 100)
        lat.append((time.perf_counter() - t) * 1000)
    return lat


class Attack:
    """Holds `per_listener` connections to each port: even ones silent, odd ones sending a
    request's first bytes one at a time, every 2-4 s, never finishing it."""

    PARTIAL = {
        "http": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n",
        "kafka": b"\x00\x00\x01\x00\x00\x12\x00\x03",
    }

    def __init__(self, ports, per_listener):
        self.socks = []
        self.stop = threading.Event()
        self.opened = 0
        self.refused = 0
        for port, kind in ports:
            for i in range(per_listener):
                s = socket.socket()
                s.setblocking(True)
                try:
                    s.connect(("127.0.0.1", port))
                except OSError:
                    self.refused += 1
                    s.close()
                    continue
                self.opened += 1
                self.socks.append((s, kind, i % 2 == 1, 0))
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self):
        rng = random.Random(7)
        while not self.stop.wait(rng.uniform(2, 4)):
            for n, (s, kind, trickles, sent) in enumerate(self.socks):
                data = self.PARTIAL[kind]
                if trickles and sent < len(data) - 1:
                    try:
                        s.send(data[sent : sent + 1])
                        self.socks[n] = (s, kind, trickles, sent + 1)
                    except OSError:
                        pass

    def still_open(self):
        alive = 0
        for s, _, _, _ in self.socks:
            try:
                s.setblocking(False)
                if s.recv(1) == b"":
                    continue  # closed by strait
                alive += 1
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def close(self):
        self.stop.set()
        for s, _, _, _ in self.socks:
            s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-listener", type=int, default=2000)
    ap.add_argument("--count", type=int, default=1500)
    ap.add_argument("--strait-bin", default=os.path.join(REPO, "target", "release", "strait"))
    args = ap.parse_args()
    if not os.path.exists(args.strait_bin):
        subprocess.run(["cargo", "build", "--release", "--bin", "strait"], cwd=REPO, check=True)
    kinesis, kafka, admin = free_port(), free_port(), free_port()
    work = tempfile.mkdtemp(prefix="strait-abuse-")
    env = dict(os.environ)
    env.update({
        "STRAIT_DATA_DIR": os.path.join(work, "data"),
        "STRAIT_KINESIS__LISTEN": f"127.0.0.1:{kinesis}",
        "STRAIT_KAFKA__LISTEN": f"127.0.0.1:{kafka}",
        "STRAIT_KAFKA__ADVERTISED_ADDRESS": f"127.0.0.1:{kafka}",
        "STRAIT_ADMIN__LISTEN": f"127.0.0.1:{admin}",
    })
    log = open(os.path.join(work, "strait.log"), "wb")
    proc = subprocess.Popen([args.strait_bin, "serve", "--config", os.path.join(REPO, "config", "strait.yaml")],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for port in (kinesis, kafka, admin):
            wait_port(port)
        endpoint, bootstrap = f"http://127.0.0.1:{kinesis}", f"127.0.0.1:{kafka}"
        quiet_k = kafka_latencies(bootstrap, args.count)
        quiet_p = kinesis_latencies(endpoint, args.count)
        quiet_rss = rss_kb(proc.pid)
        t = time.time()
        attack = Attack([(kinesis, "http"), (kafka, "kafka"), (admin, "http")], args.per_listener)
        opened_in = time.time() - t
        attacked_k = kafka_latencies(bootstrap, args.count)
        attacked_p = kinesis_latencies(endpoint, args.count)
        attack_rss = rss_kb(proc.pid)
        hwm = vm_hwm_kb(proc.pid)
        alive = attack.still_open()
        attack.close()
        rows = [
            ("Kafka produce p50 (ms)", statistics.median(quiet_k), statistics.median(attacked_k)),
            ("Kafka produce p99 (ms)", percentile(quiet_k, 99), percentile(attacked_k, 99)),
            ("Kinesis PutRecord p50 (ms)", statistics.median(quiet_p), statistics.median(attacked_p)),
            ("Kinesis PutRecord p99 (ms)", percentile(quiet_p, 99), percentile(attacked_p, 99)),
            ("strait RSS (MiB)", quiet_rss / 1024, attack_rss / 1024),
        ]
        print(f"# {attack.opened} attacking connections opened in {opened_in:.1f} s "
              f"({attack.refused} refused), {alive} still open after the measurements; "
              f"{args.count} sequential requests per measurement")
        print(f"{'':30} {'quiet':>10} {'attacked':>10} {'ratio':>7}")
        for name, q, a in rows:
            print(f"{name:30} {q:10.2f} {a:10.2f} {a / q:7.2f}")
        print(f"{'strait RSS high-water (MiB)':30} {'':10} {hwm / 1024:10.1f}")
        ok_mem = hwm / 1024 <= 200
        ok_k = percentile(attacked_k, 99) <= 2 * percentile(quiet_k, 99)
        ok_p = percentile(attacked_p, 99) <= 2 * percentile(quiet_p, 99)
        print(f"targets: RSS high-water <= 200 MiB: {'met' if ok_mem else 'NOT met'}; "
              f"p99 <= 2x quiet: Kafka {'met' if ok_k else 'NOT met'}, Kinesis {'met' if ok_p else 'NOT met'}")
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


if __name__ == "__main__":
    main()
