"""Crash recovery, restart, compression codecs, timestamps, retention,
partition growth and topic configs, driven by real clients."""
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic


def consume_all(bootstrap, topic, partition=0, expect=None, timeout=30):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, partition, 0)])
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191 and (expect is None or len(got) >= expect):  # _PARTITION_EOF
                break
            continue
        got.append(m)
    c.close()
    return got


def test_sigkill_loses_no_acknowledged_message(broker):
    """Producers with acks=all under --flush always; SIGKILL mid-stream;
    every acknowledged message is there exactly once and in order."""
    acked = []
    lock = threading.Lock()
    stop = threading.Event()

    def produce(worker):
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 2, "message.timeout.ms": 5000})

        def cb(err, msg):
            if err is None:
                with lock:
                    acked.append((msg.key(), msg.value(), msg.offset()))

        i = 0
        deadline = time.time() + 20
        while not stop.is_set() and time.time() < deadline:
            try:
                p.produce("crash", key=b"w%d" % worker, value=b"w%d-%08d" % (worker, i), on_delivery=cb)
                i += 1
            except BufferError:
                p.poll(0.01)
            if i % 100 == 0:
                p.poll(0)
        p.flush(5)

    p0 = Producer({"bootstrap.servers": broker.bootstrap})
    p0.produce("crash", b"first")
    p0.flush(10)
    threads = [threading.Thread(target=produce, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 20
    while len(acked) < 5000 and time.time() < deadline:
        time.sleep(0.05)
    broker.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 1000, "producers made too little progress before the kill"
    broker.start()
    got = consume_all(broker.bootstrap, "crash")
    values = [m.value() for m in got]
    offsets = [m.offset() for m in got]
    assert offsets == list(range(len(got))), "offsets must be dense"
    assert len(set(values)) == len(values), "no duplicates"
    stored = set(values)
    missing = [v for _, v, _ in acked if v not in stored]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
    for k, v, off in acked:
        assert values[off] == v, "acknowledged offset must hold that message"
    for w in (0, 1):  # per-producer order
        seq = [v for v in values if v.startswith(b"w%d-" % w)]
        assert seq == sorted(seq)


def test_clean_restart_keeps_topics_and_data(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic("keep", num_partitions=2, replication_factor=1,
                                       config={"retention.ms": "3600000"})]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(50):
        p.produce("keep", value=b"%d" % i, partition=i % 2)
    p.flush(10)
    assert broker.restart()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = a.list_topics(timeout=10)
    assert len(md.topics["keep"].partitions) == 2
    res = ConfigResource(ConfigResource.Type.TOPIC, "keep")
    cfg = a.describe_configs([res])[res].result(10)
    assert cfg["retention.ms"].value == "3600000"
    assert len(consume_all(broker.bootstrap, "keep", 0)) == 25
    assert len(consume_all(broker.bootstrap, "keep", 1)) == 25
    assert "recover" not in broker.log().lower() or "clean" in broker.log().lower()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs_round_trip(broker, codec):
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 20})
    for i in range(500):
        p.produce("z-" + codec, key=b"k%d" % i, value=(b"payload-%d-" % i) * 10)
    assert p.flush(20) == 0
    got = consume_all(broker.bootstrap, "z-" + codec, expect=500)
    assert [m.key() for m in got] == [b"k%d" % i for i in range(500)]
    assert got[499].value() == b"payload-499-" * 10


def test_list_offsets_by_timestamp(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    base = 1_700_000_000_000
    for i in range(10):
        p.produce("ts", value=b"%d" % i, timestamp=base + i * 1000)
        p.flush(10)  # one batch per message, so each has its own timestamp
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "ts"})
    res = c.offsets_for_times([TopicPartition("ts", 0, base + 4500)], timeout=10)
    assert res[0].offset == 5
    res = c.offsets_for_times([TopicPartition("ts", 0, base + 99_000)], timeout=10)
    assert res[0].offset == -1  # none that late
    lo, hi = c.get_watermark_offsets(TopicPartition("ts", 0), timeout=10)
    assert (lo, hi) == (0, 10)
    c.close()


def test_retention_by_bytes_deletes_old_segments(broker_factory):
    b = broker_factory("--retention-check-interval-ms", "100")
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic("ret", 1, 1, config={"segment.bytes": "2048",
                                                              "retention.bytes": "4096"})]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    for i in range(200):
        p.produce("ret", value=b"x" * 200)
        if i % 10 == 0:
            p.flush(10)
    p.flush(10)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "ret"})
    deadline = time.time() + 15
    lo = 0
    while time.time() < deadline:
        lo, hi = c.get_watermark_offsets(TopicPartition("ret", 0), timeout=10)
        if lo >= 50:  # segments go one deletion pass at a time
            break
        time.sleep(0.2)
    c.close()
    # Whole segments go; how many messages the kept ones hold depends on how
    # the producer batched (one batch may exceed segment.bytes).
    assert lo >= 50 and hi == 200, (lo, hi)


def test_create_partitions_and_alter_configs(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic("grow", 1, 1)]).values():
        f.result(10)
    for f in a.create_partitions([NewPartitions("grow", 4)]).values():
        f.result(10)
    assert len(a.list_topics(timeout=10).topics["grow"].partitions) == 4
    with pytest.raises(KafkaException):
        for f in a.create_partitions([NewPartitions("grow", 2)]).values():
            f.result(10)
    res = ConfigResource(ConfigResource.Type.TOPIC, "grow", set_config={"retention.ms": "1234567"})
    for f in a.alter_configs([res]).values():
        f.result(10)
    cfg = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "grow")])
    got = list(cfg.values())[0].result(10)
    assert got["retention.ms"].value == "1234567"
    assert got["segment.bytes"].is_default
    bad = ConfigResource(ConfigResource.Type.TOPIC, "grow", set_config={"retention.ms": "soon"})
    with pytest.raises(KafkaException):
        for f in a.alter_configs([bad]).values():
            f.result(10)
    with pytest.raises(KafkaException):
        for f in a.create_topics([NewTopic("bad-rf", 1, 3)]).values():
            f.result(10)


def test_delete_then_recreate_same_name_starts_empty(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic("again", 1, 1)]).values():
        f.result(10)
    for i in range(20):
        p.produce("again", b"old%d" % i)
    p.flush(10)
    for f in a.delete_topics(["again"]).values():
        f.result(10)
    for f in a.create_topics([NewTopic("again", 1, 1)]).values():
        f.result(10)
    p.produce("again", b"new")
    p.flush(10)
    got = consume_all(broker.bootstrap, "again", expect=1)
    assert [m.value() for m in got] == [b"new"]
    broker.kill()
    broker.start()
    got = consume_all(broker.bootstrap, "again", expect=1)
    assert [m.value() for m in got] == [b"new"]
    import os
    leftovers = [d for d in os.listdir(os.path.join(broker.data_dir, "topics")) if "deleting" in d]
    assert leftovers == []


@pytest.mark.parametrize("mode", ["interval:50", "never"])
def test_relaxed_flush_modes_serve_and_keep_data_on_clean_shutdown(broker_factory, mode):
    b = broker_factory("--flush", mode)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1})
    for i in range(300):
        p.produce("relaxed", value=b"%d" % i)
    assert p.flush(20) == 0
    assert len(consume_all(b.bootstrap, "relaxed", expect=300)) == 300
    assert b.restart()  # a clean shutdown syncs everything, whatever the mode
    got = consume_all(b.bootstrap, "relaxed", expect=300)
    assert [m.value() for m in got] == [b"%d" % i for i in range(300)]


def test_many_partitions_under_a_low_soft_fd_limit(broker_factory):
    """Each partition keeps several files open; the broker raises its soft
    open-file limit so 300 partitions work where the soft limit is 256."""
    import resource
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4096:
        pytest.skip("hard open-file limit too low to show anything")
    b = broker_factory(soft_nofile=256)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic("wide", num_partitions=300, replication_factor=1)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(300):
        p.produce("wide", value=b"%d" % i, partition=i)
    assert p.flush(30) == 0
    assert len(consume_all(b.bootstrap, "wide", partition=299, expect=1)) == 1


def test_out_of_file_descriptors_fails_cleanly(broker_factory):
    """With the open-file limit pinned at 200, a 300-partition topic cannot
    be opened: the client gets an error, partitions without a log report
    LEADER_NOT_AVAILABLE, the periodic maintenance copes with the gaps, and
    other topics keep working."""
    b = broker_factory("--retention-check-interval-ms", "100", soft_nofile=-200)
    p = Producer({"bootstrap.servers": b.bootstrap})
    p.produce("small", b"before")
    assert p.flush(10) == 0
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    with pytest.raises(KafkaException):
        for f in a.create_topics([NewTopic("toowide", num_partitions=300, replication_factor=1)]).values():
            f.result(20)
    time.sleep(0.5)  # several maintenance rounds over the half-open topic
    md = a.list_topics(timeout=10)
    errs = [pm.error for pm in md.topics["toowide"].partitions.values() if pm.error is not None]
    assert errs, "partitions without a log must say so"
    # The HTTP API and the metrics sampler walk the half-open topic too.
    import json
    import urllib.error
    import urllib.request
    t = json.load(urllib.request.urlopen(b.http_url + "/api/topics/toowide", timeout=10))
    assert any(p.get("error") == "unavailable" for p in t["partitions"])
    for path in ("/api/topics", "/api/overview", "/metrics"):
        assert urllib.request.urlopen(b.http_url + path, timeout=10).status == 200
    bad = [i for i, p in enumerate(t["partitions"]) if p.get("error")][0]
    body = json.dumps({"records": [{"value": "x", "partition": bad}]}).encode()
    try:
        urllib.request.urlopen(urllib.request.Request(b.http_url + "/api/topics/toowide/records", data=body,
                                                      method="POST"), timeout=10)
        raise AssertionError("a produce to a partition without a log must fail")
    except urllib.error.HTTPError as e:
        assert e.code == 507
    time.sleep(1.2)  # a stats pass over the half-open topic
    assert [m.value() for m in consume_all(b.bootstrap, "small", expect=1)] == [b"before"]
    for f in a.delete_topics(["toowide"]).values():
        f.result(20)
    p.produce("small", b"after")
    assert p.flush(10) == 0
    assert b.wait_log("Too many open files")


def test_incremental_alter_configs_set_delete_and_refusals(broker):
    """IncrementalAlterConfigs v0 by hand (the Python clients here predate
    it): SET and DELETE apply and survive a crash; APPEND, unknown keys,
    bad values and non-topic resources are refused; validate_only changes
    nothing."""
    import struct
    import kraw

    def s16(x):
        x = x.encode()
        return struct.pack(">h", len(x)) + x

    def req(ops, validate=False, rtype=2, name="inc"):
        body = struct.pack(">i", 1) + struct.pack(">b", rtype) + s16(name) + struct.pack(">i", len(ops))
        for key, op, value in ops:
            body += s16(key) + struct.pack(">b", op) + (struct.pack(">h", -1) if value is None else s16(value))
        return body + struct.pack(">b", 1 if validate else 0)

    def send(s, body, corr):
        s.sendall(kraw.request(44, 0, corr, body))
        r = kraw.read_frame(s)
        _, _, n, err = struct.unpack(">iiih", r[:14])
        return err

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic("inc", 1, 1, config={"retention.ms": "1000000"})]).values():
        f.result(10)
    s = kraw.connect(broker)
    assert send(s, req([("segment.bytes", 0, "2097152")]), 1) == 0                 # SET
    assert send(s, req([("retention.ms", 1, None)]), 2) == 0                      # DELETE
    assert send(s, req([("cleanup.policy", 2, "compact")]), 3) == 40              # APPEND: INVALID_CONFIG
    assert send(s, req([("no.such.key", 0, "1")]), 4) == 40
    assert send(s, req([("retention.ms", 0, "soon")]), 5) == 40
    assert send(s, req([("segment.ms", 0, "5000")], validate=True), 6) == 0
    assert send(s, req([("segment.ms", 0, "5000")], rtype=4, name="1"), 7) == 42  # broker: INVALID_REQUEST
    assert send(s, req([("segment.ms", 0, "5000")], name="missing"), 8) == 3
    s.close()
    broker.kill()  # answered means durable
    broker.start()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, "inc")
    cfg = a.describe_configs([res])[res].result(10)
    assert cfg["segment.bytes"].value == "2097152" and not cfg["segment.bytes"].is_default
    assert cfg["retention.ms"].is_default
    assert cfg["segment.ms"].is_default  # validate_only changed nothing
