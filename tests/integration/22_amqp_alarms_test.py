"""Resource alarms and connection.blocked, as RabbitMQ 3.10.8 does them (checked against it;
see docs/amqp.md): while the memory or the disk alarm is on, a connection that publishes
stops being read at its next publish and, if its client advertised the capability, gets
connection.blocked ("low on memory" / "low on disk"); connection.unblocked follows once every
alarm has cleared. Connections that only consume are never blocked, so consumers keep
draining and acking. Kafka clients are not throttled by the alarms.

Publishers run on their own pika SelectConnection in a thread, so that the blocked and
unblocked callbacks fire when the frames arrive (a BlockingConnection would hold them back
until its publish returned). Every load loop is bounded in messages and time."""
import os
import subprocess
import tempfile
import threading
import time

import pika
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from amqp_util import params, time_limit, uid


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(150):
        yield


# A client that does not advertise connection.blocked (pika replaces its own
# capabilities table with this one).
NO_BLOCKED_CAPABILITY = {"capabilities": {"publisher_confirms": True, "basic.nack": True,
                                          "consumer_cancel_notify": True,
                                          "authentication_failure_close": True}}


def wait_for(pred, timeout, what, step=0.05, detail=None):
    """Polls pred until it is true; fails after timeout seconds (with detail(), if given)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f": {detail()}" if detail else ""))


class Publisher:
    """A confirming publisher: keeps up to `window` messages unconfirmed and publishes
    `body` to the default exchange with `routing_key` until it has published `limit`
    messages. Records confirms and the connection.blocked / unblocked notifications
    with their times. Runs its SelectConnection's ioloop in a thread."""

    def __init__(self, broker, routing_key, body, limit, persistent=False, window=16,
                 client_properties=None):
        kw = {"blocked_connection_timeout": None}  # stay connected however long it is blocked
        if client_properties:
            kw["client_properties"] = client_properties
        self.params = params(broker, **kw)
        self.routing_key = routing_key
        self.body = body
        self.props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
        self.window = window
        self.limit = limit
        self.published = 0
        self.confirmed = 0
        self.nacked = 0
        self.outstanding = set()
        self.blocked = []    # (time, reason)
        self.unblocked = []  # times
        self.confirm_times = []
        self.error = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(15), "publisher did not open"
        assert self.error is None, self.error

    # -- ioloop thread --
    def _run(self):
        try:
            self.conn = pika.SelectConnection(self.params, on_open_callback=self._on_open,
                                              on_open_error_callback=self._on_error,
                                              on_close_callback=self._on_close)
            self.conn.add_on_connection_blocked_callback(self._on_blocked)
            self.conn.add_on_connection_unblocked_callback(self._on_unblocked)
            self.conn.ioloop.start()
        except Exception as e:  # noqa: BLE001 - reported to the test thread
            self.error = e
        finally:
            self.ready.set()

    def _on_error(self, conn, err):
        self.error = err
        self.conn.ioloop.stop()

    def _on_close(self, conn, reason):
        self.closed = reason
        self.conn.ioloop.stop()

    def _on_open(self, conn):
        conn.channel(on_open_callback=self._on_channel)

    def _on_channel(self, ch):
        self.ch = ch
        ch.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _: self._started())

    def _started(self):
        self.ready.set()
        self._fill()

    def _fill(self):
        while self.published < self.limit and len(self.outstanding) < self.window and self.ch.is_open:
            self.ch.basic_publish("", self.routing_key, self.body, self.props)
            self.published += 1
            self.outstanding.add(self.published)

    def _on_confirm(self, frame):
        m = frame.method
        tags = {t for t in self.outstanding if t <= m.delivery_tag} if m.multiple else {m.delivery_tag}
        tags &= self.outstanding
        self.outstanding -= tags
        if isinstance(m, pika.spec.Basic.Ack):
            self.confirmed += len(tags)
        else:
            self.nacked += len(tags)
        self.confirm_times.append(time.time())
        self._fill()

    def _on_blocked(self, conn, frame):
        self.blocked.append((time.time(), frame.method.reason))

    def _on_unblocked(self, conn, frame):
        self.unblocked.append(time.time())

    # -- test thread --
    def call(self, fn):
        self.conn.ioloop.add_callback_threadsafe(fn)

    def publish_more(self, n):
        """Raises the limit by n and resumes publishing (on the ioloop; returns once the
        new limit is in force)."""
        done = threading.Event()

        def go():
            self.limit = self.published + n
            done.set()
            self._fill()
        self.call(go)
        assert done.wait(10), "the publisher's ioloop is stuck"

    def settled(self):
        return self.published >= self.limit and not self.outstanding

    def close(self):
        if self.thread.is_alive():
            self.call(lambda: self.conn.close() if self.conn.is_open else self.conn.ioloop.stop())
            self.thread.join(10)


def rss_bytes(broker):
    with open(f"/proc/{broker.proc.pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def assert_stalled(pub, seconds):
    """The publisher's confirms stop for `seconds` (its input is no longer read)."""
    time.sleep(0.5)  # confirms of publishes taken before the block may still be in flight
    before = pub.confirmed + pub.nacked
    time.sleep(seconds)
    assert pub.confirmed + pub.nacked == before, "a blocked publisher's messages were still taken"
    assert pub.outstanding, "the blocked publisher should be waiting for confirms"


def test_memory_alarm_blocks_publisher_consumer_keeps_draining(broker_factory, monkeypatch):
    # ASan keeps freed memory in a 256 MiB quarantine and returns free memory to the system
    # only every 5 s. Without the quarantine and with a short interval, the sanitizer build's
    # resident memory drops soon after the queue is purged, as a release build's does
    # (malloc_trim on the maintenance tick).
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    monkeypatch.setenv("ASAN_OPTIONS", asan + ":quarantine_size_mb=0:allocator_release_to_os_interval_ms=200")
    b = broker_factory("--memory-high-watermark", "128MiB")
    b.host = "127.0.0.1"
    assert rss_bytes(b) < 96 << 20, "the idle broker must start well under the watermark"
    ballast, work = uid("ballast"), uid("work")

    admin = pika.BlockingConnection(params(b))
    ach = admin.channel()
    ach.queue_declare(ballast)
    ach.queue_declare(work)
    for i in range(50):  # small messages for the consumer, queued before the alarm
        ach.basic_publish("", work, b"job-%d" % i)
    admin.close()

    # 512 KiB messages, 32 unconfirmed at a time: 128 MiB in a few hundred round trips,
    # also on a loaded machine.
    pub = Publisher(b, ballast, os.urandom(512 << 10), limit=600, window=32)
    try:
        wait_for(lambda: pub.blocked, 90, "connection.blocked",
                 detail=lambda: (pub.published, pub.confirmed, pub.nacked, pub.error, rss_bytes(b) >> 20,
                                 b.log()[-2000:]))
        assert pub.blocked[0][1] == "low on memory"
        wait_for(lambda: "memory alarm on" in b.log(), 5, "the log line")  # the log is read by a thread
        assert pub.published < 600, "blocked before the publish limit"
        assert_stalled(pub, 1.5)

        # A connection that only consumes is not blocked: it drains and acks.
        consumer = pika.BlockingConnection(params(b))
        cch = consumer.channel()
        cch.basic_qos(prefetch_count=10)
        got = []
        for method, _, body in cch.consume(work, inactivity_timeout=5):
            assert method is not None, f"consumer stalled after {len(got)} messages"
            cch.basic_ack(method.delivery_tag)
            got.append(body)
            if len(got) == 50:
                break
        cch.cancel()
        assert got == [b"job-%d" % i for i in range(50)]
        assert not pub.unblocked, "the alarm is still on: the publisher stays blocked"
        assert len(pub.blocked) == 1

        # Kafka clients are not throttled by the alarms.
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        for i in range(10):
            p.produce("alarm-k", value=b"k%d" % i)
        assert p.flush(20) == 0
        kc = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "alarm", "enable.auto.commit": False})
        kc.assign([TopicPartition("alarm-k", 0, 0)])
        kgot = []
        deadline = time.time() + 20
        while len(kgot) < 10 and time.time() < deadline:
            m = kc.poll(0.5)
            if m is not None and not m.error():
                kgot.append(m.value())
        kc.close()
        assert kgot == [b"k%d" % i for i in range(10)]

        # Memory goes back: the alarm clears, the publisher is unblocked and publishes again.
        assert not pub.unblocked
        cch.queue_purge(ballast)
        wait_for(lambda: pub.unblocked, 30, "connection.unblocked")
        wait_for(lambda: "memory alarm cleared" in b.log(), 5, "the log line")
        pub.publish_more(5)
        wait_for(pub.settled, 30, "confirms after the unblock")
        assert pub.nacked == 0
        assert pub.confirm_times[-1] > pub.unblocked[0]
        assert len(pub.blocked) == 1 and len(pub.unblocked) == 1
        consumer.close()
    finally:
        pub.close()


@pytest.fixture
def small_fs():
    d = tempfile.mkdtemp(prefix="herald-amqp-alarm-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", d], capture_output=True)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode())
    yield d
    subprocess.run(["umount", "-l", d])
    os.rmdir(d)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_disk_alarm_blocks_until_the_queue_is_deleted(broker_factory, small_fs):
    # 32 MiB of tmpfs, the alarm under 24 MiB free: 12.5 MiB of messages trip it, and the
    # file system cannot fill up however late the once-a-second check comes.
    b = broker_factory("--disk-free-limit", "24MiB", "--segment-bytes", "1m", data=small_fs)
    b.host = "127.0.0.1"
    assert free_bytes(small_fs) > 24 << 20
    q = uid("fill")
    admin = pika.BlockingConnection(params(b))
    ach = admin.channel()
    ach.queue_declare(q, durable=True)

    # Persistent 64 KiB messages to a durable queue fill the file system, and a publish
    # after the alarm (whether it came during these 200 or after) blocks the connection.
    pub = Publisher(b, q, os.urandom(64 << 10), limit=200, persistent=True)
    try:
        wait_for(lambda: pub.blocked or pub.settled(), 60, "the first 200 messages")
        if not pub.blocked:
            wait_for(lambda: "disk alarm on" in b.log(), 10, "the disk alarm")
            pub.publish_more(16)
            wait_for(lambda: pub.blocked, 10, "connection.blocked")
        assert free_bytes(small_fs) < 24 << 20
        assert pub.nacked == 0
        assert pub.blocked[0][1] == "low on disk"
        assert_stalled(pub, 1.5)

        # The admin connection never published: it is not blocked. Deleting the queue
        # frees the space, the alarm clears, the publisher is unblocked.
        ach.queue_delete(q)
        wait_for(lambda: pub.unblocked, 30, "connection.unblocked")
        wait_for(lambda: "disk alarm cleared" in b.log(), 5, "the log line")
        wait_for(pub.settled, 30, "confirms after the unblock")
        ach.queue_declare(q, durable=True)
        pub.publish_more(5)
        wait_for(pub.settled, 30, "confirms after the unblock")
        assert pub.nacked == 0
        assert pub.confirm_times[-1] > pub.unblocked[0]
        assert len(pub.blocked) == 1 and len(pub.unblocked) == 1
        assert ach.queue_declare(q, durable=True, passive=True).method.message_count == 5
        admin.close()
    finally:
        pub.close()


def test_client_without_capability_is_throttled_silently(broker_factory, small_fs):
    """Ballast in the tmpfs turns the disk alarm on and off from outside the broker."""
    b = broker_factory("--disk-free-limit", "16MiB", data=small_fs)
    b.host = "127.0.0.1"
    q = uid("silent")
    admin = pika.BlockingConnection(params(b))
    ach = admin.channel()
    ach.queue_declare(q)

    silent = Publisher(b, q, b"x" * 100, limit=20, client_properties=NO_BLOCKED_CAPABILITY)
    told = Publisher(b, q, b"y" * 100, limit=20)
    wait_for(lambda: silent.settled() and told.settled(), 20, "publishing before the alarm")

    ballast = os.path.join(small_fs, "ballast")
    with open(ballast, "wb") as f:
        f.write(b"\0" * (20 << 20))
    try:
        wait_for(lambda: "disk alarm on" in b.log(), 10, "the disk alarm")
        silent.publish_more(20)
        told.publish_more(20)
        wait_for(lambda: told.blocked, 10, "connection.blocked for the capable client")
        assert told.blocked[0][1] == "low on disk"
        assert_stalled(silent, 1.5)
        assert silent.published > silent.confirmed + silent.nacked
        # The consumer side still works during the alarm.
        assert ach.queue_declare(q, passive=True).method.message_count >= 40
    finally:
        os.unlink(ballast)
    try:
        wait_for(lambda: told.unblocked, 10, "connection.unblocked")
        wait_for(lambda: silent.settled() and told.settled(), 20, "publishing after the alarm")
        assert not silent.blocked and not silent.unblocked, "no blocked frames without the capability"
        assert silent.confirmed == 40 and told.confirmed == 40
        assert ach.queue_declare(q, passive=True).method.message_count == 80
        admin.close()
    finally:
        silent.close()
        told.close()


def test_blocked_connection_is_not_dropped_for_missed_heartbeats(broker_factory, small_fs):
    """While blocked, a client's heartbeats are not read; the broker must not close the
    connection for missing them, and keeps sending its own."""
    import araw
    b = broker_factory("--disk-free-limit", "16MiB", "--amqp-heartbeat", "1", data=small_fs)
    b.host = "127.0.0.1"
    s, tune = araw.handshake(b, heartbeat=1)
    araw.open_channel(s, 1)
    ballast = os.path.join(small_fs, "ballast")
    with open(ballast, "wb") as f:
        f.write(b"\0" * (20 << 20))
    try:
        wait_for(lambda: "disk alarm on" in b.log(), 10, "the disk alarm")
        # araw's client properties do not claim connection.blocked: no frame, just silence.
        s.sendall(araw.method(1, araw.BASIC_PUBLISH, araw.publish_args("", "nowhere")) +
                  araw.content_header(1, 3) + araw.body_frame(1, b"abc"))
        # Stay silent (no heartbeats) for 4 heartbeat intervals, reading the broker's.
        s.settimeout(0.5)
        beats, deadline = 0, time.time() + 4
        while time.time() < deadline:
            try:
                f = araw.read_frame(s)
            except OSError:
                continue
            assert f is not None, "the broker closed a blocked connection"
            assert f[0] == araw.FRAME_HEARTBEAT, f
            beats += 1
        assert beats >= 2, "the broker keeps sending heartbeats"
        assert "missed heartbeats" not in b.log()
    finally:
        os.unlink(ballast)
    wait_for(lambda: "disk alarm cleared" in b.log(), 10, "the disk alarm to clear")
    # Unblocked: the connection is read again and works.
    s.settimeout(5)
    s.sendall(araw.frame(araw.FRAME_HEARTBEAT, 0, b"") +
              araw.method(1, araw.QUEUE_DECLARE, b"\x00\x00" + araw.shortstr("") + b"\x00" + araw.table({})))
    while True:
        ch, cm, _ = araw.read_method(s)
        if cm == araw.QUEUE_DECLARE_OK:
            break
    s.close()
