/* Stream queues: the AMQP <-> Kafka record mapping (stream_map.c) and the
 * interval parser (x-max-age, x-stream-offset), over good, empty, odd and
 * malformed inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "base/err.h"
#include "broker/stream.h"
#include "broker/stream_map.h"

static void test_intervals(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms; /* -1: invalid */
    } cases[] = {
        {"1s", 1000},        {"10s", 10000},          {"1m", 60000},          {"1h", 3600000},
        {"7D", 604800000},   {"1M", 2592000000LL},    {"1Y", 31536000000LL},  {"0s", -1},
        {"", -1},            {"h", -1},               {"5", -1},              {"1d", -1},
        {"1H", -1},          {"1.5h", -1},            {"-1h", -1},            {"1hx", -1},
        {" 1h", -1},         {"1 h", -1},             {"s1", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = 0;
        int rc = stream_parse_interval(amqp_cstr(cases[i].s), &ms);
        if (cases[i].ms < 0) {
            assert_int_equal(rc, HE_INVALID);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(ms, cases[i].ms);
        }
    }
    int64_t ms = 0;
    assert_int_equal(stream_parse_interval(amqp_cstr("99999999999999999999999Y"), &ms), 0);
    assert_int_equal(ms, INT64_MAX); /* saturates: "from the start" */
    assert_int_equal(stream_parse_interval(amqp_cstr("9223372036854775807s"), &ms), 0);
    assert_int_equal(ms, INT64_MAX);
}

static void test_arg_configs(void **state)
{
    (void)state;
    wbuf_t t;
    wbuf_init(&t);
    ftable_put_name(&t, "x-max-age");
    ftable_put_longstr(&t, "2D", 2);
    ftable_put_name(&t, "x-max-length-bytes");
    ftable_put_i64(&t, 5000000);
    ftable_put_name(&t, "x-stream-max-segment-size-bytes");
    ftable_put_i32(&t, 100); /* below Herald's smallest segment: raised to 1024 */
    topic_kv_t kv[3];
    char vals[3][24];
    const char *bad = NULL;
    assert_int_equal(stream_arg_configs((amqp_bytes_t){t.p, (uint32_t)t.len}, kv, vals, &bad), 3);
    assert_string_equal(kv[0].key, "retention.ms");
    assert_string_equal(kv[0].value, "172800000");
    assert_string_equal(kv[1].key, "retention.bytes");
    assert_string_equal(kv[1].value, "5000000");
    assert_string_equal(kv[2].key, "segment.bytes");
    assert_string_equal(kv[2].value, "1024");
    assert_int_equal(stream_arg_configs((amqp_bytes_t){NULL, 0}, kv, vals, &bad), 0);
    wbuf_reset(&t);
    ftable_put_name(&t, "x-max-length-bytes");
    ftable_put_i64(&t, -1);
    assert_int_equal(stream_arg_configs((amqp_bytes_t){t.p, (uint32_t)t.len}, kv, vals, &bad), HE_INVALID);
    assert_string_equal(bad, "x-max-length-bytes");
    wbuf_reset(&t);
    ftable_put_name(&t, "x-max-age");
    ftable_put_i32(&t, 10);
    assert_int_equal(stream_arg_configs((amqp_bytes_t){t.p, (uint32_t)t.len}, kv, vals, &bad), HE_INVALID);
    assert_string_equal(bad, "x-max-age");
    wbuf_destroy(&t);
}

/* Iterates the single record of the batch in w (after giving it base offset base). */
static void only_record(wbuf_t *w, int64_t base, batch_rec_t *rec)
{
    batch_set_base_offset(w->p, base);
    batch_iter_t it;
    assert_int_equal(batch_iter_init(&it, w->p, w->len), 0);
    assert_int_equal(batch_iter_next(&it, rec), 1);
    batch_rec_t extra;
    assert_int_equal(batch_iter_next(&it, &extra), 0);
}

/* The record header called name: 1 and *kv, or 0. */
static int header(const batch_rec_t *rec, const char *name, batch_header_kv_t *kv)
{
    batch_rec_t r = *rec;
    while (batch_rec_next_header(&r, kv) > 0)
        if ((size_t)kv->key_len == strlen(name) && !memcmp(kv->key, name, kv->key_len)) return 1;
    return 0;
}

static void assert_header(const batch_rec_t *rec, const char *name, const char *value)
{
    batch_header_kv_t kv;
    assert_true(header(rec, name, &kv));
    if (!value) {
        assert_int_equal(kv.value_len, -1);
        return;
    }
    assert_int_equal(kv.value_len, (int32_t)strlen(value));
    assert_memory_equal(kv.value, value, strlen(value));
}

static void test_amqp_round_trip(void **state)
{
    (void)state;
    wbuf_t tbl, props, batch;
    wbuf_init(&tbl);
    wbuf_init(&props);
    wbuf_init(&batch);
    ftable_put_name(&tbl, "s");
    ftable_put_longstr(&tbl, "str", 3);
    ftable_put_name(&tbl, "n");
    ftable_put_i32(&tbl, -42);
    ftable_put_name(&tbl, "b");
    ftable_put_bool(&tbl, 1);
    ftable_put_name(&tbl, "v");
    wbuf_u8(&tbl, FV_VOID);
    ftable_put_name(&tbl, "nested");
    size_t mark = ftable_put_table_begin(&tbl);
    ftable_put_name(&tbl, "x");
    ftable_put_i64(&tbl, 1);
    ftable_end(&tbl, mark);
    amqp_props_t p;
    memset(&p, 0, sizeof p);
    p.flags = PROP_CONTENT_TYPE | PROP_HEADERS | PROP_DELIVERY_MODE | PROP_PRIORITY | PROP_MESSAGE_ID | PROP_TIMESTAMP;
    p.content_type = amqp_cstr("text/plain");
    p.headers = (amqp_bytes_t){tbl.p, (uint32_t)tbl.len};
    p.delivery_mode = 2;
    p.priority = 7;
    p.message_id = amqp_cstr("id-1");
    p.timestamp = 1700000000;
    amqp_props_encode(&props, &p);
    qmsg_t *m = qmsg_new(amqp_cstr("ex"), amqp_cstr("rk"), (amqp_bytes_t){props.p, (uint32_t)props.len}, 5);
    memcpy(qmsg_body(m), "hello", 5);
    m->ts_ms = 1234567;
    stream_map_batch(&batch, &m, 1);
    batch_rec_t rec;
    only_record(&batch, 42, &rec);
    assert_int_equal(rec.offset, 42);
    assert_int_equal(rec.timestamp, 1234567);
    assert_int_equal(rec.key_len, 2);
    assert_memory_equal(rec.key, "rk", 2);
    assert_int_equal(rec.value_len, 5);
    assert_header(&rec, "s", "str");
    assert_header(&rec, "n", "-42");
    assert_header(&rec, "b", "true");
    assert_header(&rec, "v", NULL);
    batch_header_kv_t kv;
    assert_false(header(&rec, "nested", &kv)); /* no text form */
    assert_header(&rec, "amqp.content-type", "text/plain");
    assert_header(&rec, "amqp.delivery-mode", "2");
    assert_header(&rec, "amqp.priority", "7");
    assert_header(&rec, "amqp.message-id", "id-1");
    assert_header(&rec, "amqp.timestamp", "1700000000");
    assert_header(&rec, "amqp.exchange", "ex");
    assert_true(header(&rec, "amqp.properties", &kv));
    assert_int_equal(kv.value_len, (int32_t)props.len);
    assert_memory_equal(kv.value, props.p, props.len);

    /* Back to AMQP: the same properties, plus x-stream-offset. */
    qmsg_t *back = stream_map_message(&rec, -1);
    assert_int_equal(back->body_len, 5);
    assert_memory_equal(qmsg_body(back), "hello", 5);
    assert_true(amqp_bytes_eq(qmsg_exchange(back), "ex"));
    assert_true(amqp_bytes_eq(qmsg_key(back), "rk"));
    assert_true(back->persistent);
    amqp_props_t bp;
    assert_int_equal(amqp_props_decode(qmsg_props(back), &bp), 0);
    assert_int_equal(bp.flags, p.flags);
    assert_true(amqp_bytes_eq(bp.content_type, "text/plain"));
    assert_int_equal(bp.priority, 7);
    assert_int_equal(bp.timestamp, 1700000000);
    assert_true(bp.headers.len > tbl.len);
    assert_memory_equal(bp.headers.p, tbl.p, tbl.len); /* the original entries, byte for byte, first */
    int64_t off = 0;
    assert_int_equal(ftable_get_int(bp.headers, "x-stream-offset", &off), 1);
    assert_int_equal(off, 42);
    fvalue_t v;
    assert_int_equal(ftable_get(bp.headers, "nested", &v), 1);
    assert_int_equal(v.type, FV_TABLE);
    qmsg_unref(back);
    qmsg_unref(m);
    wbuf_destroy(&tbl);
    wbuf_destroy(&props);
    wbuf_destroy(&batch);
}

static void test_empty_message(void **state)
{
    (void)state;
    wbuf_t batch;
    wbuf_init(&batch);
    qmsg_t *m = qmsg_new((amqp_bytes_t){NULL, 0}, (amqp_bytes_t){NULL, 0}, (amqp_bytes_t){NULL, 0}, 0);
    stream_map_batch(&batch, &m, 1);
    batch_rec_t rec;
    only_record(&batch, 0, &rec);
    assert_int_equal(rec.key_len, -1); /* an empty routing key is a null key */
    assert_int_equal(rec.value_len, 0);
    assert_int_equal(rec.header_count, 0);
    qmsg_t *back = stream_map_message(&rec, -1);
    assert_int_equal(back->body_len, 0);
    assert_int_equal(qmsg_key(back).len, 0);
    assert_int_equal(qmsg_exchange(back).len, 0);
    amqp_props_t bp;
    assert_int_equal(amqp_props_decode(qmsg_props(back), &bp), 0);
    assert_int_equal(bp.flags, PROP_HEADERS);
    int64_t off = -1;
    assert_int_equal(ftable_get_int(bp.headers, "x-stream-offset", &off), 1);
    assert_int_equal(off, 0);
    qmsg_unref(back);
    qmsg_unref(m);
    wbuf_destroy(&batch);
}

/* A record from a Kafka producer: no amqp.properties. */
static void test_kafka_record(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0x30, 0x00, 0xff}; /* a truncated property list */
    batch_header_kv_t h[] = {
        {"h", 1, "x", 1},
        {"nul", 3, NULL, -1},
        {"amqp.content-type", 17, "application/json", 16},
        {"amqp.delivery-mode", 18, "2", 1},
        {"amqp.priority", 13, "high", 4},   /* not a number: ignored */
        {"amqp.unknown", 12, "?", 1},       /* reserved prefix, unknown: dropped */
        {"amqp.properties", 15, garbage, sizeof garbage}, /* undecodable: rebuilt instead */
    };
    for (int with_garbage = 0; with_garbage < 2; with_garbage++) {
        batch_record_t r = {0};
        r.key = NULL;
        r.key_len = -1;
        r.value = "v";
        r.value_len = 1;
        r.headers = h;
        r.header_count = with_garbage ? 7 : 6;
        wbuf_t batch;
        wbuf_init(&batch);
        batch_build(&batch, 99, &r, 1);
        batch_rec_t rec;
        only_record(&batch, 7, &rec);
        qmsg_t *m = stream_map_message(&rec, -1);
        assert_int_equal(qmsg_key(m).len, 0);
        assert_int_equal(m->ts_ms, 99);
        amqp_props_t p;
        assert_int_equal(amqp_props_decode(qmsg_props(m), &p), 0);
        assert_int_equal(p.flags, PROP_CONTENT_TYPE | PROP_HEADERS | PROP_DELIVERY_MODE);
        assert_true(amqp_bytes_eq(p.content_type, "application/json"));
        assert_int_equal(p.delivery_mode, 2);
        assert_true(m->persistent);
        amqp_bytes_t s;
        assert_int_equal(ftable_get_str(p.headers, "h", &s), 1);
        assert_true(amqp_bytes_eq(s, "x"));
        fvalue_t v;
        assert_int_equal(ftable_get(p.headers, "nul", &v), 1);
        assert_int_equal(v.type, FV_VOID);
        assert_int_equal(ftable_get(p.headers, "amqp.priority", &v), 0);
        int64_t off = 0;
        assert_int_equal(ftable_get_int(p.headers, "x-stream-offset", &off), 1);
        assert_int_equal(off, 7);
        assert_int_equal(ftable_validate(p.headers), 0);
        qmsg_unref(m);
        wbuf_destroy(&batch);
    }
}

/* A key longer than a shortstr cannot be a routing key: it becomes "". */
static void test_long_key(void **state)
{
    (void)state;
    char key[300];
    memset(key, 'k', sizeof key);
    batch_record_t r = {0};
    r.key = key;
    r.key_len = (int32_t)sizeof key;
    r.value_len = -1;
    wbuf_t batch;
    wbuf_init(&batch);
    batch_build(&batch, 0, &r, 1);
    batch_rec_t rec;
    only_record(&batch, 0, &rec);
    qmsg_t *m = stream_map_message(&rec, -1);
    assert_int_equal(qmsg_key(m).len, 0);
    assert_int_equal(m->body_len, 0);
    qmsg_unref(m);
    wbuf_destroy(&batch);
}

/* Kafka headers too big for an AMQP content header are left out. */
static void test_big_headers(void **state)
{
    (void)state;
    static char big[20000], name[300];
    memset(big, 'v', sizeof big);
    memset(name, 'n', sizeof name);
    batch_header_kv_t h[] = {{"big", 3, big, (int32_t)sizeof big}, {name, 300, "x", 1}, {"small", 5, "s", 1}};
    batch_record_t r = {0};
    r.key_len = -1;
    r.value_len = -1;
    r.headers = h;
    r.header_count = 3;
    wbuf_t batch;
    wbuf_init(&batch);
    batch_build(&batch, 0, &r, 1);
    batch_rec_t rec;
    only_record(&batch, 0, &rec);
    qmsg_t *m = stream_map_message(&rec, 3);
    amqp_props_t p;
    assert_int_equal(amqp_props_decode(qmsg_props(m), &p), 0);
    fvalue_t v;
    assert_int_equal(ftable_get(p.headers, "big", &v), 0);
    assert_int_equal(ftable_get(p.headers, "small", &v), 1);
    int64_t part = -1;
    assert_int_equal(ftable_get_int(p.headers, "x-stream-partition", &part), 1);
    assert_int_equal(part, 3);
    assert_true(p.headers.len < 100);
    qmsg_unref(m);
    wbuf_destroy(&batch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intervals),     cmocka_unit_test(test_arg_configs),
        cmocka_unit_test(test_amqp_round_trip), cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_kafka_record),  cmocka_unit_test(test_long_key),
        cmocka_unit_test(test_big_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
