"""A strait process for the Kafka-backend checks that need more than the suite's own: started
from STRAIT_BIN with config/strait.yaml and the overrides given, its own data dir and ports
(Kinesis, Kafka and admin, each on port 0 and read back from its banner)."""

import os
import subprocess
import tempfile
import time

from harness import require

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("STRAIT_BIN", os.path.join(REPO, "target", "debug", "strait"))


class Strait:
    def __init__(self, data_dir=None, **overrides):
        # Its output beside the data dir: the embedded backend keeps its log in data_dir/log.
        self.dir = tempfile.mkdtemp(prefix="strait-replica-")
        self.env = dict(os.environ, STRAIT_DATA_DIR=data_dir or os.path.join(self.dir, "data"), STRAIT_KINESIS__LISTEN="127.0.0.1:0",
                        STRAIT_KAFKA__LISTEN="127.0.0.1:0", STRAIT_KAFKA__ADVERTISED_ADDRESS="127.0.0.1:0",
                        STRAIT_ADMIN__LISTEN="127.0.0.1:0", **overrides)
        self.start()

    def start(self):
        self.out = open(os.path.join(self.dir, "out"), "w+")
        self.log = open(os.path.join(self.dir, "log"), "a+")
        self.proc = subprocess.Popen([BIN, "serve", "--config", os.path.join(REPO, "config", "strait.yaml")],
                                     env=self.env, stdout=self.out, stderr=self.log)
        self.endpoint = self.kafka = self.admin = None
        deadline = time.time() + 60
        while time.time() < deadline and (self.endpoint is None or self.kafka is None):
            require(self.proc.poll() is None, f"strait exited: {self.tail()}")
            self.out.seek(0)
            for line in self.out.read().splitlines():
                if line.startswith("strait: kinesis listening on "):
                    self.endpoint = "http://" + line.rsplit(" ", 1)[1]
                if line.startswith("strait: kafka listening on "):
                    self.kafka = line.rsplit(" ", 1)[1]
                if line.startswith("strait: admin listening on "):
                    self.admin = "http://" + line.rsplit(" ", 1)[1]
            time.sleep(0.1)
        require(self.endpoint and self.kafka, f"strait did not listen: {self.tail()}")

    def tail(self):
        self.log.seek(0)
        return self.log.read()[-1500:]

    def kill9(self):
        self.proc.kill()
        self.proc.wait(30)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
