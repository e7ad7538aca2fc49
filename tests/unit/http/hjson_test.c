/* JSON byte helpers (http/hjson.c): base64 against RFC 4648's test
 * vectors, UTF-8 validation edge cases, and the text/base64 choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/hjson.h"

static void test_base64_rfc4648(void **state)
{
    (void)state;
    static const char *const v[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                       {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                       {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char *e = hjson_b64_encode(v[i][0], strlen(v[i][0]));
        assert_string_equal(e, v[i][1]);
        free(e);
        uint8_t *d;
        size_t n;
        assert_int_equal(hjson_b64_decode(v[i][1], strlen(v[i][1]), &d, &n), 0);
        assert_int_equal(n, strlen(v[i][0]));
        assert_memory_equal(d, v[i][0], n);
        free(d);
    }
    uint8_t *d;
    size_t n;
    assert_int_equal(hjson_b64_decode("Zm9v!", 5, &d, &n), -1);
    assert_int_equal(hjson_b64_decode("Z", 1, &d, &n), -1);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(hjson_utf8_valid("plain", 5));
    assert_true(hjson_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); /* é € 😀 */
    assert_false(hjson_utf8_valid("a\0b", 3));            /* NUL */
    assert_false(hjson_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(hjson_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(hjson_utf8_valid("\xe2\x82", 2));         /* truncated */
    assert_false(hjson_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(hjson_utf8_valid("\xff", 1));
}

static void test_set_get_bytes(void **state)
{
    (void)state;
    json_t *o = json_object();
    hjson_set_bytes(o, "v", "e", "hi", 2);
    assert_string_equal(json_string_value(json_object_get(o, "v")), "hi");
    assert_string_equal(json_string_value(json_object_get(o, "e")), "string");
    hjson_set_bytes(o, "v", "e", "\xff\x00", 2);
    assert_string_equal(json_string_value(json_object_get(o, "v")), "/wA=");
    assert_string_equal(json_string_value(json_object_get(o, "e")), "base64");
    hjson_set_bytes(o, "v", "e", NULL, 0);
    assert_true(json_is_null(json_object_get(o, "v")));
    uint8_t *b;
    size_t n;
    assert_int_equal(hjson_get_bytes(json_object_get(o, "v"), NULL, &b, &n), 1);
    assert_null(b);
    json_t *s = json_string("/wA=");
    assert_int_equal(hjson_get_bytes(s, "base64", &b, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(b[0], 0xff);
    free(b);
    assert_int_equal(hjson_get_bytes(s, "hex", &b, &n), -1);
    json_t *num = json_integer(3);
    assert_int_equal(hjson_get_bytes(num, NULL, &b, &n), -1);
    json_decref(num);
    json_decref(s);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_set_get_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
