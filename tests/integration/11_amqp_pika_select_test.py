"""pika's asynchronous SelectConnection: publish with confirms, then consume, all
from callbacks on one ioloop bounded by a timer. Checked against RabbitMQ 3.10.8."""
import pika
import pytest

from amqp_util import params, time_limit, uid


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(60):
        yield


TIMEOUT = 20


class Run:
    """Runs one SelectConnection until done() or the time limit."""

    def __init__(self, broker):
        self.errors = []
        self.timed_out = False
        self.conn = pika.SelectConnection(params(broker), on_open_callback=self.on_open,
                                          on_open_error_callback=self.on_open_error,
                                          on_close_callback=self.on_close)
        self.conn.ioloop.call_later(TIMEOUT, self.on_timeout)

    def on_open(self, conn):
        raise NotImplementedError

    def on_open_error(self, conn, err):
        self.errors.append(("open", err))
        self.conn.ioloop.stop()

    def on_close(self, conn, reason):
        self.closed_reason = reason
        self.conn.ioloop.stop()

    def on_timeout(self):
        self.timed_out = True
        if self.conn.is_open:
            self.conn.close()
        else:
            self.conn.ioloop.stop()

    def done(self):
        if self.conn.is_open:
            self.conn.close()

    def fail(self, what):
        self.errors.append(what)
        self.done()

    def run(self):
        self.conn.ioloop.start()
        assert not self.timed_out, "timed out"
        assert not self.errors, self.errors


def test_select_connection_publish_with_confirms_then_consume(amqp_broker):
    n = 500

    class R(Run):
        acked = set()
        nacked = set()
        got = []
        redelivered = []

        def on_open(self, conn):
            conn.channel(on_open_callback=self.on_channel)

        def on_channel(self, ch):
            self.ch = ch
            ch.add_on_close_callback(lambda c, reason: None if self.conn.is_closing or self.conn.is_closed
                                     else self.fail(("channel closed", reason)))
            ch.queue_declare("", exclusive=True, callback=self.on_declared)

        def on_declared(self, frame):
            self.q = frame.method.queue
            self.ch.confirm_delivery(ack_nack_callback=self.on_confirm, callback=self.on_confirm_mode)

        def on_confirm_mode(self, frame):
            assert isinstance(frame.method, pika.spec.Confirm.SelectOk)
            for i in range(n):
                self.ch.basic_publish("", self.q, b"msg-%d" % i,
                                      pika.BasicProperties(delivery_mode=2, message_id=str(i)))

        def on_confirm(self, frame):
            tag = frame.method.delivery_tag
            target = self.acked if isinstance(frame.method, pika.spec.Basic.Ack) else self.nacked
            if frame.method.multiple:
                target.update(t for t in range(1, tag + 1) if t not in self.acked and t not in self.nacked)
            else:
                target.add(tag)
            if len(self.acked) + len(self.nacked) == n:
                self.ch.basic_qos(prefetch_count=50, callback=self.on_qos)

        def on_qos(self, frame):
            self.tag = self.ch.basic_consume(self.q, self.on_message)

        def on_message(self, ch, method, props, body):
            self.got.append((body, props.message_id))
            self.redelivered.append(method.redelivered)
            ch.basic_ack(method.delivery_tag)
            if len(self.got) == n:
                ch.basic_cancel(self.tag, callback=lambda frame: self.done())

    r = R(amqp_broker)
    r.run()
    assert r.acked == set(range(1, n + 1))  # delivery tags count from 1 in confirm mode
    assert r.nacked == set()
    assert r.got == [(b"msg-%d" % i, str(i)) for i in range(n)]
    assert not any(r.redelivered)


def test_select_connection_channel_error_keeps_connection(amqp_broker):
    class R(Run):
        closed = None

        def on_open(self, conn):
            conn.channel(on_open_callback=self.on_channel)

        def on_channel(self, ch):
            ch.add_on_close_callback(self.on_channel_closed)
            ch.queue_declare(uid("missing"), passive=True, callback=lambda frame: self.fail("declared?"))

        def on_channel_closed(self, ch, reason):
            self.closed = reason
            # the connection is still open: a new channel works
            self.conn.channel(on_open_callback=self.on_second)

        def on_second(self, ch):
            self.second = ch
            ch.queue_declare("", exclusive=True, callback=self.on_declared)

        def on_declared(self, frame):
            self.q = frame.method.queue
            self.second.basic_publish("", self.q, b"after-error")
            self.second.basic_get(self.q, self.on_get, auto_ack=True)

        def on_get(self, ch, method, props, body):
            self.body = body
            self.done()

    r = R(amqp_broker)
    r.run()
    assert isinstance(r.closed, pika.exceptions.ChannelClosedByBroker)
    assert r.closed.reply_code == 404
    assert r.closed.reply_text.startswith("NOT_FOUND")
    assert r.body == b"after-error"


def test_select_connection_wrong_password_open_error(amqp_broker):
    p = params(amqp_broker)
    p.credentials = pika.PlainCredentials("guest", "definitely-wrong")
    errors = []

    conn = pika.SelectConnection(p, on_open_callback=lambda c: errors.append("opened?"),
                                 on_open_error_callback=lambda c, e: (errors.append(e), c.ioloop.stop()),
                                 on_close_callback=lambda c, e: c.ioloop.stop())
    conn.ioloop.call_later(TIMEOUT, conn.ioloop.stop)
    conn.ioloop.start()
    assert len(errors) == 1
    assert isinstance(errors[0], pika.exceptions.ProbableAuthenticationError)
    assert "ACCESS_REFUSED" in str(errors[0])
