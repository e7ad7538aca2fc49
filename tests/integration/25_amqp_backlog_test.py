"""Deep backlogs live on disk: past 65,536 ready messages a durable queue keeps
new ones only in its log and reads them back as consumers drain it; a
non-durable queue does the same in a spill log that nothing outlives. These
check that order, counts, transient messages, TTL, purge and length limits stay
exact across that boundary, restarts and SIGKILL. Herald only (they restart it;
the paging threshold is Herald's)."""
import glob
import os
import time

import pika
import pytest

from amqp_util import Env, ready_count, reconnect, time_limit, wait_ready_count

N = 90000  # past the 65,536 messages a queue keeps in memory


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(240):
        yield


@pytest.fixture
def env(amqp_broker):
    if getattr(amqp_broker, "reference", False):
        pytest.skip("restarts the broker: Herald only")
    e = Env(amqp_broker)
    yield e
    e.cleanup()


def fill(conn, q, n, transient_every=0, start=0):
    """Publishes n numbered messages on a new channel; the last one with a confirm, so all
    are stored (a confirming channel would wait for each)."""
    ch = conn.channel()
    for i in range(start, start + n - 1):
        mode = 1 if transient_every and i % transient_every == 0 else 2
        ch.basic_publish("", q, b"%08d" % i + b"." * 92, pika.BasicProperties(delivery_mode=mode))
    ch.confirm_delivery()
    ch.basic_publish("", q, b"%08d" % (start + n - 1) + b"." * 92, pika.BasicProperties(delivery_mode=2))
    ch.close()


def consume_all(conn, q, n, timeout=60):
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2000)
    got = []

    def on(c, m, p, b):
        got.append(int(b[:8]))
        if len(got) % 1000 == 0:
            c.basic_ack(m.delivery_tag, multiple=True)

    ch.basic_consume(q, on)
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.2)
    ch.basic_ack(0, multiple=True)
    return got


def fill_dedup(conn, q, values):
    """Publishes one message per value, carrying it as its de-duplication header; the last
    with a confirm."""
    ch = conn.channel()
    for k, v in enumerate(values):
        if k == len(values) - 1:
            ch.confirm_delivery()
        props = pika.BasicProperties(delivery_mode=2, headers={"x-deduplication-header": "v%d" % v})
        ch.basic_publish("", q, b"%08d" % v + b"." * 92, props)
    ch.close()


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_deep_backlog_keeps_order_across_restart(env, amqp_broker, how):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("deep")
    ch.queue_declare(q, durable=True)
    fill(conn, q, N, transient_every=10)
    assert ready_count(conn, q) == N
    if how == "restart":
        amqp_broker.restart()
    else:
        amqp_broker.kill()
        amqp_broker.start()
    conn = reconnect(amqp_broker)
    env.conns.append(conn)
    # transient messages do not survive a restart, kept on disk or not
    expect = [i for i in range(N) if i % 10 != 0 or i == N - 1]
    assert ready_count(conn, q) == len(expect)
    assert consume_all(conn, q, len(expect)) == expect
    assert ready_count(conn, q) == 0


def spill_dirs(broker):
    return glob.glob(os.path.join(broker.data_dir, "queues", "*-spill"))


def test_non_durable_queue_spills_its_backlog_to_disk(env, amqp_broker):
    conn = env.connect()
    q = env.q("spill")
    conn.channel().queue_declare(q)  # pika's default: not durable
    assert spill_dirs(amqp_broker) == []
    fill(conn, q, N, transient_every=10)
    assert ready_count(conn, q) == N
    assert len(spill_dirs(amqp_broker)) == 1  # past 65,536 in memory, the rest on disk
    # every message comes back once and in order, transient or not
    assert consume_all(conn, q, N) == list(range(N))
    assert ready_count(conn, q) == 0
    # drained: the spill log goes within a maintenance tick
    deadline = time.monotonic() + 10
    while spill_dirs(amqp_broker) and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.2)
    assert spill_dirs(amqp_broker) == []
    # a backlog left by a crash: the queue is gone after the restart, and its spill log too
    fill(conn, q, N)
    assert len(spill_dirs(amqp_broker)) == 1
    amqp_broker.kill()
    amqp_broker.start()
    conn = reconnect(amqp_broker)
    env.conns.append(conn)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        conn.channel().queue_declare(q, passive=True)
    assert e.value.reply_code == 404
    assert spill_dirs(amqp_broker) == []


def test_non_durable_dedup_queue_spills_and_refuses_duplicates(env, amqp_broker):
    conn = env.connect()
    q = env.q("spill-dedup")
    conn.channel().queue_declare(q, arguments={"x-message-deduplication": True})
    fill_dedup(conn, q, range(N))
    assert ready_count(conn, q) == N
    assert len(spill_dirs(amqp_broker)) == 1  # its backlog pages too
    # duplicates of messages in memory and in the spill log: confirmed, not enqueued
    fill_dedup(conn, q, list(range(10)) + list(range(N - 10, N)))
    assert ready_count(conn, q) == N
    assert consume_all(conn, q, N) == list(range(N))
    assert ready_count(conn, q) == 0
    conn.close()  # (its consumer would take the next ones)
    conn = env.connect()
    # consumed: the values are free again
    fill_dedup(conn, q, [0, N - 1])
    assert ready_count(conn, q) == 2


def test_deep_backlog_drains_in_order_while_publishing(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("deep-live")
    ch.queue_declare(q, durable=True)
    fill(conn, q, N, transient_every=7)
    fill(env.connect(), q, 5000, start=N)  # more while the backlog is on disk, transient ones included
    got = consume_all(conn, q, N + 5000)
    assert got == list(range(N + 5000))  # transient messages keep their place too


def test_deep_backlog_purge_ttl_and_length_limit(env, amqp_broker):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("deep-purge")
    ch.queue_declare(q, durable=True)
    fill(conn, q, N)
    assert ch.queue_purge(q).method.message_count == N
    assert ready_count(conn, q) == 0
    # messages on disk expire too (a TTL queue reads them back to expire them)
    t = env.q("deep-ttl")
    ch.queue_declare(t, durable=True, arguments={"x-message-ttl": 1500})
    fill(conn, t, N)
    assert wait_ready_count(conn, t, 0, timeout=30) == 0
    # a length limit counts what is on disk
    lim = env.q("deep-limit")
    ch.queue_declare(lim, durable=True, arguments={"x-max-length": N - 1000})
    fill(conn, lim, N)
    assert ready_count(conn, lim) == N - 1000
    amqp_broker.restart()
    conn = reconnect(amqp_broker)
    env.conns.append(conn)
    assert ready_count(conn, q) == 0 and ready_count(conn, t) == 0
    assert ready_count(conn, lim) == N - 1000
    got = consume_all(conn, lim, N - 1000)
    assert got == list(range(1000, N))  # drop-head dropped the oldest


def consume_acking(conn, q, n, timeout=60):
    """Consumes, acks exactly the first n deliveries and returns their numbers."""
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2000)
    got = []

    def on(c, m, p, b):
        if len(got) < n:
            got.append(int(b[:8]))
            if len(got) % 1000 == 0 or len(got) == n:
                c.basic_ack(m.delivery_tag, multiple=True)

    ch.basic_consume(q, on)
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.2)
    return got


def prio_of(i):
    return (i * 7 + i // 3) % 10


def test_deep_priority_backlog_is_paged_and_strict_across_kill(env, amqp_broker):
    """A priority queue past 65,536 ready messages keeps the rest on disk per level and
    still delivers strictly by priority, FIFO within a level, after SIGKILL."""
    conn = env.connect()
    ch = conn.channel()
    q = env.q("deep-prio")
    ch.queue_declare(q, durable=True, arguments={"x-max-priority": 9})
    pub = conn.channel()
    for i in range(N - 1):
        pub.basic_publish("", q, b"%08d" % i + b"." * 92, pika.BasicProperties(delivery_mode=2, priority=prio_of(i)))
    pub.confirm_delivery()
    pub.basic_publish("", q, b"%08d" % (N - 1) + b"." * 92,
                      pika.BasicProperties(delivery_mode=2, priority=prio_of(N - 1)))
    pub.close()
    assert ready_count(conn, q) == N
    amqp_broker.kill()
    amqp_broker.start()
    conn = reconnect(amqp_broker)
    env.conns.append(conn)
    assert ready_count(conn, q) == N
    want = sorted(range(N), key=lambda i: (-prio_of(i), i))
    half = consume_acking(conn, q, N // 2)
    assert half == want[:N // 2]
    conn.close()  # the deliveries past the acked half go back
    conn = reconnect(amqp_broker)
    env.conns.append(conn)
    # what was delivered past the acked half comes back first within its level
    rest = consume_all(conn, q, N - N // 2)
    assert sorted(rest, key=lambda i: (-prio_of(i), i)) == want[N // 2:]
    assert ready_count(conn, q) == 0
