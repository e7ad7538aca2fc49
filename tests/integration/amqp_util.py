"""Shared helpers for the AMQP tests (pika BlockingConnection): bounded
connections, unique names, cleanup, bounded event pumping."""
import contextlib
import signal
import time
import uuid

import pika


def params(b, **kw):
    kw.setdefault("connection_attempts", 1)
    kw.setdefault("socket_timeout", 5)
    kw.setdefault("stack_timeout", 10)
    kw.setdefault("blocked_connection_timeout", 10)
    return pika.ConnectionParameters(host=b.host, port=b.amqp_port,
                                     credentials=pika.PlainCredentials("guest", "guest"), **kw)


@contextlib.contextmanager
def time_limit(seconds):
    """Raises TimeoutError in the main thread after `seconds`: pika's blocking calls
    wait for a reply forever, so a broker that never answers must not hang the suite."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"test took longer than {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def reconnect(b, timeout=30):
    """Connects, retrying while the broker comes back (after a restart or kill)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pika.BlockingConnection(params(b))
        except pika.exceptions.AMQPConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def herald_env(broker_factory, *args):
    """A broker of the test's own (started with args) and an Env on it: (broker, env). The
    caller cleans up with env.cleanup()."""
    b = broker_factory(*args)
    b.host, b.reference = "127.0.0.1", False
    return b, Env(b)


def uid(tag):
    return f"t-{tag}-{uuid.uuid4().hex[:12]}"


class Env:
    """Connections opened through it are closed, and queues/exchanges named
    through it deleted, at the end of the test."""

    def __init__(self, broker):
        self.broker = broker
        self.conns = []
        self.queues = []
        self.exchanges = []

    def connect(self, **kw):
        c = pika.BlockingConnection(params(self.broker, **kw))
        self.conns.append(c)
        return c

    def q(self, tag="q"):
        n = uid(tag)
        self.queues.append(n)
        return n

    def x(self, tag="x"):
        n = uid(tag)
        self.exchanges.append(n)
        return n

    def cleanup(self):
        for c in self.conns:
            try:
                if c.is_open:
                    c.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
        if not (self.queues or self.exchanges):
            return
        try:
            c = pika.BlockingConnection(params(self.broker))
        except Exception:  # noqa: BLE001 - broker gone (a failed test); nothing to clean
            return
        try:
            for n in self.queues:
                ch = c.channel()
                try:
                    ch.queue_delete(n)
                    ch.close()
                except Exception:  # noqa: BLE001
                    pass
            for n in self.exchanges:
                ch = c.channel()
                try:
                    ch.exchange_delete(n)
                    ch.close()
                except Exception:  # noqa: BLE001
                    pass
        finally:
            if c.is_open:
                c.close()


def pump(conn, seconds):
    """Process events for `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        conn.process_data_events(time_limit=left)


def pump_until(conn, cond, timeout=10):
    """Process events until cond() is true; returns cond()."""
    deadline = time.monotonic() + timeout
    while not cond():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.process_data_events(time_limit=min(left, 0.1))
    return cond()


def drain(ch, q, auto_ack=True, limit=100000):
    """basic.get until get-empty: list of (method, properties, body)."""
    out = []
    while len(out) < limit:
        m, p, b = ch.basic_get(q, auto_ack=auto_ack)
        if m is None:
            break
        out.append((m, p, b))
    return out


def bodies(ch, q):
    return [b for _, _, b in drain(ch, q)]


def ready_count(conn, q):
    ch = conn.channel()
    n = ch.queue_declare(q, passive=True).method.message_count
    ch.close()
    return n


def wait_ready_count(conn, q, n, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        got = ready_count(conn, q)
        if got == n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def queue_exists(conn, q):
    ch = conn.channel()
    try:
        ch.queue_declare(q, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    ch.close()
    return True
