"""A full disk under AMQP: publishes that cannot be stored get basic.nack, every
message confirmed before stays intact and is delivered, and once space returns
publishing with confirms works again on the same channel. The data directory is
a small tmpfs (needs root; skipped otherwise)."""
import os
import subprocess
import tempfile
import time

import pika
import pytest


@pytest.fixture
def small_fs():
    d = tempfile.mkdtemp(prefix="herald-amqp-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", d], capture_output=True)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode())
    yield d
    subprocess.run(["umount", "-l", d])
    os.rmdir(d)


def test_disk_full_nacks_publishes_keeps_confirmed(broker_factory, small_fs):
    # The disk alarm (50 MB free by default) would block this publisher long before the
    # 3 MiB file system fills; this test is about what a full disk does, so it is off
    # (22_amqp_alarms_test.py covers the alarm).
    b = broker_factory("--segment-bytes", "262144", "--disk-free-limit", "0", data=small_fs)
    params = pika.ConnectionParameters("127.0.0.1", b.amqp_port, blocked_connection_timeout=30,
                                       socket_timeout=10)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare("full", durable=True)
    ch.confirm_delivery()
    confirmed, nacked = [], 0
    for i in range(400):
        body = b"%06d" % i + os.urandom(8000)
        try:
            ch.basic_publish("", "full", body, pika.BasicProperties(delivery_mode=2))
            confirmed.append(body)
        except pika.exceptions.NackError:
            nacked += 1
            if nacked >= 3:
                break
    assert confirmed, "some publishes must be confirmed before the disk fills"
    assert nacked == 3, "a publish that cannot be stored must be nacked"
    # The broker logs before it nacks, but the fixture's reader thread may not have read
    # the line yet when the nack arrives (seen under load).
    deadline = time.time() + 10
    while "cannot store" not in b.log() and time.time() < deadline:
        time.sleep(0.05)
    assert "cannot store" in b.log()
    # Space comes back: confirms work again on the same channel.
    subprocess.run(["mount", "-o", "remount,size=64m", small_fs], check=True)
    after = b"after" + os.urandom(100)
    ch.basic_publish("", "full", after, pika.BasicProperties(delivery_mode=2))
    # Every confirmed message is there and intact, in order; the nacked ones are
    # kept in memory (not durable), so the queue may hold them too, but a restart
    # must bring back exactly the confirmed ones.
    conn.close()
    b.restart()
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", b.amqp_port, socket_timeout=10))
    ch = conn.channel()
    got = []
    while True:
        m, _, body = ch.basic_get("full", auto_ack=True)
        if m is None:
            break
        got.append(body)
    assert got == confirmed + [after]
    conn.close()
