#!/usr/bin/env python3
"""Kafka benchmark: a real Apache Kafka 4.x broker against strait's Kafka front end.

Run through bench/kafka.sh, which installs the Kafka jars from Maven Central first. For every
repeat, partition count and server (interleaved, so background load spreads over all servers) it
starts a fresh server on 127.0.0.1 with a fresh data directory, then runs Kafka's own tools from
the kafka-tools jar, each in its own JVM, as Kafka's shell scripts would:

  TopicCommand --create         the perf topic and the latency topic, with N partitions
  ProducerPerformance           --num-records R, 100-byte records, --throughput -1, acks=all
  GetOffsetShell --time -1      the end offsets must add up to R
  ConsumerPerformance           reads the R records back (a consumer group, classic protocol)
  EndToEndLatency               E sequential produce (acks=all) + consume round trips

and samples the server's CPU time (utime+stime of its process tree, per phase) and peak RSS
(VmHWM summed over the process tree). Medians over --repeats go to a markdown table with ratios
against Kafka: stdout, bench/results/kafka-latest.md and kafka-latest.json.

Servers:
  kafka          kafka.Kafka (KRaft, combined broker+controller, one node), Kafka's default flush
                 settings (no fsync per write: the page cache, flushed by the OS)
  strait-always  strait serve, embedded backend, fsync: always (a write is acknowledged after fsync)
  strait-never   strait serve, embedded backend, fsync: never

A tool failing against a server (non-zero exit, timeout, exception, wrong count) is recorded,
shown under "Failures" and makes the script exit 1; the other measurements still run.
"""

import argparse
import base64
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proctree import OtherLoad, RssSampler, free_port, log, short_cmd, tree_cpu_s  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(ROOT, ".cache")
RESULTS = os.path.join(HERE, "results")
KAFKA_CONF = os.path.join(HERE, "kafka")
SERVERS = ("kafka", "strait-always", "strait-never", "strait-passthrough", "strait-prefixed")
# strait-prefixed: the pass-through with backend.kafka.topic_prefix, which decodes and re-encodes
# every frame naming topics (Produce and Fetch included).
PREFIX = "bench."
# What kafka-run-class.sh passes by default (KAFKA_JVM_PERFORMANCE_OPTS).
JVM_PERF_OPTS = ["-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                 "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]


def busy_summary(busy_lists):
    agg = {}
    for busy in busy_lists:
        for b in busy:
            label = "rustc (cargo build)" if b["comm"] == "rustc" else short_cmd(b["comm"], b["cmd"])
            agg[label] = agg.get(label, 0) + b["cpu_s"]
    return [f"`{label}` {cpu:.0f} CPU-s" for label, cpu in sorted(agg.items(), key=lambda kv: -kv[1])[:10]]


def dir_size(path):
    """Bytes allocated on disk (as du; Kafka preallocates sparse index files)."""
    total = 0
    for dp, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dp, f)).st_blocks * 512
            except OSError:
                pass
    return total


# ----------------------------------------------------------------------------------------------
# servers


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path, n=25):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class ServerError(RuntimeError):
    pass


class Server:
    """One server process on 127.0.0.1 with its own data directory."""

    def __init__(self, kind, args, run_dir):
        self.kind, self.args, self.run_dir = kind, args, run_dir
        self.data_dir = os.path.join(run_dir, "data")
        self.log_path = os.path.join(run_dir, f"{kind}.log")
        self.proc = None
        self.bootstrap = None
        # strait-passthrough / -prefixed: the broker behind strait (self.proc is strait).
        self.broker = None

    def start(self):
        os.makedirs(self.data_dir)
        if self.kind == "kafka":
            self._start_kafka()
        elif self.kind in ("strait-passthrough", "strait-prefixed"):
            # The same broker as the "kafka" runs, with strait's Kafka backend in front; the
            # CPU and RSS columns then measure strait alone.
            broker = Server("kafka", self.args, self.run_dir)
            broker.data_dir, broker.log_path = self.data_dir, os.path.join(self.run_dir, "kafka.log")
            broker._start_kafka()
            self.broker = broker
            self._start_strait(backend=broker.bootstrap)
        else:
            self._start_strait()
        return self.proc.pid

    def _popen(self, argv, env=None):
        logf = open(self.log_path, "a")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(argv, env=full_env, cwd=self.run_dir, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()

    def _wait(self, ready, what, timeout=90.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with {self.proc.returncode} before {what}:\n"
                                  f"{tail(self.log_path)}")
            if ready():
                return
            time.sleep(0.1)
        raise ServerError(f"{self.kind}: no {what} after {timeout:.0f}s:\n{tail(self.log_path)}")

    def _start_kafka(self):
        port, cport = free_port(), free_port()
        props = os.path.join(self.run_dir, "server.properties")
        with open(props, "w") as f:
            f.write("\n".join([
                "# Single-node KRaft, combined broker + controller; otherwise Kafka's shipped",
                "# config/server.properties. No log.flush.* settings: Kafka's defaults (no fsync per write).",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{cport}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "num.network.threads=3",
                "num.io.threads=8",
                "socket.send.buffer.bytes=102400",
                "socket.receive.buffer.bytes=102400",
                "socket.request.max.bytes=104857600",
                f"log.dirs={self.data_dir}",
                "num.partitions=1",
                "num.recovery.threads.per.data.dir=1",
                "offsets.topic.replication.factor=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "log.retention.hours=168",
                "log.segment.bytes=1073741824",
                "log.retention.check.interval.ms=300000",
                f"group.initial.rebalance.delay.ms={self.args.rebalance_delay_ms}",
                "",
            ]))
        cluster_id = "-"
        while cluster_id.startswith("-"):   # as Kafka's Uuid.randomUuid: no leading '-' on a command line
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt = subprocess.run(
            ["java", "-Xmx256m", f"-Dlog4j2.configurationFile={os.path.join(KAFKA_CONF, 'log4j2-tools.properties')}",
             "-cp", os.path.join(self.args.kafka_libs, "*"), "kafka.tools.StorageTool", "format",
             f"--cluster-id={cluster_id}", "--config", props],
            cwd=self.run_dir, capture_output=True, text=True, timeout=120)
        if fmt.returncode != 0:
            raise ServerError(f"kafka StorageTool format failed ({fmt.returncode}):\n{fmt.stdout}\n{fmt.stderr}")
        self._popen(["java", *self.args.kafka_heap.split(), *JVM_PERF_OPTS,
                     f"-Dlog4j2.configurationFile={os.path.join(KAFKA_CONF, 'log4j2-broker.properties')}",
                     "-cp", os.path.join(self.args.kafka_libs, "*"), "kafka.Kafka", props])

        def ready():
            if not port_open(port):
                return False
            with open(self.log_path, errors="replace") as f:
                return "Kafka Server started" in f.read()
        self._wait(ready, "'Kafka Server started'")
        self.bootstrap = f"127.0.0.1:{port}"

    def _start_strait(self, backend=None):
        env = {
            "STRAIT_DATA_DIR": os.path.join(self.data_dir, "strait") if backend else self.data_dir,
            "STRAIT_KINESIS__LISTEN": "127.0.0.1:0",
            "STRAIT_KAFKA__LISTEN": "127.0.0.1:0",
            "STRAIT_KAFKA__ADVERTISED_ADDRESS": "127.0.0.1:0",
            "STRAIT_ADMIN__LISTEN": "127.0.0.1:0",
            "STRAIT_KAFKA__GROUP_INITIAL_REBALANCE_DELAY_MS": str(self.args.rebalance_delay_ms),
            **({"STRAIT_BACKEND__TYPE": "kafka", "STRAIT_BACKEND__KAFKA__BOOTSTRAP": backend} if backend else
               {"STRAIT_BACKEND__EMBEDDED__FSYNC": self.kind.split("-", 1)[1]}),
            **({"STRAIT_BACKEND__KAFKA__TOPIC_PREFIX": PREFIX,
                "STRAIT_BACKEND__KAFKA__METADATA_TOPIC": PREFIX + "__strait_meta"}
               if self.kind == "strait-prefixed" else {}),
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
            "NO_COLOR": "1",
        }
        self._popen([self.args.strait_bin, "serve", "--config", self.args.strait_config], env=env)
        found = {}

        def ready():
            with open(self.log_path, errors="replace") as f:
                m = re.search(r"strait: kafka listening on (\S+):(\d+)", f.read())
            if m:
                found["port"] = int(m.group(2))
                return port_open(found["port"])
            return False
        self._wait(ready, "'strait: kafka listening on'", timeout=30)
        self.bootstrap = f"127.0.0.1:{found['port']}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"{self.kind} did not stop on SIGTERM within 30s; SIGKILL pid {self.proc.pid}")
                self.proc.kill()
                self.proc.wait()
        if self.broker is not None:
            self.broker.stop()


# ----------------------------------------------------------------------------------------------
# Kafka tools

class ToolError(RuntimeError):
    pass


def run_tool(args, run_dir, name, main_class, tool_args, timeout):
    """Runs one Kafka tool in its own JVM; returns (stdout, stderr). Output is also kept in run_dir."""
    argv = ["java", *args.tool_heap.split(), *JVM_PERF_OPTS,
            f"-Dlog4j2.configurationFile={os.path.join(KAFKA_CONF, 'log4j2-tools.properties')}",
            "-cp", os.path.join(args.kafka_libs, "*"), main_class, *tool_args]
    with open(os.path.join(run_dir, f"{name}.cmd"), "w") as f:
        f.write(" ".join(argv) + "\n")
    p = subprocess.Popen(argv, cwd=run_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        out, err = p.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        timed_out = True
    with open(os.path.join(run_dir, f"{name}.out"), "w") as f:
        f.write(out)
    with open(os.path.join(run_dir, f"{name}.err"), "w") as f:
        f.write(err)
    short = main_class.rsplit(".", 1)[-1]
    if timed_out:
        raise ToolError(f"{short} timed out after {timeout}s; last output: "
                        f"{(out.strip().splitlines() or [''])[-1][:300]!r}; stderr tail: {err.strip()[-600:]!r}")
    if p.returncode != 0:
        raise ToolError(f"{short} exited {p.returncode}; stdout tail: {out.strip()[-400:]!r}; "
                        f"stderr tail: {err.strip()[-800:]!r}")
    return out, err


def problems_in(err):
    """(errors, warnings) among a tool's stderr lines: exceptions and ERROR log lines are errors,
    other WARN lines (retries, disconnects) are warnings."""
    errors, warnings = [], []
    for l in err.splitlines():
        if re.search(r"Exception|\bERROR\b|Error while", l):
            errors.append(l)
        elif re.search(r"\bWARN\b", l):
            warnings.append(l)
    return errors, warnings


def note_problems(res, name, err):
    errors, warnings = problems_in(err)
    if errors:
        res["errors"].append(f"{name}: {len(errors)} error line(s) on stderr, first: {errors[0][:400]}")
    if warnings:
        res["warnings"].append(f"{name}: {len(warnings)} WARN line(s) on stderr, first: {warnings[0][:400]}")


PRODUCER_RE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, "
    r"(\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def parse_producer(out):
    m = None
    for m in PRODUCER_RE.finditer(out):
        pass
    if not m:
        raise ToolError(f"ProducerPerformance printed no summary line: {out.strip()[-400:]!r}")
    g = m.groups()
    return {"records_sent": int(g[0]), "records_per_s": float(g[1]), "mb_per_s": float(g[2]),
            "lat_avg_ms": float(g[3]), "lat_max_ms": float(g[4]), "lat_p50_ms": int(g[5]),
            "lat_p95_ms": int(g[6]), "lat_p99_ms": int(g[7]), "lat_p999_ms": int(g[8])}


def parse_consumer(out):
    lines = [l for l in out.splitlines() if l.strip()]
    for i, l in enumerate(lines):
        if l.startswith("start.time") and i + 1 < len(lines):
            keys = [k.strip() for k in l.split(",")]
            vals = [v.strip() for v in lines[i + 1].split(",")]
            row = dict(zip(keys, vals))
            return {"records": int(row["data.consumed.in.nMsg"]), "mb": float(row["data.consumed.in.MB"]),
                    "records_per_s_total": float(row["nMsg.sec"]), "rebalance_ms": int(row["rebalance.time.ms"]),
                    "fetch_ms": int(row["fetch.time.ms"]), "records_per_s": float(row["fetch.nMsg.sec"]),
                    "mb_per_s": float(row["fetch.MB.sec"])}
    raise ToolError(f"ConsumerPerformance printed no stats line: {out.strip()[-400:]!r}")


def parse_e2e(out):
    avg = re.search(r"Avg latency: ([\d.]+) ms", out)
    pct = re.search(r"Percentiles: 50th = (\d+), 99th = (\d+), 99.9th = (\d+)", out)
    if not avg or not pct:
        raise ToolError(f"EndToEndLatency printed no latency summary: {out.strip()[-400:]!r}")
    return {"avg_ms": float(avg.group(1)), "p50_ms": int(pct.group(1)), "p99_ms": int(pct.group(2)),
            "p999_ms": int(pct.group(3))}


def parse_offsets(out, topic):
    total, parts = 0, {}
    for l in out.splitlines():
        m = re.match(rf"^{re.escape(topic)}:(\d+):(-?\d+)$", l.strip())
        if m:
            parts[int(m.group(1))] = int(m.group(2))
            total += int(m.group(2))
    return total, parts


# ----------------------------------------------------------------------------------------------
# one run: one fresh server, one partition count

def one_run(kind, parts, rep, args, tmp_root):
    run_dir = tempfile.mkdtemp(prefix=f"{kind}-p{parts}-r{rep + 1}-", dir=tmp_root)
    srv = Server(kind, args, run_dir)
    res = {"server": kind, "partitions": parts, "repeat": rep + 1, "run_dir": run_dir, "errors": [], "warnings": []}
    log(f"{kind}, {parts} partition(s), run {rep + 1}/{args.repeats}: starting (dir {run_dir})")
    t_start = time.time()
    try:
        pid = srv.start()
    except ServerError as e:
        res["errors"].append(f"start: {e}")
        log(f"{kind}: {e}")
        srv.stop()
        return res
    res["startup_s"] = round(time.time() - t_start, 1)
    rss = RssSampler(pid)
    rss.start()
    other = OtherLoad([pid])
    b = srv.bootstrap
    topic, e2e_topic = f"perf-p{parts}", f"e2e-p{parts}"
    to = args.timeout

    def phase(name, fn):
        """Runs fn() and records the server CPU it cost; a failure is recorded and the run goes on
        while the server is alive."""
        if not srv.alive():
            res["errors"].append(f"{name}: skipped, server exited with {srv.proc.returncode}")
            return None
        c0, t0 = tree_cpu_s(pid), time.time()
        try:
            out = fn()
        except (ToolError, subprocess.SubprocessError, OSError) as e:
            res["errors"].append(f"{name}: {e}")
            log(f"  {name} FAILED: {e}")
            out = None
        res[f"{name}_server_cpu_s"] = round(tree_cpu_s(pid) - c0, 2)
        res[f"{name}_wall_s"] = round(time.time() - t0, 1)
        if not srv.alive():
            res["errors"].append(f"{name}: server exited with {srv.proc.returncode} during the phase; "
                                 f"log tail:\n{tail(srv.log_path)}")
        return out

    def create(t):
        def fn():
            out, err = run_tool(args, run_dir, f"create-{t}", "org.apache.kafka.tools.TopicCommand",
                                ["--bootstrap-server", b, "--create", "--topic", t, "--partitions", str(parts),
                                 "--replication-factor", "1"], timeout=120)
            if f"Created topic {t}" not in out:
                raise ToolError(f"TopicCommand --create {t}: unexpected output {out.strip()!r} {err.strip()[-300:]!r}")
            desc, _ = run_tool(args, run_dir, f"describe-{t}", "org.apache.kafka.tools.TopicCommand",
                               ["--bootstrap-server", b, "--describe", "--topic", t], timeout=120)
            m = re.search(r"PartitionCount:\s*(\d+)", desc)
            if not m or int(m.group(1)) != parts:
                raise ToolError(f"topic {t} describes with {m and m.group(1)} partitions, created with {parts}: "
                                f"{desc.strip()[:300]!r}")
            return True
        return fn

    def produce():
        out, err = run_tool(args, run_dir, "producer", "org.apache.kafka.tools.ProducerPerformance",
                            ["--bootstrap-server", b, "--topic", topic, "--num-records", str(args.records),
                             "--record-size", str(args.record_size), "--throughput", "-1",
                             "--command-property", "acks=all",
                             "--command-property", f"compression.type={args.compression}"], timeout=to)
        r = parse_producer(out)
        note_problems(res, "produce", err)
        if r["records_sent"] != args.records:
            raise ToolError(f"ProducerPerformance acknowledged {r['records_sent']} of {args.records} records")
        return r

    def offsets():
        out, err = run_tool(args, run_dir, "offsets", "org.apache.kafka.tools.GetOffsetShell",
                            ["--bootstrap-server", b, "--topic", topic, "--time", "-1"], timeout=120)
        total, per = parse_offsets(out, topic)
        if len(per) != parts or total != args.records:
            raise ToolError(f"end offsets of {topic} add up to {total} over {len(per)} partitions "
                            f"(expected {args.records} over {parts}): {per}")
        return {"end_offsets_total": total, "end_offsets": per}

    def consume():
        out, err = run_tool(args, run_dir, "consumer", "org.apache.kafka.tools.ConsumerPerformance",
                            ["--bootstrap-server", b, "--topic", topic, "--num-records", str(args.records),
                             "--timeout", str(args.consumer_timeout_ms),
                             "--group", f"perf-consumer-{kind}-{parts}-{rep}"], timeout=to)
        r = parse_consumer(out)
        note_problems(res, "consume", err)
        if r["records"] != args.records:
            raise ToolError(f"ConsumerPerformance consumed {r['records']} of {args.records} records "
                            f"(stderr tail {err.strip()[-300:]!r})")
        return r

    def e2e():
        out, err = run_tool(args, run_dir, "e2e", "org.apache.kafka.tools.EndToEndLatency",
                            ["--bootstrap-server", b, "--topic", e2e_topic, "--num-records", str(args.e2e_records),
                             "--producer-acks", "all", "--record-size", str(args.record_size)], timeout=to)
        r = parse_e2e(out)
        note_problems(res, "e2e", err)
        return r

    try:
        phase("create", create(topic))
        phase("create_e2e", create(e2e_topic))
        pr = phase("produce", produce)
        if pr:
            res["produce"] = pr
            log(f"  produce: {pr['records_per_s']:,.0f} rec/s, {pr['mb_per_s']} MB/s, latency avg/p50/p99 "
                f"{pr['lat_avg_ms']}/{pr['lat_p50_ms']}/{pr['lat_p99_ms']} ms, server CPU {res['produce_server_cpu_s']} s")
        off = phase("offsets", offsets)
        if off:
            res["offsets"] = off
        cr = phase("consume", consume)
        if cr:
            res["consume"] = cr
            log(f"  consume: {cr['records_per_s']:,.0f} rec/s (fetch), {cr['records_per_s_total']:,.0f} rec/s incl. "
                f"group join {cr['rebalance_ms']} ms, server CPU {res['consume_server_cpu_s']} s")
        er = phase("e2e", e2e)
        if er:
            res["e2e"] = er
            log(f"  end-to-end: avg {er['avg_ms']} ms, p50 {er['p50_ms']} ms, p99 {er['p99_ms']} ms, "
                f"server CPU {res['e2e_server_cpu_s']} s")
    finally:
        res["server_cpu_total_s"] = round(tree_cpu_s(pid), 2) if srv.alive() else None
        res["peak_rss_mb"] = round(rss.stop(), 1)
        wall, busy = other.finish()
        srv.stop()
        res["wall_s"] = round(wall, 1)
        res["data_dir_bytes"] = dir_size(srv.data_dir)
        res["other_busy"] = [{"cpu_s": round(d, 1), "pid": p, "comm": c, "cmd": cmd} for d, p, c, cmd in busy]
        for e in res["errors"]:
            log(f"  ERROR {kind} p{parts} r{rep + 1}: {e}")
        if not args.keep_data:
            shutil.rmtree(srv.data_dir, ignore_errors=True)
    log(f"  peak RSS {res['peak_rss_mb']:.0f} MB, server CPU total {res['server_cpu_total_s']} s, "
        f"wall {res['wall_s']} s")
    return res


# ----------------------------------------------------------------------------------------------
# summary and table

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def rng(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else None


def summarize(runs):
    def g(section, key):
        return [r[section][key] for r in runs if section in r]
    return {
        "runs": len(runs),
        "failed_runs": sum(1 for r in runs if r["errors"]),
        "prod_rps": med(g("produce", "records_per_s")), "prod_rps_range": rng(g("produce", "records_per_s")),
        "prod_mbps": med(g("produce", "mb_per_s")),
        "prod_avg": med(g("produce", "lat_avg_ms")), "prod_p50": med(g("produce", "lat_p50_ms")),
        "prod_p99": med(g("produce", "lat_p99_ms")),
        "cons_rps": med(g("consume", "records_per_s")), "cons_rps_range": rng(g("consume", "records_per_s")),
        "cons_rps_total": med(g("consume", "records_per_s_total")),
        "cons_rebalance_ms": med(g("consume", "rebalance_ms")),
        "e2e_avg": med(g("e2e", "avg_ms")), "e2e_p50": med(g("e2e", "p50_ms")), "e2e_p99": med(g("e2e", "p99_ms")),
        "e2e_p999": med(g("e2e", "p999_ms")),
        "cpu_produce": med([r.get("produce_server_cpu_s") for r in runs if "produce" in r]),
        "cpu_consume": med([r.get("consume_server_cpu_s") for r in runs if "consume" in r]),
        "cpu_e2e": med([r.get("e2e_server_cpu_s") for r in runs if "e2e" in r]),
        "cpu_total": med([r.get("server_cpu_total_s") for r in runs]),
        "rss_mb": med([r.get("peak_rss_mb") for r in runs if "produce" in r]),
        "disk_bytes": med([r.get("data_dir_bytes") for r in runs if "produce" in r]),
        "startup_s": med([r.get("startup_s") for r in runs]),
    }


def fmt(x, digits=0):
    if x is None:
        return "n/a"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def fmt_range(m, r, digits=0):
    if m is None:
        return "n/a"
    if r is None or r[0] == r[1]:
        return fmt(m, digits)
    return f"{fmt(m, digits)} ({fmt(r[0], digits)}–{fmt(r[1], digits)})"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}×"


LABEL = {"kafka": "Kafka {v}", "strait-always": "strait, fsync always", "strait-never": "strait, fsync never",
         "strait-passthrough": "Kafka {v} through strait",
         "strait-prefixed": "Kafka {v} through strait, topic_prefix"}


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
    return f"strait at git {head} (plus any uncommitted changes), release binary built {built}"


def render(summ, runs, args, started, loadavg_start, loadavg_end, busy_notes):
    L = []
    L.append(f"## Kafka benchmark: Apache Kafka {args.kafka_version} vs strait ({started})")
    L.append("")
    L.append(f"Kafka's own tools (kafka-tools {args.kafka_version}, each in its own JVM with `{args.tool_heap}`), "
             f"against each server on 127.0.0.1: `ProducerPerformance` ({args.records:,} × {args.record_size}-byte records, "
             f"`--throughput -1`, `acks=all`, `compression.type={args.compression}`, producer defaults otherwise: "
             f"idempotent, linger.ms 5, batch.size 16384), "
             f"`ConsumerPerformance` (reads them back in a consumer group; rec/s is its fetch.nMsg.sec, "
             f"which leaves out the group join), `EndToEndLatency` ({args.e2e_records:,} sequential "
             f"{args.record_size}-byte produce(acks=all)→consume round trips; the tool reports percentiles in whole ms). "
             f"Topics created with `TopicCommand` with the partition count shown; `GetOffsetShell` checks the end "
             f"offsets add up to {args.records:,} after producing. A fresh server and data dir per run; medians of "
             f"{args.repeats} runs (min–max for throughput), servers interleaved run by run.")
    L.append("")
    L.append(f"- **Kafka {args.kafka_version}** (jars from Maven Central): KRaft, one node as broker+controller, "
             f"`java {args.kafka_heap}` with kafka-run-class.sh's G1 options, log4j2 at INFO to a file, the shipped "
             f"server.properties values, **default flush settings: no fsync per write** (the page cache; Kafka "
             f"relies on replication, here there is none), `group.initial.rebalance.delay.ms={args.rebalance_delay_ms}`.")
    L.append(f"- **strait**: {strait_build_info(args)}; embedded backend, `fsync: always` (acknowledged after an "
             f"fsync covering the write, group commit) or `fsync: never` (the page cache, like Kafka here); "
             f"`group_initial_rebalance_delay_ms={args.rebalance_delay_ms}`, RUST_LOG=warn.")
    if "strait-prefixed" in args.servers:
        L.append(f"- **… through strait, topic_prefix**: the same, with `backend.kafka.topic_prefix: {PREFIX}`: "
                 f"strait decodes every request and response naming topics (Produce and Fetch included), "
                 f"renames the topics and re-encodes them.")
    if "strait-passthrough" in args.servers:
        L.append(f"- **Kafka {args.kafka_version} through strait**: the same broker set-up, with strait "
                 f"(`backend.type: kafka`) in front: the tools connect to strait, which forwards their frames to the "
                 f"broker (Metadata rewritten to strait's ports). Its server CPU and RSS columns are strait's alone; "
                 f"its ratios compare the same tool going through strait with going to the broker directly.")
    L.append(f"- Machine: {os.cpu_count()} CPUs, {platform.platform()}; the tools, the server and anything "
             f"else running share the cores. Load average at start {loadavg_start}, at end {loadavg_end}.")
    if busy_notes:
        L.append("- **Also running during the runs** (other processes that used ≥1 CPU-s, summed over all runs; the "
                 "machine is shared, so the numbers are noisy): " + "; ".join(busy_notes) + ".")
    else:
        L.append("- No other process used ≥1 CPU-s during any run.")
    L.append("")
    L.append("| partitions | server | produce rec/s (min–max) | produce MB/s | produce latency avg / p50 / p99 ms "
             "| consume rec/s (min–max) | end-to-end avg / p50 / p99 ms | server CPU-s produce / consume / e2e "
             "| peak RSS MB | produce rate vs Kafka | consume rate vs Kafka | produce p99 vs Kafka "
             "| e2e p99 vs Kafka | RSS vs Kafka |")
    L.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for parts in args.partitions:
        base = summ.get(("kafka", parts))
        for kind in args.servers:
            s = summ.get((kind, parts))
            if not s:
                continue
            name = LABEL[kind].format(v=args.kafka_version)
            if s["failed_runs"]:
                name += f" ⚠ {s['failed_runs']}/{s['runs']} runs with errors"
            def vs(key):
                if kind == "kafka":
                    return "1.00×"
                return ratio(s[key], base and base[key])
            L.append("| " + " | ".join([
                str(parts), name,
                fmt_range(s["prod_rps"], s["prod_rps_range"]), fmt(s["prod_mbps"], 2),
                f"{fmt(s['prod_avg'], 1)} / {fmt(s['prod_p50'])} / {fmt(s['prod_p99'])}",
                fmt_range(s["cons_rps"], s["cons_rps_range"]),
                f"{fmt(s['e2e_avg'], 2)} / {fmt(s['e2e_p50'])} / {fmt(s['e2e_p99'])}",
                f"{fmt(s['cpu_produce'], 1)} / {fmt(s['cpu_consume'], 1)} / {fmt(s['cpu_e2e'], 1)}",
                fmt(s["rss_mb"]),
                vs("prod_rps"), vs("cons_rps"), vs("prod_p99"), vs("e2e_p99"), vs("rss_mb"),
            ]) + " |")
    L.append("")
    L.append("Rates: higher is better; latency, CPU and RSS: lower is better. Rate ratios are strait/Kafka "
             "(above 1 = strait faster), latency and RSS ratios strait/Kafka (below 1 = strait lower). Server CPU "
             "is utime+stime of the server's process tree during each tool's run (tool JVM start-up included in "
             "the wall time, not in the server CPU); peak RSS is VmHWM summed over the server's process tree, "
             "sampled every 0.25 s, over the whole run (Kafka's includes the JVM heap it touched, up to "
             f"`{args.kafka_heap}`).")
    extra = []
    for parts in args.partitions:
        for kind in args.servers:
            s = summ.get((kind, parts))
            if s and s["cons_rps_total"] is not None:
                extra.append(f"{LABEL[kind].format(v=args.kafka_version)}/{parts}p {fmt(s['cons_rps_total'])} rec/s "
                             f"(join {fmt(s['cons_rebalance_ms'])} ms)")
    if extra:
        L.append("Consume rate including the consumer-group join (ConsumerPerformance nMsg.sec): " + "; ".join(extra) + ".")
    disk = []
    for kind in args.servers:
        s = summ.get((kind, args.partitions[0]))
        if s and s["disk_bytes"]:
            disk.append(f"{LABEL[kind].format(v=args.kafka_version)} {s['disk_bytes'] / (args.records + args.e2e_records):.0f}")
    if disk:
        L.append(f"Data dir after a run (allocated, as du), bytes per {args.record_size}-byte record ({args.partitions[0]} partition(s)): "
                 + ", ".join(disk) + ". Server start-up to ready (s): " + ", ".join(
                     f"{LABEL[k].format(v=args.kafka_version)} {fmt(summ[(k, args.partitions[0])]['startup_s'], 1)}"
                     for k in args.servers if (k, args.partitions[0]) in summ) + ".")
    failures = [(r, e) for r in runs for e in r["errors"]]
    L.append("")
    if failures:
        L.append("### Failures")
        L.append("")
        for r, e in failures:
            first = e.strip().replace("\n", " ⏎ ")
            L.append(f"- {r['server']}, {r['partitions']} partition(s), run {r['repeat']}: {first[:1500]}")
        L.append("")
        L.append(f"Tool output and server logs of failed runs are kept under `{os.path.relpath(args.tmp_root, ROOT)}`.")
    else:
        L.append(f"No tool failed: every produce was fully acknowledged, end offsets matched, every consumer read "
                 f"{args.records:,} records and every end-to-end round trip got its record back.")
    warns = [(r, w) for r in runs for w in r["warnings"]]
    if warns:
        L.append("")
        L.append("Tool warnings (not failures; client-side WARN log lines such as retries):")
        for r, w in warns[:20]:
            L.append(f"- {r['server']}, {r['partitions']} partition(s), run {r['repeat']}: {w[:500]}")
        if len(warns) > 20:
            L.append(f"- … {len(warns) - 20} more in the JSON")
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="kafka,strait-always,strait-never,strait-passthrough",
                    help="comma-separated subset of " + ",".join(SERVERS))
    ap.add_argument("--partitions", default="1,8", help="comma-separated partition counts")
    ap.add_argument("--repeats", type=int, default=3, help="runs per server and partition count (medians)")
    ap.add_argument("--records", type=int, default=1_000_000, help="records for ProducerPerformance/ConsumerPerformance")
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--compression", default="none", choices=["none", "gzip", "snappy", "lz4", "zstd"],
                    help="the producer's compression.type for ProducerPerformance")
    ap.add_argument("--e2e-records", type=int, default=10_000, help="round trips for EndToEndLatency")
    ap.add_argument("--rebalance-delay-ms", type=int, default=0,
                    help="group.initial.rebalance.delay.ms for both servers (Kafka's shipped server.properties: 0)")
    ap.add_argument("--kafka-libs", default=None, help="Kafka jars (bench/kafka.sh passes it)")
    ap.add_argument("--kafka-version", default="?")
    ap.add_argument("--kafka-heap", default="-Xms512m -Xmx768m", help="broker JVM heap options")
    ap.add_argument("--tool-heap", default="-Xmx512m", help="tool JVM heap options (kafka-*-perf-test.sh: -Xmx512M)")
    ap.add_argument("--strait-bin", default=os.path.join(ROOT, "target", "release", "strait"))
    ap.add_argument("--strait-config", default=os.path.join(ROOT, "config", "strait.yaml"))
    ap.add_argument("--consumer-timeout-ms", type=int, default=60_000,
                    help="ConsumerPerformance --timeout: longest gap between records before it gives up")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per tool run before it is killed")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    ap.add_argument("--keep-data", action="store_true", help="keep data dirs and logs")
    ap.add_argument("--out", default=None, help="markdown output (default bench/results/kafka-latest.md)")
    args = ap.parse_args()
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in args.servers:
        if s not in SERVERS:
            sys.exit(f"unknown server {s}")
    args.strait_bin = os.path.abspath(args.strait_bin)
    args.strait_config = os.path.abspath(args.strait_config)
    args.partitions = [int(p) for p in args.partitions.split(",") if p.strip()]
    if not args.kafka_libs or not os.path.isdir(args.kafka_libs):
        sys.exit("--kafka-libs missing: run bench/kafka.sh, which installs the Kafka jars")

    if not args.no_build and any(s.startswith("strait") for s in args.servers):
        log("cargo build --release (strait)")
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    if any(s.startswith("strait") for s in args.servers) and not os.path.exists(args.strait_bin):
        sys.exit(f"missing {args.strait_bin}")

    os.makedirs(RESULTS, exist_ok=True)
    bench_tmp = os.path.join(CACHE, "bench-data")
    os.makedirs(bench_tmp, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix="kafka-run-", dir=bench_tmp)
    args.tmp_root = tmp_root
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open("/proc/loadavg") as f:
        loadavg_start = " ".join(f.read().split()[:3])
    log(f"run dir {tmp_root}; servers {args.servers}, partitions {args.partitions}, {args.repeats} repeats")

    runs = []
    for rep in range(args.repeats):
        for parts in args.partitions:
            for kind in args.servers:
                runs.append(one_run(kind, parts, rep, args, tmp_root))
    summ = {}
    for kind in args.servers:
        for parts in args.partitions:
            rs = [r for r in runs if r["server"] == kind and r["partitions"] == parts]
            if rs:
                summ[(kind, parts)] = summarize(rs)
    with open("/proc/loadavg") as f:
        loadavg_end = " ".join(f.read().split()[:3])
    busy = busy_summary([r["other_busy"] for r in runs])
    md = render(summ, runs, args, started, loadavg_start, loadavg_end, busy)
    out = args.out or os.path.join(RESULTS, "kafka-latest.md")
    with open(out, "w") as f:
        f.write(md)
    raw = {"started": started, "args": vars(args),
           "summary": [{"server": k, "partitions": p, **v} for (k, p), v in summ.items()], "runs": runs}
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(raw, f, indent=1)
    print(md)
    log(f"wrote {out}")
    failed = any(r["errors"] for r in runs)
    if not args.keep_data and not failed:
        shutil.rmtree(tmp_root, ignore_errors=True)
    elif failed:
        log(f"tool output and server logs kept in {tmp_root}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
