/*
 * AMQP method codec tests: byte vectors written by hand from the 0-9-1 spec
 * (class/method ids, argument order, bit packing of 4.2.5.2), round trips of
 * every method of methods.amqp with sample values from the generated
 * amqp_sample.c, truncation at every length (each prefix copied into a heap
 * buffer of exactly that size, so ASan catches any read past it), trailing
 * bytes, hostile lengths and unknown ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "amqp/amqp_methods.h"
#include "amqp/amqp_sample.h"
#include "amqp/wire.h"

/* ---- helpers ---- */

static void assert_bytes(amqp_bytes_t b, const char *want)
{
    assert_true(amqp_bytes_eq(b, want));
}

/* Decodes a heap copy of exactly n bytes of p (ASan guards its end). */
static int decode_copy(const uint8_t *p, size_t n, amqp_method_t *out)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, p, n);
    int rc = amqp_method_decode(copy, n, out);
    free(copy);
    return rc;
}

/* Every strict prefix is malformed; one byte more is malformed too. */
static void check_prefixes_and_trailer(const uint8_t *p, size_t len)
{
    amqp_method_t m;
    for (size_t n = 0; n < len; n++)
        assert_int_equal(decode_copy(p, n, &m), HE_MALFORMED);
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, p, len);
    longer[len] = 0;
    assert_int_equal(amqp_method_decode(longer, len + 1, &m), HE_MALFORMED);
    free(longer);
}

/* Decodes `in`, checks it re-encodes to the same bytes, and the edges. */
static void decode_vector(const uint8_t *in, size_t len, uint32_t id, amqp_method_t *m)
{
    assert_int_equal(amqp_method_decode(in, len, m), 0);
    assert_int_equal(m->id, id);
    wbuf_t w;
    wbuf_init(&w);
    amqp_method_encode(&w, m);
    assert_int_equal(w.len, len);
    assert_memory_equal(w.p, in, len);
    wbuf_destroy(&w);
    check_prefixes_and_trailer(in, len);
}

#define DECODE_VECTOR(arr, id, m) decode_vector((arr), sizeof(arr), (id), (m))

/* ---- hand-written vectors ---- */

static void test_connection_start(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x0a, 0x00, 0x0a, /* class 10 connection, method 10 start */
        0x00, 0x09,             /* version-major 0, version-minor 9 */
        0x00, 0x00, 0x00, 0x13, /* server-properties: 19 bytes */
        7, 'p', 'r', 'o', 'd', 'u', 'c', 't', 'S', 0x00, 0x00, 0x00, 0x06,
        'H', 'e', 'r', 'a', 'l', 'd',
        0x00, 0x00, 0x00, 0x0e, /* mechanisms longstr, 14 bytes */
        'P', 'L', 'A', 'I', 'N', ' ', 'A', 'M', 'Q', 'P', 'L', 'A', 'I', 'N',
        0x00, 0x00, 0x00, 0x05, 'e', 'n', '_', 'U', 'S', /* locales */
    };
    amqp_method_t m;
    DECODE_VECTOR(in, AMQP_CONNECTION_START, &m);
    const amqp_connection_start_t *s = &m.m.connection_start;
    assert_int_equal(s->version_major, 0);
    assert_int_equal(s->version_minor, 9);
    assert_int_equal(s->server_properties.len, 19);
    assert_ptr_equal(s->server_properties.p, in + 10); /* a view of the content */
    assert_bytes(s->mechanisms, "PLAIN AMQPLAIN");
    assert_bytes(s->locales, "en_US");
    assert_ptr_equal(s->locales.p, in + sizeof in - 5);
    assert_string_equal(amqp_method_name(m.id), "connection.start");
    assert_int_equal(amqp_method_has_content(m.id), 0);
}

static void test_connection_tune(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x0a, 0x00, 0x1e, /* connection.tune (10, 30) */
        0x07, 0xff,             /* channel-max 2047 */
        0x00, 0x02, 0x00, 0x00, /* frame-max 131072 */
        0x00, 0x3c,             /* heartbeat 60 */
    };
    amqp_method_t m;
    DECODE_VECTOR(in, AMQP_CONNECTION_TUNE, &m);
    assert_int_equal(m.m.connection_tune.channel_max, 2047);
    assert_int_equal(m.m.connection_tune.frame_max, 131072);
    assert_int_equal(m.m.connection_tune.heartbeat, 60);
}

static void test_queue_declare_bits(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x32, 0x00, 0x0a, /* queue.declare (50, 10) */
        0x00, 0x00,             /* reserved-1 (ticket) */
        5, 't', 'a', 's', 'k', 's',
        0x12,                   /* bits, low first: passive 0, durable 1, exclusive 0,
                                   auto-delete 0, no-wait 1 */
        0x00, 0x00, 0x00, 0x18, /* arguments: 24 bytes */
        12, 'x', '-', 'q', 'u', 'e', 'u', 'e', '-', 't', 'y', 'p', 'e',
        'S', 0x00, 0x00, 0x00, 0x06, 'q', 'u', 'o', 'r', 'u', 'm',
    };
    amqp_method_t m;
    DECODE_VECTOR(in, AMQP_QUEUE_DECLARE, &m);
    const amqp_queue_declare_t *q = &m.m.queue_declare;
    assert_int_equal(q->reserved_1, 0);
    assert_bytes(q->queue, "tasks");
    assert_int_equal(q->passive, 0);
    assert_int_equal(q->durable, 1);
    assert_int_equal(q->exclusive, 0);
    assert_int_equal(q->auto_delete, 0);
    assert_int_equal(q->no_wait, 1);
    assert_int_equal(q->arguments.len, 24);
    assert_ptr_equal(q->arguments.p, in + 17);

    /* each bit alone lands on its own position */
    for (int bit = 0; bit < 5; bit++) {
        amqp_method_t e = {.id = AMQP_QUEUE_DECLARE};
        uint8_t *flags[] = {&e.m.queue_declare.passive, &e.m.queue_declare.durable,
                            &e.m.queue_declare.exclusive, &e.m.queue_declare.auto_delete,
                            &e.m.queue_declare.no_wait};
        *flags[bit] = 1;
        wbuf_t w;
        wbuf_init(&w);
        amqp_method_encode(&w, &e);
        /* class, method, ticket, empty name, bits, empty table */
        assert_int_equal(w.len, 4 + 2 + 1 + 1 + 4);
        assert_int_equal(w.p[7], 1u << bit);
        wbuf_destroy(&w);
    }
}

static void test_basic_publish(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x3c, 0x00, 0x28, /* basic.publish (60, 40) */
        0x00, 0x00,             /* reserved-1 */
        4, 'l', 'o', 'g', 's',  /* exchange */
        4, 'i', 'n', 'f', 'o',  /* routing-key */
        0x01,                   /* mandatory 1, immediate 0 */
    };
    amqp_method_t m;
    DECODE_VECTOR(in, AMQP_BASIC_PUBLISH, &m);
    assert_bytes(m.m.basic_publish.exchange, "logs");
    assert_bytes(m.m.basic_publish.routing_key, "info");
    assert_int_equal(m.m.basic_publish.mandatory, 1);
    assert_int_equal(m.m.basic_publish.immediate, 0);
    assert_int_equal(amqp_method_has_content(m.id), 1);
    assert_string_equal(amqp_method_name(m.id), "basic.publish");

    /* undefined high bits in a bit octet are ignored, and not re-sent */
    uint8_t hi[sizeof in];
    memcpy(hi, in, sizeof in);
    hi[sizeof in - 1] = 0xfe; /* immediate 1, mandatory 0, junk above */
    assert_int_equal(amqp_method_decode(hi, sizeof hi, &m), 0);
    assert_int_equal(m.m.basic_publish.mandatory, 0);
    assert_int_equal(m.m.basic_publish.immediate, 1);
}

static void test_basic_deliver(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x3c, 0x00, 0x3c, /* basic.deliver (60, 60) */
        2, 'c', '1',            /* consumer-tag */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, /* delivery-tag 258 */
        0x01,                   /* redelivered */
        0,                      /* exchange "" (the default exchange) */
        1, 'q',                 /* routing-key */
    };
    amqp_method_t m;
    DECODE_VECTOR(in, AMQP_BASIC_DELIVER, &m);
    const amqp_basic_deliver_t *d = &m.m.basic_deliver;
    assert_bytes(d->consumer_tag, "c1");
    assert_int_equal(d->delivery_tag, 258);
    assert_int_equal(d->redelivered, 1);
    assert_int_equal(d->exchange.len, 0);
    assert_bytes(d->routing_key, "q");
    assert_int_equal(amqp_method_has_content(m.id), 1);
}

static void test_basic_ack(void **state)
{
    (void)state;
    static const uint8_t in[] = {
        0x00, 0x3c, 0x00, 0x50, /* basic.ack (60, 80) */
        0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, /* delivery-tag, top bit set */
        0x01,                   /* multiple */
    };
    amqp_method_t m;
    DECODE_VECTOR(in, AMQP_BASIC_ACK, &m);
    assert_true(m.m.basic_ack.delivery_tag == 0x800000000000002aull);
    assert_int_equal(m.m.basic_ack.multiple, 1);

    static const uint8_t nack[] = {
        0x00, 0x3c, 0x00, 0x78, /* basic.nack (60, 120) */
        0, 0, 0, 0, 0, 0, 0, 7,
        0x02,                   /* multiple 0, requeue 1 */
    };
    DECODE_VECTOR(nack, AMQP_BASIC_NACK, &m);
    assert_int_equal(m.m.basic_nack.multiple, 0);
    assert_int_equal(m.m.basic_nack.requeue, 1);
}

static void test_no_fields(void **state)
{
    (void)state;
    static const uint8_t close_ok[] = {0x00, 0x14, 0x00, 0x29}; /* channel.close-ok */
    amqp_method_t m;
    DECODE_VECTOR(close_ok, AMQP_CHANNEL_CLOSE_OK, &m);
    static const uint8_t commit[] = {0x00, 0x5a, 0x00, 0x14};   /* tx.commit */
    DECODE_VECTOR(commit, AMQP_TX_COMMIT, &m);
    static const uint8_t select[] = {0x00, 0x55, 0x00, 0x0a, 0x01}; /* confirm.select nowait */
    DECODE_VECTOR(select, AMQP_CONFIRM_SELECT, &m);
    assert_int_equal(m.m.confirm_select.nowait, 1);
}

/* ---- ids, names and errors ---- */

static void test_ids_and_names(void **state)
{
    (void)state;
    assert_int_equal(AMQP_METHOD_ID(60, 40), 0x003c0028u);
    assert_int_equal(AMQP_BASIC_PUBLISH, AMQP_METHOD_ID(60, 40));
    assert_int_equal(AMQP_EXCHANGE_UNBIND_OK, AMQP_METHOD_ID(40, 51));
    assert_int_equal(AMQP_CLASS_CONNECTION, 10);
    assert_int_equal(AMQP_CLASS_CHANNEL, 20);
    assert_int_equal(AMQP_CLASS_EXCHANGE, 40);
    assert_int_equal(AMQP_CLASS_QUEUE, 50);
    assert_int_equal(AMQP_CLASS_BASIC, 60);
    assert_int_equal(AMQP_CLASS_CONFIRM, 85);
    assert_int_equal(AMQP_CLASS_TX, 90);
    assert_string_equal(amqp_method_name(AMQP_CONNECTION_UPDATE_SECRET_OK),
                        "connection.update-secret-ok");
    assert_string_equal(amqp_method_name(AMQP_BASIC_RECOVER_ASYNC), "basic.recover-async");
    assert_null(amqp_method_name(AMQP_METHOD_ID(60, 41)));
    assert_null(amqp_method_name(0));
    assert_int_equal(amqp_method_has_content(AMQP_BASIC_GET_OK), 1);
    assert_int_equal(amqp_method_has_content(AMQP_BASIC_RETURN), 1);
    assert_int_equal(amqp_method_has_content(AMQP_BASIC_GET), 0);
    assert_int_equal(amqp_method_has_content(AMQP_METHOD_ID(99, 1)), 0);

    int content = 0;
    for (size_t i = 0; i < AMQP_METHOD_COUNT; i++) {
        assert_non_null(amqp_method_name(amqp_method_ids[i]));
        if (i > 0)
            assert_true(amqp_method_ids[i - 1] < amqp_method_ids[i]);
        content += amqp_method_has_content(amqp_method_ids[i]);
    }
    assert_int_equal(content, 4); /* publish, return, deliver, get-ok */
}

static void test_unknown(void **state)
{
    (void)state;
    amqp_method_t m;
    static const uint8_t unknown_class[] = {0x00, 0x63, 0x00, 0x0a, 1, 2, 3};
    assert_int_equal(decode_copy(unknown_class, sizeof unknown_class, &m), HE_NOT_FOUND);
    assert_int_equal(m.id, AMQP_METHOD_ID(99, 10));
    static const uint8_t unknown_method[] = {0x00, 0x3c, 0x00, 0x29};
    assert_int_equal(decode_copy(unknown_method, sizeof unknown_method, &m), HE_NOT_FOUND);
    assert_int_equal(m.id, AMQP_METHOD_ID(60, 41));
    /* fewer than 4 bytes: no ids to report */
    assert_int_equal(decode_copy(unknown_method, 3, &m), HE_MALFORMED);
}

static void test_hostile(void **state)
{
    (void)state;
    amqp_method_t m;
    /* connection.secure with a longstr length far beyond the payload */
    static const uint8_t huge[] = {0x00, 0x0a, 0x00, 0x14, 0xff, 0xff, 0xff, 0xff, 'x'};
    assert_int_equal(decode_copy(huge, sizeof huge, &m), HE_MALFORMED);
    /* shortstr length one past the end */
    static const uint8_t sstr[] = {0x00, 0x14, 0x00, 0x0a, 3, 'a', 'b'};
    assert_int_equal(decode_copy(sstr, sizeof sstr, &m), HE_MALFORMED);
    /* basic.consume with a table whose entry has an unknown type 'Z' */
    static const uint8_t badtab[] = {
        0x00, 0x3c, 0x00, 0x14, 0x00, 0x00, 1, 'q', 0, 0x00,
        0x00, 0x00, 0x00, 0x04, 1, 'k', 'Z', 0,
    };
    assert_int_equal(decode_copy(badtab, sizeof badtab, &m), HE_MALFORMED);
    /* ... and a table length that exceeds the payload */
    static const uint8_t longtab[] = {
        0x00, 0x3c, 0x00, 0x14, 0x00, 0x00, 1, 'q', 0, 0x00,
        0x7f, 0xff, 0xff, 0xff, 1, 'k', 'V',
    };
    assert_int_equal(decode_copy(longtab, sizeof longtab, &m), HE_MALFORMED);
    /* the same with a good table decodes */
    uint8_t good[sizeof longtab];
    memcpy(good, longtab, sizeof good);
    good[10] = good[11] = good[12] = 0;
    good[13] = 3;
    assert_int_equal(decode_copy(good, sizeof good, &m), 0);
    assert_int_equal(m.m.basic_consume.arguments.len, 3);
}

/* ---- every method, sample values ---- */

static void test_round_trips(void **state)
{
    (void)state;
    size_t checked = 0;
    for (size_t i = 0; i < AMQP_METHOD_COUNT; i++) {
        for (unsigned seed = 0; seed < 32; seed++) {
            amqp_method_t in, out, again;
            amqp_sample_fill(&in, amqp_method_ids[i], seed);
            wbuf_t w, w2;
            wbuf_init(&w);
            wbuf_init(&w2);
            amqp_method_encode(&w, &in);
            assert_int_equal(decode_copy(w.p, w.len, &out), 0);
            assert_int_equal(amqp_method_decode(w.p, w.len, &out), 0);
            assert_true(amqp_sample_equal(&in, &out));
            amqp_method_encode(&w2, &out);
            assert_int_equal(w2.len, w.len);
            assert_memory_equal(w2.p, w.p, w.len);
            /* the header carries the ids */
            assert_int_equal((w.p[0] << 8) | w.p[1], amqp_method_ids[i] >> 16);
            assert_int_equal((w.p[2] << 8) | w.p[3], amqp_method_ids[i] & 0xffff);
            if (seed < 4) /* prefixes are costly for long strings; a few seeds suffice */
                check_prefixes_and_trailer(w.p, w.len);
            /* a changed seed changes something (bits alone for bit-only methods) */
            amqp_sample_fill(&again, amqp_method_ids[i], seed + 1);
            if (w.len > 4 && amqp_sample_equal(&again, &in))
                fail_msg("seed does not vary method %s", amqp_method_name(in.id));
            wbuf_destroy(&w);
            wbuf_destroy(&w2);
            checked++;
        }
    }
    assert_int_equal(checked, AMQP_METHOD_COUNT * 32);
}

/* Random byte changes to valid payloads: the decoder answers 0, HE_MALFORMED
 * or HE_NOT_FOUND, never reads past the buffer, and whatever it accepts
 * re-encodes to the same bytes (every field is canonical except undefined
 * high bits of a bit octet, which are dropped). */
static void test_mutations(void **state)
{
    (void)state;
    uint32_t rng = 12345;
    size_t accepted = 0, rejected = 0;
    for (size_t i = 0; i < AMQP_METHOD_COUNT; i++) {
        for (unsigned seed = 0; seed < 3; seed++) {
            amqp_method_t in, out;
            amqp_sample_fill(&in, amqp_method_ids[i], seed);
            wbuf_t w, w2;
            wbuf_init(&w);
            wbuf_init(&w2);
            amqp_method_encode(&w, &in);
            for (int round = 0; round < 200; round++) {
                uint8_t *copy = malloc(w.len);
                assert_non_null(copy);
                memcpy(copy, w.p, w.len);
                for (int k = 0; k < 1 + round % 3; k++) {
                    rng = rng * 1103515245u + 12345u;
                    size_t at = (rng >> 8) % w.len;
                    copy[at] = (uint8_t)(rng >> 24);
                }
                int rc = amqp_method_decode(copy, w.len, &out);
                assert_true(rc == 0 || rc == HE_MALFORMED || rc == HE_NOT_FOUND);
                if (rc == 0) {
                    wbuf_reset(&w2);
                    amqp_method_encode(&w2, &out);
                    assert_int_equal(w2.len, w.len);
                    accepted++;
                } else {
                    rejected++;
                }
                free(copy);
            }
            wbuf_destroy(&w);
            wbuf_destroy(&w2);
        }
    }
    assert_true(accepted > 0 && rejected > 0);
}

static void test_bytes_eq(void **state)
{
    (void)state;
    amqp_bytes_t b = {(const uint8_t *)"abc", 3};
    assert_true(amqp_bytes_eq(b, "abc"));
    assert_false(amqp_bytes_eq(b, "ab"));
    assert_false(amqp_bytes_eq(b, "abcd"));
    assert_false(amqp_bytes_eq(b, "abd"));
    amqp_bytes_t empty = {NULL, 0};
    assert_true(amqp_bytes_eq(empty, ""));
    assert_false(amqp_bytes_eq(empty, "a"));
    assert_true(amqp_bytes_eq(amqp_cstr("x-match"), "x-match"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_start),
        cmocka_unit_test(test_connection_tune),
        cmocka_unit_test(test_queue_declare_bits),
        cmocka_unit_test(test_basic_publish),
        cmocka_unit_test(test_basic_deliver),
        cmocka_unit_test(test_basic_ack),
        cmocka_unit_test(test_no_fields),
        cmocka_unit_test(test_ids_and_names),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_bytes_eq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
