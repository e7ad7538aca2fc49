"""GET /metrics: the Prometheus text format checked by promtool, figures that
match what real clients did (confluent-kafka, pika), latency histograms,
the alert rules (docs/alerts.yml), and a real Prometheus scraping the broker."""
import os
import re
import shutil
import json
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import pika
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import araw
from amqp_util import params, time_limit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
ODD_QUEUE = 'odd "name" \\ with\nnewline'
RAW_QUEUE = b"raw\xff\xc0\x80name"  # not UTF-8: a stray byte and an overlong NUL


@pytest.fixture(autouse=True)
def _bounded():
    with time_limit(60):
        yield


# ---- a small parser of the text format (label values unescaped) ----

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')


def parse_labels(s):
    labels, i = {}, 0
    while i < len(s):
        eq = s.index("=", i)
        name = s[i:eq]
        assert s[eq + 1] == '"', s
        j, val = eq + 2, []
        while s[j] != '"':
            if s[j] == "\\":
                val.append({"\\": "\\", '"': '"', "n": "\n"}[s[j + 1]])
                j += 2
            else:
                val.append(s[j])
                j += 1
        labels[name] = "".join(val)
        i = j + 1
        if i < len(s):
            assert s[i] == ",", s
            i += 1
    return labels


def parse(text):
    """{name: [(labels, value)]} plus the TYPE of every family."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, line
        samples.setdefault(m.group(1), []).append((parse_labels(m.group(2) or ""), float(m.group(3))))
    return samples, types


def value(samples, name, **labels):
    got = [v for lab, v in samples.get(name, []) if all(lab.get(k) == str(x) for k, x in labels.items())]
    assert len(got) == 1, (name, labels, samples.get(name))
    return got[0]


def total(samples, name, **labels):
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == str(x) for k, x in labels.items()))


def scrape(broker):
    with urllib.request.urlopen(broker.http_url + "/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode("utf-8")


def amqp(broker):
    broker.host = "127.0.0.1"
    return pika.BlockingConnection(params(broker))


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = cond()
        if r:
            return r
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


# ---- the figures ----

def kafka_traffic(broker):
    """25 records over 2 partitions (13 + 12); a group consumes and commits 5 + 5. Returns
    the (still open) consumer."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic("mt", num_partitions=2, replication_factor=1)]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(25):
        p.produce("mt", key=b"k%d" % i, value=b"v%d" % i, partition=i % 2)
    assert p.flush(20) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "mg", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 10000})
    c.subscribe(["mt"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 10 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    assert got == 10
    # explicit offsets: 5 on each partition, whichever the consumer read
    c.commit(offsets=[TopicPartition("mt", 0, 5), TopicPartition("mt", 1, 5)], asynchronous=False)
    return c


def amqp_traffic(ch):
    """mq (dead letters to mdlx -> mdead): 5 published, 3 fetched, 1 acked,
    1 rejected (dead-lettered), 1 left unacked, 2 ready."""
    ch.confirm_delivery()
    ch.exchange_declare("mdlx", "fanout", durable=True)
    ch.queue_declare("mdead", durable=True)
    ch.queue_bind("mdead", "mdlx")
    ch.queue_declare("mq", durable=True, arguments={"x-dead-letter-exchange": "mdlx"})
    ch.queue_declare(ODD_QUEUE)
    ch.exchange_declare("mdelay", "x-delayed-message", arguments={"x-delayed-type": "direct"})
    ch.queue_bind("mq", "mdelay", "later")
    ch.basic_publish("mdelay", "later", b"in a minute", pika.BasicProperties(headers={"x-delay": 60000}))
    ch.basic_publish("mdelay", "nobody", b"no route yet", pika.BasicProperties(headers={"x-delay": 60000}))
    for i in range(5):
        ch.basic_publish("", "mq", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", ODD_QUEUE, b"odd")
    ch.basic_publish("", ODD_QUEUE, b"z" * 300000)  # many body frames: still one basic.publish
    tags = []
    for _ in range(3):
        m, _, _ = ch.basic_get("mq", auto_ack=False)
        assert m is not None
        tags.append(m.delivery_tag)
    ch.basic_ack(tags[0])
    ch.basic_reject(tags[1], requeue=False)


def declare_raw_queue(broker, name):
    """queue.declare with a name pika cannot send (bytes that are not UTF-8)."""
    s, _ = araw.handshake(broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.QUEUE_DECLARE, struct.pack(">H", 0) + araw.shortstr(name) + b"\x00" +
                          araw.table({})))
    ch, cm, _ = araw.read_method(s)
    assert (ch, cm) == (1, araw.QUEUE_DECLARE_OK)
    s.close()


def test_metrics_match_broker_state(broker):
    consumer = kafka_traffic(broker)
    conn = amqp(broker)
    declare_raw_queue(broker, RAW_QUEUE)
    ch = conn.channel()
    amqp_traffic(ch)
    # dead-lettering completes once the copy is durable; the disk is measured
    # off the loop a second after the start
    wait_for(lambda: (lambda s: value(s, "herald_queue_messages_ready", queue="mdead") == 1
                      and "herald_disk_used_bytes" in s)(parse(scrape(broker))[0]))
    text = scrape(broker)

    # (a) promtool accepts it, lint included
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", (r.stdout, r.stderr)

    s, types = parse(text)
    for name in s:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, name
    # (b) Kafka: 25 in over 2 partitions; the group committed 10
    assert total(s, "herald_partition_messages_in_total", topic="mt") == 25
    assert value(s, "herald_partition_messages_in_total", topic="mt", partition=0) == 13
    assert value(s, "herald_partition_log_end_offset", topic="mt", partition=1) == 12
    assert value(s, "herald_partition_high_watermark", topic="mt", partition=0) == 13
    assert value(s, "herald_partition_log_start_offset", topic="mt", partition=0) == 0
    assert value(s, "herald_partition_segments", topic="mt", partition=0) == 1
    assert value(s, "herald_partition_size_bytes", topic="mt", partition=0) > 0
    assert total(s, "herald_partition_bytes_in_total", topic="mt") > 0
    assert total(s, "herald_partition_messages_out_total", topic="mt") >= 10
    assert total(s, "herald_group_committed_offset", group="mg") == 10
    assert total(s, "herald_group_partition_lag", group="mg") == 15
    assert value(s, "herald_group_lag", group="mg") == 15
    for part in (0, 1):
        committed = value(s, "herald_group_committed_offset", group="mg", topic="mt", partition=part)
        hw = value(s, "herald_partition_high_watermark", topic="mt", partition=part)
        assert value(s, "herald_group_partition_lag", group="mg", topic="mt", partition=part) == hw - committed
    assert value(s, "herald_group_members", group="mg") == 1
    assert value(s, "herald_group_state", group="mg", state="Stable") == 1
    assert total(s, "herald_group_state", group="mg") == 1
    # AMQP
    q = dict(queue="mq")
    assert value(s, "herald_queue_messages_ready", **q) == 2
    assert value(s, "herald_queue_messages_unacked", **q) == 1
    assert value(s, "herald_queue_messages_delayed", **q) == 1  # routed when published, waits in mq
    assert value(s, "herald_queue_messages_ready_bytes", **q) == 4
    assert value(s, "herald_queue_consumers", **q) == 0
    assert value(s, "herald_queue_messages_published_total", **q) == 6  # 5 and the delayed one
    assert value(s, "herald_queue_messages_delivered_total", **q) == 3
    assert value(s, "herald_queue_messages_acked_total", **q) == 1
    assert value(s, "herald_queue_messages_dead_lettered_total", **q) == 1
    for c in ("redelivered", "returned", "expired", "dropped", "refused", "duplicate"):
        assert value(s, f"herald_queue_messages_{c}_total", **q) == 0, c
    assert value(s, "herald_queue_messages_published_total", queue="mdead") == 1
    assert value(s, "herald_queue_dead_letter_target", queue="mdead") == 1
    assert value(s, "herald_queue_dead_letter_target", queue="mq") == 0
    # the delayed exchange's hidden queue (messages with no route when published) is not a
    # queue; its message is counted per exchange
    assert value(s, "herald_exchange_messages_delayed", exchange="mdelay") == 1
    assert sorted(lab["queue"] for lab, _ in s["herald_queue_messages_ready"]) == sorted(
        ["mq", "mdead", ODD_QUEUE, RAW_QUEUE.decode("utf-8", "replace")])
    # a queue name with a quote, a backslash and a newline round-trips
    assert value(s, "herald_queue_messages_ready", queue=ODD_QUEUE) == 2
    # bytes that are not UTF-8 become U+FFFD (one per byte of an invalid sequence)
    assert value(s, "herald_queue_messages_ready", queue="raw\ufffd\ufffd\ufffdname") == 0
    # connections: the consumer's (and maybe the admin/producer's, closing)
    assert value(s, "herald_connections", protocol="kafka") >= 1
    assert value(s, "herald_connections", protocol="amqp") == 1
    assert value(s, "herald_amqp_channels") == 1
    # process and disk
    assert value(s, "herald_build_info", version="0.1.0") == 1
    assert value(s, "process_cpu_seconds_total") > 0
    assert value(s, "process_resident_memory_bytes") > 1 << 20
    assert abs(value(s, "process_start_time_seconds") - time.time()) < 300
    assert value(s, "herald_disk_used_bytes") > 0
    assert value(s, "herald_disk_size_bytes") > value(s, "herald_disk_free_bytes") > 0
    assert value(s, "herald_alarm", resource="memory") == 0
    assert value(s, "herald_alarm", resource="disk") == 0

    # (c) histograms: every API and method used has observations, buckets
    # are cumulative and end with +Inf == count
    for api in ("ApiVersions", "Metadata", "Produce", "Fetch", "JoinGroup", "SyncGroup", "OffsetCommit"):
        n = value(s, "herald_kafka_request_duration_seconds_count", api=api)
        assert n > 0, api
        assert value(s, "herald_kafka_request_duration_seconds_bucket", api=api, le="+Inf") == n
        assert value(s, "herald_kafka_request_duration_seconds_sum", api=api) > 0
    for method in ("connection.open", "channel.open", "queue.declare", "queue.bind", "exchange.declare",
                   "confirm.select", "basic.publish", "basic.get", "basic.ack", "basic.reject"):
        assert value(s, "herald_amqp_method_duration_seconds_count", method=method) > 0, method
    assert value(s, "herald_amqp_method_duration_seconds_count", method="basic.publish") == 9  # 2 delayed, 5 into mq, 2 into the odd queue
    assert value(s, "herald_amqp_method_duration_seconds_count", method="basic.get") == 3
    fs = value(s, "herald_fsync_duration_seconds_count")
    assert fs > 0
    assert value(s, "herald_fsync_duration_seconds_bucket", le="+Inf") == fs
    for name in ("herald_kafka_request_duration_seconds_bucket", "herald_fsync_duration_seconds_bucket"):
        series = {}
        for lab, v in s[name]:
            key = tuple(sorted((k, x) for k, x in lab.items() if k != "le"))
            series.setdefault(key, []).append(v)
        for key, vals in series.items():
            assert len(vals) == 17 and vals == sorted(vals), (name, key, vals)

    consumer.close()
    conn.close()
    # closed clients are no longer counted
    s2 = parse(wait_for(lambda: (lambda t: t if value(parse(t)[0], "herald_connections", protocol="amqp") == 0
                                 else None)(scrape(broker))))[0]
    assert value(s2, "herald_amqp_channels") == 0
    assert value(s2, "herald_group_members", group="mg") == 0
    assert value(s2, "herald_group_state", group="mg", state="Empty") == 1


def test_publish_latency_counts_whole_messages(broker):
    """basic.publish is observed once per message, when it is routed: in a
    transaction, unroutable, with an empty body (no body frame), and not at
    all for a publish whose body never came."""
    conn = amqp(broker)
    ch = conn.channel()
    ch.queue_declare("lq")
    ch.tx_select()
    ch.basic_publish("", "lq", b"a")
    ch.basic_publish("", "lq", b"b")
    ch.tx_commit()
    ch2 = conn.channel()
    ch2.basic_publish("", "no-such-queue", b"lost", mandatory=True)
    s, _ = araw.handshake(broker)
    araw.open_channel(s, 1)
    s.sendall(araw.method(1, araw.BASIC_PUBLISH, araw.publish_args("", "lq")) + araw.content_header(1, 0))
    s.sendall(araw.method(1, araw.BASIC_PUBLISH, araw.publish_args("", "lq")) + araw.content_header(1, 10) +
              araw.body_frame(1, b"12345"))
    time.sleep(0.2)
    s.close()  # the second message never completes
    m = wait_for(lambda: (lambda s: s if value(s, "herald_queue_messages_ready", queue="lq") == 3 else None)(
        parse(scrape(broker))[0]))
    assert value(m, "herald_amqp_method_duration_seconds_count", method="basic.publish") == 4
    assert value(m, "herald_amqp_method_duration_seconds_count", method="tx.commit") == 1
    conn.close()


def test_only_get(broker):
    req = urllib.request.Request(broker.http_url + "/metrics", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


# ---- the alert rules ----

def test_alert_rules_check_and_unit_tests():
    r = subprocess.run([PROMTOOL, "check", "rules", os.path.join(ROOT, "docs", "alerts.yml")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([PROMTOOL, "test", "rules", os.path.join(ROOT, "tests", "integration", "alerts_test.yml")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- a real Prometheus ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prometheus_scrapes_the_broker(broker):
    conn = amqp(broker)
    ch = conn.channel()
    ch.queue_declare("pq")
    for i in range(7):
        ch.basic_publish("", "pq", b"x")
    conn.close()
    tmp = tempfile.mkdtemp(prefix="herald-prom-")
    port = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "rule_files:\n  - %s\n"
                "scrape_configs:\n  - job_name: herald\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % (os.path.join(ROOT, "docs", "alerts.yml"), broker.http_port))
    prom = subprocess.Popen([PROMETHEUS, "--config.file", cfg, "--storage.tsdb.path", os.path.join(tmp, "data"),
                             "--web.listen-address", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        q = urllib.parse.quote('herald_queue_messages_ready{queue="pq"}')

        def query():
            if prom.poll() is not None:
                raise AssertionError("prometheus exited: " + prom.stderr.read()[-3000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query={q}", timeout=2) as r:
                    res = json.load(r)["data"]["result"]
            except (OSError, ValueError, KeyError):
                return None
            return res if res else None

        res = wait_for(query, timeout=30)
        assert len(res) == 1
        assert res[0]["metric"]["job"] == "herald"
        assert float(res[0]["value"][1]) == 7
        # the scrape itself was healthy
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as r:
            targets = json.load(r)["data"]["activeTargets"]
        assert [t["health"] for t in targets] == ["up"], targets
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


# ---- scrapes in parallel with traffic, and a shutdown in the middle ----

def test_parallel_scrapes_during_traffic_and_shutdown(broker):
    stop = threading.Event()
    errors, counts = [], []

    def scraper():
        last, n = 0, 0
        while not stop.is_set():
            try:
                s = parse(scrape(broker))[0]
            except (OSError, urllib.error.URLError):
                break  # the broker is going away
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                break
            got = total(s, "herald_partition_messages_in_total", topic="pt")
            if got < last:
                errors.append(f"counter went back: {last} -> {got}")
            last, n = got, n + 1
        counts.append(n)

    threads = [threading.Thread(target=scraper) for _ in range(6)]
    for t in threads:
        t.start()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 2})
    for i in range(300):
        p.produce("pt", value=b"x%d" % i)
        if i % 50 == 0:
            p.poll(0)
    assert p.flush(20) == 0
    time.sleep(0.5)
    # stop the broker while scrapes are in flight: they get an answer or a
    # closed connection, and the broker exits cleanly (ASan checks the rest)
    assert broker.stop() == 0
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert not errors, errors
    print("scrapes", counts)
    assert sum(counts) >= 6, counts
