"""Malformed, truncated, oversized and unknown requests over a raw socket:
the broker answers with the protocol's error or closes that one connection,
and keeps serving everyone else."""
import socket
import struct

import kraw
from confluent_kafka import Producer


def still_serving(broker):
    s = kraw.connect(broker)
    body = kraw.api_versions_v0(s, corr=77)
    s.close()
    assert body is not None and struct.unpack(">i", body[:4])[0] == 77
    assert struct.unpack(">h", body[4:6])[0] == 0  # error_code NONE


def test_api_versions_v0_lists_ranges(broker):
    s = kraw.connect(broker)
    body = kraw.api_versions_v0(s)
    corr, err, n = struct.unpack(">ihi", body[:10])
    assert (corr, err) == (1, 0)
    ranges = {}
    for i in range(n):
        k, lo, hi = struct.unpack(">hhh", body[10 + 6 * i:16 + 6 * i])
        ranges[k] = (lo, hi)
    # librdkafka feature gates need min 0 for these (see docs/compatibility.md)
    for k in (0, 10, 11, 12, 13, 14, 22):
        assert ranges[k][0] == 0, (k, ranges[k])
    assert ranges[1] == (4, 12)


def test_api_versions_unknown_version_gets_v0_error_body(broker):
    s = kraw.connect(broker)
    s.sendall(kraw.request(18, 99, 5, body=b"\x00"))  # header v2: empty tagged fields
    body = kraw.read_frame(s)
    corr, err = struct.unpack(">ih", body[:6])
    assert corr == 5 and err == 35  # UNSUPPORTED_VERSION, KIP-511
    (n,) = struct.unpack(">i", body[6:10])
    assert n > 10
    still_serving(broker)


def test_unknown_api_key_closes_only_that_connection(broker):
    other = kraw.connect(broker)
    s = kraw.connect(broker)
    s.sendall(kraw.request(9999, 0, 1))
    assert kraw.read_frame(s) is None
    assert kraw.api_versions_v0(other, corr=9) is not None
    still_serving(broker)


def test_unsupported_version_closes_connection(broker):
    s = kraw.connect(broker)
    s.sendall(kraw.request(3, 99, 1))  # Metadata v99
    assert kraw.read_frame(s) is None
    still_serving(broker)


def test_oversized_frame_rejected_before_allocation(broker_factory):
    b = broker_factory("--max-request-bytes", "65536")
    s = kraw.connect(b)
    s.sendall(struct.pack(">i", 2_000_000_000))  # claims 2 GB
    assert kraw.read_frame(s) is None
    s = kraw.connect(b)
    s.sendall(struct.pack(">i", 70000) + b"\0" * 1000)
    assert kraw.read_frame(s) is None
    assert b.wait_log("request size")
    still_serving(b)


def test_negative_and_tiny_sizes(broker):
    for size in (-1, 0, 3):
        s = kraw.connect(broker)
        s.sendall(struct.pack(">i", size) + b"\0" * 8)
        assert kraw.read_frame(s) is None
    still_serving(broker)


def test_truncated_metadata_body_closes(broker):
    s = kraw.connect(broker)
    # Metadata v1 with a topics array claiming 1000 entries and no bytes.
    s.sendall(kraw.request(3, 1, 1, struct.pack(">i", 1000)))
    assert kraw.read_frame(s) is None
    still_serving(broker)


def test_hostile_string_length_in_header(broker):
    s = kraw.connect(broker)
    payload = struct.pack(">hhih", 18, 0, 1, 30000) + b"x" * 10  # client_id says 30000 bytes
    s.sendall(struct.pack(">i", len(payload)) + payload)
    assert kraw.read_frame(s) is None
    still_serving(broker)


def test_client_vanishes_mid_request(broker):
    s = kraw.connect(broker)
    frame = kraw.request(3, 1, 1, struct.pack(">i", -1))
    s.sendall(frame[:7])
    s.close()
    still_serving(broker)


def test_corrupt_batch_crc_gets_corrupt_message(broker):
    """A produce whose batch fails its CRC is refused with CORRUPT_MESSAGE (2),
    and nothing is appended."""
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("crc", b"ok")
    p.flush(10)
    # Build a v2 batch by hand with a wrong CRC and send Produce v3.
    rec = bytes([0x10, 0x00, 0x00, 0x00, 0x01, 0x02, 0x02, 0x78, 0x00])
    hdr_after_crc = struct.pack(">hiqqqhii", 0, 0, 0, 0, -1, -1, -1, 1)
    batch_len = 4 + 1 + 4 + len(hdr_after_crc) + len(rec)
    batch = struct.pack(">qiibI", 0, batch_len, 0, 2, 0xDEADBEEF) + hdr_after_crc + rec
    topic = b"crc"
    body = struct.pack(">hhi", -1, 1, 5000)          # transactional_id null, acks, timeout
    body += struct.pack(">ih", 1, len(topic)) + topic  # 1 topic
    body += struct.pack(">iii", 1, 0, len(batch)) + batch
    s = kraw.connect(broker)
    s.sendall(kraw.request(0, 3, 42, body))
    resp = kraw.read_frame(s)
    assert resp is not None
    # corr, topics[1], name, partitions[1], index, error_code
    off = 4 + 4 + 2 + len(topic) + 4 + 4
    (err,) = struct.unpack(">h", resp[off:off + 2])
    assert err == 2
    still_serving(broker)


def test_large_frame_split_across_writes_then_vanish(broker):
    """A large frame (read straight into its own buffer) that stops halfway
    and a client that then disconnects: no leak, no crash; and a large frame
    sent in small pieces still works."""
    s = kraw.connect(broker)
    big = kraw.request(0, 3, 1, kraw.produce_v3("bigf", 0, kraw.record_batch([b"x" * 200_000])))
    s.sendall(big[:100_000])
    s.close()
    s = kraw.connect(broker)
    s.sendall(kraw.request(3, 1, 1, b"\x00\x00\x00\x01\x00\x04bigf"))
    kraw.read_frame(s)
    for i in range(0, len(big), 7_000):
        s.sendall(big[i:i + 7_000])
    err, base = kraw.parse_produce_v3(kraw.read_frame(s), "bigf")
    assert (err, base) == (0, 0)
    still_serving(broker)


def test_fetch_asking_for_2gib_is_capped(broker_factory):
    """A fetch with max_bytes and partition_max_bytes of 2^31-1 gets at most
    fetch.max.bytes of records (plus one whole batch), not the segment."""
    b = broker_factory("--fetch-max-bytes", "65536")
    s = kraw.connect(b)
    s.sendall(kraw.request(3, 1, 1, b"\x00\x00\x00\x01\x00\x03cap"))
    kraw.read_frame(s)
    for i in range(20):  # 20 batches of ~20 KB
        s.sendall(kraw.request(0, 3, 10 + i, kraw.produce_v3("cap", 0, kraw.record_batch([b"x" * 20000]))))
        assert kraw.parse_produce_v3(kraw.read_frame(s), "cap")[0] == 0
    t = b"cap"
    # Fetch v4: replica_id, max_wait, min_bytes, max_bytes, isolation, topics[1]{name, partitions[1]{...}}
    body = struct.pack(">iiiib", -1, 100, 1, 2**31 - 1, 0) + struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">iiqi", 1, 0, 0, 2**31 - 1)
    s.sendall(kraw.request(1, 4, 99, body))
    resp = kraw.read_frame(s)
    assert resp is not None
    assert 20000 < len(resp) < 65536 + 21000 + 200, len(resp)
    still_serving(b)


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_client_that_does_not_read_is_paused(broker_factory):
    """A client pipelining fetches without reading the answers is stopped
    being read once ~16 MiB of responses wait, so the broker's memory stays
    bounded; when it reads again, every response arrives in order."""
    import time
    b = broker_factory("--fetch-max-bytes", "1048576")
    s = kraw.connect(b, timeout=10)
    s.sendall(kraw.request(3, 1, 1, b"\x00\x00\x00\x01\x00\x04slow"))
    kraw.read_frame(s)
    batch = kraw.record_batch([b"y" * 1000] * 900)  # ~0.9 MB per batch
    for i in range(3):
        s.sendall(kraw.request(0, 3, 10 + i, kraw.produce_v3("slow", 0, batch)))
        assert kraw.parse_produce_v3(kraw.read_frame(s), "slow")[0] == 0
    t = b"slow"
    body = struct.pack(">iiiib", -1, 0, 1, 2**31 - 1, 0) + struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">iiqi", 1, 0, 0, 2**31 - 1)
    frame = kraw.request(1, 4, 0, body)
    base = _rss_kb(b.proc.pid)
    s.setblocking(False)
    sent = 0
    for i in range(400):  # 400 x ~0.9 MB = ~360 MB if nothing held back
        try:
            s.sendall(kraw.request(1, 4, 1000 + i, body))
            sent += 1
        except (BlockingIOError, socket.timeout):
            break
    time.sleep(1.5)
    grown = _rss_kb(b.proc.pid) - base
    print("rss growth kB:", grown, "unread fetches:", sent)
    assert grown < 150_000, f"broker RSS grew by {grown} kB with {sent} unread fetches"
    s.settimeout(20)
    for i in range(sent):
        resp = kraw.read_frame(s)
        assert resp is not None
        assert struct.unpack(">i", resp[:4])[0] == 1000 + i
    still_serving(b)
