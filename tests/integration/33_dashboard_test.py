"""The web dashboard (web/, served at / by src/http/dashboard.c) in a real
browser: Debian's chromium driven by playwright-core (node; the package comes
from the npm registry on the first run, dashboard/package-lock.json pins it).

The test starts a broker, sets up a dead-letter exchange and rejects
messages into its queue, and makes live traffic: pika publishing into a queue
without consumers and into one whose consumer stalls, a Kafka producer, a
group consumer that commits only part of what it reads and stays a member.
dashboard/check.js loads every page, first while the traffic runs (rates and
charts move, the growing queues are flagged; the publishers stop when it says
so, after 30 s at most), then once the broker is quiet, and compares each number the
page shows with the API's JSON fetched at the same time; it clicks Redrive on
the dead-letter queue and checks that the messages went back where they died.
Screenshots land in dashboard/screenshots/ (not committed).

API routes that answer 404 "no such resource" (not built yet) are listed by
check.js; the page must then show the failed call inline, and the test ends
as xfail naming them."""
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request

import pika
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard")
CHROMIUM = "/usr/bin/chromium"
WEB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "web")

TOPIC = "dash.orders"
GROUP = "dash.billing"
WORK, DLX, DLQ, ORPHAN, SLOW = "dash.work", "dash.dlx", "dash.dlq", "dash.orphan", "dash.slow"
DEAD = 6          # messages rejected into the DLQ
COMMIT_FIRST = 60  # the group commits after this many records, then never again
TRAFFIC_S = 30    # live traffic stops after check.js saw it, or after this long


def need_tools():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (scripts/deps.sh test installs chromium)")
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are missing (scripts/deps.sh test installs them)")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, capture_output=True,
                       timeout=300)


def http_get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def test_static_files_are_embedded(broker):
    """/ is index.html, /ui/NAME the other files, each with its content type
    and a strong ETag that names its bytes; anything else under /ui is a 404."""
    st, hdr, body = http_get(broker.http_url + "/")
    assert st == 200 and hdr["Content-Type"].startswith("text/html")
    assert b"/ui/app.js" in body
    etag = hdr["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34, etag
    for name, ctype in (("app.js", "text/javascript"), ("pages.js", "text/javascript"),
                        ("chart.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        st, h2, b2 = http_get(broker.http_url + "/ui/" + name)
        assert st == 200 and h2["Content-Type"].startswith(ctype), name
        with open(os.path.join(WEB, name), "rb") as f:
            src = f.read()
        assert b2 == src, f"{name}: the binary serves other bytes than web/{name} (rebuild?)"
        assert h2["ETag"] == '"%s"' % hashlib.sha256(src).hexdigest()[:32], name
        assert "default-src 'self'" in h2["Content-Security-Policy"]
    assert http_get(broker.http_url + "/")[1]["ETag"] == etag  # stable
    assert hdr["Cache-Control"] == "no-cache"  # kept by the browser, revalidated with the ETag
    # A browser that has the file gets 304 without a body; a stale ETag gets the file.
    req = urllib.request.Request(broker.http_url + "/", headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 304 and e.value.read() == b""
    req = urllib.request.Request(broker.http_url + "/", headers={"If-None-Match": '"0000"'})
    assert urllib.request.urlopen(req, timeout=10).status == 200
    # API answers are live figures: never cached.
    assert http_get(broker.http_url + "/api/overview")[1]["Cache-Control"] == "no-store"
    for bad in ("/ui/nope.js", "/ui/index.html", "/ui/"):
        with pytest.raises(urllib.error.HTTPError) as e:
            http_get(broker.http_url + bad)
        assert e.value.code == 404, bad


def setup_dead_letters(amqp_port):
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp_port))
    ch = conn.channel()
    ch.exchange_declare(DLX, "fanout", durable=True)
    ch.queue_declare(DLQ, durable=True)
    ch.queue_bind(DLQ, DLX)
    ch.queue_declare(WORK, durable=True, arguments={"x-dead-letter-exchange": DLX})
    ch.queue_declare(ORPHAN, durable=True)
    ch.queue_declare(SLOW, durable=True)
    ch.confirm_delivery()
    for i in range(DEAD):
        ch.basic_publish("", WORK, f"job {i}".encode(), pika.BasicProperties(delivery_mode=2))
    rejected = 0
    deadline = time.time() + 20
    while rejected < DEAD and time.time() < deadline:
        m, _, _ = ch.basic_get(WORK)
        if m is None:
            time.sleep(0.05)
            continue
        ch.basic_reject(m.delivery_tag, requeue=False)
        rejected += 1
    assert rejected == DEAD
    deadline = time.time() + 20
    while ch.queue_declare(DLQ, passive=True).method.message_count < DEAD:
        assert time.time() < deadline, "the rejected messages did not reach the DLQ"
        time.sleep(0.05)
    conn.close()


def amqp_publisher(amqp_port, stop, errors):
    """About 100 messages a second into a queue nobody consumes, 50 into one
    whose only consumer stalls."""
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp_port))
        ch = conn.channel()
        end = time.time() + TRAFFIC_S
        n = 0
        while time.time() < end and not stop.is_set() and n < 6000:
            for i in range(15):
                ch.basic_publish("", ORPHAN if i < 10 else SLOW, b"x" * 100)
                n += 1
            conn.process_data_events(0.1)
        conn.close()
    except Exception as e:  # reported by the test
        errors.append(f"amqp publisher: {e!r}")


def kafka_producer(bootstrap, stop, errors):
    try:
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        end = time.time() + TRAFFIC_S
        n = 0
        while time.time() < end and not stop.is_set() and n < 8000:
            for _ in range(20):
                p.produce(TOPIC, key=f"k{n}".encode(), value=b"v" * 200)
                n += 1
            p.poll(0)
            time.sleep(0.1)
        assert p.flush(30) == 0
    except Exception as e:
        errors.append(f"kafka producer: {e!r}")


def group_consumer(bootstrap, stop, errors, state):
    """Reads everything, commits once after COMMIT_FIRST records, stays in the
    group (so it shows as a member with assignments) until stop."""
    try:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                      "heartbeat.interval.ms": 500, "client.id": "dash-test"})
        c.subscribe([TOPIC])
        seen = 0
        while not stop.is_set():
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            seen += 1
            if seen == COMMIT_FIRST:
                c.commit(asynchronous=False)
                state["committed"] = True
        c.close()
    except Exception as e:
        errors.append(f"group consumer: {e!r}")


def test_dashboard_pages_in_chromium(broker):
    need_tools()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[TOPIC].result(20)
    del admin
    setup_dead_letters(broker.amqp_port)

    # The publishers run until check.js has seen the live traffic (or
    # TRAFFIC_S); the group consumer stays a member until the end.
    traffic_stop, stop = threading.Event(), threading.Event()
    errors, state = [], {}
    threads = [threading.Thread(target=amqp_publisher, args=(broker.amqp_port, traffic_stop, errors), daemon=True),
               threading.Thread(target=kafka_producer, args=(broker.bootstrap, traffic_stop, errors), daemon=True),
               threading.Thread(target=group_consumer, args=(broker.bootstrap, stop, errors, state), daemon=True)]
    for t in threads:
        t.start()
    # A consumer that takes 5 messages and never acks: its queue grows with a
    # consumer attached (and it shows on the Connections page).
    watch = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", broker.amqp_port, client_properties={"connection_name": "dash-watcher"}))
    wch = watch.channel()
    wch.basic_qos(prefetch_count=5)
    wch.basic_consume(SLOW, lambda *a: None)
    shots = os.path.join(HERE, "screenshots")
    os.makedirs(shots, exist_ok=True)
    args = {"url": broker.http_url, "topic": TOPIC, "group": GROUP, "work": WORK, "dlq": DLQ, "orphan": ORPHAN, "slow": SLOW,
            "dead": DEAD, "screenshots": shots}
    lines = []
    node = subprocess.Popen(["node", "check.js", json.dumps(args)], cwd=HERE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

    def read_node():
        for line in node.stdout:
            lines.append(line)
            if line.startswith("check: live phase ok"):
                traffic_stop.set()

    reader = threading.Thread(target=read_node, daemon=True)
    reader.start()
    try:
        rc = node.wait(timeout=120)
    except subprocess.TimeoutExpired:
        node.kill()
        rc = node.wait()
    finally:
        traffic_stop.set()
        stop.set()
        reader.join(timeout=10)
        for t in threads:
            t.join(timeout=15)
        watch.close()
    out = "".join(lines)
    assert not errors, errors
    assert state.get("committed"), "the group consumer never committed\n" + out
    assert rc == 0, out + broker.log()[-3000:]
    report = json.loads(lines[-1])
    print(out)
    if report["missing_routes"]:
        pytest.xfail("API routes not built yet (the dashboard showed their errors inline): " +
                     ", ".join(report["missing_routes"]))
