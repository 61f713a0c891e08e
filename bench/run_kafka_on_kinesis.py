#!/usr/bin/env python3
"""Kafka on Kinesis: Kafka's own perf tools through strait's Kinesis backend, next to Kinesis
PutRecords straight to the same upstream, in one run.

Run through bench/kafka_on_kinesis.sh (which installs the Kafka jars). For every repeat it starts
an upstream (strait's embedded backend, fsync always, the only Kinesis here with enhanced fan-out)
and, for each read mode (fan-out, polling), a strait with backend.type kinesis in front of it:

  direct        bench/loadgen: R records of S bytes as PutRecords (500 per call, 16 connections)
                straight to the upstream, into a stream of P shards (the baseline)
  produce       ProducerPerformance through strait: R records of S bytes, acks=all, to a topic of P
                partitions (CreateTopics -> CreateStream); strait's own CPU per record
  consume       ConsumerPerformance reads them back in a group
  five groups   five ConsumerPerformance groups read the same topic one after another; the
                upstream's GetRecords count over the five shows whether they shared one reader

CPU per record is counted for every process of each side (the upstream, loadgen, strait, the
producer's JVM, whose count includes its start-up), so the table also shows the ceiling this
2-core machine puts on the ratio: with every process on the same cores, produce / direct can be
at most (upstream + loadgen CPU per direct record) / (upstream + strait CPU per record through
strait), a bound that even leaves the producer's own CPU out.

Medians over --repeats go to a table with ratios: stdout and bench/results/kafka-on-kinesis-latest.md.
"""

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proctree import log, tree_cpu_s  # noqa: E402
from run_kafka import parse_consumer, parse_producer, run_tool, tail  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOADGEN_BIN = os.path.join(ROOT, "target", "bench-loadgen", "release", "loadgen")
MODES = ("fan-out", "polling")


class Proc:
    def __init__(self, name, run_dir, env):
        self.log_path = os.path.join(run_dir, f"{name}.log")
        full = dict(os.environ, RUST_LOG="warn", NO_COLOR="1", **env)
        with open(self.log_path, "a") as logf:
            self.proc = subprocess.Popen([ARGS.strait_bin, "serve", "--config", ARGS.strait_config], env=full,
                                         cwd=run_dir, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.addr = {}
        deadline = time.time() + 30
        while len(self.addr) < 3:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{name} did not start:\n{tail(self.log_path)}")
            with open(self.log_path, errors="replace") as f:
                for kind, addr in re.findall(r"strait: (kinesis|kafka|admin) listening on (\S+)", f.read()):
                    self.addr[kind] = addr
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def base_env(data_dir):
    return {
        "STRAIT_DATA_DIR": data_dir,
        "STRAIT_KINESIS__LISTEN": "127.0.0.1:0",
        "STRAIT_KAFKA__LISTEN": "127.0.0.1:0",
        "STRAIT_KAFKA__ADVERTISED_ADDRESS": "127.0.0.1:0",
        "STRAIT_ADMIN__LISTEN": "127.0.0.1:0",
        "STRAIT_KAFKA__GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }


def get_records_calls(admin):
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    m = re.search(r'strait_requests_total\{operation="GetRecords",protocol="kinesis"\} (\d+)', text)
    return int(m.group(1)) if m else 0


def one_run(rep, tmp_root):
    run_dir = tempfile.mkdtemp(prefix=f"kok-r{rep + 1}-", dir=tmp_root)
    res = {"repeat": rep + 1, "errors": []}
    up = Proc("upstream", run_dir, base_env(os.path.join(run_dir, "upstream")))
    try:
        endpoint = "http://" + up.addr["kinesis"]
        up0, kids0 = tree_cpu_s(up.proc.pid), children_cpu_s()
        lg = subprocess.run([LOADGEN_BIN, "--endpoint", endpoint, "--stream", f"direct-{rep}", "--shards",
                             str(ARGS.partitions), "--records", str(ARGS.records), "--record-size",
                             str(ARGS.record_size), "--skip-get", "--quiet"],
                            capture_output=True, text=True, timeout=ARGS.timeout)
        if lg.returncode != 0:
            raise RuntimeError(f"loadgen: {lg.stderr[-500:]}")
        direct = json.loads(lg.stdout.strip().splitlines()[-1])
        res["direct_rps"] = direct["put_records_per_s"]
        res["direct_upstream_cpu_us"] = round((tree_cpu_s(up.proc.pid) - up0) / ARGS.records * 1e6, 2)
        res["direct_loadgen_cpu_us"] = round((children_cpu_s() - kids0) / ARGS.records * 1e6, 2)
        log(f"run {rep + 1}: direct PutRecords {res['direct_rps']:,.0f} rec/s")
        for mode in MODES:
            env = base_env(os.path.join(run_dir, f"strait-{mode}"))
            env.update({
                "STRAIT_BACKEND__TYPE": "kinesis",
                "STRAIT_BACKEND__KINESIS__ENDPOINT": endpoint,
                "STRAIT_BACKEND__KINESIS__READ": mode,
                "STRAIT_BACKEND__KINESIS__CONSUMER_NAME": f"strait-{rep}",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
            })
            s = Proc(f"strait-{mode}", run_dir, env)
            try:
                measure(s, up, mode, rep, run_dir, res)
            except (RuntimeError, subprocess.SubprocessError, OSError) as e:
                res["errors"].append(f"{mode}: {e}")
                log(f"  {mode} FAILED: {e}")
            finally:
                s.stop()
    finally:
        up.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return res


def measure(s, up, mode, rep, run_dir, res):
    # Polling acknowledges a produce only after reading its records back, within a share of
    # Kinesis's 5 GetRecords calls a second: a few hundred records a second per producer.
    records = min(ARGS.records, ARGS.polling_records) if mode == "polling" else ARGS.records
    res[f"{mode}_records"] = records
    b = s.addr["kafka"]
    pid = s.proc.pid
    topic = f"perf-{mode}-{rep}"
    out, err = run_tool(ARGS, run_dir, f"create-{mode}", "org.apache.kafka.tools.TopicCommand",
                        ["--bootstrap-server", b, "--create", "--topic", topic, "--partitions",
                         str(ARGS.partitions), "--replication-factor", "1"], timeout=120)
    if f"Created topic {topic}" not in out:
        raise RuntimeError(f"TopicCommand: {out.strip()} {err.strip()[-300:]}")
    c0, up0, kids0 = tree_cpu_s(pid), tree_cpu_s(up.proc.pid), children_cpu_s()
    out, err = run_tool(ARGS, run_dir, f"producer-{mode}", "org.apache.kafka.tools.ProducerPerformance",
                        ["--bootstrap-server", b, "--topic", topic, "--num-records", str(records),
                         "--record-size", str(ARGS.record_size), "--throughput", "-1",
                         "--command-property", "acks=all",
                         *[x for prop in ARGS.producer_props for x in ("--command-property", prop)]],
                        timeout=ARGS.timeout)
    p = parse_producer(out)
    if p["records_sent"] != records:
        raise RuntimeError(f"ProducerPerformance acknowledged {p['records_sent']} of {records}")
    cpu = tree_cpu_s(pid) - c0
    res[f"{mode}_upstream_cpu_us"] = round((tree_cpu_s(up.proc.pid) - up0) / records * 1e6, 2)
    res[f"{mode}_producer_cpu_us"] = round((children_cpu_s() - kids0) / records * 1e6, 2)
    res[f"{mode}_produce_rps"] = p["records_per_s"]
    res[f"{mode}_produce_p50_ms"] = p["lat_p50_ms"]
    res[f"{mode}_produce_p99_ms"] = p["lat_p99_ms"]
    res[f"{mode}_cpu_us_per_record"] = round(cpu / records * 1e6, 2)
    log(f"  {mode}: produce {p['records_per_s']:,.0f} rec/s, p50/p99 {p['lat_p50_ms']}/{p['lat_p99_ms']} ms, "
        f"strait CPU {res[f'{mode}_cpu_us_per_record']} µs/record")
    calls0 = get_records_calls(up.addr["admin"])
    rates = []
    for g in range(5):
        out, err = run_tool(ARGS, run_dir, f"consumer-{mode}-{g}", "org.apache.kafka.tools.ConsumerPerformance",
                            ["--bootstrap-server", b, "--topic", topic, "--num-records", str(records),
                             "--timeout", "60000", "--group", f"perf-{mode}-{rep}-{g}"], timeout=ARGS.timeout)
        c = parse_consumer(out)
        if c["records"] != records:
            raise RuntimeError(f"ConsumerPerformance group {g} consumed {c['records']} of {records}")
        rates.append(c["records_per_s"])
    res[f"{mode}_consume_rps"] = rates[0]
    res[f"{mode}_five_groups_get_records"] = get_records_calls(up.addr["admin"]) - calls0
    log(f"  {mode}: consume {rates[0]:,.0f} rec/s (first group); five groups cost "
        f"{res[f'{mode}_five_groups_get_records']} upstream GetRecords calls")


def children_cpu_s():
    """CPU seconds of every child process this script has waited for (loadgen, the Kafka tools)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ceiling(runs, mode):
    """The most produce / direct can be when every process shares the same cores (the
    producer's own CPU left out, so the bound is generous)."""
    direct = (med(runs, "direct_upstream_cpu_us") or 0) + (med(runs, "direct_loadgen_cpu_us") or 0)
    through = sum(med(runs, f"{mode}_{k}") or 0 for k in ("upstream_cpu_us", "cpu_us_per_record"))
    return direct / through if direct and through else None


def med(rs, key):
    xs = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(xs) if xs else None


def render(runs, started):
    def f(x, d=0):
        return "–" if x is None else f"{x:,.{d}f}"

    direct = med(runs, "direct_rps")
    lines = [
        "## Kafka on Kinesis (bench/kafka_on_kinesis.sh)",
        "",
        f"{started}; {ARGS.repeats} repeat(s), medians; {ARGS.records:,} records of {ARGS.record_size} bytes "
        f"(polling: {min(ARGS.records, ARGS.polling_records):,}), "
        f"producer properties: acks=all{''.join(', ' + p for p in ARGS.producer_props)}; "
        f"{ARGS.partitions} partition(s)/shard(s); upstream: strait's embedded backend (fsync always, release build). "
        "Direct: bench/loadgen PutRecords (500 per call, 16 connections) straight to the upstream. Through strait: "
        "Kafka's ProducerPerformance (acks=all) and ConsumerPerformance against strait with backend.type kinesis.",
        "",
        "| measure | fan-out | polling | target |",
        "|---|---|---|---|",
        f"| produce rec/s through strait | {f(med(runs, 'fan-out_produce_rps'))} | {f(med(runs, 'polling_produce_rps'))} | |",
        f"| direct PutRecords rec/s (same upstream) | {f(direct)} | {f(direct)} | |",
    ]
    ratios = []
    for mode in MODES:
        m = med(runs, f"{mode}_produce_rps")
        ratios.append(f"{m / direct:.2f}×" if m and direct else "–")
    lines += [
        f"| produce / direct | {ratios[0]} | {ratios[1]} | ≥ 0.8× |",
        f"| produce latency p50 / p99 ms (ProducerPerformance) | {f(med(runs, 'fan-out_produce_p50_ms'), 1)} / "
        f"{f(med(runs, 'fan-out_produce_p99_ms'), 1)} | {f(med(runs, 'polling_produce_p50_ms'), 1)} / "
        f"{f(med(runs, 'polling_produce_p99_ms'), 1)} | |",
        f"| strait CPU µs per produced record | {f(med(runs, 'fan-out_cpu_us_per_record'), 2)} | "
        f"{f(med(runs, 'polling_cpu_us_per_record'), 2)} | ≤ 2 |",
        f"| CPU µs per record: upstream + loadgen (direct) | {f(med(runs, 'direct_upstream_cpu_us'), 2)} + "
        f"{f(med(runs, 'direct_loadgen_cpu_us'), 2)} | same | |",
        f"| CPU µs per record: upstream + strait + producer JVM incl. start-up (through strait) | "
        f"{f(med(runs, 'fan-out_upstream_cpu_us'), 2)} + {f(med(runs, 'fan-out_cpu_us_per_record'), 2)} + "
        f"{f(med(runs, 'fan-out_producer_cpu_us'), 2)} | {f(med(runs, 'polling_upstream_cpu_us'), 2)} + "
        f"{f(med(runs, 'polling_cpu_us_per_record'), 2)} + {f(med(runs, 'polling_producer_cpu_us'), 2)} | |",
        f"| ceiling on produce / direct on these shared cores: (upstream + loadgen) / (upstream + strait) | "
        f"{f(ceiling(runs, 'fan-out'), 2)}× | "
        f"{f(ceiling(runs, 'polling'), 2)}× | |",
        f"| consume rec/s (one group) | {f(med(runs, 'fan-out_consume_rps'))} | {f(med(runs, 'polling_consume_rps'))} | |",
        f"| upstream GetRecords calls for five groups reading the topic | {f(med(runs, 'fan-out_five_groups_get_records'))} | "
        f"{f(med(runs, 'polling_five_groups_get_records'))} | one reader |",
        "",
    ]
    errors = [e for r in runs for e in r["errors"]]
    if errors:
        lines += ["Failures:", ""] + [f"- {e}" for e in errors] + [""]
    return "\n".join(lines)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--polling-records", type=int, default=3_000,
                    help="records for the polling mode (it acknowledges a few hundred a second)")
    ap.add_argument("--producer-props", default="",
                    help="extra ProducerPerformance properties, comma-separated (e.g. batch.size=1048576,linger.ms=20)")
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--kafka-libs", required=True)
    ap.add_argument("--kafka-version", default="?")
    ap.add_argument("--tool-heap", default="-Xmx512m")
    ap.add_argument("--strait-bin", default=os.path.join(ROOT, "target", "release", "strait"))
    ap.add_argument("--strait-config", default=os.path.join(ROOT, "config", "strait.yaml"))
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "kafka-on-kinesis-latest.md"))
    ARGS = ap.parse_args()
    ARGS.producer_props = [p for p in ARGS.producer_props.split(",") if p]
    if not ARGS.no_build:
        log("cargo build --release (strait, bench/loadgen)")
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
        env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "bench-loadgen"))
        subprocess.run(["cargo", "build", "--release", "--manifest-path", os.path.join(HERE, "loadgen", "Cargo.toml")],
                       cwd=ROOT, env=env, check=True)
    tmp_root = tempfile.mkdtemp(prefix="kok-", dir=os.path.join(ROOT, ".cache"))
    ARGS.tmp_root = tmp_root
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs = [one_run(rep, tmp_root) for rep in range(ARGS.repeats)]
    text = render(runs, started)
    print(text)
    os.makedirs(os.path.dirname(ARGS.out), exist_ok=True)
    with open(ARGS.out, "w") as f:
        f.write(text + "\n")
    with open(ARGS.out.replace(".md", ".json"), "w") as f:
        json.dump(runs, f, indent=1)
    shutil.rmtree(tmp_root, ignore_errors=True)
    sys.exit(1 if any(r["errors"] for r in runs) else 0)


if __name__ == "__main__":
    main()
