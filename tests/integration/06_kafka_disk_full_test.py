"""A full disk: produce gets KAFKA_STORAGE_ERROR (56), nothing stored is
damaged, reads keep working, and produce works again once space returns.
The data directory is a small tmpfs (needs root; skipped otherwise)."""
import os
import subprocess
import tempfile

import pytest
from confluent_kafka import Consumer, TopicPartition

import kraw


@pytest.fixture
def small_fs():
    d = tempfile.mkdtemp(prefix="herald-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", d], capture_output=True)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode())
    yield d
    subprocess.run(["umount", "-l", d])
    os.rmdir(d)


def produce(s, batch, corr):
    s.sendall(kraw.request(0, 3, corr, kraw.produce_v3("full", 0, batch)))
    return kraw.parse_produce_v3(kraw.read_frame(s), "full")


def test_disk_full_refuses_produce_keeps_reads(broker_factory, small_fs):
    b = broker_factory("--segment-bytes", "262144", data=small_fs)
    s = kraw.connect(b)
    s.sendall(kraw.request(3, 1, 1, b"\x00\x00\x00\x01\x00\x04full"))
    kraw.read_frame(s)
    payload = [os.urandom(1000) for _ in range(50)]
    acked, errors = [], []
    for i in range(200):
        err, base = produce(s, kraw.record_batch(payload), 10 + i)
        if err == 0:
            acked.append(base)
        else:
            errors.append(err)
            if len(errors) >= 3:
                break
    assert acked, "some produces must succeed before the disk fills"
    assert errors and set(errors) == {56}, errors  # KAFKA_STORAGE_ERROR
    # Everything acknowledged is still readable, intact.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "full", "enable.partition.eof": True})
    c.assign([TopicPartition("full", 0, 0)])
    n = 0
    while True:
        m = c.poll(5)
        assert m is not None
        if m.error():
            break
        assert m.value() == payload[m.offset() % 50]
        n += 1
    c.close()
    assert n == len(acked) * 50
    # Space comes back: produce works again, on the same connection.
    subprocess.run(["mount", "-o", "remount,size=64m", small_fs], check=True)
    err, base = produce(s, kraw.record_batch([b"after"]), 999)
    assert err == 0 and base == n, (err, base, n)
    s.close()
