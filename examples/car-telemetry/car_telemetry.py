"""The car-telemetry example: one strait, Kinesis and Kafka clients on the same streams.

  cars ──PutRecord (carId = partition key)──▶ car-raw-events ──enhanced fan-out──▶ dashboard
                                                   │
                                  Kafka group "cleaner" (two members)
                                                   │
                     processed-events ◀────────────┴────────────▶ notifications (speeding)
                                                                        │
                                                      Kafka group "notifier"

Cars send location updates as an API Gateway integration would, one PutRecord per update. The
cleaner drops impossible readings, writes the rest to processed-events and a notification for
every update over the speed limit. At the end it checks, car by car, that each stream holds that
car's updates complete and in the order the car sent them, and prints one line per car.

  python car_telemetry.py --kinesis http://127.0.0.1:4567 --kafka 127.0.0.1:9092
Exit status 1 if any check fails.
"""

import argparse
import json
import random
import sys
import threading
import time
import uuid

import boto3
from botocore.config import Config
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

SPEED_LIMIT = 120


def kinesis_client(endpoint):
    # Any keys: strait (like the emulators) accepts any signature unless authentication is on.
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="car-example", aws_secret_access_key="car-example",
                        config=Config(retries={"max_attempts": 10, "mode": "standard"}))


def create_streams(k, kafka, run):
    raw = f"car-raw-events-{run}"
    processed, notifications = f"processed-events-{run}", f"notifications-{run}"
    k.create_stream(StreamName=raw, ShardCount=4)  # Kinesis-made: keys routed by MD5 ranges
    k.get_waiter("stream_exists").wait(StreamName=raw, WaiterConfig={"Delay": 0.2})
    admin = AdminClient({"bootstrap.servers": kafka})
    topics = [NewTopic(t, num_partitions=4, replication_factor=1) for t in (processed, notifications)]
    for f in admin.create_topics(topics).values():  # Kafka-made: keys routed by murmur2
        f.result(30)
    return raw, processed, notifications


class Dashboard:
    """Reads car-raw-events with enhanced fan-out: one subscription per shard, renewed with the
    continuation sequence number when strait ends it (every 5 minutes, as Kinesis does)."""

    def __init__(self, k, stream):
        arn = k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
        consumer = k.register_stream_consumer(StreamARN=arn, ConsumerName="dashboard")["Consumer"]
        while k.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])[
                "ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
            time.sleep(0.1)
        self.k, self.arn, self.updates, self.lock = k, consumer["ConsumerARN"], [], threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.read, args=(s["ShardId"],), daemon=True)
                        for s in k.list_shards(StreamName=stream)["Shards"]]
        for t in self.threads:
            t.start()

    def read(self, shard):
        position = {"Type": "TRIM_HORIZON"}
        while not self.stop.is_set():
            events = self.k.subscribe_to_shard(ConsumerARN=self.arn, ShardId=shard,
                                               StartingPosition=position)["EventStream"]
            for e in events:
                ev = e.get("SubscribeToShardEvent")
                if ev is None:
                    continue
                with self.lock:
                    self.updates.extend(json.loads(r["Data"]) for r in ev["Records"])
                position = {"Type": "AFTER_SEQUENCE_NUMBER",
                            "SequenceNumber": ev["ContinuationSequenceNumber"]}
                if self.stop.is_set():
                    break

    def close(self):
        self.stop.set()


def readings(car_id, updates):
    """A car's updates, the same on every call: every 10th is an impossible reading."""
    rnd = random.Random(car_id)
    lat, lon = 52.5 + rnd.random(), 13.4 + rnd.random()
    return [{"carId": car_id, "seq": seq, "lat": lat + seq * 1e-4, "lon": lon,
             "speed": -1 if seq % 10 == 9 else rnd.randint(40, 160)} for seq in range(updates)]


def drive_cars(k, stream, cars, updates):
    """Each car sends its updates in order, one PutRecord each (as an API Gateway integration
    does); cars run side by side."""
    def car(car_id):
        for body in readings(car_id, updates):
            k.put_record(StreamName=stream, PartitionKey=car_id, Data=json.dumps(body).encode())
    threads = [threading.Thread(target=car, args=(f"car-{i:02d}",)) for i in range(cars)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Service(threading.Thread):
    """A Kafka consumer-group member: handle() each record, commit after each batch."""

    def __init__(self, kafka, group, topic, handle, name):
        super().__init__(daemon=True, name=name)
        self.consumer = Consumer({"bootstrap.servers": kafka, "group.id": group, "client.id": name,
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.consumer.subscribe([topic])
        self.handle, self.stop, self.assigned = handle, threading.Event(), False

    def run(self):
        while not self.stop.is_set():
            batch = self.consumer.consume(num_messages=100, timeout=0.2)
            self.assigned = self.assigned or bool(self.consumer.assignment())
            records = [m for m in batch if not m.error()]
            for m in records:
                self.handle(m)
            if records:
                self.after_batch()
                self.consumer.commit(asynchronous=False)
        self.consumer.close()

    def after_batch(self):
        pass


def cleaner(kafka, raw, processed, notifications, name):
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True,
                         "partitioner": "murmur2_random"})

    def handle(m):
        update = json.loads(m.value())
        if update["speed"] < 0:
            return  # an impossible reading: dropped
        producer.produce(processed, m.value(), key=m.key())
        if update["speed"] > SPEED_LIMIT:
            note = {"carId": update["carId"], "seq": update["seq"], "speed": update["speed"]}
            producer.produce(notifications, json.dumps(note).encode(), key=m.key())

    s = Service(kafka, "cleaner", raw, handle, name)
    s.after_batch = lambda: producer.flush(30)  # written before the batch is committed
    return s


def read_all(kafka, topic, want, timeout=60):
    c = Consumer({"bootstrap.servers": kafka, "group.id": f"check-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out, deadline = [], time.time() + timeout
    while len(out) < want and time.time() < deadline:
        out.extend(json.loads(m.value()) for m in c.consume(500, 0.5) if not m.error())
    c.close()
    return out


def in_order(updates, car, expected):
    """The car's updates in arrival order: complete and in the order sent. Records a service
    read again after a restart (at-least-once) are counted, not failed."""
    seqs = [u["seq"] for u in updates if u["carId"] == car]
    first, again = [], 0
    for s in seqs:
        if s in first:
            again += 1
        else:
            first.append(s)
    return first == expected, len(first), again


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinesis", default="http://127.0.0.1:4567")
    ap.add_argument("--kafka", default="127.0.0.1:9092")
    ap.add_argument("--cars", type=int, default=20)
    ap.add_argument("--updates", type=int, default=50)
    a = ap.parse_args()
    run = uuid.uuid4().hex[:6]
    k = kinesis_client(a.kinesis)
    raw, processed, notifications = create_streams(k, a.kafka, run)
    print(f"streams: {raw} (Kinesis), {processed} and {notifications} (Kafka)")

    dashboard = Dashboard(k, raw)
    cleaners = [cleaner(a.kafka, raw, processed, notifications, f"cleaner-{i}") for i in range(2)]
    notified = []
    notifier = Service(a.kafka, "notifier", notifications, lambda m: notified.append(json.loads(m.value())),
                       "notifier")
    services = cleaners + [notifier]
    for s in services:
        s.start()
    deadline = time.time() + 60
    while not all(s.assigned for s in services) and time.time() < deadline:
        time.sleep(0.1)

    t0 = time.time()
    drive_cars(k, raw, a.cars, a.updates)
    print(f"{a.cars} cars sent {a.cars * a.updates} updates in {time.time() - t0:.1f} s")

    cars = [f"car-{i:02d}" for i in range(a.cars)]
    made = {c: readings(c, a.updates) for c in cars}
    sent = {c: [u["seq"] for u in made[c]] for c in cars}
    valid = {c: [u["seq"] for u in made[c] if u["speed"] >= 0] for c in cars}
    fast = {c: [u["seq"] for u in made[c] if u["speed"] > SPEED_LIMIT] for c in cars}
    n_valid, n_fast = sum(map(len, valid.values())), sum(map(len, fast.values()))
    processed_rows = read_all(a.kafka, processed, n_valid)
    deadline = time.time() + 60
    while (len(dashboard.updates) < a.cars * a.updates or len(notified) < n_fast) and time.time() < deadline:
        time.sleep(0.2)
    dashboard.close()
    for s in services:
        s.stop.set()

    ok = True
    for c in cars:
        checks = [("raw (EFO)", dashboard.updates, sent[c]), ("processed", processed_rows, valid[c]),
                  ("notified", notified, fast[c])]
        parts, car_ok = [], True
        for what, rows, expected in checks:
            good, n, again = in_order(rows, c, expected)
            car_ok &= good
            parts.append(f"{what} {n}/{len(expected)} {'in order' if good else 'WRONG'}"
                         + (f" ({again} read again)" if again else ""))
        ok &= car_ok
        print(f"{'' if car_ok else 'FAIL '}{c}: " + ", ".join(parts))
    print("car-telemetry: every car's updates complete and in order in every stream" if ok
          else "car-telemetry: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
