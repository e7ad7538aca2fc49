"""Raw Kafka wire helpers for malformed-input tests: frames built by hand,
sent over a plain socket."""
import socket
import struct


def connect(broker, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=timeout)
    return s


def request(api_key, version, corr, body=b"", client_id=b"raw"):
    """A request frame with header v1 (no tagged fields)."""
    hdr = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    payload = hdr + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(s):
    """Returns the response payload (after the size), or None on EOF."""
    head = recv_exact(s, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">i", head)
    return recv_exact(s, n)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def closed_by_peer(s):
    """True if the broker closed the connection (EOF or reset)."""
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False if isinstance(s, socket.timeout) else True


def api_versions_v0(s, corr=1):
    s.sendall(request(18, 0, corr))
    return read_frame(s)


# ---- RecordBatch v2 built by hand (protocol guide, "Record Batch") ----

def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ _CRC_T[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def _varint(v):
    v = (v << 1) ^ (v >> 63)
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def record_batch(values, producer_id=-1, epoch=-1, base_seq=-1, ts=1_700_000_000_000):
    recs = b""
    for i, v in enumerate(values):
        body = b"\x00" + _varint(0) + _varint(i) + _varint(-1) + _varint(len(v)) + v + _varint(0)
        recs += _varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, ts, ts, producer_id, epoch, base_seq,
                            len(values)) + recs
    crc = crc32c(after_crc)
    batch_len = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, batch_len, 0, 2, crc) + after_crc


def produce_v3(topic, partition, batch, acks=-1):
    t = topic.encode()
    body = struct.pack(">hhi", -1, acks, 10000)
    body += struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">iii", 1, partition, len(batch)) + batch
    return body


def parse_produce_v3(resp, topic):
    """Returns (error_code, base_offset) of the single partition."""
    off = 4 + 4 + 2 + len(topic) + 4 + 4
    err, base = struct.unpack(">hq", resp[off:off + 10])
    return err, base


def init_producer_id(s, corr=1):
    s.sendall(request(22, 0, corr, struct.pack(">hi", -1, 60000)))
    resp = read_frame(s)
    _, _, err, pid, epoch = struct.unpack(">iihqh", resp[:20])
    assert err == 0
    return pid, epoch
