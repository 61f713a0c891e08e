"""The Kinesis backend's pass-through against moto's server with IAM authentication on, so
strait's re-signing is checked for real: clients with any credentials (or bogus ones) reach the
upstream through strait, which signs every request with its own keys; the upstream's answers,
errors included, reach the client as the upstream sent them; strait's own keys being wrong shows
as the upstream's refusal, and an unreachable upstream as a retryable InternalFailure naming it.

    MOTO_ENDPOINT=http://127.0.0.1:PORT python checks.py   (run.sh starts moto)
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import botocore
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("STRAIT_BIN", os.path.join(REPO, "target", "debug", "strait"))
MOTO = os.environ["MOTO_ENDPOINT"]
failures = []
CHECKS = 8


def check(name, fn):
    try:
        fn()
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report and go on
        failures.append(name)
        print(f"FAIL {name}: {e!r}")


def client(endpoint, key="client-key", secret="client-secret", retries=3):
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": retries, "mode": "standard"}),
    )


def error_of(fn):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", ""), e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("no error")


class PassThrough:
    """A strait with backend.type kinesis in front of `upstream`, signing with (key, secret)."""

    def __init__(self, upstream, key, secret, extra=None, expect_start=True):
        self.dir = tempfile.mkdtemp(prefix="strait-kinesis-backend.")
        env = dict(os.environ)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(k, None)
        env.update(
            {
                "STRAIT_DATA_DIR": self.dir,
                "STRAIT_BACKEND__TYPE": "kinesis",
                "STRAIT_BACKEND__KINESIS__ENDPOINT": upstream,
                "STRAIT_KINESIS__LISTEN": "127.0.0.1:0",
                # Kafka clients on this backend are kafka-on-kinesis/'s part.
                "STRAIT_KAFKA__LISTEN": "",
                "STRAIT_ADMIN__LISTEN": "127.0.0.1:0",
                "RUST_LOG": "warn",
            }
        )
        if key is not None:
            env.update({"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret})
        env.update(extra or {})
        self.out = open(os.path.join(self.dir, "out"), "w+")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", os.path.join(REPO, "config", "strait.yaml")],
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        self.endpoint = None
        if not expect_start:
            self.rc = self.proc.wait(30)
            self.log = open(self.out.name).read()
            return
        while self.endpoint is None:
            assert self.proc.poll() is None, f"strait exited: {open(self.out.name).read()[-2000:]}"
            assert time.time() < deadline, "strait did not start"
            for line in open(self.out.name):
                if line.startswith("strait: kinesis listening on "):
                    self.endpoint = "http://" + line.split()[-1]
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


def iam_keys():
    """Creates strait's user in moto's IAM while moto still lets requests in unsigned
    (INITIAL_NO_AUTH_ACTION_COUNT=4): the user, its key, a kinesis:* policy, attached."""
    iam = boto3.client(
        "iam", endpoint_url=MOTO, region_name="us-east-1", aws_access_key_id="boot", aws_secret_access_key="boot"
    )
    iam.create_user(UserName="strait")
    key = iam.create_access_key(UserName="strait")["AccessKey"]
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}
    arn = iam.create_policy(PolicyName="strait-kinesis", PolicyDocument=json.dumps(doc))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="strait", PolicyArn=arn)
    return key["AccessKeyId"], key["SecretAccessKey"]


def main():
    key, secret = iam_keys()
    good = PassThrough(MOTO, key, secret)
    wrong = PassThrough(MOTO, key, secret + "x")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    nowhere = PassThrough(f"http://127.0.0.1:{closed.getsockname()[1]}", key, secret)
    closed.close()
    c = client(good.endpoint)
    name = f"pt-{int(time.time() * 1000)}"

    def moto_checks_signatures():
        code, _, status = error_of(lambda: client(MOTO).list_streams())
        assert 400 <= status < 500, (code, status)

    def create_and_describe():
        c.create_stream(StreamName=name, ShardCount=2)
        deadline = time.time() + 20
        while c.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
            assert time.time() < deadline
            time.sleep(0.2)
        assert name in c.list_streams()["StreamNames"]

    def put_and_read_back():
        sent = [(f"key-{i % 7}", f"value-{i}".encode()) for i in range(40)]
        for i in range(0, 40, 10):
            r = c.put_records(StreamName=name, Records=[{"PartitionKey": k, "Data": d} for k, d in sent[i : i + 10]])
            assert r["FailedRecordCount"] == 0, r
        one = c.put_record(StreamName=name, PartitionKey="solo", Data=b"solo")
        assert one["ShardId"].startswith("shardId-")
        got = []
        for s in c.list_shards(StreamName=name)["Shards"]:
            it = c.get_shard_iterator(StreamName=name, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")
            got += [(r["PartitionKey"], r["Data"]) for r in c.get_records(ShardIterator=it["ShardIterator"])["Records"]]
        assert sorted(got) == sorted(sent + [("solo", b"solo")]), (len(got), got[:3])

    def upstream_errors_pass_as_sent():
        code, msg, status = error_of(lambda: c.describe_stream_summary(StreamName="no-such-stream"))
        assert (code, status) == ("ResourceNotFoundException", 400), (code, msg, status)

    def wrong_keys_are_the_upstreams_refusal():
        code, msg, status = error_of(lambda: client(wrong.endpoint, retries=1).list_streams())
        assert 400 <= status < 500 and code != "InternalFailure", (code, msg, status)

    def an_unreachable_upstream_is_a_retryable_internal_failure():
        code, msg, status = error_of(lambda: client(nowhere.endpoint, retries=1).list_streams())
        assert (code, status) == ("InternalFailure", 500), (code, msg, status)
        assert "did not answer" in msg and "127.0.0.1" in msg, msg

    def a_named_profile_signs():
        creds = os.path.join(good.dir, "aws-credentials")
        with open(creds, "w") as f:
            f.write(f"[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"
                    f"[strait-team]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
        p = PassThrough(MOTO, None, None, {"AWS_SHARED_CREDENTIALS_FILE": creds,
                                          "STRAIT_BACKEND__KINESIS__CREDENTIALS": "strait-team",
                                          "AWS_EC2_METADATA_DISABLED": "true"})
        try:
            assert name in client(p.endpoint).list_streams()["StreamNames"]
        finally:
            p.stop()

    def no_credentials_stop_start_up_naming_every_source():
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        dead.close()
        p = PassThrough(MOTO, None, None, {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{port}"},
                        expect_start=False)
        assert p.rc != 0, p.log[-500:]
        for source in ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS", "instance profile"):
            assert source in p.log, (source, p.log[-600:])

    try:
        check("moto refuses unsigned clients (authentication is on)", moto_checks_signatures)
        check("CreateStream, DescribeStreamSummary, ListStreams through strait", create_and_describe)
        check("PutRecords and PutRecord, then every record read back through strait", put_and_read_back)
        check("the upstream's ResourceNotFoundException reaches the client as sent", upstream_errors_pass_as_sent)
        check("strait's own wrong secret shows as the upstream's refusal, not a 500", wrong_keys_are_the_upstreams_refusal)
        check("an unreachable upstream is InternalFailure (500) naming it", an_unreachable_upstream_is_a_retryable_internal_failure)
        check("credentials: a named profile of the shared credentials file signs", a_named_profile_signs)
        check("credentials: none anywhere stops start-up naming every source", no_credentials_stop_start_up_naming_every_source)
    finally:
        for s in (good, wrong, nowhere):
            s.stop()
    print(f"kinesis-backend checks against moto: {CHECKS - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
