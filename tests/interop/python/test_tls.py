"""TLS on the Kinesis port (tls_server: certificates from `strait cert`, a 4 s subscription lifetime):
boto3 over https://localhost:PORT trusting the generated ca.pem (ListStreams, PutRecords, GetRecords,
subscribe_to_shard); another CA or the system store is refused with an SSL error; plain HTTP/1.1 and
h2c keep working on the same port; ALPN offers h2 and http/1.1.
"""

import os
import socket
import ssl
import subprocess
import tempfile
import shutil

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError

from conftest import DUMMY_ENV, REPO
from efo_helpers import Subscriber, register_consumer
from helpers import create_stream, put_records, read_shard, unique

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def https_client(endpoint, verify):
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint,
        aws_access_key_id=DUMMY_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        verify=verify,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )


@pytest.fixture(scope="module")
def other_ca():
    """A second, unrelated development CA (another `strait cert` run)."""
    bin_ = os.environ.get("STRAIT_BIN", os.path.join(REPO, "target", "debug", "strait"))
    d = tempfile.mkdtemp(prefix="strait-other-ca-")
    subprocess.run([bin_, "cert", "--out", d, "--host", "localhost"], check=True, capture_output=True)
    yield os.path.join(d, "ca.pem")
    shutil.rmtree(d, ignore_errors=True)


def test_boto3_over_https(tls_server):
    ca = os.path.join(tls_server.certs, "ca.pem")
    c = https_client(tls_server.https_endpoint, ca)
    name = unique("tls")
    create_stream(c, name)
    assert name in c.list_streams()["StreamNames"]
    entries = [(f"k{i}", f"tls-{i}".encode() * 50) for i in range(20)]
    placed = put_records(c, name, entries)
    recs, _ = read_shard(c, name, "shardId-000000000000")
    assert [(r["PartitionKey"], r["Data"]) for r in recs] == entries
    assert [r["SequenceNumber"] for r in recs] == [p["SequenceNumber"] for p in placed]
    # The same stream over plain HTTP on the same port.
    plain = tls_server.client()
    recs2, _ = read_shard(plain, name, "shardId-000000000000")
    assert [r["SequenceNumber"] for r in recs2] == [p["SequenceNumber"] for p in placed]
    # 127.0.0.1 is in the certificate's SANs too.
    c_ip = https_client(f"https://127.0.0.1:{tls_server.port}", ca)
    assert name in c_ip.list_streams()["StreamNames"]


def test_subscribe_over_https(tls_server):
    ca = os.path.join(tls_server.certs, "ca.pem")
    c = https_client(tls_server.https_endpoint, ca)
    name = create_stream(c, unique("tls-efo"))
    before = put_records(c, name, [("a", b"before")])
    arn = register_consumer(c, name, "tls-consumer")
    sub = Subscriber(https_client(tls_server.https_endpoint, ca), arn, "shardId-000000000000", {"Type": "TRIM_HORIZON"})
    try:
        assert sub.resp["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
        assert [r["Data"] for r in sub.records_until(1, timeout=5)] == [b"before"]
        after = put_records(c, name, [("b", b"after-1"), ("c", b"after-2")])
        got = sub.records_until(3, timeout=5)
        assert [r["SequenceNumber"] for r in got] == [p["SequenceNumber"] for p in before + after]
        assert sub.events[-1][0]["ContinuationSequenceNumber"] == after[-1]["SequenceNumber"]
        # The 4 s lifetime ends it cleanly over TLS too.
        end = sub.until_end(timeout=10)
        assert end is not None and end[0] == "end", end
    finally:
        sub.close()


@pytest.mark.parametrize("trust", ["other-ca", "system-store"])
def test_untrusted_ca_refused(tls_server, other_ca, trust):
    verify = other_ca if trust == "other-ca" else None
    c = https_client(tls_server.https_endpoint, verify)
    with pytest.raises(SSLError) as ei:
        c.list_streams()
    assert "CERTIFICATE_VERIFY_FAILED" in str(ei.value) or "certificate verify failed" in str(ei.value), ei.value
    tls_server.assert_alive()


def test_wrong_host_name_refused(tls_server):
    """The server certificate is for localhost/127.0.0.1/::1 only."""
    ctx = ssl.create_default_context(cafile=os.path.join(tls_server.certs, "ca.pem"))
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="not-localhost.example")


def test_plain_http_still_works(tls_server):
    c = tls_server.client()
    name = create_stream(c, unique("tls-plain"))
    put_records(c, name, [("p", b"plain")])
    assert [r["Data"] for r in read_shard(c, name, "shardId-000000000000")[0]] == [b"plain"]


@pytest.mark.parametrize("offer,want", [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")])
def test_alpn(tls_server, offer, want):
    ctx = ssl.create_default_context(cafile=os.path.join(tls_server.certs, "ca.pem"))
    ctx.set_alpn_protocols(offer)
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == want
            if want == "h2":
                assert first_h2_frame_type(s) == 0x4  # SETTINGS


def first_h2_frame_type(sock):
    sock.sendall(H2_PREFACE + EMPTY_SETTINGS)
    head = b""
    while len(head) < 9:
        chunk = sock.recv(9 - len(head))
        assert chunk, "connection closed before the server's first HTTP/2 frame"
        head += chunk
    return head[3]


def test_h2c_prior_knowledge_on_tls_port(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
        assert first_h2_frame_type(s) == 0x4
