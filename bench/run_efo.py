#!/usr/bin/env python3
"""Enhanced fan-out (SubscribeToShard) benchmark: strait against kinesis-local, side by side.

Run through bench/efo.sh. Builds what is missing (strait's release binary if older than src/,
bench/efogen, bench/loadgen), installs the peer, then for every repeat and server (interleaved,
so background load spreads over both) starts a fresh server on 127.0.0.1 (strait: fresh data
dir, Kafka listener on) and measures:

  1a. latency, PutRecord -> SubscribeToShard event: efogen registers a consumer, subscribes to a
      fresh 1-shard stream from LATEST, then sends --rate PutRecord/s for --duration s; each
      record carries its send time (wall clock, same machine); p50/p99 of receive - send.
  1b. latency, Kafka produce -> SubscribeToShard event: the same, but the records are produced
      through strait's Kafka listener by confluent-kafka (acks=all, linger.ms=0;
      bench/efo_kafka_producer.py in <repo>/.cache/venv).
  2.  fan-out throughput: bench/loadgen preloads --records records of --record-size bytes into a
      fresh 1-shard stream; then 1 consumer, then --consumers consumers (registered, each on its
      own HTTP/2 connection) read the whole shard from TRIM_HORIZON concurrently, resubscribing
      after the ContinuationSequenceNumber when a subscription ends. Per-consumer records/s, the
      ratio (N-consumer per-consumer rate / 1-consumer rate), server CPU per phase, peak RSS.

Counts, order and duplicates are checked by efogen; a failed check is reported and makes the
script exit 1. Results: stdout, bench/results/efo-latest.md and efo-latest.json.
"""

import argparse
import datetime
import glob
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
from proctree import OtherLoad, RssSampler, free_port, log, short_cmd, tree_cpu_s  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(ROOT, ".cache")
PEERS = os.path.join(CACHE, "bench-peers")
RESULTS = os.path.join(HERE, "results")
EFOGEN_DIR = os.path.join(HERE, "efogen")
EFOGEN_BIN = os.path.join(ROOT, "target", "bench-efogen", "release", "efogen")
LOADGEN_DIR = os.path.join(HERE, "loadgen")
LOADGEN_BIN = os.path.join(ROOT, "target", "bench-loadgen", "release", "loadgen")
VENV_PY = os.path.join(CACHE, "venv", "bin", "python")
SERVERS = ("strait", "kinesis-local")


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
    def __init__(self, kind, args, tmp_root, logdir, rep):
        self.kind, self.args = kind, args
        self.port = free_port()
        self.kafka = None
        self.data_dir = None
        self.proc = None
        self.log_path = os.path.join(logdir, f"{kind}-{rep}-{self.port}.log")
        env = dict(os.environ)
        if kind == "strait":
            self.data_dir = tempfile.mkdtemp(prefix="strait-data-", dir=tmp_root)
            kport = free_port()
            self.kafka = f"127.0.0.1:{kport}"
            env.update({
                "STRAIT_DATA_DIR": self.data_dir,
                "STRAIT_KINESIS__LISTEN": f"127.0.0.1:{self.port}",
                "STRAIT_KAFKA__LISTEN": self.kafka,
                "STRAIT_KAFKA__ADVERTISED_ADDRESS": self.kafka,
                "STRAIT_ADMIN__LISTEN": "127.0.0.1:0",
                "STRAIT_BACKEND__EMBEDDED__FSYNC": args.fsync,
                "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
            })
            self.argv = [args.strait_bin, "serve", "--config", args.strait_config]
        else:
            pkg = os.path.join(PEERS, "node_modules", "kinesis-local")
            env.update({
                "KINESIS_MOCK_PLAIN_PORT": str(self.port),
                "KINESIS_MOCK_TLS_PORT": str(free_port()),  # bound too, 127.0.0.1 (patched main.js)
                "KINESIS_MOCK_CERT_PATH": os.path.join(pkg, "server.json"),
                "CREATE_STREAM_DURATION": "0ms",
                "REGISTER_STREAM_CONSUMER_DURATION": "0ms",
                "SHARD_LIMIT": "1000",
                "LOG_LEVEL": "WARN",
                "SHOULD_PERSIST_DATA": "false",
            })
            self.argv = ["node", os.path.join(pkg, "main.js")]
        self.env = env
        self.cwd = tmp_root

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        logf.close()
        wait_port(self.port, self.proc)
        if self.kafka:
            wait_port(int(self.kafka.rsplit(":", 1)[1]), self.proc)
        return self.proc.pid

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"{self.kind} did not stop on SIGTERM; SIGKILL pid {self.proc.pid}")
            self.proc.kill()
            self.proc.wait()
        if self.data_dir and not self.args.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


# ----------------------------------------------------------------------------------------------
# child processes

def run_child(argv, timeout, stdin=None, on_stdout_line=None, env=None):
    """Runs argv; returns (returncode, stdout JSON objects, stderr tail, child CPU seconds)."""
    p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    err = []
    t = threading.Thread(target=lambda: [err.append(l) for l in p.stderr], daemon=True)
    t.start()
    objs = []
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        for line in p.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                err.append("stdout: " + line + "\n")
                continue
            objs.append(obj)
            if on_stdout_line:
                on_stdout_line(p, obj)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
    t.join(timeout=5)
    return p.returncode, objs, "".join(err[-8:]).strip(), ru.ru_utime + ru.ru_stime


def stream_name(tag):
    return f"efo-{tag}-{int(time.time() * 1000)}"


def latency_kinesis(srv, args):
    n = int(args.rate * args.duration)
    argv = [EFOGEN_BIN, "latency", "--endpoint", srv.endpoint, "--proto", proto_for(srv.kind, args), *window_args(srv.kind, args),
            "--stream", stream_name("lat"), "--create-shards", "1", "--rate", str(args.rate),
            "--duration", str(args.duration), "--record-size", str(args.record_size),
            "--drain", str(args.drain), "--timeout", str(args.duration + args.drain + 90), "--quiet"]
    rc, objs, err, _ = run_child(argv, timeout=args.duration + args.drain + 120)
    res = next((o for o in objs if o.get("kind") == "result"), None)
    if res is None:
        return {"error": f"efogen exited {rc}: {err}"}
    if not res["verified"]:
        res["error"] = f"check failed: received {res['received']}/{res['expected']}, dups {res['duplicates']}, " \
                       f"order {res['order_violations']}, put errors {res['put_errors']} ({res['outcome']})"
    return res


def latency_kafka(srv, args):
    if not srv.kafka:
        return {"na": "kinesis-local has no Kafka API"}
    n = int(args.rate * args.duration)
    stream = stream_name("kafka")
    argv = [EFOGEN_BIN, "latency", "--endpoint", srv.endpoint, "--proto", proto_for(srv.kind, args), *window_args(srv.kind, args),
            "--stream", stream, "--create-shards", "1", "--external", str(n), "--record-size", str(args.record_size),
            "--drain", str(args.drain), "--timeout", str(args.duration + args.drain + 90), "--quiet"]
    producer = {}

    def on_line(p, obj):
        if obj.get("kind") != "ready":
            return
        prc, pobjs, perr, _ = run_child(
            [VENV_PY, os.path.join(HERE, "efo_kafka_producer.py"), "--bootstrap", srv.kafka, "--topic", stream,
             "--count", str(n), "--rate", str(args.rate), "--size", str(args.record_size)],
            timeout=args.duration + 60)
        producer.update(pobjs[-1] if pobjs else {})
        if prc != 0:
            producer["error"] = f"producer exited {prc}: {perr}"
        p.stdin.close()   # tells efogen the producer is done: it drains for --drain s at most

    rc, objs, err, _ = run_child(argv, timeout=args.duration + args.drain + 150, stdin=subprocess.PIPE,
                                 on_stdout_line=on_line)
    res = next((o for o in objs if o.get("kind") == "result"), None)
    if res is None:
        return {"error": f"efogen exited {rc}: {err}; producer {producer}"}
    res["producer"] = producer
    if producer.get("error"):
        res["error"] = producer["error"]
    elif not res["verified"]:
        res["error"] = f"check failed: received {res['received']}/{res['expected']}, dups {res['duplicates']}, " \
                       f"order {res['order_violations']} ({res['outcome']})"
    return res


def fanout(srv, pid, args):
    records = args.records if srv.kind == "strait" else args.kinesis_local_records
    stream = stream_name("fan")
    t0 = time.time()
    rc, objs, err, _ = run_child(
        [LOADGEN_BIN, "--endpoint", srv.endpoint, "--shards", "1", "--records", str(records),
         "--connections", str(args.connections), "--record-size", str(args.record_size), "--skip-get",
         "--stream", stream, "--quiet"], timeout=args.timeout)
    res = next((o for o in objs if o.get("kind") == "result"), None)
    if rc != 0 or res is None or res.get("records_put") != records:
        return {"error": f"preload: loadgen exited {rc}: {err or res}"}
    out = {"records": records, "preload_s": round(time.time() - t0, 2),
           "preload_rps": res.get("put_records_per_s")}
    for n in (1, args.consumers):
        cpu0 = tree_cpu_s(pid)
        rc, objs, err, client_cpu = run_child(
            [EFOGEN_BIN, "fanout", "--endpoint", srv.endpoint, "--proto", proto_for(srv.kind, args), *window_args(srv.kind, args),
             "--stream", stream, "--consumers", str(n), "--expect", str(records),
             "--record-size", str(args.record_size), "--timeout", str(args.timeout), "--quiet"],
            timeout=args.timeout + 30)
        cpu1 = tree_cpu_s(pid)
        r = next((o for o in objs if o.get("kind") == "result"), None)
        if r is None:
            out[f"c{n}"] = {"error": f"efogen exited {rc}: {err}"}
            continue
        r["server_cpu_s"] = round(cpu1 - cpu0, 3)
        r["client_cpu_s"] = round(client_cpu, 3)
        if not r["verified"]:
            bad = [c for c in r["per_consumer"] if not c["verified"]]
            r["error"] = "check failed: " + "; ".join(
                f"{c['name']}: {c['records']}/{records} records, over {c['over']}, order {c['order_violations']}, "
                f"bad len {c['bad_data_len']}, error {c['error']}" for c in bad[:3])
        out[f"c{n}"] = r
    return out


def proto_for(kind, args):
    return args.proto if kind == "strait" else args.peer_proto


def window_args(kind, args):
    return ["--window", str(args.window if kind == "strait" else args.peer_window)]


def one_repeat(kind, rep, args, tmp_root, logdir):
    srv = Server(kind, args, tmp_root, logdir, rep)
    log(f"{kind} repeat {rep + 1}/{args.repeats}: {srv.endpoint}" + (f", Kafka {srv.kafka}" if srv.kafka else ""))
    pid = srv.start()
    sampler = RssSampler(pid)
    sampler.start()
    other = OtherLoad([pid])
    run = {"server": kind, "repeat": rep + 1}
    try:
        if "latency" in args.phases:
            run["lat_kinesis"] = latency_kinesis(srv, args)
            log(f"  PutRecord -> event: {brief_lat(run['lat_kinesis'])}")
            run["lat_kafka"] = latency_kafka(srv, args)
            log(f"  Kafka produce -> event: {brief_lat(run['lat_kafka'])}")
        if "fanout" in args.phases:
            run["fanout"] = fanout(srv, pid, args)
            f = run["fanout"]
            for n in (1, args.consumers):
                r = f.get(f"c{n}", f)
                if r.get("error"):
                    log(f"  fan-out x{n}: ERROR {r['error']}")
                else:
                    log(f"  fan-out x{n}: per-consumer median {r['per_consumer_rps_median']:,.0f} rec/s "
                        f"(min {r['per_consumer_rps_min']:,.0f}), server CPU {r['server_cpu_s']} s, "
                        f"client CPU {r['client_cpu_s']} s, wall {r['wall_s']} s")
    finally:
        run["peak_rss_mb"] = round(sampler.stop(), 1)
        wall, busy = other.finish()
        run["other_busy"] = [{"cpu_s": round(d, 1), "pid": p, "comm": c, "cmd": cmd} for d, p, c, cmd in busy]
        srv.stop()
    for key in ("lat_kinesis", "lat_kafka"):
        if run.get(key, {}).get("error"):
            log(f"  {key} error; {kind} log tail:\n{srv.log_tail()}")
    return run


def brief_lat(r):
    if r.get("na"):
        return f"n/a ({r['na']})"
    if r.get("error") and r.get("latency_ms_p50") is None:
        return "ERROR " + r["error"]
    s = f"p50 {r['latency_ms_p50']} ms, p99 {r['latency_ms_p99']} ms, {r['received']}/{r['expected']} received"
    return s + (f" ERROR {r['error']}" if r.get("error") else "")


# ----------------------------------------------------------------------------------------------
# summary

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(runs, args):
    s = {}
    for kind in args.servers:
        rs = [r for r in runs if r["server"] == kind]
        d = {"n": len(rs), "errors": [], "na": {}}
        for key in ("lat_kinesis", "lat_kafka"):
            vals = [r[key] for r in rs if key in r]
            nas = [v["na"] for v in vals if v.get("na")]
            if nas:
                d["na"][key] = nas[0]
            ok = [v for v in vals if not v.get("na") and not v.get("error")]
            d["errors"] += [f"{key} repeat {r['repeat']}: {r[key]['error']}" for r in rs
                            if key in r and r[key].get("error")]
            for p in ("p50", "p99", "mean", "max"):
                d[f"{key}_{p}"] = med([v[f"latency_ms_{p}"] for v in ok])
            d[f"{key}_ok"] = len(ok)
            if key == "lat_kinesis":
                d["put_p50"] = med([v["put_latency_ms_p50"] for v in ok])
        fans = [r["fanout"] for r in rs if "fanout" in r]
        for r in rs:
            f = r.get("fanout", {})
            if f.get("error"):
                d["errors"].append(f"fanout repeat {r['repeat']}: {f['error']}")
            for n in (1, args.consumers):
                c = f.get(f"c{n}", {})
                if c.get("error"):
                    d["errors"].append(f"fanout x{n} repeat {r['repeat']}: {c['error']}")
        d["fan_records"] = fans[0].get("records") if fans else None

        def ok_c(n):
            return [f[f"c{n}"] for f in fans if f"c{n}" in f and not f[f"c{n}"].get("error")]
        c1, cn = ok_c(1), ok_c(args.consumers)
        d["c1_rps"] = med([c["per_consumer_rps_median"] for c in c1])
        d["cn_rps"] = med([c["per_consumer_rps_median"] for c in cn])
        d["cn_min_rps"] = med([c["per_consumer_rps_min"] for c in cn])
        d["cn_agg_rps"] = med([c["aggregate_rps"] for c in cn])
        # ratio per repeat (same server process, same stream), then the median
        ratios = [f[f"c{args.consumers}"]["per_consumer_rps_median"] / f["c1"]["per_consumer_rps_median"]
                  for f in fans if f.get("c1") and f.get(f"c{args.consumers}")
                  and not f["c1"].get("error") and not f[f"c{args.consumers}"].get("error")
                  and f["c1"]["per_consumer_rps_median"]]
        d["fan_ratio"] = med(ratios)
        d["fan_ratio_range"] = (min(ratios), max(ratios)) if ratios else None
        d["c1_cpu_per_m"] = med([c["server_cpu_s"] * 1e6 / d["fan_records"] for c in c1])
        d["cn_cpu_per_m"] = med([c["server_cpu_s"] * 1e6 / (d["fan_records"] * args.consumers) for c in cn])
        d["c1_client_cpu_per_m"] = med([c["client_cpu_s"] * 1e6 / d["fan_records"] for c in c1])
        d["cn_client_cpu_per_m"] = med([c["client_cpu_s"] * 1e6 / (d["fan_records"] * args.consumers) for c in cn])
        d["preload_rps"] = med([f.get("preload_rps") for f in fans])
        d["rss_mb"] = med([r["peak_rss_mb"] for r in rs])
        d["no_initial"] = sum(v.get("subscriptions_without_initial_response", 0)
                              for r in rs for key in ("lat_kinesis", "lat_kafka") for v in [r.get(key, {})]) + sum(
            c.get("subscriptions_without_initial_response", 0) for f in fans for n in (1, args.consumers)
            for c in f.get(f"c{n}", {}).get("per_consumer", []))
        d["subs_cn"] = med([sum(p["subscriptions"] for p in c["per_consumer"]) / args.consumers for c in cn])
        s[kind] = d
    return s


def fmt(x, digits=0):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}"


def strait_build_info(args):
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


def render(summ, runs, args, started, loadavg):
    st, kl = summ.get("strait"), summ.get("kinesis-local")
    peer = kl is not None
    N = args.consumers
    L = []
    L.append(f"## Enhanced fan-out benchmark ({started})")
    L.append("")
    if st:
        L.append(strait_build_info(args))
        L.append("")
    L.append(f"Everything on 127.0.0.1, a fresh server per repeat, medians of {args.repeats} repeats. "
             f"Subscriber: bench/efogen (Rust, hyper 1, {proto_label(args.proto)} for strait"
             + (f", {proto_label(args.peer_proto)} for kinesis-local" if peer else "")
             + f", one connection per consumer, {args.window >> 10} KiB HTTP/2 stream window for strait as the AWS SDK's Netty client).")
    L.append(f"Latency: a fresh 1-shard stream, one registered consumer subscribed from LATEST, "
             f"{args.rate:g} records/s for {args.duration:g} s ({int(args.rate * args.duration):,} records of "
             f"{args.record_size} B), each carrying its send time; latency = event received − send time (same clock). "
             f"Kafka: confluent-kafka {kafka_version()} producing to partition 0, acks=all, linger.ms=0.")
    L.append(f"Fan-out: a fresh 1-shard stream preloaded with {fmt(st and st['fan_records'])} records × {args.record_size} B "
             + (f"(kinesis-local: {fmt(kl['fan_records'])}, it puts only a few hundred records/s) " if peer else "")
             + f"by bench/loadgen, then 1 consumer, then {N} consumers concurrently read the whole shard from "
             f"TRIM_HORIZON (resubscribing after ContinuationSequenceNumber when a subscription ends); "
             f"per-consumer rate = records ÷ (last record received − subscribe start).")
    L.append(f"strait: embedded backend, `fsync: {args.fsync}`. kinesis-local 0.6.2 (kinesis-mock): in memory.")
    L.append("")
    hdr = "| measurement | strait |" + (" kinesis-local | strait advantage |" if peer else "") + " target |"
    L.append(hdr)
    L.append("|---|---:|" + ("---:|---:|" if peer else "") + "---|")

    def cell(d, key, digits, na_key=None):
        if d is None:
            return "n/a"
        if na_key and d["na"].get(na_key):
            return f"n/a ({d['na'][na_key]})"
        v = d.get(key)
        if v is None and d["errors"]:
            return "n/a (failed, see below)"
        return fmt(v, digits)

    def adv(a, b, lower_better):
        if a is None or b is None or a == 0 or b == 0:
            return "n/a"
        r = b / a if lower_better else a / b
        return f"{r:,.1f}× " + ("lower" if lower_better else "higher")

    def row(label, key, digits, lower_better, target, na_key=None):
        r = f"| {label} | {cell(st, key, digits, na_key)} |"
        if peer:
            r += f" {cell(kl, key, digits, na_key)} | {adv(st and st.get(key), kl.get(key), lower_better)} |"
        L.append(r + f" {target} |")

    row("PutRecord → event, p50 ms", "lat_kinesis_p50", 1, True, "")
    row("PutRecord → event, p99 ms", "lat_kinesis_p99", 1, True, "≤ 10 (AWS: ~70 ms average)")
    row("Kafka produce → event, p50 ms", "lat_kafka_p50", 1, True, "", "lat_kafka")
    row("Kafka produce → event, p99 ms", "lat_kafka_p99", 1, True, "≤ 10", "lat_kafka")
    row("fan-out, 1 consumer, records/s", "c1_rps", 0, False, "")
    row(f"fan-out, {N} consumers, records/s per consumer (median)", "cn_rps", 0, False, "")
    row(f"fan-out, {N} consumers, slowest consumer records/s", "cn_min_rps", 0, False, "")
    row(f"fan-out, {N} consumers, aggregate records/s", "cn_agg_rps", 0, False, "")
    L.append(f"| per-consumer rate ratio, {N} consumers ÷ 1 | {fmt(st and st['fan_ratio'], 2)} |"
             + (f" {fmt(kl['fan_ratio'], 2)} | |" if peer else "") + " ≥ 0.8 |")
    row("server CPU-s per 1M records delivered, 1 consumer", "c1_cpu_per_m", 2, True, "")
    row(f"server CPU-s per 1M records delivered, {N} consumers", "cn_cpu_per_m", 2, True, "")
    row("server peak RSS MB (whole repeat)", "rss_mb", 0, True, "")
    L.append("")
    L.append("“strait advantage” is kinesis-local ÷ strait for latency, CPU and RSS, and strait ÷ kinesis-local for "
             "rates. Server CPU is utime+stime of the server's process tree during the read phase, from /proc; "
             "peak RSS is the sum of VmHWM over that tree (it includes the preloaded stream).")
    notes = []
    if st:
        if st.get("fan_ratio_range"):
            notes.append(f"strait {N}÷1 ratio over the repeats: {st['fan_ratio_range'][0]:.2f}–{st['fan_ratio_range'][1]:.2f}.")
        notes.append(f"Subscriber (efogen) CPU-s per 1M records: strait 1 consumer {fmt(st['c1_client_cpu_per_m'], 2)}, "
                     f"{N} consumers {fmt(st['cn_client_cpu_per_m'], 2)} — the client shares the 2 cores with the server.")
        notes.append(f"strait PutRecord call latency p50 {fmt(st.get('put_p50'), 2)} ms (fsync {args.fsync}); "
                     f"latency p50/p99 mean/max medians: PutRecord {fmt(st['lat_kinesis_mean'], 1)}/"
                     f"{fmt(st['lat_kinesis_max'], 1)} ms, Kafka {fmt(st['lat_kafka_mean'], 1)}/{fmt(st['lat_kafka_max'], 1)} ms.")
        if st["no_initial"]:
            notes.append(f"**strait sent no initial-response on {st['no_initial']} subscriptions.**")
        notes.append(f"strait subscriptions per consumer in the {N}-consumer read: {fmt(st['subs_cn'], 1)} "
                     f"(lifetime {args.strait_lifetime or 'default 300'} s).")
    if peer:
        kl_runs = [r["lat_kinesis"] for r in runs if r["server"] == "kinesis-local" and "lat_kinesis" in r
                   and r["lat_kinesis"].get("put_elapsed_s")]
        kl_rate = med([v["expected"] / v["put_elapsed_s"] for v in kl_runs])
        notes.append(f"kinesis-local pushes subscription events on a 1-second timer, and it cannot keep up with "
                     f"{args.rate:g} PutRecord/s: its PutRecord call latency p50 was {fmt(kl.get('put_p50'), 0)} ms "
                     f"and the puts ran at {fmt(kl_rate, 0)} records/s, so its put → event latency is mostly "
                     f"queueing in front of PutRecord. Its fan-out ran with {fmt(kl['fan_records'])} records "
                     f"(strait {fmt(st and st['fan_records'])}), which it delivers in one event per consumer, so its "
                     f"rates are bounded by the 1-second timer; rates are per second.")
        notes.append(PEER_PROTO_NOTE.get(args.peer_proto, ""))
    for k, d in summ.items():
        for e in d["errors"]:
            notes.append(f"**{k} failure**: {e}")
    with open("/proc/cpuinfo") as f:
        ncpu = sum(1 for l in f if l.startswith("processor"))
    notes.append(f"Machine: {ncpu} CPUs, {platform.platform()}; load average at start {loadavg}. "
                 "efogen, loadgen and the Kafka producer run on the same machine and compete for the same cores.")
    busy = {}
    for r in runs:
        for b in r["other_busy"]:
            label = "rustc (cargo build)" if b["comm"] == "rustc" else short_cmd(b["comm"], b["cmd"])
            busy[label] = busy.get(label, 0) + b["cpu_s"]
    if busy:
        notes.append("Other processes that used ≥1 CPU-s during the runs (the machine is shared): " + "; ".join(
            f"`{k}` {v:.0f} CPU-s" for k, v in sorted(busy.items(), key=lambda kv: -kv[1])[:8]) + ".")
    else:
        notes.append("No other process used ≥1 CPU-s during any run.")
    L += [n for n in notes if n]
    return "\n".join(L) + "\n"


PEER_PROTO_NOTE = {
    "http1": "kinesis-local is read over HTTP/1.1 (chunked event stream) on its plain port.",
    "h2c": "kinesis-local is read over h2c on its plain port (it accepts HTTP/2 prior knowledge there) with a "
           "32 MiB HTTP/2 stream window: it puts the whole backlog into one event (5,000 records ≈ 1.5 MB), and with "
           "a window smaller than the event (64 KiB, or the SDK's 1 MiB) the stream stalls for good — no DATA "
           "after WINDOW_UPDATE (checked with efogen --window 65535 / 1048576: 0 records in 15 s; 33554432 or "
           "HTTP/1.1: all 5,000). kinesis-local also sends no `initial-response` message; efogen counts that "
           "and starts at the first SubscribeToShardEvent.",
}


def proto_label(p):
    return {"h2c": "HTTP/2 prior knowledge (h2c)", "http1": "HTTP/1.1"}[p]


def kafka_version():
    try:
        out = subprocess.run([VENV_PY, "-c", "import confluent_kafka as c; v = c.version(); l = c.libversion(); "
                              "print((v[0] if isinstance(v, tuple) else v) + ' (librdkafka ' + l[0] + ')')"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
        return out or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# ----------------------------------------------------------------------------------------------
# build

def newest_mtime(paths):
    m = 0.0
    for p in paths:
        for f in glob.glob(p, recursive=True):
            m = max(m, os.path.getmtime(f))
    return m


def build(args):
    src = newest_mtime([os.path.join(ROOT, "src", "**", "*.rs"), os.path.join(ROOT, "Cargo.toml"),
                        os.path.join(ROOT, "Cargo.lock")])
    if "strait" in args.servers and args.strait_bin == os.path.join(ROOT, "target", "release", "strait"):
        if not os.path.exists(args.strait_bin) or os.path.getmtime(args.strait_bin) < src:
            if args.no_build:
                log(f"warning: {args.strait_bin} is missing or older than src/ (--no-build)")
            else:
                log("nice cargo build --release (strait; the binary is missing or older than src/)")
                subprocess.run(["nice", "cargo", "build", "--release"], cwd=ROOT, check=True)
    for name, d, binp in (("efogen", EFOGEN_DIR, EFOGEN_BIN), ("loadgen", LOADGEN_DIR, LOADGEN_BIN)):
        srcm = newest_mtime([os.path.join(d, "src", "*.rs"), os.path.join(d, "Cargo.toml")])
        if not os.path.exists(binp) or (os.path.getmtime(binp) < srcm and not args.no_build):
            log(f"nice cargo build --release (bench/{name})")
            env = dict(os.environ, CARGO_TARGET_DIR=os.path.dirname(os.path.dirname(binp)))
            subprocess.run(["nice", "cargo", "build", "--release"], cwd=d, env=env, check=True)
    if "kinesis-local" in args.servers:
        subprocess.run([os.path.join(HERE, "peers", "install.sh")], check=True)
    for p in (EFOGEN_BIN, LOADGEN_BIN) + ((args.strait_bin,) if "strait" in args.servers else ()):
        if not os.path.exists(p):
            sys.exit(f"missing {p}")
    if "latency" in args.phases and "strait" in args.servers and not os.path.exists(VENV_PY):
        sys.exit(f"missing {VENV_PY} (confluent-kafka for the Kafka latency test)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="strait,kinesis-local", help="comma-separated subset of strait,kinesis-local")
    ap.add_argument("--phases", default="latency,fanout", help="comma-separated subset of latency,fanout")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rate", type=float, default=200.0, help="records/s in the latency tests")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of records in the latency tests")
    ap.add_argument("--drain", type=float, default=5.0, help="max seconds to wait for stragglers after the last put")
    ap.add_argument("--records", type=int, default=1_000_000, help="records preloaded for strait's fan-out test")
    ap.add_argument("--kinesis-local-records", type=int, default=5_000,
                    help="records preloaded for kinesis-local (it puts a few hundred records/s)")
    ap.add_argument("--consumers", type=int, default=5)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--connections", type=int, default=16, help="loadgen connections for the preload")
    ap.add_argument("--proto", default="h2c", choices=["h2c", "http1"], help="efogen transport for strait")
    ap.add_argument("--peer-proto", default="h2c", choices=["h2c", "http1"], help="efogen transport for kinesis-local")
    ap.add_argument("--window", type=int, default=1 << 20,
                    help="HTTP/2 initial stream window for strait (default 1 MiB, the AWS SDK Netty client's)")
    ap.add_argument("--peer-window", type=int, default=32 << 20,
                    help="HTTP/2 initial stream window for kinesis-local (default 32 MiB: with a smaller one "
                         "its event stream stalls once an event exceeds the window)")
    ap.add_argument("--fsync", default="always", choices=["always", "interval", "never"])
    ap.add_argument("--strait-lifetime", type=int, default=None,
                    help="STRAIT_KINESIS__SUBSCRIPTION_LIFETIME_SECS (default: strait's config, 300)")
    ap.add_argument("--strait-bin", default=os.path.join(ROOT, "target", "release", "strait"))
    ap.add_argument("--strait-config", default=os.path.join(ROOT, "config", "strait.yaml"))
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per preload / fan-out read")
    ap.add_argument("--out", default=None, help="markdown output (default bench/results/efo-latest.md)")
    args = ap.parse_args()
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.phases = [s.strip() for s in args.phases.split(",") if s.strip()]
    for s in args.servers:
        if s not in SERVERS:
            sys.exit(f"unknown server {s}")
    if args.strait_lifetime:
        os.environ["STRAIT_KINESIS__SUBSCRIPTION_LIFETIME_SECS"] = str(args.strait_lifetime)

    build(args)
    os.makedirs(RESULTS, exist_ok=True)
    bench_tmp = os.path.join(CACHE, "bench-data")
    os.makedirs(bench_tmp, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix="efo-", dir=bench_tmp)
    logdir = os.path.join(tmp_root, "logs")
    os.makedirs(logdir)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open("/proc/loadavg") as f:
        loadavg = " ".join(f.read().split()[:3])
    log(f"server logs in {logdir}")
    t0 = time.time()
    runs = []
    for rep in range(args.repeats):
        for kind in args.servers:
            runs.append(one_repeat(kind, rep, args, tmp_root, logdir))
    summ = summarize(runs, args)
    md = render(summ, runs, args, started, loadavg)
    out = args.out or os.path.join(RESULTS, "efo-latest.md")
    with open(out, "w") as f:
        f.write(md)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"summary": summ, "runs": runs, "args": vars(args)}, f, indent=1)
    print(md)
    log(f"wrote {out} in {time.time() - t0:.0f} s")
    failed = any(d["errors"] for d in summ.values())
    if not args.keep_data:
        shutil.rmtree(tmp_root, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
