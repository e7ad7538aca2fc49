/* Unit tests for store/batch: the RecordBatch v2 header against a byte
 * vector derived by hand from the Kafka protocol guide, CRC, building and
 * iterating records, and rejection of truncated and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/err.h"
#include "store/batch.h"
#include "store_test.h"

/*
 * One record, key null, value "hi", base timestamp 1000 ms, built byte by byte
 * from the spec ("Record Batch" and "Record" in the protocol guide):
 *
 *   record body: attributes 00, timestampDelta varlong 0 -> 00, offsetDelta
 *   varint 0 -> 00, keyLength -1 -> zig-zag 1 -> 01, valueLength 2 -> zig-zag
 *   4 -> 04, "hi" = 68 69, headers count 0 -> 00: 8 bytes, so the record's
 *   length varint is 8 -> zig-zag 16 -> 10. Record: 9 bytes.
 *   batch: 61 + 9 = 70 bytes, batchLength = 70 - 12 = 58 = 0x3a.
 *   CRC-32C over bytes [21, 70) computed with a bit-at-a-time reference
 *   (reflected polynomial 0x82F63B78, init and final xor 0xffffffff — the
 *   same reference gives 0xE3069283 for "123456789"): 0x233dad44.
 */
static const uint8_t vec[70] = {
    0, 0, 0, 0, 0, 0, 0, 0,                   /* baseOffset 0 */
    0x00, 0x00, 0x00, 0x3a,                   /* batchLength 58 */
    0xff, 0xff, 0xff, 0xff,                   /* partitionLeaderEpoch -1 */
    0x02,                                     /* magic */
    0x23, 0x3d, 0xad, 0x44,                   /* crc */
    0x00, 0x00,                               /* attributes */
    0x00, 0x00, 0x00, 0x00,                   /* lastOffsetDelta 0 */
    0, 0, 0, 0, 0, 0, 0x03, 0xe8,             /* baseTimestamp 1000 */
    0, 0, 0, 0, 0, 0, 0x03, 0xe8,             /* maxTimestamp 1000 */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* producerId -1 */
    0xff, 0xff,                               /* producerEpoch -1 */
    0xff, 0xff, 0xff, 0xff,                   /* baseSequence -1 */
    0x00, 0x00, 0x00, 0x01,                   /* records count 1 */
    0x10, 0x00, 0x00, 0x00, 0x01, 0x04, 0x68, 0x69, 0x00, /* the record */
};

static void test_parse_vector(void **state)
{
    (void)state;
    batch_header_t h;
    assert_int_equal(batch_header_parse(vec, sizeof vec, &h), 0);
    assert_int_equal(h.base_offset, 0);
    assert_int_equal(h.batch_length, 58);
    assert_int_equal(h.leader_epoch, -1);
    assert_int_equal(h.magic, 2);
    assert_int_equal(h.crc, 0x233dad44u);
    assert_int_equal(h.attributes, 0);
    assert_int_equal(h.last_offset_delta, 0);
    assert_int_equal(h.base_timestamp, 1000);
    assert_int_equal(h.max_timestamp, 1000);
    assert_int_equal(h.producer_id, -1);
    assert_int_equal(h.producer_epoch, -1);
    assert_int_equal(h.base_sequence, -1);
    assert_int_equal(h.record_count, 1);
    assert_int_equal(batch_verify_crc(vec, sizeof vec), 0);
}

static void test_build_matches_vector(void **state)
{
    (void)state;
    wbuf_t w;
    wbuf_init(&w);
    batch_record_t r = {.key = NULL, .key_len = -1, .value = "hi", .value_len = 2};
    batch_build(&w, 1000, &r, 1);
    assert_int_equal(w.len, sizeof vec);
    assert_memory_equal(w.p, vec, sizeof vec);
    wbuf_destroy(&w);
}

static void test_base_offset_not_in_crc(void **state)
{
    (void)state;
    uint8_t b[sizeof vec];
    memcpy(b, vec, sizeof b);
    batch_set_base_offset(b, 0x0102030405060708LL);
    batch_header_t h;
    assert_int_equal(batch_header_parse(b, sizeof b, &h), 0);
    assert_int_equal(h.base_offset, 0x0102030405060708LL);
    assert_int_equal(batch_verify_crc(b, sizeof b), 0);
    /* Any byte from attributes on is covered. */
    for (size_t i = BATCH_ATTR_OFFSET; i < sizeof b; i++) {
        b[i] ^= 1;
        assert_int_equal(batch_verify_crc(b, sizeof b), HE_CORRUPT);
        b[i] ^= 1;
    }
}

static void test_truncated(void **state)
{
    (void)state;
    batch_header_t h;
    for (size_t n = 0; n < sizeof vec; n++) assert_int_equal(batch_header_parse(vec, n, &h), HE_TRUNCATED);
    assert_int_equal(batch_header_parse_prefix(vec, BATCH_HEADER_SIZE, &h), 0);
    assert_int_equal(batch_header_parse_prefix(vec, BATCH_HEADER_SIZE - 1, &h), HE_TRUNCATED);
}

static void test_malformed_header(void **state)
{
    (void)state;
    static const struct { size_t off; uint8_t val; } bad[] = {
        {16, 1},    /* magic 1 */
        {16, 3},    /* magic 3 */
        {11, 48},   /* batchLength 48 < 49 */
        {8, 0x80},  /* batchLength negative */
        {23, 0x80}, /* lastOffsetDelta negative */
        {57, 0x80}, /* record count negative */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t b[sizeof vec];
        memcpy(b, vec, sizeof b);
        b[bad[i].off] = bad[i].val;
        batch_header_t h;
        assert_int_equal(batch_header_parse(b, sizeof b, &h), HE_MALFORMED);
    }
}

/* Three records: a key and value, nulls with two headers, an empty key. */
static const batch_header_kv_t hdrs[2] = {{"a", 1, "xyz", 3}, {"nul", 3, NULL, -1}};
static const batch_record_t recs[3] = {
    {.key = "k0", .key_len = 2, .value = "v0", .value_len = 2, .timestamp_delta = 0},
    {.key = NULL, .key_len = -1, .value = NULL, .value_len = -1, .timestamp_delta = 5, .headers = hdrs,
     .header_count = 2},
    {.key = "", .key_len = 0, .value = "value2", .value_len = 6, .timestamp_delta = 3},
};

static void test_iterate_with_headers(void **state)
{
    (void)state;
    wbuf_t w;
    wbuf_init(&w);
    batch_build(&w, 500, recs, 3);
    batch_set_base_offset(w.p, 100);
    batch_header_t h;
    assert_int_equal(batch_header_parse(w.p, w.len, &h), 0);
    assert_int_equal(h.last_offset_delta, 2);
    assert_int_equal(h.max_timestamp, 505);
    assert_int_equal(batch_verify_crc(w.p, w.len), 0);

    batch_iter_t it;
    batch_rec_t r;
    assert_int_equal(batch_iter_init(&it, w.p, w.len), 0);
    assert_int_equal(batch_iter_next(&it, &r), 1);
    assert_int_equal(r.offset, 100);
    assert_int_equal(r.key_len, 2);
    assert_memory_equal(r.key, "k0", 2);
    assert_memory_equal(r.value, "v0", 2);
    assert_int_equal(r.header_count, 0);
    assert_int_equal(batch_iter_next(&it, &r), 1);
    assert_int_equal(r.offset, 101);
    assert_int_equal(r.timestamp, 505);
    assert_null(r.key);
    assert_int_equal(r.key_len, -1);
    assert_int_equal(r.value_len, -1);
    assert_int_equal(r.header_count, 2);
    batch_header_kv_t kv;
    assert_int_equal(batch_rec_next_header(&r, &kv), 1);
    assert_int_equal(kv.key_len, 1);
    assert_memory_equal(kv.key, "a", 1);
    assert_int_equal(kv.value_len, 3);
    assert_memory_equal(kv.value, "xyz", 3);
    assert_int_equal(batch_rec_next_header(&r, &kv), 1);
    assert_int_equal(kv.value_len, -1);
    assert_int_equal(batch_rec_next_header(&r, &kv), 0);
    assert_int_equal(batch_iter_next(&it, &r), 1);
    assert_int_equal(r.key_len, 0);
    assert_int_equal(r.value_len, 6);
    assert_int_equal(batch_iter_next(&it, &r), 0);
    assert_int_equal(batch_iter_next(&it, &r), 0);
    wbuf_destroy(&w);
}

static void test_iterate_malformed(void **state)
{
    (void)state;
    batch_iter_t it;
    batch_rec_t r;
    uint8_t b[sizeof vec];
    /* record length larger than what remains */
    memcpy(b, vec, sizeof b);
    b[61] = 0x7e;
    assert_int_equal(batch_iter_init(&it, b, sizeof b), 0);
    assert_true(batch_iter_next(&it, &r) < 0);
    /* value length beyond the record */
    memcpy(b, vec, sizeof b);
    b[66] = 0x0a;
    assert_int_equal(batch_iter_init(&it, b, sizeof b), 0);
    assert_true(batch_iter_next(&it, &r) < 0);
    /* record count 2 but one record */
    memcpy(b, vec, sizeof b);
    b[60] = 2;
    assert_int_equal(batch_iter_init(&it, b, sizeof b), 0);
    assert_int_equal(batch_iter_next(&it, &r), 1);
    assert_true(batch_iter_next(&it, &r) < 0);
    /* record count 0 but bytes remain */
    memcpy(b, vec, sizeof b);
    b[60] = 0;
    assert_int_equal(batch_iter_init(&it, b, sizeof b), 0);
    assert_true(batch_iter_next(&it, &r) < 0);
    /* key length -2 */
    memcpy(b, vec, sizeof b);
    b[65] = 0x03;
    assert_int_equal(batch_iter_init(&it, b, sizeof b), 0);
    assert_true(batch_iter_next(&it, &r) < 0);
    /* compressed batches are not iterated */
    memcpy(b, vec, sizeof b);
    b[22] = 1;
    assert_int_equal(batch_iter_init(&it, b, sizeof b), HE_UNSUPPORTED);
    /* every truncation of the batch fails cleanly */
    for (size_t n = 0; n < sizeof vec; n++) assert_true(batch_iter_init(&it, vec, n) < 0);
}

/* batch_build_spans reports each record's bytes; batch_record_parse reads
 * one record from exactly those bytes, and refuses anything else. */
static void test_record_spans(void **state)
{
    (void)state;
    wbuf_t w, plain;
    wbuf_init(&w);
    wbuf_init(&plain);
    wbuf_put(&w, "prefix", 6); /* spans count from the batch, not the buffer */
    uint32_t pos[4];
    batch_build_spans(&w, 500, recs, 3, pos);
    batch_build(&plain, 500, recs, 3);
    assert_int_equal(w.len - 6, plain.len);
    assert_memory_equal(w.p + 6, plain.p, plain.len); /* the same bytes as batch_build */
    assert_int_equal(pos[0], BATCH_HEADER_SIZE);
    assert_int_equal(pos[3], plain.len);
    batch_rec_t r;
    const uint8_t *b = plain.p;
    assert_int_equal(batch_record_parse(b + pos[0], pos[1] - pos[0], &r), 0);
    assert_int_equal(r.offset_delta, 0);
    assert_int_equal(r.offset, -1);
    assert_memory_equal(r.key, "k0", 2);
    assert_memory_equal(r.value, "v0", 2);
    assert_int_equal(batch_record_parse(b + pos[1], pos[2] - pos[1], &r), 0);
    assert_int_equal(r.offset_delta, 1);
    assert_int_equal(r.timestamp_delta, 5);
    assert_int_equal(r.key_len, -1);
    batch_header_kv_t kv;
    assert_int_equal(batch_rec_next_header(&r, &kv), 1);
    assert_memory_equal(kv.value, "xyz", 3);
    assert_int_equal(batch_record_parse(b + pos[2], pos[3] - pos[2], &r), 0);
    assert_int_equal(r.offset_delta, 2);
    assert_memory_equal(r.value, "value2", 6);
    /* a span too short or too long, two records, an empty one */
    assert_int_equal(batch_record_parse(b + pos[2], pos[3] - pos[2] - 1, &r), HE_MALFORMED);
    assert_int_equal(batch_record_parse(b + pos[1], pos[2] - pos[1] + 1, &r), HE_MALFORMED);
    assert_int_equal(batch_record_parse(b + pos[0], pos[2] - pos[0], &r), HE_MALFORMED);
    assert_int_equal(batch_record_parse(b, 0, &r), HE_MALFORMED);
    /* every truncation fails cleanly */
    for (uint32_t n = 0; n < pos[2] - pos[1]; n++) assert_true(batch_record_parse(b + pos[1], n, &r) < 0);
    wbuf_destroy(&w);
    wbuf_destroy(&plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_vector),      cmocka_unit_test(test_build_matches_vector),
        cmocka_unit_test(test_base_offset_not_in_crc), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_malformed_header),  cmocka_unit_test(test_iterate_with_headers),
        cmocka_unit_test(test_iterate_malformed), cmocka_unit_test(test_record_spans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
