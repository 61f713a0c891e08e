"""Fixtures that run the real strait binary for the Python interop suites.

Environment:
  STRAIT_BIN       strait binary (default <repo>/target/debug/strait)
  STRAIT_CONFIG    config file passed with --config (default <repo>/config/strait.yaml, if it exists)
  STRAIT_ENDPOINT  use this already-running server (e.g. kinesalite) instead of starting strait;
                   tests that restart or crash the server are then skipped
  STRAIT_KEEP_DATA keep the temp data dirs and logs (printed at teardown)
  STRAIT_KAFKA_BOOTSTRAP  run the Kafka-only tests against this broker (e.g. a real Apache Kafka)
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import pytest
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDSTRAITTEST",
    "AWS_SECRET_ACCESS_KEY": "strait-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_PAGER": "",
}
# Keep botocore from reading a developer's own AWS setup.
os.environ.update(DUMMY_ENV)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def make_client(endpoint, validate=True, read_timeout=30, **cfg):
    config = Config(
        region_name="us-east-1",
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=read_timeout,
        parameter_validation=validate,
        **cfg,
    )
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint,
        aws_access_key_id=DUMMY_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=config,
    )


class StraitServer:
    """One strait process on a private data dir and port (or an external endpoint)."""

    def __init__(self, external_endpoint=None, fsync=None, extra_env=None):
        self.external = external_endpoint is not None
        self.proc = None
        self.log_offset = 0
        self.exit_codes = []
        self._clients = {}
        if self.external:
            self.endpoint = external_endpoint.rstrip("/")
            self.host, port = self.endpoint.split("://", 1)[1].rsplit(":", 1)
            self.port = int(port)
            self.workdir = None
            return
        self.bin = os.environ.get("STRAIT_BIN", os.path.join(REPO, "target", "debug", "strait"))
        if not os.path.exists(self.bin):
            pytest.fail(f"strait binary not found at {self.bin} (build it, or set STRAIT_BIN / STRAIT_ENDPOINT)")
        self.config = os.environ.get("STRAIT_CONFIG", os.path.join(REPO, "config", "strait.yaml"))
        self.workdir = tempfile.mkdtemp(prefix="strait-py-")
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir)
        self.log_path = os.path.join(self.workdir, "strait.log")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.kafka_port = free_port()
        self.endpoint = f"http://{self.host}:{self.port}"
        self.kafka_bootstrap = f"{self.host}:{self.kafka_port}"
        self.env = dict(os.environ)
        self.env.update(
            {
                "STRAIT_DATA_DIR": self.data_dir,
                "STRAIT_KINESIS__LISTEN": f"{self.host}:{self.port}",
                "STRAIT_KAFKA__LISTEN": self.kafka_bootstrap,
                "STRAIT_KAFKA__ADVERTISED_ADDRESS": self.kafka_bootstrap,
                "STRAIT_KAFKA__GROUP_INITIAL_REBALANCE_DELAY_MS": "300",
                # Several servers run at once: the admin listener takes a free port too.
                "STRAIT_ADMIN__LISTEN": "127.0.0.1:0",
            }
        )
        if fsync:
            self.env["STRAIT_BACKEND__EMBEDDED__FSYNC"] = fsync
        self.env.update(extra_env or {})

    # -- lifecycle -------------------------------------------------------------------------
    def _need_local(self, what):
        if self.external:
            pytest.skip(f"{what} needs a strait process started by the suite (STRAIT_ENDPOINT is set)")

    def start(self, timeout=60.0):
        self._need_local("start")
        assert self.proc is None or self.proc.poll() is not None, "already running"
        args = [self.bin, "serve"]
        if os.path.exists(self.config):
            args += ["--config", self.config]
        logf = open(self.log_path, "ab")
        logf.write(f"\n===== start {' '.join(args)} on {self.endpoint} =====\n".encode())
        logf.flush()
        self.proc = subprocess.Popen(
            args, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT
        )
        logf.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"strait exited with {self.proc.returncode} during start:\n{self.log_tail()}")
            if port_accepts(self.host, self.port) and (
                not self.env.get("STRAIT_KAFKA__LISTEN") or port_accepts(self.host, self.kafka_port)
            ):
                return self
            time.sleep(0.05)
        self.kill9()
        pytest.fail(f"strait did not accept on {self.endpoint} within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout=20.0):
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        self._need_local("stop")
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            self.exit_codes.append(("sigterm-timeout", rc))
            return "timeout"
        self.exit_codes.append(("sigterm", rc))
        return rc

    def kill9(self):
        self._need_local("kill -9")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.exit_codes.append(("sigkill", self.proc.returncode))

    def rss_kib(self):
        """The process's resident memory, from /proc."""
        self._need_local("rss")
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")

    def restart(self):
        """Clean stop (SIGTERM) and start again on the same data dir and port."""
        self._need_local("restart")
        rc = self.stop()
        self.start()
        return rc

    # -- checks ----------------------------------------------------------------------------
    def running(self):
        return self.external or (self.proc is not None and self.proc.poll() is None)

    def client(self, validate=True, fresh=False, **cfg):
        """A boto3 Kinesis client on this server: dummy creds, us-east-1, no retries.

        Plain clients are cached per server (building one costs ~50 ms of CPU); pass fresh=True
        or any botocore Config option for a new one (e.g. one per thread).
        """
        if fresh or cfg:
            return make_client(self.endpoint, validate=validate, **cfg)
        key = bool(validate)
        if key not in self._clients:
            self._clients[key] = make_client(self.endpoint, validate=validate)
        return self._clients[key]

    def log_text(self):
        if self.external or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def new_panics(self):
        """Lines mentioning a panic logged since the last call."""
        text = self.log_text()
        new = text[self.log_offset :]
        self.log_offset = len(text)
        return [line for line in new.splitlines() if "panicked" in line or "RUST_BACKTRACE" in line]

    def assert_alive(self):
        """The process still runs, answers ListStreams, and logged no panic."""
        if not self.external:
            assert self.proc.poll() is None, f"strait died (exit {self.proc.returncode}):\n{self.log_tail()}"
        panics = self.new_panics()
        assert not panics, "strait logged a panic:\n" + "\n".join(panics)
        self.client().list_streams(Limit=1)

    def cleanup(self):
        if self.external:
            return
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        if os.environ.get("STRAIT_KEEP_DATA"):
            print(f"\nstrait data and log kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _external():
    return os.environ.get("STRAIT_ENDPOINT") or None


@pytest.fixture(scope="session")
def server():
    """One server shared by a whole session; tests use unique stream names."""
    srv = StraitServer(_external())
    if not srv.external:
        srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture
def fresh_server():
    """A private strait (fsync: always) for tests that stop, restart or crash it."""
    if _external() or external_kafka():
        pytest.skip(
            "restart/crash tests need a strait process started by the suite "
            "(STRAIT_ENDPOINT or STRAIT_KAFKA_BOOTSTRAP is set)"
        )
    srv = StraitServer(None, fsync="always")
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture
def client(server):
    return server.client()


@pytest.fixture
def raw_client(server):
    """A client with botocore's own parameter validation off, so bad input reaches the server."""
    return server.client(validate=False)


def external_kafka():
    """STRAIT_KAFKA_BOOTSTRAP: run the Kafka-only tests against this broker instead of strait's
    listener (e.g. a real Apache Kafka, to check the tests' own expectations)."""
    return os.environ.get("STRAIT_KAFKA_BOOTSTRAP") or None


@pytest.fixture
def kafka_bootstrap(server):
    """host:port of the session server's Kafka listener (or STRAIT_KAFKA_BOOTSTRAP)."""
    if external_kafka():
        return external_kafka()
    if server.external:
        pytest.skip("Kafka suites need a strait started by the suite (STRAIT_ENDPOINT is set)")
    return server.kafka_bootstrap


@pytest.fixture
def strait_kafka(kafka_bootstrap):
    """For tests that need strait itself behind the Kafka listener (Kinesis on the same streams)."""
    if external_kafka():
        pytest.skip("needs strait's own Kafka listener (STRAIT_KAFKA_BOOTSTRAP is set)")
    return kafka_bootstrap


@pytest.fixture(scope="session")
def tls_server():
    """A second strait: TLS on its Kinesis port (certificates from `strait cert`, trust
    certs/ca.pem) and a 4 s kinesis.subscription_lifetime_secs. Plain HTTP keeps working on the
    same port (srv.endpoint); srv.https_endpoint is https://localhost:PORT."""
    if _external():
        pytest.skip("needs a strait started by the suite (STRAIT_ENDPOINT is set)")
    bin_ = os.environ.get("STRAIT_BIN", os.path.join(REPO, "target", "debug", "strait"))
    certs = tempfile.mkdtemp(prefix="strait-certs-")
    out = subprocess.run([bin_, "cert", "--out", certs, "--host", "localhost"], capture_output=True, text=True)
    assert out.returncode == 0, f"strait cert failed: {out.stdout}{out.stderr}"
    srv = StraitServer(
        None,
        extra_env={
            "STRAIT_KINESIS__TLS__CERT": os.path.join(certs, "cert.pem"),
            "STRAIT_KINESIS__TLS__KEY": os.path.join(certs, "key.pem"),
            "STRAIT_KINESIS__SUBSCRIPTION_LIFETIME_SECS": "4",
        },
    )
    srv.certs = certs
    srv.https_endpoint = f"https://localhost:{srv.port}"
    srv.start()
    yield srv
    srv.cleanup()
    shutil.rmtree(certs, ignore_errors=True)
