"""Helpers for the enhanced fan-out (SubscribeToShard), KPL aggregation and TLS suites.

- register_consumer / wait_consumer_active: RegisterStreamConsumer until ACTIVE.
- Subscriber: boto3 subscribe_to_shard with the event stream read in a thread, so tests can wait
  for events with a timeout; botocore consumes the initial-response before the call returns.
- RawSubscription: SubscribeToShard over a raw HTTP/1.1 socket (chunked body, event-stream
  messages decoded with botocore's EventStreamBuffer), for tests that must control reading.
- kpl_aggregate: a KPL aggregated record built by hand (magic, protobuf, MD5).
"""

import base64
import hashlib
import json
import queue
import socket
import threading
import time

from botocore.eventstream import EventStreamBuffer

from helpers import stream_arn

KPL_MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])


# -- consumers -----------------------------------------------------------------------------------


def stream_arn_of(client, name):
    arn = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    assert arn == stream_arn(name), arn
    return arn


def wait_consumer_active(client, consumer_arn, timeout=10.0):
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status = client.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]["ConsumerStatus"]
        if status == "ACTIVE":
            return
        time.sleep(0.05)
    raise AssertionError(f"consumer {consumer_arn} not ACTIVE after {timeout}s (last status {status})")


def register_consumer(client, stream_name, consumer_name, wait=True):
    """RegisterStreamConsumer on the stream's ARN; returns the consumer ARN (ACTIVE if wait)."""
    resp = client.register_stream_consumer(StreamARN=stream_arn_of(client, stream_name), ConsumerName=consumer_name)
    arn = resp["Consumer"]["ConsumerARN"]
    if wait:
        wait_consumer_active(client, arn)
    return arn


# -- boto3 subscriptions -------------------------------------------------------------------------

_END = object()


class Subscriber:
    """subscribe_to_shard (raises right away on a refused subscription), then a thread iterating the
    EventStream. items: ("event", SubscribeToShardEvent) / ("error", exception) / ("end", None)."""

    def __init__(self, client, consumer_arn, shard_id, position):
        self.t0 = time.time()
        self.resp = client.subscribe_to_shard(ConsumerARN=consumer_arn, ShardId=shard_id, StartingPosition=position)
        self.t_subscribed = time.time()
        self.items = queue.Queue()
        self.events = []  # every SubscribeToShardEvent, in order, with its arrival time
        self.ended = None  # ("end", None) or ("error", exc) once the stream is over
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        try:
            for ev in self.resp["EventStream"]:
                self.items.put(("event", ev, time.time()))
        except Exception as e:  # botocore raises modeled exception events while iterating
            self.items.put(("error", e, time.time()))
            return
        self.items.put(("end", None, time.time()))

    def next(self, timeout):
        """The next item (kind, value, arrival time), or None after timeout."""
        if self.ended:
            return self.ended
        try:
            kind, value, t = self.items.get(timeout=timeout)
        except queue.Empty:
            return None
        if kind == "event":
            assert set(value) == {"SubscribeToShardEvent"}, f"unexpected event {value!r}"
            ev = value["SubscribeToShardEvent"]
            self.events.append((ev, t))
            return kind, ev, t
        self.ended = (kind, value, t)
        return self.ended

    def records_until(self, n, timeout=15.0):
        """Reads events until n records in total arrived over this subscription; returns them."""
        deadline = time.time() + timeout
        while self.record_count() < n:
            item = self.next(max(0.0, deadline - time.time()))
            if item is None:
                break
            if item[0] != "event":
                break
        return self.all_records()

    def until_end(self, timeout):
        """Reads until the stream ends; returns ("end"|"error", value, time) or None on timeout."""
        deadline = time.time() + timeout
        while not self.ended:
            item = self.next(max(0.0, deadline - time.time()))
            if item is None:
                return None
        return self.ended

    def all_records(self):
        return [r for ev, _ in self.events for r in ev["Records"]]

    def record_count(self):
        return sum(len(ev["Records"]) for ev, _ in self.events)

    def close(self):
        """Ends the subscription from our side. The pump thread may be blocked reading, and a plain
        close() would wait for its read (up to the next heartbeat), so shut the socket down first."""
        raw = self.resp["EventStream"]._raw_stream
        try:
            raw.shutdown()  # urllib3 >= 2.3: shuts the socket down under a blocked reader
        except Exception:
            pass
        self.thread.join(timeout=5)
        try:
            self.resp["EventStream"].close()
        except Exception:
            pass


def check_event_shape(ev, shard_open=True):
    """Problems with one SubscribeToShardEvent: the continuation sequence number of an event
    with records is its last record's, MillisBehindLatest is a non-negative integer."""
    probs = []
    if shard_open:
        if "ContinuationSequenceNumber" not in ev:
            probs.append("open shard event without ContinuationSequenceNumber")
        elif ev["Records"] and ev["ContinuationSequenceNumber"] != ev["Records"][-1]["SequenceNumber"]:
            probs.append(
                f"ContinuationSequenceNumber {ev['ContinuationSequenceNumber']} != last record's "
                f"{ev['Records'][-1]['SequenceNumber']}"
            )
    mbl = ev.get("MillisBehindLatest")
    if not isinstance(mbl, int) or mbl < 0:
        probs.append(f"MillisBehindLatest {mbl!r}")
    return probs


# -- raw HTTP/1.1 SubscribeToShard ----------------------------------------------------------------


class RawSubscription:
    """SubscribeToShard over a plain socket (HTTP/1.1, chunked response). rcvbuf sets SO_RCVBUF
    before connecting, so an unread subscription fills the kernel buffers quickly."""

    def __init__(self, host, port, consumer_arn, shard_id, position, rcvbuf=None, timeout=30):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        body = json.dumps(
            {"ConsumerARN": consumer_arn, "ShardId": shard_id, "StartingPosition": position}
        ).encode()
        head = (
            f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-amz-json-1.1\r\n"
            "X-Amz-Target: Kinesis_20131202.SubscribeToShard\r\n"
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIDSTRAITTEST/20250101/us-east-1/kinesis/aws4_request, "
            "SignedHeaders=host, Signature=00\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head + body)
        self.buf = b""
        self.status = None
        self.headers = {}
        self.chunk_left = 0
        self.body_done = False
        self.es = EventStreamBuffer()

    def _recv(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        return self.status

    def _body_bytes(self):
        """The next piece of the (chunked) body; b"" at its end."""
        while True:
            if self.body_done:
                return b""
            if self.chunk_left == 0:
                while b"\r\n" not in self.buf:
                    self._recv()
                line, self.buf = self.buf.split(b"\r\n", 1)
                if not line:  # the CRLF after a chunk
                    continue
                self.chunk_left = int(line.split(b";")[0], 16)
                if self.chunk_left == 0:
                    self.body_done = True
                    return b""
            if not self.buf:
                self._recv()
            piece = self.buf[: self.chunk_left]
            self.buf = self.buf[len(piece) :]
            self.chunk_left -= len(piece)
            return piece

    def messages(self):
        """Decoded event-stream messages until the body ends: (message-type, event-type or
        exception-type, payload as JSON, all headers)."""
        while True:
            for msg in self.es:
                h = msg.headers
                kind = h.get(":message-type")
                etype = h.get(":event-type") if kind == "event" else h.get(":exception-type")
                yield kind, etype, json.loads(msg.payload) if msg.payload else {}, h
            piece = self._body_bytes()
            if not piece:
                return
            self.es.add_data(piece)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def decode_record_data(rec):
    return base64.b64decode(rec["Data"])


# -- KPL aggregation -------------------------------------------------------------------------------


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, wire, payload):
    key = _varint((num << 3) | wire)
    if wire == 0:
        return key + _varint(payload)
    return key + _varint(len(payload)) + payload


def kpl_protobuf(records, ehk_table=()):
    """AggregatedRecord bytes for records [(pk, data) or (pk, data, ehk_index)]; the partition key
    table holds each distinct key once, in order of first use."""
    pk_table = []
    body = b""
    recs = b""
    for rec in records:
        pk, data = rec[0], rec[1]
        if pk not in pk_table:
            pk_table.append(pk)
        r = _field(1, 0, pk_table.index(pk))
        if len(rec) > 2 and rec[2] is not None:
            r += _field(2, 0, rec[2])
        r += _field(3, 2, data)
        recs += _field(3, 2, r)
    for pk in pk_table:
        body += _field(1, 2, pk.encode())
    for ehk in ehk_table:
        body += _field(2, 2, str(ehk).encode())
    return body + recs


def kpl_aggregate(records, ehk_table=(), bad_md5=False):
    pb = kpl_protobuf(records, ehk_table)
    digest = hashlib.md5(pb).digest()
    if bad_md5:
        digest = bytes([digest[0] ^ 0xFF]) + digest[1:]
    return KPL_MAGIC + pb + digest


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


# -- raw HTTP/2 SubscribeToShard (h2c prior knowledge, or TLS with ALPN h2) ---------------------------


class H2Subscription:
    """SubscribeToShard over HTTP/2 with the sans-IO `h2` library. grant_window=False keeps received
    DATA unacknowledged, so the server runs out of HTTP/2 flow-control window (64 KiB) even while
    the socket is being read; pump_in_background() reads the socket in a thread meanwhile."""

    def __init__(self, host, port, consumer_arn, shard_id, position, tls_ca=None, server_hostname="localhost",
                 timeout=30, grant_window=True):
        import h2.config
        import h2.connection

        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls_ca:
            import ssl

            ctx = ssl.create_default_context(cafile=tls_ca)
            ctx.set_alpn_protocols(["h2"])
            self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
            assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sid = self.conn.get_next_available_stream_id()
        body = json.dumps({"ConsumerARN": consumer_arn, "ShardId": shard_id, "StartingPosition": position}).encode()
        self.conn.send_headers(
            self.sid,
            [
                (":method", "POST"),
                (":scheme", "https" if tls_ca else "http"),
                (":authority", f"{server_hostname if tls_ca else host}:{port}"),
                (":path", "/"),
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "Kinesis_20131202.SubscribeToShard"),
                ("content-length", str(len(body))),
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDSTRAITTEST/20250101/us-east-1/kinesis/aws4_request, "
                    "SignedHeaders=host, Signature=00",
                ),
            ],
        )
        self.conn.send_data(self.sid, body, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        self.grant = grant_window
        self.unacked = 0
        self.received = 0
        self.status = None
        self.headers = {}
        self.ended = False
        self.reset = None
        self.es = EventStreamBuffer()
        self._lock = threading.Lock()
        self._stop = None
        self._thread = None

    def _pump(self):
        import h2.events

        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            return
        if not data:
            self.ended = True
            return
        with self._lock:
            for ev in self.conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == self.sid:
                    self.headers = dict(ev.headers)
                    self.status = int(self.headers[":status"])
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == self.sid:
                    self.es.add_data(ev.data)
                    self.received += len(ev.data)
                    if self.grant:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    else:
                        self.unacked += ev.flow_controlled_length
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == self.sid:
                    self.ended = True
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == self.sid:
                    self.reset = ev.error_code
                    self.ended = True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.ended = True
            out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def read_head(self):
        while self.status is None and not self.ended:
            self._pump()
        return self.status

    def pump_in_background(self):
        """Keep reading the socket (without granting window unless grant_window) in a thread."""
        self._stop = threading.Event()
        self.sock.settimeout(0.2)

        def loop():
            while not self._stop.is_set() and not self.ended:
                self._pump()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_background(self, timeout=30):
        if self._thread:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.sock.settimeout(timeout)

    def open_window(self):
        """Acknowledge everything received so far and from now on."""
        with self._lock:
            self.grant = True
            if self.unacked:
                self.conn.acknowledge_received_data(self.unacked, self.sid)
                self.unacked = 0
            out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def messages(self):
        while True:
            for msg in self.es:
                h = msg.headers
                kind = h.get(":message-type")
                etype = h.get(":event-type") if kind == "event" else h.get(":exception-type")
                yield kind, etype, json.loads(msg.payload) if msg.payload else {}, h
            if self.ended:
                return
            self._pump()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
