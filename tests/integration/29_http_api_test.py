"""The HTTP API's Kafka side (overview, topics, records, consumer groups) and the HTTP
server's own behaviour (errors, limits, concurrency, shutdown), checked against what real
Kafka clients do through the Kafka listener."""
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition


def call(broker, method, path, body=None, raw=None, timeout=30):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(broker.http_url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, (json.loads(text) if text else None)


def get(broker, path):
    st, j = call(broker, "GET", path)
    assert st == 200, (path, st, j)
    return j


def consume_all(broker, topic, n, group=None, timeout=20):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group or f"g-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    if group:
        c.commit(asynchronous=False)
    c.close()
    return got


def test_topic_create_describe_delete(broker):
    st, t = call(broker, "POST", "/api/topics", {"name": "orders", "partitions": 3,
                                                 "configs": {"retention.ms": "3600000"}})
    assert st == 201, t
    assert t["name"] == "orders" and len(t["partitions"]) == 3
    assert t["configs"]["retention.ms"] == {"value": "3600000", "default": False}
    assert t["configs"]["segment.bytes"]["default"] is True
    assert call(broker, "POST", "/api/topics", {"name": "orders"})[0] == 409
    st, e = call(broker, "POST", "/api/topics", {"name": "bad name!"})
    assert st == 400 and e["error"] == "bad_request"
    st, e = call(broker, "POST", "/api/topics", {"name": "x", "configs": {"retention.ms": "soon"}})
    assert st == 400 and "retention.ms" in e["message"]
    # A Kafka client sees the topic with its partitions.
    p = Producer({"bootstrap.servers": broker.bootstrap})
    md = p.list_topics("orders", timeout=10)
    assert len(md.topics["orders"].partitions) == 3
    names = [x["name"] for x in get(broker, "/api/topics")]
    assert names == ["orders"]
    assert call(broker, "DELETE", "/api/topics/orders")[0] == 204
    assert call(broker, "GET", "/api/topics/orders")[0] == 404
    assert get(broker, "/api/topics") == []


def test_http_produce_kafka_consume(broker):
    call(broker, "POST", "/api/topics", {"name": "hp", "partitions": 4})
    recs = [{"key": f"user-{i}", "value": f"v{i}", "headers": {"n": str(i)}} for i in range(40)]
    recs.append({"value": "AAEC/w==", "value_encoding": "base64", "partition": 3})
    recs.append({"key": "tomb", "value": None})
    st, res = call(broker, "POST", "/api/topics/hp/records", {"records": recs})
    assert st == 200, res
    offs = res["offsets"]
    assert len(offs) == 42
    # Keyed records land where a Kafka producer with the Java client's
    # partitioner (murmur2) puts the same key.
    p = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"})
    where = {}

    def cb(err, msg):
        assert err is None
        where[msg.key().decode()] = msg.partition()
    for i in range(40):
        p.produce("hp", key=f"user-{i}", value=b"again", callback=cb)
    p.flush(10)
    for i in range(40):
        assert offs[i]["partition"] == where[f"user-{i}"], i
    got = consume_all(broker, "hp", 82)
    assert len(got) == 82
    by_val = {}
    for m in got:
        by_val.setdefault(m.value(), m)
    m5 = by_val[b"v5"]
    assert m5.key() == b"user-5" and m5.headers() == [("n", b"5")]
    assert (m5.partition(), m5.offset()) == (offs[5]["partition"], offs[5]["offset"])
    assert by_val[b"\x00\x01\x02\xff"].partition() == 3
    assert any(m.value() is None and m.key() == b"tomb" for m in got)
    # Offsets within a partition follow request order.
    for part in range(4):
        seq = [o["offset"] for o in offs if o["partition"] == part]
        assert seq == sorted(seq)


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd", "lz4", "snappy"])
def test_kafka_produce_http_consume(broker, codec):
    topic = f"kp-{codec}"
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 20})
    for i in range(30):
        p.produce(topic, key=f"k{i}", value=f"value-{i}".encode(), headers=[("h", b"x"), ("bin", b"\xff\x00")],
                  partition=0)
    p.flush(10)
    j = get(broker, f"/api/topics/{topic}/records?partition=0&offset=0&limit=1000")
    assert [r["value"] for r in j["records"]] == [f"value-{i}" for i in range(30)]
    assert [r["offset"] for r in j["records"]] == list(range(30))
    assert j["next_offset"] == 30 and j["high_watermark"] == 30
    r0 = j["records"][0]
    assert r0["key"] == "k0" and r0["headers"]["h"] == "x" and r0["headers"]["bin"] == {"base64": "/wA="}
    # Paging by offset and counting back from the end.
    j = get(broker, f"/api/topics/{topic}/records?offset=10&limit=5")
    assert [r["offset"] for r in j["records"]] == [10, 11, 12, 13, 14] and j["next_offset"] == 15
    j = get(broker, f"/api/topics/{topic}/records?offset=-3")
    assert [r["value"] for r in j["records"]] == ["value-27", "value-28", "value-29"]
    # The consumed records are counted.
    t = get(broker, f"/api/topics/{topic}")
    assert t["partitions"][0]["messages_in"] == 30
    assert t["partitions"][0]["messages_out"] == 30 + 5 + 3


def test_long_poll_wakes_on_produce_and_times_out(broker):
    call(broker, "POST", "/api/topics", {"name": "lp", "partitions": 1})
    t0 = time.time()
    j = get(broker, "/api/topics/lp/records?offset=0&wait_ms=300")
    assert j["records"] == [] and time.time() - t0 >= 0.28
    out = {}

    def poll():
        out["j"] = get(broker, "/api/topics/lp/records?offset=0&wait_ms=10000")
        out["t"] = time.time()
    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    # While the poll waits, the broker keeps serving everyone else.
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("lp", value=b"wake")
    sent = time.time()
    p.flush(10)
    th.join(15)
    assert out["j"]["records"][0]["value"] == "wake"
    assert out["t"] - sent < 3


def test_groups_lag_and_commit(broker):
    call(broker, "POST", "/api/topics", {"name": "gt", "partitions": 2})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(50):
        p.produce("gt", value=f"m{i}".encode(), partition=i % 2)
    p.flush(10)
    got = consume_all(broker, "gt", 50, group="billing")
    assert len(got) == 50
    for i in range(10):
        p.produce("gt", value=b"late", partition=0)
    p.flush(10)
    groups = get(broker, "/api/groups")
    g = next(x for x in groups if x["group_id"] == "billing")
    assert g["lag"] == 10 and g["topics"] == ["gt"] and g["state"] == "Empty"
    d = get(broker, "/api/groups/billing")
    offs = {o["partition"]: o for o in d["offsets"]}
    assert offs[0]["committed"] == 25 and offs[0]["high_watermark"] == 35 and offs[0]["lag"] == 10
    assert offs[1]["lag"] == 0 and d["lag"] == 10
    assert get(broker, "/api/overview")["consumer_lag"] == 10
    # Commit over HTTP as a simple consumer; a Kafka consumer of the group resumes there.
    st, j = call(broker, "POST", "/api/groups/billing/offsets",
                 {"offsets": [{"topic": "gt", "partition": 0, "offset": 30}]})
    assert st == 200 and j == {"committed": 1}
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "billing"})
    committed = c.committed([TopicPartition("gt", 0)], timeout=10)
    assert committed[0].offset == 30
    c.close()
    # HTTP consume from the group's committed offset.
    j = get(broker, "/api/topics/gt/records?partition=0&group=billing")
    assert j["records"][0]["offset"] == 30 and len(j["records"]) == 5
    # Bad commits change nothing.
    st, e = call(broker, "POST", "/api/groups/billing/offsets",
                 {"offsets": [{"topic": "gt", "partition": 0, "offset": 31}, {"topic": "gt", "partition": 9, "offset": 1}]})
    assert st == 404
    assert get(broker, "/api/groups/billing")["lag"] == 5
    assert call(broker, "DELETE", "/api/groups/billing")[0] == 204
    assert call(broker, "GET", "/api/groups/billing")[0] == 404


def test_group_members_and_assignments_while_consuming(broker):
    call(broker, "POST", "/api/topics", {"name": "ga", "partitions": 3})
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "live", "client.id": "worker-7",
                  "auto.offset.reset": "earliest"})
    c.subscribe(["ga"])
    deadline = time.time() + 20
    while time.time() < deadline and not c.assignment():
        c.poll(0.2)
    d = get(broker, "/api/groups/live")
    assert d["state"] == "Stable" and len(d["members"]) == 1
    m = d["members"][0]
    assert m["client_id"] == "worker-7"
    assert m["assignments"] == [{"topic": "ga", "partitions": [0, 1, 2]}]
    assert call(broker, "DELETE", "/api/groups/live")[0] == 409
    st, _ = call(broker, "POST", "/api/groups/live/offsets", {"offsets": [{"topic": "ga", "partition": 0, "offset": 0}]})
    assert st == 409
    c.close()


def test_overview_counts_and_rates(broker):
    call(broker, "POST", "/api/topics", {"name": "ov", "partitions": 2})
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for _ in range(6):
        for i in range(500):
            p.produce("ov", value=b"x" * 100)
        p.flush(10)
        time.sleep(0.5)
    o = get(broker, "/api/overview")
    assert o["topics"] == 1 and o["partitions"] == 2
    assert o["rates"]["kafka_in"] > 100  # 3000 messages over ~3 s
    assert o["rates"]["kafka_in_bytes"] > o["rates"]["kafka_in"] * 100
    assert o["process"]["rss_bytes"] > 0 and o["process"]["cpu_seconds"] > 0
    assert o["alarms"] == {"memory": False, "disk": False}
    assert o["history"] and len(o["history"][0]) == 7
    deadline = time.time() + 15
    while "used_bytes" not in o["disk"] and time.time() < deadline:
        time.sleep(0.5)
        o = get(broker, "/api/overview")
    assert o["disk"]["used_bytes"] > 0 and o["disk"]["free_bytes"] > 0
    t = get(broker, "/api/topics")[0]
    assert t["messages"] == 3000 and t["rates"]["in"] > 100


def test_errors_are_json(broker):
    st, e = call(broker, "GET", "/api/nothing")
    assert st == 404 and e["error"] == "not_found"
    st, e = call(broker, "PUT", "/api/topics")
    assert st == 405 and e["error"] == "method_not_allowed"
    st, e = call(broker, "POST", "/api/topics", raw=b"{not json")
    assert st == 400 and "malformed JSON" in e["message"]
    st, e = call(broker, "POST", "/api/topics", raw=b"[1,2]")
    assert st == 400 and "object" in e["message"]
    st, e = call(broker, "POST", "/api/topics", {"name": "a", "colour": "red"})
    assert st == 400 and "colour" in e["message"]
    st, e = call(broker, "POST", "/api/topics", {"name": "a", "partitions": "3"})
    assert st == 400
    st, e = call(broker, "GET", "/api/topics/nope/records")
    assert st == 404
    call(broker, "POST", "/api/topics", {"name": "er", "partitions": 1})
    st, e = call(broker, "GET", "/api/topics/er/records?limit=abc")
    assert st == 400 and "limit" in e["message"]
    st, e = call(broker, "GET", "/api/topics/er/records?partition=5")
    assert st == 404
    st, e = call(broker, "POST", "/api/topics/er/records", {"records": [{"key": "k"}]})
    assert st == 400 and "value" in e["message"]
    st, e = call(broker, "POST", "/api/topics/er/records", {"records": [{"value": "!!", "value_encoding": "base64"}]})
    assert st == 400
    st, e = call(broker, "GET", "/api/topics/a%zz")
    assert st == 400
    st, e = call(broker, "GET", "/api/topics/a%00b")  # an encoded NUL is no name
    assert st == 400 and "escape" in e["message"]
    st, e = call(broker, "GET", "/api/topics/er/records?offset=%zz")
    assert st == 400 and "escape in the query" in e["message"]
    st, e = call(broker, "GET", "/api/topics/er/records?" + "&".join(f"a{i}=1" for i in range(17)))
    assert st == 400 and "query arguments" in e["message"]
    st, e = call(broker, "POST", "/api/topics/er/records", {"records": [{"value": "x", "partition": 3}]})
    assert st == 404 and "has no such partition (it has 1)" in e["message"]
    st, e = call(broker, "POST", "/api/topics/er/records", {"records": [{"value": "x"}] * 10001})
    assert st == 400 and "10000" in e["message"]
    st, e = call(broker, "POST", "/api/topics/er/records", {"records": []})
    assert st == 400
    st, e = call(broker, "POST", "/api/topics/er/records", {"records": [{"value": "x", "headers": {"h": 5}}]})
    assert st == 400 and "header h" in e["message"]
    # Nothing above stored anything.
    assert get(broker, "/api/topics/er")["partitions"][0]["end_offset"] == 0


def test_oversized_body_is_413_and_broker_keeps_serving(broker_factory):
    b = broker_factory("--http-max-body-bytes", "4096")
    st, e = call(b, "POST", "/api/topics/big/records", raw=b"{" + b" " * 10000 + b"}")
    assert st == 413 and e["error"] == "payload_too_large"
    # Chunked upload without a length: cut off the same way.
    conn = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=10)
    conn.putrequest("POST", "/api/topics/big/records")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for _ in range(10):
        conn.send(b"400\r\n" + b" " * 1024 + b"\r\n")
    conn.send(b"0\r\n\r\n")
    r = conn.getresponse()
    assert r.status == 413
    conn.close()
    assert get(b, "/api/overview")["topics"] == 0


def test_client_vanishing_mid_request_and_many_connections(broker):
    # A request cut off in the middle of its body, and one in its headers.
    for payload in (b"POST /api/topics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na",
                    b"GET /api/overv"):
        s = socket.create_connection(("127.0.0.1", broker.http_port))
        s.sendall(payload)
        s.close()
    # Many clients at once, each reading while Kafka producers write.
    errors = []

    def worker():
        try:
            for _ in range(20):
                get(broker, "/api/overview")
                get(broker, "/api/topics")
        except Exception as e:  # noqa: BLE001 - collected for the assert below
            errors.append(e)
    ths = [threading.Thread(target=worker) for _ in range(16)]
    for t in ths:
        t.start()
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(2000):
        p.produce("busy", value=b"v")
    p.flush(10)
    for t in ths:
        t.join(60)
    assert not errors, errors[:3]
    assert get(broker, "/api/topics/busy")["partitions"][0]["end_offset"] == 2000


def test_shutdown_answers_pending_long_poll(broker):
    call(broker, "POST", "/api/topics", {"name": "sd", "partitions": 1})
    out = {}

    def poll():
        try:
            out["r"] = call(broker, "GET", "/api/topics/sd/records?wait_ms=20000")
        except Exception as e:  # noqa: BLE001 - the connection may be closed instead
            out["r"] = e
    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    t0 = time.time()
    assert broker.stop() == 0
    th.join(10)
    assert time.time() - t0 < 10
    r = out["r"]
    assert not isinstance(r, tuple) or r[0] == 503


def test_http_off(broker_factory):
    b = broker_factory("--http", "off")
    assert b.http_port is None
    assert "http listening" not in b.log()
