"""Random frames for every AMQP method a client may send, over raw sockets to the
sanitizer build: each one is answered, refused with a channel or connection
close, or ignored, the broker never crashes (the fixture checks the log for
sanitizer reports), and a real client is served afterwards. A fixed seed keeps
failures reproducible (HERALD_FUZZ_SEED)."""
import os
import random
import socket
import struct

import pika
import pytest

import araw

# (class, method) of every method defined in methods.amqp, both directions: the
# server must cope with a client sending any of them.
METHODS = [(10, m) for m in (10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71)] + \
          [(20, m) for m in (10, 11, 20, 21, 40, 41)] + \
          [(40, m) for m in (10, 11, 20, 21, 30, 31, 40, 51)] + \
          [(50, m) for m in (10, 11, 20, 21, 30, 31, 40, 41, 50, 51)] + \
          [(60, m) for m in (10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120)] + \
          [(85, 10), (85, 11)] + [(90, m) for m in (10, 11, 20, 21, 30, 31)] + \
          [(0, 0), (60, 999), (999, 10)]


def random_args(rnd):
    """Method arguments: raw noise, or plausible fields with hostile lengths."""
    kind = rnd.randrange(4)
    if kind == 0:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 48)))
    if kind == 1:  # short fields then a table with a lying length
        return struct.pack(">H", rnd.randrange(65536)) + araw.shortstr("q" * rnd.randrange(8)) + \
            struct.pack(">BI", rnd.randrange(256), rnd.choice([0, 1, 5, 0x7FFFFFFF, 0xFFFFFFFF]))
    if kind == 2:  # a plausible queue.declare-like body with a random table
        t = araw.table({"x-message-ttl": rnd.randrange(-5, 5), "k": "v" * rnd.randrange(4)})
        return struct.pack(">H", 0) + araw.shortstr("fz") + bytes([rnd.randrange(32)]) + t
    return bytes([rnd.randrange(256)]) * rnd.randrange(1, 300)


def read_available(s):
    try:
        while s.recv(65536):
            pass
    except (socket.timeout, BlockingIOError, ConnectionError, OSError):
        pass


def test_random_frames_never_crash(amqp_broker):
    if getattr(amqp_broker, "reference", False):
        pytest.skip("a smoke test of Herald's sanitizer build")
    rnd = random.Random(int(os.environ.get("HERALD_FUZZ_SEED", "20261123")))
    sent = 0
    for cls, meth in METHODS:
        s, _ = araw.handshake(amqp_broker)
        araw.open_channel(s, 1)
        s.settimeout(0.01)
        try:
            for _ in range(12):
                ch = rnd.choice([0, 1, 1, 1, 2, 65535])
                frames = araw.method(ch, (cls, meth), random_args(rnd))
                r = rnd.randrange(6)
                if r == 0:  # a content header and body behind it, sizes lying or not
                    size = rnd.choice([0, 3, 10, 1 << 40])
                    frames += araw.content_header(ch, size, class_id=rnd.choice([60, 60, 10]),
                                                  flags=rnd.randrange(65536),
                                                  props=bytes(rnd.randrange(256) for _ in range(rnd.randrange(12))))
                    frames += araw.body_frame(ch, b"x" * rnd.randrange(0, 20))
                elif r == 1:  # a frame cut short, then garbage
                    frames = frames[:rnd.randrange(1, len(frames))] + bytes(rnd.randrange(256) for _ in range(9))
                s.sendall(frames)
                sent += 1
                read_available(s)
        except (ConnectionError, OSError):
            pass  # the broker closed this connection: allowed
        s.close()
    assert sent > 300
    # Still serving a real client, publishing and consuming.
    conn = pika.BlockingConnection(pika.ConnectionParameters(amqp_broker.host, amqp_broker.amqp_port,
                                                             socket_timeout=5))
    ch = conn.channel()
    ch.queue_declare("after-fuzz")
    ch.confirm_delivery()
    ch.basic_publish("", "after-fuzz", b"ok")
    m, _, body = ch.basic_get("after-fuzz", auto_ack=True)
    assert body == b"ok"
    conn.close()
