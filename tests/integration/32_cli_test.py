"""The `herald` command-line client against a real broker's HTTP API, checked
with real clients on the other side: records produced by the CLI are read by
confluent-kafka and the reverse, group lag after a confluent-kafka commit,
queue counts after pika publishes, CLI publishes consumed by pika, `top
--once`, --json output, and the errors (unreachable broker, API refusals,
bad usage)."""
import json
import os
import socket
import subprocess
import time

import pika
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from amqp_util import params
from conftest import HERALD_BIN


def cli(broker, *args, stdin=None, timeout=30, server=True):
    """Runs `herald ARGS` against broker; returns the CompletedProcess."""
    argv = [HERALD_BIN, *args]
    if server:
        argv += ["--server", broker.http_url]
    env = dict(os.environ)
    env.pop("HERALD_SERVER", None)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def ok(broker, *args, **kw):
    r = cli(broker, *args, **kw)
    assert r.returncode == 0, f"herald {' '.join(args)}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def table(text):
    """Rows of a CLI table as dicts keyed by the header. Columns are found
    as the character positions between runs of two or more spaces that are
    blank on every line, so empty cells parse too."""
    lines = [l for l in text.splitlines() if l.strip()]
    width = max(len(l) for l in lines)
    lines = [l.ljust(width) for l in lines]
    blank = [all(l[i] == " " for l in lines) for i in range(width)] + [True, True]
    spans, start, i = [], None, 0
    while i < width:
        if not blank[i] and start is None:
            start = i
        if start is not None and blank[i] and (blank[i + 1] or i + 1 == width):
            spans.append((start, i))
            start = None
        i += 1
    if start is not None:
        spans.append((start, width))
    heads = [lines[0][a:b].strip() for a, b in spans]
    return [dict(zip(heads, (l[a:b].strip() for a, b in spans))) for l in lines[1:]]


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def kafka_consume(broker, topic, n, group="cli-check", timeout=30):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    c.close()
    return got


# ---- usage and errors ----

def test_unreachable_broker_is_exit_2_with_the_reason():
    port = closed_port()
    r = subprocess.run([HERALD_BIN, "topics", "list", "--server", f"http://127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr == f"herald: cannot reach http://127.0.0.1:{port}: Connection refused\n"
    r = subprocess.run([HERALD_BIN, "--server", f"http://127.0.0.1:{port}", "--json", "groups", "list"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr == f"herald: cannot reach http://127.0.0.1:{port}: Connection refused\n"
    env = dict(os.environ, HERALD_SERVER=f"http://127.0.0.1:{port}/")
    r = subprocess.run([HERALD_BIN, "top", "--once"], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 2 and f"cannot reach http://127.0.0.1:{port}: Connection refused" in r.stderr


def test_bad_usage_prints_usage_and_exits_2():
    def run(*a):
        return subprocess.run([HERALD_BIN, *a], capture_output=True, text=True, timeout=30)
    r = run("topics")
    assert r.returncode == 2 and "herald topics create NAME" in r.stderr
    r = run("topics", "create")
    assert r.returncode == 2 and "herald: missing NAME\n" in r.stderr and "usage:" in r.stderr
    r = run("queues", "create", "q", "--bogus")
    assert r.returncode == 2 and "'--bogus'" in r.stderr
    r = run("consume", "t", "--count", "many")
    assert r.returncode == 2 and "--count" in r.stderr
    r = run("topics", "create", "t", "--config", "novalue")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr
    r = run("exchanges", "create", "x")
    assert r.returncode == 2 and "--type" in r.stderr
    r = run("topics", "frob")
    assert r.returncode == 2 and "topics frob" in r.stderr
    r = run("produce", "--help")
    assert r.returncode == 0 and "herald produce TOPIC" in r.stdout
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("herald serve", "herald topics list", "herald consume TOPIC", "herald top", "--server URL"):
        assert cmd in r.stdout


def test_api_errors_print_the_message_and_exit_1(broker):
    r = cli(broker, "topics", "describe", "nope")
    assert r.returncode == 1 and r.stderr == "herald: no topic called nope\n"
    ok(broker, "topics", "create", "dup")
    r = cli(broker, "topics", "create", "dup")
    assert r.returncode == 1 and "dup" in r.stderr and r.stderr.startswith("herald: ")


# ---- topics, produce, consume ----

def test_cli_creates_and_produces_confluent_consumes(broker):
    out = ok(broker, "topics", "create", "orders", "--partitions", "3", "--config", "retention.ms=3600000")
    assert "orders" in out
    lines = [f"line-{i}" for i in range(1203)]  # three batches of at most 500
    assert ok(broker, "produce", "orders", stdin="\n".join(lines) + "\n") == ""
    assert ok(broker, "produce", "orders", "--key", "k1", "--value", "keyed") == ""
    got = kafka_consume(broker, "orders", len(lines) + 1)
    assert sorted(m.value().decode() for m in got) == sorted(lines + ["keyed"])
    keyed = [m for m in got if m.value() == b"keyed"]
    assert keyed[0].key() == b"k1"

    rows = {r["TOPIC"]: r for r in table(ok(broker, "topics", "list"))}
    assert rows["orders"]["PARTITIONS"] == "3" and rows["orders"]["MESSAGES"] == "1.2k"
    desc = json.loads(ok(broker, "topics", "describe", "orders", "--json"))
    assert sum(p["end_offset"] for p in desc["partitions"]) == 1204
    assert desc["configs"]["retention.ms"]["value"] == "3600000"
    human = ok(broker, "topics", "describe", "orders")
    assert "retention.ms  3600000" in human
    parts = table(human.split("\n\n")[1])
    assert sum(int(p["END"]) for p in parts) == 1204


def test_produce_to_a_partition(broker):
    ok(broker, "topics", "create", "p3", "--partitions", "3")
    ok(broker, "produce", "p3", "--partition", "2", stdin="a\nb\n")
    out = ok(broker, "consume", "p3", "--partition", "2", "--from-beginning", "--json")
    recs = [json.loads(l) for l in out.splitlines()]
    assert [(r["partition"], r["offset"], r["value"]) for r in recs] == [(2, 0, "a"), (2, 1, "b")]
    assert ok(broker, "consume", "p3", "--partition", "0", "--from-beginning") == ""


def test_confluent_produces_cli_consumes(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap})
    values = [f"v{i}" for i in range(40)] + ["caf\u00e9"]
    for v in values:
        p.produce("events", value=v.encode(), key=b"k")
    p.produce("events", value=b"\xff\x00bin", key=b"k")
    assert p.flush(30) == 0
    out = subprocess.run([HERALD_BIN, "consume", "events", "--from-beginning", "--server", broker.http_url],
                         capture_output=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout.split(b"\n")[:-1] == [v.encode() for v in values] + [b"\xff\x00bin"]
    assert ok(broker, "consume", "events", "--from-beginning", "--count", "5").splitlines() == values[:5]
    # Without --from-beginning and without a group: only what comes next.
    assert ok(broker, "consume", "events") == ""
    recs = [json.loads(l) for l in ok(broker, "consume", "events", "--from-beginning", "--json").splitlines()]
    assert recs[0]["offset"] == 0 and recs[0]["key"] == "k" and recs[0]["topic"] == "events"
    assert recs[-1]["value_encoding"] == "base64"


def test_consume_follow_gets_new_records(broker):
    ok(broker, "topics", "create", "live", "--partitions", "2")
    ok(broker, "produce", "live", "--value", "first")
    proc = subprocess.Popen([HERALD_BIN, "consume", "live", "--follow", "--from-beginning", "--count", "4",
                             "--server", broker.http_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "first\n"  # caught up: now only long polls
        time.sleep(0.5)
        ok(broker, "produce", "live", stdin="x\ny\nz\n")
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert sorted(out.splitlines()) == ["x", "y", "z"]


# ---- groups ----

def test_groups_after_a_confluent_commit(broker):
    ok(broker, "topics", "create", "billing-in", "--partitions", "1")
    ok(broker, "produce", "billing-in", stdin="".join(f"m{i}\n" for i in range(10)))
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "billing", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("billing-in", 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < 4 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    c.commit(offsets=[TopicPartition("billing-in", 0, 4)], asynchronous=False)
    c.close()

    rows = {r["GROUP"]: r for r in table(ok(broker, "groups", "list"))}
    assert rows["billing"]["LAG"] == "6" and rows["billing"]["TOPICS"] == "billing-in"
    desc = ok(broker, "groups", "describe", "billing")
    assert "lag 6" in desc.splitlines()[0]
    offs = table(desc.split("\n\n")[-1])
    assert offs == [{"TOPIC": "billing-in", "PARTITION": "0", "COMMITTED": "4", "HIGH WATERMARK": "10",
                     "LAG": "6"}]
    j = json.loads(ok(broker, "groups", "describe", "billing", "--json"))
    assert j["lag"] == 6 and j["offsets"][0]["committed"] == 4
    assert any(g["group_id"] == "billing" for g in json.loads(ok(broker, "groups", "list", "--json")))

    # consume --group starts at the committed offset and commits what it printed.
    assert ok(broker, "consume", "billing-in", "--group", "billing", "--count", "2").splitlines() == ["m4", "m5"]
    assert json.loads(ok(broker, "groups", "describe", "billing", "--json"))["lag"] == 4
    assert ok(broker, "consume", "billing-in", "--group", "billing").splitlines() == ["m6", "m7", "m8", "m9"]
    assert json.loads(ok(broker, "groups", "describe", "billing", "--json"))["offsets"][0]["committed"] == 10
    ok(broker, "groups", "delete", "billing")
    r = cli(broker, "groups", "describe", "billing")
    assert r.returncode == 1


def test_consume_new_group_starts_at_end_or_beginning(broker):
    ok(broker, "produce", "fresh", "--value", "old")
    assert ok(broker, "consume", "fresh", "--group", "g-end") == ""
    assert ok(broker, "consume", "fresh", "--group", "g-beg", "--from-beginning") == "old\n"
    # Committed now: --from-beginning no longer rewinds it.
    assert ok(broker, "consume", "fresh", "--group", "g-beg", "--from-beginning") == ""


# ---- queues, exchanges, publish ----

def test_queues_list_after_pika_publishes(broker):
    conn = pika.BlockingConnection(params(broker_amqp(broker)))
    ch = conn.channel()
    ch.queue_declare("work", durable=True)
    for i in range(7):
        ch.basic_publish("", "work", f"job{i}".encode())
    held = [ch.basic_get("work", auto_ack=False) for _ in range(2)]
    assert all(m[0] is not None for m in held)
    rows = {r["QUEUE"]: r for r in table(ok(broker, "queues", "list"))}
    assert rows["work"]["READY"] == "5" and rows["work"]["UNACKED"] == "2"
    j = {q["name"]: q for q in json.loads(ok(broker, "queues", "list", "--json"))}
    assert j["work"]["messages_ready"] == 5 and j["work"]["messages_unacked"] == 2
    desc = ok(broker, "queues", "describe", "work")
    assert "ready 5" in desc and "unacked 2" in desc
    peek = table(ok(broker, "queues", "peek", "work", "--count", "3"))
    assert [r["PAYLOAD"] for r in peek] == ["job2", "job3", "job4"]
    ch.queue_declare("evil\x1b[2J\rname")
    listing = ok(broker, "queues", "list")
    assert "\x1b" not in listing and "\r" not in listing and "evil?[2J?name" in listing
    desc = ok(broker, "queues", "describe", "evil\x1b[2J\rname")
    assert desc.startswith("queue evil?[2J?name ")
    r = cli(broker, "queues", "describe", "gone\x1b[2J")
    assert r.returncode == 1 and "\x1b" not in r.stderr and "gone?[2J" in r.stderr
    conn.close()
    assert "purged 7 messages" in ok(broker, "queues", "purge", "work")  # the unacked two came back
    ok(broker, "queues", "delete", "work")
    assert "work" not in ok(broker, "queues", "list")


def broker_amqp(broker):
    broker.host = "127.0.0.1"
    return broker


def test_publish_with_cli_consume_with_pika(broker):
    assert "created queue jobs" in ok(broker, "queues", "create", "jobs", "--arg", "x-max-length=100")
    assert "same settings" in ok(broker, "queues", "create", "jobs", "--arg", "x-max-length=100")
    r = cli(broker, "queues", "create", "jobs", "--arg", "x-max-length=5")
    assert r.returncode == 1 and "PRECONDITION_FAILED" in r.stderr
    made = json.loads(ok(broker, "queues", "create", "other", "--transient", "--json"))
    assert made["name"] == "other" and made["durable"] is False
    assert ok(broker, "publish", "", "jobs", "--body", "hello", "--header", "a=1", "--header", "who=cli",
              "--persistent") == ""
    ok(broker, "publish", "amq.default", "jobs", stdin="one\ntwo\n")
    conn = pika.BlockingConnection(params(broker_amqp(broker)))
    ch = conn.channel()
    msgs = []
    for _ in range(3):
        m, props, body = ch.basic_get("jobs", auto_ack=True)
        msgs.append((props, body))
    assert [b for _, b in msgs] == [b"hello", b"one", b"two"]
    assert msgs[0][0].headers == {"a": 1, "who": "cli"} and msgs[0][0].delivery_mode == 2
    conn.close()
    r = cli(broker, "publish", "", "nowhere", "--body", "x")
    assert r.returncode == 0 and "routed to no queue" in r.stderr


def test_exchanges_bindings_connections(broker):
    ok(broker, "exchanges", "create", "events", "--type", "topic")
    ok(broker, "queues", "create", "audit")
    ok(broker, "bindings", "create", "events", "audit", "--key", "order.*")
    rows = {r["EXCHANGE"]: r for r in table(ok(broker, "exchanges", "list"))}
    assert rows["events"]["TYPE"] == "topic" and rows["(default)"]["TYPE"] == "direct"
    b = [r for r in table(ok(broker, "bindings", "list")) if r["SOURCE"] == "events"]
    assert b == [{"SOURCE": "events", "DESTINATION": "audit", "TYPE": "queue", "ROUTING KEY": "order.*",
                  "ARGUMENTS": ""}]
    ok(broker, "publish", "events", "order.created", "--body", "o1")
    assert json.loads(ok(broker, "queues", "describe", "audit", "--json"))["messages_ready"] == 1
    conn = pika.BlockingConnection(params(broker_amqp(broker), client_properties={"connection_name": "w1"}))
    rows = table(ok(broker, "connections", "list"))
    assert any(r["PROTOCOL"] == "amqp" and r.get("NAME") == "w1" for r in rows), rows
    conn.close()
    ok(broker, "bindings", "delete", "events", "audit", "--key", "order.*")
    ok(broker, "exchanges", "delete", "events")
    assert "events" not in {r["EXCHANGE"] for r in table(ok(broker, "exchanges", "list"))}
    r = cli(broker, "exchanges", "delete", "amq.direct")
    assert r.returncode == 1


def test_redrive_moves_dead_letters_back(broker):
    conn = pika.BlockingConnection(params(broker_amqp(broker)))
    ch = conn.channel()
    ch.queue_declare("dlq")
    ch.queue_declare("task", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    for i in range(3):
        ch.basic_publish("", "task", f"t{i}".encode())
    for _ in range(3):
        m, _, _ = ch.basic_get("task")
        ch.basic_reject(m.delivery_tag, requeue=False)
    peek = table(ok(broker, "queues", "peek", "dlq"))
    assert len(peek) == 3 and peek[0]["DIED"] == "1x rejected in task" and peek[0]["PAYLOAD"] == "t0"
    assert peek[0]["EXCHANGE"] == "(default)" and peek[0]["ROUTING KEY"] == "dlq"
    assert "moved 2 messages" in ok(broker, "redrive", "dlq", "--count", "2")
    q = json.loads(ok(broker, "queues", "describe", "task", "--json"))
    assert q["messages_ready"] == 2
    assert "moved 1 messages" in ok(broker, "redrive", "dlq", "--to", "task")
    # A message whose queue is gone stays, and is counted.
    ch.queue_declare("gone", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"})
    ch.basic_publish("", "gone", b"g")
    m, _, _ = ch.basic_get("gone")
    ch.basic_reject(m.delivery_tag, requeue=False)
    ch.queue_delete("gone")
    assert ok(broker, "redrive", "dlq").startswith("moved 0 messages from dlq; 1 stayed")
    assert json.loads(ok(broker, "redrive", "dlq", "--json")) == {"moved": 0, "skipped": 1}
    assert "moved 1 messages" in ok(broker, "redrive", "dlq", "--to", "task")
    assert json.loads(ok(broker, "queues", "describe", "task", "--json"))["messages_ready"] == 4
    conn.close()


# ---- top ----

def test_top_once_shows_the_piling_queue(broker):
    conn = pika.BlockingConnection(params(broker_amqp(broker)))
    ch = conn.channel()
    ch.queue_declare("backlog")
    ch.queue_declare("quiet")
    for i in range(12):
        ch.basic_publish("", "backlog", b"x")
    # A consumer that takes its prefetch and never acks.
    ch.queue_declare("stuck")
    for i in range(4):
        ch.basic_publish("", "stuck", b"s")
    ch.basic_qos(prefetch_count=2)
    ch.basic_consume("stuck", lambda *a: None, auto_ack=False)
    deadline = time.time() + 10
    while time.time() < deadline:
        conn.process_data_events(0.1)
        q = json.loads(ok(broker, "queues", "describe", "stuck", "--json"))
        if q["messages_unacked"] == 2:
            break
    ok(broker, "produce", "tp", "--value", "a")
    out = ok(broker, "top", "--once")
    assert "\033[" not in out
    lines = out.splitlines()
    assert lines[0].startswith("herald ") and "disk free" in lines[0]
    sect = out.split("QUEUES by depth (ready + unacked)\n")[1].split("\n\n")[0]
    rows = table(sect)
    assert rows[0]["QUEUE"] == "backlog" and rows[0]["READY"] == "12"
    assert "no consumers" in sect.splitlines()[1]
    stuck = [r for r in rows if r["QUEUE"] == "stuck"][0]
    assert stuck["READY"] == "2" and stuck["UNACKED"] == "2" and stuck["CONSUMERS"] == "1"
    assert stuck["WHY"] == "consumers hold 2 unacked and ack none: stuck or slow?"
    assert [r["QUEUE"] for r in rows] == ["backlog", "stuck", "quiet"]
    assert "TOPICS by produce rate" in out and "tp" in out.split("TOPICS by produce rate")[1]
    conn.close()


def test_top_once_shows_group_lag(broker):
    ok(broker, "produce", "lagging", stdin="".join(f"{i}\n" for i in range(5)))
    ok(broker, "consume", "lagging", "--group", "slow", "--from-beginning", "--count", "2")
    out = ok(broker, "top", "--once")
    sect = out.split("CONSUMER GROUPS by lag\n")[1].split("\n\n")[0]
    row = sect.splitlines()[1]
    assert row.split()[:2] == ["slow", "3"] and "no members" in row


def test_json_output_parses(broker):
    ok(broker, "produce", "js", "--value", "v")
    for args in (("topics", "list"), ("topics", "describe", "js"), ("groups", "list")):
        json.loads(ok(broker, *args, "--json"))
    for args in (("queues", "list"), ("exchanges", "list"), ("bindings", "list"), ("connections", "list")):
        json.loads(ok(broker, *args, "--json"))
    frame = json.loads(ok(broker, "top", "--once", "--json"))
    assert set(frame) == {"overview", "queues", "groups", "topics"}
    assert [t["name"] for t in frame["topics"]] == ["js"]


def test_group_with_members_is_refused_before_printing(broker):
    ok(broker, "topics", "create", "shared", "--partitions", "2")
    ok(broker, "produce", "shared", stdin="a\nb\nc\n")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "team", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe(["shared"])
    try:
        deadline = time.time() + 30
        desc = {}
        while time.time() < deadline:
            c.poll(0.2)
            desc = json.loads(ok(broker, "groups", "describe", "team", "--json")) if cli(
                broker, "groups", "describe", "team").returncode == 0 else {}
            if desc.get("state") == "Stable" and desc.get("members"):
                break
        assert desc.get("state") == "Stable"
        human = ok(broker, "groups", "describe", "team")
        members = table(human.split("\n\n")[1])
        assert len(members) == 1 and members[0]["CLIENT"] == "rdkafka"
        assert "shared[0,1]" in members[0]["ASSIGNED"]
        r = cli(broker, "consume", "shared", "--group", "team", "--from-beginning")
        assert r.returncode == 1 and r.stdout == "" and "active members" in r.stderr
        r = cli(broker, "groups", "delete", "team")
        assert r.returncode == 1 and r.stderr.startswith("herald: ")
    finally:
        c.close()


def test_top_live_redraws_and_compares_frames(broker):
    conn = pika.BlockingConnection(params(broker_amqp(broker)))
    ch = conn.channel()
    ch.queue_declare("growing")
    ch.basic_publish("", "growing", b"1")
    proc = subprocess.Popen([HERALD_BIN, "top", "--interval", "1", "--server", broker.http_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)  # the first frame is out
        for _ in range(5):
            ch.basic_publish("", "growing", b"x")
        time.sleep(2)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        conn.close()
    frames = out.decode().split("\033[H\033[2J")[1:]
    assert len(frames) >= 3, out
    # A frame after the publishes: the queue grew since the frame before it.
    last = frames[-1].split("QUEUES by depth (ready + unacked)\n")[1].split("\n\n")[0]
    row = table(last)[0]
    assert row["QUEUE"] == "growing" and row["READY"] == "6"
    grew = [f for f in frames[1:] if "↑" in f.split("QUEUES by depth")[1].split("CONSUMER GROUPS")[0]]
    assert grew, frames
