"""The AMQP listener: host "loopback" serves both 127.0.0.1 and ::1 on one port
(the default is loopback:5672), and a client reaches the broker over either."""
import socket

import pika
import pytest


def has_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def roundtrip(host, port, queue):
    conn = pika.BlockingConnection(pika.ConnectionParameters(host, port, socket_timeout=5))
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"via " + host.encode())
    m, _, body = ch.basic_get(queue, auto_ack=True)
    conn.close()
    return body


def test_loopback_listens_on_ipv4_and_ipv6(broker_factory):
    # Flags given later override the fixture's --amqp 127.0.0.1:0.
    b = broker_factory("--amqp", "loopback:0")
    assert roundtrip("127.0.0.1", b.amqp_port, "v4") == b"via 127.0.0.1"
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    assert roundtrip("::1", b.amqp_port, "v6") == b"via ::1"
