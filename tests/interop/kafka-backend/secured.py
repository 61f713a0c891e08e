"""strait logging in to a SASL_SSL-only broker (KAFKA_SECURED, CA in KAFKA_CA) for plaintext
clients without credentials: one strait per mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
a wrong password, and an untrusted certificate.

Prints PASS/FAIL per check and "N passed, N failed"; exits non-zero if any failed.
"""

import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from harness import check, finish, require, wait_for

BROKER = os.environ["KAFKA_SECURED"]
CA = os.environ["KAFKA_CA"]
BIN = os.environ["STRAIT_BIN"]
CONFIG = os.environ["STRAIT_CONFIG"]


def free_port_with_broker_port():
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", p + 2))
            return p
        except OSError:
            continue
        finally:
            t.close()
            s.close()
    raise RuntimeError("no free port pair")


class Strait:
    def __init__(self, **env):
        self.dir = tempfile.mkdtemp(prefix="strait-secured-")
        self.port = free_port_with_broker_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith("STRAIT_")}
        full.update({
            "STRAIT_DATA_DIR": self.dir, "STRAIT_KINESIS__LISTEN": "127.0.0.1:0",
            "STRAIT_KAFKA__LISTEN": f"127.0.0.1:{self.port}",
            "STRAIT_KAFKA__ADVERTISED_ADDRESS": f"127.0.0.1:{self.port}",
            "STRAIT_ADMIN__LISTEN": "127.0.0.1:0", "STRAIT_BACKEND__TYPE": "kafka",
            "STRAIT_BACKEND__KAFKA__BOOTSTRAP": BROKER, "RUST_LOG": "info", "NO_COLOR": "1",
            **env,
        })
        self.out = open(os.path.join(self.dir, "out"), "w+")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen([BIN, "serve", "--config", CONFIG], env=full, stdout=self.out,
                                     stderr=self.log)
        deadline = time.time() + 30
        self.admin = None
        while time.time() < deadline and self.admin is None:
            self.out.seek(0)
            m = re.search(r"admin listening on (\S+)", self.out.read())
            if m and "kafka listening" in open(self.out.name).read():
                self.admin = m.group(1)
            if self.proc.poll() is not None:
                raise AssertionError(f"strait exited: {self.log_text()[-800:]}")
            time.sleep(0.1)
        require(self.admin, "strait did not start")
        self.kafka = f"127.0.0.1:{self.port}"

    def log_text(self):
        self.log.flush()
        return open(self.log.name).read()

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://{self.admin}/readyz", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def round_trip(mechanism, password):
    s = Strait(STRAIT_BACKEND__KAFKA__TLS__ENABLED="true", STRAIT_BACKEND__KAFKA__TLS__CA=CA,
               STRAIT_BACKEND__KAFKA__SASL__MECHANISM=mechanism,
               STRAIT_BACKEND__KAFKA__SASL__USERNAME="strait",
               STRAIT_BACKEND__KAFKA__SASL__PASSWORD=password)
    try:
        # Ready once the catalog is read from the cluster (the metadata topic, made on first start).
        wait_for(lambda: s.ready()[0] == 200, 60, f"/readyz 200 (last: {s.ready()})")
        topic = f"sec-{mechanism.lower()}-{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": s.kafka})
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
        p = Producer({"bootstrap.servers": s.kafka, "enable.idempotence": True, "log_level": 3})
        for i in range(200):
            p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        require(p.flush(30) == 0, "undelivered records")
        c = Consumer({"bootstrap.servers": s.kafka, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                      "log_level": 3})
        c.subscribe([topic])
        got, deadline = set(), time.time() + 30
        while len(got) < 200 and time.time() < deadline:
            for m in c.consume(500, 0.5):
                if not m.error():
                    got.add(m.value())
        c.close()
        require(got == {f"v{i}".encode() for i in range(200)}, f"read {len(got)} of 200")
    finally:
        s.stop()


def wrong_password_is_reported():
    s = Strait(STRAIT_BACKEND__KAFKA__TLS__ENABLED="true", STRAIT_BACKEND__KAFKA__TLS__CA=CA,
               STRAIT_BACKEND__KAFKA__SASL__MECHANISM="SCRAM-SHA-256",
               STRAIT_BACKEND__KAFKA__SASL__USERNAME="strait",
               STRAIT_BACKEND__KAFKA__SASL__PASSWORD="wrong")
    try:
        status, body = s.ready()
        require(status == 503 and "unreachable" in body, f"/readyz {status} {body!r}")
        require("SASL authentication failed" in s.log_text(), f"log: {s.log_text()[-600:]}")
    finally:
        s.stop()


def an_untrusted_certificate_is_refused():
    other = tempfile.mkdtemp(prefix="strait-other-ca-")
    subprocess.run([BIN, "cert", "--out", other, "--host", "localhost"], check=True, capture_output=True)
    s = Strait(STRAIT_BACKEND__KAFKA__TLS__ENABLED="true",
               STRAIT_BACKEND__KAFKA__TLS__CA=os.path.join(other, "ca.pem"),
               STRAIT_BACKEND__KAFKA__SASL__MECHANISM="PLAIN",
               STRAIT_BACKEND__KAFKA__SASL__USERNAME="strait",
               STRAIT_BACKEND__KAFKA__SASL__PASSWORD="plain-secret")
    try:
        status, _ = s.ready()
        require(status == 503, f"/readyz {status}")
        require("TLS" in s.log_text() and "certificate" in s.log_text().lower(), f"log: {s.log_text()[-600:]}")
    finally:
        s.stop()


def the_broker_refuses_plaintext():
    a = AdminClient({"bootstrap.servers": BROKER, "log_level": 0, "socket.timeout.ms": 3000})
    try:
        a.list_topics(timeout=4)
    except Exception:  # noqa: BLE001 - any failure is the point
        return
    raise AssertionError("a plaintext client without credentials listed topics on the broker")


if __name__ == "__main__":
    check("the broker itself refuses a plaintext client without credentials", the_broker_refuses_plaintext)
    for mech, pw in (("PLAIN", "plain-secret"), ("SCRAM-SHA-256", "scram256-secret"),
                     ("SCRAM-SHA-512", "scram512-secret")):
        check(f"strait over TLS with SASL {mech}: a plaintext client without credentials creates a topic, "
              "produces 200 records and reads them back in a group", lambda m=mech, p=pw: round_trip(m, p))
    check("a wrong SCRAM password: /readyz 503 and 'SASL authentication failed' in the log", wrong_password_is_reported)
    check("a certificate from another CA is refused: /readyz 503, a TLS certificate error in the log",
          an_untrusted_certificate_is_refused)
    finish()
