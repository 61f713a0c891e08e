"""Hand-built Kafka wire frames (struct.pack) for the bad-input suite: non-flexible request
versions only (header v1), RecordBatch v2 with CRC-32C, and the few response parsers needed."""

import socket
import struct
import time

# -- CRC-32C (Castagnoli), as RecordBatch v2 uses ------------------------------------------------

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# -- primitives --------------------------------------------------------------------------------


def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def nbytes(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def array(items):
    return i32(len(items)) + b"".join(items)


def varint(v):
    """Zig-zag varint (signed), as record fields use."""
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while True:
        if z & ~0x7F:
            out.append((z & 0x7F) | 0x80)
            z >>= 7
        else:
            out.append(z)
            return bytes(out)


# -- record batch v2 -----------------------------------------------------------------------------


def record_bytes(records, first_delta=0):
    """Uncompressed v2 records of [(key or None, value or None)], length-prefixed, as a producer
    writes them (timestamp delta 0, offset deltas from first_delta)."""
    body = b""
    for i, (k, v) in enumerate(records):
        rec = i8(0) + varint(0) + varint(first_delta + i)
        rec += varint(-1) if k is None else varint(len(k)) + k
        rec += varint(-1) if v is None else varint(len(v)) + v
        rec += varint(0)  # headers
        body += varint(len(rec)) + rec
    return body


def batch_of(
    body, count, attributes=0, base_ts=None, producer_id=-1, producer_epoch=-1, base_sequence=-1, last_delta=None
):
    """A RecordBatch v2 around `body` (records, compressed or not), base offset 0, valid CRC:
    the header says what the caller says, whether or not the body agrees."""
    ts = int(time.time() * 1000) if base_ts is None else base_ts
    after_crc = (
        i16(attributes)
        + i32(count - 1 if last_delta is None else last_delta)
        + i64(ts)
        + i64(ts)
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(count)
        + body
    )
    crc = struct.pack(">I", crc32c(after_crc))
    rest = i32(-1) + i8(2) + crc + after_crc  # partition leader epoch, magic, crc
    return i64(0) + i32(len(rest)) + rest


def record_batch(records, base_ts=None, producer_id=-1, producer_epoch=-1, base_sequence=-1):
    """An uncompressed RecordBatch v2 of [(key or None, value or None)], base offset 0."""
    return batch_of(
        record_bytes(records),
        len(records),
        base_ts=base_ts,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )


CRC_AT = 8 + 4 + 4 + 1  # offset of the CRC field in a batch
ATTRS_AT = CRC_AT + 4  # first byte the CRC covers


# -- requests (header v1: api_key, api_version, correlation_id, client_id) -----------------------


def frame(api_key, version, correlation_id, body, client_id="strait-raw"):
    msg = i16(api_key) + i16(version) + i32(correlation_id) + string(client_id) + body
    return i32(len(msg)) + msg


def frame_v2(api_key, version, correlation_id, body, client_id="strait-raw"):
    """Request header v2 (flexible versions): header v1 plus an empty tagged-field section."""
    msg = i16(api_key) + i16(version) + i32(correlation_id) + string(client_id) + b"\x00" + body
    return i32(len(msg)) + msg


def compact_string(s):
    b = s.encode()
    return bytes([len(b) + 1]) + b  # uvarint length + 1 (short strings only)


def api_versions(correlation_id, version=0):
    """ApiVersions v0-v2 as they are; v3 and above (flexible) with header v2 and a v3 body, as a
    client that knows a newer version than the broker sends it."""
    if version <= 2:
        return frame(18, version, correlation_id, b"")
    body = compact_string("strait-raw") + compact_string("1.0") + b"\x00"
    return frame_v2(18, version, correlation_id, body)


def produce_v7(correlation_id, topic_partitions, acks=-1, timeout_ms=10000):
    """topic_partitions: {topic: {partition: batch bytes}}."""
    topics = [
        string(t) + array([i32(p) + nbytes(b) for p, b in parts.items()]) for t, parts in topic_partitions.items()
    ]
    body = string(None) + i16(acks) + i32(timeout_ms) + array(topics)
    return frame(0, 7, correlation_id, body)


def init_producer_id_v0(correlation_id, transactional_id=None, timeout_ms=60000):
    return frame(22, 0, correlation_id, string(transactional_id) + i32(timeout_ms))


def parse_init_producer_id_v0(r):
    r.i32()  # throttle
    return {"error": r.i16(), "producer_id": r.i64(), "producer_epoch": r.i16()}


def fetch_v4(correlation_id, topic, partition, offset, max_wait_ms=100, partition_max_bytes=1 << 20):
    body = (
        i32(-1)  # replica id
        + i32(max_wait_ms)
        + i32(1)  # min bytes
        + i32(50 << 20)  # max bytes
        + i8(0)  # read uncommitted
        + array([string(topic) + array([i32(partition) + i64(offset) + i32(partition_max_bytes)])])
    )
    return frame(1, 4, correlation_id, body)


def list_offsets_v1(correlation_id, topic, partitions, timestamp=-1):
    body = i32(-1) + array([string(topic) + array([i32(p) + i64(timestamp) for p in partitions])])
    return frame(2, 1, correlation_id, body)


def metadata_v1(correlation_id, topics):
    return frame(3, 1, correlation_id, array([string(t) for t in topics]))


# -- responses ---------------------------------------------------------------------------------


class Reader:
    def __init__(self, data):
        self.d = data
        self.at = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.at)[0]
        self.at += struct.calcsize(fmt)
        return v

    def i8(self):
        return self.take(">b")

    def i16(self):
        return self.take(">h")

    def i32(self):
        return self.take(">i")

    def i64(self):
        return self.take(">q")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.d[self.at : self.at + n].decode()
        self.at += n
        return s

    def nbytes(self):
        n = self.i32()
        if n < 0:
            return None
        b = self.d[self.at : self.at + n]
        self.at += n
        return b

    def array(self, item):
        n = self.i32()
        return None if n < 0 else [item(self) for _ in range(n)]


def parse_api_versions_v0(r):
    err = r.i16()
    apis = r.array(lambda r: (r.i16(), r.i16(), r.i16()))
    return err, apis


def parse_produce_v7(r):
    def part(r):
        return {
            "partition": r.i32(),
            "error": r.i16(),
            "base_offset": r.i64(),
            "log_append_time": r.i64(),
            "log_start_offset": r.i64(),
        }

    topics = r.array(lambda r: (r.string(), r.array(part)))
    r.i32()  # throttle
    return {(t, p["partition"]): p for t, parts in topics for p in parts}


def parse_fetch_v4(r):
    r.i32()  # throttle

    def part(r):
        out = {"partition": r.i32(), "error": r.i16(), "high_watermark": r.i64(), "last_stable": r.i64()}
        r.array(lambda r: (r.i64(), r.i64()))
        out["records"] = r.nbytes()
        return out

    topics = r.array(lambda r: (r.string(), r.array(part)))
    return {(t, p["partition"]): p for t, parts in topics for p in parts}


def parse_list_offsets_v1(r):
    def part(r):
        return {"partition": r.i32(), "error": r.i16(), "timestamp": r.i64(), "offset": r.i64()}

    topics = r.array(lambda r: (r.string(), r.array(part)))
    return {(t, p["partition"]): p for t, parts in topics for p in parts}


def parse_metadata_v1(r):
    """{topic: (error, partition count)} from a Metadata v1 response."""

    def broker(r):
        return (r.i32(), r.string(), r.i32(), r.string())

    def part(r):
        return (r.i16(), r.i32(), r.i32(), r.array(lambda r: r.i32()), r.array(lambda r: r.i32()))

    r.array(broker)
    r.i32()  # controller id
    topics = r.array(lambda r: (r.i16(), r.string(), r.i8(), r.array(part)))
    return {name: (error, len(parts)) for error, name, _, parts in topics}


# -- a connection ------------------------------------------------------------------------------


class RawConn:
    def __init__(self, bootstrap, timeout=10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        self.s.sendall(data)

    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def response(self, correlation_id):
        """Reads one response frame; checks the correlation id; returns a Reader on the body."""
        (n,) = struct.unpack(">i", self._read_exact(4))
        data = self._read_exact(n)
        r = Reader(data)
        got = r.i32()
        assert got == correlation_id, f"correlation id {got} != {correlation_id}"
        return r

    def request(self, data, correlation_id):
        self.send(data)
        return self.response(correlation_id)

    def closed_by_peer(self, timeout=10.0):
        """True once the server closes the connection (EOF or reset) without sending anything."""
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        if data:
            raise AssertionError(f"expected a close, got {len(data)} bytes: {data[:40]!r}")
        return True

    def close(self):
        self.s.close()
