"""Produce and consume with real clients: kcat, confluent-kafka, kafka-python."""
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def kcat(broker, *args, input=None, timeout=30):
    return subprocess.run(["kcat", "-b", broker.bootstrap, *args], input=input, capture_output=True,
                          text=True, timeout=timeout)


def test_kcat_metadata_lists_broker_and_topic(broker):
    r = kcat(broker, "-P", "-t", "meta", input="a\n")
    assert r.returncode == 0, r.stderr
    r = kcat(broker, "-L", "-J")
    assert r.returncode == 0, r.stderr
    assert '"meta"' in r.stdout
    assert f'"port":{broker.port}' in r.stdout.replace(" ", "") or str(broker.port) in r.stdout


def test_kcat_produce_consume_keys(broker):
    lines = "".join(f"k{i % 3}:value-{i}\n" for i in range(100))
    r = kcat(broker, "-P", "-t", "kc", "-K", ":", input=lines)
    assert r.returncode == 0, r.stderr
    r = kcat(broker, "-C", "-t", "kc", "-e", "-K", ":", "-f", "%k=%s@%o\n")
    assert r.returncode == 0, r.stderr
    got = r.stdout.strip().splitlines()
    assert len(got) == 100
    assert got[0] == "k0=value-0@0"
    assert got[99] == "k0=value-99@99"


def test_confluent_producer_acks_all_idempotent_then_consume(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5})
    delivered = []

    def cb(err, msg):
        assert err is None, err
        delivered.append((msg.partition(), msg.offset()))

    for i in range(1000):
        p.produce("ck", key=b"k", value=f"v{i}".encode(), headers=[("h", b"x%d" % i)], on_delivery=cb,
                  timestamp=1700000000000 + i)
    assert p.flush(30) == 0
    assert len(delivered) == 1000
    assert sorted(o for _, o in delivered) == list(range(1000))

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition("ck", 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < 1000 and time.time() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        got.append(m)
    c.close()
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(1000)]
    assert got[5].headers() == [("h", b"x5")]
    assert got[7].timestamp()[1] == 1700000000007


def test_admin_create_and_delete_topics(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    fs = a.create_topics([NewTopic("adm1", num_partitions=3, replication_factor=1)])
    for f in fs.values():
        f.result(10)
    md = a.list_topics(timeout=10)
    assert len(md.topics["adm1"].partitions) == 3
    fs = a.create_topics([NewTopic("adm1", num_partitions=1, replication_factor=1)])
    try:
        fs["adm1"].result(10)
        assert False, "duplicate create must fail"
    except Exception as e:  # noqa: BLE001 - KafkaException
        assert "TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e)
    for f in a.delete_topics(["adm1"]).values():
        f.result(10)
    md = a.list_topics(timeout=10)
    assert "adm1" not in md.topics


def test_kafka_python_producer_consumer(broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    futs = [p.send("kp", key=b"k", value=b"m%d" % i) for i in range(200)]
    p.flush(30)
    offs = [f.get(timeout=10).offset for f in futs]
    assert offs == list(range(200))
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                      consumer_timeout_ms=5000)
    c.assign([KTP("kp", 0)])
    c.seek_to_beginning()
    got = [m.value for m in c]
    c.close()
    assert got == [b"m%d" % i for i in range(200)]


def test_keyed_messages_keep_per_partition_order(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic("keyed", num_partitions=4, replication_factor=1)]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2})
    for i in range(2000):
        p.produce("keyed", key=b"user-%d" % (i % 10), value=b"%d" % i)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "keyed", "enable.partition.eof": True})
    c.assign([TopicPartition("keyed", n, 0) for n in range(4)])
    seen, eofs = {}, set()
    deadline = time.time() + 30
    while len(eofs) < 4 and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            eofs.add(m.partition())
            continue
        seen.setdefault(m.key(), []).append((m.partition(), int(m.value())))
    c.close()
    assert sum(len(v) for v in seen.values()) == 2000
    used = set()
    for key, msgs in seen.items():
        parts = {part for part, _ in msgs}
        assert len(parts) == 1, f"{key} spread over {parts}"
        used |= parts
        values = [v for _, v in msgs]
        assert values == sorted(values), f"{key} out of order"
    assert len(used) > 1  # the keys really were spread over partitions
