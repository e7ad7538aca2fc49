"""AMQP durability across broker restarts and crashes (SIGKILL): durable queues,
exchanges and bindings come back; confirmed persistent messages come back unless
acked; delivered-but-unacked ones come back marked redelivered; transient
messages and non-durable queues do not survive.

These need to stop the broker, so they skip under a reference broker
(HERALD_AMQP_REFERENCE). Their expectations were checked against RabbitMQ 3.10.8
restarted (SIGTERM) and killed (SIGKILL) by a scratch harness."""
import time

import pika
import pytest

from amqp_util import Env, drain, params, queue_exists, time_limit, wait_ready_count


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(180):
        yield


@pytest.fixture
def env(amqp_broker):
    if getattr(amqp_broker, "reference", False):
        pytest.skip("restarts the broker: Herald only")
    e = Env(amqp_broker)
    yield e
    e.cleanup()


def connect(b, timeout=30):
    """Connects, retrying while the broker comes back."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pika.BlockingConnection(params(b))
        except pika.exceptions.AMQPConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def close_quietly(*conns):
    for c in conns:
        try:
            if c.is_open:
                c.close()
        except Exception:  # noqa: BLE001 - the broker may be gone
            pass


def bounce(b, how):
    if how == "restart":
        b.restart()
    else:
        b.kill()
        b.start()


def persistent(**kw):
    return pika.BasicProperties(delivery_mode=2, **kw)


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_confirmed_persistent_messages_survive(env, amqp_broker, how):
    b = amqp_broker
    q = env.q("durable")
    transient_q = env.q("transient-queue")
    x = env.x("durable-x")
    conn = connect(b)
    ch = conn.channel()
    ch.exchange_declare(x, "direct", durable=True)
    ch.queue_declare(q, durable=True)
    ch.queue_bind(q, x, "k")
    ch.queue_declare(transient_q, durable=False)
    ch.confirm_delivery()
    for i in range(50):
        ch.basic_publish("", q, b"p%d" % i, persistent(message_id=str(i), headers={"i": i}))
    for i in range(10):
        ch.basic_publish("", q, b"t%d" % i, pika.BasicProperties(delivery_mode=1))  # transient
    for i in range(50, 100):
        ch.basic_publish(x, "k", b"p%d" % i, persistent(message_id=str(i), headers={"i": i}))
    ch.basic_publish("", transient_q, b"gone", persistent())
    # deliver p0..p9; ack p0..p4, leave p5..p9 unacked
    cons = conn.channel()
    got = [cons.basic_get(q) for _ in range(10)]
    assert [g[2] for g in got] == [b"p%d" % i for i in range(10)]
    for m, _, _ in got[:5]:
        cons.basic_ack(m.delivery_tag)
    cons.basic_qos(prefetch_count=1)  # a round trip: the acks are in
    time.sleep(1.0)  # and, for the SIGKILL case, given time to reach the disk

    bounce(b, how)
    close_quietly(conn)

    conn = connect(b)
    env.conns.append(conn)
    assert queue_exists(conn, q)
    assert not queue_exists(conn, transient_q)  # a non-durable queue does not survive
    ch = conn.channel()
    ch.exchange_declare(x, "direct", passive=True)  # the durable exchange does
    assert wait_ready_count(conn, q, 95, timeout=5) == 95
    back = drain(ch, q)
    # confirmed persistent and not acked: all back, in order, the delivered ones first
    # (they were ahead in the queue) and marked redelivered; no transient message.
    assert [bd for _, _, bd in back] == [b"p%d" % i for i in range(5, 100)]
    assert all(m.redelivered for m, _, _ in back[:5])
    assert back[5][2] == b"p10"
    if how == "restart":
        # never delivered: not redelivered after a clean restart. (After SIGKILL RabbitMQ
        # marks every recovered message redelivered, which the spec allows: the flag
        # means "may have been delivered before"; so nothing is asserted then.)
        assert not any(m.redelivered for m, _, _ in back[5:])
    assert [p.message_id for _, p, _ in back] == [str(i) for i in range(5, 100)]
    assert back[-1][1].headers == {"i": 99}
    assert back[-1][1].delivery_mode == 2
    # the binding survived too
    ch.confirm_delivery()
    ch.basic_publish(x, "k", b"after", persistent())
    assert [bd for _, _, bd in drain(ch, q)] == [b"after"]


def test_acked_then_killed_do_not_come_back(env, amqp_broker):
    b = amqp_broker
    q = env.q("acked")
    conn = connect(b)
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(200):
        ch.basic_publish("", q, b"m%d" % i, persistent())
    cons = conn.channel()
    cons.basic_qos(prefetch_count=50)
    seen = []
    for m, _, body in cons.consume(q, inactivity_timeout=2):
        if m is None:
            break
        seen.append(body)
        cons.basic_ack(m.delivery_tag)
        if len(seen) == 150:
            break
    cons.cancel()
    assert seen == [b"m%d" % i for i in range(150)]
    time.sleep(1.0)
    b.kill()
    close_quietly(conn)
    b.start()
    conn = connect(b)
    env.conns.append(conn)
    back = drain(conn.channel(), q)
    assert [bd for _, _, bd in back] == [b"m%d" % i for i in range(150, 200)]


def test_transient_messages_do_not_survive_restart(env, amqp_broker):
    b = amqp_broker
    q = env.q("mixed")
    conn = connect(b)
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(20):
        ch.basic_publish("", q, b"m%d" % i, pika.BasicProperties(delivery_mode=2 if i % 2 else 1))
    assert wait_ready_count(conn, q, 20) == 20
    b.restart()
    close_quietly(conn)
    conn = connect(b)
    env.conns.append(conn)
    back = drain(conn.channel(), q)
    assert [bd for _, _, bd in back] == [b"m%d" % i for i in range(1, 20, 2)]


def test_unconfirmed_publishes_then_kill_lose_nothing_confirmed(env, amqp_broker):
    """Publish asynchronously with confirms, kill while confirms are in flight: every
    message the broker confirmed is back after restart, exactly once, in order."""
    b = amqp_broker
    q = env.q("inflight")
    conn = connect(b)
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.close()
    confirmed = set()
    impl_ch = []

    def on_confirm(frame):
        tag = frame.method.delivery_tag
        if isinstance(frame.method, pika.spec.Basic.Ack):
            if frame.method.multiple:
                confirmed.update(t for t in range(1, tag + 1))
            else:
                confirmed.add(tag)

    # Use the blocking connection's underlying async channel to keep publishes in flight.
    ach = conn._impl.channel(on_open_callback=impl_ch.append)
    conn.process_data_events(time_limit=2)
    assert impl_ch
    ach.confirm_delivery(ack_nack_callback=on_confirm, callback=lambda f: None)
    conn.process_data_events(time_limit=1)
    n = 20000
    for i in range(n):
        ach.basic_publish("", q, b"m%d" % (i + 1), persistent())
        if i % 1000 == 999:
            conn.process_data_events(time_limit=0)  # keep the data flowing
    conn.process_data_events(time_limit=0.05)
    b.kill()  # with confirms most likely still outstanding
    conn_confirmed = set(confirmed)
    close_quietly(conn)
    b.start()
    conn = connect(b)
    env.conns.append(conn)
    back = [bd for _, _, bd in drain(conn.channel(), q)]
    nums = [int(bd[1:]) for bd in back]
    assert nums == sorted(nums) and len(set(nums)) == len(nums)  # in order, no duplicates
    missing = conn_confirmed - set(nums)
    assert not missing, sorted(missing)[:20]
    assert conn_confirmed, "nothing was confirmed before the kill: the test proved nothing"
    print(f"confirmed before kill: {len(conn_confirmed)} of {n}; back after restart: {len(nums)}")
