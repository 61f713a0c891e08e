"""AWS_MSK_IAM credentials from a web identity (EKS IRSA): strait exchanges the token in
AWS_WEB_IDENTITY_TOKEN_FILE for AWS_ROLE_ARN at STS (moto's server, the AWS API emulator) and
signs its login with what STS issued. MSK's IAM login is not open source and no MSK cluster is
reachable here, so the broker end is a TLS listener that speaks Kafka's SaslHandshake and
SaslAuthenticate, records the signed payload and refuses the rest; the payload's format is
checked byte for byte against aws-msk-iam-auth's in strait's unit tests.

Needs STRAIT_BIN, STRAIT_CONFIG, KAFKA_TLS_DIR (cert.pem, key.pem, ca.pem for host localhost)
and moto_server next to this Python. Prints PASS/FAIL per check; exits non-zero if any failed.
"""

import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from harness import check, finish, require, wait_for

BIN = os.environ["STRAIT_BIN"]
CONFIG = os.environ["STRAIT_CONFIG"]
TLS = os.environ["KAFKA_TLS_DIR"]
ROLE = "arn:aws:iam::123456789012:role/strait-msk"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class SaslRecorder:
    """A TLS listener answering SaslHandshake v1 (offering AWS_MSK_IAM) and SaslAuthenticate v2
    (accepting), recording each AWS_MSK_IAM payload; any other request closes the connection."""

    def __init__(self):
        self.payloads = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(TLS, "cert.pem"), os.path.join(TLS, "key.pem"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.ctx = ctx
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, raw):
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
            while True:
                frame = read_frame(conn)
                key, version, corr = struct.unpack(">hhi", frame[:8])
                if key == 17:  # SaslHandshake v1: error, [mechanisms]
                    mech = b"AWS_MSK_IAM"
                    body = struct.pack(">ihih", corr, 0, 1, len(mech)) + mech
                elif key == 36 and version == 2:
                    self.payloads.append(auth_bytes(frame))
                    # header v1 (tagged fields), error 0, null message, empty bytes, lifetime 0
                    body = struct.pack(">i", corr) + b"\x00" + struct.pack(">h", 0) + b"\x00\x01" \
                        + struct.pack(">q", 0) + b"\x00"
                else:
                    return
                conn.sendall(struct.pack(">i", len(body)) + body)
        except (OSError, ValueError, struct.error):
            return
        finally:
            raw.close()


def read_frame(conn):
    head = recv_exactly(conn, 4)
    return recv_exactly(conn, struct.unpack(">i", head)[0])


def recv_exactly(conn, n):
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise ValueError("closed")
        out += chunk
    return out


def uvarint(b, i):
    shift = value = 0
    while True:
        byte = b[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def auth_bytes(frame):
    """The auth_bytes of a SaslAuthenticate v2 request (header v2: client id, tagged fields)."""
    i = 8
    (client_len,) = struct.unpack(">h", frame[i:i + 2])
    i += 2 + max(client_len, 0)
    tags, i = uvarint(frame, i)
    require(tags == 0, "tagged fields in the request header")
    n, i = uvarint(frame, i)
    return frame[i:i + n - 1]


def start_strait(env):
    d = tempfile.mkdtemp(prefix="strait-msk-iam-")
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("STRAIT_", "AWS_"))}
    full.update({"STRAIT_DATA_DIR": d, "STRAIT_KINESIS__LISTEN": "127.0.0.1:0",
                 "STRAIT_KAFKA__LISTEN": "127.0.0.1:0", "STRAIT_KAFKA__ADVERTISED_ADDRESS": "127.0.0.1:0",
                 "STRAIT_ADMIN__LISTEN": "127.0.0.1:0", "STRAIT_BACKEND__TYPE": "kafka",
                 "STRAIT_REGION": "eu-west-1", "STRAIT_BACKEND__KAFKA__TLS__ENABLED": "true",
                 "STRAIT_BACKEND__KAFKA__TLS__CA": os.path.join(TLS, "ca.pem"),
                 "STRAIT_BACKEND__KAFKA__SASL__MECHANISM": "AWS_MSK_IAM",
                 "RUST_LOG": "info", "NO_COLOR": "1", **env})
    log = open(os.path.join(d, "log"), "w+")
    proc = subprocess.Popen([BIN, "serve", "--config", CONFIG], env=full, stdout=subprocess.DEVNULL,
                            stderr=log)
    return proc, log


class Moto:
    def __init__(self):
        self.port = free_port()
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"

        def up():
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=2)
                return True
            except OSError:
                return False
        wait_for(up, 30, "moto_server")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def logs_in_with_web_identity_credentials():
    broker, moto = SaslRecorder(), Moto()
    token = tempfile.NamedTemporaryFile("w", suffix=".jwt", delete=False)
    token.write("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpzdHJhaXQifQ.c2ln\n")
    token.close()
    proc, log = start_strait({
        "STRAIT_BACKEND__KAFKA__BOOTSTRAP": f"localhost:{broker.port}",
        "AWS_WEB_IDENTITY_TOKEN_FILE": token.name, "AWS_ROLE_ARN": ROLE,
        "AWS_ROLE_SESSION_NAME": "strait-test", "AWS_ENDPOINT_URL_STS": moto.url})
    try:
        wait_for(lambda: broker.payloads, 30, "a SaslAuthenticate from strait")
        p = json.loads(broker.payloads[0])
        require(p["version"] == "2020_10_22" and p["action"] == "kafka-cluster:Connect"
                and p["host"] == "localhost", f"payload {p}")
        key_id, date, region, service, term = p["x-amz-credential"].split("/")
        # moto issues temporary keys as AWS does: ASIA…, with a session token.
        require(key_id.startswith("ASIA") and region == "eu-west-1" and service == "kafka-cluster",
                f"credential {p['x-amz-credential']}")
        require(p.get("x-amz-security-token"), "no session token signed")
        log.flush()
        text = open(log.name).read()
        require(re.search(r"AWS credentials from the web identity token.*" + key_id, text),
                f"log: {text[-600:]}")
        # More logins (the readiness probe reconnects) reuse the cached credentials.
        wait_for(lambda: len(broker.payloads) >= 2, 30, "a second login")
        second = json.loads(broker.payloads[1])["x-amz-credential"].split("/")[0]
        require(second == key_id, f"second login with {second}, first {key_id}")
        log.flush()
        text = open(log.name).read()
        asked = text.count("AWS credentials from the web identity token")
        require(asked == 1, f"STS asked {asked} times for {len(broker.payloads)} logins")
    finally:
        proc.terminate()
        proc.wait(30)
        moto.stop()
        os.unlink(token.name)


def no_credential_source_stops_start_up():
    proc, log = start_strait({"STRAIT_BACKEND__KAFKA__BOOTSTRAP": "localhost:9"})
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("strait started without AWS credentials")
    log.flush()
    text = open(log.name).read()
    require(rc != 0 and "AWS_WEB_IDENTITY_TOKEN_FILE" in text and "AWS_ACCESS_KEY_ID" in text,
            f"exit {rc}, log {text[-400:]}")


def a_refused_exchange_is_reported():
    # STS unreachable (nothing listens): strait keeps running, says why, /readyz stays 503.
    broker = SaslRecorder()
    token = tempfile.NamedTemporaryFile("w", delete=False)
    token.write("t")
    token.close()
    proc, log = start_strait({
        "STRAIT_BACKEND__KAFKA__BOOTSTRAP": f"localhost:{broker.port}",
        "AWS_WEB_IDENTITY_TOKEN_FILE": token.name, "AWS_ROLE_ARN": ROLE,
        "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{free_port()}"})
    try:
        def reported():
            log.flush()
            return "AWS STS 127.0.0.1" in open(log.name).read()
        wait_for(reported, 30, "the STS failure in the log")
        require(proc.poll() is None, "strait exited")
        require(not broker.payloads, "logged in without credentials")
    finally:
        proc.terminate()
        proc.wait(30)
        os.unlink(token.name)


if __name__ == "__main__":
    check("AWS_MSK_IAM with a web identity (IRSA): the token is exchanged at STS (moto) and the login "
          "is signed with the temporary keys and session token STS issued; later logins reuse them",
          logs_in_with_web_identity_credentials)
    check("AWS_MSK_IAM with no credential source: start-up fails naming both sources",
          no_credential_source_stops_start_up)
    check("STS unreachable: strait keeps running, logs the STS failure and sends no login",
          a_refused_exchange_is_reported)
    finish()
