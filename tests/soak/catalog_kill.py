"""kill -9 in the middle of catalog changes: CreateStream, UpdateShardCount and DeleteStream.

Each cycle starts one change (on a fresh or an existing stream) and kills strait with SIGKILL
0-12 ms after sending it, then starts strait again. After every restart the catalog must be
whole, never half written:
- every stream ListStreams names is ACTIVE (UpdateShardCount may still show UPDATING briefly) and
  its open shards cover the hash key space exactly once, with no gap and no overlap;
- a change that was acknowledged before the kill is there (a created stream exists, a deleted
  one is gone, a resharded one has its new open shard count);
- each stream takes a PutRecord and reads it back, and Kafka Metadata lists it with one
  partition per shard;
- strait starts every time and never panics.

  tests/soak/catalog_kill.py --cycles 10     # the test command's short form
  tests/soak/catalog_kill.py --cycles 50     # the campaign (docs/reliability.md)
"""

import argparse
import os
import random
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "interop", "python"))

from confluent_kafka.admin import AdminClient  # noqa: E402

from conftest import StraitServer  # noqa: E402
from helpers import MAX_HASH, all_shards, is_open, shard_range, unique  # noqa: E402


def check_catalog(srv, cycle, expect):
    """Problems found in the catalog after a restart; `expect` maps stream -> what was
    acknowledged ('exists', 'gone', or an open shard count)."""
    problems = []
    c = srv.client(fresh=True, read_timeout=20)
    names = c.list_streams()["StreamNames"]
    admin = AdminClient({"bootstrap.servers": srv.kafka_bootstrap, "broker.address.family": "v4"})
    topics = admin.list_topics(timeout=10).topics
    for name in names:
        status = None
        for _ in range(50):
            status = c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
            if status == "ACTIVE":
                break
            time.sleep(0.1)
        if status != "ACTIVE":
            problems.append(f"{name} is {status} 5 s after the restart")
            continue
        shards = all_shards(c, name)
        open_ranges = sorted(shard_range(s) for s in shards if is_open(s))
        at = 0
        for lo, hi in open_ranges:
            if lo != at:
                problems.append(f"{name}: open shards leave a gap or overlap at {at} (next starts at {lo})")
                break
            at = hi + 1
        if at != MAX_HASH + 1:
            problems.append(f"{name}: open shards end at {at - 1}, not 2^128-1")
        w = c.put_record(StreamName=name, PartitionKey=f"after-{cycle}", Data=b"after")
        it = c.get_shard_iterator(
            StreamName=name, ShardId=w["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=w["SequenceNumber"],
        )["ShardIterator"]
        recs = c.get_records(ShardIterator=it)["Records"]
        if not recs or recs[0]["SequenceNumber"] != w["SequenceNumber"]:
            problems.append(f"{name}: a PutRecord after the restart does not read back")
        t = topics.get(name)
        if t is None or len(t.partitions) != len(shards):
            problems.append(f"{name}: Kafka Metadata shows {None if t is None else len(t.partitions)} partitions for {len(shards)} shards")
        want = expect.get(name)
        if isinstance(want, int) and len(open_ranges) != want:
            problems.append(f"{name}: {len(open_ranges)} open shards after an acknowledged UpdateShardCount to {want}")
    for name, want in expect.items():
        if want == "gone" and name in names:
            problems.append(f"{name} is back after an acknowledged DeleteStream")
        if want != "gone" and name not in names:
            problems.append(f"{name} is missing after an acknowledged CreateStream")
    return problems


def main():
    # A suite time limit sends SIGTERM: unwind, so `finally` stops strait and removes its data.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    srv = StraitServer()
    srv.start()
    expect = {}  # what was acknowledged
    counts = {"CreateStream": 0, "UpdateShardCount": 0, "DeleteStream": 0, "acknowledged": 0}
    problems = []
    try:
        for cycle in range(args.cycles):
            c = srv.client(fresh=True, read_timeout=20)
            live = [n for n, w in expect.items() if w != "gone"]
            op = rng.choice(["CreateStream"] * 2 + (["UpdateShardCount", "DeleteStream"] if live else []))
            counts[op] += 1
            # Every choice is made here, before the request goes out, so the seed reproduces a
            # run and the kill lands on the change itself, not on a lookup before it.
            if op == "CreateStream":
                name, arg = unique("cat"), rng.randint(1, 8)
            else:
                name = rng.choice(live)
                now = c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"]
                arg = rng.choice([now * 2] * (now < 16) + [(now + 1) // 2] * (now > 1))
            done = {"name": name}

            def run():
                try:
                    if op == "CreateStream":
                        c.create_stream(StreamName=name, ShardCount=arg)
                        done["ack"] = "exists"
                    elif op == "UpdateShardCount":
                        c.update_shard_count(StreamName=name, TargetShardCount=arg, ScalingType="UNIFORM_SCALING")
                        done["ack"] = arg
                    else:
                        c.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
                        done["ack"] = "gone"
                except Exception as e:  # killed under it
                    done["error"] = repr(e)

            t = threading.Thread(target=run, daemon=True)
            t.start()
            time.sleep(rng.uniform(0.0, 0.012))
            srv.kill9()
            t.join(30)
            if "ack" in done:
                expect[done["name"]] = done["ack"]
                counts["acknowledged"] += 1
            else:
                expect.pop(name, None)  # not acknowledged: either outcome is whole
            srv.start()
            found = check_catalog(srv, cycle, expect)
            # From here on, expect what is: a change that was not acknowledged may or may not
            # have happened, and either is whole. An acknowledged shard count stays expected
            # until another change to the stream.
            names = set(srv.client(fresh=True).list_streams()["StreamNames"])
            expect = {
                n: ("gone" if n not in names else expect[n] if isinstance(expect.get(n), int) else "exists")
                for n in set(expect) | names
            }
            for p in found:
                print(f"#   cycle {cycle + 1} ({op}): {p}")
            problems += found
        panics = srv.new_panics()
        if panics:
            problems.append(f"strait panicked: {panics[:2]}")
    finally:
        srv.kill9()
        srv.cleanup()
    summary = (
        f"{args.cycles} kill -9 cycles during catalog changes (CreateStream {counts['CreateStream']}, "
        f"UpdateShardCount {counts['UpdateShardCount']}, DeleteStream {counts['DeleteStream']}; "
        f"{counts['acknowledged']} acknowledged before the kill; seed {args.seed})"
    )
    if problems:
        print(f"FAIL {summary}: {len(problems)} problems, first: {problems[0]}")
        return 1
    print(f"PASS {summary}: the catalog was whole after every restart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
