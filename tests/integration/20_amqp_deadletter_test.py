"""Dead-lettering (x-dead-letter-exchange, x-dead-letter-routing-key) with pika: on
basic.reject / basic.nack with requeue=false, on queue TTL and per-message expiration,
on x-max-length overflow; the x-death header and the x-first-death-* headers exactly as
RabbitMQ writes them. Every expectation here was checked against RabbitMQ 3.10.8
(HERALD_AMQP_REFERENCE=host:port); the restart test at the end is Herald only.

What RabbitMQ 3.10.8 does, as observed:
- x-death is an array of tables, newest death first. Each table has exactly: count (a
  long, field type 'l'), reason ('rejected' | 'expired' | 'maxlen' | 'delivery_limit'),
  queue, time (a timestamp, field type 'T', whole seconds), exchange (the exchange the
  message was last published to; '' for the default exchange) and routing-keys (an array:
  the original routing key followed by the CC header's keys), plus original-expiration
  (the expiration property, a string) when the message had one. The expiration property
  itself is removed from the dead-lettered message, whatever the reason (even 'rejected').
- Entries are keyed by (queue, reason): dying again from the same queue for the same
  reason increments count and moves that entry to the front; a new (queue, reason) pair
  is a new entry at the front. time and the other fields of a moved entry are the latest.
- x-first-death-queue / -reason / -exchange are set on the first death and never change.
- Without x-dead-letter-routing-key the message is republished with its original routing
  keys (the CC keys too: a queue bound only to a CC key gets it) and delivered with the
  first; with it, delivered with that key only, the CC header removed, but x-death
  routing-keys keeps the original ones.
- A cycle made only of automatic deaths (TTL, max-length) is cut: a message that would be
  dead-lettered into a queue it already expired from is dropped. A rejection anywhere in
  the cycle lets it go round forever.
- A DLX that does not exist drops the message silently; the channel stays open.
- basic.reject/nack with requeue=true, queue.purge and queue.delete do not dead-letter.
- A per-message expiration takes effect only at the head of the queue; expiration "0"
  dead-letters at once unless a consumer is waiting (then it is delivered, expiration
  property intact); a message held unacked past the TTL expires when it is requeued.
- Everything else in the message (body, other properties, other headers) is kept as is.
"""
import time

import pika
import pytest

from amqp_util import Env, drain, pump_until, queue_exists, ready_count, time_limit, wait_ready_count
from queue_util import check_death, death_counts, deaths, first_death, get_n, get_one, persistent


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(60):  # a restart of the sanitizer build included
        yield


@pytest.fixture
def env(amqp_broker):
    e = Env(amqp_broker)
    yield e
    e.cleanup()


def dl_args(dlx, dlrk=None, **extra):
    a = {"x-dead-letter-exchange": dlx}
    if dlrk is not None:
        a["x-dead-letter-routing-key"] = dlrk
    a.update(extra)
    return a


def setup_dlq(env, ch, tag="dlq"):
    """A dead-letter queue reached through the default exchange: (dlx '', dlrk name)."""
    dlq = env.q(tag)
    ch.queue_declare(dlq)
    return dlq


# ---- reject / nack ----

def test_reject_dead_letters_with_x_death_and_original_routing_keys(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    src = env.x("src")
    dlx = env.x("dlx")
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dlx, "direct")
    q = env.q("work")
    ch.queue_declare(q, arguments=dl_args(dlx))
    ch.queue_bind(q, src, "k1")
    # the DLX routes with every original key: k1 and the CC header's keys
    by_k1 = env.q("by-k1")
    by_cc = env.q("by-cc")
    ch.queue_declare(by_k1)
    ch.queue_declare(by_cc)
    ch.queue_bind(by_k1, dlx, "k1")
    ch.queue_bind(by_cc, dlx, "cc2")
    body = bytes(range(256)) * 3
    headers = {"h": 1, "s": "text", "CC": ["cc1", "cc2"], "nested": {"a": [1, 2]}}
    props = pika.BasicProperties(content_type="application/octet-stream", content_encoding="gzip", headers=headers,
                                 delivery_mode=2, priority=3, correlation_id="corr", reply_to="rq",
                                 expiration="60000", message_id="mid", timestamp=1700000000, type="t",
                                 user_id="guest", app_id="app")
    ch.basic_publish(src, "k1", body, props)
    m, p, b = get_one(ch, q, auto_ack=False)
    assert b == body and p.expiration == "60000"
    ch.basic_reject(m.delivery_tag, requeue=False)

    m, p, b = get_one(ch, by_k1)
    assert b == body
    assert (m.exchange, m.routing_key, m.redelivered) == (dlx, "k1", False)
    [d] = deaths(p)
    check_death(d, count=1, reason="rejected", queue=q, exchange=src, routing_keys=["k1", "cc1", "cc2"],
                original_expiration="60000")
    assert first_death(p) == (q, "rejected", src)
    assert p.expiration is None  # removed, kept in x-death original-expiration
    for name in ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
                 "message_id", "timestamp", "type", "user_id", "app_id"):
        assert getattr(p, name) == getattr(props, name), name
    assert {k: v for k, v in p.headers.items() if not k.startswith("x-")} == headers
    assert set(p.headers) == set(headers) | {"x-death", "x-first-death-queue", "x-first-death-reason",
                                             "x-first-death-exchange"}
    m2, p2, b2 = get_one(ch, by_cc)
    assert b2 == body and m2.routing_key == "k1"  # routed by cc2, delivered with the first key
    assert p2.headers == p.headers
    assert ready_count(conn, q) == 0


def test_nack_single_and_multiple_dead_letter_in_order(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    dlq = setup_dlq(env, ch)
    q = env.q("work")
    ch.queue_declare(q, arguments=dl_args("", dlq))
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i)
    got = get_n(ch, q, 5, auto_ack=False)
    assert [b for _, _, b in got] == [b"m%d" % i for i in range(5)]
    ch.basic_nack(got[1][0].delivery_tag, multiple=False, requeue=False)  # m1 alone
    ch.basic_nack(got[3][0].delivery_tag, multiple=True, requeue=False)  # m0, m2, m3
    ch.basic_ack(got[4][0].delivery_tag)
    out = get_n(ch, dlq, 4)
    assert [b for _, _, b in out] == [b"m1", b"m0", b"m2", b"m3"]
    for m, p, b in out:
        assert m.routing_key == dlq and m.exchange == ""
        [d] = deaths(p)
        check_death(d, count=1, reason="rejected", queue=q, exchange="", routing_keys=[q])
        assert first_death(p) == (q, "rejected", "")
    assert ch.basic_get(dlq) == (None, None, None)


def test_dead_letter_routing_key_replaces_the_key_but_x_death_keeps_the_original(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    dlx = env.x("dlx")
    ch.exchange_declare(dlx, "direct")
    dlq = env.q("dlq")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx, "dead")
    cc_q = env.q("cc")  # bound to the CC key: with a dead-letter routing key it gets nothing
    ch.queue_declare(cc_q)
    ch.queue_bind(cc_q, dlx, "c1")
    q = env.q("work")
    ch.queue_declare(q, arguments=dl_args(dlx, "dead"))
    ch.basic_publish("", q, b"x", pika.BasicProperties(headers={"CC": ["c1"]}))
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_nack(m.delivery_tag, requeue=False)
    m, p, b = get_one(ch, dlq)
    assert (b, m.exchange, m.routing_key) == (b"x", dlx, "dead")
    [d] = deaths(p)
    # RabbitMQ: routing-keys [queue-name, 'c1'] (the original key and the CC key)
    check_death(d, count=1, reason="rejected", queue=q, exchange="", routing_keys=[q, "c1"])
    # with a dead-letter routing key RabbitMQ removes the CC header (so that the CC keys
    # do not route it again); without one the CC header is kept (see the first test)
    assert "CC" not in p.headers
    time.sleep(0.2)
    assert ready_count(conn, cc_q) == 0


def test_requeue_true_purge_and_delete_do_not_dead_letter(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    dlq = setup_dlq(env, ch)
    q = env.q("work")
    ch.queue_declare(q, arguments=dl_args("", dlq))
    ch.basic_publish("", q, b"a")
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, _, b = get_one(ch, q, auto_ack=False)
    assert (b, m.redelivered) == (b"a", True)
    ch.basic_nack(m.delivery_tag, requeue=True)
    ch2 = conn.channel()
    m, _, _ = get_one(ch2, q, auto_ack=False)
    ch2.close()  # unacked goes back, not to the DLX
    assert wait_ready_count(conn, q, 1) == 1
    ch.basic_publish("", q, b"b")
    assert ch.queue_purge(q).method.message_count == 2
    ch.basic_publish("", q, b"c")
    assert ch.queue_delete(q).method.message_count == 1
    time.sleep(0.3)
    assert ready_count(conn, dlq) == 0


def test_dead_letter_exchange_that_does_not_exist_drops_silently(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    missing = env.x("missing")  # declared later in the test
    q = env.q("work")
    ch.queue_declare(q, arguments=dl_args(missing))  # accepted: not checked at declare
    ch.basic_publish("", q, b"lost")
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    time.sleep(0.2)
    assert ch.is_open and conn.is_open
    assert ready_count(conn, q) == 0
    # once the exchange exists, later deaths go there
    ch.exchange_declare(missing, "fanout")
    dlq = env.q("dlq")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, missing)
    ch.basic_publish("", q, b"found")
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    assert [b for _, _, b in get_n(ch, dlq, 1)] == [b"found"]
    time.sleep(0.1)
    assert ch.basic_get(dlq) == (None, None, None)  # "lost" stayed lost


# ---- expiry ----

def test_queue_ttl_expiry_dead_letters_reason_expired(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    dlq = setup_dlq(env, ch)
    q = env.q("ttl")
    ch.queue_declare(q, arguments=dl_args("", dlq, **{"x-message-ttl": 200}))
    ch.basic_publish("", q, b"plain", pika.BasicProperties(headers={"keep": True}, delivery_mode=2))
    ch.basic_publish("", q, b"with-exp", pika.BasicProperties(expiration="50000"))  # queue TTL is shorter
    assert ready_count(conn, q) == 2  # not before the TTL
    out = get_n(ch, dlq, 2, timeout=3)
    assert [b for _, _, b in out] == [b"plain", b"with-exp"]  # in queue order
    (m1, p1, _), (m2, p2, _) = out
    assert (m1.exchange, m1.routing_key) == ("", dlq)
    [d] = deaths(p1)
    check_death(d, count=1, reason="expired", queue=q, exchange="", routing_keys=[q])
    assert first_death(p1) == (q, "expired", "")
    assert p1.headers["keep"] is True and p1.delivery_mode == 2
    [d] = deaths(p2)
    # the per-message expiration is recorded even though the queue TTL made it expire
    check_death(d, count=1, reason="expired", queue=q, exchange="", routing_keys=[q], original_expiration="50000")
    assert p2.expiration is None
    assert ready_count(conn, q) == 0


def test_per_message_expiration_dead_letters_with_original_expiration(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    x = env.x("src")
    ch.exchange_declare(x, "topic")
    dlq = setup_dlq(env, ch)
    q = env.q("exp")
    ch.queue_declare(q, arguments=dl_args("", dlq))
    ch.queue_bind(q, x, "a.*")
    ch.basic_publish(x, "a.b", b"short", pika.BasicProperties(expiration="150", headers={"a": 1}, message_id="s"))
    ch.basic_publish(x, "a.c", b"long", pika.BasicProperties(expiration="60000"))
    m, p, b = get_one(ch, dlq, timeout=3)
    assert b == b"short"
    assert p.expiration is None and p.message_id == "s"
    [d] = deaths(p)
    check_death(d, count=1, reason="expired", queue=q, exchange=x, routing_keys=["a.b"], original_expiration="150")
    assert first_death(p) == (q, "expired", x)
    assert p.headers["a"] == 1
    m, p, b = get_one(ch, q)
    assert b == b"long" and p.expiration == "60000"  # still there, expiration intact


def test_per_message_expiration_waits_for_the_head(env):
    """RabbitMQ (documented): a message with a per-message expiration expires (and is
    dead-lettered) only when it reaches the head of the queue; behind a live message it
    stays, and counts in message_count. Herald deliberately differs (docs/queues.md):
    it expires every message when its time comes, wherever it is in the queue."""
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    dlq = setup_dlq(env, ch)
    q = env.q("exp")
    ch.queue_declare(q, arguments=dl_args("", dlq))
    ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="60000"))
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="100"))
    time.sleep(0.4)
    if not getattr(env.broker, "reference", False):
        assert ready_count(conn, q) == 1  # Herald: gone already, from behind the head
        m, p, b = get_one(ch, dlq)
        assert b == b"short" and deaths(p)[0]["original-expiration"] == "100"
        m, _, b = ch.basic_get(q, auto_ack=True)
        assert b == b"long"
        return
    assert ready_count(conn, q) == 2
    assert ready_count(conn, dlq) == 0
    m, _, b = ch.basic_get(q, auto_ack=True)
    assert b == b"long"
    m, p, b = get_one(ch, dlq)
    assert b == b"short" and deaths(p)[0]["original-expiration"] == "100"
    assert ch.basic_get(q) == (None, None, None)


def test_expiration_zero_and_unacked_past_the_ttl(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    dlq = setup_dlq(env, ch)
    q = env.q("exp0")
    ch.queue_declare(q, arguments=dl_args("", dlq))
    # expiration "0": dead-lettered at once...
    ch.basic_publish("", q, b"zero", pika.BasicProperties(expiration="0"))
    m, p, b = get_one(ch, dlq)
    assert b == b"zero"
    check_death(deaths(p)[0], count=1, reason="expired", queue=q, exchange="", routing_keys=[q],
                original_expiration="0")
    # ...unless a consumer is waiting: then it is delivered
    cons = conn.channel()
    got = []
    cons.basic_consume(q, lambda c, m, p, b: got.append((b, p.expiration)), auto_ack=True)
    ch.basic_publish("", q, b"zero2", pika.BasicProperties(expiration="0"))
    pump_until(conn, lambda: got, 2)
    assert got == [(b"zero2", "0")]
    cons.close()
    assert ready_count(conn, dlq) == 0
    # a message held unacked past the queue TTL does not expire while held; requeued, it
    # expires at once
    q2 = env.q("held")
    ch.queue_declare(q2, arguments=dl_args("", dlq, **{"x-message-ttl": 200}))
    ch.basic_publish("", q2, b"held")
    m, _, _ = get_one(ch, q2, auto_ack=False)
    time.sleep(0.4)
    assert ready_count(conn, dlq) == 0
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, p, b = get_one(ch, dlq)
    assert b == b"held"
    check_death(deaths(p)[0], count=1, reason="expired", queue=q2, exchange="", routing_keys=[q2])
    assert ready_count(conn, q2) == 0


# ---- max-length ----

def test_max_length_drop_head_dead_letters_reason_maxlen(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    dlq = setup_dlq(env, ch)
    q = env.q("ml")
    ch.queue_declare(q, arguments=dl_args("", dlq, **{"x-max-length": 2}))
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i, pika.BasicProperties(headers={"i": i}))
    assert [b for _, _, b in drain(ch, q)] == [b"m3", b"m4"]
    out = get_n(ch, dlq, 3)
    assert [b for _, _, b in out] == [b"m0", b"m1", b"m2"]  # oldest first
    for i, (m, p, b) in enumerate(out):
        [d] = deaths(p)
        check_death(d, count=1, reason="maxlen", queue=q, exchange="", routing_keys=[q])
        assert first_death(p) == (q, "maxlen", "")
        assert p.headers["i"] == i


def test_max_length_bytes_drop_head_dead_letters_reason_maxlen(env):
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    dlq = setup_dlq(env, ch)
    q = env.q("mlb")
    ch.queue_declare(q, arguments=dl_args("", dlq, **{"x-max-length-bytes": 3}))
    ch.basic_publish("", q, b"ab")
    ch.basic_publish("", q, b"cd")
    m, p, b = get_one(ch, dlq)
    assert b == b"ab"
    [d] = deaths(p)
    check_death(d, count=1, reason="maxlen", queue=q, exchange="", routing_keys=[q])
    assert [b for _, _, b in drain(ch, q)] == [b"cd"]


# ---- x-death evolution ----

def test_x_death_through_a_two_queue_cycle_with_rejections(env):
    """W and R dead-letter into each other; a consumer rejects in both. Each (queue, reason)
    has one entry; a repeat increments count and moves the entry to the front."""
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    w = env.q("W")
    r = env.q("R")
    ch.queue_declare(w, arguments=dl_args("", r))
    ch.queue_declare(r, arguments=dl_args("", w))
    ch.basic_publish("", w, b"job", pika.BasicProperties(headers={"keep": "me"}, message_id="j"))

    def bounce(src, dst):
        m, _, _ = get_one(ch, src, auto_ack=False)
        assert m is not None
        ch.basic_reject(m.delivery_tag, requeue=False)
        m, p, b = get_one(ch, dst, auto_ack=False)
        assert b == b"job" and m.routing_key == dst and not m.redelivered
        assert p.message_id == "j" and p.headers["keep"] == "me"
        ch.basic_nack(m.delivery_tag, requeue=True)  # leave it in dst
        return death_counts(p), p

    xd, p = bounce(w, r)
    assert xd == [(w, "rejected", 1)]
    xd, p = bounce(r, w)
    assert xd == [(r, "rejected", 1), (w, "rejected", 1)]
    xd, p = bounce(w, r)
    assert xd == [(w, "rejected", 2), (r, "rejected", 1)]  # moved to the front, count 2
    check_death(deaths(p)[0], count=2, reason="rejected", queue=w, exchange="", routing_keys=[w])
    xd, p = bounce(r, w)
    assert xd == [(r, "rejected", 2), (w, "rejected", 2)]
    # exchange and routing-keys: how the message had reached that queue (dead-lettered
    # through the default exchange with the queue's name as the key)
    check_death(deaths(p)[0], count=2, reason="rejected", queue=r, exchange="", routing_keys=[r])
    check_death(deaths(p)[1], count=2, reason="rejected", queue=w, exchange="", routing_keys=[w])
    assert first_death(p) == (w, "rejected", "")  # never changes
    assert len([k for k in p.headers if k.startswith("x-first-death")]) == 3


def test_x_death_retry_loop_reject_then_ttl(env):
    """The usual retry pattern: the work queue rejects into a retry queue whose TTL sends the
    message back."""
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    w = env.q("W")
    r = env.q("R")
    ch.queue_declare(w, arguments=dl_args("", r))
    ch.queue_declare(r, arguments=dl_args("", w, **{"x-message-ttl": 100}))
    ch.basic_publish("", w, b"job", pika.BasicProperties(headers={"keep": "me"}))
    seen = []
    for _ in range(3):
        m, p, b = get_one(ch, w, auto_ack=False, timeout=3)
        assert b == b"job" and not m.redelivered
        seen.append([(d["queue"], d["reason"], d["count"]) for d in (p.headers or {}).get("x-death", [])])
        ch.basic_reject(m.delivery_tag, requeue=False)
    assert seen == [
        [],
        [(r, "expired", 1), (w, "rejected", 1)],
        [(r, "expired", 2), (w, "rejected", 2)],
    ]
    m, p, b = get_one(ch, w, timeout=3)
    assert death_counts(p) == [(r, "expired", 3), (w, "rejected", 3)]
    assert first_death(p) == (w, "rejected", "")
    assert p.headers["keep"] == "me"


def test_x_death_same_queue_other_reason_is_a_new_entry_and_the_rest_reverses(env):
    """A new (queue, reason) entry goes to the front. RabbitMQ 3.10.8 quirk, asserted as
    observed: whenever a message that already has two or more x-death entries dies again,
    the entries other than the updated/new one come out in reverse order (rabbit_dead_letter
    regroups them by queue and reason with a foldl that prepends). With one or two entries
    this looks like plain move-to-front."""
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    w = env.q("W")
    r = env.q("R")
    ch.queue_declare(w, arguments=dl_args("", r, **{"x-message-ttl": 300}))
    ch.queue_declare(r, arguments=dl_args("", w))
    ch.basic_publish("", w, b"job")
    m, _, _ = get_one(ch, w, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)  # W rejected -> R
    m, p, _ = get_one(ch, r, auto_ack=False)
    assert death_counts(p) == [(w, "rejected", 1)]
    ch.basic_reject(m.delivery_tag, requeue=False)  # R rejected -> W, where it expires -> R
    m, p, b = get_one(ch, r, auto_ack=False, timeout=3)
    assert b == b"job"
    # before this death it was [R rejected, W rejected]; the new entry is in front and the
    # other two are reversed
    assert death_counts(p) == [(w, "expired", 1), (w, "rejected", 1), (r, "rejected", 1)]
    assert first_death(p) == (w, "rejected", "")
    ch.basic_reject(m.delivery_tag, requeue=False)  # R rejected again -> W
    m, p, b = get_one(ch, w, auto_ack=False)
    assert b == b"job"
    # R/rejected incremented and in front; the other two reversed again
    assert death_counts(p) == [(r, "rejected", 2), (w, "rejected", 1), (w, "expired", 1)]
    ch.basic_ack(m.delivery_tag)


def test_cycle_of_automatic_deaths_is_dropped(env):
    """A and B both have a TTL and dead-letter into each other. RabbitMQ moves the message
    A -> B once, then drops it instead of dead-lettering it back into A (a cycle with no
    rejection)."""
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    a = env.q("A")
    b = env.q("B")
    ch.queue_declare(a, arguments=dl_args("", b, **{"x-message-ttl": 300}))
    ch.queue_declare(b, arguments=dl_args("", a, **{"x-message-ttl": 300}))
    ch.basic_publish("", a, b"cyc")
    # it reaches B (count 1 there) ...
    m, p, body = get_one(ch, b, auto_ack=False, timeout=3)
    assert body == b"cyc"
    assert death_counts(p) == [(a, "expired", 1)]
    ch.basic_nack(m.delivery_tag, requeue=True)  # back into B: the TTL clock is not reset
    # ... then expires in B and is dropped, not sent back to A
    time.sleep(0.8)
    assert ready_count(conn, a) == 0
    assert ready_count(conn, b) == 0


def test_queue_dead_lettering_into_itself(env):
    """A queue whose dead letters route back into itself: an expired message is dropped (a cycle
    of one automatic death), a rejected one comes back once, with its x-death."""
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    t = env.q("self-ttl")
    r = env.q("self-rej")
    ch.queue_declare(t, arguments=dl_args("", t, **{"x-message-ttl": 200}))
    ch.queue_declare(r, arguments=dl_args("", r))
    ch.basic_publish("", t, b"exp")
    time.sleep(0.8)
    assert ready_count(conn, t) == 0
    ch.basic_publish("", r, b"rej")
    m, _, _ = get_one(ch, r, auto_ack=False, timeout=3)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, body = get_one(ch, r, auto_ack=True, timeout=3)
    assert body == b"rej"
    assert death_counts(p) == [(r, "rejected", 1)]
    assert ready_count(conn, r) == 0


# ---- Herald only: dead-lettered messages survive a restart ----

def test_dead_lettered_messages_survive_restart(env, amqp_broker):
    if getattr(amqp_broker, "reference", False):
        pytest.skip("restarts the broker: Herald only")
    conn = env.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    dlq = env.q("dlq")
    q = env.q("work")
    ch.queue_declare(dlq, durable=True)
    ch.queue_declare(q, durable=True, arguments=dl_args("", dlq, **{"x-max-length": 3}))
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i, persistent(headers={"i": i}, expiration="600000"))
    m, _, _ = get_one(ch, q, auto_ack=False)  # m2
    ch.basic_reject(m.delivery_tag, requeue=False)
    assert wait_ready_count(conn, dlq, 3) == 3
    conn.close()
    amqp_broker.restart()
    conn = env.connect()
    ch = conn.channel()
    assert queue_exists(conn, dlq)
    out = drain(ch, dlq)
    assert [b for _, _, b in out] == [b"m0", b"m1", b"m2"]
    for i, (m, p, b) in enumerate(out):
        reason = "maxlen" if i < 2 else "rejected"
        [d] = deaths(p)
        check_death(d, count=1, reason=reason, queue=q, exchange="", routing_keys=[q],
                    original_expiration="600000")
        assert first_death(p) == (q, reason, "")
        assert p.headers["i"] == i and p.delivery_mode == 2 and p.expiration is None
    assert [b for _, _, b in drain(ch, q)] == [b"m3", b"m4"]
