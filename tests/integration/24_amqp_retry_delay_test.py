"""Herald's reliable-delivery extensions and plugin features, driven by pika:
retry with backoff (x-retry-backoff), the delivery limit on any queue type,
the consumer acknowledgement timeout (x-consumer-timeout), the delayed-message
exchange (x-delayed-message / x-delay), queue de-duplication
(x-message-deduplication), and the crash cases of the issue: SIGKILL with
delayed messages pending, mid-retry messages, dead-letter moves in flight and
a full reject-publish queue; after the restart every count is exact.

RabbitMQ 3.10.8 has no retry backoff and ships neither the delayed-message nor
the de-duplication plugin, so these run against Herald only."""
import glob
import os
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, NackError

from amqp_util import Env, drain, herald_env, ready_count, reconnect, time_limit, wait_ready_count


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(120):
        yield


@pytest.fixture
def env(amqp_broker):
    if getattr(amqp_broker, "reference", False):
        pytest.skip("Herald extensions and restarts: Herald only")
    e = Env(amqp_broker)
    yield e
    e.cleanup()


def persistent(**kw):
    return pika.BasicProperties(delivery_mode=2, **kw)


def get_one(ch, q, timeout=5.0, auto_ack=False):
    """basic.get until a message arrives (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m, p, b = ch.basic_get(q, auto_ack=auto_ack)
        if m is not None:
            return m, p, b
        time.sleep(0.01)
    raise AssertionError(f"nothing arrived on {q} within {timeout} s")


def delayed_exchange(ch, x, xtype="direct", **queues):
    """Declares x as a durable x-delayed-message exchange of xtype and, for each queue=key,
    a durable queue bound to it with that key."""
    ch.exchange_declare(x, "x-delayed-message", durable=True, arguments={"x-delayed-type": xtype})
    for q, key in queues.items():
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, x, key)


def confirming_delayed(env, name):
    """A connection, a confirming channel, a durable delayed exchange and a durable queue bound
    to it with key "k": (connection, channel, exchange, queue)."""
    conn = env.connect()
    ch = conn.channel()
    x, q = env.x(name), env.q(name)
    delayed_exchange(ch, x, **{q: "k"})
    ch.confirm_delivery()
    return conn, ch, x, q


def get_timed(ch, q, n, t0, limit=5):
    """Takes up to n messages from q (basic.get, auto-ack) within limit seconds of t0
    (time.monotonic()): [(body, seconds since t0)]."""
    got = []
    while len(got) < n and time.monotonic() - t0 < limit:
        m, _, b = ch.basic_get(q, auto_ack=True)
        if m is None:
            time.sleep(0.01)
            continue
        got.append((b, time.monotonic() - t0))
    return got


def crash(b):
    b.kill()
    b.start()
    return reconnect(b)


# ---- retry with backoff ----

def test_retry_backoff_schedule_then_dead_letter(env):
    conn = env.connect()
    ch = conn.channel()
    dlq, q = env.q("dlq"), env.q("retry")
    ch.queue_declare(dlq, durable=True)
    ch.queue_declare(q, durable=True, arguments={
        "x-retry-backoff": "300ms,600ms", "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"job", persistent(headers={"k": "v"}))
    seen = []
    t0 = time.monotonic()
    for attempt in range(3):
        m, p, b = get_one(ch, q)
        seen.append((time.monotonic() - t0, m.redelivered, (p.headers or {}).get("x-delivery-count")))
        ch.basic_nack(m.delivery_tag, requeue=True)
    # attempt 1 at once, 2 after >= 300 ms, 3 after >= 300 + 600 ms
    assert seen[0][1:] == (False, None)
    assert seen[1][1:] == (True, 1) and seen[1][0] >= 0.28
    assert seen[2][1:] == (True, 2) and seen[2][0] - seen[1][0] >= 0.58
    # the schedule is exhausted: the third return dead-letters it
    m, p, b = get_one(ch, dlq, auto_ack=True)
    assert b == b"job"
    death = p.headers["x-death"][0]
    assert (death["reason"], death["queue"], death["count"]) == ("delivery_limit", q, 1)
    assert p.headers["k"] == "v" and p.headers["x-first-death-reason"] == "delivery_limit"
    assert ready_count(conn, q) == 0


def test_retry_backoff_applies_when_the_consumer_dies(env):
    conn = env.connect()
    q = env.q("retry-death")
    setup = conn.channel()
    setup.queue_declare(q, arguments={"x-retry-backoff": "700ms"})
    setup.basic_publish("", q, b"x")
    ch = conn.channel()
    m, p, b = get_one(ch, q)
    ch.close()  # unacked: given back, but only deliverable after 700 ms
    t0 = time.monotonic()
    assert setup.basic_get(q)[0] is None
    m, p, b = get_one(setup, q, auto_ack=True)
    assert time.monotonic() - t0 >= 0.5
    assert m.redelivered and p.headers["x-delivery-count"] == 1


def test_retry_jitter_spreads_delays(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("jitter")
    ch.queue_declare(q, arguments={"x-retry-backoff": "1000ms", "x-retry-jitter": 50})
    for i in range(20):
        ch.basic_publish("", q, b"%d" % i)
    tags = [get_one(ch, q)[0].delivery_tag for _ in range(20)]
    t0 = time.monotonic()
    ch.basic_nack(tags[-1], multiple=True, requeue=True)
    arrivals = []
    while len(arrivals) < 20 and time.monotonic() - t0 < 4:
        m, p, b = ch.basic_get(q, auto_ack=True)
        if m is None:
            time.sleep(0.01)
            continue
        arrivals.append(time.monotonic() - t0)
    assert len(arrivals) == 20
    assert min(arrivals) >= 0.45 and max(arrivals) <= 1.7
    assert max(arrivals) - min(arrivals) >= 0.2  # not all at the same instant


def test_invalid_retry_arguments_refused(env):
    conn = env.connect()
    for args in ({"x-retry-backoff": "1s,,2s"}, {"x-retry-backoff": "soon"}, {"x-retry-backoff": 5},
                 {"x-retry-jitter": 101}):
        with pytest.raises(ChannelClosedByBroker) as e:
            conn.channel().queue_declare(env.q("bad"), arguments=args)
        assert e.value.reply_code == 406
        assert "PRECONDITION_FAILED - invalid arg" in e.value.reply_text


# ---- delivery limit on a classic queue, delivery count ----

def test_delivery_limit_on_classic_queue(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("limit")
    ch.queue_declare(q, durable=True, arguments={"x-delivery-limit": 1})
    ch.basic_publish("", q, b"poison", persistent())
    m, p, b = get_one(ch, q)
    assert p.headers is None
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, p, b = get_one(ch, q)
    assert p.headers == {"x-delivery-count": 1}
    ch.basic_nack(m.delivery_tag, requeue=True)  # a second return: past the limit, dropped (no DLX)
    time.sleep(0.1)
    assert ch.basic_get(q)[0] is None
    assert ready_count(conn, q) == 0


# ---- consumer acknowledgement timeout ----

def test_consumer_timeout_closes_channel_and_requeues(env):
    conn = env.connect()
    q = env.q("ct")
    setup = conn.channel()
    setup.queue_declare(q, arguments={"x-consumer-timeout": 1000})
    setup.basic_publish("", q, b"slow")
    ch = conn.channel()
    closed = []
    ch._impl.add_on_close_callback(lambda c, reason: closed.append(reason))  # pika reports the close here
    ch.basic_consume(q, lambda *a: None)
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    assert closed, "the channel was not closed by the timeout"
    reason = closed[0]
    assert reason.reply_code == 406
    assert reason.reply_text.startswith(
        "PRECONDITION_FAILED - delivery acknowledgement on channel %d timed out. Timeout value used: 1000 ms"
        % ch.channel_number)
    m, p, b = get_one(setup, q, auto_ack=True)
    assert b == b"slow" and m.redelivered


# ---- delayed-message exchange ----

def test_delayed_exchange_routes_when_due(env):
    conn = env.connect()
    ch = conn.channel()
    x, q = env.x("delayed"), env.q("delayed")
    delayed_exchange(ch, x, "topic", **{q: "a.*"})
    ch.confirm_delivery()
    t0 = time.monotonic()
    for name, delay in (("late", 900), ("soon", 300), ("now", 0), ("unrouted", 100)):
        key = "b.x" if name == "unrouted" else "a.x"
        ch.basic_publish(x, key, name.encode(), persistent(headers={"x-delay": delay}))
    got = get_timed(ch, q, 3, t0)
    assert [b for b, _ in got] == [b"now", b"soon", b"late"]
    assert got[1][1] >= 0.28 and got[2][1] >= 0.88
    assert got[2][1] < 2.5  # routed close to its time (the due timer, not a 1 s tick)
    time.sleep(0.2)
    assert ch.basic_get(q)[0] is None


def test_due_passes_are_spaced_after_a_busy_one(broker_factory):
    """due.pass.gap.ms: after a timer pass that handed on many due messages, the next waits for
    the gap (here an exaggerated 1.5 s, so that scheduling noise cannot blur it); messages due a
    few at a time are handed on on time. Nothing arrives before its time."""
    b, env = herald_env(broker_factory, "--due-pass-gap-ms", "1500")
    try:
        conn, ch, x, q = confirming_delayed(env, "gap")
        # A few at a time: each on time.
        t0 = time.monotonic()
        ch.basic_publish(x, "k", b"lone-1", persistent(headers={"x-delay": 200}))
        ch.basic_publish(x, "k", b"lone-2", persistent(headers={"x-delay": 400}))
        got = get_timed(ch, q, 2, t0, limit=6)
        assert [m for m, _ in got] == [b"lone-1", b"lone-2"]
        assert 0.18 <= got[0][1] < 1.2 and 0.38 <= got[1][1] < 1.4
        # 100 due at once make a busy pass; one due 200 ms later comes with the pass a gap on.
        pub = conn.channel()
        pub.tx_select()  # x-delay counts from the commit: the 100 fall due in the same millisecond
        for i in range(100):
            pub.basic_publish(x, "k", b"batch", persistent(headers={"x-delay": 300}))
        pub.basic_publish(x, "k", b"after", persistent(headers={"x-delay": 500}))
        t0 = time.monotonic()
        pub.tx_commit()
        got = get_timed(ch, q, 101, t0, limit=8)
        assert [m for m, _ in got] == [b"batch"] * 100 + [b"after"]
        assert 0.28 <= got[0][1] < 1.3
        assert got[100][1] >= got[0][1] + 1.4  # the pass a gap after the busy one
        assert got[100][1] < 5
    finally:
        env.cleanup()


def test_delayed_publish_in_a_transaction_counts_from_the_commit(env):
    # The message reaches its queue at tx.commit, so its x-delay counts from
    # there, not from when the publish arrived.
    conn = env.connect()
    ch = conn.channel()
    x, q = env.x("delayed"), env.q("delayed")
    delayed_exchange(ch, x, "direct", **{q: "k"})
    ch.tx_select()
    ch.basic_publish(x, "k", b"tx", persistent(headers={"x-delay": 600}))
    time.sleep(0.8)
    ch.tx_commit()
    t0 = time.monotonic()
    assert ch.basic_get(q)[0] is None
    got = get_timed(ch, q, 1, t0)
    assert [b for b, _ in got] == [b"tx"]
    assert got[0][1] >= 0.5


def test_delayed_message_goes_where_the_bindings_say_when_due(env):
    """Herald routes a delayed message when it is published and it waits in the queues it
    reached; what the exchange routes when the message is due still decides: a queue unbound or
    an exchange deleted while it waits gets nothing, and a message with no route when published
    waits in the exchange and reaches a queue bound before it is due."""
    conn = env.connect()
    ch = conn.channel()
    x, x2 = env.x("delayed-binds"), env.x("delayed-binds-gone")
    kept, unbound, late, gone = (env.q("delayed-" + n) for n in ("kept", "unbound", "late", "gone"))
    delayed_exchange(ch, x, **{kept: "k", unbound: "k"})
    delayed_exchange(ch, x2, "fanout", **{gone: ""})
    ch.queue_declare(late, durable=True)  # bound while the message waits
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish(x, "k", b"k%d" % i, persistent(headers={"x-delay": 700}))
    ch.basic_publish(x, "later", b"later", persistent(headers={"x-delay": 700}))
    ch.basic_publish(x2, "", b"gone", persistent(headers={"x-delay": 700}))
    # waiting: counted as delayed nowhere ready yet
    assert ready_count(conn, kept) == 0 and ready_count(conn, unbound) == 0
    ch.queue_unbind(unbound, x, "k")
    ch.queue_bind(late, x, "later")
    ch.exchange_delete(x2)
    assert wait_ready_count(conn, kept, 3, timeout=5) == 3
    assert wait_ready_count(conn, late, 1, timeout=5) == 1
    time.sleep(0.3)
    assert ready_count(conn, unbound) == 0 and ready_count(conn, gone) == 0
    assert [b for _, _, b in drain(conn.channel(), kept)] == [b"k0", b"k1", b"k2"]
    assert [b for _, _, b in drain(conn.channel(), late)] == [b"later"]


def test_delayed_message_meets_the_length_limit_when_due(env):
    """A waiting message does not count towards x-max-length; the limit applies when it is due:
    with reject-publish it is confirmed when published into a full queue and dropped only if
    the queue is still full when it is due; with drop-head it pushes the head out."""
    conn = env.connect()
    ch = conn.channel()
    x, rq, dq = env.x("delayed-limit"), env.q("delayed-limit-reject"), env.q("delayed-limit-drop")
    ch.exchange_declare(x, "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
    ch.queue_declare(rq, durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.queue_declare(dq, durable=True, arguments={"x-max-length": 1})
    ch.queue_bind(rq, x, "r")
    ch.queue_bind(dq, x, "d")
    ch.confirm_delivery()
    ch.basic_publish("", rq, b"first", persistent())
    with pytest.raises(NackError):
        ch.basic_publish("", rq, b"refused", persistent())
    ch.basic_publish(x, "r", b"d1", persistent(headers={"x-delay": 400}))  # full now, confirmed
    ch.basic_publish(x, "r", b"d2", persistent(headers={"x-delay": 700}))
    ch.basic_publish(x, "d", b"e1", persistent(headers={"x-delay": 300}))
    ch.basic_publish(x, "d", b"e2", persistent(headers={"x-delay": 500}))
    assert get_one(ch, rq, auto_ack=True)[2] == b"first"  # room again before d1 is due
    time.sleep(1.0)
    assert [b for _, _, b in drain(conn.channel(), rq)] == [b"d1"]  # d2 found the queue full
    assert [b for _, _, b in drain(conn.channel(), dq)] == [b"e2"]  # e1 was the dropped head


def test_delayed_message_checks_its_route_after_a_restart(env, amqp_broker):
    """After a restart the bindings may have changed while the broker was down: a message that
    waited in a queue checks its route when due."""
    conn = env.connect()
    ch = conn.channel()
    x, keep, drop = env.x("delayed-restart"), env.q("delayed-restart-keep"), env.q("delayed-restart-drop")
    delayed_exchange(ch, x, "topic", **{keep: "a.#", drop: "a.*"})
    ch.confirm_delivery()
    t0 = time.monotonic()
    ch.basic_publish(x, "a.b", b"one", persistent(headers={"x-delay": 2000}))
    amqp_broker.restart()
    conn = reconnect(amqp_broker)
    env.conns.append(conn)
    ch = conn.channel()
    ch.queue_unbind(drop, x, "a.*")
    assert time.monotonic() - t0 < 1.8, "the restart took too long for this test"
    assert wait_ready_count(conn, keep, 1, timeout=6) == 1
    time.sleep(0.3)
    assert ready_count(conn, drop) == 0
    m, _, body = get_one(ch, keep, auto_ack=True)
    assert body == b"one" and not m.redelivered  # never delivered before


def test_delayed_message_keeps_its_ttl_after_routing(env, amqp_broker):
    """A delayed message's expiration counts in the queue it is routed to, from then on (not
    while it waits): also when it waited on disk and was read back."""
    conn, ch, x, q = confirming_delayed(env, "delayed-ttl")
    t0 = time.monotonic()
    ch.basic_publish(x, "k", b"short", persistent(expiration="1500", headers={"x-delay": 1000}))
    ch.basic_publish(x, "k", b"long", persistent(expiration="60000", headers={"x-delay": 1000}))
    assert wait_ready_count(conn, q, 2, timeout=5) == 2
    time.sleep(max(0.0, 1.9 - (time.monotonic() - t0)))
    assert ready_count(conn, q) == 2  # 1.5 s from routing, not from publishing
    time.sleep(max(0.0, 3.2 - (time.monotonic() - t0)))
    assert ready_count(conn, q) == 1  # then "short" expired in the queue
    m, p, b = get_one(ch, q, auto_ack=True)
    assert b == b"long" and p.expiration == "60000"
    if getattr(amqp_broker, "reference", False):
        return
    # the same after a restart, with the message read back from disk
    ch.basic_publish(x, "k", b"short2", persistent(expiration="1000", headers={"x-delay": 1500}))
    amqp_broker.restart()
    conn = reconnect(amqp_broker)
    env.conns.append(conn)
    assert wait_ready_count(conn, q, 1, timeout=5) == 1
    assert wait_ready_count(conn, q, 0, timeout=5) == 0


def test_delayed_exchange_needs_a_type(env):
    conn = env.connect()
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().exchange_declare(env.x("bad"), "x-delayed-message")
    assert e.value.reply_code == 406
    assert e.value.reply_text == ("PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing "
                                  "exchange type")
    ch = conn.channel()
    x = env.x("redeclare")
    ch.exchange_declare(x, "x-delayed-message", arguments={"x-delayed-type": "direct"})
    ch.exchange_declare(x, "x-delayed-message", arguments={"x-delayed-type": "direct"})
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.exchange_declare(x, "direct")
    assert e.value.reply_code == 406 and "inequivalent arg 'type'" in e.value.reply_text


def test_delayed_messages_survive_sigkill(env, amqp_broker):
    conn, ch, x, q = confirming_delayed(env, "delayed-crash")
    for i in range(200):
        ch.basic_publish(x, "k", b"%d" % i, persistent(headers={"x-delay": 1500 + (i % 5) * 100}))
    assert ready_count(conn, q) == 0
    conn = crash(amqp_broker)
    env.conns.append(conn)
    assert wait_ready_count(conn, q, 200, timeout=10) == 200
    got = sorted(int(b) for b in [b for _, _, b in drain(conn.channel(), q)])
    assert got == list(range(200))


def spill_gone(conn, pattern, timeout=10):
    """Whether the spill logs matching pattern go within timeout seconds (a drained queue's
    goes at the next maintenance tick), serving conn meanwhile."""
    deadline = time.monotonic() + timeout
    while glob.glob(pattern) and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.2)
    return glob.glob(pattern) == []


def delayed_on_small_budget(broker_factory, budget, name, durable=True):
    """A broker with delay.memory.bytes = budget, and a queue (durable or not) bound with key "k"
    to a delayed exchange. Returns (broker, env, connection, confirming channel, exchange,
    queue)."""
    b, env = herald_env(broker_factory, "--delay-memory-bytes", budget)
    conn = env.connect()
    ch = conn.channel()
    x, q = env.x(name), env.q(name)
    if durable:
        delayed_exchange(ch, x, **{q: "k"})
    else:
        ch.exchange_declare(x, "x-delayed-message", arguments={"x-delayed-type": "direct"})
        ch.queue_declare(q)
        ch.queue_bind(q, x, "k")
    ch.confirm_delivery()
    return b, env, conn, ch, x, q


@pytest.mark.parametrize("kind", ["durable", "transient"])
def test_delayed_messages_past_the_budget_wait_on_disk_in_their_queue(broker_factory, kind):
    """Past delay.memory.bytes the delayed messages a queue holds wait on disk (32 bytes each in
    memory) and are read back when due: every one arrives once, none early, without a restart.
    Persistent ones in a durable queue wait in its log; transient ones in a non-durable queue in
    its spill log, which goes once they are all back."""
    durable = kind == "durable"
    b, env, conn, ch, x, q = delayed_on_small_budget(broker_factory, "32KiB", "delayed-disk", durable)
    spill = os.path.join(b.data_dir, "queues", "*-spill")
    try:
        n = 2000
        sent = {}
        for i in range(n):
            delay = 1500 + (i * 7919) % 1000
            sent[i] = time.time() + delay / 1000.0
            props = persistent(headers={"x-delay": delay}) if durable else \
                pika.BasicProperties(headers={"x-delay": delay})
            ch.basic_publish(x, "k", b"%d" % i, props)
        assert len(glob.glob(spill)) == (0 if durable else 1)
        got = {}
        cch = conn.channel()
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            m, _, body = cch.basic_get(q, auto_ack=True)
            if m is None:
                time.sleep(0.02)
                continue
            i = int(body)
            assert i not in got
            got[i] = time.time()
        assert len(got) == n
        early = [i for i in got if got[i] < sent[i] - 0.05]
        assert not early, early[:5]  # none before its time (clock rounding aside)
        assert ch.basic_get(q)[0] is None
        assert spill_gone(conn, spill)
    finally:
        env.cleanup()


def test_delayed_messages_on_disk_check_their_route_when_due(broker_factory):
    """delay.memory.bytes = 0: every delayed message waits on disk and is read back when due;
    a queue unbound meanwhile still drops its copies."""
    b, env, conn, ch, x, q = delayed_on_small_budget(broker_factory, "0", "delayed-disk-unbind")
    try:
        q2 = env.q("delayed-disk-unbound")
        ch.queue_declare(q2, durable=True)
        ch.queue_bind(q2, x, "k")
        for i in range(20):
            ch.basic_publish(x, "k", b"%d" % i, persistent(headers={"x-delay": 800}))
        ch.queue_unbind(q2, x, "k")
        assert wait_ready_count(conn, q, 20, timeout=5) == 20
        time.sleep(0.3)
        assert ready_count(conn, q2) == 0
    finally:
        env.cleanup()


def test_sigkill_while_delayed_messages_fall_due_loses_and_duplicates_nothing(broker_factory):
    """A small delay.memory.bytes: some pending messages wait in memory, the
    rest on disk and come back as the budget frees; SIGKILL while they fall
    due. After the restart each is in the queue exactly once."""
    b, env, conn, ch, x, q = delayed_on_small_budget(broker_factory, "64KiB", "delayed-kill")
    try:
        n = 3000
        t0 = time.monotonic()
        for i in range(n):
            ch.basic_publish(x, "k", b"%d" % i, persistent(headers={"x-delay": 300 + (i * 7919) % 1500}))
        time.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
        assert 0 < ready_count(conn, q) < n  # routing in progress
        b.kill()
        b.start()
        conn = reconnect(b)
        env.conns.append(conn)
        assert wait_ready_count(conn, q, n, timeout=15) == n
        time.sleep(0.3)
        got = sorted(int(body) for _, _, body in drain(conn.channel(), q))
        assert got == list(range(n))  # each exactly once
    finally:
        env.cleanup()


# ---- de-duplication ----

def test_dedup_while_in_queue(env, amqp_broker):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("dedup")
    ch.queue_declare(q, durable=True, arguments={"x-message-deduplication": True})
    ch.confirm_delivery()
    for k in ["a", "b", "a", "c", "b", "a"]:
        ch.basic_publish("", q, k.encode(), persistent(headers={"x-deduplication-header": k}))
    ch.basic_publish("", q, b"no-header", persistent())
    ch.basic_publish("", q, b"no-header", persistent())
    assert ready_count(conn, q) == 5  # a, b, c and both without the header
    conn = crash(amqp_broker)
    env.conns.append(conn)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", q, b"a", persistent(headers={"x-deduplication-header": "a"}))
    assert ready_count(conn, q) == 5  # still a duplicate after the crash
    m, p, b = get_one(ch, q, auto_ack=True)
    assert b == b"a"
    ch.basic_publish("", q, b"a", persistent(headers={"x-deduplication-header": "a"}))
    assert ready_count(conn, q) == 5  # consumed, so accepted again


def test_dedup_window_outlives_consumption(env, amqp_broker):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("dedup-window")
    ch.queue_declare(q, durable=True, arguments={"x-message-deduplication": True, "x-cache-ttl": 60000,
                                                 "x-cache-size": 3})
    ch.confirm_delivery()
    for k in ["a", "b", "a"]:
        ch.basic_publish("", q, k.encode(), persistent(headers={"x-deduplication-header": k}))
    assert len(drain(ch, q)) == 2
    ch.basic_publish("", q, b"a", persistent(headers={"x-deduplication-header": "a"}))
    assert ready_count(conn, q) == 0  # remembered after consumption
    conn = crash(amqp_broker)
    env.conns.append(conn)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", q, b"b", persistent(headers={"x-deduplication-header": "b"}))
    assert ready_count(conn, q) == 0  # and after a crash
    for k in ["c", "d", "e"]:  # three new values push a and b out of a window of 3
        ch.basic_publish("", q, k.encode(), persistent(headers={"x-deduplication-header": k}))
    ch.basic_publish("", q, b"a", persistent(headers={"x-deduplication-header": "a"}))
    assert ready_count(conn, q) == 4


# ---- crash cases ----

def test_sigkill_mid_retry_keeps_counts_and_delays(env, amqp_broker):
    conn = env.connect()
    ch = conn.channel()
    dlq, q = env.q("dlq"), env.q("mid-retry")
    ch.queue_declare(dlq, durable=True)
    ch.queue_declare(q, durable=True, arguments={
        "x-retry-backoff": "1500ms,1500ms", "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.confirm_delivery()
    for i in range(10):
        ch.basic_publish("", q, b"%d" % i, persistent())
    for _ in range(10):  # first failure of each: now waiting 1.5 s
        m, p, b = get_one(ch, q)
        ch.basic_nack(m.delivery_tag, requeue=True)
    time.sleep(0.3)  # the return records reach the disk
    t_kill = time.monotonic()
    conn = crash(amqp_broker)
    env.conns.append(conn)
    ch = conn.channel()
    assert ch.basic_get(q)[0] is None or time.monotonic() - t_kill > 1.0  # still delayed
    got = []
    while len(got) < 10 and time.monotonic() - t_kill < 10:
        m, p, b = ch.basic_get(q)
        if m is None:
            time.sleep(0.02)
            continue
        assert m.redelivered and p.headers["x-delivery-count"] == 1
        got.append(b)
        ch.basic_nack(m.delivery_tag, requeue=True)  # second failure
    assert sorted(got) == [b"%d" % i for i in range(10)]
    time.sleep(0.3)
    conn = crash(amqp_broker)
    env.conns.append(conn)
    ch = conn.channel()
    deadline = time.monotonic() + 10
    final = []
    while len(final) < 10 and time.monotonic() < deadline:
        m, p, b = ch.basic_get(q)
        if m is None:
            time.sleep(0.02)
            continue
        assert p.headers["x-delivery-count"] == 2
        final.append(b)
        ch.basic_nack(m.delivery_tag, requeue=True)  # third: schedule exhausted, dead-lettered
    assert len(final) == 10
    assert wait_ready_count(conn, dlq, 10) == 10
    assert ready_count(conn, q) == 0


def test_sigkill_during_dead_letter_moves_loses_and_duplicates_nothing(env, amqp_broker):
    conn = env.connect()
    ch = conn.channel()
    dlq, q = env.q("dlq"), env.q("moves")
    ch.queue_declare(dlq, durable=True)
    ch.queue_declare(q, durable=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.confirm_delivery()
    n = 3000
    for i in range(n):
        ch.basic_publish("", q, b"%d" % i, persistent())
    ch.basic_qos(prefetch_count=500)
    rejected = []

    def on_msg(c, m, p, b):
        c.basic_reject(m.delivery_tag, requeue=False)
        rejected.append(b)

    ch.basic_consume(q, on_msg)
    deadline = time.monotonic() + 10
    while len(rejected) < n // 2 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.01)
    amqp_broker.kill()  # moves in flight
    amqp_broker.start()
    conn = reconnect(amqp_broker)
    env.conns.append(conn)
    ch = conn.channel()
    in_q = [b for _, _, b in drain(ch, q)]
    in_dlq = [b for _, _, b in drain(ch, dlq)]
    assert len(in_q) + len(in_dlq) == n, (len(in_q), len(in_dlq))
    assert sorted(int(b) for b in in_q + in_dlq) == list(range(n))  # each exactly once
    assert len(in_dlq) >= 1


def test_sigkill_with_full_reject_publish_queue(env, amqp_broker):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("full")
    ch.queue_declare(q, durable=True, arguments={"x-max-length": 50, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    acked = nacked = 0
    for i in range(80):
        try:
            ch.basic_publish("", q, b"%d" % i, persistent())
            acked += 1
        except NackError:
            nacked += 1
    assert (acked, nacked) == (50, 30)
    conn = crash(amqp_broker)
    env.conns.append(conn)
    assert ready_count(conn, q) == 50
    ch = conn.channel()
    ch.confirm_delivery()
    with pytest.raises(NackError):
        ch.basic_publish("", q, b"more", persistent())
    got = [b for _, _, b in drain(ch, q)]
    assert got == [b"%d" % i for i in range(50)]  # the oldest kept, in order


def test_retry_waits_on_disk_past_the_budget_across_sigkill(broker_factory):
    """An outage: every message is nacked. Past delay.memory.bytes the messages waiting for their
    retry wait on disk; after a SIGKILL each comes back once, with its delivery count."""
    b, env = herald_env(broker_factory, "--delay-memory-bytes", "16KiB")
    n = 2000
    try:
        conn = env.connect()
        ch = conn.channel()
        q = env.q("outage")
        ch.queue_declare(q, durable=True, arguments={"x-retry-backoff": "3s"})
        ch.confirm_delivery()
        for i in range(n):
            ch.basic_publish("", q, b"%06d" % i + b"." * 94, persistent())
        c2 = conn.channel()
        c2.basic_qos(prefetch_count=500)
        nacked = []

        def on(ch_, m, p, body):
            nacked.append(body[:6])
            ch_.basic_nack(m.delivery_tag, requeue=True)

        tag = c2.basic_consume(q, on)
        deadline = time.monotonic() + 20
        while len(nacked) < n and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        c2.basic_cancel(tag)
        assert len(nacked) == n
        assert ready_count(conn, q) == 0  # all waiting for the retry
        time.sleep(0.3)  # the return records reach the disk
        t_kill = time.monotonic()
        b.kill()
        b.start()
        conn = env.connect()
        ch = conn.channel()
        got = []
        ch.basic_qos(prefetch_count=500)

        def back(ch_, m, p, body):
            assert m.redelivered and p.headers["x-delivery-count"] == 1
            got.append(body[:6])
            ch_.basic_ack(m.delivery_tag)

        ch.basic_consume(q, back)
        deadline = time.monotonic() + 20
        while len(got) < n and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert time.monotonic() - t_kill >= 2.5  # they waited out the backoff
        assert sorted(got) == [b"%06d" % i for i in range(n)]
        conn.process_data_events(time_limit=0.3)
        assert len(got) == n
        assert ready_count(conn, q) == 0
    finally:
        env.cleanup()


def test_non_durable_retry_waits_in_the_spill_log(broker_factory):
    """The same outage on a non-durable queue of transient messages: past delay.memory.bytes the
    messages waiting for their retry wait in the queue's spill log, and each comes back once,
    with its delivery count; then the spill log goes."""
    b, env = herald_env(broker_factory, "--delay-memory-bytes", "16KiB")
    n = 2000
    spill = os.path.join(b.data_dir, "queues", "*-spill")
    try:
        conn = env.connect()
        ch = conn.channel()
        q = env.q("outage-nd")
        ch.queue_declare(q, arguments={"x-retry-backoff": "2s"})
        for i in range(n):
            ch.basic_publish("", q, b"%06d" % i + b"." * 94)
        c2 = conn.channel()
        c2.basic_qos(prefetch_count=500)
        nacked, got = [], []

        def on(ch_, m, p, body):
            if not m.redelivered:
                nacked.append(body[:6])
                ch_.basic_nack(m.delivery_tag, requeue=True)
                return
            assert p.headers["x-delivery-count"] == 1
            got.append(body[:6])
            ch_.basic_ack(m.delivery_tag)

        c2.basic_consume(q, on)
        deadline = time.monotonic() + 20
        while len(nacked) < n and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        assert len(nacked) == n
        assert len(got) < n  # (the first come back 2 s after their nack)
        assert len(glob.glob(spill)) == 1  # waiting there, past the budget
        while len(got) < n and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert sorted(got) == sorted(nacked) and len(set(got)) == n
        assert spill_gone(conn, spill)
    finally:
        env.cleanup()
