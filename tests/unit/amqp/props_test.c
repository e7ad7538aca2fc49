/*
 * Content header and basic properties tests: all 14 properties from
 * hand-written bytes (byte-for-byte round trip), every subset of the flags,
 * truncation at every length (heap copies, so ASan sees any read past the
 * end), trailing bytes, a bad headers table, weight != 0 and flag
 * continuation words.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "amqp/props.h"

/* A basic content header with every property set. */
static const uint8_t full[] = {
    0x00, 0x3c,                                     /* class 60 basic */
    0x00, 0x00,                                     /* weight 0 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, /* body size 256 */
    0xff, 0xfc,                                     /* flags: bits 15..2 */
    10, 't', 'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', /* content-type */
    4, 'g', 'z', 'i', 'p',                          /* content-encoding */
    0x00, 0x00, 0x00, 0x07, 1, 'h', 'I', 0, 0, 0, 5, /* headers {h: I 5} */
    0x02,                                           /* delivery-mode persistent */
    0x05,                                           /* priority */
    3, 'c', '-', '1',                               /* correlation-id */
    5, 'r', 'e', 'p', 'l', 'y',                     /* reply-to */
    5, '6', '0', '0', '0', '0',                     /* expiration */
    4, 'm', '-', '4', '2',                          /* message-id */
    0x00, 0x00, 0x00, 0x00, 0x65, 0x5e, 0x3f, 0x80, /* timestamp */
    5, 'o', 'r', 'd', 'e', 'r',                     /* type */
    5, 'g', 'u', 'e', 's', 't',                     /* user-id */
    3, 'a', 'p', 'p',                               /* app-id */
    2, 'c', '0',                                    /* cluster-id */
};
#define RAW_OFF 12 /* property bytes start after class, weight, body size */

static int header_copy(const uint8_t *p, size_t n, amqp_props_t *props)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, p, n);
    uint16_t cls;
    uint64_t size;
    amqp_bytes_t raw;
    int rc = amqp_header_decode(copy, n, &cls, &size, props, &raw);
    free(copy);
    return rc;
}

static void assert_str(amqp_bytes_t b, const char *want) { assert_true(amqp_bytes_eq(b, want)); }

static int bytes_same(amqp_bytes_t a, amqp_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void test_all_props(void **state)
{
    (void)state;
    uint16_t cls;
    uint64_t size;
    amqp_props_t p;
    amqp_bytes_t raw;
    assert_int_equal(amqp_header_decode(full, sizeof full, &cls, &size, &p, &raw), 0);
    assert_int_equal(cls, AMQP_CLASS_BASIC);
    assert_int_equal(size, 256);
    assert_ptr_equal(raw.p, full + RAW_OFF);
    assert_int_equal(raw.len, sizeof full - RAW_OFF);
    assert_int_equal(p.flags, 0xfffc);
    assert_str(p.content_type, "text/plain");
    assert_str(p.content_encoding, "gzip");
    assert_int_equal(p.headers.len, 7);
    assert_ptr_equal(p.headers.p, full + 34);
    assert_int_equal(p.delivery_mode, 2);
    assert_int_equal(p.priority, 5);
    assert_str(p.correlation_id, "c-1");
    assert_str(p.reply_to, "reply");
    assert_str(p.expiration, "60000");
    assert_str(p.message_id, "m-42");
    assert_int_equal(p.timestamp, 0x655e3f80);
    assert_str(p.type, "order");
    assert_str(p.user_id, "guest");
    assert_str(p.app_id, "app");
    assert_str(p.cluster_id, "c0");

    /* the stored bytes decode alike */
    amqp_props_t q;
    assert_int_equal(amqp_props_decode(raw, &q), 0);
    assert_memory_equal(&p, &q, sizeof p);

    /* re-encoding the struct gives the property bytes back */
    wbuf_t w;
    wbuf_init(&w);
    amqp_props_encode(&w, &p);
    assert_int_equal(w.len, raw.len);
    assert_memory_equal(w.p, raw.p, raw.len);
    /* and the header around the stored bytes gives the payload back */
    wbuf_reset(&w);
    amqp_header_encode(&w, 256, raw);
    assert_int_equal(w.len, sizeof full);
    assert_memory_equal(w.p, full, sizeof full);
    wbuf_destroy(&w);
}

/* Every subset of the 14 flags encodes, decodes and re-encodes alike. */
static void test_subsets(void **state)
{
    (void)state;
    uint16_t cls;
    uint64_t size;
    amqp_props_t all;
    amqp_bytes_t raw;
    assert_int_equal(amqp_header_decode(full, sizeof full, &cls, &size, &all, &raw), 0);
    static const size_t sizes[14] = {11, 5, 11, 1, 1, 4, 6, 6, 5, 8, 6, 6, 4, 3};
    wbuf_t w, w2;
    wbuf_init(&w);
    wbuf_init(&w2);
    for (unsigned mask = 0; mask < (1u << 14); mask++) {
        amqp_props_t in = all, out;
        in.flags = (uint16_t)(mask << 2);
        wbuf_reset(&w);
        amqp_props_encode(&w, &in);
        size_t want = 2;
        for (int k = 0; k < 14; k++)
            if (in.flags & (1u << (15 - k)))
                want += sizes[k];
        assert_int_equal(w.len, want);
        amqp_bytes_t enc = {w.p, (uint32_t)w.len};
        assert_int_equal(amqp_props_decode(enc, &out), 0);
        assert_int_equal(out.flags, in.flags);
        /* present fields equal, absent fields empty */
        const amqp_bytes_t *si[] = {&in.content_type, &in.content_encoding, &in.correlation_id,
                                    &in.reply_to, &in.expiration, &in.message_id, &in.type,
                                    &in.user_id, &in.app_id, &in.cluster_id, &in.headers};
        const amqp_bytes_t *so[] = {&out.content_type, &out.content_encoding, &out.correlation_id,
                                    &out.reply_to, &out.expiration, &out.message_id, &out.type,
                                    &out.user_id, &out.app_id, &out.cluster_id, &out.headers};
        static const uint16_t sf[] = {PROP_CONTENT_TYPE, PROP_CONTENT_ENCODING,
                                      PROP_CORRELATION_ID, PROP_REPLY_TO, PROP_EXPIRATION,
                                      PROP_MESSAGE_ID, PROP_TYPE, PROP_USER_ID, PROP_APP_ID,
                                      PROP_CLUSTER_ID, PROP_HEADERS};
        for (size_t k = 0; k < 11; k++) {
            if (in.flags & sf[k])
                assert_true(bytes_same(*si[k], *so[k]));
            else
                assert_int_equal(so[k]->len, 0);
        }
        assert_int_equal(out.delivery_mode, (in.flags & PROP_DELIVERY_MODE) ? 2 : 0);
        assert_int_equal(out.priority, (in.flags & PROP_PRIORITY) ? 5 : 0);
        assert_int_equal(out.timestamp, (in.flags & PROP_TIMESTAMP) ? 0x655e3f80 : 0);
        amqp_bytes_t hv;
        assert_int_equal(amqp_props_headers(enc, &hv), (in.flags & PROP_HEADERS) ? 1 : 0);
        assert_true(bytes_same(hv, out.headers));
        wbuf_reset(&w2);
        amqp_props_encode(&w2, &out);
        assert_int_equal(w2.len, w.len);
        assert_memory_equal(w2.p, w.p, w.len);
    }
    wbuf_destroy(&w);
    wbuf_destroy(&w2);
}

static void test_truncated(void **state)
{
    (void)state;
    amqp_props_t p;
    for (size_t n = 0; n < sizeof full; n++)
        assert_int_equal(header_copy(full, n, &p), HE_MALFORMED);
    uint8_t longer[sizeof full + 1];
    memcpy(longer, full, sizeof full);
    longer[sizeof full] = 0;
    assert_int_equal(header_copy(longer, sizeof longer, &p), HE_MALFORMED);
    assert_int_equal(header_copy(full, sizeof full, &p), 0);

    /* the property bytes alone, every prefix */
    for (size_t n = 0; n < sizeof full - RAW_OFF; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, full + RAW_OFF, n);
        amqp_bytes_t raw = {copy, (uint32_t)n}, hv;
        assert_int_equal(amqp_props_decode(raw, &p), HE_MALFORMED);
        /* amqp_props_headers reads only up to the end of the headers
         * (29 bytes in): a shorter prefix is malformed, a longer one has them */
        int rc = amqp_props_headers(raw, &hv);
        if (n == 0)
            assert_int_equal(rc, 0);
        else if (n < 29)
            assert_int_equal(rc, HE_MALFORMED);
        else
            assert_true(rc == 1 && hv.len == 7 && hv.p == copy + 22);
        free(copy);
    }
}

static void test_bad_headers(void **state)
{
    (void)state;
    amqp_props_t p;
    static const uint8_t bad_type[] = {
        0x00, 0x3c, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
        0x20, 0x00,                        /* headers only */
        0x00, 0x00, 0x00, 0x03, 1, 'k', 'Z',
    };
    assert_int_equal(header_copy(bad_type, sizeof bad_type, &p), HE_MALFORMED);
    static const uint8_t too_long[] = {
        0x00, 0x3c, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
        0x20, 0x00,
        0xff, 0xff, 0xff, 0xf0, 1, 'k', 'V',
    };
    assert_int_equal(header_copy(too_long, sizeof too_long, &p), HE_MALFORMED);
    static const uint8_t nested_bad[] = {
        0x00, 0x3c, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
        0x20, 0x00,
        0x00, 0x00, 0x00, 0x08, 1, 'k', 'A', 0, 0, 0, 1, 'Z',
    };
    assert_int_equal(header_copy(nested_bad, sizeof nested_bad, &p), HE_MALFORMED);
    uint8_t good[sizeof nested_bad];
    memcpy(good, nested_bad, sizeof good);
    good[sizeof good - 1] = 'V';
    assert_int_equal(header_copy(good, sizeof good, &p), 0);
    assert_int_equal(p.flags, PROP_HEADERS);
    assert_int_equal(p.headers.len, 8);
}

static void test_weight_and_flags(void **state)
{
    (void)state;
    amqp_props_t p;
    uint8_t h[sizeof full];
    memcpy(h, full, sizeof h);
    h[3] = 1; /* weight 1 */
    assert_int_equal(header_copy(h, sizeof h, &p), HE_MALFORMED);
    h[3] = 0;
    h[2] = 0x80;
    assert_int_equal(header_copy(h, sizeof h, &p), HE_MALFORMED);

    /* the class is reported, not judged */
    static const uint8_t other[] = {0x00, 0x32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00};
    uint16_t cls;
    uint64_t size;
    amqp_bytes_t raw;
    assert_int_equal(amqp_header_decode(other, sizeof other, &cls, &size, &p, &raw), 0);
    assert_int_equal(cls, 50);
    assert_int_equal(p.flags, 0);
    assert_int_equal(raw.len, 2);

    /* bit 1 names no property */
    static const uint8_t bit1[] = {0x00, 0x02};
    amqp_bytes_t r1 = {bit1, 2};
    assert_int_equal(amqp_props_decode(r1, &p), HE_MALFORMED);

    /* continuation words: accepted when empty, rejected otherwise */
    static const uint8_t cont[] = {0x80, 0x01, 0x00, 0x01, 0x00, 0x00, 1, 'x'};
    amqp_bytes_t rc = {cont, sizeof cont};
    assert_int_equal(amqp_props_decode(rc, &p), 0);
    assert_int_equal(p.flags, PROP_CONTENT_TYPE);
    assert_str(p.content_type, "x");
    static const uint8_t cont_bits[] = {0x80, 0x01, 0x40, 0x00, 1, 'x'};
    amqp_bytes_t rb = {cont_bits, sizeof cont_bits};
    assert_int_equal(amqp_props_decode(rb, &p), HE_MALFORMED);
    static const uint8_t cont_short[] = {0x00, 0x01, 0x00};
    amqp_bytes_t rs = {cont_short, sizeof cont_short};
    assert_int_equal(amqp_props_decode(rs, &p), HE_MALFORMED);
    static const uint8_t cont_forever[] = {0x00, 0x01, 0x00, 0x01, 0x00, 0x01};
    amqp_bytes_t rf = {cont_forever, sizeof cont_forever};
    assert_int_equal(amqp_props_decode(rf, &p), HE_MALFORMED);

    /* a shortstr property that claims more than remains */
    static const uint8_t long_str[] = {0x80, 0x00, 200, 'a'};
    amqp_bytes_t rl = {long_str, sizeof long_str};
    assert_int_equal(amqp_props_decode(rl, &p), HE_MALFORMED);
}

static void test_encode_edges(void **state)
{
    (void)state;
    wbuf_t w;
    wbuf_init(&w);
    /* no stored properties: flags 0 */
    amqp_bytes_t none = {NULL, 0};
    amqp_header_encode(&w, 0x0102030405060708ull, none);
    static const uint8_t want[] = {0x00, 0x3c, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x00};
    assert_int_equal(w.len, sizeof want);
    assert_memory_equal(w.p, want, sizeof want);
    uint16_t cls;
    uint64_t size;
    amqp_props_t p;
    amqp_bytes_t raw;
    assert_int_equal(amqp_header_decode(w.p, w.len, &cls, &size, &p, &raw), 0);
    assert_true(size == 0x0102030405060708ull);
    assert_int_equal(p.flags, 0);

    /* undefined flag bits are not sent */
    memset(&p, 0, sizeof p);
    p.flags = PROP_DELIVERY_MODE | 0x3;
    p.delivery_mode = 1;
    wbuf_reset(&w);
    amqp_props_encode(&w, &p);
    static const uint8_t dm[] = {0x10, 0x00, 0x01};
    assert_int_equal(w.len, sizeof dm);
    assert_memory_equal(w.p, dm, sizeof dm);

    /* an empty headers table is sent as a zero length */
    memset(&p, 0, sizeof p);
    p.flags = PROP_HEADERS;
    wbuf_reset(&w);
    amqp_props_encode(&w, &p);
    static const uint8_t eh[] = {0x20, 0x00, 0, 0, 0, 0};
    assert_int_equal(w.len, sizeof eh);
    assert_memory_equal(w.p, eh, sizeof eh);
    wbuf_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_props),
        cmocka_unit_test(test_subsets),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_weight_and_flags),
        cmocka_unit_test(test_encode_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
