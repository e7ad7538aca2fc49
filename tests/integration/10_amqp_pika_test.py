"""AMQP 0-9-1 with pika's BlockingConnection: the behaviour RabbitMQ clients rely
on. Every expectation here was checked against RabbitMQ 3.10.8 (the reference:
HERALD_AMQP_REFERENCE=host:port); where a reply-text is asserted, RabbitMQ's full
text is quoted in a comment and only its code-name prefix is asserted."""
import datetime
import decimal
import threading
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, UnroutableError

from amqp_util import (Env, bodies, drain, params, pump, pump_until, queue_exists, ready_count, time_limit, uid,
                       wait_ready_count)


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(60):
        yield


@pytest.fixture
def env(amqp_broker):
    e = Env(amqp_broker)
    yield e
    e.cleanup()


# ---- connection, default exchange, basic.get ----

def test_connect_guest_and_server_capabilities(env):
    conn = env.connect()
    assert conn.is_open
    caps = conn._impl.server_capabilities
    # pika refuses confirm_delivery without publisher_confirms + basic.nack; the tests
    # below use every one of these.
    for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify", "exchange_exchange_bindings",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
        assert caps.get(cap) is True, (cap, caps)
    ch = conn.channel()
    assert ch.is_open
    conn.close()
    assert conn.is_closed


def test_default_exchange_publish_get_and_get_empty(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ok = ch.queue_declare(q)
    assert ok.method.queue == q
    assert (ok.method.message_count, ok.method.consumer_count) == (0, 0)
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode(),
                         pika.BasicProperties(content_type="text/plain", headers={"i": i}, message_id=f"id{i}"))
    assert wait_ready_count(conn, q, 3) == 3
    for i in range(3):
        m, p, b = ch.basic_get(q, auto_ack=True)
        assert b == f"m{i}".encode()
        assert m.message_count == 2 - i  # messages left after this one
        assert m.redelivered is False
        assert (m.exchange, m.routing_key) == ("", q)
        assert p.content_type == "text/plain"
        assert p.headers == {"i": i}
        assert p.message_id == f"id{i}"
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)
    # publishing to the default exchange with a key that names no queue drops silently
    ch.basic_publish("", uid("nowhere"), b"x")
    assert ch.is_open


def test_properties_round_trip(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    # (pika 1.2 decodes a negative 64-bit "l" as unsigned, so the negative value stays 32-bit)
    headers = {"int": 7, "neg": -5, "big": 2 ** 40, "str": "s\u00e9", "bool": True, "list": [1, "two", False],
               "table": {"k": "v", "n": 1}, "none": None, "decimal": decimal.Decimal("1.25"),
               "bytes": b"\x00\xffraw", "time": datetime.datetime(2024, 1, 2, 3, 4, 5)}
    props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8", headers=headers,
                                 delivery_mode=2, priority=5, correlation_id="corr-1", reply_to="replies",
                                 expiration="60000", message_id="mid-1", timestamp=1700000000, type="kind",
                                 user_id="guest", app_id="app-1")
    ch.basic_publish("", q, b'{"a": 1}', props)
    m, p, b = None, None, None
    deadline = time.monotonic() + 5
    while m is None and time.monotonic() < deadline:
        m, p, b = ch.basic_get(q, auto_ack=True)
    assert b == b'{"a": 1}'
    for name in ("content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
                 "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id"):
        assert getattr(p, name) == getattr(props, name), name


def test_user_id_must_match_the_authenticated_user(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="mallory"))
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    # RabbitMQ: "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"
    assert e.value.reply_code == 406
    assert e.value.reply_text.startswith("PRECONDITION_FAILED")
    assert ready_count(conn, q) == 0


def test_large_message_spans_many_frames(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    body = bytes(range(256)) * 8192  # 2 MiB, far above frame-max
    ch.confirm_delivery()
    ch.basic_publish("", q, body)
    m, _, b = ch.basic_get(q, auto_ack=True)
    assert m is not None and b == body


# ---- work queues, prefetch ----

def test_work_queue_three_competing_consumers_fair_share(env, amqp_broker):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("work")
    ch.queue_declare(q)
    n = 150
    lock = threading.Lock()
    got = {i: [] for i in range(3)}
    ready = threading.Barrier(4, timeout=20)
    errors = []
    total = [0]

    def worker(i):
        c = None
        try:
            c = pika.BlockingConnection(params(amqp_broker))
            wc = c.channel()
            wc.basic_qos(prefetch_count=1)
            gen = wc.consume(q, inactivity_timeout=0.2)
            ready.wait()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with lock:
                    if total[0] >= n:
                        break
                m, p, b = next(gen)
                if m is None:
                    continue
                time.sleep(0.003)  # some work
                with lock:
                    got[i].append(b)
                    total[0] += 1
                wc.basic_ack(m.delivery_tag)
            wc.cancel()
        except Exception as ex:  # noqa: BLE001 - reported below
            errors.append(ex)
            try:
                ready.abort()
            except Exception:  # noqa: BLE001
                pass
        finally:
            if c is not None and c.is_open:
                c.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    ready.wait()
    for k in range(n):
        ch.basic_publish("", q, f"job-{k}".encode())
    for t in threads:
        t.join(timeout=45)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    everything = got[0] + got[1] + got[2]
    assert len(everything) == n  # nothing duplicated...
    assert sorted(everything) == sorted(f"job-{k}".encode() for k in range(n))  # ...nothing lost
    for i in range(3):
        assert len(got[i]) >= n // 6, {k: len(v) for k, v in got.items()}  # a fair share each
        # each consumer sees its share in publish order
        assert got[i] == sorted(got[i], key=lambda b: int(b.split(b"-")[1]))
    assert ready_count(conn, q) == 0


def test_prefetch_one_unacked_blocks_second_delivery(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append((m, b)))
    assert pump_until(conn, lambda: len(got) >= 1, 5)
    pump(conn, 0.7)
    assert [b for _, b in got] == [b"m0"]  # prefetch 1 and unacked: nothing more
    assert ready_count(conn, q) == 2  # ready, excluding the unacked one
    # a second consumer on another channel gets the next one meanwhile
    ch2 = conn.channel()
    ch2.basic_qos(prefetch_count=1)
    got2 = []
    ch2.basic_consume(q, lambda c, m, p, b: got2.append(b))
    assert pump_until(conn, lambda: len(got2) >= 1, 5)
    pump(conn, 0.3)
    assert got2 == [b"m1"]
    ch.basic_ack(got[0][0].delivery_tag)
    assert pump_until(conn, lambda: len(got) >= 2, 5)
    pump(conn, 0.3)
    assert [b for _, b in got] == [b"m0", b"m2"]


def test_qos_per_consumer_vs_global(env):
    conn = env.connect()
    qs = [env.q(f"qos{i}") for i in range(4)]
    setup = conn.channel()
    for q in qs:
        setup.queue_declare(q)
        for i in range(5):
            setup.basic_publish("", q, f"{q}-{i}".encode())
    for q in qs:
        assert wait_ready_count(conn, q, 5) == 5
    # global=False: RabbitMQ applies the limit to each consumer separately
    per = conn.channel()
    per.basic_qos(prefetch_count=2, global_qos=False)
    got_per = {qs[0]: [], qs[1]: []}
    for q in qs[:2]:
        per.basic_consume(q, lambda c, m, p, b, q=q: got_per[q].append(b))
    # global=True: the limit is shared by all consumers on the channel
    glob = conn.channel()
    glob.basic_qos(prefetch_count=3, global_qos=True)
    got_glob = []
    for q in qs[2:]:
        glob.basic_consume(q, lambda c, m, p, b: got_glob.append(b))
    pump_until(conn, lambda: sum(map(len, got_per.values())) >= 4 and len(got_glob) >= 3, 5)
    pump(conn, 0.7)
    assert {q: len(v) for q, v in got_per.items()} == {qs[0]: 2, qs[1]: 2}
    assert len(got_glob) == 3


# ---- exchanges and routing ----

def _bound_queues(env, ch, exchange, bindings):
    """bindings: list of (name-tag, routing_key or None, arguments) -> {tag: queue}"""
    out = {}
    for tag, key, args in bindings:
        if tag not in out:
            out[tag] = env.q(tag)
            ch.queue_declare(out[tag])
        ch.queue_bind(out[tag], exchange, routing_key=key, arguments=args)
    return out


def test_fanout_exchange(env):
    conn = env.connect()
    ch = conn.channel()
    x = env.x("fan")
    ch.exchange_declare(x, "fanout")
    qs = _bound_queues(env, ch, x, [("a", "", None), ("b", "ignored", None)])
    other = env.q("other")
    ch.queue_declare(other)
    ch.confirm_delivery()
    ch.basic_publish(x, "any-key", b"one")
    ch.basic_publish(x, "", b"two")
    assert bodies(ch, qs["a"]) == [b"one", b"two"]
    assert bodies(ch, qs["b"]) == [b"one", b"two"]
    assert bodies(ch, other) == []


def test_direct_exchange(env):
    conn = env.connect()
    ch = conn.channel()
    x = env.x("direct")
    ch.exchange_declare(x, "direct")
    qs = _bound_queues(env, ch, x, [("a", "red", None), ("b", "green", None), ("b", "blue", None),
                                    ("c", "red", None)])
    ch.confirm_delivery()
    for key in ("red", "green", "blue", "black", "Red"):
        ch.basic_publish(x, key, key.encode())
    assert bodies(ch, qs["a"]) == [b"red"]
    assert bodies(ch, qs["b"]) == [b"green", b"blue"]
    assert bodies(ch, qs["c"]) == [b"red"]
    ch.queue_unbind(qs["b"], x, routing_key="green")
    ch.basic_publish(x, "green", b"g2")
    ch.basic_publish(x, "blue", b"b2")
    assert bodies(ch, qs["b"]) == [b"b2"]


def test_topic_exchange_star_and_hash(env):
    conn = env.connect()
    ch = conn.channel()
    x = env.x("topic")
    ch.exchange_declare(x, "topic")
    qs = _bound_queues(env, ch, x, [
        ("q1", "*.orange.*", None),
        ("q2", "*.*.rabbit", None), ("q2", "lazy.#", None),
        ("q3", "#", None),
        ("q4", "a.#.z", None),
    ])
    keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
            "lazy.pink.rabbit", "quick.brown.fox", "orange", "quick.orange.new.rabbit", "lazy.orange.new.rabbit",
            "lazy", "a.z", "a.b.c.z", "a.b.c", ""]
    ch.confirm_delivery()
    for k in keys:
        ch.basic_publish(x, k, k.encode() or b"<empty>")
    assert bodies(ch, qs["q1"]) == [b"quick.orange.rabbit", b"lazy.orange.elephant", b"quick.orange.fox"]
    # lazy.pink.rabbit matches both q2 bindings: delivered once
    assert bodies(ch, qs["q2"]) == [b"quick.orange.rabbit", b"lazy.orange.elephant", b"lazy.brown.fox",
                                    b"lazy.pink.rabbit", b"lazy.orange.new.rabbit", b"lazy"]
    assert bodies(ch, qs["q3"]) == [k.encode() or b"<empty>" for k in keys]
    assert bodies(ch, qs["q4"]) == [b"a.z", b"a.b.c.z"]


def test_headers_exchange_all_and_any(env):
    conn = env.connect()
    ch = conn.channel()
    x = env.x("headers")
    ch.exchange_declare(x, "headers")
    qs = _bound_queues(env, ch, x, [
        ("all", "", {"x-match": "all", "format": "pdf", "type": "report"}),
        ("any", "", {"x-match": "any", "format": "pdf", "type": "log"}),
        ("dflt", "", {"format": "zip"}),  # x-match defaults to all
    ])
    ch.confirm_delivery()
    msgs = [("pdf-report", {"format": "pdf", "type": "report"}),
            ("pdf-only", {"format": "pdf"}),
            ("log", {"type": "log", "extra": 1}),
            ("zip-report", {"format": "zip", "type": "report"}),
            ("none", None),
            ("pdf-report-extra", {"format": "pdf", "type": "report", "x": "y"})]
    for body, h in msgs:
        ch.basic_publish(x, "routing-key-ignored", body.encode(), pika.BasicProperties(headers=h))
    assert bodies(ch, qs["all"]) == [b"pdf-report", b"pdf-report-extra"]
    assert bodies(ch, qs["any"]) == [b"pdf-report", b"pdf-only", b"log", b"pdf-report-extra"]
    assert bodies(ch, qs["dflt"]) == [b"zip-report"]


def test_exchange_to_exchange_binding(env):
    conn = env.connect()
    ch = conn.channel()
    src = env.x("src")
    dst = env.x("dst")
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(destination=dst, source=src, routing_key="k")
    q = env.q()
    ch.queue_declare(q)
    ch.queue_bind(q, dst)
    ch.confirm_delivery()
    ch.basic_publish(src, "k", b"via-src")
    ch.basic_publish(src, "other", b"not-routed")
    ch.basic_publish(dst, "whatever", b"direct-to-dst")
    assert bodies(ch, q) == [b"via-src", b"direct-to-dst"]
    ch.exchange_unbind(destination=dst, source=src, routing_key="k")
    ch.basic_publish(src, "k", b"after-unbind")
    assert bodies(ch, q) == []


def test_publish_to_missing_exchange_closes_channel_404(env):
    conn = env.connect()
    ch = conn.channel()
    x = uid("missing-x")
    ch.basic_publish(x, "k", b"x")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("", exclusive=True)
    # RabbitMQ: "NOT_FOUND - no exchange 't-missing-x-...' in vhost '/'"
    assert e.value.reply_code == 404
    assert e.value.reply_text.startswith("NOT_FOUND")
    assert conn.is_open
    assert conn.channel().is_open


def test_publisher_sees_its_exchange_deleted_and_declared_again(env):
    # A publishing channel keeps the exchange it last published to; another
    # channel deleting it must be seen by the next publish, and an exchange
    # declared again under the name routes by its own type and bindings.
    conn = env.connect()
    admin, ch = conn.channel(), conn.channel()
    x, q1, q2 = env.x(), env.q(), env.q()
    admin.exchange_declare(x, "direct")
    admin.queue_declare(q1)
    admin.queue_declare(q2)
    admin.queue_bind(q1, x, "k")
    ch.basic_publish(x, "k", b"one")
    admin.exchange_delete(x)
    admin.exchange_declare(x, "fanout")
    admin.queue_bind(q2, x, "")
    ch.basic_publish(x, "k", b"two")
    assert bodies(admin, q1) == [b"one"]
    assert bodies(admin, q2) == [b"two"]
    admin.exchange_delete(x)
    ch.basic_publish(x, "k", b"three")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("", exclusive=True)
    assert e.value.reply_code == 404
    assert bodies(admin, q2) == []


def test_default_exchange_follows_a_queue_deleted_and_declared_again(env):
    # The default exchange's lookup keeps the last queue it found; deleting
    # that queue must be seen by the next publish (ASan reports a stale one).
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"one")
    assert bodies(ch, q) == [b"one"]
    ch.basic_publish("", q, b"two")
    ch.queue_delete(q)
    ch.basic_publish("", q, b"lost")  # no queue of that name now: dropped
    ch.queue_declare(q)
    ch.basic_publish("", q, b"three")
    assert bodies(ch, q) == [b"three"]


def test_exchange_redeclare_with_other_type_406(env):
    conn = env.connect()
    ch = conn.channel()
    x = env.x()
    ch.exchange_declare(x, "direct")
    ch.exchange_declare(x, "direct")  # same: fine
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.exchange_declare(x, "fanout")
    # RabbitMQ: "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '...' in vhost '/':
    # received 'fanout' but current is 'direct'"
    assert e.value.reply_code == 406
    assert e.value.reply_text.startswith("PRECONDITION_FAILED")
    ch = conn.channel()
    ch.exchange_declare(x, "direct", passive=True)


def test_unknown_exchange_type_closes_connection_503(env):
    conn = env.connect()
    ch = conn.channel()
    x = env.x()
    with pytest.raises(ConnectionClosedByBroker) as e:
        ch.exchange_declare(x, "no-such-type")
    # RabbitMQ: "COMMAND_INVALID - invalid exchange type 'no-such-type'" (a connection error)
    assert e.value.reply_code == 503
    assert e.value.reply_text.startswith("COMMAND_INVALID")


def test_passive_declare_of_missing_exchange_404(env):
    conn = env.connect()
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.exchange_declare(uid("nope"), passive=True)
    assert e.value.reply_code == 404
    assert conn.channel().is_open


# ---- request/reply ----

def test_request_reply_with_named_reply_queue(env):
    conn = env.connect()
    server = conn.channel()
    rpc_q = env.q("rpc")
    server.queue_declare(rpc_q)

    def serve(c, m, p, b):
        c.basic_publish("", p.reply_to, b.upper(), pika.BasicProperties(correlation_id=p.correlation_id))
        c.basic_ack(m.delivery_tag)

    server.basic_consume(rpc_q, serve)
    client = conn.channel()
    reply_q = client.queue_declare("", exclusive=True).method.queue
    replies = {}
    client.basic_consume(reply_q, lambda c, m, p, b: replies.__setitem__(p.correlation_id, b), auto_ack=True)
    want = {}
    for i in range(5):
        corr = uid("corr")
        want[corr] = f"request-{i}".upper().encode()
        client.basic_publish("", rpc_q, f"request-{i}".encode(),
                             pika.BasicProperties(reply_to=reply_q, correlation_id=corr))
    assert pump_until(conn, lambda: len(replies) >= 5, 10)
    assert replies == want


def test_direct_reply_to(env):
    conn = env.connect()
    srv_conn = env.connect()
    rpc_q = env.q("rpc")
    client = conn.channel()
    client.queue_declare(rpc_q)
    replies = []
    # the pseudo-queue is consumed in no-ack mode on the same channel that publishes
    client.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, b: replies.append((p.correlation_id, b)),
                         auto_ack=True)
    client.basic_publish("", rpc_q, b"ping", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                                                  correlation_id="c-1"))
    server = srv_conn.channel()
    deadline = time.monotonic() + 5
    m = None
    while m is None and time.monotonic() < deadline:
        m, p, b = server.basic_get(rpc_q, auto_ack=True)
    assert b == b"ping"
    # the server sees a per-channel reply address, not the pseudo-queue name itself
    assert p.reply_to.startswith("amq.rabbitmq.reply-to.") and len(p.reply_to) > len("amq.rabbitmq.reply-to.")
    server.basic_publish("", p.reply_to, b"pong", pika.BasicProperties(correlation_id=p.correlation_id))
    assert pump_until(conn, lambda: replies, 5)
    assert replies == [("c-1", b"pong")]


def test_direct_reply_to_publish_without_consumer_406(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    # RabbitMQ: "PRECONDITION_FAILED - fast reply consumer does not exist"
    assert e.value.reply_code == 406
    assert e.value.reply_text.startswith("PRECONDITION_FAILED")


# ---- publisher confirms, mandatory ----

def test_publisher_confirms_many(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.confirm_delivery()
    n = 1000
    for i in range(n):
        ch.basic_publish("", q, b"%d" % i)  # returns only once confirmed (raises on nack)
    assert ready_count(conn, q) == n  # confirmed means enqueued
    assert bodies(ch, q) == [b"%d" % i for i in range(n)]


def test_mandatory_unroutable_under_confirms_raises_unroutable(env):
    conn = env.connect()
    ch = conn.channel()
    x = env.x()
    ch.exchange_declare(x, "direct")
    ch.confirm_delivery()
    with pytest.raises(UnroutableError) as e:
        ch.basic_publish(x, "no-binding", b"lost?", mandatory=True)
    [ret] = e.value.messages
    assert ret.method.reply_code == 312
    assert ret.method.reply_text == "NO_ROUTE"
    assert (ret.method.exchange, ret.method.routing_key) == (x, "no-binding")
    assert ret.body == b"lost?"
    # routable mandatory publishes go through; non-mandatory unroutable ones are dropped quietly
    q = env.q()
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    ch.basic_publish(x, "k", b"ok", mandatory=True)
    ch.basic_publish(x, "no-binding", b"dropped")
    assert bodies(ch, q) == [b"ok"]


def test_mandatory_unroutable_basic_return_without_confirms(env):
    conn = env.connect()
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
    key = uid("unroutable")
    ch.basic_publish("", key, b"back", pika.BasicProperties(message_id="r1"), mandatory=True)
    assert pump_until(conn, lambda: returned, 5)
    m, p, b = returned[0]
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key) == (312, "NO_ROUTE", "", key)
    assert p.message_id == "r1" and b == b"back"


# ---- acks, nacks, rejects, recover ----

def test_nack_requeue_redelivers_with_redelivered_flag(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())
    m, _, b = ch.basic_get(q)
    assert (b, m.redelivered) == (b"m0", False)
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, _, b = ch.basic_get(q)
    assert (b, m.redelivered) == (b"m0", True)  # back at the head
    m1, _, b1 = ch.basic_get(q)
    m2, _, b2 = ch.basic_get(q)
    assert (b1, b2) == (b"m1", b"m2")
    # nack multiple: everything up to m2's tag goes back, in queue order
    ch.basic_nack(m2.delivery_tag, multiple=True, requeue=True)
    got = drain(ch, q)
    assert [(b, m.redelivered) for m, _, b in got] == [(b"m0", True), (b"m1", True), (b"m2", True)]


def test_reject_without_requeue_drops(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"bad")
    ch.basic_publish("", q, b"good")
    m, _, b = ch.basic_get(q)
    assert b == b"bad"
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, _, b = ch.basic_get(q)
    assert (b, m.redelivered) == (b"good", False)
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, _, b = ch.basic_get(q)
    assert (b, m.redelivered) == (b"good", True)
    ch.basic_ack(m.delivery_tag)
    assert ch.basic_get(q) == (None, None, None)
    ch.close()
    assert ready_count(conn, q) == 0


def test_basic_recover_requeue(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())
    a = ch.basic_get(q)
    b = ch.basic_get(q)
    assert (a[2], b[2]) == (b"m0", b"m1")
    ch.basic_recover(requeue=True)
    got = drain(ch, q)
    assert [(bd, m.redelivered) for m, _, bd in got] == [(b"m0", True), (b"m1", True), (b"m2", False)]


def test_ack_of_unknown_delivery_tag_406(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.basic_ack(99)
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    # RabbitMQ: "PRECONDITION_FAILED - unknown delivery tag 99"
    assert e.value.reply_code == 406
    assert e.value.reply_text.startswith("PRECONDITION_FAILED")
    # acking twice is the same error
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", q, b"x")
    m, _, _ = ch.basic_get(q)
    ch.basic_ack(m.delivery_tag)
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert e.value.reply_code == 406
    assert ready_count(conn, q) == 0


def test_unacked_of_closed_channel_return_in_original_order(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, f"m{i}".encode())
    ch2 = conn.channel()
    taken = [ch2.basic_get(q) for _ in range(3)]
    assert [b for _, _, b in taken] == [b"m0", b"m1", b"m2"]
    ch2.basic_ack(taken[1][0].delivery_tag)  # m1 is done
    for i in range(5, 7):
        ch.basic_publish("", q, f"m{i}".encode())
    ch2.close()
    assert wait_ready_count(conn, q, 6) == 6
    got = drain(ch, q)
    assert [(b, m.redelivered) for m, _, b in got] == [
        (b"m0", True), (b"m2", True), (b"m3", False), (b"m4", False), (b"m5", False), (b"m6", False)]


def test_unacked_of_closed_connection_go_to_other_consumer(env):
    c1 = env.connect()
    c2 = env.connect()
    ch1 = c1.channel()
    q = env.q()
    ch1.queue_declare(q)
    ch1.confirm_delivery()
    for i in range(4):
        ch1.basic_publish("", q, f"m{i}".encode())
    ch1.basic_qos(prefetch_count=10)
    got1 = []
    ch1.basic_consume(q, lambda c, m, p, b: got1.append(b))
    assert pump_until(c1, lambda: len(got1) == 4, 5)
    ch2 = c2.channel()
    got2 = []
    ch2.basic_consume(q, lambda c, m, p, b: got2.append((b, m.redelivered)), auto_ack=True)
    pump(c2, 0.3)
    assert got2 == []  # all four are held unacked by the first consumer
    c1.close()
    assert pump_until(c2, lambda: len(got2) >= 4, 5)
    pump(c2, 0.2)
    assert got2 == [(f"m{i}".encode(), True) for i in range(4)]


# ---- queues: exclusive, auto-delete, server-named, declare errors, purge, delete ----

def test_exclusive_queue_locked_to_its_connection(env):
    owner = env.connect()
    other = env.connect()
    q = env.q("excl")
    och = owner.channel()
    och.queue_declare(q, exclusive=True)
    och.basic_publish("", q, b"mine")
    for action in (lambda c: c.queue_declare(q, passive=True),
                   lambda c: c.basic_consume(q, lambda *a: None),
                   lambda c: c.queue_declare(q, exclusive=True)):
        with pytest.raises(ChannelClosedByBroker) as e:
            action(other.channel())
        # RabbitMQ: "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '...' in
        # vhost '/'. It could be originally declared on another connection or the exclusive
        # property value does not match that of the original declaration."
        assert e.value.reply_code == 405
        assert e.value.reply_text.startswith("RESOURCE_LOCKED")
    assert other.is_open
    # the owner can use it from any of its channels
    m, _, b = owner.channel().basic_get(q, auto_ack=True)
    assert b == b"mine"
    owner.close()
    deadline = time.monotonic() + 5
    while queue_exists(other, q) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not queue_exists(other, q)  # gone with its connection


def test_auto_delete_queue_goes_away_after_last_consumer_cancels(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("autodel")
    ch.queue_declare(q, auto_delete=True)
    pump(conn, 0.3)
    assert queue_exists(conn, q)  # never consumed: not deleted
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    assert conn.channel().queue_declare(q, passive=True).method.consumer_count == 2
    ch.basic_cancel(t1)
    assert queue_exists(conn, q)  # one consumer left
    ch.basic_cancel(t2)
    deadline = time.monotonic() + 5
    while queue_exists(conn, q) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not queue_exists(conn, q)


def test_server_named_queue(env):
    conn = env.connect()
    ch = conn.channel()
    a = ch.queue_declare("", exclusive=True).method.queue
    b = ch.queue_declare("", exclusive=True).method.queue
    # RabbitMQ names them 'amq.gen-<base64>'; clients only need a unique, usable name
    assert a and b and a != b
    ch.basic_publish("", a, b"to-a")
    m, _, body = ch.basic_get(a, auto_ack=True)
    assert body == b"to-a"
    assert ch.queue_declare(a, passive=True).method.queue == a


def test_declare_with_reserved_amq_prefix_403(env):
    conn = env.connect()
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("amq." + uid("reserved"))
    # RabbitMQ: "ACCESS_REFUSED - queue name 'amq.t-reserved-...' contains reserved prefix 'amq.*'"
    assert e.value.reply_code == 403
    assert e.value.reply_text.startswith("ACCESS_REFUSED")


def test_passive_declare_missing_queue_404_connection_stays_usable(env):
    conn = env.connect()
    ch = conn.channel()
    missing = uid("missing")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(missing, passive=True)
    # RabbitMQ: "NOT_FOUND - no queue 't-missing-...' in vhost '/'"
    assert e.value.reply_code == 404
    assert e.value.reply_text.startswith("NOT_FOUND")
    assert missing in e.value.reply_text
    assert ch.is_closed and conn.is_open
    ch2 = conn.channel()
    q = env.q()
    ch2.queue_declare(q)
    ch2.basic_publish("", q, b"fine")
    assert bodies(ch2, q) == [b"fine"]
    # basic.get and basic.consume on a missing queue: 404 as well
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().basic_get(missing)
    assert e.value.reply_code == 404
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().basic_consume(missing, lambda *a: None)
    assert e.value.reply_code == 404


def test_redeclare_with_different_durable_406(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q, durable=False)
    ch.queue_declare(q, durable=False)  # identical: fine, idempotent
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, durable=True)
    # RabbitMQ: "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '...' in vhost '/':
    # received 'true' but current is 'false'"
    assert e.value.reply_code == 406
    assert e.value.reply_text.startswith("PRECONDITION_FAILED")
    assert "durable" in e.value.reply_text
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, arguments={"x-message-ttl": 1000})
    assert e.value.reply_code == 406
    # passive ignores the other flags
    assert conn.channel().queue_declare(q, passive=True, durable=True).method.queue == q


def test_queue_purge_returns_count(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(7):
        ch.basic_publish("", q, b"x")
    ok = ch.queue_purge(q)
    assert ok.method.message_count == 7
    assert ready_count(conn, q) == 0
    assert ch.queue_purge(q).method.message_count == 0


def test_queue_delete_if_empty_and_if_unused(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"x")
    ch.basic_publish("", q, b"y")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_delete(q, if_empty=True)
    # RabbitMQ: "PRECONDITION_FAILED - queue '...' in vhost '/' not empty"
    assert e.value.reply_code == 406
    assert e.value.reply_text.startswith("PRECONDITION_FAILED")
    cons = conn.channel()
    cons.basic_qos(prefetch_count=1)
    cons.basic_consume(q, lambda *a: None)
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().queue_delete(q, if_unused=True)
    # RabbitMQ: "PRECONDITION_FAILED - queue '...' in vhost '/' in use"
    assert e.value.reply_code == 406
    assert e.value.reply_text.startswith("PRECONDITION_FAILED")
    cons.close()  # the unacked one goes back: 2 ready
    assert wait_ready_count(conn, q, 2) == 2
    ok = conn.channel().queue_delete(q, if_unused=True)
    assert ok.method.message_count == 2
    assert not queue_exists(conn, q)
    # deleting a queue that does not exist is fine (RabbitMQ answers delete-ok, count 0)
    assert conn.channel().queue_delete(q).method.message_count == 0


def test_consumer_cancel_notification_when_queue_deleted(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None)
    other = env.connect()
    other.channel().queue_delete(q)
    assert pump_until(conn, lambda: cancelled, 5)
    assert cancelled == [tag]
    assert ch.is_open and tag not in ch.consumer_tags
    q2 = env.q()
    ch.queue_declare(q2)  # the channel is still usable
    ch.basic_publish("", q2, b"z")
    assert bodies(ch, q2) == [b"z"]


# ---- transactions ----

def test_tx_publish_commit_rollback(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.tx_select()
    for i in range(3):
        ch.basic_publish("", q, f"c{i}".encode())
    pump(conn, 0.2)
    assert ready_count(conn, q) == 0  # not before commit
    ch.tx_commit()
    assert ready_count(conn, q) == 3
    ch.basic_publish("", q, b"r1")
    ch.basic_publish("", q, b"r2")
    ch.tx_rollback()
    ch.tx_commit()  # nothing left to commit
    assert ready_count(conn, q) == 3
    assert bodies(conn.channel(), q) == [b"c0", b"c1", b"c2"]


def test_tx_acks_commit_and_rollback(env):
    conn = env.connect()
    setup = conn.channel()
    q = env.q()
    setup.queue_declare(q)
    setup.confirm_delivery()
    for i in range(3):
        setup.basic_publish("", q, f"m{i}".encode())
    ch = conn.channel()
    ch.tx_select()
    m, _, b = ch.basic_get(q)
    assert b == b"m0"
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()  # the ack is discarded: m0 stays unacked on this channel
    ch.close()
    assert wait_ready_count(conn, q, 3) == 3  # ...and comes back when the channel closes
    ch = conn.channel()
    ch.tx_select()
    m, _, b = ch.basic_get(q)
    assert (b, m.redelivered) == (b"m0", True)
    ch.basic_ack(m.delivery_tag)
    ch.tx_commit()
    ch.close()
    assert wait_ready_count(conn, q, 2) == 2
    assert bodies(conn.channel(), q) == [b"m1", b"m2"]


def test_confirm_select_after_tx_select_is_refused_406(env):
    conn = env.connect()
    ch = conn.channel()
    ch.tx_select()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.confirm_delivery()
    # RabbitMQ: "PRECONDITION_FAILED - cannot switch from tx to confirm mode"
    assert e.value.reply_code == 406


# ---- queue arguments ----

def test_x_message_ttl_expires_messages(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("ttl")
    ch.queue_declare(q, arguments={"x-message-ttl": 300})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"fresh")
    assert bodies(ch, q) == [b"fresh"]  # available before the TTL
    ch.basic_publish("", q, b"stale")
    time.sleep(0.8)
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)
    assert ready_count(conn, q) == 0


def test_per_message_expiration(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="200"))
    ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="60000"))
    ch.basic_publish("", q, b"forever")
    time.sleep(0.6)
    assert bodies(ch, q) == [b"long", b"forever"]


def test_x_expires_deletes_unused_queue(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("expires")
    ch.queue_declare(q, arguments={"x-expires": 400})
    assert queue_exists(conn, q)
    deadline = time.monotonic() + 6
    time.sleep(1.0)
    while queue_exists(conn, q) and time.monotonic() < deadline:
        time.sleep(0.6)  # longer than x-expires, so checking does not keep it alive
    assert not queue_exists(conn, q)


def test_invalid_x_message_ttl_406(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, arguments={"x-message-ttl": -1})
    # RabbitMQ: "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '...' in vhost '/':
    # {value_negative,-1}"
    assert e.value.reply_code == 406
    assert e.value.reply_text.startswith("PRECONDITION_FAILED")
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().queue_declare(q, arguments={"x-expires": 0})
    assert e.value.reply_code == 406
    assert not queue_exists(conn, q)


# ---- more channel and connection errors clients run into ----

def test_exclusive_consumer(env):
    conn = env.connect()
    q = env.q()
    ch = conn.channel()
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().basic_consume(q, lambda *a: None)
    # RabbitMQ: "ACCESS_REFUSED - queue '...' in vhost '/' in exclusive use"
    assert e.value.reply_code == 403
    assert e.value.reply_text.startswith("ACCESS_REFUSED")
    q2 = env.q()
    ch.queue_declare(q2)
    ch.basic_consume(q2, lambda *a: None)
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().basic_consume(q2, lambda *a: None, exclusive=True)
    assert e.value.reply_code == 403


def test_reserved_and_default_exchanges(env):
    conn = env.connect()
    ch = conn.channel()
    # the predeclared exchanges exist and redeclare fine with their own properties
    for name, kind in (("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
                       ("amq.headers", "headers"), ("amq.match", "headers")):
        ch.exchange_declare(name, kind, passive=True)
    ch.exchange_declare("amq.direct", "direct", durable=True)
    q = env.q()
    ch.queue_declare(q)
    ch.queue_bind(q, "amq.topic", "a.*")
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", "a.b", b"via-amq.topic")
    assert bodies(ch, q) == [b"via-amq.topic"]
    ch.queue_unbind(q, "amq.topic", "a.*")
    cases = [
        # RabbitMQ: "ACCESS_REFUSED - exchange name 'amq.t-...' contains reserved prefix 'amq.*'"
        lambda c: c.exchange_declare("amq." + uid("x"), "direct"),
        # RabbitMQ: "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
        lambda c: c.exchange_delete("amq.direct"),
        # RabbitMQ: "ACCESS_REFUSED - operation not permitted on the default exchange"
        lambda c: c.queue_bind(q, "", "other-key"),
    ]
    for case in cases:
        with pytest.raises(ChannelClosedByBroker) as e:
            case(conn.channel())
        assert e.value.reply_code == 403
        assert e.value.reply_text.startswith("ACCESS_REFUSED")


def test_publish_to_internal_exchange_403(env):
    conn = env.connect()
    ch = conn.channel()
    src = env.x("src")
    internal = env.x("internal")
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(internal, "fanout", internal=True)
    ch.exchange_bind(destination=internal, source=src)
    q = env.q()
    ch.queue_declare(q)
    ch.queue_bind(q, internal)
    ch.confirm_delivery()
    ch.basic_publish(src, "", b"through-binding")  # reachable through an exchange binding
    assert bodies(ch, q) == [b"through-binding"]
    ch = conn.channel()
    ch.basic_publish(internal, "", b"direct")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    # RabbitMQ: "ACCESS_REFUSED - cannot publish to internal exchange '...' in vhost '/'"
    assert e.value.reply_code == 403
    assert ready_count(conn, q) == 0


def test_exchange_delete_if_unused_and_bind_errors(env):
    conn = env.connect()
    ch = conn.channel()
    x = env.x()
    q = env.q()
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.exchange_delete(x, if_unused=True)
    # RabbitMQ: "PRECONDITION_FAILED - exchange '...' in vhost '/' in use"
    assert e.value.reply_code == 406
    ch = conn.channel()
    ch.queue_unbind(q, x, "k")
    ch.queue_unbind(q, x, "never-bound")  # unbinding what is not bound is fine
    ch.exchange_delete(x, if_unused=True)
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.exchange_declare(x, passive=True)
    assert e.value.reply_code == 404
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().queue_bind(q, uid("no-x"), "k")
    # RabbitMQ: "NOT_FOUND - no exchange '...' in vhost '/'"
    assert e.value.reply_code == 404
    with pytest.raises(ChannelClosedByBroker) as e:
        conn.channel().queue_bind(uid("no-q"), "amq.direct", "k")
    # RabbitMQ: "NOT_FOUND - no queue '...' in vhost '/'"
    assert e.value.reply_code == 404


def test_ack_multiple_and_ack_all(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(8):
        ch.basic_publish("", q, b"%d" % i)
    c2 = conn.channel()
    got = [c2.basic_get(q) for _ in range(5)]
    c2.basic_ack(got[2][0].delivery_tag, multiple=True)  # acks 0, 1, 2
    c2.close()
    assert wait_ready_count(conn, q, 5) == 5
    assert bodies(ch, q)[:2] == [b"3", b"4"]  # 3 and 4 came back, 0-2 did not
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    c3 = conn.channel()
    for _ in range(3):
        c3.basic_get(q)
    c3.basic_ack(0, multiple=True)  # delivery-tag 0 with multiple: everything outstanding
    c3.close()
    pump(conn, 0.2)
    assert ready_count(conn, q) == 0


@pytest.mark.parametrize("action,code_text", [
    # RabbitMQ: "NOT_IMPLEMENTED - active=false" (channel.flow to pause the server's deliveries)
    (lambda ch: ch.flow(False), "NOT_IMPLEMENTED"),
    # RabbitMQ: "NOT_IMPLEMENTED - requeue=false"
    (lambda ch: ch.basic_recover(requeue=False), "NOT_IMPLEMENTED"),
    # RabbitMQ: "NOT_IMPLEMENTED - prefetch_size!=0 (1000)"
    (lambda ch: ch.basic_qos(prefetch_size=1000), "NOT_IMPLEMENTED"),
], ids=["flow-false", "recover-no-requeue", "prefetch-size"])
def test_unsupported_options_close_connection_540(env, action, code_text):
    conn = env.connect()
    ch = conn.channel()
    assert ch.flow(True) is True  # active=true is accepted
    with pytest.raises(ConnectionClosedByBroker) as e:
        action(ch)
    assert e.value.reply_code == 540
    assert e.value.reply_text.startswith(code_text)
