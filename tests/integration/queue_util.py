"""Helpers for the queue-feature tests (dead-lettering, limits, priorities, single
active consumer, quorum queues): bounded single gets, x-death access, channel-close
expectations."""
import datetime
import time

import pika
import pytest
from pika.compat import long as pika_long
from pika.exceptions import ChannelClosedByBroker


def get_one(ch, q, timeout=3.0, auto_ack=True):
    """basic.get until a message arrives (dead-lettering is asynchronous): (method, props, body)
    or (None, None, None) after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        m, p, b = ch.basic_get(q, auto_ack=auto_ack)
        if m is not None or time.monotonic() > deadline:
            return m, p, b
        time.sleep(0.02)


def get_n(ch, q, n, timeout=3.0, auto_ack=True):
    """basic.get until n messages were got (or `timeout`): list of (method, props, body)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        m, p, b = ch.basic_get(q, auto_ack=auto_ack)
        if m is not None:
            out.append((m, p, b))
            continue
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return out


def deaths(props):
    """The x-death header: a list of tables, most recent death first."""
    assert props.headers is not None and "x-death" in props.headers, props.headers
    return props.headers["x-death"]


def death_counts(props):
    """The x-death header as (queue, reason, count) triples, most recent death first."""
    return [(d["queue"], d["reason"], d["count"]) for d in deaths(props)]


def check_death(d, *, count, reason, queue, exchange, routing_keys, original_expiration=None):
    """One x-death entry, with RabbitMQ's field set and field types: count is a long ('l'),
    time a timestamp ('T', pika gives a naive UTC datetime), routing-keys an array of strings,
    original-expiration present only when the message had an expiration property."""
    want_keys = {"count", "reason", "queue", "time", "exchange", "routing-keys"}
    if original_expiration is not None:
        want_keys.add("original-expiration")
    assert set(d) == want_keys, d
    assert d["count"] == count and isinstance(d["count"], pika_long), d  # encoded as 'l'
    assert d["reason"] == reason, d
    assert d["queue"] == queue, d
    assert d["exchange"] == exchange, d
    assert d["routing-keys"] == routing_keys, d
    assert isinstance(d["time"], datetime.datetime), d  # field type 'T' (seconds)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((now - d["time"]).total_seconds()) < 30, (now, d)
    if original_expiration is not None:
        assert d["original-expiration"] == original_expiration, d


def first_death(props):
    h = props.headers or {}
    return (h.get("x-first-death-queue"), h.get("x-first-death-reason"), h.get("x-first-death-exchange"))


def expect_channel_close(fn, code):
    """Runs fn (which must make the broker close the channel); returns the reply text."""
    with pytest.raises(ChannelClosedByBroker) as e:
        fn()
    assert e.value.reply_code == code, e.value
    return e.value.reply_text


def declare_error(conn, q, code=406, **kw):
    """queue.declare on a fresh channel that must fail: the reply text."""
    ch = conn.channel()
    return expect_channel_close(lambda: ch.queue_declare(q, **kw), code)


def persistent(**kw):
    return pika.BasicProperties(delivery_mode=2, **kw)
