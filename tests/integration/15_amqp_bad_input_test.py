"""Malformed AMQP 0-9-1 input over raw sockets: the broker answers with the
right connection.close (or closes the socket where RabbitMQ does), and keeps
serving other clients. Every expected code and text below was checked against
RabbitMQ 3.10.8; RabbitMQ prefixes reply-text with the code's name."""
import socket
import struct
import time
import uuid

import pika
import pytest

import araw
from amqp_util import time_limit



@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(60):
        yield


def assert_still_serving(b):
    """A fresh pika connection can declare, publish and get."""
    params = pika.ConnectionParameters(host=b.host, port=b.amqp_port, connection_attempts=1,
                                       socket_timeout=5, stack_timeout=10, blocked_connection_timeout=10,
                                       credentials=pika.PlainCredentials("guest", "guest"))
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.basic_publish("", q, b"still-here")
        method, _, body = ch.basic_get(q, auto_ack=True)
        assert method is not None and body == b"still-here"
    finally:
        conn.close()


def declare_args(queue="", passive=False, durable=False, exclusive=False, auto_delete=False, args=None):
    bits = (1 if passive else 0) | (2 if durable else 0) | (4 if exclusive else 0) | (8 if auto_delete else 0)
    return struct.pack(">H", 0) + araw.shortstr(queue) + struct.pack(">B", bits) + araw.table(args or {})


# ---- protocol header ----

@pytest.mark.parametrize("header", [
    b"GET / HTTP/1.1\r\n\r\n",          # not AMQP at all
    b"AMQP\x00\x01\x00\x00",            # AMQP 1.0
    b"AMQP\x00\x00\x09\x02",            # unknown 0-9 revision
    b"AMQP\x00\x00\x0a\x00",            # 0-10
])
def test_wrong_protocol_header_gets_091_header_and_close(amqp_broker, header):
    s = araw.connect(amqp_broker)
    s.sendall(header)
    got = araw.recv_exact(s, 8)
    assert got == b"AMQP\x00\x00\x09\x01"
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


def test_good_header_gets_connection_start(amqp_broker):
    s = araw.connect(amqp_broker)
    s.sendall(araw.PROTOCOL_HEADER)
    ch, cm, args = araw.read_method(s)
    assert (ch, cm) == (0, araw.CONNECTION_START)
    assert args[:2] == b"\x00\x09"
    # mechanisms (longstr) and locales (longstr) follow the server-properties table
    (tlen,) = struct.unpack(">I", args[2:6])
    rest = args[6 + tlen:]
    (mlen,) = struct.unpack(">I", rest[:4])
    mechanisms = rest[4:4 + mlen].decode().split()
    assert "PLAIN" in mechanisms
    (llen,) = struct.unpack(">I", rest[4 + mlen:8 + mlen])
    assert "en_US" in rest[8 + mlen:8 + mlen + llen].decode().split()
    s.close()


# ---- authentication ----

@pytest.mark.parametrize("user,password", [("guest", "wrong"), ("no-such-user-" + uuid.uuid4().hex[:6], "x")])
def test_bad_credentials_get_access_refused_403(amqp_broker, user, password):
    # The client advertises authentication_failure_close, so the server must say why
    # with connection.close 403 instead of just dropping the socket.
    s = araw.connect(amqp_broker)
    s.sendall(araw.PROTOCOL_HEADER)
    assert araw.read_method(s)[1] == araw.CONNECTION_START
    s.sendall(araw.start_ok(user, password))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN.
    # For details see the broker logfile.', class 0, method 0
    assert code == 403
    assert text.startswith("ACCESS_REFUSED")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


def test_pika_wrong_password_raises_probable_authentication_error(amqp_broker):
    params = pika.ConnectionParameters(host=amqp_broker.host, port=amqp_broker.amqp_port, connection_attempts=1,
                                       socket_timeout=5, stack_timeout=10,
                                       credentials=pika.PlainCredentials("guest", "nope"))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED" in str(e.value)
    assert_still_serving(amqp_broker)


def test_unknown_sasl_mechanism_closes_socket(amqp_broker):
    # RabbitMQ closes the socket without connection.close (a handshake error before
    # tune; it logs "unknown authentication mechanism 'FOO'").
    s = araw.connect(amqp_broker)
    s.sendall(araw.PROTOCOL_HEADER)
    assert araw.read_method(s)[1] == araw.CONNECTION_START
    props = araw.table({"capabilities": {"authentication_failure_close": True}})
    s.sendall(araw.method(0, araw.CONNECTION_START_OK,
                          props + araw.shortstr("FOO") + araw.longstr(b"x") + araw.shortstr("en_US")))
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


def test_unknown_vhost_not_allowed_530(amqp_broker):
    s = araw.connect(amqp_broker)
    s.sendall(araw.PROTOCOL_HEADER)
    araw.read_method(s)
    s.sendall(araw.start_ok())
    ch, cm, args = araw.read_method(s)
    assert cm == araw.CONNECTION_TUNE
    cmax, fmax, _ = struct.unpack(">HIH", args[:8])
    s.sendall(araw.method(0, araw.CONNECTION_TUNE_OK, struct.pack(">HIH", cmax, fmax, 0)))
    s.sendall(araw.method(0, araw.CONNECTION_OPEN, araw.shortstr("no-such-vhost") + araw.shortstr("") + b"\x00"))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'NOT_ALLOWED - vhost no-such-vhost not found', class 10 method 40
    assert (code, cls, meth) == (530, 10, 40)
    assert text.startswith("NOT_ALLOWED")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


def test_tune_ok_frame_max_below_minimum_closes_socket(amqp_broker):
    # frame-max below the spec minimum 4096: RabbitMQ drops the socket (handshake error).
    s = araw.connect(amqp_broker)
    s.sendall(araw.PROTOCOL_HEADER)
    araw.read_method(s)
    s.sendall(araw.start_ok())
    assert araw.read_method(s)[1] == araw.CONNECTION_TUNE
    s.sendall(araw.method(0, araw.CONNECTION_TUNE_OK, struct.pack(">HIH", 2047, 1000, 0)))
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


# ---- framing errors ----

def test_bad_frame_end_is_frame_error_501(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.QUEUE_DECLARE, declare_args("x"), end=0x41))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'FRAME_ERROR - type 1, all octets = <<...>>: {invalid_frame_end_marker,65}', 0, 0
    assert code == 501
    assert text.startswith("FRAME_ERROR")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


@pytest.mark.parametrize("frame_max", [None, 4096])
def test_frame_larger_than_frame_max_is_frame_error_501(amqp_broker, frame_max):
    s, tune = araw.handshake(amqp_broker, frame_max=frame_max)
    araw.open_channel(s, 1)
    # Only the frame header: the size alone must be refused. (RabbitMQ tolerates a
    # payload of up to frame-max itself, 8 octets over the limit, so exceed it clearly.)
    size = tune["frame_max"] + 1000
    s.sendall(struct.pack(">BHI", araw.FRAME_METHOD, 1, size))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,132072,131064}', 0, 0
    assert code == 501
    assert text.startswith("FRAME_ERROR")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


def test_unknown_frame_type_is_frame_error_501(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.frame(7, 1, b"abc"))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'FRAME_ERROR - type 7, all octets = <<"abc">>: unknown_frame', 0, 0
    assert code == 501
    assert text.startswith("FRAME_ERROR")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


def test_method_frame_too_short_for_ids_is_frame_error_501(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.frame(araw.FRAME_METHOD, 1, b"\x00\x32"))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'FRAME_ERROR - type 1, all octets = <<0,50>>: unknown_frame', 0, 0
    assert code == 501
    assert text.startswith("FRAME_ERROR")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


@pytest.mark.parametrize("args", [
    b"\x00\x00\x10abc",                                                     # shortstr runs past the end
    b"\x00\x00" + araw.shortstr("q") + b"\x00" + struct.pack(">I", 100) + b"abc",  # table length overrun
    b"\x00\x00" + araw.shortstr("q") + b"\x00" + araw.table({}) + b"extra",       # trailing garbage
], ids=["truncated-shortstr", "table-overrun", "trailing-bytes"])
def test_undecodable_method_arguments_are_frame_error_501(amqp_broker, args):
    # The spec suggests 502 SYNTAX_ERROR; RabbitMQ answers 501 FRAME_ERROR
    # 'FRAME_ERROR - cannot decode <<...>>' with class 50 method 10.
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.QUEUE_DECLARE, args))
    code, text, cls, meth = araw.expect_connection_close(s)
    assert (code, cls, meth) == (501, 50, 10)
    assert text.startswith("FRAME_ERROR")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


@pytest.mark.parametrize("cm", [(99, 1), (50, 99), (60, 99)], ids=["class-99", "queue-99", "basic-99"])
def test_unknown_class_or_method_closes_connection(amqp_broker, cm):
    # RabbitMQ 3.10.8 sends NO connection.close here: its reader process crashes with
    # {unknown_method_id, {C, M}} and the socket is closed (often reset). A
    # connection.close 540 NOT_IMPLEMENTED (or 503 COMMAND_INVALID) before closing is
    # accepted too, as the politer behaviour Herald may choose.
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, cm))
    s.settimeout(5)
    try:
        m = araw.read_method(s)
    except (ConnectionResetError, BrokenPipeError):
        m = None
    if m is not None:
        ch, got, args = m
        assert got == araw.CONNECTION_CLOSE, got
        assert araw.parse_close(args)[0] in (540, 503)
        s.sendall(araw.method(0, araw.CONNECTION_CLOSE_OK))
        assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


# ---- channel errors ----

def test_method_on_unopened_channel_is_channel_error_504(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    s.sendall(araw.method(5, araw.QUEUE_DECLARE, declare_args("")))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: "CHANNEL_ERROR - expected 'channel.open'", class 50 method 10
    assert (code, cls, meth) == (504, 50, 10)
    assert text.startswith("CHANNEL_ERROR")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


def test_channel_open_twice_is_channel_error_504(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.CHANNEL_OPEN, araw.shortstr("")))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: "CHANNEL_ERROR - second 'channel.open' seen", class 20 method 10
    assert (code, cls, meth) == (504, 20, 10)
    assert text.startswith("CHANNEL_ERROR")
    s.close()
    assert_still_serving(amqp_broker)


@pytest.mark.parametrize("cm,args", [
    (araw.CHANNEL_OPEN, araw.shortstr("")),
    (araw.QUEUE_DECLARE, declare_args("")),
], ids=["channel.open", "queue.declare"])
def test_channel_method_on_channel_zero_is_channel_error_504(amqp_broker, cm, args):
    s, _ = araw.handshake(amqp_broker)
    s.sendall(araw.method(0, cm, args))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'CHANNEL_ERROR - unexpected method in connection state running', class/method of the frame
    assert (code, (cls, meth)) == (504, cm)
    assert text.startswith("CHANNEL_ERROR")
    s.close()
    assert_still_serving(amqp_broker)


def test_connection_method_on_a_channel_is_command_invalid_503(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.CONNECTION_OPEN, araw.shortstr("/") + araw.shortstr("") + b"\x00"))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'COMMAND_INVALID - unimplemented method', class 10 method 40
    assert (code, cls, meth) == (503, 10, 40)
    assert text.startswith("COMMAND_INVALID")
    s.close()
    assert_still_serving(amqp_broker)


def test_more_channels_than_channel_max_is_not_allowed_530(amqp_broker):
    s, tune = araw.handshake(amqp_broker, channel_max=2)
    araw.open_channel(s, 1)
    araw.open_channel(s, 2)
    s.sendall(araw.method(3, araw.CHANNEL_OPEN, araw.shortstr("")))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'NOT_ALLOWED - number of channels opened (2) has reached the negotiated
    # channel_max (2)', class 0 method 0
    assert code == 530
    assert text.startswith("NOT_ALLOWED")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


def test_channel_max_counts_open_channels_not_channel_ids(amqp_broker):
    # RabbitMQ treats channel-max as a limit on the number of open channels: a channel
    # id above it opens fine while fewer channels are open, and a closed channel's
    # slot is free again. (The spec's wording reads like an id range; RabbitMQ is the
    # reference clients were written against.)
    s, tune = araw.handshake(amqp_broker, channel_max=2)
    araw.open_channel(s, 1)
    araw.open_channel(s, 7)
    s.sendall(araw.method(7, araw.CHANNEL_CLOSE, struct.pack(">H", 200) + araw.shortstr("bye")
                          + struct.pack(">HH", 0, 0)))
    ch, cm, _ = araw.read_method(s)
    assert (ch, cm) == (7, araw.CHANNEL_CLOSE_OK)
    araw.open_channel(s, 9)
    s.close()


def test_content_header_without_publish_is_unexpected_frame_505(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.content_header(1, 5))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'UNEXPECTED_FRAME - expected method frame, got non method frame instead', 0, 0
    assert code == 505
    assert text.startswith("UNEXPECTED_FRAME")
    assert araw.closed_by_peer(s)
    s.close()
    assert_still_serving(amqp_broker)


def test_body_without_publish_is_unexpected_frame_505(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.body_frame(1, b"hello"))
    code, text, cls, meth = araw.expect_connection_close(s)
    assert code == 505
    assert text.startswith("UNEXPECTED_FRAME")
    s.close()
    assert_still_serving(amqp_broker)


def test_method_instead_of_content_header_is_unexpected_frame_505(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.BASIC_PUBLISH, araw.publish_args("", "x"))
              + araw.method(1, araw.QUEUE_DECLARE, declare_args("")))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'UNEXPECTED_FRAME - expected content header for class 60, got non content
    # header frame instead', class 60 method 40
    assert (code, cls, meth) == (505, 60, 40)
    assert text.startswith("UNEXPECTED_FRAME")
    s.close()
    assert_still_serving(amqp_broker)


def test_hand_built_publish_round_trips(amqp_broker):
    """Control case: the hand-built frames are right, so the errors above are about
    the one broken thing each sends."""
    q = "raw-" + uuid.uuid4().hex
    s, tune = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.QUEUE_DECLARE, declare_args(q, auto_delete=False)))
    ch, cm, args = araw.read_method(s)
    assert cm == araw.QUEUE_DECLARE_OK
    assert args[1:1 + args[0]].decode() == q
    body = b"x" * (tune["frame_max"] + 10)  # two body frames
    part = tune["frame_max"] - 8
    s.sendall(araw.method(1, araw.BASIC_PUBLISH, araw.publish_args("", q))
              + araw.content_header(1, len(body))
              + araw.body_frame(1, body[:part]) + araw.body_frame(1, body[part:]))
    s.sendall(araw.method(0, araw.CONNECTION_CLOSE, struct.pack(">H", 200) + araw.shortstr("bye")
                          + struct.pack(">HH", 0, 0)))
    ch, cm, _ = araw.read_method(s)
    assert (ch, cm) == (0, araw.CONNECTION_CLOSE_OK)
    s.close()
    params = pika.ConnectionParameters(host=amqp_broker.host, port=amqp_broker.amqp_port, connection_attempts=1,
                                       socket_timeout=5, stack_timeout=10,
                                       credentials=pika.PlainCredentials("guest", "guest"))
    conn = pika.BlockingConnection(params)
    try:
        c = conn.channel()
        method, _, got = c.basic_get(q, auto_ack=True)
        assert method is not None and got == body
        c.queue_delete(q)
    finally:
        conn.close()


# ---- heartbeats ----

def test_silent_client_is_dropped_after_missed_heartbeats(amqp_broker):
    # Spec 4.2.7: after missing heartbeats a peer closes the socket without the
    # close handshake. RabbitMQ with heartbeat 1 s: heartbeats every ~0.5 s, socket
    # reset ~3 s after the client fell silent.
    s, tune = araw.handshake(amqp_broker, heartbeat=1)
    assert tune["server"]["heartbeat"] > 0  # the server proposes heartbeats
    s.settimeout(10)
    t0 = time.monotonic()
    beats = 0
    try:
        while True:
            f = araw.read_frame(s)
            if f is None:
                break
            ftype, channel, payload = f
            assert (ftype, channel, payload) == (araw.FRAME_HEARTBEAT, 0, b""), f
            beats += 1
    except (ConnectionResetError, BrokenPipeError):
        pass
    end = time.monotonic() - t0
    assert beats >= 2
    assert end < 8, end
    s.close()
    assert_still_serving(amqp_broker)


def test_client_sending_heartbeats_stays_connected(amqp_broker):
    s, _ = araw.handshake(amqp_broker, heartbeat=1)
    s.settimeout(0.25)
    t0 = time.monotonic()
    beats = b""
    while time.monotonic() - t0 < 4:
        s.sendall(araw.frame(araw.FRAME_HEARTBEAT, 0, b""))
        try:
            data = s.recv(4096)
            assert data, "closed while the client was sending heartbeats"
            beats += data
        except socket.timeout:
            pass
    assert beats.count(araw.frame(araw.FRAME_HEARTBEAT, 0, b"")) >= 3
    assert beats == araw.frame(araw.FRAME_HEARTBEAT, 0, b"") * (len(beats) // 8)  # nothing but heartbeats
    araw.open_channel(s, 1)  # still fully usable
    s.close()


def test_heartbeat_on_nonzero_channel_is_unexpected_frame_505(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.frame(araw.FRAME_HEARTBEAT, 1, b""))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'UNEXPECTED_FRAME - type 8, all octets = <<>>', 0, 0
    assert code == 505
    assert text.startswith("UNEXPECTED_FRAME")
    s.close()
    assert_still_serving(amqp_broker)


def test_heartbeat_with_payload_is_frame_error_501(amqp_broker):
    s, _ = araw.handshake(amqp_broker)
    s.sendall(araw.frame(araw.FRAME_HEARTBEAT, 0, b"xx"))
    code, text, cls, meth = araw.expect_connection_close(s)
    # RabbitMQ: 'FRAME_ERROR - type 8, all octets = <<"xx">>: unknown_frame', 0, 0
    assert code == 501
    assert text.startswith("FRAME_ERROR")
    s.close()
    assert_still_serving(amqp_broker)


def test_no_heartbeats_when_negotiated_off(amqp_broker):
    s, _ = araw.handshake(amqp_broker, heartbeat=0)
    s.settimeout(2.5)
    with pytest.raises(socket.timeout):
        s.recv(16)  # nothing at all, and not closed
    araw.open_channel(s, 1)
    s.close()


def test_cancel_of_unknown_consumer_tag_answers_cancel_ok(amqp_broker):
    # (pika drops such a cancel client-side, so it is sent by hand.)
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, (60, 30), araw.shortstr("no-such-tag") + b"\x00"))
    ch, cm, args = araw.read_method(s)
    assert (ch, cm) == (1, (60, 31))
    assert args == araw.shortstr("no-such-tag")
    araw.open_channel(s, 2)  # the connection is fine
    s.close()


# ---- content and login edge cases (Herald's own answers; not compared with RabbitMQ) ----

def herald_only(b):
    if getattr(b, "reference", False):
        pytest.skip("checks Herald's own limits and codes")


def test_body_frames_beyond_declared_size_are_frame_error(amqp_broker):
    herald_only(amqp_broker)
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.BASIC_PUBLISH, araw.publish_args("", "q"))
              + araw.content_header(1, 4) + araw.body_frame(1, b"12345678"))
    code, text, _, _ = araw.expect_connection_close(s)
    assert code == 501 and text.startswith("FRAME_ERROR"), (code, text)
    s.close()
    assert_still_serving(amqp_broker)


def test_content_header_of_another_class_is_frame_error(amqp_broker):
    herald_only(amqp_broker)
    s, _ = araw.handshake(amqp_broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.BASIC_PUBLISH, araw.publish_args("", "q"))
              + araw.content_header(1, 3, class_id=50))
    code, text, _, _ = araw.expect_connection_close(s)
    assert code == 501, (code, text)
    s.close()
    assert_still_serving(amqp_broker)


def test_declared_body_over_the_limit_closes_the_channel_without_allocating(broker_factory):
    # 2^40 bytes declared: refused from the header alone, nothing of that size allocated
    # (the sanitizer build would abort on such an allocation).
    b = broker_factory("--amqp-max-message-bytes", "1000")
    b.host = "127.0.0.1"
    s, _ = araw.handshake(b)
    araw.open_channel(s, 1)
    for size in (1001, 1 << 40):
        s.sendall(araw.method(1, araw.BASIC_PUBLISH, araw.publish_args("", "q"))
                  + araw.content_header(1, size))
        code, text, _, _ = araw.expect_channel_close(s, 1)
        assert code == 406 and "larger than configured max size" in text, (code, text)
        araw.open_channel(s, 1)
    s.close()
    assert_still_serving(b)


@pytest.mark.parametrize("mechanism,response", [
    ("PLAIN", b"guest"),                        # no NUL separators
    ("PLAIN", b"\x00guest"),                    # no password part
    ("AMQPLAIN", b"\x05LOGINS\xff\xff\xff\xff"),  # a table whose string length lies
    ("AMQPLAIN", b""),                          # nothing at all
], ids=["plain-no-nul", "plain-no-password", "amqplain-lying-length", "amqplain-empty"])
def test_malformed_login_responses_are_refused(amqp_broker, mechanism, response):
    herald_only(amqp_broker)
    s = araw.connect(amqp_broker)
    s.sendall(araw.PROTOCOL_HEADER)
    ch, cm, _ = araw.read_method(s)
    assert cm == araw.CONNECTION_START
    props = araw.table({"capabilities": {"authentication_failure_close": True}})
    s.sendall(araw.method(0, araw.CONNECTION_START_OK, props + araw.shortstr(mechanism)
                          + araw.longstr(response) + araw.shortstr("en_US")))
    code, text, _, _ = araw.expect_connection_close(s)
    assert code == 403 and text.startswith("ACCESS_REFUSED"), (code, text)
    s.close()
    assert_still_serving(amqp_broker)
