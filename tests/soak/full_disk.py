"""A full disk: strait's data directory on a 24 MiB tmpfs, filled by Kinesis and Kafka writers.

- Once the disk is full, writes are refused with a retriable error: Kinesis PutRecords entries
  (or the whole call) InternalFailure / ServiceUnavailable, Kafka Produce KAFKA_STORAGE_ERROR (56).
- Reads keep working: every acknowledged record reads back, on both protocols.
- strait does not panic or exit, and other requests (ListStreams, Metadata) are answered.
- When space returns (the tmpfs grown to 128 MiB), writes are taken again on both protocols,
  and the records before and after read back in order, with no damaged batch.
Needs root for mount(8) (CI runs as root); prints FAIL with the reason otherwise.

  tests/soak/full_disk.py     (run by tests/soak/run.sh)
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "interop", "python"))

import kafka_raw as raw  # noqa: E402
from conftest import StraitServer  # noqa: E402
from helpers import all_shards, create_stream, read_shard, unique  # noqa: E402
from kafka_helpers import confluent_conf, create_topic  # noqa: E402

RETRIABLE_KINESIS = {"InternalFailure", "ServiceUnavailable", "ServiceUnavailableException"}
KAFKA_STORAGE_ERROR = 56
RECORD = 10_000


def main():
    # A suite time limit sends SIGTERM: unwind, so `finally` unmounts the tmpfs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    failures = []

    def check(ok, what):
        print(("PASS " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    mnt = tempfile.mkdtemp(prefix="strait-full-disk-")
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt], capture_output=True, text=True)
    if m.returncode != 0:
        print(f"FAIL full disk: cannot mount a tmpfs (root is needed): {m.stderr.strip()}")
        return 1
    srv = StraitServer()
    srv.data_dir = os.path.join(mnt, "data")
    os.makedirs(srv.data_dir)
    srv.env["STRAIT_DATA_DIR"] = srv.data_dir
    try:
        srv.start()
        c = srv.client(fresh=True, read_timeout=20)
        stream = create_stream(c, unique("full"), 2)
        topic = create_topic(srv.kafka_bootstrap, unique("full"), 2)

        # Kinesis: fill the disk.
        acked, refusals, n = [], set(), 0
        deadline = time.time() + 120
        while time.time() < deadline and not refusals:
            entries = [{"PartitionKey": f"k{n + i}", "Data": f"{n + i:08d}".encode() + b"." * RECORD} for i in range(50)]
            n += 50
            try:
                resp = c.put_records(StreamName=stream, Records=entries)
            except Exception as e:  # a whole-call refusal
                code = getattr(e, "response", {}).get("Error", {}).get("Code", repr(e))
                refusals.add(code)
                continue
            for e, r in zip(entries, resp["Records"]):
                if "ErrorCode" in r:
                    refusals.add(r["ErrorCode"])
                else:
                    acked.append((r["ShardId"], r["SequenceNumber"], e["Data"]))
        check(bool(refusals) and refusals <= RETRIABLE_KINESIS,
              f"Kinesis writes on a full disk are refused with a retriable error: {sorted(refusals)} after {len(acked)} acknowledged")

        # Kafka: a Produce on the full disk.
        conn = raw.RawConn(srv.kafka_bootstrap)
        batch = raw.record_batch([(b"k", b"v" * RECORD)])
        r = raw.parse_produce_v7(conn.request(raw.produce_v7(1, {topic: {0: batch}}), 1))
        check(r[(topic, 0)]["error"] == KAFKA_STORAGE_ERROR,
              f"a Kafka Produce on a full disk gets KAFKA_STORAGE_ERROR (56): got {r[(topic, 0)]['error']}")

        # Reads and other requests keep working.
        check(stream in c.list_streams()["StreamNames"], "ListStreams answers on a full disk")
        got = {}
        for s in all_shards(c, stream):
            recs, _ = read_shard(c, stream, s["ShardId"], "TRIM_HORIZON", max_calls=5000)
            for rec in recs:
                got[rec["Data"]] = (s["ShardId"], rec["SequenceNumber"])
        lost = [d[:8] for _, _, d in acked if d not in got]
        check(not lost, f"every acknowledged Kinesis record reads back on a full disk ({len(acked)} acknowledged, {len(lost)} missing)")

        # Space returns.
        g = subprocess.run(["mount", "-o", "remount,size=128m", mnt], capture_output=True, text=True)
        check(g.returncode == 0, f"the tmpfs grows to 128 MiB {g.stderr.strip()}")
        after_ok, last_error = False, None
        deadline = time.time() + 30
        while time.time() < deadline and not after_ok:
            try:
                resp = c.put_records(StreamName=stream, Records=[{"PartitionKey": "after", "Data": b"after-space"}])
                after_ok = resp["FailedRecordCount"] == 0
                last_error = resp["Records"][0].get("ErrorCode")
            except Exception as e:
                last_error = repr(e)
            if not after_ok:
                time.sleep(0.5)
        check(after_ok, f"Kinesis writes are taken again once space returns (last error {last_error})")
        code = None
        deadline = time.time() + 30
        while time.time() < deadline:
            r = raw.parse_produce_v7(conn.request(raw.produce_v7(2, {topic: {0: batch}}), 2))
            code = r[(topic, 0)]["error"]
            if code == 0:
                break
            time.sleep(0.5)
        check(code == 0, f"a Kafka Produce is taken again once space returns (error {code})")

        # Everything reads back in order, nothing damaged: GetRecords from the start and a
        # Kafka consumer over the topic.
        read_back, in_order = set(), True
        for s in all_shards(c, stream):
            recs, _ = read_shard(c, stream, s["ShardId"], "TRIM_HORIZON", max_calls=5000)
            seqs = [int(x["SequenceNumber"]) for x in recs]
            in_order &= all(a < b for a, b in zip(seqs, seqs[1:]))
            read_back.update(x["Data"] for x in recs)
        want = {d for _, _, d in acked} | {b"after-space"}
        missing = len(want - read_back)
        check(in_order and not missing,
              f"every acknowledged record, before the disk filled and after, reads back in order ({missing} of {len(want)} missing)")
        from confluent_kafka import Consumer, TopicPartition

        cons = Consumer(confluent_conf(srv.kafka_bootstrap, **{"group.id": unique("full"), "enable.auto.commit": False}))
        cons.assign([TopicPartition(topic, 0, 0)])
        msgs, errors = [], []
        deadline = time.time() + 20
        while time.time() < deadline and not msgs:
            for msg in cons.consume(100, 0.5):
                (errors if msg.error() else msgs).append(msg)
        cons.close()
        check(len(msgs) == 1 and not errors, f"the topic holds the one Produce taken after the disk had room ({len(msgs)} read, errors {errors[:1]})")
        panics = srv.new_panics()
        check(srv.running() and not panics, f"strait kept running, no panic {panics[:2]}")
    finally:
        srv.kill9()
        subprocess.run(["umount", mnt])
        srv.cleanup()
        os.rmdir(mnt)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
