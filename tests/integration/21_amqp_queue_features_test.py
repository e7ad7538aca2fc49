"""RabbitMQ's queue features with pika: length limits (x-max-length, x-max-length-bytes,
x-overflow), priorities (x-max-priority), single active consumer, quorum queues
(x-queue-type=quorum, x-delivery-limit, x-delivery-count), declare-argument validation,
and the broker-wide consumer timeout. Every expectation was checked against RabbitMQ 3.10.8
(HERALD_AMQP_REFERENCE=host:port); reply texts are asserted in full, as RabbitMQ gives
them. The restart test at the end is Herald only.

What RabbitMQ 3.10.8 does, as observed:
- Length limits count ready messages only: delivered-but-unacked ones do not count. With
  drop-head, messages that come back (channel closed, nack requeue) go to the head and the
  limit is applied again at once, so they are the ones dropped; with reject-publish they
  come back and the queue stays over the limit.
- x-max-length-bytes counts body bytes only (not properties or headers). A message bigger
  than the whole limit, with drop-head, empties the queue and is dropped itself. A limit of
  0 with drop-head drops every message unless a consumer is waiting (then it is delivered).
  An empty body fits in x-max-length-bytes 0.
- reject-publish: with confirms the rejected publish gets basic.nack; without confirms it is
  dropped silently and the channel stays open; it is never dead-lettered.
  reject-publish-dlx: nack and dead-lettered with reason 'maxlen'. Limit 0 with
  reject-publish nacks even when a consumer is waiting.
- Priorities: x-max-priority 0..255 accepted (0 behaves as no priority: FIFO). A priority
  above the maximum counts as the maximum (the property itself is delivered unchanged), no
  priority counts as 0, FIFO within a priority, requeued messages go back in priority
  order at their old place, basic.get and basic.consume alike. With x-max-length and
  drop-head, the head that is dropped is the highest-priority message.
- Single active consumer: consumer_count in declare-ok counts all consumers, only the
  first one receives. When it cancels, the next one becomes active, but RabbitMQ only
  starts delivering to it on the queue's next delivery event (a requeue, a new consumer):
  an ack does not trigger it, and a publish at that point CRASHED the classic queue
  process in 3.10.8 (badmatch in rabbit_amqqueue_process:attempt_delivery/4; the queue
  restarted empty, consumers gone), so the tests avoid that sequence. Messages the
  cancelled consumer still holds stay with its channel (it may still ack or nack them);
  when they come back (nack, channel or connection closed) the new active consumer gets
  them first, in their original order, marked redelivered.
- Quorum queues: x-delivery-count is absent on a consumer's first delivery but 0 on a
  basic.get's first delivery; each return adds 1: nack/reject with requeue=true,
  basic.recover, the consuming channel closing. With x-delivery-limit N a message is
  delivered at most N+1 times: the return that makes the count exceed N dead-letters it
  (reason 'delivery_limit') or drops it without a DLX. Quorum queues must be durable,
  non-exclusive, non-auto-delete; x-delivery-limit is refused on classic queues; on
  quorum queues a string '3' and -1 are accepted.
- consumer_timeout (rabbitmq.conf, ms): RabbitMQ checks it on the channel's periodic tick,
  once a minute, so with 5000 both channels were closed 60.0 s after they were opened, 55 s
  after the timeout had passed. The channel (not the connection) is closed with 406 and
  the text in CONSUMER_TIMEOUT_TEXT (which names the channel number and the timeout); no
  basic.cancel comes first. The unacked messages are requeued in order, redelivered=true.
  A message taken with basic.get (no ack) times out the same way.

The consumer-timeout tests start Herald with `amqp.consumer.timeout = 2000` in a --config
file. To check them against RabbitMQ, start one with `consumer_timeout = 5000` in its
rabbitmq.conf and run with HERALD_AMQP_REFERENCE=host:port HERALD_REFERENCE_CONSUMER_TIMEOUT=5000
(about 65 s per test, because of the once-a-minute check); without that variable they skip
under a reference.
"""
import os
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, NackError

from amqp_util import Env, drain, pump, pump_until, queue_exists, ready_count, time_limit, wait_ready_count
from queue_util import check_death, declare_error, deaths, first_death, get_n, get_one, persistent


@pytest.fixture(autouse=True)
def _bounded(request):
    if request.node.name.startswith("test_consumer_timeout"):
        yield  # bounds itself: the reference may take a minute
        return
    with time_limit(60):  # a restart of the sanitizer build included
        yield


@pytest.fixture
def env(amqp_broker):
    e = Env(amqp_broker)
    yield e
    e.cleanup()


def publish_all(ch, q, items):
    """items: bodies (bytes) or (body, BasicProperties). Returns 'ack'/'nack' per publish
    (the channel is in confirm mode)."""
    out = []
    for it in items:
        body, props = it if isinstance(it, tuple) else (it, None)
        try:
            ch.basic_publish("", q, body, props)
            out.append("ack")
        except NackError:
            out.append("nack")
    return out


def confirmed(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def prio(p):
    return pika.BasicProperties(priority=p)


# ---- length limits ----

def test_max_length_drop_head_counts_ready_messages_only(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("ml")
    ch.queue_declare(q, arguments={"x-max-length": 2})
    assert publish_all(ch, q, [b"0", b"1"]) == ["ack", "ack"]
    holder = conn.channel()
    held = get_n(holder, q, 2, auto_ack=False)
    assert [b for _, _, b in held] == [b"0", b"1"]
    # two unacked, none ready: two more fit, the third drops the oldest ready one ("2")
    assert publish_all(ch, q, [b"2", b"3", b"4"]) == ["ack", "ack", "ack"]  # drop-head never nacks
    assert ready_count(conn, q) == 2
    # the unacked two come back to the head and are dropped at once by the limit
    holder.close()
    time.sleep(0.2)
    assert [b for _, _, b in drain(ch, q)] == [b"3", b"4"]


def test_max_length_bytes_counts_body_bytes_only(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("mlb")
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10})
    big_headers = pika.BasicProperties(headers={"pad": "y" * 100}, message_id="m" * 50)
    assert publish_all(ch, q, [(b"aaaa", big_headers), (b"bbbb", big_headers), (b"cc", big_headers)]) == ["ack"] * 3
    assert ready_count(conn, q) == 3  # exactly 10 body bytes: fits
    publish_all(ch, q, [(b"ddd", big_headers)])  # 13 > 10: "aaaa" goes
    assert [b for _, _, b in drain(ch, q)] == [b"bbbb", b"cc", b"ddd"]
    # one message larger than the whole limit: everything is dropped, itself included
    publish_all(ch, q, [b"0123456789", b"x"])
    assert [b for _, _, b in drain(ch, q, auto_ack=False)] == [b"x"]
    ch.basic_recover(requeue=True)
    publish_all(ch, q, [b"0123456789ab"])
    time.sleep(0.1)
    assert ready_count(conn, q) == 0
    # an empty body fits even a 0-byte limit; the next non-empty one drops it and itself
    q0 = env.q("mlb0")
    ch.queue_declare(q0, arguments={"x-max-length-bytes": 0})
    publish_all(ch, q0, [b""])
    assert ready_count(conn, q0) == 1
    publish_all(ch, q0, [b"a"])
    assert ready_count(conn, q0) == 0


def test_max_length_and_max_length_bytes_together(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("both")
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10, "x-max-length": 2})
    assert publish_all(ch, q, [b"aaaa", b"bbbb", b"cc", b"dddddddd"]) == ["ack"] * 4
    # "cc" makes three messages (drops "aaaa"); "dddddddd" makes 14 bytes (drops "bbbb")
    assert [b for _, _, b in drain(ch, q)] == [b"cc", b"dddddddd"]


def test_reject_publish_nacks_and_keeps_the_oldest(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("rp")
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    assert publish_all(ch, q, [b"0", b"1", b"2", b"3"]) == ["ack", "ack", "nack", "nack"]
    assert ready_count(conn, q) == 2
    # unacked messages do not count
    holder = conn.channel()
    assert [b for _, _, b in get_n(holder, q, 2, auto_ack=False)] == [b"0", b"1"]
    assert publish_all(ch, q, [b"4", b"5", b"6"]) == ["ack", "ack", "nack"]
    # returning messages are not refused: the queue goes over its limit
    holder.close()
    assert wait_ready_count(conn, q, 4) == 4
    got = drain(ch, q)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"0", True), (b"1", True), (b"4", False), (b"5", False)]
    assert ch.is_open


def test_reject_publish_bytes_and_without_confirms(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("rpb")
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    assert publish_all(ch, q, [b"aaaa", b"bbbb", b"cc", b"d", b"0123456789ab"]) == [
        "ack", "ack", "ack", "nack", "nack"]
    assert [b for _, _, b in drain(ch, q)] == [b"aaaa", b"bbbb", b"cc"]
    # without confirms a rejected publish is dropped silently; the channel stays open
    plain = conn.channel()
    q2 = env.q("rpnc")
    plain.queue_declare(q2, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    plain.basic_publish("", q2, b"a")
    plain.basic_publish("", q2, b"b")
    time.sleep(0.2)
    assert plain.is_open
    assert [b for _, _, b in drain(plain, q2)] == [b"a"]


def test_reject_publish_dlx_nacks_and_dead_letters(env):
    conn = env.connect()
    ch = confirmed(conn)
    dlq = env.q("dlq")
    ch.queue_declare(dlq)
    q = env.q("rpd")
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                   "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    assert publish_all(ch, q, [b"0", (b"1", pika.BasicProperties(headers={"k": "v"})), b"2"]) == [
        "ack", "nack", "nack"]
    assert [b for _, _, b in drain(ch, q)] == [b"0"]
    out = get_n(ch, dlq, 2)
    assert [b for _, _, b in out] == [b"1", b"2"]
    for m, p, b in out:
        assert m.routing_key == dlq
        [d] = deaths(p)
        check_death(d, count=1, reason="maxlen", queue=q, exchange="", routing_keys=[q])
        assert first_death(p) == (q, "maxlen", "")
    assert out[0][1].headers["k"] == "v"
    # plain reject-publish never dead-letters, even with a DLX
    q2 = env.q("rp")
    ch.queue_declare(q2, arguments={"x-max-length": 1, "x-overflow": "reject-publish",
                                    "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    assert publish_all(ch, q2, [b"a", b"b"]) == ["ack", "nack"]
    time.sleep(0.2)
    assert ready_count(conn, dlq) == 0


@pytest.mark.parametrize("overflow", ["drop-head", "reject-publish", "reject-publish-dlx"])
def test_max_length_zero(env, overflow):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("zero")
    ch.queue_declare(q, arguments={"x-max-length": 0, "x-overflow": overflow})
    want = "ack" if overflow == "drop-head" else "nack"
    assert publish_all(ch, q, [b"z"]) == [want]
    assert ready_count(conn, q) == 0
    cons = conn.channel()
    got = []
    cons.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    assert publish_all(ch, q, [b"z2"]) == [want]
    pump(conn, 0.3)
    # drop-head with a consumer waiting: delivered straight to it; the reject modes refuse
    assert got == ([b"z2"] if overflow == "drop-head" else [])
    assert ready_count(conn, q) == 0


# ---- priorities ----

PRIO_MSGS = [(b"a", None), (b"b", 3), (b"c", 9), (b"d", 5), (b"e", 0), (b"f", 3), (b"g", 255), (b"h", 1)]
# x-max-priority 5: c (9) and g (255) count as 5, a (none) as 0
PRIO_ORDER = [b"c", b"d", b"g", b"b", b"f", b"h", b"a", b"e"]


def test_priority_order_basic_get(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("prio")
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    for body, pr in PRIO_MSGS:
        ch.basic_publish("", q, body, prio(pr))
    got = drain(ch, q)
    assert [b for _, _, b in got] == PRIO_ORDER
    # the property is delivered as published
    assert [p.priority for _, p, _ in got] == [9, 5, 255, 3, 3, 1, None, 0]
    assert [m.message_count for m, _, _ in got] == list(range(7, -1, -1))


def test_priority_order_consumer(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("prio")
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    for body, pr in PRIO_MSGS:
        ch.basic_publish("", q, body, prio(pr))
    cons = conn.channel()
    cons.basic_qos(prefetch_count=1)
    got = []

    def on(c, m, p, b):
        got.append(b)
        c.basic_ack(m.delivery_tag)
        if b == b"c":  # published while the rest wait: goes by its priority
            ch.basic_publish("", q, b"late-4", prio(4))
    cons.basic_consume(q, on)
    assert pump_until(conn, lambda: len(got) == 9, 5)
    assert got == [b"c", b"d", b"g", b"late-4", b"b", b"f", b"h", b"a", b"e"]


def test_priority_requeue_goes_back_in_priority_order(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("prio")
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    for body, pr in PRIO_MSGS:
        ch.basic_publish("", q, body, prio(pr))
    got = drain(ch, q, auto_ack=False)
    assert [b for _, _, b in got] == PRIO_ORDER
    tag = {b: m.delivery_tag for m, _, b in got}
    for b in (b"e", b"b", b"c", b"h"):
        ch.basic_nack(tag[b], requeue=True)
    ch.basic_publish("", q, b"i", prio(3))
    again = drain(ch, q, auto_ack=False)
    assert [(b, m.redelivered) for m, _, b in again] == [
        (b"c", True), (b"b", True), (b"i", False), (b"h", True), (b"e", True)]
    ch.basic_recover(requeue=True)  # everything unacked goes back, each to its old place
    assert [b for _, _, b in drain(ch, q)] == [b"c", b"d", b"g", b"b", b"f", b"i", b"h", b"a", b"e"]


def test_max_priority_zero_and_non_priority_queue_are_fifo(env):
    conn = env.connect()
    ch = confirmed(conn)
    for args in ({"x-max-priority": 0}, None):
        q = env.q("fifo")
        ch.queue_declare(q, arguments=args)
        for body, pr in PRIO_MSGS:
            ch.basic_publish("", q, body, prio(pr))
        got = drain(ch, q)
        assert [b for _, _, b in got] == [b for b, _ in PRIO_MSGS], args
        assert [p.priority for _, p, _ in got] == [pr for _, pr in PRIO_MSGS]


def test_priority_with_max_length_drops_the_highest_priority_head(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("prio-ml")
    ch.queue_declare(q, arguments={"x-max-priority": 5, "x-max-length": 3})
    for body, pr in [(b"lo1", 1), (b"hi1", 5), (b"lo2", 1), (b"hi2", 5), (b"mid", 3)]:
        ch.basic_publish("", q, body, prio(pr))
    # hi2 arrives: 4 > 3, the head (hi1) goes; mid arrives: the head (hi2) goes
    assert [b for _, _, b in drain(ch, q)] == [b"mid", b"lo1", b"lo2"]


# ---- single active consumer ----

def sac_queue(env, ch, n):
    q = env.q("sac")
    ch.queue_declare(q, arguments={"x-single-active-consumer": True})
    for i in range(n):
        ch.basic_publish("", q, b"%d" % i)
    return q


def collector(ch, q, auto_ack=False, prefetch=None):
    got = []
    if prefetch:
        ch.basic_qos(prefetch_count=prefetch)
    tag = ch.basic_consume(q, lambda c, m, p, b: got.append((b, m.redelivered, m.delivery_tag)), auto_ack=auto_ack)
    return got, tag


def seen(got):
    return [(b, r) for b, r, _ in got]


def test_sac_only_the_first_consumer_receives(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = sac_queue(env, ch, 6)
    a, b = conn.channel(), conn.channel()
    ga, _ = collector(a, q, prefetch=10)
    gb, _ = collector(b, q, prefetch=10)
    pump(conn, 0.4)
    assert seen(ga) == [(b"%d" % i, False) for i in range(6)]
    assert gb == []
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.consumer_count, ok.message_count) == (2, 0)  # both consumers counted
    a.basic_ack(0, multiple=True)
    ch.basic_publish("", q, b"6")
    pump(conn, 0.3)
    assert seen(ga)[-1] == (b"6", False) and gb == []


def test_sac_cancel_hands_over_to_the_next_consumer(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = sac_queue(env, ch, 6)
    a, b, c = conn.channel(), conn.channel(), conn.channel()
    ga, ta = collector(a, q, prefetch=2)
    gb, _ = collector(b, q, prefetch=10)
    pump(conn, 0.3)
    assert seen(ga) == [(b"0", False), (b"1", False)] and gb == []
    a.basic_cancel(ta)  # 0 and 1 stay unacked on a's channel
    # RabbitMQ 3.10.8 makes b the active consumer but delivers nothing to it until the queue
    # has another delivery event; a basic.consume is one. (A publish right after the cancel
    # crashed the classic queue process instead: badmatch in
    # rabbit_amqqueue_process:attempt_delivery/4, "Restarting crashed queue", messages and
    # consumers lost. Nothing here depends on that.)
    gc, _ = collector(c, q, prefetch=10)
    if not getattr(env.broker, "reference", False):
        # Herald deliberately differs (docs/queues.md): the new active consumer starts once
        # its predecessor's deliveries are settled, so it never runs ahead of messages that
        # may still come back.
        pump(conn, 0.3)
        assert gb == [] and gc == []
        a.basic_ack(0, multiple=True)
    assert pump_until(conn, lambda: len(gb) >= 4, 3)
    pump(conn, 0.2)
    assert seen(gb) == [(b"2", False), (b"3", False), (b"4", False), (b"5", False)]
    assert len(ga) == 2 and gc == []  # nothing more for the cancelled one, nothing for the third
    if getattr(env.broker, "reference", False):
        a.basic_ack(0, multiple=True)  # a can still settle what it holds
    ch.basic_publish("", q, b"6")
    assert pump_until(conn, lambda: len(gb) >= 5, 3)
    assert seen(gb)[4:] == [(b"6", False)] and gc == []
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.consumer_count, ok.message_count) == (2, 0)


def test_sac_cancel_then_requeue_goes_to_the_next_consumer_first(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = sac_queue(env, ch, 4)
    a, b = conn.channel(), conn.channel()
    ga, ta = collector(a, q, prefetch=10)
    gb, _ = collector(b, q, prefetch=10)
    pump(conn, 0.3)
    assert len(ga) == 4 and gb == []
    a.basic_cancel(ta)
    pump(conn, 0.2)
    a.basic_nack(0, multiple=True, requeue=True)  # the cancelled consumer gives them back
    assert pump_until(conn, lambda: len(gb) >= 4, 3)
    assert seen(gb) == [(b"0", True), (b"1", True), (b"2", True), (b"3", True)]
    ch.basic_publish("", q, b"4")
    assert pump_until(conn, lambda: len(gb) >= 5, 3)
    pump(conn, 0.2)
    assert seen(gb)[4:] == [(b"4", False)] and len(ga) == 4


@pytest.mark.parametrize("how", ["channel", "connection"])
def test_sac_close_with_unacked_hands_over_requeued_first(env, how):
    conn = env.connect()
    ch = confirmed(conn)
    q = sac_queue(env, ch, 5)
    a_conn = env.connect() if how == "connection" else conn
    a = a_conn.channel()
    ga, _ = collector(a, q, prefetch=2)
    pump(a_conn, 0.3)
    b = conn.channel()
    gb, _ = collector(b, q, auto_ack=True)
    pump(conn, 0.3)
    assert seen(ga) == [(b"0", False), (b"1", False)] and gb == []
    if how == "connection":
        a_conn.close()
    else:
        a.close()
    assert pump_until(conn, lambda: len(gb) >= 5, 3)
    pump(conn, 0.2)
    assert seen(gb) == [(b"0", True), (b"1", True), (b"2", False), (b"3", False), (b"4", False)]


def test_sac_exclusive_consume_refused(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = sac_queue(env, ch, 0)
    ch.basic_consume(q, lambda *a: None)
    c2 = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        c2.basic_consume(q, lambda *a: None, exclusive=True)
    assert e.value.reply_code == 403
    assert e.value.reply_text == f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"


# ---- quorum queues ----

def quorum(env, ch, tag="qq", **args):
    q = env.q(tag)
    ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum", **args})
    return q


def dc(p):
    return (p.headers or {}).get("x-delivery-count", "absent")


def test_quorum_delivery_count_header(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = quorum(env, ch)
    ch.basic_publish("", q, b"a", pika.BasicProperties(headers={"h": 1}))
    ch.basic_publish("", q, b"b")
    cons = conn.channel()
    got = []
    cons.basic_consume(q, lambda c, m, p, b: got.append((b, m.redelivered, dc(p), m.delivery_tag)))
    assert pump_until(conn, lambda: len(got) >= 2, 3)
    # first delivery to a consumer: no x-delivery-count header at all
    assert [g[:3] for g in got] == [(b"a", False, "absent"), (b"b", False, "absent")]
    cons.basic_nack(got[0][3], requeue=True)
    cons.basic_reject(got[1][3], requeue=True)
    assert pump_until(conn, lambda: len(got) >= 4, 3)
    assert [g[:3] for g in got[2:]] == [(b"a", True, 1), (b"b", True, 1)]
    cons.close()  # the consumer's channel closing counts as a return too
    got = drain(ch, q, auto_ack=False)
    assert [(b, dc(p)) for _, p, b in got] == [(b"a", 2), (b"b", 2)]
    assert got[0][1].headers["h"] == 1
    ch.basic_recover(requeue=True)  # so does basic.recover
    got = drain(ch, q)
    assert [(b, dc(p)) for _, p, b in got] == [(b"a", 3), (b"b", 3)]
    # the value is a long ('l')
    from pika.compat import long as pika_long
    assert isinstance(got[0][1].headers["x-delivery-count"], pika_long)


def test_quorum_basic_get_first_delivery_count_is_zero(env):
    conn = env.connect()
    ch = confirmed(conn)
    q = quorum(env, ch)
    ch.basic_publish("", q, b"g")
    m, p, b = get_one(ch, q, auto_ack=False)
    assert (b, m.redelivered, dc(p)) == (b"g", False, 0)
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, p, b = get_one(ch, q, auto_ack=False)
    assert (b, m.redelivered, dc(p)) == (b"g", True, 1)
    ch.basic_ack(m.delivery_tag)
    # a classic queue never adds it
    cq = env.q("classic")
    ch.queue_declare(cq)
    ch.basic_publish("", cq, b"c")
    m, _, _ = get_one(ch, cq, auto_ack=False)
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, p, b = get_one(ch, cq)
    assert m.redelivered and p.headers is None


def test_quorum_delivery_limit_dead_letters(env):
    conn = env.connect()
    ch = confirmed(conn)
    dlq = env.q("dlq")
    ch.queue_declare(dlq)
    q = quorum(env, ch, **{"x-delivery-limit": 2, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q, b"poison", pika.BasicProperties(headers={"h": 1}, message_id="p"))
    counts = []
    for _ in range(4):
        m, p, b = get_one(ch, q, auto_ack=False, timeout=0.5)
        if m is None:
            break
        counts.append(dc(p))
        ch.basic_nack(m.delivery_tag, requeue=True)
    assert counts == [0, 1, 2]  # limit 2: three deliveries, the third return dead-letters it
    m, p, b = get_one(ch, dlq)
    assert (b, m.routing_key, p.message_id) == (b"poison", dlq, "p")
    [d] = deaths(p)
    check_death(d, count=1, reason="delivery_limit", queue=q, exchange="", routing_keys=[q])
    assert first_death(p) == (q, "delivery_limit", "")
    # the x-delivery-count header is not carried to the dead-letter queue
    assert {k: v for k, v in p.headers.items() if not k.startswith("x-")} == {"h": 1}
    assert "x-delivery-count" not in p.headers
    assert ready_count(conn, q) == 0


def test_quorum_delivery_limit_zero_and_without_dlx(env):
    conn = env.connect()
    ch = confirmed(conn)
    dlq = env.q("dlq")
    ch.queue_declare(dlq)
    q0 = quorum(env, ch, **{"x-delivery-limit": 0, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q0, b"once")
    m, p, b = get_one(ch, q0, auto_ack=False)
    assert dc(p) == 0
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, p, b = get_one(ch, dlq)
    assert b == b"once" and deaths(p)[0]["reason"] == "delivery_limit"
    # no DLX: dropped; the consuming channel closing counts as a delivery
    q1 = quorum(env, ch, **{"x-delivery-limit": 1})
    ch.basic_publish("", q1, b"c")
    seen_counts = []
    for _ in range(3):
        cons = conn.channel()
        got = []
        cons.basic_consume(q1, lambda c, m, p, b: got.append(dc(p)))
        pump_until(conn, lambda: got, 1)
        seen_counts.append(got)
        cons.close()
    assert seen_counts == [["absent"], [1], []]
    assert ready_count(conn, q1) == 0


def test_quorum_reject_requeue_false_dead_letters_rejected(env):
    conn = env.connect()
    ch = confirmed(conn)
    dlq = env.q("dlq")
    ch.queue_declare(dlq)
    q = quorum(env, ch, **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q, b"d", pika.BasicProperties(expiration="60000", priority=2, headers={"k": "v"}))
    m, p, b = get_one(ch, q, auto_ack=False)
    assert p.headers == {"k": "v", "x-delivery-count": 0}
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, b = get_one(ch, dlq)
    assert b == b"d" and p.expiration is None and p.priority == 2
    [d] = deaths(p)
    check_death(d, count=1, reason="rejected", queue=q, exchange="", routing_keys=[q], original_expiration="60000")
    assert p.headers["k"] == "v" and "x-delivery-count" not in p.headers


@pytest.mark.parametrize("kw,text", [
    (dict(durable=False), "PRECONDITION_FAILED - invalid property 'non-durable' for queue '{q}' in vhost '/'"),
    (dict(durable=True, exclusive=True),
     "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue '{q}' in vhost '/'"),
    (dict(durable=True, auto_delete=True),
     "PRECONDITION_FAILED - invalid property 'auto-delete' for queue '{q}' in vhost '/'"),
    (dict(durable=True, arguments={"x-max-priority": 5}),
     "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/' of queue type "
     "rabbit_quorum_queue"),
], ids=["non-durable", "exclusive", "auto-delete", "max-priority"])
def test_quorum_declare_refused(env, kw, text):
    conn = env.connect()
    q = env.q("qq")
    kw = dict(kw)
    kw["arguments"] = {"x-queue-type": "quorum", **kw.get("arguments", {})}
    assert declare_error(conn, q, **kw) == text.format(q=q)
    assert not queue_exists(conn, q)


def test_quorum_declare_accepted_values(env):
    conn = env.connect()
    ch = conn.channel()
    for args in ({"x-delivery-limit": -1}, {"x-delivery-limit": "3"}, {"x-overflow": "reject-publish-dlx"},
                 {"x-message-ttl": 100}, {"x-single-active-consumer": True}):
        q = quorum(env, ch, **args)
        assert ch.queue_declare(q, passive=True).method.queue == q
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum", **args})


@pytest.mark.parametrize("args,text", [
    (None, "inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': received none but current is the value "
           "'quorum' of type 'longstr'"),
    ({"x-queue-type": "classic"},
     "inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': received 'classic' but current is 'quorum'"),
    ({"x-queue-type": "quorum", "x-delivery-limit": 3},
     "inequivalent arg 'x-delivery-limit' for queue '{q}' in vhost '/': received the value '3' of type "
     "'signedint' but current is none"),
], ids=["no-type", "classic", "extra-limit"])
def test_quorum_redeclare_inequivalent_406(env, args, text):
    conn = env.connect()
    ch = conn.channel()
    q = quorum(env, ch)
    assert declare_error(conn, q, durable=True, arguments=args) == "PRECONDITION_FAILED - " + text.format(q=q)
    assert conn.channel().queue_declare(q, passive=True).method.queue == q


# ---- declare argument validation ----

INVALID_ARGS = [
    ({"x-max-priority": 256}, "invalid arg 'x-max-priority' for queue '{q}' in vhost '/': {{max_value_exceeded,256}}"),
    ({"x-max-priority": -1}, "invalid arg 'x-max-priority' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({"x-max-priority": "5"},
     "invalid arg 'x-max-priority' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
    ({"x-overflow": "bogus"}, "invalid arg 'x-overflow' for queue '{q}' in vhost '/': invalid_overflow"),
    ({"x-overflow": 1}, "invalid arg 'x-overflow' for queue '{q}' in vhost '/': {{unacceptable_type,signedint}}"),
    ({"x-max-length": -1}, "invalid arg 'x-max-length' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({"x-max-length": "5"},
     "invalid arg 'x-max-length' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
    ({"x-max-length-bytes": -1},
     "invalid arg 'x-max-length-bytes' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    # (this one has its own wording: "invalid type ... for arg", not "invalid arg")
    ({"x-dead-letter-exchange": 5},
     "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '{q}' in vhost '/'"),
    ({"x-dead-letter-routing-key": "k"},
     "invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': routing_key_but_no_dlx_defined"),
    ({"x-dead-letter-exchange": "x", "x-dead-letter-routing-key": 5},
     "invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': {{unacceptable_type,signedint}}"),
    ({"x-delivery-limit": 3},
     "invalid arg 'x-delivery-limit' for queue '{q}' in vhost '/' of queue type rabbit_classic_queue"),
    ({"x-single-active-consumer": "true"},
     "invalid arg 'x-single-active-consumer' for queue '{q}' in vhost '/': {{unacceptable_type,longstr}}"),
    ({"x-single-active-consumer": 1},
     "invalid arg 'x-single-active-consumer' for queue '{q}' in vhost '/': {{unacceptable_type,signedint}}"),
    ({"x-queue-type": "bogus"},
     "invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \"unsupported queue type 'bogus'\""),
]


@pytest.mark.parametrize("args,text", INVALID_ARGS, ids=[
    "prio-256", "prio-neg", "prio-str", "overflow-bogus", "overflow-int", "maxlen-neg", "maxlen-str", "maxbytes-neg",
    "dlx-int", "dlrk-without-dlx", "dlrk-int", "delivery-limit-classic", "sac-str", "sac-int", "queue-type-bogus"])
def test_invalid_declare_argument_406(env, args, text):
    conn = env.connect()
    q = env.q("bad")
    if "x-delivery-limit" in args and not getattr(env.broker, "reference", False):
        # Herald deliberately takes a delivery limit on classic queues too (docs/queues.md)
        assert conn.channel().queue_declare(q, arguments=args).method.queue == q
        return
    got = declare_error(conn, q, arguments=args)
    assert got == "PRECONDITION_FAILED - " + text.format(q=q)
    assert conn.is_open and not queue_exists(conn, q)


def test_edge_declare_arguments_accepted(env):
    conn = env.connect()
    ch = conn.channel()
    for args in ({"x-max-priority": 0}, {"x-max-priority": 255}, {"x-max-length": 0}, {"x-max-length-bytes": 0},
                 {"x-overflow": "drop-head"}, {"x-overflow": "reject-publish-dlx"}, {"x-single-active-consumer": False},
                 {"x-queue-type": "classic"}, {"x-dead-letter-exchange": "no-such-exchange"}):
        q = env.q("ok")
        assert ch.queue_declare(q, arguments=args).method.queue == q, args


@pytest.mark.parametrize("args,text", [
    # both present and of the same type: the short form; otherwise values with their types
    ({"x-max-length": 6},
     "inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': received '6' but current is '5'"),
    ({}, "inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': received none but current is the value '5' "
         "of type 'signedint'"),
    ({"x-max-length": 5, "x-overflow": "drop-head"},
     "inequivalent arg 'x-overflow' for queue '{q}' in vhost '/': received the value 'drop-head' of type 'longstr' "
     "but current is none"),
    ({"x-max-length": 5, "x-max-priority": 6},
     "inequivalent arg 'x-max-priority' for queue '{q}' in vhost '/': received the value '6' of type 'signedint' "
     "but current is none"),
], ids=["other-value", "missing", "extra-overflow", "extra-priority"])
def test_redeclare_with_inequivalent_arguments_406(env, args, text):
    conn = env.connect()
    q = env.q("redecl")
    conn.channel().queue_declare(q, arguments={"x-max-length": 5})
    assert declare_error(conn, q, arguments=args) == "PRECONDITION_FAILED - " + text.format(q=q)
    ch = conn.channel()
    assert ch.queue_declare(q, arguments={"x-max-length": 5}).method.queue == q  # the same is fine
    assert ch.queue_declare(q, passive=True, arguments={"x-max-length": 99}).method.queue == q  # passive ignores


# ---- consumer timeout ----

# RabbitMQ 3.10.8, rabbitmq.conf consumer_timeout = 5000, channel 2 (verbatim):
# "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. Timeout value used: 5000 ms.
#  This timeout value can be configured, see consumers doc guide to learn more"
CONSUMER_TIMEOUT_TEXT = ("PRECONDITION_FAILED - delivery acknowledgement on channel {ch} timed out. Timeout value "
                         "used: {ms} ms. This timeout value can be configured, see consumers doc guide to learn more")


class _Reference:
    def __init__(self, spec):
        host, port = spec.rsplit(":", 1)
        self.host, self.amqp_port, self.reference = host, int(port), True


@pytest.fixture
def timeout_broker(broker_factory, tmp_path):
    """(broker, timeout ms, how late the close may come, seconds). Herald: started with
    amqp.consumer.timeout = 2000 in a --config file. Reference: only when
    HERALD_REFERENCE_CONSUMER_TIMEOUT says what consumer_timeout it was started with
    (RabbitMQ checks once a minute: allow 65 s more)."""
    ref = os.environ.get("HERALD_AMQP_REFERENCE")
    if ref:
        ms = os.environ.get("HERALD_REFERENCE_CONSUMER_TIMEOUT")
        if not ms:
            pytest.skip("set HERALD_REFERENCE_CONSUMER_TIMEOUT=ms to the reference's consumer_timeout")
        return _Reference(ref), int(ms), 65.0
    cfg = tmp_path / "herald.conf"
    cfg.write_text("amqp.consumer.timeout = 2000\n")
    b = broker_factory("--config", str(cfg))
    b.host = "127.0.0.1"
    b.reference = False
    return b, 2000, 5.0


def test_consumer_timeout_closes_channel_and_requeues(timeout_broker):
    b, ms, late = timeout_broker
    with time_limit(ms / 1000 + late + 15):
        e = Env(b)
        try:
            _consumer_timeout(e, ms, late)
        finally:
            e.cleanup()


def _consumer_timeout(env, ms, late):
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("ct")
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    gq = env.q("ct-get")
    ch.queue_declare(gq)
    ch.basic_publish("", gq, b"g")
    cons = conn.channel()
    cons.basic_qos(prefetch_count=2)
    closed = {}
    cons._impl.add_on_close_callback(lambda c, reason: closed.setdefault("cons", (time.monotonic(), reason)))
    got = []
    t0 = time.monotonic()
    cons.basic_consume(q, lambda c, m, p, bd: got.append(bd))  # never acked
    getter = conn.channel()
    getter._impl.add_on_close_callback(lambda c, reason: closed.setdefault("get", (time.monotonic(), reason)))
    m, _, bd = getter.basic_get(gq)  # never acked either
    assert bd == b"g"
    assert pump_until(conn, lambda: len(closed) == 2, ms / 1000 + late)
    assert got == [b"0", b"1"]
    for name, chan in (("cons", cons), ("get", getter)):
        at, reason = closed[name]
        assert at - t0 >= ms / 1000 - 0.1, (name, at - t0)  # not before the timeout
        assert isinstance(reason, ChannelClosedByBroker), reason
        assert reason.reply_code == 406
        assert reason.reply_text == CONSUMER_TIMEOUT_TEXT.format(ch=chan.channel_number, ms=ms)
    assert conn.is_open and ch.is_open  # only the late channels are closed
    back = drain(ch, q)
    assert [(bd, m.redelivered) for m, _, bd in back] == [(b"0", True), (b"1", True), (b"2", False)]
    back = drain(ch, gq)
    assert [(bd, m.redelivered) for m, _, bd in back] == [(b"g", True)]


def test_consumer_timeout_not_hit_when_each_ack_is_in_time(timeout_broker):
    b, ms, late = timeout_broker
    with time_limit(2 * ms / 1000 + 15):
        env = Env(b)
        try:
            conn = env.connect()
            ch = confirmed(conn)
            q = env.q("ct-ok")
            ch.queue_declare(q)
            for i in range(4):
                ch.basic_publish("", q, b"%d" % i)
            cons = conn.channel()
            cons.basic_qos(prefetch_count=1)
            got = []
            cons.basic_consume(q, lambda c, m, p, bd: got.append(m.delivery_tag))
            # each delivery acked after half the timeout: 4 x 0.5 = twice the timeout in all
            for i in range(4):
                assert pump_until(conn, lambda: len(got) > i, 3)
                pump(conn, ms / 2000)
                cons.basic_ack(got[i])
            pump(conn, 0.2)
            assert cons.is_open and len(got) == 4
        finally:
            env.cleanup()


# ---- Herald only: priorities and limits survive a restart ----

def test_priority_order_survives_restart(env, amqp_broker):
    if getattr(amqp_broker, "reference", False):
        pytest.skip("restarts the broker: Herald only")
    conn = env.connect()
    ch = confirmed(conn)
    q = env.q("prio-durable")
    ch.queue_declare(q, durable=True, arguments={"x-max-priority": 5, "x-max-length": 7})
    for body, pr in PRIO_MSGS:  # 8 messages, limit 7: the head (c) is dropped
        ch.basic_publish("", q, body, persistent(priority=pr))
    m, _, b = get_one(ch, q, auto_ack=False)
    assert b == b"d"  # delivered, unacked at the restart: comes back redelivered
    conn.close()
    amqp_broker.restart()
    conn = env.connect()
    ch = conn.channel()
    got = drain(ch, q)
    assert [(b, m.redelivered) for m, _, b in got] == [
        (b"d", True), (b"g", False), (b"b", False), (b"f", False), (b"h", False), (b"a", False), (b"e", False)]
    assert [p.priority for _, p, _ in got] == [5, 255, 3, 3, 1, None, 0]
    # the arguments survived with the queue
    ch.confirm_delivery()
    for body, pr in [(b"x1", 1), (b"x5", 5)]:
        ch.basic_publish("", q, body, persistent(priority=pr))
    assert [b for _, _, b in drain(ch, q)] == [b"x5", b"x1"]
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, durable=True, arguments={"x-max-priority": 4, "x-max-length": 7})
    assert e.value.reply_code == 406
