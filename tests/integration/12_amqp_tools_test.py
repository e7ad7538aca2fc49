"""rabbitmq-c command-line tools (Debian amqp-tools) against the broker, with
pika on the other side. Exit codes and output checked against RabbitMQ 3.10.8."""
import subprocess
import time

import pika
import pytest

from amqp_util import Env, bodies, drain, queue_exists, time_limit, uid, wait_ready_count


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(60):
        yield


@pytest.fixture
def env(amqp_broker):
    e = Env(amqp_broker)
    yield e
    e.cleanup()


def tool(b, name, *args, input=None, timeout=20, url=False):
    conn = ["-u", f"amqp://guest:guest@{b.host}:{b.amqp_port}"] if url else \
        ["-s", b.host, "--port", str(b.amqp_port)]
    return subprocess.run([name, *conn, *args], input=input, capture_output=True, timeout=timeout)


def test_declare_queue_named_and_server_named(env, amqp_broker):
    q = env.q("tools")
    r = tool(amqp_broker, "amqp-declare-queue", "-q", q)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == q
    r = tool(amqp_broker, "amqp-declare-queue", "-q", q, "-d")
    # redeclaring with another durable flag: 406 PRECONDITION_FAILED, non-zero exit
    assert r.returncode != 0
    assert b"406" in r.stderr and b"PRECONDITION_FAILED" in r.stderr
    r = tool(amqp_broker, "amqp-declare-queue", "-q", "")
    assert r.returncode == 0, r.stderr
    generated = r.stdout.decode().strip()
    assert generated and generated != q
    env.queues.append(generated)
    conn = env.connect()
    ok = conn.channel().queue_declare(q, passive=True)
    assert ok.method.message_count == 0
    r = tool(amqp_broker, "amqp-declare-queue", "-q", uid("durable"), "-d")
    assert r.returncode == 0, r.stderr
    dq = r.stdout.decode().strip()
    env.queues.append(dq)
    conn.channel().queue_declare(dq, durable=True, passive=False)  # same flags: fine


def test_publish_body_and_properties_round_trip(env, amqp_broker):
    q = env.q("props")
    conn = env.connect()
    ch = conn.channel()
    ch.queue_declare(q)
    r = tool(amqp_broker, "amqp-publish", "-r", q, "-b", "hello tools", "-C", "application/json",
             "-E", "gzip", "-H", "x-a: 1", "-H", "b: two words", "-p", "-t", "reply-here")
    assert r.returncode == 0, r.stderr
    assert wait_ready_count(conn, q, 1) == 1
    [(m, p, b)] = drain(ch, q)
    assert b == b"hello tools"
    assert (m.exchange, m.routing_key, m.redelivered) == ("", q, False)
    assert p.content_type == "application/json"
    assert p.content_encoding == "gzip"
    assert p.headers == {"x-a": "1", "b": "two words"}  # header values are strings
    assert p.delivery_mode == 2
    assert p.reply_to == "reply-here"


def test_publish_from_stdin_whole_and_line_buffered(env, amqp_broker):
    q = env.q("stdin")
    conn = env.connect()
    ch = conn.channel()
    ch.queue_declare(q)
    r = tool(amqp_broker, "amqp-publish", "-r", q, input=b"whole\nbody\x00\xff\n")
    assert r.returncode == 0, r.stderr
    r = tool(amqp_broker, "amqp-publish", "-r", q, "-l", input=b"l1\nl2\nl3\n", url=True)
    assert r.returncode == 0, r.stderr
    assert wait_ready_count(conn, q, 4) == 4
    # line mode keeps each line's newline
    assert bodies(ch, q) == [b"whole\nbody\x00\xff\n", b"l1\n", b"l2\n", b"l3\n"]


def test_amqp_get_and_get_empty(env, amqp_broker):
    q = env.q("get")
    conn = env.connect()
    ch = conn.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"first")
    ch.basic_publish("", q, b"second")
    for want in (b"first", b"second"):
        r = tool(amqp_broker, "amqp-get", "-q", q)
        assert r.returncode == 0, r.stderr
        assert r.stdout == want
    r = tool(amqp_broker, "amqp-get", "-q", q)
    assert r.returncode == 2  # basic.get-empty
    assert r.stdout == b""
    r = tool(amqp_broker, "amqp-get", "-q", uid("missing"))
    assert r.returncode != 0
    assert b"404" in r.stderr and b"NOT_FOUND" in r.stderr


def test_amqp_consume_count_runs_command_per_message(env, amqp_broker):
    q = env.q("consume")
    conn = env.connect()
    ch = conn.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, f"m{i}".encode())
    r = tool(amqp_broker, "amqp-consume", "-q", q, "-c", "3", "-p", "1", "--", "sh", "-c", 'cat; echo "|"')
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"m0|\nm1|\nm2|\n"
    # the consumed ones were acked: two are left, in order. (m3 may have been
    # prefetched, unacked, before the tool closed: then it is marked redelivered.)
    assert wait_ready_count(conn, q, 2) == 2
    got = drain(ch, q)
    assert [b for _, _, b in got] == [b"m3", b"m4"]
    assert got[1][0].redelivered is False


def test_amqp_consume_declares_and_binds_queue(env, amqp_broker):
    # With -e, amqp-consume declares the queue itself (auto-delete) and binds it.
    q = env.q("bound")
    x = env.x("tools-x")
    conn = env.connect()
    ch = conn.channel()
    ch.exchange_declare(x, "direct")
    proc = subprocess.Popen(["amqp-consume", "-s", amqp_broker.host, "--port", str(amqp_broker.amqp_port),
                             "-q", q, "-e", x, "-r", "key1", "-c", "2", "-A", "cat"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if queue_exists(conn, q) and conn.channel().queue_declare(q, passive=True).method.consumer_count == 1:
                break
            time.sleep(0.05)
        else:
            pytest.fail("amqp-consume did not start consuming")
        ch.confirm_delivery()
        ch.basic_publish(x, "other-key", b"not-for-us")
        ch.basic_publish(x, "key1", b"a")
        ch.basic_publish(x, "key1", b"b", pika.BasicProperties(content_type="text/plain"))
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out == b"ab"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    # auto-delete: gone once its consumer has gone
    deadline = time.monotonic() + 5
    while queue_exists(conn, q) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not queue_exists(conn, q)


def test_delete_queue_prints_message_count(env, amqp_broker):
    q = env.q("del")
    conn = env.connect()
    ch = conn.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()
    for _ in range(3):
        ch.basic_publish("", q, b"x")
    r = tool(amqp_broker, "amqp-delete-queue", "-q", q)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == "3"
    # deleting a queue that does not exist succeeds with 0
    r = tool(amqp_broker, "amqp-delete-queue", "-q", q)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == "0"


def test_tools_wrong_password_access_refused(amqp_broker):
    r = subprocess.run(["amqp-publish", "-s", amqp_broker.host, "--port", str(amqp_broker.amqp_port),
                        "--password", "wrong", "-r", "x", "-b", "y"], capture_output=True, timeout=20)
    assert r.returncode != 0
    # rabbitmq-c: "logging in to AMQP server: server connection error 403, message: ACCESS_REFUSED - ..."
    assert b"403" in r.stderr and b"ACCESS_REFUSED" in r.stderr
