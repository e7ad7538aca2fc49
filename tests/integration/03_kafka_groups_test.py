"""Consumer groups with real clients: join/sync/heartbeat/leave rebalances,
committed offsets (also across a restart), and the group admin APIs."""
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

FAST = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def create_topic(broker, name, partitions):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
        f.result(20)


def produce(broker, topic, values, partitions=None):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i, v in enumerate(values):
        if partitions:
            p.produce(topic, value=v, partition=i % partitions)
        else:
            p.produce(topic, value=v)
    assert p.flush(30) == 0


def consumer(broker, group, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest"}
    conf.update(FAST)
    conf.update(extra)
    return Consumer(conf)


def consume_n(c, n, timeout=30, idle=None):
    """Polls until n messages arrived (or the deadline / idle time passes)."""
    got = []
    deadline = time.time() + timeout
    last = time.time()
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            if idle is not None and time.time() - last > idle:
                break
            continue
        if m.error():
            continue
        got.append(m)
        last = time.time()
    return got


def test_consume_commit_and_resume(broker):
    create_topic(broker, "g1", 1)
    produce(broker, "g1", [b"m%d" % i for i in range(300)])
    c = consumer(broker, "grp1")
    c.subscribe(["g1"])
    got = consume_n(c, 300)
    assert len(got) == 300
    c.commit(asynchronous=False)
    assert c.committed([TopicPartition("g1", 0)], timeout=10)[0].offset == 300
    c.close()

    produce(broker, "g1", [b"new%d" % i for i in range(5)])
    c = consumer(broker, "grp1")
    c.subscribe(["g1"])
    got = consume_n(c, 5)
    assert [m.value() for m in got] == [b"new%d" % i for i in range(5)]
    assert got[0].offset() == 300
    c.close()


def test_commit_survives_restart(broker):
    create_topic(broker, "g2", 1)
    produce(broker, "g2", [b"a%d" % i for i in range(50)])
    c = consumer(broker, "grp2")
    c.subscribe(["g2"])
    got = consume_n(c, 50)
    assert len(got) == 50
    c.commit(message=got[29], asynchronous=False)  # commits offset 30
    c.close()

    broker.restart()
    c = consumer(broker, "grp2")
    assert c.committed([TopicPartition("g2", 0)], timeout=10)[0].offset == 30
    c.subscribe(["g2"])
    got = consume_n(c, 20)
    assert [m.offset() for m in got] == list(range(30, 50))
    c.close()


def _poll_all(consumers, seen, until, deadline):
    while time.time() < deadline and not until():
        for c in consumers:
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            seen.append((m.partition(), m.offset(), m.value()))
            c.commit(message=m, asynchronous=False)


def test_three_consumers_rebalance_on_leave(broker_factory):
    broker = broker_factory("--group-initial-rebalance-delay-ms", "0")
    create_topic(broker, "g3", 6)
    cs = [consumer(broker, "grp3") for _ in range(3)]
    for c in cs:
        c.subscribe(["g3"])
    deadline = time.time() + 40
    while time.time() < deadline:
        for c in cs:
            c.poll(0.1)
        sizes = [len(c.assignment()) for c in cs]
        if sizes == [2, 2, 2]:
            break
    assert [len(c.assignment()) for c in cs] == [2, 2, 2]
    owned = sorted(tp.partition for c in cs for tp in c.assignment())
    assert owned == list(range(6))

    produce(broker, "g3", [b"first%d" % i for i in range(60)], partitions=6)
    seen = []
    _poll_all(cs, seen, lambda: len(seen) >= 60, time.time() + 30)
    assert sorted(v for _, _, v in seen) == sorted(b"first%d" % i for i in range(60))

    cs[2].close()
    rest = cs[:2]
    deadline = time.time() + 40
    while time.time() < deadline:
        for c in rest:
            c.poll(0.1)
        if sorted(len(c.assignment()) for c in rest) == [3, 3]:
            break
    assert sorted(len(c.assignment()) for c in rest) == [3, 3]

    produce(broker, "g3", [b"second%d" % i for i in range(60)], partitions=6)
    seen2 = []
    _poll_all(rest, seen2, lambda: len(seen2) >= 60, time.time() + 30)
    values = [v for _, _, v in seen2]
    assert sorted(values) == sorted(b"second%d" % i for i in range(60))
    assert len(set(values)) == 60  # no duplicates
    for c in rest:
        c.close()


def test_cooperative_sticky_two_consumers(broker_factory):
    broker = broker_factory("--group-initial-rebalance-delay-ms", "0")
    create_topic(broker, "g4", 4)
    cs = [consumer(broker, "grp4", **{"partition.assignment.strategy": "cooperative-sticky"}) for _ in range(2)]
    for c in cs:
        c.subscribe(["g4"])
    deadline = time.time() + 40
    while time.time() < deadline:
        for c in cs:
            c.poll(0.1)
        if sorted(len(c.assignment()) for c in cs) == [2, 2]:
            break
    assert sorted(len(c.assignment()) for c in cs) == [2, 2]
    produce(broker, "g4", [b"c%d" % i for i in range(80)], partitions=4)
    seen = []
    _poll_all(cs, seen, lambda: len(seen) >= 80, time.time() + 30)
    assert sorted(v for _, _, v in seen) == sorted(b"c%d" % i for i in range(80))
    for c in cs:
        c.close()


def test_kafka_python_consumer_and_admin(broker_factory):
    from kafka import KafkaAdminClient, KafkaConsumer

    broker = broker_factory("--group-initial-rebalance-delay-ms", "0")
    create_topic(broker, "g5", 2)
    produce(broker, "g5", [b"k%d" % i for i in range(40)], partitions=2)
    kc = KafkaConsumer("g5", bootstrap_servers=broker.bootstrap, group_id="grp5", auto_offset_reset="earliest",
                       enable_auto_commit=False, consumer_timeout_ms=3000, session_timeout_ms=6000,
                       heartbeat_interval_ms=500, api_version=(2, 0, 0))
    got = []
    deadline = time.time() + 30
    while len(got) < 40 and time.time() < deadline:
        for recs in kc.poll(timeout_ms=500).values():
            got.extend(recs)
    assert len(got) == 40
    kc.commit()

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, api_version=(2, 0, 0))
    groups = admin.list_consumer_groups()
    assert ("grp5", "consumer") in groups
    desc = admin.describe_consumer_groups(["grp5"])[0]
    assert desc.group == "grp5"
    assert desc.state == "Stable"
    assert len(desc.members) == 1
    offs = admin.list_consumer_group_offsets("grp5")
    assert {tp.partition: om.offset for tp, om in offs.items()} == {0: 20, 1: 20}
    kc.close()

    # After the only member left, the group is Empty and can be deleted.
    deadline = time.time() + 10
    while time.time() < deadline and admin.describe_consumer_groups(["grp5"])[0].state != "Empty":
        time.sleep(0.2)
    assert admin.describe_consumer_groups(["grp5"])[0].state == "Empty"
    res = dict(admin.delete_consumer_groups(["grp5", "nope"]))
    assert res["grp5"].errno == 0
    assert res["nope"].errno == 69  # GROUP_ID_NOT_FOUND
    assert admin.list_consumer_group_offsets("grp5") == {} or all(
        om.offset == -1 for om in admin.list_consumer_group_offsets("grp5").values())
    admin.close()


def test_confluent_admin_list_groups(broker_factory):
    broker = broker_factory("--group-initial-rebalance-delay-ms", "0")
    create_topic(broker, "g6", 1)
    c = consumer(broker, "grp6")
    c.subscribe(["g6"])
    deadline = time.time() + 20
    while time.time() < deadline and not c.assignment():
        c.poll(0.2)
    assert c.assignment()
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    if not hasattr(a, "list_groups"):
        pytest.skip("confluent-kafka has no list_groups")
    groups = {g.id: g for g in a.list_groups(timeout=10)}
    assert "grp6" in groups
    assert groups["grp6"].state == "Stable"
    assert len(groups["grp6"].members) == 1
    # confluent-kafka 1.7.0 has no delete_consumer_groups (kafka-python covers DeleteGroups).
    c.close()
