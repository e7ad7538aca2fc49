/* Unit tests for cli/table.c: human units at their boundaries, column
 * widths in characters (UTF-8), alignment, no trailing blanks, control
 * characters neutralised; and cli_escape from http_client.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/cli_int.h"

static void test_counts_rates_bytes(void **state)
{
    (void)state;
    static const struct { double v; const char *count, *rate, *bytes; } vec[] = {
        {0, "0", "0", "0 B"},
        {7, "7", "7.0", "7 B"},
        {9.8, "10", "9.8", "10 B"},
        {999, "999", "999", "999 B"},
        {1000, "1.0k", "1.0k", "1000 B"},
        {1234, "1.2k", "1.2k", "1.2 KiB"},
        {34000, "34k", "34k", "33 KiB"},
        {999999, "1.0M", "1.0M", "977 KiB"},
        {1500000, "1.5M", "1.5M", "1.4 MiB"},
        {3.4 * 1048576, "3.6M", "3.6M", "3.4 MiB"},
        {53687091200.0, "54G", "54G", "50 GiB"},
        {-5, "-5", "-5.0", "-5 B"},
    };
    char b[32];
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        assert_string_equal(cli_fmt_count(b, sizeof b, vec[i].v), vec[i].count);
        assert_string_equal(cli_fmt_rate(b, sizeof b, vec[i].v), vec[i].rate);
        assert_string_equal(cli_fmt_bytes(b, sizeof b, vec[i].v), vec[i].bytes);
    }
}

static void test_durations(void **state)
{
    (void)state;
    static const struct { double ms; const char *s; } vec[] = {
        {0, "0s"}, {59999, "59s"}, {60000, "1m00s"}, {3599000, "59m59s"},
        {3600000, "1h00m"}, {86399000, "23h59m"}, {86400000, "1d00h"}, {90061000, "1d01h"},
    };
    char b[32];
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++)
        assert_string_equal(cli_fmt_duration(b, sizeof b, vec[i].ms), vec[i].s);
}

/* The table printed into a string; caller frees. */
static char *render(const cli_table_t *t)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cli_table_print(t, f);
    fclose(f);
    return text;
}

static void test_table_layout(void **state)
{
    (void)state;
    static const char *const h[] = {"NAME", "N", "ARROW", "NOTE", NULL};
    cli_table_t *t = cli_table_new(h, "lrll");
    cli_table_cell(t, "caf\xc3\xa9"); /* 4 characters, 5 bytes */
    cli_table_count(t, 1234);
    cli_table_cell(t, "\xe2\x86\x91");
    cli_table_cell(t, "");
    cli_table_cell(t, "a\x1b[31m\n");
    cli_table_cellf(t, "%d", 7);
    cli_table_cell(t, "=");
    cli_table_cell(t, "x");
    assert_int_equal(cli_table_rows(t), 2);
    char *s = render(t);
    assert_string_equal(s, "NAME        N  ARROW  NOTE\n"
                           "caf\xc3\xa9     1.2k  \xe2\x86\x91\n"
                           "a?[31m?     7  =      x\n");
    free(s);
    cli_table_free(t);
}

static void test_empty_and_partial_rows(void **state)
{
    (void)state;
    static const char *const h[] = {"A", "B", NULL};
    cli_table_t *t = cli_table_new(h, "rr");
    char *s = render(t);
    assert_string_equal(s, "A  B\n");
    free(s);
    cli_table_cell(t, "123");
    s = render(t);
    assert_string_equal(s, "  A  B\n123\n");
    free(s);
    cli_table_free(t);
    cli_table_free(NULL);
}

static void test_escape(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } vec[] = {
        {"", ""}, {"jobs", "jobs"}, {"a/b", "a%2Fb"}, {"a b&c=d?", "a%20b%26c%3Dd%3F"},
        {"x-y_z.~", "x-y_z.~"}, {"%", "%25"}, {"\xc3\xa9", "%C3%A9"}, {"#*", "%23%2A"},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        char *e = cli_escape(vec[i].in);
        assert_string_equal(e, vec[i].out);
        free(e);
    }
}

static void test_safe(void **state)
{
    (void)state;
    assert_string_equal(cli_safe("plain"), "plain");
    assert_string_equal(cli_safe(NULL), "");
    assert_string_equal(cli_safe("a\x1b[2J\r\n\x7f\xc3\xa9"), "a?[2J???\xc3\xa9");
    /* Eight at once in one call stay distinct. */
    const char *p[CLI_SAFE_SLOTS];
    char in[8];
    for (int i = 0; i < CLI_SAFE_SLOTS; i++) {
        snprintf(in, sizeof in, "s%d", i);
        p[i] = cli_safe(in);
    }
    for (int i = 0; i < CLI_SAFE_SLOTS; i++) {
        snprintf(in, sizeof in, "s%d", i);
        assert_string_equal(p[i], in);
    }
    char *big = malloc(CLI_SAFE_MAX * 2);
    memset(big, 'x', CLI_SAFE_MAX * 2 - 1);
    big[CLI_SAFE_MAX * 2 - 1] = '\0';
    assert_int_equal(strlen(cli_safe(big)), CLI_SAFE_MAX - 1);
    free(big);
}

static void test_json_access(void **state)
{
    (void)state;
    json_t *v = json_loads("{\"a\": {\"b\": {\"c\": 2.5}}, \"s\": \"x\", \"t\": true, \"n\": null}", 0, NULL);
    assert_non_null(v);
    assert_true(cli_jpnum(v, "a.b.c") == 2.5);
    assert_true(cli_jpnum(v, "a.x.c") == 0);
    assert_true(cli_jpnum(NULL, "a") == 0);
    assert_string_equal(cli_jstr(v, "s"), "x");
    assert_string_equal(cli_jstr(v, "t"), "");
    assert_string_equal(cli_jyes(v, "t"), "yes");
    assert_string_equal(cli_jyes(v, "s"), "no");
    char *s = cli_jshow(json_object_get(v, "a"));
    assert_string_equal(s, "{\"b\":{\"c\":2.5}}");
    free(s);
    s = cli_jshow(json_object_get(v, "n"));
    assert_string_equal(s, "");
    free(s);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_rates_bytes), cmocka_unit_test(test_durations),
        cmocka_unit_test(test_table_layout),       cmocka_unit_test(test_empty_and_partial_rows),
        cmocka_unit_test(test_escape),             cmocka_unit_test(test_json_access),
        cmocka_unit_test(test_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
