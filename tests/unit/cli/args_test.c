/* Unit tests for the client's option parser (cli/cli.c): values joined or
 * separate, repeats, flags that store values, the global options anywhere,
 * and every kind of bad usage (exit status 2), over a table of argvs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/cli_int.h"

static int noop(cli_t *c, int argc, char **argv)
{
    (void)c, (void)argc, (void)argv;
    return 0;
}

static const cli_cmd_t cmd = {"things", "create", noop, "NAME [--n N] [--tag T] [--kv K=V ...] [--off]", "test"};

typedef struct {
    const char *name, *tag;
    int64_t n;
    int on;
    cli_list_t kv;
} got_t;

/* Parses the space-separated words of line (no quoting; "" for none). */
static int parse(const char *line, cli_t *c, got_t *g, const char **pos, int npos)
{
    static char buf[2048];
    char *argv[256];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *w = strtok(buf, " "); w && argc < 256; w = strtok(NULL, " ")) argv[argc++] = w;
    memset(c, 0, sizeof *c);
    snprintf(c->server, sizeof c->server, "http://default");
    c->cmd = &cmd;
    memset(g, 0, sizeof *g);
    g->n = -1;
    g->on = 1;
    const cli_opt_t opts[] = {
        {"--n", CLI_OPT_INT, &g->n, 0},
        {"--tag", CLI_OPT_STR, &g->tag, 0},
        {"--kv", CLI_OPT_LIST, &g->kv, 0},
        {"--off", CLI_OPT_FLAG, &g->on, 0},
        {NULL, 0, NULL, 0},
    };
    return cli_parse(c, argc, argv, opts, pos, npos);
}

static void test_good(void **state)
{
    (void)state;
    cli_t c;
    got_t g;
    const char *pos[2];
    assert_int_equal(parse("x --n 5 --tag=t1 --kv a=1 --kv b=2 --off", &c, &g, pos, 1), 0);
    assert_string_equal(pos[0], "x");
    assert_int_equal(g.n, 5);
    assert_string_equal(g.tag, "t1");
    assert_int_equal(g.kv.n, 2);
    assert_string_equal(g.kv.v[1], "b=2");
    assert_int_equal(g.on, 0);
    assert_int_equal(parse("--json --n=0 x --server http://h:1/// y", &c, &g, pos, 2), 0);
    assert_string_equal(pos[1], "y");
    assert_int_equal(g.n, 0);
    assert_int_equal(c.json, 1);
    assert_string_equal(c.server, "http://h:1");
    assert_int_equal(parse("-- --n", &c, &g, pos, 1), 0); /* after --, a name */
    assert_string_equal(pos[0], "--n");
    assert_int_equal(g.on, 1);
    assert_int_equal(parse("x --help", &c, &g, pos, 1), -1);
    assert_int_equal(parse("-h", &c, &g, pos, 1), -1); /* help wins over a missing name */
}

static void test_bad(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "",                /* missing positional */
        "x y",             /* one too many */
        "x --bogus",       /* unknown option */
        "x -z",            /* unknown short option */
        "x --n",           /* value missing */
        "x --n -1",        /* negative */
        "x --n 12abc",     /* not a number */
        "x --n 99999999999999999999", /* out of range */
        "x --off=1",       /* a flag takes no value */
        "x --server=",     /* empty URL */
        "x --server ///",  /* nothing but slashes */
    };
    cli_t c;
    got_t g;
    const char *pos[1];
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        assert_int_equal(parse(lines[i], &c, &g, pos, 1), CLI_EUSAGE);
}

static void test_list_limit_and_kv(void **state)
{
    (void)state;
    char line[CLI_LIST_MAX * 12 + 16] = "x";
    for (int i = 0; i <= CLI_LIST_MAX; i++) {
        char w[16];
        snprintf(w, sizeof w, " --kv k%d=v", i);
        strcat(line, w);
    }
    cli_t c;
    got_t g;
    const char *pos[1];
    assert_int_equal(parse(line, &c, &g, pos, 1), CLI_EUSAGE);
    assert_int_equal(parse("x --kv a=1 --kv b=x=y --kv c=\"7\" --kv d=true", &c, &g, pos, 1), 0);
    json_t *typed = cli_kv_object(&c, "--kv", &g.kv, 1), *text = cli_kv_object(&c, "--kv", &g.kv, 0);
    assert_true(json_is_integer(json_object_get(typed, "a")));
    assert_string_equal(json_string_value(json_object_get(typed, "b")), "x=y");
    assert_string_equal(json_string_value(json_object_get(typed, "c")), "7");
    assert_true(json_is_true(json_object_get(typed, "d")));
    assert_string_equal(json_string_value(json_object_get(text, "a")), "1");
    json_decref(typed);
    json_decref(text);
    assert_int_equal(parse("x --kv =v", &c, &g, pos, 1), 0);
    assert_null(cli_kv_object(&c, "--kv", &g.kv, 0));
    assert_int_equal(parse("x --kv novalue", &c, &g, pos, 1), 0);
    assert_null(cli_kv_object(&c, "--kv", &g.kv, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_list_limit_and_kv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
