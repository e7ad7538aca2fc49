"""Raw AMQP 0-9-1 wire helpers for malformed-input tests: frames built by hand
with struct, sent over a plain socket (spec: amqp0-9-1.pdf §2.3 and §4.2)."""
import socket
import struct

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

# (class-id, method-id)
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
BASIC_PUBLISH = (60, 40)


# ---- field encoding ----

def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    assert len(s) < 256
    return struct.pack(">B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">I", len(s)) + s


def _value(v):
    if isinstance(v, bool):
        return b"t" + struct.pack(">B", 1 if v else 0)
    if isinstance(v, int):
        return b"l" + struct.pack(">q", v)
    if isinstance(v, (str, bytes)):
        return b"S" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    raise TypeError(type(v))


def table(d):
    body = b"".join(shortstr(k) + _value(v) for k, v in d.items())
    return struct.pack(">I", len(body)) + body


# ---- frames ----

def frame(ftype, channel, payload, end=FRAME_END):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


def method(channel, cm, args=b"", end=FRAME_END):
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *cm) + args, end=end)


def content_header(channel, body_size, class_id=60, flags=0, props=b""):
    return frame(FRAME_HEADER, channel, struct.pack(">HHQH", class_id, 0, body_size, flags) + props)


def body_frame(channel, data):
    return frame(FRAME_BODY, channel, data)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(s):
    """(type, channel, payload) or None on EOF. Asserts the frame-end octet."""
    head = recv_exact(s, 7)
    if head is None:
        return None
    ftype, channel, size = struct.unpack(">BHI", head)
    rest = recv_exact(s, size + 1)
    if rest is None:
        return None
    assert rest[-1] == FRAME_END, f"bad frame end {rest[-1]:#x}"
    return ftype, channel, rest[:-1]


def read_method(s):
    """Next non-heartbeat frame, which must be a method: (channel, (class, method), args)
    or None on EOF."""
    while True:
        f = read_frame(s)
        if f is None:
            return None
        ftype, channel, payload = f
        if ftype == FRAME_HEARTBEAT:
            continue
        assert ftype == FRAME_METHOD, f"expected a method frame, got type {ftype}"
        cls, meth = struct.unpack(">HH", payload[:4])
        return channel, (cls, meth), payload[4:]


def parse_close(args):
    """connection.close / channel.close arguments: (reply-code, reply-text, class-id, method-id)."""
    code, n = struct.unpack(">HB", args[:3])
    text = args[3:3 + n].decode()
    cls, meth = struct.unpack(">HH", args[3 + n:7 + n])
    return code, text, cls, meth


def closed_by_peer(s, timeout=5.0):
    """True if the peer closes the connection (EOF or reset) within timeout,
    discarding anything it still sends."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# ---- handshake ----

def connect(broker, timeout=5.0):
    return socket.create_connection((broker.host, broker.amqp_port), timeout=timeout)


def start_ok(user="guest", password="guest"):
    props = table({
        "product": "araw",
        "capabilities": {"authentication_failure_close": True, "basic.nack": True,
                         "consumer_cancel_notify": True, "publisher_confirms": True},
    })
    response = b"\x00" + user.encode() + b"\x00" + password.encode()
    return method(0, CONNECTION_START_OK, props + shortstr("PLAIN") + longstr(response) + shortstr("en_US"))


def handshake(broker, user="guest", password="guest", channel_max=None, frame_max=None, heartbeat=0,
              timeout=5.0):
    """Connects and negotiates up to connection.open-ok. Returns (socket, tune) where
    tune = {"channel_max":, "frame_max":, "heartbeat":} as agreed (the server's
    values unless overridden)."""
    s = connect(broker, timeout)
    s.sendall(PROTOCOL_HEADER)
    ch, cm, args = read_method(s)
    assert (ch, cm) == (0, CONNECTION_START), (ch, cm)
    assert args[:2] == b"\x00\x09", args[:2]  # version-major 0, version-minor 9
    s.sendall(start_ok(user, password))
    ch, cm, args = read_method(s)
    assert (ch, cm) == (0, CONNECTION_TUNE), (ch, cm, args)
    smax, sframe, sbeat = struct.unpack(">HIH", args[:8])
    tune = {"channel_max": smax if channel_max is None else channel_max,
            "frame_max": sframe if frame_max is None else frame_max,
            "heartbeat": heartbeat}
    s.sendall(method(0, CONNECTION_TUNE_OK,
                     struct.pack(">HIH", tune["channel_max"], tune["frame_max"], tune["heartbeat"])))
    s.sendall(method(0, CONNECTION_OPEN, shortstr("/") + shortstr("") + b"\x00"))
    ch, cm, args = read_method(s)
    assert (ch, cm) == (0, CONNECTION_OPEN_OK), (ch, cm, args)
    tune["server"] = {"channel_max": smax, "frame_max": sframe, "heartbeat": sbeat}
    return s, tune


def open_channel(s, channel):
    s.sendall(method(channel, CHANNEL_OPEN, shortstr("")))
    ch, cm, _ = read_method(s)
    assert (ch, cm) == (channel, CHANNEL_OPEN_OK), (ch, cm)


def publish_args(exchange="", routing_key="", mandatory=False, immediate=False):
    bits = (1 if mandatory else 0) | (2 if immediate else 0)
    return struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key) + struct.pack(">B", bits)


def expect_connection_close(s):
    """Reads until connection.close; returns (code, text, class, method). Sends
    close-ok back."""
    while True:
        m = read_method(s)
        assert m is not None, "connection closed without connection.close"
        ch, cm, args = m
        if cm == CONNECTION_CLOSE:
            assert ch == 0
            s.sendall(method(0, CONNECTION_CLOSE_OK))
            return parse_close(args)


def expect_channel_close(s, channel):
    """Reads until channel.close on `channel`; returns (code, text, class, method).
    Sends channel.close-ok back."""
    while True:
        m = read_method(s)
        assert m is not None, "connection closed without channel.close"
        ch, cm, args = m
        assert cm != CONNECTION_CLOSE, ("connection.close instead of channel.close", parse_close(args))
        if cm == CHANNEL_CLOSE:
            assert ch == channel, ch
            s.sendall(method(channel, CHANNEL_CLOSE_OK))
            return parse_close(args)
