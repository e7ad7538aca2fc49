"""Stream queues (x-queue-type=stream) shared by AMQP and Kafka: a stream is the Kafka
topic of the same name with one partition (docs/streams.md).

The AMQP-only tests state RabbitMQ 3.10.8's behaviour and were checked against it
(HERALD_AMQP_REFERENCE=host:port; see README.md). Where RabbitMQ crashes the channel
(541 INTERNAL_ERROR, connection closed) Herald refuses with a 406 and a text; those
tests accept both under the reference. The Kafka tests (confluent-kafka, kafka-python)
and the restart test run against Herald only."""
import datetime
import os
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from amqp_util import Env, herald_env, pump, pump_until, queue_exists, time_limit, uid

STREAM = {"x-queue-type": "stream"}
REFERENCE = bool(os.environ.get("HERALD_AMQP_REFERENCE"))
herald_only = pytest.mark.skipif(REFERENCE, reason="Kafka side or restart: Herald only")


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(90):
        yield


@pytest.fixture
def env(amqp_broker):
    e = Env(amqp_broker)
    yield e
    e.cleanup()


def refused(env, fn):
    """Runs fn(channel) on a fresh connection; returns ("channel"|"connection", code, text)."""
    conn = env.connect()
    ch = conn.channel()
    try:
        fn(conn, ch)
    except ChannelClosedByBroker as e:
        return ("channel", e.reply_code, e.reply_text)
    except ConnectionClosedByBroker as e:
        return ("connection", e.reply_code, e.reply_text)
    return None


def declare_stream(ch, q, **args):
    return ch.queue_declare(q, durable=True, arguments=dict(STREAM, **args))


def publish(ch, q, n, start=0, exchange="", **props):
    for i in range(start, start + n):
        ch.basic_publish(exchange, q, f"m{i}".encode(),
                         pika.BasicProperties(delivery_mode=2, headers={"i": i}, **props))


def consume(conn, ch, q, offset=None, prefetch=100, n=None, wait=1.5, ack=True, tag=None, exclusive=False):
    """Consumes with manual acks; returns [(method, properties, body)] after n messages or `wait` s."""
    ch.basic_qos(prefetch_count=prefetch)
    got = []

    def on(ch_, m, p, b):
        got.append((m, p, b))
        if ack:
            ch_.basic_ack(m.delivery_tag)

    args = {} if offset is None else {"x-stream-offset": offset}
    kw = {"consumer_tag": tag} if tag else {}
    ch.basic_consume(q, on, arguments=args, exclusive=exclusive, **kw)
    if n is None:
        pump(conn, wait)
    else:
        pump_until(conn, lambda: len(got) >= n, timeout=10)
        pump(conn, 0.2)
    return got


def bodies(got):
    return [b for _, _, b in got]


def filled_stream(env, n=10):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("s")
    declare_stream(ch, q)
    ch.confirm_delivery()
    publish(ch, q, n)
    conn.close()
    return q


# ---- declare ----

def test_declare_properties_refused(env):
    q = env.q("s")
    r = refused(env, lambda c, ch: ch.queue_declare(q, durable=False, arguments=STREAM))
    assert r == ("channel", 406, f"PRECONDITION_FAILED - invalid property 'non-durable' for queue '{q}' in vhost '/'")
    r = refused(env, lambda c, ch: ch.queue_declare(q, durable=True, exclusive=True, arguments=STREAM))
    assert r == ("channel", 406,
                 f"PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue '{q}' in vhost '/'")
    r = refused(env, lambda c, ch: ch.queue_declare(q, durable=True, auto_delete=True, arguments=STREAM))
    assert r == ("channel", 406, f"PRECONDITION_FAILED - invalid property 'auto-delete' for queue '{q}' in vhost '/'")
    r = refused(env, lambda c, ch: ch.queue_declare("", durable=True, arguments=STREAM))
    assert r == ("channel", 406,
                 "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_stream_queue")


def test_declare_arguments(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("s")
    ok = declare_stream(ch, q, **{"x-max-age": "1h", "x-max-length-bytes": 10_000_000,
                                  "x-stream-max-segment-size-bytes": 1_000_000})
    assert (ok.method.queue, ok.method.message_count, ok.method.consumer_count) == (q, 0, 0)
    cases = [
        ({"x-max-age": "1x"}, "invalid arg 'x-max-age' for queue '{q}' in vhost '/': invalid_max_age"),
        ({"x-max-age": "0s"}, "invalid arg 'x-max-age' for queue '{q}' in vhost '/': invalid_max_age"),
        ({"x-max-age": 10}, "invalid arg 'x-max-age' for queue '{q}' in vhost '/': {unacceptable_type,signedint}"),
        ({"x-max-length-bytes": "100"},
         "invalid arg 'x-max-length-bytes' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
        ({"x-max-length-bytes": -5}, "invalid arg 'x-max-length-bytes' for queue '{q}' in vhost '/': {value_negative,-5}"),
        ({"x-max-length": 10}, "invalid arg 'x-max-length' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
        ({"x-message-ttl": 10}, "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
        ({"x-dead-letter-exchange": "x"},
         "invalid arg 'x-dead-letter-exchange' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
        ({"x-single-active-consumer": True},
         "invalid arg 'x-single-active-consumer' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"),
    ]
    for args, text in cases:
        q2 = env.q("s")
        r = refused(env, lambda c, ch2: declare_stream(ch2, q2, **args))
        assert r == ("channel", 406, "PRECONDITION_FAILED - " + text.replace("{q}", q2)), args
    # x-initial-cluster-size is a placement hint: accepted
    declare_stream(ch, env.q("s"), **{"x-initial-cluster-size": 1})


def test_redeclare_equivalence(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("s")
    declare_stream(ch, q)
    declare_stream(ch, q)  # the same again: fine
    assert ch.queue_declare(q, passive=True).method.queue == q
    r = refused(env, lambda c, ch2: ch2.queue_declare(q, durable=True))
    assert r == ("channel", 406, f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost "
                                 "'/': received none but current is the value 'stream' of type 'longstr'")
    r = refused(env, lambda c, ch2: ch2.queue_declare(q, durable=True, arguments={"x-queue-type": "classic"}))
    assert r == ("channel", 406, f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost "
                                 "'/': received 'classic' but current is 'stream'")
    r = refused(env, lambda c, ch2: declare_stream(ch2, q, **{"x-max-age": "1h"}))
    assert r == ("channel", 406, f"PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue '{q}' in vhost '/': "
                                 "received the value '1h' of type 'longstr' but current is none")
    classic = env.q("c")
    ch.queue_declare(classic, durable=True)
    r = refused(env, lambda c, ch2: declare_stream(ch2, classic))
    assert r == ("channel", 406, f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{classic}' in "
                                 "vhost '/': received the value 'stream' of type 'longstr' but current is none")


# ---- consume rules ----

def test_consume_requires_prefetch_and_manual_ack(env):
    q = filled_stream(env, 3)
    text = f"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{q}' in vhost '/''"
    r = refused(env, lambda c, ch: ch.basic_consume(q, lambda *a: None))
    assert r == ("channel", 406, text)
    r = refused(env, lambda c, ch: (ch.basic_qos(prefetch_count=0), ch.basic_consume(q, lambda *a: None)))
    assert r == ("channel", 406, text)
    # a channel-wide (global) limit is not a consumer prefetch
    r = refused(env, lambda c, ch: (ch.basic_qos(prefetch_count=5, global_qos=True),
                                    ch.basic_consume(q, lambda *a: None)))
    assert r == ("channel", 406, text)
    r = refused(env, lambda c, ch: (ch.basic_qos(prefetch_count=5),
                                    ch.basic_consume(q, lambda *a: None, auto_ack=True)))
    assert r == ("connection", 540, "NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues "
                                    f"queue '{q}' in vhost '/'")


def test_get_purge_nack_reject_refused(env):
    q = filled_stream(env, 3)
    r = refused(env, lambda c, ch: ch.basic_get(q))
    assert r == ("connection", 540, f"NOT_IMPLEMENTED - basic.get not supported by stream queues queue '{q}' in "
                                    "vhost '/'")
    r = refused(env, lambda c, ch: ch.queue_purge(q))
    assert r == ("connection", 540, f"NOT_IMPLEMENTED - queue.purge not supported by stream queues queue '{q}' in "
                                    "vhost '/'")
    text = f"NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream queues queue '{q}' in vhost '/'"

    def settle(how):
        def run(conn, ch):
            got = consume(conn, ch, q, "first", n=1, ack=False)
            tag = got[0][0].delivery_tag
            if how == "nack":
                ch.basic_nack(tag, requeue=True)
            elif how == "nack0":
                ch.basic_nack(tag, requeue=False)
            else:
                ch.basic_reject(tag, requeue=True)
            pump(conn, 2)
        return run

    for how in ("nack", "nack0", "reject"):
        assert refused(env, settle(how)) == ("connection", 540, text), how

    def recover(conn, ch):
        consume(conn, ch, q, "first", n=1, ack=False)
        ch.basic_recover(requeue=True)
        pump(conn, 2)

    r = refused(env, recover)
    if REFERENCE:  # RabbitMQ 3.10.8 crashes the channel: 541 INTERNAL_ERROR, connection closed
        assert r[:2] in (("connection", 541), ("connection", 540)), r
    else:
        assert r == ("connection", 540, f"NOT_IMPLEMENTED - basic.recover not supported by stream queues queue '{q}' "
                                        "in vhost '/'")


# ---- x-stream-offset ----

def test_stream_offset_variants(env):
    q = filled_stream(env, 10)
    conn = env.connect()

    def run(offset, **kw):
        ch = conn.channel()
        got = consume(conn, ch, q, offset, **kw)
        ch.close()
        return got

    all10 = [f"m{i}".encode() for i in range(10)]
    got = run("first", n=10)
    assert bodies(got) == all10
    # each delivery carries its offset; the message's own headers are kept
    for i, (m, p, b) in enumerate(got):
        assert p.headers == {"i": i, "x-stream-offset": i}
        assert (m.exchange, m.routing_key, m.redelivered) == ("", q, False)
        assert p.delivery_mode == 2
    assert bodies(run(None)) == []            # default: next
    assert bodies(run("next")) == []
    assert bodies(run("last", n=1)) == [b"m9"]  # the last chunk: each confirmed publish was its own
    assert bodies(run(5, n=5)) == all10[5:]
    assert bodies(run(-1, n=10)) == all10      # before the start: from the start
    assert bodies(run(100)) == []              # past the end: next
    hour = datetime.timedelta(hours=1)
    assert bodies(run(datetime.datetime.now() - hour, n=10)) == all10
    assert bodies(run(datetime.datetime.now() + hour)) == []
    for interval in ("1h", "100s", "1m", "1D", "1M", "1Y"):
        assert bodies(run(interval, n=10)) == all10, interval
    for bad in ("0s", "5", "1d", "1H", "1.5h", "1hx"):
        r = refused(env, lambda c, ch: consume(c, ch, q, bad, wait=0.5))
        assert r == ("channel", 406, f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{q}' in vhost "
                                     f"'/': {{invalid_stream_offset_arg,{{longstr,<<\"{bad}\">>}}}}"), bad
    # RabbitMQ 3.10.8 crashes on these (541 INTERNAL_ERROR, connection closed); Herald refuses with 406
    for bad in ("bogus", "h", "-1h", "", "FIRST"):
        r = refused(env, lambda c, ch: consume(c, ch, q, bad, wait=0.5))
        if REFERENCE:
            assert r[:2] in (("connection", 541), ("channel", 406)), (bad, r)
        else:
            assert r == ("channel", 406, f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{q}' in "
                                         f"vhost '/': {{invalid_stream_offset_arg,{{longstr,<<\"{bad}\">>}}}}"), bad


def test_acks_give_credit_and_keep_messages(env):
    q = filled_stream(env, 10)
    conn = env.connect()
    ch = conn.channel()
    got = consume(conn, ch, q, "first", prefetch=3, ack=False, wait=1)
    assert bodies(got) == [b"m0", b"m1", b"m2"]  # the prefetch is the credit
    ch.basic_ack(got[1][0].delivery_tag)
    pump_until(conn, lambda: len(got) >= 4, timeout=5)
    pump(conn, 0.3)
    assert bodies(got) == [b"m0", b"m1", b"m2", b"m3"]
    ch.basic_ack(got[3][0].delivery_tag, multiple=True)
    pump_until(conn, lambda: len(got) >= 7, timeout=5)
    pump(conn, 0.3)
    assert len(got) == 7
    ch.close()
    # acks removed nothing: another consumer reads all ten
    ch2 = conn.channel()
    assert bodies(consume(conn, ch2, q, "first", n=10)) == [f"m{i}".encode() for i in range(10)]
    if not REFERENCE:  # Herald counts the stream's messages; RabbitMQ 3.10.8 a stale figure (0 until read)
        assert ch2.queue_declare(q, passive=True).method.message_count == 10


def test_live_consumers_and_exchange_routing(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("s")
    x = env.x("x")
    declare_stream(ch, q)
    ch.exchange_declare(x, "direct", durable=True)
    ch.queue_bind(q, x, "rk")
    cons = env.connect()
    a, b = cons.channel(), cons.channel()
    got_a = consume(cons, a, q, "next", wait=0.3, exclusive=True)  # a stream ignores exclusive, as RabbitMQ
    got_b = consume(cons, b, q, "first", wait=0.3, prefetch=2)
    ch.confirm_delivery()
    publish(ch, "rk", 3, exchange=x)
    ch.basic_publish(x, "rk", b"transient", pika.BasicProperties(delivery_mode=1))  # a stream keeps every message
    pump_until(cons, lambda: len(got_a) >= 4 and len(got_b) >= 4, timeout=10)
    assert bodies(got_a) == [b"m0", b"m1", b"m2", b"transient"]
    assert bodies(got_b) == bodies(got_a)
    m, p, _ = got_a[0]
    assert (m.exchange, m.routing_key) == (x, "rk")
    assert p.headers == {"i": 0, "x-stream-offset": 0}
    assert got_a[3][1].headers == {"x-stream-offset": 3}
    if not REFERENCE:  # RabbitMQ 3.10.8 counts no stream consumers (0) and deletes reporting 0
        assert ch.queue_declare(q, passive=True).method.consumer_count == 2
        assert ch.queue_delete(q).method.message_count == 4


# ---- shared with Kafka (Herald only) ----

def kafka_consume(bootstrap, topic, n, group=None):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group or uid("g"), "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + 20
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append(m)
    c.close()
    return out


@herald_only
def test_confluent_kafka_reads_what_pika_publishes(env):
    conn = env.connect()
    ch = conn.channel()
    q = env.q("s")
    declare_stream(ch, q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"hello", pika.BasicProperties(
        delivery_mode=2, content_type="text/plain", message_id="id-1", correlation_id="c-1", priority=3,
        timestamp=1700000000, headers={"s": "str", "n": 42, "b": True, "nested": {"x": 1}}))
    ch.basic_publish("", q, b"", pika.BasicProperties())
    msgs = kafka_consume(env.broker.bootstrap, q, 2)
    assert [m.value() for m in msgs] == [b"hello", b""]
    m = msgs[0]
    assert (m.topic(), m.partition(), m.offset(), m.key()) == (q, 0, 0, q.encode())
    h = dict(m.headers())
    assert h["s"] == b"str" and h["n"] == b"42" and h["b"] == b"true"
    assert "nested" not in h  # tables and arrays have no text form: left out (kept in amqp.properties)
    assert h["amqp.content-type"] == b"text/plain"
    assert h["amqp.message-id"] == b"id-1"
    assert h["amqp.correlation-id"] == b"c-1"
    assert h["amqp.delivery-mode"] == b"2"
    assert h["amqp.priority"] == b"3"
    assert h["amqp.timestamp"] == b"1700000000"
    assert "amqp.properties" in h and "amqp.exchange" not in h  # the default exchange is ""
    # and the AMQP side gets the typed headers back exactly
    ch2 = conn.channel()
    got = consume(conn, ch2, q, "first", n=2)
    assert got[0][1].headers == {"s": "str", "n": 42, "b": True, "nested": {"x": 1}, "x-stream-offset": 0}
    assert got[0][1].priority == 3 and got[0][1].timestamp == 1700000000


@herald_only
def test_kafka_python_reads_what_pika_publishes(env):
    from kafka import KafkaConsumer
    q = filled_stream(env, 5)
    kc = KafkaConsumer(q, bootstrap_servers=env.broker.bootstrap, group_id=uid("g"), auto_offset_reset="earliest",
                       consumer_timeout_ms=8000)
    got = []
    for m in kc:
        got.append(m)
        if len(got) == 5:
            break
    kc.close()
    assert [m.value for m in got] == [f"m{i}".encode() for i in range(5)]
    assert dict(got[2].headers)["i"] == b"2"


@herald_only
def test_pika_consumes_what_kafka_produces(env):
    from confluent_kafka import Producer
    conn = env.connect()
    ch = conn.channel()
    q = env.q("s")
    declare_stream(ch, q)
    got = consume(conn, ch, q, "next", wait=0.3, prefetch=10)
    p = Producer({"bootstrap.servers": env.broker.bootstrap, "acks": "all", "linger.ms": 0})
    p.produce(q, key=b"k1", value=b"v1", headers=[("h", b"x"), ("amqp.content-type", b"application/json"),
                                                   ("amqp.delivery-mode", b"2"), ("void", None)])
    p.produce(q, value=b"v2")
    assert p.flush(10) == 0
    pump_until(conn, lambda: len(got) >= 2, timeout=10)
    (m1, p1, b1), (m2, p2, b2) = got
    assert (b1, m1.exchange, m1.routing_key) == (b"v1", "", "k1")
    assert p1.headers == {"h": "x", "void": None, "x-stream-offset": 0}
    assert (p1.content_type, p1.delivery_mode) == ("application/json", 2)
    assert (b2, m2.routing_key, p2.headers, p2.content_type) == (b"v2", "", {"x-stream-offset": 1}, None)
    # kafka-python too, from the start
    from kafka import KafkaProducer
    kp = KafkaProducer(bootstrap_servers=env.broker.bootstrap, acks="all")
    kp.send(q, b"v3", headers=[("from", b"kafka-python")]).get(10)
    kp.close()
    pump_until(conn, lambda: len(got) >= 3, timeout=10)
    assert got[2][2] == b"v3" and got[2][1].headers == {"from": "kafka-python", "x-stream-offset": 2}


@herald_only
def test_retention_arguments_become_topic_configs(env):
    from confluent_kafka.admin import AdminClient, ConfigResource
    conn = env.connect()
    ch = conn.channel()
    q = env.q("s")
    declare_stream(ch, q, **{"x-max-age": "2D", "x-max-length-bytes": 5_000_000,
                             "x-stream-max-segment-size-bytes": 2_000_000})
    admin = AdminClient({"bootstrap.servers": env.broker.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, q)
    cfg = admin.describe_configs([res])[res].result(10)
    assert cfg["retention.ms"].value == str(2 * 86400 * 1000)
    assert cfg["retention.bytes"].value == "5000000"
    assert cfg["segment.bytes"].value == "2000000"
    md = admin.list_topics(q, timeout=10).topics[q]
    assert len(md.partitions) == 1


@herald_only
def test_topic_adoption_names_and_partitions(env):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
    admin = AdminClient({"bootstrap.servers": env.broker.bootstrap})
    one, three = uid("one"), uid("three")
    for f in admin.create_topics([NewTopic(one, 1, 1), NewTopic(three, 3, 1)]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": env.broker.bootstrap, "acks": "all"})
    p.produce(one, value=b"before")
    p.flush(10)
    conn = env.connect()
    ch = conn.channel()
    env.queues.append(one)
    declare_stream(ch, one, **{"x-max-age": "1h"})  # adopts the topic with its record
    assert bodies(consume(conn, ch, one, "first", n=1)) == [b"before"]
    r = refused(env, lambda c, ch2: declare_stream(ch2, three))
    assert r == ("channel", 406, f"PRECONDITION_FAILED - stream queue '{three}': topic '{three}' has 3 partitions; "
                                 "a stream is a topic with one partition")
    r = refused(env, lambda c, ch2: declare_stream(ch2, "bad name/with space"))
    assert r == ("channel", 406, "PRECONDITION_FAILED - stream queue 'bad name/with space': a stream is a Kafka "
                                 "topic, and topic names are 1-249 characters of [a-zA-Z0-9._-], not '.' or '..'")
    # a stream stays one partition
    f = admin.create_partitions([NewPartitions(one, 2)])[one]
    with pytest.raises(Exception):
        f.result(10)


@herald_only
def test_deleting_either_side_deletes_both(env):
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": env.broker.bootstrap})
    conn = env.connect()
    ch = conn.channel()
    a, b = env.q("s"), env.q("s")
    declare_stream(ch, a)
    declare_stream(ch, b)
    assert {a, b} <= set(admin.list_topics(timeout=10).topics)
    ch.queue_delete(a)
    deadline = time.monotonic() + 10
    while a in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    assert a not in admin.list_topics(timeout=10).topics
    cons = env.connect(client_properties={"capabilities": {"consumer_cancel_notify": True}})
    cch = cons.channel()
    cancelled = []
    cch.add_on_cancel_callback(lambda m: cancelled.append(m))
    consume(cons, cch, b, "first", wait=0.2)
    admin.delete_topics([b])[b].result(10)
    pump_until(cons, lambda: cancelled, timeout=10)
    assert cancelled  # its consumer got basic.cancel
    assert not queue_exists(conn, b)


@herald_only
@pytest.mark.parametrize("crash", [False, True])
def test_restart_keeps_everything(broker_factory, crash):
    from confluent_kafka import Producer
    b, env = herald_env(broker_factory)
    try:
        conn = env.connect()
        ch = conn.channel()
        q, x = uid("s"), uid("x")
        declare_stream(ch, q, **{"x-max-age": "1h"})
        ch.exchange_declare(x, "fanout", durable=True)
        ch.queue_bind(q, x)
        ch.confirm_delivery()
        publish(ch, q, 3)
        pr = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        pr.produce(q, key=b"k", value=b"kafka")
        pr.flush(10)
        if crash:  # every confirmed publish and acknowledged produce is on disk: SIGKILL loses none
            b.kill()
            b.start()
        else:
            conn.close()
            b.restart()
        conn = env.connect()
        ch = conn.channel()
        declare_stream(ch, q, **{"x-max-age": "1h"})  # same arguments: equivalent
        ch.confirm_delivery()
        ch.basic_publish(x, "", b"after", pika.BasicProperties(delivery_mode=2))  # the binding survived
        got = consume(conn, ch, q, "first", n=5)
        assert bodies(got) == [b"m0", b"m1", b"m2", b"kafka", b"after"]
        assert [p.headers["x-stream-offset"] for _, p, _ in got] == [0, 1, 2, 3, 4]
        assert got[0][1].headers["i"] == 0
        msgs = kafka_consume(b.bootstrap, q, 5)
        assert [m.value() for m in msgs] == [b"m0", b"m1", b"m2", b"kafka", b"after"]
    finally:
        env.cleanup()


@herald_only
@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_pika_reads_compressed_kafka_batches(env, codec):
    from confluent_kafka import Producer
    conn = env.connect()
    ch = conn.channel()
    q = env.q("s")
    declare_stream(ch, q)
    p = Producer({"bootstrap.servers": env.broker.bootstrap, "acks": "all", "compression.codec": codec,
                  "linger.ms": 50})
    for i in range(20):
        p.produce(q, key=b"k", value=(b"record %d " % i) * 20, headers=[("n", str(i).encode())])
    assert p.flush(10) == 0
    got = consume(conn, ch, q, "first", n=20, prefetch=7)
    assert [b for _, _, b in got] == [(b"record %d " % i) * 20 for i in range(20)]
    assert [pr.headers for _, pr, _ in got] == [{"n": str(i), "x-stream-offset": i} for i in range(20)]
    if codec != "gzip":  # kafka-python needs Python codec packages that are not installed for the others
        return
    from kafka import KafkaProducer
    kp = KafkaProducer(bootstrap_servers=env.broker.bootstrap, acks="all", compression_type=codec, linger_ms=20)
    for i in range(5):
        kp.send(q, b"kp%d" % i)
    kp.flush(10)
    kp.close()
    pump_until(conn, lambda: len(got) >= 25, timeout=10)
    assert [b for _, _, b in got[20:]] == [b"kp%d" % i for i in range(5)]


# ---- queues fed from a topic (x-source-topic, Herald extension) ----

def produce(bootstrap, topic, values, partition=None):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for v in values:
        if partition is None:
            p.produce(topic, value=v, key=v)
        else:
            p.produce(topic, value=v, partition=partition)
    assert p.flush(10) == 0


def make_topic(bootstrap, name, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)


@herald_only
def test_source_topic_feeds_new_records_with_acks_and_bound(env):
    bs = env.broker.bootstrap
    src = uid("src")
    make_topic(bs, src, 3)
    produce(bs, src, [b"old%d" % i for i in range(6)])  # before the queue: not fed
    conn = env.connect()
    ch = conn.channel()
    q = env.q("fed")
    r = refused(env, lambda c, ch2: ch2.queue_declare(env.q("fed"), durable=True,
                                                       arguments={"x-source-topic": uid("nosuch")}))
    assert r[:2] == ("channel", 404)
    ch.queue_declare(q, durable=True, arguments={"x-source-topic": src, "x-source-max-ready": 10})
    values = [b"new%02d" % i for i in range(40)]
    produce(bs, src, values)
    # feeding pauses at the bound of ready messages
    deadline = time.monotonic() + 10
    while ch.queue_declare(q, passive=True).method.message_count < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert ch.queue_declare(q, passive=True).method.message_count == 10
    # per-message acks, nack with requeue, and everything arrives once
    got = []
    ch.basic_qos(prefetch_count=4)

    def on(ch_, m, p, b):
        if b == b"new00" and not m.redelivered:
            ch_.basic_nack(m.delivery_tag, requeue=True)
            return
        got.append((b, p.headers))
        ch_.basic_ack(m.delivery_tag)

    ch.basic_consume(q, on)
    pump_until(conn, lambda: len(got) >= 40, timeout=20)
    pump(conn, 0.3)
    assert sorted(b for b, _ in got) == values
    for b, h in got:
        assert set(h) == {"x-stream-offset", "x-stream-partition"}
    # each partition's records arrive in offset order (but the nacked one, which came back later)
    by_part = {}
    for b, h in got:
        if b != b"new00":
            by_part.setdefault(h["x-stream-partition"], []).append(h["x-stream-offset"])
    assert set(by_part) <= {0, 1, 2} and len(by_part) >= 2
    for offs in by_part.values():
        assert offs == sorted(offs)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


@herald_only
@pytest.mark.parametrize("crash", [False, True])
def test_source_topic_position_survives_restart(broker_factory, crash):
    b, env = herald_env(broker_factory)
    try:
        src = uid("src")
        make_topic(b.bootstrap, src, 2)
        conn = env.connect()
        ch = conn.channel()
        q = uid("fed")
        ch.queue_declare(q, durable=True, arguments={"x-source-topic": src, "x-source-max-ready": 25})
        produce(b.bootstrap, src, [b"a%02d" % i for i in range(30)])
        # take (and ack) 10, leave the rest fed or waiting
        got = []
        ch.basic_qos(prefetch_count=10)
        tag = ch.basic_consume(q, lambda ch_, m, p, body: got.append((m.delivery_tag, body)))
        pump_until(conn, lambda: len(got) >= 10, timeout=10)
        ch.basic_cancel(tag)
        for t, _ in got[:10]:
            ch.basic_ack(t)
        ch.queue_declare(q, passive=True)  # a round trip: the acks were processed
        time.sleep(1.2)  # positions and acks reach the disk (a sync round, a feed tick)
        conn.close()
        if crash:
            b.kill()
            b.start()
        else:
            b.restart()
        produce(b.bootstrap, src, [b"b%02d" % i for i in range(10)])
        conn = env.connect()
        ch = conn.channel()
        rest = []
        ch.basic_qos(prefetch_count=50)
        ch.basic_consume(q, lambda ch_, m, p, body: (rest.append(body), ch_.basic_ack(m.delivery_tag)))
        pump_until(conn, lambda: len(rest) >= 30, timeout=20)
        pump(conn, 1.0)
        first = [body for _, body in got[:10]]
        everything = sorted(first + rest)
        expected = sorted([b"a%02d" % i for i in range(30)] + [b"b%02d" % i for i in range(10)])
        assert everything == expected  # nothing fed twice, nothing skipped
    finally:
        env.cleanup()


@herald_only
def test_source_topic_position_log_covers_deleted_segments(broker_factory):
    """Partition 0's fed messages fill a whole data-log segment (64 MiB), are acked and their
    segment is deleted, claims and all; the position log still knows where partition 0 was."""
    from confluent_kafka import Producer
    b, env = herald_env(broker_factory)
    try:
        src = uid("src")
        make_topic(b.bootstrap, src, 2)
        conn = env.connect()
        ch = conn.channel()
        q = uid("fed")
        ch.queue_declare(q, durable=True, arguments={"x-source-topic": src, "x-source-max-ready": 20})
        big = b"x" * 900_000
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(74):  # 66.6 MB: all in the queue's first data segment (64 MiB)
            p.produce(src, value=b"%03d" % i + big, partition=0)
            if i % 10 == 9:
                p.flush(10)
        assert p.flush(10) == 0
        got = []
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(q, lambda ch_, m, pr, body: (got.append(body[:3]), ch_.basic_ack(m.delivery_tag)))
        pump_until(conn, lambda: len(got) >= 74, timeout=60)
        assert got == [b"%03d" % i for i in range(74)]
        p.produce(src, value=b"p1-" + big, partition=1)  # does not fit: rolls, its claim in the new segment
        p.flush(10)
        pump_until(conn, lambda: len(got) >= 75, timeout=10)
        time.sleep(3)  # acks synced; the maintenance tick drops the first segment; a feed tick
        conn.close()
        qdirs = [d for d in os.listdir(os.path.join(b.data_dir, "queues")) if d.endswith("-log")]
        assert len(qdirs) == 1
        segs = [f for f in os.listdir(os.path.join(b.data_dir, "queues", qdirs[0])) if f.endswith(".log")]
        assert len(segs) == 1 and not segs[0].startswith("0" * 20), segs  # the first segment is gone
        b.kill()
        b.start()
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
        p.produce(src, value=b"p0-new", partition=0)
        p.produce(src, value=b"p1-new", partition=1)
        assert p.flush(10) == 0
        conn = env.connect()
        ch = conn.channel()
        rest = []
        ch.basic_qos(prefetch_count=100)
        ch.basic_consume(q, lambda ch_, m, pr, body: (rest.append(body[:6]), ch_.basic_ack(m.delivery_tag)))
        pump_until(conn, lambda: len(rest) >= 2, timeout=20)
        pump(conn, 1.5)
        assert sorted(rest) == [b"p0-new", b"p1-new"]  # nothing of partition 0 fed again
    finally:
        env.cleanup()


@herald_only  # (RabbitMQ 3.10.8 delivered nothing from the stream within 10 s in this test)
def test_dead_letters_into_a_stream(env):
    conn = env.connect()
    ch = conn.channel()
    dlx, src, q = env.x("dlx"), env.q("src"), env.q("s")
    ch.exchange_declare(dlx, "fanout", durable=True)
    declare_stream(ch, q)
    ch.queue_bind(q, dlx)
    ch.queue_declare(src, durable=True, arguments={"x-dead-letter-exchange": dlx})
    ch.confirm_delivery()
    ch.basic_publish("", src, b"dead", pika.BasicProperties(delivery_mode=2, headers={"k": "v"}))
    m, _, _ = ch.basic_get(src)
    ch.basic_reject(m.delivery_tag, requeue=False)
    ch2 = conn.channel()
    got = consume(conn, ch2, q, "first", n=1)
    assert bodies(got) == [b"dead"]
    h = got[0][1].headers
    assert h["k"] == "v" and h["x-stream-offset"] == 0
    assert "amqp.claim" not in h  # the claim stays a record header for Kafka readers
    assert h["x-death"][0]["reason"] == "rejected" and h["x-death"][0]["queue"] == src


@herald_only
def test_dead_letters_into_a_stream_exactly_once_across_kill(broker_factory):
    """SIGKILL while rejected messages move into a stream: afterwards each message is either
    still in its queue or in the stream, never both and never neither."""
    b, env = herald_env(broker_factory)
    n = 3000
    try:
        conn = env.connect()
        ch = conn.channel()
        dlx, src, s = uid("dlx"), uid("src"), uid("s")
        ch.exchange_declare(dlx, "fanout", durable=True)
        declare_stream(ch, s)
        ch.queue_bind(s, dlx)
        ch.queue_declare(src, durable=True, arguments={"x-dead-letter-exchange": dlx})
        ch.confirm_delivery()
        publish(ch, src, n)
        rejected = []
        c2 = conn.channel()
        c2.basic_qos(prefetch_count=200)

        def on(ch_, m, p, body):
            ch_.basic_reject(m.delivery_tag, requeue=False)
            rejected.append(body)

        c2.basic_consume(src, on)
        pump_until(conn, lambda: len(rejected) >= n // 2, timeout=30)
        b.kill()  # moves in flight: intents, copies and acks at every stage
        b.start()
        conn = env.connect()
        ch = conn.channel()
        left = ch.queue_declare(src, passive=True).method.message_count
        assert 0 < left <= n
        in_queue = []
        ch.basic_qos(prefetch_count=500)
        ch.basic_consume(src, lambda ch_, m, p, body: (in_queue.append(body), ch_.basic_ack(m.delivery_tag)))
        pump_until(conn, lambda: len(in_queue) >= left, timeout=30)
        assert len(in_queue) == left
        stored = ch.queue_declare(s, passive=True).method.message_count
        assert stored == n - left, "a message is in both places, or in neither"
        recs = kafka_consume(b.bootstrap, s, stored)
        in_stream = [r.value() for r in recs]
        assert not set(in_queue) & set(in_stream), "a message is in both places"
        assert sorted(in_queue + in_stream) == sorted(f"m{i}".encode() for i in range(n))
        assert all(dict(r.headers()).get("amqp.claim") for r in recs)  # each copy names its original
    finally:
        env.cleanup()
