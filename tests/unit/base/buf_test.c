/* Unit tests for base/buf: varints (vectors from the Kafka protocol guide's
 * zig-zag examples and protobuf's LEB128), truncation and sticky errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/crc32c.h"

static void test_varint_vectors(void **state)
{
    (void)state;
    /* zig-zag: 0->0, -1->1, 1->2, -2->3, 2147483647->4294967294 */
    static const struct { int32_t v; uint8_t enc[5]; size_t n; } vec[] = {
        {0, {0x00}, 1},
        {-1, {0x01}, 1},
        {1, {0x02}, 1},
        {-2, {0x03}, 1},
        {63, {0x7e}, 1},
        {64, {0x80, 0x01}, 2},
        {-65, {0x81, 0x01}, 2},
        {2147483647, {0xfe, 0xff, 0xff, 0xff, 0x0f}, 5},
        {-2147483647 - 1, {0xff, 0xff, 0xff, 0xff, 0x0f}, 5},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        wbuf_t w;
        wbuf_init(&w);
        wbuf_varint(&w, vec[i].v);
        assert_int_equal(w.len, vec[i].n);
        assert_memory_equal(w.p, vec[i].enc, vec[i].n);
        assert_int_equal(buf_varint_size(vec[i].v), vec[i].n);
        rbuf_t r;
        rbuf_init(&r, w.p, w.len);
        assert_int_equal(rbuf_varint(&r), vec[i].v);
        assert_int_equal(r.err, 0);
        assert_int_equal(rbuf_remaining(&r), 0);
        wbuf_destroy(&w);
    }
}

static void test_varlong_roundtrip(void **state)
{
    (void)state;
    static const int64_t vals[] = {0, 1, -1, 300, -300, INT64_MAX, INT64_MIN, 1LL << 40};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        wbuf_t w;
        wbuf_init(&w);
        wbuf_varlong(&w, vals[i]);
        assert_int_equal(w.len, buf_varlong_size(vals[i]));
        rbuf_t r;
        rbuf_init(&r, w.p, w.len);
        assert_true(rbuf_varlong(&r) == vals[i]);
        assert_int_equal(r.err, 0);
        wbuf_destroy(&w);
    }
}

static void test_uvarint_overlong_rejected(void **state)
{
    (void)state;
    static const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    rbuf_t r;
    rbuf_init(&r, six, sizeof six);
    (void)rbuf_uvarint(&r);
    assert_int_equal(r.err, HE_MALFORMED);
    static const uint8_t trunc[] = {0x80, 0x80};
    rbuf_init(&r, trunc, sizeof trunc);
    (void)rbuf_uvarint(&r);
    assert_int_equal(r.err, HE_TRUNCATED);
}

static void test_sticky_error(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x00, 0x01, 0x02};
    rbuf_t r;
    rbuf_init(&r, b, sizeof b);
    assert_int_equal(rbuf_i16(&r), 1);
    assert_int_equal(rbuf_i32(&r), 0); /* only one byte left */
    assert_int_equal(r.err, HE_TRUNCATED);
    assert_int_equal(rbuf_u8(&r), 0); /* stays failed */
    assert_null(rbuf_view(&r, 0));
    rbuf_init(&r, b, sizeof b);
    assert_null(rbuf_view(&r, 4));
    assert_int_equal(r.err, HE_TRUNCATED);
}

static void test_backpatch(void **state)
{
    (void)state;
    wbuf_t w;
    wbuf_init(&w);
    size_t off = wbuf_reserve(&w, 4);
    for (int i = 0; i < 1000; i++) wbuf_i32(&w, i); /* forces growth */
    wbuf_patch_i32(&w, off, 1000);
    rbuf_t r;
    rbuf_init(&r, w.p, w.len);
    assert_int_equal(rbuf_i32(&r), 1000);
    assert_int_equal(rbuf_i32(&r), 0);
    wbuf_destroy(&w);
}

static void test_crc32c_vectors(void **state)
{
    (void)state;
    /* RFC 3720 B.4 test vectors and the classic "123456789" check value. */
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0}, ones[32];
    for (int i = 0; i < 32; i++) ones[i] = 0xff;
    assert_int_equal(crc32c(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(crc32c(0, ones, 32), 0x62A8AB43u);
    uint8_t inc[32];
    for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i;
    assert_int_equal(crc32c(0, inc, 32), 0x46DD794Eu);
    /* incremental == one shot */
    assert_int_equal(crc32c(crc32c(0, inc, 13), inc + 13, 19), 0x46DD794Eu);
}

/* The three-lane hardware path must agree with a plain bitwise CRC for
 * every length around the lane boundaries and any split of the input. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static void test_crc32c_long_buffers(void **state)
{
    (void)state;
    size_t max = 3 * 4096 * 3 + 100;
    uint8_t *buf = malloc(max);
    uint32_t seed = 12345;
    for (size_t i = 0; i < max; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
    static const size_t lens[] = {0, 1, 7, 8, 4095, 12287, 12288, 12289, 24576, 24583, 36864 + 99};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint32_t want = crc_bitwise(0, buf, lens[i]);
        assert_int_equal(crc32c(0, buf, lens[i]), want);
        size_t half = lens[i] / 3;
        assert_int_equal(crc32c(crc32c(0, buf, half), buf + half, lens[i] - half), want);
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_vectors),   cmocka_unit_test(test_varlong_roundtrip),
        cmocka_unit_test(test_uvarint_overlong_rejected), cmocka_unit_test(test_sticky_error),
        cmocka_unit_test(test_backpatch),        cmocka_unit_test(test_crc32c_vectors),
        cmocka_unit_test(test_crc32c_long_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
