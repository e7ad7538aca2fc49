"""Idempotent produce at the wire level: duplicates are acknowledged with
their original offset and not appended again, gaps get
OUT_OF_ORDER_SEQUENCE_NUMBER, stale epochs INVALID_PRODUCER_EPOCH, and the
state survives a broker restart."""
import kraw


def send(s, topic, batch, corr):
    s.sendall(kraw.request(0, 3, corr, kraw.produce_v3(topic, 0, batch)))
    return kraw.parse_produce_v3(kraw.read_frame(s), topic)


def test_duplicate_gap_and_epoch(broker):
    s = kraw.connect(broker)
    s.sendall(kraw.request(3, 1, 1, b"\x00\x00\x00\x01\x00\x03idm"))  # Metadata: auto-create "idm"
    kraw.read_frame(s)
    pid, epoch = kraw.init_producer_id(s, corr=2)
    b0 = kraw.record_batch([b"a", b"b"], pid, epoch, 0)
    b1 = kraw.record_batch([b"c"], pid, epoch, 2)
    assert send(s, "idm", b0, 3) == (0, 0)
    assert send(s, "idm", b1, 4) == (0, 2)
    assert send(s, "idm", b0, 5) == (0, 0)  # duplicate: original offset
    gap = kraw.record_batch([b"e"], pid, epoch, 7)
    assert send(s, "idm", gap, 6)[0] == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    bumped = kraw.record_batch([b"f"], pid, epoch + 1, 0)
    assert send(s, "idm", bumped, 7) == (0, 3)
    stale = kraw.record_batch([b"g"], pid, epoch, 3)
    assert send(s, "idm", stale, 8)[0] == 47  # INVALID_PRODUCER_EPOCH
    fresh = kraw.record_batch([b"h"], pid + 1000, 0, 5)
    assert send(s, "idm", fresh, 9)[0] == 59  # UNKNOWN_PRODUCER_ID: no state, seq != 0
    s.close()

    broker.kill()  # a crash: state must come back from the log
    broker.start()
    s = kraw.connect(broker)
    assert send(s, "idm", bumped, 10) == (0, 3)  # still a duplicate after restart
    nxt = kraw.record_batch([b"i"], pid, epoch + 1, 1)
    assert send(s, "idm", nxt, 11) == (0, 4)
    s.close()


def test_producer_ids_are_unique_across_restarts(broker):
    s = kraw.connect(broker)
    first = {kraw.init_producer_id(s, corr=i)[0] for i in range(5)}
    s.close()
    broker.restart()
    s = kraw.connect(broker)
    second = {kraw.init_producer_id(s, corr=i)[0] for i in range(5)}
    s.close()
    assert len(first) == 5 and len(second) == 5 and not (first & second)
