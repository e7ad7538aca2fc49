/*
 * Field tables and properties <-> JSON (src/http/amqp_json.c): every field
 * type out (hand-written bytes), JSON -> table -> JSON as the identity over
 * every JSON type and nesting, the depth and name-length limits, and
 * properties both ways with their errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "amqp/ftable.h"
#include "amqp/props.h"
#include "http/amqp_json.h"

/* One entry per type; each entry is named by its type letter. */
static const uint8_t every[] = {
    1, 't', 't', 0x01,
    1, 'b', 'b', 0xfe,
    1, 'B', 'B', 0xfe,
    1, 's', 's', 0xff, 0xfe,
    1, 'u', 'u', 0xff, 0xfe,
    1, 'I', 'I', 0xff, 0xff, 0xff, 0xfe,
    1, 'i', 'i', 0xff, 0xff, 0xff, 0xfe,
    1, 'l', 'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    1, 'f', 'f', 0x3f, 0xc0, 0x00, 0x00,
    1, 'd', 'd', 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
    1, 'D', 'D', 0x02, 0x00, 0x00, 0x01, 0x2c,
    1, 'S', 'S', 0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c',
    1, 'x', 'x', 0x00, 0x00, 0x00, 0x02, 0x00, 0xff,
    1, 'A', 'A', 0x00, 0x00, 0x00, 0x08,
    'I', 0x00, 0x00, 0x00, 0x01, 'V', 't', 0x00,
    1, 'F', 'F', 0x00, 0x00, 0x00, 0x03, 1, 'k', 'V',
    1, 'T', 'T', 0x00, 0x00, 0x00, 0x00, 0x65, 0x5e, 0x3f, 0x80,
    1, 'V', 'V',
    1, 'N', 'S', 0x00, 0x00, 0x00, 0x02, 0xc3, 0x28, /* longstr, not UTF-8 */
};

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    assert_non_null(s);
    return s;
}

static void test_every_type_out(void **state)
{
    (void)state;
    amqp_bytes_t t = {every, sizeof every};
    assert_int_equal(ftable_validate(t), 0);
    json_t *j = amqp_json_from_table(t);
    char *s = dump(j);
    assert_string_equal(s, "{\"A\":[1,null,false],\"B\":254,\"D\":3.0,\"F\":{\"k\":null},\"I\":-2,\"N\":\"wyg=\","
                           "\"S\":\"abc\",\"T\":1700675456,\"V\":null,\"b\":-2,\"d\":1.5,\"f\":1.5,\"i\":4294967294,"
                           "\"l\":-2,\"s\":-2,\"t\":true,\"u\":65534,\"x\":\"AP8=\"}");
    free(s);
    json_decref(j);
}

/* JSON -> table -> JSON gives the same JSON back. */
static void test_round_trip(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{}",
        "{\"a\":1}",
        "{\"x-max-length\":10,\"x-dead-letter-exchange\":\"dlx\",\"flag\":true,\"off\":false,\"n\":null}",
        "{\"big\":9223372036854775807,\"neg\":-9223372036854775808,\"r\":0.25}",
        "{\"arr\":[1,\"two\",[3,[4]],{\"k\":\"v\"},null,true],\"t\":{\"u\":{\"v\":{}}}}",
        "{\"\":\"empty name\",\"utf8\":\"h\\u00e9llo \\u2603\"}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t je;
        json_t *in = json_loads(cases[i], 0, &je);
        assert_non_null(in);
        wbuf_t w;
        wbuf_init(&w);
        char err[160];
        assert_int_equal(amqp_json_to_table(in, &w, err, sizeof err), 0);
        amqp_bytes_t t = {w.p, (uint32_t)w.len};
        assert_int_equal(ftable_validate(t), 0);
        json_t *out = amqp_json_from_table(t);
        char *a = dump(in), *b = dump(out);
        assert_string_equal(a, b);
        free(a);
        free(b);
        json_decref(out);
        json_decref(in);
        wbuf_destroy(&w);
    }
}

static json_t *nest(int depth)
{
    json_t *j = json_object();
    for (int i = 1; i < depth; i++) j = json_pack("{s:o}", "k", j);
    return j;
}

static void test_limits(void **state)
{
    (void)state;
    char err[160];
    wbuf_t w;
    wbuf_init(&w);
    /* the top table counts as one level, as in ftable_validate */
    json_t *ok = nest(FTABLE_MAX_DEPTH);
    assert_int_equal(amqp_json_to_table(ok, &w, err, sizeof err), 0);
    assert_int_equal(ftable_validate((amqp_bytes_t){w.p, (uint32_t)w.len}), 0);
    json_decref(ok);
    wbuf_reset(&w);
    json_t *deep = nest(FTABLE_MAX_DEPTH + 1);
    assert_int_equal(amqp_json_to_table(deep, &w, err, sizeof err), -1);
    assert_non_null(strstr(err, "nest"));
    json_decref(deep);

    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    json_t *longname = json_object();
    json_object_set_new(longname, name, json_integer(1));
    wbuf_reset(&w);
    assert_int_equal(amqp_json_to_table(longname, &w, err, sizeof err), -1);
    name[255] = '\0';
    json_t *n255 = json_object();
    json_object_set_new(n255, name, json_integer(1));
    wbuf_reset(&w);
    assert_int_equal(amqp_json_to_table(n255, &w, err, sizeof err), 0);
    json_decref(n255);
    json_decref(longname);

    json_t *notobj = json_array();
    assert_int_equal(amqp_json_to_table(notobj, &w, err, sizeof err), -1);
    json_decref(notobj);
    wbuf_destroy(&w);
}

static void test_props_round_trip(void **state)
{
    (void)state;
    const char *in_s = "{\"app_id\":\"app\",\"content_type\":\"text/plain\",\"correlation_id\":\"c1\",\"delivery_mode\":2,"
                       "\"expiration\":\"60000\",\"headers\":{\"a\":1,\"b\":[\"x\"]},\"message_id\":\"m1\","
                       "\"priority\":5,\"reply_to\":\"r\",\"timestamp\":1795000000,\"type\":\"t\",\"user_id\":\"guest\"}";
    json_t *in = json_loads(in_s, 0, NULL);
    assert_non_null(in);
    wbuf_t w;
    wbuf_init(&w);
    char err[160];
    int mode;
    int64_t exp;
    assert_int_equal(amqp_json_to_props(in, &w, &mode, &exp, err, sizeof err), 0);
    assert_int_equal(mode, 2);
    assert_int_equal(exp, 60000);
    amqp_props_t p;
    assert_int_equal(amqp_props_decode((amqp_bytes_t){w.p, (uint32_t)w.len}, &p), 0);
    assert_int_equal(p.priority, 5);
    json_t *out = amqp_json_from_props((amqp_bytes_t){w.p, (uint32_t)w.len});
    char *a = dump(in), *b = dump(out);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(out);
    json_decref(in);

    /* nothing: flags 0, no delivery mode, no expiration */
    wbuf_reset(&w);
    json_t *empty = json_object();
    assert_int_equal(amqp_json_to_props(empty, &w, &mode, &exp, err, sizeof err), 0);
    assert_int_equal(mode, 0);
    assert_int_equal(exp, -1);
    json_decref(empty);
    wbuf_destroy(&w);
}

static void test_props_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"nope\":1}",
        "{\"delivery_mode\":256}",
        "{\"delivery_mode\":\"2\"}",
        "{\"priority\":-1}",
        "{\"content_type\":5}",
        "{\"expiration\":\"soon\"}",
        "{\"expiration\":\"-1\"}",
        "{\"timestamp\":-5}",
        "{\"headers\":[1]}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *in = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        assert_non_null(in);
        wbuf_t w;
        wbuf_init(&w);
        char err[160] = "";
        int mode;
        int64_t exp;
        assert_int_equal(amqp_json_to_props(in, &w, &mode, &exp, err, sizeof err), -1);
        assert_true(err[0] != '\0');
        wbuf_destroy(&w);
        json_decref(in);
    }
    /* a shortstr is at most 255 bytes */
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    json_t *in = json_pack("{s:s}", "message_id", big);
    wbuf_t w;
    wbuf_init(&w);
    char err[160];
    int mode;
    int64_t exp;
    assert_int_equal(amqp_json_to_props(in, &w, &mode, &exp, err, sizeof err), -1);
    json_decref(in);
    wbuf_destroy(&w);
}

static void test_props_undecodable(void **state)
{
    (void)state;
    static const uint8_t junk[] = {0x80}; /* truncated flags */
    json_t *j = amqp_json_from_props((amqp_bytes_t){junk, sizeof junk});
    assert_int_equal(json_object_size(j), 0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_out),   cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_limits),           cmocka_unit_test(test_props_round_trip),
        cmocka_unit_test(test_props_errors),     cmocka_unit_test(test_props_undecodable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
