#!/usr/bin/env python3
"""Kinesis benchmark: strait (embedded backend, fsync always) against kinesalite and kinesis-local.

One command (see bench/kinesis.sh) builds strait and the load generator, installs the peers, then
starts each server in turn on 127.0.0.1, runs the same load against it (bench/loadgen), samples
the server's CPU time and peak RSS, and prints a markdown table of medians over --repeats runs.
Every run uses a fresh server process (and for strait a fresh data directory).

  --scale grows one strait stream to --scale-records records in --scale-steps steps and prints
  the put rate and server CPU per record at each step.

Only loopback addresses are used. Results go to stdout and bench/results/latest.md
(bench/results/scale-latest.md for --scale), raw JSON next to them.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proctree import OtherLoad, RssSampler, free_port, log, short_cmd, tree_cpu_s, tree_pids, vm_hwm_kb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(ROOT, ".cache")
PEERS = os.path.join(CACHE, "bench-peers")
LOADGEN_DIR = os.path.join(HERE, "loadgen")
LOADGEN_BIN = os.path.join(ROOT, "target", "bench-loadgen", "release", "loadgen")
RESULTS = os.path.join(HERE, "results")


# ----------------------------------------------------------------------------------------------
# servers


def wait_port(port, proc, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} not accepting after {timeout}s")


class Server:
    def __init__(self, name, argv, env=None, cwd=None, data_dir=None):
        self.name, self.argv, self.env, self.cwd, self.data_dir = name, argv, env, cwd, data_dir
        self.proc = None
        self.log_path = None

    def start(self, port, logdir):
        self.log_path = os.path.join(logdir, f"{self.name}-{port}.log")
        logf = open(self.log_path, "w")
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.argv, env=env, cwd=self.cwd, stdout=logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        logf.close()
        wait_port(port, self.proc)
        return self.proc.pid

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop on SIGTERM; SIGKILL pid {self.proc.pid}")
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def make_server(kind, port, args, tmp_root):
    if kind in ("strait", "strait-kafka"):
        data = tempfile.mkdtemp(prefix="strait-data-", dir=tmp_root)
        env = {
            "STRAIT_DATA_DIR": data,
            "STRAIT_KINESIS__LISTEN": f"127.0.0.1:{port}",
            "STRAIT_KAFKA__LISTEN": "",
            "STRAIT_ADMIN__LISTEN": "127.0.0.1:0",
            "STRAIT_BACKEND__EMBEDDED__FSYNC": args.fsync,
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
        }
        if kind == "strait-kafka":
            # The Kafka backend: the broker at --kafka-bootstrap holds the streams (its CPU
            # and memory are not in this server's columns). It needs a Kafka listener.
            env.update({
                "STRAIT_KAFKA__LISTEN": "127.0.0.1:0",
                "STRAIT_KAFKA__ADVERTISED_ADDRESS": "127.0.0.1:0",
                "STRAIT_BACKEND__TYPE": "kafka",
                "STRAIT_BACKEND__KAFKA__BOOTSTRAP": args.kafka_bootstrap,
            })
        return Server(kind, [args.strait_bin, "serve", "--config", args.strait_config], env=env, cwd=tmp_root,
                      data_dir=data)
    if kind == "kinesalite":
        argv = ["node", os.path.join(PEERS, "kinesalite-server.js"), str(port)]
        data = None
        if args.kinesalite_on_disk:  # leveldown instead of memdown, fresh dir per run
            data = tempfile.mkdtemp(prefix="kinesalite-data-", dir=tmp_root)
            argv.append(data)
        return Server("kinesalite", argv, cwd=tmp_root, data_dir=data)
    if kind == "kinesis-local":
        pkg = os.path.join(PEERS, "node_modules", "kinesis-local")
        env = {
            "KINESIS_MOCK_PLAIN_PORT": str(port),
            "KINESIS_MOCK_TLS_PORT": str(free_port()),  # also bound, on 127.0.0.1 (patched main.js)
            "KINESIS_MOCK_CERT_PATH": os.path.join(pkg, "server.json"),
            "CREATE_STREAM_DURATION": "0ms",
            "SHARD_LIMIT": "1000",
            "LOG_LEVEL": "WARN",
            "SHOULD_PERSIST_DATA": "false",
        }
        return Server("kinesis-local", ["node", os.path.join(pkg, "main.js")], env=env, cwd=tmp_root)
    raise ValueError(kind)


# ----------------------------------------------------------------------------------------------
# runs

def run_loadgen(port, server_pid, records, args, extra=(), on_line=None, timeout=None):
    argv = [LOADGEN_BIN, "--endpoint", f"http://127.0.0.1:{port}", "--shards", str(args.shards),
            "--records", str(records), "--connections", str(args.connections),
            "--record-size", str(args.record_size), "--server-pid", str(server_pid),
            "--stream", f"bench-{int(time.time() * 1000)}", *extra]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines = []
    t = threading.Thread(target=lambda: [err_lines.append(l) or sys.stderr.write("    " + l) for l in p.stderr],
                         daemon=True)
    t.start()
    lines = []
    deadline = time.time() + (timeout or args.timeout)
    for line in p.stdout:
        line = line.strip()
        if not line:
            continue
        obj = json.loads(line)
        lines.append(obj)
        if on_line:
            on_line(obj)
        if time.time() > deadline:
            p.kill()
            raise RuntimeError("loadgen timed out")
    p.wait()
    t.join(timeout=5)
    results = [l for l in lines if l.get("kind") == "result"]
    if p.returncode != 0 or not results:
        raise RuntimeError(f"loadgen exited {p.returncode}: {''.join(err_lines[-5:]).strip()}")
    return results[-1], [l for l in lines if l.get("kind") == "step"], p.pid


def records_for(kind, args):
    return {"strait": args.records, "strait-kafka": args.records, "kinesalite": args.kinesalite_records,
            "kinesis-local": args.kinesis_local_records}[kind]


def one_run(kind, rep, args, tmp_root, logdir):
    port = free_port()
    srv = make_server(kind, port, args, tmp_root)
    records = records_for(kind, args)
    log(f"{kind} run {rep + 1}/{args.repeats}: {records} records on 127.0.0.1:{port}")
    pid = srv.start(port, logdir)
    sampler = RssSampler(pid)
    sampler.start()
    other = OtherLoad([pid])
    try:
        cpu0 = tree_cpu_s(pid)
        res, _, lg_pid = run_loadgen(port, pid, records, args)
        cpu1 = tree_cpu_s(pid)
    except Exception:
        log(f"{kind} log tail:\n{srv.log_tail()}")
        raise
    finally:
        rss_mb = sampler.stop()
        wall, busy = other.finish()
        srv.stop()
        disk = dir_size(srv.data_dir) if srv.data_dir else None
        if srv.data_dir and not args.keep_data:
            shutil.rmtree(srv.data_dir, ignore_errors=True)
    # busy list excludes the server tree; the loadgen has exited, so drop it by pid here
    busy = [b for b in busy if b[1] != lg_pid]
    res.update({
        "server": kind, "repeat": rep + 1, "peak_rss_mb": round(rss_mb, 1),
        "server_cpu_total_s": round(cpu1 - cpu0, 3), "data_dir_bytes": disk,
        "other_busy": [{"cpu_s": round(d, 1), "pid": p, "comm": c, "cmd": cmd} for d, p, c, cmd in busy],
        "wall_s": round(wall, 1),
    })
    log(f"{kind} run {rep + 1}: put {res['put_records_per_s']:.0f} rec/s, get {res['get_records_per_s']:.0f} rec/s, "
        f"put CPU {res['put_server_cpu_s']} s, get CPU {res['get_server_cpu_s']} s, peak RSS {rss_mb:.0f} MB, "
        f"verified={res['verified']}")
    if not res["verified"]:
        raise RuntimeError(f"{kind}: verification failed: {json.dumps(res)}")
    return res


def dir_size(path):
    total = 0
    for dp, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dp, f)).st_size
            except OSError:
                pass
    return total


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(runs):
    recs = runs[0]["records_put"]
    s = {
        "records": recs,
        "put_rps": med([r["put_records_per_s"] for r in runs]),
        "get_rps": med([r["get_records_per_s"] for r in runs]),
        "put_rps_range": (min(r["put_records_per_s"] for r in runs), max(r["put_records_per_s"] for r in runs)),
        "get_rps_range": (min(r["get_records_per_s"] for r in runs), max(r["get_records_per_s"] for r in runs)),
        "put_cpu_100k": med([r["put_server_cpu_s"] * 100000 / r["records_put"] for r in runs
                             if r.get("put_server_cpu_s") is not None]),
        "get_cpu_100k": med([r["get_server_cpu_s"] * 100000 / r["records_read"] for r in runs
                             if r.get("get_server_cpu_s") is not None]),
        "total_cpu_100k": med([r["server_cpu_total_s"] * 100000 / r["records_put"] for r in runs]),
        "rss_mb": med([r["peak_rss_mb"] for r in runs]),
        "put_p50": med([r["put_latency_ms_p50"] for r in runs]),
        "put_p99": med([r["put_latency_ms_p99"] for r in runs]),
        "disk_bytes_per_record": med([r["data_dir_bytes"] / r["records_put"] for r in runs
                                      if r.get("data_dir_bytes")]),
        "n": len(runs),
    }
    return s


def fmt(x, digits=0):
    if x is None:
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def fmt_range(m, rng):
    if m is None:
        return "n/a"
    if rng[0] == rng[1]:
        return fmt(m)
    return f"{fmt(m)} ({fmt(rng[0])}–{fmt(rng[1])})"


def ratio(a, b, higher_better=True):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}×"


def strait_build_info(args):
    """`git <short HEAD>, binary built <mtime>` (read-only git; the tree may hold uncommitted changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        head = "?"
    try:
        built = datetime.datetime.fromtimestamp(os.path.getmtime(args.strait_bin), datetime.timezone.utc)
        built = built.strftime("%Y-%m-%d %H:%M UTC")
    except OSError:
        built = "?"
    return f"strait at git {head} (plus any uncommitted changes), release binary built {built}."


def render_table(summ, args, busy_notes, started, loadavg):
    base = summ.get(args.baseline)
    lines = []
    lines.append(f"## Kinesis benchmark ({started})")
    lines.append("")
    if "strait" in summ:
        lines.append(strait_build_info(args))
        lines.append("")
    lines.append(f"Load: {args.shards} shards, {args.connections} connections, PutRecords of 500 × {args.record_size}-byte "
                 f"records with random partition keys, then every shard read in parallel from TRIM_HORIZON "
                 f"(GetRecords Limit 10000) and the count checked. Medians of {args.repeats} runs, "
                 f"a fresh server per run, everything on 127.0.0.1.")
    lines.append(f"strait: embedded backend, `fsync: {args.fsync}`, fresh data dir. "
                 + ("kinesalite 3.3.3: LevelDB on disk (no fsync), fresh dir. " if args.kinesalite_on_disk
                    else "kinesalite 3.3.3: in memory (its default). ")
                 + "kinesis-local 0.6.2: in memory."
                 + (" strait-kafka: the Kafka backend on one Apache Kafka 4.4.0 KRaft broker on this machine "
                    "(512 MB heap, its defaults; a fresh stream, so a fresh topic, per run): every PutRecords "
                    "batch is an idempotent acks=all Produce per shard." if "strait-kafka" in args.servers else ""))
    lines.append("")
    lines.append("| server | records/run | put rec/s (min–max) | get rec/s (min–max) | put server CPU-s /100k rec | get server CPU-s /100k rec "
                 f"| peak RSS MB | put rate vs {args.baseline} | get rate vs {args.baseline} | put CPU vs {args.baseline} "
                 f"| peak RSS vs {args.baseline} |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in args.servers:
        s = summ.get(kind)
        if not s:
            continue
        lines.append("| " + " | ".join([
            kind + (f" (fsync {args.fsync})" if kind == "strait" else "")
            + (" (Kafka 4.4.0 broker, acks=all)" if kind == "strait-kafka" else ""),
            fmt(s["records"]), fmt_range(s["put_rps"], s["put_rps_range"]),
            fmt_range(s["get_rps"], s["get_rps_range"]),
            fmt(s["put_cpu_100k"], 2), fmt(s["get_cpu_100k"], 2), fmt(s["rss_mb"]),
            ratio(s["put_rps"], base and base["put_rps"]), ratio(s["get_rps"], base and base["get_rps"]),
            ratio(s["put_cpu_100k"], base and base["put_cpu_100k"]), ratio(s["rss_mb"], base and base["rss_mb"]),
        ]) + " |")
    lines.append("")
    lines.append("Rates: higher is better. CPU and RSS ratios: lower is better. Server CPU is utime+stime of the "
                 "server process and its descendants, from /proc; peak RSS is the sum of VmHWM over that tree. "
                 "Put latency medians (p50/p99 ms): " + ", ".join(
                     f"{k} {fmt(summ[k]['put_p50'], 1)}/{fmt(summ[k]['put_p99'], 1)}" for k in args.servers if k in summ)
                 + ". Put MB/s of record data (median): " + ", ".join(
                     f"{k} {summ[k]['put_rps'] * args.record_size / 1e6:.1f}" for k in args.servers if k in summ)
                 + ".")
    for k in ("strait", "kinesalite"):
        if k in summ and summ[k].get("disk_bytes_per_record"):
            lines.append(f"{k} data dir after a run: {summ[k]['disk_bytes_per_record']:.1f} bytes per "
                         f"{args.record_size}-byte record.")
    if "kinesis-local" in summ:
        lines.append("kinesis-local's put CPU per record grows with the records already in its stream "
                     "(`--scale --scale-server kinesis-local --scale-records 40000 --scale-steps 4` shows it), "
                     "so it runs with fewer records, and its rate at the strait/kinesalite record count would be far lower.")
    recs = {k: summ[k]["records"] for k in summ}
    if len(set(recs.values())) > 1:
        lines.append("Record counts differ between servers (the emulators are slow); rates are per second, CPU per "
                     "100k records, but peak RSS grows with the records held, so it is only comparable at equal counts.")
    lines.append("")
    lines.append(f"Machine: {os.cpu_count()} CPUs, {platform.platform()}; load average at start {loadavg}. The loadgen "
                 "runs on the same machine and competes for the same cores.")
    if busy_notes:
        lines.append("Other processes that used ≥1 CPU-s during runs (the machine is shared): " + "; ".join(busy_notes) + ".")
    else:
        lines.append("No other process used ≥1 CPU-s during any run.")
    return "\n".join(lines) + "\n"


def busy_summary(busy_lists):
    """Aggregates (cpu_s, pid, comm, cmd) lists into labels, rustc crates merged."""
    agg = {}
    for busy in busy_lists:
        for d, _pid, comm, cmd in busy:
            label = "rustc (cargo build)" if comm == "rustc" else short_cmd(comm, cmd)
            agg[label] = agg.get(label, 0) + d
    return [f"`{label}` {cpu:.0f} CPU-s" for label, cpu in sorted(agg.items(), key=lambda kv: -kv[1])[:8]]


# ----------------------------------------------------------------------------------------------
# scale mode

def scale_run(args, tmp_root, logdir):
    port = free_port()
    kind = args.scale_server
    srv = make_server(kind, port, args, tmp_root)
    log(f"scale: {kind} on 127.0.0.1:{port}, {args.scale_records} records in {args.scale_steps} steps, "
        f"data dir {srv.data_dir}")
    pid = srv.start(port, logdir)
    sampler = RssSampler(pid)
    sampler.start()
    other = OtherLoad([pid])
    steps = []

    def on_line(obj):
        if obj.get("kind") == "step":
            obj["data_dir_bytes"] = dir_size(srv.data_dir) if srv.data_dir else None
            obj["rss_hwm_mb"] = round(sum(vm_hwm_kb(p) for p in tree_pids(pid)) / 1024.0, 1)
            steps.append(obj)
            log(f"scale step {obj['step']}/{obj['steps']}: {obj['stream_records_after']} records, "
                f"{obj['put_records_per_s']:.0f} rec/s, {obj['server_cpu_us_per_record']} µs CPU/record")

    extra = ["--steps", str(args.scale_steps)] + (["--skip-get"] if args.scale_skip_get else [])
    try:
        res, _, lg_pid = run_loadgen(port, pid, args.scale_records, args, extra=extra, on_line=on_line,
                                     timeout=args.timeout * 10)
    except Exception:
        log(f"{kind} log tail:\n{srv.log_tail()}")
        raise
    finally:
        rss = sampler.stop()
        wall, busy = other.finish()
        srv.stop()
        disk = dir_size(srv.data_dir) if srv.data_dir else None
        if srv.data_dir and not args.keep_data:
            shutil.rmtree(srv.data_dir, ignore_errors=True)
    busy = [b for b in busy if b[1] != lg_pid]
    return res, steps, rss, disk, busy


def render_scale(res, steps, rss, disk, busy, args, started, loadavg):
    kind = args.scale_server
    lines = [f"## {kind} put cost as one stream grows ({started})", "",
             f"One stream, {args.shards} shards" + (f", fsync {args.fsync}" if kind == "strait" else "")
             + f", {args.connections} connections, "
             f"PutRecords of 500 × {args.record_size}-byte records, grown to {args.scale_records:,} records in "
             f"{args.scale_steps} steps (one server process" + (", one data dir)." if kind == "strait" else ", in memory).")
             + " Server CPU is utime+stime of the server process tree during each step.", ""]
    if kind == "strait":
        lines += [strait_build_info(args), ""]
    lines += [
             "| step | records in stream after | put rec/s | server CPU µs/record | put p50 ms | put p99 ms "
             "| data dir MB | peak RSS MB so far |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        lines.append("| " + " | ".join([
            str(s["step"]), fmt(s["stream_records_after"]), fmt(s["put_records_per_s"]),
            fmt(s["server_cpu_us_per_record"], 2), fmt(s["put_latency_ms_p50"], 1), fmt(s["put_latency_ms_p99"], 1),
            fmt(s["data_dir_bytes"] / 1e6 if s["data_dir_bytes"] is not None else None, 0),
            fmt(s["rss_hwm_mb"], 0)]) + " |")
    cpus = [s["server_cpu_us_per_record"] for s in steps if s.get("server_cpu_us_per_record") is not None]
    rates = [s["put_records_per_s"] for s in steps]
    lines.append("")
    if cpus:
        lines.append(f"Server CPU per record: first step {cpus[0]:.2f} µs, last step {cpus[-1]:.2f} µs "
                     f"(last/first {cpus[-1] / cpus[0]:.2f}); put rate first {rates[0]:,.0f}, last {rates[-1]:,.0f} rec/s.")
    if "records_read" in res:
        lines.append(f"Read back: {res['records_read']:,} of {res['records_expected']:,} records at "
                     f"{res['get_records_per_s']:,.0f} rec/s, verified={res['verified']}.")
    if disk is not None:
        lines.append(f"Data dir at the end: {disk / 1e6:,.0f} MB ({disk / max(1, res['records_put']):.1f} "
                     f"bytes/record).")
    lines.append(f"Peak RSS {rss:,.0f} MB. Load average at start {loadavg}.")
    if busy:
        lines.append("Other processes that used ≥1 CPU-s during the run (the machine is shared): "
                     + "; ".join(busy_summary([busy])) + ".")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------

def build(args):
    if not args.no_build:
        log("cargo build --release (strait)")
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
        log("cargo build --release (bench/loadgen)")
        env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "bench-loadgen"))
        subprocess.run(["cargo", "build", "--release"], cwd=LOADGEN_DIR, env=env, check=True)
    needed = [args.scale_server] if args.scale else args.servers
    if any(s not in ("strait", "strait-kafka") for s in needed):
        subprocess.run([os.path.join(HERE, "peers", "install.sh")], check=True)
    if not os.path.exists(LOADGEN_BIN):
        sys.exit(f"missing {LOADGEN_BIN}")
    if {"strait", "strait-kafka"} & set(needed) and not os.path.exists(args.strait_bin):
        sys.exit(f"missing {args.strait_bin}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="strait,kinesalite,kinesis-local",
                    help="comma-separated subset of strait,strait-kafka,kinesalite,kinesis-local")
    ap.add_argument("--baseline", default="kinesalite", help="the server the ratio columns divide by")
    ap.add_argument("--kafka-bootstrap", default=None,
                    help="the broker strait-kafka uses (bench/kinesis_on_kafka.sh starts one)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--records", type=int, default=1_000_000, help="records per strait run")
    ap.add_argument("--kinesalite-records", type=int, default=1_000_000)
    ap.add_argument("--kinesis-local-records", type=int, default=20_000,
                    help="kinesis-local manages only a few hundred records/s")
    ap.add_argument("--kinesalite-on-disk", action="store_true",
                    help="give kinesalite a LevelDB directory (default: in memory, its default)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    ap.add_argument("--strait-bin", default=os.path.join(ROOT, "target", "release", "strait"))
    ap.add_argument("--strait-config", default=os.path.join(ROOT, "config", "strait.yaml"))
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--keep-data", action="store_true", help="keep strait's data dirs")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per loadgen run")
    ap.add_argument("--scale", action="store_true", help="grow one strait stream in steps instead")
    ap.add_argument("--scale-records", type=int, default=10_000_000)
    ap.add_argument("--scale-steps", type=int, default=10)
    ap.add_argument("--scale-server", default="strait", choices=["strait", "kinesalite", "kinesis-local"])
    ap.add_argument("--scale-skip-get", action="store_true", help="do not read the whole stream back at the end")
    ap.add_argument("--out", default=None, help="markdown output (default bench/results/latest.md)")
    args = ap.parse_args()
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in args.servers:
        if s not in ("strait", "strait-kafka", "kinesalite", "kinesis-local"):
            sys.exit(f"unknown server {s}")
    if "strait-kafka" in args.servers and not args.kafka_bootstrap:
        sys.exit("strait-kafka needs --kafka-bootstrap (bench/kinesis_on_kafka.sh starts a broker)")

    build(args)
    os.makedirs(RESULTS, exist_ok=True)
    bench_tmp = os.path.join(CACHE, "bench-data")
    os.makedirs(bench_tmp, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix="run-", dir=bench_tmp)
    logdir = os.path.join(tmp_root, "logs")
    os.makedirs(logdir)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open("/proc/loadavg") as f:
        loadavg = " ".join(f.read().split()[:3])
    log(f"server logs in {logdir}")

    if args.scale:
        res, steps, rss, disk, busy = scale_run(args, tmp_root, logdir)
        md = render_scale(res, steps, rss, disk, busy, args, started, loadavg)
        out = args.out or os.path.join(RESULTS, "scale-latest.md" if args.scale_server == "strait" else f"scale-{args.scale_server}-latest.md")
        raw = {"result": res, "steps": steps, "peak_rss_mb": rss, "data_dir_bytes": disk,
               "other_busy": [list(b) for b in busy]}
    else:
        all_runs, summ = [], {}
        for kind in args.servers:
            runs = [one_run(kind, rep, args, tmp_root, logdir) for rep in range(args.repeats)]
            all_runs += runs
            summ[kind] = summarize(runs)
        busy = busy_summary([[(b["cpu_s"], b["pid"], b["comm"], b["cmd"]) for b in r["other_busy"]] for r in all_runs])
        md = render_table(summ, args, busy, started, loadavg)
        out = args.out or os.path.join(RESULTS, "latest.md")
        raw = {"summary": summ, "runs": all_runs, "args": vars(args)}
    with open(out, "w") as f:
        f.write(md)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(raw, f, indent=1)
    print(md)
    log(f"wrote {out}")
    if not args.keep_data:
        shutil.rmtree(tmp_root, ignore_errors=True)


if __name__ == "__main__":
    main()
