"""The AMQP side of the HTTP admin API (docs/http-api.md: Queues, Exchanges and
bindings, Connections), driven against a real broker with pika and urllib: every
route, the figures checked against what pika did, peek that does not consume,
purge, redrive of a real dead-letter queue (also with a SIGKILL right after),
errors, and counts that stay consistent while a publisher runs."""
import base64
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from amqp_util import params, reconnect, time_limit


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(60):
        yield


@pytest.fixture
def b(broker):
    broker.host = "127.0.0.1"
    return broker


def http(b, method, path, body=None, raw=None, timeout=20):
    """(status, parsed JSON or None)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(b.http_url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, (json.loads(text) if text else None)


def q_path(name, tail=""):
    return "/api/queues/" + urllib.parse.quote(name, safe="") + tail


def connect(b, name=None):
    kw = {}
    if name:
        kw["client_properties"] = {"connection_name": name}
    return pika.BlockingConnection(params(b, **kw))


def persistent(**kw):
    return pika.BasicProperties(delivery_mode=2, **kw)


def test_declare_show_delete(b):
    st, body = http(b, "PUT", q_path("jobs"), {"arguments": {"x-max-length": 100, "x-dead-letter-exchange": "dlx"}})
    assert st == 201, body
    assert body["name"] == "jobs" and body["durable"] and not body["auto_delete"] and body["type"] == "classic"
    assert body["arguments"] == {"x-max-length": 100, "x-dead-letter-exchange": "dlx"}
    assert body["dead_letter_exchange"] == "dlx" and body["dead_letter_routing_key"] is None
    assert body["consumer_details"] == [] and body["history"] == []
    # the same again: 204; other settings: 409 with queue.declare's words
    assert http(b, "PUT", q_path("jobs"), {"arguments": {"x-max-length": 100, "x-dead-letter-exchange": "dlx"}})[0] == 204
    st, err = http(b, "PUT", q_path("jobs"), {"durable": False})
    assert st == 409 and "inequivalent arg 'durable'" in err["message"], err
    st, err = http(b, "PUT", q_path("jobs"), {"arguments": {"x-max-length": 5, "x-dead-letter-exchange": "dlx"}})
    assert st == 409 and "inequivalent arg 'x-max-length'" in err["message"], err
    # invalid arguments: 422 with exactly the text pika gets from queue.declare
    conn = connect(b)
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("bad", durable=True, arguments={"x-max-length": -1})
    st, err = http(b, "PUT", q_path("bad"), {"arguments": {"x-max-length": -1}})
    assert st == 422 and err["message"] == e.value.reply_text, (err, e.value)
    assert http(b, "PUT", q_path("amq.nope"), {})[0] == 403
    # a queue fed from a Kafka topic: the topic must exist (queue.declare's text)
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("fed", durable=True, arguments={"x-source-topic": "nosuch"})
    st, err = http(b, "PUT", q_path("fed"), {"arguments": {"x-source-topic": "nosuch"}})
    assert st == 404 and err["message"] == e.value.reply_text, (err, e.value)
    assert http(b, "POST", "/api/topics", {"name": "feedsrc", "partitions": 1})[0] == 201
    st, body = http(b, "PUT", q_path("fed"), {"arguments": {"x-source-topic": "feedsrc"}})
    assert st == 201 and body["arguments"] == {"x-source-topic": "feedsrc"}, body
    assert http(b, "PUT", q_path("s"), {"arguments": {"x-queue-type": "stream"}})[0] == 422
    # a name with a '/' and a transient auto-delete queue
    st, body = http(b, "PUT", q_path("a/b"), {"durable": False, "auto_delete": True})
    assert st == 201 and body["name"] == "a/b" and not body["durable"] and body["auto_delete"]
    ch = conn.channel()
    ok = ch.queue_declare("jobs", passive=True)
    assert ok.method.message_count == 0
    names = [q["name"] for q in http(b, "GET", "/api/queues")[1]]
    assert "jobs" in names and "a/b" in names
    # pika sees the declared queue as equivalent with the same arguments
    ch.queue_declare("jobs", durable=True, arguments={"x-max-length": 100, "x-dead-letter-exchange": "dlx"})
    # delete: if_unused with a consumer, if_empty with a message
    ch.basic_publish("", "jobs", b"x")
    assert http(b, "DELETE", q_path("jobs") + "?if_empty=true")[0] == 409
    tag = ch.basic_consume("jobs", lambda *a: None)
    assert http(b, "DELETE", q_path("jobs") + "?if_unused=true")[0] == 409
    ch.basic_cancel(tag)
    st, _ = http(b, "DELETE", q_path("jobs"))
    assert st == 204
    assert http(b, "GET", q_path("jobs"))[0] == 404
    assert http(b, "DELETE", q_path("a/b"))[0] == 204
    conn.close()
    # durable: it survives a restart
    assert http(b, "PUT", q_path("kept"), {})[0] == 201
    b.restart()
    st, body = http(b, "GET", q_path("kept"))
    assert st == 200 and body["durable"]


def test_counts_match_pika(b):
    conn = connect(b, "worker-1")
    ch = conn.channel()
    ch.queue_declare("work", durable=True)
    for i in range(10):
        ch.basic_publish("", "work", f"m{i}".encode(), persistent())
    ch.basic_qos(prefetch_count=3)
    got = []
    tag = ch.basic_consume("work", lambda c, m, p, body: got.append(m.delivery_tag), consumer_tag="ctag1")
    deadline = time.time() + 5
    while len(got) < 3 and time.time() < deadline:
        conn.process_data_events(0.05)
    assert len(got) == 3
    st, q = http(b, "GET", q_path("work"))
    assert st == 200
    assert (q["messages"], q["messages_ready"], q["messages_unacked"], q["consumers"]) == (10, 7, 3, 1), q
    assert q["ready_bytes"] == 7 * 2
    t = q["totals"]
    assert (t["published"], t["delivered"], t["acked"]) == (10, 3, 0), t
    assert set(q["rates"]) == {"publish", "deliver", "redeliver", "ack", "return", "dead_letter", "expire"}
    [c] = q["consumer_details"]
    assert c["consumer_tag"] == "ctag1" and c["channel"] == 1 and c["prefetch"] == 3 and c["ack"] is True
    # the channel and the connection
    chans = http(b, "GET", "/api/channels")[1]
    mine = [x for x in chans if x["connection"] == c["connection"]]
    assert len(mine) == 1 and mine[0]["number"] == 1 and mine[0]["unacked"] == 3 and mine[0]["consumers"] == 1
    assert mine[0]["prefetch"] == 3 and mine[0]["confirm"] is False
    conns = http(b, "GET", "/api/connections")[1]
    [a] = [x for x in conns if x["peer"] == c["connection"]]
    assert a["protocol"] == "amqp" and a["client"].startswith("Pika Python Client Library ") and a["connection_name"] == "worker-1"
    assert a["user"] == "guest" and a["channels"] == 1 and a["bytes_in"] > 0 and a["bytes_out"] > 0
    assert abs(a["connected_at_ms"] - time.time() * 1000) < 60000
    assert http(b, "GET", "/api/overview")[1]["channels"] == len(chans)
    # ack them: the figures follow
    ch.basic_ack(got[-1], multiple=True)
    ch.basic_cancel(tag)
    conn.process_data_events(0.2)
    q = http(b, "GET", q_path("work"))[1]
    assert (q["messages_ready"], q["messages_unacked"], q["totals"]["acked"]) == (7, 0, 3), q
    # the list shows the same figures
    [lq] = [x for x in http(b, "GET", "/api/queues")[1] if x["name"] == "work"]
    assert lq["messages_ready"] == 7 and "consumer_details" not in lq
    conn.close()


def test_kafka_connection_listed(b):
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    try:
        cid = b"http-test-client"
        body = struct.pack(">hhih", 18, 0, 7, len(cid)) + cid  # ApiVersions v0
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4))[0]
        while size > 0:
            size -= len(s.recv(size))
        conns = http(b, "GET", "/api/connections")[1]
        [k] = [c for c in conns if c["protocol"] == "kafka"]
        assert k["client"] == "http-test-client" and k["requests"] == 1 and k["channels"] == 0
        assert k["bytes_in"] == 4 + len(body) and k["bytes_out"] > 0
    finally:
        s.close()


def test_peek_does_not_consume(b):
    conn = connect(b)
    ch = conn.channel()
    ch.queue_declare("peek", durable=True)
    for i in range(5):
        ch.basic_publish("", "peek", f"hello {i}".encode(),
                         persistent(content_type="text/plain", headers={"n": i, "tags": ["a", "b"]}))
    ch.basic_publish("", "peek", b"\xff\x00\xfe", pika.BasicProperties())
    st, msgs = http(b, "GET", q_path("peek", "/messages?limit=3"))
    assert st == 200 and len(msgs) == 3
    for i, m in enumerate(msgs):
        assert m["position"] == i and m["payload"] == f"hello {i}" and m["payload_encoding"] == "string"
        assert m["exchange"] == "" and m["routing_key"] == "peek" and m["redelivered"] is False
        assert m["payload_bytes"] == 7 and m["delivery_count"] == 0
        assert m["properties"] == {"content_type": "text/plain", "delivery_mode": 2,
                                   "headers": {"n": i, "tags": ["a", "b"]}}
    msgs = http(b, "GET", q_path("peek", "/messages?limit=1000"))[1]
    assert len(msgs) == 6
    assert msgs[5]["payload_encoding"] == "base64" and base64.b64decode(msgs[5]["payload"]) == b"\xff\x00\xfe"
    assert msgs[5]["properties"] == {}
    # nothing was taken
    assert http(b, "GET", q_path("peek"))[1]["messages_ready"] == 6
    m, p, body = ch.basic_get("peek", auto_ack=False)
    assert body == b"hello 0"
    # a requeued message shows redelivered, first again
    ch.basic_nack(m.delivery_tag, requeue=True)
    first = http(b, "GET", q_path("peek", "/messages?limit=1"))[1][0]
    assert first["payload"] == "hello 0" and first["redelivered"] is True and first["delivery_count"] == 1
    # priorities: delivery order is by priority first
    ch.queue_declare("prio", durable=True, arguments={"x-max-priority": 5})
    for i, pr in enumerate([1, 5, 3]):
        ch.basic_publish("", "prio", str(i).encode(), persistent(priority=pr))
    assert [m["payload"] for m in http(b, "GET", q_path("prio", "/messages"))[1]] == ["1", "2", "0"]
    assert [ch.basic_get("prio", auto_ack=True)[2] for _ in range(3)] == [b"1", b"2", b"0"]
    assert http(b, "GET", q_path("peek", "/messages?limit=0"))[0] == 400
    assert http(b, "GET", q_path("peek", "/messages?limit=1001"))[0] == 400
    conn.close()


def test_purge(b):
    conn = connect(b)
    ch = conn.channel()
    ch.queue_declare("p", durable=True)
    for i in range(4):
        ch.basic_publish("", "p", b"x", persistent())
    m, _, _ = ch.basic_get("p", auto_ack=False)  # unacked ones are not purged
    st, body = http(b, "POST", q_path("p", "/purge"))
    assert st == 200 and body == {"purged": 3}
    q = http(b, "GET", q_path("p"))[1]
    assert (q["messages_ready"], q["messages_unacked"]) == (0, 1)
    ch.basic_ack(m.delivery_tag)
    assert ch.queue_declare("p", passive=True).method.message_count == 0
    # answered once durable: a crash right after does not bring them back
    ch.queue_declare("p2", durable=True)
    ch.confirm_delivery()  # the publishes are durable before the purge
    for i in range(50):
        ch.basic_publish("", "p2", b"x", persistent())
    conn.close()
    assert wait_ready(b, "p2", 50)["messages_ready"] == 50
    assert http(b, "POST", q_path("p2", "/purge"))[1] == {"purged": 50}
    b.kill()
    b.start()
    assert http(b, "GET", q_path("p2"))[1]["messages_ready"] == 0


def dlq_setup(ch, n, body=lambda i: f"job {i}".encode()):
    """work -> (reject) -> exchange dlx -> dlq: n messages dead-lettered."""
    ch.exchange_declare("dlx", "direct", durable=True)
    ch.queue_declare("dlq", durable=True)
    ch.queue_bind("dlq", "dlx", "work")
    ch.queue_declare("work", durable=True, arguments={"x-dead-letter-exchange": "dlx"})
    for i in range(n):
        ch.basic_publish("", "work", body(i), persistent())
    for i in range(n):
        m, _, _ = ch.basic_get("work", auto_ack=False)
        ch.basic_reject(m.delivery_tag, requeue=False)


def wait_ready(b, name, n, timeout=10):
    deadline = time.time() + timeout
    while True:
        q = http(b, "GET", q_path(name))[1]
        if q["messages_ready"] == n or time.time() > deadline:
            return q
        time.sleep(0.05)


def test_redrive(b):
    conn = connect(b)
    ch = conn.channel()
    dlq_setup(ch, 5)
    assert wait_ready(b, "dlq", 5)["messages_ready"] == 5
    ch.basic_publish("", "dlq", b"never died", persistent())  # no x-death: stays
    order = [m["payload"].encode() for m in http(b, "GET", q_path("dlq", "/messages"))[1]][:5]
    assert order == [f"job {i}".encode() for i in range(5)]  # dead-lettered in the order rejected
    peek = http(b, "GET", q_path("dlq", "/messages?limit=1"))[1][0]
    assert peek["properties"]["headers"]["x-death"][0]["queue"] == "work"
    assert peek["properties"]["headers"]["x-death"][0]["reason"] == "rejected"
    st, body = http(b, "POST", q_path("dlq", "/redrive"), {"count": 2})
    assert st == 200 and body == {"moved": 2, "skipped": 0}, body
    st, body = http(b, "POST", q_path("dlq", "/redrive"), {})
    assert st == 200 and body == {"moved": 3, "skipped": 1}, body
    assert http(b, "GET", q_path("dlq"))[1]["messages_ready"] == 1
    q = http(b, "GET", q_path("work"))[1]
    assert q["messages_ready"] == 5
    got = [ch.basic_get("work", auto_ack=True) for _ in range(5)]
    assert [g[2] for g in got] == order  # in the dead-letter queue's order
    assert got[0][0].routing_key == "work" and got[0][0].exchange == ""
    assert got[0][1].headers["x-death"][0]["queue"] == "work"
    assert ch.basic_get("work")[0] is None
    # "to" overrides x-death, and takes the message without it too
    ch.queue_declare("other", durable=True)
    st, body = http(b, "POST", q_path("dlq", "/redrive"), {"to": "other"})
    assert st == 200 and body == {"moved": 1, "skipped": 0}
    assert ch.basic_get("other", auto_ack=True)[2] == b"never died"
    # errors
    assert http(b, "POST", q_path("dlq", "/redrive"), {"to": "missing"})[0] == 404
    assert http(b, "POST", q_path("dlq", "/redrive"), {"to": "dlq"})[0] == 422
    assert http(b, "POST", q_path("dlq", "/redrive"), {"count": 0})[0] == 400
    assert http(b, "POST", q_path("dlq", "/redrive"), {"bogus": 1})[0] == 400
    # a target that is gone: the message stays in the dead-letter queue
    dlq_setup(ch, 1)
    wait_ready(b, "dlq", 1)
    ch.queue_delete("work")
    st, body = http(b, "POST", q_path("dlq", "/redrive"), {})
    assert st == 200 and body == {"moved": 0, "skipped": 1}
    assert http(b, "GET", q_path("dlq"))[1]["messages_ready"] == 1
    conn.close()


def test_redrive_then_sigkill_exactly_once(b):
    n = 1000
    conn = connect(b)
    ch = conn.channel()
    dlq_setup(ch, n)
    assert wait_ready(b, "dlq", n)["messages_ready"] == n
    conn.close()
    # kills at several points of a redrive in flight: after each restart
    # every message is in exactly one of the two queues
    splits = []
    work, dlq = 0, n
    for i, delay in enumerate((0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05)):
        result = {}
        # back and forth: from the fuller queue to the other ("to" needs no x-death)
        src, body = ("dlq", {"to": "work"}) if dlq >= work else ("work", {"to": "dlq"})
        if i == 0:
            body = {}  # the first time by x-death

        def go():
            try:
                result["r"] = http(b, "POST", q_path(src, "/redrive"), body, timeout=10)
            except Exception as e:  # noqa: BLE001 - the broker is killed under it
                result["e"] = e

        t = threading.Thread(target=go)
        t.start()
        time.sleep(delay)
        b.kill()
        t.join(10)
        b.start()
        work, dlq = (http(b, "GET", q_path(x))[1]["messages_ready"] for x in ("work", "dlq"))
        assert work + dlq == n, (delay, work, dlq, result)
        splits.append((work, dlq))
    conn = reconnect(b)
    ch = conn.channel()
    seen = []
    for name in ("work", "dlq"):
        while True:
            m, _, body = ch.basic_get(name, auto_ack=True)
            if m is None:
                break
            seen.append(body)
    assert sorted(seen) == sorted(f"job {i}".encode() for i in range(n)), (len(seen), len(set(seen)), splits)
    # again, with the kill right after the answer: every message is in work once
    for body in seen:
        ch.basic_publish("dlx", "work", body, persistent(headers={"x-death": [{"queue": "work", "reason": "rejected",
                                                                              "count": 1}]}))
    conn.close()
    assert wait_ready(b, "dlq", n)["messages_ready"] == n
    st, body = http(b, "POST", q_path("dlq", "/redrive"), {})
    assert st == 200 and body == {"moved": n, "skipped": 0}
    b.kill()
    b.start()
    conn = reconnect(b)
    ch = conn.channel()
    assert ch.queue_declare("dlq", passive=True).method.message_count == 0
    got = []
    while True:
        m, _, body = ch.basic_get("work", auto_ack=True)
        if m is None:
            break
        got.append(body)
    assert sorted(got) == sorted(f"job {i}".encode() for i in range(n))
    conn.close()


def test_errors(b):
    for method, tail in [("GET", ""), ("DELETE", ""), ("POST", "/purge"), ("GET", "/messages"), ("POST", "/redrive")]:
        st, err = http(b, method, q_path("nope", tail))
        assert st == 404 and err["error"] == "not_found" and "nope" in err["message"], (method, tail, err)
    assert http(b, "GET", "/api/exchanges/nope")[0] == 404
    assert http(b, "POST", "/api/exchanges/nope/publish", {"payload": "x"})[0] == 404
    st, err = http(b, "PUT", q_path("q"), raw=b"{not json")
    assert st == 400 and err["error"] == "bad_request"
    st, err = http(b, "PUT", q_path("q"), raw=b"[1]")
    assert st == 400
    st, err = http(b, "PUT", q_path("q"), {"durable": True, "colour": "red"})
    assert st == 400 and "colour" in err["message"]
    assert http(b, "PUT", q_path("q"), {"durable": "yes"})[0] == 400
    assert http(b, "PUT", q_path("q"), {"arguments": [1, 2]})[0] == 400
    st, err = http(b, "PUT", q_path("q"), raw=b" " * (10 * 1024 * 1024 + 1))
    assert st == 413, err
    assert http(b, "PATCH", q_path("q"))[0] == 405
    assert http(b, "GET", q_path("q"))[0] == 404  # nothing was created by the failures


def test_exchanges_bindings_publish(b):
    st, body = http(b, "PUT", "/api/exchanges/events", {"type": "topic"})
    assert st == 201 and body == {"name": "events", "vhost": "/", "type": "topic", "durable": True,
                                  "auto_delete": False, "internal": False, "arguments": {}}
    assert http(b, "PUT", "/api/exchanges/events", {"type": "topic"})[0] == 204
    st, err = http(b, "PUT", "/api/exchanges/events", {"type": "fanout"})
    assert st == 409 and "inequivalent arg 'type'" in err["message"]
    assert http(b, "PUT", "/api/exchanges/amq.mine", {"type": "direct"})[0] == 403
    assert http(b, "PUT", "/api/exchanges/x", {"type": "nonsense"})[0] == 400
    assert http(b, "PUT", "/api/exchanges/d", {"type": "x-delayed-message"})[0] == 422
    st, body = http(b, "PUT", "/api/exchanges/d", {"type": "x-delayed-message",
                                                   "arguments": {"x-delayed-type": "direct"}})
    assert st == 201 and body["type"] == "x-delayed-message"
    exs = {e["name"]: e for e in http(b, "GET", "/api/exchanges")[1]}
    assert exs[""]["type"] == "direct" and exs["amq.topic"]["durable"] and "events" in exs
    assert http(b, "GET", "/api/exchanges/amq.default")[1]["name"] == ""
    # the hidden delay queue of "d" is not listed
    assert [q["name"] for q in http(b, "GET", "/api/queues")[1]] == []

    conn = connect(b)
    ch = conn.channel()
    ch.queue_declare("orders", durable=True)
    st, _ = http(b, "POST", "/api/bindings", {"source": "events", "destination": "orders",
                                              "destination_type": "queue", "routing_key": "order.*"})
    assert st == 201
    assert http(b, "POST", "/api/bindings", {"source": "events", "destination": "nope"})[0] == 404
    assert http(b, "POST", "/api/bindings", {"source": "amq.default", "destination": "orders"})[0] == 403
    assert http(b, "POST", "/api/bindings", {"source": "amq.topic", "destination": "events",
                                             "destination_type": "exchange", "routing_key": "#"})[0] == 201
    binds = http(b, "GET", "/api/bindings")[1]
    assert {"source": "events", "vhost": "/", "destination": "orders", "destination_type": "queue",
            "routing_key": "order.*", "arguments": {}} in binds
    assert any(x["source"] == "amq.topic" and x["destination_type"] == "exchange" for x in binds)

    props = {"delivery_mode": 2, "headers": {"a": 1, "b": "two"}, "content_type": "text/plain", "priority": 5,
             "message_id": "m1", "correlation_id": "c1", "reply_to": "r"}
    st, body = http(b, "POST", "/api/exchanges/events/publish",
                    {"routing_key": "order.new", "payload": "hello", "properties": props})
    assert st == 200 and body == {"routed": True}
    st, body = http(b, "POST", "/api/exchanges/amq.topic/publish",
                    {"routing_key": "order.old", "payload": base64.b64encode(b"\x00\x01").decode(),
                     "payload_encoding": "base64"})
    assert st == 200 and body == {"routed": True}  # through amq.topic -> events -> orders
    assert http(b, "POST", "/api/exchanges/events/publish", {"routing_key": "nobody", "payload": "x"})[1] == {
        "routed": False}
    assert http(b, "POST", "/api/exchanges/amq.default/publish", {"routing_key": "orders", "payload": "direct"})[1] == {
        "routed": True}
    assert http(b, "POST", "/api/exchanges/events/publish", {"payload": "x", "properties": {"bogus": 1}})[0] == 400
    assert http(b, "POST", "/api/exchanges/events/publish", {"payload": "!!", "payload_encoding": "base64"})[0] == 400
    m, p, body = ch.basic_get("orders", auto_ack=True)
    assert body == b"hello" and m.routing_key == "order.new" and m.exchange == "events"
    assert p.delivery_mode == 2 and p.headers == {"a": 1, "b": "two"} and p.content_type == "text/plain"
    assert (p.priority, p.message_id, p.correlation_id, p.reply_to) == (5, "m1", "c1", "r")
    assert ch.basic_get("orders", auto_ack=True)[2] == b"\x00\x01"
    assert ch.basic_get("orders", auto_ack=True)[2] == b"direct"
    # through the delayed exchange "d": waits in orders until due; with no route yet, in "d"
    ch.queue_bind("orders", "d", "later")
    t0 = time.monotonic()
    for key in ("later", "unbound"):
        st, body = http(b, "POST", "/api/exchanges/d/publish",
                        {"routing_key": key, "payload": key, "properties": {"headers": {"x-delay": 600}}})
        assert st == 200 and body == {"routed": True}
    assert ch.basic_get("orders", auto_ack=True)[0] is None
    assert http(b, "GET", "/api/queues/orders")[1]["messages_delayed"] == 1
    ch.queue_bind("orders", "d", "unbound")  # bound while it waits in "d": routed here when due
    got = []
    while len(got) < 2 and time.monotonic() - t0 < 5:
        m, _, body = ch.basic_get("orders", auto_ack=True)
        if m is None:
            time.sleep(0.02)
        else:
            got.append(body)
    assert sorted(got) == [b"later", b"unbound"] and time.monotonic() - t0 >= 0.55
    # the published message was durable when answered: it survives a kill
    http(b, "POST", "/api/exchanges/events/publish", {"routing_key": "order.k", "payload": "kept",
                                                      "properties": {"delivery_mode": 2}})
    conn.close()
    b.kill()
    b.start()
    conn = reconnect(b)
    ch = conn.channel()
    assert ch.basic_get("orders", auto_ack=True)[2] == b"kept"
    # unbind, delete
    path = "/api/bindings?" + urllib.parse.urlencode({"source": "events", "destination": "orders",
                                                      "destination_type": "queue", "routing_key": "order.*"})
    assert http(b, "DELETE", path)[0] == 204
    assert http(b, "DELETE", path)[0] == 404
    assert http(b, "DELETE", "/api/exchanges/amq.topic")[0] == 403
    assert http(b, "DELETE", "/api/exchanges/events?if_unused=true")[0] == 204  # the e2e binding is to it
    assert http(b, "GET", "/api/exchanges/events")[0] == 404
    assert http(b, "DELETE", "/api/exchanges/d")[0] == 204
    with pytest.raises(ChannelClosedByBroker):
        ch.exchange_declare("events", passive=True)
    conn.close()


def test_counts_consistent_while_publishing(b):
    conn = connect(b)
    ch = conn.channel()
    ch.queue_declare("busy", durable=True)
    ch.confirm_delivery()
    n = 400
    done = threading.Event()

    def publish():
        c = pika.BlockingConnection(params(b))
        cc = c.channel()
        for i in range(n):
            cc.basic_publish("", "busy", str(i).encode(), persistent())
        c.close()
        done.set()

    t = threading.Thread(target=publish)
    t.start()
    last = 0
    snapshots = 0
    while not done.is_set() or snapshots < 3:
        q = http(b, "GET", q_path("busy"))[1]
        assert q["messages"] == q["messages_ready"] + q["messages_unacked"]
        assert q["messages_ready"] >= last  # no consumer: never goes back
        assert q["totals"]["published"] == q["messages_ready"]
        last = q["messages_ready"]
        snapshots += 1
    t.join()
    q = wait_ready(b, "busy", n)
    assert q["messages_ready"] == n and q["totals"]["published"] == n
    assert ch.queue_declare("busy", passive=True).method.message_count == n
    conn.close()


def test_queue_list_paging_like_rabbitmq(b):
    """page / page_size / name give RabbitMQ's paging envelope, sorted by
    name, only the page's queues; bad arguments are 400; no arguments keep
    the plain array."""
    conn = connect(b)
    ch = conn.channel()
    names = ["pg-%02d" % i for i in range(12)] + ["Other-PG", "zzz"]
    for n in names:
        ch.queue_declare(n, durable=True)
    conn.close()
    st, all_ = http(b, "GET", "/api/queues")
    assert st == 200 and isinstance(all_, list) and {q["name"] for q in all_} >= set(names)
    total = len(all_)
    st, p2 = http(b, "GET", "/api/queues?page=2&page_size=5&name=pg-")
    assert st == 200
    assert [q["name"] for q in p2["items"]] == ["pg-%02d" % i for i in range(5, 10)]
    assert (p2["page"], p2["page_size"], p2["item_count"]) == (2, 5, 5)
    assert (p2["filtered_count"], p2["page_count"], p2["total_count"]) == (12, 3, total)
    assert "messages" in p2["items"][0] and "consumers" in p2["items"][0]
    st, p3 = http(b, "GET", "/api/queues?page=3&page_size=5&name=PG-")  # case-insensitive
    assert st == 200 and [q["name"] for q in p3["items"]] == ["pg-10", "pg-11"]
    # "pg" also matches "Other-PG"; bytewise order puts it (uppercase O) first.
    st, p1 = http(b, "GET", "/api/queues?page_size=2&name=pg")
    assert [q["name"] for q in p1["items"]] == ["Other-PG", "pg-00"] and p1["page"] == 1
    assert p1["filtered_count"] == 13 and p1["page_count"] == 7
    st, none = http(b, "GET", "/api/queues?name=no-such-queue")
    assert st == 200 and none["items"] == [] and none["filtered_count"] == 0 and none["page_count"] == 0
    for bad in ("page=9&page_size=5&name=pg-", "page=0", "page_size=0", "page_size=501", "page=x",
                "use_regex=true&name=pg"):
        st, err = http(b, "GET", "/api/queues?" + bad)
        assert st == 400, (bad, st, err)
