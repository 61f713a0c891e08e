"""Leader changes behind strait: a 3-node Kafka cluster (KAFKA_CLUSTER_DIR), strait's Kafka
backend in front of it (STRAIT_KAFKA). An idempotent producer and a consumer group go through
strait while the leader of partition 0 is killed with SIGKILL and later restarted. Last, a
Kinesis PutRecord (STRAIT_ENDPOINT) that strait retries (a replica down, min.insync.replicas 3)
while its topic is deleted and made again must not land in the new topic.

Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero if any failed.
"""

import faulthandler
import os
import signal
import subprocess
import threading
import time
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from harness import check, finish, require, wait_for

STRAIT = os.environ["STRAIT_KAFKA"]
CLUSTER_DIR = os.environ["KAFKA_CLUSTER_DIR"]
LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "kafka-broker.sh")
TOPIC = f"lc-{uuid.uuid4().hex[:8]}"
PARTITIONS = 6


admin = AdminClient({"bootstrap.servers": STRAIT})


def leaders():
    md = admin.list_topics(TOPIC, timeout=10)
    return {p: m.leader for p, m in md.topics[TOPIC].partitions.items()}


def three_brokers_at_strait_ports():
    md = admin.list_topics(timeout=15)
    host, port = STRAIT.rsplit(":", 1)
    got = {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()}
    want = {i: f"{host}:{int(port) + 1 + i}" for i in (1, 2, 3)}
    require(got == want, f"brokers {got}, want {want}")


def topic_spread_over_three_leaders():
    fs = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=3)])
    fs[TOPIC].result(30)
    wait_for(lambda: len(set(leaders().values()) - {-1}) == 3, 30, "leaders on all three nodes")


state = {"acked": [], "errors": [], "sent": 0, "killed": None, "moved": None}


def produce_through_a_leader_kill():
    p = Producer({"bootstrap.servers": STRAIT, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 2, "message.timeout.ms": 120000, "log_level": 3})
    stop = threading.Event()

    def done(err, msg):
        if err:
            state["errors"].append(str(err))
        else:
            state["acked"].append(msg.value())

    def load():
        i = 0
        while not stop.is_set():
            try:
                p.produce(TOPIC, key=f"k{i % 97}".encode(), value=f"r{i}".encode(), on_delivery=done)
                i += 1
                state["sent"] = i
            except BufferError:
                pass
            p.poll(0.001 if i % 100 else 0.01)
        p.flush(150)
    t = threading.Thread(target=load)
    t.start()
    try:
        kill_and_restart_under_load()
    finally:
        stop.set()
        t.join(180)
    require(not state["errors"], f"{len(state['errors'])} delivery errors, e.g. {state['errors'][:3]}")
    require(len(state["acked"]) == state["sent"], f"{state['sent']} sent, {len(state['acked'])} acknowledged")
    print(f"  # partition 0 moved from node {state['killed']} to node {state['moved']}; "
          f"{len(state['acked'])} records acknowledged", flush=True)


def kill_and_restart_under_load():
    wait_for(lambda: len(state["acked"]) > 3000, 30, "3,000 acknowledged records")
    found = {}
    wait_for(lambda: found.setdefault("leader", leaders()[0]) is not None, 30, "partition 0's leader")
    victim = found["leader"]
    state["killed"] = victim
    print(f"  # {len(state['acked'])} acknowledged; killing node {victim}, leader of partition 0", flush=True)
    subprocess.run(["pkill", "-9", "-f", f"kafka.Kafka {CLUSTER_DIR}/node-{victim}.properties"], check=False)
    wait_for(lambda: leaders().get(0) not in (victim, -1), 60, f"partition 0 to leave node {victim}")
    wait_for(lambda: state.__setitem__("moved", leaders()[0]) is None, 30, "the new leader")
    before = len(state["acked"])
    wait_for(lambda: len(state["acked"]) > before + 3000, 60, "3,000 more acknowledged after the move")
    out = subprocess.run(["bash", "-c", f'source "{LIB}"; KAFKA_CLUSTER_DIR="{CLUSTER_DIR}"; kafka_node_start {victim}'],
                         capture_output=True, text=True, timeout=180)
    require(out.returncode == 0, f"restart of node {victim}: {out.stderr[-400:]}")
    before = len(state["acked"])
    wait_for(lambda: len(state["acked"]) > before + 2000, 60, "2,000 more acknowledged after the restart")


def a_group_through_strait_reads_every_acknowledged_record_once():
    c = Consumer({"bootstrap.servers": STRAIT, "group.id": f"lc-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 3,
                  "isolation.level": "read_committed"})
    c.subscribe([TOPIC])
    want = set(state["acked"])
    seen, dup = set(), 0
    deadline = time.time() + 90
    while len(seen) < len(want) and time.time() < deadline:
        for m in c.consume(1000, 0.5):
            if m.error():
                continue
            v = m.value()
            if v in seen:
                dup += 1
            seen.add(v)
    c.commit(asynchronous=False)
    c.close()
    missing = want - seen
    require(not missing, f"{len(missing)} acknowledged records missing, e.g. {sorted(missing)[:3]}")
    require(dup == 0, f"{dup} duplicates")


def a_put_retried_across_delete_and_recreate_stays_out_of_the_new_topic():
    kinesis = boto3.client("kinesis", endpoint_url=os.environ["STRAIT_ENDPOINT"], region_name="us-east-1",
                           aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                           # One attempt: a client's own retry would rightly go to the new topic.
                           config=Config(retries={"total_max_attempts": 1}, read_timeout=120))
    direct = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"]})
    name = f"lc-recreate-{uuid.uuid4().hex[:8]}"
    direct.create_topics([NewTopic(name, num_partitions=1, replication_factor=3,
                                   config={"min.insync.replicas": "3"})])[name].result(30)
    wait_for(lambda: kinesis.describe_stream_summary(StreamName=name), 30, "strait to adopt the topic")
    part = direct.list_topics(name, timeout=10).topics[name].partitions[0]
    victim = next(r for r in part.replicas if r != part.leader)
    subprocess.run(["pkill", "-9", "-f", f"kafka.Kafka {CLUSTER_DIR}/node-{victim}.properties"], check=False)
    try:
        # Once the controller fences the node, every acks=all write is NOT_ENOUGH_REPLICAS,
        # which strait retries.
        wait_for(lambda: len(direct.list_topics(name, timeout=10).topics[name].partitions[0].isrs) == 2,
                 60, f"node {victim} to leave the in-sync replicas")
        out = {}

        def put():
            try:
                out["ok"] = kinesis.put_record(StreamName=name, Data=b"old-stream", PartitionKey="k")["SequenceNumber"]
            except ClientError as e:
                out["error"] = e.response["Error"]["Code"]
        t = threading.Thread(target=put)
        t.start()
        time.sleep(2)
        require(t.is_alive(), f"the put did not wait for the in-sync replicas: {out}")
        direct.delete_topics([name])[name].result(30)
        wait_for(lambda: name not in direct.list_topics(timeout=10).topics, 30, "the topic to go")
        for _ in range(40):
            try:
                direct.create_topics([NewTopic(name, num_partitions=1, replication_factor=2,
                                               config={"min.insync.replicas": "1"})])[name].result(30)
                break
            except Exception:
                time.sleep(0.5)  # the cluster may still be removing the old topic
        t.join(90)
        require(not t.is_alive(), "the put never answered")
        c = Consumer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"], "group.id": f"lc-{uuid.uuid4().hex[:6]}",
                      "enable.auto.commit": False, "log_level": 3})
        c.assign([TopicPartition(name, 0, 0)])
        values, deadline = [], time.time() + 5
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                values.append(m.value())
        c.close()
        require(values == [], f"the new topic holds the old stream's record: {values} (put answered {out})")
        require("error" in out, f"the put was acknowledged yet is in neither topic: {out}")
        print(f"  # the put answered {out['error']}; the new topic is empty", flush=True)
    finally:
        subprocess.run(["bash", "-c", f'source "{LIB}"; KAFKA_CLUSTER_DIR="{CLUSTER_DIR}"; kafka_node_start {victim}'],
                       capture_output=True, text=True, timeout=180)


if __name__ == "__main__":
    # A hung run can be asked where it is (kill -USR1 <pid>); past 8 minutes it prints every
    # thread's stack and exits, so a hang is a failure with a trace rather than a stuck suite.
    faulthandler.register(signal.SIGUSR1)
    faulthandler.dump_traceback_later(480, exit=True)
    check("Metadata through strait lists the three brokers at strait's ports", three_brokers_at_strait_ports)
    check(f"a {PARTITIONS}-partition, replication-3 topic has leaders on all three nodes", topic_spread_over_three_leaders)
    check("an idempotent producer through strait keeps going while partition 0's leader is killed (-9) "
          "and restarted; nothing fails", produce_through_a_leader_kill)
    check("a consumer group through strait reads every acknowledged record exactly once",
          a_group_through_strait_reads_every_acknowledged_record_once)
    check("a Kinesis PutRecord strait retries while its topic is deleted and made again is not written "
          "to the new topic", a_put_retried_across_delete_and_recreate_stays_out_of_the_new_topic)
    finish()
