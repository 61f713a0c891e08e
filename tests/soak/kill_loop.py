"""kill -9 cycles under mixed load, counting what was acknowledged and then lost or duplicated.

One strait (config/strait.yaml, embedded backend, its default fsync policy) runs while:
- Kinesis writers (boto3 PutRecords, 2 threads) write uniquely tagged records;
- an idempotent Kafka producer and a plain one (librdkafka, acks=all, retries) write to topics;
- a Kafka group member reads the plain topic and commits synchronously every 300 records;
- an enhanced fan-out subscriber (SubscribeToShard) follows one shard, resubscribing after the
  last sequence number it saw whenever its stream breaks.
Each cycle waits 1.5-4 s of load, sends SIGKILL, starts strait again on the same data dir. At the
end every acknowledged record must be stored exactly once (plain Kafka retries may duplicate:
counted, allowed), every acknowledged commit must still be there (committed offsets never go
back), and the subscriber must have seen its shard's acknowledged records in order, none twice.

  tests/soak/kill_loop.py --cycles 3             # the test command's short form
  tests/soak/kill_loop.py --cycles 50 --json F   # the campaign (docs/reliability.md)
Needs the tests' venv (boto3, confluent-kafka): tests/soak/run.sh sets it up.
"""

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "interop", "python"))

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402

from conftest import StraitServer  # noqa: E402
from efo_helpers import register_consumer  # noqa: E402
from helpers import all_shards, create_stream, read_shard, unique  # noqa: E402
from kafka_helpers import confluent_conf, create_topic, read_topic_values, restart_tolerant_conf  # noqa: E402

PARTITIONS = 3
SHARDS = 4


class Tally:
    """What the clients were told, shared by their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.kinesis = []  # (shard, seq, data)
        self.idempotent = []
        self.plain = []
        self.failed = Counter()
        self.commits = {}  # partition -> highest acknowledged committed offset
        self.commit_regressions = []
        self.efo_seen = []  # (seq, data) on the followed shard, in arrival order
        self.efo_resubscribes = 0


def kinesis_writer(srv, stream, tag, tally, stop):
    client = srv.client(fresh=True, read_timeout=15)
    b = 0
    while not stop.is_set():
        entries = [(f"{tag}-k{i % 16}", f"{tag}-b{b}-r{i}".encode()) for i in range(50)]
        try:
            resp = client.put_records(StreamName=stream, Records=[{"PartitionKey": p, "Data": d} for p, d in entries])
        except Exception:
            return  # the server was killed; a new writer starts after the restart
        with tally.lock:
            for (_, data), r in zip(entries, resp["Records"]):
                if "ErrorCode" in r:
                    tally.failed["kinesis"] += 1
                else:
                    tally.kinesis.append((r["ShardId"], r["SequenceNumber"], data))
        b += 1


def kafka_producer(bootstrap, topic, idempotent, tally, stop):
    out = tally.idempotent if idempotent else tally.plain
    kind = "idempotent" if idempotent else "plain"

    def delivered(err, msg):
        with tally.lock:
            if err is None:
                out.append(msg.value())
            else:
                tally.failed[kind] += 1

    p = Producer(restart_tolerant_conf(bootstrap, **{"enable.idempotence": idempotent, "acks": "all"}))
    n = 0
    while not stop.is_set():
        try:
            p.produce(topic, key=f"{kind}-{n % 13}".encode(), value=f"{kind}-{n}".encode(), on_delivery=delivered)
            n += 1
        except BufferError:
            p.poll(0.05)
        p.poll(0)
        if n % 100 == 0:
            time.sleep(0.01)
    p.flush(120)


def group_member(bootstrap, topic, group, tally, stop):
    c = Consumer(
        confluent_conf(
            bootstrap,
            **{"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 0},
        )
    )
    c.subscribe([topic])
    positions, since_commit = {}, 0
    try:
        while not stop.is_set():
            for m in c.consume(200, 0.2):
                if m.error():
                    continue
                positions[m.partition()] = m.offset() + 1
                since_commit += 1
            if since_commit >= 300:
                offsets = [TopicPartition(topic, p, o) for p, o in positions.items()]
                try:
                    c.commit(offsets=offsets, asynchronous=False)
                except KafkaException:
                    continue  # strait is down: not acknowledged, tried again later
                with tally.lock:
                    for p, o in positions.items():
                        tally.commits[p] = max(tally.commits.get(p, 0), o)
                since_commit = 0
    finally:
        c.close()


def efo_subscriber(srv, consumer_arn, shard_id, tally, stop):
    after = None
    while not stop.is_set():
        try:
            client = srv.client(fresh=True, read_timeout=10)
            start = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after else {"Type": "TRIM_HORIZON"}
            resp = client.subscribe_to_shard(ConsumerARN=consumer_arn, ShardId=shard_id, StartingPosition=start)
            for event in resp["EventStream"]:
                records = event.get("SubscribeToShardEvent", {}).get("Records", [])
                with tally.lock:
                    for r in records:
                        tally.efo_seen.append((r["SequenceNumber"], r["Data"]))
                if records:
                    after = records[-1]["SequenceNumber"]
                if stop.is_set():
                    return
        except Exception:
            pass  # killed, refused while starting, or a resubscribe within 5 s: try again
        with tally.lock:
            tally.efo_resubscribes += 1
        time.sleep(0.5)


def check_commits(bootstrap, topic, group, tally, when):
    c = Consumer(confluent_conf(bootstrap, **{"group.id": group, "enable.auto.commit": False, "log_level": 0}))
    try:
        committed = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=20)
    finally:
        c.close()
    with tally.lock:
        for tp in committed:
            if tp.partition not in tally.commits:
                continue  # no commit acknowledged yet (the broker answers -1001)
            acked = tally.commits[tp.partition]
            if tp.offset < acked:
                tally.commit_regressions.append((when, tp.partition, acked, tp.offset))


def main():
    # A suite time limit sends SIGTERM: unwind, so `finally` stops strait and removes its data.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    srv = StraitServer()
    srv.start()
    tally = Tally()
    stop = threading.Event()
    efo_stop = threading.Event()
    started = time.time()
    try:
        c = srv.client()
        stream = create_stream(c, unique("soak"), SHARDS)
        consumer_arn = register_consumer(c, stream, "soak-efo")
        followed = all_shards(c, stream)[0]["ShardId"]
        idem_topic = create_topic(srv.kafka_bootstrap, unique("soak-idem"), PARTITIONS)
        plain_topic = create_topic(srv.kafka_bootstrap, unique("soak-plain"), PARTITIONS)
        group = unique("soak-group")
        lasting = [
            threading.Thread(target=kafka_producer, args=(srv.kafka_bootstrap, idem_topic, True, tally, stop)),
            threading.Thread(target=kafka_producer, args=(srv.kafka_bootstrap, plain_topic, False, tally, stop)),
            threading.Thread(target=group_member, args=(srv.kafka_bootstrap, plain_topic, group, tally, stop)),
        ]
        efo = threading.Thread(target=efo_subscriber, args=(srv, consumer_arn, followed, tally, efo_stop), daemon=True)
        efo.start()
        for t in lasting:
            t.daemon = True
            t.start()
        for cycle in range(args.cycles):
            writers_stop = threading.Event()
            writers = [
                threading.Thread(target=kinesis_writer, args=(srv, stream, f"c{cycle}w{w}", tally, writers_stop), daemon=True)
                for w in range(2)
            ]
            for w in writers:
                w.start()
            time.sleep(rng.uniform(1.5, 4.0))
            srv.kill9()
            writers_stop.set()
            for w in writers:
                w.join(30)
            time.sleep(rng.uniform(0.0, 0.5))
            srv.start()
            check_commits(srv.kafka_bootstrap, plain_topic, group, tally, f"after kill {cycle + 1}")
            with tally.lock:
                print(
                    f"cycle {cycle + 1}/{args.cycles}: acknowledged kinesis {len(tally.kinesis)}, "
                    f"idempotent {len(tally.idempotent)}, plain {len(tally.plain)}, commits {sum(tally.commits.values())}",
                    flush=True,
                )
        time.sleep(2)  # load on the restarted server, then the final tally
        stop.set()
        for t in lasting:
            t.join(150)
        check_commits(srv.kafka_bootstrap, plain_topic, group, tally, "at the end")

        client = srv.client(fresh=True)
        stored = Counter()
        order_ok = True
        for s in all_shards(client, stream):
            recs, _ = read_shard(client, stream, s["ShardId"], "TRIM_HORIZON", max_calls=20000)
            seqs = [int(r["SequenceNumber"]) for r in recs]
            order_ok &= all(a < b for a, b in zip(seqs, seqs[1:]))
            stored.update(r["Data"] for r in recs)
        acked_k = [d for _, _, d in tally.kinesis]
        idem_got, idem_end = read_topic_values(srv.kafka_bootstrap, idem_topic, PARTITIONS, timeout=120)
        plain_got, plain_end = read_topic_values(srv.kafka_bootstrap, plain_topic, PARTITIONS, timeout=120)
        idem_count, plain_count = Counter(idem_got), Counter(plain_got)
        followed_acked = [(seq, d) for shard, seq, d in tally.kinesis if shard == followed]
        # The subscriber goes on until it has its shard's acknowledged records, or 60 s.
        want = {int(s) for s, _ in followed_acked}
        deadline = time.time() + 60
        while time.time() < deadline:
            with tally.lock:
                if want <= {int(s) for s, _ in tally.efo_seen}:
                    break
            time.sleep(0.5)
        efo_stop.set()
        efo.join(30)
        efo_seqs = [int(s) for s, _ in tally.efo_seen]
        efo_dups = len(efo_seqs) - len(set(efo_seqs))
        efo_missing = len({int(s) for s, _ in followed_acked} - set(efo_seqs))
        efo_in_order = all(a < b for a, b in zip(efo_seqs, efo_seqs[1:]))

        figures = {
            "cycles": args.cycles,
            "seed": args.seed,
            "seconds": round(time.time() - started),
            "kinesis": {
                "acknowledged": len(acked_k),
                "lost": sum(1 for d in acked_k if stored[d] == 0),
                "duplicated": sum(1 for d in acked_k if stored[d] > 1),
                "failed_entries": tally.failed["kinesis"],
                "sequence_order_ok": order_ok,
            },
            "kafka_idempotent": {
                "acknowledged": len(tally.idempotent),
                "lost": sum(1 for v in tally.idempotent if idem_count[v] == 0),
                "duplicated": sum(1 for v, n in idem_count.items() if n > 1),
                "delivery_failures": tally.failed["idempotent"],
                "read": len(idem_got),
                "end_offsets": idem_end,
            },
            "kafka_plain": {
                "acknowledged": len(tally.plain),
                "lost": sum(1 for v in tally.plain if plain_count[v] == 0),
                "duplicated_by_retries": sum(n - 1 for n in plain_count.values() if n > 1),
                "delivery_failures": tally.failed["plain"],
                "read": len(plain_got),
                "end_offsets": plain_end,
            },
            "group_commits": {
                "acknowledged_offsets": sum(tally.commits.values()),
                "regressions": tally.commit_regressions,
            },
            "efo": {
                "shard": followed,
                "acknowledged_on_shard": len(followed_acked),
                "seen": len(efo_seqs),
                "missing": efo_missing,
                "duplicated": efo_dups,
                "in_order": efo_in_order,
                "resubscribes": tally.efo_resubscribes,
            },
        }
        print(json.dumps(figures, indent=1))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=1)
        panics = srv.new_panics()
        k, i, p, e = figures["kinesis"], figures["kafka_idempotent"], figures["kafka_plain"], figures["efo"]
        checks = [
            (k["lost"] == 0, f"Kinesis: {k['lost']} of {k['acknowledged']} acknowledged records lost"),
            (k["duplicated"] == 0, f"Kinesis: {k['duplicated']} acknowledged records stored twice"),
            (k["sequence_order_ok"], "Kinesis: sequence numbers not increasing within a shard"),
            (i["lost"] == 0, f"Kafka idempotent: {i['lost']} of {i['acknowledged']} acknowledged records lost"),
            (i["duplicated"] == 0, f"Kafka idempotent: {i['duplicated']} records stored twice"),
            (i["delivery_failures"] == 0, f"Kafka idempotent: {i['delivery_failures']} deliveries failed"),
            (p["lost"] == 0, f"Kafka plain: {p['lost']} of {p['acknowledged']} acknowledged records lost"),
            (not figures["group_commits"]["regressions"], f"group commits went back: {tally.commit_regressions[:3]}"),
            (e["missing"] == 0, f"EFO: {e['missing']} acknowledged records of {followed} never delivered"),
            (e["duplicated"] == 0 and e["in_order"], "EFO: a record delivered twice or out of order after a resubscribe"),
            (len(acked_k) > 0 and len(tally.idempotent) > 0 and sum(tally.commits.values()) > 0, "no load was acknowledged"),
            (not panics, f"strait panicked: {panics[:3]}"),
        ]
        bad = [why for ok, why in checks if not ok]
        for why in bad:
            print(f"FAIL {why}")
        if not bad:
            print(
                f"PASS {args.cycles} kill -9 cycles under mixed load: {len(acked_k)} Kinesis, {len(tally.idempotent)} idempotent "
                f"and {len(tally.plain)} plain Kafka records acknowledged, 0 lost, 0 duplicated "
                f"({p['duplicated_by_retries']} plain-producer retry duplicates), commits never went back, "
                f"EFO saw its shard's {len(followed_acked)} records once each, in order"
            )
        return 1 if bad else 0
    finally:
        stop.set()
        efo_stop.set()
        srv.kill9()
        srv.cleanup()


if __name__ == "__main__":
    sys.exit(main())
