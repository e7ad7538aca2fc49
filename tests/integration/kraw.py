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
