#!/usr/bin/env python3
"""bench/migration.sh's runner: mirror throughput and CPU, next to a plain reader of the same
source, and the write hold of cutovers under a steady producer (issue 16's targets: >= 10 MiB/s
per shard, hold p99 <= 500 ms at 5,000 records/s per shard). Medians over --repeats."""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proctree import log, tree_cpu_s  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOADGEN_BIN = os.path.join(ROOT, "target", "bench-loadgen", "release", "loadgen")


class Proc:
    def __init__(self, name, run_dir, env):
        self.log_path = os.path.join(run_dir, f"{name}.log")
        full = dict(os.environ, RUST_LOG="warn", NO_COLOR="1", AWS_ACCESS_KEY_ID="bench",
                    AWS_SECRET_ACCESS_KEY="bench", STRAIT_DATA_DIR=os.path.join(run_dir, name),
                    STRAIT_KINESIS__LISTEN="127.0.0.1:0", STRAIT_KAFKA__LISTEN="127.0.0.1:0",
                    STRAIT_KAFKA__ADVERTISED_ADDRESS="127.0.0.1:0", STRAIT_ADMIN__LISTEN="127.0.0.1:0", **env)
        with open(self.log_path, "a") as logf:
            self.proc = subprocess.Popen([ARGS.strait_bin, "serve", "--config", os.path.join(ROOT, "config", "strait.yaml")],
                                         env=full, cwd=run_dir, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.addr = {}
        deadline = time.time() + 60
        while len(self.addr) < 3:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{name} did not start: {open(self.log_path).read()[-1500:]}")
            with open(self.log_path, errors="replace") as f:
                for kind, addr in re.findall(r"strait: (kinesis|kafka|admin) listening on (\S+)", f.read()):
                    self.addr[kind] = addr
            time.sleep(0.05)

    def status(self):
        with urllib.request.urlopen(f"http://{self.addr['admin']}/migration", timeout=10) as r:
            return json.loads(r.read())["streams"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def target_env(streams, endpoint, read):
    return {"STRAIT_BACKEND__TYPE": "kafka", "STRAIT_BACKEND__KAFKA__BOOTSTRAP": ARGS.bootstrap,
            "STRAIT_MIGRATION__STREAMS": ",".join(streams), "STRAIT_MIGRATION__SOURCE__ENDPOINT": endpoint,
            "STRAIT_MIGRATION__SOURCE__POLL_INTERVAL_MS": "50", "STRAIT_MIGRATION__SOURCE__READ": read}


def wait_until(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"timed out: {what}")


def mirror_run(rep, shards, read, tmp):
    run_dir = tempfile.mkdtemp(prefix=f"mig-r{rep}-s{shards}-{read}-", dir=tmp)
    src = Proc("source", run_dir, {})
    dst = None
    stream = f"mirror-{read}-{rep}-{shards}-{os.getpid()}"
    try:
        endpoint = "http://" + src.addr["kinesis"]
        lg = subprocess.run([LOADGEN_BIN, "--endpoint", endpoint, "--stream", stream, "--shards", str(shards),
                             "--records", str(ARGS.records), "--record-size", str(ARGS.record_size),
                             "--get-connections", str(shards), "--quiet"],
                            capture_output=True, text=True, timeout=ARGS.timeout)
        if lg.returncode != 0:
            raise RuntimeError(f"loadgen: {lg.stderr[-500:]}")
        direct = json.loads(lg.stdout.strip().splitlines()[-1])
        src_cpu0 = tree_cpu_s(src.proc.pid)
        t0 = time.time()
        dst = Proc("target", run_dir, target_env([stream], endpoint, read))
        wait_until(lambda: (lambda s: s["mirrored_records"] >= ARGS.records and s["lag_records"] == 0)(dst.status()[0]),
                   ARGS.timeout, "the mirror to catch up")
        took = time.time() - t0
        cpu = tree_cpu_s(dst.proc.pid)
        mib = ARGS.records * ARGS.record_size / (1 << 20)
        res = {"read": read, "shards": shards, "seconds": round(took, 3), "mirror_records_per_s": round(ARGS.records / took),
               "mirror_mib_per_s": round(mib / took, 2), "mirror_mib_per_s_per_shard": round(mib / took / shards, 2),
               "direct_get_records_per_s": direct.get("get_records_per_s"),
               "strait_cpu_us_per_record": round(cpu / ARGS.records * 1e6, 2),
               "source_cpu_us_per_record": round((tree_cpu_s(src.proc.pid) - src_cpu0) / ARGS.records * 1e6, 2)}
        res["mirror_over_direct"] = round(res["mirror_records_per_s"] / res["direct_get_records_per_s"], 3) \
            if res["direct_get_records_per_s"] else None
        log(f"run {rep} ({shards} shard(s), {read}): mirror {res['mirror_mib_per_s']} MiB/s "
            f"({res['mirror_records_per_s']:,} rec/s), direct GetRecords {res['direct_get_records_per_s']:,.0f} rec/s, "
            f"strait {res['strait_cpu_us_per_record']} µs/record")
        return res
    finally:
        if dst:
            dst.stop()
        src.stop()


def put_json(endpoint, stream, start, n):
    import base64
    records = [{"Data": base64.b64encode(b"%08d" % j + b"x" * 92).decode(), "PartitionKey": f"k{j % 50}"}
               for j in range(start, start + n)]
    body = json.dumps({"StreamName": stream, "Records": records}).encode()
    req = urllib.request.Request(endpoint, data=body, method="POST", headers={
        "X-Amz-Target": "Kinesis_20131202.PutRecords", "Content-Type": "application/x-amz-json-1.1"})
    t0 = time.time()
    with urllib.request.urlopen(req, timeout=120) as r:
        out = json.loads(r.read())
    if out.get("FailedRecordCount"):
        raise RuntimeError(f"PutRecords failed: {out}")
    return time.time() - t0


def cutover_runs(tmp, read):
    run_dir = tempfile.mkdtemp(prefix=f"mig-cut-{read}-", dir=tmp)
    src = Proc("source", run_dir, {})
    streams = [f"hold-{read}-{i}-{os.getpid()}" for i in range(ARGS.cutovers)]
    endpoint = "http://" + src.addr["kinesis"]
    for s in streams:
        put_json_create(endpoint, s)
    dst = Proc("target", run_dir, target_env(streams, endpoint, read))
    out = []
    try:
        through = "http://" + dst.addr["kinesis"]
        for s in streams:
            wait_until(lambda: next(x for x in dst.status() if x["name"] == s)["state"] == "caught-up", 60,
                       f"{s} caught up")
            stop, slowest, sent, began = threading.Event(), [0.0], [0], time.time()

            def produce():
                # ARGS.rate records a second: 50 every 50/rate s.
                step, nxt = 50 / ARGS.rate, time.time()
                while not stop.is_set():
                    slowest[0] = max(slowest[0], put_json(through, s, sent[0], 50))
                    sent[0] += 50
                    nxt += step
                    time.sleep(max(0.0, nxt - time.time()))

            t = threading.Thread(target=produce)
            t.start()
            time.sleep(1.0)
            slowest[0] = 0.0
            r = subprocess.run([ARGS.strait_bin, "migrate", "cutover", "--admin", "http://" + dst.addr["admin"], s],
                               capture_output=True, text=True, timeout=120)
            time.sleep(0.5)
            stop.set()
            t.join(60)
            if r.returncode != 0:
                raise RuntimeError(f"cutover of {s}: {r.stderr}")
            st = next(x for x in dst.status() if x["name"] == s)
            out.append({"stream": s, "hold_ms": st["last_cutover_hold_ms"], "slowest_put_ms": round(slowest[0] * 1000, 1),
                        "records_written": sent[0], "producer_rate": round(sent[0] / (time.time() - began))})
            log(f"cutover {len(out)}/{len(streams)} ({read}): writes held {st['last_cutover_hold_ms']} ms, "
                f"slowest PutRecords {slowest[0] * 1000:.0f} ms")
        return out
    finally:
        dst.stop()
        src.stop()


def put_json_create(endpoint, stream):
    body = json.dumps({"StreamName": stream, "ShardCount": 1}).encode()
    req = urllib.request.Request(endpoint, data=body, method="POST", headers={
        "X-Amz-Target": "Kinesis_20131202.CreateStream", "Content-Type": "application/x-amz-json-1.1"})
    urllib.request.urlopen(req, timeout=30).read()
    time.sleep(0.05)
    put_json(endpoint, stream, 0, 500)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--record-size", type=int, default=1000)
    ap.add_argument("--shards", default="1,4")
    ap.add_argument("--reads", default="polling,fan-out",
                    help="how the mirror reads the source: polling (GetRecords), fan-out (SubscribeToShard)")
    ap.add_argument("--cutovers", type=int, default=20)
    ap.add_argument("--rate", type=int, default=5000, help="producer records/s during each cutover")
    ap.add_argument("--strait-bin", default=os.path.join(ROOT, "target", "release", "strait"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "migration-latest.md"))
    ARGS = ap.parse_args()
    if not ARGS.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "strait"], cwd=ROOT, check=True)
    if not os.path.exists(LOADGEN_BIN):
        subprocess.run(["cargo", "build", "--release", "--target-dir", os.path.join(ROOT, "target", "bench-loadgen")],
                       cwd=os.path.join(HERE, "loadgen"), check=True)
    tmp = tempfile.mkdtemp(prefix="strait-bench-migration-")
    mirrors, cuts = {}, {}
    reads = ARGS.reads.split(",")
    for read in reads:
        for shards in [int(s) for s in ARGS.shards.split(",")]:
            mirrors[f"{read}/{shards}"] = [mirror_run(r + 1, shards, read, tmp) for r in range(ARGS.repeats)]
        if ARGS.cutovers > 0:
            cuts[read] = cutover_runs(tmp, read)
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    lines = ["## Live migration (bench/migration.sh)", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {ARGS.repeats} repeat(s), medians; "
             f"{ARGS.records:,} records of {ARGS.record_size} bytes. Source: strait's embedded backend (fsync "
             f"always, release build); target: strait with `backend.type: kafka` on Apache Kafka (single KRaft node). "
             f"Direct: bench/loadgen's GetRecords (Limit 10,000, one connection per shard) on the same source stream.", "",
             "| mirror reads | shards | mirror MiB/s | per shard | mirror rec/s | direct GetRecords rec/s | mirror / direct | strait CPU µs / record | target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, rs in mirrors.items():
        read, shards = key.split("/")
        lines.append(f"| {read} | {shards} | {med(rs, 'mirror_mib_per_s'):.2f} | {med(rs, 'mirror_mib_per_s_per_shard'):.2f} | "
                     f"{med(rs, 'mirror_records_per_s'):,.0f} | {med(rs, 'direct_get_records_per_s'):,.0f} | "
                     f"{med(rs, 'mirror_over_direct'):.2f}× | {med(rs, 'strait_cpu_us_per_record'):.2f} | ≥ 10 MiB/s per shard |")
    if cuts:
        lines += ["", f"Write hold over {ARGS.cutovers} cutovers per read mode, each with a producer at {ARGS.rate:,} "
                  f"records/s (PutRecords of 50 through strait) on a 1-shard stream:", "",
                  "| mirror reads | measure | p50 | p99 | max | target |", "|---|---|---|---|---|---|"]
        for read, cs in cuts.items():
            holds = [c["hold_ms"] for c in cs]
            slow = [c["slowest_put_ms"] for c in cs]
            lines += [f"| {read} | writes held (ms) | {pct(holds, 50)} | {pct(holds, 99)} | {max(holds)} | p99 ≤ 500 |",
                      f"| {read} | slowest PutRecords during the cutover (ms) | {pct(slow, 50)} | {pct(slow, 99)} | {max(slow)} | |",
                      f"| {read} | producer's achieved rate (records/s) | {pct([c['producer_rate'] for c in cs], 50)} | | | {ARGS.rate:,} |"]
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(ARGS.out), exist_ok=True)
    with open(ARGS.out, "w") as f:
        f.write(text)
    with open(ARGS.out.replace(".md", ".json"), "w") as f:
        json.dump({"mirror": mirrors, "cutovers": cuts}, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
